package classifier

import (
	"encoding/json"
	"fmt"

	"github.com/ddpm-go/ddpm/checkpoint"
	"github.com/ddpm-go/ddpm/tensor"
)

// Save writes the weights as safetensors with the configuration under metadata key "classifier" and
// the extra metadata meta (provenance: data set, accuracy, command).
func Save(path string, n *Net, meta map[string]string) error {
	m := map[string]string{"classifier": n.Cfg.JSON()}
	for k, v := range meta {
		if k != "classifier" {
			m[k] = v
		}
	}
	return checkpoint.Save(path, m, checkpoint.Group{Params: n.Params()})
}

// Load reads a classifier written by Save onto backend be.
func Load(path string, be tensor.Backend) (*Net, map[string]string, error) {
	f, err := checkpoint.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	n, err := fromFile(f, be)
	if err != nil {
		return nil, nil, fmt.Errorf("load classifier %s: %w", path, err)
	}
	return n, f.Metadata, nil
}

// Decode is Load from the bytes of a file (an embedded one).
func Decode(b []byte, be tensor.Backend) (*Net, map[string]string, error) {
	f, err := checkpoint.Decode(b)
	if err != nil {
		return nil, nil, err
	}
	n, err := fromFile(f, be)
	if err != nil {
		return nil, nil, fmt.Errorf("decode classifier: %w", err)
	}
	return n, f.Metadata, nil
}

func fromFile(f *checkpoint.File, be tensor.Backend) (*Net, error) {
	raw, ok := f.Metadata["classifier"]
	if !ok {
		return nil, fmt.Errorf("no \"classifier\" config in the metadata (not a classifier file?)")
	}
	var cfg Config
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		return nil, fmt.Errorf("classifier config: %w", err)
	}
	n, err := New(cfg, be, 0)
	if err != nil {
		return nil, err
	}
	if err := f.Assign(true, checkpoint.Group{Params: n.Params()}); err != nil {
		return nil, err
	}
	return n, nil
}

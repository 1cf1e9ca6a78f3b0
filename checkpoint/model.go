package checkpoint

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/ddpm-go/ddpm/internal/safeio"
	"github.com/ddpm-go/ddpm/nn"
	"github.com/ddpm-go/ddpm/tensor"
)

// Metadata keys this package writes.
const (
	MetaConfig      = "config"       // the model's nn.Config as JSON
	MetaFormat      = "format"       // "ddpm-model-v1" or "ddpm-train-v1"
	MetaStep        = "step"         // training step count
	MetaRNG         = "rng"          // base64 of the trainer's RNG state
	MetaAdamW       = "adamw"        // JSON: hyperparameters and step count t
	MetaEMADecay    = "ema_decay"    // EMA decay
	MetaDropoutSeed = "dropout_seed" // nn.UNet.DropoutSeed
)

// Prefixes of the groups in a training-state file; model weights have no prefix.
const (
	PrefixEMA    = "ema."
	PrefixAdamWM = "adamw.m."
	PrefixAdamWV = "adamw.v."
)

// SaveModel writes a model's weights under their state_dict names, with its config in the metadata,
// so the file alone rebuilds the model (LoadModel) and converts to a PyTorch state_dict.
func SaveModel(path string, u *nn.UNet, meta map[string]string) error {
	return SaveWeights(path, u.Cfg, u.Params(), meta)
}

// SaveWeights is SaveModel for weights held apart from a model, such as an EMA's Params().
func SaveWeights(path string, cfg nn.Config, params []*tensor.Param, meta map[string]string) error {
	m := map[string]string{}
	for k, v := range meta {
		m[k] = v
	}
	m[MetaConfig] = string(cfg.JSON())
	m[MetaFormat] = "ddpm-model-v1"
	return Save(path, m, Group{Params: params})
}

// configFor finds the model config of a weights file: the "config" metadata entry, or else a JSON file
// beside it (model.safetensors -> model.json, or config.json in the same directory), which is what a
// file converted from PyTorch without --config needs.
func configFor(path string, f *File) (nn.Config, error) {
	if s, ok := f.Metadata[MetaConfig]; ok {
		cfg, err := nn.ParseConfig([]byte(s))
		if err != nil {
			return nn.Config{}, fmt.Errorf("read %s: metadata config: %w", path, err)
		}
		return cfg, nil
	}
	for _, side := range []string{strings.TrimSuffix(path, filepath.Ext(path)) + ".json", filepath.Join(filepath.Dir(path), "config.json")} {
		b, err := safeio.ReadFile(side, 1<<20)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nn.Config{}, fmt.Errorf("read %s: %w", side, err)
		}
		cfg, err := nn.ParseConfig(b)
		if err != nil {
			return nn.Config{}, fmt.Errorf("read %s: %w", side, err)
		}
		return cfg, nil
	}
	return nn.Config{}, fmt.Errorf("read %s: no model config in its metadata nor a .json or config.json beside it", path)
}

// LoadModel builds the model a weights file describes and loads its weights. prefix selects the
// weights: "" for the model's own, PrefixEMA for the EMA copy in a training-state file. Every
// parameter must be present with its shape, and every tensor with that prefix must belong to the
// model (optimizer moments and, for prefix "", EMA weights are not model tensors and are skipped).
func LoadModel(path string, be tensor.Backend, prefix string) (*nn.UNet, map[string]string, error) {
	f, err := ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	cfg, err := configFor(path, f)
	if err != nil {
		return nil, nil, err
	}
	u, err := f.Model(cfg, be, prefix)
	if err != nil {
		return nil, nil, fmt.Errorf("load %s: %w", path, err)
	}
	return u, f.Metadata, nil
}

// DecodeModel is LoadModel for a file held in memory (go:embed); the config must be in its metadata.
func DecodeModel(b []byte, be tensor.Backend, prefix string) (*nn.UNet, map[string]string, error) {
	f, err := Decode(b)
	if err != nil {
		return nil, nil, err
	}
	s, ok := f.Metadata[MetaConfig]
	if !ok {
		return nil, nil, errors.New("no model config in the metadata")
	}
	cfg, err := nn.ParseConfig([]byte(s))
	if err != nil {
		return nil, nil, fmt.Errorf("metadata config: %w", err)
	}
	u, err := f.Model(cfg, be, prefix)
	if err != nil {
		return nil, nil, err
	}
	return u, f.Metadata, nil
}

// Model builds a UNet for cfg on be and loads the file's weights under prefix into it (see LoadModel).
func (f *File) Model(cfg nn.Config, be tensor.Backend, prefix string) (*nn.UNet, error) {
	u, err := nn.New(cfg, be, 0)
	if err != nil {
		return nil, err
	}
	if err := f.Assign(false, Group{Prefix: prefix, Params: u.Params()}); err != nil {
		return nil, err
	}
	names := map[string]bool{}
	for _, p := range u.Params() {
		names[prefix+p.Name] = true
	}
	for _, t := range f.Tensors {
		other := prefix == "" && (strings.HasPrefix(t.Name, PrefixEMA) || strings.HasPrefix(t.Name, "adamw."))
		if strings.HasPrefix(t.Name, prefix) && !other && !names[t.Name] {
			return nil, fmt.Errorf("unexpected tensor %q not in model %s", t.Name, cfg.Name)
		}
	}
	return u, nil
}

// Training is everything a training run needs to resume exactly: the model, optionally its EMA and
// optimizer, the step count, the trainer's RNG state and free-form metadata (data order, say).
// SaveTraining writes it as one safetensors file, atomically, with the model weights under their
// plain names (so the file also loads as a model), the EMA under "ema.", AdamW moments under
// "adamw.m." / "adamw.v.".
type Training struct {
	Model *nn.UNet
	EMA   *nn.EMA   // optional
	Opt   *nn.AdamW // optional
	Step  int
	RNG   []byte            // opaque, e.g. from (*rand.PCG).MarshalBinary
	Meta  map[string]string // extra metadata; keys must not clash with the Meta* constants
}

type adamwMeta struct {
	LR, Beta1, Beta2, Eps, WeightDecay float64
	T                                  int
}

var reserved = map[string]bool{MetaConfig: true, MetaFormat: true, MetaStep: true, MetaRNG: true,
	MetaAdamW: true, MetaEMADecay: true, MetaDropoutSeed: true}

// SaveTraining writes s to path atomically.
func SaveTraining(path string, s *Training) error {
	meta := map[string]string{}
	for k, v := range s.Meta {
		if reserved[k] {
			return fmt.Errorf("write %s: metadata key %q is reserved", path, k)
		}
		meta[k] = v
	}
	meta[MetaConfig] = string(s.Model.Cfg.JSON())
	meta[MetaFormat] = "ddpm-train-v1"
	meta[MetaStep] = strconv.Itoa(s.Step)
	meta[MetaRNG] = base64.StdEncoding.EncodeToString(s.RNG)
	meta[MetaDropoutSeed] = strconv.FormatUint(s.Model.DropoutSeed, 10)
	groups := []Group{{Params: s.Model.Params()}}
	if s.EMA != nil {
		meta[MetaEMADecay] = strconv.FormatFloat(s.EMA.Decay, 'g', -1, 64)
		groups = append(groups, Group{PrefixEMA, s.EMA.Params()})
	}
	if o := s.Opt; o != nil {
		b, _ := json.Marshal(adamwMeta{o.LR, o.Beta1, o.Beta2, o.Eps, o.WeightDecay, o.Steps()})
		meta[MetaAdamW] = string(b)
		m, v := o.Moments()
		groups = append(groups, Group{PrefixAdamWM, m}, Group{PrefixAdamWV, v})
	}
	return Save(path, meta, groups...)
}

// LoadTraining restores a training state saved by SaveTraining into s, whose Model (and EMA, Opt
// when set) must already be built with the same config. It restores weights, EMA, moments, the
// optimizer's step count, s.Step, s.RNG, the model's DropoutSeed and s.Meta (the extra keys);
// the optimizer's hyperparameters stay as the caller set them. Nothing is modified on error.
func LoadTraining(path string, s *Training) error {
	f, err := ReadFile(path)
	if err != nil {
		return err
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("load %s: %s", path, fmt.Sprintf(format, args...))
	}
	if got, want := f.Metadata[MetaConfig], string(s.Model.Cfg.JSON()); got != want {
		return bad("saved with model config %s, the model is %s", got, want)
	}
	step, err := strconv.Atoi(f.Metadata[MetaStep])
	if err != nil || step < 0 {
		return bad("bad step %q", f.Metadata[MetaStep])
	}
	rng, err := base64.StdEncoding.DecodeString(f.Metadata[MetaRNG])
	if err != nil {
		return bad("bad rng state: %v", err)
	}
	dseed, err := strconv.ParseUint(f.Metadata[MetaDropoutSeed], 10, 64)
	if err != nil {
		return bad("bad dropout seed %q", f.Metadata[MetaDropoutSeed])
	}
	groups := []Group{{Params: s.Model.Params()}}
	if s.EMA != nil {
		groups = append(groups, Group{PrefixEMA, s.EMA.Params()})
	}
	var am adamwMeta
	if s.Opt != nil {
		if err := json.Unmarshal([]byte(f.Metadata[MetaAdamW]), &am); err != nil || am.T < 0 {
			return bad("no valid optimizer state (adamw metadata %q)", f.Metadata[MetaAdamW])
		}
		m, v := s.Opt.Moments()
		groups = append(groups, Group{PrefixAdamWM, m}, Group{PrefixAdamWV, v})
	}
	if err := f.Assign(s.EMA != nil && s.Opt != nil, groups...); err != nil {
		return fmt.Errorf("load %s: %w", path, err)
	}
	if s.Opt != nil {
		s.Opt.SetSteps(am.T)
	}
	s.Step, s.RNG, s.Model.DropoutSeed = step, rng, dseed
	s.Meta = map[string]string{}
	for k, v := range f.Metadata {
		if !reserved[k] {
			s.Meta[k] = v
		}
	}
	return nil
}

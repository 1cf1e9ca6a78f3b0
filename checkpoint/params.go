package checkpoint

import (
	"fmt"
	"slices"

	"github.com/ddpm-go/ddpm/tensor"
)

// Group is a list of parameters stored under a name prefix: the model's weights under "" (so a file
// holding only them has exactly the PyTorch state_dict names), EMA weights under "ema.", optimizer
// moments under "adamw.m." and "adamw.v.". The parameters' W arrays are what is saved and loaded.
type Group struct {
	Prefix string
	Params []*tensor.Param
}

// Save writes the groups' weights and metadata to path atomically.
func Save(path string, meta map[string]string, groups ...Group) error {
	var ts []Tensor
	for _, g := range groups {
		for _, p := range g.Params {
			ts = append(ts, Tensor{Name: g.Prefix + p.Name, Shape: p.Shape, Data: p.W})
		}
	}
	return WriteFile(path, ts, meta)
}

// Load reads path into the groups' parameters and returns the file's metadata. Every parameter must be
// in the file with its exact shape, and every tensor in the file must belong to a group: a checkpoint
// of a different model fails with an error naming the file and the tensor instead of loading partly.
// Nothing is modified unless the whole file matches. Each loaded parameter's Version is bumped so
// backends drop cached copies of the old weights.
func Load(path string, groups ...Group) (map[string]string, error) {
	return load(path, true, groups)
}

// LoadSome is Load without the check for extra tensors: it takes, for example, only the EMA weights
// (Group{Prefix: "ema.", ...}) out of a training-state file.
func LoadSome(path string, groups ...Group) (map[string]string, error) {
	return load(path, false, groups)
}

func load(path string, strict bool, groups []Group) (map[string]string, error) {
	f, err := ReadFile(path)
	if err != nil {
		return nil, err
	}
	if err := f.Assign(strict, groups...); err != nil {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	return f.Metadata, nil
}

// Assign copies the file's tensors into the groups' parameters after checking names and shapes (see
// Load); strict also rejects tensors that no group claims.
func (f *File) Assign(strict bool, groups ...Group) error {
	byName := make(map[string]int, len(f.Tensors))
	for i, t := range f.Tensors {
		byName[t.Name] = i
	}
	claimed := make(map[string]bool)
	type job struct {
		p *tensor.Param
		t *Tensor
	}
	var jobs []job
	for _, g := range groups {
		for _, p := range g.Params {
			name := g.Prefix + p.Name
			if claimed[name] {
				return fmt.Errorf("tensor %q requested twice", name)
			}
			claimed[name] = true
			i, ok := byName[name]
			if !ok {
				return fmt.Errorf("missing tensor %q (shape %v)", name, p.Shape)
			}
			t := &f.Tensors[i]
			if !slices.Equal(t.Shape, p.Shape) {
				return fmt.Errorf("tensor %q has shape %v, the model wants %v", name, t.Shape, p.Shape)
			}
			if len(p.W) != len(t.Data) {
				return fmt.Errorf("tensor %q: parameter holds %d values, want %d", name, len(p.W), len(t.Data))
			}
			jobs = append(jobs, job{p, t})
		}
	}
	if strict {
		var extra []string
		for _, t := range f.Tensors {
			if !claimed[t.Name] {
				extra = append(extra, t.Name)
			}
		}
		if len(extra) > 0 {
			more := ""
			if len(extra) > 1 {
				more = fmt.Sprintf(" (and %d more)", len(extra)-1)
			}
			return fmt.Errorf("unexpected tensor %q%s not in the model", extra[0], more)
		}
	}
	for _, j := range jobs {
		copy(j.p.W, j.t.Data)
		j.p.Version++
	}
	return nil
}

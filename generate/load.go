package generate

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"ddpm/checkpoint"
	"ddpm/diffusion"
	"ddpm/models"
	"ddpm/nn"
	"ddpm/schedule"
	"ddpm/tensor"
)

// Model is a network together with the diffusion setup it was trained with.
type Model struct {
	Net        *nn.UNet
	Schedule   *schedule.Schedule
	Prediction diffusion.Parameterization // what Net outputs: eps, x0 or v
	// Source is the weights file, Weights "ema" or "model" (which tensors of it were loaded), and
	// SetupFrom where the schedule and objective came from (a file, or "defaults").
	Source, Weights, SetupFrom string
	Meta                       map[string]string // the weights file's metadata
}

// Dim is the number of values of one image, C*H*W.
func (m *Model) Dim() int {
	c := m.Net.Cfg
	return c.InChannels * c.ImageSize * c.ImageSize
}

// Shape is one image's (C, H, W).
func (m *Model) Shape() (c, h, w int) {
	cfg := m.Net.Cfg
	return cfg.InChannels, cfg.ImageSize, cfg.ImageSize
}

// Weights chooses between a training checkpoint's EMA weights and its raw model weights.
type Weights int

const (
	// WeightsAuto uses the EMA weights when the file has them (a training checkpoint), the plain
	// weights otherwise (a model file, such as exported EMA weights).
	WeightsAuto Weights = iota
	WeightsEMA          // the EMA weights; an error if the file has none
	WeightsRaw          // the model's own weights, even when an EMA is present
)

// Setup is the diffusion configuration a model was trained with. Its JSON keys are those of a run's
// config.json (the flags of `ddpm train`) and of the metadata of weight files; other keys are ignored.
type Setup struct {
	Schedule  string `json:"schedule"`
	Timesteps int    `json:"timesteps"`
	ZeroSNR   bool   `json:"zero-snr"`
	Objective string `json:"objective"`
}

// DefaultSetup is what a model without any record of its training is assumed to use: the DDPM
// paper's linear schedule over T = 1000 steps, predicting eps.
var DefaultSetup = Setup{Schedule: "linear", Timesteps: 1000, Objective: "eps"}

// Load loads the model at ckpt: "" for the shipped model, a weights file (.safetensors: a model file
// or a training checkpoint), or a run directory (its newest checkpoint; see FindCheckpoint).
func Load(ckpt string, be tensor.Backend, w Weights) (*Model, error) {
	if ckpt == "" {
		return LoadShipped(be, w)
	}
	st, err := os.Stat(ckpt)
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", ckpt, err)
	}
	path := ckpt
	if st.IsDir() {
		if path, err = FindCheckpoint(ckpt); err != nil {
			return nil, err
		}
	}
	f, err := checkpoint.ReadFile(path)
	if err != nil {
		return nil, err
	}
	setup, from, err := findSetup(f.Metadata, runConfigs(path))
	if err != nil {
		return nil, err
	}
	return build(path, f, setup, from, be, w)
}

// LoadShipped loads the model compiled into the binary (package models).
func LoadShipped(be tensor.Backend, w Weights) (*Model, error) {
	name, b, rc, err := models.MNIST()
	if err != nil {
		return nil, err
	}
	f, err := checkpoint.Decode(b)
	if err != nil {
		return nil, fmt.Errorf("read shipped %s: %w", name, err)
	}
	var cands []runConfig
	if rc != nil {
		cands = append(cands, runConfig{models.Dir + "/config.json", rc})
	}
	setup, from, err := findSetup(f.Metadata, cands)
	if err != nil {
		return nil, err
	}
	return build(name, f, setup, from, be, w)
}

func build(path string, f *checkpoint.File, setup Setup, from string, be tensor.Backend, w Weights) (*Model, error) {
	hasEMA := false
	for _, t := range f.Tensors {
		if strings.HasPrefix(t.Name, checkpoint.PrefixEMA) {
			hasEMA = true
			break
		}
	}
	prefix, weights := "", "model"
	switch w {
	case WeightsEMA:
		if !hasEMA {
			return nil, fmt.Errorf("load %s: --ema: the file has no EMA weights (tensors %q...); use --no-ema", path, checkpoint.PrefixEMA)
		}
		prefix, weights = checkpoint.PrefixEMA, "ema"
	case WeightsAuto:
		if hasEMA {
			prefix, weights = checkpoint.PrefixEMA, "ema"
		}
	}
	cfgJSON, ok := f.Metadata[checkpoint.MetaConfig]
	var u *nn.UNet
	if ok {
		cfg, err := nn.ParseConfig([]byte(cfgJSON))
		if err != nil {
			return nil, fmt.Errorf("load %s: %w", path, err)
		}
		if u, err = f.Model(cfg, be, prefix); err != nil {
			return nil, fmt.Errorf("load %s: %w", path, err)
		}
	} else {
		// No config in the metadata (a file converted from PyTorch): LoadModel looks beside it.
		var err error
		if u, _, err = checkpoint.LoadModel(path, be, prefix); err != nil {
			return nil, err
		}
	}
	if c := u.Cfg; c.InChannels != c.OutChannels {
		return nil, fmt.Errorf("load %s: model %s has %d input and %d output channels; sampling needs them equal", path, c.Name, c.InChannels, c.OutChannels)
	}
	s, err := schedule.New(setup.Schedule, setup.Timesteps, setup.ZeroSNR)
	if err != nil {
		return nil, fmt.Errorf("load %s: diffusion setup from %s: %w", path, from, err)
	}
	p, err := diffusion.ParseParameterization(setup.Objective)
	if err != nil {
		return nil, fmt.Errorf("load %s: diffusion setup from %s: %w", path, from, err)
	}
	return &Model{Net: u, Schedule: s, Prediction: p, Source: path, Weights: weights, SetupFrom: from, Meta: f.Metadata}, nil
}

type runConfig struct {
	name string
	b    []byte
}

// runConfigs lists the run configs that may describe the weights at path: config.json beside it, or
// in the directory above (a run directory's checkpoints/ holding the file).
func runConfigs(path string) []runConfig {
	var out []runConfig
	dir := filepath.Dir(path)
	for _, d := range []string{dir, filepath.Dir(dir)} {
		p := filepath.Join(d, "config.json")
		if b, err := os.ReadFile(p); err == nil {
			out = append(out, runConfig{p, b})
		}
		if d == filepath.Dir(d) {
			break
		}
	}
	return out
}

// findSetup takes the diffusion setup from the weights' metadata (keys "schedule", "timesteps",
// "zero-snr", "objective") if it has one, else from the first run config that names a schedule,
// else DefaultSetup. Unset fields keep their defaults.
func findSetup(meta map[string]string, cands []runConfig) (Setup, string, error) {
	s := DefaultSetup
	if v, ok := meta["schedule"]; ok {
		s.Schedule = v
		if t, ok := meta["timesteps"]; ok {
			n, err := strconv.Atoi(t)
			if err != nil {
				return Setup{}, "", fmt.Errorf("weights metadata: timesteps %q is not an integer", t)
			}
			s.Timesteps = n
		}
		for _, k := range []string{"zero-snr", "zero_snr"} {
			if z, ok := meta[k]; ok {
				b, err := strconv.ParseBool(z)
				if err != nil {
					return Setup{}, "", fmt.Errorf("weights metadata: %s %q is not a boolean", k, z)
				}
				s.ZeroSNR = b
			}
		}
		if o, ok := meta["objective"]; ok {
			s.Objective = o
		}
		return s, "the weights' metadata", nil
	}
	for _, c := range cands {
		var probe map[string]json.RawMessage
		if err := json.Unmarshal(c.b, &probe); err != nil {
			return Setup{}, "", fmt.Errorf("read %s: %w", c.name, err)
		}
		if _, ok := probe["schedule"]; !ok {
			continue // some other config.json, e.g. a model config beside converted weights
		}
		if err := json.Unmarshal(c.b, &s); err != nil {
			return Setup{}, "", fmt.Errorf("read %s: %w", c.name, err)
		}
		return s, c.name, nil
	}
	return s, "defaults (no run config found)", nil
}

var stepNumber = regexp.MustCompile(`(\d+)\.safetensors$`)

// FindCheckpoint picks the weights of a run directory: a final model file (ema.safetensors or
// model.safetensors) if the run wrote one, else the training checkpoint with the highest step
// number (the digits before ".safetensors") in the directory or its checkpoints/ subdirectory.
func FindCheckpoint(dir string) (string, error) {
	for _, name := range []string{"ema.safetensors", "model.safetensors"} {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	type cand struct {
		path string
		step int
	}
	var cands []cand
	for _, d := range []string{dir, filepath.Join(dir, "checkpoints")} {
		matches, _ := filepath.Glob(filepath.Join(d, "*.safetensors"))
		for _, m := range matches {
			step := -1
			if sm := stepNumber.FindStringSubmatch(filepath.Base(m)); sm != nil {
				step, _ = strconv.Atoi(sm[1])
			}
			cands = append(cands, cand{m, step})
		}
	}
	if len(cands) == 0 {
		return "", fmt.Errorf("checkpoint %s: a directory with no .safetensors file (in it or in checkpoints/)", dir)
	}
	sort.SliceStable(cands, func(i, j int) bool { return cands[i].step > cands[j].step })
	if len(cands) > 1 && cands[0].step == cands[1].step {
		return "", fmt.Errorf("checkpoint %s: cannot tell the newest of %s and %s; pass the file", dir, cands[0].path, cands[1].path)
	}
	return cands[0].path, nil
}

package generate

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/ddpm-go/ddpm/checkpoint"
	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/internal/sysmem"
	"github.com/ddpm-go/ddpm/models"
	"github.com/ddpm-go/ddpm/nn"
	"github.com/ddpm-go/ddpm/schedule"
	"github.com/ddpm-go/ddpm/tensor"
	"github.com/ddpm-go/ddpm/train"
)

// Model is a network together with the diffusion setup it was trained with.
type Model struct {
	Net        *nn.UNet
	Schedule   *schedule.Schedule
	Prediction diffusion.Prediction // what Net outputs: eps, x0 or v
	Source     string               // the weights file
	EMA        bool                 // the weights are an EMA copy
	Step       int                  // training steps behind the weights (-1 if unknown)
	Meta       map[string]string    // the weights file's metadata
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

// Load loads the model at ckpt: "" for the shipped model, else a run directory or a weights file as
// train.LoadForSampling reads them (ema selects a run's or a checkpoint's EMA weights over the raw
// ones; a model file's weights are used as they are).
func Load(ckpt string, be tensor.Backend, ema bool) (*Model, error) {
	if ckpt == "" {
		return LoadShipped(be)
	}
	s, err := train.LoadForSampling(ckpt, be, ema)
	if err != nil {
		return nil, err
	}
	return check(&Model{Net: s.Model, Schedule: s.Schedule, Prediction: s.Prediction, Source: s.Path, EMA: s.EMA, Step: s.Step, Meta: s.Meta})
}

// LoadShipped loads the model compiled into the binary (package models): EMA weights whose metadata
// holds the model config and the sampling keys of package train. A binary built before the weights
// existed falls back to models/mnist/ under the working directory (a repository checkout).
func LoadShipped(be tensor.Backend) (*Model, error) {
	name, b, err := models.MNIST()
	if errors.Is(err, models.ErrNone) {
		for _, file := range []string{"model.safetensors", "model-ema.safetensors"} {
			p := filepath.Join(filepath.FromSlash(models.Dir), file)
			if _, serr := os.Stat(p); serr == nil {
				return Load(p, be, true)
			}
		}
	}
	if err != nil {
		return nil, err
	}
	u, meta, err := checkpoint.DecodeModel(b, be, "")
	if err != nil {
		return nil, fmt.Errorf("read shipped %s: %w", name, err)
	}
	m := &Model{Net: u, Source: name, EMA: true, Step: -1, Meta: meta}
	if m.Schedule, m.Prediction, err = setupOf(meta); err != nil {
		return nil, fmt.Errorf("read shipped %s: %w", name, err)
	}
	if v, ok := meta[checkpoint.MetaStep]; ok {
		m.Step, _ = strconv.Atoi(v)
	}
	return check(m)
}

// check refuses a model that cannot sample: unequal input and output channels, or a network whose
// forward pass over one image needs more than the machine's memory (weights do not grow with the
// image size, so a small file can describe 16384x16384 images; every command that samples learns
// it here, in one line, instead of from the Go runtime's out-of-memory dump at the first step).
func check(m *Model) (*Model, error) {
	c := m.Net.Cfg
	if c.InChannels != c.OutChannels {
		return nil, fmt.Errorf("load %s: model %s has %d input and %d output channels; sampling needs them equal", m.Source, c.Name, c.InChannels, c.OutChannels)
	}
	need, err := nn.InferenceBytes(c, 1)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", m.Source, err)
	}
	if err := sysmem.Check(fmt.Sprintf("model %s on one %dx%dx%d image", c.Name, c.InChannels, c.ImageSize, c.ImageSize), need); err != nil {
		return nil, fmt.Errorf("load %s: %w", m.Source, err)
	}
	return m, nil
}

// setupOf reads the sampling keys of package train from a weights file's metadata; absent keys take
// the DDPM paper's setting (linear schedule, T = 1000, eps).
func setupOf(meta map[string]string) (*schedule.Schedule, diffusion.Prediction, error) {
	name, T, zero, obj := "linear", 1000, false, "eps"
	if v, ok := meta[train.MetaSchedule]; ok {
		name = v
	}
	if v, ok := meta[train.MetaTimesteps]; ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			return nil, 0, fmt.Errorf("bad %s %q", train.MetaTimesteps, v)
		}
		T = n
	}
	if v, ok := meta[train.MetaZeroSNR]; ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, 0, fmt.Errorf("bad %s %q", train.MetaZeroSNR, v)
		}
		zero = b
	}
	if v, ok := meta["objective"]; ok { // the key's name in files written before "prediction"
		obj = v
	}
	if v, ok := meta[train.MetaPrediction]; ok {
		obj = v
	}
	s, err := schedule.New(name, T, zero)
	if err != nil {
		return nil, 0, err
	}
	p, err := diffusion.ParsePrediction(obj)
	if err != nil {
		return nil, 0, err
	}
	return s, p, nil
}

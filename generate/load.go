package generate

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/ddpm-go/ddpm/checkpoint"
	"github.com/ddpm-go/ddpm/internal/sysmem"
	"github.com/ddpm-go/ddpm/models"
	"github.com/ddpm-go/ddpm/nn"
	"github.com/ddpm-go/ddpm/tensor"
)

// Model is a network together with the diffusion setup it was trained with; the methods here
// sample it.
type Model struct {
	checkpoint.Model
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
// checkpoint.LoadForSampling reads them (ema selects a run's or a checkpoint's EMA weights over the raw
// ones; a model file's weights are used as they are).
func Load(ckpt string, be tensor.Backend, ema bool) (*Model, error) {
	if ckpt == "" {
		return LoadShipped(be)
	}
	s, err := checkpoint.LoadForSampling(ckpt, be, ema)
	if err != nil {
		return nil, err
	}
	return check(&Model{*s})
}

// LoadShipped loads the model compiled into the binary (package models): EMA weights whose metadata
// holds the model config and its diffusion setup.
func LoadShipped(be tensor.Backend) (*Model, error) {
	name, b := models.MNIST()
	return loadEmbedded(name, b, be)
}

// shipped are the models compiled into the binary, by the names `ddpm serve` gives them.
var shipped = []struct {
	name    string
	weights func() (string, []byte)
}{{"mnist", models.MNIST}, {"mnist-instant", models.MNISTInstant}}

// ShippedNames names the models compiled into the binary, in the order `ddpm serve` lists them.
func ShippedNames() []string {
	var names []string
	for _, m := range shipped {
		names = append(names, m.name)
	}
	return names
}

// LoadShippedNamed loads the compiled-in model of that name (ShippedNames).
func LoadShippedNamed(name string, be tensor.Backend) (*Model, error) {
	for _, m := range shipped {
		if m.name == name {
			file, b := m.weights()
			return loadEmbedded(file, b, be)
		}
	}
	return nil, fmt.Errorf("no shipped model %q (there are %s)", name, strings.Join(ShippedNames(), ", "))
}

func loadEmbedded(name string, b []byte, be tensor.Backend) (*Model, error) {
	u, meta, err := checkpoint.DecodeModel(b, be, "")
	if err != nil {
		return nil, fmt.Errorf("read shipped %s: %w", name, err)
	}
	m := &Model{checkpoint.Model{Net: u, Source: name, EMA: true, Step: -1, Meta: meta}}
	if m.Schedule, m.Prediction, err = checkpoint.Setup(meta); err != nil {
		return nil, fmt.Errorf("read shipped %s: %w", name, err)
	}
	if v, ok := meta[checkpoint.MetaStep]; ok {
		m.Step, _ = strconv.Atoi(v)
	}
	if m.Classes, err = checkpoint.ClassNames(meta, u.Cfg.NumClasses); err != nil {
		return nil, fmt.Errorf("read shipped %s: %w", name, err)
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

// Package classifier is the small CNN whose penultimate features define the project's FID on MNIST and
// Fashion-MNIST, and whose predictions give the class histogram of generated samples. It runs on the
// same tensor.Backend kernels as the diffusion UNet (oneDNN when built with cgo), so it is trained and
// evaluated by the project's own engine.
//
// The network, for 1x28x28 inputs and Widths (32, 64, 128):
//
//	conv3x3 1->32, GN, SiLU                      28x28
//	conv3x3 32->32 stride 2, GN, SiLU            14x14
//	conv3x3 32->64, GN, SiLU                     14x14
//	conv3x3 64->64 stride 2, GN, SiLU            7x7
//	conv3x3 64->128, GN, SiLU                    7x7
//	global average pool                          128
//	linear 128->Features, SiLU                   the features (FID)
//	linear Features->Classes                     the logits
//
// The softmax cross-entropy is computed on the host in float64.
package classifier

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"

	"github.com/ddpm-go/ddpm/tensor"
)

// Config is the classifier's shape; it is stored as JSON in the weights file's metadata.
type Config struct {
	InChannels int   `json:"in_channels"`
	ImageSize  int   `json:"image_size"`
	Widths     []int `json:"widths"`   // channels per resolution; all but the last end with a stride-2 conv
	Groups     int   `json:"groups"`   // GroupNorm groups (divides every width)
	Features   int   `json:"features"` // penultimate width: the FID feature dimension
	Classes    int   `json:"classes"`
}

// Default is the configuration the shipped classifiers use.
func Default() Config {
	return Config{InChannels: 1, ImageSize: 28, Widths: []int{32, 64, 128}, Groups: 8, Features: 128, Classes: 10}
}

// Validate reports a configuration that cannot be built.
func (c Config) Validate() error {
	if c.InChannels < 1 || c.ImageSize < 1 || c.Features < 1 || c.Classes < 2 || c.Groups < 1 || len(c.Widths) == 0 {
		return fmt.Errorf("classifier config %+v: sizes must be positive (classes >= 2, at least one width)", c)
	}
	for _, w := range c.Widths {
		if w < 1 || w%c.Groups != 0 {
			return fmt.Errorf("classifier config: width %d not a positive multiple of groups %d", w, c.Groups)
		}
	}
	if c.ImageSize>>(len(c.Widths)-1) < 1 {
		return fmt.Errorf("classifier config: image size %d too small for %d downsamplings", c.ImageSize, len(c.Widths)-1)
	}
	return nil
}

// block is conv -> GroupNorm -> SiLU, with what its backward needs.
type block struct {
	w, b, gamma, beta *tensor.Param
	conv              tensor.Conv
	groups            int
	x, h, stats, g    *tensor.Tensor // saved: input (not owned), conv output, GN stats, GN output
}

// linear is x W^T + b.
type linear struct {
	w, b *tensor.Param
	x    *tensor.Tensor
}

// Net is the classifier on one backend. It is not safe for concurrent use.
type Net struct {
	Cfg    Config
	be     tensor.Backend
	blocks []*block
	fc     linear // pooled -> features
	head   linear // features -> logits
	params []*tensor.Param

	pooledShape []int          // shape of the last block's output, for the pooling's backward
	fcPre       *tensor.Tensor // fc's output before SiLU, saved for backward
}

// uniform is PyTorch's default Conv2d/Linear initialisation, U(-1/sqrt(fan_in), 1/sqrt(fan_in)), from
// a stream keyed by (seed, name) so a parameter does not depend on the others.
func uniform(seed uint64, name string, fanIn int, shape ...int) *tensor.Param {
	h := fnv.New64a()
	h.Write([]byte(name))
	r := rand.New(rand.NewPCG(seed, h.Sum64()))
	p := tensor.NewParam(name, shape...)
	bound := 1 / math.Sqrt(float64(fanIn))
	for i := range p.W {
		p.W[i] = float32((2*r.Float64() - 1) * bound)
	}
	return p
}

func constant(name string, v float32, n int) *tensor.Param {
	p := tensor.NewParam(name, n)
	for i := range p.W {
		p.W[i] = v
	}
	return p
}

// New builds a classifier with fresh weights from seed.
func New(cfg Config, be tensor.Backend, seed uint64) (*Net, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	n := &Net{Cfg: cfg, be: be}
	cin := cfg.InChannels
	add := func(cout, stride int) {
		name := fmt.Sprintf("blocks.%d", len(n.blocks))
		b := &block{
			w:      uniform(seed, name+".conv.weight", cin*9, cout, cin, 3, 3),
			b:      uniform(seed, name+".conv.bias", cin*9, cout),
			gamma:  constant(name+".norm.weight", 1, cout),
			beta:   constant(name+".norm.bias", 0, cout),
			conv:   tensor.Conv{Stride: stride, Pad: 1},
			groups: cfg.Groups,
		}
		n.blocks = append(n.blocks, b)
		n.params = append(n.params, b.w, b.b, b.gamma, b.beta)
		cin = cout
	}
	for i, w := range cfg.Widths {
		add(w, 1)
		if i < len(cfg.Widths)-1 {
			add(w, 2)
		}
	}
	n.fc = linear{w: uniform(seed, "fc.weight", cin, cfg.Features, cin), b: uniform(seed, "fc.bias", cin, cfg.Features)}
	n.head = linear{w: uniform(seed, "head.weight", cfg.Features, cfg.Classes, cfg.Features), b: uniform(seed, "head.bias", cfg.Features, cfg.Classes)}
	n.params = append(n.params, n.fc.w, n.fc.b, n.head.w, n.head.b)
	return n, nil
}

// Params returns every trainable parameter, in a fixed order (the checkpoint names).
func (n *Net) Params() []*tensor.Param { return n.params }

// Backend is the backend the network runs on.
func (n *Net) Backend() tensor.Backend { return n.be }

// ConfigJSON is the metadata value stored with the weights.
func (c Config) JSON() string {
	b, _ := json.Marshal(c)
	return string(b)
}

// Forward maps x (N, InChannels, ImageSize, ImageSize) to the features (N, Features) and logits
// (N, Classes). The logits belong to the caller. In inference (train false) so do the features; with
// train set the network keeps the features, x and every activation its Backward needs, and releases
// them there (x itself is never released).
func (n *Net) Forward(x *tensor.Tensor, train bool) (features, logits *tensor.Tensor) {
	be := n.be
	h := x
	for _, b := range n.blocks {
		c := be.Conv2D(h, b.w, b.b, b.conv)
		g, stats := be.GroupNorm(c, b.gamma, b.beta, b.groups, 1e-5)
		y := be.SiLU(g)
		if train {
			b.x, b.h, b.stats, b.g = h, c, stats, g
		} else {
			be.Release(c)
			be.Release(stats)
			be.Release(g)
			if h != x {
				be.Release(h)
			}
		}
		h = y
	}
	// Global average pooling: SumHW / (H W). The last block's output is not needed by any backward.
	n.pooledShape = h.Shape
	sum := be.SumHW(h)
	be.Release(h)
	pooled := be.Scale(sum, float32(1/float64(h.Shape[2]*h.Shape[3])))
	be.Release(sum)
	pre := be.Linear(pooled, n.fc.w, n.fc.b)
	features = be.SiLU(pre)
	logits = be.Linear(features, n.head.w, n.head.b)
	if train {
		n.fc.x, n.fcPre, n.head.x = pooled, pre, features
	} else {
		be.Release(pre)
		be.Release(pooled)
	}
	return features, logits
}

// Backward takes dL/dlogits, accumulates every parameter gradient (+=) and releases what Forward
// kept. It does not release dlogits.
func (n *Net) Backward(dlogits *tensor.Tensor) {
	be := n.be
	dfeat := be.LinearBackward(dlogits, n.head.x, n.head.w, n.head.b)
	dpre := be.SiLUBackward(dfeat, n.fcPre)
	be.Release(dfeat)
	dpooled := be.LinearBackward(dpre, n.fc.x, n.fc.w, n.fc.b)
	be.Release(dpre)
	be.Release(n.head.x)
	be.Release(n.fcPre)
	be.Release(n.fc.x)
	n.head.x, n.fcPre, n.fc.x = nil, nil, nil
	// The pooling's backward spreads dpooled/(H W) over every position: AddChannel onto zeros.
	shape := n.pooledShape
	scaled := be.Scale(dpooled, float32(1/float64(shape[2]*shape[3])))
	be.Release(dpooled)
	zeros := be.Upload(shape, make([]float32, tensor.Numel(shape)))
	dy := be.AddChannel(zeros, scaled)
	be.Release(zeros)
	be.Release(scaled)
	for k := len(n.blocks) - 1; k >= 0; k-- {
		b := n.blocks[k]
		dg := be.SiLUBackward(dy, b.g)
		be.Release(dy)
		dc := be.GroupNormBackward(dg, b.h, b.stats, b.gamma, b.beta, b.groups)
		be.Release(dg)
		be.Release(b.g)
		be.Release(b.stats)
		be.Release(b.h)
		if k > 0 {
			dy = be.Conv2DBackward(dc, b.x, b.w, b.b, b.conv)
			be.Release(b.x) // the previous block's output
		} else {
			// The first layer's input gradient is not needed, but the backend's conv backward
			// computes it with the weight gradient; drop it.
			be.Release(be.Conv2DBackward(dc, b.x, b.w, b.b, b.conv))
		}
		be.Release(dc)
		b.x, b.h, b.stats, b.g = nil, nil, nil, nil
	}
}

// ZeroGrad clears every parameter gradient.
func (n *Net) ZeroGrad() {
	for _, p := range n.params {
		clear(p.G)
	}
}

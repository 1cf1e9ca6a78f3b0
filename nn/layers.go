// Package nn is the diffusion network written on top of tensor.Backend: layers with explicit
// forward/backward pairs (llm.c style: each layer keeps the activations its backward needs in named
// fields, no autograd engine), the UNet configured by JSON (the built-in "unet-s" is
// bench/unet_s_torch.py layer for layer, with its state_dict names), and the optimizer side:
// AdamW, gradient clipping, learning-rate warmup and an EMA of the weights.
//
// Ownership of activations: a layer's Forward never releases its input; tensors a layer creates for
// itself are released by that layer (right away in inference, at the end of Backward in training).
// The returned output and the gradient returned by Backward belong to the caller. Backward accumulates
// parameter gradients into Param.G (+=); zero them with ZeroGrad before each step.
//
// nn never imports the diffusion math; the trainer joins the two.
package nn

import (
	"hash/fnv"
	"math"
	"math/rand/v2"

	"github.com/ddpm-go/ddpm/tensor"
)

// GroupNormEps is PyTorch's nn.GroupNorm default.
const GroupNormEps = 1e-5

// builder creates the parameters of one network with PyTorch's default initialisation, each from its
// own random stream keyed by (seed, name), so that a parameter's initial value does not depend on
// which other parameters exist or the order they are made in.
type builder struct {
	be   tensor.Backend
	seed uint64
}

func (b *builder) rng(name string) *rand.Rand {
	h := fnv.New64a()
	h.Write([]byte(name))
	return rand.New(rand.NewPCG(b.seed, h.Sum64()))
}

// uniform makes a parameter filled from U(-bound, bound). PyTorch's default for Conv2d and Linear is
// kaiming_uniform_(a=sqrt(5)) for the weight, which works out to bound = 1/sqrt(fan_in), and the
// same bound for the bias.
func (b *builder) uniform(name string, bound float64, shape ...int) *tensor.Param {
	p := tensor.NewParam(name, shape...)
	r := b.rng(name)
	for i := range p.W {
		p.W[i] = float32((2*r.Float64() - 1) * bound)
	}
	return p
}

// normal makes a parameter filled from N(0, std^2) (nn.Embedding's default with std = 1).
func (b *builder) normal(name string, std float64, shape ...int) *tensor.Param {
	p := tensor.NewParam(name, shape...)
	r := b.rng(name)
	for i := range p.W {
		p.W[i] = float32(std * r.NormFloat64())
	}
	return p
}

func (b *builder) constant(name string, v float32, shape ...int) *tensor.Param {
	p := tensor.NewParam(name, shape...)
	for i := range p.W {
		p.W[i] = v
	}
	return p
}

// Conv2d is a square convolution with bias: x (N,Cin,H,W) -> (N,Cout,H',W').
type Conv2d struct {
	be   tensor.Backend
	W, B *tensor.Param
	Conv tensor.Conv

	x *tensor.Tensor // saved input (not owned)
}

func (b *builder) conv(name string, cin, cout, k, stride, pad int) *Conv2d {
	bound := 1 / math.Sqrt(float64(cin*k*k))
	return &Conv2d{
		be:   b.be,
		W:    b.uniform(name+".weight", bound, cout, cin, k, k),
		B:    b.uniform(name+".bias", bound, cout),
		Conv: tensor.Conv{Stride: stride, Pad: pad},
	}
}

// Forward saves x for Backward when train is set.
func (l *Conv2d) Forward(x *tensor.Tensor, train bool) *tensor.Tensor {
	if train {
		l.x = x
	}
	return l.be.Conv2D(x, l.W, l.B, l.Conv)
}

// Backward returns dx and accumulates dW, dB.
func (l *Conv2d) Backward(dy *tensor.Tensor) *tensor.Tensor {
	dx := l.be.Conv2DBackward(dy, l.x, l.W, l.B, l.Conv)
	l.x = nil
	return dx
}

// Params returns weight and bias, in state_dict order.
func (l *Conv2d) Params() []*tensor.Param { return []*tensor.Param{l.W, l.B} }

// Linear is x (N,In) -> x W^T + B (N,Out).
type Linear struct {
	be   tensor.Backend
	W, B *tensor.Param

	x *tensor.Tensor // saved input (not owned)
}

func (b *builder) linear(name string, in, out int) *Linear {
	bound := 1 / math.Sqrt(float64(in))
	return &Linear{be: b.be, W: b.uniform(name+".weight", bound, out, in), B: b.uniform(name+".bias", bound, out)}
}

// Forward saves x for Backward when train is set.
func (l *Linear) Forward(x *tensor.Tensor, train bool) *tensor.Tensor {
	if train {
		l.x = x
	}
	return l.be.Linear(x, l.W, l.B)
}

// Backward returns dx and accumulates dW, dB.
func (l *Linear) Backward(dy *tensor.Tensor) *tensor.Tensor {
	dx := l.be.LinearBackward(dy, l.x, l.W, l.B)
	l.x = nil
	return dx
}

// Params returns weight and bias, in state_dict order.
func (l *Linear) Params() []*tensor.Param { return []*tensor.Param{l.W, l.B} }

// GroupNorm normalises Groups channel groups per sample, then scales and shifts per channel
// (PyTorch's nn.GroupNorm: weight 1, bias 0 at init, eps 1e-5).
type GroupNorm struct {
	be          tensor.Backend
	Gamma, Beta *tensor.Param
	Groups      int

	x, stats *tensor.Tensor // saved input (not owned) and per-(sample, group) mean, 1/std (owned)
}

func (b *builder) groupNorm(name string, groups, ch int) *GroupNorm {
	return &GroupNorm{be: b.be, Gamma: b.constant(name+".weight", 1, ch), Beta: b.constant(name+".bias", 0, ch), Groups: groups}
}

// Forward saves x and the statistics for Backward when train is set.
func (l *GroupNorm) Forward(x *tensor.Tensor, train bool) *tensor.Tensor {
	y, stats := l.be.GroupNorm(x, l.Gamma, l.Beta, l.Groups, GroupNormEps)
	if train {
		l.x, l.stats = x, stats
	} else {
		l.be.Release(stats)
	}
	return y
}

// Backward returns dx and accumulates dGamma, dBeta.
func (l *GroupNorm) Backward(dy *tensor.Tensor) *tensor.Tensor {
	dx := l.be.GroupNormBackward(dy, l.x, l.stats, l.Gamma, l.Beta, l.Groups)
	l.be.Release(l.stats)
	l.x, l.stats = nil, nil
	return dx
}

// reset frees what a training Forward saved when no Backward follows.
func (l *GroupNorm) reset() {
	release(l.be, l.stats)
	l.x, l.stats = nil, nil
}

// Params returns weight (gamma) and bias (beta), in state_dict order.
func (l *GroupNorm) Params() []*tensor.Param { return []*tensor.Param{l.Gamma, l.Beta} }

// Up is nearest-neighbour 2x upsampling followed by a 3x3 convolution (the Up module of
// bench/unet_s_torch.py, whose parameters are named "<name>.conv.*").
type Up struct {
	be   tensor.Backend
	Conv *Conv2d

	u *tensor.Tensor // the upsampled input (owned, saved for Conv's backward)
}

func (b *builder) up(name string, ch int) *Up {
	return &Up{be: b.be, Conv: b.conv(name+".conv", ch, ch, 3, 1, 1)}
}

// Forward is conv(upsample(x)).
func (l *Up) Forward(x *tensor.Tensor, train bool) *tensor.Tensor {
	u := l.be.Upsample2x(x)
	y := l.Conv.Forward(u, train)
	if train {
		l.u = u
	} else {
		l.be.Release(u)
	}
	return y
}

// Backward returns dx.
func (l *Up) Backward(dy *tensor.Tensor) *tensor.Tensor {
	du := l.Conv.Backward(dy)
	l.be.Release(l.u)
	l.u = nil
	dx := l.be.Upsample2xBackward(du)
	l.be.Release(du)
	return dx
}

func (l *Up) reset() {
	release(l.be, l.u)
	l.u, l.Conv.x = nil, nil
}

// Params returns the convolution's parameters.
func (l *Up) Params() []*tensor.Param { return l.Conv.Params() }

// release releases every non-nil tensor.
func release(be tensor.Backend, ts ...*tensor.Tensor) {
	for _, t := range ts {
		if t != nil {
			be.Release(t)
		}
	}
}

package nn

import (
	"fmt"
	"math"
	"runtime"
	"sync"

	"github.com/ddpm-go/ddpm/tensor"
)

// chunk is a slice [lo, hi) of parameter k's entries: the unit of work the optimizer and the EMA
// spread over goroutines.
type chunk struct{ k, lo, hi int }

const chunkSize = 1 << 15

func chunksOf(params []*tensor.Param) []chunk {
	var cs []chunk
	for k, p := range params {
		for lo := 0; lo < len(p.W); lo += chunkSize {
			cs = append(cs, chunk{k, lo, min(lo+chunkSize, len(p.W))})
		}
	}
	return cs
}

// parallel runs f over the chunks on up to threads goroutines (the backend is idle between steps, so
// the optimizer may use every core).
func parallel(threads int, cs []chunk, f func(chunk)) {
	if threads < 1 {
		threads = runtime.GOMAXPROCS(0)
	}
	threads = min(threads, len(cs))
	if threads <= 1 {
		for _, c := range cs {
			f(c)
		}
		return
	}
	var wg sync.WaitGroup
	for w := range threads {
		wg.Go(func() {
			for i := w; i < len(cs); i += threads {
				f(cs[i])
			}
		})
	}
	wg.Wait()
}

// AdamW is torch.optim.AdamW: Adam with the weight decay applied to the weights directly
// (decoupled, Loshchilov & Hutter) instead of added to the gradient. Per parameter entry, at step t:
//
//	w -= lr*wd*w
//	m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g^2
//	w -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)
//
// Arithmetic is float64 per entry; W, m and v are stored float32 (torch keeps them float32 too).
type AdamW struct {
	LR, Beta1, Beta2, Eps, WeightDecay float64
	// Threads is the number of goroutines Step uses; < 1 means GOMAXPROCS.
	Threads int

	params []*tensor.Param
	chunks []chunk
	m, v   []*tensor.Param // first and second moments, named like the parameters; G unused
	t      int             // steps taken
}

// NewAdamW returns AdamW over params with PyTorch's defaults: betas (0.9, 0.999), eps 1e-8, weight
// decay 0.01. Change the fields before stepping for other values; set LR before each Step for a
// schedule (WarmupLR).
func NewAdamW(params []*tensor.Param, lr float64) *AdamW {
	o := &AdamW{LR: lr, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.01, params: params, chunks: chunksOf(params)}
	for _, p := range params {
		o.m = append(o.m, &tensor.Param{Name: p.Name, Shape: p.Shape, W: make([]float32, len(p.W))})
		o.v = append(o.v, &tensor.Param{Name: p.Name, Shape: p.Shape, W: make([]float32, len(p.W))})
	}
	return o
}

// Step applies one update from the gradients in Param.G and bumps every parameter's Version.
func (o *AdamW) Step() {
	o.t++
	lr, b1, b2 := o.LR, o.Beta1, o.Beta2
	decay := 1 - lr*o.WeightDecay
	stepSize := lr / (1 - math.Pow(b1, float64(o.t)))
	invBC2 := 1 / math.Sqrt(1-math.Pow(b2, float64(o.t))) // multiplying by it saves a division per entry
	eps := o.Eps
	parallel(o.Threads, o.chunks, func(c chunk) {
		p := o.params[c.k]
		w, g, m, v := p.W[c.lo:c.hi], p.G[c.lo:c.hi], o.m[c.k].W[c.lo:c.hi], o.v[c.k].W[c.lo:c.hi]
		for i := range w {
			gi := float64(g[i])
			mi := b1*float64(m[i]) + (1-b1)*gi
			vi := b2*float64(v[i]) + (1-b2)*gi*gi
			m[i], v[i] = float32(mi), float32(vi)
			w[i] = float32(float64(w[i])*decay - stepSize*mi/(math.Sqrt(vi)*invBC2+eps))
		}
	})
	for _, p := range o.params {
		p.Version++
	}
}

// Steps is the number of steps taken (t in the bias corrections).
func (o *AdamW) Steps() int { return o.t }

// Moments returns the first and second moment arrays as parameters named like the model's, so a
// checkpoint can store them by name (checkpoint.SaveTraining) and load them back in place.
func (o *AdamW) Moments() (m, v []*tensor.Param) { return o.m, o.v }

// SetSteps restores the step count after loading the moments from a checkpoint.
func (o *AdamW) SetSteps(t int) error {
	if t < 0 {
		return fmt.Errorf("adamw: negative step count %d", t)
	}
	o.t = t
	return nil
}

// ClipGradNorm scales all gradients down so their global L2 norm is at most maxNorm (as
// torch.nn.utils.clip_grad_norm_, which divides by norm+1e-6) and returns the norm before
// clipping. A non-finite norm is returned without touching the gradients, so the caller can skip
// the step.
func ClipGradNorm(params []*tensor.Param, maxNorm float64) float64 {
	var ss float64
	for _, p := range params {
		for _, g := range p.G {
			ss += float64(g) * float64(g)
		}
	}
	norm := math.Sqrt(ss)
	if math.IsNaN(norm) || math.IsInf(norm, 0) {
		return norm
	}
	if c := maxNorm / (norm + 1e-6); c < 1 {
		for _, p := range params {
			for i := range p.G {
				p.G[i] = float32(float64(p.G[i]) * c)
			}
		}
	}
	return norm
}

// WarmupLR is the learning rate for step (1-based) under a linear warmup over warmup steps:
// base*step/warmup until it reaches base. warmup <= 0 means no warmup.
func WarmupLR(base float64, warmup, step int) float64 {
	if warmup <= 0 || step >= warmup {
		return base
	}
	return base * float64(max(step, 0)) / float64(warmup)
}

// CooldownLR is WarmupLR followed by a linear decay over the last cooldown of total steps: the
// warmup-stable-decay schedule (Hu et al. 2024, MiniCPM), which lets a constant-rate run be cooled
// down when it is stopped rather than when it is planned. Step total-cooldown+1 runs at base and the
// last step at base/cooldown, so no step is spent at a rate of zero. cooldown <= 0 means none.
func CooldownLR(base float64, warmup, cooldown, total, step int) float64 {
	lr := WarmupLR(base, warmup, step)
	if cooldown <= 0 || step <= total-cooldown {
		return lr
	}
	return lr * float64(max(total-step+1, 0)) / float64(cooldown)
}

// EMA keeps an exponential moving average of the weights, the copy DDPM samples from:
// shadow = decay*shadow + (1-decay)*w after every optimizer step.
type EMA struct {
	Decay float64
	// Threads is the number of goroutines Update uses; < 1 means GOMAXPROCS.
	Threads int

	chunks []chunk
	src    []*tensor.Param
	shadow []*tensor.Param
}

// NewEMA starts the average at the current weights.
func NewEMA(params []*tensor.Param, decay float64) *EMA {
	e := &EMA{Decay: decay, src: params, chunks: chunksOf(params)}
	for _, p := range params {
		e.shadow = append(e.shadow, &tensor.Param{Name: p.Name, Shape: p.Shape, W: append([]float32(nil), p.W...)})
	}
	return e
}

// Update folds the current weights into the average.
func (e *EMA) Update() {
	d := e.Decay
	parallel(e.Threads, e.chunks, func(c chunk) {
		s, w := e.shadow[c.k].W[c.lo:c.hi], e.src[c.k].W[c.lo:c.hi]
		for i := range s {
			s[i] = float32(d*float64(s[i]) + (1-d)*float64(w[i]))
		}
	})
	for _, s := range e.shadow {
		s.Version++
	}
}

// Params returns the averaged weights as parameters with the model's names (G is nil), for
// checkpoints and for CopyTo.
func (e *EMA) Params() []*tensor.Param { return e.shadow }

// CopyTo writes the averaged weights into params (a model of the same config, e.g. the one used for
// sampling) and bumps their Versions.
func (e *EMA) CopyTo(params []*tensor.Param) error {
	if len(params) != len(e.shadow) {
		return fmt.Errorf("ema: %d parameters, model has %d", len(e.shadow), len(params))
	}
	for k, p := range params {
		s := e.shadow[k]
		if p.Name != s.Name || len(p.W) != len(s.W) {
			return fmt.Errorf("ema: parameter %d is %s %v, model has %s %v", k, s.Name, s.Shape, p.Name, p.Shape)
		}
	}
	for k, p := range params {
		copy(p.W, e.shadow[k].W)
		p.Version++
	}
	return nil
}

package nn_test

import (
	"context"
	"math"
	"testing"

	"github.com/ddpm-go/ddpm/nn"
	"github.com/ddpm-go/ddpm/tensor"
)

// counting wraps a backend and tracks the tensors it hands out that are not yet released, so the
// tests can prove the network frees every intermediate (a leak would grow a fast backend's pool by
// megabytes per step) and measure the peak of live activation memory.
type counting struct {
	tensor.Backend
	live      map[*tensor.Tensor]int // elements
	cur, peak int
}

func newCounting(be tensor.Backend) *counting {
	return &counting{Backend: be, live: map[*tensor.Tensor]int{}}
}

func (c *counting) add(ts ...*tensor.Tensor) {
	for _, t := range ts {
		if _, dup := c.live[t]; dup {
			panic("tensor returned twice")
		}
		c.live[t] = t.Len()
		c.cur += t.Len()
	}
	c.peak = max(c.peak, c.cur)
}

func (c *counting) one(t *tensor.Tensor) *tensor.Tensor { c.add(t); return t }

func (c *counting) Release(t *tensor.Tensor) {
	n, ok := c.live[t]
	if !ok {
		panic("release of a tensor not live (double release or foreign tensor)")
	}
	delete(c.live, t)
	c.cur -= n
	c.Backend.Release(t)
}

func (c *counting) Upload(s []int, d []float32) *tensor.Tensor { return c.one(c.Backend.Upload(s, d)) }
func (c *counting) Conv2D(x *tensor.Tensor, w, b *tensor.Param, cv tensor.Conv) *tensor.Tensor {
	return c.one(c.Backend.Conv2D(x, w, b, cv))
}
func (c *counting) Conv2DBackward(dy, x *tensor.Tensor, w, b *tensor.Param, cv tensor.Conv) *tensor.Tensor {
	return c.one(c.Backend.Conv2DBackward(dy, x, w, b, cv))
}
func (c *counting) Linear(x *tensor.Tensor, w, b *tensor.Param) *tensor.Tensor {
	return c.one(c.Backend.Linear(x, w, b))
}
func (c *counting) LinearBackward(dy, x *tensor.Tensor, w, b *tensor.Param) *tensor.Tensor {
	return c.one(c.Backend.LinearBackward(dy, x, w, b))
}
func (c *counting) GroupNorm(x *tensor.Tensor, g, b *tensor.Param, groups int, eps float32) (y, s *tensor.Tensor) {
	y, s = c.Backend.GroupNorm(x, g, b, groups, eps)
	c.add(y, s)
	return y, s
}
func (c *counting) GroupNormBackward(dy, x, s *tensor.Tensor, g, b *tensor.Param, groups int) *tensor.Tensor {
	return c.one(c.Backend.GroupNormBackward(dy, x, s, g, b, groups))
}
func (c *counting) SiLU(x *tensor.Tensor) *tensor.Tensor { return c.one(c.Backend.SiLU(x)) }
func (c *counting) SiLUBackward(dy, x *tensor.Tensor) *tensor.Tensor {
	return c.one(c.Backend.SiLUBackward(dy, x))
}
func (c *counting) Add(a, b *tensor.Tensor) *tensor.Tensor { return c.one(c.Backend.Add(a, b)) }
func (c *counting) AddChannel(x, v *tensor.Tensor) *tensor.Tensor {
	return c.one(c.Backend.AddChannel(x, v))
}
func (c *counting) SumHW(x *tensor.Tensor) *tensor.Tensor     { return c.one(c.Backend.SumHW(x)) }
func (c *counting) Concat(a, b *tensor.Tensor) *tensor.Tensor { return c.one(c.Backend.Concat(a, b)) }
func (c *counting) ConcatBackward(dy *tensor.Tensor, ca int) (da, db *tensor.Tensor) {
	da, db = c.Backend.ConcatBackward(dy, ca)
	c.add(da, db)
	return da, db
}
func (c *counting) Upsample2x(x *tensor.Tensor) *tensor.Tensor { return c.one(c.Backend.Upsample2x(x)) }
func (c *counting) Upsample2xBackward(dy *tensor.Tensor) *tensor.Tensor {
	return c.one(c.Backend.Upsample2xBackward(dy))
}
func (c *counting) MSE(p, t *tensor.Tensor) (float64, *tensor.Tensor) {
	l, d := c.Backend.MSE(p, t)
	return l, c.one(d)
}
func (c *counting) Scale(x *tensor.Tensor, s float32) *tensor.Tensor {
	return c.one(c.Backend.Scale(x, s))
}
func (c *counting) Attention(q, k, v *tensor.Tensor, h int) (o, s *tensor.Tensor) {
	o, s = c.Backend.Attention(q, k, v, h)
	c.add(o, s)
	return o, s
}
func (c *counting) AttentionBackward(do, q, k, v, s *tensor.Tensor, h int) (dq, dk, dv *tensor.Tensor) {
	dq, dk, dv = c.Backend.AttentionBackward(do, q, k, v, s, h)
	c.add(dq, dk, dv)
	return dq, dk, dv
}
func (c *counting) Dropout(x *tensor.Tensor, p float32, seed uint64) (y, m *tensor.Tensor) {
	y, m = c.Backend.Dropout(x, p, seed)
	c.add(y, m)
	return y, m
}
func (c *counting) DropoutBackward(dy, m *tensor.Tensor) *tensor.Tensor {
	return c.one(c.Backend.DropoutBackward(dy, m))
}

// TestNoLeaks runs training steps and inference on the tiny config (attention, dropout, two blocks
// per level) and unet-s: afterwards only the caller's tensors may be live.
func TestNoLeaks(t *testing.T) {
	cs, _ := nn.Named("unet-s")
	for _, cfg := range []nn.Config{tiny, cs} {
		be := newCounting(tensor.NewReference(0))
		u, err := nn.New(cfg, be, 1)
		if err != nil {
			t.Fatal(err)
		}
		shape := []int{2, cfg.InChannels, cfg.ImageSize, cfg.ImageSize}
		n := tensor.Numel(shape)
		trainPeak := 0
		for range 2 {
			x := be.Upload(shape, tensor.RandN(shape, 1))
			target := be.Upload(shape, tensor.RandN(shape, 2))
			be.peak = be.cur
			eps, _ := u.Forward(x, []int{5, 500}, true)
			_, d := be.MSE(eps, target)
			dx, err := u.Backward(d)
			if err != nil {
				t.Fatal(err)
			}
			trainPeak = be.peak / 2
			if len(be.live) != 5 {
				t.Fatalf("%s: %d tensors live after a training step, want the caller's 5", cfg.Name, len(be.live))
			}
			for _, z := range []*tensor.Tensor{x, target, eps, d, dx} {
				be.Release(z)
			}
		}
		t.Logf("%s: training step peak of live activations %d floats per image (%.0f MiB at batch 128)",
			cfg.Name, trainPeak, float64(trainPeak)*128*4/(1<<20))
		// A training Forward without Backward is dropped by the next Forward.
		x := be.Upload(shape, tensor.RandN(shape, 1))
		eps, _ := u.Forward(x, []int{5, 500}, true)
		be.Release(eps)
		eps, _ = u.Forward(x, []int{5, 500}, false) // drops the training state
		be.Release(eps)
		be.peak, be.cur = 0, n
		eps, _ = u.Forward(x, []int{5, 500}, false)
		be.Release(eps)
		be.Release(x)
		if len(be.live) != 0 {
			t.Fatalf("%s: %d tensors live after inference", cfg.Name, len(be.live))
		}
		t.Logf("%s: inference peak of live activations %d floats per image (%.0f MiB at batch 256)",
			cfg.Name, be.peak/2, float64(be.peak/2)*256*4/(1<<20))
		out := make([]float64, n)
		u.MaxBatch = 1
		if err := u.Predict(context.Background(), make([]float64, n), 2, n/2, 3, out); err != nil {
			t.Fatal(err)
		}
		if len(be.live) != 0 {
			t.Fatalf("%s: %d tensors live after Predict", cfg.Name, len(be.live))
		}
	}
}

// TestPredict checks that Predict (host float64, split into pieces) equals Forward.
func TestPredict(t *testing.T) {
	be := tensor.NewReference(0)
	u, _ := nn.New(tiny, be, 2)
	shape := []int{3, 2, 8, 8}
	xs := tensor.RandN(shape, 4)
	x := be.Upload(shape, xs)
	eps, _ := u.Forward(x, []int{9, 9, 9}, false)
	want := be.Read(eps)
	x64 := make([]float64, len(xs))
	for i, v := range xs {
		x64[i] = float64(v)
	}
	out := make([]float64, len(xs))
	u.MaxBatch = 2
	if err := u.Predict(context.Background(), x64, 3, 128, 9, out); err != nil {
		t.Fatal(err)
	}
	for i := range want {
		if math.Abs(out[i]-float64(want[i])) > 1e-6 {
			t.Fatalf("out[%d] = %v, Forward %v", i, out[i], want[i])
		}
	}
	if err := u.Predict(context.Background(), x64, 3, 64, 9, out); err == nil {
		t.Error("want error for wrong dim")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := u.Predict(ctx, x64, 3, 128, 9, out); err == nil {
		t.Error("want error for cancelled context")
	}
}

//go:build cgo

package dnnl_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/ddpm-go/ddpm/nn"
	"github.com/ddpm-go/ddpm/tensor"
	"github.com/ddpm-go/ddpm/tensor/dnnl"
)

// trainBatch builds x_t = sqrt(abar_t) x0 + sqrt(1-abar_t) eps like the peer's train_step, with x0
// uniform in [-1,1], t uniform over 1000 steps of the linear schedule 1e-4..0.02.
func trainBatch(rng *rand.Rand, n int) (xt, eps []float32, t []int) {
	const T = 1000
	abar := make([]float64, T)
	a := 1.0
	for i := range abar {
		a *= 1 - (1e-4 + (0.02-1e-4)*float64(i)/(T-1))
		abar[i] = a
	}
	xt, eps, t = make([]float32, n*784), make([]float32, n*784), make([]int, n)
	for i := range n {
		t[i] = rng.IntN(T)
		s, q := math.Sqrt(abar[t[i]]), math.Sqrt(1-abar[t[i]])
		for j := range 784 {
			e := rng.NormFloat64()
			eps[i*784+j] = float32(e)
			xt[i*784+j] = float32(s*(2*rng.Float64()-1) + q*e)
		}
	}
	return
}

func trainStep(b *testing.B, be tensor.Backend, u *nn.UNet, opt *nn.AdamW, rng *rand.Rand, n int) {
	xt, eps, t := trainBatch(rng, n)
	shape := []int{n, 1, 28, 28}
	x, target := be.Upload(shape, xt), be.Upload(shape, eps)
	out, err := u.Forward(x, t, true)
	if err != nil {
		panic(err) // b.Fatal would end the worker goroutine this runs on
	}
	_, d := be.MSE(out, target)
	u.ZeroGrad()
	dx, err := u.Backward(d)
	if err != nil {
		panic(err) // b.Fatal would end the worker goroutine this runs on
	}
	opt.Step()
	for _, z := range []*tensor.Tensor{x, target, out, d, dx} {
		be.Release(z)
	}
}

func newUNet(b *testing.B, prec string, wrap bool) (tensor.Backend, *nn.UNet, *timed) {
	threads, _ := strconv.Atoi(os.Getenv("DDPM_BENCH_THREADS")) // 0 (unset): all cores
	be, err := dnnl.New(dnnl.Options{Precision: prec, Threads: threads})
	if err != nil {
		b.Fatal(err)
	}
	var tb *timed
	if wrap {
		tb = &timed{Backend: be, d: map[string]time.Duration{}}
		be = tb
	}
	cfg, err := nn.Named("unet-s")
	if err != nil {
		b.Fatal(err)
	}
	u, err := nn.New(cfg, be, 1)
	if err != nil {
		b.Fatal(err)
	}
	return be, u, tb
}

// BenchmarkUNetSTrain is one peer training step of UNet-S at batch 128 (eps MSE, AdamW).
// DDPM_PROFILE=1 prints the time per backend op; DDPM_BENCH_THREADS sets the thread count.
func BenchmarkUNetSTrain(b *testing.B) {
	for _, prec := range []string{"fp32", "bf16"} {
		b.Run(prec, func(b *testing.B) {
			be, u, tb := newUNet(b, prec, os.Getenv("DDPM_PROFILE") != "")
			defer be.(interface{ Close() error }).Close()
			opt := nn.NewAdamW(u.Params(), 2e-4)
			rng := rand.New(rand.NewPCG(1, 2))
			trainStep(b, be, u, opt, rng, 128)
			if tb != nil {
				clear(tb.d)
			}
			b.ResetTimer()
			do := be.(interface{ Do(func()) }).Do
			for range b.N {
				do(func() { trainStep(b, be, u, opt, rng, 128) })
			}
			b.ReportMetric(128*float64(b.N)/b.Elapsed().Seconds(), "img/s")
			if tb != nil {
				tb.report(b.N)
			}
		})
	}
}

// BenchmarkUNetSForward is one inference forward of UNet-S at batch 256 (the sampling cost).
func BenchmarkUNetSForward(b *testing.B) {
	for _, prec := range []string{"fp32", "bf16"} {
		b.Run(prec, func(b *testing.B) {
			be, u, tb := newUNet(b, prec, os.Getenv("DDPM_PROFILE") != "")
			defer be.(interface{ Close() error }).Close()
			n := 256
			rng := rand.New(rand.NewPCG(3, 4))
			xs := make([]float32, n*784)
			ts := make([]int, n)
			for i := range xs {
				xs[i] = float32(rng.NormFloat64())
			}
			for i := range ts {
				ts[i] = rng.IntN(1000)
			}
			x := be.Upload([]int{n, 1, 28, 28}, xs)
			run := func() {
				y, err := u.Forward(x, ts, false)
				if err != nil {
					panic(err) // runs on the worker goroutine, see trainStep
				}
				be.Release(y)
			}
			run()
			if tb != nil {
				clear(tb.d)
			}
			b.ResetTimer()
			do := be.(interface{ Do(func()) }).Do
			for range b.N {
				do(run)
			}
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "img/s")
			if tb != nil {
				tb.report(b.N)
			}
		})
	}
}

// timed wraps a backend and adds up the wall time of each op, to see what dominates a step.
type timed struct {
	tensor.Backend
	d map[string]time.Duration
}

func (t *timed) Do(f func()) { t.Backend.(interface{ Do(func()) }).Do(f) }

func (t *timed) Close() error { return t.Backend.(interface{ Close() error }).Close() }

func (t *timed) add(name string, t0 time.Time) { t.d[name] += time.Since(t0) }

func (t *timed) report(n int) {
	var names []string
	var total time.Duration
	for k, v := range t.d {
		names = append(names, k)
		total += v
	}
	sort.Slice(names, func(i, j int) bool { return t.d[names[i]] > t.d[names[j]] })
	fmt.Printf("per step: ops %.1f ms\n", float64(total.Microseconds())/1e3/float64(n))
	for _, k := range names {
		fmt.Printf("  %-22s %7.2f ms\n", k, float64(t.d[k].Microseconds())/1e3/float64(n))
	}
}

func convName(op string, x *tensor.Tensor, w *tensor.Param, c tensor.Conv) string {
	return fmt.Sprintf("%s %dx%d %d->%d k%ds%d", op, x.Shape[2], x.Shape[3], w.Shape[1], w.Shape[0], w.Shape[2], c.Stride)
}

func (t *timed) Conv2D(x *tensor.Tensor, w, b *tensor.Param, c tensor.Conv) *tensor.Tensor {
	defer t.add(convName("conv", x, w, c), time.Now())
	return t.Backend.Conv2D(x, w, b, c)
}
func (t *timed) Conv2DBackward(dy, x *tensor.Tensor, w, b *tensor.Param, c tensor.Conv) *tensor.Tensor {
	defer t.add(convName("convB", x, w, c), time.Now())
	return t.Backend.Conv2DBackward(dy, x, w, b, c)
}
func (t *timed) Linear(x *tensor.Tensor, w, b *tensor.Param) *tensor.Tensor {
	defer t.add("Linear", time.Now())
	return t.Backend.Linear(x, w, b)
}
func (t *timed) LinearBackward(dy, x *tensor.Tensor, w, b *tensor.Param) *tensor.Tensor {
	defer t.add("LinearBackward", time.Now())
	return t.Backend.LinearBackward(dy, x, w, b)
}
func (t *timed) GroupNorm(x *tensor.Tensor, g, b *tensor.Param, groups int, eps float32) (*tensor.Tensor, *tensor.Tensor) {
	defer t.add("GroupNorm", time.Now())
	return t.Backend.GroupNorm(x, g, b, groups, eps)
}
func (t *timed) GroupNormBackward(dy, x, s *tensor.Tensor, g, b *tensor.Param, groups int) *tensor.Tensor {
	defer t.add("GroupNormBackward", time.Now())
	return t.Backend.GroupNormBackward(dy, x, s, g, b, groups)
}
func (t *timed) SiLU(x *tensor.Tensor) *tensor.Tensor {
	defer t.add("SiLU", time.Now())
	return t.Backend.SiLU(x)
}
func (t *timed) SiLUBackward(dy, x *tensor.Tensor) *tensor.Tensor {
	defer t.add("SiLUBackward", time.Now())
	return t.Backend.SiLUBackward(dy, x)
}
func (t *timed) Add(a, b *tensor.Tensor) *tensor.Tensor {
	defer t.add("Add", time.Now())
	return t.Backend.Add(a, b)
}
func (t *timed) AddChannel(x, v *tensor.Tensor) *tensor.Tensor {
	defer t.add("AddChannel", time.Now())
	return t.Backend.AddChannel(x, v)
}
func (t *timed) SumHW(x *tensor.Tensor) *tensor.Tensor {
	defer t.add("SumHW", time.Now())
	return t.Backend.SumHW(x)
}
func (t *timed) Concat(a, b *tensor.Tensor) *tensor.Tensor {
	defer t.add("Concat", time.Now())
	return t.Backend.Concat(a, b)
}
func (t *timed) ConcatBackward(dy *tensor.Tensor, ca int) (*tensor.Tensor, *tensor.Tensor) {
	defer t.add("ConcatBackward", time.Now())
	return t.Backend.ConcatBackward(dy, ca)
}
func (t *timed) Upsample2x(x *tensor.Tensor) *tensor.Tensor {
	defer t.add("Upsample2x", time.Now())
	return t.Backend.Upsample2x(x)
}
func (t *timed) Upsample2xBackward(dy *tensor.Tensor) *tensor.Tensor {
	defer t.add("Upsample2xBackward", time.Now())
	return t.Backend.Upsample2xBackward(dy)
}
func (t *timed) MSE(p, q *tensor.Tensor) (float64, *tensor.Tensor) {
	defer t.add("MSE", time.Now())
	return t.Backend.MSE(p, q)
}
func (t *timed) Upload(s []int, d []float32) *tensor.Tensor {
	defer t.add("Upload", time.Now())
	return t.Backend.Upload(s, d)
}
func (t *timed) Release(x *tensor.Tensor) {
	defer t.add("Release", time.Now())
	t.Backend.Release(x)
}

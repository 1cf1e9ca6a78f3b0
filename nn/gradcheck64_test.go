package nn_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/ddpm-go/ddpm/nn"
	"github.com/ddpm-go/ddpm/tensor"
)

// ref64 is the float64 side of tensor.NewReference64: activations read and written without rounding.
type ref64 interface {
	Read64(*tensor.Tensor) []float64
	Upload64([]int, []float64) *tensor.Tensor
}

// TestUNetGradCheck64 is the float64 twin of TestUNetGradCheck: the tiny config (attention, dropout,
// two blocks per level) runs on tensor.NewReference64, so the loss L = sum(eps * r) carries about 15
// significant digits and central differences are limited only by their O(h^2) truncation. Weights
// are float32, so each perturbed weight is stored as float32 and the step actually taken is read back
// from it. Every parameter tensor is probed at its largest-gradient entry and at a random one, plus
// eight input pixels; the tolerance is |fd - grad| <= 1e-5*|grad| + 1e-7*s (s the largest gradient
// entry), three orders tighter than the float32 check; Param.G itself is float32 (relative 6e-8).
func TestUNetGradCheck64(t *testing.T) {
	be := tensor.NewReference64(0)
	b64, ok := be.(ref64)
	if !ok {
		t.Fatal("NewReference64 does not offer Read64/Upload64")
	}
	u, err := nn.New(tiny, be, 3)
	if err != nil {
		t.Fatal(err)
	}
	const n = 2
	shape := []int{n, tiny.InChannels, tiny.ImageSize, tiny.ImageSize}
	ts := []int{3, 700}
	x := make([]float64, tensor.Numel(shape))
	for i, v := range tensor.RandN(shape, 1) {
		x[i] = float64(v)
	}
	r := make([]float64, len(x))
	for i, v := range tensor.RandN(shape, 2) {
		r[i] = float64(v)
	}
	const seed = 11
	eval := func() float64 {
		u.DropoutSeed = seed
		xt := b64.Upload64(shape, x)
		eps, err := u.Forward(xt, ts, true)
		if err != nil {
			t.Fatal(err)
		}
		var s float64
		for i, v := range b64.Read64(eps) {
			s += v * r[i]
		}
		be.Release(eps)
		be.Release(xt)
		return s
	}

	// Analytic gradients.
	u.DropoutSeed = seed
	xt := b64.Upload64(shape, x)
	eps, err := u.Forward(xt, ts, true)
	if err != nil {
		t.Fatal(err)
	}
	u.ZeroGrad()
	dxT, err := u.Backward(b64.Upload64(eps.Shape, r))
	if err != nil {
		t.Fatal(err)
	}
	dx := b64.Read64(dxT)
	g := map[*tensor.Param][]float32{}
	scale := 0.0
	for _, p := range u.Params() {
		g[p] = append([]float32(nil), p.G...)
		for _, v := range p.G {
			scale = math.Max(scale, math.Abs(float64(v)))
		}
	}

	worst, checked := 0.0, 0
	report := func(what string, fd, an float64) {
		checked++
		tol := 1e-5*math.Abs(an) + 1e-7*scale
		worst = math.Max(worst, math.Abs(fd-an)/tol)
		if math.Abs(fd-an) > tol {
			t.Errorf("%s: finite difference %.10g, backward %.10g", what, fd, an)
		}
	}
	const h = 1.0 / 4096
	rng := rand.New(rand.NewPCG(5, 0))
	for _, p := range u.Params() {
		big := 0
		for j, v := range g[p] {
			if math.Abs(float64(v)) > math.Abs(float64(g[p][big])) {
				big = j
			}
		}
		for _, i := range []int{big, rng.IntN(len(p.W))} {
			old := p.W[i]
			p.W[i] = old + h
			up := float64(p.W[i]) - float64(old)
			p.Version++
			lp := eval()
			p.W[i] = old - h
			down := float64(old) - float64(p.W[i])
			p.Version++
			lm := eval()
			p.W[i] = old
			p.Version++
			report(p.Name, (lp-lm)/(up+down), float64(g[p][i]))
		}
	}
	for range 8 {
		i := rng.IntN(len(x))
		old := x[i]
		x[i] = old + h
		lp := eval()
		x[i] = old - h
		lm := eval()
		x[i] = old
		report("input", (lp-lm)/(2*h), dx[i])
	}
	t.Logf("%d entries: worst error %.3f of tolerance (gradient scale %.3g)", checked, worst, scale)
}

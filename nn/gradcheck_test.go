package nn_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/ddpm-go/ddpm/nn"
	"github.com/ddpm-go/ddpm/tensor"
)

// tiny is a small UNet with every feature on: two levels, two blocks per level, attention at 4x4
// (so also in the middle), two heads, dropout, channel changes on both paths.
var tiny = nn.Config{
	Name: "tiny", ImageSize: 8, InChannels: 2, OutChannels: 2, BaseChannels: 8, ChannelMult: []int{1, 2},
	ResBlocks: 2, AttnResolutions: []int{4}, Heads: 2, Dropout: 0.2, TimeEmbedDim: 16, SinusoidalDim: 8, Groups: 4,
}

// lossFn is L = sum(eps * r) in float64 for a fixed random r, whose gradient wrt eps is r itself; the
// dropout seed is reset so every evaluation drops the same units.
type lossFn struct {
	u    *nn.UNet
	be   tensor.Backend
	x    []float32
	ts   []int
	r    []float32
	seed uint64
}

func (l *lossFn) eval(t *testing.T) float64 {
	l.u.DropoutSeed = l.seed
	x := l.be.Upload([]int{len(l.ts), l.u.Cfg.InChannels, l.u.Cfg.ImageSize, l.u.Cfg.ImageSize}, l.x)
	eps, err := l.u.Forward(x, l.ts, true)
	if err != nil {
		t.Fatal(err)
	}
	var s float64
	for i, v := range l.be.Read(eps) {
		s += float64(v) * float64(l.r[i])
	}
	l.be.Release(eps)
	l.be.Release(x)
	return s
}

// grads runs forward and backward once, returning dL/dx and leaving dL/dW in Param.G.
func (l *lossFn) grads(t *testing.T) []float32 {
	l.u.DropoutSeed = l.seed
	x := l.be.Upload([]int{len(l.ts), l.u.Cfg.InChannels, l.u.Cfg.ImageSize, l.u.Cfg.ImageSize}, l.x)
	eps, err := l.u.Forward(x, l.ts, true)
	if err != nil {
		t.Fatal(err)
	}
	l.u.ZeroGrad()
	dx, err := l.u.Backward(l.be.Upload(eps.Shape, l.r))
	if err != nil {
		t.Fatal(err)
	}
	return l.be.Read(dx)
}

// TestUNetGradCheck compares Backward with central finite differences of the float32 network for
// the tiny config (dropout masks held fixed):
//   - one entry of every parameter tensor (time MLP, convs, group norms, attention q/k/v/proj_out,
//     skips, up/downsampling) and eight input pixels, step 1e-2, tolerance
//     |fd - grad| <= 1e-2*|grad| + 2e-4*s with s the largest gradient entry (float32 rounding of L
//     is about 1e-6, so about 1e-4 after dividing by the step);
//   - a random direction through all parameters at once, step 2e-4, tolerance 2e-3 relative.
func TestUNetGradCheck(t *testing.T) {
	be := tensor.NewReference(0)
	u, err := nn.New(tiny, be, 3)
	if err != nil {
		t.Fatal(err)
	}
	n := 2
	l := &lossFn{u: u, be: be, ts: []int{3, 700}, seed: 11,
		x: tensor.RandN([]int{n, 2, 8, 8}, 1), r: tensor.RandN([]int{n, 2, 8, 8}, 2)}
	dx := l.grads(t)
	g := map[*tensor.Param][]float32{}
	scale := 0.0
	for _, p := range u.Params() {
		g[p] = append([]float32(nil), p.G...)
		for _, v := range p.G {
			scale = math.Max(scale, math.Abs(float64(v)))
		}
	}
	const h = 1e-2
	worst := 0.0 // largest |fd-grad| as a fraction of its tolerance
	check := func(what string, w []float32, i int, an float64) {
		old := w[i]
		w[i] = old + h
		lp := l.eval(t)
		w[i] = old - h
		lm := l.eval(t)
		w[i] = old
		fd := (lp - lm) / (2 * h)
		worst = math.Max(worst, math.Abs(fd-an)/(1e-2*math.Abs(an)+2e-4*scale))
		if math.Abs(fd-an) > 1e-2*math.Abs(an)+2e-4*scale {
			t.Errorf("%s: finite difference %.6g, backward %.6g", what, fd, an)
		}
	}
	rng := rand.New(rand.NewPCG(5, 0))
	for _, p := range u.Params() {
		// Pick the entry with the largest gradient half the time, a random one otherwise.
		i := rng.IntN(len(p.W))
		if rng.IntN(2) == 0 {
			for j, v := range g[p] {
				if math.Abs(float64(v)) > math.Abs(float64(g[p][i])) {
					i = j
				}
			}
		}
		check(p.Name, p.W, i, float64(g[p][i]))
		p.Version++
	}
	for range 8 {
		i := rng.IntN(len(l.x))
		check("input", l.x, i, float64(dx[i]))
	}

	// Directional derivative along a random direction d through every parameter.
	var dot float64
	ds := map[*tensor.Param][]float32{}
	for k, p := range u.Params() {
		ds[p] = tensor.RandN(p.Shape, uint64(100+k))
		for i, v := range ds[p] {
			dot += float64(v) * float64(g[p][i])
		}
	}
	move := func(s float32) {
		for _, p := range u.Params() {
			for i, v := range ds[p] {
				p.W[i] += s * v
			}
			p.Version++
		}
	}
	const hd = 2e-4
	move(hd)
	lp := l.eval(t)
	move(-2 * hd)
	lm := l.eval(t)
	move(hd)
	fd := (lp - lm) / (2 * hd)
	if math.Abs(fd-dot) > 2e-3*math.Abs(dot) {
		t.Errorf("directional derivative: finite difference %.6g, backward %.6g", fd, dot)
	}
	t.Logf("%d entries: worst error %.2f of tolerance (gradient scale %.3g)", len(u.Params())+8, worst, scale)
	t.Logf("directional: fd %.6g backward %.6g (rel %.2g)", fd, dot, math.Abs(fd-dot)/math.Abs(dot))
}

// TestInferenceForward checks that sampling mode gives the training-mode output when dropout is off,
// leaves the input alive, and that dropout changes the training output.
func TestInferenceForward(t *testing.T) {
	be := tensor.NewReference(0)
	cfg := tiny
	cfg.Dropout = 0
	u, _ := nn.New(cfg, be, 4)
	x := be.Upload([]int{3, 2, 8, 8}, tensor.RandN([]int{3, 2, 8, 8}, 9))
	ts := []int{0, 1, 999}
	a, err := u.Forward(x, ts, false)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := u.Forward(x, ts, true)
	if e := relErr(be.Read(a), be.Read(b)); e != 0 {
		t.Errorf("inference and training forward differ by %g", e)
	}
	if len(be.Read(x)) != 3*2*8*8 {
		t.Fatal("input damaged")
	}
	ud, _ := nn.New(tiny, be, 4)
	c, _ := ud.Forward(x, ts, false)
	d, _ := ud.Forward(x, ts, true)
	if relErr(be.Read(c), be.Read(a)) != 0 {
		t.Error("same seed, different weights")
	}
	if relErr(be.Read(d), be.Read(c)) == 0 {
		t.Error("dropout did not change the training forward")
	}
	if _, err := u.Forward(x, []int{1}, false); err == nil {
		t.Error("want error for batch/timestep mismatch")
	}
	if _, err := u.Backward(a); err != nil {
		// The last Forward was a training one: Backward must work once...
		t.Fatal(err)
	}
	if _, err := u.Backward(a); err == nil {
		t.Error("...and fail the second time")
	}
}

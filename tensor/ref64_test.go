package tensor

import (
	"math"
	"slices"
	"testing"
)

// TestReference64MatchesKernels: the float64 backend is the float64 kernels behind the Backend
// interface, bit for bit, with float32 weights widened exactly.
func TestReference64MatchesKernels(t *testing.T) {
	be := NewReference64(2).(*Reference[float64])
	if be.Name() != "ref64" || be.Precision() != FP64 {
		t.Fatalf("name %q precision %v", be.Name(), be.Precision())
	}
	s := convShape{N: 2, Cin: 3, H: 7, W: 7, Cout: 5, K: 3, Stride: 2, Pad: 1, Ho: 4, Wo: 4}
	x := f64(RandN([]int{2, 3, 7, 7}, 1))
	w := RandParam("w", 0.3, 2, 5, 3, 3, 3)
	b := RandParam("b", 1, 3, 5)
	want := make([]float64, 2*5*4*4)
	conv2dForward(s, x, f64(w.W), f64(b.W), want, 1)
	X := be.Upload64([]int{2, 3, 7, 7}, x)
	got := be.Read64(be.Conv2D(X, w, b, Conv{Stride: 2, Pad: 1}))
	if !slices.Equal(got, want) {
		t.Fatalf("ref64 conv differs from the float64 kernel")
	}
	if X.Data != nil {
		t.Errorf("ref64 tensors must not expose float32 Data")
	}
	be.Release(X)
	defer func() {
		if recover() == nil {
			t.Errorf("reading a released tensor did not panic")
		}
	}()
	be.Read(X)
}

// miniNet is a tiny UNet-shaped chain through every Backend op, with its backward written out by
// hand from the documented contracts (Add's backward is the identity, AddChannel's is SumHW,
// Concat's is ConcatBackward, Scale's is Scale):
//
//	h1 = Conv3x3(x) ; h = SiLU(GroupNorm(h1)) + Linear(SiLU(e)) per channel
//	d = Conv3x3/2(h) ; a = d + Conv1x1_o(Attention(Conv1x1_q(d), Conv1x1_k(d), Conv1x1_v(d)))
//	u = Upsample2x(Dropout(a)) ; y = Scale(Conv1x1(Concat(u, h1)), 0.5) ; L = MSE(y, target)
type miniNet struct {
	be                            Backend
	c1, gn, gb, lin, lb, c2       *Param
	q, k, v, o, c3, c1b, c2b, c3b *Param
}

func newMiniNet(be Backend) *miniNet {
	return &miniNet{be: be,
		c1: RandParam("c1", 0.3, 1, 6, 2, 3, 3), c1b: RandParam("c1b", 0.1, 2, 6),
		gn: RandParam("gn", 1, 3, 6), gb: RandParam("gb", 0.5, 4, 6),
		lin: RandParam("lin", 0.4, 5, 6, 4), lb: RandParam("lb", 0.1, 6, 6),
		c2: RandParam("c2", 0.3, 7, 6, 6, 3, 3), c2b: RandParam("c2b", 0.1, 8, 6),
		q: RandParam("q", 0.5, 9, 6, 6, 1, 1), k: RandParam("k", 0.5, 10, 6, 6, 1, 1),
		v: RandParam("v", 0.5, 11, 6, 6, 1, 1), o: RandParam("o", 0.5, 12, 6, 6, 1, 1),
		c3: RandParam("c3", 0.3, 13, 2, 12, 1, 1), c3b: RandParam("c3b", 0.1, 14, 2),
	}
}

func (m *miniNet) params() []*Param {
	return []*Param{m.c1, m.c1b, m.gn, m.gb, m.lin, m.lb, m.c2, m.c2b, m.q, m.k, m.v, m.o, m.c3, m.c3b}
}

// lossAndGrads runs forward and (when grad) backward; it returns L and dL/dx, dL/de.
func (m *miniNet) lossAndGrads(x, e, target *Tensor, grad bool) (float64, *Tensor, *Tensor) {
	be := m.be
	s1, s2, one := Conv{Stride: 1, Pad: 1}, Conv{Stride: 2, Pad: 1}, Conv{Stride: 1}
	h1 := be.Conv2D(x, m.c1, m.c1b, s1)
	g, st := be.GroupNorm(h1, m.gn, m.gb, 3, 1e-5)
	sg := be.SiLU(g)
	se := be.SiLU(e)
	te := be.Linear(se, m.lin, m.lb)
	h := be.AddChannel(sg, te)
	d := be.Conv2D(h, m.c2, m.c2b, s2)
	q, k, v := be.Conv2D(d, m.q, nil, one), be.Conv2D(d, m.k, nil, one), be.Conv2D(d, m.v, nil, one)
	att, saved := be.Attention(q, k, v, 2)
	ao := be.Conv2D(att, m.o, nil, one)
	a := be.Add(d, ao)
	dr, mask := be.Dropout(a, 0.3, 5)
	u := be.Upsample2x(dr)
	cat := be.Concat(u, h1)
	y0 := be.Conv2D(cat, m.c3, m.c3b, one)
	y := be.Scale(y0, 0.5)
	loss, dy := be.MSE(y, target)
	if !grad {
		return loss, nil, nil
	}
	dy0 := be.Scale(dy, 0.5)
	dcat := be.Conv2DBackward(dy0, cat, m.c3, m.c3b, one)
	du, dh1a := be.ConcatBackward(dcat, 6)
	ddr := be.Upsample2xBackward(du)
	da := be.DropoutBackward(ddr, mask)
	datt := be.Conv2DBackward(da, att, m.o, nil, one)
	dq, dk, dv := be.AttentionBackward(datt, q, k, v, saved, 2)
	dd := be.Add(da, be.Add(be.Conv2DBackward(dq, d, m.q, nil, one),
		be.Add(be.Conv2DBackward(dk, d, m.k, nil, one), be.Conv2DBackward(dv, d, m.v, nil, one))))
	dh := be.Conv2DBackward(dd, h, m.c2, m.c2b, s2)
	dte := be.SumHW(dh)
	dse := be.LinearBackward(dte, se, m.lin, m.lb)
	de := be.SiLUBackward(dse, e)
	dg := be.SiLUBackward(dh, g)
	dh1 := be.Add(dh1a, be.GroupNormBackward(dg, h1, st, m.gn, m.gb, 3))
	dx := be.Conv2DBackward(dh1, x, m.c1, m.c1b, s1)
	return loss, dx, de
}

// TestMiniNetGradients64 checks the gradient of a whole small network, every op of the interface
// in it, in float64 through NewReference64: inputs are perturbed in float64 (step 1e-5), weights
// (stored as float32) by 2^-16 with the difference quotient taken over the float32-rounded
// perturbation actually applied. Tolerance 1e-6 relative to max(|grad|, 1e-2 * the largest
// gradient of that array): the float32 rounding of Param.G is 6e-8 and the finite-difference
// error is below 1e-8.
func TestMiniNetGradients64(t *testing.T) {
	be := NewReference64(2).(*Reference[float64])
	m := newMiniNet(be)
	xs, es, ys := []int{2, 2, 6, 6}, []int{2, 4}, []int{2, 2, 6, 6}
	x, e := f64(RandN(xs, 20)), f64(RandN(es, 21))
	target := be.Upload(ys, RandN(ys, 22))
	for _, p := range m.params() {
		clear(p.G)
	}
	_, DX, DE := m.lossAndGrads(be.Upload64(xs, x), be.Upload64(es, e), target, true)
	dx, de := be.Read64(DX), be.Read64(DE)
	loss := func() float64 {
		l, _, _ := m.lossAndGrads(be.Upload64(xs, x), be.Upload64(es, e), target, false)
		return l
	}
	check := func(name string, i int, got, num float64, scale float64) {
		t.Helper()
		if math.Abs(got-num) > 1e-6*math.Max(math.Abs(got), 1e-2*scale) {
			t.Errorf("%s[%d]: backward %.10g, finite difference %.10g", name, i, got, num)
		}
	}
	maxAbs := func(g []float64) float64 {
		s := 0.0
		for _, v := range g {
			s = math.Max(s, math.Abs(v))
		}
		return s
	}
	for _, in := range []struct {
		name    string
		x, grad []float64
	}{{"x", x, dx}, {"e", e, de}} {
		for i := range in.x {
			orig := in.x[i]
			in.x[i] = orig + 1e-5
			lp := loss()
			in.x[i] = orig - 1e-5
			lm := loss()
			in.x[i] = orig
			check(in.name, i, in.grad[i], (lp-lm)/2e-5, maxAbs(in.grad))
		}
	}
	const h = 1.0 / 65536
	for _, p := range m.params() {
		g := f64(p.G)
		for i := 0; i < len(p.W); i += max(1, len(p.W)/12) {
			orig := p.W[i]
			p.W[i] = orig + h
			wp := float64(p.W[i])
			lp := loss()
			p.W[i] = orig - h
			wm := float64(p.W[i])
			lm := loss()
			p.W[i] = orig
			check(p.Name, i, g[i], (lp-lm)/(wp-wm), maxAbs(g))
		}
	}
}

// TestMiniNetFloat32 runs the same network on the float32 backend and requires its loss and
// gradients to match the float64 backend's to float32 accuracy.
func TestMiniNetFloat32(t *testing.T) {
	xs, es, ys := []int{2, 2, 6, 6}, []int{2, 4}, []int{2, 2, 6, 6}
	x, e, tg := RandN(xs, 20), RandN(es, 21), RandN(ys, 22)
	run := func(be Backend) (float64, []float64, [][]float32) {
		m := newMiniNet(be)
		l, dx, _ := m.lossAndGrads(be.Upload(xs, x), be.Upload(es, e), be.Upload(ys, tg), true)
		var gs [][]float32
		for _, p := range m.params() {
			gs = append(gs, p.G)
		}
		return l, f64(be.Read(dx)), gs
	}
	l64, dx64, g64 := run(NewReference64(1))
	l32, dx32, g32 := run(NewReference(3))
	if math.Abs(l32-l64) > 1e-5*l64 {
		t.Errorf("loss float32 %v, float64 %v", l32, l64)
	}
	compare32(t, "mininet dx", toF32(dx32), dx64)
	for i := range g64 {
		compare32(t, "mininet param grad", g32[i], f64(g64[i]))
	}
}

func toF32(x []float64) []float32 {
	out := make([]float32, len(x))
	for i, v := range x {
		out[i] = float32(v)
	}
	return out
}

package tensor

// Gradient checks for every op, genuinely in float64. Every kernel is generic over Float
// (kernels.go, attention.go, elementwise.go), so each test
//  1. runs the float64 instantiation and checks its backward against central finite differences
//     of the scalar L = <r, f(inputs)> for a fixed random r, with step h = 1e-5: in float64 the
//     difference quotient is good to about 1e-10, so the stated tolerance (1e-7 relative) leaves
//     no room for a wrong formula;
//  2. runs the Reference backend (the float32 instantiation, through the Backend methods, with
//     Param.G accumulation) on the same float32 inputs and compares its outputs and gradients with
//     the float64 ones at float32 tolerance (1e-4 of the array's largest magnitude).

import (
	"fmt"
	"math"
	"testing"
)

const (
	fdStep = 1e-5
	fdTol  = 1e-7
	f32Tol = 1e-4
)

func f64(x []float32) []float64 {
	if x == nil {
		return nil
	}
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = float64(v)
	}
	return out
}

func dot(a, b []float64) float64 {
	var s float64
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

func scaled(x []float32, s float32) []float32 {
	out := make([]float32, len(x))
	for i, v := range x {
		out[i] = s * v
	}
	return out
}

// fdInput is one input array of a loss and the analytic gradient of the loss with respect to it.
type fdInput struct {
	name    string
	x, grad []float64
}

// fdCheck compares each analytic gradient with the central difference of loss, perturbing at most
// about 150 elements per input (evenly spread) to keep the test fast.
func fdCheck(t *testing.T, op string, loss func() float64, inputs ...fdInput) {
	t.Helper()
	for _, in := range inputs {
		if in.x == nil {
			continue
		}
		if len(in.grad) != len(in.x) {
			t.Fatalf("%s: d%s has %d elements, want %d", op, in.name, len(in.grad), len(in.x))
		}
		step := max(1, len(in.x)/150)
		for i := 0; i < len(in.x); i += step {
			orig := in.x[i]
			in.x[i] = orig + fdStep
			lp := loss()
			in.x[i] = orig - fdStep
			lm := loss()
			in.x[i] = orig
			num := (lp - lm) / (2 * fdStep)
			if math.Abs(num-in.grad[i]) > fdTol*math.Max(1, math.Abs(num)) {
				t.Fatalf("%s: d%s[%d] = %.12g, finite difference %.12g", op, in.name, i, in.grad[i], num)
			}
		}
	}
}

// compare32 checks a float32 result against its float64 twin at float32 tolerance.
func compare32(t *testing.T, what string, got []float32, want []float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	scale := 1e-30
	for _, v := range want {
		scale = math.Max(scale, math.Abs(v))
	}
	for i := range got {
		if d := math.Abs(float64(got[i]) - want[i]); d > f32Tol*scale || math.IsNaN(d) {
			t.Fatalf("%s[%d] = %v, float64 kernel %v (scale %v)", what, i, got[i], want[i], scale)
		}
	}
}

func paramFrom(name string, w []float32, shape ...int) *Param {
	p := NewParam(name, shape...)
	copy(p.W, w)
	return p
}

func times(x []float64, s float64) []float64 {
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = s * v
	}
	return out
}

func TestConvGradients(t *testing.T) {
	cases := []struct {
		name                  string
		n, cin, h, w, cout, k int
		c                     Conv
		bias                  bool
	}{
		{"3x3 s1 bias", 2, 3, 5, 6, 5, 3, Conv{1, 1}, true},
		{"3x3 s1 nobias", 1, 4, 4, 4, 3, 3, Conv{1, 1}, false},
		{"3x3 s2 7to4 bias", 2, 3, 7, 7, 5, 3, Conv{2, 1}, true},
		{"3x3 s2 8to4 nobias", 1, 5, 8, 8, 3, 3, Conv{2, 1}, false},
		{"3x3 s1 17ch", 1, 17, 3, 3, 18, 3, Conv{1, 1}, true},
		{"1x1 bias", 2, 7, 3, 5, 5, 1, Conv{1, 0}, true},
		{"1x1 nobias", 1, 17, 2, 2, 3, 1, Conv{1, 0}, false},
		{"3x3 image 1x2", 2, 2, 1, 2, 3, 3, Conv{1, 1}, true},
		{"3x3 no padding", 1, 3, 6, 5, 2, 3, Conv{1, 0}, true},
		{"5x5 s3 pad2", 1, 2, 6, 7, 3, 5, Conv{3, 2}, false},
	}
	for ci, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.c
			s := convShape{N: tc.n, Cin: tc.cin, H: tc.h, W: tc.w, Cout: tc.cout, K: tc.k, Stride: c.Stride, Pad: c.Pad,
				Ho: c.OutSize(tc.h, tc.k), Wo: c.OutSize(tc.w, tc.k)}
			seed := uint64(10 * ci)
			xs, ws, ys := []int{s.N, s.Cin, s.H, s.W}, []int{s.Cout, s.Cin, s.K, s.K}, []int{s.N, s.Cout, s.Ho, s.Wo}
			x32, w32, r32 := RandN(xs, seed), scaled(RandN(ws, seed+1), 0.3), RandN(ys, seed+2)
			var b32 []float32
			if tc.bias {
				b32 = RandN([]int{s.Cout}, seed+3)
			}
			x, w, b, r := f64(x32), f64(w32), f64(b32), f64(r32)
			y := make([]float64, Numel(ys))
			loss := func() float64 { conv2dForward(s, x, w, b, y, 2); return dot(r, y) }
			loss()
			y64 := append([]float64(nil), y...)
			dx, dw := make([]float64, len(x)), make([]float64, len(w))
			var db []float64
			if tc.bias {
				db = make([]float64, s.Cout)
			}
			conv2dBackward(s, r, x, w, dx, dw, db, 2)
			fdCheck(t, "conv "+tc.name, loss, fdInput{"x", x, dx}, fdInput{"w", w, dw}, fdInput{"b", b, db})

			be := NewReference(2)
			X := be.Upload(xs, x32)
			W := paramFrom("w", w32, ws...)
			var B *Param
			if tc.bias {
				B = paramFrom("b", b32, s.Cout)
			}
			compare32(t, "Conv2D y", be.Read(be.Conv2D(X, W, B, c)), y64)
			DX := be.Conv2DBackward(be.Upload(ys, r32), X, W, B, c)
			compare32(t, "Conv2D dx", be.Read(DX), dx)
			compare32(t, "Conv2D dw", W.G, dw)
			// A second backward accumulates into the parameter gradients.
			be.Conv2DBackward(be.Upload(ys, r32), X, W, B, c)
			compare32(t, "Conv2D dw twice", W.G, times(dw, 2))
			if tc.bias {
				compare32(t, "Conv2D db twice", B.G, times(db, 2))
			}
		})
	}
}

func TestLinearGradients(t *testing.T) {
	for ci, tc := range []struct {
		n, in, out int
		bias       bool
	}{{3, 5, 4, true}, {1, 17, 9, false}, {4, 64, 3, true}} {
		t.Run(fmt.Sprint(tc), func(t *testing.T) {
			seed := uint64(100 + 10*ci)
			x32, w32, r32 := RandN([]int{tc.n, tc.in}, seed), scaled(RandN([]int{tc.out, tc.in}, seed+1), 0.3), RandN([]int{tc.n, tc.out}, seed+2)
			var b32 []float32
			if tc.bias {
				b32 = RandN([]int{tc.out}, seed+3)
			}
			x, w, b, r := f64(x32), f64(w32), f64(b32), f64(r32)
			y := make([]float64, tc.n*tc.out)
			loss := func() float64 { linearForward(tc.n, tc.in, tc.out, x, w, b, y, 2); return dot(r, y) }
			loss()
			y64 := append([]float64(nil), y...)
			dx, dw := make([]float64, len(x)), make([]float64, len(w))
			var db []float64
			if tc.bias {
				db = make([]float64, tc.out)
			}
			linearBackward(tc.n, tc.in, tc.out, r, x, w, dx, dw, db, 2)
			fdCheck(t, "linear", loss, fdInput{"x", x, dx}, fdInput{"w", w, dw}, fdInput{"b", b, db})

			be := NewReference(2)
			X := be.Upload([]int{tc.n, tc.in}, x32)
			W := paramFrom("w", w32, tc.out, tc.in)
			var B *Param
			if tc.bias {
				B = paramFrom("b", b32, tc.out)
			}
			compare32(t, "Linear y", be.Read(be.Linear(X, W, B)), y64)
			compare32(t, "Linear dx", be.Read(be.LinearBackward(be.Upload([]int{tc.n, tc.out}, r32), X, W, B)), dx)
			compare32(t, "Linear dw", W.G, dw)
			if tc.bias {
				compare32(t, "Linear db", B.G, db)
			}
		})
	}
}

func TestGroupNormGradients(t *testing.T) {
	for ci, tc := range []struct{ n, c, h, w, groups int }{
		{2, 4, 3, 3, 2}, {1, 6, 2, 5, 3}, {2, 8, 4, 4, 8}, {1, 3, 3, 3, 1},
	} {
		t.Run(fmt.Sprint(tc), func(t *testing.T) {
			seed := uint64(200 + 10*ci)
			shape := []int{tc.n, tc.c, tc.h, tc.w}
			hw := tc.h * tc.w
			// An offset and scale per tensor so the normalisation has work to do.
			x32 := RandN(shape, seed)
			for i := range x32 {
				x32[i] = 3*x32[i] + 1.5
			}
			g32, b32, r32 := RandN([]int{tc.c}, seed+1), RandN([]int{tc.c}, seed+2), RandN(shape, seed+3)
			x, g, b, r := f64(x32), f64(g32), f64(b32), f64(r32)
			const eps = 1e-5
			y := make([]float64, len(x))
			stats := make([]float64, tc.n*tc.groups*2)
			loss := func() float64 {
				groupNormForward(tc.n, tc.c, hw, tc.groups, eps, x, g, b, y, stats, 2)
				return dot(r, y)
			}
			loss()
			y64, stats64 := append([]float64(nil), y...), append([]float64(nil), stats...)
			dx, dg, db := make([]float64, len(x)), make([]float64, tc.c), make([]float64, tc.c)
			groupNormBackward(tc.n, tc.c, hw, tc.groups, r, x, stats64, g, dx, dg, db, 2)
			fdCheck(t, "groupnorm", loss, fdInput{"x", x, dx}, fdInput{"gamma", g, dg}, fdInput{"beta", b, db})

			be := NewReference(2)
			X := be.Upload(shape, x32)
			G, B := paramFrom("g", g32, tc.c), paramFrom("b", b32, tc.c)
			Y, S := be.GroupNorm(X, G, B, tc.groups, eps)
			compare32(t, "GroupNorm y", be.Read(Y), y64)
			compare32(t, "GroupNorm stats", be.Read(S), stats64)
			compare32(t, "GroupNorm dx", be.Read(be.GroupNormBackward(be.Upload(shape, r32), X, S, G, B, tc.groups)), dx)
			compare32(t, "GroupNorm dgamma", G.G, dg)
			compare32(t, "GroupNorm dbeta", B.G, db)
		})
	}
}

func TestAttentionGradients(t *testing.T) {
	for ci, tc := range []struct{ n, c, h, w, heads int }{
		{2, 4, 2, 3, 1}, {1, 6, 3, 3, 2}, {1, 8, 2, 2, 4}, {2, 3, 1, 5, 3},
	} {
		t.Run(fmt.Sprint(tc), func(t *testing.T) {
			seed := uint64(300 + 10*ci)
			shape := []int{tc.n, tc.c, tc.h, tc.w}
			l := tc.h * tc.w
			q32, k32, v32, r32 := RandN(shape, seed), RandN(shape, seed+1), RandN(shape, seed+2), RandN(shape, seed+3)
			q, k, v, r := f64(q32), f64(k32), f64(v32), f64(r32)
			y := make([]float64, len(q))
			p := make([]float64, tc.n*tc.heads*l*l)
			loss := func() float64 { attentionForward(tc.n, tc.c, l, tc.heads, q, k, v, y, p, 2); return dot(r, y) }
			loss()
			y64, p64 := append([]float64(nil), y...), append([]float64(nil), p...)
			dq, dk, dv := make([]float64, len(q)), make([]float64, len(q)), make([]float64, len(q))
			attentionBackward(tc.n, tc.c, l, tc.heads, r, q, k, v, p64, dq, dk, dv, 2)
			fdCheck(t, "attention", loss, fdInput{"q", q, dq}, fdInput{"k", k, dk}, fdInput{"v", v, dv})

			be := NewReference(2)
			Q, K, V := be.Upload(shape, q32), be.Upload(shape, k32), be.Upload(shape, v32)
			Y, P := be.Attention(Q, K, V, tc.heads)
			compare32(t, "Attention y", be.Read(Y), y64)
			dQ, dK, dV := be.AttentionBackward(be.Upload(shape, r32), Q, K, V, P, tc.heads)
			compare32(t, "Attention dq", be.Read(dQ), dq)
			compare32(t, "Attention dk", be.Read(dK), dk)
			compare32(t, "Attention dv", be.Read(dV), dv)
		})
	}
}

// TestPointwiseGradients covers the ops whose backward is elementwise or a data movement: SiLU,
// Upsample2x, Add, AddChannel (with SumHW as its backward), SumHW, Concat, Scale, Dropout, MSE.
func TestPointwiseGradients(t *testing.T) {
	const n, c, h, w = 2, 3, 3, 4
	shape := []int{n, c, h, w}
	size := Numel(shape)
	x32, a32, r32 := RandN(shape, 400), RandN(shape, 401), RandN(shape, 402)
	x, a, r := f64(x32), f64(a32), f64(r32)
	be := NewReference(2)
	X, A, R := be.Upload(shape, x32), be.Upload(shape, a32), be.Upload(shape, r32)
	y := make([]float64, size)

	t.Run("SiLU", func(t *testing.T) {
		loss := func() float64 { siluForward(x, y, 2); return dot(r, y) }
		loss()
		compare32(t, "SiLU y", be.Read(be.SiLU(X)), y)
		dx := make([]float64, size)
		siluBackward(r, x, dx, 2)
		fdCheck(t, "silu", loss, fdInput{"x", x, dx})
		compare32(t, "SiLU dx", be.Read(be.SiLUBackward(R, X)), dx)
	})
	t.Run("Upsample2x", func(t *testing.T) {
		up := make([]float64, 4*size)
		rUp32 := RandN([]int{n, c, 2 * h, 2 * w}, 403)
		rUp := f64(rUp32)
		loss := func() float64 { upsample2xForward(n*c, h, w, x, up); return dot(rUp, up) }
		loss()
		compare32(t, "Upsample2x y", be.Read(be.Upsample2x(X)), up)
		dx := make([]float64, size)
		upsample2xBackward(n*c, h, w, rUp, dx)
		fdCheck(t, "upsample", loss, fdInput{"x", x, dx})
		compare32(t, "Upsample2x dx", be.Read(be.Upsample2xBackward(be.Upload([]int{n, c, 2 * h, 2 * w}, rUp32))), dx)
	})
	t.Run("Add", func(t *testing.T) {
		loss := func() float64 { addForward(x, a, y); return dot(r, y) }
		loss()
		compare32(t, "Add y", be.Read(be.Add(X, A)), y)
		// The contract: Add's backward is the identity for both inputs.
		fdCheck(t, "add", loss, fdInput{"a", x, r}, fdInput{"b", a, r})
	})
	t.Run("AddChannel", func(t *testing.T) {
		v32 := RandN([]int{n, c}, 404)
		v := f64(v32)
		loss := func() float64 { addChannelForward(h*w, x, v, y); return dot(r, y) }
		loss()
		compare32(t, "AddChannel y", be.Read(be.AddChannel(X, be.Upload([]int{n, c}, v32))), y)
		dv := make([]float64, n*c)
		sumHW(h*w, r, dv)
		fdCheck(t, "addchannel", loss, fdInput{"x", x, r}, fdInput{"v", v, dv})
		compare32(t, "SumHW", be.Read(be.SumHW(R)), dv)
	})
	t.Run("SumHW", func(t *testing.T) {
		rs32 := RandN([]int{n, c}, 405)
		rs := f64(rs32)
		s := make([]float64, n*c)
		loss := func() float64 { sumHW(h*w, x, s); return dot(rs, s) }
		loss()
		compare32(t, "SumHW y", be.Read(be.SumHW(X)), s)
		dx := make([]float64, size)
		addChannelForward(h*w, make([]float64, size), rs, dx)
		fdCheck(t, "sumhw", loss, fdInput{"x", x, dx})
		compare32(t, "AddChannel as SumHW backward", be.Read(be.AddChannel(be.Upload(shape, make([]float32, size)), be.Upload([]int{n, c}, rs32))), dx)
	})
	t.Run("Concat", func(t *testing.T) {
		const cb = 2
		b32 := RandN([]int{n, cb, h, w}, 406)
		b := f64(b32)
		rc32 := RandN([]int{n, c + cb, h, w}, 407)
		rc := f64(rc32)
		yc := make([]float64, len(rc))
		loss := func() float64 { concatForward(n, c*h*w, cb*h*w, x, b, yc); return dot(rc, yc) }
		loss()
		compare32(t, "Concat y", be.Read(be.Concat(X, be.Upload([]int{n, cb, h, w}, b32))), yc)
		da, db := make([]float64, size), make([]float64, len(b))
		concatBackward(n, c*h*w, cb*h*w, rc, da, db)
		fdCheck(t, "concat", loss, fdInput{"a", x, da}, fdInput{"b", b, db})
		DA, DB := be.ConcatBackward(be.Upload([]int{n, c + cb, h, w}, rc32), c)
		compare32(t, "ConcatBackward da", be.Read(DA), da)
		compare32(t, "ConcatBackward db", be.Read(DB), db)
	})
	t.Run("Scale", func(t *testing.T) {
		const s = -0.7
		loss := func() float64 { scaleForward(s, x, y); return dot(r, y) }
		loss()
		compare32(t, "Scale y", be.Read(be.Scale(X, s)), y)
		dx := make([]float64, size)
		scaleForward(s, r, dx)
		fdCheck(t, "scale", loss, fdInput{"x", x, dx})
		compare32(t, "Scale as its backward", be.Read(be.Scale(R, s)), dx)
	})
	t.Run("Dropout", func(t *testing.T) {
		Y, M := be.Dropout(X, 0.4, 9)
		m := f64(be.Read(M))
		loss := func() float64 { mulForward(x, m, y); return dot(r, y) }
		loss()
		compare32(t, "Dropout y", be.Read(Y), y)
		dx := make([]float64, size)
		mulForward(r, m, dx)
		fdCheck(t, "dropout", loss, fdInput{"x", x, dx})
		compare32(t, "DropoutBackward", be.Read(be.DropoutBackward(R, M)), dx)
	})
	t.Run("MSE", func(t *testing.T) {
		dp := make([]float64, size)
		loss := func() float64 { return mseForward(x, a, make([]float64, size)) }
		l64 := mseForward(x, a, dp)
		fdCheck(t, "mse", loss, fdInput{"pred", x, dp})
		l32, dP := be.MSE(X, A)
		if math.Abs(l32-l64) > 1e-6*l64 {
			t.Errorf("MSE loss %v, float64 kernel %v", l32, l64)
		}
		compare32(t, "MSE dpred", be.Read(dP), dp)
	})
}

package tensor

import (
	"math"
	"testing"
)

func near(a, b, tol float64) bool {
	return math.Abs(a-b) <= tol*(1+math.Abs(b))
}

func checkClose(t *testing.T, what string, got []float32, want []float64, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %d values, want %d", what, len(got), len(want))
	}
	for i := range got {
		if !near(float64(got[i]), want[i], tol) {
			t.Fatalf("%s[%d] = %v, want %v (all: %v)", what, i, got[i], want[i], got)
		}
	}
}

func paramOf(name string, shape []int, w ...float32) *Param {
	p := NewParam(name, shape...)
	copy(p.W, w)
	return p
}

// TestRefHandCases checks each forward op on a case small enough to work out by hand, so a
// kernel that is consistently wrong in both forward and backward still fails.
func TestRefHandCases(t *testing.T) {
	r := NewReference(2)
	nine := []float32{1, 2, 3, 4, 5, 6, 7, 8, 9}
	x := r.Upload([]int{1, 1, 3, 3}, nine)
	ones := paramOf("w", []int{1, 1, 3, 3}, 1, 1, 1, 1, 1, 1, 1, 1, 1)
	b := paramOf("b", []int{1}, 0.5)

	y := r.Conv2D(x, ones, b, Conv{Stride: 1, Pad: 1})
	checkClose(t, "conv s1", r.Read(y), []float64{12.5, 21.5, 16.5, 27.5, 45.5, 33.5, 24.5, 39.5, 28.5}, 1e-6)
	y = r.Conv2D(x, ones, nil, Conv{Stride: 2, Pad: 1})
	checkClose(t, "conv s2", r.Read(y), []float64{12, 16, 24, 28}, 1e-6)
	one := paramOf("w1", []int{2, 1, 1, 1}, 2, -1)
	y = r.Conv2D(x, one, nil, Conv{Stride: 1})
	checkClose(t, "conv 1x1", r.Read(y)[:3], []float64{2, 4, 6}, 1e-6)
	checkClose(t, "conv 1x1 ch2", r.Read(y)[9:12], []float64{-1, -2, -3}, 1e-6)

	// Conv backward with dy = 1 everywhere: dx counts how many output taps read each pixel, dw is
	// the sum of the pixels each tap reads, db the number of outputs.
	w := paramOf("w", []int{1, 1, 3, 3}, 1, 1, 1, 1, 1, 1, 1, 1, 1)
	bb := paramOf("b", []int{1}, 0)
	dy := r.Upload([]int{1, 1, 3, 3}, []float32{1, 1, 1, 1, 1, 1, 1, 1, 1})
	dx := r.Conv2DBackward(dy, x, w, bb, Conv{Stride: 1, Pad: 1})
	checkClose(t, "conv dx", r.Read(dx), []float64{4, 6, 4, 6, 9, 6, 4, 6, 4}, 1e-6)
	checkClose(t, "conv dw", w.G, []float64{12, 21, 16, 27, 45, 33, 24, 39, 28}, 1e-6)
	checkClose(t, "conv db", bb.G, []float64{9}, 1e-6)

	lw := paramOf("lw", []int{3, 2}, 1, 0, 0, 1, 1, 1)
	lb := paramOf("lb", []int{3}, 0, 0, 1)
	lx := r.Upload([]int{1, 2}, []float32{1, 2})
	checkClose(t, "linear", r.Read(r.Linear(lx, lw, lb)), []float64{1, 2, 4}, 1e-6)
	ldx := r.LinearBackward(r.Upload([]int{1, 3}, []float32{1, 10, 100}), lx, lw, lb)
	checkClose(t, "linear dx", r.Read(ldx), []float64{101, 110}, 1e-6)
	checkClose(t, "linear dw", lw.G, []float64{1, 2, 10, 20, 100, 200}, 1e-6)
	checkClose(t, "linear db", lb.G, []float64{1, 10, 100}, 1e-6)

	gx := r.Upload([]int{1, 2, 1, 2}, []float32{1, 3, 5, 9})
	gamma := paramOf("g", []int{2}, 2, 1)
	beta := paramOf("b", []int{2}, 0, 10)
	gy, stats := r.GroupNorm(gx, gamma, beta, 2, 0)
	checkClose(t, "groupnorm", r.Read(gy), []float64{-2, 2, 9, 11}, 1e-6)
	checkClose(t, "groupnorm stats", r.Read(stats), []float64{2, 1, 7, 0.5}, 1e-6)

	checkClose(t, "silu", r.Read(r.SiLU(r.Upload([]int{3}, []float32{0, 1, -1}))),
		[]float64{0, 1 / (1 + math.Exp(-1)), -1 / (1 + math.E)}, 1e-6)

	a := r.Upload([]int{1, 1, 2, 2}, []float32{1, 2, 3, 4})
	checkClose(t, "upsample", r.Read(r.Upsample2x(a)),
		[]float64{1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4}, 0)
	checkClose(t, "upsample back", r.Read(r.Upsample2xBackward(r.Upsample2x(a))), []float64{4, 8, 12, 16}, 0)
	checkClose(t, "add", r.Read(r.Add(a, a)), []float64{2, 4, 6, 8}, 0)
	checkClose(t, "addchannel", r.Read(r.AddChannel(a, r.Upload([]int{1, 1}, []float32{10}))), []float64{11, 12, 13, 14}, 0)
	checkClose(t, "sumhw", r.Read(r.SumHW(a)), []float64{10}, 0)
	c := r.Concat(a, r.Upload([]int{1, 1, 2, 2}, []float32{5, 6, 7, 8}))
	checkClose(t, "concat", r.Read(c), []float64{1, 2, 3, 4, 5, 6, 7, 8}, 0)
	da, db := r.ConcatBackward(c, 1)
	checkClose(t, "concat back a", r.Read(da), []float64{1, 2, 3, 4}, 0)
	checkClose(t, "concat back b", r.Read(db), []float64{5, 6, 7, 8}, 0)

	loss, dpred := r.MSE(r.Upload([]int{2}, []float32{1, 2}), r.Upload([]int{2}, []float32{0, 0}))
	if loss != 2.5 {
		t.Errorf("mse = %v, want 2.5", loss)
	}
	checkClose(t, "mse grad", r.Read(dpred), []float64{1, 2}, 0)
}

// naiveConv is the convolution sum written directly from its definition, in float64.
func naiveConv(x []float32, n, cin, h, w int, wt []float32, cout, k int, b []float32, c Conv) []float64 {
	ho, wo := c.OutSize(h, k), c.OutSize(w, k)
	y := make([]float64, n*cout*ho*wo)
	for i := 0; i < n; i++ {
		for co := 0; co < cout; co++ {
			for oy := 0; oy < ho; oy++ {
				for ox := 0; ox < wo; ox++ {
					var s float64
					if b != nil {
						s = float64(b[co])
					}
					for ci := 0; ci < cin; ci++ {
						for ky := 0; ky < k; ky++ {
							for kx := 0; kx < k; kx++ {
								iy, ix := oy*c.Stride-c.Pad+ky, ox*c.Stride-c.Pad+kx
								if iy < 0 || iy >= h || ix < 0 || ix >= w {
									continue
								}
								s += float64(x[((i*cin+ci)*h+iy)*w+ix]) * float64(wt[((co*cin+ci)*k+ky)*k+kx])
							}
						}
					}
					y[((i*cout+co)*ho+oy)*wo+ox] = s
				}
			}
		}
	}
	return y
}

// TestConvMatchesDefinition compares the im2col+GEMM convolution with the direct sum on the shapes
// the UNet uses, odd sizes and channel counts included.
func TestConvMatchesDefinition(t *testing.T) {
	cases := []struct {
		n, cin, h, w, cout, k int
		c                     Conv
		bias                  bool
	}{
		{2, 3, 8, 8, 5, 3, Conv{1, 1}, true},
		{2, 3, 8, 8, 5, 3, Conv{2, 1}, false},
		{1, 5, 7, 7, 3, 3, Conv{2, 1}, true},
		{3, 7, 5, 6, 9, 1, Conv{1, 0}, true},
		{1, 1, 9, 9, 17, 3, Conv{1, 1}, false},
		{2, 2, 1, 2, 3, 3, Conv{1, 1}, true},  // image smaller than the kernel
		{1, 2, 2, 3, 2, 3, Conv{2, 1}, false}, // stride 2 on a tiny image
		{1, 3, 6, 5, 2, 3, Conv{1, 0}, true},  // no padding
		{1, 2, 5, 4, 2, 3, Conv{2, 2}, true},  // padding wider than needed
		{1, 2, 6, 7, 3, 5, Conv{3, 2}, false}, // 5x5 stride 3
	}
	for _, tc := range cases {
		for _, threads := range []int{1, 3} {
			r := NewReference(threads)
			x := r.Upload([]int{tc.n, tc.cin, tc.h, tc.w}, RandN([]int{tc.n, tc.cin, tc.h, tc.w}, 1))
			w := RandParam("w", 0.5, 2, tc.cout, tc.cin, tc.k, tc.k)
			var b *Param
			var bw []float32
			if tc.bias {
				b = RandParam("b", 1, 3, tc.cout)
				bw = b.W
			}
			got := r.Read(r.Conv2D(x, w, b, tc.c))
			want := naiveConv(x.Data, tc.n, tc.cin, tc.h, tc.w, w.W, tc.cout, tc.k, bw, tc.c)
			checkClose(t, "conv", got, want, 1e-5)
		}
	}
}

// TestValidRange compares the closed form with a scan of every output position.
func TestValidRange(t *testing.T) {
	for n := 0; n < 9; n++ {
		for stride := 1; stride < 4; stride++ {
			for off := -4; off < 5; off++ {
				for size := 0; size < 9; size++ {
					lo, hi := validRange(n, stride, off, size)
					for o := 0; o < n; o++ {
						in := o*stride+off >= 0 && o*stride+off < size
						if in != (o >= lo && o < hi) {
							t.Fatalf("validRange(%d, %d, %d, %d) = [%d,%d) but output %d inside: %v", n, stride, off, size, lo, hi, o, in)
						}
					}
				}
			}
		}
	}
}

//go:build cgo

package dnnl

import (
	"fmt"
	"testing"

	"github.com/ddpm-go/ddpm/tensor"
)

// BenchmarkConv times forward and forward+backward of the UNet-S convolutions at batch 128 and
// reports GFLOP/s (2*N*Cout*Cin*K*K*Ho*Wo per pass; backward counts two passes).
func BenchmarkConv(b *testing.B) {
	type cs struct{ cin, cout, hw, k, s int }
	for _, prec := range []string{"fp32", "bf16"} {
		for _, c := range []cs{{32, 32, 28, 3, 1}, {96, 32, 28, 3, 1}, {64, 64, 14, 3, 1}, {128, 128, 7, 3, 1}, {32, 32, 28, 3, 2}, {1, 32, 28, 3, 1}, {32, 1, 28, 3, 1}} {
			for _, bwd := range []bool{false, true} {
				name := fmt.Sprintf("%s/%dx%d-%d-%d-k%ds%d/bwd=%v", prec, c.hw, c.hw, c.cin, c.cout, c.k, c.s, bwd)
				b.Run(name, func(b *testing.B) {
					be := newBackend(b, prec)
					n := 128
					conv := tensor.Conv{Stride: c.s, Pad: c.k / 2}
					ho := conv.OutSize(c.hw, c.k)
					x := be.Upload([]int{n, c.cin, c.hw, c.hw}, tensor.RandN([]int{n, c.cin, c.hw, c.hw}, 1))
					x = be.Scale(x, 1) // into the activation type
					dy := be.Scale(be.Upload([]int{n, c.cout, ho, ho}, tensor.RandN([]int{n, c.cout, ho, ho}, 2)), 1)
					w, bias := randParam("w", 3, c.cout, c.cin, c.k, c.k), randParam("b", 4, c.cout)
					run := func() {
						if bwd {
							be.Release(be.Conv2DBackward(dy, x, w, bias, conv))
						} else {
							be.Release(be.Conv2D(x, w, bias, conv))
						}
					}
					run()
					b.ResetTimer()
					for range b.N {
						run()
					}
					flop := 2.0 * float64(n*c.cout*c.cin*c.k*c.k*ho*ho)
					if bwd {
						flop *= 2
					}
					b.ReportMetric(flop*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
					b.StopTimer()
					if bwd {
						be.Release(be.Conv2D(x, w, bias, conv))
					}
					impl := be.convImpl(x.Shape, w, true, conv)
					b.Logf("impl %q", impl)
				})
			}
		}
	}
}

// BenchmarkMemOps times the memory-bound ops on a 128x32x28x28 activation and reports GB/s of
// activation traffic (bytes read and written at the backend's element size).
func BenchmarkMemOps(b *testing.B) {
	shape := []int{128, 32, 28, 28}
	for _, prec := range []string{"fp32", "bf16"} {
		be := newBackend(b, prec)
		x := be.Scale(be.Upload(shape, tensor.RandN(shape, 1)), 1)
		dy := be.Scale(be.Upload(shape, tensor.RandN(shape, 2)), 1)
		g, bt := randParam("g", 3, 32), randParam("b", 4, 32)
		v := be.Upload([]int{128, 32}, tensor.RandN([]int{128, 32}, 5))
		_, st := be.GroupNorm(x, g, bt, 8, 1e-5)
		es := 4
		if prec == "bf16" {
			es = 2
		}
		ops := []struct {
			name   string
			passes int // activation-sized reads plus writes
			f      func() *tensor.Tensor
		}{
			{"SiLU", 2, func() *tensor.Tensor { return be.SiLU(x) }},
			{"SiLUBackward", 3, func() *tensor.Tensor { return be.SiLUBackward(dy, x) }},
			{"Add", 3, func() *tensor.Tensor { return be.Add(x, dy) }},
			{"AddChannel", 2, func() *tensor.Tensor { return be.AddChannel(x, v) }},
			{"GroupNorm+SiLU", 2, func() *tensor.Tensor {
				y, s := be.GroupNorm(x, g, bt, 8, 1e-5)
				a := be.SiLU(y)
				be.Release(y)
				be.Release(s)
				return a
			}},
			{"GroupNormBackward", 3, func() *tensor.Tensor { return be.GroupNormBackward(dy, x, st, g, bt, 8) }},
			{"SiLUBackward+GroupNormBackward", 3, func() *tensor.Tensor {
				y, s := be.GroupNorm(x, g, bt, 8, 1e-5)
				d := be.SiLUBackward(dy, y)
				dx := be.GroupNormBackward(d, x, s, g, bt, 8)
				be.Release(d)
				be.Release(y)
				be.Release(s)
				return dx
			}},
			{"Concat", 4, func() *tensor.Tensor { return be.Concat(x, dy) }},
			{"Upsample2x", 5, func() *tensor.Tensor { return be.Upsample2x(x) }},
		}
		for _, op := range ops {
			b.Run(prec+"/"+op.name, func(b *testing.B) {
				be.Release(op.f())
				b.ResetTimer()
				for range b.N {
					be.Release(op.f())
				}
				bytes := float64(op.passes * x.Len() * es)
				b.ReportMetric(bytes*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
			})
		}
	}
}

// BenchmarkCallOverhead is the cost of one op on a tiny tensor: the hand-off to the worker thread
// and back, plus allocation from the pool.
func BenchmarkCallOverhead(b *testing.B) {
	be := newBackend(b, "fp32")
	x := be.Upload([]int{2, 2}, []float32{1, 2, 3, 4})
	b.Run("handoff", func(b *testing.B) {
		for range b.N {
			be.Release(be.Add(x, x))
		}
	})
	b.Run("inDo", func(b *testing.B) {
		be.Do(func() {
			for range b.N {
				be.Release(be.Add(x, x))
			}
		})
	})
}

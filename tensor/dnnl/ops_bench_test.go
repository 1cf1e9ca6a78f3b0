//go:build cgo

package dnnl

import (
	"fmt"
	"testing"

	"ddpm/tensor"
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
					impl := be.ConvImpl(x.Shape, w, true, conv)
					b.Logf("impl %q", impl)
				})
			}
		}
	}
}

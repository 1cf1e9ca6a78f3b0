package tensor

import (
	"fmt"
	"testing"
)

func reportGFLOPS(b *testing.B, flopsPerOp float64) {
	b.ReportMetric(flopsPerOp*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}

// BenchmarkGemm times the float32 GEMM on a square product and on the shapes of UNet-S's 64->64
// 3x3 conv at 28x28 (forward: Cout x pixels x Cin*9; weight gradient: Cout x Cin*9 x pixels).
func BenchmarkGemm(b *testing.B) {
	for _, sz := range []struct {
		name    string
		m, n, k int
		tA, tB  bool
	}{
		{"512x512x512", 512, 512, 512, false, false},
		{"conv-fwd-64x784x576", 64, 784, 576, false, false},
		{"conv-dw-64x576x784-NT", 64, 576, 784, false, true},
		{"conv-dx-576x784x64-TN", 576, 784, 64, true, false},
	} {
		for _, threads := range []int{1, 2} {
			b.Run(fmt.Sprintf("%s/threads=%d", sz.name, threads), func(b *testing.B) {
				ra, rb := sz.m*sz.k, sz.k*sz.n
				a, bb := RandN([]int{ra}, 1), RandN([]int{rb}, 2)
				c := make([]float32, sz.m*sz.n)
				lda, ldb := sz.k, sz.n
				if sz.tA {
					lda = sz.m
				}
				if sz.tB {
					ldb = sz.k
				}
				for b.Loop() {
					gemm(sz.tA, sz.tB, sz.m, sz.n, sz.k, a, lda, bb, ldb, 0, c, sz.n, threads)
				}
				reportGFLOPS(b, 2*float64(sz.m*sz.n*sz.k))
			})
		}
	}
}

// BenchmarkConvUNetS times one 3x3 stride-1 conv of UNet-S's middle width, batch 32, 64->64 at
// 28x28: forward plus backward (data and weights), 3 x 2*N*Cout*Cin*9*H*W flops.
func BenchmarkConvUNetS(b *testing.B) {
	const n, cin, cout, h, w = 32, 64, 64, 28, 28
	for _, threads := range []int{1, 2} {
		b.Run(fmt.Sprintf("threads=%d", threads), func(b *testing.B) {
			be := NewReference(threads)
			x := be.Upload([]int{n, cin, h, w}, RandN([]int{n, cin, h, w}, 1))
			wt := RandParam("w", 0.05, 2, cout, cin, 3, 3)
			bias := RandParam("b", 0.1, 3, cout)
			c := Conv{Stride: 1, Pad: 1}
			for b.Loop() {
				y := be.Conv2D(x, wt, bias, c)
				dx := be.Conv2DBackward(y, x, wt, bias, c)
				be.Release(y)
				be.Release(dx)
			}
			reportGFLOPS(b, 3*2*float64(n*cout*cin*9*h*w))
		})
	}
}

// BenchmarkKernel times the register tile alone on L1-resident panels: the ceiling the GEMM can
// approach on one core.
func BenchmarkKernel(b *testing.B) {
	const k = 256
	a, bp := RandN([]int{gemmMR * k}, 1), RandN([]int{gemmNR * k}, 2)
	c := make([]float32, gemmMR*gemmNR)
	for b.Loop() {
		microKernel(k, a, bp, c, gemmNR)
	}
	reportGFLOPS(b, 2*float64(gemmMR*gemmNR*k))
}

//go:build goexperiment.simd && amd64

package tensor

import (
	"fmt"
	"testing"
)

// TestGemmEachSIMDPath runs the float32 GEMM through each tile kernel this CPU can run (AVX-512,
// the AVX2 halves, the loops) on sizes with partial tiles, against the float64 definition.
func TestGemmEachSIMDPath(t *testing.T) {
	saved512, saved2 := hasAVX512, hasAVX2FMA
	defer func() { hasAVX512, hasAVX2FMA = saved512, saved2 }()
	paths := []struct {
		name         string
		avx512, avx2 bool
		ok           bool
	}{
		{"avx512", true, false, saved512},
		{"avx2", false, true, saved2},
		{"loops", false, false, true},
	}
	for _, p := range paths {
		if !p.ok {
			t.Logf("%s: not supported by this CPU, skipped", p.name)
			continue
		}
		hasAVX512, hasAVX2FMA = p.avx512, p.avx2
		for _, sz := range [][3]int{{4, 32, 1}, {7, 49, 300}, {64, 100, 37}, {3, 5, 2}} {
			for _, tA := range []bool{false, true} {
				m, n, k := sz[0], sz[1], sz[2]
				lda, ra := k, m
				if tA {
					lda, ra = m, k
				}
				a, b := RandN([]int{ra * lda}, 1), RandN([]int{k * n}, 2)
				c := RandN([]int{m * n}, 3)
				want := f64(c)
				naiveGemm(tA, false, m, n, k, f64(a), lda, f64(b), n, 1, want, n)
				gemm(tA, false, m, n, k, a, lda, b, n, 1, c, n, 2)
				compare32(t, fmt.Sprintf("%s %v tA=%v", p.name, sz, tA), c, want)
			}
		}
	}
}

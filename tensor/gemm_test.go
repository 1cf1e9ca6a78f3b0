package tensor

import (
	"fmt"
	"math"
	"testing"
)

// naiveGemm is C = beta*C + op(A)·op(B) from the definition, in float64.
func naiveGemm(transA, transB bool, m, n, k int, a []float64, lda int, b []float64, ldb int, beta float64, c []float64, ldc int) {
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s float64
			for p := 0; p < k; p++ {
				var av, bv float64
				if transA {
					av = a[p*lda+i]
				} else {
					av = a[i*lda+p]
				}
				if transB {
					bv = b[j*ldb+p]
				} else {
					bv = b[p*ldb+j]
				}
				s += av * bv
			}
			if beta == 0 {
				c[i*ldc+j] = s
			} else {
				c[i*ldc+j] += s
			}
		}
	}
}

// TestGemm checks the blocked GEMM against the definition for every transpose combination, both
// betas, padded leading dimensions, and sizes that cross each blocking boundary (MR, NR, KC, MC,
// NC) and the parallel split; float64 must agree to rounding and float32 to float32 tolerance.
func TestGemm(t *testing.T) {
	sizes := [][3]int{{1, 1, 1}, {5, 7, 3}, {4, 4, 4}, {130, 9, 300}, {3, 1030, 17}, {67, 65, 513}, {9, 2, 40}}
	for si, sz := range sizes {
		m, n, k := sz[0], sz[1], sz[2]
		for _, tA := range []bool{false, true} {
			for _, tB := range []bool{false, true} {
				for _, beta := range []float64{0, 1} {
					name := fmt.Sprintf("%dx%dx%d tA=%v tB=%v beta=%v", m, n, k, tA, tB, beta)
					// Leading dimensions one wider than needed, so a mix-up of ld and width shows.
					lda, ldb, ldc := k+1, n+2, n+3
					ra, rb := m, k
					if tA {
						lda, ra = m+1, k
					}
					if tB {
						ldb, rb = k+2, n
					}
					seed := uint64(1000 + si)
					a32, b32, c32 := RandN([]int{ra * lda}, seed), RandN([]int{rb * ldb}, seed+1), RandN([]int{m * ldc}, seed+2)
					want := f64(c32)
					naiveGemm(tA, tB, m, n, k, f64(a32), lda, f64(b32), ldb, beta, want, ldc)
					for _, threads := range []int{1, 3} {
						c64 := f64(c32)
						if beta == 0 {
							for i := range c64 {
								c64[i] = math.NaN() // beta 0 must overwrite, not scale
							}
							for i := 0; i < m; i++ {
								for j := n; j < ldc; j++ {
									c64[i*ldc+j] = float64(c32[i*ldc+j])
								}
							}
						}
						gemm(tA, tB, m, n, k, f64(a32), lda, f64(b32), ldb, beta, c64, ldc, threads)
						for i := range c64 {
							if math.Abs(c64[i]-want[i]) > 1e-12*math.Sqrt(float64(k))*(1+math.Abs(want[i])) || math.IsNaN(c64[i]) {
								t.Fatalf("%s threads=%d float64: c[%d] = %v, want %v", name, threads, i, c64[i], want[i])
							}
						}
						c := append([]float32(nil), c32...)
						gemm(tA, tB, m, n, k, a32, lda, b32, ldb, float32(beta), c, ldc, threads)
						compare32(t, name+" float32", c, want)
					}
				}
			}
		}
	}
}

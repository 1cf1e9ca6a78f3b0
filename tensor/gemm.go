package tensor

import "sync"

// gemm computes C = beta*C + op(A)·op(B) for row-major matrices, op(A) (m,k), op(B) (k,n), C (m,n),
// with leading dimensions lda, ldb, ldc; op transposes when trans is set. beta is 0 (C is
// overwritten, whatever it held) or 1 (accumulate). Each element of C is summed over k in order by
// one goroutine, so the result does not depend on threads.
func gemm[F Float](transA, transB bool, m, n, k int, a []F, lda int, b []F, ldb int, beta F, c []F, ldc int, threads int) {
	if m == 0 || n == 0 {
		return
	}
	// op(B) as a (k,n) row-major panel, so the inner loop streams rows of B and C.
	bp, ldbp := b, ldb
	if transB {
		bp = make([]F, k*n)
		for p := 0; p < k; p++ {
			for j := 0; j < n; j++ {
				bp[p*n+j] = b[j*ldb+p]
			}
		}
		ldbp = n
	}
	parallelFor(m, threads, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			ci := c[i*ldc : i*ldc+n]
			if beta == 0 {
				clear(ci)
			}
			for p := 0; p < k; p++ {
				var aip F
				if transA {
					aip = a[p*lda+i]
				} else {
					aip = a[i*lda+p]
				}
				bpRow := bp[p*ldbp : p*ldbp+n]
				for j, v := range bpRow {
					ci[j] += aip * v
				}
			}
		}
	})
}

// parallelFor splits [0,n) into at most threads contiguous chunks and runs fn on each, returning
// when all are done. It runs inline when one chunk suffices.
func parallelFor(n, threads int, fn func(lo, hi int)) {
	if threads > n {
		threads = n
	}
	if threads <= 1 {
		fn(0, n)
		return
	}
	var wg sync.WaitGroup
	for t := 0; t < threads; t++ {
		lo, hi := t*n/threads, (t+1)*n/threads
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(lo, hi)
		}()
	}
	wg.Wait()
}

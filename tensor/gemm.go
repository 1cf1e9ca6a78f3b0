package tensor

import (
	"sync"
)

// The matrix product under every conv, linear and attention kernel, as a cache-blocked GEMM in the
// layout of Goto and van de Geijn ("Anatomy of high-performance matrix multiplication", 2008):
// op(B) is packed in kc x nc blocks of gemmNR-wide column panels, op(A) in mc x kc blocks of
// gemmMR-tall row panels, and microKernel (gemm_kernel.go) updates one gemmMR x gemmNR tile of C
// from a pair of panels.
const (
	gemmKC = 256  // 2 x 256 and 256 x 4 float32 panels of A and B: 2 and 4 KiB, so both stay in L1
	gemmMC = 128  // the packed A block, 128 KiB, stays in L2
	gemmNC = 1024 // the packed B block, 1 MiB, in L2/L3

	// gemmParallelFlops is the smallest product split across goroutines; below it the start-up
	// costs more than it saves.
	gemmParallelFlops = 1 << 18
)

// gemm computes C = beta*C + op(A)·op(B) for row-major matrices, op(A) (m,k), op(B) (k,n), C (m,n),
// with leading dimensions lda, ldb, ldc; op transposes when trans is set. beta is 0 (C is
// overwritten, whatever it held, NaN included) or 1 (accumulate). Each element of C is summed by
// one goroutine over k in blocks of gemmKC, in order, so the result does not depend on threads.
func gemm[F Float](transA, transB bool, m, n, k int, a []F, lda int, b []F, ldb int, beta F, c []F, ldc int, threads int) {
	if m <= 0 || n <= 0 {
		return
	}
	if beta != 0 && beta != 1 {
		panic("tensor: gemm: beta must be 0 or 1")
	}
	if threads > 1 && 2*m*n*k >= gemmParallelFlops {
		// Split the longer side of C into one strip per goroutine, on tile boundaries.
		if n >= m {
			parts := min(threads, (n+gemmNR-1)/gemmNR)
			parallelFor(parts, parts, func(lo, hi int) {
				j0, j1 := strip(lo, parts, n, gemmNR), strip(hi, parts, n, gemmNR)
				if j0 == j1 {
					return
				}
				bOff := j0
				if transB {
					bOff = j0 * ldb
				}
				gemmSerial(transA, transB, m, j1-j0, k, a, lda, b[bOff:], ldb, beta, c[j0:], ldc)
			})
		} else {
			parts := min(threads, (m+gemmMR-1)/gemmMR)
			parallelFor(parts, parts, func(lo, hi int) {
				i0, i1 := strip(lo, parts, m, gemmMR), strip(hi, parts, m, gemmMR)
				if i0 == i1 {
					return
				}
				aOff := i0 * lda
				if transA {
					aOff = i0
				}
				gemmSerial(transA, transB, i1-i0, n, k, a[aOff:], lda, b, ldb, beta, c[i0*ldc:], ldc)
			})
		}
		return
	}
	gemmSerial(transA, transB, m, n, k, a, lda, b, ldb, beta, c, ldc)
}

// strip is where part i of parts begins when [0,n) is cut into parts strips of whole tiles.
func strip(i, parts, n, tile int) int {
	tiles := (n + tile - 1) / tile
	return min(n, i*tiles/parts*tile)
}

// gemmSerial is gemm on one goroutine.
func gemmSerial[F Float](transA, transB bool, m, n, k int, a []F, lda int, b []F, ldb int, beta F, c []F, ldc int) {
	if beta == 0 {
		for i := 0; i < m; i++ {
			clear(c[i*ldc : i*ldc+n])
		}
	}
	if k <= 0 {
		return
	}
	bufA := getBuf[F](gemmMC * gemmKC)
	bufB := getBuf[F](gemmKC * ((min(n, gemmNC) + gemmNR - 1) / gemmNR * gemmNR))
	defer putBuf(bufA)
	defer putBuf(bufB)
	pa, pb := *bufA, *bufB
	var edge [gemmMR * gemmNR]F
	for pc := 0; pc < k; pc += gemmKC {
		kc := min(gemmKC, k-pc)
		for jc := 0; jc < n; jc += gemmNC {
			nc := min(gemmNC, n-jc)
			packB(transB, b, ldb, pc, jc, kc, nc, pb)
			for ic := 0; ic < m; ic += gemmMC {
				mc := min(gemmMC, m-ic)
				packA(transA, a, lda, ic, pc, mc, kc, pa)
				for jr := 0; jr < nc; jr += gemmNR {
					bp := pb[jr*kc : (jr+gemmNR)*kc]
					for ir := 0; ir < mc; ir += gemmMR {
						ap := pa[ir*kc : (ir+gemmMR)*kc]
						ci := (ic+ir)*ldc + jc + jr
						if ir+gemmMR <= mc && jr+gemmNR <= nc {
							microKernel(kc, ap, bp, c[ci:], ldc)
							continue
						}
						// A partial tile: compute the whole tile from the zero-padded
						// panels into edge, then add the part inside C.
						clear(edge[:])
						microKernel(kc, ap, bp, edge[:], gemmNR)
						for i := 0; i < min(gemmMR, mc-ir); i++ {
							for j := 0; j < min(gemmNR, nc-jr); j++ {
								c[ci+i*ldc+j] += edge[i*gemmNR+j]
							}
						}
					}
				}
			}
		}
	}
}

// packA copies the mc x kc block of op(A) at (ic, pc) into gemmMR-row panels: panel r holds rows
// r*MR.. as kc groups of MR values (one column of the panel each), rows past mc zero.
func packA[F Float](trans bool, a []F, lda, ic, pc, mc, kc int, dst []F) {
	for ir := 0; ir < mc; ir += gemmMR {
		panel := dst[ir*kc : (ir+gemmMR)*kc]
		rows := min(gemmMR, mc-ir)
		for i := 0; i < gemmMR; i++ {
			if i >= rows {
				for p := 0; p < kc; p++ {
					panel[p*gemmMR+i] = 0
				}
				continue
			}
			row := ic + ir + i
			if trans {
				for p := 0; p < kc; p++ {
					panel[p*gemmMR+i] = a[(pc+p)*lda+row]
				}
			} else {
				src := a[row*lda+pc : row*lda+pc+kc]
				for p, v := range src {
					panel[p*gemmMR+i] = v
				}
			}
		}
	}
}

// packB copies the kc x nc block of op(B) at (pc, jc) into gemmNR-column panels: panel r holds
// columns r*NR.. as kc groups of NR values (one row of the panel each), columns past nc zero.
func packB[F Float](trans bool, b []F, ldb, pc, jc, kc, nc int, dst []F) {
	for jr := 0; jr < nc; jr += gemmNR {
		panel := dst[jr*kc : (jr+gemmNR)*kc]
		cols := min(gemmNR, nc-jr)
		if trans {
			for j := 0; j < gemmNR; j++ {
				if j >= cols {
					for p := 0; p < kc; p++ {
						panel[p*gemmNR+j] = 0
					}
					continue
				}
				src := b[(jc+jr+j)*ldb+pc : (jc+jr+j)*ldb+pc+kc]
				for p, v := range src {
					panel[p*gemmNR+j] = v
				}
			}
			continue
		}
		for p := 0; p < kc; p++ {
			row := b[(pc+p)*ldb+jc+jr : (pc+p)*ldb+jc+jr+cols]
			dst := panel[p*gemmNR : (p+1)*gemmNR]
			if gemmNR == 4 && cols == 4 {
				// Four moves beat a memmove call.
				dst[0], dst[1], dst[2], dst[3] = row[0], row[1], row[2], row[3]
				continue
			}
			copy(dst, row)
			clear(dst[cols:])
		}
	}
}

// Packing buffers are reused across calls: a conv runs one GEMM per sample and would otherwise
// allocate a megabyte each time.
var bufPool32, bufPool64 sync.Pool

func getBuf[F Float](n int) *[]F {
	pool := &bufPool32
	var zero F
	if _, ok := any(zero).(float64); ok {
		pool = &bufPool64
	}
	if p, ok := pool.Get().(*[]F); ok && cap(*p) >= n {
		*p = (*p)[:n]
		return p
	}
	s := make([]F, n)
	return &s
}

func putBuf[F Float](p *[]F) {
	var zero F
	if _, ok := any(zero).(float64); ok {
		bufPool64.Put(p)
		return
	}
	bufPool32.Put(p)
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

package tensor

import (
	"sync"
)

// The matrix product under every conv, linear and attention kernel, as a cache-blocked GEMM in the
// layout of Goto and van de Geijn ("Anatomy of high-performance matrix multiplication", 2008):
// op(B) is packed in kc x nc blocks of gemmNR-wide column panels, op(A) in mc x kc blocks of
// gemmMR-tall row panels, and a gemmMR x gemmNR register tile is the inner kernel. Go has no SIMD,
// so the tile is eight scalar accumulators (see kernel2x4).
const (
	gemmMR = 2
	gemmNR = 4
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
							kernel2x4(kc, ap, bp, c[ci:], ldc)
							continue
						}
						// A partial tile: compute the whole tile from the zero-padded
						// panels into edge, then add the part inside C.
						clear(edge[:])
						kernel2x4(kc, ap, bp, edge[:], gemmNR)
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
			row := b[(pc+p)*ldb+jc+jr:]
			dst := panel[p*gemmNR : p*gemmNR+gemmNR : p*gemmNR+gemmNR]
			if cols == gemmNR {
				dst[0], dst[1], dst[2], dst[3] = row[0], row[1], row[2], row[3]
				continue
			}
			for j := range dst {
				if j < cols {
					dst[j] = row[j]
				} else {
					dst[j] = 0
				}
			}
		}
	}
}

// kernel2x4 adds the product of a packed 2 x k panel of A and a packed k x 4 panel of B to the
// 2x4 tile of c at stride ldc. The eight sums, two values of A and four of B are locals that fit
// the 16 XMM registers of amd64 (a 4x4 tile does not, and measured 2x slower from the spills); the
// loop is unrolled four times and re-slices a and b so the compiler drops the bounds checks.
func kernel2x4[F Float](k int, a, b []F, c []F, ldc int) {
	var c00, c01, c02, c03, c10, c11, c12, c13 F
	var a0, a1, b0, b1, b2, b3 F
	a = a[:2*k]
	b = b[:4*k]
	for len(a) >= 8 && len(b) >= 16 {
		a0, a1 = a[0], a[1]
		b0, b1, b2, b3 = b[0], b[1], b[2], b[3]
		c00 += a0 * b0
		c01 += a0 * b1
		c02 += a0 * b2
		c03 += a0 * b3
		c10 += a1 * b0
		c11 += a1 * b1
		c12 += a1 * b2
		c13 += a1 * b3
		a0, a1 = a[2], a[3]
		b0, b1, b2, b3 = b[4], b[5], b[6], b[7]
		c00 += a0 * b0
		c01 += a0 * b1
		c02 += a0 * b2
		c03 += a0 * b3
		c10 += a1 * b0
		c11 += a1 * b1
		c12 += a1 * b2
		c13 += a1 * b3
		a0, a1 = a[4], a[5]
		b0, b1, b2, b3 = b[8], b[9], b[10], b[11]
		c00 += a0 * b0
		c01 += a0 * b1
		c02 += a0 * b2
		c03 += a0 * b3
		c10 += a1 * b0
		c11 += a1 * b1
		c12 += a1 * b2
		c13 += a1 * b3
		a0, a1 = a[6], a[7]
		b0, b1, b2, b3 = b[12], b[13], b[14], b[15]
		c00 += a0 * b0
		c01 += a0 * b1
		c02 += a0 * b2
		c03 += a0 * b3
		c10 += a1 * b0
		c11 += a1 * b1
		c12 += a1 * b2
		c13 += a1 * b3
		a = a[8:]
		b = b[16:]
	}
	for len(a) >= 2 && len(b) >= 4 {
		a0, a1 = a[0], a[1]
		b0, b1, b2, b3 = b[0], b[1], b[2], b[3]
		c00 += a0 * b0
		c01 += a0 * b1
		c02 += a0 * b2
		c03 += a0 * b3
		c10 += a1 * b0
		c11 += a1 * b1
		c12 += a1 * b2
		c13 += a1 * b3
		a = a[2:]
		b = b[4:]
	}
	r := c[0:4:4]
	r[0] += c00
	r[1] += c01
	r[2] += c02
	r[3] += c03
	r = c[ldc : ldc+4 : ldc+4]
	r[0] += c10
	r[1] += c11
	r[2] += c12
	r[3] += c13
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

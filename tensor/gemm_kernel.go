package tensor

// The register tile. Go emits no SIMD instructions, so the tile is scalar; its size is what keeps
// every value in the 16 XMM registers of amd64 (a 4x4 tile does not fit, and measured half as fast
// from the spills).
//
// Go 1.26's experimental simd/archsimd (GOEXPERIMENT=simd) gave a 4x32 FMA tile 8x this speed,
// but in such builds all scalar float code (math.Exp in SiLU: 100x) slowed down after goroutine
// preemptions, with or without vector code running (GODEBUG=asyncpreemptoff=1 cured it), so the
// project does not use it; revisit when the experiment matures.
const (
	gemmMR = 2
	gemmNR = 4
)

// microKernel is the tile kernel of gemmSerial.
func microKernel[F Float](k int, a, b, c []F, ldc int) { kernel2x4(k, a, b, c, ldc) }

// kernel2x4 adds the product of a packed 2 x k panel of A and a packed k x 4 panel of B to the
// 2x4 tile of c at stride ldc. The eight sums, two values of A and four of B are locals, so they
// stay in registers; the loop is unrolled four times and re-slices a and b so the compiler drops
// the bounds checks.
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

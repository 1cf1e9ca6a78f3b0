package tensor

import "math"

// attentionForward: q, k, v, y (N,C,L) with L = H*W, p (N,heads,L,L). Head h of sample n is the
// (d,L) block of channels h*d..(h+1)*d, d = C/heads, so with Q, K, V those blocks:
// S = Q^T K / sqrt(d) (L,L), P = softmax over each row of S, Y = V P^T (d,L).
func attentionForward[F Float](n, c, l, heads int, q, k, v, y, p []F, threads int) {
	d := c / heads
	scale := 1 / math.Sqrt(float64(d))
	for i := 0; i < n; i++ {
		for h := 0; h < heads; h++ {
			off := (i*c + h*d) * l
			Q, K, V, Y := q[off:off+d*l], k[off:off+d*l], v[off:off+d*l], y[off:off+d*l]
			P := p[(i*heads+h)*l*l : (i*heads+h+1)*l*l]
			gemm(true, false, l, l, d, Q, l, K, l, 0, P, l, threads)
			for r := 0; r < l; r++ {
				softmaxRow(P[r*l:(r+1)*l], scale)
			}
			gemm(false, true, d, l, l, V, l, P, l, 0, Y, l, threads)
		}
	}
}

// softmaxRow replaces row with softmax(scale*row), subtracting the maximum first so exp cannot
// overflow; the sum runs in float64.
func softmaxRow[F Float](row []F, scale float64) {
	mx := math.Inf(-1)
	for _, v := range row {
		mx = math.Max(mx, scale*float64(v))
	}
	var sum float64
	for j, v := range row {
		e := math.Exp(scale*float64(v) - mx)
		row[j] = F(e)
		sum += e
	}
	inv := 1 / sum
	for j := range row {
		row[j] = F(float64(row[j]) * inv)
	}
}

// attentionBackward: dy, q, k, v (N,C,L), p (N,heads,L,L) from the forward -> dq, dk, dv (N,C,L),
// written. Per head: dP = dY^T V, dV = dY P, dS = P ⊙ (dP - rowsum(P ⊙ dP)) / sqrt(d) (the softmax
// Jacobian and the score scale together), dQ = K dS^T, dK = Q dS.
func attentionBackward[F Float](n, c, l, heads int, dy, q, k, v, p, dq, dk, dv []F, threads int) {
	d := c / heads
	scale := 1 / math.Sqrt(float64(d))
	dS := make([]F, l*l)
	for i := 0; i < n; i++ {
		for h := 0; h < heads; h++ {
			off := (i*c + h*d) * l
			Q, K, V, dY := q[off:off+d*l], k[off:off+d*l], v[off:off+d*l], dy[off:off+d*l]
			dQ, dK, dV := dq[off:off+d*l], dk[off:off+d*l], dv[off:off+d*l]
			P := p[(i*heads+h)*l*l : (i*heads+h+1)*l*l]
			gemm(true, false, l, l, d, dY, l, V, l, 0, dS, l, threads)
			gemm(false, false, d, l, l, dY, l, P, l, 0, dV, l, threads)
			for r := 0; r < l; r++ {
				pr, sr := P[r*l:(r+1)*l], dS[r*l:(r+1)*l]
				var dot float64
				for j, pv := range pr {
					dot += float64(pv) * float64(sr[j])
				}
				for j, pv := range pr {
					sr[j] = F(float64(pv) * (float64(sr[j]) - dot) * scale)
				}
			}
			gemm(false, true, d, l, l, K, l, dS, l, 0, dQ, l, threads)
			gemm(false, false, d, l, l, Q, l, dS, l, 0, dK, l, threads)
		}
	}
}

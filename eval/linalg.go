package eval

import (
	"fmt"
	"math"
)

// SymEig returns the eigenvalues (ascending) and eigenvectors (columns of the row-major n x n vecs) of
// the symmetric n x n matrix a, by the cyclic Jacobi method. Jacobi is slower than QR on large
// matrices but accurate to a few ulps in every eigenvalue, small ones included, which is what the
// trace of a matrix square root of nearly singular covariances needs; for the 128-d features here it
// takes a few tens of milliseconds. a is not modified.
func SymEig(a []float64, n int) (vals, vecs []float64, err error) {
	if n < 1 || len(a) != n*n {
		return nil, nil, fmt.Errorf("symeig: %d values for a %dx%d matrix", len(a), n, n)
	}
	m := make([]float64, n*n)
	copy(m, a)
	scale := 0.0
	for i := range n {
		for j := range n {
			if v := a[i*n+j]; math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, nil, fmt.Errorf("symeig: non-finite entry %v at (%d, %d)", v, i, j)
			}
			if d := math.Abs(a[i*n+j] - a[j*n+i]); d > 1e-9*(math.Abs(a[i*n+j])+math.Abs(a[j*n+i])+1e-300) {
				return nil, nil, fmt.Errorf("symeig: matrix not symmetric at (%d, %d): %v vs %v", i, j, a[i*n+j], a[j*n+i])
			}
			scale += a[i*n+j] * a[i*n+j]
		}
	}
	v := make([]float64, n*n)
	for i := range n {
		v[i*n+i] = 1
	}
	for sweep := 0; sweep < 100; sweep++ {
		off := 0.0
		for i := range n {
			for j := i + 1; j < n; j++ {
				off += m[i*n+j] * m[i*n+j]
			}
		}
		if off <= 1e-30*scale || off == 0 {
			break
		}
		for p := 0; p < n-1; p++ {
			for q := p + 1; q < n; q++ {
				apq := m[p*n+q]
				if apq == 0 {
					continue
				}
				// The rotation that zeroes (p, q) (Golub & Van Loan, Algorithm 8.4.1), with the
				// smaller root for t so the rotation angle is at most pi/4.
				theta := (m[q*n+q] - m[p*n+p]) / (2 * apq)
				t := 1 / (math.Abs(theta) + math.Sqrt(theta*theta+1))
				if theta < 0 {
					t = -t
				}
				c := 1 / math.Sqrt(t*t+1)
				s := t * c
				for k := range n { // columns p, q of m
					mkp, mkq := m[k*n+p], m[k*n+q]
					m[k*n+p] = c*mkp - s*mkq
					m[k*n+q] = s*mkp + c*mkq
				}
				for k := range n { // rows p, q of m
					mpk, mqk := m[p*n+k], m[q*n+k]
					m[p*n+k] = c*mpk - s*mqk
					m[q*n+k] = s*mpk + c*mqk
				}
				m[p*n+q], m[q*n+p] = 0, 0
				for k := range n {
					vkp, vkq := v[k*n+p], v[k*n+q]
					v[k*n+p] = c*vkp - s*vkq
					v[k*n+q] = s*vkp + c*vkq
				}
			}
		}
	}
	// Sort ascending, permuting the eigenvector columns with the values.
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	for i := 1; i < n; i++ { // insertion sort: n is small and this keeps ties in order
		for j := i; j > 0 && m[idx[j]*n+idx[j]] < m[idx[j-1]*n+idx[j-1]]; j-- {
			idx[j], idx[j-1] = idx[j-1], idx[j]
		}
	}
	vals = make([]float64, n)
	vecs = make([]float64, n*n)
	for c, k := range idx {
		vals[c] = m[k*n+k]
		for r := range n {
			vecs[r*n+c] = v[r*n+k]
		}
	}
	return vals, vecs, nil
}

// sqrtPSD returns the symmetric square root V diag(sqrt(max(l, 0))) V^T of a symmetric positive
// semi-definite matrix; eigenvalues below zero are rounding and are taken as zero.
func sqrtPSD(a []float64, n int) ([]float64, error) {
	vals, vecs, err := SymEig(a, n)
	if err != nil {
		return nil, err
	}
	out := make([]float64, n*n)
	for k, l := range vals {
		r := math.Sqrt(max(l, 0))
		if r == 0 {
			continue
		}
		for i := range n {
			vik := vecs[i*n+k] * r
			if vik == 0 {
				continue
			}
			row := out[i*n : (i+1)*n]
			for j := range n {
				row[j] += vik * vecs[j*n+k]
			}
		}
	}
	return out, nil
}

// matMul returns the n x n product a b.
func matMul(a, b []float64, n int) []float64 {
	out := make([]float64, n*n)
	for i := range n {
		row := out[i*n : (i+1)*n]
		for k := range n {
			aik := a[i*n+k]
			if aik == 0 {
				continue
			}
			bk := b[k*n : (k+1)*n]
			for j := range n {
				row[j] += aik * bk[j]
			}
		}
	}
	return out
}

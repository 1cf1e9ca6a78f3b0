package eval

import (
	"fmt"
	"math"
)

// Gaussian is the maximum-likelihood-free fit of a feature set: its mean and unbiased covariance.
type Gaussian struct {
	Dim  int
	N    int       // number of feature vectors it was fitted to
	Mean []float64 // Dim
	Cov  []float64 // Dim x Dim, row-major, divided by N-1 (as numpy.cov and pytorch-fid)
}

// Fit returns the Gaussian fit of n feature vectors of length dim (row-major in x), accumulated in
// float64 around a first-pass mean so that large offsets do not cancel.
func Fit(x []float64, n, dim int) (*Gaussian, error) {
	if n < 2 || dim < 1 || len(x) != n*dim {
		return nil, fmt.Errorf("fit: need n >= 2 vectors of dim >= 1 in n*dim values, got n=%d dim=%d with %d values", n, dim, len(x))
	}
	g := &Gaussian{Dim: dim, N: n, Mean: make([]float64, dim), Cov: make([]float64, dim*dim)}
	for i := range n {
		for j, v := range x[i*dim : (i+1)*dim] {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, fmt.Errorf("fit: non-finite feature %v (vector %d, component %d)", v, i, j)
			}
			g.Mean[j] += v
		}
	}
	for j := range g.Mean {
		g.Mean[j] /= float64(n)
	}
	d := make([]float64, dim)
	for i := range n {
		for j, v := range x[i*dim : (i+1)*dim] {
			d[j] = v - g.Mean[j]
		}
		for a := range dim {
			if d[a] == 0 {
				continue
			}
			row := g.Cov[a*dim : (a+1)*dim]
			for b := a; b < dim; b++ {
				row[b] += d[a] * d[b]
			}
		}
	}
	for a := range dim {
		for b := a; b < dim; b++ {
			c := g.Cov[a*dim+b] / float64(n-1)
			g.Cov[a*dim+b], g.Cov[b*dim+a] = c, c
		}
	}
	return g, nil
}

// Frechet returns the Frechet (2-Wasserstein squared) distance between N(m1, S1) and N(m2, S2),
//
//	|m1 - m2|^2 + tr S1 + tr S2 - 2 tr (S1^{1/2} S2 S1^{1/2})^{1/2}
//
// (Dowson & Landau 1982; FID of Heusel et al. 2017). The cross term uses the symmetric form, whose
// square root is that of a symmetric positive semi-definite matrix and so comes from one eigen
// decomposition with real, non-negative eigenvalues: no complex parts to discard as scipy's sqrtm of
// the non-symmetric S1 S2 needs. It has the same trace, since S1 S2 is similar to S1^{1/2} S2 S1^{1/2}.
// The result is clamped at 0 (rounding can make identical fits give -1e-13).
func Frechet(a, b *Gaussian) (float64, error) {
	if a == nil || b == nil || a.Dim != b.Dim || len(a.Mean) != a.Dim || len(b.Mean) != b.Dim ||
		len(a.Cov) != a.Dim*a.Dim || len(b.Cov) != b.Dim*b.Dim {
		return 0, fmt.Errorf("frechet: mismatched or malformed Gaussians")
	}
	n := a.Dim
	dist := 0.0
	for i := range n {
		d := a.Mean[i] - b.Mean[i]
		dist += d * d
		dist += a.Cov[i*n+i] + b.Cov[i*n+i]
	}
	r1, err := sqrtPSD(a.Cov, n)
	if err != nil {
		return 0, fmt.Errorf("frechet: sqrt of the first covariance: %w", err)
	}
	m := matMul(matMul(r1, b.Cov, n), r1, n)
	for i := range n { // exact symmetry for the eigen solver; the product is symmetric up to rounding
		for j := i + 1; j < n; j++ {
			s := (m[i*n+j] + m[j*n+i]) / 2
			m[i*n+j], m[j*n+i] = s, s
		}
	}
	vals, _, err := SymEig(m, n)
	if err != nil {
		return 0, fmt.Errorf("frechet: cross term: %w", err)
	}
	tr := 0.0
	for _, l := range vals {
		tr += math.Sqrt(max(l, 0))
	}
	return max(0, dist-2*tr), nil
}

// FID fits Gaussians to two feature sets (rows of dim values) and returns their Frechet distance.
func FID(x []float64, nx int, y []float64, ny int, dim int) (float64, error) {
	gx, err := Fit(x, nx, dim)
	if err != nil {
		return 0, err
	}
	gy, err := Fit(y, ny, dim)
	if err != nil {
		return 0, err
	}
	return Frechet(gx, gy)
}

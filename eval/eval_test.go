package eval

import (
	"math"
	"math/rand/v2"
	"testing"
)

func randn(r *rand.Rand, n int) []float64 {
	x := make([]float64, n)
	for i := range x {
		x[i] = r.NormFloat64()
	}
	return x
}

// randSPD returns a random symmetric positive definite n x n matrix A A^T/n + eps I.
func randSPD(r *rand.Rand, n int, eps float64) []float64 {
	a := randn(r, n*n)
	out := make([]float64, n*n)
	for i := range n {
		for j := range n {
			s := 0.0
			for k := range n {
				s += a[i*n+k] * a[j*n+k]
			}
			out[i*n+j] = s / float64(n)
		}
		out[i*n+i] += eps
	}
	return out
}

// TestSymEig: V diag(l) V^T rebuilds the matrix, V is orthonormal, values ascend; a known spectrum.
func TestSymEig(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{1, 2, 7, 40} {
		a := randSPD(r, n, 0)
		for i := range n { // make it indefinite too
			a[i*n+i] -= 0.5
		}
		vals, vecs, err := SymEig(a, n)
		if err != nil {
			t.Fatal(err)
		}
		worst, orth := 0.0, 0.0
		for i := range n {
			for j := range n {
				s, o := 0.0, 0.0
				for k := range n {
					s += vecs[i*n+k] * vals[k] * vecs[j*n+k]
					o += vecs[k*n+i] * vecs[k*n+j]
				}
				worst = max(worst, math.Abs(s-a[i*n+j]))
				if i == j {
					o--
				}
				orth = max(orth, math.Abs(o))
			}
		}
		for k := 1; k < n; k++ {
			if vals[k] < vals[k-1] {
				t.Errorf("n=%d: eigenvalues not ascending: %v", n, vals)
			}
		}
		if worst > 1e-12 || orth > 1e-12 {
			t.Errorf("n=%d: reconstruction error %g, orthogonality error %g", n, worst, orth)
		}
	}
	// [[2,1],[1,2]] has eigenvalues 1 and 3.
	vals, _, err := SymEig([]float64{2, 1, 1, 2}, 2)
	if err != nil || math.Abs(vals[0]-1) > 1e-15 || math.Abs(vals[1]-3) > 1e-15 {
		t.Errorf("eig [[2,1],[1,2]] = %v, %v", vals, err)
	}
	for _, bad := range [][]float64{{1, 2, 3, 4}, {1, math.NaN(), math.NaN(), 1}, {1, 2, 3}} {
		if _, _, err := SymEig(bad, 2); err == nil {
			t.Errorf("SymEig(%v) accepted", bad)
		}
	}
}

// TestFrechetClosedForms checks the distance against cases with known answers.
func TestFrechetClosedForms(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	const n, dim = 500, 16
	x := randn(r, n*dim)
	for i := range x { // correlated, non-trivial covariance
		if i%dim > 0 {
			x[i] += 0.7 * x[i-1]
		}
	}
	t.Run("identical", func(t *testing.T) {
		d, err := FID(x, n, x, n, dim)
		if err != nil || math.Abs(d) > 1e-9 {
			t.Errorf("identical sets: %v, %v", d, err)
		}
	})
	t.Run("shifted mean", func(t *testing.T) {
		shift := randn(r, dim)
		y := make([]float64, len(x))
		want := 0.0
		for i := range x {
			y[i] = x[i] + shift[i%dim]
		}
		for _, s := range shift {
			want += s * s
		}
		d, err := FID(x, n, y, n, dim)
		if err != nil || math.Abs(d-want) > 1e-9*want {
			t.Errorf("shift: %v, want |d|^2 = %v (%v)", d, want, err)
		}
	})
	t.Run("diagonal", func(t *testing.T) {
		a := &Gaussian{Dim: 3, Mean: []float64{0, 1, 2}, Cov: []float64{4, 0, 0, 0, 1, 0, 0, 0, 0.25}}
		b := &Gaussian{Dim: 3, Mean: []float64{1, 1, 0}, Cov: []float64{1, 0, 0, 0, 9, 0, 0, 0, 0.25}}
		// |dm|^2 + sum (sqrt(a_i) - sqrt(b_i))^2 = (1 + 0 + 4) + (1 + 4 + 0).
		d, err := Frechet(a, b)
		if err != nil || math.Abs(d-10) > 1e-12 {
			t.Errorf("diagonal: %v, want 10 (%v)", d, err)
		}
	})
	t.Run("2x2 non-commuting", func(t *testing.T) {
		// For 2x2 PSD M, tr sqrt(M) = sqrt(tr M + 2 sqrt(det M)); with M = S1^{1/2} S2 S1^{1/2},
		// tr M = tr(S1 S2) and det M = det S1 det S2.
		for range 20 {
			s1, s2 := randSPD(r, 2, 0.01), randSPD(r, 2, 0.01)
			a := &Gaussian{Dim: 2, Mean: []float64{0, 0}, Cov: s1}
			b := &Gaussian{Dim: 2, Mean: []float64{0, 0}, Cov: s2}
			trProd := s1[0]*s2[0] + s1[1]*s2[2] + s1[2]*s2[1] + s1[3]*s2[3]
			det := (s1[0]*s1[3] - s1[1]*s1[2]) * (s2[0]*s2[3] - s2[1]*s2[2])
			want := s1[0] + s1[3] + s2[0] + s2[3] - 2*math.Sqrt(trProd+2*math.Sqrt(det))
			d, err := Frechet(a, b)
			if err != nil || math.Abs(d-want) > 1e-12*(1+want) {
				t.Errorf("2x2: %v, want %v (%v)", d, want, err)
			}
		}
	})
	t.Run("symmetric", func(t *testing.T) {
		y := randn(r, n*dim)
		d1, _ := FID(x, n, y, n, dim)
		d2, _ := FID(y, n, x, n, dim)
		if math.Abs(d1-d2) > 1e-9*d1 {
			t.Errorf("FID(x,y) %v != FID(y,x) %v", d1, d2)
		}
	})
	t.Run("singular", func(t *testing.T) {
		// Fewer vectors than dimensions: rank-deficient covariances must still give a finite,
		// symmetric answer (the case of a generator that collapses onto a few images).
		small := x[:5*dim]
		d, err := FID(small, 5, x, n, dim)
		if err != nil || math.IsNaN(d) || d <= 0 {
			t.Errorf("rank-deficient: %v, %v", d, err)
		}
	})
	if _, err := FID(x, n, x[:dim*3], 3, dim+1); err == nil {
		t.Error("mismatched sizes accepted")
	}
	if _, err := Fit([]float64{1, math.Inf(1), 2, 3}, 2, 2); err == nil {
		t.Error("Inf feature accepted")
	}
}

// TestFitCovariance: the fit equals the unbiased covariance computed directly.
func TestFitCovariance(t *testing.T) {
	x := []float64{1, 2, 3, 5, 2, 9, 1e6 + 1, 1e6 + 3, 1e6 + 2} // 3 vectors of dim 3, one far away
	g, err := Fit(x, 3, 3)
	if err != nil {
		t.Fatal(err)
	}
	for a := range 3 {
		ma := (x[a] + x[3+a] + x[6+a]) / 3
		if math.Abs(g.Mean[a]-ma) > 1e-9 {
			t.Errorf("mean[%d] = %v, want %v", a, g.Mean[a], ma)
		}
		for b := range 3 {
			mb := (x[b] + x[3+b] + x[6+b]) / 3
			c := 0.0
			for i := range 3 {
				c += (x[3*i+a] - ma) * (x[3*i+b] - mb)
			}
			c /= 2
			if math.Abs(g.Cov[a*3+b]-c) > 1e-9*math.Abs(c)+1e-6 {
				t.Errorf("cov[%d,%d] = %v, want %v", a, b, g.Cov[a*3+b], c)
			}
		}
	}
}

// TestKIDHandComputed: X = {0, 1}, Y = {1, 2} in 1-D with k(a, b) = (ab + 1)^3:
// kxx off-diagonal mean k(0,1) = 1, kyy k(1,2) = 27, kxy mean (1 + 1 + 8 + 27)/4 = 9.25, so
// MMD^2 = 1 + 27 - 18.5 = 9.5 for every subset (each subset is the whole set, in some order).
func TestKIDHandComputed(t *testing.T) {
	m, s, err := KID([]float64{0, 1}, 2, []float64{1, 2}, 2, 1, KIDOptions{Subsets: 5, SubsetSize: 2, Seed: 1})
	if err != nil || math.Abs(m-9.5) > 1e-12 || s > 1e-12 {
		t.Errorf("KID = %v ± %v (%v), want 9.5 ± 0", m, s, err)
	}
}

// TestKIDUnbiased: for two samples of one distribution the estimate averages to 0 within its
// standard error, for another distribution it is clearly positive, and it does not depend on Threads.
func TestKIDUnbiased(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	const n, dim = 600, 8
	x, y := randn(r, n*dim), randn(r, n*dim)
	o := KIDOptions{Subsets: 50, SubsetSize: 100, Seed: 7}
	m, s, err := KID(x, n, y, n, dim, o)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(m) > 4*s/math.Sqrt(50)+1e-3 {
		t.Errorf("same distribution: KID %v ± %v is not 0 within its standard error", m, s)
	}
	z := make([]float64, len(y))
	for i := range y {
		z[i] = 1.3*y[i] + 0.3
	}
	m2, s2, _ := KID(x, n, z, n, dim, o)
	o.Threads = 3
	m3, s3, _ := KID(x, n, z, n, dim, o)
	if m2 < 10*s2/math.Sqrt(50) || m2 != m3 || s2 != s3 {
		t.Errorf("shifted: KID %v ± %v (threads 3: %v ± %v)", m2, s2, m3, s3)
	}
	if _, _, err := KID(x, n, y, n, dim+1, o); err == nil {
		t.Error("wrong dim accepted")
	}
}

func TestClasses(t *testing.T) {
	logits := []float64{
		5, 0, 0, // class 0, p ~ 0.987
		0, 1, 0, // class 1, p ~ 0.58
		0, 0, 9, // class 2
		8, 0, 0, // class 0
	}
	st, err := Classes(logits, 4, 3, 0.9)
	if err != nil {
		t.Fatal(err)
	}
	if st.Histogram[0] != 2 || st.Histogram[1] != 1 || st.Histogram[2] != 1 || st.Confident != 0.75 {
		t.Errorf("histogram %v confident %v", st.Histogram, st.Confident)
	}
	want := 0.5*math.Log(1.5) + 2*0.25*math.Log(0.75)
	if math.Abs(st.KLUniform-want) > 1e-12 {
		t.Errorf("KL %v, want %v", st.KLUniform, want)
	}
	if _, err := Classes(logits, 4, 3, 0); err == nil {
		t.Error("threshold 0 accepted")
	}
	if _, err := Classes([]float64{math.NaN(), 1}, 1, 2, 0.5); err == nil {
		t.Error("NaN logit accepted")
	}
}

// BenchmarkFrechet128 is the cost of one FID from fitted 128-d Gaussians (two eigen decompositions).
func BenchmarkFrechet128(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	a := &Gaussian{Dim: 128, Mean: randn(r, 128), Cov: randSPD(r, 128, 0.01)}
	c := &Gaussian{Dim: 128, Mean: randn(r, 128), Cov: randSPD(r, 128, 0.01)}
	for b.Loop() {
		if _, err := Frechet(a, c); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkKID is one subset of the default KID (1000 vectors per set, 128-d).
func BenchmarkKID(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	x, y := randn(r, 1000*128), randn(r, 1000*128)
	for b.Loop() {
		if _, _, err := KID(x, 1000, y, 1000, 128, KIDOptions{Subsets: 1}); err != nil {
			b.Fatal(err)
		}
	}
}

// TestMMD2Blocked: the blocked Gram sums equal the pair-by-pair formula, including subset sizes that
// leave partial 4x4 blocks and repeated rows across the two sets.
func TestMMD2Blocked(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, tc := range []struct{ n, m, dim int }{{2, 2, 1}, {5, 3, 3}, {9, 5, 7}, {40, 17, 128}, {80, 64, 33}} {
		x, y := randn(r, tc.n*tc.dim), randn(r, tc.n*tc.dim)
		for i := range y {
			y[i] = 0.8*y[i] + 0.3
		}
		ix, iy := r.Perm(tc.n)[:tc.m], r.Perm(tc.n)[:tc.m]
		got, want := mmd2(x, y, ix, iy, tc.dim), mmd2Naive(x, y, ix, iy, tc.dim)
		if math.Abs(got-want) > 1e-12*math.Max(1, math.Abs(want)) {
			t.Errorf("n=%d m=%d dim=%d: blocked %v, pair by pair %v", tc.n, tc.m, tc.dim, got, want)
		}
	}
}

// BenchmarkMMD2Naive is BenchmarkKID's subset with the pair-by-pair sums, for comparison.
func BenchmarkMMD2Naive(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	x, y := randn(r, 1000*128), randn(r, 1000*128)
	ix, iy := r.Perm(1000), r.Perm(1000)
	for b.Loop() {
		mmd2Naive(x, y, ix, iy, 128)
	}
}

// mmd2Naive is mmd2 pair by pair, as the formula reads.
func mmd2Naive(x, y []float64, ix, iy []int, dim int) float64 {
	m := len(ix)
	k := func(a, b []float64) float64 {
		s := dot(a, b)/float64(dim) + 1
		return s * s * s
	}
	var kxx, kyy, kxy float64
	for i := range m {
		xi, yi := x[ix[i]*dim:(ix[i]+1)*dim], y[iy[i]*dim:(iy[i]+1)*dim]
		for j := i + 1; j < m; j++ {
			kxx += k(xi, x[ix[j]*dim:(ix[j]+1)*dim])
			kyy += k(yi, y[iy[j]*dim:(iy[j]+1)*dim])
		}
		for j := range m {
			kxy += k(xi, y[iy[j]*dim:(iy[j]+1)*dim])
		}
	}
	fm := float64(m)
	return 2*(kxx+kyy)/(fm*(fm-1)) - 2*kxy/(fm*fm)
}

func dot(a, b []float64) float64 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}

package diffusion

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"testing"

	"github.com/ddpm-go/ddpm/schedule"
)

// gaussOracle is the exact denoiser of data drawn from N(mu, Sigma) with a full covariance, the
// correlated counterpart of Oracle. The noised data x_t = sqrt(abar) x_0 + sqrt(1-abar) eps are
// N(m, C) with m = sqrt(abar) mu and C = abar Sigma + (1-abar) I, so with d = x_t - m
//
//	eps*(x_t, t) = -sqrt(1-abar) grad log p_t(x_t) = sqrt(1-abar) C^{-1} d
//	x0*(x_t, t)  = E[x_0 | x_t] = mu + sqrt(abar) Sigma C^{-1} d       (Gaussian regression of x_0 on x_t)
//	v*           = sqrt(abar) eps* - sqrt(1-abar) x0*
//
// and the two first are consistent (Tweedie): (x_t - sqrt(1-abar) eps*)/sqrt(abar) = mu +
// (C - (1-abar) I) C^{-1} d / sqrt(abar) = x0*. TestGaussOracle checks both formulas and this identity.
type gaussOracle struct {
	mu    []float64
	sigma []float64 // dim*dim, row-major
	s     *schedule.Schedule
	out   Prediction
	inv   map[int][]float64 // C^{-1} per timestep
}

func (g *gaussOracle) Predict(_ context.Context, x []float64, n, dim, t int, out []float64) error {
	if dim != len(g.mu) || len(x) != n*dim || len(out) != n*dim || t < 0 || t >= g.s.T {
		return fmt.Errorf("gauss oracle: %d values for %d rows of %d at t=%d", len(x), n, dim, t)
	}
	abar := g.s.AlphaBar[t]
	a, b := math.Sqrt(abar), math.Sqrt(1-abar)
	ci, ok := g.inv[t]
	if !ok {
		c := make([]float64, dim*dim)
		for i := range c {
			c[i] = abar * g.sigma[i]
		}
		for i := 0; i < dim; i++ {
			c[i*dim+i] += 1 - abar
		}
		var err error
		if ci, err = invert(c, dim); err != nil {
			return err
		}
		if g.inv == nil {
			g.inv = map[int][]float64{}
		}
		g.inv[t] = ci
	}
	d, y := make([]float64, dim), make([]float64, dim)
	for r := 0; r < n; r++ {
		xr, or := x[r*dim:(r+1)*dim], out[r*dim:(r+1)*dim]
		for i := range d {
			d[i] = xr[i] - a*g.mu[i]
		}
		matVec(ci, d, y) // C^{-1} d
		for i := range or {
			eps := b * y[i]
			x0 := g.mu[i]
			for j := range y {
				x0 += a * g.sigma[i*dim+j] * y[j]
			}
			switch g.out {
			case Eps:
				or[i] = eps
			case X0:
				or[i] = x0
			case V:
				or[i] = a*eps - b*x0
			default:
				return fmt.Errorf("gauss oracle: unknown parameterization %d", int(g.out))
			}
		}
	}
	return nil
}

// matVec writes the product of the square matrix m (row-major) and v into out.
func matVec(m, v, out []float64) {
	d := len(v)
	for i := range out {
		s := 0.0
		for j, vj := range v {
			s += m[i*d+j] * vj
		}
		out[i] = s
	}
}

// invert returns the inverse of the d x d matrix a (row-major) by Gauss-Jordan elimination with
// partial pivoting.
func invert(a []float64, d int) ([]float64, error) {
	m := slices.Clone(a)
	inv := make([]float64, d*d)
	for i := 0; i < d; i++ {
		inv[i*d+i] = 1
	}
	for c := 0; c < d; c++ {
		p := c
		for r := c + 1; r < d; r++ {
			if math.Abs(m[r*d+c]) > math.Abs(m[p*d+c]) {
				p = r
			}
		}
		if m[p*d+c] == 0 {
			return nil, fmt.Errorf("singular matrix")
		}
		for j := 0; j < d; j++ {
			m[c*d+j], m[p*d+j] = m[p*d+j], m[c*d+j]
			inv[c*d+j], inv[p*d+j] = inv[p*d+j], inv[c*d+j]
		}
		f := 1 / m[c*d+c]
		for j := 0; j < d; j++ {
			m[c*d+j] *= f
			inv[c*d+j] *= f
		}
		for r := 0; r < d; r++ {
			if r == c || m[r*d+c] == 0 {
				continue
			}
			g := m[r*d+c]
			for j := 0; j < d; j++ {
				m[r*d+j] -= g * m[c*d+j]
				inv[r*d+j] -= g * inv[c*d+j]
			}
		}
	}
	return inv, nil
}

// sub returns the submatrix of the d x d matrix m on rows ri and columns ci.
func sub(m []float64, d int, ri, ci []int) []float64 {
	out := make([]float64, 0, len(ri)*len(ci))
	for _, i := range ri {
		for _, j := range ci {
			out = append(out, m[i*d+j])
		}
	}
	return out
}

// gaussConditional is the law of the unknown coordinates u of N(mu, Sigma) given the known ones k equal
// to xk: N(mu_u + S_uk S_kk^{-1} (xk - mu_k), S_uu - S_uk S_kk^{-1} S_ku), the Schur complement.
func gaussConditional(t *testing.T, mu, sigma []float64, u, k []int, xk []float64) (mean, cov []float64) {
	t.Helper()
	d := len(mu)
	skkInv, err := invert(sub(sigma, d, k, k), len(k))
	if err != nil {
		t.Fatal(err)
	}
	suk, skk := sub(sigma, d, u, k), len(k)
	// w = S_uk S_kk^{-1} (len(u) x len(k))
	w := make([]float64, len(u)*skk)
	for i := range u {
		for j := 0; j < skk; j++ {
			for l := 0; l < skk; l++ {
				w[i*skk+j] += suk[i*skk+l] * skkInv[l*skk+j]
			}
		}
	}
	mean = make([]float64, len(u))
	cov = sub(sigma, d, u, u)
	for i, ui := range u {
		mean[i] = mu[ui]
		for j, kj := range k {
			mean[i] += w[i*skk+j] * (xk[j] - mu[kj])
		}
		for i2, u2 := range u {
			for j, kj := range k {
				cov[i*len(u)+i2] -= w[i*skk+j] * sigma[kj*d+u2]
			}
		}
	}
	return mean, cov
}

// moments returns the sample mean and covariance of coordinates idx of the rows of x.
func moments(x []float64, dim int, idx []int) (mean, cov []float64) {
	n, m := len(x)/dim, len(idx)
	mean, cov = make([]float64, m), make([]float64, m*m)
	for r := 0; r < n; r++ {
		for i, c := range idx {
			mean[i] += x[r*dim+c] / float64(n)
		}
	}
	for r := 0; r < n; r++ {
		for i, ci := range idx {
			for j, cj := range idx {
				cov[i*m+j] += (x[r*dim+ci] - mean[i]) * (x[r*dim+cj] - mean[j]) / float64(n-1)
			}
		}
	}
	return mean, cov
}

// dist is the Euclidean (Frobenius) distance between two vectors (matrices).
func dist(a, b []float64) float64 {
	s := 0.0
	for i := range a {
		s += (a[i] - b[i]) * (a[i] - b[i])
	}
	return math.Sqrt(s)
}

// TestGaussOracle: for Sigma = s^2 I the correlated oracle is Oracle's one-component mixture in every
// parametrisation; for a correlated Sigma its eps is -sqrt(1-abar) times the finite-difference gradient
// of the log density of N(sqrt(abar) mu, abar Sigma + (1-abar) I), computed through a Cholesky factor
// (not the inverse the oracle uses), and its x0 and v are the same prediction as its eps (Tweedie).
func TestGaussOracle(t *testing.T) {
	s := mustSchedule(t, "cosine", 250, false)
	x := []float64{0.3, -1.2, 2, -0.5, 0.1, 0.7}
	ctx := context.Background()
	iso := &Mixture{Weights: []float64{1}, Means: [][]float64{{0.5, -1, 0.2}}, Stds: []float64{0.7}}
	for _, p := range []Prediction{Eps, X0, V} {
		g := &gaussOracle{mu: iso.Means[0], sigma: []float64{0.49, 0, 0, 0, 0.49, 0, 0, 0, 0.49}, s: s, out: p}
		o := &Oracle{Mixture: iso, Schedule: s, Output: p}
		for _, step := range []int{0, 30, 125, 249} {
			got, want := make([]float64, 6), make([]float64, 6)
			if err := g.Predict(ctx, x, 2, 3, step, got); err != nil {
				t.Fatal(err)
			}
			if err := o.Predict(ctx, x, 2, 3, step, want); err != nil {
				t.Fatal(err)
			}
			for i := range got {
				if math.Abs(got[i]-want[i]) > 1e-12*max(1, math.Abs(want[i])) {
					t.Errorf("isotropic %v t=%d: %v, Oracle %v", p, step, got, want)
					break
				}
			}
		}
	}
	mu, sigma := corrGauss()
	for _, step := range []int{0, 40, 125, 200, 248} {
		abar := s.AlphaBar[step]
		a := math.Sqrt(abar)
		c := make([]float64, 9)
		for i := range c {
			c[i] = abar * sigma[i]
		}
		for i := 0; i < 3; i++ {
			c[i*3+i] += 1 - abar
		}
		logp := gaussLogDensity(c, []float64{a * mu[0], a * mu[1], a * mu[2]})
		out := map[Prediction][]float64{}
		for _, p := range []Prediction{Eps, X0, V} {
			out[p] = make([]float64, 6)
			if err := (&gaussOracle{mu: mu, sigma: sigma, s: s, out: p}).Predict(ctx, x, 2, 3, step, out[p]); err != nil {
				t.Fatal(err)
			}
		}
		for r := 0; r < 2; r++ {
			xr := slices.Clone(x[3*r : 3*r+3])
			for j := range xr {
				const h = 1e-5
				xp, xm := slices.Clone(xr), slices.Clone(xr)
				xp[j] += h
				xm[j] -= h
				fd := -math.Sqrt(1-abar) * (logp(xp) - logp(xm)) / (2 * h)
				if got := out[Eps][3*r+j]; math.Abs(got-fd) > 1e-6*max(1, math.Abs(fd)) {
					t.Errorf("t=%d row %d coord %d: eps %v, finite differences %v", step, r, j, got, fd)
				}
			}
		}
		for _, p := range []Prediction{X0, V} {
			eps := make([]float64, 6)
			if err := X0Eps(p, abar, x, out[p], nil, eps); err != nil {
				t.Fatal(err)
			}
			for i := range eps {
				// An x0 error d is an eps error d sqrt(abar/(1-abar)), large where abar is near 1.
				if math.Abs(eps[i]-out[Eps][i]) > 1e-9*max(1, math.Sqrt(abar/(1-abar))) {
					t.Errorf("t=%d %v: eps %v, eps output %v", step, p, eps, out[Eps])
					break
				}
			}
		}
	}
}

// gaussLogDensity returns log N(x; m, c) through the Cholesky factor of c.
func gaussLogDensity(c, m []float64) func(x []float64) float64 {
	d := len(m)
	l := make([]float64, d*d)
	for i := 0; i < d; i++ {
		for j := 0; j <= i; j++ {
			s := c[i*d+j]
			for k := 0; k < j; k++ {
				s -= l[i*d+k] * l[j*d+k]
			}
			if i == j {
				l[i*d+i] = math.Sqrt(s)
			} else {
				l[i*d+j] = s / l[j*d+j]
			}
		}
	}
	return func(x []float64) float64 {
		y := make([]float64, d)
		q, logdet := 0.0, 0.0
		for i := 0; i < d; i++ {
			s := x[i] - m[i]
			for k := 0; k < i; k++ {
				s -= l[i*d+k] * y[k]
			}
			y[i] = s / l[i*d+i]
			q += y[i] * y[i]
			logdet += math.Log(l[i*d+i])
		}
		return -0.5*q - logdet - 0.5*float64(d)*math.Log(2*math.Pi)
	}
}

// corrGauss is the strongly correlated 3-D Gaussian of the conditional-law tests: stds 1, 0.8, 0.6 and
// correlations 0.95, 0.85, 0.9.
func corrGauss() (mu, sigma []float64) {
	sd := []float64{1, 0.8, 0.6}
	rho := []float64{1, 0.95, 0.85, 0.95, 1, 0.9, 0.85, 0.9, 1}
	sigma = make([]float64, 9)
	for i := 0; i < 3; i++ {
		for j := 0; j < 3; j++ {
			sigma[i*3+j] = rho[i*3+j] * sd[i] * sd[j]
		}
	}
	return []float64{0.3, -0.2, 0.1}, sigma
}

// TestGaussConditionalFormula cross-checks the Schur-complement conditional with the precision matrix
// P = Sigma^{-1}: the conditional covariance is P_uu^{-1} and the mean mu_u - P_uu^{-1} P_uk (x_k - mu_k).
func TestGaussConditionalFormula(t *testing.T) {
	mu, sigma := corrGauss()
	u, k, xk := []int{1, 2}, []int{0}, []float64{1.8}
	mean, cov := gaussConditional(t, mu, sigma, u, k, xk)
	p, err := invert(sigma, 3)
	if err != nil {
		t.Fatal(err)
	}
	cov2, err := invert(sub(p, 3, u, u), 2)
	if err != nil {
		t.Fatal(err)
	}
	puk := sub(p, 3, u, k)
	for i := range u {
		m := mu[u[i]]
		for j := range u {
			m -= cov2[i*2+j] * puk[j] * (xk[0] - mu[0])
		}
		if math.Abs(m-mean[i]) > 1e-12 {
			t.Errorf("conditional mean %v, from the precision matrix %v at %d", mean, m, i)
		}
	}
	if dist(cov, cov2) > 1e-12 {
		t.Errorf("conditional covariance %v, from the precision matrix %v", cov, cov2)
	}
}

// inpaintSamplers are every sampler, with and without their options, on schedule s (T >= 50).
func inpaintSamplers(s *schedule.Schedule) []struct {
	name string
	sm   Sampler
} {
	return []struct {
		name string
		sm   Sampler
	}{
		{"ddpm-beta", &DDPM{Schedule: s}},
		{"ddpm-posterior-20 clip", &DDPM{Schedule: s, Variance: VariancePosterior, Steps: 20, Clip: true}},
		{"ddim-eta0", &DDIM{Schedule: s, Steps: 20}},
		{"ddim-eta1 trailing", &DDIM{Schedule: s, Steps: 20, Eta: 1, Spacing: Trailing}},
		{"ddim-sigmahat epsscale", &DDIM{Schedule: s, Steps: 20, SigmaHat: true, EpsScale: 1.01}},
		{"dpm-solver++", &DPMSolver{Schedule: s, Steps: 15}},
		{"plms clip", &PLMS{Schedule: s, Steps: 15, Clip: true}},
		{"dpm-solver++3m", &DPMSolver{Schedule: s, Steps: 15, Order: 3}},
		{"ipndm-v", &IPNDM{Schedule: s, Steps: 15, Variable: true}},
		{"unipc-3 clip", &UniPC{Schedule: s, Steps: 15, Order: 3, Clip: true}},
		{"repaint j=5 r=3", &RePaint{Schedule: s, JumpLength: 5, Resample: 3}},
		{"repaint posterior r=1", &RePaint{Schedule: s, Variance: VariancePosterior, Resample: 1}},
	}
}

// inpaintProblem is a batch of n rows of the test mixture (dim 2) with known values (NaN where unknown,
// which must never be read) under a shared mask (coordinate 0) or a per-row mask (every pattern).
func inpaintProblem(n int, perRow bool) *Known {
	k := &Known{X0: make([]float64, 2*n), Mask: []float64{1, 0}}
	if perRow {
		k.Mask = make([]float64, 2*n)
	}
	for i := 0; i < n; i++ {
		for j := 0; j < 2; j++ {
			known := j == 0
			if perRow {
				known = (i>>j)&1 == 1 // rows cycle through none, first, second, both
				if known {
					k.Mask[2*i+j] = 1
				}
			}
			k.X0[2*i+j] = math.NaN()
			if known {
				k.X0[2*i+j] = 0.37*float64(i) - 1.1 + 0.61*float64(j)
			}
		}
	}
	return k
}

// isKnown reports whether coordinate j of row i is known.
func isKnown(k *Known, i, dim, j int) bool {
	if len(k.Mask) == dim {
		return k.Mask[j] == 1
	}
	return k.Mask[i*dim+j] == 1
}

// TestInpaintKnownExact: with Options.Known every sampler returns the known coordinates bit for bit,
// for a shared and a per-row mask, never reads X0 where the mask is 0 (NaN there stays out of the
// result), and reports the step after replacement: the callback's final Next has them too. Step 0's X
// and step 1's X hold q_sample(X0, t) with the noise drawn from the row stream right after the draws
// the sampler makes anyway (x_T, then x_T and the step's z), which pins the documented stream order.
func TestInpaintKnownExact(t *testing.T) {
	s := mustSchedule(t, "linear", 100, false)
	const n, dim, seed, start = 8, 2, 17, 3
	for _, p := range []Prediction{Eps, V} {
		o := &Oracle{Mixture: testMixture(), Schedule: s, Output: p}
		for _, perRow := range []bool{false, true} {
			k := inpaintProblem(n, perRow)
			for _, tc := range inpaintSamplers(s) {
				name := fmt.Sprintf("%s %v per-row=%v", tc.name, p, perRow)
				var first []Step
				var last []float64
				x, err := tc.sm.Sample(context.Background(), o, n, dim, Options{Seed: seed, Start: start, Prediction: p, Known: k, Callback: func(st Step) error {
					if len(first) < 2 {
						cp := st
						cp.X = slices.Clone(st.X)
						first = append(first, cp)
					}
					last = slices.Clone(st.Next)
					return nil
				}})
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				for i := 0; i < n; i++ {
					for j := 0; j < dim; j++ {
						v := x[i*dim+j]
						if isKnown(k, i, dim, j) {
							if math.Float64bits(v) != math.Float64bits(k.X0[i*dim+j]) || last[i*dim+j] != v {
								t.Errorf("%s: row %d coord %d is %v (callback %v), known value %v", name, i, j, v, last[i*dim+j], k.X0[i*dim+j])
							}
						} else if math.IsNaN(v) || math.IsInf(v, 0) {
							t.Errorf("%s: unknown row %d coord %d is %v", name, i, j, v)
						}
					}
				}
				// Reproduce the known coordinates of the first two states from the row streams. Before
				// step 1's known noise a row has drawn x_T, the start's known noise and step 0's z; only
				// the number of normals drawn before matters, so they are skipped in one count.
				for step := 0; step < 2; step++ {
					st := first[step]
					abar := s.AlphaBar[st.T]
					for i := 0; i < n; i++ {
						r := RowRNG(seed, start+i)
						for range (step + 1) * dim { // x_T, then step 0's z
							r.NormFloat64()
						}
						if step == 1 { // step 0's known noise came before step 0's z
							for j := 0; j < dim; j++ {
								if isKnown(k, i, dim, j) {
									r.NormFloat64()
								}
							}
						}
						for j := 0; j < dim; j++ {
							if !isKnown(k, i, dim, j) {
								continue
							}
							want := math.Sqrt(abar)*k.X0[i*dim+j] + math.Sqrt(1-abar)*r.NormFloat64()
							if got := st.X[i*dim+j]; math.Abs(got-want) > 1e-15*max(1, math.Abs(want)) {
								t.Errorf("%s: step %d (t=%d) row %d coord %d is %v, q_sample from the row stream gives %v", name, step, st.T, i, j, got, want)
							}
						}
					}
				}
			}
		}
	}
}

// TestInpaintNilAndEmptyMask: Options.Known with a mask of all zeros makes no draws and changes
// nothing, so the result is bit for bit the run without Known, for every sampler (RePaint aside, which
// requires Known). Together with the unchanged tests of the samplers this holds Known == nil to its
// previous behaviour.
func TestInpaintNilAndEmptyMask(t *testing.T) {
	s := mustSchedule(t, "linear", 100, false)
	o := &Oracle{Mixture: testMixture(), Schedule: s}
	const n = 6
	for _, tc := range inpaintSamplers(s) {
		if _, ok := tc.sm.(*RePaint); ok {
			continue
		}
		for _, mask := range [][]float64{{0, 0}, make([]float64, 2*n)} {
			var stepsNil, stepsEmpty [][]float64
			record := func(dst *[][]float64) func(Step) error {
				return func(st Step) error {
					*dst = append(*dst, slices.Clone(st.X), slices.Clone(st.Next))
					return nil
				}
			}
			plain, err := tc.sm.Sample(context.Background(), o, n, 2, Options{Seed: 9, Callback: record(&stepsNil)})
			if err != nil {
				t.Fatal(err)
			}
			empty, err := tc.sm.Sample(context.Background(), o, n, 2, Options{Seed: 9, Callback: record(&stepsEmpty), Known: &Known{X0: make([]float64, 2*n), Mask: mask}})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(plain, empty) || len(stepsNil) != len(stepsEmpty) {
				t.Errorf("%s: an all-zero mask changes the result", tc.name)
				continue
			}
			for i := range stepsNil {
				if !slices.Equal(stepsNil[i], stepsEmpty[i]) {
					t.Errorf("%s: an all-zero mask changes step %d", tc.name, i/2)
					break
				}
			}
		}
	}
}

// TestRePaintNoResampleIsDDPM: RePaint with r = 1 is DDPM over every timestep with Options.Known, bit
// for bit, for both variances and with clipping and eps scaling, as its documentation says.
func TestRePaintNoResampleIsDDPM(t *testing.T) {
	s := mustSchedule(t, "linear", 100, false)
	o := &Oracle{Mixture: testMixture(), Schedule: s}
	for _, perRow := range []bool{false, true} {
		k := inpaintProblem(8, perRow)
		for _, v := range []Variance{VarianceBeta, VariancePosterior} {
			rp := &RePaint{Schedule: s, Variance: v, Resample: 1, Clip: true, EpsScale: 1.02}
			dd := &DDPM{Schedule: s, Variance: v, Clip: true, EpsScale: 1.02}
			a, err := rp.Sample(context.Background(), o, 8, 2, Options{Seed: 2, Known: k})
			if err != nil {
				t.Fatal(err)
			}
			b, err := dd.Sample(context.Background(), o, 8, 2, Options{Seed: 2, Known: k})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(a, b) {
				t.Errorf("%v per-row=%v: RePaint r=1 %v, DDPM %v", v, perRow, a, b)
			}
		}
	}
}

// TestInpaintBatchSplit: sample j depends only on the seed, j and its own row of X0 and Mask: two
// batches with Options.Start and the matching rows give the one-batch result, for every sampler.
func TestInpaintBatchSplit(t *testing.T) {
	s := mustSchedule(t, "linear", 100, false)
	o := &Oracle{Mixture: testMixture(), Schedule: s}
	const n, cut = 9, 4
	for _, perRow := range []bool{false, true} {
		k := inpaintProblem(n, perRow)
		for _, tc := range inpaintSamplers(s) {
			all, err := tc.sm.Sample(context.Background(), o, n, 2, Options{Seed: 3, Known: k})
			if err != nil {
				t.Fatal(err)
			}
			for _, part := range [][2]int{{0, cut}, {cut, n}} {
				kp := &Known{X0: k.X0[2*part[0] : 2*part[1]], Mask: k.Mask}
				if perRow {
					kp.Mask = k.Mask[2*part[0] : 2*part[1]]
				}
				x, err := tc.sm.Sample(context.Background(), o, part[1]-part[0], 2, Options{Seed: 3, Start: part[0], Known: kp})
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(x, all[2*part[0]:2*part[1]]) {
					t.Errorf("%s per-row=%v: rows %d..%d differ from one batch", tc.name, perRow, part[0], part[1]-1)
				}
			}
		}
	}
}

// TestRePaintTimes: the visited sequence of the jump schedule on a small case written out by hand,
// and the call count T + (r-1) j P of the paper's setting (T = 250, j = r = 10: 2410 calls).
func TestRePaintTimes(t *testing.T) {
	ts, err := (&RePaint{Schedule: mustSchedule(t, "linear", 6, false), JumpLength: 2, Resample: 2}).Times()
	if err != nil {
		t.Fatal(err)
	}
	// Down from 5; jump points 0 and 2 (below T - j = 4), each revisited once.
	want := []int{5, 4, 3, 2, 3, 4, 3, 2, 1, 0, 1, 2, 1, 0, -1}
	if !slices.Equal(ts, want) {
		t.Errorf("T=6 j=2 r=2: %v, want %v", ts, want)
	}
	for _, tc := range []struct {
		T, j, r, calls int
	}{{250, 0, 0, 2410}, {250, 10, 1, 250}, {100, 10, 10, 910}, {100, 7, 3, 100 + 2*7*14}, {10, 20, 5, 10}} {
		rp := &RePaint{Schedule: mustSchedule(t, "linear", tc.T, false), JumpLength: tc.j, Resample: tc.r}
		ts, err := rp.Times()
		if err != nil {
			t.Fatal(err)
		}
		calls := 0
		for i := 1; i < len(ts); i++ {
			switch ts[i] - ts[i-1] {
			case -1:
				calls++
			case 1:
			default:
				t.Fatalf("T=%d j=%d r=%d: jump from %d to %d", tc.T, tc.j, tc.r, ts[i-1], ts[i])
			}
			if ts[i] >= tc.T || ts[i] < -1 {
				t.Fatalf("T=%d j=%d r=%d: timestep %d", tc.T, tc.j, tc.r, ts[i])
			}
		}
		if ts[0] != tc.T-1 || ts[len(ts)-1] != -1 || calls != tc.calls {
			t.Errorf("T=%d j=%d r=%d: from %d to %d with %d calls, want %d", tc.T, tc.j, tc.r, ts[0], ts[len(ts)-1], calls, tc.calls)
		}
	}
}

// TestRePaintReplay replays RePaint row by row with the scalar formulas and the documented stream
// order (x_T, the start's known noise; per down step z then the known noise, none onto the clean
// sample; per up step z), and the paper's steps: down, DDPM's x_{t-1} = c0 x0_hat + ct x_t + sqrt(beta_t)
// z with the known part replaced by q_sample(X0, t-1); up, x_t = sqrt(1-beta_t) x_{t-1} + sqrt(beta_t) z.
// Every row must agree to rounding, which pins the jump schedule, the up steps' beta and the draws.
func TestRePaintReplay(t *testing.T) {
	s := mustSchedule(t, "cosine", 30, false)
	rp := &RePaint{Schedule: s, JumpLength: 4, Resample: 3}
	ts, err := rp.Times()
	if err != nil {
		t.Fatal(err)
	}
	o := &Oracle{Mixture: testMixture(), Schedule: s}
	const n, dim, seed, start = 4, 2, 8, 5
	k := inpaintProblem(n, true)
	got, err := rp.Sample(context.Background(), o, n, dim, Options{Seed: seed, Start: start, Known: k})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		r := RowRNG(seed, start+i)
		x0k := k.X0[i*dim : (i+1)*dim]
		x, out := make([]float64, dim), make([]float64, dim)
		replace := func(t int) {
			for j := range x {
				if !isKnown(k, i, dim, j) {
					continue
				}
				if t < 0 {
					x[j] = x0k[j]
				} else {
					x[j] = math.Sqrt(s.AlphaBar[t])*x0k[j] + math.Sqrt(1-s.AlphaBar[t])*r.NormFloat64()
				}
			}
		}
		for j := range x {
			x[j] = r.NormFloat64()
		}
		replace(ts[0])
		for q := 0; q+1 < len(ts); q++ {
			from, to := ts[q], ts[q+1]
			if to > from {
				beta := s.Betas[to]
				for j := range x {
					x[j] = math.Sqrt(1-beta)*x[j] + math.Sqrt(beta)*r.NormFloat64()
				}
				continue
			}
			if err := o.Predict(context.Background(), x, 1, dim, from, out); err != nil {
				t.Fatal(err)
			}
			ab := s.AlphaBar[from]
			c0, ct, _ := PosteriorCoefs(s, from, to)
			sigma := math.Sqrt(1 - ab/s.AlphaBarPrev(to))
			for j := range x {
				x0 := (x[j] - math.Sqrt(1-ab)*out[j]) / math.Sqrt(ab)
				x[j] = c0*x0 + ct*x[j]
			}
			if to >= 0 {
				for j := range x {
					x[j] += sigma * r.NormFloat64()
				}
			}
			replace(to)
		}
		for j := range x {
			if g := got[i*dim+j]; math.Abs(g-x[j]) > 1e-9*max(1, math.Abs(x[j])) {
				t.Errorf("row %d coordinate %d: RePaint %v, replay %v", i, j, g, x[j])
			}
		}
	}
}

// TestRePaintCallbackAndCancel: one report per model call, Index counting them, Total their number,
// T and Prev the down steps of Times in order; cancelling stops after the current call.
func TestRePaintCallbackAndCancel(t *testing.T) {
	s := mustSchedule(t, "linear", 40, false)
	rp := &RePaint{Schedule: s, JumpLength: 4, Resample: 3}
	ts, _ := rp.Times()
	var down [][2]int
	for i := 1; i < len(ts); i++ {
		if ts[i] < ts[i-1] {
			down = append(down, [2]int{ts[i-1], ts[i]})
		}
	}
	cp := &countingPredictor{Predictor: &Oracle{Mixture: testMixture(), Schedule: s}}
	k := inpaintProblem(3, false)
	var seen []Step
	var lastNext []float64
	x, err := rp.Sample(context.Background(), cp, 3, 2, Options{Known: k, Callback: func(st Step) error {
		seen = append(seen, Step{Index: st.Index, Total: st.Total, T: st.T, Prev: st.Prev})
		lastNext = slices.Clone(st.Next)
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	if cp.calls != len(down) || len(seen) != len(down) {
		t.Fatalf("%d calls and %d reports for %d down steps", cp.calls, len(seen), len(down))
	}
	for i, st := range seen {
		if st.Index != i || st.Total != len(down) || st.T != down[i][0] || st.Prev != down[i][1] {
			t.Errorf("report %d: %+v, want T %d Prev %d of %d", i, st, down[i][0], down[i][1], len(down))
		}
	}
	if !slices.Equal(lastNext, x) {
		t.Error("the final report's Next is not the result")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cp.calls = 0
	_, err = rp.Sample(ctx, cp, 3, 2, Options{Known: k, Callback: func(st Step) error {
		if st.Index == 5 {
			cancel()
		}
		return nil
	}})
	if !errors.Is(err, context.Canceled) || cp.calls != 6 {
		t.Errorf("cancel after call 5: %v after %d calls", err, cp.calls)
	}
	stop := errors.New("stop")
	if _, err := rp.Sample(context.Background(), cp, 3, 2, Options{Known: k, Callback: func(Step) error { return stop }}); !errors.Is(err, stop) {
		t.Errorf("callback error: got %v", err)
	}
}

// TestInpaintErrors: malformed inputs are errors, not panics.
func TestInpaintErrors(t *testing.T) {
	s := mustSchedule(t, "linear", 50, false)
	o := &Oracle{Mixture: testMixture(), Schedule: s}
	good := func() *Known { return &Known{X0: make([]float64, 6), Mask: []float64{1, 0}} }
	bad := map[string]*Known{
		"short X0":        {X0: make([]float64, 5), Mask: []float64{1, 0}},
		"long X0":         {X0: make([]float64, 8), Mask: []float64{1, 0}},
		"mask length 3":   {X0: make([]float64, 6), Mask: []float64{1, 0, 1}},
		"mask length 0":   {X0: make([]float64, 6)},
		"mask 0.5":        {X0: make([]float64, 6), Mask: []float64{0.5, 0}},
		"mask NaN":        {X0: make([]float64, 6), Mask: []float64{1, 1, 0, math.NaN(), 0, 0}},
		"mask -1":         {X0: make([]float64, 6), Mask: []float64{1, 1, 0, 1, 0, -1}},
		"NaN known value": {X0: []float64{0, 0, 0, 0, math.NaN(), 0}, Mask: []float64{1, 0}},
		"Inf known value": {X0: []float64{0, 0, 0, 0, 0, math.Inf(1)}, Mask: []float64{1, 0, 1, 0, 0, 1}},
	}
	samplers := inpaintSamplers(s)
	for name, k := range bad {
		for _, tc := range samplers {
			if _, err := tc.sm.Sample(context.Background(), o, 3, 2, Options{Known: k}); err == nil {
				t.Errorf("%s with %s: no error", tc.name, name)
			}
		}
	}
	for _, rp := range []*RePaint{
		{Schedule: s, JumpLength: -1},
		{Schedule: s, Resample: -2},
		{Schedule: s, Variance: 7},
		{Schedule: s, EpsScale: -1},
		{Schedule: s, JumpLength: 2, Resample: 1 << 30},
		{},
	} {
		if _, err := rp.Times(); err == nil {
			t.Errorf("%+v: Times gives no error", rp)
		}
		if _, err := rp.Sample(context.Background(), o, 3, 2, Options{Known: good()}); err == nil {
			t.Errorf("%+v: Sample gives no error", rp)
		}
	}
	if _, err := (&RePaint{Schedule: s}).Sample(context.Background(), o, 3, 2, Options{}); err == nil {
		t.Error("RePaint without Known: no error")
	}
	if _, err := (&RePaint{Schedule: s}).Sample(context.Background(), nil, 3, 2, Options{Known: good()}); err == nil {
		t.Error("RePaint with a nil predictor: no error")
	}
	if _, err := (&RePaint{Schedule: s}).Sample(context.Background(), o, 3, 2, Options{Known: good(), XT: []float64{1}}); err == nil {
		t.Error("RePaint with a short x_T: no error")
	}
}

// gaussLaw is the exact law N(m, P) of every row of a sampler's state when the data are N(mu, Sigma)
// and the predictor is gaussOracle: every step is affine in the state plus independent Gaussian noise
// (the oracle's x0 is affine in x_t, the replacement and the up steps are affine too), so the mean and
// covariance follow exactly. It is an independent implementation of the samplers' arithmetic in matrix
// form, playing the part gaussianMoments plays for the 1-D samplers.
type gaussLaw struct {
	d     int
	m, p  []float64 // mean, covariance (row-major)
	mu    []float64
	sigma []float64
	s     *schedule.Schedule
	known []int     // known coordinates
	xk    []float64 // their values
}

// newGaussLaw is the law of x_T with its known part replaced at timestep t.
func newGaussLaw(s *schedule.Schedule, mu, sigma []float64, known []int, xk []float64, t int) *gaussLaw {
	d := len(mu)
	g := &gaussLaw{d: d, m: make([]float64, d), p: make([]float64, d*d), mu: mu, sigma: sigma, s: s, known: known, xk: xk}
	for i := 0; i < d; i++ {
		g.p[i*d+i] = 1
	}
	g.replace(t)
	return g
}

// affine maps the law through x' = A x + c + N(0, diag(q)).
func (g *gaussLaw) affine(a, c, q []float64) {
	d := g.d
	m := make([]float64, d)
	matVec(a, g.m, m)
	ap := make([]float64, d*d) // A P
	for i := 0; i < d; i++ {
		for j := 0; j < d; j++ {
			for k := 0; k < d; k++ {
				ap[i*d+j] += a[i*d+k] * g.p[k*d+j]
			}
		}
	}
	p := make([]float64, d*d) // A P A^T + diag(q)
	for i := 0; i < d; i++ {
		m[i] += c[i]
		for j := 0; j < d; j++ {
			for k := 0; k < d; k++ {
				p[i*d+j] += ap[i*d+k] * a[j*d+k]
			}
		}
		p[i*d+i] += q[i]
	}
	g.m, g.p = m, p
}

// replace is the replacement of the known part by q_sample(xk, t), or xk itself for t < 0.
func (g *gaussLaw) replace(t int) {
	d := g.d
	a, c, q := make([]float64, d*d), make([]float64, d), make([]float64, d)
	for i := 0; i < d; i++ {
		a[i*d+i] = 1
	}
	ab := g.s.AlphaBarPrev(t)
	for j, k := range g.known {
		a[k*d+k] = 0
		c[k] = math.Sqrt(ab) * g.xk[j]
		q[k] = 1 - ab
	}
	g.affine(a, c, q)
}

// down is a reverse step from t to prev with the oracle's prediction x0 = G x + h, G = sqrt(abar)
// Sigma C^{-1}, h = mu - sqrt(abar) G mu, eps = (x - sqrt(abar) x0)/sqrt(1-abar): the step's
// next = w0 x0 + we eps + wx x + noise z (std noise) is affine in x. Then the replacement at prev.
func (g *gaussLaw) down(t, prev int, w0, we, wx, noise float64) {
	d := g.d
	abar := g.s.AlphaBar[t]
	ra, rb := math.Sqrt(abar), math.Sqrt(1-abar)
	c := make([]float64, d*d)
	for i := range c {
		c[i] = abar * g.sigma[i]
	}
	for i := 0; i < d; i++ {
		c[i*d+i] += 1 - abar
	}
	ci, _ := invert(c, d)
	G := make([]float64, d*d)
	for i := 0; i < d; i++ {
		for j := 0; j < d; j++ {
			for k := 0; k < d; k++ {
				G[i*d+j] += ra * g.sigma[i*d+k] * ci[k*d+j]
			}
		}
	}
	h := make([]float64, d)
	matVec(G, g.mu, h)
	for i := range h {
		h[i] = g.mu[i] - ra*h[i]
	}
	a, off, q := make([]float64, d*d), make([]float64, d), make([]float64, d)
	for i := 0; i < d; i++ {
		for j := 0; j < d; j++ {
			id := 0.0
			if i == j {
				id = 1
			}
			// x0 row: G; eps row: (I - ra G)/rb.
			a[i*d+j] = w0*G[i*d+j] + we*(id-ra*G[i*d+j])/rb + wx*id
		}
		off[i] = w0*h[i] - we*ra*h[i]/rb
		q[i] = noise * noise
	}
	g.affine(a, off, q)
	g.replace(prev)
}

// ddpmDown is DDPM's step from t to prev with variance v (no noise onto the clean sample).
func (g *gaussLaw) ddpmDown(t, prev int, v Variance) {
	c0, ct, post := PosteriorCoefs(g.s, t, prev)
	variance := post
	if v == VarianceBeta {
		variance = 1 - g.s.AlphaBar[t]/g.s.AlphaBarPrev(prev)
	}
	if prev < 0 {
		variance = 0
	}
	g.down(t, prev, c0, 0, ct, math.Sqrt(variance))
}

// ddimDown is DDIM's deterministic (eta = 0) step from t to prev.
func (g *gaussLaw) ddimDown(t, prev int) {
	abPrev := g.s.AlphaBarPrev(prev)
	g.down(t, prev, math.Sqrt(abPrev), math.Sqrt(1-abPrev), 0, 0)
}

// up is the forward step from t-1 to t: x_t = sqrt(1-beta_t) x_{t-1} + sqrt(beta_t) z.
func (g *gaussLaw) up(t int) {
	d := g.d
	a, c, q := make([]float64, d*d), make([]float64, d), make([]float64, d)
	beta := g.s.Betas[t]
	for i := 0; i < d; i++ {
		a[i*d+i] = math.Sqrt(1 - beta)
		q[i] = beta
	}
	g.affine(a, c, q)
}

// exactRePaint is the law of RePaint's output, following its Times.
func exactRePaint(t *testing.T, rp *RePaint, mu, sigma []float64, known []int, xk []float64) *gaussLaw {
	ts, err := rp.Times()
	if err != nil {
		t.Fatal(err)
	}
	g := newGaussLaw(rp.Schedule, mu, sigma, known, xk, ts[0])
	for i := 0; i+1 < len(ts); i++ {
		if ts[i+1] > ts[i] {
			g.up(ts[i+1])
		} else {
			g.ddpmDown(ts[i], ts[i+1], rp.Variance)
		}
	}
	return g
}

// exactWalk is the law of DDPM's (ddim false) or DDIM eta = 0's (ddim true) output over ts.
func exactWalk(s *schedule.Schedule, ts []int, ddim bool, v Variance, mu, sigma []float64, known []int, xk []float64) *gaussLaw {
	g := newGaussLaw(s, mu, sigma, known, xk, ts[0])
	for k, t := range ts {
		prev := -1
		if k+1 < len(ts) {
			prev = ts[k+1]
		}
		if ddim {
			g.ddimDown(t, prev)
		} else {
			g.ddpmDown(t, prev, v)
		}
	}
	return g
}

// pick returns the entries idx of v.
func pick(v []float64, idx []int) []float64 {
	out := make([]float64, len(idx))
	for i, j := range idx {
		out[i] = v[j]
	}
	return out
}

// TestInpaintGaussianConditional measures both inpainting methods against the exact conditional law
// on the strongly correlated Gaussian of corrGauss (correlations 0.85 to 0.95), coordinate 0 known at
// 1.8 (1.5 std above its mean), coordinates 1 and 2 unknown: their law given it is the Schur-complement
// Gaussian (gaussConditional). Cosine schedule, T = 250, the paper's j = r = 10 for RePaint.
//
// Exact part: gaussLaw gives each method's output law in closed form, so its bias against the
// conditional is known without sampling error. Replacement is biased by more than one conditional std
// (mean off by 0.35 with DDPM, 0.61 with DDIM eta = 0): the known part, noised independently of the
// unknown part's path, pulls the unknown part toward the known value only weakly. RePaint's bias falls
// roughly as 1/r (0.16, 0.048, 0.022, 0.011 at r = 2, 5, 10, 20 for j = 10) and tends to 0 as r grows
// with small jumps (0.0014 at j = 1, r = 200); it must be below a tenth of replacement's at r = 10.
//
// Sampling part: 4000 rows of each sampler must match their exact law within 5 standard errors in
// every mean and covariance entry (which checks the implementations, RePaint's up steps and jump
// schedule included, against an independent matrix form of their arithmetic), and RePaint's sampled
// error against the conditional must be below a fifth of replacement's.
func TestInpaintGaussianConditional(t *testing.T) {
	mu, sigma := corrGauss()
	known, unknown, xk := []int{0}, []int{1, 2}, []float64{1.8}
	condMean, condCov := gaussConditional(t, mu, sigma, unknown, known, xk)
	const T = 250
	s := mustSchedule(t, "cosine", T, false)
	ts, err := Timesteps(T, T, Linspace)
	if err != nil {
		t.Fatal(err)
	}
	bias := func(g *gaussLaw) (mean, cov float64) {
		return dist(pick(g.m, unknown), condMean), dist(sub(g.p, 3, unknown, unknown), condCov)
	}
	t.Logf("conditional law: mean %.4f, cov %.4f", condMean, condCov)

	// Exact biases.
	laws := map[string]*gaussLaw{
		"ddpm":      exactWalk(s, ts, false, VarianceBeta, mu, sigma, known, xk),
		"ddim-eta0": exactWalk(s, ts, true, VarianceBeta, mu, sigma, known, xk),
	}
	for _, name := range []string{"ddpm", "ddim-eta0"} {
		bm, bc := bias(laws[name])
		t.Logf("exact  replacement %-10s mean bias %.4f  cov bias %.4f", name, bm, bc)
	}
	replMean, replCov := bias(laws["ddpm"])
	lastMean, lastCov := replMean, replCov
	for _, r := range []int{2, 5, 10, 20, 50} {
		g := exactRePaint(t, &RePaint{Schedule: s, JumpLength: 10, Resample: r}, mu, sigma, known, xk)
		bm, bc := bias(g)
		t.Logf("exact  repaint j=10 r=%-3d      mean bias %.4f  cov bias %.4f", r, bm, bc)
		if !(bm < lastMean && bc < lastCov) {
			t.Errorf("repaint r=%d: bias %.4f %.4f does not fall below the previous r's %.4f %.4f", r, bm, bc, lastMean, lastCov)
		}
		lastMean, lastCov = bm, bc
		if r == 10 {
			laws["repaint"] = g
			if bm > replMean/10 || bc > replCov/10 {
				t.Errorf("repaint r=10: bias %.4f %.4f, want below a tenth of replacement's %.4f %.4f", bm, bc, replMean, replCov)
			}
		}
	}
	bm, bc := bias(exactRePaint(t, &RePaint{Schedule: s, JumpLength: 1, Resample: 200}, mu, sigma, known, xk))
	t.Logf("exact  repaint j=1 r=200       mean bias %.4f  cov bias %.4f", bm, bc)
	if bm > 0.003 || bc > 0.002 {
		t.Errorf("repaint j=1 r=200: bias %.4f %.4f, want it near 0", bm, bc)
	}

	// Sampling.
	const N = 4000
	k := &Known{X0: make([]float64, 3*N), Mask: []float64{1, 0, 0}}
	for i := 0; i < N; i++ {
		k.X0[3*i] = xk[0]
	}
	sampled := map[string]float64{}
	for _, tc := range []struct {
		name string
		sm   Sampler
	}{
		{"ddpm", &DDPM{Schedule: s}},
		{"ddim-eta0", &DDIM{Schedule: s, Steps: T}},
		{"repaint", &RePaint{Schedule: s}},
	} {
		x, err := tc.sm.Sample(context.Background(), &gaussOracle{mu: mu, sigma: sigma, s: s}, N, 3, Options{Seed: 11, Known: k})
		if err != nil {
			t.Fatal(err)
		}
		law := laws[tc.name]
		m, c := moments(x, 3, unknown)
		lm, lc := pick(law.m, unknown), sub(law.p, 3, unknown, unknown)
		for i := range m {
			if se := math.Sqrt(lc[i*2+i] / N); math.Abs(m[i]-lm[i]) > 5*se {
				t.Errorf("%s: mean of coordinate %d is %.4f, its exact law's %.4f (se %.4f)", tc.name, unknown[i], m[i], lm[i], se)
			}
			for j := range m {
				if se := math.Sqrt((lc[i*2+i]*lc[j*2+j] + lc[i*2+j]*lc[i*2+j]) / N); math.Abs(c[i*2+j]-lc[i*2+j]) > 5*se {
					t.Errorf("%s: covariance (%d, %d) is %.4f, its exact law's %.4f (se %.4f)", tc.name, unknown[i], unknown[j], c[i*2+j], lc[i*2+j], se)
				}
			}
		}
		sampled[tc.name] = dist(m, condMean) + dist(c, condCov)
		t.Logf("sample %-17s mean %.4f cov %.4f: error to the conditional %.4f (mean) %.4f (cov), to its exact law %.4f %.4f",
			tc.name, m, c, dist(m, condMean), dist(c, condCov), dist(m, lm), dist(c, lc))
	}
	if sampled["repaint"] > sampled["ddpm"]/5 || sampled["repaint"] > sampled["ddim-eta0"]/5 {
		t.Errorf("sampled error (mean + cov) to the conditional: repaint %.4f, replacement ddpm %.4f ddim %.4f; want repaint below a fifth", sampled["repaint"], sampled["ddpm"], sampled["ddim-eta0"])
	}
}

// TestInpaintMixtureComponent: on a 2-component isotropic mixture in 2-D, a known first coordinate at
// a component's mean identifies that component (the other's likelihood there is negligible), so the
// exact conditional law of the second coordinate is that component's, N(mu_k[1], s_k^2). Rows alternate
// between the components (per-row X0, one shared mask); 1000 rows each, so the sampling error is about
// s_k/32 in the mean and 2.2% in the std.
//
// RePaint (T = 250 cosine, j = r = 10) must match within 4 standard errors for equal and for unequal
// (0.9/0.1) weights. Replacement is approximate here too. With equal weights it still follows the
// right component, but not exactly: DDPM's mean must be within 0.2 of it (the other component's is 2
// away) and its std within 10% (measured: mean off by 0.04 and 0.11, std by 2% and 0.5%); DDIM eta = 0 is
// off by about 0.25 in the mean and 20% in the std (logged, not asserted). With weights 0.9/0.1
// replacement pulls the minority component's rows toward the majority's (DDPM's mean off by 0.27,
// DDIM's by 0.6), while RePaint is unaffected by the weights: its mean error there must be below a third
// of DDPM's.
func TestInpaintMixtureComponent(t *testing.T) {
	s := mustSchedule(t, "cosine", 250, false)
	const N = 2000
	for _, w := range []float64{0.5, 0.9} {
		m := &Mixture{Weights: []float64{w, 1 - w}, Means: [][]float64{{-2, 1}, {2, -1}}, Stds: []float64{0.4, 0.6}}
		o := &Oracle{Mixture: m, Schedule: s}
		k := &Known{X0: make([]float64, 2*N), Mask: []float64{1, 0}}
		for i := 0; i < N; i++ {
			k.X0[2*i] = m.Means[i%2][0]
			k.X0[2*i+1] = math.NaN()
		}
		meanErr := map[string][2]float64{}
		for _, tc := range []struct {
			name      string
			sm        Sampler
			mean, std float64 // tolerances: absolute on the mean, relative on the std; 0: not asserted
		}{
			{"repaint", &RePaint{Schedule: s}, 4, 4}, // in standard errors
			{"ddpm", &DDPM{Schedule: s}, 0.2, 0.1},
			{"ddim-eta0", &DDIM{Schedule: s, Steps: 50}, 0, 0},
		} {
			x, err := tc.sm.Sample(context.Background(), o, N, 2, Options{Seed: 5, Known: k})
			if err != nil {
				t.Fatal(err)
			}
			var errs [2]float64
			for c := 0; c < 2; c++ {
				var v []float64
				for i := c; i < N; i += 2 {
					v = append(v, x[2*i+1])
				}
				mean, variance := meanVar(v)
				dm, ds := math.Abs(mean-m.Means[c][1]), math.Abs(math.Sqrt(variance)/m.Stds[c]-1)
				errs[c] = dm
				t.Logf("w=%.1f %-9s component %d: mean %.4f (want %v, err %.4f) std %.4f (want %v, rel err %.3f)", w, tc.name, c, mean, m.Means[c][1], dm, math.Sqrt(variance), m.Stds[c], ds)
				tolMean, tolStd := tc.mean, tc.std
				if tc.name == "repaint" {
					nc := float64(len(v))
					tolMean, tolStd = tc.mean*m.Stds[c]/math.Sqrt(nc), tc.std/math.Sqrt(2*nc)
				}
				if tolMean > 0 && (w == 0.5 || tc.name == "repaint") && (dm > tolMean || ds > tolStd) {
					t.Errorf("w=%.1f %s component %d: mean %.4f std %.4f, want %v and %v within %.3f and %.1f%%", w, tc.name, c, mean, math.Sqrt(variance), m.Means[c][1], m.Stds[c], tolMean, 100*tolStd)
				}
			}
			meanErr[tc.name] = errs
		}
		if w == 0.9 && meanErr["repaint"][1] > meanErr["ddpm"][1]/3 {
			t.Errorf("w=0.9 minority component: repaint mean error %.4f, replacement ddpm %.4f; want below a third", meanErr["repaint"][1], meanErr["ddpm"][1])
		}
	}
}

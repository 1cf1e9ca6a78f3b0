package diffusion

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/ddpm-go/ddpm/schedule"
)

func mustSchedule(t testing.TB, name string, T int, zero bool) *schedule.Schedule {
	t.Helper()
	s, err := schedule.New(name, T, zero)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func meanVar(x []float64) (mean, variance float64) {
	for _, v := range x {
		mean += v
	}
	mean /= float64(len(x))
	for _, v := range x {
		variance += (v - mean) * (v - mean)
	}
	return mean, variance / float64(len(x)-1)
}

// TestClosedFormMatchesChain runs the one-step chain x_s = sqrt(1-beta_s) x_{s-1} + sqrt(beta_s) z from
// random data and compares the moments of x_t (and its covariance with x_0) with both the closed
// form's prediction and QSample's samples.
func TestClosedFormMatchesChain(t *testing.T) {
	const N = 20000
	for _, name := range []string{"linear", "cosine"} {
		s := mustSchedule(t, name, 1000, false)
		r := rand.New(rand.NewPCG(1, 2))
		x0 := make([]float64, N)
		for i := range x0 {
			x0[i] = 0.5 + 0.3*r.NormFloat64() // data ~ N(0.5, 0.09)
		}
		chain := append([]float64(nil), x0...)
		closed := make([]float64, N)
		noise := make([]float64, N)
		checkAt := map[int]bool{0: true, 9: true, 299: true, 999: true}
		for step := 0; step < s.T; step++ {
			a, b := math.Sqrt(1-s.Betas[step]), math.Sqrt(s.Betas[step])
			for i := range chain {
				chain[i] = a*chain[i] + b*r.NormFloat64()
			}
			if !checkAt[step] {
				continue
			}
			for i := range noise {
				noise[i] = r.NormFloat64()
			}
			QSample(s, x0, step, noise, closed)
			ab := s.AlphaBar[step]
			wantMean := math.Sqrt(ab) * 0.5
			wantVar := ab*0.09 + 1 - ab
			wantCov := math.Sqrt(ab) * 0.09
			for _, got := range []struct {
				what string
				x    []float64
			}{{"chain", chain}, {"QSample", closed}} {
				m, v := meanVar(got.x)
				cov := 0.0
				for i := range x0 {
					cov += (x0[i] - 0.5) * (got.x[i] - m)
				}
				cov /= N
				// 5 standard errors of each estimate.
				if math.Abs(m-wantMean) > 5*math.Sqrt(wantVar/N) {
					t.Errorf("%s %s t=%d: mean %.5f, want %.5f", name, got.what, step, m, wantMean)
				}
				if math.Abs(v-wantVar) > 5*wantVar*math.Sqrt(2.0/N) {
					t.Errorf("%s %s t=%d: variance %.5f, want %.5f", name, got.what, step, v, wantVar)
				}
				if math.Abs(cov-wantCov) > 5*math.Sqrt(0.09*wantVar/N) {
					t.Errorf("%s %s t=%d: cov(x0, xt) %.5f, want %.5f", name, got.what, step, cov, wantCov)
				}
			}
		}
	}
}

// TestPosteriorBayes integrates Bayes' rule q(x_prev | x_t, x_0) ∝ q(x_t | x_prev) q(x_prev | x_0) on a
// fine 1-D grid and compares its mean and variance with DDPM eq. 6-7 (and the respaced jumps).
func TestPosteriorBayes(t *testing.T) {
	s := mustSchedule(t, "linear", 1000, false)
	const x0 = 0.7
	tests := []struct{ t, prev int }{{1, 0}, {10, 9}, {500, 499}, {999, 998}, {500, 300}, {999, 0}, {40, -1}}
	for _, tc := range tests {
		abT, abPrev := s.AlphaBar[tc.t], s.AlphaBarPrev(tc.prev)
		xt := math.Sqrt(abT)*x0 + math.Sqrt(1-abT)*0.8
		var mean, variance float64
		if tc.prev < 0 {
			// One step to the data: the posterior is a point mass at x0.
			mean = x0
		} else {
			priorMean, priorStd := math.Sqrt(abPrev)*x0, math.Sqrt(1-abPrev)
			stepA, stepVar := math.Sqrt(abT/abPrev), 1-abT/abPrev
			const G = 200001
			lo, h := priorMean-12*priorStd, 24*priorStd/(G-1)
			logw := make([]float64, G)
			best := math.Inf(-1)
			for i := range logw {
				u := lo + float64(i)*h
				d1, d2 := xt-stepA*u, u-priorMean
				logw[i] = -0.5*d1*d1/stepVar - 0.5*d2*d2/(priorStd*priorStd)
				best = max(best, logw[i])
			}
			var z, m1, m2 float64
			for i, l := range logw {
				u := lo + float64(i)*h
				w := math.Exp(l - best)
				z += w
				m1 += w * u
				m2 += w * u * u
			}
			mean = m1 / z
			variance = m2/z - mean*mean
		}
		c0, ct, v := PosteriorCoefs(s, tc.t, tc.prev)
		gotMean := c0*x0 + ct*xt
		if math.Abs(gotMean-mean) > 1e-6 || math.Abs(v-variance) > 1e-6*max(variance, 1e-3) {
			t.Errorf("t=%d prev=%d: posterior mean %.9f var %.9g; Bayes on a grid %.9f %.9g", tc.t, tc.prev, gotMean, v, mean, variance)
		}
		if tc.prev == tc.t-1 {
			out := []float64{0}
			if pv := PosteriorMean(s, []float64{x0}, []float64{xt}, tc.t, out); out[0] != gotMean || pv != v {
				t.Errorf("PosteriorMean(t=%d) = %v, %v; PosteriorCoefs gives %v, %v", tc.t, out[0], pv, gotMean, v)
			}
		}
	}
}

// TestPredictions checks the eps/x0/v conversions and targets against each other, and the loss
// weighting stated in Loss's doc comment.
func TestPredictions(t *testing.T) {
	s := mustSchedule(t, "cosine", 1000, false)
	r := rand.New(rand.NewPCG(3, 4))
	const D = 5
	x0, eps, xt := make([]float64, D), make([]float64, D), make([]float64, D)
	for _, step := range []int{0, 100, 500, 998} {
		for i := range x0 {
			x0[i], eps[i] = r.NormFloat64(), r.NormFloat64()
		}
		QSample(s, x0, step, eps, xt)
		ab := s.AlphaBar[step]
		for _, p := range []Prediction{Eps, X0, V} {
			target := make([]float64, D)
			if err := Target(p, ab, x0, eps, target); err != nil {
				t.Fatal(err)
			}
			gx0, geps := make([]float64, D), make([]float64, D)
			if err := X0Eps(p, ab, xt, target, gx0, geps); err != nil {
				t.Fatal(err)
			}
			for i := range x0 {
				if math.Abs(gx0[i]-x0[i]) > 1e-8 || math.Abs(geps[i]-eps[i]) > 1e-8 {
					t.Fatalf("%v t=%d: recovered x0 %v eps %v, want %v %v", p, step, gx0[i], geps[i], x0[i], eps[i])
				}
			}
			// A model error d in eps space, seen in p's space.
			pert := make([]float64, D)
			for i := range pert {
				pert[i] = eps[i] + 0.01*float64(i+1)
			}
			px0 := make([]float64, D)
			_ = X0Eps(Eps, ab, xt, pert, px0, nil)
			ptarget := make([]float64, D)
			_ = Target(p, ab, px0, pert, ptarget)
			lossEps := Loss(pert, eps, nil)
			want := map[Prediction]float64{Eps: lossEps, V: lossEps / ab, X0: (1 - ab) / ab * lossEps}[p]
			if got := Loss(ptarget, target, nil); math.Abs(got-want) > 1e-9*max(1, want) {
				t.Errorf("%v t=%d: loss %v, want %v from the eps loss", p, step, got, want)
			}
		}
	}
	if err := X0Eps(Eps, 0, xt, eps, x0, eps[:0]); err == nil {
		t.Error("X0Eps(Eps, abar=0) gave no error")
	}
	for _, name := range []string{"eps", "x0", "v"} {
		p, err := ParsePrediction(name)
		if err != nil || p.String() != name {
			t.Errorf("ParsePrediction(%q) = %v, %v", name, p, err)
		}
	}
	if _, err := ParsePrediction("noise"); err == nil {
		t.Error("ParsePrediction(noise) gave no error")
	}
}

func TestTrainingBatch(t *testing.T) {
	s := mustSchedule(t, "linear", 100, false)
	const n, D = 4, 3
	r := rand.New(rand.NewPCG(5, 6))
	x0, noise := make([]float64, n*D), make([]float64, n*D)
	for i := range x0 {
		x0[i], noise[i] = r.NormFloat64(), r.NormFloat64()
	}
	ts := []int{0, 99, 50, 7}
	xt, target := make([]float64, n*D), make([]float64, n*D)
	if err := TrainingBatch(s, V, x0, n, D, ts, noise, xt, target); err != nil {
		t.Fatal(err)
	}
	for i, step := range ts {
		ab := s.AlphaBar[step]
		for j := 0; j < D; j++ {
			k := i*D + j
			wantXt := math.Sqrt(ab)*x0[k] + math.Sqrt(1-ab)*noise[k]
			wantV := math.Sqrt(ab)*noise[k] - math.Sqrt(1-ab)*x0[k]
			if math.Abs(xt[k]-wantXt) > 1e-12 || math.Abs(target[k]-wantV) > 1e-12 {
				t.Fatalf("row %d (t=%d): xt %v target %v, want %v %v", i, step, xt[k], target[k], wantXt, wantV)
			}
		}
	}
	perRow := make([]float64, n)
	total := Loss(xt, target, perRow)
	avg := (perRow[0] + perRow[1] + perRow[2] + perRow[3]) / 4
	if math.Abs(total-avg) > 1e-12 {
		t.Errorf("Loss total %v, mean of rows %v", total, avg)
	}
	for _, bad := range [][3]int{{12, 11, 4}, {12, 12, 5}, {0, 0, 0}} {
		if l := Loss(make([]float64, bad[0]), make([]float64, bad[1]), make([]float64, bad[2])); !math.IsNaN(l) {
			t.Errorf("Loss of %d/%d values in %d rows = %v, want NaN", bad[0], bad[1], bad[2], l)
		}
	}
	if err := TrainingBatch(s, Eps, x0, n, D, []int{0, 100, 0, 0}, noise, xt, target); err == nil {
		t.Error("timestep 100 of T=100 accepted")
	}
	if err := TrainingBatch(s, Eps, x0, n, D, ts[:3], noise, xt, target); err == nil {
		t.Error("3 timesteps for 4 rows accepted")
	}
}

package diffusion

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"testing"
)

// countingPredictor wraps a Predictor and counts calls.
type countingPredictor struct {
	Predictor
	calls int
}

func (c *countingPredictor) Predict(ctx context.Context, x []float64, n, dim, t int, out []float64) error {
	c.calls++
	return c.Predictor.Predict(ctx, x, n, dim, t, out)
}

// TestDDIMFullIsDDPM: with S = T, DDIM eta = 1 is DDPM with the posterior variance (its sigma is the
// posterior's and its mean the posterior mean), and DDIM sigma-hat is DDPM with sigma^2 = beta_t (the
// same mean, noise sqrt(1 - abar_t/abar_{t-1}) = sqrt(beta_t)); given the same noise each pair agrees
// step for step. The FID table's S = 1000 column leans on this: those cells are DDPM's two rows.
func TestDDIMFullIsDDPM(t *testing.T) {
	m := testMixture()
	s := mustSchedule(t, "linear", 1000, false)
	o := &Oracle{Mixture: m, Schedule: s}
	const n = 16
	for _, tc := range []struct {
		name string
		ddpm *DDPM
		ddim *DDIM
	}{
		{"eta=1 vs posterior", &DDPM{Schedule: s, Variance: VariancePosterior}, &DDIM{Schedule: s, Steps: 1000, Eta: 1}},
		{"sigma-hat vs beta", &DDPM{Schedule: s, Variance: VarianceBeta}, &DDIM{Schedule: s, Steps: 1000, SigmaHat: true}},
	} {
		var ddpmSteps [][]float64
		opts := Options{Seed: 7, Callback: func(st Step) error {
			ddpmSteps = append(ddpmSteps, append([]float64(nil), st.Next...))
			return nil
		}}
		a, err := tc.ddpm.Sample(context.Background(), o, n, 2, opts)
		if err != nil {
			t.Fatal(err)
		}
		worst := 0.0
		opts.Callback = func(st Step) error {
			for i, v := range st.Next {
				worst = max(worst, math.Abs(v-ddpmSteps[st.Index][i]))
			}
			return nil
		}
		b, err := tc.ddim.Sample(context.Background(), o, n, 2, opts)
		if err != nil {
			t.Fatal(err)
		}
		for i := range a {
			worst = max(worst, math.Abs(a[i]-b[i]))
		}
		if len(ddpmSteps) != 1000 || worst > 1e-9 {
			t.Errorf("%s: %d steps, worst difference %g", tc.name, len(ddpmSteps), worst)
		}
	}
}

// TestDDIMDeterministic: eta = 0 ignores the seed, so a given x_T gives the same samples bit for bit.
func TestDDIMDeterministic(t *testing.T) {
	m := testMixture()
	s := mustSchedule(t, "linear", 1000, false)
	o := &Oracle{Mixture: m, Schedule: s}
	const n = 32
	first, err := (&DDIM{Schedule: s, Steps: 50}).Sample(context.Background(), o, n, 2, Options{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	var xT []float64
	cb := func(st Step) error {
		if st.Index == 0 {
			xT = append([]float64(nil), st.X...)
		}
		return nil
	}
	if _, err := (&DDIM{Schedule: s, Steps: 50}).Sample(context.Background(), o, n, 2, Options{Seed: 1, Callback: cb}); err != nil {
		t.Fatal(err)
	}
	again, err := (&DDIM{Schedule: s, Steps: 50}).Sample(context.Background(), o, n, 2, Options{Seed: 99, XT: xT})
	if err != nil {
		t.Fatal(err)
	}
	for i := range first {
		if first[i] != again[i] {
			t.Fatalf("eta=0 from the same x_T differs at %d: %v vs %v", i, first[i], again[i])
		}
	}
}

// TestRowReproducibility: row i depends on the seed and its global index only, for every sampler, and
// passing the x_T a run would draw gives that run's result.
func TestRowReproducibility(t *testing.T) {
	m := testMixture()
	s := mustSchedule(t, "cosine", 200, false)
	o := &Oracle{Mixture: m, Schedule: s}
	samplers := map[string]Sampler{
		"ddpm-beta":      &DDPM{Schedule: s},
		"ddpm-posterior": &DDPM{Schedule: s, Variance: VariancePosterior, Clip: true},
		"ddim-eta0.5":    &DDIM{Schedule: s, Steps: 20, Eta: 0.5, Spacing: Trailing},
		"ddim-sigmahat":  &DDIM{Schedule: s, Steps: 20, SigmaHat: true},
		"dpm-solver++":   &DPMSolver{Schedule: s, Steps: 20},
		"plms":           &PLMS{Schedule: s, Steps: 20, Spacing: Trailing, Clip: true},
	}
	for name, sm := range samplers {
		var xT []float64
		all, err := sm.Sample(context.Background(), o, 8, 2, Options{Seed: 5, Callback: func(st Step) error {
			if st.Index == 0 {
				xT = append([]float64(nil), st.X...)
			}
			return nil
		}})
		if err != nil {
			t.Fatal(err)
		}
		tail, err := sm.Sample(context.Background(), o, 4, 2, Options{Seed: 5, Start: 4})
		if err != nil {
			t.Fatal(err)
		}
		withXT, err := sm.Sample(context.Background(), o, 8, 2, Options{Seed: 5, XT: xT})
		if err != nil {
			t.Fatal(err)
		}
		other, _ := sm.Sample(context.Background(), o, 8, 2, Options{Seed: 6})
		for i := range tail {
			if tail[i] != all[8+i] {
				t.Fatalf("%s: rows 4..7 with start=4 differ from n=8 at %d: %v vs %v", name, i, tail[i], all[8+i])
			}
		}
		for i := range all {
			if withXT[i] != all[i] {
				t.Fatalf("%s: passing the drawn x_T changes the result at %d", name, i)
			}
		}
		if other[0] == all[0] {
			t.Errorf("%s: seeds 5 and 6 give the same first value", name)
		}
	}
}

func TestCancellationAndCallbackErrors(t *testing.T) {
	s := mustSchedule(t, "linear", 100, false)
	cp := &countingPredictor{Predictor: &Oracle{Mixture: testMixture(), Schedule: s}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err := (&DDPM{Schedule: s}).Sample(ctx, cp, 4, 2, Options{Callback: func(st Step) error {
		if st.Index == 5 {
			cancel()
		}
		return nil
	}})
	if !errors.Is(err, context.Canceled) || cp.calls != 6 {
		t.Errorf("cancel after step 5: err %v after %d predictor calls, want context.Canceled after 6", err, cp.calls)
	}
	stop := errors.New("stop")
	_, err = (&DDIM{Schedule: s, Steps: 10}).Sample(context.Background(), cp, 4, 2, Options{Callback: func(st Step) error {
		if st.Index == 2 {
			return stop
		}
		return nil
	}})
	if !errors.Is(err, stop) {
		t.Errorf("callback error: got %v", err)
	}
	nan := PredictorFunc(func(_ context.Context, x []float64, n, dim, t int, out []float64) error {
		for i := range out {
			out[i] = math.NaN()
		}
		return nil
	})
	if _, err := (&DDPM{Schedule: s}).Sample(context.Background(), nan, 2, 2, Options{}); err == nil {
		t.Error("NaN predictor output accepted")
	}
}

func TestSamplerErrors(t *testing.T) {
	s := mustSchedule(t, "linear", 100, false)
	zs := mustSchedule(t, "linear", 100, true)
	o := &Oracle{Mixture: testMixture(), Schedule: s}
	tests := []struct {
		name string
		sm   Sampler
		pred Predictor
		n    int
		opts Options
	}{
		{"ddim steps 0", &DDIM{Schedule: s}, o, 2, Options{}},
		{"ddim steps > T", &DDIM{Schedule: s, Steps: 101}, o, 2, Options{}},
		{"ddim eta < 0", &DDIM{Schedule: s, Steps: 10, Eta: -0.1}, o, 2, Options{}},
		{"ddim eta NaN", &DDIM{Schedule: s, Steps: 10, Eta: math.NaN()}, o, 2, Options{}},
		{"ddpm no schedule", &DDPM{}, o, 2, Options{}},
		{"n = 0", &DDPM{Schedule: s}, o, 0, Options{}},
		{"x_T too short", &DDPM{Schedule: s}, o, 2, Options{XT: []float64{1, 2, 3}}},
		{"eps at zero SNR", &DDPM{Schedule: zs}, &Oracle{Mixture: testMixture(), Schedule: zs}, 2, Options{}},
	}
	for _, tc := range tests {
		if _, err := tc.sm.Sample(context.Background(), tc.pred, tc.n, 2, tc.opts); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
}

// TestClip: with clipping, the final sample is a clipped x0 prediction, so it lies in [-1, 1] even for
// a mixture that does not.
func TestClip(t *testing.T) {
	s := mustSchedule(t, "linear", 200, false)
	o := &Oracle{Mixture: testMixture(), Schedule: s}
	for _, sm := range []Sampler{&DDPM{Schedule: s, Clip: true}, &DDIM{Schedule: s, Steps: 20, Clip: true}} {
		x, err := sm.Sample(context.Background(), o, 200, 2, Options{Seed: 3})
		if err != nil {
			t.Fatal(err)
		}
		outside := 0
		for _, v := range x {
			if v < -1 || v > 1 {
				outside++
			}
		}
		if outside > 0 {
			t.Errorf("%T with Clip: %d values outside [-1, 1]", sm, outside)
		}
	}
}

// TestRecovery: every sampler, driven by the exact oracle, reproduces the mixture it was given. For
// DDPM-1000 the tolerances are tighter than the recovery bar (weights 0.015, stds 8%); for few-step DDIM they
// sit about 1.3x above the measured errors (docs/core.md), since there the discretisation error is real.
func TestRecovery(t *testing.T) {
	m := testMixture()
	s := mustSchedule(t, "linear", 1000, false)
	zs := mustSchedule(t, "linear", 1000, true)
	type tol struct{ weight, mean, std float64 }
	tests := []struct {
		name string
		sm   Sampler
		pred Prediction
		sch  bool // zero-SNR schedule
		n    int
		tol  tol
	}{
		{"ddpm-1000 beta", &DDPM{Schedule: s}, Eps, false, 20000, tol{0.015, 0.03, 0.04}},
		{"ddpm-1000 posterior", &DDPM{Schedule: s, Variance: VariancePosterior}, Eps, false, 20000, tol{0.015, 0.03, 0.04}},
		{"ddpm-1000 posterior v zero-SNR", &DDPM{Schedule: zs, Variance: VariancePosterior}, V, true, 20000, tol{0.015, 0.03, 0.04}},
		{"ddim-100 eta0", &DDIM{Schedule: s, Steps: 100}, Eps, false, 10000, tol{0.015, 0.04, 0.04}},
		// Few stochastic steps: eta = 1 loses the variance of x0 given x_t (under-dispersed), sigma-hat
		// over-corrects (over-dispersed); see Bao et al. 2022 (Analytic-DPM) on the optimal variance.
		{"ddim-50 eta1", &DDIM{Schedule: s, Steps: 50, Eta: 1}, Eps, false, 10000, tol{0.015, 0.06, 0.18}},
		{"ddim-50 sigma-hat", &DDIM{Schedule: s, Steps: 50, SigmaHat: true}, Eps, false, 10000, tol{0.015, 0.06, 0.13}},
		// Ten steps of the linear schedule: the ODE's discretisation error pulls the modes inwards.
		{"ddim-10 eta0", &DDIM{Schedule: s, Steps: 10}, Eps, false, 10000, tol{0.015, 0.3, 0.25}},
		{"ddim-10 eta0 x0", &DDIM{Schedule: s, Steps: 10}, X0, false, 10000, tol{0.015, 0.3, 0.25}},
		{"ddim-10 eta1 trailing", &DDIM{Schedule: s, Steps: 10, Eta: 1, Spacing: Trailing}, Eps, false, 10000, tol{0.035, 0.3, 0.35}},
	}
	for _, tc := range tests {
		sch := s
		if tc.sch {
			sch = zs
		}
		o := &Oracle{Mixture: m, Schedule: sch, Output: tc.pred}
		x, err := tc.sm.Sample(context.Background(), o, tc.n, 2, Options{Seed: 11, Prediction: tc.pred})
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		rec, err := Fit(m, x, tc.n)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%-32s weight err %.4f  mean err %.4f  std rel err %.4f  %s", tc.name, rec.WeightErr, rec.MeanErr, rec.StdRelErr, fmtFit(rec))
		if rec.WeightErr > tc.tol.weight || rec.MeanErr > tc.tol.mean || rec.StdRelErr > tc.tol.std {
			t.Errorf("%s: errors weight %.4f mean %.4f std %.4f exceed %+v", tc.name, rec.WeightErr, rec.MeanErr, rec.StdRelErr, tc.tol)
		}
	}
}

func fmtFit(r *Recovery) string {
	s := ""
	for _, c := range r.Components {
		s += fmt.Sprintf("[w %.3f mu %.3f s %.3f] ", c.Weight, c.Mean, c.Std)
	}
	return s
}

// TestRowRNGIndependent: the first normals of neighbouring rows are uncorrelated.
func TestRowRNGIndependent(t *testing.T) {
	const N = 50000
	var sxy, sxx, syy float64
	prev := RowRNG(1, 0).NormFloat64()
	for i := 1; i <= N; i++ {
		cur := RowRNG(1, i).NormFloat64()
		sxy += prev * cur
		sxx += prev * prev
		syy += cur * cur
		prev = cur
	}
	if r := sxy / math.Sqrt(sxx*syy); math.Abs(r) > 5/math.Sqrt(N) {
		t.Errorf("correlation of neighbouring rows' first normals %.4f", r)
	}
	if RowRNG(1, 3).Uint64() != RowRNG(1, 3).Uint64() || RowRNG(1, 3).Uint64() == RowRNG(2, 3).Uint64() {
		t.Error("RowRNG is not a function of (seed, index)")
	}
}

// TestStepReports: the callback sees the sampler's timestep sequence in order, Prev is the next
// timestep (-1 at the end), each step's X is the previous step's Next, and the last Next is the result.
func TestStepReports(t *testing.T) {
	s := mustSchedule(t, "linear", 1000, false)
	o := &Oracle{Mixture: testMixture(), Schedule: s}
	d := &DDIM{Schedule: s, Steps: 5, Eta: 0.3, Spacing: Trailing}
	want, _ := d.Timesteps()
	var seen []Step
	x, err := d.Sample(context.Background(), o, 3, 2, Options{Seed: 4, Callback: func(st Step) error {
		cp := st
		cp.X, cp.X0, cp.Next = append([]float64(nil), st.X...), append([]float64(nil), st.X0...), append([]float64(nil), st.Next...)
		seen = append(seen, cp)
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != len(want) {
		t.Fatalf("%d steps reported, want %d", len(seen), len(want))
	}
	for k, st := range seen {
		prev := -1
		if k+1 < len(want) {
			prev = want[k+1]
		}
		if st.Index != k || st.Total != len(want) || st.T != want[k] || st.Prev != prev {
			t.Errorf("step %d: Index %d Total %d T %d Prev %d; want T %d Prev %d", k, st.Index, st.Total, st.T, st.Prev, want[k], prev)
		}
		if k > 0 && !slices.Equal(st.X, seen[k-1].Next) {
			t.Errorf("step %d: X is not step %d's Next", k, k-1)
		}
	}
	if last := seen[len(seen)-1]; !slices.Equal(last.Next, x) || !slices.Equal(last.X0, x) {
		t.Error("the final Next differs from the result, or from the final x0 prediction (the last step lands on it exactly)")
	}
}

package diffusion

import (
	"context"
	"math"
	"slices"
	"testing"

	"github.com/ddpm-go/ddpm/schedule"
)

// classOf returns the labels i % K for n rows: every class in one batch.
func classOf(n, K int) []int {
	labels := make([]int, n)
	for i := range labels {
		labels[i] = i % K
	}
	return labels
}

// rowsOf returns the rows of x (dimension dim) whose label is c.
func rowsOf(x []float64, labels []int, dim, c int) []float64 {
	var out []float64
	for i, l := range labels {
		if l == c {
			out = append(out, x[i*dim:(i+1)*dim]...)
		}
	}
	return out
}

// gaussianStats returns the mean of rows (dimension dim) and their std pooled over the dimensions.
func gaussianStats(x []float64, dim int) (mean []float64, std float64) {
	n := len(x) / dim
	mean = make([]float64, dim)
	for i := 0; i < n; i++ {
		for j := range mean {
			mean[j] += x[i*dim+j] / float64(n)
		}
	}
	v := 0.0
	for i := 0; i < n; i++ {
		for j := range mean {
			d := x[i*dim+j] - mean[j]
			v += d * d
		}
	}
	return mean, math.Sqrt(v / float64(n*dim))
}

// TestClassOracle: the unconditional rows are Oracle's prediction, and the conditional rows are Oracle's
// prediction for the one-component mixture of their class, in every parametrisation.
func TestClassOracle(t *testing.T) {
	m := testMixture()
	s := mustSchedule(t, "linear", 1000, false)
	x := []float64{0, 0, -2.1, 0.2, 1.5, 1.5, 0.4, -2, 3, -3, 1e3, -1e3}
	const n = 6
	for _, p := range []Prediction{Eps, X0, V} {
		co := &ClassOracle{Mixture: m, Schedule: s, Output: p}
		for _, step := range []int{0, 50, 300, 999} {
			for c := NoLabel; c < 3; c++ {
				labels := []int{c, c, c, c, c, c}
				got := make([]float64, 2*n)
				if err := co.Predict(context.Background(), x, labels, n, 2, step, got); err != nil {
					t.Fatal(err)
				}
				ref := &Oracle{Mixture: m, Schedule: s, Output: p}
				if c != NoLabel {
					ref.Mixture = &Mixture{Weights: []float64{1}, Means: [][]float64{m.Means[c]}, Stds: []float64{m.Stds[c]}}
				}
				want := make([]float64, 2*n)
				if err := ref.Predict(context.Background(), x, n, 2, step, want); err != nil {
					t.Fatal(err)
				}
				for i := range got {
					if math.Abs(got[i]-want[i]) > 1e-12*max(1, math.Abs(want[i])) {
						t.Errorf("%v t=%d class %d: row %d value %v, oracle gives %v", p, step, c, i/2, got[i], want[i])
					}
				}
			}
		}
	}
	co := &ClassOracle{Mixture: m, Schedule: s}
	out := make([]float64, 4)
	for _, labels := range [][]int{{0, 3}, {-2, 0}, {0}} {
		if err := co.Predict(context.Background(), x[:4], labels, 2, 2, 10, out); err == nil {
			t.Errorf("labels %v accepted", labels)
		}
	}
	if err := co.Predict(context.Background(), x[:4], []int{0, 1}, 2, 2, 1000, out); err == nil {
		t.Error("timestep T accepted")
	}
}

// TestGuidedCombination: Guided is Eq. 6 of Ho & Salimans in eps space for every parametrisation:
// the eps of its guided x0 or v output equals (1-s) eps_uncond + s eps_cond from an eps model; s = 0 and
// s = 1 give the unconditional and conditional predictions; GuidanceScale(w) is 1 + w.
func TestGuidedCombination(t *testing.T) {
	m := testMixture()
	s := mustSchedule(t, "cosine", 1000, false)
	x := []float64{0, 0, -2.1, 0.2, 1.5, 1.5, 0.4, -2}
	labels := []int{0, 1, 2, NoLabel}
	const n = 4
	if GuidanceScale(2) != 3 || GuidanceScale(0) != 1 || GuidanceScale(-1) != 0 {
		t.Error("GuidanceScale is not 1 + w")
	}
	for _, step := range []int{1, 100, 500, 990} {
		abar := s.AlphaBar[step]
		eps := func(p Prediction, labels []int) []float64 {
			out := make([]float64, len(x))
			if err := (&ClassOracle{Mixture: m, Schedule: s, Output: p}).Predict(context.Background(), x, labels, n, 2, step, out); err != nil {
				t.Fatal(err)
			}
			e := make([]float64, len(x))
			if err := X0Eps(p, abar, x, out, nil, e); err != nil {
				t.Fatal(err)
			}
			return e
		}
		cond, uncond := eps(Eps, labels), eps(Eps, []int{NoLabel, NoLabel, NoLabel, NoLabel})
		for _, sc := range []float64{0, 1, 3, -0.5} {
			for _, p := range []Prediction{Eps, X0, V} {
				g := &Guided{Model: &ClassOracle{Mixture: m, Schedule: s, Output: p}, Labels: labels, Scale: sc}
				out := make([]float64, len(x))
				if err := g.Predict(context.Background(), x, n, 2, step, out); err != nil {
					t.Fatal(err)
				}
				got := make([]float64, len(x))
				if err := X0Eps(p, abar, x, out, nil, got); err != nil {
					t.Fatal(err)
				}
				for i := range got {
					want := uncond[i] + sc*(cond[i]-uncond[i])
					if math.Abs(got[i]-want) > 1e-9*max(1, math.Abs(want)/math.Sqrt(1-abar)) {
						t.Errorf("t=%d s=%v %v: row %d eps %v, want %v", step, sc, p, i/2, got[i], want)
					}
				}
			}
		}
	}
	g := &Guided{Model: &ClassOracle{Mixture: m, Schedule: s}, Labels: labels[:3], Scale: 2}
	if err := g.Predict(context.Background(), x, n, 2, 10, make([]float64, len(x))); err == nil {
		t.Error("3 labels accepted for 4 rows")
	}
	g.Labels, g.Scale = labels, math.NaN()
	if err := g.Predict(context.Background(), x, n, 2, 10, make([]float64, len(x))); err == nil {
		t.Error("NaN scale accepted")
	}
	if err := (&Guided{Labels: labels}).Predict(context.Background(), x, n, 2, 10, make([]float64, len(x))); err == nil {
		t.Error("nil model accepted")
	}
}

// guidanceSamplers are the four samplers, DDPM with both variances and DDIM with two etas.
func guidanceSamplers(s *schedule.Schedule) map[string]Sampler {
	return map[string]Sampler{
		"ddpm-beta":      &DDPM{Schedule: s},
		"ddpm-posterior": &DDPM{Schedule: s, Variance: VariancePosterior},
		"ddim-eta0":      &DDIM{Schedule: s, Steps: 50},
		"ddim-eta1":      &DDIM{Schedule: s, Steps: 50, Eta: 1},
		"dpm-solver++":   &DPMSolver{Schedule: s, Steps: 20},
		"plms":           &PLMS{Schedule: s, Steps: 20},
	}
}

// TestGuidedConditional: with s = 1 the guided sampler draws from the conditional law, here component c
// of the well-separated test mixture with weight 1: per class (2000 samples, whose own sampling error is
// about 0.01 in the mean and 1.5% in the std), the samples' mean is near mu_c and their std near s_c.
// DDPM-1000 and DDIM-100 (eta = 0) get tight bounds, as in TestRecovery; the few-step samplers get
// bounds about 1.3x their measured std error, which is discretisation error, not guidance: a narrow
// component under-disperses with few steps (TestRecovery's ddim-50 eta1 row), and the conditional
// components here are each as narrow as the mixture's narrowest.
func TestGuidedConditional(t *testing.T) {
	m := testMixture()
	s := mustSchedule(t, "linear", 1000, false)
	const n = 6000
	labels := classOf(n, 3)
	for _, tc := range []struct {
		name      string
		sm        Sampler
		mean, std float64
	}{
		{"ddpm-1000 beta", &DDPM{Schedule: s}, 0.04, 0.06},
		{"ddpm-1000 posterior", &DDPM{Schedule: s, Variance: VariancePosterior}, 0.04, 0.06},
		{"ddim-100 eta0", &DDIM{Schedule: s, Steps: 100}, 0.04, 0.06},
		{"ddim-50 eta1", &DDIM{Schedule: s, Steps: 50, Eta: 1}, 0.06, 0.22},
		{"dpm-solver++ 20", &DPMSolver{Schedule: s, Steps: 20}, 0.06, 0.2},
		{"plms 20", &PLMS{Schedule: s, Steps: 20}, 0.06, 0.2},
	} {
		g := &Guided{Model: &ClassOracle{Mixture: m, Schedule: s}, Labels: labels, Scale: 1}
		x, err := tc.sm.Sample(context.Background(), g, n, 2, Options{Seed: 4})
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		for c := 0; c < 3; c++ {
			mean, std := gaussianStats(rowsOf(x, labels, 2, c), 2)
			dm := math.Hypot(mean[0]-m.Means[c][0], mean[1]-m.Means[c][1])
			ds := math.Abs(std-m.Stds[c]) / m.Stds[c]
			t.Logf("%-19s class %d: mean %.3f off, std %.3f (want %.2f, rel err %.3f)", tc.name, c, dm, std, m.Stds[c], ds)
			if dm > tc.mean || ds > tc.std {
				t.Errorf("%s class %d: mean %v (want %v), std %.3f (want %.2f)", tc.name, c, mean, m.Means[c], std, m.Stds[c])
			}
		}
	}
}

// TestGuidedUnconditional: with s = 0 the guided sampler is the unconditional model, whatever the
// labels: Fit recovers the whole mixture's weights, means and stds, with the tolerances of
// TestMultistepZeroSNR.
func TestGuidedUnconditional(t *testing.T) {
	m := testMixture()
	s := mustSchedule(t, "linear", 1000, false)
	const n = 4000
	for name, sm := range guidanceSamplers(s) {
		g := &Guided{Model: &ClassOracle{Mixture: m, Schedule: s}, Labels: classOf(n, 3), Scale: 0}
		x, err := sm.Sample(context.Background(), g, n, 2, Options{Seed: 6})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		rec, err := Fit(m, x, n)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%-14s s=0: weight err %.3f mean err %.3f std rel err %.3f", name, rec.WeightErr, rec.MeanErr, rec.StdRelErr)
		if rec.WeightErr > 0.03 || rec.MeanErr > 0.1 || rec.StdRelErr > 0.2 {
			t.Errorf("%s s=0: weight %.3f mean %.3f std %.3f", name, rec.WeightErr, rec.MeanErr, rec.StdRelErr)
		}
	}
}

// TestGuidedSharpens: guidance with s > 1 moves samples toward their class (Ho & Salimans 2022,
// Sec. 4: higher w trades diversity for fidelity). On overlapping components the s = 1 samples of a
// class fall nearer another component's mean at a non-zero rate; at s = 3 that rate must drop to under
// half of it.
func TestGuidedSharpens(t *testing.T) {
	m := &Mixture{
		Weights: []float64{0.4, 0.3, 0.3},
		Means:   [][]float64{{-1, 0}, {1, 0}, {0, 1.5}},
		Stds:    []float64{0.6, 0.6, 0.6},
	}
	s := mustSchedule(t, "linear", 1000, false)
	const n = 6000
	labels := classOf(n, 3)
	stray := func(x []float64) float64 {
		bad := 0
		for i, c := range labels {
			xi := x[2*i : 2*i+2]
			own := math.Hypot(xi[0]-m.Means[c][0], xi[1]-m.Means[c][1])
			for k, mu := range m.Means {
				if k != c && math.Hypot(xi[0]-mu[0], xi[1]-mu[1]) < own {
					bad++
					break
				}
			}
		}
		return float64(bad) / float64(n)
	}
	for _, name := range []string{"ddpm", "ddim"} {
		sm, err := NewSampler(name, s, SamplerConfig{Steps: 50})
		if err != nil {
			t.Fatal(err)
		}
		rate := map[float64]float64{}
		for _, sc := range []float64{1, 3} {
			g := &Guided{Model: &ClassOracle{Mixture: m, Schedule: s}, Labels: labels, Scale: sc}
			x, err := sm.Sample(context.Background(), g, n, 2, Options{Seed: 8})
			if err != nil {
				t.Fatal(err)
			}
			rate[sc] = stray(x)
		}
		t.Logf("%s: fraction nearer another component: s=1 %.4f, s=3 %.4f", name, rate[1], rate[3])
		if !(rate[1] > 0.03) || !(rate[3] < rate[1]/2) {
			t.Errorf("%s: stray rate s=1 %.4f, s=3 %.4f; want s=1 > 0.03 and s=3 < half of it", name, rate[1], rate[3])
		}
	}
}

// countingLabeled records the batch size and labels of every call.
type countingLabeled struct {
	LabeledPredictor
	rows   []int
	labels [][]int
}

func (c *countingLabeled) Predict(ctx context.Context, x []float64, labels []int, n, dim, t int, out []float64) error {
	c.rows = append(c.rows, n)
	c.labels = append(c.labels, append([]int(nil), labels...))
	return c.LabeledPredictor.Predict(ctx, x, labels, n, dim, t, out)
}

// TestGuidedOneCall: each step makes exactly one call of the labelled model with 2n rows, the n labels
// then n NoLabel, for every sampler.
func TestGuidedOneCall(t *testing.T) {
	m := testMixture()
	s := mustSchedule(t, "linear", 100, false)
	const n = 5
	labels := []int{2, 0, NoLabel, 1, 1}
	for name, sm := range guidanceSamplers(s) {
		cl := &countingLabeled{LabeledPredictor: &ClassOracle{Mixture: m, Schedule: s}}
		steps := 0
		_, err := sm.Sample(context.Background(), &Guided{Model: cl, Labels: labels, Scale: 2.5}, n, 2, Options{Seed: 1, Callback: func(Step) error {
			steps++
			return nil
		}})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(cl.rows) != steps {
			t.Errorf("%s: %d model calls for %d steps", name, len(cl.rows), steps)
		}
		for k, r := range cl.rows {
			want := append(append([]int(nil), labels...), NoLabel, NoLabel, NoLabel, NoLabel, NoLabel)
			if r != 2*n || len(cl.labels[k]) != 2*n {
				t.Fatalf("%s: call %d has %d rows, want %d", name, k, r, 2*n)
			}
			for i := range want {
				if cl.labels[k][i] != want[i] {
					t.Fatalf("%s: call %d labels %v, want %v", name, k, cl.labels[k], want)
				}
			}
		}
	}
}

// TestGuidedBatchSplit: image j depends only on the seed, j and its class: sampling a run in two
// batches (Options.Start and the matching slice of the labels) gives the one-batch result.
func TestGuidedBatchSplit(t *testing.T) {
	m := testMixture()
	s := mustSchedule(t, "linear", 100, false)
	const n = 12
	labels := classOf(n, 3)
	model := &ClassOracle{Mixture: m, Schedule: s}
	sm := &DDIM{Schedule: s, Steps: 10, Eta: 1}
	all, err := sm.Sample(context.Background(), &Guided{Model: model, Labels: labels, Scale: 3}, n, 2, Options{Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	for _, start := range []int{0, 5} {
		end := n
		if start == 0 {
			end = 5
		}
		part, err := sm.Sample(context.Background(), &Guided{Model: model, Labels: labels[start:end], Scale: 3}, end-start, 2, Options{Seed: 3, Start: start})
		if err != nil {
			t.Fatal(err)
		}
		for i, v := range part {
			if math.Abs(v-all[2*start+i]) > 1e-12 {
				t.Fatalf("batch from %d: value %d is %v, one batch gives %v", start, i, v, all[2*start+i])
			}
		}
	}
}

// TestGuidedEndpointsOneHalf: at s = 1 and s = 0 Guided calls the model once with the n rows that
// count (the labels, or n NoLabel rows) and returns exactly its prediction.
func TestGuidedEndpointsOneHalf(t *testing.T) {
	m := testMixture()
	s := mustSchedule(t, "linear", 100, false)
	const n, dim = 4, 2
	labels := []int{2, 0, NoLabel, 1}
	x := []float64{0.3, -1, 2, 0.5, -0.7, 0.1, 1.5, -2}
	for _, c := range []struct {
		scale float64
		want  []int
	}{{1, labels}, {0, []int{NoLabel, NoLabel, NoLabel, NoLabel}}} {
		cl := &countingLabeled{LabeledPredictor: &ClassOracle{Mixture: m, Schedule: s}}
		got := make([]float64, n*dim)
		if err := (&Guided{Model: cl, Labels: labels, Scale: c.scale}).Predict(context.Background(), x, n, dim, 40, got); err != nil {
			t.Fatal(err)
		}
		if len(cl.rows) != 1 || cl.rows[0] != n || !slices.Equal(cl.labels[0], c.want) {
			t.Fatalf("s = %g: calls %v with labels %v, want one of %d rows with %v", c.scale, cl.rows, cl.labels, n, c.want)
		}
		want := make([]float64, n*dim)
		if err := (&ClassOracle{Mixture: m, Schedule: s}).Predict(context.Background(), x, c.want, n, dim, 40, want); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Errorf("s = %g: %v, want the model's %v", c.scale, got, want)
		}
	}
}

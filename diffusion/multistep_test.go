package diffusion

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestDPMSolverOrder1IsDDIM: the first order DPM-Solver++ step is DDIM with eta = 0 (DPM-Solver++
// Sec. 4.1), so with Order 1 the two samplers agree to rounding.
func TestDPMSolverOrder1IsDDIM(t *testing.T) {
	for _, p := range []Prediction{Eps, V} {
		s := mustSchedule(t, "cosine", 1000, p == V)
		o := &Oracle{Mixture: testMixture(), Schedule: s, Output: p}
		a, err := (&DDIM{Schedule: s, Steps: 12}).Sample(context.Background(), o, 64, 2, Options{Seed: 3, Prediction: p})
		if err != nil {
			t.Fatal(err)
		}
		b, err := (&DPMSolver{Schedule: s, Steps: 12, Order: 1}).Sample(context.Background(), o, 64, 2, Options{Seed: 3, Prediction: p})
		if err != nil {
			t.Fatal(err)
		}
		worst := 0.0
		for i := range a {
			worst = max(worst, math.Abs(a[i]-b[i]))
		}
		if worst > 1e-12 {
			t.Errorf("%v: DPM-Solver++ order 1 vs DDIM eta=0: worst difference %g", p, worst)
		}
	}
}

// affine is a quantity a x_T + b: on 1-D Gaussian data with the exact predictor, every deterministic
// sampler's state is affine in its starting point.
type affine struct{ a, b float64 }

func (u affine) scale(c float64) affine   { return affine{c * u.a, c * u.b} }
func (u affine) add(v affine) affine      { return affine{u.a + v.a, u.b + v.b} }
func (u affine) at(x float64) float64     { return u.a*x + u.b }
func (u affine) w2(mu, s float64) float64 { return math.Hypot(u.b-mu, math.Abs(u.a)-s) }

// gaussianAffine runs a deterministic sampler symbolically on N(mu, s^2) data: given x (affine in
// x_T) at timestep t, the exact x0_hat = mu + g (x - a mu) and eps_hat = (x - a x0_hat)/b are affine too.
// step maps (k, abar_t, abar_prev, x, x0_hat, eps_hat) to x_prev; it is written from the papers'
// formulas independently of the samplers' code.
func gaussianAffine(ts []int, abar []float64, mu, s float64, step func(k int, abT, abPrev float64, x, x0, eps affine) affine) affine {
	x := affine{1, 0}
	for k, t := range ts {
		abT, abPrev := abar[t], 1.0
		if k+1 < len(ts) {
			abPrev = abar[ts[k+1]]
		}
		a, b := math.Sqrt(abT), math.Sqrt(1-abT)
		g := a * s * s / (abT*s*s + 1 - abT)
		x0 := x.scale(g).add(affine{0, mu * (1 - a*g)})
		eps := x.add(x0.scale(-a)).scale(1 / b)
		x = step(k, abT, abPrev, x, x0, eps)
	}
	return x
}

// The three deterministic samplers as symbolic recursions, from their papers.
func ddimAffine() func(int, float64, float64, affine, affine, affine) affine {
	// DDIM eq. 12 with sigma = 0.
	return func(_ int, abT, abPrev float64, x, x0, eps affine) affine {
		return x0.scale(math.Sqrt(abPrev)).add(eps.scale(math.Sqrt(1 - abPrev)))
	}
}

func dpmAffine(abar0 float64) func(int, float64, float64, affine, affine, affine) affine {
	// DPM-Solver++ Algorithm 2 in lambda: x_t = sigma_t/sigma_s x_s - alpha_t expm1(-h) D, first order
	// on the first step and onto t = 0 (abar_0) or the clean sample.
	var prevX0 affine
	var prevLambda float64
	return func(k int, abT, abPrev float64, x, x0, _ affine) affine {
		lamS := math.Log(math.Sqrt(abT) / math.Sqrt(1-abT))
		lamT := math.Log(math.Sqrt(abPrev) / math.Sqrt(1-abPrev)) // +Inf on the final step
		h := lamT - lamS
		D := x0
		if k > 0 && abPrev < abar0 {
			r := (lamS - prevLambda) / h
			D = x0.scale(1 + 1/(2*r)).add(prevX0.scale(-1 / (2 * r)))
		}
		prevX0, prevLambda = x0, lamS
		return x.scale(math.Sqrt(1-abPrev) / math.Sqrt(1-abT)).add(D.scale(-math.Sqrt(abPrev) * math.Expm1(-h)))
	}
}

func plmsAffine(abar0 float64) func(int, float64, float64, affine, affine, affine) affine {
	// PNDM eq. 11 (the transfer phi) fed with eq. 12's linear multi-step eps' and its lower order
	// Adams-Bashforth warm-up; first order onto t = 0 and the clean sample.
	var es []affine
	return func(k int, abT, abPrev float64, x, _, eps affine) affine {
		es = append([]affine{eps}, es...)
		var e affine
		n := len(es)
		if abPrev >= abar0 { // lower order final: onto t = 0 or the clean sample
			n = 1
		}
		switch n {
		case 1:
			e = es[0]
		case 2:
			e = es[0].scale(3).add(es[1].scale(-1)).scale(1.0 / 2)
		case 3:
			e = es[0].scale(23).add(es[1].scale(-16)).add(es[2].scale(5)).scale(1.0 / 12)
		default:
			e = es[0].scale(55).add(es[1].scale(-59)).add(es[2].scale(37)).add(es[3].scale(-9)).scale(1.0 / 24)
		}
		coef := (abPrev - abT) / (math.Sqrt(abT) * (math.Sqrt((1-abPrev)*abT) + math.Sqrt((1-abT)*abPrev)))
		return x.scale(math.Sqrt(abPrev / abT)).add(e.scale(-coef))
	}
}

// TestMultistepGaussianExact: on 1-D Gaussian data the output of every deterministic sampler is an
// exact affine function A x_T + B of its start, so (1) each sample must equal it (this checks the
// implementation against the papers' formulas row by row), and (2) the output law N(B, A^2) is known
// exactly, so its 2-Wasserstein distance to the data N(mu, s^2), sqrt((B-mu)^2 + (|A|-s)^2), measures
// each sampler's discretisation error with no sampling noise. At S = 10 and 20 both multistep solvers
// must beat DDIM.
func TestMultistepGaussianExact(t *testing.T) {
	const mu, s, n = 1.5, 0.5, 64
	sch := mustSchedule(t, "linear", 1000, false)
	o := &Oracle{Mixture: &Mixture{Weights: []float64{1}, Means: [][]float64{{mu}}, Stds: []float64{s}}, Schedule: sch}
	for _, sp := range []Spacing{Linspace, Trailing} {
		for _, S := range []int{5, 10, 20, 50} {
			samplers := []struct {
				name string
				sm   Sampler
				rec  func(int, float64, float64, affine, affine, affine) affine
			}{
				{"ddim", &DDIM{Schedule: sch, Steps: S, Spacing: sp}, ddimAffine()},
				{"dpm-solver++", &DPMSolver{Schedule: sch, Steps: S, Spacing: sp}, dpmAffine(sch.AlphaBar[0])},
				{"plms", &PLMS{Schedule: sch, Steps: S, Spacing: sp}, plmsAffine(sch.AlphaBar[0])},
			}
			dist := map[string]float64{}
			line := fmt.Sprintf("%-8v S=%-3d W2 to data:", sp, S)
			for _, tc := range samplers {
				ts, err := Timesteps(1000, S, sp)
				if err != nil {
					t.Fatal(err)
				}
				out := gaussianAffine(ts, sch.AlphaBar, mu, s, tc.rec)
				var xT []float64
				x, err := tc.sm.Sample(context.Background(), o, n, 1, Options{Seed: 8, Callback: func(st Step) error {
					if st.Index == 0 {
						xT = slices.Clone(st.X)
					}
					return nil
				}})
				if err != nil {
					t.Fatal(err)
				}
				for i := range x {
					if want := out.at(xT[i]); math.Abs(x[i]-want) > 1e-9*(1+math.Abs(want)) {
						t.Fatalf("%s %v S=%d row %d: %v, the exact recursion gives %v", tc.name, sp, S, i, x[i], want)
					}
				}
				dist[tc.name] = out.w2(mu, s)
				line += fmt.Sprintf("  %s %.2e (mean %+.4f std %.4f)", tc.name, dist[tc.name], out.b-mu, math.Abs(out.a)-s)
			}
			t.Log(line)
			if S == 10 || S == 20 {
				for _, name := range []string{"dpm-solver++", "plms"} {
					if !(dist[name] < dist["ddim"]) {
						t.Errorf("%v S=%d: %s W2 %.3g not below DDIM's %.3g", sp, S, name, dist[name], dist["ddim"])
					}
				}
			}
		}
	}
}

// slicedW2 is the sliced 2-Wasserstein distance between two equal-size 2-D samples: the root mean
// over nDir evenly spaced directions of the 1-D W2^2 of the projections (sorted pairing).
func slicedW2(a, b []float64, nDir int) float64 {
	n := len(a) / 2
	pa, pb := make([]float64, n), make([]float64, n)
	total := 0.0
	for d := range nDir {
		th := math.Pi * float64(d) / float64(nDir)
		c, s := math.Cos(th), math.Sin(th)
		for i := range n {
			pa[i] = c*a[2*i] + s*a[2*i+1]
			pb[i] = c*b[2*i] + s*b[2*i+1]
		}
		slices.Sort(pa)
		slices.Sort(pb)
		for i := range n {
			total += (pa[i] - pb[i]) * (pa[i] - pb[i])
		}
	}
	return math.Sqrt(total / float64(n*nDir))
}

// TestMultistepMixture: on the 2-D three-component mixture with the exact oracle, DPM-Solver++(2M) and
// PLMS at S = 10 and 20 land closer to the true distribution than DDIM (eta = 0), for the linspace and
// trailing spacings. The distance is the sliced 2-Wasserstein distance to a reference sample of the true
// distribution: DDIM with S = T = 1000 from the same x_T, whose own discretisation error is about
// 0.003 (1/20 of DDIM-50's, first order) and whose distance to exact draws is the sampling floor (logged).
// Sharing x_T removes most sampling noise from the comparison, which exact draws (floor 0.07 at this n)
// would drown the S = 20 differences in.
func TestMultistepMixture(t *testing.T) {
	const n = 5000
	m := testMixture()
	s := mustSchedule(t, "linear", 1000, false)
	o := &Oracle{Mixture: m, Schedule: s}
	ref, err := (&DDIM{Schedule: s, Steps: 1000}).Sample(context.Background(), o, n, 2, Options{Seed: 9})
	if err != nil {
		t.Fatal(err)
	}
	draws := func(seed uint64) []float64 { return m.Sample(rand.New(rand.NewPCG(seed, 1)), n) }
	t.Logf("sliced W2: exact draws vs exact draws %.4f, DDIM-1000 vs exact draws %.4f", slicedW2(draws(101), draws(102), 32), slicedW2(ref, draws(101), 32))
	for _, sp := range []Spacing{Linspace, Trailing} {
		for _, S := range []int{5, 10, 20, 50} {
			dist := map[string]float64{}
			for _, name := range []string{"ddim", "dpm-solver++", "plms"} {
				sm, err := NewSampler(name, s, SamplerConfig{Steps: S, Spacing: sp})
				if err != nil {
					t.Fatal(err)
				}
				x, err := sm.Sample(context.Background(), o, n, 2, Options{Seed: 9})
				if err != nil {
					t.Fatal(err)
				}
				dist[name] = slicedW2(x, ref, 32)
			}
			t.Logf("%-8v S=%-2d sliced W2 to DDIM-1000: ddim %.4f  dpm-solver++ %.4f  plms %.4f", sp, S, dist["ddim"], dist["dpm-solver++"], dist["plms"])
			for _, name := range []string{"dpm-solver++", "plms"} {
				if (S == 10 || S == 20) && !(dist[name] < dist["ddim"]) {
					t.Errorf("%v S=%d: %s sliced W2 %.4f not below DDIM's %.4f", sp, S, name, dist[name], dist["ddim"])
				}
			}
		}
	}
}

// TestMultistepZeroSNR: both solvers start from abar = 0 with a v-predicting model and recover the
// mixture; their first step is first order, so no division by sqrt(abar) happens there.
func TestMultistepZeroSNR(t *testing.T) {
	zs := mustSchedule(t, "linear", 1000, true)
	o := &Oracle{Mixture: testMixture(), Schedule: zs, Output: V}
	for _, sm := range []Sampler{&DPMSolver{Schedule: zs, Steps: 20, Spacing: Trailing}, &PLMS{Schedule: zs, Steps: 20, Spacing: Trailing}} {
		x, err := sm.Sample(context.Background(), o, 4000, 2, Options{Seed: 2, Prediction: V})
		if err != nil {
			t.Fatal(err)
		}
		rec, err := Fit(testMixture(), x, 4000)
		if err != nil {
			t.Fatal(err)
		}
		if rec.WeightErr > 0.03 || rec.MeanErr > 0.1 || rec.StdRelErr > 0.2 {
			t.Errorf("%T zero SNR: weight %.3f mean %.3f std %.3f", sm, rec.WeightErr, rec.MeanErr, rec.StdRelErr)
		}
	}
}

// TestMultistepCallbackAndCancel: the shared loop's reporting and cancellation hold for the solvers.
func TestMultistepCallbackAndCancel(t *testing.T) {
	s := mustSchedule(t, "linear", 100, false)
	for _, sm := range []Sampler{&DPMSolver{Schedule: s, Steps: 10}, &PLMS{Schedule: s, Steps: 10}} {
		cp := &countingPredictor{Predictor: &Oracle{Mixture: testMixture(), Schedule: s}}
		var steps []int
		x, err := sm.Sample(context.Background(), cp, 3, 2, Options{Callback: func(st Step) error {
			steps = append(steps, st.T)
			return nil
		}})
		want, _ := Timesteps(100, 10, Linspace)
		if err != nil || len(x) != 6 || !slices.Equal(steps, want) || cp.calls != 10 {
			t.Errorf("%T: err %v, %d values, steps %v (want %v), %d predictor calls", sm, err, len(x), steps, want, cp.calls)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cp.calls = 0
		_, err = sm.Sample(ctx, cp, 3, 2, Options{Callback: func(st Step) error {
			if st.Index == 3 {
				cancel()
			}
			return nil
		}})
		cancel()
		if !errors.Is(err, context.Canceled) || cp.calls != 4 {
			t.Errorf("%T: cancel after step 3: %v after %d calls", sm, err, cp.calls)
		}
	}
}

func TestNewSampler(t *testing.T) {
	s := mustSchedule(t, "linear", 100, false)
	for _, name := range SamplerNames() {
		sm, err := NewSampler(name, s, SamplerConfig{Steps: 10, Spacing: Trailing})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		ts, _ := sm.(interface{ Timesteps() ([]int, error) }).Timesteps()
		if len(ts) != 10 || ts[0] != 99 {
			t.Errorf("%s: timesteps %v", name, ts)
		}
	}
	bad := []struct {
		name string
		c    SamplerConfig
	}{
		{"euler", SamplerConfig{}},
		{"plms", SamplerConfig{Eta: 0.5}},
		{"dpm-solver++", SamplerConfig{SigmaHat: true}},
		{"ddim", SamplerConfig{Steps: 101}},
		{"ddim", SamplerConfig{Eta: -1}},
	}
	for _, tc := range bad {
		if _, err := NewSampler(tc.name, s, tc.c); err == nil {
			t.Errorf("NewSampler(%q, %+v): no error", tc.name, tc.c)
		}
	}
	if _, err := NewSampler("ddim", nil, SamplerConfig{}); err == nil {
		t.Error("nil schedule accepted")
	}
}

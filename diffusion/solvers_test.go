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

// refWeight runs a DPMSolver of order 3 with the D2 weight of the DPM-Solver++ code, k-diffusion and
// diffusers (half the Taylor expansion's; see thirdOrder), for comparison.
type refWeight struct{ *DPMSolver }

func (r refWeight) Sample(ctx context.Context, pred Predictor, n, dim int, opts Options) ([]float64, error) {
	d2Weight = 1
	defer func() { d2Weight = 2 }()
	return r.DPMSolver.Sample(ctx, pred, n, dim, opts)
}

type namedSampler struct {
	name string
	sm   Sampler
}

// solvers are the deterministic solvers compared below at S steps: the three before the new ones,
// the new ones (dpm-solver++3m, ipndm, ipndm-v, unipc at orders 2 and 3) and two variants for the
// record (3M with the reference's D2 weight, UniPC with B(h) = h).
func solvers(s *schedule.Schedule, S int, sp Spacing) []namedSampler {
	return []namedSampler{
		{"ddim", &DDIM{Schedule: s, Steps: S, Spacing: sp}},
		{"dpm-solver++", &DPMSolver{Schedule: s, Steps: S, Spacing: sp}},
		{"plms", &PLMS{Schedule: s, Steps: S, Spacing: sp}},
		{"dpm-solver++3m", &DPMSolver{Schedule: s, Steps: S, Spacing: sp, Order: 3}},
		{"ipndm", &IPNDM{Schedule: s, Steps: S, Spacing: sp}},
		{"ipndm-v", &IPNDM{Schedule: s, Steps: S, Spacing: sp, Variable: true}},
		{"unipc", &UniPC{Schedule: s, Steps: S, Spacing: sp}},
		{"unipc-3", &UniPC{Schedule: s, Steps: S, Spacing: sp, Order: 3}},
		{"3m-ref", refWeight{&DPMSolver{Schedule: s, Steps: S, Spacing: sp, Order: 3}}},
		{"unipc-bh1", &UniPC{Schedule: s, Steps: S, Spacing: sp, BH1: true}},
	}
}

// newSolvers are the solvers this file adds, held to beat DDIM.
var newSolvers = []string{"dpm-solver++3m", "ipndm", "ipndm-v", "unipc", "unipc-3"}

// runAffine runs a deterministic sampler on 1-D data from n starts and returns the affine map
// x = A x_T + B it applies (exact on Gaussian data, where every step is affine), checking that it is
// affine, and the state at timestep at (if at >= 0) as a function of x_T in the same way.
func runAffine(t *testing.T, sm Sampler, o *Oracle, at int) (out, mid affine) {
	t.Helper()
	const n = 16
	var xT, xa []float64
	x, err := sm.Sample(context.Background(), o, n, 1, Options{Seed: 8, Callback: func(st Step) error {
		if st.Index == 0 {
			xT = slices.Clone(st.X)
		}
		if st.T == at {
			xa = slices.Clone(st.X)
		}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	fit := func(y []float64) affine {
		a := (y[1] - y[0]) / (xT[1] - xT[0])
		u := affine{a, y[0] - a*xT[0]}
		for i := range y {
			if d := math.Abs(y[i] - u.at(xT[i])); d > 1e-9*(1+math.Abs(y[i])) {
				t.Fatalf("%T: output not affine in x_T (row %d off by %g)", sm, i, d)
			}
		}
		return u
	}
	out = fit(x)
	if at >= 0 {
		if xa == nil {
			t.Fatalf("%T: no step at t=%d", sm, at)
		}
		mid = fit(xa)
	}
	return out, mid
}

// TestSolversGaussianExact: the exact 2-Wasserstein distance of each solver's output law to the data
// N(1.5, 0.5^2) (the README's measure; see TestMultistepGaussianExact) at 5, 10, 20 and 50 model
// calls. Every new solver beats DDIM at 10 and 20 calls, and every solver's distance falls from 5 to 10
// to 20 calls. Below about 0.005 the distance is the floor every solver shares: the mean bias of the
// last step's x0 = E[x_0 | x_t] (see the mean column).
func TestSolversGaussianExact(t *testing.T) {
	const mu, s = 1.5, 0.5
	sch := mustSchedule(t, "linear", 1000, false)
	o := &Oracle{Mixture: &Mixture{Weights: []float64{1}, Means: [][]float64{{mu}}, Stds: []float64{s}}, Schedule: sch}
	for _, sp := range []Spacing{Linspace, Trailing} {
		dist := map[string][]float64{}
		for _, S := range []int{5, 10, 20, 50} {
			line := fmt.Sprintf("%-8v S=%-2d W2:", sp, S)
			byName := map[string]float64{}
			for _, tc := range solvers(sch, S, sp) {
				out, _ := runAffine(t, tc.sm, o, -1)
				d := out.w2(mu, s)
				byName[tc.name] = d
				dist[tc.name] = append(dist[tc.name], d)
				line += fmt.Sprintf(" %s %.4f", tc.name, d)
			}
			t.Log(line)
			if S == 10 || S == 20 {
				for _, name := range newSolvers {
					if !(byName[name] < byName["ddim"]) {
						t.Errorf("%v S=%d: %s W2 %.4f not below DDIM's %.4f", sp, S, name, byName[name], byName["ddim"])
					}
				}
			}
		}
		for name, d := range dist {
			if !(d[0] > d[1] && d[1] > d[2]) {
				t.Errorf("%v %s: W2 at 5, 10, 20 calls %.4f %.4f %.4f does not fall", sp, name, d[0], d[1], d[2])
			}
		}
	}
}

// TestSolversMixture: on the 2-D three-component mixture with the exact oracle, the sliced
// 2-Wasserstein distance to DDIM-1000 from the same x_T (see TestMultistepMixture for why that
// reference) at 5, 10 and 20 calls: every new solver is closer than DDIM at 10 and 20 calls and
// improves from 10 to 20.
func TestSolversMixture(t *testing.T) {
	const n = 4000
	s := mustSchedule(t, "linear", 1000, false)
	o := &Oracle{Mixture: testMixture(), Schedule: s}
	ref, err := (&DDIM{Schedule: s, Steps: 1000}).Sample(context.Background(), o, n, 2, Options{Seed: 9})
	if err != nil {
		t.Fatal(err)
	}
	for _, sp := range []Spacing{Linspace, Trailing} {
		dist := map[string][]float64{}
		for _, S := range []int{5, 10, 20} {
			line := fmt.Sprintf("%-8v S=%-2d sliced W2 to DDIM-1000:", sp, S)
			for _, tc := range solvers(s, S, sp) {
				x, err := tc.sm.Sample(context.Background(), o, n, 2, Options{Seed: 9})
				if err != nil {
					t.Fatal(err)
				}
				d := slicedW2(x, ref, 32)
				dist[tc.name] = append(dist[tc.name], d)
				line += fmt.Sprintf(" %s %.4f", tc.name, d)
			}
			t.Log(line)
		}
		for _, name := range newSolvers {
			d := dist[name]
			for i, S := range []int{10, 20} {
				if !(d[i+1] < dist["ddim"][i+1]) {
					t.Errorf("%v S=%d: %s %.4f not below DDIM's %.4f", sp, S, name, d[i+1], dist["ddim"][i+1])
				}
			}
			if !(d[2] < d[1]) {
				t.Errorf("%v %s: %.4f at 20 calls not below %.4f at 10", sp, name, d[2], d[1])
			}
		}
	}
}

// odeError is the worst distance, over a batch, of a solver's state at timestep at from the exact
// probability-flow ODE solution from the same x_T, on 1-D Gaussian data N(mu, s^2): the ODE keeps
// xi = (x_t - sqrt(abar) mu) / sqrt(abar s^2 + 1 - abar) constant (the marginals are Gaussian and the
// flow is monotone), so x_at = sqrt(abar_at) mu + sqrt(abar_at s^2 + 1 - abar_at) xi.
func odeError(t *testing.T, sm Sampler, o *Oracle, mu, s float64, at int) float64 {
	_, mid := runAffine(t, sm, o, at)
	sch := o.Schedule
	v := func(ab float64) float64 { return math.Sqrt(ab*s*s + 1 - ab) }
	abT, abA := sch.AlphaBar[sch.T-1], sch.AlphaBar[at]
	exact := affine{v(abA) / v(abT), math.Sqrt(abA)*mu - v(abA)/v(abT)*math.Sqrt(abT)*mu}
	// The worst error over x_T in [-3, 3].
	return max(math.Abs(mid.at(-3)-exact.at(-3)), math.Abs(mid.at(3)-exact.at(3)))
}

// TestSolversConvergence: the error against the exact ODE solution at t = 222, which the linspace
// sequences of S = 10, 19, 37, ..., 577 steps all visit (the steps before it are equal halvings), as S
// grows. The error of a multistep solver is a sum of terms of different orders and signs (the
// warm-up's lower order steps add their own), so it crosses zero now and then and the ratio of two
// neighbours is erratic; the slope of log error against log S from S = 19 to 577 is not: about 1 for
// DDIM, 2 for DPM-Solver++(2M) and for 3M with the reference's D2 weight (see thirdOrder), 3 for
// DPM-Solver++(3M) and UniPC-2, 3.5 to 4 for UniPC-3 and iPNDM-v. iPNDM with even weights (PLMS) stalls:
// its weights are those of equal steps.
func TestSolversConvergence(t *testing.T) {
	const mu, s = 1.5, 0.5
	sch := mustSchedule(t, "linear", 1000, false)
	o := &Oracle{Mixture: &Mixture{Weights: []float64{1}, Means: [][]float64{{mu}}, Stds: []float64{s}}, Schedule: sch}
	Ss := []int{10, 19, 37, 73, 145, 289, 577}
	errs := map[string][]float64{}
	for _, S := range Ss {
		for _, tc := range solvers(sch, S, Linspace) {
			errs[tc.name] = append(errs[tc.name], odeError(t, tc.sm, o, mu, s, 222))
		}
	}
	orders := map[string][2]float64{"ddim": {0.9, 1.1}, "dpm-solver++": {1.8, 2.3}, "3m-ref": {1.8, 2.3}, "dpm-solver++3m": {2.7, 4},
		"unipc": {2.7, 4}, "unipc-3": {3.3, 5}, "ipndm-v": {3.3, 5}}
	for _, tc := range solvers(sch, 10, Linspace) {
		e := errs[tc.name]
		line := fmt.Sprintf("%-15s", tc.name)
		for i := range e {
			line += fmt.Sprintf(" %.2e", e[i])
		}
		order := math.Log(e[1]/e[len(e)-1]) / math.Log(float64(Ss[len(Ss)-1])/float64(Ss[1]))
		t.Logf("%s  order %.2f", line, order)
		if r, ok := orders[tc.name]; ok && !(order >= r[0] && order <= r[1]) {
			t.Errorf("%s: observed order %.2f, want %.1f to %.1f", tc.name, order, r[0], r[1])
		}
	}
	for i := 2; i < len(Ss); i++ {
		if !(errs["dpm-solver++3m"][i] < errs["3m-ref"][i]/5) {
			t.Errorf("S=%d: 3M error %.2e not well below the reference weight's %.2e", Ss[i], errs["dpm-solver++3m"][i], errs["3m-ref"][i])
		}
	}
}

// TestSolversAgreeWithODE: with every timestep (S = T) each solver's state at t = 222 is the exact ODE
// solution to 1.5e-3 (DDIM, first order), 1e-5 (DPM-Solver++(2M)), 1e-4 (PLMS and iPNDM) or 1e-6
// (the others), and their
// final samples agree with each other to 5e-4 (DDIM aside). The last steps, near t = 0, are long in
// lambda (t = 1 to 0 is h = 0.35) and first order for all, so the final samples are not closer.
func TestSolversAgreeWithODE(t *testing.T) {
	const mu, s = 1.5, 0.5
	sch := mustSchedule(t, "linear", 1000, false)
	o := &Oracle{Mixture: &Mixture{Weights: []float64{1}, Means: [][]float64{{mu}}, Stds: []float64{s}}, Schedule: sch}
	tol := map[string]float64{"ddim": 1.5e-3, "dpm-solver++": 1e-5, "plms": 1e-4, "ipndm": 1e-4}
	var outs []affine
	for _, tc := range solvers(sch, 1000, Linspace) {
		e := odeError(t, tc.sm, o, mu, s, 222)
		want, ok := tol[tc.name]
		if !ok {
			want = 1e-6
		}
		out, _ := runAffine(t, tc.sm, o, -1)
		t.Logf("%-15s S=T: error at t=222 %.2e, final sample %.6f x_T %+.6f", tc.name, e, out.a, out.b)
		if !(e < want) {
			t.Errorf("%s S=T: error %.2e at t=222, want < %.0e", tc.name, e, want)
		}
		if tc.name != "ddim" {
			outs = append(outs, out)
		}
	}
	for _, u := range outs {
		for _, v := range outs {
			if d := max(math.Abs(u.at(3)-v.at(3)), math.Abs(u.at(-3)-v.at(-3))); d > 5e-4 {
				t.Errorf("S=T: final samples differ by %.2e", d)
			}
		}
	}
}

// TestIPNDMIsPLMS: iPNDM (even weights, order 4) is PLMS step for step, for every output format and
// spacing, with clipping.
func TestIPNDMIsPLMS(t *testing.T) {
	for _, p := range []Prediction{Eps, V} {
		s := mustSchedule(t, "cosine", 1000, false)
		o := &Oracle{Mixture: testMixture(), Schedule: s, Output: p}
		for _, sp := range []Spacing{Linspace, Trailing, Leading} {
			a, err := (&PLMS{Schedule: s, Steps: 12, Spacing: sp, Clip: true}).Sample(context.Background(), o, 32, 2, Options{Seed: 3, Prediction: p})
			if err != nil {
				t.Fatal(err)
			}
			b, err := (&IPNDM{Schedule: s, Steps: 12, Spacing: sp, Clip: true}).Sample(context.Background(), o, 32, 2, Options{Seed: 3, Prediction: p})
			if err != nil {
				t.Fatal(err)
			}
			for i := range a {
				if math.Abs(a[i]-b[i]) > 1e-12 {
					t.Fatalf("%v %v: iPNDM %v, PLMS %v at %d", p, sp, b[i], a[i], i)
				}
			}
		}
	}
}

// TestIPNDMOrder1IsDDIM: at order 1 both weightings are DDIM (eta = 0).
func TestIPNDMOrder1IsDDIM(t *testing.T) {
	s := mustSchedule(t, "linear", 1000, false)
	o := &Oracle{Mixture: testMixture(), Schedule: s}
	a, _ := (&DDIM{Schedule: s, Steps: 9}).Sample(context.Background(), o, 32, 2, Options{Seed: 5})
	for _, v := range []bool{false, true} {
		b, err := (&IPNDM{Schedule: s, Steps: 9, Order: 1, Variable: v}).Sample(context.Background(), o, 32, 2, Options{Seed: 5})
		if err != nil {
			t.Fatal(err)
		}
		for i := range a {
			if math.Abs(a[i]-b[i]) > 1e-12 {
				t.Fatalf("variable=%v: %v vs DDIM %v", v, b[i], a[i])
			}
		}
	}
}

// TestAdamsBashforthWeights: with equal steps in rho the variable step weights are the classical
// ones, and for uneven steps they integrate cubics exactly.
func TestAdamsBashforthWeights(t *testing.T) {
	// A schedule whose rho at t = 0..4 is 4, 3, 2, 1, 0.5: abar = 1/(1+rho^2).
	s := &schedule.Schedule{T: 5, AlphaBar: []float64{1 / 17.0, 1 / 10.0, 1 / 5.0, 1 / 2.0, 1 / 1.25}}
	w := abWeights([]int{0, 1, 2, 3}, s, 1, 0)
	for j, want := range plmsCoefs[3] {
		if math.Abs(w[j]-want) > 1e-13 {
			t.Errorf("even steps: weight %d is %v, want %v", j, w[j], want)
		}
	}
	// Uneven nodes 4, 3, 2, 1 -> step from 1 to 0.5 ... mean of u^3 over [1, 0.5] from values at nodes.
	nodes := []int{1, 2, 3, 4} // rho 3, 2, 1, 0.5; step from 0.5 to 0.1
	w = abWeights(nodes, s, 0.5, 0.1)
	f := func(r float64) float64 { return r*r*r - 2*r + 1 }
	got := w[0]*f(0.5) + w[1]*f(1) + w[2]*f(2) + w[3]*f(3)
	F := func(r float64) float64 { return r*r*r*r/4 - r*r + r }
	if want := (F(0.1) - F(0.5)) / (0.1 - 0.5); math.Abs(got-want) > 1e-12 {
		t.Errorf("uneven steps: mean of a cubic %v, want %v", got, want)
	}
}

// TestUniPCWeights: the order conditions' solution integrates polynomials exactly: with the weights
// for nodes r and the step h, alpha-free, sum_j rho_j (p(r_j h) - p(0))/r_j B(h) equals
// int_0^h e^{-(h-u)} (p(u) - p(0)) du for p of degree len(r); and g_k matches its integral.
func TestUniPCWeights(t *testing.T) {
	for _, h := range []float64{0.01, 0.2, 0.7, 3} {
		for k := 1; k <= 3; k++ {
			// g_k by the trapezoid rule on a fine grid.
			const N = 200000
			sum := 0.0
			for i := 0; i <= N; i++ {
				u := h * float64(i) / N
				f := math.Exp(-(h - u)) * math.Pow(u, float64(k))
				if i == 0 || i == N {
					f /= 2
				}
				sum += f
			}
			want := sum * h / N / math.Pow(h, float64(k))
			if got := phiG(k, h); math.Abs(got-want) > 1e-8*want {
				t.Errorf("g_%d(%v) = %v, quadrature %v", k, h, got, want)
			}
		}
		for _, r := range [][]float64{{-0.8, 1}, {-0.7, -1.9, 1}, {-1.3, -2.2}} {
			b := 1 - math.Exp(-h)
			rho := uniWeights(nil, r, h, b)
			for k := 1; k <= len(r); k++ {
				lhs := 0.0
				for j := range r {
					lhs += rho[j] * math.Pow(r[j], float64(k-1))
				}
				if want := phiG(k, h) / b; math.Abs(lhs-want) > 1e-10*max(1, math.Abs(want)) {
					t.Errorf("h=%v r=%v: condition %d: %v, want %v", h, r, k, lhs, want)
				}
			}
		}
	}
}

// TestSolversCallsAndCancel: S steps make S predictor calls and report the sequence, for every new
// solver, S from 1 up and every spacing; cancellation stops after the step that cancelled.
func TestSolversCallsAndCancel(t *testing.T) {
	s := mustSchedule(t, "linear", 100, false)
	for _, sp := range []Spacing{Linspace, Trailing, Leading} {
		for _, S := range []int{1, 2, 3, 4, 5, 10, 100} {
			for _, tc := range solvers(s, S, sp) {
				cp := &countingPredictor{Predictor: &Oracle{Mixture: testMixture(), Schedule: s}}
				var steps []int
				x, err := tc.sm.Sample(context.Background(), cp, 3, 2, Options{Callback: func(st Step) error {
					steps = append(steps, st.T)
					return nil
				}})
				want, _ := Timesteps(100, S, sp)
				if err != nil || len(x) != 6 || !slices.Equal(steps, want) || cp.calls != S {
					t.Errorf("%s %v S=%d: err %v, %d values, steps %v (want %v), %d calls", tc.name, sp, S, err, len(x), steps, want, cp.calls)
				}
				for _, v := range x {
					if math.IsNaN(v) || math.IsInf(v, 0) {
						t.Fatalf("%s %v S=%d: output %v", tc.name, sp, S, x)
					}
				}
			}
		}
	}
	for _, tc := range solvers(s, 10, Linspace) {
		cp := &countingPredictor{Predictor: &Oracle{Mixture: testMixture(), Schedule: s}}
		ctx, cancel := context.WithCancel(context.Background())
		_, err := tc.sm.Sample(ctx, cp, 3, 2, Options{Callback: func(st Step) error {
			if st.Index == 3 {
				cancel()
			}
			return nil
		}})
		cancel()
		if !errors.Is(err, context.Canceled) || cp.calls != 4 {
			t.Errorf("%s: cancel after step 3: %v after %d calls", tc.name, err, cp.calls)
		}
	}
}

// TestSolversZeroSNR: from abar = 0 with a v-predicting model every new solver recovers the mixture:
// no zero-SNR point enters a higher order formula.
func TestSolversZeroSNR(t *testing.T) {
	zs := mustSchedule(t, "linear", 1000, true)
	o := &Oracle{Mixture: testMixture(), Schedule: zs, Output: V}
	for _, tc := range solvers(zs, 20, Trailing) {
		if !slices.Contains(newSolvers, tc.name) {
			continue
		}
		x, err := tc.sm.Sample(context.Background(), o, 4000, 2, Options{Seed: 2, Prediction: V})
		if err != nil {
			t.Fatal(err)
		}
		rec, err := Fit(testMixture(), x, 4000)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if rec.WeightErr > 0.03 || rec.MeanErr > 0.1 || rec.StdRelErr > 0.2 {
			t.Errorf("%s zero SNR: weight %.3f mean %.3f std %.3f", tc.name, rec.WeightErr, rec.MeanErr, rec.StdRelErr)
		}
	}
}

// TestNewSamplerOrder: --order reaches unipc and ipndm and is refused elsewhere or out of range.
func TestNewSamplerOrder(t *testing.T) {
	s := mustSchedule(t, "linear", 100, false)
	for _, tc := range []struct {
		name  string
		order int
		ok    bool
	}{{"unipc", 3, true}, {"unipc", 1, true}, {"unipc", 4, false}, {"ipndm", 2, true}, {"ipndm-v", 4, true}, {"ipndm", 5, false},
		{"ddim", 2, false}, {"dpm-solver++", 3, false}, {"dpm-solver++3m", 3, false}, {"plms", 4, false}, {"unipc", -1, false}} {
		sm, err := NewSampler(tc.name, s, SamplerConfig{Steps: 10, Order: tc.order})
		if (err == nil) != tc.ok {
			t.Errorf("%s order %d: err %v", tc.name, tc.order, err)
			continue
		}
		if !tc.ok {
			continue
		}
		switch v := sm.(type) {
		case *UniPC:
			if v.Order != tc.order {
				t.Errorf("%s: order %d", tc.name, v.Order)
			}
		case *IPNDM:
			if v.Order != tc.order || v.Variable != (tc.name == "ipndm-v") {
				t.Errorf("%s: %+v", tc.name, v)
			}
		}
	}
	sm, _ := NewSampler("dpm-solver++3m", s, SamplerConfig{Steps: 10})
	if d, ok := sm.(*DPMSolver); !ok || d.Order != 3 {
		t.Errorf("dpm-solver++3m: %#v", sm)
	}
}

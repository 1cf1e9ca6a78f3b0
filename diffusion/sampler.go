package diffusion

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/ddpm-go/ddpm/schedule"
)

// Predictor is the only meeting point between the samplers and a model (a network, or the exact
// Oracle). What it outputs (eps, x0 or v) is declared separately, in Options.Prediction.
type Predictor interface {
	// Predict writes the model output for the n rows of x (each of length dim) at timestep t into out.
	// All rows share t. It must not keep x or out after returning.
	Predict(ctx context.Context, x []float64, n, dim, t int, out []float64) error
}

// PredictorFunc adapts a function to Predictor.
type PredictorFunc func(ctx context.Context, x []float64, n, dim, t int, out []float64) error

// Predict calls f.
func (f PredictorFunc) Predict(ctx context.Context, x []float64, n, dim, t int, out []float64) error {
	return f(ctx, x, n, dim, t, out)
}

// Sampler draws n samples of dimension dim (row-major, n*dim values) by running a reverse process
// driven by pred. DDPM and DDIM implement it.
type Sampler interface {
	Sample(ctx context.Context, pred Predictor, n, dim int, opts Options) ([]float64, error)
}

// Options are what every sampler takes besides its own configuration.
type Options struct {
	// Seed and Start choose the random streams: row i uses RowRNG(Seed, Start+i), so sample j of a
	// run depends on Seed and j only. To split a run into batches, pass the batch's first global index
	// as Start.
	Seed  uint64
	Start int
	// XT, if not nil, is the starting x_T (n*dim values, not modified). The row streams still draw
	// their x_T first and discard it, so the noise z of later steps is the same with or without XT.
	XT []float64
	// Prediction is what the predictor outputs (default Eps).
	Prediction Prediction
	// Callback, if not nil, is called after every step; a non-nil error stops sampling and is returned.
	Callback func(Step) error
	// Known, if not nil, makes the run an inpainting: the known coordinates are imposed by the
	// replacement method after every step (see Known). Nil leaves the run exactly as without it.
	Known *Known
}

// Step is one reverse step, as reported to Options.Callback. The slices (n*dim values) belong to the
// sampler and are only valid during the call: copy what you keep.
type Step struct {
	Index, Total int       // this is step Index of Total (0-based)
	T            int       // timestep of X
	Prev         int       // timestep of Next; -1 when Next is the final, clean sample
	X            []float64 // x_t, the input of the step
	X0           []float64 // the predicted clean sample from X (after clipping, if enabled)
	Next         []float64 // x_prev, the output of the step (with Options.Known imposed on it)
}

// RowRNG returns the random stream of sample index under seed: a PCG whose 128-bit state is the
// SplitMix64 scrambling of (seed, index). The scrambling matters: PCG states that differ by one, as
// (seed, index) and (seed, index+1) would, start their sequences from related points.
func RowRNG(seed uint64, index int) *rand.Rand {
	return rand.New(rand.NewPCG(splitmix64(seed), splitmix64(splitmix64(seed^0x6a09e667f3bcc908)+uint64(index))))
}

// splitmix64 is the finaliser of Steele et al.'s SplitMix64: a bijection on uint64 that sends nearby
// inputs to unrelated outputs.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// stepFunc moves all rows from x (at timestep ts[k]) to next (at prev, or clean if prev < 0), given
// the model's x0 and eps for x and the step's standard normal noise z (nil on the final step, which
// adds no noise). Multi-step solvers keep their history of x0/eps in the closure.
type stepFunc func(k, t, prev int, x, x0, eps, z, next []float64)

// adjust is what every sampler may do to the model's prediction before its step uses it.
type adjust struct {
	clip     bool    // clip x0 to [-1, 1] and recompute eps from it
	epsScale float64 // multiply eps by this and recompute x0 from it; 0 or 1: off
}

// checkEpsScale is the validity check every sampler's Timesteps makes of its EpsScale.
func checkEpsScale(name string, c float64) error {
	if !(c >= 0) || math.IsInf(c, 0) {
		return fmt.Errorf("%s: eps scale %v must be finite and > 0 (0 means 1)", name, c)
	}
	return nil
}

// walk is the loop every sampler shares: it draws x_T, visits ts in order, calls the predictor once
// per step for all rows, converts its output to (x0, eps), optionally scales eps and clips x0, draws
// the step's noise per row, applies step, imposes Options.Known on the result, reports to the
// callback, and checks ctx between steps.
//
// Epsilon scaling (Ning et al. 2024, "Elucidating the exposure bias in diffusion models") multiplies
// eps by a constant and takes x0 = (x_t - sqrt(1-abar) eps) / sqrt(abar) from the scaled eps, so every
// sampler, whatever it combines (eps, x0 or both), sees one consistent prediction. Their lambda is
// 1/epsScale: they scale down; docs/eval.md measures the opposite on this project's MNIST model.
func walk(ctx context.Context, ts []int, s *schedule.Schedule, adj adjust, pred Predictor, n, dim int, opts Options, step stepFunc) ([]float64, error) {
	w, err := newWalker(s, adj, pred, n, dim, opts)
	if err != nil {
		return nil, err
	}
	return w.walk(ctx, ts, step)
}

// walk takes step down the decreasing timesteps ts from x_T, for samplers whose step needs the
// walker itself (UniPC's corrector reads its buffers).
func (w *walker) walk(ctx context.Context, ts []int, step stepFunc) ([]float64, error) {
	first := -1
	if len(ts) > 0 {
		first = ts[0]
	}
	w.start(first)
	for k, t := range ts {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		prev := -1
		if k+1 < len(ts) {
			prev = ts[k+1]
		}
		if err := w.down(ctx, k, len(ts), t, prev, step); err != nil {
			return nil, err
		}
	}
	return w.x, nil
}

// walker is the state walk keeps between steps, shared with samplers that do not walk a plain
// decreasing sequence (RePaint): the row streams, the buffers, and the known part of an inpainting.
type walker struct {
	s     *schedule.Schedule
	adj   adjust
	pred  Predictor
	n     int
	dim   int
	opts  Options
	rngs  []*rand.Rand // row i's stream, RowRNG(Seed, Start+i)
	known [][]int      // known[i]: the known coordinates of row i (nil without Options.Known)
	// x is the current state; model writes the predictor's output to out and its (x0, eps) reading to
	// x0 and eps; a step writes next, using z for its noise.
	x, next, out, x0, eps, z []float64
}

// newWalker validates the arguments every sampler shares and allocates the buffers and row streams.
func newWalker(s *schedule.Schedule, adj adjust, pred Predictor, n, dim int, opts Options) (*walker, error) {
	if n < 1 || dim < 1 {
		return nil, fmt.Errorf("sample: need n >= 1 and dim >= 1, got n=%d dim=%d", n, dim)
	}
	if opts.XT != nil && len(opts.XT) != n*dim {
		return nil, fmt.Errorf("sample: initial x_T has %d values, want n*dim = %d", len(opts.XT), n*dim)
	}
	if opts.Start < 0 {
		return nil, fmt.Errorf("sample: negative start index %d", opts.Start)
	}
	if pred == nil {
		return nil, fmt.Errorf("sample: nil predictor")
	}
	w := &walker{s: s, adj: adj, pred: pred, n: n, dim: dim, opts: opts}
	if opts.Known != nil {
		known, err := opts.Known.rows(n, dim)
		if err != nil {
			return nil, err
		}
		w.known = known
	}
	size := n * dim
	buf := make([]float64, 6*size)
	w.x, w.next, w.out, w.x0, w.eps, w.z = buf[:size], buf[size:2*size], buf[2*size:3*size], buf[3*size:4*size], buf[4*size:5*size], buf[5*size:]
	w.rngs = make([]*rand.Rand, n)
	for i := range w.rngs {
		w.rngs[i] = RowRNG(opts.Seed, opts.Start+i)
	}
	return w, nil
}

// normals fills dst (n rows) with standard normals, row i from row i's stream.
func (w *walker) normals(dst []float64) {
	for i, r := range w.rngs {
		row := dst[i*w.dim : (i+1)*w.dim]
		for j := range row {
			row[j] = r.NormFloat64()
		}
	}
}

// start draws x_T into x (or takes Options.XT, after drawing and discarding it) and imposes the known
// part at timestep t, the first of the run.
func (w *walker) start(t int) {
	w.normals(w.x)
	if w.opts.XT != nil {
		copy(w.x, w.opts.XT)
	}
	w.impose(w.x, t)
}

// model calls the predictor on x at timestep t (step k of the run, for error messages) and leaves the
// adjusted prediction in x0 and eps.
func (w *walker) model(ctx context.Context, k, t int) error {
	x, out, x0, eps := w.x, w.out, w.x0, w.eps
	if err := w.pred.Predict(ctx, x, w.n, w.dim, t, out); err != nil {
		return fmt.Errorf("sample: step %d (t=%d): %w", k, t, err)
	}
	for i, v := range out {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("sample: step %d (t=%d): predictor output %v at row %d", k, t, v, i/w.dim)
		}
	}
	abar := w.s.AlphaBar[t]
	if err := X0Eps(w.opts.Prediction, abar, x, out, x0, eps); err != nil {
		return fmt.Errorf("sample: step %d (t=%d): %w", k, t, err)
	}
	if c := w.adj.epsScale; c != 0 && c != 1 {
		for i := range eps {
			eps[i] *= c
		}
		// At abar = 0 (a zero terminal SNR schedule's last step) x0 is not a function of eps;
		// the step then uses x0 as predicted, and no sampler's update there weighs it anyway.
		if abar > 0 {
			a, b := math.Sqrt(abar), math.Sqrt(1-abar)
			for i := range x0 {
				x0[i] = (x[i] - b*eps[i]) / a
			}
		}
	}
	if w.adj.clip {
		for i, v := range x0 {
			x0[i] = max(-1, min(1, v))
		}
		EpsFromX0(abar, x, x0, eps)
	}
	return nil
}

// report passes step k of total, from x at t to next at prev, to Options.Callback.
func (w *walker) report(k, total, t, prev int) error {
	if w.opts.Callback == nil {
		return nil
	}
	return w.opts.Callback(Step{Index: k, Total: total, T: t, Prev: prev, X: w.x, X0: w.x0, Next: w.next})
}

// Variance is the variance of DDPM's reverse steps. The zero value is VarianceBeta.
type Variance int

// The two choices of DDPM Sec. 3.2, which the paper found to work about equally well.
const (
	// VarianceBeta: sigma_t^2 = beta_t, the upper bound ("large"; the "fixedlarge" of the DDPM code).
	VarianceBeta Variance = iota
	// VariancePosterior: sigma_t^2 = (1-abar_{t-1})/(1-abar_t) beta_t, the posterior's ("small").
	VariancePosterior
)

func (v Variance) String() string {
	switch v {
	case VarianceBeta:
		return "beta"
	case VariancePosterior:
		return "posterior"
	}
	return fmt.Sprintf("Variance(%d)", int(v))
}

// ParseVariance is the inverse of String.
func ParseVariance(s string) (Variance, error) {
	switch s {
	case "beta":
		return VarianceBeta, nil
	case "posterior":
		return VariancePosterior, nil
	}
	return 0, fmt.Errorf("unknown variance %q (want beta or posterior)", s)
}

// DDPM is ancestral sampling (DDPM Algorithm 2). With Steps = 0 or T it visits every timestep; with
// fewer it walks Timesteps(T, Steps, Spacing) using each jump's effective beta = 1 - abar_t/abar_prev
// (Nichol & Dhariwal 2021, Sec. 4).
type DDPM struct {
	Schedule *schedule.Schedule
	Variance Variance
	Clip     bool    // clip predicted x0 to [-1, 1] before forming the mean (for data scaled to [-1, 1])
	Steps    int     // 0 means Schedule.T
	Spacing  Spacing // used only when Steps < T
	EpsScale float64 // multiply the model's eps by this at every step (0 or 1: off; see walk)
}

// Timesteps returns the sequence this sampler visits.
func (d *DDPM) Timesteps() ([]int, error) {
	if d.Schedule == nil {
		return nil, fmt.Errorf("ddpm: nil schedule")
	}
	S := d.Steps
	if S == 0 {
		S = d.Schedule.T
	}
	if d.Variance != VarianceBeta && d.Variance != VariancePosterior {
		return nil, fmt.Errorf("ddpm: unknown variance %d", int(d.Variance))
	}
	if err := checkEpsScale("ddpm", d.EpsScale); err != nil {
		return nil, err
	}
	return Timesteps(d.Schedule.T, S, d.Spacing)
}

// Sample implements Sampler.
func (d *DDPM) Sample(ctx context.Context, pred Predictor, n, dim int, opts Options) ([]float64, error) {
	ts, err := d.Timesteps()
	if err != nil {
		return nil, err
	}
	return walk(ctx, ts, d.Schedule, adjust{d.Clip, d.EpsScale}, pred, n, dim, opts, ddpmStep(d.Schedule, d.Variance))
}

// ddpmStep is DDPM's ancestral step with variance v, shared by DDPM and RePaint.
func ddpmStep(s *schedule.Schedule, v Variance) stepFunc {
	return func(k, t, prev int, x, x0, eps, z, next []float64) {
		// 1. Coefficients of the posterior q(x_prev | x_t, x0) (DDPM eq. 6-7) for this jump.
		c0, ct, posteriorVar := PosteriorCoefs(s, t, prev)
		// 2. The step's variance: beta (upper bound) or the posterior's (lower bound), DDPM Sec. 3.2.
		variance := posteriorVar
		if v == VarianceBeta {
			variance = 1 - s.AlphaBar[t]/s.AlphaBarPrev(prev)
		}
		sigma := math.Sqrt(variance)
		// 3. x_prev = mu(x_t, x0_hat) + sigma z (DDPM eq. 11 written with x0_hat via eq. 7, which is
		//    what allows clipping x0_hat); no noise on the final step (z == nil).
		for i := range next {
			next[i] = c0*x0[i] + ct*x[i]
		}
		if z != nil {
			for i := range next {
				next[i] += sigma * z[i]
			}
		}
	}
}

// DDIM is the generalised sampler of Song et al. 2021 over Steps timesteps, eq. 12:
//
//	x_prev = sqrt(abar_prev) x0_hat + sqrt(1 - abar_prev - sigma^2) eps_hat + sigma z,
//	sigma  = eta sqrt((1-abar_prev)/(1-abar_t)) sqrt(1 - abar_t/abar_prev)            (eq. 16)
//
// where prev is the next timestep of the sequence and abar_prev = 1 after the last one. eta = 0 is the
// deterministic DDIM; eta = 1 with Steps = T is DDPM with the posterior variance. For eta > 1 the
// direction coefficient sqrt(1 - abar_prev - sigma^2) is taken as 0 once the radicand is negative.
//
// SigmaHat selects the DDIM paper's sigma-hat variant (Sec. 5, Table 1): the mean of eta = 1 with noise
// of standard deviation sqrt(1 - abar_t/abar_prev), DDPM's "large" variance over a skipped step; Eta is
// then ignored. No variant adds noise on the final step.
type DDIM struct {
	Schedule *schedule.Schedule
	Steps    int // S in [1, T]
	Eta      float64
	SigmaHat bool
	Spacing  Spacing
	Clip     bool    // clip predicted x0 to [-1, 1] (and recompute eps from it, as diffusers does)
	EpsScale float64 // multiply the model's eps by this at every step (0 or 1: off; see walk)
	// Grid, if not nil, is the sequence of timesteps to visit (strictly decreasing, in [0, T-1]),
	// taken instead of Timesteps(T, Steps, Spacing); Steps must then be 0 or len(Grid). A
	// progressively distilled model (Salimans & Ho 2022) is trained for the steps of one grid that
	// no spacing reproduces (each student's grid is every other timestep of its teacher's), and is
	// sampled over exactly that grid.
	Grid []int
}

// Timesteps returns the sequence this sampler visits.
func (d *DDIM) Timesteps() ([]int, error) {
	if d.Schedule == nil {
		return nil, fmt.Errorf("ddim: nil schedule")
	}
	if !(d.Eta >= 0) || math.IsInf(d.Eta, 0) {
		return nil, fmt.Errorf("ddim: eta %v must be finite and >= 0", d.Eta)
	}
	if err := checkEpsScale("ddim", d.EpsScale); err != nil {
		return nil, err
	}
	if d.Grid != nil {
		return CheckGrid(d.Schedule.T, d.Steps, d.Grid)
	}
	return Timesteps(d.Schedule.T, d.Steps, d.Spacing)
}

// CheckGrid validates an explicit sequence of timesteps for a model of T timesteps (non-empty,
// strictly decreasing, within [0, T-1], and of length steps unless steps is 0) and returns a copy.
func CheckGrid(T, steps int, grid []int) ([]int, error) {
	if len(grid) == 0 {
		return nil, fmt.Errorf("timesteps: empty grid")
	}
	if steps != 0 && steps != len(grid) {
		return nil, fmt.Errorf("timesteps: %d steps but a grid of %d timesteps", steps, len(grid))
	}
	for i, t := range grid {
		if t < 0 || t >= T {
			return nil, fmt.Errorf("timesteps: grid timestep %d outside [0, %d]", t, T-1)
		}
		if i > 0 && t >= grid[i-1] {
			return nil, fmt.Errorf("timesteps: grid %v is not strictly decreasing", grid)
		}
	}
	return append([]int(nil), grid...), nil
}

// Sample implements Sampler.
func (d *DDIM) Sample(ctx context.Context, pred Predictor, n, dim int, opts Options) ([]float64, error) {
	ts, err := d.Timesteps()
	if err != nil {
		return nil, err
	}
	s := d.Schedule
	eta := d.Eta
	if d.SigmaHat {
		eta = 1
	}
	return walk(ctx, ts, s, adjust{d.Clip, d.EpsScale}, pred, n, dim, opts, func(k, t, prev int, x, x0, eps, z, next []float64) {
		abT, abPrev := s.AlphaBar[t], s.AlphaBarPrev(prev)
		// 1. sigma_t(eta) (DDIM eq. 16).
		sigma := eta * math.Sqrt((1-abPrev)/(1-abT)) * math.Sqrt(1-abT/abPrev)
		// 2. The coefficient of the "direction pointing to x_t" (eq. 12, middle term).
		dir := math.Sqrt(max(0, 1-abPrev-sigma*sigma))
		// 3. The noise's standard deviation: sigma, or sigma-hat = sqrt(1 - abar_t/abar_prev).
		noiseStd := sigma
		if d.SigmaHat {
			noiseStd = math.Sqrt(1 - abT/abPrev)
		}
		// 4. x_prev = sqrt(abar_prev) x0_hat + dir eps_hat + noiseStd z (eq. 12); no noise on the last step.
		a := math.Sqrt(abPrev)
		for i := range next {
			next[i] = a*x0[i] + dir*eps[i]
		}
		if z != nil && noiseStd > 0 {
			for i := range next {
				next[i] += noiseStd * z[i]
			}
		}
	})
}

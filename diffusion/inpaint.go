package diffusion

import (
	"context"
	"fmt"
	"math"

	"github.com/ddpm-go/ddpm/schedule"
)

// Known is a partly known clean sample, the input of inpainting: the samplers draw the unknown
// coordinates given the known ones. Through Options.Known every sampler applies the replacement method
// of Song et al. 2021 ("Score-Based Generative Modeling through Stochastic Differential Equations",
// Appendix I.2, imputation), the baseline RePaint starts from (Lugmayr et al. 2022, Sec. 4.1, eq. 8-10):
//
//   - x_T's known coordinates are q_sample(X0, t_first) = sqrt(abar) X0 + sqrt(1-abar) noise;
//   - after every step onto timestep prev the known coordinates of x_prev are replaced by
//     q_sample(X0, prev) with fresh noise, and on the final step (onto the clean sample) by X0 itself,
//     so the known coordinates of the result are exactly X0's.
//
// The model sees the whole x_t, so the unknown coordinates are steered by the known ones through the
// prediction. This is only approximate: the known coordinates are noised independently of the path the
// unknown ones took, so x_t is not a draw of q(x_t | known part) and the result is not exactly the
// conditional law (the error is largest when the two parts are strongly correlated; inpaint_test.go
// measures it on a Gaussian). RePaint corrects it by resampling.
//
// Randomness: the extra noise of a row comes from that row's own stream (RowRNG), drawn after
// everything the sampler draws for the same step: at the start after x_T, and after each step after
// that step's z, one normal per known coordinate in increasing coordinate order. A run without Known,
// or with a mask of all zeros, is therefore exactly the run it would be without inpainting, and sample
// j still depends only on the seed and j (and its own row of X0 and Mask). To split a run into batches,
// pass each batch its rows of X0 (and of Mask, if per row) with Options.Start.
//
// The slices are read during sampling and must not change until Sample returns.
type Known struct {
	// X0 is the clean sample (n*dim values, the batch's rows). Only the entries where Mask is 1 are
	// read (and must be finite); the others may hold anything, NaN included.
	X0 []float64
	// Mask says which coordinates are known: dim values (one mask for every row) or n*dim (one per
	// row), each exactly 1 (known) or 0 (unknown).
	Mask []float64
}

// rows validates k for a batch of n rows of dim values and returns the known coordinates of each row.
// Rows sharing a mask share one slice.
func (k *Known) rows(n, dim int) ([][]int, error) {
	if len(k.X0) != n*dim {
		return nil, fmt.Errorf("inpaint: known sample has %d values, want n*dim = %d", len(k.X0), n*dim)
	}
	if len(k.Mask) != dim && len(k.Mask) != n*dim {
		return nil, fmt.Errorf("inpaint: mask has %d values, want dim = %d (shared) or n*dim = %d (per row)", len(k.Mask), dim, n*dim)
	}
	for i, m := range k.Mask {
		if m != 0 && m != 1 {
			return nil, fmt.Errorf("inpaint: mask value %d is %v, want 0 (unknown) or 1 (known)", i, m)
		}
	}
	// indices returns the known coordinates of a mask row.
	indices := func(mask []float64) []int {
		var idx []int
		for j, m := range mask {
			if m == 1 {
				idx = append(idx, j)
			}
		}
		return idx
	}
	out := make([][]int, n)
	shared := len(k.Mask) == dim
	var common []int
	if shared {
		common = indices(k.Mask)
	}
	for i := range out {
		if shared {
			out[i] = common
		} else {
			out[i] = indices(k.Mask[i*dim : (i+1)*dim])
		}
		for _, j := range out[i] {
			if v := k.X0[i*dim+j]; math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, fmt.Errorf("inpaint: known value of row %d, coordinate %d is %v, want a finite number", i, j, v)
			}
		}
	}
	return out, nil
}

// impose replaces the known coordinates of x (all rows, at timestep t) by q_sample(X0, t), drawing the
// noise from each row's stream, or by X0 exactly when t < 0 (the clean sample). It does nothing without
// Options.Known.
func (w *walker) impose(x []float64, t int) {
	if w.known == nil {
		return
	}
	x0 := w.opts.Known.X0
	if t < 0 {
		for i, idx := range w.known {
			for _, j := range idx {
				x[i*w.dim+j] = x0[i*w.dim+j]
			}
		}
		return
	}
	// The arithmetic of QSample: sqrt(abar) x0 + sqrt(1-abar) noise.
	a, b := math.Sqrt(w.s.AlphaBar[t]), math.Sqrt(1-w.s.AlphaBar[t])
	for i, idx := range w.known {
		r := w.rngs[i]
		for _, j := range idx {
			x[i*w.dim+j] = a*x0[i*w.dim+j] + b*r.NormFloat64()
		}
	}
}

// down is one reverse step of every row from x at timestep t to next at prev (the clean sample if
// prev < 0): predict, draw z (not on the final step), apply step, impose the known part, report as step
// k of total. It leaves the result in x.
func (w *walker) down(ctx context.Context, k, total, t, prev int, step stepFunc) error {
	if err := w.model(ctx, k, t); err != nil {
		return err
	}
	var noise []float64
	if prev >= 0 {
		w.normals(w.z)
		noise = w.z
	}
	step(k, t, prev, w.x, w.x0, w.eps, noise, w.next)
	w.impose(w.next, prev)
	if err := w.report(k, total, t, prev); err != nil {
		return err
	}
	w.x, w.next = w.next, w.x
	return nil
}

// up moves every row from x at timestep t-1 to timestep t by the forward process,
// x_t ~ q(x_t | x_{t-1}) = N(sqrt(1-beta_t) x_{t-1}, beta_t I) (DDPM eq. 2), with noise from the row
// streams. It leaves the result in x.
func (w *walker) up(t int) {
	w.normals(w.z)
	beta := w.s.Betas[t]
	a, b := math.Sqrt(1-beta), math.Sqrt(beta)
	for i, v := range w.x {
		w.next[i] = a*v + b*w.z[i]
	}
	w.x, w.next = w.next, w.x
}

// RePaint is the inpainting sampler of Lugmayr et al. 2022 ("RePaint: Inpainting using Denoising
// Diffusion Probabilistic Models", Algorithm 1 with the resampling schedule of Sec. 4.2). It requires
// Options.Known.
//
// It walks every timestep of the schedule (no skipping). A down step from t to t-1 is DDPM's ancestral
// step (the same as DDPM with this Variance, Clip and EpsScale) followed by the replacement of the known
// coordinates with q_sample(X0, t-1), or X0 exactly onto the clean sample: eq. 8-10 of the paper, as
// with Options.Known on any sampler. Replacement alone leaves the unknown part out of harmony with
// the known part, because the known part's noise ignores the path the unknown part took. RePaint
// repairs this by going back up: an up step from t-1 to t draws x_t ~ q(x_t | x_{t-1}) =
// N(sqrt(1-beta_t) x_{t-1}, beta_t I) for all coordinates, and the following down steps denoise it
// again with the model, which sees both parts together. The paper's schedule of jumps (Sec. 4.2,
// "jumps" in its code): going down, at every timestep p = 0, j, 2j, ... below T-j, jump back up j steps
// and come down again, r-1 times, so every stretch [p, p+j] is traversed r times. r = 1 is plain
// replacement DDPM, the same as DDPM with Options.Known bit for bit.
//
// The model is called once per down step: T + (r-1) j P times, with P = ceil((T-j)/j) jump points (0
// if j >= T); T = 250, j = r = 10 as in the paper makes 2410 calls. Options.Callback is called after
// every down step only, as step Index of Total = the number of calls, with Prev = T-1 for the step's
// timestep T (-1 for the final step). Up steps are not reported: after a jump up, a step's X is the
// re-noised state, not the previous report's Next. Times gives the whole visited sequence.
//
// How close it gets: on a strongly correlated 3-D Gaussian with an exact model (inpaint_test.go) the
// result's law, computed exactly, is off the true conditional by 0.35 in the mean with r = 1 (plain
// replacement), and by 0.048, 0.022 and 0.011 with r = 5, 10 and 20 (j = 10, T = 250): the bias falls
// roughly as 1/r, and tends to 0 as r grows with short jumps, at a cost linear in r.
//
// Randomness per row, from RowRNG as every sampler: x_T, then the known part's noise at T-1, then per
// down step its z and its known part's noise (neither onto the clean sample), per up step its z.
type RePaint struct {
	Schedule   *schedule.Schedule
	Variance   Variance // DDPM's step variance, VarianceBeta or VariancePosterior
	Clip       bool     // clip predicted x0 to [-1, 1], as DDPM
	JumpLength int      // j: steps down between jumps, and the height of a jump (0 means 10)
	Resample   int      // r: times each stretch is traversed (0 means 10; 1: no resampling)
	EpsScale   float64  // multiply the model's eps by this at every step (0 or 1: off; see walk)
}

// The paper's setting: j = 10, r = 10 (Lugmayr et al. 2022, used with T = 250).
const (
	defaultJumpLength = 10
	defaultResample   = 10
)

// maxRePaintTimes bounds the length of the visited sequence, so absurd j and r are an error rather than
// an exhausted memory.
const maxRePaintTimes = 1 << 30

// params validates the configuration and returns j and r with their defaults applied.
func (r *RePaint) params() (j, res int, err error) {
	if r.Schedule == nil {
		return 0, 0, fmt.Errorf("repaint: nil schedule")
	}
	if r.Variance != VarianceBeta && r.Variance != VariancePosterior {
		return 0, 0, fmt.Errorf("repaint: unknown variance %d", int(r.Variance))
	}
	if err := checkEpsScale("repaint", r.EpsScale); err != nil {
		return 0, 0, err
	}
	if r.JumpLength < 0 {
		return 0, 0, fmt.Errorf("repaint: jump length %d must be >= 1 (0 means %d)", r.JumpLength, defaultJumpLength)
	}
	if r.Resample < 0 {
		return 0, 0, fmt.Errorf("repaint: resample count %d must be >= 1 (0 means %d)", r.Resample, defaultResample)
	}
	j, res = r.JumpLength, r.Resample
	if j == 0 {
		j = defaultJumpLength
	}
	if res == 0 {
		res = defaultResample
	}
	return j, res, nil
}

// Times returns the sequence of timesteps the state visits: T-1 first, then one entry per step, ending
// with -1 for the clean sample. A decrease by one is a down step (a model call at the higher timestep),
// an increase by one an up step.
func (r *RePaint) Times() ([]int, error) {
	j, res, err := r.params()
	if err != nil {
		return nil, err
	}
	T := r.Schedule.T
	// left[p]: the jumps up still to make from p.
	left := make([]int, T)
	points := 0
	for p := 0; p < T-j; p += j {
		left[p] = res - 1
		points++
	}
	size := 1 + float64(T) + 2*float64(j)*float64(res-1)*float64(points)
	if size > maxRePaintTimes {
		return nil, fmt.Errorf("repaint: jump length %d and resample count %d visit %.3g timesteps, more than %d", j, res, size, maxRePaintTimes)
	}
	ts := make([]int, 0, int(size))
	t := T - 1
	ts = append(ts, t)
	for t >= 0 {
		if left[t] > 0 {
			left[t]--
			for range j {
				t++
				ts = append(ts, t)
			}
			continue
		}
		t--
		ts = append(ts, t)
	}
	return ts, nil
}

// Sample implements Sampler. opts.Known must be set.
func (r *RePaint) Sample(ctx context.Context, pred Predictor, n, dim int, opts Options) ([]float64, error) {
	ts, err := r.Times()
	if err != nil {
		return nil, err
	}
	if opts.Known == nil {
		return nil, fmt.Errorf("repaint: Options.Known is nil; RePaint samples only given a known part")
	}
	w, err := newWalker(r.Schedule, adjust{r.Clip, r.EpsScale}, pred, n, dim, opts)
	if err != nil {
		return nil, err
	}
	total := 0
	for i := 1; i < len(ts); i++ {
		if ts[i] < ts[i-1] {
			total++
		}
	}
	step := ddpmStep(r.Schedule, r.Variance)
	w.start(ts[0])
	k := 0
	for i := 0; i+1 < len(ts); i++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		t, next := ts[i], ts[i+1]
		if next > t {
			w.up(next)
			continue
		}
		if err := w.down(ctx, k, total, t, next, step); err != nil {
			return nil, err
		}
		k++
	}
	return w.x, nil
}

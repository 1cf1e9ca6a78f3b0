package diffusion

import (
	"context"
	"fmt"
	"math"
)

// Encode runs deterministic DDIM (eta = 0) backwards, from clean samples x0 (n rows of dim values) to
// their latents x_T: the probability-flow ODE integrated in the opposite direction (DDIM Sec. 4.3 and
// 5.4, "encoding" for reconstruction and interpolation). Decoding the result with the same DDIM from
// Options.XT gives x0 back, up to the discretisation error of S steps, which the DDIM paper's Table 2
// measures.
//
// The walk visits the decoder's points in reverse: clean -> ts[S-1] -> ... -> ts[0], one model call
// per step, at the step's starting point:
//
//	x_b = sqrt(abar_b) x0_hat(x_a) + sqrt(1 - abar_b) eps_hat(x_a)       (DDIM eq. 12, sigma = 0)
//
// From the clean sample x0_hat is x0 itself and eps_hat is the model's at the smallest timestep of
// the sequence (t = 0 for linspace spacing, where it is asked about a nearly clean input). It
// requires Eta = 0, no SigmaHat (a stochastic sampler has no inverse) and no EpsScale, and ignores Clip. The
// callback reports each step with T the timestep the model was called at and Prev the timestep
// reached (X0 is the model's x0 prediction, X and Next the step's input and output).
func (d *DDIM) Encode(ctx context.Context, pred Predictor, x0 []float64, n, dim int, opts Options) ([]float64, error) {
	ts, err := d.Timesteps()
	if err != nil {
		return nil, err
	}
	if d.Eta != 0 || d.SigmaHat {
		return nil, fmt.Errorf("encode: needs deterministic DDIM (eta = 0), got eta %v sigma-hat %v", d.Eta, d.SigmaHat)
	}
	if d.EpsScale != 0 && d.EpsScale != 1 {
		// A scaled sampler is no longer the probability-flow ODE this walk inverts.
		return nil, fmt.Errorf("encode: eps scale %v: encoding inverts the unscaled DDIM; use 1", d.EpsScale)
	}
	if n < 1 || dim < 1 || len(x0) != n*dim {
		return nil, fmt.Errorf("encode: %d values for n=%d rows of dim=%d", len(x0), n, dim)
	}
	if pred == nil {
		return nil, fmt.Errorf("encode: nil predictor")
	}
	s := d.Schedule
	size := n * dim
	buf := make([]float64, 5*size)
	x, next, out, xh, eps := buf[:size], buf[size:2*size], buf[2*size:3*size], buf[3*size:4*size], buf[4*size:]
	copy(x, x0)
	S := len(ts)
	for k := range S {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		// From point a (clean when k = 0, else ts[S-k]) to point b = ts[S-1-k].
		t := ts[S-1-k]
		label, abA := t, 1.0
		if k > 0 {
			label = ts[S-k]
			abA = s.AlphaBar[label]
		}
		if err := pred.Predict(ctx, x, n, dim, label, out); err != nil {
			return nil, fmt.Errorf("encode: step %d (t=%d): %w", k, label, err)
		}
		for i, v := range out {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, fmt.Errorf("encode: step %d (t=%d): predictor output %v at row %d", k, label, v, i/dim)
			}
		}
		if k == 0 {
			// At the clean point x0_hat = x; the model's output only supplies eps (at abar_label).
			if err := X0Eps(opts.Prediction, s.AlphaBar[label], x, out, nil, eps); err != nil {
				return nil, fmt.Errorf("encode: step 0: %w", err)
			}
			copy(xh, x)
		} else if err := X0Eps(opts.Prediction, abA, x, out, xh, eps); err != nil {
			return nil, fmt.Errorf("encode: step %d (t=%d): %w", k, label, err)
		}
		abB := s.AlphaBar[t]
		a, b := math.Sqrt(abB), math.Sqrt(1-abB)
		for i := range next {
			next[i] = a*xh[i] + b*eps[i]
		}
		if opts.Callback != nil {
			if err := opts.Callback(Step{Index: k, Total: S, T: label, Prev: t, X: x, X0: xh, Next: next}); err != nil {
				return nil, err
			}
		}
		x, next = next, x
	}
	return x, nil
}

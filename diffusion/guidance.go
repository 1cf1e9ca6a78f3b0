package diffusion

import (
	"context"
	"fmt"
	"math"
	"slices"

	"github.com/ddpm-go/ddpm/schedule"
)

// NoLabel is the label of an unconditional row: the "null token" a classifier-free model is trained
// with by dropping labels (Ho & Salimans 2022, "Classifier-Free Diffusion Guidance", Sec. 3.2).
const NoLabel = -1

// LabeledPredictor is a class-conditional model: one network (or ClassOracle) that predicts with or
// without a label, as classifier-free guidance requires (Ho & Salimans 2022, Algorithm 1 trains a single
// model for both). It is a separate interface from Predictor so the samplers stay label-agnostic; Guided
// turns a LabeledPredictor into a Predictor.
type LabeledPredictor interface {
	// Predict writes the model output for the n rows of x (each of length dim) at timestep t into out,
	// row i conditioned on labels[i] (NoLabel: unconditional). All rows share t. It must not keep x,
	// labels or out after returning.
	Predict(ctx context.Context, x []float64, labels []int, n, dim, t int, out []float64) error
}

// ClassOracle is the exact class-conditional denoiser of a Gaussian mixture whose classes are its
// components: class c is component c alone, with weight 1, so the conditional data law is
// N(mu_c, s_c^2 I) and, with v_c = abar s_c^2 + 1 - abar,
//
//	eps*(x_t, t | c) = sqrt(1-abar) (x_t - sqrt(abar) mu_c) / v_c
//	x0*(x_t, t | c)  = mu_c + sqrt(abar) s_c^2 / v_c (x_t - sqrt(abar) mu_c)
//
// which is Oracle's formula with the responsibilities replaced by the indicator of c. A NoLabel row gets
// the whole mixture's prediction, exactly Oracle's. It is what a perfectly trained classifier-free model
// with p_uncond > 0 would be, so guidance can be tested without a network.
type ClassOracle struct {
	Mixture  *Mixture
	Schedule *schedule.Schedule
	Output   Prediction // what Predict writes; the samplers' Options.Prediction must match
}

// Predict implements LabeledPredictor. Labels must be NoLabel or a component index.
func (o *ClassOracle) Predict(ctx context.Context, x []float64, labels []int, n, dim, t int, out []float64) error {
	if dim != o.Mixture.Dim() {
		return fmt.Errorf("class oracle: rows of %d values, mixture dimension is %d", dim, o.Mixture.Dim())
	}
	if t < 0 || t >= o.Schedule.T {
		return fmt.Errorf("class oracle: timestep %d outside [0, %d]", t, o.Schedule.T-1)
	}
	if len(x) != n*dim || len(out) != n*dim || len(labels) != n {
		return fmt.Errorf("class oracle: %d inputs, %d labels and %d outputs for %d rows of %d", len(x), len(labels), len(out), n, dim)
	}
	K := len(o.Mixture.Weights)
	for i, c := range labels {
		if c != NoLabel && (c < 0 || c >= K) {
			return fmt.Errorf("class oracle: row %d has label %d, want %d (unconditional) or a class in [0, %d]", i, c, NoLabel, K-1)
		}
	}
	if o.Output != Eps && o.Output != X0 && o.Output != V {
		return fmt.Errorf("class oracle: unknown parameterization %d", int(o.Output))
	}
	nm := o.Mixture.noised(o.Schedule.AlphaBar[t])
	for i, c := range labels {
		xi := x[i*dim : (i+1)*dim]
		// The posterior weight of component k: its responsibility unconditionally, the indicator of
		// the label otherwise.
		r := func(k int) float64 {
			if k == c {
				return 1
			}
			return 0
		}
		if c == NoLabel {
			lse := nm.logs(xi, nm.logp)
			r = func(k int) float64 { return math.Exp(nm.logp[k] - lse) }
		}
		nm.predictRow(o.Mixture, xi, out[i*dim:(i+1)*dim], o.Output, r)
	}
	return nil
}

// GuidanceScale converts Ho & Salimans' guidance weight w (Eq. 6: eps~ = (1+w) eps(z, c) - w eps(z))
// into this package's scale s = 1 + w, the coefficient of the conditional prediction. It is the one
// place the two conventions meet: s = 1 (w = 0) is the conditional model, s = 0 (w = -1) the
// unconditional one, s > 1 guidance proper.
func GuidanceScale(w float64) float64 { return 1 + w }

// Guided is classifier-free guidance (Ho & Salimans 2022, Eq. 6) as a Predictor, so it works with every
// sampler (DDPM with either variance, DDIM with any eta, DPM-Solver++, PLMS) and every option of theirs
// (clipping, eps scaling, callbacks) unchanged. For each row it predicts
//
//	eps_hat = eps(x_t) + s (eps(x_t, c) - eps(x_t))
//
// with s = Scale = 1 + w (see GuidanceScale). Both halves come from ONE call of Model with 2n rows
// (the n conditional rows, then the same n rows with NoLabel), as an implementation on a network should
// do: a batch of 2n costs far less than two batches of n on an accelerator. At s = 1 and s = 0 only the
// half that counts is computed (n rows).
//
// The combination is applied to Model's raw output, whatever its parametrisation (Options.Prediction
// must match Model's, as for any Predictor). That is the same as combining in eps space: at fixed x_t
// the eps of an x0 or v output is an affine function of it (X0Eps), and the guided combination
// (1-s) u + s c has weights summing to 1, so it commutes with any affine map. Combining directly avoids
// the conversion's singularities (eps from x0 at abar = 1, x0 from eps at abar = 0), and the samplers
// convert the guided output with X0Eps exactly as they would the model's.
//
// Labels holds the class of each of the n rows the sampler passes (len(Labels) must be n, the batch
// size); a NoLabel row is unconditional whatever s. Reproducibility: a sampler passes all its rows to
// every call, row i of a run with Options.Start = start draws its noise from RowRNG(Seed, start+i), and
// the guided prediction of a row depends only on that row and its label (for a row-wise model such as
// ClassOracle). So image j depends only on the seed, j and its class: to split a run of N images with
// global labels L into batches, sample each batch [start, start+n) with Options.Start = start and
// Labels = L[start:start+n].
type Guided struct {
	Model  LabeledPredictor
	Labels []int   // the class of each row of the batch; NoLabel for unconditional rows
	Scale  float64 // s = 1 + w: 0 unconditional, 1 conditional, > 1 guided
}

// Predict implements Predictor.
func (g *Guided) Predict(ctx context.Context, x []float64, n, dim, t int, out []float64) error {
	if g.Model == nil {
		return fmt.Errorf("guided: nil model")
	}
	if len(g.Labels) != n {
		return fmt.Errorf("guided: %d labels for a batch of %d rows", len(g.Labels), n)
	}
	if math.IsNaN(g.Scale) || math.IsInf(g.Scale, 0) {
		return fmt.Errorf("guided: scale %v must be finite", g.Scale)
	}
	if len(x) != n*dim || len(out) != n*dim {
		return fmt.Errorf("guided: %d inputs and %d outputs for %d rows of %d", len(x), len(out), n, dim)
	}
	// At s = 1 the guided prediction is the conditional one and at s = 0 the unconditional one:
	// one call of n rows gives it exactly, at half the cost.
	switch g.Scale {
	case 1:
		return g.Model.Predict(ctx, x, g.Labels, n, dim, t, out)
	case 0:
		return g.Model.Predict(ctx, x, noLabels(n), n, dim, t, out)
	}
	size := n * dim
	buf := make([]float64, 4*size)
	x2, out2 := buf[:2*size], buf[2*size:]
	copy(x2, x)
	copy(x2[size:], x)
	labels := append(slices.Clone(g.Labels), noLabels(n)...)
	if err := g.Model.Predict(ctx, x2, labels, 2*n, dim, t, out2); err != nil {
		return err
	}
	cond, uncond := out2[:size], out2[size:]
	s := g.Scale
	for i := range out {
		out[i] = uncond[i] + s*(cond[i]-uncond[i])
	}
	return nil
}

// noLabels is n NoLabel labels.
func noLabels(n int) []int {
	l := make([]int, n)
	for i := range l {
		l[i] = NoLabel
	}
	return l
}

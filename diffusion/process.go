package diffusion

import (
	"fmt"
	"math"

	"github.com/ddpm-go/ddpm/schedule"
)

// QSample draws from q(x_t | x_0) in closed form (DDPM eq. 4): xt = sqrt(abar_t) x0 + sqrt(1-abar_t) noise.
// x0, noise and xt have the same length; xt may alias x0 or noise.
func QSample(s *schedule.Schedule, x0 []float64, t int, noise, xt []float64) {
	a, b := math.Sqrt(s.AlphaBar[t]), math.Sqrt(1-s.AlphaBar[t])
	for i := range xt {
		xt[i] = a*x0[i] + b*noise[i]
	}
}

// PosteriorCoefs returns the mean coefficients and variance of q(x_prev | x_t, x_0) for a step from t
// to prev < t of the forward process (prev = -1 means the clean data, abar = 1):
//
//	mean = c0 x_0 + ct x_t,  c0 = sqrt(abar_prev) beta / (1 - abar_t),  ct = sqrt(alpha) (1 - abar_prev) / (1 - abar_t)
//	variance = (1 - abar_prev) / (1 - abar_t) beta                    (DDPM eq. 6-7)
//
// where alpha = abar_t / abar_prev and beta = 1 - alpha are the step's effective values. For prev = t-1
// they are alpha_t and beta_t; for a longer jump they are the "respaced" values of Nichol & Dhariwal
// 2021 (Sec. 4), which is what makes DDPM over a subsequence of timesteps well defined.
func PosteriorCoefs(s *schedule.Schedule, t, prev int) (c0, ct, variance float64) {
	abT, abPrev := s.AlphaBar[t], s.AlphaBarPrev(prev)
	alpha := abT / abPrev
	beta := 1 - alpha
	c0 = math.Sqrt(abPrev) * beta / (1 - abT)
	ct = math.Sqrt(alpha) * (1 - abPrev) / (1 - abT)
	variance = (1 - abPrev) / (1 - abT) * beta
	return c0, ct, variance
}

// PosteriorMean writes the mean of q(x_{t-1} | x_t, x_0) (DDPM eq. 7) into out and returns the
// posterior variance beta-tilde_t. out may alias x0 or xt.
func PosteriorMean(s *schedule.Schedule, x0, xt []float64, t int, out []float64) (variance float64) {
	c0, ct, v := PosteriorCoefs(s, t, t-1)
	for i := range out {
		out[i] = c0*x0[i] + ct*xt[i]
	}
	return v
}

// Prediction says what a model outputs: the noise eps (DDPM), the clean sample x0, or
// v = sqrt(abar) eps - sqrt(1-abar) x0 (Salimans & Ho 2022). The zero value is Eps.
type Prediction int

// The parametrisations a Predictor can have.
const (
	Eps Prediction = iota
	X0
	V
)

func (p Prediction) String() string {
	switch p {
	case Eps:
		return "eps"
	case X0:
		return "x0"
	case V:
		return "v"
	}
	return fmt.Sprintf("Prediction(%d)", int(p))
}

// ParsePrediction is the inverse of String.
func ParsePrediction(s string) (Prediction, error) {
	switch s {
	case "eps", "epsilon":
		return Eps, nil
	case "x0", "sample":
		return X0, nil
	case "v", "v_prediction":
		return V, nil
	}
	return 0, fmt.Errorf("unknown parameterization %q (want eps, x0 or v)", s)
}

// X0Eps converts a model output in parametrisation p at noise level abar into the predicted clean
// sample x0 and noise eps, writing both (either may be nil to skip it). With p == Eps and abar == 0
// (a zero-SNR schedule's last step) x0 is not determined by eps and an error is returned.
// out, x0 and eps must not alias each other; xt may not alias x0 or eps.
func X0Eps(p Prediction, abar float64, xt, out, x0, eps []float64) error {
	a, b := math.Sqrt(abar), math.Sqrt(1-abar)
	switch p {
	case Eps:
		if abar == 0 && x0 != nil {
			return fmt.Errorf("cannot recover x0 from an eps prediction where alpha_bar = 0 (zero-SNR); use an x0 or v model")
		}
		for i := range xt {
			if x0 != nil {
				x0[i] = (xt[i] - b*out[i]) / a
			}
			if eps != nil {
				eps[i] = out[i]
			}
		}
	case X0:
		if abar == 1 && eps != nil {
			return fmt.Errorf("cannot recover eps from an x0 prediction where alpha_bar = 1")
		}
		for i := range xt {
			if eps != nil {
				eps[i] = (xt[i] - a*out[i]) / b
			}
			if x0 != nil {
				x0[i] = out[i]
			}
		}
	case V:
		for i := range xt {
			if x0 != nil {
				x0[i] = a*xt[i] - b*out[i]
			}
			if eps != nil {
				eps[i] = b*xt[i] + a*out[i]
			}
		}
	default:
		return fmt.Errorf("unknown parameterization %d", int(p))
	}
	return nil
}

// EpsFromX0 writes eps = (x_t - sqrt(abar) x0) / sqrt(1-abar): the noise consistent with x_t and a
// (possibly clipped) x0. out may alias x0.
func EpsFromX0(abar float64, xt, x0, out []float64) {
	a, b := math.Sqrt(abar), math.Sqrt(1-abar)
	for i := range out {
		out[i] = (xt[i] - a*x0[i]) / b
	}
}

// Target writes the regression target of parametrisation p for a clean sample x0 noised with eps at
// noise level abar: eps, x0, or v = sqrt(abar) eps - sqrt(1-abar) x0.
func Target(p Prediction, abar float64, x0, eps, out []float64) error {
	switch p {
	case Eps:
		copy(out, eps)
	case X0:
		copy(out, x0)
	case V:
		a, b := math.Sqrt(abar), math.Sqrt(1-abar)
		for i := range out {
			out[i] = a*eps[i] - b*x0[i]
		}
	default:
		return fmt.Errorf("unknown parameterization %d", int(p))
	}
	return nil
}

// TrainingBatch prepares one batch of the simple training objective (DDPM Algorithm 1, L_simple):
// for each of the n rows of x0 (each dim long) at its own timestep ts[i] with its own noise row, it
// writes x_t = sqrt(abar) x0 + sqrt(1-abar) noise into xt and the target of parametrisation p into
// target. The model is then trained to minimise Loss(model(xt, ts), target).
//
// Drawing ts (uniform over [0, T-1]) and noise (standard normal) is the caller's job, so the caller
// owns the random streams and can reproduce a batch.
func TrainingBatch(s *schedule.Schedule, p Prediction, x0 []float64, n, dim int, ts []int, noise, xt, target []float64) error {
	if len(x0) != n*dim || len(noise) != n*dim || len(xt) != n*dim || len(target) != n*dim || len(ts) != n {
		return fmt.Errorf("training batch: want %d rows of %d (x0 %d, noise %d, xt %d, target %d, ts %d)",
			n, dim, len(x0), len(noise), len(xt), len(target), len(ts))
	}
	for i := 0; i < n; i++ {
		t := ts[i]
		if t < 0 || t >= s.T {
			return fmt.Errorf("training batch: row %d: timestep %d outside [0, %d]", i, t, s.T-1)
		}
		r := i * dim
		x, e := x0[r:r+dim], noise[r:r+dim]
		QSample(s, x, t, e, xt[r:r+dim])
		if err := Target(p, s.AlphaBar[t], x, e, target[r:r+dim]); err != nil {
			return err
		}
	}
	return nil
}

// Loss is the mean squared error between a model output and its target over all elements: the
// L_simple of DDPM eq. 14 for Eps, and its analogue for X0 and V. If perRow is not nil it receives
// each row's mean squared error (len(pred)/len(perRow) elements per row). Mismatched or empty inputs
// (pred and target of different lengths, or rows that do not divide pred) give NaN.
//
// The three objectives weight timesteps differently. For the same x_t, an error d in eps is an error
// d/sqrt(abar) in v and sqrt((1-abar)/abar) d in x0, so per-element
//
//	MSE_v = MSE_eps / abar,   MSE_x0 = (1-abar)/abar * MSE_eps = (1-abar) MSE_v,
//
// i.e. x0-prediction weights noisy steps down by the SNR and v-prediction by SNR+1 relative to eps.
func Loss(pred, target, perRow []float64) float64 {
	if len(pred) == 0 || len(pred) != len(target) || (perRow != nil && (len(perRow) == 0 || len(pred)%len(perRow) != 0)) {
		return math.NaN()
	}
	rows := 1
	if perRow != nil {
		rows = len(perRow)
	}
	per := len(pred) / rows
	var total float64
	for r := 0; r < rows; r++ {
		var sum float64
		for i := r * per; i < (r+1)*per; i++ {
			d := pred[i] - target[i]
			sum += d * d
		}
		if perRow != nil {
			perRow[r] = sum / float64(per)
		}
		total += sum
	}
	return total / float64(len(pred))
}

// Package schedule builds the noise schedules of a diffusion model: the per-step variances beta_t and
// the cumulative products alpha_bar_t that every other part of the model reads.
//
// Notation follows DDPM (Ho et al. 2020): alpha_t = 1 - beta_t and alpha_bar_t = prod_{s<=t} alpha_s, so
// q(x_t | x_0) = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I). Timesteps are 0-indexed, t in [0, T-1]:
// index 0 is the paper's t=1. (The DDIM paper writes alpha_t for what is alpha_bar_t here.)
//
// Everything is float64: alpha_bar_t reaches ~4e-5 for the linear schedule and the samplers take ratios
// and square roots of it, where float32 would lose digits that the oracle tests can see.
package schedule

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// Schedule is a beta schedule and the tables derived from it. The slices have length T and are
// indexed by the 0-based timestep t. They are shared, not copied: treat them as read-only.
type Schedule struct {
	Name    string // one of Names()
	T       int    // number of diffusion steps
	ZeroSNR bool   // rescaled so that AlphaBar[T-1] == 0 (Lin et al. 2023)

	Betas    []float64 // beta_t, the variance of step t: q(x_t | x_{t-1}) = N(sqrt(1-beta_t) x_{t-1}, beta_t I)
	Alphas   []float64 // alpha_t = 1 - beta_t
	AlphaBar []float64 // alpha_bar_t = prod_{s<=t} alpha_s
}

// Names lists the schedule names New accepts.
func Names() []string { return []string{"linear", "cosine", "scaled-linear", "sigmoid"} }

// MaxTimesteps bounds T wherever it comes from (a flag, a config, a checkpoint's metadata): no
// diffusion model uses more than a few thousand steps, and a T of 1e9 would ask for tens of GB of
// tables before any check downstream could see it.
const MaxTimesteps = 100_000

// New builds a schedule by name with T steps:
//
//   - "linear" (DDPM): beta_t = linspace(1e-4, 0.02, T)[t].
//   - "cosine" (Nichol & Dhariwal 2021, eq. 17): f(t) = cos(((t/T + s)/(1 + s)) * pi/2)^2 with s = 0.008,
//     beta_t = min(1 - f(t+1)/f(t), 0.999), so alpha_bar_t = f(t+1)/f(0) until the clip bites.
//   - "scaled-linear" (latent/Stable Diffusion): beta_t = linspace(sqrt(0.00085), sqrt(0.012), T)[t]^2.
//   - "sigmoid" (as in diffusers and GeoDiff): beta_t = sigmoid(linspace(-6, 6, T)[t]) * (0.02 - 1e-4) + 1e-4.
//
// linspace(a, b, T) follows numpy: T evenly spaced values from a to b inclusive, [a] when T == 1.
//
// With zeroSNR the schedule is rescaled as in Lin et al. 2023 ("Common Diffusion Noise Schedules and
// Sample Steps are Flawed", Algorithm 1): sqrt(alpha_bar) is shifted so its last value is 0 and scaled
// so its first value is unchanged, then betas are recomputed from the new alpha_bar. The last step then
// destroys the signal completely (beta_{T-1} = 1), so a sampler starting from pure noise starts from
// the true prior; such a schedule needs a model that predicts v or x0, since x0 cannot be recovered from
// eps where alpha_bar = 0.
func New(name string, T int, zeroSNR bool) (*Schedule, error) {
	if T < 1 {
		return nil, fmt.Errorf("schedule: timesteps %d < 1", T)
	}
	if T > MaxTimesteps {
		return nil, fmt.Errorf("schedule: timesteps %d above the limit %d", T, MaxTimesteps)
	}
	if zeroSNR && T < 2 {
		return nil, fmt.Errorf("schedule: zero-SNR needs at least 2 timesteps, got %d", T)
	}
	betas := make([]float64, T)
	switch name {
	case "linear":
		copy(betas, linspace(1e-4, 0.02, T))
	case "cosine":
		const s = 0.008
		f := func(t int) float64 {
			c := math.Cos((float64(t)/float64(T) + s) / (1 + s) * math.Pi / 2)
			return c * c
		}
		for t := range betas {
			betas[t] = math.Min(1-f(t+1)/f(t), 0.999)
		}
	case "scaled-linear":
		for t, r := range linspace(math.Sqrt(0.00085), math.Sqrt(0.012), T) {
			betas[t] = r * r
		}
	case "sigmoid":
		const start, end = 1e-4, 0.02
		for t, u := range linspace(-6, 6, T) {
			betas[t] = 1/(1+math.Exp(-u))*(end-start) + start
		}
	default:
		return nil, fmt.Errorf("schedule: unknown schedule %q (want one of %s)", name, strings.Join(Names(), ", "))
	}
	s := &Schedule{Name: name, T: T, ZeroSNR: zeroSNR, Betas: betas}
	s.Alphas = make([]float64, T)
	s.AlphaBar = make([]float64, T)
	prod := 1.0
	for t, b := range betas {
		s.Alphas[t] = 1 - b
		prod *= 1 - b
		s.AlphaBar[t] = prod
	}
	if zeroSNR {
		s.rescaleZeroSNR()
	}
	return s, nil
}

// rescaleZeroSNR is Algorithm 1 of Lin et al. 2023, in terms of alpha_bar.
func (s *Schedule) rescaleZeroSNR() {
	T := s.T
	first, last := math.Sqrt(s.AlphaBar[0]), math.Sqrt(s.AlphaBar[T-1])
	scale := first / (first - last)
	for t := range s.AlphaBar {
		r := (math.Sqrt(s.AlphaBar[t]) - last) * scale
		s.AlphaBar[t] = r * r
	}
	s.AlphaBar[T-1] = 0 // exactly, whatever the rounding above did
	prev := 1.0
	for t, ab := range s.AlphaBar {
		s.Alphas[t] = ab / prev
		s.Betas[t] = 1 - s.Alphas[t]
		prev = ab
	}
}

// AlphaBarPrev returns alpha_bar at timestep t, or 1 for t < 0: the value a sampler uses for the step
// after the last one, where x is the clean sample itself.
func (s *Schedule) AlphaBarPrev(t int) float64 {
	if t < 0 {
		return 1
	}
	return s.AlphaBar[t]
}

// SNR returns the signal-to-noise ratio alpha_bar_t / (1 - alpha_bar_t) at timestep t.
func (s *Schedule) SNR(t int) float64 { return s.AlphaBar[t] / (1 - s.AlphaBar[t]) }

// linspace returns n evenly spaced values from a to b inclusive, computed as numpy.linspace does
// (a + i*step, last value exactly b), so tables match the Python reference implementations bit for bit
// where they can.
func linspace(a, b float64, n int) []float64 {
	out := make([]float64, n)
	if n == 1 {
		out[0] = a
		return out
	}
	step := (b - a) / float64(n-1)
	for i := range out {
		out[i] = float64(i)*step + a
	}
	out[n-1] = b
	return out
}

// WriteCSV writes the schedule as a table, one row per t: t, beta, alpha_bar, alpha,
// sqrt(alpha_bar) and the SNR alpha_bar / (1 - alpha_bar), at full float64 precision so that
// other tools reproduce the tables exactly.
func (s *Schedule) WriteCSV(w io.Writer) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintln(bw, "t,beta,alpha_bar,alpha,sqrt_alpha_bar,snr")
	f := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
	for t := 0; t < s.T; t++ {
		fmt.Fprintf(bw, "%d,%s,%s,%s,%s,%s\n", t, f(s.Betas[t]), f(s.AlphaBar[t]), f(s.Alphas[t]),
			f(math.Sqrt(s.AlphaBar[t])), f(s.SNR(t)))
	}
	return bw.Flush()
}

// Respace is the schedule of the timesteps ts (increasing) of s as a diffusion of its own, the
// respacing of Nichol & Dhariwal 2021 (Sec. 4): step k has alpha_bar = s.AlphaBar[ts[k]] and
// beta_k = 1 - alpha_bar_k / alpha_bar_{k-1}, so a sampler that walks every step of the result
// takes the same steps as one that skips over s between the chosen timesteps. A network trained on
// s is called at ts[k] for step k. It lets samplers defined over every timestep (RePaint) run in
// fewer.
func Respace(s *Schedule, ts []int) (*Schedule, error) {
	if len(ts) == 0 {
		return nil, fmt.Errorf("respace: no timesteps")
	}
	r := &Schedule{Name: s.Name, T: len(ts), ZeroSNR: s.ZeroSNR,
		Betas: make([]float64, len(ts)), Alphas: make([]float64, len(ts)), AlphaBar: make([]float64, len(ts))}
	prev := 1.0
	for k, t := range ts {
		if t < 0 || t >= s.T || (k > 0 && t <= ts[k-1]) {
			return nil, fmt.Errorf("respace: timesteps must increase within [0, %d], got %v", s.T-1, ts)
		}
		ab := s.AlphaBar[t]
		r.AlphaBar[k] = ab
		r.Alphas[k] = ab / prev
		r.Betas[k] = 1 - r.Alphas[k]
		prev = ab
	}
	return r, nil
}

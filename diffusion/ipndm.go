package diffusion

import (
	"context"
	"fmt"
	"math"

	"github.com/ddpm-go/ddpm/schedule"
)

// IPNDM is improved PNDM (Zhang & Chen 2023, "Fast Sampling of Diffusion Models with Exponential
// Integrator" (DEIS), and Zhou et al. 2024, "Fast ODE-based Sampling for Diffusion Models in Around 5
// Steps", whose code is zju-pi/diff-sampler): PNDM's linear multistep
// method with its Runge-Kutta warm-up replaced by lower order Adams-Bashforth steps, so every step costs
// one model call.
//
// In the variables of the DDIM ODE, rho = sqrt((1-abar)/abar) and y = x/sqrt(abar), the probability
// flow is dy/drho = eps(x, t) (DDIM eq. 14), and the step from rho_t to rho_prev is
//
//	y_prev = y_t + (rho_prev - rho_t) eps',
//
// with eps' the Adams-Bashforth combination of the last Order (at most 4) predictions: eps on the
// first step, then (3 e_k - e_{k-1})/2, (23 e_k - 16 e_{k-1} + 5 e_{k-2})/12 and
// (55 e_k - 59 e_{k-1} + 37 e_{k-2} - 9 e_{k-3})/24. Written through x0 this is the DDIM transfer fed
// with eps', which is what PLMS does: on this project's timesteps, with the lower order final steps
// every solver here takes (first order onto t = 0 and onto the clean sample; see PLMS for why), IPNDM
// with Order 4 is PLMS step for step (TestIPNDMIsPLMS), so the two names are one method. Order
// lowers the maximum order.
//
// Variable selects iPNDM-v (the "ipndm_v" of Zhou et al.'s code): the same method with the
// Adams-Bashforth weights of the actual, uneven steps in rho instead of those of equal steps. The
// weights integrate, over [rho_t, rho_prev], the polynomial through the last Order predictions at their
// own rho (the variable step Adams-Bashforth formula; Hairer, Norsett & Wanner, "Solving Ordinary
// Differential Equations I", III.5), which is also DEIS's rhoAB (eps extrapolated polynomially in rho
// and integrated exactly). The even-step weights are those of equal steps in rho, which the steps of a
// diffusion sampler never are (in rho they shrink by orders of magnitude towards t = 0), so only the
// uneven weights make the method consistent of its order; the even ones can still do well at few
// steps, where eps changes about as much per step whatever the step's length in rho.
type IPNDM struct {
	Schedule *schedule.Schedule
	Steps    int // S in [1, T]; S model calls
	Spacing  Spacing
	Clip     bool    // clip each model x0 (and its eps) to [-1, 1] before the combination
	Order    int     // maximum Adams-Bashforth order, 1 to 4 (0: 4)
	Variable bool    // iPNDM-v: the weights of the uneven steps in rho
	EpsScale float64 // multiply the model's eps by this at every step (0 or 1: off; see walk)
}

func (p *IPNDM) name() string {
	if p.Variable {
		return "ipndm-v"
	}
	return "ipndm"
}

// Timesteps returns the sequence this sampler visits.
func (p *IPNDM) Timesteps() ([]int, error) {
	if p.Schedule == nil {
		return nil, fmt.Errorf("%s: nil schedule", p.name())
	}
	if p.Order < 0 || p.Order > 4 {
		return nil, fmt.Errorf("%s: order %d, want 1 to 4", p.name(), p.Order)
	}
	if err := checkEpsScale(p.name(), p.EpsScale); err != nil {
		return nil, err
	}
	return Timesteps(p.Schedule.T, p.Steps, p.Spacing)
}

// rho is the DDIM ODE's time sqrt((1-abar)/abar); +Inf where abar = 0.
func rho(abar float64) float64 { return math.Sqrt((1 - abar) / abar) }

// Sample implements Sampler.
func (p *IPNDM) Sample(ctx context.Context, pred Predictor, n, dim int, opts Options) ([]float64, error) {
	ts, err := p.Timesteps()
	if err != nil {
		return nil, err
	}
	maxOrder := p.Order
	if maxOrder == 0 {
		maxOrder = 4
	}
	s := p.Schedule
	var hist [3][]float64 // e_{k-1}, e_{k-2}, e_{k-3}
	var c [4]float64
	return walk(ctx, ts, s, adjust{p.Clip, p.EpsScale}, pred, n, dim, opts, func(k, t, prev int, x, x0, eps, z, next []float64) {
		abT, abPrev := s.AlphaBar[t], s.AlphaBarPrev(prev)
		// Orders: the history so far, first order onto t = 0 or the clean sample (as PLMS). A start at
		// zero SNR has rho = +Inf, which no polynomial in rho can pass through: iPNDM-v leaves it out.
		order := min(k+1, maxOrder)
		if prev <= 0 {
			order = 1
		}
		if p.Variable {
			for order > 1 && math.IsInf(rho(s.AlphaBar[ts[k-order+1]]), 1) {
				order--
			}
			c = abWeights(ts[k-order+1:k+1], s, rho(abT), rho(abPrev))
		} else {
			c = plmsCoefs[order-1]
		}
		// x0 consistent with eps' at x_t, x0' = x0 - rho_t (eps' - eps), and the DDIM transfer
		// x_prev = sqrt(abar_prev) x0' + sqrt(1-abar_prev) eps', which is y_prev = y_t + (rho_prev - rho_t) eps'.
		// On the first step eps' = eps, which keeps a zero-SNR start (rho = Inf) finite.
		r := 0.0
		if order > 1 {
			r = rho(abT)
		}
		a, b := math.Sqrt(abPrev), math.Sqrt(1-abPrev)
		for i := range next {
			e := c[0] * eps[i]
			for j := 1; j < order; j++ {
				e += c[j] * hist[j-1][i]
			}
			next[i] = a*(x0[i]-r*(e-eps[i])) + b*e
		}
		oldest := hist[2]
		if oldest == nil {
			oldest = make([]float64, len(eps))
		}
		copy(oldest, eps)
		hist[0], hist[1], hist[2] = oldest, hist[0], hist[1]
	})
}

// abWeights are the variable step Adams-Bashforth weights for a step from rho0 to rho1, on the
// predictions at the timesteps nodes (oldest first, the current one last): weight j is the mean over
// [rho0, rho1] of the Lagrange basis polynomial of node j, so that sum_j w_j e_j is the mean of the
// interpolating polynomial. Weight 0 in the result is the current node's, then the older ones. The
// basis has degree at most 3, which three-point Gauss-Legendre quadrature integrates exactly.
func abWeights(nodes []int, s *schedule.Schedule, rho0, rho1 float64) [4]float64 {
	m := len(nodes)
	var w [4]float64
	if m == 1 {
		w[0] = 1
		return w
	}
	r := make([]float64, m)
	for j, t := range nodes {
		r[m-1-j] = rho(s.AlphaBar[t]) // r[0] is the current node
	}
	gx := [3]float64{-math.Sqrt(0.6), 0, math.Sqrt(0.6)}
	gw := [3]float64{5.0 / 9, 8.0 / 9, 5.0 / 9}
	for q := range gx {
		u := 0.5*(rho0+rho1) + 0.5*(rho1-rho0)*gx[q]
		for j := range m {
			l := 1.0
			for i := range m {
				if i != j {
					l *= (u - r[i]) / (r[j] - r[i])
				}
			}
			w[j] += gw[q] / 2 * l
		}
	}
	return w
}

package diffusion

import (
	"context"
	"fmt"
	"math"

	"github.com/ddpm-go/ddpm/schedule"
)

// DPMSolver is DPM-Solver++(2M) (Lu et al. 2022, "DPM-Solver++", Algorithm 2): a multistep solver of
// the probability-flow ODE in its data-prediction form, which reuses the previous step's x0 prediction
// to reach second order at one model call per step.
//
// Time is lambda_t = log(alpha_t / sigma_t) with alpha_t = sqrt(abar_t), sigma_t = sqrt(1 - abar_t).
// For a step from s to t with h = lambda_t - lambda_s, the exact solution of the ODE with x0_hat held
// constant over the step is (DPM-Solver++ eq. 9, first order)
//
//	x_t = (sigma_t / sigma_s) x_s - alpha_t (e^{-h} - 1) D,
//
// with D = x0_hat(x_s). The second order multistep correction replaces D by a linear extrapolation in
// lambda through the previous prediction (Algorithm 2, line 7): with r = h_prev / h,
//
//	D = (1 + 1/(2r)) x0_hat(x_s) - 1/(2r) x0_hat(x_sprev).
//
// The first step has no history and is first order, and so is the final step onto the clean sample,
// where sigma_t = 0 makes h infinite ("lower_order_final" in diffusers, always on when the last sigma is
// 0). So is a step onto t = 0, which the linspace and leading spacings end with: there sigma ~ 0.01
// (lambda ~ 4.6 for the linear schedule), so that step is the long final jump of diffusers' sequences
// (which stop at about T/S and jump to sigma = 0) and the remaining step to the clean sample is
// negligible. Extrapolating x0 linearly over it, with r = h_prev/h ~ 0.2 at S = 10, overshoots: on
// Gaussian data it makes S = 10 worse than DDIM (std error +0.19 against -0.14; multistep_test.go).
// The first order step is exactly DDIM with eta = 0; Order = 1 selects it for every step.
//
// Order = 3 is DPM-Solver++(3M) (the multistep third order solver of the DPM-Solver++ code, k-diffusion's
// dpmpp_3m, diffusers' solver_order=3): see thirdOrder. It warms up at orders 1 and 2, keeps the
// first order steps onto t = 0 and the clean sample, and, with fewer than 15 steps, takes the step
// before those at second order (diffusers' lower_order_second).
type DPMSolver struct {
	Schedule *schedule.Schedule
	Steps    int // S in [1, T]; S model calls
	Spacing  Spacing
	Clip     bool    // clip predicted x0 to [-1, 1] (before it enters D, as the dynamic-thresholding variant does)
	Order    int     // 2 (the default, 0), 1 or 3
	EpsScale float64 // multiply the model's eps by this at every step (0 or 1: off; see walk)
}

// Timesteps returns the sequence this sampler visits.
func (d *DPMSolver) Timesteps() ([]int, error) {
	if d.Schedule == nil {
		return nil, fmt.Errorf("dpm-solver++: nil schedule")
	}
	if d.Order < 0 || d.Order > 3 {
		return nil, fmt.Errorf("dpm-solver++: order %d, want 1, 2 or 3", d.Order)
	}
	if err := checkEpsScale("dpm-solver++", d.EpsScale); err != nil {
		return nil, err
	}
	return Timesteps(d.Schedule.T, d.Steps, d.Spacing)
}

// lambda is the half log-SNR, log(alpha/sigma); -Inf where abar = 0 (zero terminal SNR).
func lambda(abar float64) float64 {
	return 0.5 * (math.Log(abar) - math.Log1p(-abar))
}

// Sample implements Sampler.
func (d *DPMSolver) Sample(ctx context.Context, pred Predictor, n, dim int, opts Options) ([]float64, error) {
	ts, err := d.Timesteps()
	if err != nil {
		return nil, err
	}
	s := d.Schedule
	var prevX0, prevX0b []float64 // x0_hat of the previous step and of the one before, for the multistep corrections
	return walk(ctx, ts, s, adjust{d.Clip, d.EpsScale}, pred, n, dim, opts, func(k, t, prev int, x, x0, eps, z, next []float64) {
		abS, abT := s.AlphaBar[t], s.AlphaBarPrev(prev)
		alphaS, sigmaS := math.Sqrt(abS), math.Sqrt(1-abS)
		alphaT, sigmaT := math.Sqrt(abT), math.Sqrt(1-abT)
		// 1. The first order coefficients: sigma_t/sigma_s on x_s and alpha_t (1 - e^{-h}) on D, with
		//    alpha_t e^{-h} = sigma_t alpha_s / sigma_s (finite even where h is infinite).
		cx := sigmaT / sigmaS
		cd := alphaT - sigmaT*alphaS/sigmaS
		order := dpmOrder(d.Order, k, ts)
		switch {
		case order == 3 && !math.IsInf(lambda(s.AlphaBar[ts[k-2]]), -1):
			// 2a. The third order multistep step (see thirdOrder).
			lamS := lambda(abS)
			h := lambda(abT) - lamS
			h0 := lamS - lambda(s.AlphaBar[ts[k-1]])
			h1 := lambda(s.AlphaBar[ts[k-1]]) - lambda(s.AlphaBar[ts[k-2]])
			c0, c1, c2 := thirdOrder(h, h0, h1)
			for i := range next {
				next[i] = cx*x[i] + cd*x0[i] + alphaT*(c0*x0[i]+c1*prevX0[i]+c2*prevX0b[i])
			}
		default:
			// 2b. The multistep weight 1/(2r) = h / (2 h_prev), used except on the first step and on steps
			//    onto t = 0 or the clean sample (prev <= 0). A previous step at zero SNR has h_prev = +Inf,
			//    so the weight is 0 (first order) there.
			w := 0.0
			if order >= 2 {
				h := lambda(abT) - lambda(abS)
				hPrev := lambda(abS) - lambda(s.AlphaBar[ts[k-1]])
				w = h / (2 * hPrev)
			}
			// 3. x_t = (sigma_t/sigma_s) x_s + alpha_t (1 - e^{-h}) ((1 + w) x0_hat - w x0_hat_prev).
			for i := range next {
				D := x0[i]
				if w != 0 {
					D = (1+w)*x0[i] - w*prevX0[i]
				}
				next[i] = cx*x[i] + cd*D
			}
		}
		if prevX0 == nil {
			prevX0, prevX0b = make([]float64, len(x0)), make([]float64, len(x0))
		}
		prevX0, prevX0b = prevX0b, prevX0
		copy(prevX0, x0)
	})
}

// dpmOrder is the order of step k of ts for a multistep solver of order max (0 meaning 2): lower order
// while the history fills (k+1), first order onto t = 0 or the clean sample, and, for order 3 with
// fewer than 15 steps, at most second order on the step before those (diffusers' lower_order_final
// and lower_order_second, which the reference applies below 15 steps: the last steps are the
// shortest in lambda after the largest ones, so a third order extrapolation over them is the least
// reliable).
func dpmOrder(max, k int, ts []int) int {
	if max == 0 {
		max = 2
	}
	order := min(max, k+1)
	if k+1 >= len(ts) || ts[k+1] <= 0 {
		return 1
	}
	if order == 3 && len(ts) < 15 && (k+2 >= len(ts) || ts[k+2] <= 0) {
		order = 2
	}
	return order
}

// thirdOrder returns the weights (c0, c1, c2) on x0_hat at s, at the previous timestep s1 and at the
// one before, s2, that DPM-Solver++(3M) adds, times alpha_t, to the first order step from s to t
// (h = lambda_t - lambda_s, h0 = lambda_s - lambda_s1, h1 = lambda_s1 - lambda_s2). The step integrates
// the data-prediction ODE (DPM-Solver++ eq. 8)
//
//	x_t = (sigma_t/sigma_s) x_s + alpha_t int_0^h e^{-(h-u)} x0(lambda_s + u) du
//
// with x0 replaced by its second order Taylor polynomial in lambda at s, whose derivatives come from
// divided differences of the three predictions (DPM-Solver eq. 3.6 in lambda; the multistep third
// order update of the DPM-Solver++ code): with r0 = h0/h, r1 = h1/h,
//
//	D1_0 = (m0 - m1)/r0,  D1_1 = (m1 - m2)/r1           (h x0' at the two midpoints)
//	D1 = D1_0 + r0/(r0+r1) (D1_0 - D1_1)                 (h x0'(s), second order)
//	D2 = (D1_0 - D1_1)/(r0+r1)                           (h^2 x0''(s) / 2)
//
// and the integrals int_0^h e^{-(h-u)} u du = h phi2, phi2 = e^{-h}/h - 1/h + 1, and
// int_0^h e^{-(h-u)} u^2/2 du = h^2 (1/2 - phi2/h), so that
//
//	x_t = first order step + alpha_t phi2 D1 + alpha_t 2 (1/2 - phi2/h) D2.
//
// The factor 2 on the last term is what the Taylor expansion asks for, since D2 estimates half the
// second derivative; the DPM-Solver++ code, k-diffusion and diffusers weigh D2 by (1/2 - phi2/h)
// without it, which leaves an O(h^3) local error, so their 3M converges at second order
// (TestDPMSolver3MOrder measures both).
func thirdOrder(h, h0, h1 float64) (c0, c1, c2 float64) {
	r0, r1 := h0/h, h1/h
	phi2 := math.Expm1(-h)/h + 1
	q := d2Weight * (0.5 - phi2/h)
	// D1 = a0 m0 + a1 m1 + a2 m2 and D2 = b0 m0 + b1 m1 + b2 m2, expanded.
	a0 := 1/r0 + r0/(r0+r1)/r0
	a1 := -1/r0 - r0/(r0+r1)*(1/r0+1/r1)
	a2 := r0 / (r0 + r1) / r1
	b0 := 1 / (r0 + r1) / r0
	b1 := -(1/r0 + 1/r1) / (r0 + r1)
	b2 := 1 / (r0 + r1) / r1
	return phi2*a0 + q*b0, phi2*a1 + q*b1, phi2*a2 + q*b2
}

// d2Weight is the factor on the reference's D2 term (see thirdOrder).
var d2Weight = 2.0

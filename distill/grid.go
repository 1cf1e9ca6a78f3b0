package distill

import (
	"math"

	"github.com/ddpm-go/ddpm/schedule"
)

// alphaSigma are alpha_t = sqrt(abar_t) and sigma_t = sqrt(1 - abar_t), with t < 0 the clean
// sample (1, 0).
func alphaSigma(s *schedule.Schedule, t int) (float64, float64) {
	ab := s.AlphaBarPrev(t)
	return math.Sqrt(ab), math.Sqrt(1 - ab)
}

// XTarget is Algorithm 2's target (Salimans & Ho 2022, the line after the two teacher steps):
// the x that takes z at t to z at t2 < t (-1 for the clean sample) in ONE DDIM step,
//
//	x_target = (z_t'' - (sigma_t''/sigma_t) z_t) / (alpha_t'' - (sigma_t''/sigma_t) alpha_t),
//
// written into out for rows z (at t) and z2 (at t2). At t2 = -1, sigma = 0 and alpha = 1, so the
// target is z2 itself. out may alias z2.
func XTarget(s *schedule.Schedule, t, t2 int, z, z2, out []float64) {
	a, sg := alphaSigma(s, t)
	a2, s2 := alphaSigma(s, t2)
	r := s2 / sg
	den := a2 - r*a
	for i := range out {
		out[i] = (z2[i] - r*z[i]) / den
	}
}

// VTarget converts an x target at z (timestep t >= 0) into the v that gives it, x = alpha z -
// sigma v, and returns the weight max(alpha^2, sigma^2) that turns the truncated-SNR loss
// max(SNR, 1) ||x - x_hat||^2 into a loss on v (see the package comment). out may alias x.
func VTarget(s *schedule.Schedule, t int, z, x, out []float64) float64 {
	a, sg := alphaSigma(s, t)
	for i := range out {
		out[i] = (a*z[i] - x[i]) / sg
	}
	return max(a*a, sg*sg)
}

// ddimStep is deterministic DDIM (Song et al. 2021, Eq. 12 with sigma = 0) from x0 and eps to
// timestep prev (-1: clean): next = alpha_prev x0 + sigma_prev eps. out may alias x0 or eps.
func ddimStep(s *schedule.Schedule, prev int, x0, eps, out []float64) {
	a, sg := alphaSigma(s, prev)
	for i := range out {
		out[i] = a*x0[i] + sg*eps[i]
	}
}

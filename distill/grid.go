package distill

import (
	"fmt"
	"math"

	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/schedule"
)

// IsPow2 reports whether n is a power of two (1 included).
func IsPow2(n int) bool { return n > 0 && n&(n-1) == 0 }

// Grid is the nested grid of a student of steps steps distilled from an s0-step teacher of T
// timesteps: the linspace grid of s0 steps (diffusion.Timesteps), thinned to every other timestep
// once per halving. Both counts must be powers of two with steps <= s0 <= T.
func Grid(T, s0, steps int) ([]int, error) {
	if !IsPow2(s0) || !IsPow2(steps) || steps > s0 {
		return nil, fmt.Errorf("distill grid: %d and %d steps must be powers of two, the second at most the first", s0, steps)
	}
	g, err := diffusion.Timesteps(T, s0, diffusion.Linspace)
	if err != nil {
		return nil, err
	}
	for len(g) > steps {
		g = Halve(g)
	}
	return g, nil
}

// Halve is a student's grid from its teacher's: timesteps 0, 2, 4, ... of it, so the student's
// step from g[2i] covers the teacher's steps g[2i] -> g[2i+1] -> g[2i+2] (the clean sample after
// the last).
func Halve(g []int) []int {
	out := make([]int, 0, (len(g)+1)/2)
	for i := 0; i < len(g); i += 2 {
		out = append(out, g[i])
	}
	return out
}

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

package diffusion

import (
	"fmt"
	"strings"

	"github.com/ddpm-go/ddpm/schedule"
)

// SamplerConfig holds the settings a command collects from its flags for any sampler, so every
// command builds samplers the same way through NewSampler.
type SamplerConfig struct {
	Steps    int      // S; 0 means T for ddpm and min(50, T) for the others
	Eta      float64  // ddim only
	SigmaHat bool     // ddim only
	Variance Variance // ddpm only
	Spacing  Spacing
	Clip     bool
	EpsScale float64 // every sampler; 0 or 1: off
	Order    int     // unipc (1-3, default 2), ipndm and ipndm-v (maximum order, 1-4, default 4) only
}

// SamplerNames lists the names NewSampler accepts.
func SamplerNames() []string {
	return []string{"ddpm", "ddim", "dpm-solver++", "dpm-solver++3m", "plms", "ipndm", "ipndm-v", "unipc"}
}

// OrderRange returns the orders sampler name takes through SamplerConfig.Order and its default; ok is
// false for the samplers whose order is fixed by their name (dpm-solver++ is 2M, dpm-solver++3m 3M).
func OrderRange(name string) (lo, hi, def int, ok bool) {
	switch name {
	case "unipc":
		return 1, 3, 2, true
	case "ipndm", "ipndm-v":
		return 1, 4, 4, true
	}
	return 0, 0, 0, false
}

// NewSampler returns the sampler called name (one of SamplerNames) for schedule s: ddpm (DDPM), ddim
// (DDIM), dpm-solver++ (DPMSolver, order 2), dpm-solver++3m (DPMSolver, order 3), plms (PLMS), ipndm
// and ipndm-v (IPNDM, even and uneven step weights), unipc (UniPC with B(h) = 1 - e^{-h}). Settings
// that do not apply to the chosen sampler (eta or sigma-hat outside ddim, an order outside unipc and
// ipndm) are an error rather than silently ignored.
func NewSampler(name string, s *schedule.Schedule, c SamplerConfig) (Sampler, error) {
	if s == nil {
		return nil, fmt.Errorf("sampler %s: nil schedule", name)
	}
	if name != "ddim" && (c.Eta != 0 || c.SigmaHat) {
		return nil, fmt.Errorf("eta and sigma-hat apply to the ddim sampler, not %s", name)
	}
	if _, _, _, ok := OrderRange(name); !ok && c.Order != 0 {
		return nil, fmt.Errorf("order applies to the unipc, ipndm and ipndm-v samplers, not %s", name)
	}
	steps := c.Steps
	if steps == 0 {
		steps = min(50, s.T)
		if name == "ddpm" {
			steps = s.T
		}
	}
	var sm interface {
		Sampler
		Timesteps() ([]int, error)
	}
	switch name {
	case "ddpm":
		sm = &DDPM{Schedule: s, Variance: c.Variance, Clip: c.Clip, Steps: steps, Spacing: c.Spacing, EpsScale: c.EpsScale}
	case "ddim":
		sm = &DDIM{Schedule: s, Steps: steps, Eta: c.Eta, SigmaHat: c.SigmaHat, Spacing: c.Spacing, Clip: c.Clip, EpsScale: c.EpsScale}
	case "dpm-solver++":
		sm = &DPMSolver{Schedule: s, Steps: steps, Spacing: c.Spacing, Clip: c.Clip, EpsScale: c.EpsScale}
	case "dpm-solver++3m":
		sm = &DPMSolver{Schedule: s, Steps: steps, Spacing: c.Spacing, Clip: c.Clip, Order: 3, EpsScale: c.EpsScale}
	case "plms":
		sm = &PLMS{Schedule: s, Steps: steps, Spacing: c.Spacing, Clip: c.Clip, EpsScale: c.EpsScale}
	case "ipndm", "ipndm-v":
		sm = &IPNDM{Schedule: s, Steps: steps, Spacing: c.Spacing, Clip: c.Clip, Order: c.Order, Variable: name == "ipndm-v", EpsScale: c.EpsScale}
	case "unipc":
		sm = &UniPC{Schedule: s, Steps: steps, Spacing: c.Spacing, Clip: c.Clip, Order: c.Order, EpsScale: c.EpsScale}
	default:
		return nil, fmt.Errorf("unknown sampler %q (want %s)", name, strings.Join(SamplerNames(), ", "))
	}
	if _, err := sm.Timesteps(); err != nil {
		return nil, err
	}
	return sm, nil
}

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
}

// SamplerNames lists the names NewSampler accepts.
func SamplerNames() []string { return []string{"ddpm", "ddim", "dpm-solver++", "plms"} }

// NewSampler returns the sampler called name ("ddpm", "ddim", "dpm-solver++" or "plms") for schedule
// s. Settings that do not apply to the chosen sampler (eta or sigma-hat outside ddim) are an error
// rather than silently ignored.
func NewSampler(name string, s *schedule.Schedule, c SamplerConfig) (Sampler, error) {
	if s == nil {
		return nil, fmt.Errorf("sampler %s: nil schedule", name)
	}
	if name != "ddim" && (c.Eta != 0 || c.SigmaHat) {
		return nil, fmt.Errorf("eta and sigma-hat apply to the ddim sampler, not %s", name)
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
	case "plms":
		sm = &PLMS{Schedule: s, Steps: steps, Spacing: c.Spacing, Clip: c.Clip, EpsScale: c.EpsScale}
	default:
		return nil, fmt.Errorf("unknown sampler %q (want %s)", name, strings.Join(SamplerNames(), ", "))
	}
	if _, err := sm.Timesteps(); err != nil {
		return nil, err
	}
	return sm, nil
}

package generate

import (
	"fmt"
	"math"

	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/schedule"
)

// SamplerSpec is a sampler as a user names it (the flags of `ddpm sample`). Zero values mean
// defaults; settings that belong to another sampler are errors rather than silently ignored.
type SamplerSpec struct {
	Name     string  // one of diffusion.SamplerNames(): ddpm, ddim, dpm-solver++, plms
	Variance string  // ddpm only: "beta" (default) or "posterior"
	Steps    int     // in [1, T]; 0: T for ddpm, min(50, T) for the others
	Eta      float64 // ddim only: >= 0
	SigmaHat bool    // ddim only: the sigma-hat noise of the DDIM paper (the mean of eta = 1)
	Spacing  string  // "linspace" (default), "leading" or "trailing"
	Clip     bool    // clip the predicted x0 to [-1, 1]
	EpsScale float64 // every sampler: multiply the predicted eps by this at each step (0 or 1: off)
}

// New builds the sampler for schedule s through diffusion.NewSampler. It returns the spec with its
// defaults filled in (steps, variance, spacing), which is what String should describe.
func (sp SamplerSpec) New(s *schedule.Schedule) (diffusion.Sampler, SamplerSpec, error) {
	var c diffusion.SamplerConfig
	if sp.Spacing == "" {
		sp.Spacing = diffusion.Linspace.String()
	}
	var err error
	if c.Spacing, err = diffusion.ParseSpacing(sp.Spacing); err != nil {
		return nil, sp, err
	}
	if sp.Steps < 0 || sp.Steps > s.T {
		return nil, sp, fmt.Errorf("steps %d outside [1, %d] (the model's T)", sp.Steps, s.T)
	}
	if !(sp.Eta >= 0) || math.IsInf(sp.Eta, 0) {
		return nil, sp, fmt.Errorf("eta %v must be a finite number >= 0", sp.Eta)
	}
	if sp.Name == "ddpm" {
		if sp.Variance == "" {
			sp.Variance = diffusion.VarianceBeta.String()
		}
		if c.Variance, err = diffusion.ParseVariance(sp.Variance); err != nil {
			return nil, sp, err
		}
	} else if sp.Variance != "" {
		return nil, sp, fmt.Errorf("variance applies to the ddpm sampler, not %s", sp.Name)
	}
	if !(sp.EpsScale >= 0) || math.IsInf(sp.EpsScale, 0) {
		return nil, sp, fmt.Errorf("eps scale %v must be a finite number > 0", sp.EpsScale)
	}
	if sp.EpsScale == 0 {
		sp.EpsScale = 1
	}
	if sp.SigmaHat && sp.Eta != 0 {
		return nil, sp, fmt.Errorf("sigma-hat uses the mean of eta = 1; do not combine it with eta")
	}
	c.Steps, c.Eta, c.SigmaHat, c.Clip, c.EpsScale = sp.Steps, sp.Eta, sp.SigmaHat, sp.Clip, sp.EpsScale
	sampler, err := diffusion.NewSampler(sp.Name, s, c)
	if err != nil {
		return nil, sp, err
	}
	if sp.Steps == 0 { // NewSampler's defaults
		sp.Steps = min(50, s.T)
		if sp.Name == "ddpm" {
			sp.Steps = s.T
		}
	}
	return sampler, sp, nil
}

// String describes the sampler for logs, e.g. "ddim-50 eta=0 linspace" or, with epsilon scaling,
// "ddim-50 eta=0 linspace eps-scale=1.012".
func (sp SamplerSpec) String() string {
	desc := fmt.Sprintf("%s-%d", sp.Name, sp.Steps)
	switch {
	case sp.Name == "ddpm":
		desc += " " + sp.Variance + " variance"
	case sp.SigmaHat:
		desc += " sigma-hat"
	case sp.Name == "ddim":
		desc += fmt.Sprintf(" eta=%g", sp.Eta)
	}
	desc += " " + sp.Spacing
	if sp.Clip {
		desc += " clip"
	}
	if sp.EpsScale != 0 && sp.EpsScale != 1 {
		desc += fmt.Sprintf(" eps-scale=%g", sp.EpsScale)
	}
	return desc
}

package generate

import (
	"fmt"
	"math"

	"ddpm/diffusion"
	"ddpm/schedule"
)

// SamplerSpec is a sampler as a user names it (the flags of `ddpm sample`). Zero values mean
// defaults; settings that belong to the other sampler are errors rather than silently ignored.
type SamplerSpec struct {
	Name     string  // "ddpm" or "ddim"
	Variance string  // ddpm only: "beta" (default) or "posterior"
	Steps    int     // in [1, T]; 0: T for ddpm, min(50, T) for ddim
	Eta      float64 // ddim only: >= 0
	SigmaHat bool    // ddim only: the sigma-hat noise of the DDIM paper (the mean of eta = 1)
	Spacing  string  // "linspace" (default), "leading" or "trailing"
	Clip     bool    // clip the predicted x0 to [-1, 1]
}

// New builds the sampler for schedule s. It returns the spec with its defaults filled in (steps,
// variance, spacing), which is what String should describe.
func (sp SamplerSpec) New(s *schedule.Schedule) (diffusion.Sampler, SamplerSpec, error) {
	sampler, err := sp.resolve(s)
	if err != nil {
		return nil, SamplerSpec{}, err
	}
	switch d := sampler.(type) {
	case *diffusion.DDPM:
		sp.Steps, sp.Variance, sp.Spacing = d.Steps, d.Variance.String(), d.Spacing.String()
	case *diffusion.DDIM:
		sp.Steps, sp.Spacing = d.Steps, d.Spacing.String()
	}
	return sampler, sp, nil
}

func (sp SamplerSpec) resolve(s *schedule.Schedule) (diffusion.Sampler, error) {
	spacing := diffusion.Linspace
	if sp.Spacing != "" {
		var err error
		if spacing, err = diffusion.ParseSpacing(sp.Spacing); err != nil {
			return nil, err
		}
	}
	if sp.Steps < 0 || sp.Steps > s.T {
		return nil, fmt.Errorf("steps %d outside [1, %d] (the model's T)", sp.Steps, s.T)
	}
	if !(sp.Eta >= 0) || math.IsInf(sp.Eta, 0) {
		return nil, fmt.Errorf("eta %v must be a finite number >= 0", sp.Eta)
	}
	var sampler diffusion.Sampler
	steps := sp.Steps
	switch sp.Name {
	case "ddpm":
		if sp.Eta != 0 || sp.SigmaHat {
			return nil, fmt.Errorf("eta and sigma-hat apply to the ddim sampler")
		}
		v := diffusion.VarianceBeta
		if sp.Variance != "" {
			var err error
			if v, err = diffusion.ParseVariance(sp.Variance); err != nil {
				return nil, err
			}
		}
		if steps == 0 {
			steps = s.T
		}
		sampler = &diffusion.DDPM{Schedule: s, Variance: v, ClipX0: sp.Clip, Steps: steps, Spacing: spacing}
	case "ddim":
		if sp.Variance != "" {
			return nil, fmt.Errorf("variance applies to the ddpm sampler (ddim takes eta or sigma-hat)")
		}
		if sp.SigmaHat && sp.Eta != 0 {
			return nil, fmt.Errorf("sigma-hat uses the mean of eta = 1; do not combine it with eta")
		}
		if steps == 0 {
			steps = min(50, s.T)
		}
		sampler = &diffusion.DDIM{Schedule: s, Steps: steps, Eta: sp.Eta, SigmaHat: sp.SigmaHat, Spacing: spacing, ClipX0: sp.Clip}
	default:
		return nil, fmt.Errorf("unknown sampler %q (want ddpm or ddim)", sp.Name)
	}
	return sampler, nil
}

// String describes the sampler for logs, e.g. "DDIM-50 eta=0 linspace".
func (sp SamplerSpec) String() string {
	spacing := sp.Spacing
	if spacing == "" {
		spacing = "linspace"
	}
	switch sp.Name {
	case "ddpm":
		v := sp.Variance
		if v == "" {
			v = "beta"
		}
		return fmt.Sprintf("DDPM-%d %s variance %s", sp.Steps, v, spacing)
	case "ddim":
		if sp.SigmaHat {
			return fmt.Sprintf("DDIM-%d sigma-hat %s", sp.Steps, spacing)
		}
		return fmt.Sprintf("DDIM-%d eta=%g %s", sp.Steps, sp.Eta, spacing)
	}
	return sp.Name
}

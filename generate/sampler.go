package generate

import (
	"fmt"
	"slices"
	"strings"

	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/schedule"
)

// SamplerSpec is a sampler as a user names it: the flags of `ddpm sample` bind to its fields and the
// server decodes it from a request under its JSON names. Zero values mean defaults; settings that
// belong to another sampler are errors rather than silently ignored.
type SamplerSpec struct {
	Name     string  `json:"sampler"`   // one of diffusion.SamplerNames(): ddpm, ddim (default), dpm-solver++, dpm-solver++3m, plms, ipndm, ipndm-v, unipc
	Variance string  `json:"variance"`  // ddpm only: "beta" (default) or "posterior"
	Steps    int     `json:"steps"`     // in [1, T]; 0: T for ddpm, min(50, T) for the others
	Eta      float64 `json:"eta"`       // ddim only: in [0, MaxEta]
	SigmaHat bool    `json:"sigma_hat"` // ddim only: the sigma-hat noise of the DDIM paper (the mean of eta = 1)
	Spacing  string  `json:"spacing"`   // "linspace" (default), "leading", "trailing" or "quadratic"
	Clip     bool    `json:"clip"`      // clip the predicted x0 to [-1, 1]
	EpsScale float64 `json:"eps_scale"` // multiply the predicted eps by this at each step, in (0, MaxEpsScale] (0: off)
	Order    int     `json:"order"`     // unipc (1-3, default 2), ipndm and ipndm-v (maximum order, 1-4, default 4) only; 0: default
}

// Bounds of a SamplerSpec past what the samplers themselves define. DDIM is defined for any eta >= 0
// (its direction term is taken as 0 once sigma passes sqrt(1 - abar_prev)), but past eta = 10 the
// added noise swamps every image; epsilon scaling (Ning et al. 2024) moves eps by a few percent, and
// a factor past 2 only amplifies the network's error. The caps turn a typo into an error.
const (
	DefaultSampler = "ddim" // what an empty Name selects: deterministic, 50 steps by default
	MaxEta         = 10
	MaxEpsScale    = 2
)

// FieldError is a SamplerSpec setting that is out of range or does not apply to the chosen sampler.
// Field is the setting's name as the server's JSON spells it ("sigma_hat"); Msg starts with the
// value where there is one, so a front end can print "--steps 41 outside [1, 40]" or answer
// {"field": "steps", ...} from the same error.
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return strings.ReplaceAll(e.Field, "_", "-") + " " + e.Msg }

// Flag renders the error as a command-line flag error ("--sigma-hat uses the mean of ...").
func (e *FieldError) Flag() string { return "--" + e.Error() }

func fieldErr(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// Validate checks the spec against a model with T timesteps: the one set of rules every front end
// (the commands' flags, the server's requests) applies. Zero values are defaults. The error is a
// *FieldError. The diffusion constructors check again, as the last guard.
func (sp SamplerSpec) Validate(T int) error {
	name := sp.Name
	if name == "" {
		name = DefaultSampler
	}
	if !slices.Contains(diffusion.SamplerNames(), name) {
		return fieldErr("sampler", "%q: unknown sampler (want %s)", name, strings.Join(diffusion.SamplerNames(), ", "))
	}
	if sp.Steps < 0 || sp.Steps > T {
		return fieldErr("steps", "%d outside [1, %d] (the model's T)", sp.Steps, T)
	}
	if !(sp.Eta >= 0 && sp.Eta <= MaxEta) {
		return fieldErr("eta", "%v must be a finite number in [0, %d]", sp.Eta, MaxEta)
	}
	if !(sp.EpsScale >= 0 && sp.EpsScale <= MaxEpsScale) {
		return fieldErr("eps_scale", "%v must be a finite number in (0, %d] (default 1)", sp.EpsScale, MaxEpsScale)
	}
	if name != "ddim" && sp.Eta != 0 {
		return fieldErr("eta", "does not apply to %s: eta and sigma-hat apply to the ddim sampler only", name)
	}
	if name != "ddim" && sp.SigmaHat {
		return fieldErr("sigma_hat", "does not apply to %s: eta and sigma-hat apply to the ddim sampler only", name)
	}
	if sp.SigmaHat && sp.Eta != 0 {
		return fieldErr("sigma_hat", "uses the mean of eta = 1; do not combine it with eta")
	}
	if sp.Order != 0 {
		lo, hi, _, ok := diffusion.OrderRange(name)
		if !ok {
			return fieldErr("order", "does not apply to %s: order applies to the unipc, ipndm and ipndm-v samplers only", name)
		}
		if sp.Order < lo || sp.Order > hi {
			return fieldErr("order", "%d outside [%d, %d] for %s", sp.Order, lo, hi, name)
		}
	}
	if sp.Variance != "" {
		if name != "ddpm" {
			return fieldErr("variance", "applies to the ddpm sampler only, not %s", name)
		}
		if _, err := diffusion.ParseVariance(sp.Variance); err != nil {
			return fieldErr("variance", "%q: unknown variance (want beta or posterior)", sp.Variance)
		}
	}
	if sp.Spacing != "" {
		if _, err := diffusion.ParseSpacing(sp.Spacing); err != nil {
			return fieldErr("spacing", "%q: unknown spacing (want %s)", sp.Spacing, diffusion.SpacingNames)
		}
	}
	return nil
}

// ValidateGiven is Validate for a spec whose fields a client set one by one (flags, a JSON request):
// given reports whether the client set a field, by its JSON name. A zero value the client gave is an
// error where zero is not a setting but the marker for "default" (steps 0, eps_scale 0, an empty
// sampler, variance or spacing), so an explicit 0 never silently becomes the default.
func (sp SamplerSpec) ValidateGiven(T int, given func(field string) bool) error {
	for _, f := range []struct {
		name string
		zero bool
		val  any
	}{{"sampler", sp.Name == "", `""`}, {"steps", sp.Steps == 0, 0}, {"eps_scale", sp.EpsScale == 0, 0}, {"order", sp.Order == 0, 0},
		{"variance", sp.Variance == "", `""`}, {"spacing", sp.Spacing == "", `""`}} {
		if f.zero && given(f.name) {
			return fieldErr(f.name, "%v: give a value or leave it out for the default", f.val)
		}
	}
	return sp.Validate(T)
}

// New validates the spec and builds the sampler for schedule s through diffusion.NewSampler. It
// returns the spec with its defaults filled in (steps, variance, spacing), which is what String
// should describe.
func (sp SamplerSpec) New(s *schedule.Schedule) (diffusion.Sampler, SamplerSpec, error) {
	if err := sp.Validate(s.T); err != nil {
		return nil, sp, err
	}
	if sp.Name == "" {
		sp.Name = DefaultSampler
	}
	if sp.Spacing == "" {
		sp.Spacing = diffusion.Linspace.String()
	}
	if sp.Name == "ddpm" && sp.Variance == "" {
		sp.Variance = diffusion.VarianceBeta.String()
	}
	if sp.EpsScale == 0 {
		sp.EpsScale = 1
	}
	if _, _, def, ok := diffusion.OrderRange(sp.Name); ok && sp.Order == 0 {
		sp.Order = def
	}
	c := diffusion.SamplerConfig{Steps: sp.Steps, Eta: sp.Eta, SigmaHat: sp.SigmaHat, Clip: sp.Clip, EpsScale: sp.EpsScale, Order: sp.Order}
	c.Spacing, _ = diffusion.ParseSpacing(sp.Spacing)
	if sp.Name == "ddpm" {
		c.Variance, _ = diffusion.ParseVariance(sp.Variance)
	}
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

// String describes the sampler for logs, e.g. "ddim-50 eta=0 linspace", "unipc-10 order=2 linspace"
// or, with epsilon scaling, "ddim-50 eta=0 linspace eps-scale=1.012".
func (sp SamplerSpec) String() string {
	desc := fmt.Sprintf("%s-%d", sp.Name, sp.Steps)
	switch {
	case sp.Name == "ddpm":
		desc += " " + sp.Variance + " variance"
	case sp.SigmaHat:
		desc += " sigma-hat"
	case sp.Name == "ddim":
		desc += fmt.Sprintf(" eta=%g", sp.Eta)
	case sp.Order != 0:
		desc += fmt.Sprintf(" order=%d", sp.Order)
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

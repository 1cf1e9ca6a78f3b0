package generate

import (
	"fmt"

	"github.com/ddpm-go/ddpm/checkpoint"
	"github.com/ddpm-go/ddpm/diffusion"
)

// Sampler builds the sampler spec asks for on this model, as SamplerSpec.New does, except for a
// progressively distilled model (checkpoint.MetaDistilledSteps): such a student only learned to
// take its teacher's two DDIM steps in one over its own grid of timesteps, which no spacing
// reproduces, so
//   - DDIM (the default sampler) with eta 0, no spacing given and steps equal to the distilled
//     count (or not given: a distilled model's default is its count) walks exactly that grid;
//   - anything else is built as for any model, with a warning (returned, for stderr) that the
//     model was not trained for it.
//
// For a model that is not distilled it is spec.New(m.Schedule) with no warning.
func (m *Model) Sampler(spec SamplerSpec) (diffusion.Sampler, SamplerSpec, string, error) {
	grid, err := checkpoint.DistilledGrid(m.Meta, m.Schedule.T)
	if err != nil {
		return nil, spec, "", fmt.Errorf("read %s: %w", m.Source, err)
	}
	if grid == nil {
		s, sp, err := spec.New(m.Schedule)
		return s, sp, "", err
	}
	n := len(grid)
	if spec.Steps == 0 {
		spec.Steps = n
	}
	name := spec.Name
	if name == "" {
		name = DefaultSampler
	}
	if name == "ddim" && spec.Steps == n && spec.Eta == 0 && !spec.SigmaHat && spec.Spacing == "" {
		if err := spec.Validate(m.Schedule.T); err != nil {
			return nil, spec, "", err
		}
		spec.Name, spec.Spacing = name, "distilled"
		if spec.EpsScale == 0 {
			spec.EpsScale = 1
		}
		d := &diffusion.DDIM{Schedule: m.Schedule, Steps: n, Grid: grid, Clip: spec.Clip, EpsScale: spec.EpsScale}
		if _, err := d.Timesteps(); err != nil {
			return nil, spec, "", err
		}
		return d, spec, "", nil
	}
	s, sp, err := spec.New(m.Schedule)
	if err != nil {
		return nil, sp, "", err
	}
	warn := fmt.Sprintf("warning: %s was distilled for %d steps of ddim (eta 0) over the timesteps %v; %s is not what it was trained for (use --steps %d without --spacing)",
		m.Source, n, grid, sp, n)
	return s, sp, warn, nil
}

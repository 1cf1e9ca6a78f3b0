package main

import (
	"flag"
	"strings"

	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/generate"
)

// addSamplerFlags registers the sampler flags that every command drawing from a model shares
// (sample, eval fid), so their names, defaults and help stay one definition.
func addSamplerFlags(fs *flag.FlagSet, spec *generate.SamplerSpec) {
	fs.StringVar(&spec.Name, "sampler", "ddim", "sampler: "+strings.Join(diffusion.SamplerNames(), ", "))
	fs.StringVar(&spec.Variance, "variance", "", "ddpm step variance: beta (default) or posterior")
	fs.IntVar(&spec.Steps, "steps", 0, "sampling steps S in [1, T] (default: T for ddpm, 50 otherwise)")
	fs.Float64Var(&spec.Eta, "eta", 0, "ddim noise scale eta >= 0 (0 = deterministic)")
	fs.BoolVar(&spec.SigmaHat, "sigma-hat", false, "ddim with the sigma-hat noise of the DDIM paper")
	fs.StringVar(&spec.Spacing, "spacing", "", "timestep spacing: "+diffusion.SpacingNames+" (default linspace)")
	fs.BoolVar(&spec.Clip, "clip", false, "clip the predicted x0 to [-1, 1] at every step")
	fs.Float64Var(&spec.EpsScale, "eps-scale", 1, "multiply the predicted eps by this at every step (epsilon scaling; see docs/eval.md)")
}

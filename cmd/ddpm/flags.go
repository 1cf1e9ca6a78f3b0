package main

import (
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"

	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/engine"
	"github.com/ddpm-go/ddpm/generate"
	"github.com/ddpm-go/ddpm/tensor"
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
	fs.IntVar(&spec.Order, "order", 0, "unipc order 1-3 (default 2); ipndm, ipndm-v maximum order 1-4 (default 4)")
}

// addClassFlags registers --class and --guidance, shared by the commands that sample a
// class-conditional model.
func addClassFlags(fs *flag.FlagSet, c *generate.ClassSpec) {
	fs.StringVar(&c.Class, "class", "", "class-conditional models: a class (7, or a name), a list (0,1,2: image i gets entry i mod len), or all (one row of --cols images per class)")
	fs.Var(guidanceFlag{c}, "guidance", fmt.Sprintf("classifier-free guidance scale s in [0, %d]: eps(x) + s (eps(x, class) - eps(x)); 0 unconditional, 1 conditional (default %g)", generate.MaxGuidance, float64(generate.DefaultGuidance)))
}

// guidanceFlag sets ClassSpec.Guidance, leaving it nil (the default) unless given.
type guidanceFlag struct{ c *generate.ClassSpec }

func (g guidanceFlag) String() string {
	if g.c == nil || g.c.Guidance == nil {
		return ""
	}
	return fmt.Sprint(*g.c.Guidance)
}

func (g guidanceFlag) Set(s string) error {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return fmt.Errorf("not a number")
	}
	g.c.Guidance = &v
	return nil
}

// engineFlags are what a command computes on (--engine, --precision, --threads) and with which
// weights of a run (--ema, --no-ema).
type engineFlags struct {
	engine, precision string
	threads           int
	ema, noEMA        bool
}

// engineOpts says which engine flags a command has and where its defaults and help differ from
// the usual ones; the zero value is --engine, --precision auto and --threads 0 with the usual help.
type engineOpts struct {
	engineHelp    string // "" for "auto, dnnl or ref"
	precision     string // default of --precision: "" for auto, "-" for no such flag
	precisionHelp string // "" for the help naming what auto picks
	threads       int    // default of --threads
	threadsHelp   string // "" for "threads (0: all cores)"
	ema, noEMA    bool   // whether --ema and --no-ema exist
	noEMAHelp     string // "" for the usual
}

// addEngineFlags registers the engine flags o names, so their names, defaults and help stay one
// definition across commands.
func addEngineFlags(fs *flag.FlagSet, e *engineFlags, o engineOpts) {
	or := func(s, def string) string {
		if s == "" {
			return def
		}
		return s
	}
	fs.StringVar(&e.engine, "engine", "auto", or(o.engineHelp, "auto, dnnl or ref"))
	if o.precision != "-" {
		fs.StringVar(&e.precision, "precision", or(o.precision, "auto"), or(o.precisionHelp, "auto, fp32 or bf16 (auto: bf16 where the CPU has AMX or AVX512-BF16)"))
	}
	fs.IntVar(&e.threads, "threads", o.threads, or(o.threadsHelp, "threads (0: all cores)"))
	e.ema = true
	if o.ema {
		fs.BoolVar(&e.ema, "ema", true, "use the EMA weights of a run or checkpoint")
	}
	if o.noEMA {
		fs.BoolVar(&e.noEMA, "no-ema", false, or(o.noEMAHelp, "use the raw (non-EMA) weights of a run or checkpoint"))
	}
}

// backend starts the engine the flags ask for, on threads threads.
func (e *engineFlags) backend(threads int) (tensor.Backend, error) {
	return engine.New(e.engine, e.precision, threads)
}

// load starts the engine the flags ask for and loads ckpt on it with the weights they ask for;
// done closes the engine.
func (e *engineFlags) load(ckpt string) (m *generate.Model, be tensor.Backend, done func(), err error) {
	if be, err = e.backend(e.threads); err != nil {
		return nil, nil, nil, err
	}
	if m, err = generate.Load(ckpt, be, e.ema && !e.noEMA); err != nil {
		engine.Close(be)
		return nil, nil, nil, err
	}
	return m, be, func() { engine.Close(be) }, nil
}

// atLeast refuses the first integer flag set on the command line (in name order) below its
// minimum in lo; defaults are in range, so only given values need the check.
func atLeast(fs *flag.FlagSet, lo map[string]int64) error {
	var err error
	fs.Visit(func(f *flag.Flag) {
		min, ok := lo[f.Name]
		if !ok || err != nil {
			return
		}
		var v int64
		switch x := f.Value.(flag.Getter).Get().(type) {
		case int:
			v = int64(x)
		case int64:
			v = x
		}
		if v < min {
			err = fmt.Errorf("--%s %d must be >= %d", f.Name, v, min)
		}
	})
	return err
}

// checkSpec applies SamplerSpec.ValidateGiven to the sampler flags as given, against a stand-in T
// (the model's own is checked once it is loaded), so a typo costs nothing; the error names its flag.
func checkSpec(fs *flag.FlagSet, spec generate.SamplerSpec) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[strings.ReplaceAll(f.Name, "-", "_")] = true })
	return flagErr(spec.ValidateGiven(max(1000, spec.Steps), func(field string) bool { return set[field] }))
}

// flagErr words a sampler spec's *generate.FieldError as its flag ("--eta -1 must be ...").
func flagErr(err error) error {
	var fe *generate.FieldError
	if errors.As(err, &fe) {
		return errors.New(fe.Flag())
	}
	return err
}

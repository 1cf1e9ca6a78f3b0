package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"

	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/generate"
	"github.com/ddpm-go/ddpm/toy"
)

func init() {
	register(&command{name: "toy", summary: "sample a Gaussian mixture with DDPM/DDIM driven by the exact oracle", run: runToy})
}

// toyFlags are the flags of `ddpm toy`.
type toyFlags struct {
	mixture, schedule, prediction, init string
	spec                                generate.SamplerSpec
	T, n                                int
	zeroSNR                             bool
	outputs                             toy.Outputs
	seed                                uint64
	set                                 map[string]bool
}

func parseToyFlags(args []string, stderr io.Writer) (*toyFlags, error) {
	fs := newFlagSet("toy", stderr)
	f := &toyFlags{set: map[string]bool{}}
	fs.StringVar(&f.mixture, "mixture", "", `mixture JSON: {"weights":[...],"means":[[...],...],"stds":[...]} (required)`)
	addSamplerFlags(fs, &f.spec)
	// The toy's sampler is DDPM unless told otherwise: the oracle makes its reverse process exact.
	fs.Lookup("sampler").DefValue, f.spec.Name = "ddpm", "ddpm"
	fs.StringVar(&f.schedule, "schedule", "linear", "beta schedule: linear, cosine, scaled-linear or sigmoid")
	fs.IntVar(&f.T, "timesteps", 1000, "diffusion steps T of the schedule (1 to 100000)")
	fs.BoolVar(&f.zeroSNR, "zero-snr", false, "rescale the schedule to zero terminal SNR (needs --prediction x0 or v)")
	fs.StringVar(&f.prediction, "prediction", "eps", "what the oracle outputs and the sampler converts: eps, x0 or v")
	fs.IntVar(&f.n, "n", 1000, "number of samples (ignored with --init)")
	fs.Uint64Var(&f.seed, "seed", 0, "random seed")
	fs.StringVar(&f.init, "init", "", "read x_T from this CSV (header d0,d1,...); N is its row count")
	fs.StringVar(&f.outputs.Out, "out", "", "write the samples' CSV here instead of stdout")
	fs.StringVar(&f.outputs.Plot, "plot", "", "draw the samples over the true density to this PNG (2-D mixtures)")
	fs.BoolVar(&f.outputs.Stats, "stats", false, "print how well the samples recover the mixture (weights, means, stds) to stderr")
	if err := parseFlagsOneLine(fs, args, stderr); err != nil {
		return nil, err
	}
	fs.Visit(func(fl *flag.Flag) { f.set[fl.Name] = true })
	if f.mixture == "" {
		return nil, fmt.Errorf("--mixture FILE.json is required")
	}
	return f, atLeast(fs, map[string]int64{"steps": 1})
}

func runToy(args []string, stdout, stderr io.Writer) error {
	f, err := parseToyFlags(args, stderr)
	if err != nil {
		return err
	}
	m, err := diffusion.LoadMixture(f.mixture)
	if err != nil {
		return err
	}
	D := m.Dim()
	s, pred, err := toy.Setup(f.schedule, f.T, f.zeroSNR, f.prediction)
	if err != nil {
		return err
	}
	sampler, spec, err := f.spec.New(s)
	if err != nil {
		return flagErr(err)
	}
	opts := diffusion.Options{Seed: f.seed, Prediction: pred}
	if opts.XT, f.n, err = toy.Start(f.init, f.n, f.set["n"], D); err != nil {
		return err
	}
	if f.outputs.Plot != "" && D != 2 {
		return fmt.Errorf("--plot needs a 2-D mixture, %s is %d-D", f.mixture, D)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	x, err := sampler.Sample(ctx, &diffusion.Oracle{Mixture: m, Schedule: s, Output: pred}, f.n, D, opts)
	if err != nil {
		return err
	}
	return f.outputs.Write(stdout, stderr, spec.String(), m, x, f.n)
}

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/ddpm-go/ddpm/distill"
	"github.com/ddpm-go/ddpm/generate"
)

func init() {
	register(&command{name: "distill", summary: "progressive distillation of a model's DDIM sampler from --from steps to --to (docs/distill.md)", run: runDistill})
}

func runDistill(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("distill", stderr)
	c := distill.Default()
	fs.StringVar(&c.Teacher, "teacher", "", "the model to distil: a model file or run directory (e.g. models/mnist)")
	fs.IntVar(&c.From, "from", c.From, "the teacher's DDIM steps S0, a power of two")
	fs.IntVar(&c.To, "to", c.To, "the last student's steps S1, a power of two below --from")
	fs.StringVar(&c.Out, "out", "", "run directory: one subdirectory per round (reparam, steps-N)")
	fs.StringVar(&c.Data, "data", "", "training images (default: the teacher's dataset)")
	fs.StringVar(&c.DataDir, "data-dir", "", "dataset cache (default: the usual)")
	fs.IntVar(&c.RoundSteps, "round-steps", c.RoundSteps, "optimisation steps per halving round")
	fs.IntVar(&c.ReparamSteps, "reparam-steps", c.ReparamSteps, "steps of round 0, which turns an eps or x0 teacher into a v-model")
	fs.IntVar(&c.Batch, "batch", c.Batch, "images per step")
	fs.Float64Var(&c.LR, "lr", c.LR, "AdamW learning rate, decayed linearly to 0 over each round")
	fs.Float64Var(&c.EMA, "ema", c.EMA, "EMA decay of the weights written (0: none, as in the paper)")
	fs.Float64Var(&c.GradClip, "grad-clip", c.GradClip, "gradient norm clip (0: none)")
	fs.Float64Var(&c.Guidance, "guidance", 0, fmt.Sprintf("class-conditional teachers: the guidance scale s distilled (default %g)", float64(distill.DefaultGuidance)))
	fs.Uint64Var(&c.Seed, "seed", 0, "random seed (data order, timesteps, noise)")
	fs.IntVar(&c.CkptEvery, "ckpt-every", c.CkptEvery, "steps between checkpoints (0: at the end of a round)")
	fs.IntVar(&c.Keep, "keep", c.Keep, "checkpoints kept per round")
	fs.IntVar(&c.LogEvery, "log-every", c.LogEvery, "steps between log lines when stderr is not a terminal")
	fs.IntVar(&c.SampleN, "sample-n", c.SampleN, "images in each round's sample grid (0: none)")
	fs.StringVar(&c.Engine, "engine", c.Engine, "auto, dnnl or ref")
	fs.StringVar(&c.Precision, "precision", c.Precision, "auto, fp32 or bf16")
	fs.IntVar(&c.Threads, "threads", 0, "threads (0: all cores)")
	resume := fs.String("resume", "", "continue the distillation in this directory (its distill.json; no other flags)")
	if err := parseFlagsOneLine(fs, args, stderr); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *resume != "" {
		var other []string
		fs.Visit(func(f *flag.Flag) {
			if f.Name != "resume" {
				other = append(other, "--"+f.Name)
			}
		})
		if len(other) > 0 {
			return fmt.Errorf("--resume takes the run's own %s; drop %s", distill.ConfigFile, strings.Join(other, ", "))
		}
		var err error
		if c, err = distill.ReadConfig(*resume); err != nil {
			return err
		}
	}
	if err := c.Validate(); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := distill.Run(ctx, c, distill.Options{Resume: *resume != "", Log: stderr, Terminal: generate.IsTerminal(stderr)})
	if err != nil {
		if errors.Is(err, distill.ErrInterrupted) {
			fmt.Fprintln(stderr)
		}
		return err
	}
	for _, r := range res.Rounds {
		what := "v-model (reparameterised teacher)"
		if r.Steps > 0 {
			what = fmt.Sprintf("%d-step student: ddpm sample --ckpt %s --steps %d", r.Steps, r.Dir, r.Steps)
		}
		fmt.Fprintf(stdout, "%s: %d steps, loss %.5f, wall %.0f s; %s\n", r.Dir, r.TrainSteps, r.Loss, r.WallS, what)
	}
	return nil
}

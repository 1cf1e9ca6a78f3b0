package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"

	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/generate"
	"github.com/ddpm-go/ddpm/imageio"
)

func init() {
	register(&command{name: "interpolate", summary: "slerp between pairs of x_T and decode with DDIM eta=0 to a PNG strip", run: runInterpolate})
}

func runInterpolate(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("interpolate", stderr)
	ckpt := fs.String("ckpt", "", "run directory or weights file (default: the shipped MNIST model)")
	seed := fs.Uint64("seed", 0, "pair p interpolates the x_T of images 2p and 2p+1 under this seed")
	pairs := fs.Int("pairs", 4, "pairs (rows of the strip)")
	frames := fs.Int("frames", 10, "images per row, both ends included")
	steps := fs.Int("steps", 50, "DDIM steps")
	spacing := fs.String("spacing", "linspace", "timestep spacing: "+diffusion.SpacingNames)
	out := fs.String("out", "", "write the PNG here (required)")
	var eng engineFlags
	addEngineFlags(fs, &eng, engineOpts{ema: true, precision: "fp32", precisionHelp: "auto, fp32 or bf16"})
	if err := parseFlagsOneLine(fs, args, stderr); err != nil {
		return err
	}
	if err := atLeast(fs, map[string]int64{"pairs": 1, "frames": 2, "steps": 1, "threads": 0}); err != nil {
		return err
	}
	switch {
	case *out == "":
		return fmt.Errorf("--out FILE.png is required")
	case *pairs**frames > generate.MaxGridImages:
		// The strip is one PNG assembled in memory, like sample's --grid.
		return fmt.Errorf("--pairs %d x --frames %d: %d images, at most %d in one strip", *pairs, *frames, *pairs**frames, generate.MaxGridImages)
	}
	if err := checkOutFile("out", *out, ".png"); err != nil {
		return err
	}
	m, _, done, err := eng.load(*ckpt)
	if err != nil {
		return err
	}
	defer done()
	sm, spec, err := generate.SamplerSpec{Name: "ddim", Steps: *steps, Spacing: *spacing}.New(m.Schedule)
	if err != nil {
		return err
	}
	n := *pairs * *frames
	job := generate.Job{N: n, Batch: 64, XT: generate.SlerpLatents(*seed, *pairs, *frames, m.Dim())}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	bar := generate.NewProgress(stderr, job.NumBatches(), spec.Steps)
	job.Step = bar.Step
	x, err := m.Sample(ctx, sm, job)
	bar.Finish()
	if err != nil {
		return err
	}
	c, h, w := m.Shape()
	if err := imageio.WriteGrid(*out, x, n, c, h, w, *frames); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s (%d pairs x %d frames, %s)\n", *out, *pairs, *frames, spec)
	return nil
}

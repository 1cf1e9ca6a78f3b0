package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"

	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/generate"
	"github.com/ddpm-go/ddpm/imageio"
)

func init() {
	register(&command{name: "interpolate", summary: "slerp between pairs of x_T (random, or DDIM encodings of --image files) and decode with DDIM eta=0 to a PNG strip", run: runInterpolate})
}

func runInterpolate(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("interpolate", stderr)
	ckpt := fs.String("ckpt", "", "run directory or weights file (default: the shipped MNIST model)")
	var images pathList
	addImageFlag(fs, &images, "interpolate between the DDIM encodings of these files instead of random x_T: an even count, files 2p and 2p+1 make row p (not with --seed or --pairs)")
	seed := fs.Uint64("seed", 0, "pair p interpolates the x_T of images 2p and 2p+1 under this seed")
	pairs := fs.Int("pairs", 4, "pairs (rows of the strip)")
	frames := fs.Int("frames", 10, "images per row, both ends included")
	steps := fs.Int("steps", 50, "DDIM steps (of the decoding, and of the encoding of --image files)")
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
	set := setFlags(fs)
	if len(images) > 0 {
		// The files are the strip's ends: random latents, and how many, do not come into it.
		for _, name := range []string{"seed", "pairs"} {
			if set[name] {
				return fmt.Errorf("--image and --%s: the rows are the pairs of --image files, not random latents", name)
			}
		}
		if len(images)%2 != 0 {
			return fmt.Errorf("%d --image files: give pairs (an even count), one row per pair", len(images))
		}
		*pairs = len(images) / 2
	}
	switch {
	case *out == "":
		return fmt.Errorf("--out FILE.png is required")
	case *pairs > generate.MaxGridImages / *frames:
		// The strip is one PNG assembled in memory, like sample's --grid (the division keeps a
		// huge --pairs from overflowing the product).
		return fmt.Errorf("%d pairs x --frames %d: more than %d images in one strip", *pairs, *frames, generate.MaxGridImages)
	}
	if err := checkOutFile("out", *out, ".png"); err != nil {
		return err
	}
	m, _, done, err := eng.load(*ckpt)
	if err != nil {
		return err
	}
	defer done()
	c, h, w := m.Shape()
	var x0 []float32
	if len(images) > 0 {
		if x0, err = readImages("image", images, c, h, w); err != nil {
			return err
		}
	}
	sm, spec, err := generate.SamplerSpec{Name: "ddim", Steps: *steps, Spacing: *spacing}.New(m.Schedule)
	if err != nil {
		return err
	}
	n := *pairs * *frames
	job := generate.Job{N: n, Batch: 64}
	enc := generate.Job{N: len(images), Batch: 64}
	if err := m.CheckMemory(job); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	bar := generate.NewProgress(stderr, enc.NumBatches()+job.NumBatches(), spec.Steps)
	job.Step, enc.Step = bar.Step, bar.Step
	if len(images) == 0 {
		job.XT = generate.SlerpLatents(*seed, *pairs, *frames, m.Dim())
	} else {
		// DDIM Sec. 5.3 on real images: the ends are the files' x_T under the same eta = 0 DDIM
		// that decodes the strip (as ddpm encode computes them), unconditional on a
		// class-conditional model, so a row starts and ends at the files' reconstructions.
		xT, err := m.Encode(ctx, sm.(*diffusion.DDIM), widen(x0), enc)
		if err != nil {
			bar.Finish()
			return interrupted(err)
		}
		job.XT = generate.SlerpPairs(xT, *frames, m.Dim())
	}
	x, err := m.Sample(ctx, sm, job)
	bar.Finish()
	if err != nil {
		return interrupted(err)
	}
	if err := imageio.WriteGrid(*out, x, n, c, h, w, *frames); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s (%d pairs x %d frames, %s)\n", *out, *pairs, *frames, spec)
	return nil
}

// interrupted words a run stopped by Ctrl-C as such, rather than as the context's error.
func interrupted(err error) error {
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("interrupted; nothing written")
	}
	return err
}

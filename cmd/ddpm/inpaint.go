package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"time"

	"github.com/ddpm-go/ddpm/data"
	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/engine"
	"github.com/ddpm-go/ddpm/generate"
	"github.com/ddpm-go/ddpm/imageio"
)

func init() {
	register(&command{name: "inpaint", summary: "complete the masked part of an image (replacement on any sampler, or RePaint)", run: runInpaint})
}

// inpaintFlags are the flags of `ddpm inpaint`.
type inpaintFlags struct {
	ckpt, image, mask, box, out, grid string
	spec                              generate.SamplerSpec
	class                             generate.ClassSpec
	in                                generate.InpaintSpec
	n                                 int
	seed                              uint64
	eng                               engineFlags
}

func parseInpaintFlags(args []string, stderr io.Writer) (*inpaintFlags, error) {
	fs := newFlagSet("inpaint", stderr)
	f := &inpaintFlags{}
	fs.StringVar(&f.ckpt, "ckpt", "", "run directory or weights file (default: the shipped MNIST model)")
	fs.StringVar(&f.image, "image", "", "the image to complete: PNG or JPEG, centre-cropped and resized to the model's size (required)")
	fs.StringVar(&f.mask, "mask", "", "mask PNG of the same picture: white = fill in, black = keep")
	fs.StringVar(&f.box, "box", "", "or the region to fill as x,y,w,h in the model's pixels (e.g. 0,14,28,14: the bottom half of 28x28)")
	fs.StringVar(&f.out, "out", "", "write the first completion here (PNG)")
	fs.StringVar(&f.grid, "grid", "", "write the masked input (filled grey) followed by all --n completions as one PNG grid")
	fs.IntVar(&f.n, "n", 1, "completions to draw (image i depends only on the seed and i)")
	fs.Uint64Var(&f.seed, "seed", 0, "random seed")
	addSamplerFlags(fs, &f.spec)
	addClassFlags(fs, &f.class)
	fs.BoolVar(&f.in.RePaint, "repaint", false, "RePaint (DDPM over all T steps, resampling with jumps) instead of replacement on --sampler")
	fs.IntVar(&f.in.Jumps, "jumps", 0, "RePaint: times each stretch of --jump-length steps is traversed (default 10; 1: no resampling)")
	fs.IntVar(&f.in.JumpLength, "jump-length", 0, "RePaint: steps between jumps back (default 10)")
	addEngineFlags(fs, &f.eng, engineOpts{ema: true, noEMA: true})
	if err := parseFlagsOneLine(fs, args, stderr); err != nil {
		return nil, err
	}
	set := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	if f.in.RePaint && !set["sampler"] {
		f.spec.Name = "" // RePaint is its own DDPM; the sampler flag's default does not apply
	}
	switch {
	case f.image == "":
		return nil, errors.New("--image is required")
	case (f.mask == "") == (f.box == ""):
		return nil, errors.New("give --mask or --box (one of them)")
	case f.out == "" && f.grid == "":
		return nil, errors.New("give --out or --grid")
	case set["ema"] && set["no-ema"]:
		return nil, errors.New("give --ema or --no-ema, not both")
	}
	if err := checkSpec(fs, f.spec); err != nil {
		return nil, err
	}
	if err := atLeast(fs, map[string]int64{"n": 1, "steps": 1, "threads": 0}); err != nil {
		return nil, err
	}
	if f.n > generate.MaxGridImages {
		return nil, fmt.Errorf("--n %d: at most %d completions", f.n, generate.MaxGridImages)
	}
	for _, o := range []struct{ flag, path string }{{"out", f.out}, {"grid", f.grid}} {
		if err := checkOutFile(o.flag, o.path, ".png"); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// parseBox reads x,y,w,h.
func parseBox(s string) (v [4]int, err error) {
	parts := strings.Split(s, ",")
	if len(parts) != 4 {
		return v, fmt.Errorf("--box %q: want x,y,w,h", s)
	}
	for i, p := range parts {
		if v[i], err = strconv.Atoi(strings.TrimSpace(p)); err != nil {
			return v, fmt.Errorf("--box %q: %q is not an integer", s, p)
		}
	}
	return v, nil
}

// known reads the image and the mask at the model's size: the clean values in [-1, 1] and the
// mask (1 = keep).
func (f *inpaintFlags) known(c, h, w int) (x0, mask []float64, err error) {
	px, err := data.ReadImage(f.image, h, c)
	if err != nil {
		return nil, nil, fmt.Errorf("--image %w", err)
	}
	if h != w {
		return nil, nil, fmt.Errorf("model images are %dx%d; inpaint takes square ones", h, w)
	}
	x0 = make([]float64, len(px))
	for i, v := range px {
		x0[i] = float64(v)/127.5 - 1
	}
	if f.box != "" {
		b, err := parseBox(f.box)
		if err != nil {
			return nil, nil, err
		}
		mask, err = generate.BoxMask(c, h, w, b[0], b[1], b[2], b[3])
		if err != nil {
			return nil, nil, fmt.Errorf("--box %w", err)
		}
		return x0, mask, nil
	}
	grey, err := data.ReadImage(f.mask, h, 1)
	if err != nil {
		return nil, nil, fmt.Errorf("--mask %w", err)
	}
	mask, err = generate.MaskFromPixels(grey, c, h, w)
	return x0, mask, err
}

func runInpaint(args []string, stdout, stderr io.Writer) error {
	f, err := parseInpaintFlags(args, stderr)
	if err != nil {
		return err
	}
	m, be, done, err := f.eng.load(f.ckpt)
	if err != nil {
		return err
	}
	defer done()
	if err := f.class.Validate(m.Classes); err != nil {
		return flagErr(err)
	}
	sampler, desc, err := f.in.Sampler(f.spec, m.Schedule)
	if err != nil {
		return flagErr(err)
	}
	c, h, w := m.Shape()
	x0, mask, err := f.known(c, h, w)
	if err != nil {
		return err
	}
	dim := c * h * w
	job := generate.Job{N: f.n, Seed: f.seed, Batch: 64, Chunk: generate.DefaultChunk(be), Guidance: f.class.Scale(),
		Known: &diffusion.Known{X0: make([]float64, 0, f.n*dim), Mask: mask}}
	for range f.n {
		job.Known.X0 = append(job.Known.X0, x0...)
	}
	if job.Labels, err = f.class.Labels(m.Classes, 0, f.n, 1); err != nil {
		return flagErr(err)
	}
	if err := m.CheckMemory(job); err != nil {
		return err
	}
	kept := 0
	for _, v := range mask {
		kept += int(v)
	}
	fmt.Fprintf(stderr, "inpainting %d of %d values of %s, %d completions (seed %d, %s) from %s with %s on %s\n",
		dim-kept, dim, f.image, f.n, f.seed, f.class.Describe(), m.Source, desc, engine.Explain(be, f.eng.precision))
	bar := generate.NewProgress(stderr, job.NumBatches(), 0)
	job.Step = bar.Step
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	t0 := time.Now()
	x, err := m.Sample(ctx, sampler, job)
	bar.Finish()
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("interrupted; nothing written")
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "%d completions in %.1f s\n", f.n, time.Since(t0).Seconds())
	if f.out != "" {
		if err := imageio.WritePNG(f.out, c, h, w, imageio.ToUint8(nil, x[:dim])); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote %s\n", f.out)
	}
	if f.grid != "" {
		// The masked input first, its unknown part shown mid-grey.
		shown := make([]float64, 0, (f.n+1)*dim)
		for i, v := range x0 {
			shown = append(shown, v*mask[i])
		}
		if err := imageio.WriteGrid(f.grid, append(shown, x...), f.n+1, c, h, w, min(f.n+1, 9)); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote %s\n", f.grid)
	}
	return nil
}

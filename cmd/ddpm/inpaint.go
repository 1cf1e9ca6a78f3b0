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
	ckpt, box, out, grid string
	images, masks        pathList
	spec                 generate.SamplerSpec
	class                generate.ClassSpec
	in                   generate.InpaintSpec
	n                    int
	seed                 uint64
	eng                  engineFlags
}

func parseInpaintFlags(args []string, stderr io.Writer) (*inpaintFlags, error) {
	fs := newFlagSet("inpaint", stderr)
	f := &inpaintFlags{}
	fs.StringVar(&f.ckpt, "ckpt", "", "run directory or weights file (default: the shipped MNIST model)")
	addImageFlag(fs, &f.images, "an image to complete, --n times (required)")
	fs.Var(&f.masks, "mask", "mask PNG of the same picture, read like --image: white = fill in, black = keep; once for all images, or once per --image (mask k goes with image k)")
	fs.StringVar(&f.box, "box", "", "or the region to fill in every image as x,y,w,h in the model's pixels (e.g. 0,14,28,14: the bottom half of 28x28)")
	fs.StringVar(&f.out, "out", "", "write the first completion here (PNG); with several --image, the first completion of image k to FILE-k.png (out.png: out-0.png, out-1.png, ...)")
	fs.StringVar(&f.grid, "grid", "", "write one row per image: its masked input (filled grey) followed by its --n completions, as one PNG grid (one image: rows of 9)")
	fs.IntVar(&f.n, "n", 1, "completions of each image: completion j of image k depends only on the seed and k*n+j, and takes --class's entry j (so grid columns share a class)")
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
	case len(f.images) == 0:
		return nil, errors.New("--image is required")
	case (len(f.masks) == 0) == (f.box == ""):
		return nil, errors.New("give --mask or --box (one of them)")
	case len(f.masks) > 1 && len(f.masks) != len(f.images):
		return nil, fmt.Errorf("--mask given %d times for %d --image: give one mask for all images or one per image", len(f.masks), len(f.images))
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
	// All completions are held in memory (and a grid is one PNG): images x n, plus the masked inputs
	// in a grid, stay under the grid limit. Both factors are at most MaxGridImages, so the product
	// cannot overflow.
	perImage := f.n
	if f.grid != "" {
		perImage++
	}
	if f.n > generate.MaxGridImages || len(f.images)*perImage > generate.MaxGridImages {
		return nil, fmt.Errorf("--n %d x %d --image: more than %d images in all (a --grid adds each masked input)", f.n, len(f.images), generate.MaxGridImages)
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

// known reads the images and their masks at the model's size: the clean values in [-1, 1], image
// after image, and the mask (1 = keep), of one image when one mask (or --box) serves them all,
// else image after image.
func (f *inpaintFlags) known(c, h, w int) (x0, mask []float64, err error) {
	x, err := readImages("image", f.images, c, h, w)
	if err != nil {
		return nil, nil, err
	}
	x0 = widen(x)
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
	for _, p := range f.masks {
		grey, err := data.ReadImage(p, h, 1)
		if err != nil {
			return nil, nil, fmt.Errorf("--mask %w", err)
		}
		mk, err := generate.MaskFromPixels(grey, c, h, w)
		if err != nil {
			return nil, nil, fmt.Errorf("--mask %s: %w", p, err)
		}
		mask = append(mask, mk...)
	}
	return x0, mask, nil
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
	// One job for all images, row k*n+j completing image k, so the batches (and a oneDNN engine's
	// chunks) fill up however few completions each image gets.
	dim, k := c*h*w, len(f.images)
	rows := k * f.n
	job := generate.Job{N: rows, Seed: f.seed, Batch: 64, Chunk: generate.DefaultChunk(be), Guidance: f.class.Scale(),
		Known: &diffusion.Known{X0: make([]float64, 0, rows*dim)}}
	if len(mask) == dim {
		job.Known.Mask = mask // shared
	} else {
		job.Known.Mask = make([]float64, 0, rows*dim)
	}
	labels, err := f.class.Labels(m.Classes, 0, f.n, 1)
	if err != nil {
		return flagErr(err)
	}
	for i := range k {
		for range f.n {
			job.Known.X0 = append(job.Known.X0, x0[i*dim:(i+1)*dim]...)
			if len(mask) != dim {
				job.Known.Mask = append(job.Known.Mask, mask[i*dim:(i+1)*dim]...)
			}
		}
		// Each image's completions take the classes a single image's would, so a grid's columns
		// share a class.
		if labels != nil {
			job.Labels = append(job.Labels, labels...)
		}
	}
	if err := m.CheckMemory(job); err != nil {
		return err
	}
	what := fmt.Sprintf("%d images", k)
	if k == 1 {
		what = f.images[0]
	}
	unknown := fmt.Sprintf("%d of %d values", dim-kept(mask[:dim]), dim)
	if len(mask) != dim {
		unknown = "the masked values"
	}
	fmt.Fprintf(stderr, "inpainting %s of %s, %d completions each (seed %d, %s) from %s with %s on %s\n",
		unknown, what, f.n, f.seed, f.class.Describe(), m.Source, desc, engine.Explain(be, f.eng.precision))
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
	fmt.Fprintf(stderr, "%d completions in %.1f s\n", rows, time.Since(t0).Seconds())
	if f.out != "" {
		for i := range k {
			path := numbered(f.out, i, k)
			first := x[i*f.n*dim : (i*f.n+1)*dim]
			if err := imageio.WritePNG(path, c, h, w, imageio.ToUint8(nil, first)); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "wrote %s\n", path)
		}
	}
	if f.grid != "" {
		// Per image, the masked input first (its unknown part shown mid-grey), then its completions.
		shown := make([]float64, 0, k*(f.n+1)*dim)
		for i := range k {
			mk := mask
			if len(mask) != dim {
				mk = mask[i*dim : (i+1)*dim]
			}
			for j, v := range x0[i*dim : (i+1)*dim] {
				shown = append(shown, v*mk[j])
			}
			shown = append(shown, x[i*f.n*dim:(i+1)*f.n*dim]...)
		}
		cols := f.n + 1
		if k == 1 {
			cols = min(cols, 9) // one image's row wraps, as before several could be given
		}
		if err := imageio.WriteGrid(f.grid, shown, k*(f.n+1), c, h, w, cols); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote %s\n", f.grid)
	}
	return nil
}

// kept counts the known values of a mask.
func kept(mask []float64) int {
	n := 0
	for _, v := range mask {
		n += int(v)
	}
	return n
}

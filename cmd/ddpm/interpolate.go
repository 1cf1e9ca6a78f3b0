package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"path/filepath"

	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/engine"
	"github.com/ddpm-go/ddpm/generate"
	"github.com/ddpm-go/ddpm/imageio"
)

func init() {
	register(&command{name: "interpolate", summary: "slerp between pairs of x_T and decode with DDIM eta=0 to a PNG strip", run: runInterpolate})
}

// slerp is spherical interpolation between a and b (DDIM Sec. 5.3, after White 2016): Gaussian
// latents concentrate on a sphere, and the straight line between two of them passes through
// low-norm points the model never saw, which slerp avoids.
func slerp(a, b []float64, alpha float64, out []float64) {
	var dot, na, nb float64
	for i := range a {
		dot += a[i] * b[i]
		na += a[i] * a[i]
		nb += b[i] * b[i]
	}
	theta := math.Acos(max(-1, min(1, dot/math.Sqrt(na*nb))))
	if theta < 1e-8 {
		for i := range a {
			out[i] = (1-alpha)*a[i] + alpha*b[i]
		}
		return
	}
	wa, wb := math.Sin((1-alpha)*theta)/math.Sin(theta), math.Sin(alpha*theta)/math.Sin(theta)
	for i := range a {
		out[i] = wa*a[i] + wb*b[i]
	}
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
	ema := fs.Bool("ema", true, "use the EMA weights of a run or checkpoint")
	engName := fs.String("engine", "auto", "auto, dnnl or ref")
	precision := fs.String("precision", "fp32", "auto, fp32 or bf16")
	threads := fs.Int("threads", 0, "threads (0: all cores)")
	if err := parseFlagsOneLine(fs, args, stderr); err != nil {
		return err
	}
	switch {
	case *out == "":
		return fmt.Errorf("--out FILE.png is required")
	case *pairs < 1 || *frames < 2 || *steps < 1 || *threads < 0:
		return fmt.Errorf("--pairs and --steps must be >= 1, --frames >= 2, --threads >= 0")
	case *pairs**frames > maxGridImages:
		// The strip is one PNG assembled in memory, like sample's --grid.
		return fmt.Errorf("--pairs %d x --frames %d: %d images, at most %d in one strip", *pairs, *frames, *pairs**frames, maxGridImages)
	}
	if err := checkExt("out", *out, ".png"); err != nil {
		return err
	}
	// Checked now, not after the decoding has run.
	if st, err := os.Stat(filepath.Dir(*out)); err != nil || !st.IsDir() {
		return fmt.Errorf("cannot write %s: directory %s does not exist", *out, filepath.Dir(*out))
	}
	be, err := engine.New(*engName, *precision, *threads)
	if err != nil {
		return err
	}
	defer engine.Close(be)
	m, err := generate.Load(*ckpt, be, *ema)
	if err != nil {
		return err
	}
	sm, spec, err := generate.SamplerSpec{Name: "ddim", Steps: *steps, Spacing: *spacing}.New(m.Schedule)
	if err != nil {
		return err
	}
	dim := m.Dim()
	// The latents are the x_T a sampler would draw for those images: the first dim normals of each
	// row's stream, so the strip's ends are exactly `ddpm sample --seed` images 2p and 2p+1.
	n := *pairs * *frames
	xT := make([]float64, n*dim)
	a, b := make([]float64, dim), make([]float64, dim)
	for p := range *pairs {
		for i, r := range []int{2 * p, 2*p + 1} {
			rng := diffusion.RowRNG(*seed, r)
			dst := [][]float64{a, b}[i]
			for j := range dst {
				dst[j] = rng.NormFloat64()
			}
		}
		for f := range *frames {
			row := (p**frames + f) * dim
			slerp(a, b, float64(f)/float64(*frames-1), xT[row:row+dim])
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	job := generate.Job{N: n, Batch: 64, XT: xT}
	bar := newStepBar(stderr, len(job.Batches()), spec.Steps)
	job.Step = func(b generate.Batch, s diffusion.Step) error { bar.step(b, s); return nil }
	x, err := m.Sample(ctx, sm, job)
	bar.finish()
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

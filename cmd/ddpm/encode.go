package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"time"

	"github.com/ddpm-go/ddpm/data"
	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/engine"
	"github.com/ddpm-go/ddpm/generate"
	"github.com/ddpm-go/ddpm/imageio"
)

func init() {
	register(&command{name: "encode", summary: "DDIM-encode images to x_T (the eta=0 ODE run forward); --recon decodes and reports the MSE", run: runEncode})
}

// encodeResult is the JSON line `ddpm encode --recon` prints.
type encodeResult struct {
	Steps   int     `json:"steps"`
	Spacing string  `json:"spacing"`
	N       int     `json:"n"`
	MSE     float64 `json:"mse"`    // per dimension, images in [-1, 1]
	MSE01   float64 `json:"mse_01"` // the same for images scaled to [0, 1] (MSE/4)
	Data    string  `json:"data"`
	Source  string  `json:"source"`
	Secs    float64 `json:"secs"`
}

func runEncode(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("encode", stderr)
	ckpt := fs.String("ckpt", "", "run directory or weights file (default: the shipped MNIST model)")
	dataName := fs.String("data", "mnist", "images to encode: mnist or fashion")
	dataDir := fs.String("data-dir", "", "data cache directory (default ~/.cache/ddpm)")
	split := fs.String("split", "test", "train or test")
	first := fs.Int("first", 0, "index of the first image")
	n := fs.Int("n", 64, "number of images")
	steps := fs.Int("steps", 50, "DDIM steps S")
	spacing := fs.String("spacing", "linspace", "timestep spacing: "+diffusion.SpacingNames)
	batch := fs.Int("batch", 64, "images per call")
	out := fs.String("out", "", "write x_T as float32 .npy (N,C,H,W) here, for ddpm sample --init")
	recon := fs.Bool("recon", false, "decode x_T with the same DDIM and print the reconstruction MSE as JSON")
	grid := fs.String("grid", "", "with --recon: write the images over their reconstructions as a PNG (rows of --cols)")
	cols := fs.Int("cols", 10, "images per row of --grid")
	ema := fs.Bool("ema", true, "use the EMA weights of a run or checkpoint")
	engName := fs.String("engine", "auto", "auto, dnnl or ref")
	precision := fs.String("precision", "fp32", "auto, fp32 or bf16")
	threads := fs.Int("threads", 0, "threads (0: all cores)")
	if err := parseFlagsOneLine(fs, args, stderr); err != nil {
		return err
	}
	switch {
	case *out == "" && !*recon:
		return fmt.Errorf("nothing to do: give --out FILE.npy and/or --recon")
	case *grid != "" && !*recon:
		return fmt.Errorf("--grid shows reconstructions: give --recon too")
	case *n < 1 || *first < 0 || *batch < 1 || *steps < 1 || *threads < 0 || *cols < 1:
		return fmt.Errorf("--n, --batch, --steps and --cols must be >= 1, --first and --threads >= 0")
	case *split != "train" && *split != "test":
		return fmt.Errorf("--split %q: want train or test", *split)
	case *first > maxImages-*n: // not first+n, which overflows for a first near the largest int
		return fmt.Errorf("--first %d + --n %d: image indices past %d", *first, *n, maxImages)
	}
	if err := checkExt("out", *out, ".npy"); err != nil {
		return err
	}
	sp := data.Test
	if *split == "train" {
		sp = data.Train
	}
	set, err := data.Load(*dataName, *dataDir, sp)
	if err != nil {
		return err
	}
	if *first+*n > set.N {
		return fmt.Errorf("images %d..%d requested, %s %s has %d", *first, *first+*n-1, *dataName, *split, set.N)
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
	if c, h, w := m.Shape(); c != set.C || h != set.H || w != set.W {
		return fmt.Errorf("model %s takes %dx%dx%d images, %s has %dx%dx%d", m.Source, c, h, w, *dataName, set.C, set.H, set.W)
	}
	sm, spec, err := generate.SamplerSpec{Name: "ddim", Steps: *steps, Spacing: *spacing}.New(m.Schedule)
	if err != nil {
		return err
	}
	ddim := sm.(*diffusion.DDIM)
	dim := m.Dim()
	x0 := make([]float64, *n*dim)
	for i, v := range set.Images[*first*dim : (*first+*n)*dim] {
		x0[i] = float64(v)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	t0 := time.Now()
	job := generate.Job{N: *n, Batch: *batch}
	if err := checkBatchMemory(m, job); err != nil {
		return err
	}
	bar := newStepBar(stderr, len(job.Batches())*map[bool]int{true: 2, false: 1}[*recon], spec.Steps)
	xT := make([]float64, 0, len(x0))
	for _, b := range job.Batches() {
		lo := b.Start * dim
		z, err := ddim.Encode(ctx, m.Net, x0[lo:lo+b.N*dim], b.N, dim, diffusion.Options{Prediction: m.Prediction,
			Callback: func(s diffusion.Step) error { bar.step(b, s); return nil }})
		if err != nil {
			bar.finish()
			if errors.Is(err, context.Canceled) {
				return fmt.Errorf("interrupted; nothing written")
			}
			return err
		}
		xT = append(xT, z...)
	}
	if *out != "" {
		x32 := make([]float32, len(xT))
		for i, v := range xT {
			x32[i] = float32(v)
		}
		c, h, w := m.Shape()
		if err := imageio.SaveNPY(*out, []int{*n, c, h, w}, x32); err != nil {
			bar.finish()
			return err
		}
	}
	if !*recon {
		bar.finish()
		fmt.Fprintf(stdout, "wrote %s\n", *out)
		return nil
	}
	job.XT = xT
	job.Step = func(b generate.Batch, s diffusion.Step) error { bar.step(b, s); return nil }
	back, err := m.Sample(ctx, ddim, job)
	bar.finish()
	if err != nil {
		return err
	}
	mse := 0.0
	for i, v := range back {
		d := v - x0[i]
		mse += d * d
	}
	mse /= float64(len(back))
	if math.IsNaN(mse) {
		return fmt.Errorf("reconstruction produced NaN")
	}
	if *grid != "" {
		c, h, w := m.Shape()
		k := min(*cols, *n)
		px := pairRows(x0, back, *n, dim, k)
		if err := imageio.WriteGrid(*grid, px, len(px)/dim, c, h, w, k); err != nil {
			return err
		}
	}
	res := encodeResult{Steps: spec.Steps, Spacing: spec.Spacing, N: *n, MSE: mse, MSE01: mse / 4, Data: *dataName, Source: m.Source, Secs: time.Since(t0).Seconds()}
	b, _ := json.Marshal(res)
	fmt.Fprintln(stdout, string(b))
	return nil
}

// pairRows lays out images and their reconstructions for a grid of cols columns: a row of
// originals, the row of their reconstructions below it, and so on.
func pairRows(orig, back []float64, n, dim, cols int) []float32 {
	out := make([]float32, 0, 2*n*dim)
	put := func(src []float64, lo, hi int) {
		for _, v := range src[lo*dim : hi*dim] {
			out = append(out, float32(max(-1, min(1, v))))
		}
	}
	for lo := 0; lo < n; lo += cols {
		hi := min(n, lo+cols)
		put(orig, lo, hi)
		for range (cols - (hi - lo)) * dim { // white fills a short last row: reconstructions stay under their images
			out = append(out, 1)
		}
		put(back, lo, hi)
	}
	return out
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"time"

	"github.com/ddpm-go/ddpm/data"
	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/generate"
)

func init() {
	register(&command{name: "encode", summary: "DDIM-encode images to x_T (the eta=0 ODE run forward); --recon decodes and reports the MSE", run: runEncode})
}

// encodeResult is the JSON line `ddpm encode --recon` prints.
type encodeResult struct {
	Steps   int      `json:"steps"`
	Spacing string   `json:"spacing"`
	N       int      `json:"n"`
	MSE     float64  `json:"mse"`              // per dimension, images in [-1, 1]
	MSE01   float64  `json:"mse_01"`           // the same for images scaled to [0, 1] (MSE/4)
	Data    string   `json:"data"`             // the dataset, or "images" for --image
	Images  []string `json:"images,omitempty"` // the --image files, in order
	Source  string   `json:"source"`
	Secs    float64  `json:"secs"`
}

func runEncode(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("encode", stderr)
	ckpt := fs.String("ckpt", "", "run directory or weights file (default: the shipped MNIST model)")
	var images pathList
	addImageFlag(fs, &images, "encode this file instead of dataset images, in the order given; not with --data, --data-dir, --split, --first or --n")
	dataName := fs.String("data", "mnist", "dataset images to encode: mnist, fashion or emoji")
	dataDir := fs.String("data-dir", "", "data cache directory (default ~/.cache/ddpm)")
	split := fs.String("split", "test", "train or test")
	first := fs.Int("first", 0, "index of the first dataset image")
	n := fs.Int("n", 64, "number of dataset images")
	steps := fs.Int("steps", 50, "DDIM steps S")
	spacing := fs.String("spacing", "linspace", "timestep spacing: "+diffusion.SpacingNames)
	batch := fs.Int("batch", 64, "images per call")
	var rt generate.RoundTrip
	fs.StringVar(&rt.Latents, "out", "", "write x_T as float32 .npy (N,C,H,W) here, for ddpm sample --init")
	fs.BoolVar(&rt.Decode, "recon", false, "decode x_T with the same DDIM and print the reconstruction MSE as JSON")
	fs.StringVar(&rt.Grid, "grid", "", "with --recon: write the images over their reconstructions as a PNG (rows of --cols)")
	fs.IntVar(&rt.Cols, "cols", 10, "images per row of --grid")
	var eng engineFlags
	addEngineFlags(fs, &eng, engineOpts{ema: true, precision: "fp32", precisionHelp: "auto, fp32 or bf16"})
	if err := parseFlagsOneLine(fs, args, stderr); err != nil {
		return err
	}
	if err := atLeast(fs, map[string]int64{"n": 1, "first": 0, "batch": 1, "steps": 1, "threads": 0, "cols": 1}); err != nil {
		return err
	}
	set := setFlags(fs)
	if len(images) > 0 {
		// The dataset flags pick other images; ignoring them would encode something else than asked.
		for _, name := range []string{"data", "data-dir", "split", "first", "n"} {
			if set[name] {
				return fmt.Errorf("--image and --%s: encode your files or dataset images, not both", name)
			}
		}
		*n, *first = len(images), 0
	}
	switch {
	case rt.Latents == "" && !rt.Decode:
		return fmt.Errorf("nothing to do: give --out FILE.npy and/or --recon")
	case rt.Grid != "" && !rt.Decode:
		return fmt.Errorf("--grid shows reconstructions: give --recon too")
	case *first > generate.MaxImages-*n: // not first+n, which overflows for a first near the largest int
		return fmt.Errorf("--first %d + --n %d: image indices past %d", *first, *n, generate.MaxImages)
	}
	if err := checkOutFile("out", rt.Latents, ".npy"); err != nil {
		return err
	}
	var x0 []float32
	var ds *data.Set
	if len(images) == 0 {
		// The dataset first: a missing download is reported before the model is loaded.
		var err error
		if ds, x0, err = data.LoadRange(*dataName, *dataDir, *split, *first, *n); err != nil {
			return err
		}
	}
	m, _, done, err := eng.load(*ckpt)
	if err != nil {
		return err
	}
	defer done()
	c, h, w := m.Shape()
	if ds != nil && (c != ds.C || h != ds.H || w != ds.W) {
		return fmt.Errorf("model %s takes %dx%dx%d images, %s has %dx%dx%d", m.Source, c, h, w, *dataName, ds.C, ds.H, ds.W)
	}
	if len(images) > 0 {
		// The user's files are read at the model's own size and channels, whatever theirs.
		if x0, err = readImages("image", images, c, h, w); err != nil {
			return err
		}
		*dataName = "images"
	}
	sm, spec, err := generate.SamplerSpec{Name: "ddim", Steps: *steps, Spacing: *spacing}.New(m.Schedule)
	if err != nil {
		return err
	}
	job := generate.Job{N: *n, Batch: *batch}
	if err := m.CheckMemory(job); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	t0 := time.Now()
	bar := generate.NewProgress(stderr, job.NumBatches()*map[bool]int{true: 2, false: 1}[rt.Decode], spec.Steps)
	job.Step = bar.Step
	mse, err := m.RoundTrip(ctx, sm.(*diffusion.DDIM), x0, job, rt)
	bar.Finish()
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("interrupted; nothing written")
	} else if err != nil {
		return err
	}
	if !rt.Decode {
		fmt.Fprintf(stdout, "wrote %s\n", rt.Latents)
		return nil
	}
	b, _ := json.Marshal(encodeResult{Steps: spec.Steps, Spacing: spec.Spacing, N: *n, MSE: mse, MSE01: mse / 4, Data: *dataName, Images: images, Source: m.Source, Secs: time.Since(t0).Seconds()})
	fmt.Fprintln(stdout, string(b))
	return nil
}

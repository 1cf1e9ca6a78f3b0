package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"os/signal"
	"time"

	"github.com/ddpm-go/ddpm/data"
	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/engine"
	"github.com/ddpm-go/ddpm/eval"
	"github.com/ddpm-go/ddpm/generate"
	"github.com/ddpm-go/ddpm/imageio"
	"github.com/ddpm-go/ddpm/internal/sysmem"
	"github.com/ddpm-go/ddpm/schedule"
)

// fidResult is the JSON line `ddpm eval fid` prints.
type fidResult struct {
	FID        float64 `json:"fid"`
	KID        float64 `json:"kid"`
	KIDStd     float64 `json:"kid_std"`
	N          int     `json:"n"`
	Floor      float64 `json:"floor"`     // FID of n training images against the test set
	KIDFloor   float64 `json:"kid_floor"` // KID of the same
	Classes    []int   `json:"classes"`   // predicted-class histogram of the samples
	Confident  float64 `json:"confident"` // fraction with top softmax probability >= Threshold
	Threshold  float64 `json:"threshold"`
	ClassKL    float64 `json:"class_kl"` // KL(histogram || uniform), nats
	Data       string  `json:"data"`
	Source     string  `json:"source"`            // model (or npz) scored
	Sampler    string  `json:"sampler,omitempty"` // e.g. "ddim-50 eta=0 linspace"
	Seed       uint64  `json:"seed"`
	Classifier string  `json:"classifier"`
	RefN       int     `json:"ref_n"` // test images the statistics are fitted to
	SampleSecs float64 `json:"sample_secs,omitempty"`
}

// fidFlags are the flags of `ddpm eval fid`.
type fidFlags struct {
	ckpt, npz, dataName, dataDir, classifierPath string
	drift                                        string
	spec                                         generate.SamplerSpec
	n, batch, chunk, threads                     int
	seed                                         uint64
	ema, noEMA                                   bool
	engine, precision                            string
	kidSubsets, kidSize, refN                    int
	threshold                                    float64
	set                                          map[string]bool
}

func runEvalFID(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("eval fid", stderr)
	var f fidFlags
	fs.StringVar(&f.ckpt, "ckpt", "", "run directory or weights file to sample (default: the shipped MNIST model)")
	fs.StringVar(&f.drift, "drift", "", "also write, per step, the samples' mean energy against the forward process's to this JSON-lines file (exposure bias)")
	fs.StringVar(&f.npz, "npz", "", "score these images instead of sampling: uint8 (N,H,W,C) arr_0, as ddpm sample --npz writes")
	fs.StringVar(&f.dataName, "data", "mnist", "reference data and classifier: mnist or fashion")
	fs.StringVar(&f.dataDir, "data-dir", "", "data cache directory (default ~/.cache/ddpm)")
	fs.StringVar(&f.classifierPath, "classifier", "", "classifier weights (default: the shipped one for --data)")
	addSamplerFlags(fs, &f.spec)
	fs.IntVar(&f.n, "n", 10000, "number of samples to score (with --npz: the first n, default all)")
	fs.Uint64Var(&f.seed, "seed", 0, "sampling seed (also picks the training images of the floor)")
	fs.IntVar(&f.batch, "batch", 256, "images per sampler call (results do not depend on it)")
	fs.IntVar(&f.chunk, "chunk", -1, "images per network call, aligned to global indices (-1: 0 on ref, 32 on dnnl)")
	fs.BoolVar(&f.ema, "ema", true, "use the EMA weights of a run or checkpoint")
	fs.BoolVar(&f.noEMA, "no-ema", false, "use the raw weights of a run or checkpoint")
	fs.StringVar(&f.engine, "engine", "auto", "auto, dnnl or ref")
	fs.StringVar(&f.precision, "precision", "fp32", "sampling precision: auto, fp32 or bf16 (the classifier always runs fp32)")
	fs.IntVar(&f.threads, "threads", 0, "threads (0: all cores)")
	fs.IntVar(&f.refN, "ref-n", 0, "test images the reference statistics are fitted to (0: all 10000)")
	fs.IntVar(&f.kidSubsets, "kid-subsets", 100, "KID subsets")
	fs.IntVar(&f.kidSize, "kid-subset-size", 1000, "KID subset size (capped at n)")
	fs.Float64Var(&f.threshold, "confidence", 0.9, "top softmax probability that counts as a confident prediction")
	if err := parseFlagsOneLine(fs, args, stderr); err != nil {
		return err
	}
	f.set = map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { f.set[fl.Name] = true })
	if err := f.validate(); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	res, err := evalFID(ctx, f, stderr)
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("interrupted")
	}
	if err != nil {
		return err
	}
	b, err := json.Marshal(res)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, string(b))
	return nil
}

func (f *fidFlags) validate() error {
	switch {
	case f.dataName != "mnist" && f.dataName != "fashion":
		return fmt.Errorf("--data %q: want mnist or fashion", f.dataName)
	case f.n < 2:
		return fmt.Errorf("--n %d must be at least 2", f.n)
	case f.batch < 1:
		return fmt.Errorf("--batch %d must be at least 1", f.batch)
	case f.chunk < -1:
		return fmt.Errorf("--chunk %d must be >= 0 (or -1)", f.chunk)
	case f.threads < 0:
		return fmt.Errorf("--threads %d must be >= 0", f.threads)
	case f.refN < 0 || f.refN == 1:
		return fmt.Errorf("--ref-n %d must be 0 (all) or at least 2", f.refN)
	case f.kidSubsets < 1 || f.kidSize < 2:
		return fmt.Errorf("--kid-subsets must be >= 1 and --kid-subset-size >= 2")
	case !(f.threshold > 0 && f.threshold <= 1):
		return fmt.Errorf("--confidence %v outside (0, 1]", f.threshold)
	case f.set["ema"] && f.set["no-ema"]:
		return fmt.Errorf("give --ema or --no-ema, not both")
	case !(f.spec.EpsScale > 0) || math.IsInf(f.spec.EpsScale, 0):
		return fmt.Errorf("--eps-scale %v must be a finite number > 0", f.spec.EpsScale)
	}
	if f.npz != "" {
		for _, name := range []string{"ckpt", "sampler", "variance", "steps", "eta", "sigma-hat", "spacing", "clip", "eps-scale", "drift", "batch", "chunk", "ema", "no-ema", "precision"} {
			if f.set[name] {
				return fmt.Errorf("--%s applies to sampling; --npz scores existing images", name)
			}
		}
		return nil
	}
	if f.set["steps"] && f.spec.Steps < 1 {
		return fmt.Errorf("--steps %d must be at least 1", f.spec.Steps)
	}
	// FID scores all samples at once, so they are all kept: per image its float64 sample, the
	// float32 copy the classifier reads, a training image for the floor and the features of both
	// (a few KiB). --data is 28x28 grey either way. Refused now rather than after hours of sampling
	// or in an allocation of terabytes.
	const dim = 28 * 28
	if err := sysmem.Check(fmt.Sprintf("scoring %d samples", f.n), float64(f.n)*(16*dim+8<<10)); err != nil {
		return fmt.Errorf("--n %d: %w", f.n, err)
	}
	// Check the sampler settings before loading anything, against a stand-in schedule (the model's
	// own T is checked once it is loaded).
	standIn, err := schedule.New("linear", max(1000, f.spec.Steps), false)
	if err != nil {
		return err
	}
	_, _, err = f.spec.New(standIn)
	return err
}

// evalFID produces the samples (or reads them), extracts the classifier's features and scores them.
func evalFID(ctx context.Context, f fidFlags, stderr io.Writer) (*fidResult, error) {
	res := &fidResult{Data: f.dataName, Seed: f.seed, Threshold: f.threshold}
	testSet, err := data.Load(f.dataName, f.dataDir, data.Test)
	if err != nil {
		return nil, err
	}
	trainSet, err := data.Load(f.dataName, f.dataDir, data.Train)
	if err != nil {
		return nil, err
	}
	dim := testSet.Size()
	if f.refN > 0 && f.refN < testSet.N {
		testSet.N, testSet.Images = f.refN, testSet.Images[:f.refN*dim]
	}

	// The classifier is read before any sampling, so a bad --classifier costs nothing.
	cbe, err := engine.New(f.engine, "fp32", f.threads)
	if err != nil {
		return nil, err
	}
	defer engine.Close(cbe)
	net, src, err := loadClassifier(f.classifierPath, f.dataName, cbe)
	if err != nil {
		return nil, err
	}
	res.Classifier = src

	// 1. The images to score, as [-1, 1] floats quantised to 8 bits like any saved image.
	var images []float32
	if f.npz != "" {
		images, err = readNPZImages(f.npz, testSet.C, testSet.H, testSet.W)
		if err != nil {
			return nil, err
		}
		if f.set["n"] {
			if f.n > len(images)/dim {
				return nil, fmt.Errorf("--n %d but %s holds %d images", f.n, f.npz, len(images)/dim)
			}
			images = images[:f.n*dim]
		}
		res.Source = f.npz
	} else {
		be, err := engine.New(f.engine, f.precision, f.threads)
		if err != nil {
			return nil, err
		}
		defer engine.Close(be)
		m, err := generate.Load(f.ckpt, be, f.ema && !f.noEMA)
		if err != nil {
			return nil, err
		}
		if c, h, w := m.Shape(); c != testSet.C || h != testSet.H || w != testSet.W {
			return nil, fmt.Errorf("model %s makes %dx%dx%d images, %s has %dx%dx%d", m.Source, c, h, w, f.dataName, testSet.C, testSet.H, testSet.W)
		}
		sampler, spec, err := f.spec.New(m.Schedule)
		if err != nil {
			return nil, err
		}
		job := generate.Job{N: f.n, Seed: f.seed, Batch: f.batch, Chunk: f.chunk}
		if job.Chunk < 0 {
			job.Chunk = 0
			if be.Name() != "ref" {
				job.Chunk = 32
			}
		}
		if err := m.CheckMemory(job); err != nil {
			return nil, err
		}
		bar := generate.NewProgress(stderr, job.NumBatches(), spec.Steps)
		var drift eval.Drift
		job.Step = func(b generate.Batch, s diffusion.Step) error {
			bar.Step(b, s)
			if f.drift != "" {
				drift.Add(s.Index, s.T, s.X, b.N, dim)
			}
			return nil
		}
		fmt.Fprintf(stderr, "sampling %d images from %s with %s on %s\n", f.n, m.Source, spec, engine.Describe(be))
		t0 := time.Now()
		x, err := m.Sample(ctx, sampler, job)
		bar.Finish()
		if err != nil {
			return nil, err
		}
		res.SampleSecs = time.Since(t0).Seconds()
		if f.drift != "" {
			drift.AddFinal(x, f.n, dim)
			if err := writeDrift(f.drift, &drift, m.Schedule.AlphaBar, eval.SecondMoment(trainSet.Images), stderr); err != nil {
				return nil, err
			}
		}
		images = quantise(x)
		res.Source, res.Sampler = m.Source, spec.String()
	}
	res.N = len(images) / dim

	// 2. Features of the samples, the test set and n training images (the floor), on fp32.
	fmt.Fprintf(stderr, "features of %d samples, %d test and %d training images with %s\n", res.N, testSet.N, res.N, src)
	genF, genL, err := net.Apply(ctx, images, res.N, 500)
	if err != nil {
		return nil, err
	}
	testF, _, err := net.Apply(ctx, testSet.Images, testSet.N, 500)
	if err != nil {
		return nil, err
	}
	floorImgs := pickImages(trainSet, res.N, f.seed)
	floorF, _, err := net.Apply(ctx, floorImgs, len(floorImgs)/dim, 500)
	if err != nil {
		return nil, err
	}
	res.RefN = testSet.N

	// 3. The scores.
	k := net.Cfg.Features
	if res.FID, err = eval.FID(genF, res.N, testF, testSet.N, k); err != nil {
		return nil, err
	}
	floorN := len(floorF) / k
	if res.Floor, err = eval.FID(floorF, floorN, testF, testSet.N, k); err != nil {
		return nil, err
	}
	ko := eval.KIDOptions{Subsets: f.kidSubsets, SubsetSize: f.kidSize, Seed: f.seed, Threads: 2}
	if res.KID, res.KIDStd, err = eval.KID(genF, res.N, testF, testSet.N, k, ko); err != nil {
		return nil, err
	}
	if res.KIDFloor, _, err = eval.KID(floorF, floorN, testF, testSet.N, k, ko); err != nil {
		return nil, err
	}
	cs, err := eval.Classes(genL, res.N, net.Cfg.Classes, f.threshold)
	if err != nil {
		return nil, err
	}
	res.Classes, res.Confident, res.ClassKL = cs.Histogram, cs.Confident, cs.KLUniform
	return res, nil
}

// quantise maps samples to the 8-bit values a saved image would hold and back to [-1, 1], so a
// model's score equals the score of its `ddpm sample --npz` output.
func quantise(x []float64) []float32 {
	u := imageio.ToUint8(nil, x)
	out := make([]float32, len(u))
	for i, v := range u {
		out[i] = float32(v)/127.5 - 1
	}
	return out
}

// pickImages returns n training images (all of them if n >= N) chosen by seed, without replacement.
func pickImages(s *data.Set, n int, seed uint64) []float32 {
	n = min(n, s.N)
	perm := rand.New(rand.NewPCG(seed, 0x666c6f6f72)).Perm(s.N)[:n]
	out := make([]float32, 0, n*s.Size())
	for _, i := range perm {
		out = append(out, s.Image(i)...)
	}
	return out
}

// readNPZImages reads arr_0 of an .npz as uint8 (N,H,W,C) images and returns them NCHW in [-1, 1].
func readNPZImages(path string, c, h, w int) ([]float32, error) {
	z, err := imageio.LoadNPZ(path)
	if err != nil {
		return nil, err
	}
	a := z["arr_0"]
	if a == nil {
		return nil, fmt.Errorf("%s has no arr_0", path)
	}
	if len(a.Descr) != 3 || a.Descr[1:] != "u1" {
		return nil, fmt.Errorf("%s: arr_0 has dtype %s, want uint8 (|u1)", path, a.Descr)
	}
	if len(a.Shape) != 4 || a.Shape[1] != h || a.Shape[2] != w || a.Shape[3] != c || a.Shape[0] < 2 {
		return nil, fmt.Errorf("%s: arr_0 has shape %v, want (N>=2, %d, %d, %d)", path, a.Shape, h, w, c)
	}
	n := a.Shape[0]
	out := make([]float32, n*c*h*w)
	for i := range n {
		for y := range h {
			for x := range w {
				for ch := range c {
					v := a.Values[((i*h+y)*w+x)*c+ch]
					out[((i*c+ch)*h+y)*w+x] = float32(v)/127.5 - 1
				}
			}
		}
	}
	return out, nil
}

// writeDrift writes the drift report as JSON lines and names its largest departure on stderr.
func writeDrift(path string, d *eval.Drift, abar []float64, m2 float64, stderr io.Writer) error {
	rows, err := d.Rows(abar, m2)
	if err != nil {
		return err
	}
	var b bytes.Buffer
	worst := rows[0]
	for _, r := range rows {
		line, err := json.Marshal(r)
		if err != nil {
			return err
		}
		b.Write(append(line, '\n'))
		if math.Abs(r.Ratio-1) > math.Abs(worst.Ratio-1) {
			worst = r
		}
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "drift: energy / forward process's is furthest from 1 at t = %d: %.4f (%s)\n", worst.T, worst.Ratio, path)
	return nil
}

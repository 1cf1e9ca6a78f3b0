package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"slices"
	"time"

	"github.com/ddpm-go/ddpm/data"
	"github.com/ddpm-go/ddpm/engine"
	"github.com/ddpm-go/ddpm/eval"
	"github.com/ddpm-go/ddpm/generate"
	"github.com/ddpm-go/ddpm/imageio"
	"github.com/ddpm-go/ddpm/tensor"
)

// runEvalMemorization asks whether a model copies its training images (Carlini et al. 2023,
// "Extracting Training Data from Diffusion Models"; Somepalli et al. 2023, "Diffusion Art or
// Digital Forgery?"): a model trained on a few thousand images, as emoji are, can. It draws n
// samples as `ddpm eval fid` does (same sampler, class-balanced and guidance flags, image i
// depending only on the seed and i), finds each one's nearest training images in pixel space and
// compares with the test images', which are new but in-distribution (eval.Memorization). One JSON
// line goes to stdout.
//
// A folder given to --data has no test split, so --test DIR names a folder of held-out images of
// the same kind; it also overrides a built-in's test split. --test-n test images (default as many
// as samples) are compared, enough for the reference quantiles at a fraction of the search.
func runEvalMemorization(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("eval memorization", stderr)
	var spec generate.SamplerSpec
	var eng engineFlags
	var class generate.ClassSpec
	ckpt := fs.String("ckpt", "", "run directory or weights file to sample (default: the shipped MNIST model)")
	dataSpec := fs.String("data", "mnist", "the model's training data: a built-in set (mnist, fashion, emoji, ...) or a folder of images")
	dataDir := fs.String("data-dir", "", "data cache directory (default ~/.cache/ddpm)")
	testDir := fs.String("test", "", "folder of held-out images as the reference (default: --data's test split; a folder has none)")
	n := fs.Int("n", 1000, "number of samples")
	testN := fs.Int("test-n", 0, "test images compared, picked by --seed (0: as many as --n, or all if fewer)")
	seed := fs.Uint64("seed", 0, "sampling seed")
	batch := fs.Int("batch", 256, "images per sampler call (results do not depend on it)")
	chunk := fs.Int("chunk", -1, "images per network call, aligned to global indices (-1: 0 on ref, 32 on dnnl)")
	balanced := fs.Bool("class-balanced", false, "sample a class-conditional model with image i of class i mod K, guided by --guidance")
	fs.Var(guidanceFlag{&class}, "guidance", fmt.Sprintf("with --class-balanced: classifier-free guidance scale s in [0, %d] (default %g)", generate.MaxGuidance, float64(generate.DefaultGuidance)))
	pairs := fs.String("pairs", "", "write the closest sample/training pairs as a PNG grid here (each sample above its nearest training image)")
	pairsN := fs.Int("pairs-n", 16, "pairs in the --pairs grid, closest first")
	addSamplerFlags(fs, &spec)
	addEngineFlags(fs, &eng, engineOpts{precision: "fp32", precisionHelp: "sampling precision: auto, fp32 or bf16", ema: true, noEMA: true})
	if err := parseFlagsOneLine(fs, args, stderr); err != nil {
		return err
	}
	if err := checkSpec(fs, spec); err != nil {
		return err
	}
	if err := atLeast(fs, map[string]int64{"n": 1, "batch": 1, "chunk": -1, "pairs-n": 1, "test-n": 0, "threads": 0}); err != nil {
		return err
	}
	if set := visited(fs); set["ema"] && set["no-ema"] {
		return fmt.Errorf("give --ema or --no-ema, not both")
	} else if set["guidance"] && !*balanced {
		return fmt.Errorf("--guidance needs --class-balanced")
	} else if set["pairs-n"] && *pairs == "" {
		return fmt.Errorf("--pairs-n needs --pairs FILE.png")
	}
	if class.Guidance != nil {
		if err := (generate.ClassSpec{Class: "0", Guidance: class.Guidance}).Validate([]string{"0"}); err != nil {
			return flagErr(err)
		}
	}

	// The model first: its shape is the shape a folder is read at, and a bad --ckpt costs nothing.
	be, err := engine.New(eng.engine, eng.precision, eng.threads)
	if err != nil {
		return err
	}
	defer engine.Close(be)
	m, err := generate.Load(*ckpt, be, eng.ema && !eng.noEMA)
	if err != nil {
		return err
	}
	c, h, w := m.Shape()
	train, err := data.Open(*dataSpec, *dataDir, data.Train, h, c)
	if err != nil {
		return fmt.Errorf("--data %s (read at the model's %dx%dx%d): %v", *dataSpec, c, h, w, err)
	}
	var test *data.Set
	if *testDir != "" {
		if _, err := data.Lookup(*testDir); err == nil {
			return fmt.Errorf("--test %s: want a folder of held-out images (a built-in set's test split is the default)", *testDir)
		}
		if test, err = data.Open(*testDir, "", data.Train, h, c); err != nil {
			return fmt.Errorf("--test %s: %v", *testDir, err)
		}
	} else if test, err = data.Open(*dataSpec, *dataDir, data.Test, h, c); err != nil {
		if _, lerr := data.Lookup(*dataSpec); lerr != nil {
			return fmt.Errorf("--data %s has no test split: give --test DIR, a folder of held-out images of the same kind", *dataSpec)
		}
		return fmt.Errorf("--data %s: %v", *dataSpec, err)
	}
	if train.C != c || train.H != h || train.W != w || test.C != c || test.H != h || test.W != w {
		return fmt.Errorf("--data: model %s makes %dx%dx%d images, the training images are %dx%dx%d and the test images %dx%dx%d",
			m.Source, c, h, w, train.C, train.H, train.W, test.C, test.H, test.W)
	}

	if *testN == 0 {
		*testN = *n
	}
	testImages := pickTest(test, *testN, *seed)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	samples, err := drawSamples(ctx, m, be, spec, generate.Job{N: *n, Seed: *seed, Batch: *batch, Chunk: *chunk}, *balanced, class, stderr)
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("interrupted")
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "nearest of %d samples and %d test images among %d training images\n", *n, len(testImages)/test.Size(), train.N)
	t0 := time.Now()
	rep, err := eval.Memorization(samples, train.Images, testImages, train.Size())
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "search took %.1fs\n", time.Since(t0).Seconds())
	out := struct {
		*eval.MemoReport
		Data   string   `json:"data"`
		TestOf string   `json:"test"`
		Source string   `json:"source"`
		Seed   uint64   `json:"seed"`
		Guid   *float64 `json:"guidance,omitempty"`
	}{rep, *dataSpec, test.Name, m.Source, *seed, nil}
	if *balanced {
		g := class.Scale()
		out.Guid = &g
	}
	if *testDir != "" {
		out.TestOf = *testDir
	}
	b, err := json.Marshal(out)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, string(b))
	if *pairs == "" {
		return nil
	}
	return writePairs(*pairs, rep, samples, train, *pairsN)
}

// pickTest returns n test images (all if n >= N) chosen by seed without replacement, in their
// order: the reference needs about as many images as there are samples, and searching all 10,000
// MNIST test images among 60,000 training ones would take ten times as long as the samples.
func pickTest(s *data.Set, n int, seed uint64) []float32 {
	if n >= s.N {
		return s.Images
	}
	pick := rand.New(rand.NewPCG(seed, 0x6d656d6f)).Perm(s.N)[:n]
	slices.Sort(pick)
	out := make([]float32, 0, n*s.Size())
	for _, i := range pick {
		out = append(out, s.Image(i)...)
	}
	return out
}

// visited is the set of flags given on the command line.
func visited(fs *flag.FlagSet) map[string]bool {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	return set
}

// drawSamples samples job.N images from m as `ddpm eval fid` does (class i mod K for a balanced
// job), quantised to the 8-bit values a saved image holds, as [-1, 1] floats.
func drawSamples(ctx context.Context, m *generate.Model, be tensor.Backend, spec generate.SamplerSpec, job generate.Job, balanced bool, class generate.ClassSpec, log io.Writer) ([]float32, error) {
	// As eval fid: a distilled student without --steps is sampled on its own grid.
	sampler, sp, warn, err := m.Sampler(spec)
	if err != nil {
		return nil, flagErr(err)
	}
	if warn != "" {
		fmt.Fprintln(log, warn)
	}
	what := ""
	if balanced {
		k := len(m.Classes)
		if k == 0 {
			return nil, fmt.Errorf("--class-balanced: model %s is unconditional", m.Source)
		}
		job.Labels = make([]int, job.N)
		for i := range job.Labels {
			job.Labels[i] = i % k
		}
		job.Guidance = class.Scale()
		what = fmt.Sprintf(", class i mod %d, guidance s = %g", k, job.Guidance)
	}
	if job.Chunk < 0 {
		job.Chunk = generate.DefaultChunk(be)
	}
	if err := m.CheckMemory(job); err != nil {
		return nil, err
	}
	bar := generate.NewProgress(log, job.NumBatches(), sp.Steps)
	job.Step = bar.Step
	fmt.Fprintf(log, "sampling %d images%s from %s with %s on %s\n", job.N, what, m.Source, sp, engine.Describe(be))
	x, err := m.Sample(ctx, sampler, job)
	bar.Finish()
	if err != nil {
		return nil, err
	}
	u := imageio.ToUint8(nil, x)
	out := make([]float32, len(u))
	for i, v := range u {
		out[i] = float32(v)/127.5 - 1
	}
	return out, nil
}

// writePairs draws the k samples nearest a training image, nearest first, in bands of up to 8
// columns: a row of samples above a row of the training images they are nearest.
func writePairs(path string, rep *eval.MemoReport, samples []float32, train *data.Set, k int) error {
	k = min(k, rep.N)
	order := make([]int, rep.N)
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		return cmp.Compare(rep.Nearest[a], rep.Nearest[b])
	})
	dim := train.Size()
	cols := min(8, k)
	bands := (k + cols - 1) / cols
	px := make([]uint8, 2*bands*cols*dim)
	for i := range px {
		px[i] = 255 // blank cells of the last band are white, as the grid's background
	}
	for p, s := range order[:k] {
		band, col := p/cols, p%cols
		top, bottom := (2*band*cols+col)*dim, ((2*band+1)*cols+col)*dim
		imageio.ToUint8(px[top:top], samples[s*dim:(s+1)*dim])
		imageio.ToUint8(px[bottom:bottom], train.Image(rep.NearestIndex[s]))
	}
	return imageio.WriteGridBytes(path, px, 2*bands*cols, train.C, train.H, train.W, cols)
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"

	"github.com/ddpm-go/ddpm/eval/fid"
	"github.com/ddpm-go/ddpm/generate"
	"github.com/ddpm-go/ddpm/internal/sysmem"
	"github.com/ddpm-go/ddpm/schedule"
)

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
	res, err := fid.Run(ctx, f.options(), stderr)
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

// options are the library's options the flags ask for.
func (f *fidFlags) options() fid.Options {
	return fid.Options{Data: f.dataName, DataDir: f.dataDir, Classifier: f.classifierPath, NPZ: f.npz, LimitN: f.set["n"],
		Ckpt: f.ckpt, EMA: f.ema && !f.noEMA, Drift: f.drift, Spec: f.spec, N: f.n, Batch: f.batch, Chunk: f.chunk,
		Seed: f.seed, Engine: f.engine, Precision: f.precision, Threads: f.threads, RefN: f.refN,
		KIDSubsets: f.kidSubsets, KIDSize: f.kidSize, Threshold: f.threshold}
}

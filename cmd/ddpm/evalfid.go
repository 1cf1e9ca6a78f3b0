package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"

	"github.com/ddpm-go/ddpm/eval/fid"
)

func runEvalFID(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("eval fid", stderr)
	var o fid.Options
	var eng engineFlags
	fs.StringVar(&o.Ckpt, "ckpt", "", "run directory or weights file to sample (default: the shipped MNIST model)")
	fs.StringVar(&o.Drift, "drift", "", "also write, per step, the samples' mean energy against the forward process's to this JSON-lines file (exposure bias)")
	fs.StringVar(&o.NPZ, "npz", "", "score these images instead of sampling: uint8 (N,H,W,C) arr_0, as ddpm sample --npz writes")
	fs.StringVar(&o.Data, "data", "mnist", "reference data and classifier: mnist or fashion")
	fs.StringVar(&o.DataDir, "data-dir", "", "data cache directory (default ~/.cache/ddpm)")
	fs.StringVar(&o.Classifier, "classifier", "", "classifier weights (default: the shipped one for --data)")
	addSamplerFlags(fs, &o.Spec)
	fs.IntVar(&o.N, "n", 10000, "number of samples to score (with --npz: the first n, default all)")
	fs.Uint64Var(&o.Seed, "seed", 0, "sampling seed (also picks the training images of the floor)")
	fs.IntVar(&o.Batch, "batch", 256, "images per sampler call (results do not depend on it)")
	fs.IntVar(&o.Chunk, "chunk", -1, "images per network call, aligned to global indices (-1: 0 on ref, 32 on dnnl)")
	addEngineFlags(fs, &eng, engineOpts{precision: "fp32", precisionHelp: "sampling precision: auto, fp32 or bf16 (the classifier always runs fp32)",
		ema: true, noEMA: true, noEMAHelp: "use the raw weights of a run or checkpoint"})
	fs.IntVar(&o.RefN, "ref-n", 0, "test images the reference statistics are fitted to (0: all 10000)")
	fs.IntVar(&o.KIDSubsets, "kid-subsets", 100, "KID subsets")
	fs.IntVar(&o.KIDSize, "kid-subset-size", 1000, "KID subset size (capped at n)")
	fs.Float64Var(&o.Threshold, "confidence", 0.9, "top softmax probability that counts as a confident prediction")
	if err := parseFlagsOneLine(fs, args, stderr); err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	o.Engine, o.Precision, o.Threads, o.EMA, o.LimitN = eng.engine, eng.precision, eng.threads, eng.ema && !eng.noEMA, set["n"]
	if err := checkSpec(fs, o.Spec); err != nil {
		return err
	}
	if err := checkFIDFlags(o, set); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	res, err := fid.Run(ctx, o, stderr)
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

// checkFIDFlags refuses flags that contradict each other, then what fid.Options.Validate refuses.
func checkFIDFlags(o fid.Options, set map[string]bool) error {
	if set["ema"] && set["no-ema"] {
		return fmt.Errorf("give --ema or --no-ema, not both")
	}
	if o.NPZ != "" {
		for _, name := range []string{"ckpt", "sampler", "variance", "steps", "eta", "sigma-hat", "spacing", "clip", "eps-scale", "drift", "batch", "chunk", "ema", "no-ema", "precision"} {
			if set[name] {
				return fmt.Errorf("--%s applies to sampling; --npz scores existing images", name)
			}
		}
	}
	return o.Validate()
}

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
	"path/filepath"
	"strconv"
	"strings"

	"github.com/ddpm-go/ddpm/eval/fid"
	"github.com/ddpm-go/ddpm/generate"
	"github.com/ddpm-go/ddpm/mpi"
	"github.com/ddpm-go/ddpm/plot"
)

func runEvalFID(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("eval fid", stderr)
	o, parse := addFIDFlags(fs, 10000)
	fs.BoolVar(&o.ClassBalanced, "class-balanced", false, "sample a class-conditional model with image i of class i mod K, guided by --guidance")
	fs.BoolVar(&o.ClassPrior, "class-prior", false, "with --class-balanced: classes in the test split's proportions instead of equal shares (unbalanced data such as emoji)")
	fs.Var(guidanceFlag{&o.class}, "guidance", fmt.Sprintf("with --class-balanced: classifier-free guidance scale s in [0, %d] (default %g)", generate.MaxGuidance, float64(generate.DefaultGuidance)))
	if err := parse(args); err != nil {
		return err
	}
	comm, err := joinMPI()
	if err != nil {
		return err
	}
	return leaveMPI("eval fid", comm, evalFID(o.Options, comm, stdout, stderr), stderr)
}

// evalFID is `ddpm eval fid` on one rank of comm: every rank samples its part of the images and
// rank 0 gathers them, scores them and alone prints the JSON line (fid.Options.Comm).
func evalFID(o fid.Options, comm mpi.Comm, stdout, stderr io.Writer) error {
	if comm.Rank() != 0 {
		stderr = io.Discard
	}
	o.Comm = comm
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	res, err := fid.Run(ctx, o, stderr)
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("interrupted")
	}
	if err != nil || res == nil { // no result: a rank other than 0
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

// fidOptions are fid.Options with what the flags collect on the way.
type fidOptions struct {
	fid.Options
	class generate.ClassSpec // where --guidance lands
}

// addFIDFlags registers the flags of `ddpm eval fid` that `ddpm eval guidance` shares (the model,
// the data, the sampler, n, the engine and the scores), defaulting to n samples; parse parses and
// checks them.
func addFIDFlags(fs *flag.FlagSet, n int) (*fidOptions, func(args []string) error) {
	o := &fidOptions{}
	var eng engineFlags
	fs.StringVar(&o.Ckpt, "ckpt", "", "run directory or weights file to sample (default: the shipped MNIST model)")
	fs.StringVar(&o.Drift, "drift", "", "also write, per step, the samples' mean energy against the forward process's to this JSON-lines file (exposure bias)")
	fs.StringVar(&o.NPZ, "npz", "", "score these images instead of sampling: uint8 (N,H,W,C) arr_0, as ddpm sample --npz writes")
	fs.StringVar(&o.Data, "data", "mnist", "reference data and classifier: mnist, fashion or emoji")
	fs.StringVar(&o.DataDir, "data-dir", "", "data cache directory (default ~/.cache/ddpm)")
	fs.StringVar(&o.Classifier, "classifier", "", "classifier weights (default: the shipped one for --data)")
	addSamplerFlags(fs, &o.Spec)
	fs.IntVar(&o.N, "n", n, "number of samples to score (with --npz: the first n, default all)")
	fs.Uint64Var(&o.Seed, "seed", 0, "sampling seed (also picks the training images of the floor)")
	fs.IntVar(&o.Batch, "batch", 256, "images per sampler call (results do not depend on it)")
	fs.IntVar(&o.Chunk, "chunk", -1, "images per network call, aligned to global indices (-1: 0 on ref, 32 on dnnl)")
	addEngineFlags(fs, &eng, engineOpts{precision: "fp32", precisionHelp: "sampling precision: auto, fp32 or bf16 (the classifier always runs fp32)",
		ema: true, noEMA: true, noEMAHelp: "use the raw weights of a run or checkpoint"})
	fs.IntVar(&o.RefN, "ref-n", 0, "test images the reference statistics are fitted to (0: all 10000)")
	fs.IntVar(&o.KIDSubsets, "kid-subsets", 100, "KID subsets")
	fs.IntVar(&o.KIDSize, "kid-subset-size", 1000, "KID subset size (capped at n)")
	fs.Float64Var(&o.Threshold, "confidence", 0.9, "top softmax probability that counts as a confident prediction")
	parse := func(args []string) error {
		if err := parseFlagsOneLine(fs, args, fs.Output()); err != nil {
			return err
		}
		set := map[string]bool{}
		fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
		o.Engine, o.Precision, o.Threads, o.EMA, o.LimitN = eng.engine, eng.precision, eng.threads, eng.ema && !eng.noEMA, set["n"]
		o.Guidance = o.class.Guidance
		if err := checkSpec(fs, o.Spec); err != nil {
			return err
		}
		return checkFIDFlags(o.Options, set)
	}
	return o, parse
}

// runEvalGuidance is the classifier-free guidance sweep: class-balanced FID, accuracy and coverage
// per scale, as a table, JSON lines and the FID-accuracy plot.
func runEvalGuidance(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("eval guidance", stderr)
	o, parse := addFIDFlags(fs, 1000)
	scales := fs.String("scales", joinFloats(fid.GuidanceScales), "guidance scales s to measure, comma-separated")
	baseline := fs.String("baseline", "", "also score this unconditional model alike (same sampler, n and seed), as the table's last row")
	out := fs.String("out", "", "write guidance.jsonl, guidance.md and guidance.png into this directory")
	fs.BoolVar(&o.ClassPrior, "class-prior", false, "classes in the test split's proportions instead of equal shares (unbalanced data such as emoji)")
	// Every scale is scored class-balanced (fid.Guidance); say so before the flags are checked, so
	// that --class-prior, which needs it, is accepted.
	o.ClassBalanced = true
	if err := parse(args); err != nil {
		return err
	}
	if o.NPZ != "" {
		return fmt.Errorf("--npz: eval guidance samples a model")
	}
	ss, err := parseFloats(*scales)
	if err != nil {
		return fmt.Errorf("--scales %w", err)
	}
	for _, s := range ss {
		g := s
		if err := (generate.ClassSpec{Class: "0", Guidance: &g}).Validate([]string{"0"}); err != nil {
			return fmt.Errorf("--scales: %v", err)
		}
	}
	comm, err := joinMPI()
	if err != nil {
		return err
	}
	return leaveMPI("eval guidance", comm, evalGuidance(o.Options, ss, *baseline, *out, comm, stdout, stderr), stderr)
}

// evalGuidance is `ddpm eval guidance` on one rank of comm: every scale's (and the baseline's)
// scoring is collective (fid.Options.Comm) and rank 0 alone prints the table and writes out.
func evalGuidance(o fid.Options, ss []float64, baseline, out string, comm mpi.Comm, stdout, stderr io.Writer) error {
	root := comm.Rank() == 0
	if !root {
		stderr = io.Discard
	}
	o.Comm = comm
	if out != "" && root {
		if err := os.MkdirAll(out, 0o755); err != nil {
			return err
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	rs, err := fid.Guidance(ctx, o, ss, stderr)
	if err != nil {
		return err
	}
	var base *fid.Result
	if baseline != "" {
		bo := o
		bo.Ckpt, bo.ClassPrior = baseline, false
		if base, err = fid.Run(ctx, bo, stderr); err != nil {
			return fmt.Errorf("--baseline: %w", err)
		}
	}
	if !root {
		return nil
	}
	var md strings.Builder
	fid.GuidanceMarkdown(&md, rs, base)
	fmt.Fprint(stdout, md.String())
	if out == "" {
		return nil
	}
	var lines strings.Builder
	for _, r := range append(rs, base) {
		if r != nil {
			b, _ := json.Marshal(r)
			lines.Write(append(b, '\n'))
		}
	}
	if err := os.WriteFile(filepath.Join(out, "guidance.jsonl"), []byte(lines.String()), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(out, "guidance.md"), []byte(md.String()), 0o644); err != nil {
		return err
	}
	return plot.WriteFile(filepath.Join(out, "guidance.png"), func(w io.Writer) error { return fid.GuidancePlot(w, rs) })
}

// parseFloats reads a comma-separated list of finite numbers.
func parseFloats(s string) ([]float64, error) {
	var out []float64
	for _, part := range strings.Split(s, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(part), 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("%q: not a number", part)
		}
		out = append(out, v)
	}
	return out, nil
}

func joinFloats(v []float64) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = strconv.FormatFloat(x, 'g', -1, 64)
	}
	return strings.Join(s, ",")
}

package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"github.com/ddpm-go/ddpm/classifier"
	"github.com/ddpm-go/ddpm/engine"
	"github.com/ddpm-go/ddpm/eval/fid"
)

func init() {
	register(&command{name: "eval", summary: "sample quality: FID/KID with the project's classifiers, and training them", run: runEval})
}

// evalCommands are the subcommands of "ddpm eval".
var evalCommands = map[string]func(args []string, stdout, stderr io.Writer) error{
	"fid":              runEvalFID,
	"table":            runEvalTable,
	"guidance":         runEvalGuidance,
	"inpaint":          runEvalInpaint,
	"memorization":     runEvalMemorization,
	"train-classifier": runTrainClassifier,
	"classifier":       runClassifierAccuracy,
}

func runEval(args []string, stdout, stderr io.Writer) error {
	return subcommands(evalCommands, func(w io.Writer) {
		fmt.Fprintf(w, "usage: ddpm eval {%s} [flags]\n", strings.Join(slices.Sorted(maps.Keys(evalCommands)), "|"))
	}, args, stdout, stderr)
}

// classifierEngine are the engine flags of the classifier's commands: it always runs fp32, on one
// thread unless told otherwise.
var classifierEngine = engineOpts{engineHelp: "tensor engine: auto, dnnl or ref", precision: "-", threads: 1, threadsHelp: "engine threads (< 1 = all cores)"}

// runTrainClassifier trains the feature network of FID on MNIST or Fashion-MNIST and writes its
// weights with their provenance in the metadata.
func runTrainClassifier(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("eval train-classifier", stderr)
	dataName := fs.String("data", "mnist", "mnist, fashion or emoji (category labels)")
	dataDir := fs.String("data-dir", "", "data cache directory (default ~/.cache/ddpm)")
	out := fs.String("out", "", "write the weights (safetensors) here (required)")
	epochs := fs.Int("epochs", 3, "passes over the training set")
	batch := fs.Int("batch", 128, "batch size")
	lr := fs.Float64("lr", 2e-3, "peak AdamW learning rate (linear warmup, cosine decay to 0)")
	wd := fs.Float64("weight-decay", 0.01, "AdamW weight decay")
	warmup := fs.Int("warmup", 200, "warmup steps")
	shiftPx := fs.Int("shift", 2, "random translation augmentation, pixels each way")
	flip := fs.Bool("flip", false, "random horizontal flips (clothing; not for digits)")
	seed := fs.Uint64("seed", 1, "seed of the initial weights, data order and shifts")
	var eng engineFlags
	addEngineFlags(fs, &eng, classifierEngine)
	if err := parseFlagsOneLine(fs, args, stderr); err != nil {
		return err
	}
	if *out == "" {
		return fmt.Errorf("--out FILE.safetensors is required")
	}
	if *batch < 1 {
		return fmt.Errorf("--batch %d must be at least 1", *batch)
	}
	be, err := engine.New(eng.engine, "fp32", eng.threads)
	if err != nil {
		return err
	}
	defer engine.Close(be)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	opts := classifier.TrainOptions{Epochs: *epochs, Batch: *batch, LR: *lr, WeightDecay: *wd, Warmup: *warmup,
		Shift: *shiftPx, Flip: *flip, Seed: *seed, Log: stderr, LogEvery: 100}
	t, err := fid.TrainClassifier(ctx, be, *dataName, *dataDir, *out, opts, map[string]string{"command": "ddpm eval train-classifier " + strings.Join(args, " ")})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "classifier %s: test accuracy %.4f on %d images (%s, %s, %d epochs)\n", *out, t.Accuracy, t.TestN, engine.Describe(be), t.Wall, *epochs)
	return nil
}

// runClassifierAccuracy reports a saved classifier's test accuracy.
func runClassifierAccuracy(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("eval classifier", stderr)
	dataName := fs.String("data", "mnist", "mnist, fashion or emoji (category labels)")
	dataDir := fs.String("data-dir", "", "data cache directory (default ~/.cache/ddpm)")
	path := fs.String("classifier", "", "classifier weights (default: the shipped one for --data)")
	var eng engineFlags
	addEngineFlags(fs, &eng, classifierEngine)
	if err := parseFlagsOneLine(fs, args, stderr); err != nil {
		return err
	}
	be, err := engine.New(eng.engine, "fp32", eng.threads)
	if err != nil {
		return err
	}
	defer engine.Close(be)
	acc, src, n, err := fid.ClassifierAccuracy(context.Background(), be, *path, *dataName, *dataDir)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "classifier %s: test accuracy %.4f on %s (%d images)\n", src, acc, *dataName, n)
	return nil
}

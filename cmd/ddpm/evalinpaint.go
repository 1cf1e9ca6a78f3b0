package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"

	"github.com/ddpm-go/ddpm/eval/inpaint"
	"github.com/ddpm-go/ddpm/generate"
)

// runEvalInpaint completes test digits with part of them hidden, by replacement and by RePaint,
// and scores the completions with the classifier against the true labels and the baselines.
func runEvalInpaint(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("eval inpaint", stderr)
	var o inpaint.Options
	var eng engineFlags
	var replace generate.SamplerSpec
	var rp generate.InpaintSpec
	fs.StringVar(&o.Ckpt, "ckpt", "", "run directory or weights file (default: the shipped MNIST model)")
	fs.StringVar(&o.Data, "data", "mnist", "test images and classifier: mnist, fashion or emoji")
	fs.StringVar(&o.DataDir, "data-dir", "", "data cache directory (default ~/.cache/ddpm)")
	fs.StringVar(&o.Classifier, "classifier", "", "classifier weights (default: the shipped one for --data)")
	fs.IntVar(&o.N, "n", 200, "test images (the first n of the test set)")
	fs.Uint64Var(&o.Seed, "seed", 0, "seed of the completions and of the random boxes")
	masks := fs.String("masks", strings.Join(inpaint.Masks, ","), "hidden regions: bottom (lower half), box (a random square of half the side)")
	methods := fs.String("methods", "replace,repaint", "completions: replace (replacement on --sampler), repaint, and on a class-conditional model replace+class, repaint+class (told the true class, guided by --guidance)")
	var class generate.ClassSpec
	addSamplerFlags(fs, &replace)
	fs.Var(guidanceFlag{&class}, "guidance", fmt.Sprintf("guidance scale s of the +class methods (default %g)", float64(generate.DefaultGuidance)))
	fs.IntVar(&rp.Jumps, "jumps", 0, "RePaint: times each stretch is traversed (default 10)")
	fs.IntVar(&rp.JumpLength, "jump-length", 0, "RePaint: steps between jumps back (default 10)")
	repaintSteps := fs.Int("repaint-steps", 0, "RePaint: respaced steps (default 250)")
	out := fs.String("out", "", "write inpaint.jsonl, inpaint.md and grids (first 10 of each) into this directory")
	addEngineFlags(fs, &eng, engineOpts{ema: true, noEMA: true})
	if err := parseFlagsOneLine(fs, args, stderr); err != nil {
		return err
	}
	if err := checkSpec(fs, replace); err != nil {
		return err
	}
	if err := atLeast(fs, map[string]int64{"n": 1, "repaint-steps": 1, "jumps": 1, "jump-length": 1, "threads": 0}); err != nil {
		return err
	}
	o.Masks = strings.Split(*masks, ",")
	for _, m := range o.Masks {
		if !slices.Contains(inpaint.Masks, m) {
			return fmt.Errorf("--masks: unknown mask %q (want %s)", m, strings.Join(inpaint.Masks, ", "))
		}
	}
	scale := class.Scale()
	if err := (generate.ClassSpec{Class: "0", Guidance: &scale}).Validate([]string{"0"}); err != nil {
		return flagErr(err)
	}
	for _, name := range strings.Split(*methods, ",") {
		base, withClass := strings.CutSuffix(name, "+class")
		m := inpaint.Method{Name: name, Spec: replace}
		switch base {
		case "replace":
		case "repaint":
			m.Spec, m.Inpaint = generate.SamplerSpec{Steps: *repaintSteps}, rp
			m.Inpaint.RePaint = true
		default:
			return fmt.Errorf("--methods: unknown method %q (want replace, repaint, replace+class, repaint+class)", name)
		}
		if withClass {
			m.Guidance = &scale
		}
		o.Methods = append(o.Methods, m)
	}
	if o.Data != "mnist" && o.Data != "fashion" && o.Data != "emoji" {
		return fmt.Errorf("--data %q: want mnist, fashion or emoji", o.Data)
	}
	o.Engine, o.Precision, o.Threads, o.EMA = eng.engine, eng.precision, eng.threads, eng.ema && !eng.noEMA
	if *out != "" {
		if err := os.MkdirAll(*out, 0o755); err != nil {
			return err
		}
		o.Grid = filepath.Join(*out, "inpaint")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	rs, err := inpaint.Run(ctx, o, stderr)
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("interrupted")
	}
	if err != nil {
		return err
	}
	var md strings.Builder
	inpaint.Markdown(&md, rs, o.Masks)
	fmt.Fprint(stdout, md.String())
	if *out == "" {
		return nil
	}
	var lines strings.Builder
	for _, r := range rs {
		b, _ := json.Marshal(r)
		lines.Write(append(b, '\n'))
	}
	if err := os.WriteFile(filepath.Join(*out, "inpaint.jsonl"), []byte(lines.String()), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(*out, "inpaint.md"), []byte(md.String()), 0o644)
}

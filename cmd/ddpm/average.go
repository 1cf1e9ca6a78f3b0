package main

import (
	"fmt"
	"io"

	"github.com/ddpm-go/ddpm/train"
)

func init() {
	register(&command{name: "average", summary: "average the weights of training checkpoints into one model file", run: runAverage})
}

func runAverage(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("average", stderr)
	out := fs.String("out", "", "write the averaged model here (required; sample it with --ckpt)")
	raw := fs.Bool("raw", false, "average the raw weights instead of the EMA copies")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: ddpm average --out FILE.safetensors [--raw] RUNDIR/checkpoints/step-N.safetensors ...")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" {
		return fmt.Errorf("--out is required")
	}
	if fs.NArg() == 0 {
		return fmt.Errorf("give the checkpoint files to average")
	}
	if err := train.AverageWeights(*out, fs.Args(), !*raw); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s: the mean of %d checkpoints\n", *out, fs.NArg())
	return nil
}

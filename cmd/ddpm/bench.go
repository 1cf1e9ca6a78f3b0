package main

import (
	"encoding/json"
	"fmt"
	"io"
	"runtime"

	"github.com/ddpm-go/ddpm/engine"
	"github.com/ddpm-go/ddpm/train"
)

func init() {
	register(&command{name: "bench", summary: "time UNet-S training and sampling like the PyTorch UNet-S in bench/; one JSON line", run: runBench})
}

func runBench(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench", stderr)
	var eng engineFlags
	var o train.BenchOptions
	addEngineFlags(fs, &eng, engineOpts{})
	fs.StringVar(&o.Model, "model", "unet-s", "UNet config: a built-in name or a JSON file")
	fs.IntVar(&o.Batch, "batch", 128, "training batch size")
	fs.IntVar(&o.SampleBatch, "sample-batch", 256, "batch of the sampling forward pass")
	fs.IntVar(&o.Steps, "steps", 10, "timed training steps (after 3 warmup steps)")
	fs.IntVar(&o.SampleReps, "sample-reps", 5, "timed sampling forwards (after 2 warmup)")
	if err := parseFlagsOneLine(fs, args, stderr); err != nil {
		return err
	}
	if o.Batch < 1 || o.SampleBatch < 1 || o.Steps < 1 || o.SampleReps < 1 || eng.threads < 0 {
		return fmt.Errorf("--batch, --sample-batch, --steps and --sample-reps must be positive, --threads >= 0")
	}
	if o.Threads = eng.threads; o.Threads == 0 {
		o.Threads = runtime.NumCPU()
	}
	be, err := eng.backend(o.Threads)
	if err != nil {
		return err
	}
	defer engine.Close(be)
	res, err := train.Bench(be, o)
	if err != nil {
		return err
	}
	line, err := json.Marshal(res)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, string(line))
	return err
}

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"

	"github.com/ddpm-go/ddpm/engine"
	"github.com/ddpm-go/ddpm/mpi"
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
	project := fs.String("project", "", "also write to this file the Markdown table of data-parallel training projected to 4, 16 and 64 such machines on 10 and 25 GbE (ring allreduce of the fp32 gradients, docs/distributed.md)")
	perNode := fs.Int("per-node", 0, "images per node per step in the --project table (0: --batch)")
	if err := parseFlagsOneLine(fs, args, stderr); err != nil {
		return err
	}
	if o.Batch < 1 || o.SampleBatch < 1 || o.Steps < 1 || o.SampleReps < 1 || eng.threads < 0 || *perNode < 0 {
		return fmt.Errorf("--batch, --sample-batch, --steps and --sample-reps must be positive, --threads and --per-node >= 0")
	}
	if *perNode == 0 {
		*perNode = o.Batch
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
	if _, err := fmt.Fprintln(stdout, string(line)); err != nil {
		return err
	}
	if *project == "" {
		return nil
	}
	tab, err := mpi.ProjectionTable(res.TrainImgS, 4*float64(res.Params), []int{4, 16, 64}, mpi.Ethernet, *perNode, 0.9)
	if err != nil {
		return err
	}
	head := fmt.Sprintf("Model %s: %d parameters, %.2f MB of fp32 gradients per step. One node = %s with %d thread(s), %s %s: %.1f img/s training (measured); %d images per node per step.\n\n",
		o.Model, res.Params, 4*float64(res.Params)/1e6, res.CPU, res.Threads, res.Engine, res.Precision, res.TrainImgS, *perNode)
	return os.WriteFile(*project, []byte(head+tab), 0o644)
}

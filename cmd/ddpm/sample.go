package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"time"

	"github.com/ddpm-go/ddpm/engine"
	"github.com/ddpm-go/ddpm/generate"
	"github.com/ddpm-go/ddpm/mpi"
)

func init() {
	register(&command{name: "sample", summary: "draw images from a trained model (DDPM, DDIM, ...) as a grid, PNGs or .npz; animate with --gif", run: runSample})
}

// sampleFlags are the flags of `ddpm sample`, kept together so validation can see all of them.
type sampleFlags struct {
	ckpt                   string
	spec                   generate.SamplerSpec
	class                  generate.ClassSpec
	n, start, batch, chunk int
	seed                   uint64
	initPath               string
	eng                    engineFlags
	out                    generate.Outputs
	set                    map[string]bool
}

func parseSampleFlags(args []string, stderr io.Writer) (*sampleFlags, error) {
	fs := newFlagSet("sample", stderr)
	f := &sampleFlags{set: map[string]bool{}}
	fs.StringVar(&f.ckpt, "ckpt", "", "run directory or weights file (default: the shipped MNIST model)")
	addSamplerFlags(fs, &f.spec)
	addClassFlags(fs, &f.class)
	fs.IntVar(&f.n, "n", 64, "number of images (default with --class all: 8 per class)")
	fs.Uint64Var(&f.seed, "seed", 0, "random seed; image i depends only on it and its index")
	fs.IntVar(&f.start, "start", 0, "global index of the first image (to split a job across processes)")
	fs.IntVar(&f.batch, "batch", 64, "images per sampler call (memory; results do not depend on it)")
	fs.IntVar(&f.chunk, "chunk", -1, "images per network call, aligned to global indices (-1: 0 on the ref engine, 32 on dnnl; keep it fixed across split jobs)")
	fs.StringVar(&f.initPath, "init", "", "start from this x_T: a float32/float64 .npy of shape (N,C,H,W) or (N,C*H*W); row i is image start+i")
	addEngineFlags(fs, &f.eng, engineOpts{ema: true, noEMA: true, threadsHelp: "threads (0: all cores); results do not depend on it"})
	fs.StringVar(&f.out.Grid, "grid", "", "write the images as one PNG grid here")
	fs.IntVar(&f.out.Cols, "cols", 0, "grid columns (default: ceil(sqrt(n)))")
	fs.StringVar(&f.out.Dir, "out-dir", "", "write one PNG per image here, named by global index (000000.png, ...)")
	fs.StringVar(&f.out.NPZ, "npz", "", "write the images as uint8 (N,H,W,C) under arr_0 in this .npz")
	fs.StringVar(&f.out.GIF, "gif", "", "animate the reverse process (x_t beside the predicted x0) of the first images")
	fs.IntVar(&f.out.GIFN, "gif-n", 4, "images in the --gif (at most 256)")
	fs.IntVar(&f.out.GIFEvery, "gif-every", 0, "steps between --gif frames (0: about 40 frames)")
	if err := parseFlagsOneLine(fs, args, stderr); err != nil {
		return nil, err
	}
	fs.Visit(func(fl *flag.Flag) { f.set[fl.Name] = true })
	if err := checkSpec(fs, f.spec); err != nil {
		return nil, err
	}
	if err := atLeast(fs, map[string]int64{"steps": 1, "n": 1, "start": 0, "batch": 1, "chunk": -1, "threads": 0, "cols": 0, "gif-n": 1, "gif-every": 0}); err != nil {
		return nil, err
	}
	return f, f.validate()
}

func runSample(args []string, stdout, stderr io.Writer) error {
	f, err := parseSampleFlags(args, stderr)
	if err != nil {
		return err
	}
	comm, err := joinMPI()
	if err != nil {
		return err
	}
	return leaveMPI("sample", comm, sample(f, comm, stdout, stderr), stderr)
}

// sample is `ddpm sample` on one rank of comm: each rank draws its part of the job and rank 0
// gathers the images and alone writes the outputs (sampleSharded).
func sample(f *sampleFlags, comm mpi.Comm, stdout, stderr io.Writer) error {
	root := comm.Rank() == 0
	if comm.Size() > 1 && f.out.GIF != "" {
		return fmt.Errorf("--gif records the reverse process in one process; run it without mpirun")
	}
	if !root {
		stderr = io.Discard
	}
	m, be, done, err := f.eng.load(f.ckpt)
	if err != nil {
		return err
	}
	defer done()
	sampler, spec, warn, err := m.Sampler(f.spec)
	if err != nil {
		return err
	}
	if warn != "" {
		fmt.Fprintln(stderr, warn)
	}
	if err := f.class.Validate(m.Classes); err != nil {
		return flagErr(err)
	}
	if f.class.Class == "all" {
		f.allClasses(len(m.Classes))
	}
	c, h, w := m.Shape()
	job := generate.Job{N: f.n, Start: f.start, Seed: f.seed, Batch: f.batch, Chunk: f.chunk, Guidance: f.class.Scale()}
	if job.Chunk < 0 {
		job.Chunk = generate.DefaultChunk(be)
	}
	if f.initPath != "" {
		if job.XT, job.N, err = generate.ReadInit(f.initPath, c, h, w); err != nil {
			return fmt.Errorf("--init %w", err)
		}
		if f.set["n"] && f.n != job.N {
			return fmt.Errorf("--n %d but --init %s holds %d images", f.n, f.initPath, job.N)
		}
	}
	if job.Labels, err = f.class.Labels(m.Classes, job.Start, job.N, f.out.Cols); err != nil {
		return flagErr(err)
	}
	part := shardJob(job, comm.Rank(), comm.Size(), m.Dim())
	bar := generate.NewProgress(stderr, part.NumBatches(), spec.Steps)
	job.Step = bar.Step
	// Every check that can refuse the job comes before its header, so a refusal is one line.
	if root {
		if err := f.out.Open(m, &job); err != nil {
			return err
		}
		defer f.out.Abort()
	} else if err := m.CheckMemory(part); err != nil {
		return err
	}

	what := ""
	if m.Classes != nil {
		what = ", " + f.class.Describe()
	}
	fmt.Fprintf(stderr, "sampling %d images (%d..%d, seed %d%s) of %dx%dx%d from %s (%s weights, %s, T=%d, %s) with %s on %s\n",
		job.N, job.Start, job.Start+job.N-1, job.Seed, what, c, h, w, m.Source, map[bool]string{true: "EMA", false: "raw"}[m.EMA],
		m.Schedule.Name, m.Schedule.T, m.Prediction, spec, engine.Explain(be, f.eng.precision))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	t0 := time.Now()
	if comm.Size() > 1 {
		err = sampleSharded(ctx, m, sampler, job, comm, bar.Step, f.out.EmitBytes)
	} else {
		_, err = m.Sample(ctx, sampler, job)
	}
	bar.Finish()
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("interrupted; nothing written")
	}
	if err != nil {
		return err
	}
	if !root {
		return nil
	}
	secs := time.Since(t0).Seconds()
	fmt.Fprintf(stderr, "%d images in %.1f s (%.2f img/s)\n", job.N, secs, float64(job.N)/secs)
	wrote, err := f.out.Close()
	for _, w := range wrote {
		fmt.Fprintf(stdout, "wrote %s\n", w)
	}
	return err
}

// allClasses sets the grid for --class all: --cols images per class (default 8), one row per
// class, and --n to fill the rows unless given.
func (f *sampleFlags) allClasses(k int) {
	if f.out.Cols == 0 {
		f.out.Cols = 8
	}
	if !f.set["n"] {
		f.n = k * f.out.Cols
	}
}

func (f *sampleFlags) validate() error {
	if f.set["ema"] && f.set["no-ema"] {
		return fmt.Errorf("give --ema or --no-ema, not both")
	}
	return f.out.Check(f.start, f.n)
}

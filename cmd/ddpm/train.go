package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/ddpm-go/ddpm/generate"
	"github.com/ddpm-go/ddpm/train"
)

func init() {
	register(&command{name: "train", summary: "train a diffusion UNet on images (checkpoints, resume, grids, metrics)", run: runTrain})
}

func runTrain(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("train", stderr)
	flags := train.Default()
	flags.BindFlags(fs)
	preset := fs.String("preset", "", "start from a preset: paper-mnist (the DDPM paper's linear T=1000, eps, lr 2e-4; batch 512) or default")
	configPath := fs.String("config", "", "JSON file of settings (keys are these flag names); flags override it")
	resume := fs.String("resume", "", "continue the run in this directory from its latest checkpoint")
	if err := parseFlagsOneLine(fs, args, stderr); err != nil {
		return err
	}
	var set []string
	fs.Visit(func(f *flag.Flag) {
		if f.Name != "preset" && f.Name != "config" && f.Name != "resume" {
			set = append(set, f.Name)
		}
	})
	var cfg train.Config
	var err error
	if *resume != "" {
		if *preset != "" || *configPath != "" {
			return fmt.Errorf("--resume takes the run's own config.json; drop --preset and --config")
		}
		cfg, err = train.ResumeConfig(*resume, flags, set)
	} else {
		cfg, err = train.Resolve(*preset, *configPath, flags, set)
	}
	if err != nil {
		return err
	}
	// A run file (--config, or a resumed run's config.json) sets what the flags would, past
	// checkFlags: the shared bounds apply to the resolved values too.
	for _, c := range []struct {
		name string
		v    int
	}{{"threads", cfg.Threads}, {"timesteps", cfg.Timesteps}} {
		if err := checkCount(c.name, c.v); err != nil {
			return err
		}
	}
	if err := train.CheckMemory(cfg); err != nil {
		return err
	}
	comm, err := joinMPI()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := train.Run(ctx, cfg, train.Options{Resume: *resume != "", Log: stderr, Terminal: generate.IsTerminal(stderr), Comm: comm})
	if err = leaveMPI("train", comm, err, stderr); err != nil {
		if errors.Is(err, train.ErrInterrupted) {
			fmt.Fprintln(stderr) // end the progress line
		}
		return err
	}
	if comm.Rank() != 0 {
		return nil
	}
	fmt.Fprintf(stdout, "trained %s to step %d/%d on %s: loss %.5f, %.1f img/s, wall %s\ncheckpoint %s\ngrid %s\n",
		cfg.Out, res.Step, res.Steps, res.Backend, res.Loss, res.ImgPerSec, res.Wall.Round(1e9), res.Checkpoint, res.Grid)
	return nil
}

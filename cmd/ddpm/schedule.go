package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/ddpm-go/ddpm/plot"
	"github.com/ddpm-go/ddpm/schedule"
)

func init() {
	register(&command{name: "schedule", summary: "print a beta schedule as CSV (t,beta,alpha_bar,...)", run: runSchedule})
}

// parseFlagsOneLine parses args with fs and rejects positional arguments. Parse errors come back as an
// error (one line from main) rather than the flag package's message plus usage; -h still prints the
// flags.
func parseFlagsOneLine(fs *flag.FlagSet, args []string, stderr io.Writer) error {
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		fs.SetOutput(stderr)
		fmt.Fprintf(stderr, "usage of %s:\n", fs.Name())
		fs.PrintDefaults()
		return err
	}
	if err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return checkFlags(fs)
}

func runSchedule(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("schedule", stderr)
	name := fs.String("schedule", "linear", "linear, cosine, scaled-linear or sigmoid")
	T := fs.Int("timesteps", 1000, "number of diffusion steps T (1 to 100000)")
	zero := fs.Bool("zero-snr", false, "rescale so alpha_bar[T-1] = 0 (Lin et al. 2023)")
	plotPath := fs.String("plot", "", "also draw alpha_bar and beta against t to this PNG")
	if err := parseFlagsOneLine(fs, args, stderr); err != nil {
		return err
	}
	s, err := schedule.New(*name, *T, *zero)
	if err != nil {
		return err
	}
	if err := s.WriteCSV(stdout); err != nil {
		return err
	}
	if *plotPath == "" {
		return nil
	}
	ts := make([]float64, s.T)
	for t := range ts {
		ts[t] = float64(t)
	}
	title := fmt.Sprintf("%s schedule, T=%d", s.Name, s.T)
	if s.ZeroSNR {
		title += ", zero SNR"
	}
	return plot.WriteFile(*plotPath, func(w io.Writer) error {
		return plot.Lines(w, plot.Options{Title: title, XLabel: "t", YLabel: "value", YMin: 0, YMax: 1},
			plot.Series{Name: "alpha_bar", X: ts, Y: s.AlphaBar}, plot.Series{Name: "beta", X: ts, Y: s.Betas})
	})
}

package main

import (
	"bytes"
	"fmt"
	"io"
	"os"

	"github.com/ddpm-go/ddpm/eval/fid"
	"github.com/ddpm-go/ddpm/internal/safeio"
	"github.com/ddpm-go/ddpm/plot"
)

// runEvalTable turns the JSON lines of several `ddpm eval fid` runs into the markdown table of the
// DDIM paper's Table 1 layout and a plot of FID against steps, one line per setting.
func runEvalTable(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("eval table", stderr)
	in := fs.String("in", "", "JSON lines of ddpm eval fid (required; - for stdin)")
	plotPath := fs.String("plot", "", "also draw FID against steps (log scale) to this PNG")
	onlyN := fs.Int("n", 0, "keep only the results at this sample count (0: all; a setting scored at several n shows its largest)")
	if err := parseFlagsOneLine(fs, args, stderr); err != nil {
		return err
	}
	if *in == "" {
		return fmt.Errorf("--in FILE.jsonl is required")
	}
	if *onlyN < 0 {
		return fmt.Errorf("--n %d: want >= 0", *onlyN)
	}
	var r io.Reader = os.Stdin
	if *in != "-" {
		b, err := safeio.ReadFile(*in, 256<<20)
		if err != nil {
			return err
		}
		r = bytes.NewReader(b)
	}
	t, err := fid.ReadTable(r, *in, *onlyN)
	if err != nil {
		return err
	}
	t.Markdown(stdout)
	if *plotPath == "" {
		return nil
	}
	return plot.WriteFile(*plotPath, func(w io.Writer) error {
		left, err := t.Plot(w)
		if left > 0 {
			fmt.Fprintf(stderr, "plot: left out %d cell(s) not at n = %d (draw them with --n)\n", left, t.Usual)
		}
		return err
	})
}

package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/ddpm-go/ddpm/internal/safeio"
	"github.com/ddpm-go/ddpm/plot"
)

// runEvalTable turns the JSON lines of several `ddpm eval fid` runs into the markdown table of the
// DDIM paper's Table 1 layout (one row per sampler setting, one column per step count) and a plot
// of FID against steps, one line per setting. FID is biased upwards at small n, so cells are only
// comparable at equal n: --n keeps one sample size, and otherwise a cell scored at another n than
// most of the table says so.
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
	type cell struct {
		fid, kid, kidStd float64
		n                int
	}
	rows := map[string]map[int]cell{}
	floors := map[int][2]float64{}
	stepSet := map[int]bool{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var res fidResult
		if err := json.Unmarshal(sc.Bytes(), &res); err != nil {
			return fmt.Errorf("%s line %d: %w", *in, line, err)
		}
		name, steps, err := splitSampler(res.Sampler)
		if err != nil {
			return fmt.Errorf("%s line %d: %w", *in, line, err)
		}
		if *onlyN != 0 && res.N != *onlyN {
			continue
		}
		if rows[name] == nil {
			rows[name] = map[int]cell{}
		}
		if old, ok := rows[name][steps]; ok && old.n > res.N {
			continue
		}
		rows[name][steps] = cell{res.FID, res.KID, res.KIDStd, res.N}
		stepSet[steps] = true
		floors[res.N] = [2]float64{res.Floor, res.KIDFloor}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	if len(rows) == 0 {
		if *onlyN != 0 {
			return fmt.Errorf("%s: no results at n = %d", *in, *onlyN)
		}
		return fmt.Errorf("%s: no results", *in)
	}
	// The usual n of the table: cells at any other n are marked.
	count := map[int]int{}
	for _, r := range rows {
		for _, c := range r {
			count[c.n]++
		}
	}
	usual := 0
	for n, k := range count {
		if k > count[usual] || k == count[usual] && n > usual {
			usual = n
		}
	}
	var steps []int
	for s := range stepSet {
		steps = append(steps, s)
	}
	sort.Ints(steps)
	var names []string
	for n := range rows {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprint(stdout, "| sampler |")
	for _, s := range steps {
		fmt.Fprintf(stdout, " S=%d |", s)
	}
	fmt.Fprint(stdout, "\n|---|")
	for range steps {
		fmt.Fprint(stdout, "---|")
	}
	fmt.Fprintln(stdout)
	var series []plot.Series
	offN := 0
	for _, n := range names {
		fmt.Fprintf(stdout, "| %s |", n)
		var xs, ys []float64
		for _, s := range steps {
			c, ok := rows[n][s]
			if !ok {
				fmt.Fprint(stdout, " |")
				continue
			}
			mark := ""
			if c.n != usual {
				mark = fmt.Sprintf(", n = %d", c.n)
			}
			fmt.Fprintf(stdout, " %.3g (KID %.3g ± %.2g%s) |", c.fid, c.kid, c.kidStd, mark)
			// A line through cells of different n would show the bias of small n as an effect
			// of the step count, so the plot keeps the table's usual n only.
			if c.n == usual {
				xs, ys = append(xs, float64(s)), append(ys, c.fid)
			} else {
				offN++
			}
		}
		fmt.Fprintln(stdout)
		if len(xs) > 0 {
			series = append(series, plot.Series{Name: n, X: xs, Y: ys})
		}
	}
	var ns []int
	for n := range floors {
		ns = append(ns, n)
	}
	sort.Ints(ns)
	for _, n := range ns {
		fmt.Fprintf(stdout, "\nfloor (training images vs test) at n = %d: FID %.3g, KID %.3g\n", n, floors[n][0], floors[n][1])
	}
	if *plotPath == "" {
		return nil
	}
	if offN > 0 {
		fmt.Fprintf(stderr, "plot: left out %d cell(s) not at n = %d (draw them with --n)\n", offN, usual)
	}
	f, err := os.Create(*plotPath)
	if err != nil {
		return err
	}
	title := fmt.Sprintf("FID against sampling steps (n = %d)", usual)
	if err := plot.Lines(f, plot.Options{Title: title, XLabel: "steps S", YLabel: "FID", LogX: true, LogY: true, Markers: true}, series...); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// splitSampler splits "ddim-50 eta=0 linspace" into ("ddim eta=0 linspace", 50).
func splitSampler(s string) (string, int, error) {
	head, rest, _ := strings.Cut(s, " ")
	i := strings.LastIndex(head, "-")
	if i < 0 {
		return "", 0, fmt.Errorf("sampler %q: no step count (a --npz result?)", s)
	}
	steps, err := strconv.Atoi(head[i+1:])
	if err != nil {
		return "", 0, fmt.Errorf("sampler %q: no step count", s)
	}
	return strings.TrimSpace(head[:i] + " " + rest), steps, nil
}

package fid

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/ddpm-go/ddpm/plot"
)

// Cell is one scored sampler setting at one step count.
type Cell struct {
	FID, KID, KIDStd float64
	N                int
}

// Table is results in the layout of the DDIM paper's Table 1: one row per sampler setting, one
// column per step count. FID is biased upwards at small n, so cells are only comparable at equal n:
// Usual is the n of most cells, and the rest are marked.
type Table struct {
	Rows   map[string]map[int]Cell // setting -> steps -> cell
	Steps  []int                   // the columns, ascending
	Floors map[int][2]float64      // n -> FID and KID of n training images
	Usual  int
}

// ReadTable reads the JSON lines of Run's results from r (named name in errors). onlyN > 0 keeps the
// results at that n; otherwise a setting scored at several n shows its largest.
func ReadTable(r io.Reader, name string, onlyN int) (*Table, error) {
	t := &Table{Rows: map[string]map[int]Cell{}, Floors: map[int][2]float64{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for line := 1; sc.Scan(); line++ {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var res Result
		if err := json.Unmarshal(sc.Bytes(), &res); err != nil {
			return nil, fmt.Errorf("%s line %d: %w", name, line, err)
		}
		if err := res.fillSteps(); err != nil {
			return nil, fmt.Errorf("%s line %d: %w", name, line, err)
		}
		if onlyN != 0 && res.N != onlyN {
			continue
		}
		if t.Rows[res.Setting] == nil {
			t.Rows[res.Setting] = map[int]Cell{}
		}
		if old, ok := t.Rows[res.Setting][res.Steps]; ok && old.N > res.N {
			continue
		}
		t.Rows[res.Setting][res.Steps] = Cell{res.FID, res.KID, res.KIDStd, res.N}
		if !slices.Contains(t.Steps, res.Steps) {
			t.Steps = append(t.Steps, res.Steps)
		}
		t.Floors[res.N] = [2]float64{res.Floor, res.KIDFloor}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(t.Rows) == 0 {
		if onlyN != 0 {
			return nil, fmt.Errorf("%s: no results at n = %d", name, onlyN)
		}
		return nil, fmt.Errorf("%s: no results", name)
	}
	slices.Sort(t.Steps)
	count := map[int]int{}
	for _, r := range t.Rows {
		for _, c := range r {
			count[c.N]++
		}
	}
	for n, k := range count {
		if k > count[t.Usual] || k == count[t.Usual] && n > t.Usual {
			t.Usual = n
		}
	}
	return t, nil
}

// fillSteps gives a result written before Steps and Setting were fields (the results in docs/) the
// two from its sampler description, "ddim-50 eta=0 linspace": steps 50, setting "ddim eta=0
// linspace".
func (r *Result) fillSteps() error {
	if r.Steps > 0 {
		return nil
	}
	head, rest, _ := strings.Cut(r.Sampler, " ")
	i := strings.LastIndex(head, "-")
	steps, err := strconv.Atoi(head[i+1:])
	if i < 0 || err != nil {
		return fmt.Errorf("sampler %q: no step count (a --npz result?)", r.Sampler)
	}
	r.Steps, r.Setting = steps, strings.TrimSpace(head[:i]+" "+rest)
	return nil
}

// settings are the rows' names, sorted.
func (t *Table) settings() []string {
	var names []string
	for n := range t.Rows {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Markdown writes the table and the floor of every n in it.
func (t *Table) Markdown(w io.Writer) {
	fmt.Fprint(w, "| sampler |")
	for _, s := range t.Steps {
		fmt.Fprintf(w, " S=%d |", s)
	}
	fmt.Fprint(w, "\n|---|"+strings.Repeat("---|", len(t.Steps))+"\n")
	for _, name := range t.settings() {
		fmt.Fprintf(w, "| %s |", name)
		for _, s := range t.Steps {
			c, ok := t.Rows[name][s]
			if !ok {
				fmt.Fprint(w, " |")
				continue
			}
			mark := ""
			if c.N != t.Usual {
				mark = fmt.Sprintf(", n = %d", c.N)
			}
			fmt.Fprintf(w, " %.3g (KID %.3g ± %.2g%s) |", c.FID, c.KID, c.KIDStd, mark)
		}
		fmt.Fprintln(w)
	}
	var ns []int
	for n := range t.Floors {
		ns = append(ns, n)
	}
	slices.Sort(ns)
	for _, n := range ns {
		fmt.Fprintf(w, "\nfloor (training images vs test) at n = %d: FID %.3g, KID %.3g\n", n, t.Floors[n][0], t.Floors[n][1])
	}
}

// Plot draws FID against steps (log scales), one line per setting, and returns how many cells it
// left out: a line through cells of different n would show the bias of small n as an effect of the
// step count, so the plot keeps the cells at Usual only.
func (t *Table) Plot(w io.Writer) (left int, err error) {
	var series []plot.Series
	for _, name := range t.settings() {
		var xs, ys []float64
		for _, s := range t.Steps {
			c, ok := t.Rows[name][s]
			switch {
			case !ok:
			case c.N == t.Usual:
				xs, ys = append(xs, float64(s)), append(ys, c.FID)
			default:
				left++
			}
		}
		if len(xs) > 0 {
			series = append(series, plot.Series{Name: name, X: xs, Y: ys})
		}
	}
	title := fmt.Sprintf("FID against sampling steps (n = %d)", t.Usual)
	return left, plot.Lines(w, plot.Options{Title: title, XLabel: "steps S", YLabel: "FID", LogX: true, LogY: true, Markers: true}, series...)
}

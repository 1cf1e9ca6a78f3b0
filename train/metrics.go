package train

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/ddpm-go/ddpm/checkpoint"

	"github.com/ddpm-go/ddpm/plot"
)

// Row is one line of metrics.csv.
type Row struct {
	Step int
	Loss float64
	LR   float64
	ImgS float64 // training throughput over the step (images per second)
	Wall float64 // wall-clock seconds since the run started, summed over resumed segments
}

var metricsHeader = []string{"step", "loss", "lr", "img_s", "wall_s"}

// ReadMetrics reads a metrics.csv. A torn last line is left out: the file is appended to as the
// run goes (without an fsync per row), so a kill or a power loss can cut it anywhere in a row, and
// a plot or a resume should not fail on that row. A line is torn when it lacks its newline
// (csv.Writer ends every row with one; a cut inside a number can leave a line that parses to a
// wrong value) or, being the last, does not parse. A bad line before the last is an error.
func ReadMetrics(path string) ([]Row, error) {
	rows, _, err := readMetrics(path)
	return rows, err
}

// readMetrics is ReadMetrics that also says whether it left out a torn last line.
func readMetrics(path string) (rows []Row, torn bool, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, false, err
	}
	if i := bytes.LastIndexByte(b, '\n'); i+1 < len(b) {
		b, torn = b[:i+1], true
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if header := strings.Split(lines[0], ","); !slices.Equal(header, metricsHeader) {
		return nil, false, fmt.Errorf("read %s: not a metrics file (header %q)", path, lines[0])
	}
	rows = make([]Row, 0, len(lines)-1)
	for i, line := range lines[1:] {
		row, err := parseRow(line)
		if err != nil && i == len(lines)-2 {
			torn = true
			break
		}
		if err != nil {
			return nil, false, fmt.Errorf("read %s: line %d: %w", path, i+2, err)
		}
		rows = append(rows, row)
	}
	return rows, torn, nil
}

// parseRow parses one line of metrics.csv. The fields are numbers, which csv.Writer never quotes,
// so a line is its fields joined by commas.
func parseRow(line string) (Row, error) {
	f := strings.Split(line, ",")
	if len(f) != len(metricsHeader) {
		return Row{}, fmt.Errorf("%d fields, want %d", len(f), len(metricsHeader))
	}
	var row Row
	var errs [5]error
	row.Step, errs[0] = strconv.Atoi(f[0])
	row.Loss, errs[1] = strconv.ParseFloat(f[1], 64)
	row.LR, errs[2] = strconv.ParseFloat(f[2], 64)
	row.ImgS, errs[3] = strconv.ParseFloat(f[3], 64)
	row.Wall, errs[4] = strconv.ParseFloat(f[4], 64)
	return row, errors.Join(errs[:]...)
}

// metrics appends rows to metrics.csv and keeps them for the loss plot.
type metrics struct {
	path string
	f    *os.File
	w    *bufio.Writer
	rows []Row
}

// openMetrics starts metrics.csv in dir, or, when resuming from step, keeps the rows up to step
// (later ones were logged after the checkpoint and will be computed again) and appends from there.
// Either way the file is rewritten, which also drops a row torn by a kill (see ReadMetrics).
func openMetrics(dir string, resume bool, step int, prog *progress) (*metrics, error) {
	m := &metrics{path: filepath.Join(dir, checkpoint.MetricsFile)}
	if resume {
		rows, torn, err := readMetrics(m.path)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("resume: %w", err)
		}
		if torn {
			prog.note("%s: left out a torn last line (a write cut short)", m.path)
		}
		for _, r := range rows {
			if r.Step <= step {
				m.rows = append(m.rows, r)
			}
		}
	}
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	w.Write(metricsHeader)
	for _, r := range m.rows {
		w.Write(r.record())
	}
	w.Flush()
	if err := writeAtomic(m.path, buf.Bytes()); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(m.path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return nil, err
	}
	m.f, m.w = f, bufio.NewWriter(f)
	return m, nil
}

func (r Row) record() []string {
	f := func(v float64, prec int) string { return strconv.FormatFloat(v, 'g', prec, 64) }
	return []string{strconv.Itoa(r.Step), f(r.Loss, 8), f(r.LR, 6), f(r.ImgS, 5), f(r.Wall, 7)}
}

// A metrics without a file (the ranks of a data-parallel run but rank 0, which alone writes)
// keeps and writes nothing.
func (m *metrics) add(r Row) error {
	if m.f == nil {
		return nil
	}
	m.rows = append(m.rows, r)
	w := csv.NewWriter(m.w)
	w.Write(r.record())
	w.Flush()
	return w.Error()
}

func (m *metrics) flush() error {
	if m.f == nil {
		return nil
	}
	if err := m.w.Flush(); err != nil {
		return fmt.Errorf("write %s: %w", m.path, err)
	}
	return nil
}

// sync makes the rows written so far durable. A checkpoint calls it, so that the rows it covers
// survive a power loss as the checkpoint does (rows after it are recomputed by a resume).
func (m *metrics) sync() error {
	if err := m.flush(); err != nil {
		return err
	}
	if err := m.f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", m.path, err)
	}
	return nil
}

func (m *metrics) close() error {
	if m.f == nil {
		return nil
	}
	err := m.flush()
	if cerr := m.f.Close(); err == nil && cerr != nil {
		err = cerr
	}
	return err
}

// PlotLoss draws the loss of rows against the step (each step's loss, faint, and its moving
// average) on a log axis, as PNG.
func PlotLoss(w io.Writer, rows []Row, title string) error {
	if len(rows) == 0 {
		return fmt.Errorf("plot loss: no rows")
	}
	x := make([]float64, len(rows))
	raw := make([]float64, len(rows))
	avg := make([]float64, len(rows))
	var s, wsum float64
	const beta = 0.98
	for i, r := range rows {
		x[i], raw[i] = float64(r.Step), r.Loss
		if !math.IsNaN(r.Loss) && !math.IsInf(r.Loss, 0) {
			s = beta*s + (1-beta)*r.Loss
			wsum = beta*wsum + (1 - beta)
		}
		avg[i] = s / wsum
	}
	return plot.Lines(w, plot.Options{Title: title, XLabel: "step", YLabel: "MSE loss", LogY: true},
		plot.Series{Name: "loss", X: x, Y: raw},
		plot.Series{Name: "moving average (0.98)", X: x, Y: avg})
}

func (m *metrics) plot(dir, title string) error {
	if len(m.rows) == 0 {
		return nil
	}
	var buf bytes.Buffer
	if err := PlotLoss(&buf, m.rows, title); err != nil {
		return err
	}
	return writeAtomic(filepath.Join(dir, checkpoint.LossPlotFile), buf.Bytes())
}

// writeAtomic writes b to path through a synced temporary file renamed into place.
func writeAtomic(path string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	_, err = f.Write(b)
	if err == nil {
		err = f.Chmod(0o644)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

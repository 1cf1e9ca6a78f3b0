package train

import (
	"io"
	"time"
)

// The pieces of a run's bookkeeping that other trainers reuse (package distill trains students
// into run directories of the same layout): the metrics file, the progress lines and the atomic
// writes. They are the ones Run itself uses, so a distillation round's directory reads like a
// training run's (metrics.csv, loss.png, checkpoints/) and its log lines look the same.

// Metrics appends rows to a run directory's metrics.csv and keeps them for the loss plot.
type Metrics struct{ m *metrics }

// OpenMetrics starts dir's metrics.csv, or, resuming from step, keeps its rows up to step and
// appends from there (see openMetrics); notes go to log (may be nil).
func OpenMetrics(dir string, resume bool, step int, log io.Writer) (*Metrics, error) {
	m, err := openMetrics(dir, resume, step, &progress{w: log})
	if err != nil {
		return nil, err
	}
	return &Metrics{m}, nil
}

// Add appends a row (buffered; Flush or Sync writes it).
func (m *Metrics) Add(r Row) error { return m.m.add(r) }

// Flush writes the buffered rows.
func (m *Metrics) Flush() error { return m.m.flush() }

// Sync makes the rows written so far durable, as a checkpoint does for the weights.
func (m *Metrics) Sync() error { return m.m.sync() }

// Close flushes and closes the file.
func (m *Metrics) Close() error { return m.m.close() }

// Rows are the rows of this run so far (a resumed run's earlier ones included).
func (m *Metrics) Rows() []Row { return m.m.rows }

// Plot writes the loss plot (loss.png) into dir.
func (m *Metrics) Plot(dir, title string) error { return m.m.plot(dir, title) }

// Progress reports a loop of total steps as Run does: a redrawn bar on a terminal, else a line
// every `every` steps.
type Progress struct{ p *progress }

// NewProgress reports to w (nil: nowhere).
func NewProgress(w io.Writer, terminal bool, every, total int) *Progress {
	return &Progress{&progress{w: w, terminal: terminal, every: every, total: total}}
}

// Update reports step (1-based) with the moving-average loss, learning rate, throughput, time
// left and time spent; epoch is the passes over the data so far.
func (p *Progress) Update(step int, epoch, loss, lr, imgS float64, eta, elapsed time.Duration) {
	p.p.update(status{step: step, epoch: epoch, loss: loss, lr: lr, imgS: imgS, eta: eta, elapsed: elapsed})
}

// Note prints a message on its own line.
func (p *Progress) Note(format string, args ...any) { p.p.note(format, args...) }

// WriteAtomic writes b to path through a synced temporary file renamed into place.
func WriteAtomic(path string, b []byte) error { return writeAtomic(path, b) }

// RemoveTempFiles deletes what atomic writes killed before their rename left in run directory dir
// (see removeTempFiles), returning how many files and bytes.
func RemoveTempFiles(dir string) (n int, size int64, err error) { return removeTempFiles(dir) }

package generate

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/ddpm-go/ddpm/diffusion"
)

// Progress reports sampling progress over all steps of all batches of a job: a redrawn bar on a
// terminal, a plain line per tenth of the work otherwise (logs stay short).
type Progress struct {
	w         io.Writer
	terminal  bool
	total     int
	count     int
	t0, drawn time.Time
	lastTenth int
}

// NewProgress reports to w on a job of batches sampler calls of steps steps each (0: the steps
// the first call reports).
func NewProgress(w io.Writer, batches, steps int) *Progress {
	return &Progress{w: w, terminal: IsTerminal(w), total: batches * steps, t0: time.Now()}
}

// IsTerminal reports whether w is a character device, where a redrawn line is wanted instead of
// log lines.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// Step counts one step; it fits Job.Step.
func (p *Progress) Step(b Batch, s diffusion.Step) error {
	if p.total <= 0 {
		p.total = max(1, b.Count*s.Total)
	}
	p.count++
	rate := float64(p.count) / time.Since(p.t0).Seconds()
	eta := time.Duration(float64(p.total-p.count) / rate * float64(time.Second))
	if p.terminal {
		if p.count != p.total && time.Since(p.drawn) < 200*time.Millisecond {
			return nil
		}
		p.drawn = time.Now()
		const width = 30
		n := width * p.count / p.total
		fmt.Fprintf(p.w, "\r[%s%s] step %d/%d  batch %d/%d  %.1f steps/s  ETA %s\x1b[K",
			strings.Repeat("#", n), strings.Repeat(".", width-n), s.Index+1, s.Total, b.Index+1, b.Count, rate, eta.Round(time.Second))
		return nil
	}
	if tenth := 10 * p.count / p.total; tenth > p.lastTenth || p.count == 1 {
		p.lastTenth = tenth
		fmt.Fprintf(p.w, "step %d/%d of batch %d/%d (%d%%) %.1f steps/s eta %s\n",
			s.Index+1, s.Total, b.Index+1, b.Count, 100*p.count/p.total, rate, eta.Round(time.Second))
	}
	return nil
}

// Finish ends the bar's line on a terminal.
func (p *Progress) Finish() {
	if p.terminal && p.count > 0 {
		fmt.Fprintln(p.w)
	}
}

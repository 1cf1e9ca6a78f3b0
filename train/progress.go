package train

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// progress reports training on a terminal as one redrawn bar, elsewhere (a log file, CI) as plain
// lines every `every` steps, so logs stay readable and terminals stay quiet.
type progress struct {
	w        io.Writer
	terminal bool
	every    int
	total    int
	lastDraw time.Time
}

type status struct {
	step    int
	epoch   float64
	loss    float64 // moving average
	lr      float64
	imgS    float64 // recent throughput
	eta     time.Duration
	elapsed time.Duration
}

func (p *progress) update(s status) {
	if p.w == nil {
		return
	}
	if p.terminal {
		now := time.Now()
		if s.step != p.total && now.Sub(p.lastDraw) < 200*time.Millisecond {
			return
		}
		p.lastDraw = now
		const width = 24
		done := width * s.step / max(p.total, 1)
		bar := strings.Repeat("#", done) + strings.Repeat(".", width-done)
		fmt.Fprintf(p.w, "\r[%s] %d/%d  epoch %.2f  loss %.4f  %.0f img/s  ETA %s\x1b[K",
			bar, s.step, p.total, s.epoch, s.loss, s.imgS, fmtDur(s.eta))
		return
	}
	if p.every > 0 && (s.step%p.every == 0 || s.step == p.total) {
		fmt.Fprintf(p.w, "step %d/%d epoch %.2f loss %.5f lr %.3g %.1f img/s elapsed %s eta %s\n",
			s.step, p.total, s.epoch, s.loss, s.lr, s.imgS, fmtDur(s.elapsed), fmtDur(s.eta))
	}
}

// note prints a message on its own line (after the bar, if one is drawn).
func (p *progress) note(format string, args ...any) {
	if p.w == nil {
		return
	}
	if p.terminal {
		fmt.Fprint(p.w, "\r\x1b[K")
	}
	fmt.Fprintf(p.w, format+"\n", args...)
	p.lastDraw = time.Time{}
}

func fmtDur(d time.Duration) string {
	if d < 0 {
		return "?"
	}
	return d.Round(time.Second).String()
}

package fid

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/ddpm-go/ddpm/plot"
)

// GuidanceScales are the classifier-free guidance scales s that `ddpm eval guidance` measures by
// default: 0 (unconditional) and 1 (conditional) and the guided range where Ho & Salimans (2022,
// Fig. 4 and Table 1) find FID best at small w = s - 1 and sample fidelity rising with it.
var GuidanceScales = []float64{0, 0.5, 1, 1.5, 2, 3, 5}

// Guidance scores a class-conditional model class-balanced (image i of class i mod K) at each
// scale, with o's sampler, n and seed, so every row draws from the same noise: the trade-off of
// the CFG paper (FID against a fidelity score, here the project classifier's accuracy on the
// requested class) and the coverage of the test set that guidance gives up. With o.Comm of several
// ranks it is collective like Run, and the results are nil on ranks other than 0.
func Guidance(ctx context.Context, o Options, scales []float64, log io.Writer) ([]*Result, error) {
	var out []*Result
	for _, s := range scales {
		o := o
		o.ClassBalanced, o.Guidance = true, &s
		fmt.Fprintf(log, "guidance s = %g\n", s)
		r, err := Run(ctx, o, log)
		if err != nil {
			return out, fmt.Errorf("guidance %g: %w", s, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// Best returns the results with the lowest FID and the highest accuracy (the first on ties).
func Best(rs []*Result) (bestFID, bestAcc *Result) {
	for _, r := range rs {
		if bestFID == nil || r.FID < bestFID.FID {
			bestFID = r
		}
		if bestAcc == nil || r.Accuracy > bestAcc.Accuracy {
			bestAcc = r
		}
	}
	return bestFID, bestAcc
}

// GuidanceMarkdown writes the sweep as a Markdown table, one row per scale, with the unconditional
// baseline (another model sampled alike, nil if none) as the last row and the best scales named.
func GuidanceMarkdown(w io.Writer, rs []*Result, baseline *Result) {
	fmt.Fprintln(w, "| guidance s | accuracy | FID | KID x 1e3 | coverage | confident | worst class accuracy |")
	fmt.Fprintln(w, "|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range rs {
		worst, wc := 1.0, 0
		for c, a := range r.ClassAccuracy {
			if a < worst {
				worst, wc = a, c
			}
		}
		fmt.Fprintf(w, "| %g | %.1f%% | %.3f | %.3f | %.3f | %.1f%% | %.0f%% (class %d) |\n",
			*r.Guidance, 100*r.Accuracy, r.FID, 1e3*r.KID, r.Coverage, 100*r.Confident, 100*worst, wc)
	}
	if baseline != nil {
		fmt.Fprintf(w, "| unconditional model | - | %.3f | %.3f | %.3f | %.1f%% | - |\n",
			baseline.FID, 1e3*baseline.KID, baseline.Coverage, 100*baseline.Confident)
	}
	if len(rs) == 0 {
		return
	}
	bf, ba := Best(rs)
	fmt.Fprintf(w, "\nBest FID: s = %g (%.3f); best accuracy: s = %g (%.1f%%). n = %d, %s, seed %d, FID floor %.3f.\n",
		*bf.Guidance, bf.FID, *ba.Guidance, 100*ba.Accuracy, rs[0].N, rs[0].Sampler, rs[0].Seed, rs[0].Floor)
}

// GuidancePlot draws FID against accuracy, one marked point per scale in increasing s, the
// trade-off curve of the CFG paper's Fig. 4 with accuracy in place of Inception score.
func GuidancePlot(w io.Writer, rs []*Result) error {
	var x, y []float64
	var ss []string
	for _, r := range rs {
		x, y = append(x, 100*r.Accuracy), append(y, r.FID)
		ss = append(ss, fmt.Sprint(*r.Guidance))
	}
	return plot.Lines(w, plot.Options{
		Title:  "classifier-free guidance: FID against accuracy (s = " + strings.Join(ss, ", ") + ")",
		XLabel: "classifier accuracy on the requested class (%)", YLabel: "FID (class-balanced)", LogY: true, Markers: true,
	}, plot.Series{Name: "s increasing", X: x, Y: y})
}

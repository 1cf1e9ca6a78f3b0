// Package toy is the library of `ddpm toy`: the points of a Gaussian mixture's samples as CSV (read
// as x_T, written at full precision), how well samples recover the mixture (diffusion.Fit), and a
// picture of 2-D samples over the true density.
package toy

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"

	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/internal/safeio"
	"github.com/ddpm-go/ddpm/internal/sysmem"
	"github.com/ddpm-go/ddpm/plot"
	"github.com/ddpm-go/ddpm/schedule"
)

// Start returns the x_T of n points of dimension D: none (the sampler draws them) without an init
// file, else the rows of init, whose count is n unless nSet asks for another. The points and the
// sampler's few working copies (about eight float64s per coordinate) are all in memory at once, so
// an n the machine cannot hold is refused here.
func Start(init string, n int, nSet bool, D int) ([]float64, int, error) {
	var xT []float64
	if init != "" {
		x, rows, err := ReadCSV(init, D)
		if err != nil {
			return nil, 0, err
		}
		if nSet && n != rows {
			return nil, 0, fmt.Errorf("--n %d but --init %s has %d rows", n, init, rows)
		}
		xT, n = x, rows
	}
	if n < 1 {
		return nil, 0, fmt.Errorf("--n %d must be >= 1", n)
	}
	if err := sysmem.Check(fmt.Sprintf("sampling %d points of dimension %d", n, D), 64*float64(n)*float64(D)); err != nil {
		return nil, 0, fmt.Errorf("--n %d: %w", n, err)
	}
	return xT, n, nil
}

// ReadCSV reads rows of D values under the header d0,...,d{D-1}.
func ReadCSV(path string, D int) ([]float64, int, error) {
	f, err := safeio.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	// Its values can take four times the text ("0," is a float64 of 8 bytes), and the csv reader
	// holds a whole line: a file the machine cannot hold that way (a 20 GB sparse file is one line
	// of zero bytes) is refused before reading.
	if st, err := f.Stat(); err != nil {
		return nil, 0, err
	} else if err := sysmem.Check("reading "+path, 4*float64(st.Size())); err != nil {
		return nil, 0, err
	}
	r := csv.NewReader(bufio.NewReader(f))
	r.FieldsPerRecord = D
	r.ReuseRecord = true
	header, err := r.Read()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, 0, fmt.Errorf("%s: empty file, want a header d0..d%d", path, D-1)
		}
		return nil, 0, fmt.Errorf("%s: %w (want %d columns d0..d%d, as the mixture)", path, err, D, D-1)
	}
	for j, h := range header {
		if h != "d"+strconv.Itoa(j) {
			return nil, 0, fmt.Errorf("%s: header column %d is %q, want %q", path, j+1, h, "d"+strconv.Itoa(j))
		}
	}
	var x []float64
	for line := 2; ; line++ {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, 0, fmt.Errorf("%s: %w", path, err)
		}
		for j, field := range rec {
			v, err := strconv.ParseFloat(field, 64)
			if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, 0, fmt.Errorf("%s: line %d column %d: %q is not a finite number", path, line, j+1, field)
			}
			x = append(x, v)
		}
	}
	if len(x) == 0 {
		return nil, 0, fmt.Errorf("%s: no rows after the header", path)
	}
	return x, len(x) / D, nil
}

// WriteCSV writes the header d0..d{D-1} and one row per sample, at full float64 precision so
// a run can be compared bit for bit.
func WriteCSV(w io.Writer, x []float64, D int) error {
	bw := bufio.NewWriter(w)
	for j := 0; j < D; j++ {
		if j > 0 {
			bw.WriteByte(',')
		}
		fmt.Fprintf(bw, "d%d", j)
	}
	bw.WriteByte('\n')
	buf := make([]byte, 0, 32)
	for i := 0; i < len(x); i += D {
		for j := 0; j < D; j++ {
			if j > 0 {
				bw.WriteByte(',')
			}
			buf = strconv.AppendFloat(buf[:0], x[i+j], 'g', -1, 64)
			bw.Write(buf)
		}
		bw.WriteByte('\n')
	}
	return bw.Flush()
}

// WriteCSVFile writes WriteCSV's text to path.
func WriteCSVFile(path string, x []float64, D int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := WriteCSV(f, x, D); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}

// Report writes how well rec, fitted to n samples, recovers the mixture m: the largest errors, then
// every component beside its true values.
func Report(w io.Writer, title string, m *diffusion.Mixture, rec *diffusion.Recovery, n int) {
	fmt.Fprintf(w, "%s, n=%d: max |weight error| %.4f, max |mean error| %.4f, max std relative error %.2f%%\n",
		title, n, rec.WeightErr, rec.MeanErr, 100*rec.StdRelErr)
	for k, c := range rec.Components {
		fmt.Fprintf(w, "  component %d: weight %.4f (true %.4f)  mean %s (true %s)  std %.4f (true %.4f)\n",
			k, c.Weight, m.Weights[k], fmtVec(c.Mean), fmtVec(m.Means[k]), c.Std, m.Stds[k])
	}
}

func fmtVec(v []float64) string {
	if v == nil {
		return "-"
	}
	s := "("
	for j, x := range v {
		if j > 0 {
			s += ", "
		}
		s += strconv.FormatFloat(x, 'f', 3, 64)
	}
	return s + ")"
}

// Plot draws the n 2-D samples x as a PNG over the mixture's data density, on a frame wide enough for every
// component's +-4 std.
func Plot(w io.Writer, title string, m *diffusion.Mixture, x []float64, n int) error {
	xs, ys := make([]float64, n), make([]float64, n)
	for i := 0; i < n; i++ {
		xs[i], ys[i] = x[2*i], x[2*i+1]
	}
	opt := plot.Options{Title: title, XLabel: "d0", YLabel: "d1", Width: 640, Height: 560}
	opt.XMin, opt.XMax, opt.YMin, opt.YMax = math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
	for k, mu := range m.Means {
		r := 4 * m.Stds[k]
		opt.XMin, opt.XMax = math.Min(opt.XMin, mu[0]-r), math.Max(opt.XMax, mu[0]+r)
		opt.YMin, opt.YMax = math.Min(opt.YMin, mu[1]-r), math.Max(opt.YMax, mu[1]+r)
	}
	p := make([]float64, 2)
	density := func(a, b float64) float64 {
		p[0], p[1] = a, b
		return math.Exp(m.LogDensity(p, 1))
	}
	return plot.ScatterDensity(w, opt, xs, ys, density)
}

// Setup builds the diffusion process of a toy run: the schedule and what the oracle outputs. Zero
// terminal SNR (Lin et al. 2023) needs x0 or v: at alpha_bar = 0 eps does not determine x0.
func Setup(name string, T int, zeroSNR bool, prediction string) (*schedule.Schedule, diffusion.Prediction, error) {
	s, err := schedule.New(name, T, zeroSNR)
	if err != nil {
		return nil, 0, err
	}
	pred, err := diffusion.ParsePrediction(prediction)
	if err != nil {
		return nil, 0, err
	}
	if zeroSNR && pred == diffusion.Eps {
		return nil, 0, fmt.Errorf("--zero-snr needs --prediction x0 or v: eps does not determine x0 where alpha_bar = 0")
	}
	return s, pred, nil
}

// Outputs are where a toy run's n samples x of mixture m go: CSV to the file Out (or csv when
// empty), with Stats the recovery report to report, and with Plot the samples over the density.
type Outputs struct {
	Out, Plot string
	Stats     bool
}

// Write writes the samples to every output asked for; title names the sampler in the report and
// the plot.
func (o Outputs) Write(csv, report io.Writer, title string, m *diffusion.Mixture, x []float64, n int) error {
	D := m.Dim()
	var err error
	if o.Out == "" {
		err = WriteCSV(csv, x, D)
	} else {
		err = WriteCSVFile(o.Out, x, D)
	}
	if err != nil {
		return err
	}
	if o.Stats {
		rec, err := diffusion.Fit(m, x, n)
		if err != nil {
			return err
		}
		Report(report, title, m, rec, n)
	}
	if o.Plot == "" {
		return nil
	}
	return plot.WriteFile(o.Plot, func(w io.Writer) error { return Plot(w, title, m, x, n) })
}

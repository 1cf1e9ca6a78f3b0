package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"strconv"

	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/internal/safeio"
	"github.com/ddpm-go/ddpm/internal/sysmem"
	"github.com/ddpm-go/ddpm/plot"
	"github.com/ddpm-go/ddpm/schedule"
)

func init() {
	register(&command{name: "toy", summary: "sample a Gaussian mixture with DDPM/DDIM driven by the exact oracle", run: runToy})
}

func runToy(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("toy", stderr)
	mixturePath := fs.String("mixture", "", `mixture JSON: {"weights":[...],"means":[[...],...],"stds":[...]} (required)`)
	samplerName := fs.String("sampler", "ddpm", "ddpm, ddim, dpm-solver++ or plms")
	variance := fs.String("variance", "beta", "ddpm step variance: beta or posterior")
	steps := fs.Int("steps", 0, "sampling steps S in [1, T] (default: T for ddpm, 50 for ddim)")
	eta := fs.Float64("eta", 0, "ddim noise scale eta >= 0 (0 = deterministic, 1 = DDPM-like)")
	sigmaHat := fs.Bool("sigma-hat", false, "ddim with the sigma-hat noise of the DDIM paper (mean of eta=1)")
	spacing := fs.String("spacing", "linspace", "timestep spacing: "+diffusion.SpacingNames)
	schedName := fs.String("schedule", "linear", "beta schedule: linear, cosine, scaled-linear or sigmoid")
	T := fs.Int("timesteps", 1000, "diffusion steps T of the schedule (1 to 100000)")
	zeroSNR := fs.Bool("zero-snr", false, "rescale the schedule to zero terminal SNR (needs --prediction x0 or v)")
	prediction := fs.String("prediction", "eps", "what the oracle outputs and the sampler converts: eps, x0 or v")
	clip := fs.Bool("clip", false, "clip the predicted x0 to [-1, 1]")
	n := fs.Int("n", 1000, "number of samples (ignored with --init)")
	seed := fs.Uint64("seed", 0, "random seed")
	initPath := fs.String("init", "", "read x_T from this CSV (header d0,d1,...); N is its row count")
	outPath := fs.String("out", "", "write the samples' CSV here instead of stdout")
	plotPath := fs.String("plot", "", "draw the samples over the true density to this PNG (2-D mixtures)")
	stats := fs.Bool("stats", false, "print how well the samples recover the mixture (weights, means, stds) to stderr")
	if err := parseFlagsOneLine(fs, args, stderr); err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	if *mixturePath == "" {
		return fmt.Errorf("--mixture FILE.json is required")
	}
	m, err := diffusion.LoadMixture(*mixturePath)
	if err != nil {
		return err
	}
	D := m.Dim()
	s, err := schedule.New(*schedName, *T, *zeroSNR)
	if err != nil {
		return err
	}
	pred, err := diffusion.ParsePrediction(*prediction)
	if err != nil {
		return err
	}
	if *zeroSNR && pred == diffusion.Eps {
		return fmt.Errorf("--zero-snr needs --prediction x0 or v: eps does not determine x0 where alpha_bar = 0")
	}
	sp, err := diffusion.ParseSpacing(*spacing)
	if err != nil {
		return err
	}
	if set["steps"] && (*steps < 1 || *steps > *T) {
		return fmt.Errorf("--steps %d outside [1, %d]", *steps, *T)
	}
	if !(*eta >= 0) || math.IsInf(*eta, 0) {
		return fmt.Errorf("--eta %v must be a finite number >= 0", *eta)
	}

	var sampler diffusion.Sampler
	var title string
	switch *samplerName {
	case "ddpm":
		if set["eta"] || set["sigma-hat"] {
			return fmt.Errorf("--eta and --sigma-hat apply to --sampler ddim")
		}
		v, err := diffusion.ParseVariance(*variance)
		if err != nil {
			return err
		}
		sampler = &diffusion.DDPM{Schedule: s, Variance: v, Clip: *clip, Steps: *steps, Spacing: sp}
		S := *steps
		if S == 0 {
			S = *T
		}
		title = fmt.Sprintf("DDPM-%d, %s variance", S, v)
	case "ddim":
		if set["variance"] {
			return fmt.Errorf("--variance applies to --sampler ddpm (use --eta or --sigma-hat)")
		}
		if *sigmaHat && set["eta"] {
			return fmt.Errorf("--sigma-hat uses the mean of eta=1; do not combine it with --eta")
		}
		S := *steps
		if S == 0 {
			S = min(50, *T)
		}
		sampler = &diffusion.DDIM{Schedule: s, Steps: S, Eta: *eta, SigmaHat: *sigmaHat, Spacing: sp, Clip: *clip}
		title = fmt.Sprintf("DDIM S=%d, eta=%g, %s spacing", S, *eta, sp)
		if *sigmaHat {
			title = fmt.Sprintf("DDIM S=%d, sigma-hat, %s spacing", S, sp)
		}
	case "dpm-solver++", "plms":
		if set["variance"] || set["eta"] || set["sigma-hat"] {
			return fmt.Errorf("--variance, --eta and --sigma-hat do not apply to the deterministic %s", *samplerName)
		}
		S := *steps
		if S == 0 {
			S = min(50, *T)
		}
		sampler, err = diffusion.NewSampler(*samplerName, s, diffusion.SamplerConfig{Steps: S, Spacing: sp, Clip: *clip})
		if err != nil {
			return err
		}
		title = fmt.Sprintf("%s S=%d, %s spacing", map[string]string{"dpm-solver++": "DPM-Solver++(2M)", "plms": "PLMS"}[*samplerName], S, sp)
	default:
		return fmt.Errorf("unknown --sampler %q (want ddpm, ddim, dpm-solver++ or plms)", *samplerName)
	}

	opts := diffusion.Options{Seed: *seed, Prediction: pred}
	if *initPath != "" {
		xT, rows, err := readSamplesCSV(*initPath, D)
		if err != nil {
			return err
		}
		if set["n"] && *n != rows {
			return fmt.Errorf("--n %d but --init %s has %d rows", *n, *initPath, rows)
		}
		opts.XT, *n = xT, rows
	}
	if *n < 1 {
		return fmt.Errorf("--n %d must be >= 1", *n)
	}
	// The oracle's samples are all in memory at once: x_t and the sampler's few working copies
	// (about eight float64s per coordinate), so an --n the machine cannot hold is one line here.
	if err := sysmem.Check(fmt.Sprintf("sampling %d points of dimension %d", *n, D), 64*float64(*n)*float64(D)); err != nil {
		return fmt.Errorf("--n %d: %w", *n, err)
	}
	if *plotPath != "" && D != 2 {
		return fmt.Errorf("--plot needs a 2-D mixture, %s is %d-D", *mixturePath, D)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	oracle := &diffusion.Oracle{Mixture: m, Schedule: s, Output: pred}
	x, err := sampler.Sample(ctx, oracle, *n, D, opts)
	if err != nil {
		return err
	}

	if *outPath == "" {
		if err := writeSamplesCSV(stdout, x, D); err != nil {
			return err
		}
	} else if err := writeSamplesFile(*outPath, x, D); err != nil {
		return err
	}
	if *stats {
		rec, err := diffusion.Fit(m, x, *n)
		if err != nil {
			return err
		}
		printRecovery(stderr, title, m, rec, *n)
	}
	if *plotPath != "" {
		return plotToy(*plotPath, title, m, x, *n)
	}
	return nil
}

// readSamplesCSV reads rows of D values under the header d0,...,d{D-1}.
func readSamplesCSV(path string, D int) ([]float64, int, error) {
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

// writeSamplesCSV writes the header d0..d{D-1} and one row per sample, at full float64 precision so
// a run can be compared bit for bit.
func writeSamplesCSV(w io.Writer, x []float64, D int) error {
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

func writeSamplesFile(path string, x []float64, D int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := writeSamplesCSV(f, x, D); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}

func printRecovery(w io.Writer, title string, m *diffusion.Mixture, rec *diffusion.Recovery, n int) {
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

// plotToy draws the samples over the mixture's data density, on a frame wide enough for every
// component's +-4 std.
func plotToy(path, title string, m *diffusion.Mixture, x []float64, n int) error {
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
	return writePNG(path, func(w io.Writer) error { return plot.ScatterDensity(w, opt, xs, ys, density) })
}

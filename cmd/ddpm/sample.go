package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"time"

	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/engine"
	"github.com/ddpm-go/ddpm/generate"
	"github.com/ddpm-go/ddpm/imageio"
	"github.com/ddpm-go/ddpm/internal/sysmem"
	"github.com/ddpm-go/ddpm/schedule"
)

func init() {
	register(&command{name: "sample", summary: "draw images from a trained model (DDPM, DDIM, ...) as a grid, PNGs or .npz; animate with --gif", run: runSample})
}

// sampleFlags are the flags of `ddpm sample`, kept together so validation can see all of them.
type sampleFlags struct {
	ckpt                   string
	spec                   generate.SamplerSpec
	n, start, batch, chunk int
	seed                   uint64
	initPath               string
	ema, noEMA             bool
	engine, precision      string
	threads                int
	grid, outDir, npz, gif string
	cols, gifN, gifEvery   int
	set                    map[string]bool
}

func runSample(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("sample", stderr)
	var f sampleFlags
	fs.StringVar(&f.ckpt, "ckpt", "", "run directory or weights file (default: the shipped MNIST model)")
	addSamplerFlags(fs, &f.spec)
	fs.IntVar(&f.n, "n", 64, "number of images")
	fs.Uint64Var(&f.seed, "seed", 0, "random seed; image i depends only on it and its index")
	fs.IntVar(&f.start, "start", 0, "global index of the first image (to split a job across processes)")
	fs.IntVar(&f.batch, "batch", 64, "images per sampler call (memory; results do not depend on it)")
	fs.IntVar(&f.chunk, "chunk", -1, "images per network call, aligned to global indices (-1: 0 on the ref engine, 32 on dnnl; keep it fixed across split jobs)")
	fs.StringVar(&f.initPath, "init", "", "start from this x_T: a float32/float64 .npy of shape (N,C,H,W) or (N,C*H*W); row i is image start+i")
	fs.BoolVar(&f.ema, "ema", true, "use the EMA weights of a run or checkpoint")
	fs.BoolVar(&f.noEMA, "no-ema", false, "use the raw (non-EMA) weights of a run or checkpoint")
	fs.StringVar(&f.engine, "engine", "auto", "auto, dnnl or ref")
	fs.StringVar(&f.precision, "precision", "auto", "auto, fp32 or bf16 (auto: bf16 where the CPU has AMX or AVX512-BF16)")
	fs.IntVar(&f.threads, "threads", 0, "threads (0: all cores); results do not depend on it")
	fs.StringVar(&f.grid, "grid", "", "write the images as one PNG grid here")
	fs.IntVar(&f.cols, "cols", 0, "grid columns (default: ceil(sqrt(n)))")
	fs.StringVar(&f.outDir, "out-dir", "", "write one PNG per image here, named by global index (000000.png, ...)")
	fs.StringVar(&f.npz, "npz", "", "write the images as uint8 (N,H,W,C) under arr_0 in this .npz")
	fs.StringVar(&f.gif, "gif", "", "animate the reverse process (x_t beside the predicted x0) of the first images")
	fs.IntVar(&f.gifN, "gif-n", 4, "images in the --gif (at most 256)")
	fs.IntVar(&f.gifEvery, "gif-every", 0, "steps between --gif frames (0: about 40 frames)")
	if err := parseFlagsOneLine(fs, args, stderr); err != nil {
		return err
	}
	f.set = map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { f.set[fl.Name] = true })
	if err := f.validate(); err != nil {
		return err
	}

	be, err := engine.New(f.engine, f.precision, f.threads)
	if err != nil {
		return err
	}
	defer engine.Close(be)
	m, err := generate.Load(f.ckpt, be, f.ema && !f.noEMA)
	if err != nil {
		return err
	}
	sampler, spec, err := f.spec.New(m.Schedule)
	if err != nil {
		return err
	}
	c, h, w := m.Shape()
	dim := m.Dim()
	job := generate.Job{N: f.n, Start: f.start, Seed: f.seed, Batch: f.batch, Chunk: f.chunk}
	if job.Chunk < 0 {
		job.Chunk = generate.DefaultChunk(be)
	}
	if f.initPath != "" {
		if job.XT, err = readInit(f.initPath, c, h, w, f); err != nil {
			return err
		}
		job.N = len(job.XT) / dim
	}
	var rec *reverseRecorder
	if f.gif != "" {
		rec = newReverseRecorder(job, dim, f.gifN, f.gifEvery)
	}
	bar := newStepBar(stderr, batchCount(job), spec.Steps)
	job.Step = func(b generate.Batch, s diffusion.Step) error {
		if rec != nil {
			rec.record(b, s)
		}
		bar.step(b, s)
		return nil
	}

	// Every check that can refuse the job comes before its header, so a refusal is one line.
	if err := checkBatchMemory(m, job); err != nil {
		return err
	}
	// Only a grid keeps images, as bytes of finished batches (at most maxGridImages of them, turned
	// into float32 to draw): --out-dir writes each batch's PNGs and --npz appends each batch to the
	// archive as it finishes, so a job of any n needs the memory of one batch and the disk of its
	// images.
	var px []uint8
	if f.grid != "" {
		if err := sysmem.Check(fmt.Sprintf("keeping %d images for --grid", job.N), 5*float64(job.N)*float64(dim)); err != nil {
			return err
		}
		px = make([]uint8, 0, job.N*dim)
	}
	var npz *imageio.ImagesNPZ
	if f.npz != "" {
		if npz, err = imageio.CreateImagesNPZ(f.npz, job.N, c, h, w); err != nil {
			return err
		}
		defer npz.Abort() // removes the archive unless writeSamples closed it
	}
	job.Emit = func(b generate.Batch, x []float64) error {
		u8 := imageio.ToUint8(make([]uint8, 0, len(x)), x)
		if px != nil {
			px = append(px, u8...)
		}
		if npz != nil {
			if err := npz.Write(u8); err != nil {
				return err
			}
		}
		if f.outDir != "" {
			for i := range b.N {
				if err := imageio.WritePNG(filepath.Join(f.outDir, fmt.Sprintf("%06d.png", b.Start+i)), c, h, w, u8[i*dim:(i+1)*dim]); err != nil {
					return err
				}
			}
		}
		return nil
	}

	fmt.Fprintf(stderr, "sampling %d images (%d..%d, seed %d) of %dx%dx%d from %s (%s weights, %s, T=%d, %s) with %s on %s\n",
		job.N, job.Start, job.Start+job.N-1, job.Seed, c, h, w, m.Source, map[bool]string{true: "EMA", false: "raw"}[m.EMA],
		m.Schedule.Name, m.Schedule.T, m.Prediction, spec, engine.Explain(be, f.precision))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	t0 := time.Now()
	err = streamJob(ctx, m, sampler, job)
	bar.finish()
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("interrupted; nothing written")
	}
	if err != nil {
		return err
	}
	secs := time.Since(t0).Seconds()
	fmt.Fprintf(stderr, "%d images in %.1f s (%.2f img/s)\n", job.N, secs, float64(job.N)/secs)
	return writeSamples(stdout, f, px, npz, job, c, h, w, rec)
}

// batchCount is the number of sampler calls of a job, computed rather than listed: a job of 2^31
// images in batches of one would need gigabytes for the list alone.
func batchCount(j generate.Job) int {
	size := j.Batch
	if size < 1 || size > j.N {
		size = j.N
	}
	return (j.N + size - 1) / size
}

// streamJob runs a job one batch at a time, each as a job of its own, handing every batch's images
// to j.Emit: a job's memory is one batch whatever its N (a single Model.Sample call sizes its result
// by N even when it emits). Image i depends only on the seed and its global index, so the images
// equal those of one call. Step sees the batch's place in the whole job.
func streamJob(ctx context.Context, m *generate.Model, s diffusion.Sampler, j generate.Job) error {
	size := j.Batch
	if size < 1 || size > j.N {
		size = j.N
	}
	dim, count := m.Dim(), batchCount(j)
	for k := range count {
		lo := k * size
		b := generate.Batch{Index: k, Count: count, Start: j.Start + lo, N: min(size, j.N-lo)}
		sub := generate.Job{N: b.N, Start: b.Start, Seed: j.Seed, Batch: b.N, Chunk: j.Chunk, Pow2: j.Pow2}
		if j.XT != nil {
			sub.XT = j.XT[lo*dim : (lo+b.N)*dim]
		}
		if j.Step != nil {
			sub.Step = func(_ generate.Batch, st diffusion.Step) error { return j.Step(b, st) }
		}
		x, err := m.Sample(ctx, s, sub)
		if err != nil {
			if count > 1 {
				return fmt.Errorf("batch %d/%d (images %d..%d): %w", k+1, count, b.Start, b.Start+b.N-1, err)
			}
			return err
		}
		if err := j.Emit(b, x); err != nil {
			return err
		}
	}
	return nil
}

func (f *sampleFlags) validate() error {
	switch {
	case f.set["steps"] && f.spec.Steps < 1:
		return fmt.Errorf("--steps %d must be at least 1", f.spec.Steps)
	case !(f.spec.Eta >= 0) || math.IsInf(f.spec.Eta, 0):
		return fmt.Errorf("--eta %v must be a finite number >= 0", f.spec.Eta)
	case !(f.spec.EpsScale > 0) || math.IsInf(f.spec.EpsScale, 0):
		return fmt.Errorf("--eps-scale %v must be a finite number > 0", f.spec.EpsScale)
	case f.n < 1:
		return fmt.Errorf("--n %d must be at least 1", f.n)
	case f.start < 0:
		return fmt.Errorf("--start %d must be >= 0", f.start)
	case f.batch < 1:
		return fmt.Errorf("--batch %d must be at least 1", f.batch)
	case f.chunk < -1:
		return fmt.Errorf("--chunk %d must be >= 0 (or -1 for the engine's default)", f.chunk)
	case f.threads < 0:
		return fmt.Errorf("--threads %d must be >= 0", f.threads)
	case f.cols < 0:
		return fmt.Errorf("--cols %d must be >= 0", f.cols)
	case f.gifN < 1 || f.gifEvery < 0:
		return fmt.Errorf("--gif-n must be at least 1 and --gif-every >= 0")
	case f.gifN > maxGifImages:
		return fmt.Errorf("--gif-n %d: at most %d (every recorded step of each is kept in memory)", f.gifN, maxGifImages)
	case f.set["ema"] && f.set["no-ema"]:
		return fmt.Errorf("give --ema or --no-ema, not both")
	case f.grid == "" && f.outDir == "" && f.npz == "":
		return fmt.Errorf("nowhere to write the images: give --grid FILE.png, --out-dir DIR or --npz FILE.npz")
	case f.start > maxImages-f.n:
		return fmt.Errorf("--start %d + --n %d: image indices past %d", f.start, f.n, maxImages)
	case f.grid != "" && f.n > maxGridImages:
		return fmt.Errorf("--grid of %d images: at most %d in one picture (use --out-dir or --npz)", f.n, maxGridImages)
	}
	// --out-dir is made (or found unusable) now, not after minutes of sampling.
	if f.outDir != "" {
		if err := os.MkdirAll(f.outDir, 0o755); err != nil {
			return fmt.Errorf("--out-dir: %w", err)
		}
	}
	if !f.set["spacing"] {
		f.spec.Spacing = ""
	}
	// Check the sampler settings before loading anything, against a stand-in schedule (the model's
	// own T is checked once it is loaded), so a typo costs nothing.
	standIn, err := schedule.New("linear", max(1000, f.spec.Steps), false)
	if err != nil {
		return err
	}
	if _, _, err := f.spec.New(standIn); err != nil {
		return err
	}
	// checkFlags saw to --grid's and --gif's directories; --npz is an input elsewhere (eval fid).
	if f.npz != "" {
		if st, err := os.Stat(filepath.Dir(f.npz)); err != nil || !st.IsDir() {
			return fmt.Errorf("--npz %q: directory %s does not exist", f.npz, filepath.Dir(f.npz))
		}
	}
	return nil
}

// readInit reads x_T from a .npy of shape (N,C,H,W) or (N,C*H*W).
func readInit(path string, c, h, w int, f sampleFlags) ([]float64, error) {
	a, err := imageio.LoadNPY(path)
	if err != nil {
		return nil, fmt.Errorf("--init: %w", err)
	}
	if a.Descr[1] != 'f' {
		return nil, fmt.Errorf("--init %s: dtype %s, want float32 or float64", path, a.Descr)
	}
	ok := (len(a.Shape) == 4 && a.Shape[1] == c && a.Shape[2] == h && a.Shape[3] == w) ||
		(len(a.Shape) == 2 && a.Shape[1] == c*h*w)
	if !ok || a.Shape[0] < 1 {
		return nil, fmt.Errorf("--init %s: shape %v, want (N,%d,%d,%d) or (N,%d) with N >= 1 for this model", path, a.Shape, c, h, w, c*h*w)
	}
	if f.set["n"] && f.n != a.Shape[0] {
		return nil, fmt.Errorf("--n %d but --init %s holds %d images", f.n, path, a.Shape[0])
	}
	for i, v := range a.Values {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("--init %s: value %d is %v", path, i, v)
		}
	}
	return a.Values, nil
}

// writeSamples writes every requested output from the same bytes (NCHW), so a grid, the PNGs and
// the .npz show identical pixels.
func writeSamples(stdout io.Writer, f sampleFlags, px []uint8, npz *imageio.ImagesNPZ, job generate.Job, c, h, w int, rec *reverseRecorder) error {
	if f.grid != "" {
		cols := f.cols
		if cols == 0 {
			cols = int(math.Ceil(math.Sqrt(float64(job.N))))
		}
		img, err := imageio.Grid(px, job.N, c, h, w, cols, 1)
		if err != nil {
			return err
		}
		var buf bytes.Buffer
		if err := imageio.EncodePNG(&buf, img); err != nil {
			return err
		}
		if err := os.WriteFile(f.grid, buf.Bytes(), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote %s\n", f.grid)
	}
	if f.outDir != "" {
		fmt.Fprintf(stdout, "wrote %d PNGs to %s\n", job.N, f.outDir)
	}
	if f.npz != "" {
		if err := npz.Close(); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote %s\n", f.npz)
	}
	if rec != nil {
		reel, err := rec.reel(c, h, w)
		if err != nil {
			return err
		}
		if err := reel.Save(f.gif); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote %s (%d frames)\n", f.gif, reel.Frames())
	}
	return nil
}

// reverseRecorder keeps x_t and the predicted x0 of the first few images of a job every few steps,
// whichever batches they come in, for the --gif animation.
type reverseRecorder struct {
	start, n, dim, every int
	steps                []int               // the recorded step indices, in order
	xt, x0               map[int][][]float64 // step index -> per image (n) copies
	final                [][]float64         // the clean samples
}

func newReverseRecorder(job generate.Job, dim, n, every int) *reverseRecorder {
	return &reverseRecorder{start: job.Start, n: min(n, job.N), dim: dim, every: every,
		xt: map[int][][]float64{}, x0: map[int][][]float64{}, final: make([][]float64, min(n, job.N))}
}

func (r *reverseRecorder) record(b generate.Batch, s diffusion.Step) {
	every := r.every
	if every == 0 {
		every = max(1, (s.Total+39)/40)
	}
	last := s.Index == s.Total-1
	if s.Index%every != 0 && !last {
		return
	}
	for row := 0; row < b.N; row++ {
		img := b.Start + row - r.start
		if img >= r.n {
			break
		}
		if r.xt[s.Index] == nil {
			r.xt[s.Index], r.x0[s.Index] = make([][]float64, r.n), make([][]float64, r.n)
			if img == 0 {
				r.steps = append(r.steps, s.Index)
			}
		}
		lo, hi := row*r.dim, (row+1)*r.dim
		r.xt[s.Index][img] = append([]float64(nil), s.X[lo:hi]...)
		r.x0[s.Index][img] = append([]float64(nil), s.X0[lo:hi]...)
		if last {
			r.final[img] = append([]float64(nil), s.Next[lo:hi]...)
		}
	}
}

// reel lays each frame out as one row per image: x_t on the left, the predicted x0 on the right; it
// ends on the clean samples beside the last prediction, held for two seconds.
func (r *reverseRecorder) reel(c, h, w int) (*imageio.Reel, error) {
	scale := max(1, 64/max(h, w))
	reel, err := imageio.NewReel(c, h, w, 2, scale)
	if err != nil {
		return nil, err
	}
	add := func(a, b [][]float64, delay int) error {
		var frame []float64
		for i := 0; i < r.n; i++ {
			frame = append(append(frame, a[i]...), b[i]...)
		}
		return reel.Add(frame, 2*r.n, delay)
	}
	for _, k := range r.steps {
		if err := add(r.xt[k], r.x0[k], 8); err != nil {
			return nil, err
		}
	}
	if len(r.steps) > 0 {
		if err := add(r.final, r.x0[r.steps[len(r.steps)-1]], 200); err != nil {
			return nil, err
		}
	}
	return reel, nil
}

// stepBar reports sampling progress over all steps of all batches: a redrawn bar on a terminal,
// a plain line per tenth of the work otherwise.
type stepBar struct {
	w         io.Writer
	terminal  bool
	total     int
	count     int
	t0, drawn time.Time
	lastTenth int
}

func newStepBar(w io.Writer, batches, steps int) *stepBar {
	terminal := false
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			terminal = true
		}
	}
	return &stepBar{w: w, terminal: terminal, total: batches * steps, t0: time.Now()}
}

func (p *stepBar) step(b generate.Batch, s diffusion.Step) {
	p.count++
	rate := float64(p.count) / time.Since(p.t0).Seconds()
	eta := time.Duration(float64(p.total-p.count) / rate * float64(time.Second))
	if p.terminal {
		if p.count != p.total && time.Since(p.drawn) < 200*time.Millisecond {
			return
		}
		p.drawn = time.Now()
		const width = 30
		n := width * p.count / p.total
		fmt.Fprintf(p.w, "\r[%s%s] step %d/%d  batch %d/%d  %.1f steps/s  ETA %s\x1b[K",
			strings.Repeat("#", n), strings.Repeat(".", width-n), s.Index+1, s.Total, b.Index+1, b.Count, rate, eta.Round(time.Second))
		return
	}
	if tenth := 10 * p.count / p.total; tenth > p.lastTenth || p.count == 1 {
		p.lastTenth = tenth
		fmt.Fprintf(p.w, "step %d/%d of batch %d/%d (%d%%) %.1f steps/s eta %s\n",
			s.Index+1, s.Total, b.Index+1, b.Count, 100*p.count/p.total, rate, eta.Round(time.Second))
	}
}

// finish ends the bar's line on a terminal.
func (p *stepBar) finish() {
	if p.terminal && p.count > 0 {
		fmt.Fprintln(p.w)
	}
}

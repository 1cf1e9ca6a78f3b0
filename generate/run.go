package generate

import (
	"context"
	"fmt"
	"math"

	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/nn"
	"github.com/ddpm-go/ddpm/tensor"
)

// Job is N images to draw: global indices Start .. Start+N-1 under Seed, Batch rows per sampler call.
type Job struct {
	N, Start int
	Seed     uint64
	Batch    int // rows per sampler call; < 1 means all N at once
	// Chunk, if > 0, makes every network call take exactly Chunk rows aligned to global indices
	// (images kChunk .. (k+1)Chunk-1), padding with zero rows at the edges. Engines whose kernels
	// change with the number of rows (oneDNN picks other kernels for 1 image than for 16, which
	// differ in the last bits) then compute each image identically whatever the batch and start.
	// The reference engine needs no chunking: its per-image results never depend on the row count.
	Chunk int
	// Pow2, if > 0 and Chunk is 0, runs every network call as calls of power-of-two row counts up
	// to Pow2 (a power of two), splitting and padding with zero rows as Pow2Pieces plans. Engines
	// that build and keep kernels and buffers per row count (oneDNN) then see at most
	// log2(Pow2)+1 row counts whatever the N of the jobs they serve, so their memory stays
	// bounded, for a few padded rows per call. Unlike Chunk it does not make image i independent
	// of the row count of its call.
	Pow2 int
	XT   []float64 // optional starting x_T, N*dim values (row i is image Start+i)
	// Labels, if not nil, makes the job class-conditional (RunLabeled): Labels[i] is the class of
	// image Start+i (diffusion.NoLabel: none), drawn with classifier-free guidance of scale
	// Guidance (diffusion.Guided: s = 0 unconditional, 1 conditional, > 1 guided). Image i then
	// depends only on Seed, i and its label.
	Labels   []int
	Guidance float64
	// Known, if not nil, makes the job an inpainting (diffusion.Known, the replacement method or
	// RePaint): X0 holds N*dim values (row i for image Start+i) and Mask dim (shared) or N*dim.
	Known *diffusion.Known
	// Step, if not nil, is called after every step of every batch with the batch's first global
	// index and row count; the Step's slices belong to the sampler (copy what you keep).
	Step func(b Batch, s diffusion.Step) error
	// Emit, if not nil, receives each batch's images (b.N*dim values) as the batch finishes, and Run
	// then keeps nothing and returns nil images: a job of 50,000 images needs the memory of one
	// batch, not of all of them. x belongs to the caller.
	Emit func(b Batch, x []float64) error
}

// Batch is one sampler call of a job.
type Batch struct {
	Index, Count int // this is batch Index of Count (0-based)
	Start, N     int // its rows are the images Start .. Start+N-1 (global indices)
}

// Batches splits a job into its sampler calls.
func (j Job) Batches() []Batch {
	out := make([]Batch, j.NumBatches())
	for k := range out {
		out[k] = j.batch(k)
	}
	return out
}

// NumBatches is the number of sampler calls of a job, computed rather than listed: a job of 2^31
// images in batches of one would need gigabytes for the list alone.
func (j Job) NumBatches() int {
	size := j.batchSize()
	if size < 1 {
		return 0
	}
	return (j.N + size - 1) / size
}

func (j Job) batchSize() int {
	if j.Batch < 1 || j.Batch > j.N {
		return j.N
	}
	return j.Batch
}

// batch is sampler call k of the job.
func (j Job) batch(k int) Batch {
	size, lo := j.batchSize(), k*j.batchSize()
	return Batch{Index: k, Count: j.NumBatches(), Start: j.Start + lo, N: min(size, j.N-lo)}
}

// Run draws the job's images with sampler s driven by pred (which outputs p-parameterised
// predictions for rows of dim values), returning N*dim values in image order (or handing them to
// j.Emit batch by batch). Each batch passes its
// first global index as diffusion.Options.Start, so an image depends on Seed and its index only.
// A job with Labels needs a class-conditional model: use RunLabeled.
func Run(ctx context.Context, s diffusion.Sampler, pred diffusion.Predictor, p diffusion.Prediction, dim int, j Job) ([]float64, error) {
	if j.Labels != nil {
		return nil, fmt.Errorf("a job with labels needs a class-conditional model")
	}
	return run(ctx, s, unlabeled{pred}, p, dim, j)
}

// RunLabeled is Run for a model that takes a label per row: with j.Labels each batch samples
// diffusion.Guided over its slice of the labels, whose one call of 2n rows (conditional, then
// unconditional) goes to the network whole (or as Chunk- or Pow2-sized calls); without, every row
// is unlabelled.
func RunLabeled(ctx context.Context, s diffusion.Sampler, model diffusion.LabeledPredictor, p diffusion.Prediction, dim int, j Job) ([]float64, error) {
	return run(ctx, s, model, p, dim, j)
}

func run(ctx context.Context, s diffusion.Sampler, model diffusion.LabeledPredictor, p diffusion.Prediction, dim int, j Job) ([]float64, error) {
	if j.N < 1 {
		return nil, fmt.Errorf("need at least one image, got n=%d", j.N)
	}
	if j.Start < 0 {
		return nil, fmt.Errorf("start index %d must be >= 0", j.Start)
	}
	if j.Pow2 < 0 || j.Pow2&(j.Pow2-1) != 0 {
		return nil, fmt.Errorf("pow2 %d must be 0 or a power of two", j.Pow2)
	}
	if j.XT != nil && len(j.XT) != j.N*dim {
		return nil, fmt.Errorf("initial x_T has %d values, want n*dim = %d*%d", len(j.XT), j.N, dim)
	}
	if k := j.Known; k != nil && (len(k.X0) != j.N*dim || (len(k.Mask) != dim && len(k.Mask) != j.N*dim)) {
		return nil, fmt.Errorf("known part of %d values and mask of %d for %d images of %d", len(k.X0), len(k.Mask), j.N, dim)
	}
	if j.Labels != nil && len(j.Labels) != j.N {
		return nil, fmt.Errorf("%d labels for %d images", len(j.Labels), j.N)
	}
	if math.IsNaN(j.Guidance) || math.IsInf(j.Guidance, 0) {
		return nil, fmt.Errorf("guidance scale %v must be finite", j.Guidance)
	}
	// With Emit the caller keeps the images, so nothing here is sized by N.
	var out []float64
	if j.Emit == nil {
		out = make([]float64, 0, j.N*dim)
	}
	// Batch by batch without listing them, so a job's bookkeeping is not sized by its N either.
	for k := range j.NumBatches() {
		b := j.batch(k)
		lo := b.Start - j.Start
		opts := diffusion.Options{Seed: j.Seed, Start: b.Start, Prediction: p}
		if j.XT != nil {
			opts.XT = j.XT[lo*dim : (lo+b.N)*dim]
		}
		if j.Step != nil {
			opts.Callback = func(s diffusion.Step) error { return j.Step(b, s) }
		}
		if k := j.Known; k != nil {
			opts.Known = &diffusion.Known{X0: k.X0[lo*dim : (lo+b.N)*dim], Mask: k.Mask}
			if len(k.Mask) == j.N*dim {
				opts.Known.Mask = k.Mask[lo*dim : (lo+b.N)*dim]
			}
		}
		bm := model
		switch {
		case j.Chunk > 0:
			bm = &aligned{inner: model, start: b.Start, rows: b.N, k: j.Chunk}
		case j.Pow2 > 0:
			bm = &padded{inner: model, max: j.Pow2}
		}
		var bp diffusion.Predictor = unlabeledCalls{bm}
		if j.Labels != nil {
			bp = &diffusion.Guided{Model: bm, Labels: j.Labels[lo : lo+b.N], Scale: j.Guidance}
		}
		x, err := s.Sample(ctx, bp, b.N, dim, opts)
		if err != nil {
			if b.Count > 1 {
				return nil, fmt.Errorf("batch %d/%d (images %d..%d): %w", b.Index+1, b.Count, b.Start, b.Start+b.N-1, err)
			}
			return nil, err
		}
		if j.Emit != nil {
			if err := j.Emit(b, x); err != nil {
				return nil, err
			}
			continue
		}
		out = append(out, x...)
	}
	if j.Emit != nil {
		return nil, nil
	}
	return out, nil
}

// Sample is Run with the model's network, prediction and image size; a job with Labels needs a
// class-conditional network.
func (m *Model) Sample(ctx context.Context, s diffusion.Sampler, j Job) ([]float64, error) {
	if j.Labels != nil {
		if err := m.CheckLabels(j.Labels); err != nil {
			return nil, err
		}
	}
	return run(ctx, s, nn.Labeled{U: m.Net}, m.Prediction, m.Dim(), j)
}

// CheckLabels refuses labels the model cannot take: any class on an unconditional model, a class
// outside [0, K) on a K-class one.
func (m *Model) CheckLabels(labels []int) error {
	k := m.Net.Cfg.NumClasses
	for _, c := range labels {
		switch {
		case c < 0:
		case k == 0:
			return fmt.Errorf("model %s is unconditional: it takes no class (train one with --cond class)", m.Source)
		case c >= k:
			return fmt.Errorf("class %d: model %s has classes 0..%d", c, m.Source, k-1)
		}
	}
	return nil
}

// unlabeled is a Predictor seen as a LabeledPredictor that takes only unlabelled rows.
type unlabeled struct{ diffusion.Predictor }

func (u unlabeled) Predict(ctx context.Context, x []float64, labels []int, n, dim, t int, out []float64) error {
	for _, c := range labels {
		if c >= 0 {
			return fmt.Errorf("label %d given to an unconditional model", c)
		}
	}
	return u.Predictor.Predict(ctx, x, n, dim, t, out)
}

// unlabeledCalls is a LabeledPredictor called without labels: an unconditional job's predictor.
type unlabeledCalls struct{ diffusion.LabeledPredictor }

func (u unlabeledCalls) Predict(ctx context.Context, x []float64, n, dim, t int, out []float64) error {
	return u.LabeledPredictor.Predict(ctx, x, nil, n, dim, t, out)
}

// aligned is a labelled predictor for the rows start .. start+rows-1 (global indices) that calls
// inner on exactly k rows at a time, rows of global indices [ck, (c+1)k), so each image sits at the
// same place in a call of the same size whatever the batch it came in. A call of 2*rows rows is
// guidance's (the rows, then the same rows unlabelled): each chunk then goes out as one call of 2k
// rows, its conditional rows then its unconditional ones, so guidance keeps one network call per
// chunk and each image its place.
type aligned struct {
	inner     diffusion.LabeledPredictor
	start     int
	rows      int
	k         int
	buf, out  []float64
	bufLabels []int
}

func (a *aligned) Predict(ctx context.Context, x []float64, labels []int, n, dim, t int, out []float64) error {
	halves := 1
	if n == 2*a.rows {
		halves = 2
	} else if n != a.rows {
		return fmt.Errorf("aligned: a call of %d rows for a batch of %d", n, a.rows)
	}
	k := a.k
	if len(a.buf) != halves*k*dim {
		a.buf, a.out = make([]float64, halves*k*dim), make([]float64, halves*k*dim)
		a.bufLabels = make([]int, halves*k)
	}
	var callLabels []int
	if labels != nil {
		callLabels = a.bufLabels
	}
	for lo := 0; lo < a.rows; {
		g := a.start + lo              // global index of the first row of this piece
		first := g - g%k               // first global index of its chunk
		m := min(first+k-g, a.rows-lo) // rows of this batch in the chunk
		clear(a.buf)
		for h := range halves {
			src := h*a.rows + lo // first row of this piece in the call
			dst := h*k + g - first
			copy(a.buf[dst*dim:], x[src*dim:(src+m)*dim])
			if labels != nil {
				for i := range k {
					callLabels[h*k+i] = diffusion.NoLabel
				}
				copy(callLabels[dst:], labels[src:src+m])
			}
		}
		if err := a.inner.Predict(ctx, a.buf, callLabels, halves*k, dim, t, a.out); err != nil {
			return err
		}
		for h := range halves {
			src, dst := h*k+g-first, h*a.rows+lo
			copy(out[dst*dim:(dst+m)*dim], a.out[src*dim:])
		}
		lo += m
	}
	return nil
}

// padded is a labelled predictor that calls inner only on power-of-two row counts up to max: a
// call of n rows runs as the pieces Pow2Pieces plans, the last one padded with unlabelled zero rows.
type padded struct {
	inner     diffusion.LabeledPredictor
	max       int
	plans     map[int][]int // n -> pieces; the same n comes back at every step
	buf, out  []float64
	bufLabels []int
}

func (p *padded) Predict(ctx context.Context, x []float64, labels []int, n, dim, t int, out []float64) error {
	if p.plans == nil {
		p.plans = map[int][]int{}
	}
	pieces, ok := p.plans[n]
	if !ok {
		pieces = Pow2Pieces(n, p.max)
		p.plans[n] = pieces
	}
	lo := 0
	for _, k := range pieces {
		m := min(k, n-lo) // real rows in this piece
		var lab []int
		if labels != nil {
			lab = labels[lo : lo+m]
		}
		if k == m {
			if err := p.inner.Predict(ctx, x[lo*dim:(lo+m)*dim], lab, m, dim, t, out[lo*dim:(lo+m)*dim]); err != nil {
				return err
			}
			lo += m
			continue
		}
		if len(p.buf) < k*dim {
			p.buf, p.out = make([]float64, k*dim), make([]float64, k*dim)
			p.bufLabels = make([]int, k)
		}
		buf := p.buf[:k*dim]
		copy(buf, x[lo*dim:(lo+m)*dim])
		clear(buf[m*dim:])
		if labels != nil {
			lab = p.bufLabels[:k]
			copy(lab, labels[lo:lo+m])
			for i := m; i < k; i++ {
				lab[i] = diffusion.NoLabel
			}
		}
		if err := p.inner.Predict(ctx, buf, lab, k, dim, t, p.out[:k*dim]); err != nil {
			return err
		}
		copy(out[lo*dim:(lo+m)*dim], p.out)
		lo += m
	}
	return nil
}

// callRows is what a network call costs beyond its rows, in rows: served UNet-S on oneDNN (bf16,
// one thread, 28x28) spent about 1.3 ms per row and step, and a request split into two calls
// (16 + 8 rows) about 7 ms per step more than one call of 24 rows. Pow2Pieces weighs padding
// against extra calls with it.
const callRows = 4

// Pow2Pieces plans n rows as network calls of power-of-two sizes up to max (a power of two) whose
// sizes add up to n or, with the last one padded, a little more: the plan of least rows plus
// callRows per call. So 16 rows are one call, 24 are 16 + 8, 33 are 32 + 1 and 60 one padded call
// of 64, where rounding every call up to the next power of two would nearly double the work of 33.
func Pow2Pieces(n, max int) []int {
	var out []int
	for ; n > max; n -= max {
		out = append(out, max)
	}
	// cost[m], first[m]: the cheapest plan of m rows and its first (largest) piece.
	cost := make([]int, n+1)
	first := make([]int, n+1)
	for m := 1; m <= n; m++ {
		cost[m] = -1
		for k := max; k >= 1; k /= 2 { // on a tie the larger piece: fewer calls
			c := callRows + k + cost[m-min(k, m)]
			if cost[m] < 0 || c < cost[m] {
				cost[m], first[m] = c, k
			}
		}
	}
	for m := n; m > 0; m -= min(first[m], m) {
		out = append(out, first[m])
	}
	return out
}

// DefaultPow2 is the Job.Pow2 a server should use on be when its network calls hold at most
// maxRows rows: 0 on the reference engine, which keeps nothing per row count, and otherwise the
// largest power of two not above maxRows, so that oneDNN's per-shape primitives, weight copies
// and buffers stay a fixed set.
func DefaultPow2(be tensor.Backend, maxRows int) int {
	if be.Name() == "ref" || maxRows < 1 {
		return 0
	}
	k := 1
	for 2*k <= maxRows {
		k *= 2
	}
	return k
}

// DefaultChunk is the Job.Chunk to use on be so that images do not depend on the batch: 0 on the
// reference engine, whose per-image results never depend on the row count (tested), and 32
// elsewhere (oneDNN picks different kernels for different row counts; 32 keeps its calls large
// enough to be efficient). Commands should share it so their outputs agree.
func DefaultChunk(be tensor.Backend) int {
	if be.Name() == "ref" {
		return 0
	}
	return 32
}

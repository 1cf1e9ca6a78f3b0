package generate

import (
	"context"
	"fmt"

	"ddpm/diffusion"
	"ddpm/tensor"
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
	XT    []float64 // optional starting x_T, N*dim values (row i is image Start+i)
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
	size := j.Batch
	if size < 1 || size > j.N {
		size = j.N
	}
	var out []Batch
	for lo := 0; lo < j.N; lo += size {
		out = append(out, Batch{Start: j.Start + lo, N: min(size, j.N-lo)})
	}
	for i := range out {
		out[i].Index, out[i].Count = i, len(out)
	}
	return out
}

// Run draws the job's images with sampler s driven by pred (which outputs p-parameterised
// predictions for rows of dim values), returning N*dim values in image order (or handing them to
// j.Emit batch by batch). Each batch passes its
// first global index as diffusion.Options.Start, so an image depends on Seed and its index only.
func Run(ctx context.Context, s diffusion.Sampler, pred diffusion.Predictor, p diffusion.Parameterization, dim int, j Job) ([]float64, error) {
	if j.N < 1 {
		return nil, fmt.Errorf("need at least one image, got n=%d", j.N)
	}
	if j.Start < 0 {
		return nil, fmt.Errorf("start index %d must be >= 0", j.Start)
	}
	if j.XT != nil && len(j.XT) != j.N*dim {
		return nil, fmt.Errorf("initial x_T has %d values, want n*dim = %d*%d", len(j.XT), j.N, dim)
	}
	out := make([]float64, 0, j.N*dim)
	for _, b := range j.Batches() {
		opts := diffusion.Options{Seed: j.Seed, Start: b.Start, Prediction: p}
		if j.XT != nil {
			lo := b.Start - j.Start
			opts.XT = j.XT[lo*dim : (lo+b.N)*dim]
		}
		if j.Step != nil {
			opts.Callback = func(s diffusion.Step) error { return j.Step(b, s) }
		}
		var bp diffusion.Predictor = pred
		if j.Chunk > 0 {
			bp = &aligned{inner: pred, start: b.Start, k: j.Chunk}
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

// Sample is Run with the model's network, objective and image size.
func (m *Model) Sample(ctx context.Context, s diffusion.Sampler, j Job) ([]float64, error) {
	return Run(ctx, s, m.Net, m.Prediction, m.Dim(), j)
}

// aligned is a predictor for rows start.. (global indices) that calls inner on exactly k rows at a
// time, rows of global indices [ck, (c+1)k), so each image sits at the same place in a call of the same
// size whatever the batch it came in.
type aligned struct {
	inner diffusion.Predictor
	start int
	k     int
	buf   []float64
	out   []float64
}

func (a *aligned) Predict(ctx context.Context, x []float64, n, dim, t int, out []float64) error {
	if len(a.buf) != a.k*dim {
		a.buf, a.out = make([]float64, a.k*dim), make([]float64, a.k*dim)
	}
	for lo := 0; lo < n; {
		g := a.start + lo           // global index of the first row of this piece
		first := g - g%a.k          // first global index of its chunk
		m := min(first+a.k-g, n-lo) // rows of this batch in the chunk
		clear(a.buf)
		copy(a.buf[(g-first)*dim:], x[lo*dim:(lo+m)*dim])
		if err := a.inner.Predict(ctx, a.buf, a.k, dim, t, a.out); err != nil {
			return err
		}
		copy(out[lo*dim:(lo+m)*dim], a.out[(g-first)*dim:])
		lo += m
	}
	return nil
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

// Package dnnl is the fast CPU backend of package tensor: convolutions run as oneDNN primitives
// (Intel's deep-learning kernel library, called through cgo), and the memory-bound ops (group norm,
// SiLU, adds, concat, upsampling, dropout, attention's softmax) are C loops compiled with -O3 and
// OpenMP, with GEMMs through oneDNN's sgemm.
//
// Activations live in C memory in NHWC order, the layout for which oneDNN 2.6 picks its fastest
// kernels in both precisions (on AMX machines bf16 convolutions run as brgemm AMX kernels only on
// NHWC; in fp32 NHWC is as fast as the blocked nChw16c). With bf16 precision the 4-D activations
// and their gradients are stored as bf16; weights, their gradients, 2-D tensors (time embeddings),
// uploaded inputs and reductions stay float32. Weights are reordered into each primitive's
// preferred format and cached until Param.Version changes.
//
// GroupNorm's output is computed lazily, so that GroupNorm followed by SiLU runs as one pass and
// SiLU's backward folds into GroupNorm's, with no change to the network code (lazy.go).
//
// oneDNN's OpenMP thread pool belongs to the OS thread that calls it, so every C call runs on one
// goroutine locked to its own OS thread; the Backend methods hand work to it and wait, and Do runs a
// whole training step there without per-op hand-offs.
//
// Without cgo the package still compiles, and New reports that the backend is unavailable.
package dnnl

import (
	"fmt"
	"runtime"

	"github.com/ddpm-go/ddpm/tensor"
)

// Options configure New.
type Options struct {
	// Precision is "fp32", "bf16", or "" / "auto": the fastest precision the CPU runs natively
	// (AutoPrecision).
	Precision string
	// Threads is the OpenMP thread count; < 1 means all cores (runtime.NumCPU).
	Threads int
}

func (o Options) resolve() (tensor.Precision, int, error) {
	threads := o.Threads
	if threads < 1 {
		threads = runtime.NumCPU()
	}
	switch o.Precision {
	case "", "auto":
		return AutoPrecision(), threads, nil
	}
	p, err := tensor.ParsePrecision(o.Precision)
	if err != nil {
		return 0, 0, fmt.Errorf("dnnl: %w", err)
	}
	return p, threads, nil
}

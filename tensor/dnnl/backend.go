//go:build cgo

package dnnl

/*
#include "dd.h"
*/
import "C"

import (
	"fmt"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/ddpm-go/ddpm/tensor"
)

// Backend is the oneDNN implementation of tensor.Backend. Like every backend it is driven from one
// goroutine at a time.
type Backend struct {
	prec    tensor.Precision
	dt      C.int // element type of 4-D activations
	threads int
	w       *worker
	pool    pool
	ref     tensor.Backend // GroupNorm of tensors that are neither 2-D nor 4-D runs on the reference
	mu      sync.Mutex     // guards buf.refs and buf.lazy (cleanups run on another goroutine)
	convs   map[convKey]*C.dd_conv
	weights map[weightKey]*weightCopy
	// nconv and wbytes mirror len(convs) and the bytes of weights for CacheStats, which may be
	// called from any goroutine while the maps belong to the worker thread.
	nconv, wbytes atomic.Int64
	closed        bool
}

type convKey struct {
	n, cin, h, w, cout, k, stride, pad int
	bias                               bool
}

type weightKey struct {
	p    *tensor.Param
	conv *C.dd_conv
	role int // 0 forward, 1 backward data
}

// weightCopy is a Param's weights reordered (and converted to bf16) for one primitive.
type weightCopy struct {
	version uint64
	p       unsafe.Pointer
	bytes   int
}

// Available reports whether this build contains the oneDNN backend.
func Available() bool { return true }

// New starts a backend: its worker thread, oneDNN engine and stream.
func New(opts Options) (tensor.Backend, error) {
	prec, threads, err := opts.resolve()
	if err != nil {
		return nil, err
	}
	w, err := newWorker(threads)
	if err != nil {
		return nil, err
	}
	b := &Backend{prec: prec, dt: dtF32, threads: threads, w: w, ref: tensor.NewReference(threads),
		convs: map[convKey]*C.dd_conv{}, weights: map[weightKey]*weightCopy{}}
	b.pool.free = map[int][]unsafe.Pointer{}
	if prec == tensor.BF16 {
		b.dt = dtBF16
	}
	return b, nil
}

// Name is "dnnl".
func (b *Backend) Name() string { return "dnnl" }

// Precision is the arithmetic of convolutions and the storage type of 4-D activations.
func (b *Backend) Precision() tensor.Precision { return b.prec }

// Threads is the OpenMP thread count.
func (b *Backend) Threads() int { return b.threads }

// Close stops the worker thread and frees cached memory. Tensors still held become invalid.
func (b *Backend) Close() error {
	if b.closed {
		return nil
	}
	b.closed = true
	b.w.do(func() {
		for _, c := range b.weights {
			C.dd_free(c.p, C.size_t(c.bytes))
		}
		for _, c := range b.convs {
			C.dd_conv_free(c)
		}
	})
	b.weights, b.convs = nil, nil
	b.nconv.Store(0)
	b.wbytes.Store(0)
	b.pool.drain()
	b.w.close()
	return nil
}

// Do runs f on the backend's worker thread, where every op f calls on b runs inline instead of
// being handed over one by one (a hand-off costs microseconds, much more on a loaded machine; a
// UNet training step makes several hundred ops). f must use b only from its own goroutine.
// Training loops and benchmarks wrap each step in Do when the backend has it.
func (b *Backend) Do(f func()) {
	if b.w.direct {
		f()
		return
	}
	b.w.do(func() {
		b.w.direct = true
		defer func() { b.w.direct = false }()
		f()
	})
}

// Trim frees the memory kept for reuse (say between training and sampling, whose shapes differ).
func (b *Backend) Trim() { b.pool.drain() }

// MemStats reports the bytes of activations alive now and at most so far, and of the reuse pool.
func (b *Backend) MemStats() (live, peakLive, pooled int) {
	b.pool.mu.Lock()
	defer b.pool.mu.Unlock()
	return b.pool.live, b.pool.peakLive, b.pool.held
}

// CacheStats reports what the backend keeps between calls, none of which Release frees: the
// convolution primitives (one per layer and input shape, batch size included), the bytes of
// weights reordered for them, and the bytes of activation buffers pooled for reuse. A caller that
// feeds many distinct shapes watches these grow (a server pads its batches to a few sizes to
// bound them). Safe to call from any goroutine.
func (b *Backend) CacheStats() (convs, weightBytes, pooledBytes int) {
	b.pool.mu.Lock()
	pooled := b.pool.held
	b.pool.mu.Unlock()
	return int(b.nconv.Load()), int(b.wbytes.Load()), pooled
}

// ---- tensors ----

func (b *Backend) newBuf(shape []int, dt C.int) *tensor.Tensor {
	t := b.newLazy(shape, dt, nil)
	bf := t.Impl.(*buf)
	b.pool.gcHint()
	bf.p = b.pool.get(bf.bytes)
	return t
}

// newLazy makes a tensor whose memory is allocated when op (if any) computes it; op's inputs gain a
// reference each.
func (b *Backend) newLazy(shape []int, dt C.int, op lazyOp) *tensor.Tensor {
	n := tensor.Numel(shape)
	bf := &buf{bytes: n * dtSize(dt), dt: dt, owner: b, refs: 1, lazy: op}
	if op != nil {
		b.mu.Lock()
		for _, in := range op.inputs() {
			in.refs++
		}
		b.mu.Unlock()
	}
	t := &tensor.Tensor{Shape: append([]int(nil), shape...), Impl: bf}
	bf.clean = addCleanup(t, bf)
	return t
}

// unref drops one reference to bf, returning its memory to the pool (and dropping its lazy op's
// references to its inputs) when none is left.
func (b *Backend) unref(bf *buf) {
	b.mu.Lock()
	defer b.mu.Unlock()
	stack := []*buf{bf}
	for len(stack) > 0 {
		q := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if q.refs--; q.refs > 0 {
			continue
		}
		if q.p != nil {
			b.pool.put(q.p, q.bytes)
			q.p = nil
		}
		if q.lazy != nil {
			stack = append(stack, q.lazy.inputs()...)
			q.lazy = nil
		}
	}
}

// actDT is the element type of a new tensor of this shape: 4-D activations follow the precision,
// everything else is float32.
func (b *Backend) actDT(shape []int) C.int {
	if len(shape) == 4 {
		return b.dt
	}
	return dtF32
}

func (b *Backend) newAct(shape ...int) *tensor.Tensor { return b.newBuf(shape, b.actDT(shape)) }

// peek returns x's buffer without computing it if lazy, panicking with the op's name when x is not a
// live tensor of this backend.
func (b *Backend) peek(op string, x *tensor.Tensor) *buf {
	if x == nil {
		panic(fmt.Sprintf("dnnl: %s: nil tensor", op))
	}
	bf, ok := x.Impl.(*buf)
	if !ok || bf == nil {
		panic(fmt.Sprintf("dnnl: %s: tensor %v is not a live dnnl tensor (released, or made by another backend)", op, x.Shape))
	}
	if bf.owner != b {
		panic(fmt.Sprintf("dnnl: %s: tensor %v belongs to another dnnl backend", op, x.Shape))
	}
	return bf
}

// get is peek, computing the contents of a lazy tensor first.
func (b *Backend) get(op string, x *tensor.Tensor) *buf {
	bf := b.peek(op, x)
	if bf.lazy != nil {
		b.compute(bf)
	}
	return bf
}

// in returns a pointer to x's elements as element type dt, converting into a temporary when x is
// stored otherwise (an uploaded f32 image fed to a bf16 op). Call only on the worker thread; the
// returned function frees the temporary.
func (b *Backend) in(x *tensor.Tensor, bf *buf, dt C.int) (unsafe.Pointer, func()) {
	if bf.dt == dt {
		return bf.p, func() {}
	}
	n := x.Len()
	q := b.pool.get(n * dtSize(dt))
	C.dd_convert(bf.p, bf.dt, q, dt, C.size_t(n))
	return q, func() { b.pool.put(q, n*dtSize(dt)) }
}

// Upload copies NCHW (or row-major) float32 data into a new tensor. 4-D tensors are stored NHWC in
// float32 whatever the precision, so that inputs and targets keep their exact values; ops convert.
func (b *Backend) Upload(shape []int, data []float32) *tensor.Tensor {
	if len(data) != tensor.Numel(shape) {
		panic(fmt.Sprintf("dnnl: Upload: shape %v needs %d elements, got %d", shape, tensor.Numel(shape), len(data)))
	}
	t := b.newBuf(shape, dtF32)
	if len(data) == 0 {
		return t
	}
	bf := t.Impl.(*buf)
	b.w.do(func() {
		if len(shape) == 4 {
			C.dd_nchw_to_nhwc((*C.float)(&data[0]), bf.p, dtF32, C.int(shape[0]), C.int(shape[1]), C.int(shape[2]*shape[3]))
		} else {
			C.dd_convert(unsafe.Pointer(&data[0]), dtF32, bf.p, dtF32, C.size_t(len(data)))
		}
	})
	return t
}

// Read copies x out as float32 in NCHW (or row-major) order.
func (b *Backend) Read(x *tensor.Tensor) []float32 {
	if x != nil && x.Impl == nil && x.Data != nil {
		return append([]float32(nil), x.Data...) // a reference tensor handed out by a fallback op
	}
	bf := b.get("Read", x)
	out := make([]float32, x.Len())
	if len(out) == 0 {
		return out
	}
	b.w.do(func() {
		if len(x.Shape) == 4 {
			C.dd_nhwc_to_nchw(bf.p, bf.dt, (*C.float)(&out[0]), C.int(x.Shape[0]), C.int(x.Shape[1]), C.int(x.Shape[2]*x.Shape[3]))
		} else {
			C.dd_convert(bf.p, bf.dt, unsafe.Pointer(&out[0]), dtF32, C.size_t(len(out)))
		}
	})
	return out
}

// Release drops x; its memory returns to the pool once no lazy result still needs it. x must not be
// used afterwards. Releasing twice is a no-op.
func (b *Backend) Release(x *tensor.Tensor) {
	if x == nil {
		return
	}
	if x.Impl == nil {
		x.Data = nil
		return
	}
	bf := b.peek("Release", x)
	x.Impl = nil
	bf.clean.Stop()
	b.unref(bf)
}

func shapePanic(op, format string, args ...any) {
	panic(fmt.Sprintf("dnnl: %s: %s", op, fmt.Sprintf(format, args...)))
}

func sameShape(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func rank(op string, x *tensor.Tensor, r int) {
	if x == nil || len(x.Shape) != r {
		var s []int
		if x != nil {
			s = x.Shape
		}
		shapePanic(op, "want a rank-%d tensor, got shape %v", r, s)
	}
}

func paramShape(op string, p *tensor.Param, want ...int) {
	if p == nil {
		shapePanic(op, "nil param")
	}
	if !sameShape(p.Shape, want) || len(p.W) != tensor.Numel(want) || len(p.G) != tensor.Numel(want) {
		shapePanic(op, "param %q has shape %v (len W %d, G %d), want %v", p.Name, p.Shape, len(p.W), len(p.G), want)
	}
}

func fptr(s []float32) *C.float {
	if len(s) == 0 {
		return nil
	}
	return (*C.float)(unsafe.Pointer(&s[0]))
}

func check(op string, st C.int) {
	if st != 0 {
		panic(fmt.Sprintf("dnnl: %s: oneDNN status %d", op, int(st)))
	}
}

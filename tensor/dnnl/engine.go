//go:build cgo

package dnnl

/*
#cgo CFLAGS: -O3 -fopenmp -Wall
#cgo LDFLAGS: -ldnnl -fopenmp -lm
#include "dd.h"
*/
import "C"

import (
	"fmt"
	"runtime"
	"sync"
	"unsafe"

	"github.com/ddpm-go/ddpm/tensor"
)

// worker owns the OS thread every C call runs on.
type worker struct {
	jobs chan func()
	// direct is set while the worker runs a Backend.Do function: the ops it calls are already on
	// the right thread and run inline. Only the worker goroutine reads or writes it then; the caller
	// of Do is blocked.
	direct bool
}

func newWorker(threads int) (*worker, error) {
	w := &worker{jobs: make(chan func())}
	errc := make(chan error)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine on Close
		if st := C.dd_init(C.int(threads)); st != 0 {
			errc <- fmt.Errorf("dnnl: init: oneDNN status %d", int(st))
			return
		}
		errc <- nil
		for f := range w.jobs {
			f()
		}
	}()
	if err := <-errc; err != nil {
		return nil, err
	}
	return w, nil
}

// do runs f on the worker thread and waits; a panic in f is re-raised in the caller.
func (w *worker) do(f func()) {
	if w.direct {
		f()
		return
	}
	done := make(chan any, 1)
	w.jobs <- func() {
		defer func() { done <- recover() }()
		f()
	}
	if p := <-done; p != nil {
		panic(p)
	}
}

func (w *worker) close() { close(w.jobs) }

// Element types of buffers, as in dd.h.
const (
	dtF32  = C.DD_F32
	dtBF16 = C.DD_BF16
)

func dtSize(dt C.int) int {
	if dt == dtBF16 {
		return 2
	}
	return 4
}

// buf is the Impl of every tensor this backend makes: C memory holding the logical shape's elements,
// NHWC when the tensor is 4-D and in row-major order otherwise.
type buf struct {
	p     unsafe.Pointer // nil while lazy and not yet computed
	bytes int
	dt    C.int
	owner *Backend
	clean runtime.Cleanup
	// refs counts the caller's handle plus one per lazy tensor that will read this buffer; the
	// memory goes back to the pool at zero. Guarded by owner.mu.
	refs int
	// lazy, when set, is the op that will compute the contents on first use (see lazy.go).
	lazy lazyOp
}

// pool recycles C buffers by size: the UNet allocates the same shapes every step, and fresh pages
// from the OS cost a page fault each.
type pool struct {
	mu   sync.Mutex
	free map[int][]unsafe.Pointer
	// live counts bytes handed out and not yet released; held counts bytes sitting in free lists.
	live, held, peakLive int
	sinceGC              int
}

func (p *pool) get(bytes int) unsafe.Pointer {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.live += bytes
	p.peakLive = max(p.peakLive, p.live)
	if l := p.free[bytes]; len(l) > 0 {
		q := l[len(l)-1]
		p.free[bytes] = l[:len(l)-1]
		p.held -= bytes
		return q
	}
	p.sinceGC += bytes
	q := C.dd_alloc(C.size_t(bytes))
	if q == nil {
		panic(fmt.Sprintf("dnnl: out of memory allocating %d bytes", bytes))
	}
	return q
}

func (p *pool) put(q unsafe.Pointer, bytes int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.live -= bytes
	p.held += bytes
	p.free[bytes] = append(p.free[bytes], q)
}

// gcHint runs a collection when much new C memory was allocated since the last one, so the cleanups
// of tensors a caller dropped without Release return their memory before the process grows further.
func (p *pool) gcHint() {
	p.mu.Lock()
	need := p.sinceGC > 1<<30
	if need {
		p.sinceGC = 0
	}
	p.mu.Unlock()
	if need {
		runtime.GC()
	}
}

func (p *pool) drain() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for bytes, l := range p.free {
		for _, q := range l {
			C.dd_free(q, C.size_t(bytes))
		}
	}
	p.free = map[int][]unsafe.Pointer{}
	p.held = 0
}

// addCleanup drops t's reference to its buffer if t becomes unreachable without Release.
func addCleanup(t *tensor.Tensor, bf *buf) runtime.Cleanup {
	return runtime.AddCleanup(t, func(bf *buf) { bf.owner.unref(bf) }, bf)
}

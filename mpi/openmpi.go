//go:build cgo && mpi

package mpi

/*
#cgo pkg-config: ompi-c
#include <mpi.h>

// MPI_COMM_WORLD and the datatypes are macros over Open MPI's globals, which cgo cannot name:
// these wrappers are the whole of the C side.
static int dd_init(int *provided) {
	int done = 0;
	MPI_Initialized(&done);
	if (done) return MPI_Query_thread(provided);
	return MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, provided);
}
static int dd_rank(int *r) { return MPI_Comm_rank(MPI_COMM_WORLD, r); }
static int dd_size(int *s) { return MPI_Comm_size(MPI_COMM_WORLD, s); }
static int dd_allreduce_f32(float *b, int n) { return MPI_Allreduce(MPI_IN_PLACE, b, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD); }
static int dd_allreduce_f64(double *b, int n) { return MPI_Allreduce(MPI_IN_PLACE, b, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD); }
static int dd_bcast(void *b, int n, int root) { return MPI_Bcast(b, n, MPI_BYTE, root, MPI_COMM_WORLD); }
static int dd_bcast_f32(float *b, int n, int root) { return MPI_Bcast(b, n, MPI_FLOAT, root, MPI_COMM_WORLD); }
static int dd_bcast_i64(long long *v, int root) { return MPI_Bcast(v, 1, MPI_LONG_LONG, root, MPI_COMM_WORLD); }
static int dd_barrier(void) { return MPI_Barrier(MPI_COMM_WORLD); }
static int dd_gather_i64(long long v, long long *all, int root) {
	return MPI_Gather(&v, 1, MPI_LONG_LONG, all, 1, MPI_LONG_LONG, root, MPI_COMM_WORLD);
}
static int dd_gatherv(void *b, int n, void *all, int *counts, int *displs, int root) {
	return MPI_Gatherv(b, n, MPI_BYTE, all, counts, displs, MPI_BYTE, root, MPI_COMM_WORLD);
}
static int dd_abort(int code) { return MPI_Abort(MPI_COMM_WORLD, code); }
static int dd_finalize(void) {
	int done = 0;
	MPI_Finalized(&done);
	return done ? MPI_SUCCESS : MPI_Finalize();
}
static void dd_error_string(int code, char *s) {
	int n = 0;
	MPI_Error_string(code, s, &n);
	s[n] = 0;
}
static int dd_max_error_string(void) { return MPI_MAX_ERROR_STRING; }
*/
import "C"

import (
	"errors"
	"fmt"
	"math"
	"os"
	"runtime"
	"sync"
	"time"
	"unsafe"
)

// Enabled reports whether this binary was built with MPI (-tags mpi and cgo).
const Enabled = true

// The thread model. The Go scheduler runs a goroutine on whatever OS thread is free, so two
// consecutive calls from one goroutine may come from two threads, which MPI_THREAD_FUNNELED and
// SERIALIZED both forbid or restrict, and MPI_THREAD_MULTIPLE costs locking in every call and is
// not provided by every Open MPI build. Instead one goroutine, locked to its OS thread
// (runtime.LockOSThread) for the life of the process, makes every MPI call, Init and Finalize
// included: the funnel. Other goroutines hand it closures over a channel and wait. That is exactly
// MPI_THREAD_FUNNELED (Open MPI docs, MPI_Init_thread(3): "the process may be multi-threaded, but
// only the main thread will make MPI calls", main meaning the thread that called
// MPI_Init_thread), which every MPI provides; the handover costs microseconds, against
// milliseconds for the allreduce of a model's gradients.
//
// Signals: Open MPI installs handlers for the signals in its opal_signal parameter (6,7,8,11) only
// where none is installed (ompi_info: "Open MPI will *not* replace signals if handlers are already
// installed by the time MPI_INIT is invoked"); the Go runtime has installed its own for all of them
// before main, so Go's nil-pointer panics and crash reports survive MPI_Init (TestGoSignals).
type funnel struct {
	calls chan func()
	mu    sync.Mutex
	done  bool // finalized
}

var (
	initOnce sync.Once
	world    Comm
	initErr  error
	fun      *funnel
)

// Init starts MPI (MPI_Init_thread, MPI_THREAD_FUNNELED) the first time it is called in a process
// an MPI launcher started, and returns the world communicator; a process started without a
// launcher gets Solo without MPI being initialised, so the MPI build runs as a plain process
// too (and Open MPI's singleton start, which forks an orted, is never needed). Later calls return
// the same Comm. Call Finalize before a successful exit.
func Init() (Comm, error) {
	initOnce.Do(func() {
		if !Launched() {
			world = Solo
			return
		}
		fun = &funnel{calls: make(chan func())}
		ready := make(chan struct{})
		go fun.loop(ready)
		<-ready
		var provided, rank, size C.int
		err := fun.do(func() C.int {
			if rc := C.dd_init(&provided); rc != C.MPI_SUCCESS {
				return rc
			}
			if rc := C.dd_rank(&rank); rc != C.MPI_SUCCESS {
				return rc
			}
			return C.dd_size(&size)
		})
		if err != nil {
			initErr = fmt.Errorf("mpi init: %w", err)
			return
		}
		if provided < C.MPI_THREAD_FUNNELED {
			initErr = fmt.Errorf("mpi init: this MPI provides thread level %d, below MPI_THREAD_FUNNELED", int(provided))
			return
		}
		world = &openMPI{rank: int(rank), size: int(size)}
	})
	return world, initErr
}

// Finalize ends MPI (MPI_Finalize) if Init started it; a process that initialised MPI and exits
// with status 0 without it makes mpirun report the job as failed. Later MPI calls fail.
func Finalize() error {
	if fun == nil {
		return nil
	}
	fun.mu.Lock()
	defer fun.mu.Unlock()
	if fun.done {
		return nil
	}
	err := fun.doLocked(func() C.int { return C.dd_finalize() })
	fun.done = true
	return err
}

func (f *funnel) loop(ready chan<- struct{}) {
	runtime.LockOSThread() // never unlocked: this thread is MPI's "main" thread until exit
	close(ready)
	for call := range f.calls {
		call()
	}
}

// do runs c on the funnel's thread and returns its MPI error, if any. It serialises callers, so
// collectives started from different goroutines cannot interleave.
func (f *funnel) do(c func() C.int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.done {
		return errors.New("mpi: called after Finalize")
	}
	return f.doLocked(c)
}

func (f *funnel) doLocked(c func() C.int) error {
	var rc C.int
	done := make(chan struct{})
	f.calls <- func() { rc = c(); close(done) }
	<-done
	if rc == C.MPI_SUCCESS {
		return nil
	}
	s := make([]byte, int(C.dd_max_error_string())+1)
	C.dd_error_string(rc, (*C.char)(unsafe.Pointer(&s[0])))
	return fmt.Errorf("mpi: %s", C.GoString((*C.char)(unsafe.Pointer(&s[0]))))
}

type openMPI struct{ rank, size int }

func (m *openMPI) Rank() int { return m.rank }
func (m *openMPI) Size() int { return m.size }

// gatherPiece caps the bytes per rank of one MPI_Gatherv round (tests lower it to exercise the
// rounds without gigabytes).
var gatherPiece = maxCount

// maxCount is the most elements one call passes: MPI counts are C ints.
const maxCount = math.MaxInt32

func (m *openMPI) AllreduceFloat32(buf []float32) error {
	return fun.do(func() C.int {
		for len(buf) > 0 {
			n := min(len(buf), maxCount)
			if rc := C.dd_allreduce_f32((*C.float)(unsafe.Pointer(&buf[0])), C.int(n)); rc != C.MPI_SUCCESS {
				return rc
			}
			buf = buf[n:]
		}
		return C.MPI_SUCCESS
	})
}

func (m *openMPI) AllreduceFloat64(buf []float64) error {
	return fun.do(func() C.int {
		for len(buf) > 0 {
			n := min(len(buf), maxCount)
			if rc := C.dd_allreduce_f64((*C.double)(unsafe.Pointer(&buf[0])), C.int(n)); rc != C.MPI_SUCCESS {
				return rc
			}
			buf = buf[n:]
		}
		return C.MPI_SUCCESS
	})
}

func (m *openMPI) Bcast(b []byte, root int) ([]byte, error) {
	if err := checkRoot(root, m.size); err != nil {
		return nil, err
	}
	var out []byte
	err := fun.do(func() C.int {
		n := C.longlong(len(b))
		if rc := C.dd_bcast_i64(&n, C.int(root)); rc != C.MPI_SUCCESS {
			return rc
		}
		out = b
		if m.rank != root {
			out = make([]byte, int(n))
		}
		for p := out; len(p) > 0; {
			k := min(len(p), maxCount)
			if rc := C.dd_bcast(unsafe.Pointer(&p[0]), C.int(k), C.int(root)); rc != C.MPI_SUCCESS {
				return rc
			}
			p = p[k:]
		}
		return C.MPI_SUCCESS
	})
	return out, err
}

func (m *openMPI) BcastFloat32(buf []float32, root int) error {
	if err := checkRoot(root, m.size); err != nil {
		return err
	}
	return fun.do(func() C.int {
		for len(buf) > 0 {
			n := min(len(buf), maxCount)
			if rc := C.dd_bcast_f32((*C.float)(unsafe.Pointer(&buf[0])), C.int(n), C.int(root)); rc != C.MPI_SUCCESS {
				return rc
			}
			buf = buf[n:]
		}
		return C.MPI_SUCCESS
	})
}

func (m *openMPI) Barrier() error { return fun.do(func() C.int { return C.dd_barrier() }) }

// Gather sends the lengths first (MPI_Gather), then the bytes in rounds of MPI_Gatherv whose
// total stays under MPI's int count, each rank sending the next piece of its slice.
func (m *openMPI) Gather(b []byte, root int) ([][]byte, error) {
	if err := checkRoot(root, m.size); err != nil {
		return nil, err
	}
	var out [][]byte
	err := fun.do(func() C.int {
		lens := make([]C.longlong, m.size)
		if rc := C.dd_gather_i64(C.longlong(len(b)), &lens[0], C.int(root)); rc != C.MPI_SUCCESS {
			return rc
		}
		// Every rank needs the longest length to know how many rounds there are.
		longest := C.longlong(len(b))
		if m.rank == root {
			out = make([][]byte, m.size)
			for i, n := range lens {
				out[i] = make([]byte, int(n))
				longest = max(longest, n)
			}
		}
		if rc := C.dd_bcast_i64(&longest, C.int(root)); rc != C.MPI_SUCCESS {
			return rc
		}
		piece := min(maxCount/m.size, gatherPiece)
		var one [1]byte
		counts, displs := make([]C.int, m.size), make([]C.int, m.size)
		for off := 0; off < int(longest); off += piece {
			send, sp := pieceOf(b, off, piece), unsafe.Pointer(&one[0])
			if len(send) > 0 {
				sp = unsafe.Pointer(&send[0])
			}
			var recv []byte
			rp := unsafe.Pointer(&one[0])
			if m.rank == root {
				total := 0
				for i := range out {
					counts[i], displs[i] = C.int(len(pieceOf(out[i], off, piece))), C.int(total)
					total += int(counts[i])
				}
				recv = make([]byte, total+1)
				rp = unsafe.Pointer(&recv[0])
			}
			if rc := C.dd_gatherv(sp, C.int(len(send)), rp, &counts[0], &displs[0], C.int(root)); rc != C.MPI_SUCCESS {
				return rc
			}
			if m.rank == root {
				for i := range out {
					copy(pieceOf(out[i], off, piece), recv[displs[i]:int(displs[i])+int(counts[i])])
				}
			}
		}
		return C.MPI_SUCCESS
	})
	return out, err
}

// pieceOf is b[off:off+n] clipped to b.
func pieceOf(b []byte, off, n int) []byte {
	if off >= len(b) {
		return nil
	}
	return b[off:min(len(b), off+n)]
}

// Abort calls MPI_Abort, which has mpirun end every rank. If the funnel does not take the call
// within a few seconds (its thread is inside a collective that waits for this very rank's peers),
// the process exits with code instead: mpirun ends a job one of whose ranks exited without
// MPI_Finalize and non-zero, so the others still do not hang.
func (m *openMPI) Abort(code int) {
	call := func() { C.dd_abort(C.int(code)); os.Exit(code) }
	select {
	case fun.calls <- call:
		time.Sleep(30 * time.Second) // MPI_Abort does not return; this is a bound, not a wait
	case <-time.After(3 * time.Second):
	}
	os.Exit(code)
}

// Package mpi is the one door from ddpm to MPI: the rank and size of the job, sum-allreduce of
// float32/float64 buffers, broadcast, barrier, gather of byte slices to rank 0 and abort. Nothing
// else of MPI is used, so the interface stays small enough to stub.
//
// Two implementations sit behind Comm. Built with cgo and the mpi tag (go build -tags mpi, needs
// libopenmpi-dev), Init talks to Open MPI through its C API; every other build gets a one-rank stub,
// so the default binary (and CGO_ENABLED=0) still builds and runs everything as one process. A
// stub binary started by mpirun with more than one rank refuses to run (ErrNoMPI) instead of
// becoming N independent runs that write the same files.
//
// NewLocal gives n ranks inside one process (goroutines and channels, no MPI): tests use it to
// check that data-parallel training and sharded sampling match one process without mpirun.
//
// Reductions are in rank order on Local and in Open MPI's order on the real thing; for two ranks
// both are a+b, so a two-rank sum is bitwise the same on either.
package mpi

import (
	"errors"
	"fmt"
	"os"
	"strconv"
)

// Comm is a communicator of Size ranks. Every method except Rank, Size and Abort is collective:
// every rank must call it, in the same order, with matching sizes, or the job deadlocks (the
// real implementation is then ended by mpirun when a rank exits, never by a timeout here).
type Comm interface {
	Rank() int
	Size() int
	// AllreduceFloat32 replaces buf on every rank by the elementwise sum of every rank's buf.
	AllreduceFloat32(buf []float32) error
	// AllreduceFloat64 is AllreduceFloat32 for float64 (losses, flags, norms).
	AllreduceFloat64(buf []float64) error
	// Bcast sends root's b to every rank and returns it; the others' b is ignored (pass nil).
	Bcast(b []byte, root int) ([]byte, error)
	// BcastFloat32 overwrites buf on every rank with root's buf (same length on every rank).
	BcastFloat32(buf []float32, root int) error
	Barrier() error
	// Gather returns every rank's b, in rank order, on root (nil on the others). Lengths may differ.
	Gather(b []byte, root int) ([][]byte, error)
	// Abort ends every rank of the job with code and does not return: a rank that cannot go on
	// must not leave the others waiting in a collective.
	Abort(code int)
}

// ErrNoMPI is returned by Init when the process was started by an MPI launcher for more than one
// rank but the binary has no MPI in it.
var ErrNoMPI = errors.New("started by mpirun, but this ddpm was built without MPI; rebuild with: go build -tags mpi ./cmd/ddpm")

// LaunchedSize is the number of ranks the launcher announces in the environment (Open MPI's
// mpirun sets OMPI_COMM_WORLD_SIZE, MPICH/Hydra and Slurm's PMI2 PMI_SIZE), or 0 when the process
// was not started by one.
func LaunchedSize() int {
	for _, k := range []string{"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"} {
		if n, err := strconv.Atoi(os.Getenv(k)); err == nil && n > 0 {
			return n
		}
	}
	return 0
}

// LaunchedRank is the rank the launcher announces in the environment, or 0: what a process knows
// of its place in a job without MPI (the stub, or before Init).
func LaunchedRank() int {
	for _, k := range []string{"OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK"} {
		if n, err := strconv.Atoi(os.Getenv(k)); err == nil && n >= 0 {
			return n
		}
	}
	return 0
}

// Launched reports whether an MPI launcher started the process, for any number of ranks
// (PMIx-only launchers such as srun --mpi=pmix set PMIX_RANK but no size).
func Launched() bool {
	if LaunchedSize() > 0 {
		return true
	}
	_, ok := os.LookupEnv("PMIX_RANK")
	return ok
}

// Solo is the communicator of a process that is the whole job.
var Solo Comm = solo{}

type solo struct{}

func (solo) Rank() int                                   { return 0 }
func (solo) Size() int                                   { return 1 }
func (solo) AllreduceFloat32([]float32) error            { return nil }
func (solo) AllreduceFloat64([]float64) error            { return nil }
func (solo) Bcast(b []byte, root int) ([]byte, error)    { return b, checkRoot(root, 1) }
func (solo) BcastFloat32(_ []float32, root int) error    { return checkRoot(root, 1) }
func (solo) Barrier() error                              { return nil }
func (solo) Abort(code int)                              { os.Exit(code) }
func (solo) Gather(b []byte, root int) ([][]byte, error) { return [][]byte{b}, checkRoot(root, 1) }

func checkRoot(root, size int) error {
	if root < 0 || root >= size {
		return fmt.Errorf("mpi: root %d out of range for %d ranks", root, size)
	}
	return nil
}

// Or returns whether v is true on any rank (one small allreduce): how ranks agree to stop at the
// same step when only some of them saw a signal.
func Or(c Comm, v bool) (bool, error) {
	if c.Size() == 1 {
		return v, nil
	}
	b := []float64{0}
	if v {
		b[0] = 1
	}
	err := c.AllreduceFloat64(b)
	return b[0] > 0, err
}

// Shard is the half-open range [lo, hi) of n items that rank takes of size ranks: contiguous,
// in rank order, the first n%size ranks one longer.
func Shard(n, rank, size int) (lo, hi int) {
	q, r := n/size, n%size
	lo = rank*q + min(rank, r)
	hi = lo + q
	if rank < r {
		hi++
	}
	return lo, hi
}

// ShardChunks is Shard of the n items start .. start+n-1 cut only at multiples of chunk (the
// global indices a chunked network call covers, generate.Job.Chunk), so that no chunk is split
// between ranks: rank's part as the range [lo, hi) of indices relative to start, 0 <= lo <= hi
// <= n, the parts contiguous and in rank order. chunk < 1 is Shard itself. Whole chunks are dealt
// out as Shard deals items, so parts differ by at most one chunk (the first and last chunk may be
// partial).
func ShardChunks(start, n, chunk, rank, size int) (lo, hi int) {
	if chunk < 1 {
		return Shard(n, rank, size)
	}
	chunks := (start+n+chunk-1)/chunk - start/chunk
	clo, chi := Shard(chunks, rank, size)
	first := start / chunk * chunk
	a, b := max(start, first+clo*chunk), min(start+n, first+chi*chunk)
	lo = min(max(a-start, 0), n) // a rank without a chunk gets the empty range at the end
	return lo, max(b-start, lo)
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/generate"
	"github.com/ddpm-go/ddpm/imageio"
	"github.com/ddpm-go/ddpm/mpi"
	"github.com/ddpm-go/ddpm/train"
)

// joinMPI joins the MPI job the process was started in: the one-rank world when no launcher
// started it, or an error when one did and this binary has no MPI (mpi.ErrNoMPI), so that
// `mpirun -np 4 ddpm train` on a default build is one line, not four runs writing one directory
// (checkLaunch in main.go has refused that already, for every command). The commands of
// mpiCommands call it after their flags (docs/distributed.md).
func joinMPI() (mpi.Comm, error) { return mpi.Init() }

// leaveMPI ends a command's part in the job and returns what the command should return. Alone
// (one rank) it only finalises. Across ranks: a success finalises on every rank; an interruption,
// which the ranks of a training run agree on and reach together, finalises too, and only rank 0
// reports it (the others exit 2 silently); any other error is one rank's and it ends the whole job
// with MPI_Abort after printing its one line, so no rank is left waiting in a collective. An error
// every rank hits alike (a bad flag, a missing file) is printed once: ranks other than 0 wait a
// second first, within which rank 0's abort ends them.
func leaveMPI(name string, comm mpi.Comm, err error, stderr io.Writer) error {
	if comm == nil || comm.Size() == 1 {
		if ferr := mpi.Finalize(); err == nil {
			err = ferr
		}
		return err
	}
	if err == nil {
		return mpi.Finalize()
	}
	if errors.Is(err, train.ErrInterrupted) {
		mpi.Finalize()
		if comm.Rank() != 0 {
			os.Exit(2)
		}
		return err
	}
	if comm.Rank() != 0 {
		time.Sleep(time.Second)
	}
	fmt.Fprintf(stderr, "ddpm %s: rank %d of %d: %v\n", name, comm.Rank(), comm.Size(), err)
	comm.Abort(2)
	return err
}

// shardJob is rank's part of j on size ranks: the images mpi.Shard assigns it, with their rows of
// XT and Labels. Image i depends only on the seed, i (and its label and x_T), and with Chunk on
// the images of its aligned chunk, never on which process draws it, so the parts together are
// the job (keep --chunk the same on every rank, which the flags guarantee).
func shardJob(j generate.Job, rank, size, dim int) generate.Job {
	if size == 1 {
		return j
	}
	// Shards cut at chunk boundaries keep every chunk in one process.
	lo, hi := mpi.ShardChunks(j.Start, j.N, j.Chunk, rank, size)
	return sliceJob(j, lo, hi, dim)
}

// sampleSharded draws rank's part of j (its Emit and Step are replaced: the part's images are
// kept as bytes, imageio.ToUint8 as Outputs writes them; step, if not nil, sees its batches) and
// gathers the parts on rank 0, which passes them to emit in index order as batches of the job.
// Ranks other than 0 emit nothing.
func sampleSharded(ctx context.Context, m *generate.Model, s diffusion.Sampler, j generate.Job, comm mpi.Comm,
	step func(generate.Batch, diffusion.Step) error, emit func(generate.Batch, []uint8) error) error {
	dim := m.Dim()
	part := shardJob(j, comm.Rank(), comm.Size(), dim)
	part.Step = step
	var mine []uint8
	part.Emit = func(b generate.Batch, x []float64) error {
		mine = imageio.ToUint8(mine, x)
		return nil
	}
	if part.N > 0 {
		if _, err := m.Sample(ctx, s, part); err != nil {
			return err
		}
	}
	all, err := comm.Gather(mine, 0)
	if err != nil || comm.Rank() != 0 {
		return err
	}
	for r, b := range all {
		p := shardJob(j, r, comm.Size(), dim)
		if len(b) != p.N*dim {
			return fmt.Errorf("rank %d sent %d bytes for %d images", r, len(b), p.N)
		}
		if p.N == 0 {
			continue
		}
		if err := emit(generate.Batch{Index: r, Count: comm.Size(), Start: p.Start, N: p.N}, b); err != nil {
			return err
		}
	}
	return nil
}

// sliceJob is images lo..hi-1 of j (indices within j).
func sliceJob(j generate.Job, lo, hi, dim int) generate.Job {
	hi = max(hi, lo)
	s := j
	s.Start, s.N = j.Start+lo, hi-lo
	if j.XT != nil {
		s.XT = j.XT[lo*dim : hi*dim]
	}
	if j.Labels != nil {
		s.Labels = j.Labels[lo:hi]
	}
	return s
}

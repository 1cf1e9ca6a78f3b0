package mpi

import (
	"fmt"
	"time"
)

// AllreduceTiming is what TimeAllreduce measured.
type AllreduceTiming struct {
	Bytes, Ranks, Iters int
	Mean, Min           time.Duration // per allreduce, as rank 0 saw it
	// BusGBs is the bus bandwidth of the mean time: 2(n-1)/n * bytes / time, the volume a ring
	// allreduce moves per rank (the convention of NCCL's and Horovod's benchmarks), in GB/s.
	BusGBs float64
}

// TimeAllreduce times iters sum-allreduces of a float32 buffer of the given byte size (rounded
// down to whole floats) on c, after two untimed warm-up calls, each call started together after
// a barrier: the number docs/distributed.md asks for (allreduce time per step for unet-s's 6.96 MB
// of gradients). Collective: every rank calls it with the same arguments.
func TimeAllreduce(c Comm, bytes, iters int) (AllreduceTiming, error) {
	if bytes < 4 || iters < 1 {
		return AllreduceTiming{}, fmt.Errorf("allreduce timing: need at least 4 bytes and 1 iteration, got %d and %d", bytes, iters)
	}
	buf := make([]float32, bytes/4)
	for i := range buf {
		buf[i] = float32(i%7) * 1e-3
	}
	for range 2 {
		if err := c.AllreduceFloat32(buf); err != nil {
			return AllreduceTiming{}, err
		}
	}
	t := AllreduceTiming{Bytes: len(buf) * 4, Ranks: c.Size(), Iters: iters}
	var total time.Duration
	for i := range iters {
		if err := c.Barrier(); err != nil {
			return t, err
		}
		t0 := time.Now()
		if err := c.AllreduceFloat32(buf); err != nil {
			return t, err
		}
		d := time.Since(t0)
		total += d
		if i == 0 || d < t.Min {
			t.Min = d
		}
	}
	t.Mean = total / time.Duration(iters)
	if n := c.Size(); n > 1 && t.Mean > 0 {
		t.BusGBs = 2 * float64(n-1) / float64(n) * float64(t.Bytes) / t.Mean.Seconds() / 1e9
	}
	return t, nil
}

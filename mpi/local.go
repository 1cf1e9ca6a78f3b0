package mpi

import (
	"fmt"
	"os"
	"sync"
)

// NewLocal returns the n ranks of a job held in one process, one Comm per rank, each to be used
// from its own goroutine. It has the semantics of the MPI calls Comm stands for (sums in rank
// order, a broadcast copies root's data) without MPI, so the sharding of training and sampling is
// tested by plain go test, and the -tags mpi tests then only have to show that Open MPI agrees.
// Abort ends the process, as MPI_Abort would.
func NewLocal(n int) []Comm {
	if n < 1 {
		panic(fmt.Sprintf("mpi.NewLocal: %d ranks", n))
	}
	g := &group{n: n, slots: make([]any, n)}
	g.cond = sync.NewCond(&g.mu)
	cs := make([]Comm, n)
	for r := range cs {
		cs[r] = &local{rank: r, g: g}
	}
	return cs
}

type group struct {
	n            int
	mu           sync.Mutex
	cond         *sync.Cond
	slots        []any
	arrived, gen int
}

// barrier waits until every rank has called it (a generation count makes it reusable).
func (g *group) barrier() {
	g.mu.Lock()
	defer g.mu.Unlock()
	gen := g.gen
	if g.arrived++; g.arrived == g.n {
		g.arrived = 0
		g.gen++
		g.cond.Broadcast()
		return
	}
	for gen == g.gen {
		g.cond.Wait()
	}
}

// post publishes v as rank's contribution and returns everybody's once all have posted; the
// caller must call g.barrier() after it has read them, before anyone changes its own.
func (g *group) post(rank int, v any) []any {
	g.mu.Lock()
	g.slots[rank] = v
	g.mu.Unlock()
	g.barrier()
	g.mu.Lock()
	all := append([]any(nil), g.slots...)
	g.mu.Unlock()
	return all
}

type local struct {
	rank int
	g    *group
}

func (l *local) Rank() int      { return l.rank }
func (l *local) Size() int      { return l.g.n }
func (l *local) Abort(code int) { os.Exit(code) }
func (l *local) Barrier() error { l.g.barrier(); return nil }

func allreduce[T float32 | float64](l *local, buf []T) error {
	all := l.g.post(l.rank, buf)
	sum := make([]T, len(buf))
	var err error
	for _, v := range all {
		b := v.([]T)
		if len(b) != len(buf) {
			err = fmt.Errorf("mpi: allreduce of %d values on rank %d, %d on another", len(buf), l.rank, len(b))
			continue
		}
		for i, x := range b {
			sum[i] += x
		}
	}
	l.g.barrier()
	if err == nil {
		copy(buf, sum)
	}
	return err
}

func (l *local) AllreduceFloat32(buf []float32) error { return allreduce(l, buf) }
func (l *local) AllreduceFloat64(buf []float64) error { return allreduce(l, buf) }

func (l *local) Bcast(b []byte, root int) ([]byte, error) {
	if err := checkRoot(root, l.g.n); err != nil {
		return nil, err
	}
	all := l.g.post(l.rank, b)
	out := append([]byte(nil), all[root].([]byte)...)
	l.g.barrier()
	return out, nil
}

func (l *local) BcastFloat32(buf []float32, root int) error {
	if err := checkRoot(root, l.g.n); err != nil {
		return err
	}
	all := l.g.post(l.rank, buf)
	src := all[root].([]float32)
	var err error
	if len(src) != len(buf) {
		err = fmt.Errorf("mpi: broadcast of %d values on rank %d, %d on root", len(buf), l.rank, len(src))
	} else if l.rank != root {
		copy(buf, src)
	}
	l.g.barrier()
	return err
}

func (l *local) Gather(b []byte, root int) ([][]byte, error) {
	if err := checkRoot(root, l.g.n); err != nil {
		return nil, err
	}
	all := l.g.post(l.rank, b)
	var out [][]byte
	if l.rank == root {
		out = make([][]byte, len(all))
		for i, v := range all {
			out[i] = append([]byte(nil), v.([]byte)...)
		}
	}
	l.g.barrier()
	return out, nil
}

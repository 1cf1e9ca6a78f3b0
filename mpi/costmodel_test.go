package mpi

import (
	"math"
	"testing"
)

// The ring allreduce's closed form on hand-checked numbers, and the projection's algebra: at the
// per-node batch BatchFor returns the efficiency is reached, one image fewer it is not.
func TestCostModel(t *testing.T) {
	ten := Link{Name: "10GbE", Gbps: 10, LatencyUS: 50}
	// 2 nodes: one reduce-scatter step and one allgather step, each moving half the bytes: the
	// whole buffer once at 1.25 GB/s, plus two latencies.
	if got, want := RingAllreduce(1.25e9, 2, ten), 1+2*50e-6; math.Abs(got-want) > 1e-12 {
		t.Errorf("2 nodes: %g s, want %g", got, want)
	}
	if RingAllreduce(1e9, 1, ten) != 0 {
		t.Error("one node communicates")
	}
	// Bandwidth term tends to 2 x bytes / rate as n grows.
	if got := RingAllreduce(1.25e9, 1000, Link{Gbps: 10}); math.Abs(got-2*999/1000.0) > 1e-9 {
		t.Errorf("1000 nodes: %g", got)
	}
	p := Project(400, 6.96e6, 16, 128, ten)
	if p.Global != 2048 || math.Abs(p.ComputeS-0.32) > 1e-12 || math.Abs(p.Efficiency-p.ComputeS/(p.ComputeS+p.AllreduceS)) > 1e-12 ||
		math.Abs(p.ImagesPerSec-16*400*p.Efficiency) > 1e-6 {
		t.Errorf("projection %+v", p)
	}
	for _, n := range []int{4, 16, 64} {
		b, err := BatchFor(400, 6.96e6, n, ten, 0.9)
		if err != nil {
			t.Fatal(err)
		}
		if e := Project(400, 6.96e6, n, b, ten).Efficiency; e < 0.9 {
			t.Errorf("%d nodes, %d per node: efficiency %g < 0.9", n, b, e)
		}
		if e := Project(400, 6.96e6, n, b-1, ten).Efficiency; b > 1 && e >= 0.9 {
			t.Errorf("%d nodes: %d per node already reaches 0.9 (%g)", n, b-1, e)
		}
	}
	if _, err := BatchFor(400, 1, 2, ten, 1); err == nil {
		t.Error("efficiency 1 accepted")
	}
}

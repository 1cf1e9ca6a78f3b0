package mpi

import (
	"fmt"
	"math"
	"strings"
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

// The table's rows are Project's and BatchFor's numbers, one per link and node count.
func TestProjectionTable(t *testing.T) {
	tab, err := ProjectionTable(100, 1.25e9, []int{2, 4}, Ethernet[:1], 64, 0.9)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(tab), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d lines, want header, rule and 2 rows:\n%s", len(lines), tab)
	}
	// 2 nodes on 10 GbE: allreduce 1 s + 2 x 50 µs; compute 0.64 s; 128 images per 1.6401 s.
	p := Project(100, 1.25e9, 2, 64, Ethernet[0])
	need, _ := BatchFor(100, 1.25e9, 2, Ethernet[0], 0.9)
	want := fmt.Sprintf("| 2 | 10 GbE | %.1f ms | %.0f | %.0f%% | %d (global %d) |", p.AllreduceS*1e3, p.ImagesPerSec, p.Efficiency*100, need, 2*need)
	if lines[2] != want || !strings.Contains(want, "1000.1 ms | 78 | 39% | 901") {
		t.Errorf("row %q, want %q", lines[2], want)
	}
	if _, err := ProjectionTable(100, 1, []int{2}, Ethernet, 1, 1); err == nil {
		t.Error("efficiency 1 accepted")
	}
}

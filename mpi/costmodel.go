package mpi

import (
	"fmt"
	"math"
	"strings"
)

// Link is a network between nodes for the cost model: its bandwidth, and the latency a message
// pays per hop of a ring.
type Link struct {
	Name      string
	Gbps      float64 // line rate, gigabits per second
	LatencyUS float64 // per message, microseconds (TCP over Ethernet: tens of microseconds)
}

// RingAllreduce is the time of a ring allreduce of bytes over n nodes (Patarasuk & Yuan 2009; the
// algorithm of Horovod and NCCL): a reduce-scatter and an allgather, each n-1 steps moving
// bytes/n per node, so 2(n-1)/n x bytes cross every link and 2(n-1) latencies are paid. It is
// bandwidth-optimal: the bytes per node do not grow with n.
func RingAllreduce(bytes float64, n int, l Link) float64 {
	if n < 2 {
		return 0
	}
	steps := 2 * float64(n-1)
	return steps/float64(n)*bytes*8/(l.Gbps*1e9) + steps*l.LatencyUS*1e-6
}

// Projection is what data-parallel training on n nodes is expected to do per step, with the
// allreduce after the backward pass (no overlap: the bound ddpm implements).
type Projection struct {
	Nodes        int
	Link         string
	PerNode      int     // images per node per step
	Global       int     // images per step
	ComputeS     float64 // one node's forward and backward on PerNode images
	AllreduceS   float64
	ImagesPerSec float64
	Efficiency   float64 // ImagesPerSec / (Nodes x one node's rate)
}

// Project projects training on n nodes, each computing at rate images per second, with gradients of
// gradBytes allreduced over link each step and perNode images per node.
func Project(rate, gradBytes float64, n, perNode int, l Link) Projection {
	comp := float64(perNode) / rate
	ar := RingAllreduce(gradBytes, n, l)
	step := comp + ar
	return Projection{Nodes: n, Link: l.Name, PerNode: perNode, Global: n * perNode, ComputeS: comp, AllreduceS: ar,
		ImagesPerSec: float64(n*perNode) / step, Efficiency: comp / step}
}

// BatchFor is the smallest images per node at which n nodes reach efficiency eff (in (0, 1)):
// compute must be eff/(1-eff) times the allreduce.
func BatchFor(rate, gradBytes float64, n int, l Link, eff float64) (int, error) {
	if !(eff > 0 && eff < 1) {
		return 0, fmt.Errorf("efficiency %g outside (0, 1)", eff)
	}
	ar := RingAllreduce(gradBytes, n, l)
	return max(1, int(math.Ceil(rate*ar*eff/(1-eff)))), nil
}

// Ethernet is the two links the projections in docs/distributed.md assume: TCP over 10 and
// 25 Gbit/s Ethernet, 50 µs per message (Open MPI's tcp BTL between two hosts on one switch).
var Ethernet = []Link{{Name: "10 GbE", Gbps: 10, LatencyUS: 50}, {Name: "25 GbE", Gbps: 25, LatencyUS: 50}}

// ProjectionTable is the Markdown table of Project for every node count and link, with perNode images
// per node, and beside each row the per-node batch BatchFor gives for efficiency eff.
func ProjectionTable(rate, gradBytes float64, nodes []int, links []Link, perNode int, eff float64) (string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "| nodes | link | allreduce | img/s | efficiency | batch per node for %.0f%% |\n", eff*100)
	b.WriteString("| --- | --- | --- | --- | --- | --- |\n")
	for _, l := range links {
		for _, n := range nodes {
			p := Project(rate, gradBytes, n, perNode, l)
			need, err := BatchFor(rate, gradBytes, n, l, eff)
			if err != nil {
				return "", err
			}
			fmt.Fprintf(&b, "| %d | %s | %.1f ms | %.0f | %.0f%% | %d (global %d) |\n",
				n, l.Name, p.AllreduceS*1e3, p.ImagesPerSec, p.Efficiency*100, need, need*n)
		}
	}
	return b.String(), nil
}

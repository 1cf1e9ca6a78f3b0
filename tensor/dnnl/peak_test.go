//go:build cgo

package dnnl

import (
	"testing"

	"github.com/ddpm-go/ddpm/tensor"
)

// TestPeakGFLOPS checks the loop runs and its rate is physically possible: above a GFLOP/s and
// below 64 FLOPs per cycle per thread at 6 GHz (a fp32 AVX-512 core does at most 64 per cycle).
func TestPeakGFLOPS(t *testing.T) {
	cpu := ThisCPU()
	for _, p := range []tensor.Precision{tensor.FP32, tensor.BF16} {
		g, err := PeakGFLOPS(p, 1)
		if p == tensor.BF16 && !cpu.AVX512BF16 || p == tensor.FP32 && !cpu.AVX2 {
			if err == nil {
				t.Errorf("%v: measured %.0f GFLOP/s on a CPU without the instructions", p, g)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		limit := 64.0 * 6
		if p == tensor.BF16 {
			limit *= 2
		}
		if g < 1 || g > limit {
			t.Errorf("%v peak %.1f GFLOP/s on one thread is out of range", p, g)
		}
		t.Logf("%v: %.0f GFLOP/s on one thread", p, g)
	}
}

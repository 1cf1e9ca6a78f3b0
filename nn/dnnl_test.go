//go:build cgo

package nn_test

import (
	"math"
	"testing"

	"ddpm/nn"
	"ddpm/tensor"
	"ddpm/tensor/dnnl"
)

// TestUNetSMatchesPyTorchDNNL is the PyTorch fixture check on the oneDNN backend. fp32: the same
// tolerances as the reference (1e-4 output, 1e-3 gradients). bf16 (only where the CPU runs it fast):
// bf16 keeps 8 bits of mantissa, so through some 20 layers the output is held to 3e-2 and the
// gradients to 5e-2 relative to their largest entry (measured: 1.2e-2 and 2.3e-2; fp32 2e-6, 3e-6).
func TestUNetSMatchesPyTorchDNNL(t *testing.T) {
	if !dnnl.Available() {
		t.Skip("built without oneDNN")
	}
	for _, c := range []struct {
		prec             string
		tolOut, tolGrads float64
	}{{"fp32", 1e-4, 1e-3}, {"bf16", 3e-2, 5e-2}} {
		t.Run(c.prec, func(t *testing.T) {
			if c.prec == "bf16" && dnnl.AutoPrecision().String() != "bf16" {
				t.Skip("no AMX-BF16 on this CPU")
			}
			be, err := dnnl.New(dnnl.Options{Precision: c.prec, Threads: 2})
			if err != nil {
				t.Fatal(err)
			}
			if cl, ok := be.(interface{ Close() error }); ok {
				defer cl.Close()
			}
			checkFixture(t, be, c.tolOut, c.tolGrads)
		})
	}
}

// TestTinyDNNLMatchesReference runs a training step of the tiny config (attention, dropout, two
// blocks per level: what the PyTorch fixture does not cover) on oneDNN fp32 and on the reference,
// from the same weights and dropout seed: output within 1e-4 and every parameter gradient within
// 1e-3 of the reference, relative to the largest entry.
func TestTinyDNNLMatchesReference(t *testing.T) {
	if !dnnl.Available() {
		t.Skip("built without oneDNN")
	}
	fast, err := dnnl.New(dnnl.Options{Precision: "fp32", Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	if cl, ok := fast.(interface{ Close() error }); ok {
		defer cl.Close()
	}
	run := func(be tensor.Backend) ([]float32, []*tensor.Param) {
		u, _ := nn.New(tiny, be, 8)
		shape := []int{3, 2, 8, 8}
		x := be.Upload(shape, tensor.RandN(shape, 1))
		eps, err := u.Forward(x, []int{1, 50, 900}, true)
		if err != nil {
			t.Fatal(err)
		}
		out := be.Read(eps)
		_, d := be.MSE(eps, be.Upload(shape, tensor.RandN(shape, 2)))
		u.ZeroGrad()
		if _, err := u.Backward(d); err != nil {
			t.Fatal(err)
		}
		return out, u.Params()
	}
	refOut, refPs := run(tensor.NewReference(0))
	out, ps := run(fast)
	if e := relErr(out, refOut); e > 1e-4 {
		t.Errorf("output rel err %.3g", e)
	}
	// The key bias gets an exactly zero gradient (softmax ignores a shift shared by all keys), so
	// errors are measured against the largest gradient entry of the whole network when a tensor's own
	// is below a millionth of it.
	scale := 0.0
	for _, p := range refPs {
		for _, g := range p.G {
			scale = max(scale, math.Abs(float64(g)))
		}
	}
	worst := 0.0
	for i, p := range ps {
		e := relErr(p.G, refPs[i].G)
		if m := maxAbs(refPs[i].G); m < 1e-6*scale {
			e = e * m / scale
		}
		worst = max(worst, e)
		if e > 1e-3 {
			t.Errorf("grad %s rel err %.3g", p.Name, e)
		}
	}
	t.Logf("%d parameter gradients, worst rel err %.3g", len(ps), worst)
}

func maxAbs(v []float32) float64 {
	m := 0.0
	for _, x := range v {
		m = max(m, math.Abs(float64(x)))
	}
	return m
}

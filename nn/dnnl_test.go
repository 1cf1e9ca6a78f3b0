//go:build cgo

package nn_test

import (
	"testing"

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

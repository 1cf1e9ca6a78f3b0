package nn_test

import (
	"testing"

	"github.com/ddpm-go/ddpm/nn"
	"github.com/ddpm-go/ddpm/tensor"
)

// BenchmarkAdamWUNetS is one optimizer step over unet-s's 1,741,025 parameters.
func BenchmarkAdamWUNetS(b *testing.B) {
	cfg, _ := nn.Named("unet-s")
	u, _ := nn.New(cfg, tensor.NewReference(1), 1)
	for i, p := range u.Params() {
		copy(p.G, tensor.RandN(p.Shape, uint64(i)))
	}
	o := nn.NewAdamW(u.Params(), 1e-4)
	for b.Loop() {
		o.Step()
	}
}

// BenchmarkEMAUNetS is one EMA update over unet-s.
func BenchmarkEMAUNetS(b *testing.B) {
	cfg, _ := nn.Named("unet-s")
	u, _ := nn.New(cfg, tensor.NewReference(1), 1)
	e := nn.NewEMA(u.Params(), 0.999)
	for b.Loop() {
		e.Update()
	}
}

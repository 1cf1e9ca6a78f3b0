//go:build cgo

package dnnl_test

import (
	"math"
	"testing"

	"github.com/ddpm-go/ddpm/nn"
	"github.com/ddpm-go/ddpm/tensor"
	"github.com/ddpm-go/ddpm/tensor/dnnl"
)

// TestUNetSMatchesReference runs a UNet-S training forward and backward (batch 2) on the reference
// and on this backend with the same weights, and compares the output, dL/dx and every parameter
// gradient (fp32: 1e-4 of the largest value; bf16: 5e-2, since every activation is rounded to
// 8 bits of mantissa through 30 layers).
func TestUNetSMatchesReference(t *testing.T) {
	for _, name := range []string{"unet-s", "unet-m"} {
		t.Run(name, func(t *testing.T) { testUNetMatchesReference(t, name) })
	}
}

// testUNetMatchesReference is TestUNetSMatchesReference for a named config (unet-m adds attention
// and dropout).
func testUNetMatchesReference(t *testing.T, name string) {
	cfg, err := nn.Named(name)
	if err != nil {
		t.Fatal(err)
	}
	run := func(be tensor.Backend) (out, dx []float32, grads [][]float32) {
		u, err := nn.New(cfg, be, 7)
		if err != nil {
			t.Fatal(err)
		}
		shape := []int{2, 1, 28, 28}
		x := be.Upload(shape, tensor.RandN(shape, 1))
		target := be.Upload(shape, tensor.RandN(shape, 2))
		y, err := u.Forward(x, []int{3, 900}, true)
		if err != nil {
			t.Fatal(err)
		}
		_, d := be.MSE(y, target)
		u.ZeroGrad()
		dxT, err := u.Backward(d)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range u.Params() {
			grads = append(grads, append([]float32(nil), p.G...))
		}
		return be.Read(y), be.Read(dxT), grads
	}
	wantOut, wantDx, wantG := run(tensor.NewReference(2))
	for _, c := range []struct {
		prec string
		tol  float64
	}{{"fp32", 1e-4}, {"bf16", 5e-2}} {
		be, err := dnnl.New(dnnl.Options{Precision: c.prec, Threads: 2})
		if err != nil {
			t.Fatal(err)
		}
		out, dx, g := run(be)
		// Gradients that are zero in exact arithmetic (the attention keys' bias: softmax ignores a
		// constant shift) are rounding noise on both sides; floor the scale at 1e-3 of the largest
		// gradient so that such noise is compared against the gradients' own size.
		var gmax float64
		for _, w := range wantG {
			for _, v := range w {
				gmax = math.Max(gmax, math.Abs(float64(v)))
			}
		}
		check := func(name string, got, want []float32) {
			var d, m float64
			for i := range want {
				d = math.Max(d, math.Abs(float64(got[i]-want[i])))
				m = math.Max(m, math.Abs(float64(want[i])))
			}
			if e := d / math.Max(m, 1e-3*gmax); e > c.tol {
				t.Errorf("%s %s: relative error %.3g > %.3g", c.prec, name, e, c.tol)
			}
		}
		check("output", out, wantOut)
		check("dx", dx, wantDx)
		u, _ := nn.New(cfg, be, 7)
		for i, p := range u.Params() {
			check("grad "+p.Name, g[i], wantG[i])
		}
		be.(interface{ Close() error }).Close()
	}
}

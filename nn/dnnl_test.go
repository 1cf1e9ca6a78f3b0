//go:build cgo

package nn_test

import (
	"math"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/ddpm-go/ddpm/nn"
	"github.com/ddpm-go/ddpm/tensor"
	"github.com/ddpm-go/ddpm/tensor/dnnl"
)

// TestUNetSMatchesPyTorchDNNL is the PyTorch fixture check on the oneDNN backend. fp32: the same
// tolerances as the reference (1e-4 output, 1e-3 gradients). bf16: bf16 keeps 8 bits of mantissa, so
// through some 20 layers the output is held to 3e-2 and the gradients to 5e-2 relative to their
// largest entry (measured: 1.2e-2 and 2.3e-2; fp32 2e-6, 3e-6).
//
// The check runs once for every kernel family oneDNN can dispatch to on this CPU: in this process at
// the CPU's best ISA, and in child processes limited by DNNL_MAX_CPU_ISA to AVX2 (fp32) and to the
// plain AVX-512 core, where bf16 is emulated (fp32 and bf16), so an AVX2-only or a pre-BF16 AVX-512
// machine runs code that was tested here.
func TestUNetSMatchesPyTorchDNNL(t *testing.T) {
	if !dnnl.Available() {
		t.Skip("built without oneDNN")
	}
	limit := os.Getenv("DNNL_MAX_CPU_ISA")
	t.Logf("oneDNN ISA %s (DNNL_MAX_CPU_ISA=%q); auto precision %s", dnnl.ISA(), limit, dnnl.AutoPrecision())
	for _, c := range []struct {
		prec             string
		tolOut, tolGrads float64
	}{{"fp32", 1e-4, 1e-3}, {"bf16", 3e-2, 5e-2}} {
		t.Run(c.prec, func(t *testing.T) {
			if c.prec == "bf16" && limit == "" && !dnnl.ThisCPU().NativeBF16() {
				t.Skipf("%s has neither AMX-BF16 nor AVX512-BF16: bf16 is tested emulated, in the avx512_core child", dnnl.ThisCPU().Model)
			}
			if c.prec == "bf16" && strings.EqualFold(limit, "avx2") {
				t.Skip("oneDNN has no bf16 convolutions below AVX-512")
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
	if limit != "" {
		return
	}
	cpu := dnnl.ThisCPU()
	for _, c := range []struct {
		isa, want string
		on        bool
	}{{"AVX512_CORE", "avx512_core", cpu.AVX512}, {"AVX2", "avx2", cpu.AVX2}} {
		t.Run("isa="+c.want, func(t *testing.T) {
			if !c.on {
				t.Skipf("this CPU has no %s", c.want)
			}
			exe, err := os.Executable()
			if err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(exe, "-test.run", "^TestUNetSMatchesPyTorchDNNL$", "-test.v", "-test.count=1")
			cmd.Env = append(os.Environ(), "DNNL_MAX_CPU_ISA="+c.isa)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("limited to %s: %v\n%s", c.isa, err, out)
			}
			if !strings.Contains(string(out), "oneDNN ISA "+c.want+" ") {
				t.Fatalf("the child did not run %s kernels:\n%s", c.want, out)
			}
			t.Logf("%s", firstLines(string(out), "worst", "ISA"))
		})
	}
}

// firstLines keeps the lines of a child test's log that mention one of the words.
func firstLines(s string, words ...string) string {
	var keep []string
	for _, l := range strings.Split(s, "\n") {
		for _, w := range words {
			if strings.Contains(l, w) {
				keep = append(keep, strings.TrimSpace(l))
				break
			}
		}
	}
	return strings.Join(keep, "; ")
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

package dnnl

import (
	"testing"

	"github.com/ddpm-go/ddpm/tensor"
)

// TestAutoPrecisionFromFlags: bf16 exactly where the CPU has native bf16 dot products (AMX or
// AVX512-BF16); AVX2-only and plain AVX-512 machines stay fp32.
func TestAutoPrecisionFromFlags(t *testing.T) {
	const avx512 = "fma avx2 avx512f avx512dq avx512bw avx512vl"
	for _, c := range []struct {
		flags string
		want  tensor.Precision
		isas  string
	}{
		{"sse4_2", tensor.FP32, "baseline x86-64"},
		{"fma avx2", tensor.FP32, "avx2"},
		{avx512, tensor.FP32, "avx512 avx2"},
		{avx512 + " avx512_bf16 avx_vnni", tensor.BF16, "avx512_bf16 avx512 avx2"},
		{avx512 + " avx512_bf16 amx_bf16 amx_tile", tensor.BF16, "amx_bf16 avx512_bf16 avx512 avx2"},
		{"avx512_bf16", tensor.FP32, "baseline x86-64"}, // bf16 without the AVX-512 core is not usable
	} {
		cpu := parseCPUInfo("processor\t: 0\nmodel name\t: Test CPU\nflags\t\t: " + c.flags + "\n\nprocessor\t: 1\nflags\t\t: avx512_bf16\n")
		if got := cpu.AutoPrecision(); got != c.want {
			t.Errorf("%q: auto = %v, want %v", c.flags, got, c.want)
		}
		if cpu.ISAs() != c.isas {
			t.Errorf("%q: ISAs %q, want %q", c.flags, cpu.ISAs(), c.isas)
		}
		if cpu.Model != "Test CPU" {
			t.Errorf("model %q", cpu.Model)
		}
	}
}

package dnnl

import (
	"os"
	"strings"
	"sync"

	"github.com/ddpm-go/ddpm/tensor"
)

// CPU is what the precision choice is based on: the processor's name and the instruction sets that
// decide which kernels oneDNN can run natively.
type CPU struct {
	Model string
	// AVX2 and AVX512 (F, BW, VL, DQ: oneDNN's avx512_core) bound the fp32 kernels; AVX512BF16
	// (vdpbf16ps) and AMXBF16 (tile matrix multiply) run bf16 dot products natively, at twice and
	// many times the fp32 FMA rate. Without either, oneDNN emulates bf16 and it is slower than fp32.
	AVX2, AVX512, AVX512BF16, AMXBF16 bool
}

var cpuOnce = sync.OnceValue(func() CPU {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return CPU{}
	}
	return parseCPUInfo(string(b))
})

// ThisCPU reads /proc/cpuinfo once (a zero CPU where it cannot be read: not Linux).
func ThisCPU() CPU { return cpuOnce() }

// parseCPUInfo reads the first processor's model name and flags.
func parseCPUInfo(s string) CPU {
	var c CPU
	flags := map[string]bool{}
	for _, line := range strings.Split(s, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch strings.TrimSpace(k) {
		case "model name":
			if c.Model == "" {
				c.Model = strings.TrimSpace(v)
			}
		case "flags":
			if len(flags) == 0 {
				for _, f := range strings.Fields(v) {
					flags[f] = true
				}
			}
		}
	}
	c.AVX2 = flags["avx2"] && flags["fma"]
	c.AVX512 = flags["avx512f"] && flags["avx512bw"] && flags["avx512vl"] && flags["avx512dq"]
	c.AVX512BF16 = c.AVX512 && flags["avx512_bf16"]
	c.AMXBF16 = flags["amx_bf16"] && flags["amx_tile"]
	return c
}

// NativeBF16 reports whether the CPU computes bf16 dot products in hardware (AMX or AVX512-BF16).
func (c CPU) NativeBF16() bool { return c.AMXBF16 || c.AVX512BF16 }

// AutoPrecision is the fastest precision the CPU runs natively: bf16 where it has AMX-BF16 or
// AVX512-BF16 (measured on an AMD EPYC with AVX512-BF16 and no AMX: bf16 trains UNet-S 1.5x and
// samples 1.8x faster than fp32, at the same loss and FID), fp32 elsewhere, AVX2-only CPUs
// included, where oneDNN would emulate bf16 more slowly than it runs fp32.
func (c CPU) AutoPrecision() tensor.Precision {
	if c.NativeBF16() {
		return tensor.BF16
	}
	return tensor.FP32
}

// ISAs lists the instruction sets the choice was based on, widest first, e.g. "avx512 avx512_bf16".
func (c CPU) ISAs() string {
	var s []string
	for _, f := range []struct {
		on   bool
		name string
	}{{c.AMXBF16, "amx_bf16"}, {c.AVX512BF16, "avx512_bf16"}, {c.AVX512, "avx512"}, {c.AVX2, "avx2"}} {
		if f.on {
			s = append(s, f.name)
		}
	}
	if len(s) == 0 {
		return "baseline x86-64"
	}
	return strings.Join(s, " ")
}

// AutoPrecision is the precision "auto" selects on this machine.
func AutoPrecision() tensor.Precision { return ThisCPU().AutoPrecision() }

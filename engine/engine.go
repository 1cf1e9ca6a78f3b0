// Package engine picks the tensor backend a command runs on, so that `ddpm train`, `ddpm sample`
// and the server make the same choice from the same flags: oneDNN (tensor/dnnl) when the build has
// cgo, the plain-Go reference kernels otherwise or when asked.
package engine

import (
	"fmt"
	"io"

	"github.com/ddpm-go/ddpm/tensor"
	"github.com/ddpm-go/ddpm/tensor/dnnl"
)

// Names are the values New accepts for the engine.
var Names = []string{"auto", "dnnl", "ref"}

// New starts a backend. engine is "auto" (dnnl when built in, else the reference), "dnnl" (an
// error without cgo) or "ref". precision is "auto", "fp32" or "bf16" ("auto" lets dnnl pick bf16
// where the CPU has native bf16 dot products, AMX or AVX512-BF16: dnnl.AutoPrecision; the reference
// engine is always fp32, and asking it for bf16 is an error).
// threads < 1 means all cores. Close the backend with Close when done.
func New(engine, precision string, threads int) (tensor.Backend, error) {
	switch precision {
	case "", "auto", "fp32", "bf16":
	default:
		return nil, fmt.Errorf("unknown precision %q (want auto, fp32 or bf16)", precision)
	}
	switch engine {
	case "", "auto", "dnnl":
		if dnnl.Available() {
			return dnnl.New(dnnl.Options{Precision: precision, Threads: threads})
		}
		if engine == "dnnl" {
			return nil, fmt.Errorf("engine dnnl: this build has no oneDNN backend (built without cgo)")
		}
		fallthrough
	case "ref":
		if precision == "bf16" {
			return nil, fmt.Errorf("the reference engine has no bf16 (use --precision fp32 or auto)")
		}
		return tensor.NewReference(threads), nil
	}
	return nil, fmt.Errorf("unknown engine %q (want auto, dnnl or ref)", engine)
}

// Close releases a backend's resources (oneDNN's worker thread and memory pool); backends without
// any are left alone.
func Close(be tensor.Backend) error {
	if c, ok := be.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

// Describe names a backend and its precision for logs, e.g. "dnnl bf16".
func Describe(be tensor.Backend) string {
	return be.Name() + " " + be.Precision().String()
}

// Explain says what a backend runs and why, for run headers and /v1/info: the precision that
// "auto" (or the user) chose, the CPU features that choice rests on, and the ISA oneDNN's kernels
// were built for, e.g. "dnnl bf16 (auto: AMD EPYC has avx512_bf16 avx512 avx2; oneDNN 2.6.3 kernels
// for avx512_core_bf16)".
func Explain(be tensor.Backend, precision string) string {
	cpu := dnnl.ThisCPU()
	model := cpu.Model
	if model == "" {
		model = "this CPU"
	}
	why := "auto"
	if precision != "" && precision != "auto" {
		why = "asked for"
	}
	s := fmt.Sprintf("%s (%s: %s has %s", Describe(be), why, model, cpu.ISAs())
	if be.Name() == "dnnl" {
		s += fmt.Sprintf("; %s kernels for %s", dnnl.LibraryVersion(), dnnl.ISA())
	}
	return s + ")"
}

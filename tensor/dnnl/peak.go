//go:build cgo

package dnnl

/*
#include "dd.h"
*/
import "C"

import (
	"fmt"
	"runtime"
	"slices"

	"github.com/ddpm-go/ddpm/tensor"
)

// PeakGFLOPS measures the CPU's arithmetic peak for precision p on threads threads: fp32 FMAs at the
// widest vector width the CPU has, or AVX512-BF16 dot products for bf16 (an error where it has none:
// AMX's tile peak is not measured). It returns the best of seven runs of about 10 ms each: a peak is
// what the cores can do, and on a shared machine a slower run only says another process had them.
func PeakGFLOPS(p tensor.Precision, threads int) (float64, error) {
	cpu := ThisCPU()
	kind := 0
	switch {
	case p == tensor.BF16 && cpu.AVX512BF16:
		kind = 2
	case p == tensor.BF16:
		return 0, fmt.Errorf("no AVX512-BF16 on this CPU: its bf16 peak is not measured")
	case cpu.AVX512:
		kind = 0
	case cpu.AVX2:
		kind = 1
	default:
		return 0, fmt.Errorf("no AVX2 or AVX-512 on this CPU: its peak is not measured")
	}
	if threads < 1 {
		threads = runtime.NumCPU()
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	const iters = 4_000_000 // 12 accumulators: 48M vector instructions a thread, ~10 ms at 2 a cycle
	var rates []float64
	for range 7 {
		var flops C.double
		secs := float64(C.dd_peak(C.int(kind), C.int(threads), C.longlong(iters), &flops))
		rates = append(rates, float64(flops)/secs/1e9)
	}
	return slices.Max(rates), nil
}

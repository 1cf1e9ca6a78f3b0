//go:build cgo

package dnnl

/*
#include "dd.h"
*/
import "C"

// ISA is the instruction set oneDNN dispatches its kernels to here, e.g. "avx512_core_bf16" (lower
// than the CPU's best when DNNL_MAX_CPU_ISA limits it).
func ISA() string { return C.GoString(C.dd_isa()) }

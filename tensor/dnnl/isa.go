//go:build cgo

package dnnl

/*
#include <dnnl.h>
#include "dd.h"
*/
import "C"

import "fmt"

// ISA is the instruction set oneDNN dispatches its kernels to here, e.g. "avx512_core_bf16" (lower
// than the CPU's best when DNNL_MAX_CPU_ISA limits it).
func ISA() string { return C.GoString(C.dd_isa()) }

// LibraryVersion is the oneDNN library the binary runs against, e.g. "oneDNN 2.6.3".
func LibraryVersion() string {
	v := C.dnnl_version()
	return fmt.Sprintf("oneDNN %d.%d.%d", v.major, v.minor, v.patch)
}

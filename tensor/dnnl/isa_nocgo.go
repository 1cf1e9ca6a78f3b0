//go:build !cgo

package dnnl

import "github.com/ddpm-go/ddpm/tensor"

// ISA is "" without cgo: no oneDNN kernels run.
func ISA() string { return "" }

// LibraryVersion is "" without cgo.
func LibraryVersion() string { return "" }

// PeakGFLOPS needs the C loop: without cgo it is an error.
func PeakGFLOPS(p tensor.Precision, threads int) (float64, error) {
	return 0, ErrUnavailable
}

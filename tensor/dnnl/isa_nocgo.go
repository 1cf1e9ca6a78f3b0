//go:build !cgo

package dnnl

// ISA is "" without cgo: no oneDNN kernels run.
func ISA() string { return "" }

package engine

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/ddpm-go/ddpm/tensor/dnnl"
)

// About writes what a bug report needs: which code (module version, commit), built how (Go), running
// on what (oneDNN and the ISA it dispatches to, the CPU, and the precision "auto" picks there). A
// speed figure means nothing without the CPU it was measured on.
func About(w io.Writer) error {
	version, commit := "(unknown)", "(unknown)"
	if bi, ok := debug.ReadBuildInfo(); ok {
		version = bi.Main.Version
		var rev, modified string
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				modified = s.Value
			}
		}
		if rev != "" {
			commit = rev
			if modified == "true" {
				commit += " (with uncommitted changes)"
			}
		}
	}
	eng, auto := "ref (plain Go; built without cgo)", "fp32 (the reference engine has no bf16)"
	if dnnl.Available() {
		auto = dnnl.AutoPrecision().String()
		eng = fmt.Sprintf("dnnl (%s, kernels for %s)", dnnl.LibraryVersion(), dnnl.ISA())
	}
	cpu := dnnl.ThisCPU()
	_, err := fmt.Fprintf(w, "ddpm %s\ncommit  %s\ngo      %s %s/%s\nengine  %s\ncpu     %s (%s), %d threads\nauto    %s\n",
		version, commit, runtime.Version(), runtime.GOOS, runtime.GOARCH, eng, cpu.Model, cpu.ISAs(), runtime.NumCPU(), auto)
	return err
}

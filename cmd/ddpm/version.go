package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/ddpm-go/ddpm/tensor/dnnl"
)

func init() {
	register(&command{name: "version", summary: "module version, commit, Go, engine and the CPU's precision choice", run: runVersion})
}

// runVersion prints what a bug report needs: which code (module version, commit), built how (Go,
// cgo), running on what (oneDNN and the ISA it dispatches to, the CPU, and the precision "auto"
// picks there, with the features it was based on).
func runVersion(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("version", stderr)
	if err := parseFlagsOneLine(fs, args, stderr); err != nil {
		return err
	}
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
	engine, auto := "ref (plain Go; built without cgo)", "fp32 (the reference engine has no bf16)"
	if dnnl.Available() {
		auto = dnnl.AutoPrecision().String()
		engine = fmt.Sprintf("dnnl (%s, kernels for %s)", dnnl.LibraryVersion(), dnnl.ISA())
	}
	cpu := dnnl.ThisCPU()
	_, err := fmt.Fprintf(stdout, "ddpm %s\ncommit  %s\ngo      %s %s/%s\nengine  %s\ncpu     %s (%s), %d threads\nauto    %s\n",
		version, commit, runtime.Version(), runtime.GOOS, runtime.GOARCH, engine, cpu.Model, cpu.ISAs(), runtime.NumCPU(), auto)
	return err
}

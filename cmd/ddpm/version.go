package main

import (
	"io"

	"github.com/ddpm-go/ddpm/engine"
)

func init() {
	register(&command{name: "version", summary: "module version, commit, Go, engine and the CPU's precision choice", run: runVersion})
}

func runVersion(args []string, stdout, stderr io.Writer) error {
	if err := parseFlagsOneLine(newFlagSet("version", stderr), args, stderr); err != nil {
		return err
	}
	return engine.About(stdout)
}

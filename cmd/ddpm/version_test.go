package main

import (
	"bytes"
	"runtime"
	"strings"
	"testing"

	"github.com/ddpm-go/ddpm/tensor/dnnl"
)

// TestVersion: every line a bug report needs is there, and the engine and precision lines agree
// with what this build and CPU actually do.
func TestVersion(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"version"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	s := out.String()
	for _, want := range []string{"ddpm ", "\ncommit  ", "\ngo      " + runtime.Version(), "\ncpu     ", "\nauto    "} {
		if !strings.Contains(s, want) {
			t.Errorf("no %q in:\n%s", want, s)
		}
	}
	if dnnl.Available() {
		if !strings.Contains(s, "kernels for "+dnnl.ISA()) || !strings.Contains(s, "auto    "+dnnl.AutoPrecision().String()) {
			t.Errorf("engine or auto line disagrees with dnnl (%s, %v):\n%s", dnnl.ISA(), dnnl.AutoPrecision(), s)
		}
	} else if !strings.Contains(s, "auto    fp32") {
		t.Errorf("a build without cgo runs fp32:\n%s", s)
	}
	if code := run([]string{"version", "--bogus"}, &out, &errb); code != 2 {
		t.Errorf("unknown flag: exit %d, want 2", code)
	}
}

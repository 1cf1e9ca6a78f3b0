package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// Bad invocations of ddpm average are one line on stderr and exit status 2. (The averaging itself
// is tested in package train.)
func TestAverageErrors(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "avg.safetensors")
	for name, args := range map[string][]string{
		"no out":         {"average", filepath.Join(dir, "a.safetensors")},
		"no checkpoints": {"average", "--out", out},
		"missing file":   {"average", "--out", out, filepath.Join(dir, "none.safetensors")},
		"garbage file":   {"average", "--out", out, writeFile(t, dir, "bad.safetensors", "not a safetensors file")},
		"unknown flag":   {"average", "--bogus"},
	} {
		code, stdout, errs := runCLI(t, args...)
		if code != 2 || stdout != "" || strings.Count(strings.TrimSpace(errs), "\n") > 0 && name != "unknown flag" {
			t.Errorf("%s: exit %d, stdout %q, stderr %q", name, code, stdout, errs)
		}
	}
}

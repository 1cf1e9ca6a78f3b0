package engine

import (
	"strings"
	"testing"

	"github.com/ddpm-go/ddpm/tensor/dnnl"
)

func TestNew(t *testing.T) {
	for _, tc := range []struct {
		engine, precision string
		want              string // backend name, or an error substring prefixed by "!"
	}{
		{"ref", "fp32", "ref"},
		{"ref", "auto", "ref"},
		{"ref", "bf16", "!no bf16"},
		{"cuda", "auto", "!unknown engine"},
		{"auto", "fp16", "!unknown precision"},
		{"auto", "fp32", map[bool]string{true: "dnnl", false: "ref"}[dnnl.Available()]},
		{"dnnl", "fp32", map[bool]string{true: "dnnl", false: "!without cgo"}[dnnl.Available()]},
	} {
		be, err := New(tc.engine, tc.precision, 1)
		if strings.HasPrefix(tc.want, "!") {
			if err == nil || !strings.Contains(err.Error(), tc.want[1:]) {
				t.Errorf("New(%q, %q): %v, want an error with %q", tc.engine, tc.precision, err, tc.want[1:])
			}
			continue
		}
		if err != nil {
			t.Errorf("New(%q, %q): %v", tc.engine, tc.precision, err)
			continue
		}
		if !strings.HasPrefix(be.Name(), tc.want) || !strings.HasSuffix(Describe(be), "fp32") {
			t.Errorf("New(%q, %q) = %s, want %s fp32", tc.engine, tc.precision, Describe(be), tc.want)
		}
		if err := Close(be); err != nil {
			t.Error(err)
		}
	}
}

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

// TestAutoRunsNativeBF16: with no precision asked for, the backend runs bf16 exactly where the CPU
// has native bf16 dot products, and Explain says so with the features it rests on.
func TestAutoRunsNativeBF16(t *testing.T) {
	be, err := New("auto", "auto", 1)
	if err != nil {
		t.Fatal(err)
	}
	defer Close(be)
	want := "fp32"
	if dnnl.Available() && dnnl.ThisCPU().NativeBF16() {
		want = "bf16"
	}
	if got := be.Precision().String(); got != want {
		t.Fatalf("auto ran %s, want %s on %s (%s)", got, want, dnnl.ThisCPU().Model, dnnl.ThisCPU().ISAs())
	}
	e := Explain(be, "auto")
	if !strings.Contains(e, Describe(be)+" (auto: ") || !strings.Contains(e, dnnl.ThisCPU().ISAs()) {
		t.Fatalf("Explain: %q", e)
	}
	t.Log(e)
}

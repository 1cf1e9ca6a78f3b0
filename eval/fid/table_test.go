package fid

import (
	"strings"
	"testing"
)

// TestTableReadsStepsField: a result's steps and setting are its column and row, whatever its
// sampler description says; results from before the fields read the two from the description.
func TestTableReadsStepsField(t *testing.T) {
	in := `{"fid":2,"n":10,"sampler":"custom","setting":"ddim eta=0 linspace","steps":7}
{"fid":3,"n":10,"sampler":"ddim-9 eta=0 linspace"}
`
	tb, err := ReadTable(strings.NewReader(in), "in", 0)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	tb.Markdown(&b)
	if want := "| ddim eta=0 linspace | 2 (KID 0 ± 0) | 3 (KID 0 ± 0) |"; !strings.Contains(b.String(), want) || tb.Usual != 10 {
		t.Errorf("table lacks %q (usual n %d):\n%s", want, tb.Usual, b.String())
	}
	if _, err := ReadTable(strings.NewReader(`{"fid":1,"sampler":"/tmp/x.npz"}`), "in", 0); err == nil {
		t.Error("a result without a step count accepted")
	}
}

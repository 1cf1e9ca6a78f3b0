package inpaint

import (
	"strings"
	"testing"
)

// TestMasks: "bottom" hides exactly the lower half; "box" hides one square of half the side, the
// same for the same (seed, image) and elsewhere for other images.
func TestMasks(t *testing.T) {
	b, err := boxMask("bottom", 28, 28, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range b {
		if want := map[bool]float64{true: 1, false: 0}[i < 14*28]; v != want {
			t.Fatalf("bottom mask %d = %v, want %v", i, v, want)
		}
	}
	hidden := func(m []float64) int {
		n := 0
		for _, v := range m {
			if v == 0 {
				n++
			}
		}
		return n
	}
	a1, _ := boxMask("box", 28, 28, 3, 5)
	a2, _ := boxMask("box", 28, 28, 3, 5)
	moved := false
	for i := range 20 {
		o, _ := boxMask("box", 28, 28, 3, i)
		if hidden(o) != 14*14 {
			t.Fatalf("box of image %d hides %d pixels, want %d", i, hidden(o), 14*14)
		}
		moved = moved || strings.Compare(fmtMask(o), fmtMask(a1)) != 0
	}
	if fmtMask(a1) != fmtMask(a2) || !moved {
		t.Error("box masks are not a function of (seed, image) that varies by image")
	}
	if _, err := boxMask("left", 28, 28, 0, 0); err == nil {
		t.Error("unknown mask accepted")
	}
}

func fmtMask(m []float64) string {
	var b strings.Builder
	for _, v := range m {
		b.WriteByte(byte('0' + int(v)))
	}
	return b.String()
}

// TestMarkdown: one row per completion in first-seen order, one column per mask.
func TestMarkdown(t *testing.T) {
	rs := []Result{
		{Mask: "bottom", Method: "original", Accuracy: 1}, {Mask: "bottom", Method: "repaint", Accuracy: 0.5, Sampler: "r"},
		{Mask: "box", Method: "original", Accuracy: 1}, {Mask: "box", Method: "repaint", Accuracy: 0.75, Sampler: "r"},
	}
	var b strings.Builder
	Markdown(&b, rs, []string{"bottom", "box"})
	if !strings.Contains(b.String(), "| repaint | 50.0% | 75.0% | r |") || strings.Index(b.String(), "original") > strings.Index(b.String(), "repaint") {
		t.Errorf("table:\n%s", b.String())
	}
}

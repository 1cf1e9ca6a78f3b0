package fid

import (
	"slices"
	"testing"
)

// TestAccuracy: a hand case of three classes: rows 0 and 2 are right, row 1 (class 0, argmax 2) wrong.
func TestAccuracy(t *testing.T) {
	logits := []float64{
		3, 1, 0, // class 0: right
		0, 1, 5, // class 0: wrong
		0, 0, 1, // class 2: right
	}
	all, per := accuracy(logits, []int{0, 0, 2}, 3)
	if all != 2.0/3 || !slices.Equal(per, []float64{0.5, 0, 1}) {
		t.Errorf("accuracy %v per class %v, want 2/3 and [0.5 0 1]", all, per)
	}
}

package fid

import (
	"slices"
	"testing"
)

// ClassLabels: equal shares as i mod k without a prior; with one, shares proportional to the prior's
// counts (largest remainders, summing to n) spread evenly over the indices; bad labels refused.
func TestClassLabels(t *testing.T) {
	l, err := ClassLabels(7, 3, nil)
	if err != nil || !slices.Equal(l, []int{0, 1, 2, 0, 1, 2, 0}) {
		t.Fatalf("no prior: %v %v", l, err)
	}
	// Prior 6:3:1 over 10 images -> 6, 3, 1; over 7 -> 4.2, 2.1, 0.7 -> 4, 2, 1.
	prior := []uint8{0, 0, 0, 0, 0, 0, 1, 1, 1, 2}
	for n, want := range map[int][]int{10: {6, 3, 1}, 7: {4, 2, 1}, 1000: {600, 300, 100}} {
		l, err := ClassLabels(n, 3, prior)
		if err != nil {
			t.Fatal(err)
		}
		got := make([]int, 3)
		for _, c := range l {
			got[c]++
		}
		if !slices.Equal(got, want) {
			t.Errorf("n %d: counts %v, want %v", n, got, want)
		}
		// Spread: the first half of the job holds about half of every class.
		half := make([]int, 3)
		for _, c := range l[:n/2] {
			half[c]++
		}
		for c := range 3 {
			if d := 2*half[c] - want[c]; d < -2 || d > 2 {
				t.Errorf("n %d class %d: %d of %d in the first half", n, c, half[c], want[c])
			}
		}
	}
	if _, err := ClassLabels(5, 2, []uint8{0, 2}); err == nil {
		t.Error("label 2 of 2 classes accepted")
	}
	if _, err := ClassLabels(5, 2, []uint8{}); err == nil {
		t.Error("empty prior accepted")
	}
}

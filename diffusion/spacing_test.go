package diffusion

import (
	"context"
	"slices"
	"testing"

	"github.com/ddpm-go/ddpm/schedule"
)

// TestTimesteps compares against values worked out by hand from diffusers' definitions, including
// numpy's rounding of halves to even (linspace 4.5 -> 4, trailing 2.5 -> 2).
func TestTimesteps(t *testing.T) {
	tests := []struct {
		T, S int
		sp   Spacing
		want []int
	}{
		{1000, 10, Linspace, []int{999, 888, 777, 666, 555, 444, 333, 222, 111, 0}},
		{10, 3, Linspace, []int{9, 4, 0}},
		{10, 1, Linspace, []int{0}},
		{5, 5, Linspace, []int{4, 3, 2, 1, 0}},
		{1000, 10, Leading, []int{900, 800, 700, 600, 500, 400, 300, 200, 100, 0}},
		{1000, 3, Leading, []int{666, 333, 0}},
		{5, 5, Leading, []int{4, 3, 2, 1, 0}},
		{1000, 10, Trailing, []int{999, 899, 799, 699, 599, 499, 399, 299, 199, 99}},
		{1000, 3, Trailing, []int{999, 666, 332}},
		{10, 4, Trailing, []int{9, 7, 4, 1}},
		{5, 5, Trailing, []int{4, 3, 2, 1, 0}},
		{1000, 1, Trailing, []int{999}},
		// int((i * sqrt(800)/9)^2) = int(9.876 i^2): 0, 9.88, 39.5, 88.9, 158.0, 246.9, 355.6, 483.95, 632.1, 800.
		{1000, 10, Quadratic, []int{800, 632, 483, 355, 246, 158, 88, 39, 9, 0}},
		// sqrt(8)/3 = 0.943: squares 0, 0.889, 3.556, 8 -> 0, 0, 3, 8; the repeated 0 moves up to 1.
		{10, 4, Quadratic, []int{8, 3, 1, 0}},
		{1000, 1, Quadratic, []int{0}},
		{5, 5, Quadratic, []int{4, 3, 2, 1, 0}},
	}
	for _, tc := range tests {
		got, err := Timesteps(tc.T, tc.S, tc.sp)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("Timesteps(%d, %d, %v) = %v, %v; want %v", tc.T, tc.S, tc.sp, got, err, tc.want)
		}
	}
	// linspace(0, 999, 50): step 20.387755..., so 20.39 -> 20, 40.78 -> 41, 61.16 -> 61, 978.61 -> 979.
	got, _ := Timesteps(1000, 50, Linspace)
	if len(got) != 50 || !slices.Equal(got[:2], []int{999, 979}) || !slices.Equal(got[46:], []int{61, 41, 20, 0}) {
		t.Errorf("Timesteps(1000, 50, linspace) = %v", got)
	}
	// Quadratic, S = 50 of 1000: int(0.3332 i^2) = 0, 0, 1, 2, 5 at the bottom (0, 1, 2, 3, 5 after moving
	// the repeats up) and 800 at the top, as the DDIM code's seq with its two leading zeros made distinct.
	got, _ = Timesteps(1000, 50, Quadratic)
	if len(got) != 50 || got[0] != 800 || !slices.Equal(got[45:], []int{5, 3, 2, 1, 0}) {
		t.Errorf("Timesteps(1000, 50, quadratic) = %v", got)
	}
	if got := Spacings(); !slices.Equal(got, []string{"linspace", "leading", "trailing", "quadratic"}) {
		t.Errorf("Spacings() = %v", got)
	}
	for _, sp := range []Spacing{Linspace, Leading, Trailing, Quadratic} {
		for _, S := range []int{1, 2, 7, 333, 999, 1000} {
			ts, err := Timesteps(1000, S, sp)
			if err != nil || len(ts) != S || ts[0] > 999 || ts[S-1] < 0 {
				t.Errorf("Timesteps(1000, %d, %v) = %v, %v", S, sp, ts, err)
			}
		}
		name := sp.String()
		if p, err := ParseSpacing(name); err != nil || p != sp {
			t.Errorf("ParseSpacing(%q) = %v, %v", name, p, err)
		}
	}
	for _, bad := range []struct{ T, S int }{{1000, 0}, {1000, 1001}, {0, 1}, {10, -1}} {
		if _, err := Timesteps(bad.T, bad.S, Linspace); err == nil {
			t.Errorf("Timesteps(%d, %d) gave no error", bad.T, bad.S)
		}
	}
	if _, err := ParseSpacing("even"); err == nil {
		t.Error("ParseSpacing(even) gave no error")
	}
}

// TestDDIMGrid checks DDIM over an explicit grid: the linspace grid given explicitly samples
// exactly as Steps and Spacing do, and bad grids are refused.
func TestDDIMGrid(t *testing.T) {
	s, _ := schedule.New("linear", 1000, false)
	m := &Mixture{Weights: []float64{0.5, 0.5}, Means: [][]float64{{-1, 0}, {1, 0.5}}, Stds: []float64{0.3, 0.2}}
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	o := &Oracle{Mixture: m, Schedule: s}
	grid, _ := Timesteps(1000, 7, Linspace)
	want, err := (&DDIM{Schedule: s, Steps: 7}).Sample(context.Background(), o, 5, 2, Options{Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	got, err := (&DDIM{Schedule: s, Grid: grid}).Sample(context.Background(), o, 5, 2, Options{Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("grid %v samples %v, linspace-7 %v", grid, got, want)
	}
	for _, g := range [][]int{{}, {5, 5}, {3, 7}, {1000}, {-1}} {
		if _, err := (&DDIM{Schedule: s, Grid: g}).Timesteps(); err == nil {
			t.Errorf("grid %v accepted", g)
		}
	}
	if _, err := (&DDIM{Schedule: s, Steps: 3, Grid: []int{9, 5}}).Timesteps(); err == nil {
		t.Error("3 steps over a grid of 2 accepted")
	}
}

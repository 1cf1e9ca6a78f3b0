package diffusion

import (
	"math"
	"testing"
)

// Slerp's ends are its inputs, and between two vectors of equal norm it stays on their sphere,
// where a straight line would dip towards the origin.
func TestSlerp(t *testing.T) {
	a, b := []float64{3, 0, 0}, []float64{0, 3, 0}
	out := make([]float64, 3)
	for _, tc := range []struct {
		alpha float64
		want  []float64
	}{{0, a}, {1, b}} {
		Slerp(a, b, tc.alpha, out)
		for i := range out {
			if math.Abs(out[i]-tc.want[i]) > 1e-12 {
				t.Fatalf("alpha %v: %v, want %v", tc.alpha, out, tc.want)
			}
		}
	}
	Slerp(a, b, 0.5, out)
	if n := math.Hypot(out[0], out[1]); math.Abs(n-3) > 1e-12 || math.Abs(out[0]-out[1]) > 1e-12 {
		t.Errorf("midpoint %v: norm %v, want 3 and equal parts", out, n)
	}
	Slerp(a, a, 0.3, out) // parallel: the linear fallback
	if math.Abs(out[0]-3) > 1e-12 {
		t.Errorf("parallel inputs: %v", out)
	}
}

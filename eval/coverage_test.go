package eval

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestCoverage: samples from the real law cover most of it (Naeem et al. report about 0.97 at
// k = 5 for identical distributions of this size); samples from one of two modes cover about half;
// the real samples themselves cover everything; a hand-made case counts the balls exactly.
func TestCoverage(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const n, dim = 600, 4
	mix := func(modes int) []float64 {
		x := make([]float64, n*dim)
		for i := range n {
			c := 5 * float64(r.IntN(modes))
			for j := range dim {
				x[i*dim+j] = c + r.NormFloat64()
			}
		}
		return x
	}
	real := mix(2)
	same, err := Coverage(real, n, mix(2), n, dim, 5)
	if err != nil {
		t.Fatal(err)
	}
	half, _ := Coverage(real, n, mix(1), n, dim, 5)
	self, _ := Coverage(real, n, real, n, dim, 5)
	t.Logf("coverage: same law %.3f, one mode of two %.3f, itself %.3f", same, half, self)
	if same < 0.9 || math.Abs(half-0.5) > 0.08 || self != 1 {
		t.Errorf("coverage same %.3f (want >= 0.9), one mode %.3f (want about 0.5), itself %v (want 1)", same, half, self)
	}
	// 1-D: real at 0, 1, 3 (k = 1 radii 1, 1, 2); fake at 2.5 lies in the ball of 3 only.
	got, _ := Coverage([]float64{0, 1, 3}, 3, []float64{2.5}, 1, 1, 1)
	if got != 1.0/3 {
		t.Errorf("hand case: %v, want 1/3", got)
	}
	if _, err := Coverage(real, n, real, n, dim, n); err == nil {
		t.Error("k = n accepted")
	}
}

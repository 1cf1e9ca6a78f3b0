package eval

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestDriftForwardIsOne: states drawn from the forward process itself, at every step, have ratio 1
// up to sampling noise; states scaled by 1.1 have ratio 1.21; the output row compares with m2.
func TestDriftForwardIsOne(t *testing.T) {
	const n, dim = 400, 50
	rng := rand.New(rand.NewPCG(1, 2))
	data := make([]float32, n*dim)
	for i := range data {
		data[i] = float32(math.Tanh(2 * rng.NormFloat64())) // values in (-1, 1), m2 well below 1
	}
	m2 := SecondMoment(data)
	abar := []float64{0.99, 0.7, 0.3, 0.01}
	var d, hot Drift
	x := make([]float64, n*dim)
	for k, t := range []int{3, 2, 1, 0} {
		a := math.Sqrt(abar[t])
		for i := range x {
			x[i] = a*float64(data[i]) + math.Sqrt(1-abar[t])*rng.NormFloat64()
		}
		d.Add(k, t, x[:n/2*dim], n/2, dim) // two batches
		d.Add(k, t, x[n/2*dim:], n/2, dim)
		for i := range x {
			x[i] *= 1.1
		}
		hot.Add(k, t, x, n, dim)
	}
	out := make([]float64, n*dim)
	for i := range out {
		out[i] = float64(data[i])
	}
	d.AddFinal(out, n, dim)
	rows, err := d.Rows(abar, m2)
	if err != nil {
		t.Fatal(err)
	}
	hotRows, err := hot.Rows(abar, m2)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 5 || rows[4].T != -1 || len(hotRows) != 4 {
		t.Fatalf("rows %+v", rows)
	}
	for k, r := range rows {
		if math.Abs(r.Ratio-1) > 0.02 {
			t.Errorf("step %d (t=%d): forward-process states have ratio %v", k, r.T, r.Ratio)
		}
		if k < 4 && math.Abs(hotRows[k].Ratio/r.Ratio-1.21) > 1e-9 {
			t.Errorf("step %d: states scaled by 1.1 have ratio %v, want 1.21 x %v", k, hotRows[k].Ratio, r.Ratio)
		}
	}
	if rows[4].Ratio != 1 && math.Abs(rows[4].Ratio-1) > 1e-12 {
		t.Errorf("output equal to the data: ratio %v", rows[4].Ratio)
	}
	var empty Drift
	empty.Add(1, 0, x[:dim], 1, dim)
	if _, err := empty.Rows(abar, m2); err == nil {
		t.Error("a step never recorded went unnoticed")
	}
	if _, err := d.Rows(abar, 0); err == nil {
		t.Error("m2 = 0 accepted")
	}
}

package diffusion

import (
	"context"
	"math"
	"strings"
	"testing"
)

func testMixture() *Mixture {
	return &Mixture{
		Weights: []float64{0.5, 0.3, 0.2},
		Means:   [][]float64{{-2, 0}, {2, 1}, {0.5, -2.5}},
		Stds:    []float64{0.3, 0.5, 0.4},
	}
}

// TestOracleIsScore checks eps* = -sqrt(1-abar) grad log p_t against central finite differences of
// LogDensity, and that the x0 and v outputs are the same prediction seen in the other parametrisations.
func TestOracleIsScore(t *testing.T) {
	m := testMixture()
	s := mustSchedule(t, "linear", 1000, false)
	points := [][]float64{{0, 0}, {-2.1, 0.2}, {1.5, 1.5}, {0.4, -2}, {3, -3}}
	for _, step := range []int{0, 50, 300, 999} {
		ab := s.AlphaBar[step]
		outs := map[Prediction][]float64{}
		for _, p := range []Prediction{Eps, X0, V} {
			o := &Oracle{Mixture: m, Schedule: s, Output: p}
			x := make([]float64, 0, 2*len(points))
			for _, pt := range points {
				x = append(x, pt...)
			}
			out := make([]float64, len(x))
			if err := o.Predict(context.Background(), x, len(points), 2, step, out); err != nil {
				t.Fatal(err)
			}
			outs[p] = out
		}
		for i, pt := range points {
			for j := range pt {
				const h = 1e-5
				xp := append([]float64(nil), pt...)
				xm := append([]float64(nil), pt...)
				xp[j] += h
				xm[j] -= h
				grad := (m.LogDensity(xp, ab) - m.LogDensity(xm, ab)) / (2 * h)
				want := -math.Sqrt(1-ab) * grad
				if got := outs[Eps][2*i+j]; math.Abs(got-want) > 1e-5*max(1, math.Abs(want)) {
					t.Errorf("t=%d x=%v: eps*[%d] = %v, finite differences give %v", step, pt, j, got, want)
				}
			}
		}
		// The same prediction through the conversions.
		x := make([]float64, 0, 2*len(points))
		for _, pt := range points {
			x = append(x, pt...)
		}
		for _, p := range []Prediction{X0, V} {
			x0, eps := make([]float64, len(x)), make([]float64, len(x))
			if err := X0Eps(p, ab, x, outs[p], x0, eps); err != nil {
				t.Fatal(err)
			}
			for i := range eps {
				if math.Abs(eps[i]-outs[Eps][i]) > 1e-9*max(1, 1/math.Sqrt(1-ab)) {
					t.Errorf("t=%d: %v output gives eps %v, eps output is %v", step, p, eps[i], outs[Eps][i])
				}
			}
		}
	}
}

// TestOracleStable checks the log-sum-exp: far-away points and the zero-SNR step stay finite and right.
func TestOracleStable(t *testing.T) {
	m := testMixture()
	s := mustSchedule(t, "linear", 1000, true)
	o := &Oracle{Mixture: m, Schedule: s, Output: X0}
	x := []float64{1e4, -1e4, 0, 0}
	out := make([]float64, 4)
	if err := o.Predict(context.Background(), x, 2, 2, 999, out); err != nil {
		t.Fatal(err)
	}
	// At alpha_bar = 0, x_t carries no information: E[x0 | x_t] is the mixture mean.
	meanX := 0.5*-2 + 0.3*2 + 0.2*0.5
	meanY := 0.3*1 + 0.2*-2.5
	// Row 0 is 1e4 away: its log terms are ~-1e8, where float64 keeps ~8 digits after cancellation.
	for i, tol := range []float64{1e-7, 1e-14} {
		if math.Abs(out[2*i]-meanX) > tol || math.Abs(out[2*i+1]-meanY) > tol {
			t.Errorf("row %d at alpha_bar=0: x0* = %v, want the mixture mean (%v, %v)", i, out[2*i:2*i+2], meanX, meanY)
		}
	}
	o.Output = Eps
	if err := o.Predict(context.Background(), x, 2, 2, 10, out); err != nil {
		t.Fatal(err)
	}
	for _, v := range out {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			t.Fatalf("far-away point gives %v", out)
		}
	}
	if err := o.Predict(context.Background(), x, 2, 3, 10, make([]float64, 6)); err == nil {
		t.Error("dimension 3 accepted for a 2-D mixture")
	}
}

// TestLogDensityNormalised integrates the 1-D data and noised densities on a grid.
func TestLogDensityNormalised(t *testing.T) {
	m := &Mixture{Weights: []float64{0.25, 0.75}, Means: [][]float64{{-1}, {2}}, Stds: []float64{0.2, 0.7}}
	for _, ab := range []float64{1, 0.5, 0.01} {
		const h = 1e-3
		sum := 0.0
		for u := -12.0; u <= 12; u += h {
			sum += math.Exp(m.LogDensity([]float64{u}, ab)) * h
		}
		if math.Abs(sum-1) > 1e-6 {
			t.Errorf("abar=%v: density integrates to %v", ab, sum)
		}
	}
}

func TestParseMixture(t *testing.T) {
	good := `{"weights":[0.5,0.5],"means":[[0,1],[2,3]],"stds":[1,2]}`
	m, err := ParseMixture(strings.NewReader(good))
	if err != nil || m.Dim() != 2 || len(m.Weights) != 2 {
		t.Fatalf("ParseMixture(good) = %+v, %v", m, err)
	}
	near := `{"weights":[0.3333333,0.3333333,0.3333334],"means":[[0],[1],[2]],"stds":[1,1,1]}`
	m, err = ParseMixture(strings.NewReader(near))
	if err != nil || math.Abs(m.Weights[0]+m.Weights[1]+m.Weights[2]-1) > 1e-15 {
		t.Fatalf("weights within 1e-6 of 1: %v, %v", m, err)
	}
	bad := []struct{ json, msg string }{
		{`{"weights":[],"means":[],"stds":[]}`, "no components"},
		{`{"weights":[0.5,0.6],"means":[[0],[1]],"stds":[1,1]}`, "sum to"},
		{`{"weights":[1.5,-0.5],"means":[[0],[1]],"stds":[1,1]}`, "weight 1"},
		{`{"weights":[1],"means":[[0],[1]],"stds":[1]}`, "2 means"},
		{`{"weights":[0.5,0.5],"means":[[0,1],[1]],"stds":[1,1]}`, "mean 1 has 1 values"},
		{`{"weights":[1],"means":[[]],"stds":[1]}`, "dimension"},
		{`{"weights":[1],"means":[[0]],"stds":[0]}`, "std 0"},
		{`{"weights":[1],"means":[[0]],"stds":[1e-300]}`, "std 0"},
		{`{"weights":[1],"means":[[1e300]],"stds":[1]}`, "mean 0 value 0"},
		{`{"weights":[1],"means":[[0]],"stds":[1],"extra":1}`, "unknown field"},
		{`{"weights":[1],"means":[[0]],"stds":[1]} {}`, "trailing"},
		{`{"weights":[1],"means":[[0]]`, "unexpected EOF"},
		{`{"weights":"a"}`, "cannot unmarshal"},
	}
	for _, tc := range bad {
		_, err := ParseMixture(strings.NewReader(tc.json))
		if err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("ParseMixture(%s) error = %v, want containing %q", tc.json, err, tc.msg)
		}
	}
	if _, err := LoadMixture("/nonexistent/mixture.json"); err == nil {
		t.Error("LoadMixture of a missing file gave no error")
	}
}

// FuzzParseMixture: any input either fails with an error or gives a mixture the oracle can use.
func FuzzParseMixture(f *testing.F) {
	f.Add(`{"weights":[0.5,0.5],"means":[[0,1],[2,3]],"stds":[1,2]}`)
	f.Add(`{"weights":[1],"means":[[0]],"stds":[1e-300]}`)
	f.Add(`{"weights":[1e-7,0.9999999],"means":[[1e300],[0]],"stds":[1,1]}`)
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseMixture(strings.NewReader(s))
		if err != nil {
			return
		}
		sum := 0.0
		for _, w := range m.Weights {
			sum += w
		}
		if math.Abs(sum-1) > 1e-12 || m.Dim() < 1 {
			t.Fatalf("accepted mixture with weights summing to %v, dim %d", sum, m.Dim())
		}
		x := make([]float64, m.Dim())
		for _, ab := range []float64{0, 0.5, 1} {
			if l := m.LogDensity(x, ab); math.IsNaN(l) {
				t.Fatalf("log density NaN at abar=%v", ab)
			}
		}
	})
}

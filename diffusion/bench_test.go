package diffusion

import (
	"context"
	"testing"
)

// BenchmarkOracle: one predictor call for 1024 rows of the 3-component 2-D mixture.
func BenchmarkOracle(b *testing.B) {
	s := mustSchedule(b, "linear", 1000, false)
	o := &Oracle{Mixture: testMixture(), Schedule: s}
	x := make([]float64, 2048)
	for i := range x {
		x[i] = float64(i%7) - 3
	}
	out := make([]float64, len(x))
	b.ReportAllocs()
	for b.Loop() {
		if err := o.Predict(context.Background(), x, 1024, 2, 500, out); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDDIMStepOverhead: a 50-step DDIM run of 1024 rows with a free predictor, i.e. the cost the
// sampler adds around the model (noise, conversions, updates).
func BenchmarkDDIMStepOverhead(b *testing.B) {
	s := mustSchedule(b, "linear", 1000, false)
	zero := PredictorFunc(func(_ context.Context, x []float64, n, dim, t int, out []float64) error {
		clear(out)
		return nil
	})
	d := &DDIM{Schedule: s, Steps: 50, Eta: 1}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := d.Sample(context.Background(), zero, 1024, 2, Options{Seed: 1}); err != nil {
			b.Fatal(err)
		}
	}
}

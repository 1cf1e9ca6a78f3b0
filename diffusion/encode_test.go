package diffusion

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"
)

// TestEncodeDecode: encoding samples of the mixture with the exact oracle and decoding them with the
// same DDIM gives them back, with an error that shrinks as S grows (the ODE's discretisation error),
// and with enough steps the latents look like N(0, I).
func TestEncodeDecode(t *testing.T) {
	m := testMixture()
	s := mustSchedule(t, "linear", 1000, false)
	const n = 2000
	x0 := m.Sample(rand.New(rand.NewPCG(3, 3)), n)
	prevMSE := math.Inf(1)
	for _, S := range []int{10, 50, 200} {
		for _, p := range []Prediction{Eps, V} {
			o := &Oracle{Mixture: m, Schedule: s, Output: p}
			d := &DDIM{Schedule: s, Steps: S}
			cp := &countingPredictor{Predictor: o}
			xT, err := d.Encode(context.Background(), cp, x0, n, 2, Options{Prediction: p})
			if err != nil {
				t.Fatal(err)
			}
			mean, variance := meanVar(xT)
			back, err := d.Sample(context.Background(), o, n, 2, Options{XT: xT, Prediction: p})
			if err != nil {
				t.Fatal(err)
			}
			mse := 0.0
			for i := range back {
				mse += (back[i] - x0[i]) * (back[i] - x0[i])
			}
			mse /= float64(len(back))
			t.Logf("S=%-3d %v: reconstruction MSE %.2e; latent mean %.3f var %.3f", S, p, mse, mean, variance)
			// Few steps also distort the latents (var 0.51 at S = 10): the same discretisation error.
			if cp.calls != S || (S == 200 && (math.Abs(mean) > 0.1 || math.Abs(variance-1) > 0.1)) {
				t.Errorf("S=%d %v: %d calls, latent mean %.3f var %.3f", S, p, cp.calls, mean, variance)
			}
			if p == Eps {
				if !(mse < prevMSE) {
					t.Errorf("S=%d: MSE %.3g does not improve on %.3g", S, mse, prevMSE)
				}
				prevMSE = mse
			}
		}
	}
	if prevMSE > 2e-3 {
		t.Errorf("S=200 reconstruction MSE %.3g, want < 2e-3", prevMSE)
	}
	if _, err := (&DDIM{Schedule: s, Steps: 10, Eta: 0.5}).Encode(context.Background(), &Oracle{Mixture: m, Schedule: s}, x0, n, 2, Options{}); err == nil {
		t.Error("stochastic DDIM encoded")
	}
	if _, err := (&DDIM{Schedule: s, Steps: 10}).Encode(context.Background(), &Oracle{Mixture: m, Schedule: s}, x0[:3], n, 2, Options{}); err == nil {
		t.Error("short input encoded")
	}
}

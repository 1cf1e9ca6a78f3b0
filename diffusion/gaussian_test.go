package diffusion

import (
	"context"
	"fmt"
	"math"
	"testing"
)

// gaussianMoments returns the exact mean and variance of a sampler's output when the data are 1-D
// N(mu, s^2) and the predictor is exact. Then E[x0 | x_t] = mu + g (x_t - a mu) with a = sqrt(abar_t),
// g = a s^2 / (abar_t s^2 + 1 - abar_t), so every step is affine in x_t plus independent noise, and
// the moments follow a scalar recursion from x_T ~ N(0, 1). coefs gives, for a step from abar_t to
// abar_prev, the weights (on x0_hat, on eps_hat) of the mean and the noise std. epsScale (0: 1) is
// the samplers' epsilon scaling: eps_hat times epsScale, and x0_hat recomputed from it.
func gaussianMoments(ts []int, abar []float64, mu, s, epsScale float64, final func(k int) bool,
	coefs func(abT, abPrev float64, last bool) (wx0, weps, noise float64)) (float64, float64) {
	mean, variance := 0.0, 1.0
	for k, t := range ts {
		abT, abPrev := abar[t], 1.0
		if k+1 < len(ts) {
			abPrev = abar[ts[k+1]]
		}
		a, b := math.Sqrt(abT), math.Sqrt(1-abT)
		g := a * s * s / (abT*s*s + 1 - abT)
		// x0_hat = g x + mu (1 - a g); eps_hat = (x - a x0_hat) / b.
		x0Slope, x0Int := g, mu*(1-a*g)
		epsSlope, epsInt := (1-a*x0Slope)/b, -a*x0Int/b
		if epsScale != 0 && epsScale != 1 {
			epsSlope, epsInt = epsScale*epsSlope, epsScale*epsInt
			x0Slope, x0Int = (1-b*epsSlope)/a, -b*epsInt/a
		}
		wx0, weps, noise := coefs(abT, abPrev, final(k))
		slope := wx0*x0Slope + weps*epsSlope
		mean = slope*mean + wx0*x0Int + weps*epsInt
		variance = slope*slope*variance + noise*noise
	}
	return mean, variance
}

// TestGaussianExactMoments compares each sampler on Gaussian data with the exact moments of its
// output, including the few-step cases whose error against the data distribution is large: the samplers
// must reproduce their own discretisation exactly, not just approach the data as steps grow.
func TestGaussianExactMoments(t *testing.T) {
	const mu, s, N = 1.5, 0.5, 20000
	sch := mustSchedule(t, "linear", 1000, false)
	m := &Mixture{Weights: []float64{1}, Means: [][]float64{{mu}}, Stds: []float64{s}}
	o := &Oracle{Mixture: m, Schedule: sch}
	ddimCoefs := func(eta float64, hat bool) func(abT, abPrev float64, last bool) (float64, float64, float64) {
		return func(abT, abPrev float64, last bool) (float64, float64, float64) {
			if hat {
				eta = 1
			}
			sigma := eta * math.Sqrt((1-abPrev)/(1-abT)*(1-abT/abPrev))
			noise := sigma
			if hat {
				noise = math.Sqrt(1 - abT/abPrev)
			}
			if last {
				noise = 0
			}
			return math.Sqrt(abPrev), math.Sqrt(math.Max(0, 1-abPrev-sigma*sigma)), noise
		}
	}
	ddpmCoefs := func(v Variance) func(abT, abPrev float64, last bool) (float64, float64, float64) {
		return func(abT, abPrev float64, last bool) (float64, float64, float64) {
			// mean = c0 x0 + ct x_t with x_t = a x0 + b eps: weights c0 + ct a on x0 and ct b on eps.
			beta := 1 - abT/abPrev
			c0 := math.Sqrt(abPrev) * beta / (1 - abT)
			ct := math.Sqrt(1-beta) * (1 - abPrev) / (1 - abT)
			noise := math.Sqrt(beta)
			if v == VariancePosterior {
				noise = math.Sqrt((1 - abPrev) / (1 - abT) * beta)
			}
			if last {
				noise = 0
			}
			return c0 + ct*math.Sqrt(abT), ct * math.Sqrt(1-abT), noise
		}
	}
	tests := []struct {
		sm    Sampler
		coefs func(abT, abPrev float64, last bool) (float64, float64, float64)
		ts    []int
	}{
		{&DDIM{Schedule: sch, Steps: 3}, ddimCoefs(0, false), nil},
		{&DDIM{Schedule: sch, Steps: 10}, ddimCoefs(0, false), nil},
		{&DDIM{Schedule: sch, Steps: 10, Eta: 0.5, Spacing: Trailing}, ddimCoefs(0.5, false), nil},
		{&DDIM{Schedule: sch, Steps: 10, Eta: 1, Spacing: Leading}, ddimCoefs(1, false), nil},
		{&DDIM{Schedule: sch, Steps: 10, SigmaHat: true}, ddimCoefs(1, true), nil},
		{&DDIM{Schedule: sch, Steps: 10, Eta: 2}, ddimCoefs(2, false), nil},
		{&DDPM{Schedule: sch, Steps: 10}, ddpmCoefs(VarianceBeta), nil},
		{&DDPM{Schedule: sch, Steps: 10, Variance: VariancePosterior}, ddpmCoefs(VariancePosterior), nil},
		{&DDPM{Schedule: sch}, ddpmCoefs(VarianceBeta), nil},
		// Epsilon scaling, both ways, deterministic and stochastic.
		{&DDIM{Schedule: sch, Steps: 10, EpsScale: 1.02}, ddimCoefs(0, false), nil},
		{&DDIM{Schedule: sch, Steps: 50, EpsScale: 0.98}, ddimCoefs(0, false), nil},
		{&DDIM{Schedule: sch, Steps: 20, Eta: 1, EpsScale: 1.05}, ddimCoefs(1, false), nil},
		{&DDPM{Schedule: sch, Steps: 10, EpsScale: 1.02}, ddpmCoefs(VarianceBeta), nil},
	}
	for _, tc := range tests {
		name := fmt.Sprintf("%T%+v", tc.sm, tc.sm)
		var ts []int
		var c float64
		switch sm := tc.sm.(type) {
		case *DDIM:
			ts, _ = sm.Timesteps()
			c = sm.EpsScale
			name = fmt.Sprintf("DDIM S=%d eta=%v hat=%v %v c=%v", sm.Steps, sm.Eta, sm.SigmaHat, sm.Spacing, c)
		case *DDPM:
			ts, _ = sm.Timesteps()
			c = sm.EpsScale
			name = fmt.Sprintf("DDPM S=%d %v c=%v", len(ts), sm.Variance, c)
		}
		wantMean, wantVar := gaussianMoments(ts, sch.AlphaBar, mu, s, c, func(k int) bool { return k == len(ts)-1 }, tc.coefs)
		x, err := tc.sm.Sample(context.Background(), o, N, 1, Options{Seed: 21})
		if err != nil {
			t.Fatal(err)
		}
		gotMean, gotVar := meanVar(x)
		t.Logf("%-34s mean %.4f (exact %.4f)  std %.4f (exact %.4f, data %.2f)", name, gotMean, wantMean, math.Sqrt(gotVar), math.Sqrt(wantVar), s)
		if math.Abs(gotMean-wantMean) > 5*math.Sqrt(wantVar/N) || math.Abs(gotVar-wantVar) > 5*wantVar*math.Sqrt(2.0/N) {
			t.Errorf("%s: mean %.4f var %.5f, exact %.4f %.5f", name, gotMean, gotVar, wantMean, wantVar)
		}
	}
}

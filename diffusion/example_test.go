package diffusion_test

import (
	"context"
	"fmt"
	"math"

	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/schedule"
)

// The exact oracle stands in for a trained network: DDPM driven by it turns pure noise into samples of
// the mixture it knows.
func Example() {
	s, _ := schedule.New("linear", 1000, false)
	m := &diffusion.Mixture{
		Weights: []float64{0.7, 0.3},
		Means:   [][]float64{{-2}, {2}},
		Stds:    []float64{0.5, 0.5},
	}
	oracle := &diffusion.Oracle{Mixture: m, Schedule: s, Output: diffusion.Eps}
	sampler := &diffusion.DDPM{Schedule: s, Variance: diffusion.VariancePosterior}
	x, err := sampler.Sample(context.Background(), oracle, 4000, 1, diffusion.Options{Seed: 1})
	if err != nil {
		panic(err)
	}
	fit, _ := diffusion.Fit(m, x, 4000)
	for k, c := range fit.Components {
		fmt.Printf("component %d: weight %.1f, mean %.1f, std %.1f\n", k, c.Weight, c.Mean[0], c.Std)
	}
	// Output:
	// component 0: weight 0.7, mean -2.0, std 0.5
	// component 1: weight 0.3, mean 2.0, std 0.5
}

// Timesteps is the one place a sampler's timestep sequence comes from.
func ExampleTimesteps() {
	for _, sp := range []diffusion.Spacing{diffusion.Linspace, diffusion.Leading, diffusion.Trailing} {
		ts, _ := diffusion.Timesteps(1000, 5, sp)
		fmt.Println(sp, ts)
	}
	// Output:
	// linspace [999 749 500 250 0]
	// leading [800 600 400 200 0]
	// trailing [999 799 599 399 199]
}

// Samplers are chosen by name. At ten steps on a 1-D Gaussian, DDIM's ODE discretisation shrinks the
// spread (std 0.36 for a true 0.5), while the multistep solvers, which reuse earlier predictions, come
// closer.
func ExampleNewSampler() {
	s, _ := schedule.New("linear", 1000, false)
	m := &diffusion.Mixture{Weights: []float64{1}, Means: [][]float64{{1.5}}, Stds: []float64{0.5}}
	oracle := &diffusion.Oracle{Mixture: m, Schedule: s}
	for _, name := range []string{"ddim", "dpm-solver++", "plms"} {
		sampler, err := diffusion.NewSampler(name, s, diffusion.SamplerConfig{Steps: 10})
		if err != nil {
			panic(err)
		}
		x, err := sampler.Sample(context.Background(), oracle, 20000, 1, diffusion.Options{Seed: 1})
		if err != nil {
			panic(err)
		}
		var sum, sq float64
		for _, v := range x {
			sum += v
			sq += v * v
		}
		mean := sum / float64(len(x))
		fmt.Printf("%-12s mean %.2f std %.2f\n", name, mean, math.Sqrt(sq/float64(len(x))-mean*mean))
	}
	// Output:
	// ddim         mean 1.50 std 0.36
	// dpm-solver++ mean 1.50 std 0.39
	// plms         mean 1.50 std 0.40
}

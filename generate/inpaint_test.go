package generate

import (
	"context"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/schedule"
	"github.com/ddpm-go/ddpm/tensor"
)

// TestRespacedDDPM: DDPM walking every step of a respaced schedule (its model called at the
// original timesteps) is DDPM skipping over the original between the same timesteps, on the exact
// oracle, both variances: respacing is only a change of bookkeeping.
func TestRespacedDDPM(t *testing.T) {
	s, err := schedule.New("linear", 200, false)
	if err != nil {
		t.Fatal(err)
	}
	mix := &diffusion.Mixture{Weights: []float64{0.3, 0.7}, Means: [][]float64{{-1, 0.5}, {1, -0.5}}, Stds: []float64{0.2, 0.4}}
	oracle := &diffusion.Oracle{Mixture: mix, Schedule: s}
	ts, _ := diffusion.Timesteps(s.T, 25, diffusion.Linspace)
	up := append([]int(nil), ts...)
	for i, j := 0, len(up)-1; i < j; i, j = i+1, j-1 {
		up[i], up[j] = up[j], up[i]
	}
	rs, err := schedule.Respace(s, up)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []diffusion.Variance{diffusion.VarianceBeta, diffusion.VariancePosterior} {
		skip, err := (&diffusion.DDPM{Schedule: s, Steps: 25, Variance: v}).Sample(context.Background(), oracle, 50, 2, diffusion.Options{Seed: 3})
		if err != nil {
			t.Fatal(err)
		}
		resp, err := (&respaced{inner: &diffusion.DDPM{Schedule: rs, Variance: v}, ts: up}).Sample(context.Background(), oracle, 50, 2, diffusion.Options{Seed: 3})
		if err != nil {
			t.Fatal(err)
		}
		worst := 0.0
		for i := range skip {
			worst = max(worst, math.Abs(skip[i]-resp[i]))
		}
		if worst > 1e-12 {
			t.Errorf("%s variance: respaced DDPM differs from skipping DDPM by %g", v, worst)
		}
	}
	if _, err := schedule.Respace(s, []int{5, 5}); err == nil {
		t.Error("Respace accepted repeated timesteps")
	}
}

// TestInpaintJob: an inpainting job on a network gives back every known value exactly, for
// replacement and RePaint, and image i depends only on the seed and i (batches split by Start).
func TestInpaintJob(t *testing.T) {
	ctx := context.Background()
	m := tinyModel(t, tensor.NewReference(1), 3)
	dim := m.Dim()
	mask, err := BoxMask(1, 8, 8, 2, 4, 5, 4)
	if err != nil {
		t.Fatal(err)
	}
	const n = 3
	x0 := make([]float64, n*dim)
	for i := range x0 {
		x0[i] = math.Sin(float64(i))
	}
	for _, in := range []InpaintSpec{{}, {RePaint: true, Jumps: 2, JumpLength: 3}} {
		sp := SamplerSpec{Steps: 10}
		if in.RePaint {
			sp = SamplerSpec{Steps: 12}
		}
		sampler, desc, err := in.Sampler(sp, m.Schedule)
		if err != nil {
			t.Fatal(err)
		}
		job := Job{N: n, Seed: 5, Known: &diffusion.Known{X0: x0, Mask: mask}}
		all, err := m.Sample(ctx, sampler, job)
		if err != nil {
			t.Fatal(err)
		}
		for i, v := range all {
			if mask[i%dim] == 1 && v != x0[i] {
				t.Fatalf("%s: known value %d is %v, want %v", desc, i, v, x0[i])
			}
		}
		tail := Job{N: 1, Start: 2, Seed: 5, Known: &diffusion.Known{X0: x0[2*dim:], Mask: mask}}
		last, err := m.Sample(ctx, sampler, tail)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(last, all[2*dim:]) {
			t.Errorf("%s: image 2 alone differs from image 2 of the batch", desc)
		}
	}
	for _, c := range []struct {
		in   InpaintSpec
		sp   SamplerSpec
		want string
	}{
		{InpaintSpec{Jumps: 3}, SamplerSpec{}, "jumps"},
		{InpaintSpec{RePaint: true}, SamplerSpec{Name: "ddim"}, "sampler"},
		{InpaintSpec{RePaint: true, JumpLength: 200}, SamplerSpec{}, "jump_length"},
		{InpaintSpec{RePaint: true, JumpLength: 20}, SamplerSpec{Steps: 20}, "jump_length"},
	} {
		if _, _, err := c.in.Sampler(c.sp, m.Schedule); err == nil || !strings.Contains(err.Error(), strings.ReplaceAll(c.want, "_", "-")) {
			t.Errorf("%+v %+v: %v, want an error naming %s", c.in, c.sp, err, c.want)
		}
	}
	if _, err := BoxMask(1, 8, 8, 6, 0, 3, 1); err == nil {
		t.Error("a box past the edge was accepted")
	}
}

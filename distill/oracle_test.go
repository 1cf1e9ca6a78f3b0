package distill

import (
	"context"
	"math"
	"testing"

	"github.com/ddpm-go/ddpm/data"
	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/nn"
	"github.com/ddpm-go/ddpm/schedule"
	"github.com/ddpm-go/ddpm/tensor"
)

// tinyCfg is a UNet on 1x4x4 "images": the mixture's D = 16 dimensions.
var tinyCfg = nn.Config{Name: "tiny4", ImageSize: 4, InChannels: 1, OutChannels: 1, BaseChannels: 16,
	ChannelMult: []int{1, 2}, ResBlocks: 1, AttnResolutions: []int{}, Heads: 1, TimeEmbedDim: 32,
	SinusoidalDim: 16, Groups: 4}

// testMixture is four well separated components in 16 dimensions (+-0.6 patterns, std 0.1), so one
// DDIM step from pure noise lands between the modes while two steps commit to one: the gap the
// student has to close.
func testMixture() *diffusion.Mixture {
	m := &diffusion.Mixture{Weights: []float64{0.25, 0.25, 0.25, 0.25}, Stds: []float64{0.1, 0.1, 0.1, 0.1}}
	for k := range 4 {
		mu := make([]float64, 16)
		for j := range mu {
			mu[j] = 0.6
			if (j>>k)&1 == 1 != (k%2 == 1) {
				mu[j] = -0.6
			}
		}
		m.Means = append(m.Means, mu)
	}
	if err := m.Validate(); err != nil {
		panic(err)
	}
	return m
}

// mixtureSet is n samples of m as a data.Set of 1x4x4 images.
func mixtureSet(m *diffusion.Mixture, n int, seed uint64) *data.Set {
	x := m.Sample(diffusion.RowRNG(seed, 0), n)
	img := make([]float32, len(x))
	for i, v := range x {
		img[i] = float32(v)
	}
	return &data.Set{Name: "mixture", N: n, C: 1, H: 4, W: 4, Images: img}
}

func oracleTeacher(m *diffusion.Mixture, s *schedule.Schedule, grid []int) *Teacher {
	return &Teacher{Model: Oracle{&diffusion.Oracle{Mixture: m, Schedule: s, Output: diffusion.Eps}},
		Prediction: diffusion.Eps, Schedule: s, Grid: grid}
}

// TestRoundOnOracle distils the exact denoiser of a Gaussian mixture, sampled with DDIM over 4
// steps, into a tiny UNet of 2 steps: after one round, the student's one step from held-out z_t
// (at both of its timesteps) must land where the teacher's two steps do, much closer than the
// teacher's own single step over the same interval does.
func TestRoundOnOracle(t *testing.T) {
	if testing.Short() {
		t.Skip("trains for a few seconds")
	}
	ctx := context.Background()
	s, _ := schedule.New("linear", 1000, false)
	m := testMixture()
	grid, err := diffusion.NestedGrid(s.T, 4, 4)
	if err != nil {
		t.Fatal(err)
	}
	tc := oracleTeacher(m, s, grid)
	be := tensor.NewReference(1)
	u, err := nn.New(tinyCfg, be, 1)
	if err != nil {
		t.Fatal(err)
	}
	r := &Round{Name: "steps-2", Dir: t.TempDir(), Steps: 800, Grid: diffusion.HalveGrid(grid), Teacher: tc, Student: u,
		Set: mixtureSet(m, 4096, 1), Hyper: Hyper{Batch: 32, LR: 4e-3, GradClip: 1, Seed: 3, Keep: 1}}
	res, err := r.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("loss %.5f after %d steps, %.0f img/s", res.Loss, res.TrainSteps, res.ImgPerSec)

	// Held-out z_t: fresh mixture samples and noise, half at each of the student's timesteps.
	const n = 256
	dim := 16
	x := m.Sample(diffusion.RowRNG(99, 0), n)
	rng := diffusion.RowRNG(99, 1)
	z := make([]float64, n*dim)
	si := make([]int, n)
	for i := range n {
		si[i] = i % 2
		a, sg := alphaSigma(s, r.Grid[si[i]])
		for j := i * dim; j < (i+1)*dim; j++ {
			z[j] = a*x[j] + sg*rng.NormFloat64()
		}
	}
	two, one, stu := make([]float64, n*dim), make([]float64, n*dim), make([]float64, n*dim)
	k := make([]int, n)
	for i := range k {
		k[i] = 2 * si[i]
	}
	if _, err := tc.Steps(ctx, z, k, nil, dim, 2, two); err != nil {
		t.Fatal(err)
	}
	// The teacher's single DDIM step over the student's interval.
	one1 := &Teacher{Model: tc.Model, Prediction: tc.Prediction, Schedule: s, Grid: r.Grid}
	if _, err := one1.Steps(ctx, z, si, nil, dim, 1, one); err != nil {
		t.Fatal(err)
	}
	student := &Teacher{Model: Net{U: u}, Prediction: diffusion.V, Schedule: s, Grid: r.Grid}
	if _, err := student.Steps(ctx, z, si, nil, dim, 1, stu); err != nil {
		t.Fatal(err)
	}
	for half := range 2 {
		var eS, eT, norm float64
		for i := half; i < n; i += 2 {
			for j := i * dim; j < (i+1)*dim; j++ {
				eS += (stu[j] - two[j]) * (stu[j] - two[j])
				eT += (one[j] - two[j]) * (one[j] - two[j])
				norm += two[j] * two[j]
			}
		}
		relS, relT := math.Sqrt(eS/norm), math.Sqrt(eT/norm)
		t.Logf("from t=%d: student one step vs teacher two: relative error %.4f; teacher one step vs two: %.4f", r.Grid[half], relS, relT)
		if half == 1 {
			// From t = 333 the mixture's component is all but decided, one teacher step is nearly
			// as good as two, and the tolerance is absolute.
			if !(relS < 0.1) {
				t.Errorf("from t=%d: the student's step is %.4f from the teacher's two steps, want < 0.1", r.Grid[half], relS)
			}
			continue
		}
		if !(relS < relT/3) {
			t.Errorf("from t=%d: the student's step is %.4f from the teacher's two steps, not well below the teacher's one-step gap %.4f", r.Grid[half], relS, relT)
		}
	}
}

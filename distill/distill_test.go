package distill

import (
	"bytes"
	"context"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/ddpm-go/ddpm/checkpoint"
	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/nn"
	"github.com/ddpm-go/ddpm/schedule"
	"github.com/ddpm-go/ddpm/tensor"
)

// TestXTargetByHand checks Algorithm 2's target on numbers worked out by hand: abar_t = 0.36
// (alpha 0.6, sigma 0.8) and abar_t2 = 0.64 (alpha 0.8, sigma 0.6), z_t = 1, z_t2 = 0.5:
// x = (0.5 - 0.75 * 1) / (0.8 - 0.75 * 0.6) = -0.25 / 0.35 = -5/7. At t2 = -1 (clean) it is z_t2.
// And the defining property: one DDIM step from z_t with x_hat = x lands on z_t2.
func TestXTargetByHand(t *testing.T) {
	s := &schedule.Schedule{Name: "hand", T: 2, AlphaBar: []float64{0.64, 0.36}}
	out := make([]float64, 1)
	XTarget(s, 1, 0, []float64{1}, []float64{0.5}, out)
	if math.Abs(out[0]-(-5.0/7)) > 1e-15 {
		t.Errorf("x target %v, want -5/7", out[0])
	}
	XTarget(s, 1, -1, []float64{1}, []float64{0.5}, out)
	if out[0] != 0.5 {
		t.Errorf("x target at the clean end %v, want z_t2 = 0.5", out[0])
	}
	XTarget(s, 1, 0, []float64{1}, []float64{0.5}, out)
	eps := (1 - 0.6*out[0]) / 0.8
	if got := 0.8*out[0] + 0.6*eps; math.Abs(got-0.5) > 1e-15 {
		t.Errorf("a DDIM step with the target lands at %v, want 0.5", got)
	}
	// The v of the target and the weight: x = alpha z - sigma v, weight max(alpha^2, sigma^2).
	v := make([]float64, 1)
	w := VTarget(s, 1, []float64{1}, out, v)
	if math.Abs(0.6*1-0.8*v[0]-out[0]) > 1e-15 || math.Abs(w-0.64) > 1e-15 {
		t.Errorf("v target %v weight %v", v[0], w)
	}
}

// TestTeacherStepsAreDDIM checks the teacher's two steps against the project's DDIM sampler over
// the same explicit grid: for a 2-step teacher grid the two steps end at the clean sample, which
// is the target itself.
func TestTeacherStepsAreDDIM(t *testing.T) {
	ctx := context.Background()
	s, _ := schedule.New("linear", 1000, false)
	m := testMixture()
	grid := []int{999, 420}
	tc := oracleTeacher(m, s, grid)
	n, dim := 3, 16
	z := make([]float64, n*dim)
	rng := diffusion.RowRNG(5, 0)
	for i := range z {
		z[i] = rng.NormFloat64()
	}
	want, err := (&diffusion.DDIM{Schedule: s, Grid: grid}).Sample(ctx, &diffusion.Oracle{Mixture: m, Schedule: s}, n, dim, diffusion.Options{XT: z})
	if err != nil {
		t.Fatal(err)
	}
	got := make([]float64, n*dim)
	if err := tc.Target(ctx, z, make([]int, n), nil, dim, got); err != nil {
		t.Fatal(err)
	}
	for i := range got {
		if math.Abs(got[i]-want[i]) > 1e-12 {
			t.Fatalf("value %d: target %v, DDIM over %v %v", i, got[i], grid, want[i])
		}
	}
}

// cancelAfter is a teacher that cancels the run's context on its nth call, so a round stops
// between steps as a Ctrl-C would.
type cancelAfter struct {
	Denoiser
	n      int
	cancel context.CancelFunc
}

func (c *cancelAfter) Denoise(ctx context.Context, x []float64, ts, labels []int, dim int, out []float64) error {
	if c.n--; c.n == 0 {
		c.cancel()
	}
	return c.Denoiser.Denoise(ctx, x, ts, labels, dim, out)
}

// TestRoundResumeBitExact runs a round of 7 steps straight and as 3 steps, an interruption
// (which checkpoints) and a resume to 7: the model files must be byte-identical.
func TestRoundResumeBitExact(t *testing.T) {
	s, _ := schedule.New("linear", 1000, false)
	m := testMixture()
	be := tensor.NewReference(1)
	teacherNet, err := nn.New(tinyCfg, be, 7)
	if err != nil {
		t.Fatal(err)
	}
	grid, _ := diffusion.NestedGrid(1000, 8, 8)
	set := mixtureSet(m, 40, 2)
	run := func(dir string, tc Denoiser, ctx context.Context) (*RoundResult, error) {
		u, err := nn.New(tinyCfg, be, 1)
		if err != nil {
			t.Fatal(err)
		}
		r := &Round{Name: "steps-4", Dir: dir, Steps: 7, Grid: diffusion.HalveGrid(grid), Student: u, Set: set,
			Teacher:    &Teacher{Model: tc, Prediction: diffusion.Eps, Schedule: s, Grid: grid},
			Hyper:      Hyper{Batch: 6, LR: 1e-3, GradClip: 1, Seed: 9, CkptEvery: 2, Keep: 2},
			Meta:       map[string]string{checkpoint.MetaPrediction: "v"},
			SampleGrid: diffusion.HalveGrid(grid)}
		return r.Run(ctx)
	}
	straight := t.TempDir()
	if _, err := run(straight, Net{U: teacherNet}, context.Background()); err != nil {
		t.Fatal(err)
	}
	split := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	// Each step calls the teacher twice (its two DDIM steps): cancelled in step 4's second call,
	// the round abandons step 4 (its batch drawn, its update not made) and checkpoints step 3.
	res, err := run(split, &cancelAfter{Denoiser: Net{U: teacherNet}, n: 8, cancel: cancel}, ctx)
	if err == nil || res == nil || res.TrainSteps != 3 {
		t.Fatalf("interrupted round: %+v, %v; want a stop at step 3", res, err)
	}
	if _, err := os.Stat(checkpoint.CheckpointPath(split, 3)); err != nil {
		t.Fatal(err)
	}
	if _, err := run(split, Net{U: teacherNet}, context.Background()); err != nil {
		t.Fatal(err)
	}
	a, err := os.ReadFile(filepath.Join(straight, checkpoint.EMAFile))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(split, checkpoint.EMAFile))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Error("7 steps straight and 3 + resume to 7 wrote different weights")
	}
	ra, _ := os.ReadFile(filepath.Join(straight, checkpoint.MetricsFile))
	rb, _ := os.ReadFile(filepath.Join(split, checkpoint.MetricsFile))
	if len(ra) == 0 || bytes.Count(ra, []byte("\n")) != bytes.Count(rb, []byte("\n")) {
		t.Errorf("metrics: %d and %d lines", bytes.Count(ra, []byte("\n")), bytes.Count(rb, []byte("\n")))
	}
}

package generate

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/nn"
	"github.com/ddpm-go/ddpm/schedule"
	"github.com/ddpm-go/ddpm/tensor"
)

// TestLabeledBatchInvariance: with labels and guidance, image i still depends only on the seed, i
// and its class: a class-conditional network sampled in one batch, in batches of one and from
// start 2 agrees to the bit on every engine (with chunking where the engine needs it), the Pow2
// path gives the same images on the reference engine, and the class changes the image.
func TestLabeledBatchInvariance(t *testing.T) {
	ctx := context.Background()
	for name, be := range backends(t) {
		chunk := 0
		if strings.HasPrefix(name, "dnnl") {
			chunk = 3
		}
		cfg := tinyConfig()
		cfg.NumClasses = 3
		m := condModel(t, be, cfg)
		sampler, _, err := SamplerSpec{Name: "ddpm", Steps: 10}.New(m.Schedule)
		if err != nil {
			t.Fatal(err)
		}
		labels := []int{2, 0, diffusion.NoLabel, 1}
		job := func(n, start, batch int, labels []int) Job {
			return Job{N: n, Start: start, Seed: 4, Batch: batch, Chunk: chunk, Labels: labels, Guidance: 2.5}
		}
		all, err := m.Sample(ctx, sampler, job(4, 0, 4, labels))
		if err != nil {
			t.Fatal(err)
		}
		ones, err := m.Sample(ctx, sampler, job(4, 0, 1, labels))
		if err != nil {
			t.Fatal(err)
		}
		tail, err := m.Sample(ctx, sampler, job(2, 2, 3, labels[2:]))
		if err != nil {
			t.Fatal(err)
		}
		dim := m.Dim()
		if !reflect.DeepEqual(all, ones) || !reflect.DeepEqual(all[2*dim:], tail) {
			t.Errorf("%s: batch 4, batch 1 and start 2 differ", name)
		}
		if chunk == 0 {
			p2 := job(4, 0, 4, labels)
			p2.Pow2 = 2
			pw, err := m.Sample(ctx, sampler, p2)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(all, pw) {
				t.Errorf("%s: Pow2 calls change the images", name)
			}
		}
		other, err := m.Sample(ctx, sampler, job(4, 0, 4, []int{1, 0, diffusion.NoLabel, 1}))
		if err != nil {
			t.Fatal(err)
		}
		if reflect.DeepEqual(all[:dim], other[:dim]) || !reflect.DeepEqual(all[dim:], other[dim:]) {
			t.Errorf("%s: changing image 0's class must change image 0 and nothing else", name)
		}
	}
}

// condModel is tinyModel's network built from cfg.
func condModel(t *testing.T, be tensor.Backend, cfg nn.Config) *Model {
	t.Helper()
	m := tinyModel(t, be, 3)
	u, err := nn.New(cfg, be, 3)
	if err != nil {
		t.Fatal(err)
	}
	m.Net = u
	return m
}

// TestRunLabeledIsGuided: RunLabeled over batches equals the sampler driven by diffusion.Guided
// directly, on the exact class oracle.
func TestRunLabeledIsGuided(t *testing.T) {
	s, err := schedule.New("linear", 50, false)
	if err != nil {
		t.Fatal(err)
	}
	mix := &diffusion.Mixture{Weights: []float64{0.5, 0.5}, Means: [][]float64{{-1, 1}, {1, -1}}, Stds: []float64{0.2, 0.3}}
	oracle := &diffusion.ClassOracle{Mixture: mix, Schedule: s}
	sampler := &diffusion.DDIM{Schedule: s, Steps: 10, Eta: 1}
	labels := []int{0, 1, 1, diffusion.NoLabel, 0}
	got, err := RunLabeled(context.Background(), sampler, oracle, diffusion.Eps, 2, Job{N: 5, Seed: 1, Batch: 2, Labels: labels, Guidance: 3})
	if err != nil {
		t.Fatal(err)
	}
	want, err := sampler.Sample(context.Background(), &diffusion.Guided{Model: oracle, Labels: labels, Scale: 3}, 5, 2, diffusion.Options{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("RunLabeled %v, Guided %v", got, want)
	}
}

// TestLabelErrors: a class for an unconditional model, a class past the model's, a label count
// that is not N and a non-finite scale are errors.
func TestLabelErrors(t *testing.T) {
	be := tensor.NewReference(1)
	plain := tinyModel(t, be, 3)
	cfg := tinyConfig()
	cfg.NumClasses = 3
	cond := condModel(t, be, cfg)
	sampler, _, _ := SamplerSpec{Steps: 2}.New(plain.Schedule)
	for _, c := range []struct {
		m    *Model
		job  Job
		want string
	}{
		{plain, Job{N: 1, Labels: []int{0}}, "unconditional"},
		{cond, Job{N: 1, Labels: []int{3}}, "classes 0..2"},
		{cond, Job{N: 2, Labels: []int{0}}, "1 labels for 2 images"},
	} {
		_, err := c.m.Sample(context.Background(), sampler, c.job)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.job, err, c.want)
		}
	}
	_, err := Run(context.Background(), sampler, plain.Net, plain.Prediction, plain.Dim(), Job{N: 1, Labels: []int{0}})
	if err == nil {
		t.Error("Run with labels: no error")
	}
}

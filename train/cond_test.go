package train

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ddpm-go/ddpm/checkpoint"
	"github.com/ddpm-go/ddpm/data"
	"github.com/ddpm-go/ddpm/nn"
	"github.com/ddpm-go/ddpm/tensor"
)

// labelledSet is tinySet with labels i mod 3 named a, b, c.
func labelledSet(t *testing.T) *data.Set {
	s := tinySet(t)
	s.Labels = make([]uint8, s.N)
	for i := range s.Labels {
		s.Labels[i] = uint8(i % 3)
	}
	s.Classes = []string{"a", "b", "c"}
	return s
}

func runCond(t *testing.T, c Config, resume bool) (*Result, error) {
	t.Helper()
	return Run(context.Background(), c, Options{Resume: resume, Set: labelledSet(t), Backend: tensor.NewReference(2), Log: new(strings.Builder)})
}

// TestConditionalResumeBitIdentical: a class-conditional run (labels dropped with probability 0.3)
// resumed at step 3 ends bit-identical to a straight one, and its model file loads as a 3-class
// network that knows its class names.
func TestConditionalResumeBitIdentical(t *testing.T) {
	root := t.TempDir()
	straight := tinyConfig(t, filepath.Join(root, "straight"))
	straight.Cond, straight.PUncond = "class", 0.3
	if _, err := runCond(t, straight, false); err != nil {
		t.Fatal(err)
	}
	split := straight
	split.Out, split.Steps = filepath.Join(root, "split"), 3
	if _, err := runCond(t, split, false); err != nil {
		t.Fatal(err)
	}
	resumed, err := ResumeConfig(split.Out, Config{Steps: 6}, []string{"steps"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := runCond(t, resumed, true); err != nil {
		t.Fatal(err)
	}
	sameFile(t, checkpoint.CheckpointPath(straight.Out, 6), checkpoint.CheckpointPath(split.Out, 6))

	m, err := checkpoint.LoadForSampling(straight.Out, tensor.NewReference(1), true)
	if err != nil {
		t.Fatal(err)
	}
	if m.Net.Cfg.NumClasses != 3 || !slices.Equal(m.Classes, []string{"a", "b", "c"}) {
		t.Fatalf("loaded num_classes %d, classes %v; want 3, [a b c]", m.Net.Cfg.NumClasses, m.Classes)
	}
}

// TestLabelDropout: with p-uncond 0 the "no label" row of the embedding never gets a gradient (no
// weight decay, so AdamW leaves it exactly at its initial value); with p-uncond 0.3 it is trained.
// The class rows are trained either way.
func TestLabelDropout(t *testing.T) {
	emb := func(p float64) (init, final []float32) {
		c := tinyConfig(t, filepath.Join(t.TempDir(), "run"))
		c.Cond, c.PUncond, c.WeightDecay = "class", p, 0
		if _, err := runCond(t, c, false); err != nil {
			t.Fatal(err)
		}
		m, err := checkpoint.LoadForSampling(checkpoint.CheckpointPath(c.Out, 6), tensor.NewReference(1), false)
		if err != nil {
			t.Fatal(err)
		}
		cfg := m.Net.Cfg
		fresh, err := nn.New(cfg, tensor.NewReference(1), c.Seed)
		if err != nil {
			t.Fatal(err)
		}
		last := func(ps []*tensor.Param) []float32 { return ps[len(ps)-1].W }
		return last(fresh.Params()), last(m.Net.Params())
	}
	D := 32 // tinyModel's time_embed_dim
	for _, p := range []float64{0, 0.3} {
		init, final := emb(p)
		noLabelSame := slices.Equal(init[3*D:], final[3*D:])
		if noLabelSame != (p == 0) {
			t.Errorf("p-uncond %g: no-label row unchanged = %v", p, noLabelSame)
		}
		if slices.Equal(init[:D], final[:D]) {
			t.Errorf("p-uncond %g: the row of class a was not trained", p)
		}
	}
}

func TestConditionalErrors(t *testing.T) {
	c := tinyConfig(t, filepath.Join(t.TempDir(), "run"))
	c.Cond = "class"
	_, err := Run(context.Background(), c, Options{Set: tinySet(t), Backend: tensor.NewReference(1), Log: new(strings.Builder)})
	if err == nil || !strings.Contains(err.Error(), "has no labels") {
		t.Errorf("unlabelled data: %v", err)
	}
	for _, bad := range []Config{{Cond: "label"}, {Cond: "class", PUncond: 1.5}} {
		c := Default()
		c.Cond, c.PUncond = bad.Cond, bad.PUncond
		if err := c.Validate(); err == nil {
			t.Errorf("cond %q p-uncond %g accepted", bad.Cond, bad.PUncond)
		}
	}
	// A class-conditional network config must be trained with --cond class.
	cfg, _ := nn.Named("unet-s")
	cfg.NumClasses = 10
	if err := conditioning(Default(), labelledSet(t), &cfg); err == nil || !strings.Contains(err.Error(), "--cond class") {
		t.Errorf("conditional model, --cond none: %v", err)
	}
	c = Default()
	c.Cond = "class"
	if err := conditioning(c, labelledSet(t), &cfg); err == nil || !strings.Contains(err.Error(), "3 classes") {
		t.Errorf("10-class model on 3-class data: %v", err)
	}
}

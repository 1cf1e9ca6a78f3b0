package train

import (
	"errors"
	"math"
	"path/filepath"
	"testing"

	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/nn"
	"github.com/ddpm-go/ddpm/schedule"
	"github.com/ddpm-go/ddpm/tensor"
)

// TestStepperRefusesNonFinite: a step whose loss is not finite leaves the weights and the optimiser
// as they were, and says which quantity failed.
func TestStepperRefusesNonFinite(t *testing.T) {
	c := tinyConfig(t, filepath.Join(t.TempDir(), "run"))
	mcfg, err := nn.LoadConfig(c.Model)
	if err != nil {
		t.Fatal(err)
	}
	u, err := nn.New(mcfg, tensor.NewReference(1), 1)
	if err != nil {
		t.Fatal(err)
	}
	s, err := schedule.New(c.Schedule, c.Timesteps, false)
	if err != nil {
		t.Fatal(err)
	}
	st := NewStepper(c, u, s, diffusion.Eps)
	x0 := make([]float32, 4*64)
	loss, err := st.Step(x0, nil, StepRNG(1, 1), c.LR, EMADecay(c.EMA, 1))
	if err != nil || !(loss > 0) || st.Adam.Steps() != 1 {
		t.Fatalf("step on zeros: loss %v, err %v, adam steps %d", loss, err, st.Adam.Steps())
	}
	w := u.Params()[0].W[0]
	x0[3] = float32(math.NaN())
	_, err = st.Step(x0, nil, StepRNG(1, 2), c.LR, EMADecay(c.EMA, 2))
	var nf *NonFiniteError
	if !errors.As(err, &nf) || nf.What != "loss" || st.Adam.Steps() != 1 || u.Params()[0].W[0] != w {
		t.Errorf("NaN input: err %v, adam steps %d, weight %v -> %v", err, st.Adam.Steps(), w, u.Params()[0].W[0])
	}
}

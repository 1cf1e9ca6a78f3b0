package nn_test

import (
	"strings"
	"testing"

	"github.com/ddpm-go/ddpm/nn"
	"github.com/ddpm-go/ddpm/tensor"
)

// TestForwardFLOPs checks UNet-S's count against the sum written out layer by layer from the
// architecture (3x3 convolutions 2*Cin*Cout*9*H*W each, the 1x1 skips, the time MLP and the eight
// per-block time projections): 398,755,840 FLOPs.
func TestForwardFLOPs(t *testing.T) {
	cfg, err := nn.Named("unet-s")
	if err != nil {
		t.Fatal(err)
	}
	f, err := nn.ForwardFLOPs(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if f != 398755840 {
		t.Fatalf("unet-s forward %.0f FLOPs, want 398755840", f)
	}
}

// TestTrainingBytes: the estimate grows with the batch and brackets what UNet-S measures (peak RSS
// 778 MiB at batch 128 in fp32, the process's own overhead included) within a factor of two.
func TestTrainingBytes(t *testing.T) {
	cfg, _ := nn.Named("unet-s")
	a, err := nn.TrainingBytes(cfg, 128)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := nn.TrainingBytes(cfg, 256)
	if !(b > a) || a < 778<<20/2 || a > 2*778<<20 {
		t.Fatalf("batch 128: %.0f MiB, batch 256: %.0f MiB", a/(1<<20), b/(1<<20))
	}
	t.Logf("unet-s batch 128: %.0f MiB", a/(1<<20))
}

// TestParamBound: the bound holds for the built-in configs (it is an upper bound), and a config
// within every field's limit that would need terabytes is refused by New before allocating.
func TestParamBound(t *testing.T) {
	for _, name := range nn.Names() {
		cfg, _ := nn.Named(name)
		u, err := nn.New(cfg, tensor.NewReference(1), 0)
		if err != nil {
			t.Fatal(err)
		}
		if b := nn.ParamBound(cfg); float64(u.NumParams()) > b || b > 40*float64(u.NumParams()) {
			t.Errorf("%s: %d parameters, bound %.3g", name, u.NumParams(), b)
		}
	}
	huge, _ := nn.Named("unet-s")
	huge.BaseChannels, huge.Groups = 16384, 8
	if _, err := nn.New(huge, tensor.NewReference(1), 0); err == nil || !strings.Contains(err.Error(), "more than this machine's") {
		t.Fatalf("a %.3g-parameter config: %v", nn.ParamBound(huge), err)
	}
}

// TestInferenceBytes: the estimate grows linearly with the rows of a call, stays below training's
// at the same batch (no gradients, no optimizer state).
func TestInferenceBytes(t *testing.T) {
	cfg, _ := nn.Named("unet-s")
	one, err := nn.InferenceBytes(cfg, 1)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := nn.InferenceBytes(cfg, 32)
	b, _ := nn.InferenceBytes(cfg, 64)
	tr, _ := nn.TrainingBytes(cfg, 64)
	if per := a - one; !(b-a > 0.99*32/31*per && b-a < 1.01*32/31*per) || b >= tr {
		t.Fatalf("1: %.0f, 32: %.0f, 64: %.0f bytes; training at 64: %.0f", one, a, b, tr)
	}
	t.Logf("unet-s forward: %.1f MiB at 1 image, %.1f MiB at 32", one/(1<<20), a/(1<<20))
}

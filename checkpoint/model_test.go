package checkpoint_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ddpm-go/ddpm/checkpoint"
	"github.com/ddpm-go/ddpm/nn"
	"github.com/ddpm-go/ddpm/tensor"
)

var tiny = nn.Config{
	Name: "tiny", ImageSize: 8, InChannels: 1, OutChannels: 1, BaseChannels: 8, ChannelMult: []int{1, 2},
	ResBlocks: 1, AttnResolutions: []int{4}, Heads: 2, Dropout: 0.1, TimeEmbedDim: 16, SinusoidalDim: 8, Groups: 4,
}

func sameWeights(t *testing.T, a, b []*tensor.Param) {
	t.Helper()
	if len(a) != len(b) {
		t.Fatalf("%d vs %d params", len(a), len(b))
	}
	for i := range a {
		if a[i].Name != b[i].Name || !slices.Equal(a[i].W, b[i].W) {
			t.Fatalf("param %d (%s / %s) differs", i, a[i].Name, b[i].Name)
		}
	}
}

func TestSaveLoadModel(t *testing.T) {
	be := tensor.NewReference(1)
	u, _ := nn.New(tiny, be, 1)
	dir := t.TempDir()
	path := filepath.Join(dir, "m.safetensors")
	if err := checkpoint.SaveModel(path, u, map[string]string{"note": "x"}); err != nil {
		t.Fatal(err)
	}
	v, meta, err := checkpoint.LoadModel(path, be, "")
	if err != nil {
		t.Fatal(err)
	}
	if meta["note"] != "x" || v.Cfg.Name != "tiny" {
		t.Errorf("meta %v cfg %+v", meta, v.Cfg)
	}
	sameWeights(t, u.Params(), v.Params())
	b, _ := os.ReadFile(path)
	if w, _, err := checkpoint.DecodeModel(b, be, ""); err != nil {
		t.Error(err)
	} else {
		sameWeights(t, u.Params(), w.Params())
	}

	// Without config metadata, a JSON beside the file supplies it.
	bare := filepath.Join(dir, "bare.safetensors")
	if err := checkpoint.Save(bare, nil, checkpoint.Group{Params: u.Params()}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := checkpoint.LoadModel(bare, be, ""); err == nil || !strings.Contains(err.Error(), "no model config") {
		t.Errorf("no config: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "bare.json"), tiny.JSON(), 0o644)
	if w, _, err := checkpoint.LoadModel(bare, be, ""); err != nil {
		t.Error(err)
	} else {
		sameWeights(t, u.Params(), w.Params())
	}

	// A file with tensors the model lacks is refused, naming the tensor.
	if _, _, err := checkpoint.LoadModel("../nn/testdata/unet_s_fixture.safetensors", be, ""); err == nil || !strings.Contains(err.Error(), "no model config") {
		t.Errorf("fixture without config: %v", err)
	}
	cfgS, _ := nn.Named("unet-s")
	fix, _ := filepath.Abs("../nn/testdata/unet_s_fixture.safetensors")
	os.Symlink(fix, filepath.Join(dir, "fix.safetensors"))
	os.WriteFile(filepath.Join(dir, "fix.json"), cfgS.JSON(), 0o644)
	if _, _, err := checkpoint.LoadModel(filepath.Join(dir, "fix.safetensors"), be, ""); err == nil || !strings.Contains(err.Error(), "unexpected tensor") {
		t.Errorf("fixture with extra tensors: %v", err)
	}
	s, _ := nn.New(cfgS, be, 1)
	if err := checkpoint.SaveModel(path, s, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := checkpoint.Load(path, checkpoint.Group{Params: u.Params()}); err == nil || !strings.Contains(err.Error(), "shape") && !strings.Contains(err.Error(), "missing") {
		t.Errorf("loading unet-s weights into tiny: %v", err)
	}
}

// step fakes one training step: deterministic gradients, clip, AdamW, EMA.
func step(u *nn.UNet, o *nn.AdamW, e *nn.EMA, k int) {
	for i, p := range u.Params() {
		copy(p.G, tensor.RandN(p.Shape, uint64(1000*k+i)))
	}
	nn.ClipGradNorm(u.Params(), 1)
	o.Step()
	e.Update()
}

// TestTrainingResume saves after two steps, restores into fresh objects, and checks that a third step
// gives bit-identical weights, EMA and moments on both.
func TestTrainingResume(t *testing.T) {
	be := tensor.NewReference(1)
	build := func(seed uint64) (*nn.UNet, *nn.AdamW, *nn.EMA) {
		u, _ := nn.New(tiny, be, seed)
		return u, nn.NewAdamW(u.Params(), 1e-3), nn.NewEMA(u.Params(), 0.99)
	}
	u, o, e := build(1)
	step(u, o, e, 1)
	step(u, o, e, 2)
	u.DropoutSeed = 77
	path := filepath.Join(t.TempDir(), "train.safetensors")
	st := &checkpoint.Training{Model: u, EMA: e, Opt: o, Step: 2, RNG: []byte{1, 2, 3}, Meta: map[string]string{"epoch": "0"}}
	if err := checkpoint.SaveTraining(path, st); err != nil {
		t.Fatal(err)
	}
	u2, o2, e2 := build(2)
	got := &checkpoint.Training{Model: u2, EMA: e2, Opt: o2}
	if err := checkpoint.LoadTraining(path, got); err != nil {
		t.Fatal(err)
	}
	if got.Step != 2 || string(got.RNG) != "\x01\x02\x03" || got.Meta["epoch"] != "0" || o2.Steps() != 2 || u2.DropoutSeed != 77 {
		t.Errorf("restored step %d rng %v meta %v t %d dropout seed %d", got.Step, got.RNG, got.Meta, o2.Steps(), u2.DropoutSeed)
	}
	step(u, o, e, 3)
	step(u2, o2, e2, 3)
	sameWeights(t, u.Params(), u2.Params())
	sameWeights(t, e.Params(), e2.Params())
	m, v := o.Moments()
	m2, v2 := o2.Moments()
	sameWeights(t, m, m2)
	sameWeights(t, v, v2)

	// The training file also loads as a model, plain or EMA weights.
	ema, _, err := checkpoint.LoadModel(path, be, checkpoint.PrefixEMA)
	if err != nil {
		t.Fatal(err)
	}
	if ema.Params()[0].W[0] == u2.Params()[0].W[0] {
		t.Error("EMA weights equal the model's")
	}
	if _, _, err := checkpoint.LoadModel(path, be, ""); err != nil {
		t.Error(err)
	}

	// A different config is refused.
	other := tiny
	other.Dropout = 0
	u3, _ := nn.New(other, be, 1)
	if err := checkpoint.LoadTraining(path, &checkpoint.Training{Model: u3}); err == nil || !strings.Contains(err.Error(), "model config") {
		t.Errorf("config mismatch: %v", err)
	}
}

// TestTorchRoundTrip sends unet-s weights through PyTorch: Go saves, scripts/torch/convert.py makes a
// state_dict that the PyTorch UNetS of bench/unet_s_torch.py loads strictly, then converts back; the
// weights come home bit-exact.
// Skipped without /usr/bin/python3 and torch, or with -short.
func TestTorchRoundTrip(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	py := "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import torch").Run(); err != nil {
		t.Skip("no python3 with torch")
	}
	be := tensor.NewReference(1)
	cfg, _ := nn.Named("unet-s")
	u, _ := nn.New(cfg, be, 5)
	dir := t.TempDir()
	st, pt, back := filepath.Join(dir, "a.safetensors"), filepath.Join(dir, "a.pt"), filepath.Join(dir, "b.safetensors")
	if err := checkpoint.SaveModel(st, u, nil); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "cfg.json"), cfg.JSON(), 0o644)
	script := `
import sys, torch
sys.path.insert(0, "../bench")
from unet_s_torch import UNetS
m = UNetS()
m.load_state_dict(torch.load(sys.argv[1]), strict=True)
print(sum(p.numel() for p in m.parameters()))
`
	run := func(args ...string) string {
		out, err := exec.Command(py, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	run("../scripts/torch/convert.py", st, pt)
	if out := run("-c", script, pt); !strings.Contains(out, "1741025") {
		t.Errorf("PyTorch load: %s", out)
	}
	run("../scripts/torch/convert.py", pt, back, "--config", filepath.Join(dir, "cfg.json"))
	v, _, err := checkpoint.LoadModel(back, be, "")
	if err != nil {
		t.Fatal(err)
	}
	sameWeights(t, u.Params(), v.Params())
}

package nn_test

import (
	"math"
	"testing"

	"github.com/ddpm-go/ddpm/checkpoint"
	"github.com/ddpm-go/ddpm/nn"
	"github.com/ddpm-go/ddpm/tensor"
)

// TestAdamWHand checks two steps against the update rule worked by hand.
func TestAdamWHand(t *testing.T) {
	p := tensor.NewParam("w", 2)
	p.W[0], p.W[1] = 1, -2
	o := nn.NewAdamW([]*tensor.Param{p}, 0.1)
	p.G[0], p.G[1] = 0.5, 0
	o.Step()
	// Step 1: m^ = g, v^ = g^2, so the Adam part is lr*g/(|g|+eps); decay multiplies w by 1-0.1*0.01.
	want0 := 1*0.999 - 0.1*0.5/(0.5+1e-8)
	want1 := -2 * 0.999 // zero gradient: only the weight decay acts
	if math.Abs(float64(p.W[0])-want0) > 1e-7 || math.Abs(float64(p.W[1])-want1) > 1e-7 {
		t.Errorf("step 1: w = %v, want [%v %v]", p.W, want0, want1)
	}
	// Step 2 with g = -0.25: m = 0.9*0.05 - 0.1*0.25 = 0.02, v = 0.999*0.00025 + 0.001*0.0625.
	p.G[0] = -0.25
	w := float64(p.W[0])
	o.Step()
	m, v := 0.02, 0.999*0.00025+0.001*0.0625
	want0 = w*0.999 - 0.1/(1-0.81)*m/(math.Sqrt(v)/math.Sqrt(1-0.999*0.999)+1e-8)
	if math.Abs(float64(p.W[0])-want0) > 1e-6 {
		t.Errorf("step 2: w = %v, want %v", p.W[0], want0)
	}
	if p.Version != 2 || o.Steps() != 2 {
		t.Errorf("Version %d, Steps %d, want 2, 2", p.Version, o.Steps())
	}
}

// TestAdamWTorch replays three torch.optim.AdamW steps (scripts/torch/make_fixture.py, lr 1e-2,
// defaults otherwise, gradients from 0.1x to 10x in size): weights agree to 1e-6 absolute.
func TestAdamWTorch(t *testing.T) {
	f, err := checkpoint.ReadFile("testdata/adamw_fixture.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	get := func(name string) checkpoint.Tensor {
		v, ok := f.Lookup(name)
		if !ok {
			t.Fatalf("fixture has no %q", name)
		}
		return v
	}
	var ps []*tensor.Param
	for _, n := range []string{"a", "b"} {
		w0 := get("w0." + n)
		p := tensor.NewParam(n, w0.Shape...)
		copy(p.W, w0.Data)
		ps = append(ps, p)
	}
	o := nn.NewAdamW(ps, 1e-2)
	for k := 1; k <= 3; k++ {
		for _, p := range ps {
			copy(p.G, get("g"+string(rune('0'+k))+"."+p.Name).Data)
		}
		o.Step()
		for _, p := range ps {
			want := get("w" + string(rune('0'+k)) + "." + p.Name).Data
			for i := range want {
				if d := math.Abs(float64(p.W[i] - want[i])); d > 1e-6 {
					t.Errorf("step %d %s[%d] = %v, torch %v", k, p.Name, i, p.W[i], want[i])
				}
			}
		}
	}
}

func TestClipGradNorm(t *testing.T) {
	a, b := tensor.NewParam("a", 1), tensor.NewParam("b", 1)
	a.G[0], b.G[0] = 3, 4
	ps := []*tensor.Param{a, b}
	if n := nn.ClipGradNorm(ps, 10); n != 5 || a.G[0] != 3 {
		t.Errorf("below the limit: norm %v, g %v", n, a.G[0])
	}
	if n := nn.ClipGradNorm(ps, 1); n != 5 || math.Abs(float64(a.G[0])-0.6) > 1e-6 || math.Abs(float64(b.G[0])-0.8) > 1e-6 {
		t.Errorf("clipped: norm %v, g %v %v, want 5, 0.6 0.8", n, a.G[0], b.G[0])
	}
	a.G[0] = float32(math.NaN())
	before := b.G[0]
	if n := nn.ClipGradNorm(ps, 1); !math.IsNaN(n) || b.G[0] != before {
		t.Errorf("NaN gradient: norm %v, other gradient changed to %v", n, b.G[0])
	}
}

func TestWarmupLR(t *testing.T) {
	for _, c := range []struct {
		warmup, step int
		want         float64
	}{{100, 1, 0.01}, {100, 50, 0.5}, {100, 100, 1}, {100, 1000, 1}, {0, 1, 1}, {10, 0, 0}} {
		if got := nn.WarmupLR(1, c.warmup, c.step); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("WarmupLR(1, %d, %d) = %v, want %v", c.warmup, c.step, got, c.want)
		}
	}
}

func TestCooldownLR(t *testing.T) {
	for _, c := range []struct {
		warmup, cooldown, total, step int
		want                          float64
	}{
		{0, 4, 10, 6, 1}, {0, 4, 10, 7, 1}, {0, 4, 10, 8, 0.75}, {0, 4, 10, 9, 0.5}, {0, 4, 10, 10, 0.25},
		{0, 0, 10, 10, 1}, {10, 4, 10, 10, 0.25}, {10, 4, 10, 9, 0.45}, {0, 10, 10, 1, 1}, {0, 4, 10, 11, 0},
	} {
		if got := nn.CooldownLR(1, c.warmup, c.cooldown, c.total, c.step); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("CooldownLR(1, %d, %d, %d, %d) = %v, want %v", c.warmup, c.cooldown, c.total, c.step, got, c.want)
		}
	}
}

func TestEMA(t *testing.T) {
	p := tensor.NewParam("w", 1)
	p.W[0] = 1
	e := nn.NewEMA([]*tensor.Param{p}, 0.9)
	p.W[0] = 2
	e.Update() // 0.9*1 + 0.1*2
	p.W[0] = 0
	e.Update() // 0.9*1.1 + 0
	if got := e.Params()[0].W[0]; math.Abs(float64(got)-0.99) > 1e-6 {
		t.Errorf("shadow %v, want 0.99", got)
	}
	q := tensor.NewParam("w", 1)
	if err := e.CopyTo([]*tensor.Param{q}); err != nil || math.Abs(float64(q.W[0])-0.99) > 1e-6 || q.Version != 1 {
		t.Errorf("CopyTo: %v, w %v, version %d", err, q.W[0], q.Version)
	}
	if err := e.CopyTo([]*tensor.Param{tensor.NewParam("other", 1)}); err == nil {
		t.Error("CopyTo into a different model: want error")
	}
}

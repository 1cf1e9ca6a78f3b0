package nn_test

import (
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/ddpm-go/ddpm/nn"
	"github.com/ddpm-go/ddpm/tensor"
)

// TestInit checks PyTorch's default initialisation: conv and linear weights and biases uniform in
// +-1/sqrt(fan_in) (spread close to the bound, mean near zero), group norm weight 1 and bias 0, and
// that the seed alone fixes every value.
func TestInit(t *testing.T) {
	cfg, _ := nn.Named("unet-s")
	be := tensor.NewReference(1)
	u, _ := nn.New(cfg, be, 1)
	same, _ := nn.New(cfg, be, 1)
	other, _ := nn.New(cfg, be, 2)
	fanIn := map[string]int{}
	for _, p := range u.Params() {
		if strings.HasSuffix(p.Name, ".weight") && len(p.Shape) >= 2 {
			fanIn[strings.TrimSuffix(p.Name, ".weight")] = tensor.Numel(p.Shape[1:])
		}
	}
	for i, p := range u.Params() {
		if !slices.Equal(p.W, same.Params()[i].W) {
			t.Errorf("%s: same seed, different values", p.Name)
		}
		layer := p.Name[strings.LastIndex(p.Name, ".")+1:]
		module := strings.TrimSuffix(p.Name, "."+layer)
		fi, linear := fanIn[module]
		if !linear { // group norm
			want := float32(0)
			if layer == "weight" {
				want = 1
			}
			for _, v := range p.W {
				if v != want {
					t.Fatalf("%s = %v, want %v", p.Name, v, want)
				}
			}
			continue
		}
		if slices.Equal(p.W, other.Params()[i].W) {
			t.Errorf("%s: seeds 1 and 2 give the same values", p.Name)
		}
		bound := 1 / math.Sqrt(float64(fi))
		var mx, sum float64
		for _, v := range p.W {
			mx = math.Max(mx, math.Abs(float64(v)))
			sum += float64(v)
		}
		n := float64(len(p.W))
		if mx > bound {
			t.Errorf("%s: |w| up to %v > bound %v", p.Name, mx, bound)
		}
		// The largest of n uniforms falls short of the bound by about bound/n; the mean has standard
		// deviation bound/sqrt(3n).
		if n >= 32 && mx < bound*(1-8/n) {
			t.Errorf("%s: |w| only up to %v, bound %v", p.Name, mx, bound)
		}
		if mean := sum / n; n >= 32 && math.Abs(mean) > 5*bound/math.Sqrt(3*n) {
			t.Errorf("%s: mean %v too far from 0 (bound %v, n %v)", p.Name, mean, bound, n)
		}
	}
}

// FuzzParseConfig: any bytes give a valid config or an error, never a panic.
func FuzzParseConfig(f *testing.F) {
	cfg, _ := nn.Named("unet-s")
	f.Add(cfg.JSON())
	f.Add(tiny.JSON())
	f.Add([]byte(`{"channel_mult":[0],"groups":0}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := nn.ParseConfig(b)
		if err == nil {
			if err := c.Validate(); err != nil {
				t.Fatalf("parsed config fails validation: %v", err)
			}
		}
	})
}

func TestConfigLimits(t *testing.T) {
	c := tiny
	c.ChannelMult = make([]int, 70)
	for i := range c.ChannelMult {
		c.ChannelMult[i] = 1
	}
	if err := c.Validate(); err == nil {
		t.Error("70 levels accepted")
	}
	c = tiny
	c.BaseChannels = 1 << 40
	if err := c.Validate(); err == nil {
		t.Error("2^40 channels accepted")
	}
}

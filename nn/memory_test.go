package nn_test

import (
	"testing"
	"time"

	"github.com/ddpm-go/ddpm/nn"
)

// TestForwardValuesBound: the activations InferenceBytes counts from the config alone are at least
// what running the network counts (it is a bound) and not far above it (it refuses nothing real),
// for the built-in configs and small ones with attention at several levels and in the middle.
func TestForwardValuesBound(t *testing.T) {
	var cfgs []nn.Config
	for _, name := range nn.Names() {
		c, _ := nn.Named(name)
		cfgs = append(cfgs, c)
	}
	cfgs = append(cfgs,
		nn.Config{Name: "attn-all", ImageSize: 16, InChannels: 3, OutChannels: 3, BaseChannels: 8, ChannelMult: []int{1, 2, 4},
			ResBlocks: 2, AttnResolutions: []int{16, 8, 4}, Heads: 2, TimeEmbedDim: 16, SinusoidalDim: 8, Groups: 4},
		nn.Config{Name: "narrowing", ImageSize: 8, InChannels: 1, OutChannels: 1, BaseChannels: 16, ChannelMult: []int{4, 1},
			ResBlocks: 1, AttnResolutions: []int{}, Heads: 1, TimeEmbedDim: 16, SinusoidalDim: 8, Groups: 4})
	for _, c := range cfgs {
		counted, err := nn.CountedActs(c)
		if err != nil {
			t.Fatal(err)
		}
		acts, work := nn.ForwardValues(c)
		if acts < counted || acts > 2*counted || work <= 0 {
			t.Errorf("%s: bound %.0f values (work %.0f), counted %.0f", c.Name, acts, work, counted)
		}
	}
}

// TestInferenceBytesHugeImage: a config whose weights are small but whose one image needs tens of
// gigabytes is sized without building or running it (running it to count died out of memory).
func TestInferenceBytesHugeImage(t *testing.T) {
	c, _ := nn.Named("unet-s")
	c.ImageSize = 16384
	t0 := time.Now()
	b, err := nn.InferenceBytes(c, 1)
	if err != nil {
		t.Fatal(err)
	}
	if b < 32<<30 || time.Since(t0) > time.Second {
		t.Fatalf("one 16384x16384 image: %.1f GiB in %v", b/(1<<30), time.Since(t0))
	}
}

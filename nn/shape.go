package nn

import (
	"fmt"
	"slices"
)

// Auto is the name that asks for a config chosen from the data's shape (see ForData).
const Auto = "auto"

// IsBuiltIn reports whether name is a built-in config or Auto: those adapt to the data's shape,
// where a JSON config file is taken as written.
func IsBuiltIn(name string) bool {
	_, ok := named[name]
	return ok || name == Auto
}

// ForData returns the built-in config name (or Auto) adapted to images of channels x size x size.
//
// Auto starts from unet-s for grey images and unet-c32 for colour, the two configs the project
// trains and ships (MNIST-like 1x28x28, emoji-like 3x32x32), and where the size cannot be halved
// as often as the config's levels need (28 is not divisible by 8) it drops the deepest levels until
// it can: at least two levels, so the size must be even.
//
// A named config keeps its levels: a size it cannot halve that often is an error that says which
// sizes it can take, so that asking for an architecture never silently trains a different one.
// Either way the input and output channels become the data's, and attention moves with the size:
// a config with attention at 16x16 of 32x32 images attends at 32x32 of 64x64 images (the same
// place in the network, relative to the image), rounded to the nearest resolution the network has.
func ForData(name string, channels, size int) (Config, error) {
	if channels < 1 || size < 1 {
		return Config{}, fmt.Errorf("model for %dx%dx%d images: channels and size must be positive", channels, size, size)
	}
	auto := name == Auto
	base := name
	if auto {
		base = "unet-c32"
		if channels == 1 {
			base = "unet-s"
		}
	}
	c, err := Named(base)
	if err != nil {
		return Config{}, err
	}
	levels := len(c.ChannelMult)
	fits := func(l int) bool { return size%(1<<(l-1)) == 0 && size>>(l-1) >= 2 }
	if auto {
		for levels > 2 && !fits(levels) {
			levels--
		}
	}
	if !fits(levels) {
		f := 1 << (levels - 1)
		try := fmt.Sprintf("--size %d", max(2*f, (size/f+1)*f))
		if lo := size / f * f; lo >= 2*f {
			try = fmt.Sprintf("--size %d or %d", lo, lo+f)
		}
		if auto {
			return Config{}, fmt.Errorf("no built-in model takes %dx%dx%d images: the UNet halves the size at least once, so it must be even and at least 4 (try %s)", channels, size, size, try)
		}
		return Config{}, fmt.Errorf("model %s halves the image size %d times, so it takes sizes divisible by %d and at least %d: not %d (try %s, or --model auto)", name, levels-1, f, 2*f, size, try)
	}
	if levels < len(c.ChannelMult) {
		c.ChannelMult = c.ChannelMult[:levels]
		c.Name = fmt.Sprintf("%s-%dlevels", c.Name, levels)
	}
	orig := c.ImageSize
	c.InChannels, c.OutChannels, c.ImageSize = channels, channels, size
	var res []int
	for l := range levels {
		res = append(res, size>>l)
	}
	var attn []int
	for _, r := range c.AttnResolutions {
		want := float64(r) * float64(size) / float64(orig)
		best := res[0]
		for _, x := range res {
			if abs(float64(x)-want) < abs(float64(best)-want) {
				best = x
			}
		}
		if !slices.Contains(attn, best) {
			attn = append(attn, best)
		}
	}
	c.AttnResolutions = attn
	if attn == nil {
		c.AttnResolutions = []int{}
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}

package nn

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"

	"github.com/ddpm-go/ddpm/internal/safeio"
)

// Config describes a UNet. Levels run from full resolution down: level i has BaseChannels*ChannelMult[i]
// channels and ResBlocks residual blocks, and every level but the last ends with a stride-2 conv that
// halves the resolution. Each down block leaves a skip for the up block that mirrors it.
type Config struct {
	Name            string  `json:"name,omitempty"`
	ImageSize       int     `json:"image_size"`       // H = W of the input
	InChannels      int     `json:"in_channels"`      // image channels in
	OutChannels     int     `json:"out_channels"`     // channels of the predicted eps
	BaseChannels    int     `json:"base_channels"`    // channels after conv_in
	ChannelMult     []int   `json:"channel_mult"`     // per level, multiplies BaseChannels
	ResBlocks       int     `json:"res_blocks"`       // residual blocks per level (down and up)
	AttnResolutions []int   `json:"attn_resolutions"` // resolutions whose blocks get self-attention
	Heads           int     `json:"heads"`            // attention heads
	Dropout         float64 `json:"dropout"`          // in ResBlocks, before c2, training only
	TimeEmbedDim    int     `json:"time_embed_dim"`   // width of the time embedding MLP
	SinusoidalDim   int     `json:"sinusoidal_dim"`   // width of the sinusoidal features of t
	Groups          int     `json:"groups"`           // GroupNorm groups
	// NumClasses > 0 makes the network class-conditional: a learned embedding of NumClasses+1 rows
	// (the last for "no label") is added to the time embedding. 0 (absent) is unconditional.
	NumClasses int `json:"num_classes,omitempty"`
}

var named = map[string]Config{
	// The PyTorch UNet-S of bench/unet_s_torch.py: channels (32, 64, 128), one ResBlock per level,
	// 28 -> 14 -> 7 and back, no attention. 1,741,025 parameters.
	"unet-s": {
		Name: "unet-s", ImageSize: 28, InChannels: 1, OutChannels: 1, BaseChannels: 32,
		ChannelMult: []int{1, 2, 4}, ResBlocks: 1, AttnResolutions: []int{}, Heads: 1,
		TimeEmbedDim: 256, SinusoidalDim: 64, Groups: 8,
	},
	// A bigger MNIST model in the shape of Ho et al.'s CIFAR-10 UNet: two blocks per level, attention
	// at 7x7 (and in the middle), dropout 0.1.
	"unet-m": {
		Name: "unet-m", ImageSize: 28, InChannels: 1, OutChannels: 1, BaseChannels: 64,
		ChannelMult: []int{1, 2, 2}, ResBlocks: 2, AttnResolutions: []int{7}, Heads: 4, Dropout: 0.1,
		TimeEmbedDim: 256, SinusoidalDim: 64, Groups: 8,
	},
	// Ho et al.'s CIFAR-10 UNet (their Appendix B: channel multipliers 1, 2, 2, 2, two ResBlocks per
	// level, self-attention at 16x16, dropout 0.1, a time embedding 4x the base width) with the base
	// width cut from 128 to 32, so one training step costs 0.69 GFLOP per image instead of about 12
	// and two CPU cores can train it on a few thousand images in an hour or two. 32x32 colour.
	"unet-c32": {
		Name: "unet-c32", ImageSize: 32, InChannels: 3, OutChannels: 3, BaseChannels: 32,
		ChannelMult: []int{1, 2, 2, 2}, ResBlocks: 2, AttnResolutions: []int{16}, Heads: 1, Dropout: 0.1,
		TimeEmbedDim: 128, SinusoidalDim: 32, Groups: 8,
	},
}

// Names lists the built-in configs.
func Names() []string {
	var ns []string
	for n := range named {
		ns = append(ns, n)
	}
	sort.Strings(ns)
	return ns
}

// Named returns a built-in config ("unet-s", "unet-m", "unet-c32").
func Named(name string) (Config, error) {
	c, ok := named[name]
	if !ok {
		return Config{}, fmt.Errorf("unknown model config %q (built in: %s)", name, strings.Join(Names(), ", "))
	}
	c.ChannelMult = slices.Clone(c.ChannelMult)
	c.AttnResolutions = slices.Clone(c.AttnResolutions)
	return c, nil
}

// ParseConfig decodes a JSON config; unknown fields are errors so a typo cannot silently fall back
// to a default, and so is anything after the object (a second config pasted in), which a plain
// Decode would leave unread. The result is validated.
func ParseConfig(b []byte) (Config, error) {
	var c Config
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return Config{}, fmt.Errorf("model config: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Config{}, fmt.Errorf("model config: trailing data after the JSON object at byte %d", dec.InputOffset())
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// LoadConfig reads a config: a built-in name ("unet-s") or the path of a JSON file.
func LoadConfig(nameOrPath string) (Config, error) {
	if c, err := Named(nameOrPath); err == nil {
		return c, nil
	}
	b, err := safeio.ReadFile(nameOrPath, 1<<20)
	if err != nil {
		return Config{}, fmt.Errorf("model config %q is neither built in (%s) nor a readable file: %w",
			nameOrPath, strings.Join(Names(), ", "), err)
	}
	c, err := ParseConfig(b)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", nameOrPath, err)
	}
	return c, nil
}

// JSON encodes the config (what checkpoints store beside the weights).
func (c Config) JSON() []byte {
	b, _ := json.Marshal(c)
	return b
}

// MaxClasses bounds num_classes: ImageNet has 1,000 and the embedding table is (MaxClasses+1) x
// time_embed_dim values.
const MaxClasses = 1 << 16

// Levels is the number of resolutions.
func (c Config) Levels() int { return len(c.ChannelMult) }

func (c Config) attnAt(res int) bool { return slices.Contains(c.AttnResolutions, res) }

// paramBound is an upper bound on the network's parameter count, from the config alone: every
// block taken at the widest level's channels C, with twice C coming in (up blocks take the skip),
// two 3x3 convolutions, a 1x1 skip, attention's four projections and the time projection.
func (c Config) paramBound() float64 {
	C := float64(c.BaseChannels * slices.Max(c.ChannelMult))
	blocks := float64(2*len(c.ChannelMult)*c.ResBlocks + 3 + len(c.ChannelMult))
	perBlock := 9*2*C*C + 9*C*C + 2*C*C + 4*C*C + float64(c.TimeEmbedDim)*C + 8*C
	td := float64(c.TimeEmbedDim)
	return blocks*perBlock + td*(td+float64(c.SinusoidalDim)+float64(c.NumClasses)+1) + 9*C*float64(c.InChannels+c.OutChannels)
}

// InferenceBytes estimates the memory of a forward pass over n images without gradients, so
// samplers can refuse a network call the machine cannot hold (oneDNN fails deep inside, or the Go
// runtime dies, on one of 100,000 images) before making it: the weights and the backend's copy of
// them, and per image every convolution's output twice (the down path's outputs stay alive as skips
// until the up path takes them, and a norm or activation sits beside each), the largest patch
// matrix a convolution builds and the largest attention score matrix (heads x tokens^2). It is
// computed from the config alone, without building the network or running it: a config of
// 16384x16384 images has small weights but needs tens of gigabytes for one image, which running
// it to count would allocate.
func InferenceBytes(cfg Config, n int) (float64, error) {
	if err := cfg.Validate(); err != nil {
		return 0, err
	}
	acts, work := cfg.forwardValues()
	return 4 * (2*cfg.paramBound() + float64(n)*(2*acts+work)), nil
}

// forwardValues bounds what one image's forward pass produces, walking the levels as New builds
// them: acts, the outputs of every convolution (a 1x1 skip counted in every block), and work, the
// larger of the biggest im2col patch matrix (9 values per input value of a 3x3 convolution, whose
// input is twice the channels where an up block takes its skip) and the biggest attention score
// matrix.
func (c Config) forwardValues() (acts, work float64) {
	res := c.ImageSize
	hw := func() float64 { return float64(res) * float64(res) }
	ch := float64(c.BaseChannels)
	acts = hw() * ch                                            // conv_in
	work = 9 * float64(max(c.InChannels, c.OutChannels)) * hw() // conv_in's and out_conv's patches
	block := func(cin, out float64) {
		acts += 3 * hw() * out // c1, c2, skip
		work = max(work, 9*max(cin, out)*hw())
		if c.attnAt(res) {
			acts += 4 * hw() * out // q, k, v, proj
			work = max(work, float64(c.Heads)*hw()*hw())
		}
	}
	last := c.Levels() - 1
	for i, m := range c.ChannelMult {
		out := float64(c.BaseChannels * m)
		for range c.ResBlocks {
			block(ch, out)
			ch = out
		}
		if i < last {
			res /= 2
			acts += hw() * ch // the stride-2 convolution
		}
	}
	block(ch, ch) // mid and, with attention, mid2
	block(ch, ch)
	for i := last; i >= 0; i-- {
		out := float64(c.BaseChannels * c.ChannelMult[i])
		for range c.ResBlocks {
			block(ch+out, out) // the skip of this level has out channels
			ch = out
		}
		if i > 0 {
			res *= 2
			acts += hw() * ch // the convolution after the nearest upsampling
			work = max(work, 9*ch*hw())
		}
	}
	acts += hw() * float64(c.OutChannels) // out_conv
	return acts, work
}

// Validate checks that the config describes a buildable network.
func (c Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("model config %s: %s", c.Name, fmt.Sprintf(format, args...))
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"image_size", c.ImageSize}, {"in_channels", c.InChannels}, {"out_channels", c.OutChannels},
		{"base_channels", c.BaseChannels}, {"res_blocks", c.ResBlocks}, {"heads", c.Heads},
		{"time_embed_dim", c.TimeEmbedDim}, {"sinusoidal_dim", c.SinusoidalDim}, {"groups", c.Groups}} {
		if f.v <= 0 {
			return bad("%s must be positive, got %d", f.name, f.v)
		}
	}
	if len(c.ChannelMult) == 0 || len(c.ChannelMult) > 12 {
		return bad("channel_mult has %d levels, want 1 to 12", len(c.ChannelMult))
	}
	// Bounds far above any model this project trains, so that arithmetic on them cannot overflow.
	for _, f := range []struct {
		name   string
		v, max int
	}{{"image_size", c.ImageSize, 1 << 14}, {"in_channels", c.InChannels, 1 << 10}, {"out_channels", c.OutChannels, 1 << 10},
		{"base_channels", c.BaseChannels, 1 << 14}, {"res_blocks", c.ResBlocks, 64}, {"heads", c.Heads, 1 << 10},
		{"time_embed_dim", c.TimeEmbedDim, 1 << 16}, {"sinusoidal_dim", c.SinusoidalDim, 1 << 16}} {
		if f.v > f.max {
			return bad("%s %d above the limit %d", f.name, f.v, f.max)
		}
	}
	if c.NumClasses < 0 || c.NumClasses > MaxClasses {
		return bad("num_classes %d outside 0..%d", c.NumClasses, MaxClasses)
	}
	if c.SinusoidalDim%2 != 0 {
		return bad("sinusoidal_dim %d must be even", c.SinusoidalDim)
	}
	if c.Dropout < 0 || c.Dropout >= 1 {
		return bad("dropout %g outside [0, 1)", c.Dropout)
	}
	if f := 1 << (len(c.ChannelMult) - 1); c.ImageSize%f != 0 {
		return bad("image_size %d must be divisible by %d to halve %d times", c.ImageSize, f, len(c.ChannelMult)-1)
	}
	res := c.ImageSize
	var resolutions []int
	for i, m := range c.ChannelMult {
		if m <= 0 || m > 64 {
			return bad("channel_mult[%d] = %d outside 1..64", i, m)
		}
		ch := c.BaseChannels * m
		if ch%c.Groups != 0 {
			return bad("level %d: %d channels not divisible by %d groups", i, ch, c.Groups)
		}
		if c.attnAt(res) && ch%c.Heads != 0 {
			return bad("level %d: %d channels not divisible by %d heads", i, ch, c.Heads)
		}
		resolutions = append(resolutions, res)
		res /= 2
	}
	if c.BaseChannels%c.Groups != 0 {
		return bad("base_channels %d not divisible by %d groups", c.BaseChannels, c.Groups)
	}
	for _, r := range c.AttnResolutions {
		if !slices.Contains(resolutions, r) {
			return bad("attention resolution %d is not one of the levels' %v", r, resolutions)
		}
	}
	return nil
}

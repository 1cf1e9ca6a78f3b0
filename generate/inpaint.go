package generate

import (
	"context"
	"fmt"
	"slices"

	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/schedule"
)

// InpaintSpec is how to complete a partly known image: by the replacement method on the sampler a
// SamplerSpec names (any sampler; Song et al. 2021, DDIM by default), or by RePaint (Lugmayr et al.
// 2022: DDPM with resampling jumps over the SamplerSpec's steps, respaced, 250 by default), which
// follows the conditional law more closely (diffusion/inpaint_test.go measures both) at about Jumps
// times the cost of DDPM over those steps.
type InpaintSpec struct {
	RePaint    bool `json:"repaint,omitempty"`
	Jumps      int  `json:"jumps,omitempty"`       // RePaint's r: times each stretch is traversed (0: 10; 1: no resampling)
	JumpLength int  `json:"jump_length,omitempty"` // RePaint's j: steps between jumps back (0: 10)
}

// MaxJumps bounds Jumps and JumpLength: RePaint calls the network about Jumps x T times.
const MaxJumps = 100

// Sampler builds the inpainting sampler: RePaint (with sp's variance and clipping; its other
// settings are refused) or sp's sampler, which the job's Known turns into the replacement method.
// The returned description is for logs.
func (in InpaintSpec) Sampler(sp SamplerSpec, s *schedule.Schedule) (diffusion.Sampler, string, error) {
	if in.Jumps < 0 || in.Jumps > MaxJumps {
		return nil, "", fieldErr("jumps", "%d outside [1, %d] (0: 10)", in.Jumps, MaxJumps)
	}
	if in.JumpLength < 0 || in.JumpLength > MaxJumps {
		return nil, "", fieldErr("jump_length", "%d outside [1, %d] (0: 10)", in.JumpLength, MaxJumps)
	}
	if !in.RePaint {
		if in.Jumps != 0 || in.JumpLength != 0 {
			return nil, "", fieldErr("jumps", "apply to RePaint only (give repaint)")
		}
		sampler, full, err := sp.New(s)
		if err != nil {
			return nil, "", err
		}
		return sampler, full.String() + " with replacement", nil
	}
	if (sp.Name != "" && sp.Name != "ddpm") || sp.Eta != 0 || sp.SigmaHat || sp.Spacing != "" {
		return nil, "", fieldErr("sampler", "RePaint is a DDPM sampler; only steps, variance, clip and eps_scale apply")
	}
	sp.Name = "ddpm"
	if err := sp.Validate(s.T); err != nil {
		return nil, "", err
	}
	steps := sp.Steps
	if steps == 0 {
		steps = min(DefaultRePaintSteps, s.T)
	}
	ts, err := diffusion.Timesteps(s.T, steps, diffusion.Linspace)
	if err != nil {
		return nil, "", err
	}
	slices.Reverse(ts)
	rs, err := schedule.Respace(s, ts)
	if err != nil {
		return nil, "", err
	}
	r := &diffusion.RePaint{Schedule: rs, Clip: sp.Clip, JumpLength: in.JumpLength, Resample: in.Jumps, EpsScale: sp.EpsScale}
	if sp.Variance != "" {
		r.Variance, _ = diffusion.ParseVariance(sp.Variance)
	}
	if in.JumpLength >= steps {
		return nil, "", fieldErr("jump_length", "%d must be below the %d steps", in.JumpLength, steps)
	}
	times, err := r.Times()
	if err != nil {
		return nil, "", err
	}
	j, jumps := in.JumpLength, in.Jumps
	if j == 0 {
		j = 10
	}
	if jumps == 0 {
		jumps = 10
	}
	return &respaced{inner: r, ts: ts}, fmt.Sprintf("repaint-%d j=%d r=%d (%d network calls) %s variance", steps, j, jumps, calls(times), r.Variance), nil
}

// DefaultRePaintSteps is the respaced length RePaint runs over by default, the paper's 250 steps
// (Lugmayr et al. 2022, Sec. 5, respacing the 1000 of their models).
const DefaultRePaintSteps = 250

// respaced runs a sampler over a respaced schedule (schedule.Respace) with a model of the full one:
// its step k calls the model at timestep ts[k].
type respaced struct {
	inner diffusion.Sampler
	ts    []int
}

func (r *respaced) Sample(ctx context.Context, pred diffusion.Predictor, n, dim int, opts diffusion.Options) ([]float64, error) {
	at := diffusion.PredictorFunc(func(ctx context.Context, x []float64, n, dim, t int, out []float64) error {
		return pred.Predict(ctx, x, n, dim, r.ts[t], out)
	})
	return r.inner.Sample(ctx, at, n, dim, opts)
}

// calls counts the down steps of a RePaint time sequence: its network calls.
func calls(ts []int) int {
	n := 0
	for i := 1; i < len(ts); i++ {
		if ts[i] < ts[i-1] {
			n++
		}
	}
	return n
}

// BoxMask is the mask of an image of c x h x w with the box of top-left (x, y) and size bw x bh
// unknown (0) and the rest known (1), in every channel.
func BoxMask(c, h, w, x, y, bw, bh int) ([]float64, error) {
	if bw < 1 || bh < 1 || x < 0 || y < 0 || x+bw > w || y+bh > h {
		return nil, fmt.Errorf("box %d,%d,%d,%d does not fit a %dx%d image (x,y,w,h with x+w <= %d, y+h <= %d)", x, y, bw, bh, w, h, w, h)
	}
	m := make([]float64, c*h*w)
	for ch := range c {
		for r := range h {
			for col := range w {
				if r < y || r >= y+bh || col < x || col >= x+bw {
					m[(ch*h+r)*w+col] = 1
				}
			}
		}
	}
	return m, nil
}

// MaskFromPixels is the mask drawn as a grey image of h x w bytes, as inpainting tools draw them:
// white (>= 128) marks the pixels to fill in (unknown, 0), black the ones to keep (known, 1);
// replicated over c channels.
func MaskFromPixels(grey []uint8, c, h, w int) ([]float64, error) {
	if len(grey) != h*w {
		return nil, fmt.Errorf("mask has %d pixels, want %dx%d", len(grey), h, w)
	}
	m := make([]float64, c*h*w)
	for ch := range c {
		for i, v := range grey {
			if v < 128 {
				m[ch*h*w+i] = 1
			}
		}
	}
	return m, nil
}

package nn

import "github.com/ddpm-go/ddpm/tensor"

// ForwardFLOPs is the arithmetic of one network forward per image: 2 FLOPs per multiply-add of every
// convolution, linear layer and attention product (q k^T and p v), the work that runs at the FMA
// units' rate; the memory-bound ops (norms, activations, adds) are not counted. A training step is
// about three forwards (the backward computes data and weight gradients, each one forward's work).
// Benchmarks divide by it to report the fraction of the machine's peak a step uses.
func ForwardFLOPs(cfg Config) (float64, error) {
	c, err := count(cfg)
	if err != nil {
		return 0, err
	}
	return c.flops, nil
}

// TrainingBytes estimates the memory a training step at batch n needs: the weights with their
// gradient, the two AdamW moments and the EMA copy, and per image the convolutions' outputs, each
// kept for the backward pass with its norm and activation around it and met again as a gradient
// (counted eight times; UNet-S at batch 128 measures 778 MiB of peak RSS in fp32, estimated 1.4 GiB).
// Commands use it to refuse a batch the machine cannot hold before allocating any of it.
func TrainingBytes(cfg Config, n int) (float64, error) {
	c, err := count(cfg)
	if err != nil {
		return 0, err
	}
	return 4 * (5*c.params + 8*float64(n)*c.acts), nil
}

func count(cfg Config) (*counter, error) {
	c := &counter{Backend: tensor.NewReference(1)}
	u, err := New(cfg, c, 0)
	if err != nil {
		return nil, err
	}
	shape := []int{1, cfg.InChannels, cfg.ImageSize, cfg.ImageSize}
	x := c.Upload(shape, make([]float32, cfg.InChannels*cfg.ImageSize*cfg.ImageSize))
	y, err := u.Forward(x, []int{0}, false)
	if err != nil {
		return nil, err
	}
	c.Release(y)
	c.Release(x)
	c.params = float64(u.NumParams())
	return c, nil
}

// counter is a backend that adds up the FLOPs of the products it is asked for.
type counter struct {
	tensor.Backend
	flops, acts, params float64 // acts: convolution output values per image
}

func (c *counter) Conv2D(x *tensor.Tensor, w, b *tensor.Param, cv tensor.Conv) *tensor.Tensor {
	y := c.Backend.Conv2D(x, w, b, cv)
	s := y.Shape
	c.flops += 2 * float64(s[0]*s[1]*s[2]*s[3]) * float64(w.Shape[1]*w.Shape[2]*w.Shape[3])
	c.acts += float64(s[1] * s[2] * s[3])
	return y
}

func (c *counter) Linear(x *tensor.Tensor, w, b *tensor.Param) *tensor.Tensor {
	c.flops += 2 * float64(x.Shape[0]) * float64(w.Shape[0]*w.Shape[1])
	return c.Backend.Linear(x, w, b)
}

func (c *counter) Attention(q, k, v *tensor.Tensor, heads int) (out, saved *tensor.Tensor) {
	s := q.Shape
	l := float64(s[2] * s[3])
	c.flops += 2 * 2 * float64(s[0]*s[1]) * l * l // q k^T and p v, over all heads
	return c.Backend.Attention(q, k, v, heads)
}

package nn_test

import (
	"fmt"

	"github.com/ddpm-go/ddpm/nn"
	"github.com/ddpm-go/ddpm/tensor"
)

// Example trains a small UNet, configured by JSON, to predict a fixed noise image: the loop a
// trainer runs (forward, loss, backward, clip, AdamW, EMA).
func Example() {
	cfg, err := nn.ParseConfig([]byte(`{
		"name": "small", "image_size": 8, "in_channels": 1, "out_channels": 1,
		"base_channels": 8, "channel_mult": [1, 2], "res_blocks": 1, "attn_resolutions": [4],
		"heads": 2, "dropout": 0, "time_embed_dim": 32, "sinusoidal_dim": 16, "groups": 4}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	be := tensor.NewReference(1)
	model, _ := nn.New(cfg, be, 1)
	opt := nn.NewAdamW(model.Params(), 1e-3)
	ema := nn.NewEMA(model.Params(), 0.99)

	shape := []int{4, 1, 8, 8}
	x := be.Upload(shape, tensor.RandN(shape, 1))
	target := be.Upload(shape, tensor.RandN(shape, 2))
	t := []int{0, 10, 100, 999}
	var first, last float64
	for step := 1; step <= 30; step++ {
		eps, _ := model.Forward(x, t, true)
		loss, dEps := be.MSE(eps, target)
		model.ZeroGrad()
		dx, _ := model.Backward(dEps)
		nn.ClipGradNorm(model.Params(), 1)
		opt.LR = nn.WarmupLR(1e-2, 5, step)
		opt.Step()
		ema.Update()
		be.Release(eps)
		be.Release(dEps)
		be.Release(dx)
		if step == 1 {
			first = loss
		}
		last = loss
	}
	fmt.Println("parameters:", model.NumParams())
	fmt.Println("loss fell by more than half:", last < first/2)
	// Output:
	// parameters: 35113
	// loss fell by more than half: true
}

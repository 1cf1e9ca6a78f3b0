package nn

import (
	"fmt"
	"slices"

	"github.com/ddpm-go/ddpm/internal/sysmem"
	"github.com/ddpm-go/ddpm/tensor"
)

// UNet predicts the noise eps_theta(x_t, t) of a DDPM. Parameter names are the PyTorch state_dict
// names of the peer (temb.0.weight, down.0.n1.weight, downsample.0.weight, mid.c1.bias,
// up.0.skip.weight, upsample.0.conv.weight, out_norm.weight, ...); attention blocks, absent from
// unet-s, are named down_attn.K / mid_attn / up_attn.K after the block K they follow, and with
// attention in the middle a second middle block mid2 follows mid_attn.
//
// Use: Forward (train=true saves activations), then Backward once, then the optimizer. A UNet is
// not safe for concurrent use; it holds the activations of the last training Forward.
type UNet struct {
	Cfg Config
	be  tensor.Backend

	Temb       *TimeEmbed // temb.0, temb.2 (temb.1 is a SiLU)
	ConvIn     *Conv2d
	Down       []*ResBlock  // down.K, level by level
	DownAttn   []*AttnBlock // aligned with Down; nil where the level has no attention
	Downsample []*Conv2d    // downsample.i, 3x3 stride 2, after every level but the last
	Mid        *ResBlock
	MidAttn    *AttnBlock   // nil unless the lowest resolution has attention
	Mid2       *ResBlock    // follows MidAttn
	Up         []*ResBlock  // up.K, lowest level first, each taking a skip by concatenation
	UpAttn     []*AttnBlock // aligned with Up
	Upsample   []*Up        // upsample.i, after every up level but the last
	OutNorm    *GroupNorm
	OutConv    *Conv2d

	// DropoutSeed picks the dropout masks of the next training Forward; Forward increments it, so
	// a run is reproducible from its starting value (save it with the training state).
	DropoutSeed uint64
	// MaxBatch bounds the images per network call in Predict (0: no bound).
	MaxBatch int

	params []*tensor.Param
	fwd    *forwardState
}

// forwardState is what a training Forward keeps for Backward. Every activation it made is in acts
// (owned by the UNet, released at the end of Backward); the named ones are those Backward reads.
type forwardState struct {
	outN    *tensor.Tensor // out_norm output (the SiLU's input)
	upSplit []int          // per up block: channels of the running h in its concatenated input
	acts    []*tensor.Tensor
}

// New builds a UNet for cfg on backend be with PyTorch's default initialisation drawn from seed.
// The constructor reads like the diagram: time embedding, conv_in, the down levels (blocks leaving
// skips, then a stride-2 conv), the middle, the up levels (blocks taking skips, then Up), the output.
func New(cfg Config, be tensor.Backend, seed uint64) (*UNet, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	// A config within every field's limits can still describe a network of 100 GB: refuse one whose
	// weights (and the backend's copy of them) cannot fit before allocating the first of them.
	if err := sysmem.Check("model "+cfg.Name+fmt.Sprintf(" (about %.3g parameters)", cfg.paramBound()), 8*cfg.paramBound()); err != nil {
		return nil, err
	}
	b := &builder{be: be, seed: seed}
	tdim, groups, drop := cfg.TimeEmbedDim, cfg.Groups, float32(cfg.Dropout)
	block := func(name string, cin, cout int) *ResBlock { return b.resBlock(name, cin, cout, tdim, groups, drop) }
	attn := func(res int, name string, ch int) *AttnBlock {
		if !cfg.attnAt(res) {
			return nil
		}
		return b.attnBlock(name, ch, groups, cfg.Heads)
	}
	u := &UNet{Cfg: cfg, be: be, DropoutSeed: seed}
	u.Temb = b.timeEmbed("temb", cfg.SinusoidalDim, tdim)
	ch, res := cfg.BaseChannels, cfg.ImageSize
	u.ConvIn = b.conv("conv_in", cfg.InChannels, ch, 3, 1, 1)

	var skips []int // channels of each skip, pushed by down blocks, popped by up blocks
	last := cfg.Levels() - 1
	for i, m := range cfg.ChannelMult {
		out := cfg.BaseChannels * m
		for range cfg.ResBlocks {
			k := len(u.Down)
			u.Down = append(u.Down, block(fmt.Sprintf("down.%d", k), ch, out))
			u.DownAttn = append(u.DownAttn, attn(res, fmt.Sprintf("down_attn.%d", k), out))
			ch = out
			skips = append(skips, ch)
		}
		if i < last {
			u.Downsample = append(u.Downsample, b.conv(fmt.Sprintf("downsample.%d", i), ch, ch, 3, 2, 1))
			res /= 2
		}
	}

	u.Mid = block("mid", ch, ch)
	if u.MidAttn = attn(res, "mid_attn", ch); u.MidAttn != nil {
		u.Mid2 = block("mid2", ch, ch)
	}

	for i := last; i >= 0; i-- {
		out := cfg.BaseChannels * cfg.ChannelMult[i]
		for range cfg.ResBlocks {
			skip := skips[len(skips)-1]
			skips = skips[:len(skips)-1]
			k := len(u.Up)
			u.Up = append(u.Up, block(fmt.Sprintf("up.%d", k), ch+skip, out))
			u.UpAttn = append(u.UpAttn, attn(res, fmt.Sprintf("up_attn.%d", k), out))
			ch = out
		}
		if i > 0 {
			u.Upsample = append(u.Upsample, b.up(fmt.Sprintf("upsample.%d", last-i), ch))
			res *= 2
		}
	}

	u.OutNorm = b.groupNorm("out_norm", groups, ch)
	u.OutConv = b.conv("out_conv", ch, cfg.OutChannels, 3, 1, 1)
	u.params = u.collectParams()
	return u, nil
}

// collectParams lists the parameters in the peer's state_dict order: modules in registration order
// (temb, conv_in, down, downsample, mid, up, upsample, out_norm, out_conv), attention after the
// block it follows.
func (u *UNet) collectParams() []*tensor.Param {
	ps := concat(u.Temb.Params(), u.ConvIn.Params())
	for k, blk := range u.Down {
		ps = append(ps, blk.Params()...)
		if a := u.DownAttn[k]; a != nil {
			ps = append(ps, a.Params()...)
		}
	}
	for _, d := range u.Downsample {
		ps = append(ps, d.Params()...)
	}
	ps = append(ps, u.Mid.Params()...)
	if u.MidAttn != nil {
		ps = append(ps, concat(u.MidAttn.Params(), u.Mid2.Params())...)
	}
	for k, blk := range u.Up {
		ps = append(ps, blk.Params()...)
		if a := u.UpAttn[k]; a != nil {
			ps = append(ps, a.Params()...)
		}
	}
	for _, up := range u.Upsample {
		ps = append(ps, up.Params()...)
	}
	return append(ps, concat(u.OutNorm.Params(), u.OutConv.Params())...)
}

// Params returns every parameter in a stable order (the PyTorch state_dict order for unet-s).
func (u *UNet) Params() []*tensor.Param { return u.params }

// NumParams is the number of scalar parameters.
func (u *UNet) NumParams() int {
	n := 0
	for _, p := range u.params {
		n += len(p.W)
	}
	return n
}

// Backend is the backend the UNet runs on.
func (u *UNet) Backend() tensor.Backend { return u.be }

// ZeroGrad sets every gradient to zero (Backward accumulates).
func (u *UNet) ZeroGrad() {
	for _, p := range u.params {
		clear(p.G)
	}
}

// Forward returns eps (N,OutChannels,H,W) for x (N,InChannels,H,W) at integer timesteps t (len N).
// With train set it keeps the activations for Backward and applies dropout; without, it releases
// every intermediate as soon as its last consumer has run (sampling keeps memory low). The caller
// owns x and the result.
func (u *UNet) Forward(x *tensor.Tensor, t []int, train bool) (*tensor.Tensor, error) {
	cfg := u.Cfg
	want := []int{len(t), cfg.InChannels, cfg.ImageSize, cfg.ImageSize}
	if !slices.Equal(x.Shape, want) {
		return nil, fmt.Errorf("unet forward: input shape %v, want %v (one timestep per image)", x.Shape, want)
	}
	u.dropForward()
	be := u.be
	s := &forwardState{}
	isSkip := map[*tensor.Tensor]bool{}
	// made records a new activation; done says one is no longer needed by the forward pass, which
	// frees it in inference (training keeps everything until Backward).
	made := func(a *tensor.Tensor) *tensor.Tensor {
		if train {
			s.acts = append(s.acts, a)
		}
		return a
	}
	done := func(a *tensor.Tensor) {
		if !train && a != x && !isSkip[a] {
			be.Release(a)
		}
	}
	seed := func() uint64 { u.DropoutSeed++; return u.DropoutSeed }

	act := made(u.Temb.Forward(t, train)) // silu(temb), shared by every block

	// next replaces the running activation h by f(h).
	h := x
	next := func(f func(*tensor.Tensor) *tensor.Tensor) {
		old := h
		h = made(f(old))
		done(old)
	}
	block := func(r *ResBlock) func(*tensor.Tensor) *tensor.Tensor {
		sd := seed()
		return func(in *tensor.Tensor) *tensor.Tensor { return r.Forward(in, act, train, sd) }
	}
	attn := func(a *AttnBlock) func(*tensor.Tensor) *tensor.Tensor {
		return func(in *tensor.Tensor) *tensor.Tensor { return a.Forward(in, train) }
	}
	conv := func(c *Conv2d) func(*tensor.Tensor) *tensor.Tensor {
		return func(in *tensor.Tensor) *tensor.Tensor { return c.Forward(in, train) }
	}

	next(conv(u.ConvIn))
	per := cfg.ResBlocks
	var skips []*tensor.Tensor
	for k, blk := range u.Down {
		next(block(blk))
		if a := u.DownAttn[k]; a != nil {
			next(attn(a))
		}
		skips = append(skips, h)
		isSkip[h] = true
		if k%per == per-1 && k/per < len(u.Downsample) {
			next(conv(u.Downsample[k/per]))
		}
	}
	next(block(u.Mid))
	if u.MidAttn != nil {
		next(attn(u.MidAttn))
		next(block(u.Mid2))
	}
	for k, blk := range u.Up {
		skip := skips[len(skips)-1]
		skips = skips[:len(skips)-1]
		s.upSplit = append(s.upSplit, h.Shape[1])
		next(func(in *tensor.Tensor) *tensor.Tensor { return be.Concat(in, skip) })
		delete(isSkip, skip)
		done(skip)
		next(block(blk))
		if a := u.UpAttn[k]; a != nil {
			next(attn(a))
		}
		if k%per == per-1 && k/per < len(u.Upsample) {
			up := u.Upsample[k/per]
			next(func(in *tensor.Tensor) *tensor.Tensor { return up.Forward(in, train) })
		}
	}
	next(func(in *tensor.Tensor) *tensor.Tensor { return u.OutNorm.Forward(in, train) })
	s.outN = h
	next(be.SiLU)
	eps := u.OutConv.Forward(h, train)
	done(h)
	done(act)
	if train {
		u.fwd = s
	}
	return eps, nil
}

// release frees every activation the forward pass made (the output eps is the caller's).
func (s *forwardState) release(be tensor.Backend) {
	release(be, s.acts...)
	s.acts = nil
}

// dropForward discards the saved state of a training Forward that was never followed by Backward.
func (u *UNet) dropForward() {
	if u.fwd == nil {
		return
	}
	u.fwd.release(u.be)
	u.fwd = nil
	u.Temb.reset()
	for _, r := range slices.Concat(u.Down, []*ResBlock{u.Mid, u.Mid2}, u.Up) {
		if r != nil {
			r.reset()
		}
	}
	for _, a := range slices.Concat(u.DownAttn, []*AttnBlock{u.MidAttn}, u.UpAttn) {
		if a != nil {
			a.reset()
		}
	}
	for _, up := range u.Upsample {
		up.reset()
	}
	u.OutNorm.reset()
}

// Backward takes dL/deps for the last training Forward, accumulates every parameter's gradient into
// Param.G and returns dL/dx (the caller may Release it).
func (u *UNet) Backward(dEps *tensor.Tensor) (*tensor.Tensor, error) {
	s := u.fwd
	if s == nil {
		return nil, fmt.Errorf("unet backward: no training forward pass to differentiate")
	}
	u.fwd = nil
	be := u.be
	per := u.Cfg.ResBlocks
	var dact *tensor.Tensor // dL/d silu(temb), summed over the blocks
	addAct := func(d *tensor.Tensor) {
		if dact == nil {
			dact = d
			return
		}
		sum := be.Add(dact, d)
		release(be, dact, d)
		dact = sum
	}
	// step replaces the running gradient by a layer's backward of it.
	step := func(dh, dnew *tensor.Tensor) *tensor.Tensor {
		release(be, dh)
		return dnew
	}

	// Output: eps = out_conv(silu(out_norm(h))).
	da := u.OutConv.Backward(dEps)
	dn := be.SiLUBackward(da, s.outN)
	release(be, da)
	dh := step(dn, u.OutNorm.Backward(dn))

	// Up path, last block first. dskips[k] is the gradient reaching down block k's skip.
	dskips := make([]*tensor.Tensor, len(u.Down))
	for k := len(u.Up) - 1; k >= 0; k-- {
		if k%per == per-1 && k/per < len(u.Upsample) {
			dh = step(dh, u.Upsample[k/per].Backward(dh))
		}
		if a := u.UpAttn[k]; a != nil {
			dh = step(dh, a.Backward(dh))
		}
		dcat, dt := u.Up[k].Backward(dh)
		release(be, dh)
		addAct(dt)
		// The concat's first part is the running h, the second the skip of down block len(Down)-1-k.
		var dskip *tensor.Tensor
		dh, dskip = be.ConcatBackward(dcat, s.upSplit[k])
		release(be, dcat)
		dskips[len(u.Down)-1-k] = dskip
	}

	// Middle.
	if u.MidAttn != nil {
		dm, dt := u.Mid2.Backward(dh)
		addAct(dt)
		dh = step(dh, dm)
		dh = step(dh, u.MidAttn.Backward(dh))
	}
	dm, dt := u.Mid.Backward(dh)
	addAct(dt)
	dh = step(dh, dm)

	// Down path, last block first; each block's output also fed its skip.
	for k := len(u.Down) - 1; k >= 0; k-- {
		if k%per == per-1 && k/per < len(u.Downsample) {
			dh = step(dh, u.Downsample[k/per].Backward(dh))
		}
		dh = step(dh, be.Add(dh, dskips[k]))
		release(be, dskips[k])
		if a := u.DownAttn[k]; a != nil {
			dh = step(dh, a.Backward(dh))
		}
		dd, dt := u.Down[k].Backward(dh)
		addAct(dt)
		dh = step(dh, dd)
	}
	dx := u.ConvIn.Backward(dh)
	release(be, dh)

	u.Temb.Backward(dact)
	release(be, dact)
	s.release(be)
	return dx, nil
}

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
	// DropoutShard, if Of > 0, says the rows of a training Forward are rows From, From+1, ... of a
	// batch of Of rows: each mask is drawn for the whole batch and the part of these rows used, so a
	// rank of data-parallel training (train.Stepper.Comm) drops exactly the elements one process
	// would drop in the same rows, and the ranks together follow the one-process run.
	DropoutShard struct{ From, Of int }
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
	u.Temb = b.timeEmbed("temb", cfg.SinusoidalDim, tdim, cfg.NumClasses)
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
// block it follows, and a conditional network's label embedding last.
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
	ps = append(ps, concat(u.OutNorm.Params(), u.OutConv.Params())...)
	if u.Temb.Label != nil {
		ps = append(ps, u.Temb.Label)
	}
	return ps
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
// It follows the network of Ho et al. 2020 (Appendix B; the peer's UNet), which Backward walks in
// reverse:
//
//	act = silu(temb(t))                        shared by every block
//	h = conv_in(x)
//	down: h = block(h, act) [attn]; keep h as a skip; downsample at each level's end but the last
//	mid:  h = block(h, act) [attn, block]
//	up:   h = block(concat(h, latest skip), act) [attn]; upsample at each level's end but the last
//	eps = out_conv(silu(out_norm(h)))
//
// With train set it keeps the activations for Backward and applies dropout; without, it releases
// every intermediate as soon as its last reader has run (sampling keeps memory low). The caller
// owns x and the result.
func (u *UNet) Forward(x *tensor.Tensor, t []int, train bool) (*tensor.Tensor, error) {
	return u.ForwardLabels(x, t, nil, train)
}

// ForwardLabels is Forward with a class label per image for a class-conditional network (Config.
// NumClasses > 0): the label's embedding joins the time embedding, so act = silu(temb(t) + emb(y)).
// A negative label (diffusion.NoLabel) or nil labels select the "no label" row, which is what a
// conditional network gives unconditionally. Labels given to an unconditional network are an error.
func (u *UNet) ForwardLabels(x *tensor.Tensor, t, labels []int, train bool) (*tensor.Tensor, error) {
	cfg := u.Cfg
	want := []int{len(t), cfg.InChannels, cfg.ImageSize, cfg.ImageSize}
	if !slices.Equal(x.Shape, want) {
		return nil, fmt.Errorf("unet forward: input shape %v, want %v (one timestep per image)", x.Shape, want)
	}
	u.dropForward()
	p := &forwardPass{u: u, train: train, s: &forwardState{}, h: x, lent: true}
	act, err := u.Temb.Forward(t, labels, train)
	if err != nil {
		return nil, fmt.Errorf("unet forward: %w", err)
	}
	p.act = p.keep(act)

	p.layer(u.ConvIn)
	per := cfg.ResBlocks
	for k, blk := range u.Down {
		p.block(blk)
		if a := u.DownAttn[k]; a != nil {
			p.layer(a)
		}
		p.pushSkip()
		if k%per == per-1 && k/per < len(u.Downsample) {
			p.layer(u.Downsample[k/per])
		}
	}

	p.block(u.Mid)
	if u.MidAttn != nil {
		p.layer(u.MidAttn)
		p.block(u.Mid2)
	}

	for k, blk := range u.Up {
		p.concatSkip()
		p.block(blk)
		if a := u.UpAttn[k]; a != nil {
			p.layer(a)
		}
		if k%per == per-1 && k/per < len(u.Upsample) {
			p.layer(u.Upsample[k/per])
		}
	}

	p.layer(u.OutNorm)
	p.s.outN = p.h
	p.then(u.be.SiLU(p.h))
	eps := u.OutConv.Forward(p.h, train)
	p.dropH()
	p.drop(p.act)
	if train {
		u.fwd = p.s
	}
	return eps, nil
}

// forwardPass is one Forward in progress: the running activation h and the skips the down path
// leaves for the up path. Every tensor the pass makes is handed to keep, and every tensor it has
// read for the last time to drop, so what memory a pass holds is decided in those two places:
// training keeps every activation until Backward; inference releases each at its last read, so
// sampling holds only the skips, silu(temb) and the tensors of the op in flight.
type forwardPass struct {
	u     *UNet
	train bool
	s     *forwardState
	act   *tensor.Tensor // silu(temb), read by every block
	h     *tensor.Tensor
	// lent is set while h is not the running path's to drop: the caller's x, or a skip, which the
	// up block that concatenates it drops.
	lent  bool
	skips []*tensor.Tensor // a stack: the up path takes them in the reverse order of the down path
}

// keep records y, a new activation, for Backward.
func (p *forwardPass) keep(y *tensor.Tensor) *tensor.Tensor {
	if p.train {
		p.s.acts = append(p.s.acts, y)
	}
	return y
}

// drop marks the last read of a tensor the pass made: inference releases it there, training leaves
// it to Backward.
func (p *forwardPass) drop(a *tensor.Tensor) {
	if !p.train {
		p.u.be.Release(a)
	}
}

// dropH drops h unless it is lent.
func (p *forwardPass) dropH() {
	if !p.lent {
		p.drop(p.h)
	}
}

// then makes y, just computed from h, the running activation; h has had its last read.
func (p *forwardPass) then(y *tensor.Tensor) {
	p.keep(y)
	p.dropH()
	p.h, p.lent = y, false
}

// layer applies a layer without time input: a convolution, attention, Up or the output norm.
func (p *forwardPass) layer(l interface {
	Forward(x *tensor.Tensor, train bool) *tensor.Tensor
}) {
	p.then(l.Forward(p.h, p.train))
}

// block applies a residual block; each block of a training pass draws its own dropout seed, in
// network order, so a run replays from its starting DropoutSeed.
func (p *forwardPass) block(r *ResBlock) {
	p.u.DropoutSeed++
	r.shard = p.u.DropoutShard
	p.then(r.Forward(p.h, p.act, p.train, p.u.DropoutSeed))
}

// pushSkip keeps h for the up block that mirrors the current down block. h stays the running
// activation too, but lent: the op that reads it next must not drop it; concatSkip does.
func (p *forwardPass) pushSkip() {
	p.skips = append(p.skips, p.h)
	p.lent = true
}

// concatSkip joins h and the latest skip along channels, the input of an up block (the U-Net's
// skip connection), and drops the skip: the concatenation was its last read.
func (p *forwardPass) concatSkip() {
	skip := p.skips[len(p.skips)-1]
	p.skips = p.skips[:len(p.skips)-1]
	p.s.upSplit = append(p.s.upSplit, p.h.Shape[1])
	p.then(p.u.be.Concat(p.h, skip))
	p.drop(skip)
}

// accumulate returns sum + d and releases both; a nil sum is the first term (then d is returned).
// silu(temb) feeds every residual block, so its gradient is the sum of theirs.
func accumulate(be tensor.Backend, sum, d *tensor.Tensor) *tensor.Tensor {
	if sum == nil {
		return d
	}
	s := be.Add(sum, d)
	release(be, sum, d)
	return s
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
		dact = accumulate(be, dact, dt)
		// The concat's first part is the running h, the second the skip of down block len(Down)-1-k.
		var dskip *tensor.Tensor
		dh, dskip = be.ConcatBackward(dcat, s.upSplit[k])
		release(be, dcat)
		dskips[len(u.Down)-1-k] = dskip
	}

	// Middle.
	if u.MidAttn != nil {
		dm, dt := u.Mid2.Backward(dh)
		dact = accumulate(be, dact, dt)
		dh = step(dh, dm)
		dh = step(dh, u.MidAttn.Backward(dh))
	}
	dm, dt := u.Mid.Backward(dh)
	dact = accumulate(be, dact, dt)
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
		dact = accumulate(be, dact, dt)
		dh = step(dh, dd)
	}
	dx := u.ConvIn.Backward(dh)
	release(be, dh)

	u.Temb.Backward(dact)
	release(be, dact)
	s.release(be)
	return dx, nil
}

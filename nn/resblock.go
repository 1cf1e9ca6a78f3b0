package nn

import "github.com/ddpm-go/ddpm/tensor"

// ResBlock is the peer's residual block with a time embedding:
//
//	h = c1(silu(n1(x))) + t(silu(temb))[:, :, None, None]
//	y = c2(dropout(silu(n2(h)))) + skip(x)        skip = 1x1 conv when cin != cout, else identity
//
// x (N,Cin,H,W), the activated embedding tact = silu(temb) (N,Tdim) -> y (N,Cout,H,W). The UNet
// computes silu(temb) once and shares it, which equals the peer's per-block F.silu(temb).
type ResBlock struct {
	be      tensor.Backend
	N1      *GroupNorm
	C1      *Conv2d
	T       *Linear
	N2      *GroupNorm
	C2      *Conv2d
	Skip    *Conv2d // nil when cin == cout
	Dropout float32

	// Saved for backward, all owned by the block (x and tact are the caller's).
	a0, a1   *tensor.Tensor         // n1(x), silu(a0)
	h        *tensor.Tensor         // c1(a1) + t(tact)
	a2, a3   *tensor.Tensor         // n2(h), silu(a2)
	mask, a4 *tensor.Tensor         // dropout mask and dropout(a3) (nil when Dropout == 0)
	shard    struct{ From, Of int } // UNet.DropoutShard of the pass in progress
}

func (b *builder) resBlock(name string, cin, cout, tdim, groups int, dropout float32) *ResBlock {
	r := &ResBlock{
		be:      b.be,
		N1:      b.groupNorm(name+".n1", groups, cin),
		C1:      b.conv(name+".c1", cin, cout, 3, 1, 1),
		T:       b.linear(name+".t", tdim, cout),
		N2:      b.groupNorm(name+".n2", groups, cout),
		C2:      b.conv(name+".c2", cout, cout, 3, 1, 1),
		Dropout: dropout,
	}
	if cin != cout {
		r.Skip = b.conv(name+".skip", cin, cout, 1, 1, 0)
	}
	return r
}

// Forward computes the block. seed picks the dropout mask (used only when training with Dropout > 0).
// In inference each intermediate is released as soon as the next op has read it.
func (r *ResBlock) Forward(x, tact *tensor.Tensor, train bool, seed uint64) *tensor.Tensor {
	be := r.be
	done := func(ts ...*tensor.Tensor) {
		if !train {
			release(be, ts...)
		}
	}
	a0 := r.N1.Forward(x, train)
	a1 := be.SiLU(a0)
	done(a0)
	h1 := r.C1.Forward(a1, train)
	done(a1)
	tv := r.T.Forward(tact, train)
	h := be.AddChannel(h1, tv)
	release(be, h1, tv)
	a2 := r.N2.Forward(h, train)
	done(h)
	a3 := be.SiLU(a2)
	done(a2)
	a4, mask := a3, (*tensor.Tensor)(nil)
	if train && r.Dropout > 0 {
		if sh := r.shard; sh.Of > 0 {
			// The rows' part of the whole batch's mask, applied as Dropout applies its own.
			per := a3.Len() / a3.Shape[0]
			m := tensor.DropoutMask(sh.Of*per, r.Dropout, seed)[sh.From*per : sh.From*per+a3.Len()]
			mask = be.Upload(a3.Shape, m)
			a4 = be.DropoutBackward(a3, mask)
		} else {
			a4, mask = be.Dropout(a3, r.Dropout, seed)
		}
	}
	h3 := r.C2.Forward(a4, train)
	done(a3)
	s := x
	if r.Skip != nil {
		s = r.Skip.Forward(x, train)
	}
	y := be.Add(h3, s)
	release(be, h3)
	if r.Skip != nil {
		release(be, s)
	}
	if train {
		r.a0, r.a1, r.h, r.a2, r.a3 = a0, a1, h, a2, a3
		if mask != nil {
			r.mask, r.a4 = mask, a4
		}
	}
	return y
}

// Backward returns dx and the gradient with respect to tact, and accumulates the parameter gradients.
func (r *ResBlock) Backward(dy *tensor.Tensor) (dx, dtact *tensor.Tensor) {
	be := r.be
	// y = h3 + s: dy flows unchanged into both branches.
	da4 := r.C2.Backward(dy)
	da3 := da4
	if r.mask != nil {
		da3 = be.DropoutBackward(da4, r.mask)
		release(be, da4, r.mask, r.a4)
		r.mask, r.a4 = nil, nil
	}
	da2 := be.SiLUBackward(da3, r.a2)
	release(be, da3)
	dh := r.N2.Backward(da2)
	release(be, da2)
	// h = h1 + tv broadcast: dh1 = dh, dtv = sum over H, W.
	dtv := be.SumHW(dh)
	dtact = r.T.Backward(dtv)
	release(be, dtv)
	da1 := r.C1.Backward(dh)
	release(be, dh)
	da0 := be.SiLUBackward(da1, r.a0)
	release(be, da1)
	dx1 := r.N1.Backward(da0)
	release(be, da0)
	if r.Skip != nil {
		ds := r.Skip.Backward(dy)
		dx = be.Add(dx1, ds)
		release(be, dx1, ds)
	} else {
		dx = be.Add(dx1, dy)
		release(be, dx1)
	}
	release(be, r.a0, r.a1, r.h, r.a2, r.a3)
	r.a0, r.a1, r.h, r.a2, r.a3 = nil, nil, nil, nil, nil
	return dx, dtact
}

// reset frees what a training Forward saved when no Backward follows.
func (r *ResBlock) reset() {
	r.N1.reset()
	r.N2.reset()
	release(r.be, r.a0, r.a1, r.h, r.a2, r.a3, r.mask, r.a4)
	r.a0, r.a1, r.h, r.a2, r.a3, r.mask, r.a4 = nil, nil, nil, nil, nil, nil, nil
}

// Params returns the block's parameters in the peer's state_dict order (n1, c1, t, n2, c2, skip).
func (r *ResBlock) Params() []*tensor.Param {
	ps := concat(r.N1.Params(), r.C1.Params(), r.T.Params(), r.N2.Params(), r.C2.Params())
	if r.Skip != nil {
		ps = append(ps, r.Skip.Params()...)
	}
	return ps
}

func concat(lists ...[]*tensor.Param) []*tensor.Param {
	var out []*tensor.Param
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

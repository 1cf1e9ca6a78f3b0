package nn

import "github.com/ddpm-go/ddpm/tensor"

// AttnBlock is the DDPM self-attention block used at low resolutions in bigger configs:
//
//	hn = norm(x); q, k, v = 1x1 convs of hn; y = x + proj_out(MultiHeadAttention(q, k, v))
//
// x (N,C,H,W) -> y (N,C,H,W); every position attends to every other one, heads split the channels.
type AttnBlock struct {
	be            tensor.Backend
	Norm          *GroupNorm
	Q, K, V, Proj *Conv2d
	Heads         int

	hn, q, k, v, o, probs *tensor.Tensor // saved for backward (owned)
}

func (b *builder) attnBlock(name string, ch, groups, heads int) *AttnBlock {
	return &AttnBlock{
		be:    b.be,
		Norm:  b.groupNorm(name+".norm", groups, ch),
		Q:     b.conv(name+".q", ch, ch, 1, 1, 0),
		K:     b.conv(name+".k", ch, ch, 1, 1, 0),
		V:     b.conv(name+".v", ch, ch, 1, 1, 0),
		Proj:  b.conv(name+".proj_out", ch, ch, 1, 1, 0),
		Heads: heads,
	}
}

// Forward computes the block; in inference each intermediate is released once read.
func (a *AttnBlock) Forward(x *tensor.Tensor, train bool) *tensor.Tensor {
	be := a.be
	done := func(ts ...*tensor.Tensor) {
		if !train {
			release(be, ts...)
		}
	}
	hn := a.Norm.Forward(x, train)
	q, k, v := a.Q.Forward(hn, train), a.K.Forward(hn, train), a.V.Forward(hn, train)
	done(hn)
	o, probs := be.Attention(q, k, v, a.Heads)
	done(q, k, v, probs)
	p := a.Proj.Forward(o, train)
	done(o)
	y := be.Add(x, p)
	release(be, p)
	if train {
		a.hn, a.q, a.k, a.v, a.o, a.probs = hn, q, k, v, o, probs
	}
	return y
}

// Backward returns dx and accumulates the parameter gradients.
func (a *AttnBlock) Backward(dy *tensor.Tensor) *tensor.Tensor {
	be := a.be
	do := a.Proj.Backward(dy)
	dq, dk, dv := be.AttentionBackward(do, a.q, a.k, a.v, a.probs, a.Heads)
	release(be, do)
	gq, gk, gv := a.Q.Backward(dq), a.K.Backward(dk), a.V.Backward(dv)
	release(be, dq, dk, dv)
	gqk := be.Add(gq, gk)
	dhn := be.Add(gqk, gv)
	release(be, gq, gk, gv, gqk)
	dxn := a.Norm.Backward(dhn)
	release(be, dhn)
	dx := be.Add(dxn, dy)
	release(be, dxn, a.hn, a.q, a.k, a.v, a.o, a.probs)
	a.hn, a.q, a.k, a.v, a.o, a.probs = nil, nil, nil, nil, nil, nil
	return dx
}

// reset frees what a training Forward saved when no Backward follows.
func (a *AttnBlock) reset() {
	a.Norm.reset()
	release(a.be, a.hn, a.q, a.k, a.v, a.o, a.probs)
	a.hn, a.q, a.k, a.v, a.o, a.probs = nil, nil, nil, nil, nil, nil
}

// Params returns norm, q, k, v, proj_out parameters.
func (a *AttnBlock) Params() []*tensor.Param {
	return concat(a.Norm.Params(), a.Q.Params(), a.K.Params(), a.V.Params(), a.Proj.Params())
}

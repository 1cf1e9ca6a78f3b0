//go:build cgo

package dnnl

/*
#include "dd.h"
*/
import "C"

import "unsafe"

// Lazy tensors let the backend fuse GroupNorm with the SiLU that follows it in every UNet block,
// without the network asking for a fused op:
//
//	forward:  a0 := GroupNorm(x)          computes only the stats; a0 is lazy
//	          a1 := SiLU(a0)              one pass: a1 = SiLU(x*scale + shift); a0 stays lazy
//	backward: d0 := SiLUBackward(d1, a0)  lazy again
//	          dx := GroupNormBackward(d0, x, stats, ...)   one fused pass pair from d1 and x
//
// so the GroupNorm output is never written nor read (in training it is never even allocated), and
// SiLU's backward costs no pass of its own. Any other use of a lazy tensor (Read, a convolution, an
// add) computes it first, so results never depend on the pattern being followed.

// lazyOp is an op whose result is computed on first use; inputs are the buffers it holds a
// reference to until then.
type lazyOp interface {
	inputs() []*buf
}

// lazyNorm is GroupNorm(x) whose stats are known but whose output is not yet written.
type lazyNorm struct {
	x, stats        *buf
	n, c, hw, group int
	// gamma and beta are copies of the affine at the time of the call, so the result is the same
	// whenever it is computed.
	gamma, beta []float32
}

func (l *lazyNorm) inputs() []*buf { return []*buf{l.x, l.stats} }

// lazySiLUGrad is SiLUBackward(dy, a) for a lazy GroupNorm output a.
type lazySiLUGrad struct {
	dy, a *buf
	n     int
}

func (l *lazySiLUGrad) inputs() []*buf { return []*buf{l.dy, l.a} }

// compute writes the contents of the lazy buffer bf and drops the references its op held.
func (b *Backend) compute(bf *buf) {
	switch l := bf.lazy.(type) {
	case *lazyNorm:
		p := b.pool.get(bf.bytes)
		b.w.do(func() {
			C.dd_gn_fwd(bf.dt, l.x.p, p, fptr(l.gamma), fptr(l.beta), (*C.float)(l.stats.p), C.int(l.n), C.int(l.hw),
				C.int(l.c), C.int(l.group), 0, 0, 1)
		})
		b.settle(bf, p)
	case *lazySiLUGrad:
		if l.a.lazy != nil {
			b.compute(l.a)
		}
		p := b.pool.get(bf.bytes)
		b.w.do(func() { C.dd_silu_bwd(bf.dt, l.dy.p, l.a.p, p, C.size_t(l.n)) })
		b.settle(bf, p)
	}
}

// settle installs the computed memory p of bf and releases its op's inputs.
func (b *Backend) settle(bf *buf, p unsafe.Pointer) {
	b.mu.Lock()
	bf.p = p
	ins := bf.lazy.inputs()
	bf.lazy = nil
	b.mu.Unlock()
	for _, in := range ins {
		b.unref(in)
	}
}

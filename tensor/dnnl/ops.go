//go:build cgo

package dnnl

/*
#include "dd.h"
*/
import "C"

import (
	"unsafe"

	"github.com/ddpm-go/ddpm/tensor"
)

// ---- convolution ----

func (b *Backend) convShape(op string, x *tensor.Tensor, w, bias *tensor.Param, c tensor.Conv) (convKey, int, int) {
	ho, wo := tensor.CheckConv(op, x, w, c)
	k := convKey{n: x.Shape[0], cin: x.Shape[1], h: x.Shape[2], w: x.Shape[3], cout: w.Shape[0], k: w.Shape[2],
		stride: c.Stride, pad: c.Pad, bias: bias != nil}
	if bias != nil {
		paramShape(op, bias, k.cout)
	}
	return k, ho, wo
}

// conv returns the cached primitives for k, creating them on first use. Worker thread only.
func (b *Backend) conv(op string, k convKey) *C.dd_conv {
	if c := b.convs[k]; c != nil {
		return c
	}
	var st C.int
	bias := 0
	if k.bias {
		bias = 1
	}
	c := C.dd_conv_new(C.int(k.n), C.int(k.cin), C.int(k.h), C.int(k.w), C.int(k.cout), C.int(k.k),
		C.int(k.stride), C.int(k.pad), b.dt, C.int(bias), &st)
	if c == nil {
		shapePanic(op, "cannot create a convolution for %+v: oneDNN status %d", k, int(st))
	}
	b.convs[k] = c
	b.nconv.Add(1)
	return c
}

// weightsFor returns w reordered for role (0 forward, 1 backward data) of c, redoing the reorder
// only when w.Version changed. Worker thread only.
func (b *Backend) weightsFor(op string, c *C.dd_conv, w *tensor.Param, role int) unsafe.Pointer {
	key := weightKey{p: w, conv: c, role: role}
	wc := b.weights[key]
	if wc == nil {
		n := C.dd_conv_wbytes(c, C.int(role))
		wc = &weightCopy{p: C.dd_alloc(n), bytes: int(n)}
		b.weights[key] = wc
		b.wbytes.Add(int64(n))
	} else if wc.version == w.Version {
		return wc.p
	}
	check(op, C.dd_conv_wreorder(c, C.int(role), fptr(w.W), wc.p))
	wc.version = w.Version
	return wc.p
}

// Conv2D: x (N,Cin,H,W), w (Cout,Cin,K,K), b (Cout) or nil -> (N,Cout,H',W').
func (b *Backend) Conv2D(x *tensor.Tensor, w, bias *tensor.Param, c tensor.Conv) *tensor.Tensor {
	const op = "Conv2D"
	k, ho, wo := b.convShape(op, x, w, bias, c)
	xb := b.get(op, x)
	y := b.newAct(k.n, k.cout, ho, wo)
	yb := y.Impl.(*buf)
	var bp *C.float
	if bias != nil {
		bp = fptr(bias.W)
	}
	b.w.do(func() {
		cv := b.conv(op, k)
		wp := b.weightsFor(op, cv, w, 0)
		xp, free := b.in(x, xb, b.dt)
		defer free()
		check(op, C.dd_conv_fwd(cv, xp, wp, bp, yb.p))
	})
	return y
}

// Conv2DBackward returns dx and accumulates dw (and db when b != nil).
func (b *Backend) Conv2DBackward(dy, x *tensor.Tensor, w, bias *tensor.Param, c tensor.Conv) *tensor.Tensor {
	const op = "Conv2DBackward"
	k, ho, wo := b.convShape(op, x, w, bias, c)
	if !sameShape(dy.Shape, []int{k.n, k.cout, ho, wo}) {
		shapePanic(op, "dy %v, want %v", dy.Shape, []int{k.n, k.cout, ho, wo})
	}
	xb, dyb := b.get(op, x), b.get(op, dy)
	dx := b.newAct(x.Shape...)
	dxb := dx.Impl.(*buf)
	var gb *C.float
	if bias != nil {
		gb = fptr(bias.G)
	}
	b.w.do(func() {
		cv := b.conv(op, k)
		check(op, C.dd_conv_init_bwd(cv))
		wp := b.weightsFor(op, cv, w, 1)
		xp, freeX := b.in(x, xb, b.dt)
		defer freeX()
		dyp, freeDY := b.in(dy, dyb, b.dt)
		defer freeDY()
		check(op, C.dd_conv_bwd_data(cv, dyp, wp, dxb.p))
		check(op, C.dd_conv_bwd_weights(cv, xp, dyp, fptr(w.G), gb))
	})
	return dx
}

// convImpl names the oneDNN implementations chosen for a convolution (forward, backward data,
// backward weights), so BenchmarkConv can say which kernels it timed; backward names are empty
// until first used.
func (b *Backend) convImpl(x []int, w *tensor.Param, bias bool, c tensor.Conv) [3]string {
	var out [3]string
	k := convKey{n: x[0], cin: x[1], h: x[2], w: x[3], cout: w.Shape[0], k: w.Shape[2], stride: c.Stride, pad: c.Pad, bias: bias}
	b.w.do(func() {
		cv := b.convs[k]
		if cv == nil {
			return
		}
		for i := range out {
			out[i] = C.GoString(C.dd_conv_impl(cv, C.int(i)))
		}
	})
	return out
}

// ---- linear ----

func linearDims(op string, x *tensor.Tensor, w *tensor.Param) (n, in, out int) {
	rank(op, x, 2)
	if w == nil || len(w.Shape) != 2 {
		shapePanic(op, "x %v: want w (Out,%d)", x.Shape, x.Shape[1])
	}
	n, in, out = x.Shape[0], x.Shape[1], w.Shape[0]
	paramShape(op, w, out, in)
	return
}

// Linear: x (N,In), w (Out,In), b (Out) or nil -> (N,Out) = x w^T + b.
func (b *Backend) Linear(x *tensor.Tensor, w, bias *tensor.Param) *tensor.Tensor {
	const op = "Linear"
	n, in, out := linearDims(op, x, w)
	var bp *C.float
	if bias != nil {
		paramShape(op, bias, out)
		bp = fptr(bias.W)
	}
	xb := b.get(op, x)
	y := b.newAct(n, out)
	yb := y.Impl.(*buf)
	b.w.do(func() {
		check(op, C.dd_linear_fwd((*C.float)(xb.p), fptr(w.W), bp, (*C.float)(yb.p), C.int(n), C.int(in), C.int(out)))
	})
	return y
}

// LinearBackward returns dx and accumulates dw (and db when b != nil).
func (b *Backend) LinearBackward(dy, x *tensor.Tensor, w, bias *tensor.Param) *tensor.Tensor {
	const op = "LinearBackward"
	n, in, out := linearDims(op, x, w)
	if !sameShape(dy.Shape, []int{n, out}) {
		shapePanic(op, "dy %v, want %v", dy.Shape, []int{n, out})
	}
	var gb *C.float
	if bias != nil {
		paramShape(op, bias, out)
		gb = fptr(bias.G)
	}
	xb, dyb := b.get(op, x), b.get(op, dy)
	dx := b.newAct(n, in)
	dxb := dx.Impl.(*buf)
	b.w.do(func() {
		check(op, C.dd_linear_bwd((*C.float)(dyb.p), (*C.float)(xb.p), fptr(w.W), (*C.float)(dxb.p), fptr(w.G), gb,
			C.int(n), C.int(in), C.int(out)))
	})
	return dx
}

// ---- group norm ----

func groupDims(op string, x *tensor.Tensor, gamma, beta *tensor.Param, groups int) (n, c, hw int) {
	if x == nil || len(x.Shape) < 2 {
		shapePanic(op, "x: want (N,C,...)")
	}
	n, c = x.Shape[0], x.Shape[1]
	hw = tensor.Numel(x.Shape[2:])
	if groups < 1 || c%groups != 0 {
		shapePanic(op, "%d channels do not split into %d groups", c, groups)
	}
	paramShape(op, gamma, c)
	paramShape(op, beta, c)
	return
}

// GroupNorm: stats is (N, groups, 2): the mean and 1/sqrt(var+eps) of each group, as the reference.
func (b *Backend) GroupNorm(x *tensor.Tensor, gamma, beta *tensor.Param, groups int, eps float32) (y, stats *tensor.Tensor) {
	const op = "GroupNorm"
	n, c, hw := groupDims(op, x, gamma, beta, groups)
	if len(x.Shape) != 4 && len(x.Shape) != 2 {
		// Only 4-D (NHWC) and 2-D tensors keep channels last; others run on the reference.
		yr, sr := b.ref.GroupNorm(b.toRef(x), gamma, beta, groups, eps)
		return b.fromRef(yr), b.fromRef(sr)
	}
	xb := b.get(op, x)
	dt := b.actDT(x.Shape)
	stats = b.newBuf([]int{n, groups, 2}, dtF32)
	sb := stats.Impl.(*buf)
	if len(x.Shape) == 4 && xb.dt == dt {
		// Stats now, the output when first used (lazy.go): usually only through SiLU.
		b.w.do(func() {
			C.dd_gn_fwd(dt, xb.p, nil, fptr(gamma.W), fptr(beta.W), (*C.float)(sb.p), C.int(n), C.int(hw), C.int(c),
				C.int(groups), C.float(eps), 0, 0)
		})
		y = b.newLazy(x.Shape, dt, &lazyNorm{x: xb, stats: sb, n: n, c: c, hw: hw, group: groups,
			gamma: append([]float32(nil), gamma.W...), beta: append([]float32(nil), beta.W...)})
		return y, stats
	}
	y = b.newBuf(x.Shape, dt)
	yb := y.Impl.(*buf)
	b.w.do(func() {
		xp, free := b.in(x, xb, dt)
		defer free()
		C.dd_gn_fwd(dt, xp, yb.p, fptr(gamma.W), fptr(beta.W), (*C.float)(sb.p), C.int(n), C.int(hw), C.int(c),
			C.int(groups), C.float(eps), 0, 0)
	})
	return y, stats
}

// GroupNormBackward returns dx and accumulates dgamma, dbeta.
func (b *Backend) GroupNormBackward(dy, x, stats *tensor.Tensor, gamma, beta *tensor.Param, groups int) *tensor.Tensor {
	const op = "GroupNormBackward"
	n, c, hw := groupDims(op, x, gamma, beta, groups)
	if len(x.Shape) != 4 && len(x.Shape) != 2 {
		return b.fromRef(b.ref.GroupNormBackward(b.toRef(dy), b.toRef(x), b.toRef(stats), gamma, beta, groups))
	}
	if dy == nil || stats == nil || !sameShape(dy.Shape, x.Shape) || !sameShape(stats.Shape, []int{n, groups, 2}) {
		shapePanic(op, "dy, x %v, stats: want dy %v and stats %v", x.Shape, x.Shape, []int{n, groups, 2})
	}
	xb, sb := b.get(op, x), b.get(op, stats)
	gammaF, betaF := gamma.W, beta.W // the affine that made the forward's output
	var dyb *buf
	fuse := C.int(0) // 1: SiLU's backward is folded into the kernel's
	if l, ok := b.peek(op, dy).lazy.(*lazySiLUGrad); ok {
		// dy = SiLUBackward(d, GroupNorm(x)) not yet computed: fuse it (lazy.go).
		if ln, ok := l.a.lazy.(*lazyNorm); ok && ln.x == xb && ln.stats == sb && ln.group == groups {
			dyb, fuse, gammaF, betaF = l.dy, 1, ln.gamma, ln.beta
		}
	}
	if dyb == nil {
		dyb = b.get(op, dy)
	}
	dt := b.actDT(x.Shape)
	dx := b.newBuf(x.Shape, dt)
	dxb := dx.Impl.(*buf)
	b.w.do(func() {
		xp, freeX := b.in(x, xb, dt)
		defer freeX()
		dyp, freeDY := b.in(dy, dyb, dt)
		defer freeDY()
		C.dd_gn_bwd(dt, dyp, xp, (*C.float)(sb.p), fptr(gamma.W), fptr(gammaF), fptr(betaF), dxb.p, fptr(gamma.G),
			fptr(beta.G), C.int(n), C.int(hw), C.int(c), C.int(groups), fuse)
	})
	return dx
}

// ---- elementwise ----

// unary runs f(in, out, n) with x converted to the element type of a new tensor of x's shape.
func (b *Backend) unary(op string, x *tensor.Tensor, f func(dt C.int, xp, yp unsafe.Pointer, n C.size_t)) *tensor.Tensor {
	xb := b.get(op, x)
	dt := b.actDT(x.Shape)
	y := b.newBuf(x.Shape, dt)
	yb := y.Impl.(*buf)
	b.w.do(func() {
		xp, free := b.in(x, xb, dt)
		defer free()
		f(dt, xp, yb.p, C.size_t(x.Len()))
	})
	return y
}

// binary is unary for two inputs of equal shape.
func (b *Backend) binary(op string, x, z *tensor.Tensor, f func(dt C.int, xp, zp, yp unsafe.Pointer, n C.size_t)) *tensor.Tensor {
	if x == nil || z == nil || !sameShape(x.Shape, z.Shape) {
		shapePanic(op, "want two tensors of equal shape")
	}
	xb, zb := b.get(op, x), b.get(op, z)
	dt := b.actDT(x.Shape)
	y := b.newBuf(x.Shape, dt)
	yb := y.Impl.(*buf)
	b.w.do(func() {
		xp, freeX := b.in(x, xb, dt)
		defer freeX()
		zp, freeZ := b.in(z, zb, dt)
		defer freeZ()
		f(dt, xp, zp, yb.p, C.size_t(x.Len()))
	})
	return y
}

// SiLU: y = x * sigmoid(x). Of a lazy GroupNorm output it is the fused GroupNorm+SiLU pass.
func (b *Backend) SiLU(x *tensor.Tensor) *tensor.Tensor {
	if l, ok := b.peek("SiLU", x).lazy.(*lazyNorm); ok {
		y := b.newBuf(x.Shape, l.x.dt)
		yb := y.Impl.(*buf)
		b.w.do(func() {
			C.dd_gn_fwd(l.x.dt, l.x.p, yb.p, fptr(l.gamma), fptr(l.beta), (*C.float)(l.stats.p), C.int(l.n), C.int(l.hw),
				C.int(l.c), C.int(l.group), 0, 1, 1)
		})
		return y
	}
	return b.unary("SiLU", x, func(dt C.int, xp, yp unsafe.Pointer, n C.size_t) { C.dd_silu(dt, xp, yp, n) })
}

// SiLUBackward returns dy * d/dx SiLU(x). Of a lazy GroupNorm output it is lazy too, for
// GroupNormBackward to fuse.
func (b *Backend) SiLUBackward(dy, x *tensor.Tensor) *tensor.Tensor {
	if _, ok := b.peek("SiLUBackward", x).lazy.(*lazyNorm); ok && dy != nil && sameShape(dy.Shape, x.Shape) {
		if dyb := b.get("SiLUBackward", dy); dyb.dt == b.dt {
			return b.newLazy(x.Shape, b.dt, &lazySiLUGrad{dy: dyb, a: x.Impl.(*buf), n: x.Len()})
		}
	}
	return b.binary("SiLUBackward", dy, x, func(dt C.int, dyp, xp, dxp unsafe.Pointer, n C.size_t) {
		C.dd_silu_bwd(dt, dyp, xp, dxp, n)
	})
}

// Add: elementwise a + b of equal shapes.
func (b *Backend) Add(a, z *tensor.Tensor) *tensor.Tensor {
	return b.binary("Add", a, z, func(dt C.int, ap, zp, yp unsafe.Pointer, n C.size_t) { C.dd_add(dt, ap, zp, yp, n) })
}

// Scale: y = s*x.
func (b *Backend) Scale(x *tensor.Tensor, s float32) *tensor.Tensor {
	return b.unary("Scale", x, func(dt C.int, xp, yp unsafe.Pointer, n C.size_t) { C.dd_scale(dt, xp, yp, C.float(s), n) })
}

// AddChannel: x (N,C,H,W) + v (N,C) broadcast over H,W.
func (b *Backend) AddChannel(x, v *tensor.Tensor) *tensor.Tensor {
	const op = "AddChannel"
	rank(op, x, 4)
	if v == nil || !sameShape(v.Shape, x.Shape[:2]) {
		shapePanic(op, "x %v: want v %v", x.Shape, x.Shape[:2])
	}
	xb, vb := b.get(op, x), b.get(op, v)
	y := b.newAct(x.Shape...)
	yb := y.Impl.(*buf)
	b.w.do(func() {
		xp, free := b.in(x, xb, b.dt)
		defer free()
		C.dd_addch(b.dt, xp, (*C.float)(vb.p), yb.p, C.int(x.Shape[0]), C.int(x.Shape[2]*x.Shape[3]), C.int(x.Shape[1]))
	})
	return y
}

// SumHW: (N,C,H,W) -> (N,C).
func (b *Backend) SumHW(x *tensor.Tensor) *tensor.Tensor {
	const op = "SumHW"
	rank(op, x, 4)
	xb := b.get(op, x)
	y := b.newAct(x.Shape[0], x.Shape[1])
	yb := y.Impl.(*buf)
	b.w.do(func() {
		C.dd_sumhw(xb.dt, xb.p, (*C.float)(yb.p), C.int(x.Shape[0]), C.int(x.Shape[2]*x.Shape[3]), C.int(x.Shape[1]))
	})
	return y
}

// Concat joins a (N,Ca,H,W) and b (N,Cb,H,W) along channels.
func (b *Backend) Concat(a, z *tensor.Tensor) *tensor.Tensor {
	const op = "Concat"
	rank(op, a, 4)
	rank(op, z, 4)
	if a.Shape[0] != z.Shape[0] || a.Shape[2] != z.Shape[2] || a.Shape[3] != z.Shape[3] {
		shapePanic(op, "a %v, b %v", a.Shape, z.Shape)
	}
	ab, zb := b.get(op, a), b.get(op, z)
	y := b.newAct(a.Shape[0], a.Shape[1]+z.Shape[1], a.Shape[2], a.Shape[3])
	yb := y.Impl.(*buf)
	b.w.do(func() {
		ap, freeA := b.in(a, ab, b.dt)
		defer freeA()
		zp, freeZ := b.in(z, zb, b.dt)
		defer freeZ()
		C.dd_concat(b.dt, ap, zp, yb.p, C.int(a.Shape[0]), C.int(a.Shape[2]*a.Shape[3]), C.int(a.Shape[1]), C.int(z.Shape[1]))
	})
	return y
}

// ConcatBackward splits dy (N,Ca+Cb,H,W) into its first ca channels and the rest.
func (b *Backend) ConcatBackward(dy *tensor.Tensor, ca int) (da, db *tensor.Tensor) {
	const op = "ConcatBackward"
	rank(op, dy, 4)
	n, c, h, w := dy.Shape[0], dy.Shape[1], dy.Shape[2], dy.Shape[3]
	if ca < 0 || ca > c {
		shapePanic(op, "dy %v cannot split at channel %d", dy.Shape, ca)
	}
	dyb := b.get(op, dy)
	da, db = b.newAct(n, ca, h, w), b.newAct(n, c-ca, h, w)
	dab, dbb := da.Impl.(*buf), db.Impl.(*buf)
	b.w.do(func() {
		dyp, free := b.in(dy, dyb, b.dt)
		defer free()
		C.dd_split(b.dt, dyp, dab.p, dbb.p, C.int(n), C.int(h*w), C.int(ca), C.int(c-ca))
	})
	return da, db
}

// Upsample2x: nearest-neighbour 2x.
func (b *Backend) Upsample2x(x *tensor.Tensor) *tensor.Tensor {
	const op = "Upsample2x"
	rank(op, x, 4)
	n, c, h, w := x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3]
	xb := b.get(op, x)
	y := b.newAct(n, c, 2*h, 2*w)
	yb := y.Impl.(*buf)
	b.w.do(func() {
		xp, free := b.in(x, xb, b.dt)
		defer free()
		C.dd_up2(b.dt, xp, yb.p, C.int(n), C.int(h), C.int(w), C.int(c))
	})
	return y
}

// Upsample2xBackward sums each 2x2 block of dy.
func (b *Backend) Upsample2xBackward(dy *tensor.Tensor) *tensor.Tensor {
	const op = "Upsample2xBackward"
	rank(op, dy, 4)
	n, c, h2, w2 := dy.Shape[0], dy.Shape[1], dy.Shape[2], dy.Shape[3]
	if h2%2 != 0 || w2%2 != 0 {
		shapePanic(op, "dy %v has odd spatial size", dy.Shape)
	}
	dyb := b.get(op, dy)
	dx := b.newAct(n, c, h2/2, w2/2)
	dxb := dx.Impl.(*buf)
	b.w.do(func() {
		dyp, free := b.in(dy, dyb, b.dt)
		defer free()
		C.dd_up2_bwd(b.dt, dyp, dxb.p, C.int(n), C.int(h2/2), C.int(w2/2), C.int(c))
	})
	return dx
}

// MSE returns mean((pred-target)^2), summed in float64 from float32 values, and its gradient.
func (b *Backend) MSE(pred, target *tensor.Tensor) (loss float64, dpred *tensor.Tensor) {
	const op = "MSE"
	if pred == nil || target == nil || !sameShape(pred.Shape, target.Shape) {
		shapePanic(op, "pred and target must have equal shapes")
	}
	pb, tb := b.get(op, pred), b.get(op, target)
	dpred = b.newAct(pred.Shape...)
	db := dpred.Impl.(*buf)
	n := pred.Len()
	b.w.do(func() {
		pp, freeP := b.in(pred, pb, dtF32)
		defer freeP()
		tp, freeT := b.in(target, tb, dtF32)
		defer freeT()
		dp, freeD := unsafe.Pointer(db.p), func() {}
		if db.dt != dtF32 {
			dp = b.pool.get(4 * n)
			freeD = func() { b.pool.put(dp, 4*n) }
		}
		defer freeD()
		loss = float64(C.dd_mse((*C.float)(pp), (*C.float)(tp), (*C.float)(dp), C.size_t(n)))
		if db.dt != dtF32 {
			C.dd_convert(dp, dtF32, db.p, db.dt, C.size_t(n))
		}
	})
	return loss, dpred
}

// ---- ops run on the reference kernels ----

// toRef copies x into a reference tensor; fromRef uploads a reference result.
func (b *Backend) toRef(x *tensor.Tensor) *tensor.Tensor {
	if x != nil && x.Impl == nil && x.Data != nil {
		return x
	}
	return &tensor.Tensor{Shape: append([]int(nil), x.Shape...), Data: b.Read(x)}
}

func (b *Backend) fromRef(t *tensor.Tensor) *tensor.Tensor { return b.Upload(t.Shape, t.Data) }

func attentionDims(op string, q, k, v *tensor.Tensor, heads int) (n, c, l int) {
	rank(op, q, 4)
	if k == nil || v == nil || !sameShape(q.Shape, k.Shape) || !sameShape(q.Shape, v.Shape) {
		shapePanic(op, "q, k, v must have equal shapes")
	}
	n, c, l = q.Shape[0], q.Shape[1], q.Shape[2]*q.Shape[3]
	if heads < 1 || c%heads != 0 {
		shapePanic(op, "%d channels do not split into %d heads", c, heads)
	}
	return
}

// f32out returns where an op computing in float32 should write the tensor t, and a function that
// moves the result into t (a conversion when t is bf16). Worker thread only.
func (b *Backend) f32out(t *tensor.Tensor) (unsafe.Pointer, func()) {
	tb := t.Impl.(*buf)
	if tb.dt == dtF32 {
		return tb.p, func() {}
	}
	n := t.Len()
	q := b.pool.get(4 * n)
	return q, func() {
		C.dd_convert(q, dtF32, tb.p, tb.dt, C.size_t(n))
		b.pool.put(q, 4*n)
	}
}

// Attention: saved is the attention probabilities as a float32 (N*heads, L, L) tensor. The
// GEMMs run in float32 whatever the precision (attention is at 7x7 or 14x14, a small cost).
func (b *Backend) Attention(q, k, v *tensor.Tensor, heads int) (out, saved *tensor.Tensor) {
	const op = "Attention"
	n, c, l := attentionDims(op, q, k, v, heads)
	qb, kb, vb := b.get(op, q), b.get(op, k), b.get(op, v)
	out = b.newAct(q.Shape...)
	saved = b.newBuf([]int{n * heads, l, l}, dtF32)
	sb := saved.Impl.(*buf)
	b.w.do(func() {
		qp, fq := b.in(q, qb, dtF32)
		defer fq()
		kp, fk := b.in(k, kb, dtF32)
		defer fk()
		vp, fv := b.in(v, vb, dtF32)
		defer fv()
		op, done := b.f32out(out)
		C.dd_attn_fwd((*C.float)(qp), (*C.float)(kp), (*C.float)(vp), (*C.float)(op), (*C.float)(sb.p), C.int(n), C.int(l),
			C.int(c), C.int(heads))
		done()
	})
	return out, saved
}

// AttentionBackward returns dq, dk, dv.
func (b *Backend) AttentionBackward(dout, q, k, v, saved *tensor.Tensor, heads int) (dq, dk, dv *tensor.Tensor) {
	const op = "AttentionBackward"
	n, c, l := attentionDims(op, q, k, v, heads)
	if dout == nil || saved == nil || !sameShape(dout.Shape, q.Shape) || !sameShape(saved.Shape, []int{n * heads, l, l}) {
		shapePanic(op, "dout and saved: want %v and %v", q.Shape, []int{n * heads, l, l})
	}
	qb, kb, vb, db, sb := b.get(op, q), b.get(op, k), b.get(op, v), b.get(op, dout), b.get(op, saved)
	dq, dk, dv = b.newAct(q.Shape...), b.newAct(q.Shape...), b.newAct(q.Shape...)
	b.w.do(func() {
		qp, fq := b.in(q, qb, dtF32)
		defer fq()
		kp, fk := b.in(k, kb, dtF32)
		defer fk()
		vp, fv := b.in(v, vb, dtF32)
		defer fv()
		dp, fd := b.in(dout, db, dtF32)
		defer fd()
		dqp, doneQ := b.f32out(dq)
		dkp, doneK := b.f32out(dk)
		dvp, doneV := b.f32out(dv)
		C.dd_attn_bwd((*C.float)(dp), (*C.float)(qp), (*C.float)(kp), (*C.float)(vp), (*C.float)(sb.p), (*C.float)(dqp),
			(*C.float)(dkp), (*C.float)(dvp), C.int(n), C.int(l), C.int(c), C.int(heads))
		doneQ()
		doneK()
		doneV()
	})
	return dq, dk, dv
}

// Dropout draws tensor.DropoutMask (the same elements as every backend drops), keeps it as a
// float32 tensor in this backend's layout, and multiplies.
func (b *Backend) Dropout(x *tensor.Tensor, p float32, seed uint64) (y, mask *tensor.Tensor) {
	const op = "Dropout"
	xb := b.get(op, x)
	mask = b.Upload(x.Shape, tensor.DropoutMask(x.Len(), p, seed))
	return b.mulMask(op, x, xb, mask), mask
}

// DropoutBackward returns dy * mask.
func (b *Backend) DropoutBackward(dy, mask *tensor.Tensor) *tensor.Tensor {
	const op = "DropoutBackward"
	if dy == nil || mask == nil || !sameShape(dy.Shape, mask.Shape) {
		shapePanic(op, "dy and mask must have equal shapes")
	}
	return b.mulMask(op, dy, b.get(op, dy), mask)
}

func (b *Backend) mulMask(op string, x *tensor.Tensor, xb *buf, mask *tensor.Tensor) *tensor.Tensor {
	mb := b.get(op, mask)
	if mb.dt != dtF32 {
		shapePanic(op, "mask is not a dropout mask of this backend")
	}
	dt := b.actDT(x.Shape)
	y := b.newBuf(x.Shape, dt)
	yb := y.Impl.(*buf)
	b.w.do(func() {
		xp, free := b.in(x, xb, dt)
		defer free()
		C.dd_mulf(dt, xp, (*C.float)(mb.p), yb.p, C.size_t(x.Len()))
	})
	return y
}

var _ tensor.Backend = (*Backend)(nil)

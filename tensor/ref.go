package tensor

import (
	"fmt"
	"runtime"
)

// Reference is the plain-Go backend. Every method runs the generic kernels of this package
// instantiated with F:
//   - Reference[float32] (NewReference) keeps activations as host float32 in NCHW order in
//     Tensor.Data. It is the specification the fast backends are tested against and the backend
//     of CGO_ENABLED=0 builds.
//   - Reference[float64] (NewReference64) keeps activations as float64 in Tensor.Impl and widens
//     the float32 weights on every call, so a whole network can be checked against finite
//     differences in float64 through the same Backend interface (see Read64).
type Reference[F Float] struct {
	threads int
}

// NewReference returns the float32 plain-Go backend using up to threads goroutines per kernel
// (threads < 1 means runtime.GOMAXPROCS(0)). Results do not depend on threads.
func NewReference(threads int) Backend { return &Reference[float32]{threads: defaultThreads(threads)} }

// NewReference64 returns the plain-Go backend computing in float64 (Name "ref64", Precision FP64):
// weights and Param.G stay float32, activations and all arithmetic are float64. It exists for
// gradient checks of whole networks; Read64 reads its activations without rounding.
func NewReference64(threads int) Backend {
	return &Reference[float64]{threads: defaultThreads(threads)}
}

func defaultThreads(threads int) int {
	if threads < 1 {
		return runtime.GOMAXPROCS(0)
	}
	return threads
}

func is64[F Float]() bool {
	var zero F
	_, ok := any(zero).(float64)
	return ok
}

// Name is "ref" or "ref64".
func (r *Reference[F]) Name() string {
	if is64[F]() {
		return "ref64"
	}
	return "ref"
}

// Precision is FP32 or FP64.
func (r *Reference[F]) Precision() Precision {
	if is64[F]() {
		return FP64
	}
	return FP32
}

// Threads is the number of goroutines a kernel may use.
func (r *Reference[F]) Threads() int { return r.threads }

// alloc makes a zeroed tensor of the given shape and returns its storage.
func (r *Reference[F]) alloc(shape ...int) (*Tensor, []F) {
	t := &Tensor{Shape: append([]int(nil), shape...)}
	n := Numel(shape)
	if is64[F]() {
		s := make([]float64, n)
		t.Impl = s
		return t, any(s).([]F)
	}
	s := make([]float32, n)
	t.Data = s
	return t, any(s).([]F)
}

// data returns x's storage, panicking with the op's name if x is not a live tensor of this backend.
func (r *Reference[F]) data(op string, x *Tensor) []F {
	if x == nil {
		panic(fmt.Sprintf("tensor: %s: nil tensor", op))
	}
	var s []F
	if is64[F]() {
		d, _ := x.Impl.([]float64)
		s = any(d).([]F)
	} else {
		s = any(x.Data).([]F)
	}
	if s == nil && x.Len() != 0 {
		panic(fmt.Sprintf("tensor: %s: tensor %v has no %s data (released, or made by another backend)", op, x.Shape, r.Name()))
	}
	if len(s) != x.Len() {
		panic(fmt.Sprintf("tensor: %s: tensor shape %v but %d elements", op, x.Shape, len(s)))
	}
	return s
}

// weights returns p.W as F: the array itself for float32, a widened copy for float64.
func weights[F Float](p *Param) []F {
	if p == nil {
		return nil
	}
	if w, ok := any(p.W).([]F); ok {
		return w
	}
	w := make([]F, len(p.W))
	for i, v := range p.W {
		w[i] = F(v)
	}
	return w
}

// grads returns an array the kernels may accumulate p's gradient into, and a function that
// moves it into p.G: for float32 the array is p.G itself; for float64 a zeroed float64 array whose
// sum is added into p.G, so the float64 accumulation is rounded once.
func grads[F Float](p *Param) ([]F, func()) {
	if p == nil {
		return nil, func() {}
	}
	if g, ok := any(p.G).([]F); ok {
		return g, func() {}
	}
	g := make([]F, len(p.G))
	return g, func() {
		for i, v := range g {
			p.G[i] += float32(v)
		}
	}
}

func sameShape(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func shapePanic(op string, format string, args ...any) {
	panic(fmt.Sprintf("tensor: %s: %s", op, fmt.Sprintf(format, args...)))
}

func rank(op string, x *Tensor, r int) {
	if x == nil {
		shapePanic(op, "nil tensor")
	}
	if len(x.Shape) != r {
		shapePanic(op, "want a rank-%d tensor, got shape %v", r, x.Shape)
	}
}

func paramShape(op string, p *Param, want ...int) {
	if p == nil {
		shapePanic(op, "nil param")
	}
	if !sameShape(p.Shape, want) || len(p.W) != Numel(want) || len(p.G) != Numel(want) {
		shapePanic(op, "param %q has shape %v (len W %d, G %d), want %v", p.Name, p.Shape, len(p.W), len(p.G), want)
	}
}

// Upload copies data into a new tensor.
func (r *Reference[F]) Upload(shape []int, d []float32) *Tensor {
	if len(d) != Numel(shape) {
		shapePanic("Upload", "shape %v needs %d elements, got %d", shape, Numel(shape), len(d))
	}
	t, s := r.alloc(shape...)
	for i, v := range d {
		s[i] = F(v)
	}
	return t
}

// Upload64 is Upload from float64 data (rounded to float32 by Reference[float32]).
func (r *Reference[F]) Upload64(shape []int, d []float64) *Tensor {
	if len(d) != Numel(shape) {
		shapePanic("Upload64", "shape %v needs %d elements, got %d", shape, Numel(shape), len(d))
	}
	t, s := r.alloc(shape...)
	for i, v := range d {
		s[i] = F(v)
	}
	return t
}

// Read returns a copy of x's data as float32.
func (r *Reference[F]) Read(x *Tensor) []float32 {
	s := r.data("Read", x)
	out := make([]float32, len(s))
	for i, v := range s {
		out[i] = float32(v)
	}
	return out
}

// Read64 returns a copy of x's data as float64: exact for both instantiations, so a loss computed
// from a Reference[float64] activation keeps float64 precision.
func (r *Reference[F]) Read64(x *Tensor) []float64 {
	s := r.data("Read64", x)
	out := make([]float64, len(s))
	for i, v := range s {
		out[i] = float64(v)
	}
	return out
}

// Release drops x's data so that a use after release fails loudly instead of reading stale values.
func (r *Reference[F]) Release(x *Tensor) {
	if x != nil {
		x.Data, x.Impl = nil, nil
	}
}

// CheckConv validates a convolution's input and weight against c and returns the output size, so
// every backend rejects the same malformed calls with the same message.
func CheckConv(op string, x *Tensor, w *Param, c Conv) (ho, wo int) {
	rank(op, x, 4)
	if w == nil || len(w.Shape) != 4 || w.Shape[2] != w.Shape[3] || w.Shape[1] != x.Shape[1] {
		var ws []int
		if w != nil {
			ws = w.Shape
		}
		shapePanic(op, "x %v, w %v: want w (Cout,%d,K,K)", x.Shape, ws, x.Shape[1])
	}
	if c.Stride < 1 || c.Pad < 0 {
		shapePanic(op, "invalid conv %+v", c)
	}
	k := w.Shape[2]
	ho, wo = c.OutSize(x.Shape[2], k), c.OutSize(x.Shape[3], k)
	if ho < 1 || wo < 1 {
		shapePanic(op, "x %v with kernel %d and %+v gives an empty output", x.Shape, k, c)
	}
	paramShape(op, w, w.Shape[0], x.Shape[1], k, k)
	return ho, wo
}

func convDims(op string, x *Tensor, w *Param, c Conv) convShape {
	ho, wo := CheckConv(op, x, w, c)
	return convShape{N: x.Shape[0], Cin: x.Shape[1], H: x.Shape[2], W: x.Shape[3], Cout: w.Shape[0], K: w.Shape[2],
		Stride: c.Stride, Pad: c.Pad, Ho: ho, Wo: wo}
}

func biasShape(op string, b *Param, n int) {
	if b != nil {
		paramShape(op, b, n)
	}
}

// Conv2D: x (N,Cin,H,W), w (Cout,Cin,K,K), b (Cout) or nil -> (N,Cout,H',W').
func (r *Reference[F]) Conv2D(x *Tensor, w, b *Param, c Conv) *Tensor {
	s := convDims("Conv2D", x, w, c)
	biasShape("Conv2D", b, s.Cout)
	y, yd := r.alloc(s.N, s.Cout, s.Ho, s.Wo)
	conv2dForward(s, r.data("Conv2D", x), weights[F](w), weights[F](b), yd, r.threads)
	return y
}

// Conv2DBackward returns dx and accumulates dw (and db when b != nil).
func (r *Reference[F]) Conv2DBackward(dy, x *Tensor, w, b *Param, c Conv) *Tensor {
	const op = "Conv2DBackward"
	s := convDims(op, x, w, c)
	biasShape(op, b, s.Cout)
	rank(op, dy, 4)
	if !sameShape(dy.Shape, []int{s.N, s.Cout, s.Ho, s.Wo}) {
		shapePanic(op, "dy %v, want %v", dy.Shape, []int{s.N, s.Cout, s.Ho, s.Wo})
	}
	dx, dxd := r.alloc(x.Shape...)
	dw, flushW := grads[F](w)
	db, flushB := grads[F](b)
	conv2dBackward(s, r.data(op, dy), r.data(op, x), weights[F](w), dxd, dw, db, r.threads)
	flushW()
	flushB()
	return dx
}

func linearDims(op string, x *Tensor, w *Param) (n, in, out int) {
	rank(op, x, 2)
	if w == nil || len(w.Shape) != 2 {
		shapePanic(op, "x %v: want w (Out,%d)", x.Shape, x.Shape[1])
	}
	n, in, out = x.Shape[0], x.Shape[1], w.Shape[0]
	paramShape(op, w, out, in)
	return
}

// Linear: x (N,In), w (Out,In), b (Out) or nil -> (N,Out) = x w^T + b.
func (r *Reference[F]) Linear(x *Tensor, w, b *Param) *Tensor {
	n, in, out := linearDims("Linear", x, w)
	biasShape("Linear", b, out)
	y, yd := r.alloc(n, out)
	linearForward(n, in, out, r.data("Linear", x), weights[F](w), weights[F](b), yd, r.threads)
	return y
}

// LinearBackward returns dx and accumulates dw (and db when b != nil).
func (r *Reference[F]) LinearBackward(dy, x *Tensor, w, b *Param) *Tensor {
	const op = "LinearBackward"
	n, in, out := linearDims(op, x, w)
	biasShape(op, b, out)
	rank(op, dy, 2)
	if !sameShape(dy.Shape, []int{n, out}) {
		shapePanic(op, "dy %v, want %v", dy.Shape, []int{n, out})
	}
	dx, dxd := r.alloc(n, in)
	dw, flushW := grads[F](w)
	db, flushB := grads[F](b)
	linearBackward(n, in, out, r.data(op, dy), r.data(op, x), weights[F](w), dxd, dw, db, r.threads)
	flushW()
	flushB()
	return dx
}

// groupDims returns N, C and the pixels per channel of x (N,C,...) after checking groups.
func groupDims(op string, x *Tensor, gamma, beta *Param, groups int) (n, c, hw int) {
	if x == nil || len(x.Shape) < 2 {
		shapePanic(op, "want x (N,C,...)")
	}
	n, c = x.Shape[0], x.Shape[1]
	hw = Numel(x.Shape[2:])
	if groups < 1 || c%groups != 0 {
		shapePanic(op, "%d channels do not split into %d groups", c, groups)
	}
	paramShape(op, gamma, c)
	paramShape(op, beta, c)
	return
}

// GroupNorm: stats is (N, groups, 2) holding the mean and 1/sqrt(var+eps) of each group.
func (r *Reference[F]) GroupNorm(x *Tensor, gamma, beta *Param, groups int, eps float32) (y, stats *Tensor) {
	n, c, hw := groupDims("GroupNorm", x, gamma, beta, groups)
	y, yd := r.alloc(x.Shape...)
	stats, sd := r.alloc(n, groups, 2)
	groupNormForward(n, c, hw, groups, float64(eps), r.data("GroupNorm", x), weights[F](gamma), weights[F](beta),
		yd, sd, r.threads)
	return y, stats
}

// GroupNormBackward returns dx and accumulates dgamma, dbeta.
func (r *Reference[F]) GroupNormBackward(dy, x, stats *Tensor, gamma, beta *Param, groups int) *Tensor {
	const op = "GroupNormBackward"
	n, c, hw := groupDims(op, x, gamma, beta, groups)
	if dy == nil || stats == nil || !sameShape(dy.Shape, x.Shape) || !sameShape(stats.Shape, []int{n, groups, 2}) {
		shapePanic(op, "dy, x %v, stats: want dy %v and stats %v", x.Shape, x.Shape, []int{n, groups, 2})
	}
	dx, dxd := r.alloc(x.Shape...)
	dg, flushG := grads[F](gamma)
	db, flushB := grads[F](beta)
	groupNormBackward(n, c, hw, groups, r.data(op, dy), r.data(op, x), r.data(op, stats), weights[F](gamma),
		dxd, dg, db, r.threads)
	flushG()
	flushB()
	return dx
}

// SiLU: y = x * sigmoid(x).
func (r *Reference[F]) SiLU(x *Tensor) *Tensor {
	y, yd := r.alloc(x.Shape...)
	siluForward(r.data("SiLU", x), yd, r.threads)
	return y
}

func sameShapes(op string, a, b *Tensor) {
	if a == nil || b == nil {
		shapePanic(op, "nil tensor")
	}
	if !sameShape(a.Shape, b.Shape) {
		shapePanic(op, "shapes %v and %v differ", a.Shape, b.Shape)
	}
}

// SiLUBackward returns dy * d/dx SiLU(x).
func (r *Reference[F]) SiLUBackward(dy, x *Tensor) *Tensor {
	sameShapes("SiLUBackward", dy, x)
	dx, dxd := r.alloc(x.Shape...)
	siluBackward(r.data("SiLUBackward", dy), r.data("SiLUBackward", x), dxd, r.threads)
	return dx
}

// Add: elementwise a + b of equal shapes.
func (r *Reference[F]) Add(a, b *Tensor) *Tensor {
	sameShapes("Add", a, b)
	y, yd := r.alloc(a.Shape...)
	addForward(r.data("Add", a), r.data("Add", b), yd)
	return y
}

// AddChannel: x (N,C,H,W) + v (N,C) broadcast over H,W.
func (r *Reference[F]) AddChannel(x, v *Tensor) *Tensor {
	rank("AddChannel", x, 4)
	rank("AddChannel", v, 2)
	if !sameShape(v.Shape, x.Shape[:2]) {
		shapePanic("AddChannel", "x %v, v %v: want v %v", x.Shape, v.Shape, x.Shape[:2])
	}
	y, yd := r.alloc(x.Shape...)
	addChannelForward(x.Shape[2]*x.Shape[3], r.data("AddChannel", x), r.data("AddChannel", v), yd)
	return y
}

// SumHW: (N,C,H,W) -> (N,C).
func (r *Reference[F]) SumHW(x *Tensor) *Tensor {
	rank("SumHW", x, 4)
	y, yd := r.alloc(x.Shape[0], x.Shape[1])
	sumHW(x.Shape[2]*x.Shape[3], r.data("SumHW", x), yd)
	return y
}

// Concat joins a (N,Ca,H,W) and b (N,Cb,H,W) along channels.
func (r *Reference[F]) Concat(a, b *Tensor) *Tensor {
	rank("Concat", a, 4)
	rank("Concat", b, 4)
	if a.Shape[0] != b.Shape[0] || a.Shape[2] != b.Shape[2] || a.Shape[3] != b.Shape[3] {
		shapePanic("Concat", "a %v, b %v", a.Shape, b.Shape)
	}
	n, hw := a.Shape[0], a.Shape[2]*a.Shape[3]
	y, yd := r.alloc(n, a.Shape[1]+b.Shape[1], a.Shape[2], a.Shape[3])
	concatForward(n, a.Shape[1]*hw, b.Shape[1]*hw, r.data("Concat", a), r.data("Concat", b), yd)
	return y
}

// ConcatBackward splits dy (N,Ca+Cb,H,W) into its first ca channels and the rest.
func (r *Reference[F]) ConcatBackward(dy *Tensor, ca int) (da, db *Tensor) {
	rank("ConcatBackward", dy, 4)
	n, c, h, w := dy.Shape[0], dy.Shape[1], dy.Shape[2], dy.Shape[3]
	if ca < 0 || ca > c {
		shapePanic("ConcatBackward", "dy %v cannot split at channel %d", dy.Shape, ca)
	}
	da, dad := r.alloc(n, ca, h, w)
	db, dbd := r.alloc(n, c-ca, h, w)
	concatBackward(n, ca*h*w, (c-ca)*h*w, r.data("ConcatBackward", dy), dad, dbd)
	return da, db
}

// Upsample2x: nearest-neighbour 2x.
func (r *Reference[F]) Upsample2x(x *Tensor) *Tensor {
	rank("Upsample2x", x, 4)
	n, c, h, w := x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3]
	y, yd := r.alloc(n, c, 2*h, 2*w)
	upsample2xForward(n*c, h, w, r.data("Upsample2x", x), yd)
	return y
}

// Upsample2xBackward sums each 2x2 block of dy.
func (r *Reference[F]) Upsample2xBackward(dy *Tensor) *Tensor {
	rank("Upsample2xBackward", dy, 4)
	n, c, h2, w2 := dy.Shape[0], dy.Shape[1], dy.Shape[2], dy.Shape[3]
	if h2%2 != 0 || w2%2 != 0 {
		shapePanic("Upsample2xBackward", "dy %v has odd spatial size", dy.Shape)
	}
	dx, dxd := r.alloc(n, c, h2/2, w2/2)
	upsample2xBackward(n*c, h2/2, w2/2, r.data("Upsample2xBackward", dy), dxd)
	return dx
}

// MSE returns mean((pred-target)^2) and its gradient with respect to pred.
func (r *Reference[F]) MSE(pred, target *Tensor) (loss float64, dpred *Tensor) {
	sameShapes("MSE", pred, target)
	dpred, dd := r.alloc(pred.Shape...)
	loss = mseForward(r.data("MSE", pred), r.data("MSE", target), dd)
	return loss, dpred
}

// Scale: y = s*x.
func (r *Reference[F]) Scale(x *Tensor, s float32) *Tensor {
	y, yd := r.alloc(x.Shape...)
	scaleForward(F(s), r.data("Scale", x), yd)
	return y
}

func attentionDims(op string, q, k, v *Tensor, heads int) (n, c, l int) {
	rank(op, q, 4)
	sameShapes(op, q, k)
	sameShapes(op, q, v)
	n, c, l = q.Shape[0], q.Shape[1], q.Shape[2]*q.Shape[3]
	if heads < 1 || c%heads != 0 {
		shapePanic(op, "%d channels do not split into %d heads", c, heads)
	}
	return
}

// Attention: saved is the (N, heads, H*W, H*W) attention probabilities.
func (r *Reference[F]) Attention(q, k, v *Tensor, heads int) (out, saved *Tensor) {
	const op = "Attention"
	n, c, l := attentionDims(op, q, k, v, heads)
	out, od := r.alloc(q.Shape...)
	saved, sd := r.alloc(n, heads, l, l)
	attentionForward(n, c, l, heads, r.data(op, q), r.data(op, k), r.data(op, v), od, sd, r.threads)
	return out, saved
}

// AttentionBackward returns dq, dk, dv.
func (r *Reference[F]) AttentionBackward(dout, q, k, v, saved *Tensor, heads int) (dq, dk, dv *Tensor) {
	const op = "AttentionBackward"
	n, c, l := attentionDims(op, q, k, v, heads)
	sameShapes(op, dout, q)
	if saved == nil || !sameShape(saved.Shape, []int{n, heads, l, l}) {
		shapePanic(op, "saved state does not match q %v with %d heads", q.Shape, heads)
	}
	dq, dqd := r.alloc(q.Shape...)
	dk, dkd := r.alloc(q.Shape...)
	dv, dvd := r.alloc(q.Shape...)
	attentionBackward(n, c, l, heads, r.data(op, dout), r.data(op, q), r.data(op, k), r.data(op, v),
		r.data(op, saved), dqd, dkd, dvd, r.threads)
	return dq, dk, dv
}

// Dropout: mask is DropoutMask(x.Len(), p, seed) in x's shape.
func (r *Reference[F]) Dropout(x *Tensor, p float32, seed uint64) (y, mask *Tensor) {
	xd := r.data("Dropout", x)
	mask = r.Upload(x.Shape, DropoutMask(len(xd), p, seed))
	y, yd := r.alloc(x.Shape...)
	mulForward(xd, r.data("Dropout", mask), yd)
	return y, mask
}

// DropoutBackward returns dy * mask.
func (r *Reference[F]) DropoutBackward(dy, mask *Tensor) *Tensor {
	sameShapes("DropoutBackward", dy, mask)
	dx, dxd := r.alloc(dy.Shape...)
	mulForward(r.data("DropoutBackward", dy), r.data("DropoutBackward", mask), dxd)
	return dx
}

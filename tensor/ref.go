package tensor

import (
	"fmt"
	"runtime"
)

// Reference is the plain-Go backend: activations are host float32 in NCHW order (Tensor.Data), and
// every kernel is the float32 instantiation of the generic kernels in kernels.go. It is the
// specification the fast backends are tested against and the backend of CGO_ENABLED=0 builds.
type Reference struct {
	threads int
}

// NewReference returns the plain-Go backend using up to threads goroutines per kernel
// (threads < 1 means runtime.GOMAXPROCS(0)).
func NewReference(threads int) Backend {
	if threads < 1 {
		threads = runtime.GOMAXPROCS(0)
	}
	return &Reference{threads: threads}
}

// Name is "ref".
func (r *Reference) Name() string { return "ref" }

// Precision is always FP32.
func (r *Reference) Precision() Precision { return FP32 }

// Threads is the number of goroutines a kernel may use.
func (r *Reference) Threads() int { return r.threads }

func newTensor(shape ...int) *Tensor {
	return &Tensor{Shape: append([]int(nil), shape...), Data: make([]float32, Numel(shape))}
}

// data returns x's host array, panicking with the op's name if x is not a live reference tensor.
func data(op string, x *Tensor) []float32 {
	if x == nil {
		panic(fmt.Sprintf("tensor: %s: nil tensor", op))
	}
	if x.Data == nil && x.Len() != 0 {
		panic(fmt.Sprintf("tensor: %s: tensor %v has no host data (released, or made by another backend)", op, x.Shape))
	}
	if len(x.Data) != x.Len() {
		panic(fmt.Sprintf("tensor: %s: tensor shape %v but %d elements", op, x.Shape, len(x.Data)))
	}
	return x.Data
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
func (r *Reference) Upload(shape []int, d []float32) *Tensor {
	if len(d) != Numel(shape) {
		shapePanic("Upload", "shape %v needs %d elements, got %d", shape, Numel(shape), len(d))
	}
	t := newTensor(shape...)
	copy(t.Data, d)
	return t
}

// Read returns a copy of x's data.
func (r *Reference) Read(x *Tensor) []float32 {
	return append([]float32(nil), data("Read", x)...)
}

// Release drops x's data so that a use after release fails loudly instead of reading stale values.
func (r *Reference) Release(x *Tensor) {
	if x != nil {
		x.Data = nil
	}
}

func (r *Reference) convShape(op string, x *Tensor, w *Param, c Conv) convShape {
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
	s := convShape{N: x.Shape[0], Cin: x.Shape[1], H: x.Shape[2], W: x.Shape[3], Cout: w.Shape[0], K: w.Shape[2],
		Stride: c.Stride, Pad: c.Pad}
	s.Ho, s.Wo = c.OutSize(s.H, s.K), c.OutSize(s.W, s.K)
	if s.Ho < 1 || s.Wo < 1 {
		shapePanic(op, "x %v with kernel %d and %+v gives an empty output", x.Shape, s.K, c)
	}
	paramShape(op, w, s.Cout, s.Cin, s.K, s.K)
	return s
}

func biasW(op string, b *Param, n int) []float32 {
	if b == nil {
		return nil
	}
	paramShape(op, b, n)
	return b.W
}

func biasG(op string, b *Param, n int) []float32 {
	if b == nil {
		return nil
	}
	paramShape(op, b, n)
	return b.G
}

// Conv2D: x (N,Cin,H,W), w (Cout,Cin,K,K), b (Cout) or nil -> (N,Cout,H',W').
func (r *Reference) Conv2D(x *Tensor, w, b *Param, c Conv) *Tensor {
	s := r.convShape("Conv2D", x, w, c)
	bw := biasW("Conv2D", b, s.Cout)
	y := newTensor(s.N, s.Cout, s.Ho, s.Wo)
	conv2dForward(s, data("Conv2D", x), w.W, bw, y.Data, r.threads)
	return y
}

// Conv2DBackward returns dx and accumulates dw (and db when b != nil).
func (r *Reference) Conv2DBackward(dy, x *Tensor, w, b *Param, c Conv) *Tensor {
	s := r.convShape("Conv2DBackward", x, w, c)
	if !sameShape(dy.Shape, []int{s.N, s.Cout, s.Ho, s.Wo}) {
		shapePanic("Conv2DBackward", "dy %v, want %v", dy.Shape, []int{s.N, s.Cout, s.Ho, s.Wo})
	}
	db := biasG("Conv2DBackward", b, s.Cout)
	dx := newTensor(x.Shape...)
	conv2dBackward(s, data("Conv2DBackward", dy), data("Conv2DBackward", x), w.W, dx.Data, w.G, db, r.threads)
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
func (r *Reference) Linear(x *Tensor, w, b *Param) *Tensor {
	n, in, out := linearDims("Linear", x, w)
	bw := biasW("Linear", b, out)
	y := newTensor(n, out)
	linearForward(n, in, out, data("Linear", x), w.W, bw, y.Data, r.threads)
	return y
}

// LinearBackward returns dx and accumulates dw (and db when b != nil).
func (r *Reference) LinearBackward(dy, x *Tensor, w, b *Param) *Tensor {
	n, in, out := linearDims("LinearBackward", x, w)
	if !sameShape(dy.Shape, []int{n, out}) {
		shapePanic("LinearBackward", "dy %v, want %v", dy.Shape, []int{n, out})
	}
	db := biasG("LinearBackward", b, out)
	dx := newTensor(n, in)
	linearBackward(n, in, out, data("LinearBackward", dy), data("LinearBackward", x), w.W, dx.Data, w.G, db, r.threads)
	return dx
}

// groupDims returns N, C and the pixels per channel of x (N,C,...) after checking groups.
func groupDims(op string, x *Tensor, gamma, beta *Param, groups int) (n, c, hw int) {
	if len(x.Shape) < 2 {
		shapePanic(op, "x %v: want (N,C,...)", x.Shape)
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
func (r *Reference) GroupNorm(x *Tensor, gamma, beta *Param, groups int, eps float32) (y, stats *Tensor) {
	n, c, hw := groupDims("GroupNorm", x, gamma, beta, groups)
	y = newTensor(x.Shape...)
	stats = newTensor(n, groups, 2)
	groupNormForward(n, c, hw, groups, float64(eps), data("GroupNorm", x), gamma.W, beta.W, y.Data, stats.Data, r.threads)
	return y, stats
}

// GroupNormBackward returns dx and accumulates dgamma, dbeta.
func (r *Reference) GroupNormBackward(dy, x, stats *Tensor, gamma, beta *Param, groups int) *Tensor {
	n, c, hw := groupDims("GroupNormBackward", x, gamma, beta, groups)
	if !sameShape(dy.Shape, x.Shape) || !sameShape(stats.Shape, []int{n, groups, 2}) {
		shapePanic("GroupNormBackward", "dy %v, x %v, stats %v", dy.Shape, x.Shape, stats.Shape)
	}
	dx := newTensor(x.Shape...)
	groupNormBackward(n, c, hw, groups, data("GroupNormBackward", dy), data("GroupNormBackward", x),
		data("GroupNormBackward", stats), gamma.W, dx.Data, gamma.G, beta.G, r.threads)
	return dx
}

// SiLU: y = x * sigmoid(x).
func (r *Reference) SiLU(x *Tensor) *Tensor {
	y := newTensor(x.Shape...)
	siluForward(data("SiLU", x), y.Data, r.threads)
	return y
}

// SiLUBackward returns dy * d/dx SiLU(x).
func (r *Reference) SiLUBackward(dy, x *Tensor) *Tensor {
	if !sameShape(dy.Shape, x.Shape) {
		shapePanic("SiLUBackward", "dy %v, x %v", dy.Shape, x.Shape)
	}
	dx := newTensor(x.Shape...)
	siluBackward(data("SiLUBackward", dy), data("SiLUBackward", x), dx.Data, r.threads)
	return dx
}

// Add: elementwise a + b of equal shapes.
func (r *Reference) Add(a, b *Tensor) *Tensor {
	if !sameShape(a.Shape, b.Shape) {
		shapePanic("Add", "a %v, b %v", a.Shape, b.Shape)
	}
	y := newTensor(a.Shape...)
	addForward(data("Add", a), data("Add", b), y.Data)
	return y
}

// AddChannel: x (N,C,H,W) + v (N,C) broadcast over H,W.
func (r *Reference) AddChannel(x, v *Tensor) *Tensor {
	rank("AddChannel", x, 4)
	if !sameShape(v.Shape, x.Shape[:2]) {
		shapePanic("AddChannel", "x %v, v %v: want v %v", x.Shape, v.Shape, x.Shape[:2])
	}
	y := newTensor(x.Shape...)
	addChannelForward(x.Shape[2]*x.Shape[3], data("AddChannel", x), data("AddChannel", v), y.Data)
	return y
}

// SumHW: (N,C,H,W) -> (N,C).
func (r *Reference) SumHW(x *Tensor) *Tensor {
	rank("SumHW", x, 4)
	y := newTensor(x.Shape[0], x.Shape[1])
	sumHW(x.Shape[2]*x.Shape[3], data("SumHW", x), y.Data)
	return y
}

// Concat joins a (N,Ca,H,W) and b (N,Cb,H,W) along channels.
func (r *Reference) Concat(a, b *Tensor) *Tensor {
	rank("Concat", a, 4)
	rank("Concat", b, 4)
	if a.Shape[0] != b.Shape[0] || a.Shape[2] != b.Shape[2] || a.Shape[3] != b.Shape[3] {
		shapePanic("Concat", "a %v, b %v", a.Shape, b.Shape)
	}
	n, hw := a.Shape[0], a.Shape[2]*a.Shape[3]
	y := newTensor(n, a.Shape[1]+b.Shape[1], a.Shape[2], a.Shape[3])
	concatForward(n, a.Shape[1]*hw, b.Shape[1]*hw, data("Concat", a), data("Concat", b), y.Data)
	return y
}

// ConcatBackward splits dy (N,Ca+Cb,H,W) into its first ca channels and the rest.
func (r *Reference) ConcatBackward(dy *Tensor, ca int) (da, db *Tensor) {
	rank("ConcatBackward", dy, 4)
	n, c, h, w := dy.Shape[0], dy.Shape[1], dy.Shape[2], dy.Shape[3]
	if ca < 0 || ca > c {
		shapePanic("ConcatBackward", "dy %v cannot split at channel %d", dy.Shape, ca)
	}
	da, db = newTensor(n, ca, h, w), newTensor(n, c-ca, h, w)
	concatBackward(n, ca*h*w, (c-ca)*h*w, data("ConcatBackward", dy), da.Data, db.Data)
	return da, db
}

// Upsample2x: nearest-neighbour 2x.
func (r *Reference) Upsample2x(x *Tensor) *Tensor {
	rank("Upsample2x", x, 4)
	n, c, h, w := x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3]
	y := newTensor(n, c, 2*h, 2*w)
	upsample2xForward(n*c, h, w, data("Upsample2x", x), y.Data)
	return y
}

// Upsample2xBackward sums each 2x2 block of dy.
func (r *Reference) Upsample2xBackward(dy *Tensor) *Tensor {
	rank("Upsample2xBackward", dy, 4)
	n, c, h2, w2 := dy.Shape[0], dy.Shape[1], dy.Shape[2], dy.Shape[3]
	if h2%2 != 0 || w2%2 != 0 {
		shapePanic("Upsample2xBackward", "dy %v has odd spatial size", dy.Shape)
	}
	dx := newTensor(n, c, h2/2, w2/2)
	upsample2xBackward(n*c, h2/2, w2/2, data("Upsample2xBackward", dy), dx.Data)
	return dx
}

// MSE returns mean((pred-target)^2) and its gradient with respect to pred.
func (r *Reference) MSE(pred, target *Tensor) (loss float64, dpred *Tensor) {
	if !sameShape(pred.Shape, target.Shape) {
		shapePanic("MSE", "pred %v, target %v", pred.Shape, target.Shape)
	}
	dpred = newTensor(pred.Shape...)
	loss = mseForward(data("MSE", pred), data("MSE", target), dpred.Data)
	return loss, dpred
}

// Scale: y = s*x.
func (r *Reference) Scale(x *Tensor, s float32) *Tensor {
	y := newTensor(x.Shape...)
	scaleForward(s, data("Scale", x), y.Data)
	return y
}

func attentionDims(op string, q, k, v *Tensor, heads int) (n, c, l int) {
	rank(op, q, 4)
	if !sameShape(q.Shape, k.Shape) || !sameShape(q.Shape, v.Shape) {
		shapePanic(op, "q %v, k %v, v %v must have equal shapes", q.Shape, k.Shape, v.Shape)
	}
	n, c, l = q.Shape[0], q.Shape[1], q.Shape[2]*q.Shape[3]
	if heads < 1 || c%heads != 0 {
		shapePanic(op, "%d channels do not split into %d heads", c, heads)
	}
	return
}

// Attention: saved is the (N, heads, H*W, H*W) attention probabilities.
func (r *Reference) Attention(q, k, v *Tensor, heads int) (out, saved *Tensor) {
	n, c, l := attentionDims("Attention", q, k, v, heads)
	out = newTensor(q.Shape...)
	saved = newTensor(n, heads, l, l)
	attentionForward(n, c, l, heads, data("Attention", q), data("Attention", k), data("Attention", v),
		out.Data, saved.Data, r.threads)
	return out, saved
}

// AttentionBackward returns dq, dk, dv.
func (r *Reference) AttentionBackward(dout, q, k, v, saved *Tensor, heads int) (dq, dk, dv *Tensor) {
	const op = "AttentionBackward"
	n, c, l := attentionDims(op, q, k, v, heads)
	if !sameShape(dout.Shape, q.Shape) || !sameShape(saved.Shape, []int{n, heads, l, l}) {
		shapePanic(op, "dout %v, q %v, saved %v", dout.Shape, q.Shape, saved.Shape)
	}
	dq, dk, dv = newTensor(q.Shape...), newTensor(q.Shape...), newTensor(q.Shape...)
	attentionBackward(n, c, l, heads, data(op, dout), data(op, q), data(op, k), data(op, v), data(op, saved),
		dq.Data, dk.Data, dv.Data, r.threads)
	return dq, dk, dv
}

// Dropout: mask is DropoutMask(x.Len(), p, seed) in x's shape.
func (r *Reference) Dropout(x *Tensor, p float32, seed uint64) (y, mask *Tensor) {
	xd := data("Dropout", x)
	mask = &Tensor{Shape: append([]int(nil), x.Shape...), Data: DropoutMask(len(xd), p, seed)}
	y = newTensor(x.Shape...)
	mulForward(xd, mask.Data, y.Data)
	return y, mask
}

// DropoutBackward returns dy * mask.
func (r *Reference) DropoutBackward(dy, mask *Tensor) *Tensor {
	if !sameShape(dy.Shape, mask.Shape) {
		shapePanic("DropoutBackward", "dy %v, mask %v", dy.Shape, mask.Shape)
	}
	dx := newTensor(dy.Shape...)
	mulForward(data("DropoutBackward", dy), data("DropoutBackward", mask), dx.Data)
	return dx
}

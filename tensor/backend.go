package tensor

// Backend runs the network's kernels. All methods are called from a single goroutine (a backend that
// needs an OS-thread-bound runtime, like oneDNN's OpenMP pool, arranges that itself). Forward methods
// return new tensors; backward methods return the gradient with respect to the activation input(s)
// and accumulate (+=) parameter gradients into Param.G. Shapes are checked; a mismatch is a
// programming error in the network and panics with a message naming the op and shapes.
//
// Saved state for backward is passed back explicitly (the input x, GroupNorm's stats) in the style
// of llm.c, so a reader can follow each gradient without an autograd engine.
type Backend interface {
	Name() string
	Precision() Precision

	// Upload copies host data in NCHW (or N,F) order into a new tensor of the given shape.
	Upload(shape []int, data []float32) *Tensor
	// Read copies a tensor out as float32 in NCHW (or N,F) order.
	Read(x *Tensor) []float32
	// Release tells the backend that x will not be used again, so its memory may be reused.
	Release(x *Tensor)

	// Conv2D: x (N,Cin,H,W), w (Cout,Cin,K,K), b (Cout) or nil -> (N,Cout,H',W').
	Conv2D(x *Tensor, w, b *Param, c Conv) *Tensor
	// Conv2DBackward returns dx and accumulates dw (and db when b != nil).
	Conv2DBackward(dy, x *Tensor, w, b *Param, c Conv) *Tensor

	// Linear: x (N,In), w (Out,In), b (Out) or nil -> (N,Out) = x w^T + b.
	Linear(x *Tensor, w, b *Param) *Tensor
	LinearBackward(dy, x *Tensor, w, b *Param) *Tensor

	// GroupNorm normalises each of `groups` channel groups of each sample over (C/groups, H, W), then
	// applies the per-channel affine gamma, beta. stats holds what backward needs (mean and 1/std
	// per (sample, group)); its layout is private to the backend.
	GroupNorm(x *Tensor, gamma, beta *Param, groups int, eps float32) (y, stats *Tensor)
	GroupNormBackward(dy, x, stats *Tensor, gamma, beta *Param, groups int) *Tensor

	// SiLU: y = x * sigmoid(x).
	SiLU(x *Tensor) *Tensor
	SiLUBackward(dy, x *Tensor) *Tensor

	// Add: elementwise a + b of equal shapes. Its backward is the identity for both inputs.
	Add(a, b *Tensor) *Tensor
	// AddChannel: x (N,C,H,W) + v (N,C) broadcast over H,W. Backward: dx = dy, dv = SumHW(dy).
	AddChannel(x, v *Tensor) *Tensor
	// SumHW: (N,C,H,W) -> (N,C), the sum over H and W.
	SumHW(x *Tensor) *Tensor

	// Concat joins a (N,Ca,H,W) and b (N,Cb,H,W) along channels; ConcatBackward splits dy.
	Concat(a, b *Tensor) *Tensor
	ConcatBackward(dy *Tensor, ca int) (da, db *Tensor)

	// Upsample2x: nearest-neighbour 2x; its backward sums each 2x2 block.
	Upsample2x(x *Tensor) *Tensor
	Upsample2xBackward(dy *Tensor) *Tensor

	// MSE returns mean((pred-target)^2) over all elements and its gradient with respect to pred.
	MSE(pred, target *Tensor) (loss float64, dpred *Tensor)

	// Scale: y = s*x elementwise; its backward is Scale(dy, s). It lets a network weight a branch
	// (a residual by 1/sqrt(2), say) without a parameter.
	Scale(x *Tensor, s float32) *Tensor

	// Attention is multi-head scaled dot-product self-attention over the H*W positions of an image,
	// the core of the DDPM attention block (the caller adds the group norm, the q/k/v and output
	// 1x1 projections and the residual). q, k, v are (N,C,H,W); channels h*C/heads .. (h+1)*C/heads
	// form head h. For each sample, head and query position i:
	//	out[:, i] = sum_j softmax_j(q[:, i]·k[:, j] / sqrt(C/heads)) v[:, j]
	// out is (N,C,H,W); saved holds the attention probabilities for backward, in a layout private
	// to the backend (the reference keeps them as (N, heads, H*W, H*W)).
	Attention(q, k, v *Tensor, heads int) (out, saved *Tensor)
	// AttentionBackward returns the gradients with respect to q, k and v.
	AttentionBackward(dout, q, k, v, saved *Tensor, heads int) (dq, dk, dv *Tensor)

	// Dropout zeroes each element of x with probability p and scales the rest by 1/(1-p) (inverted
	// dropout, as PyTorch in training mode). The choice depends only on (seed, element index) via
	// DropoutMask, so every backend drops the same elements. mask has x's shape and holds 0 or
	// 1/(1-p); 0 <= p < 1.
	Dropout(x *Tensor, p float32, seed uint64) (y, mask *Tensor)
	// DropoutBackward returns dy * mask.
	DropoutBackward(dy, mask *Tensor) *Tensor
}

// Package tensor holds the float32 tensors and the kernels a diffusion UNet needs, behind one small
// interface (Backend) so that the plain-Go reference kernels in this package are the specification
// and faster backends (tensor/dnnl, oneDNN through cgo) are tested against them.
//
// Two kinds of arrays cross the interface:
//   - Params: weights and their gradients, always plain float32 host memory in PyTorch's layout
//     (conv OIHW, linear (out, in)), so optimizers, checkpoints and PyTorch see the same bytes.
//   - Tensors: activations, owned by the backend that made them. A backend may keep them in its own
//     layout and precision (oneDNN's blocked nChw16c, bf16) between layers, which is where the speed
//     is; code outside a backend reads one only through Backend.Read.
//
// Shapes are NCHW for images and (N, F) for feature rows.
package tensor

import "fmt"

// Tensor is an activation made by a Backend. Shape is the logical NCHW (or N,F) shape whatever the
// backend's internal layout. Data is set only by backends whose activations are plain host float32
// in NCHW order (the reference backend); Impl is private to the backend that made the tensor.
type Tensor struct {
	Shape []int
	Data  []float32
	Impl  any
}

// Len is the number of elements of the logical shape.
func (t *Tensor) Len() int { return Numel(t.Shape) }

// Numel is the product of the dimensions.
func Numel(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// Param is a trainable array with its gradient. Backward kernels accumulate into G (+=), so the
// caller zeroes G before a step; Version is bumped by whoever changes W (the optimizer, a checkpoint
// load), so a backend may cache a converted copy (bf16, a blocked weight format) until it changes.
type Param struct {
	Name    string
	Shape   []int
	W, G    []float32
	Version uint64
}

// NewParam allocates a zeroed parameter and its gradient.
func NewParam(name string, shape ...int) *Param {
	n := Numel(shape)
	return &Param{Name: name, Shape: append([]int(nil), shape...), W: make([]float32, n), G: make([]float32, n)}
}

// Conv describes a 2-D convolution with square kernel, equal stride and padding on both axes, as the
// UNet uses them (3x3 stride 1 or 2 with padding 1, 1x1 with padding 0).
type Conv struct {
	Stride, Pad int
}

// OutSize is the spatial output size for input size in and kernel size k.
func (c Conv) OutSize(in, k int) int { return (in+2*c.Pad-k)/c.Stride + 1 }

// Precision selects the arithmetic a backend uses for its heavy kernels. Master weights and
// optimizer state stay float32 in every case.
type Precision int

const (
	FP32 Precision = iota
	BF16
	// FP64 is only the float64 reference backend (NewReference64), used to check gradients.
	FP64
)

func (p Precision) String() string {
	switch p {
	case FP32:
		return "fp32"
	case BF16:
		return "bf16"
	case FP64:
		return "fp64"
	}
	return fmt.Sprintf("Precision(%d)", int(p))
}

// ParsePrecision accepts "fp32" and "bf16".
func ParsePrecision(s string) (Precision, error) {
	switch s {
	case "fp32":
		return FP32, nil
	case "bf16":
		return BF16, nil
	}
	return 0, fmt.Errorf("unknown precision %q (want fp32 or bf16)", s)
}

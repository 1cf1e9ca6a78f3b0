package tensor_test

import (
	"fmt"

	"github.com/ddpm-go/ddpm/tensor"
)

// A layer's forward and backward pass with the reference backend: the forward returns a new
// tensor, the backward returns the input gradient and adds the weight gradients into Param.G.
func ExampleNewReference() {
	be := tensor.NewReference(1)
	x := be.Upload([]int{1, 1, 3, 3}, []float32{1, 2, 3, 4, 5, 6, 7, 8, 9})
	w := tensor.NewParam("conv.weight", 1, 1, 3, 3)
	for i := range w.W {
		w.W[i] = 1 // a 3x3 box filter
	}
	b := tensor.NewParam("conv.bias", 1)
	c := tensor.Conv{Stride: 2, Pad: 1}

	y := be.Conv2D(x, w, b, c) // 3x3 -> 2x2: the sums of the four corner neighbourhoods
	fmt.Println("y ", y.Shape, be.Read(y))

	loss, dy := be.MSE(y, be.Upload(y.Shape, make([]float32, 4)))
	dx := be.Conv2DBackward(dy, x, w, b, c)
	fmt.Println("loss", loss)
	fmt.Println("dx", be.Read(dx))
	fmt.Println("db", b.G)
	// Output:
	// y  [1 1 2 2] [12 16 24 28]
	// loss 440
	// dx [6 14 8 18 40 22 12 26 14]
	// db [40]
}

package imageio_test

import (
	"bytes"
	"fmt"

	"github.com/ddpm-go/ddpm/imageio"
)

// A starting x_T for `ddpm sample --init` is a float32 or float64 .npy of shape (N,C,H,W) or (N,D),
// as numpy.save writes it.
func ExampleReadNPY() {
	var buf bytes.Buffer
	if err := imageio.WriteNPY(&buf, []int{2, 1, 1, 2}, []float32{0.5, -1, 2, 0}); err != nil {
		panic(err)
	}
	a, err := imageio.ReadNPY(&buf)
	if err != nil {
		panic(err)
	}
	fmt.Println(a.Shape, a.Descr, a.Values)
	// Output: [2 1 1 2] <f4 [0.5 -1 2 0]
}

// Samples come out of the network channel-first; FID tools want channel-last.
func ExampleNHWC() {
	// One 1x2 image with 3 channels: R = (1, 2), G = (3, 4), B = (5, 6).
	fmt.Println(imageio.NHWC([]uint8{1, 2, 3, 4, 5, 6}, 1, 3, 1, 2))
	// Output: [1 3 5 2 4 6]
}

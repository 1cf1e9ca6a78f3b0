package serve

import (
	"bytes"

	"github.com/ddpm-go/ddpm/imageio"
)

// gridPNG encodes n images (CHW each, values in [-1, 1]; c = 1 or 3) as one PNG grid of cols
// columns (plan.cols: near-square, or a row per class), the picture every response and stream frame
// shows. The bytes depend on the values and cols only.
func gridPNG(x []float64, n, c, h, w, cols int) ([]byte, error) {
	return imageio.GridPNG(x, n, c, h, w, cols)
}

// imagesNPZ encodes n images as an .npz holding uint8 (N,H,W,C) under "arr_0", the layout FID
// tools read.
func imagesNPZ(x []float64, n, c, h, w int) ([]byte, error) {
	u := imageio.ToUint8(make([]uint8, 0, len(x)), x)
	var buf bytes.Buffer
	err := imageio.WriteNPZ(&buf, imageio.Named{Name: "arr_0", Shape: []int{n, h, w, c}, Data: imageio.NHWC(u, n, c, h, w)})
	return buf.Bytes(), err
}

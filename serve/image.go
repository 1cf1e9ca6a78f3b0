package serve

import (
	"bytes"
	"image"
	"image/png"
	"math"

	"github.com/ddpm-go/ddpm/imageio"
)

// toUint8 maps [-1, 1] to 0..255 (rounding, clamped outside), as the training data was scaled.
func toUint8(dst []uint8, x []float64) []uint8 {
	for _, v := range x {
		f := math.Round((v + 1) * 127.5)
		dst = append(dst, uint8(math.Max(0, math.Min(255, f))))
	}
	return dst
}

// gridCols is the number of columns of a near-square grid of n images.
func gridCols(n int) int {
	c := int(math.Ceil(math.Sqrt(float64(n))))
	return max(1, c)
}

// gridPNG encodes n images (CHW each, values in [-1, 1]; c = 1 or 3) as one PNG, tiled in a
// near-square grid with a 1-pixel border. The bytes depend on the values only.
func gridPNG(x []float64, n, c, h, w int) ([]byte, error) {
	const pad = 1
	cols := gridCols(n)
	rows := (n + cols - 1) / cols
	gw, gh := cols*(w+pad)+pad, rows*(h+pad)+pad
	var img image.Image
	var pix []uint8
	stride := gw
	if c == 1 {
		g := image.NewGray(image.Rect(0, 0, gw, gh))
		img, pix = g, g.Pix
	} else {
		g := image.NewNRGBA(image.Rect(0, 0, gw, gh))
		img, pix, stride = g, g.Pix, 4*gw
	}
	for i := range pix {
		pix[i] = 255
	}
	per := c * h * w
	px := make([]uint8, 0, per)
	for k := 0; k < n; k++ {
		px = toUint8(px[:0], x[k*per:(k+1)*per])
		x0, y0 := pad+(k%cols)*(w+pad), pad+(k/cols)*(h+pad)
		for y := 0; y < h; y++ {
			for xx := 0; xx < w; xx++ {
				if c == 1 {
					pix[(y0+y)*stride+x0+xx] = px[y*w+xx]
					continue
				}
				o := (y0+y)*stride + 4*(x0+xx)
				for ch := 0; ch < 3; ch++ {
					pix[o+ch] = px[ch*h*w+y*w+xx]
				}
			}
		}
	}
	var buf bytes.Buffer
	enc := png.Encoder{CompressionLevel: png.BestSpeed}
	if err := enc.Encode(&buf, img); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// imagesNPZ encodes n images as an .npz holding uint8 (N,H,W,C) under "arr_0", the layout FID
// tools read.
func imagesNPZ(x []float64, n, c, h, w int) ([]byte, error) {
	u := toUint8(make([]uint8, 0, len(x)), x)
	var buf bytes.Buffer
	err := imageio.WriteNPZ(&buf, imageio.Named{Name: "arr_0", Shape: []int{n, h, w, c}, Data: imageio.NHWC(u, n, c, h, w)})
	return buf.Bytes(), err
}

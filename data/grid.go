package data

import "fmt"

// WriteGrid writes n images (NCHW float32 in [-1, 1], C = 1 or 3) as one PNG, cols per row with a
// 2-pixel white border, so training and sampling progress can be looked at and compared over time.
func WriteGrid(path string, images []float32, n, c, h, w, cols int) error {
	if n <= 0 || cols <= 0 || len(images) != n*c*h*w {
		return fmt.Errorf("grid %s: %d values for %d images of %dx%dx%d in %d columns", path, len(images), n, c, h, w, cols)
	}
	const pad = 2
	cols = min(cols, n)
	rows := (n + cols - 1) / cols
	gw, gh := cols*(w+pad)+pad, rows*(h+pad)+pad
	out := make([]uint8, c*gh*gw)
	for i := range out {
		out[i] = 255
	}
	per := c * h * w
	px := make([]uint8, 0, per)
	for k := 0; k < n; k++ {
		px = ToUint8(px[:0], images[k*per:(k+1)*per])
		x0, y0 := pad+(k%cols)*(w+pad), pad+(k/cols)*(h+pad)
		for ch := 0; ch < c; ch++ {
			for y := 0; y < h; y++ {
				copy(out[ch*gh*gw+(y0+y)*gw+x0:], px[ch*h*w+y*w:ch*h*w+(y+1)*w])
			}
		}
	}
	return EncodePNG(path, c, gh, gw, out)
}

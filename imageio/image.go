package imageio

import (
	"bytes"
	"fmt"
	"image"
	"image/png"
	"io"
	"math"
	"os"
)

// ToUint8 maps values in [-1, 1] to bytes 0..255, appending to dst: round((x+1)*127.5), halves away
// from zero, clamped outside [-1, 1]. It inverts the scaling of training images (byte b is b/127.5-1)
// exactly, and it is the only way a value becomes a pixel, so a grid, the PNGs, an .npz and a GIF of
// the same samples show the same bytes. float32 values widen to float64 exactly, so both types round
// alike.
func ToUint8[F float32 | float64](dst []uint8, x []F) []uint8 {
	for _, v := range x {
		f := math.Round((float64(v) + 1) * 127.5)
		dst = append(dst, uint8(math.Max(0, math.Min(255, f))))
	}
	return dst
}

// GridPad is the white border between and around the images of every grid, in image pixels.
const GridPad = 2

// GridCols is the number of columns of a near-square grid of n images, ceil(sqrt(n)).
func GridCols(n int) int { return max(1, int(math.Ceil(math.Sqrt(float64(n))))) }

// Grid tiles n images (CHW bytes each, c = 1 or 3) cols per row (at most n) on white, GridPad pixels
// apart and from the edges, each pixel drawn as a scale x scale square. It returns an *image.Gray for
// one channel and an opaque *image.NRGBA for three.
func Grid(px []uint8, n, c, h, w, cols, scale int) (image.Image, error) {
	return tile(px, n, c, h, w, cols, scale, GridPad)
}

// Image is one CHW image of bytes (c = 1 or 3) as an image.Image.
func Image(c, h, w int, chw []uint8) (image.Image, error) { return tile(chw, 1, c, h, w, 1, 1, 0) }

// tile lays images out as Grid does, pad pixels apart.
func tile(px []uint8, n, c, h, w, cols, scale, pad int) (image.Image, error) {
	if n < 1 || cols < 1 || scale < 1 || h < 1 || w < 1 || (c != 1 && c != 3) || len(px) != n*c*h*w {
		return nil, fmt.Errorf("grid: %d bytes for %d images of %dx%dx%d (1 or 3 channels) in %d columns at scale %d", len(px), n, c, h, w, cols, scale)
	}
	cols = min(cols, n)
	rows := (n + cols - 1) / cols
	bounds := image.Rect(0, 0, (cols*(w+pad)+pad)*scale, (rows*(h+pad)+pad)*scale)
	var img image.Image
	var pix []uint8
	var stride, step int // bytes per row and per pixel
	if c == 1 {
		g := image.NewGray(bounds)
		img, pix, stride, step = g, g.Pix, g.Stride, 1
	} else {
		g := image.NewNRGBA(bounds)
		img, pix, stride, step = g, g.Pix, g.Stride, 4
	}
	for i := range pix {
		pix[i] = 255
	}
	hw := h * w
	for k := range n {
		src := px[k*c*hw : (k+1)*c*hw]
		x0, y0 := (pad+(k%cols)*(w+pad))*scale, (pad+(k/cols)*(h+pad))*scale
		for y := range h * scale {
			for x := range w * scale {
				o, p := (y0+y)*stride+(x0+x)*step, (y/scale)*w+x/scale
				for ch := range c {
					pix[o+ch] = src[ch*hw+p]
				}
			}
		}
	}
	return img, nil
}

// EncodePNG writes img as a PNG at the fastest compression: grids are encoded per request and per
// step by the server, where time matters more than a few percent of bytes.
func EncodePNG(w io.Writer, img image.Image) error {
	enc := png.Encoder{CompressionLevel: png.BestSpeed}
	return enc.Encode(w, img)
}

// GridPNG converts n images in [-1, 1] (CHW each) with ToUint8 and encodes their Grid, cols per row,
// as PNG bytes.
func GridPNG[F float32 | float64](x []F, n, c, h, w, cols int) ([]byte, error) {
	img, err := Grid(ToUint8(make([]uint8, 0, len(x)), x), n, c, h, w, cols, 1)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	err = EncodePNG(&buf, img)
	return buf.Bytes(), err
}

// WriteGrid writes n images in [-1, 1] (NCHW) as one PNG grid, cols per row, so training and
// sampling progress can be looked at and compared over time.
func WriteGrid[F float32 | float64](path string, x []F, n, c, h, w, cols int) error {
	return WriteGridBytes(path, ToUint8(make([]uint8, 0, len(x)), x), n, c, h, w, cols)
}

// WriteGridBytes is WriteGrid of images already converted to bytes, for a job that keeps one byte
// per value instead of eight.
func WriteGridBytes(path string, px []uint8, n, c, h, w, cols int) error {
	img, err := Grid(px, n, c, h, w, cols, 1)
	return writePNG(path, img, err)
}

// WritePNG writes one image of CHW bytes (c = 1 or 3) as a PNG.
func WritePNG(path string, c, h, w int, chw []uint8) error {
	img, err := Image(c, h, w, chw)
	return writePNG(path, img, err)
}

// writePNG writes in place rather than through a synced temporary file: a sampling job writes one
// PNG per image, tens of thousands of them. err is that of making img.
func writePNG(path string, img image.Image, err error) error {
	var buf bytes.Buffer
	if err == nil {
		err = EncodePNG(&buf, img)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}

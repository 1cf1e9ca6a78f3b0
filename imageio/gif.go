package imageio

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/color/palette"
	"image/draw"
	"image/gif"
	"io"
)

// Reel collects the frames of an animated GIF in which every frame is a grid of equally sized images
// (for the reverse process: x_t beside the predicted x0, for a few samples, every few steps).
type Reel struct {
	C, H, W int // one image: channels (1 or 3), height, width
	Cols    int // images per grid row
	Scale   int // each pixel is drawn as Scale x Scale, so 28x28 digits are visible in a browser
	frames  []*image.Paletted
	delays  []int
}

var grayPalette = func() color.Palette {
	p := make(color.Palette, 256)
	for i := range p {
		p[i] = color.Gray{Y: uint8(i)}
	}
	return p
}()

// NewReel returns an empty reel of c x h x w images, cols per row, each pixel scaled by scale.
func NewReel(c, h, w, cols, scale int) (*Reel, error) {
	if (c != 1 && c != 3) || h < 1 || w < 1 || cols < 1 || scale < 1 {
		return nil, fmt.Errorf("gif: bad layout: %d channels (want 1 or 3), %dx%d pixels, %d columns, scale %d", c, h, w, cols, scale)
	}
	return &Reel{C: c, H: h, W: w, Cols: cols, Scale: scale}, nil
}

// Add appends a frame showing n images (CHW each, values in [-1, 1], clamped outside it) tiled
// Cols per row, shown for delay hundredths of a second. Grayscale images keep all 256 levels; colour
// images are dithered onto the Plan 9 palette, since a GIF frame holds at most 256 colours.
func (r *Reel) Add(images []float64, n, delay int) error {
	per := r.C * r.H * r.W
	if n < 1 || len(images) != n*per {
		return fmt.Errorf("gif: frame of %d values for %d images of %d values", len(images), n, per)
	}
	grid, err := Grid(ToUint8(make([]uint8, 0, len(images)), images), n, r.C, r.H, r.W, r.Cols, r.Scale)
	if err != nil {
		return fmt.Errorf("gif: %w", err)
	}
	bounds := grid.Bounds()
	var frame *image.Paletted
	if g, ok := grid.(*image.Gray); ok {
		frame = image.NewPaletted(bounds, grayPalette) // palette index i is gray level i
		copy(frame.Pix, g.Pix)
	} else {
		frame = image.NewPaletted(bounds, palette.Plan9)
		draw.FloydSteinberg.Draw(frame, bounds, grid, image.Point{})
	}
	if len(r.frames) > 0 && r.frames[0].Bounds() != bounds {
		return fmt.Errorf("gif: frame of %v differs from the first frame's %v", bounds, r.frames[0].Bounds())
	}
	r.frames = append(r.frames, frame)
	r.delays = append(r.delays, delay)
	return nil
}

// Frames is the number of frames added so far.
func (r *Reel) Frames() int { return len(r.frames) }

// Encode writes the frames as a GIF that loops forever.
func (r *Reel) Encode(w io.Writer) error {
	if len(r.frames) == 0 {
		return fmt.Errorf("gif: no frames")
	}
	return gif.EncodeAll(w, &gif.GIF{Image: r.frames, Delay: r.delays})
}

// Save writes the GIF to path atomically.
func (r *Reel) Save(path string) error {
	var buf bytes.Buffer
	if err := r.Encode(&buf); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return writeFileAtomic(path, buf.Bytes())
}

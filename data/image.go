package data

import (
	"bytes"
	"fmt"
	"image"
	_ "image/jpeg" // LoadFolder reads JPEG
	_ "image/png"  // and PNG
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"github.com/ddpm-go/ddpm/internal/safeio"
	"github.com/ddpm-go/ddpm/internal/sysmem"
)

// maxImagePixels bounds what a single input image may decode to, checked from its header before
// decoding, so a tiny file claiming a huge size cannot exhaust memory.
const maxImagePixels = 64 << 20

// onWhite returns the pixels of img inside r as interleaved RGB float64 in [0, 255], alpha-composited
// over white (out = a*c + (1-a)*255 for straight colour c). The emoji are drawn on transparency, and
// a model of RGB images needs one background; white is how they are usually seen.
func onWhite(img image.Image, r image.Rectangle) (w, h int, rgb []float64) {
	w, h = r.Dx(), r.Dy()
	rgb = make([]float64, 3*w*h)
	if m, ok := img.(*image.NRGBA); ok { // what the emoji PNGs decode to: skip the interface calls
		for y := 0; y < h; y++ {
			row := m.Pix[m.PixOffset(r.Min.X, r.Min.Y+y):]
			for x := 0; x < w; x++ {
				p := row[4*x : 4*x+4]
				a := float64(p[3])
				for c := 0; c < 3; c++ {
					rgb[3*(y*w+x)+c] = (float64(p[c])*a + 255*(255-a)) / 255
				}
			}
		}
		return w, h, rgb
	}
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			// RGBA returns alpha-premultiplied 16-bit values, so over white is c + (max - a).
			cr, cg, cb, ca := img.At(r.Min.X+x, r.Min.Y+y).RGBA()
			i := 3 * (y*w + x)
			rgb[i+0] = float64(cr+0xffff-ca) / 257
			rgb[i+1] = float64(cg+0xffff-ca) / 257
			rgb[i+2] = float64(cb+0xffff-ca) / 257
		}
	}
	return w, h, rgb
}

// areaWeights returns, for each of n output samples along an axis of length src, the source
// indices it overlaps and the fraction of the output cell each covers. This is the box ("area")
// filter: each output pixel is the mean of the source over exactly the region it covers, which
// downscales without aliasing and, at an integer factor, is the plain mean of k x k blocks.
func areaWeights(src, n int) (first []int, w [][]float64) {
	first = make([]int, n)
	w = make([][]float64, n)
	scale := float64(src) / float64(n)
	for o := 0; o < n; o++ {
		lo, hi := float64(o)*scale, float64(o+1)*scale
		i0 := int(math.Floor(lo))
		i1 := int(math.Ceil(hi))
		if i1 > src {
			i1 = src
		}
		first[o] = i0
		for i := i0; i < i1; i++ {
			ov := math.Min(hi, float64(i+1)) - math.Max(lo, float64(i))
			w[o] = append(w[o], ov/scale)
		}
	}
	return first, w
}

// resizeArea resizes interleaved RGB float64 (w x h) to ow x oh with the area filter, separably.
func resizeArea(w, h int, rgb []float64, ow, oh int) []float64 {
	xf, xw := areaWeights(w, ow)
	yf, yw := areaWeights(h, oh)
	tmp := make([]float64, 3*ow*h)
	for y := 0; y < h; y++ {
		for o := 0; o < ow; o++ {
			var s [3]float64
			for k, wt := range xw[o] {
				p := 3 * (y*w + xf[o] + k)
				s[0] += wt * rgb[p]
				s[1] += wt * rgb[p+1]
				s[2] += wt * rgb[p+2]
			}
			copy(tmp[3*(y*ow+o):], s[:])
		}
	}
	out := make([]float64, 3*ow*oh)
	for o := 0; o < oh; o++ {
		for x := 0; x < ow; x++ {
			var s [3]float64
			for k, wt := range yw[o] {
				p := 3 * ((yf[o]+k)*ow + x)
				s[0] += wt * tmp[p]
				s[1] += wt * tmp[p+1]
				s[2] += wt * tmp[p+2]
			}
			copy(out[3*(o*ow+x):], s[:])
		}
	}
	return out
}

// centerSquare is the centred square of side min(width, height) inside b.
func centerSquare(b image.Rectangle) image.Rectangle {
	s := min(b.Dx(), b.Dy())
	x0, y0 := b.Min.X+(b.Dx()-s)/2, b.Min.Y+(b.Dy()-s)/2
	return image.Rect(x0, y0, x0+s, y0+s)
}

// toPlanes quantizes interleaved RGB in [0, 255] to CHW bytes: 3 channels as they are, or 1 channel
// of luma (ITU-R BT.601 weights, as the standard library's color.GrayModel uses).
func toPlanes(n int, rgb []float64, channels int, dst []uint8) {
	q := func(v float64) uint8 { return uint8(math.Round(math.Max(0, math.Min(255, v)))) }
	for i := 0; i < n; i++ {
		r, g, b := rgb[3*i], rgb[3*i+1], rgb[3*i+2]
		if channels == 1 {
			dst[i] = q(0.299*r + 0.587*g + 0.114*b)
			continue
		}
		dst[i], dst[n+i], dst[2*n+i] = q(r), q(g), q(b)
	}
}

// decodeImage decodes a PNG or JPEG after checking from its header that it is a sane size.
func decodeImage(name string, b []byte) (image.Image, error) {
	cfg, _, err := image.DecodeConfig(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("decode %s: %w", name, err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 || int64(cfg.Width)*int64(cfg.Height) > maxImagePixels {
		return nil, fmt.Errorf("decode %s: %dx%d image is empty or larger than %d pixels", name, cfg.Width, cfg.Height, maxImagePixels)
	}
	img, _, err := image.Decode(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("decode %s: %w", name, err)
	}
	return img, nil
}

// squareImage decodes one file and turns it into size x size CHW bytes: centre-crop to square,
// composite over white, area-resize.
func squareImage(name string, b []byte, size, channels int, dst []uint8) error {
	img, err := decodeImage(name, b)
	if err != nil {
		return err
	}
	// Crop before converting, so the float working copy is only as big as the square.
	s, _, sq := onWhite(img, centerSquare(img.Bounds()))
	if s != size {
		sq = resizeArea(s, s, sq, size, size)
	}
	toPlanes(size*size, sq, channels, dst)
	return nil
}

// decodeAll runs squareImage over all files on every CPU; image i lands at pix[i*per:], so the
// result does not depend on scheduling. The first error (by index) wins.
func decodeAll(names []string, read func(i int) ([]byte, error), size, channels int) ([]uint8, error) {
	per := channels * size * size
	pix := make([]uint8, len(names)*per)
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	next := make(chan int)
	for w := 0; w < runtime.GOMAXPROCS(0); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				b, err := read(i)
				if err == nil {
					err = squareImage(names[i], b, size, channels, pix[i*per:(i+1)*per])
				}
				errs[i] = err
			}
		}()
	}
	for i := range names {
		next <- i
	}
	close(next)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return pix, nil
}

// LoadFolder loads every .png, .jpg and .jpeg file directly in dir (sorted by name; other files are
// ignored) as a size x size image with channels 1 (grey) or 3 (RGB): transparency composited over
// white, centre-cropped to a square, then area-resized. A folder with no images of its own but
// subfolders holding them is a labelled set, as torchvision's ImageFolder reads it: DIR/<class>/*.png,
// classes sorted by name and numbered from 0 (at most 256). Errors name the file.
func LoadFolder(dir string, size, channels int) (*Set, error) {
	if size <= 0 || size > 4096 {
		return nil, fmt.Errorf("image size %d: want 1 to 4096", size)
	}
	if channels != 1 && channels != 3 {
		return nil, fmt.Errorf("channels %d: want 1 or 3", channels)
	}
	names, subdirs, err := imageFiles(dir)
	if err != nil {
		return nil, err
	}
	var labels []uint8
	var classes []string
	if len(names) == 0 {
		for _, sub := range subdirs {
			files, _, err := imageFiles(filepath.Join(dir, sub))
			if err != nil {
				return nil, err
			}
			if len(files) == 0 {
				continue
			}
			if len(classes) == 256 {
				return nil, fmt.Errorf("%s: more than 256 class folders", dir)
			}
			for range files {
				labels = append(labels, uint8(len(classes)))
			}
			names = append(names, files...)
			classes = append(classes, sub)
		}
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("%s: no .png, .jpg or .jpeg images, in it or in class folders", dir)
	}
	// The set is held twice while it is built (the bytes, then their float32 values): a folder
	// of thousands of images at --size 4096 would need hundreds of gigabytes, refused here rather
	// than by the Go runtime halfway through decoding.
	per := float64(channels) * float64(size) * float64(size)
	if err := sysmem.Check(fmt.Sprintf("%s: %d images of %dx%dx%d", dir, len(names), channels, size, size), 5*per*float64(len(names))); err != nil {
		return nil, err
	}
	pix, err := decodeAll(names, func(i int) ([]byte, error) { return safeio.ReadFile(names[i], 64<<20) }, size, channels)
	if err != nil {
		return nil, err
	}
	set, err := NewSet(filepath.Base(filepath.Clean(dir)), len(names), channels, size, size, pix, labels)
	if err != nil {
		return nil, err
	}
	set.Classes = classes
	return set, nil
}

// imageFiles lists the images directly in dir (paths, sorted) and its subfolders (names, sorted);
// hidden entries are skipped.
func imageFiles(dir string) (images, subdirs []string, err error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("read image folder: %w", err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if e.IsDir() {
			subdirs = append(subdirs, e.Name())
			continue
		}
		ext := strings.ToLower(filepath.Ext(e.Name()))
		// Symlinks are followed (a folder of links into a photo library is a fair dataset); what a
		// link points at is checked when it is read, and an error names the link.
		if (e.Type().IsRegular() || e.Type()&os.ModeSymlink != 0) && (ext == ".png" || ext == ".jpg" || ext == ".jpeg") {
			images = append(images, filepath.Join(dir, e.Name()))
		}
	}
	return images, subdirs, nil
}

// ReadImage reads one PNG or JPEG file as a size x size image of channels 1 or 3 (CHW bytes), as
// LoadFolder reads each of its files: transparency over white, centre-cropped, area-resized. It is
// how a user's picture becomes a model's input (ddpm inpaint).
func ReadImage(path string, size, channels int) ([]uint8, error) {
	if size <= 0 || size > 4096 || (channels != 1 && channels != 3) {
		return nil, fmt.Errorf("%s: image size %d, channels %d: want 1..4096 and 1 or 3", path, size, channels)
	}
	b, err := safeio.ReadFile(path, 64<<20)
	if err != nil {
		return nil, err
	}
	dst := make([]uint8, channels*size*size)
	if err := squareImage(path, b, size, channels, dst); err != nil {
		return nil, err
	}
	return dst, nil
}

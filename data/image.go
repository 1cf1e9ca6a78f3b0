package data

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	_ "image/gif"  // LoadFolder reads GIF (the first frame)
	_ "image/jpeg" // and JPEG
	_ "image/png"  // and PNG
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
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
			// A grey pixel is its own luma; taken as is, so a grey image read with 1 channel is
			// byte for byte its 3-channel read's first plane (the weighted sum may round apart).
			if r != g || g != b {
				r = 0.299*r + 0.587*g + 0.114*b
			}
			dst[i] = q(r)
			continue
		}
		dst[i], dst[n+i], dst[2*n+i] = q(r), q(g), q(b)
	}
}

// decodeImage decodes a PNG, JPEG or GIF (its first frame) after checking from its header that it
// is a sane size.
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
// composite over white, area-resize (down or up). It reports whether the image is grey, every
// pixel r == g == b after compositing, which is what decides a folder's channels when they are
// not given.
func squareImage(name string, b []byte, size, channels int, dst []uint8) (grey bool, err error) {
	img, err := decodeImage(name, b)
	if err != nil {
		return false, err
	}
	// Crop before converting, so the float working copy is only as big as the square.
	s, _, sq := onWhite(img, centerSquare(img.Bounds()))
	grey = true
	for i := 0; i < len(sq) && grey; i += 3 {
		grey = sq[i] == sq[i+1] && sq[i+1] == sq[i+2]
	}
	if s != size {
		sq = resizeArea(s, s, sq, size, size)
	}
	toPlanes(size*size, sq, channels, dst)
	return grey, nil
}

// decodeAll runs squareImage over all files on every CPU; image i lands at pix[i*per:], so the
// result does not depend on scheduling. Each image that cannot be read or decoded has its error in
// errs (and zeros in pix); grey[i] says whether image i is grey.
func decodeAll(names []string, read func(i int) ([]byte, error), size, channels int) (pix []uint8, grey []bool, errs []error) {
	per := channels * size * size
	pix = make([]uint8, len(names)*per)
	grey = make([]bool, len(names))
	errs = make([]error, len(names))
	var wg sync.WaitGroup
	next := make(chan int)
	for w := 0; w < runtime.GOMAXPROCS(0); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				b, err := read(i)
				if err == nil {
					grey[i], err = squareImage(names[i], b, size, channels, pix[i*per:(i+1)*per])
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
	return pix, grey, errs
}

// firstError is the first non-nil error of errs (by index), so which one is reported does not
// depend on scheduling.
func firstError(errs []error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// The size a folder is read at when none is given (size 0): the sizes of the built-in model
// configs, so a folder trains with one of them unchanged. Colour images go to 32x32, the input of
// the 3x32x32 colour configs (the emoji's size); grey ones to 28x28, the input of unet-s (1x28x28,
// the MNIST shape).
const (
	FolderColourSize = 32
	FolderGreySize   = 28
)

// imageExts are the file extensions LoadFolder reads (compared case-insensitively).
var imageExts = []string{".png", ".jpg", ".jpeg", ".gif"}

// SkippedFile is a file in an image folder that LoadFolder did not load, and why.
type SkippedFile struct {
	Path   string // relative to the folder, slash-separated
	Reason string
}

// SkippedNote is one line for a person about the files LoadFolder skipped, naming the first few,
// as "skipped 3 files that are not readable images (a.txt, b.png, c.gif)"; "" if none were.
func (s *Set) SkippedNote() string { return skippedText(s.SkippedFiles) }

func skippedText(sk []SkippedFile) string {
	if len(sk) == 0 {
		return ""
	}
	const show = 3
	var names []string
	for i, f := range sk {
		if i == show {
			names = append(names, "...")
			break
		}
		names = append(names, f.Path)
	}
	if len(sk) == 1 {
		return fmt.Sprintf("skipped 1 file that is not a readable image (%s)", names[0])
	}
	return fmt.Sprintf("skipped %d files that are not readable images (%s)", len(sk), strings.Join(names, ", "))
}

// folderFile is one image file LoadFolder will try, with its class index (0 without classes).
type folderFile struct {
	path, rel string
	class     int
}

// LoadFolder loads every PNG, JPEG and GIF (first frame) file directly in dir, sorted by name, as
// a size x size image with channels 1 (grey) or 3 (RGB): centre-cropped to a square, transparency
// composited over white, then area-resized (down or up). A folder with no images of its own but
// subfolders holding them is a labelled set, as torchvision's ImageFolder reads it:
// DIR/<class>/*.png, classes sorted by name and numbered from 0 (at most 256).
//
// size 0 means FolderColourSize for colour and FolderGreySize for grey; channels 0 means 1 if every
// pixel of every image is grey (r == g == b after compositing), else 3. A forced 1 reads colour
// images as luma, a forced 3 reads grey ones as three equal planes.
//
// The folders people have hold other things too, so a file that is not a readable image (another
// extension, or an image extension that does not decode) is skipped rather than fatal and listed
// in the Set's Skipped and SkippedFiles; hidden files and folders are ignored. A folder with no readable image is
// an error, as is a class folder layout where none is left.
func LoadFolder(dir string, size, channels int) (*Set, error) {
	if size < 0 || size > 4096 {
		return nil, fmt.Errorf("image size %d: want 1 to 4096 (or 0 for %d colour, %d grey)", size, FolderColourSize, FolderGreySize)
	}
	if channels != 0 && channels != 1 && channels != 3 {
		return nil, fmt.Errorf("channels %d: want 1 or 3 (or 0: 1 if every image is grey)", channels)
	}
	files, skipped, classes, err := folderFiles(dir)
	if err != nil {
		return nil, err
	}
	noImages := func() error {
		msg := fmt.Sprintf("%s: no readable .png, .jpg, .jpeg or .gif images, in it or in class folders", dir)
		if len(skipped) > 0 {
			msg += "; " + skippedText(skipped)
		}
		return errors.New(msg)
	}
	if len(files) == 0 {
		return nil, noImages()
	}
	// Colour until shown otherwise: an auto folder is read in RGB and reduced to one plane if every
	// image turns out grey.
	c, sz := channels, size
	if c == 0 {
		c = 3
	}
	if sz == 0 {
		sz = FolderColourSize
		if c == 1 {
			sz = FolderGreySize
		}
	}
	// The set is held twice while it is built (the bytes, then their float32 values): a folder
	// of thousands of images at --size 4096 would need hundreds of gigabytes, refused here rather
	// than by the Go runtime halfway through decoding.
	per := float64(c) * float64(sz) * float64(sz)
	if err := sysmem.Check(fmt.Sprintf("%s: %d images of %dx%dx%d", dir, len(files), c, sz, sz), 5*per*float64(len(files))); err != nil {
		return nil, err
	}
	read := func(fs []folderFile) func(int) ([]byte, error) {
		return func(i int) ([]byte, error) { return safeio.ReadFile(fs[i].path, 64<<20) }
	}
	paths := func(fs []folderFile) []string {
		p := make([]string, len(fs))
		for i, f := range fs {
			p[i] = f.path
		}
		return p
	}
	pix, grey, errs := decodeAll(paths(files), read(files), sz, c)
	var good []folderFile
	allGrey := true
	n := sz * sz * c
	for i, f := range files {
		if errs[i] != nil {
			skipped = append(skipped, SkippedFile{Path: f.rel, Reason: errs[i].Error()})
			continue
		}
		copy(pix[len(good)*n:], pix[i*n:(i+1)*n]) // compact in place: len(good) <= i
		good = append(good, f)
		allGrey = allGrey && grey[i]
	}
	slices.SortFunc(skipped, func(a, b SkippedFile) int { return strings.Compare(a.Path, b.Path) })
	if len(good) == 0 {
		return nil, noImages()
	}
	pix = pix[:len(good)*n]
	if channels == 0 && allGrey {
		c = 1
		if size == 0 {
			// Grey images have their own natural size: decode again, at it.
			sz = FolderGreySize
			var errs []error
			if pix, _, errs = decodeAll(paths(good), read(good), sz, c); firstError(errs) != nil {
				return nil, firstError(errs)
			}
		} else {
			// Keep the first of three equal planes.
			plane := sz * sz
			for i := range good {
				copy(pix[i*plane:], pix[3*i*plane:3*i*plane+plane])
			}
			pix = pix[:len(good)*plane]
		}
	}
	var labels []uint8
	var names []string
	if classes != nil {
		// Number the classes that kept at least one image.
		index := make([]int, len(classes))
		for i := range index {
			index[i] = -1
		}
		for _, f := range good {
			if index[f.class] < 0 {
				index[f.class] = len(names)
				names = append(names, classes[f.class])
			}
			labels = append(labels, uint8(index[f.class]))
		}
	}
	set, err := NewSet(filepath.Base(filepath.Clean(dir)), len(good), c, sz, sz, pix, labels)
	if err != nil {
		return nil, err
	}
	set.Classes = names
	set.Skipped, set.SkippedFiles = len(skipped), skipped
	return set, nil
}

// folderFiles lists the image files LoadFolder will try in dir (flat, or in class folders when dir
// has no image files of its own) and the other files, which are skipped. classes is nil for a
// flat folder.
func folderFiles(dir string) (files []folderFile, skipped []SkippedFile, classes []string, err error) {
	images, others, subdirs, err := imageFiles(dir)
	if err != nil {
		return nil, nil, nil, err
	}
	for _, o := range others {
		skipped = append(skipped, SkippedFile{Path: o, Reason: notImage})
	}
	if len(images) > 0 {
		for _, im := range images {
			files = append(files, folderFile{path: filepath.Join(dir, im), rel: im})
		}
		return files, skipped, nil, nil
	}
	for _, sub := range subdirs {
		images, others, _, err := imageFiles(filepath.Join(dir, sub))
		if err != nil {
			return nil, nil, nil, err
		}
		for _, o := range others {
			skipped = append(skipped, SkippedFile{Path: sub + "/" + o, Reason: notImage})
		}
		if len(images) == 0 {
			continue
		}
		if len(classes) == 256 {
			return nil, nil, nil, fmt.Errorf("%s: more than 256 class folders", dir)
		}
		for _, im := range images {
			files = append(files, folderFile{path: filepath.Join(dir, sub, im), rel: sub + "/" + im, class: len(classes)})
		}
		classes = append(classes, sub)
	}
	return files, skipped, classes, nil
}

const notImage = "not a .png, .jpg, .jpeg or .gif file"

// imageFiles lists dir's entries by name, sorted: the image files (by extension), the other
// files, and the subfolders; hidden entries are left out.
func imageFiles(dir string) (images, others, subdirs []string, err error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("read image folder: %w", err)
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
		// link points at is checked when it is read, and a link that cannot be read is skipped.
		if (e.Type().IsRegular() || e.Type()&os.ModeSymlink != 0) && slices.Contains(imageExts, ext) {
			images = append(images, e.Name())
		} else {
			others = append(others, e.Name())
		}
	}
	return images, others, subdirs, nil
}

// ReadImage reads one PNG, JPEG or GIF file as a size x size image of channels 1 or 3 (CHW bytes), as
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
	if _, err := squareImage(path, b, size, channels, dst); err != nil {
		return nil, err
	}
	return dst, nil
}

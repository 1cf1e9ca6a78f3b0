package main

import (
	"flag"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ddpm-go/ddpm/data"
)

// userImages writes the kind of files a user brings, in odd sizes the model's are not: a
// half-transparent colour PNG wider than tall and a grey JPEG taller than wide. It returns their
// paths, colour first.
func userImages(t *testing.T) (colourPNG, greyJPEG string) {
	t.Helper()
	dir := t.TempDir()
	rgba := image.NewNRGBA(image.Rect(0, 0, 13, 9))
	for y := range 9 {
		for x := range 13 {
			rgba.SetNRGBA(x, y, color.NRGBA{uint8(19 * x), uint8(27 * y), uint8(255 - 9*x - 11*y), uint8(128 + 10*y)})
		}
	}
	grey := image.NewGray(image.Rect(0, 0, 11, 17))
	for y := range 17 {
		for x := range 11 {
			grey.SetGray(x, y, color.Gray{uint8((23*x + 15*y) % 256)})
		}
	}
	colourPNG, greyJPEG = filepath.Join(dir, "colour.png"), filepath.Join(dir, "grey.jpg")
	for path, enc := range map[string]func(io.Writer) error{
		colourPNG: func(w io.Writer) error { return png.Encode(w, rgba) },
		greyJPEG:  func(w io.Writer) error { return jpeg.Encode(w, grey, &jpeg.Options{Quality: 95}) },
	} {
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := enc(f); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return colourPNG, greyJPEG
}

// cellCHW is cell (row, col) of a PNG grid of size x size images 2 pixels apart, or of a single
// image at (0, 0), as c-channel CHW bytes.
func cellCHW(t *testing.T, path string, row, col, size, c int) []uint8 {
	t.Helper()
	img := readPNG(t, path)
	const pad = 2
	x0, y0 := img.Bounds().Min.X, img.Bounds().Min.Y
	if img.Bounds().Dx() > size {
		x0, y0 = pad+col*(size+pad), pad+row*(size+pad)
	}
	out := make([]uint8, c*size*size)
	for y := range size {
		for x := range size {
			p := color.NRGBAModel.Convert(img.At(x0+x, y0+y)).(color.NRGBA)
			if c == 1 {
				out[y*size+x] = p.R
				continue
			}
			for ch, v := range []uint8{p.R, p.G, p.B} {
				out[ch*size*size+y*size+x] = v
			}
		}
	}
	return out
}

// gridSize is the pixel size of a grid of cols x rows images of side size.
func gridSize(cols, rows, size int) image.Point {
	return image.Pt(cols*(size+2)+2, rows*(size+2)+2)
}

// TestImageFlag: --image collects paths in order, whole (commas included), and readImages reads
// colour and grey files of odd sizes at the model's shape, scaled as the training sets are; a
// missing file is an error naming the flag and the file.
func TestImageFlag(t *testing.T) {
	colour, grey := userImages(t)
	var p pathList
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	addImageFlag(fs, &p, "test")
	if err := fs.Parse([]string{"--image", grey, "--image", "a,b.png", "--image", colour}); err != nil {
		t.Fatal(err)
	}
	if len(p) != 3 || p[0] != grey || p[1] != "a,b.png" || p[2] != colour {
		t.Fatalf("paths %q", p)
	}
	if err := fs.Parse([]string{"--image", ""}); err == nil {
		t.Error("an empty --image was taken")
	}
	for _, c := range []int{1, 3} {
		x, err := readImages("image", []string{colour, grey}, c, 8, 8)
		if err != nil {
			t.Fatal(err)
		}
		if len(x) != 2*c*64 {
			t.Fatalf("%d channels: %d values, want %d", c, len(x), 2*c*64)
		}
		want, err := data.ReadImage(grey, 8, c)
		if err != nil {
			t.Fatal(err)
		}
		for i, b := range want {
			if x[c*64+i] != float32(b)/127.5-1 {
				t.Fatalf("%d channels: value %d of the second image is %v, want byte %d scaled", c, i, x[c*64+i], b)
			}
		}
	}
	missing := filepath.Join(t.TempDir(), "none.png")
	_, err := readImages("image", []string{colour, missing}, 1, 8, 8)
	if err == nil || !strings.HasPrefix(err.Error(), "--image ") || !strings.Contains(err.Error(), missing) || strings.Contains(err.Error(), "\n") {
		t.Errorf("missing file: %v", err)
	}
	if _, err := readImages("image", []string{colour}, 1, 8, 6); err == nil {
		t.Error("a non-square model's shape was taken")
	}
	for _, c := range []struct {
		path string
		k, n int
		want string
	}{{"o.png", 0, 1, "o.png"}, {"d.v2/o.png", 1, 3, "d.v2/o-1.png"}, {"o.PNG", 12, 13, "o-12.PNG"}} {
		if got := numbered(c.path, c.k, c.n); got != c.want {
			t.Errorf("numbered(%q, %d, %d) = %q, want %q", c.path, c.k, c.n, got, c.want)
		}
	}
}

// oneLineFailure checks that a command failed with exit status 2 and one line on stderr.
func oneLineFailure(t *testing.T, name string, args ...string) {
	t.Helper()
	code, _, errs := runCLI(t, args...)
	if code != 2 || strings.TrimSpace(errs) == "" || strings.Count(strings.TrimSpace(errs), "\n") != 0 || strings.Contains(errs, "panic") {
		t.Errorf("%s: exit %d, stderr %q; want exit 2 and one line", name, code, errs)
	}
}

package data

import (
	"bytes"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func solidImage(c color.Color, w, h int) *image.NRGBA {
	m := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			m.Set(x, y, c)
		}
	}
	return m
}

func gifBytes(t *testing.T, c color.Color, w, h int) []byte {
	t.Helper()
	pal := image.NewPaletted(image.Rect(0, 0, w, h), color.Palette{c, color.White})
	var buf bytes.Buffer
	// Two frames: only the first (all c) is read.
	second := image.NewPaletted(pal.Bounds(), pal.Palette)
	for i := range second.Pix {
		second.Pix[i] = 1
	}
	if err := gif.EncodeAll(&buf, &gif.GIF{Image: []*image.Paletted{pal, second}, Delay: []int{10, 10}}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func jpegBytes(t *testing.T, img image.Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 100}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func writeFiles(t *testing.T, dir string, files map[string][]byte) {
	t.Helper()
	for name, b := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// A folder of PNG, JPEG and GIF files of different sizes, with a text file, a file that is not
// the image its name says, a hidden file and a subfolder: read with size 0 and channels 0 it is a
// colour set at 32x32, every image resized (down and up) and the two bad files skipped.
func TestLoadFolderMixed(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string][]byte{
		"a.png":         pngBytes(t, solidImage(color.NRGBA{255, 0, 0, 255}, 100, 60)), // down, cropped
		"b.jpg":         jpegBytes(t, solidImage(color.NRGBA{0, 0, 255, 255}, 16, 16)), // up
		"c.gif":         gifBytes(t, color.NRGBA{0, 200, 0, 255}, 5, 7),                // up, cropped
		"d.png":         []byte("a png it is not"),
		"notes.txt":     []byte("not an image"),
		".hidden.png":   []byte("ignored"),
		"sub/inner.png": pngBytes(t, solidImage(color.White, 4, 4)), // a flat folder ignores subfolders
	})
	s, err := LoadFolder(dir, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if s.N != 3 || s.C != 3 || s.H != FolderColourSize || s.W != FolderColourSize || s.Labels != nil {
		t.Fatalf("set %dx%dx%dx%d", s.N, s.C, s.H, s.W)
	}
	for i, want := range [][3]int{{255, 0, 0}, {0, 0, 255}, {0, 200, 0}} {
		px := s.Uint8(i)
		n := s.H * s.W
		for c := range 3 {
			for k := 0; k < n; k++ {
				if d := int(px[c*n+k]) - want[c]; d < -3 || d > 3 {
					t.Fatalf("image %d channel %d pixel %d = %d, want %d", i, c, k, px[c*n+k], want[c])
				}
			}
		}
	}
	if s.Skipped != 2 || s.SkippedFiles[0].Path != "d.png" || s.SkippedFiles[1].Path != "notes.txt" ||
		!strings.Contains(s.SkippedFiles[0].Reason, "unknown format") || s.SkippedFiles[1].Reason != notImage {
		t.Fatalf("skipped %d: %+v", s.Skipped, s.SkippedFiles)
	}
	if got, want := s.SkippedNote(), "skipped 2 files that are not readable images (d.png, notes.txt)"; got != want {
		t.Fatalf("note %q, want %q", got, want)
	}
	// Forced grey: luma of each colour.
	g, err := LoadFolder(dir, 8, 1)
	if err != nil || g.C != 1 || g.H != 8 || g.Uint8(0)[0] != 76 { // 0.299*255
		t.Fatalf("grey: %v, %+v", err, g)
	}
}

// A folder whose every pixel is grey is read with one channel, at 28x28 when no size is given;
// --channels 3 makes it three equal planes; auto and forced grey agree byte for byte.
func TestLoadFolderGrey(t *testing.T) {
	dir := t.TempDir()
	ramp := image.NewGray(image.Rect(0, 0, 40, 30))
	for i := range ramp.Pix {
		ramp.Pix[i] = uint8(i * 7)
	}
	// A transparent grey pixel composited on white is still grey.
	ga := solidImage(color.NRGBA{60, 60, 60, 100}, 9, 9)
	writeFiles(t, dir, map[string][]byte{
		"ramp.png": pngBytes(t, ramp),
		"ga.png":   pngBytes(t, ga),
		"g.gif":    gifBytes(t, color.Gray{90}, 6, 6),
		"g.jpg":    jpegBytes(t, image.NewGray(image.Rect(0, 0, 12, 12))), // a grey JPEG stays grey
	})
	s, err := LoadFolder(dir, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if s.N != 4 || s.C != 1 || s.H != FolderGreySize || s.Skipped != 0 {
		t.Fatalf("auto: %dx%dx%dx%d, skipped %d", s.N, s.C, s.H, s.W, s.Skipped)
	}
	for _, size := range []int{0, 12} {
		auto, err := LoadFolder(dir, size, 0)
		if err != nil {
			t.Fatal(err)
		}
		grey, err := LoadFolder(dir, size, 1)
		if err != nil {
			t.Fatal(err)
		}
		if auto.C != 1 || !slices.Equal(auto.Images, grey.Images) {
			t.Fatalf("size %d: auto (%d channels) and --channels 1 differ", size, auto.C)
		}
		rgb, err := LoadFolder(dir, grey.H, 3)
		if err != nil {
			t.Fatal(err)
		}
		if rgb.C != 3 || rgb.H != grey.H {
			t.Fatalf("size %d: --channels 3 gave %dx%d", size, rgb.C, rgb.H)
		}
		n := rgb.H * rgb.W
		for i := range rgb.N {
			px, gp := rgb.Uint8(i), grey.Uint8(i)
			for k := 0; k < n; k++ {
				if px[k] != gp[k] || px[n+k] != gp[k] || px[2*n+k] != gp[k] {
					t.Fatalf("size %d image %d pixel %d: rgb %d %d %d, grey %d", size, i, k, px[k], px[n+k], px[2*n+k], gp[k])
				}
			}
		}
	}
	// --channels 3 with no size: the colour size.
	if c, err := LoadFolder(dir, 0, 3); err != nil || c.H != FolderColourSize {
		t.Fatalf("--channels 3: %v", err)
	}
	// One colour image makes the folder colour.
	writeFiles(t, dir, map[string][]byte{"red.png": pngBytes(t, solidImage(color.NRGBA{200, 10, 10, 255}, 3, 3))})
	if c, err := LoadFolder(dir, 0, 0); err != nil || c.C != 3 || c.H != FolderColourSize || c.N != 5 {
		t.Fatalf("with a colour image: %v, %+v", err, c)
	}
}

// Class folders skip per file too: a class whose files are all unreadable is dropped and the
// others renumbered; a stray file at the top is skipped.
func TestLoadFolderClassesSkip(t *testing.T) {
	dir := t.TempDir()
	grey := func(v uint8) []byte {
		m := image.NewGray(image.Rect(0, 0, 4, 4))
		for i := range m.Pix {
			m.Pix[i] = v
		}
		return pngBytes(t, m)
	}
	writeFiles(t, dir, map[string][]byte{
		"README.md":      []byte("# my pictures"),
		"ants/a.png":     grey(10),
		"ants/bad.jpg":   []byte("truncated"),
		"bees/x.png":     []byte("not a png"),
		"cats/c.gif":     gifBytes(t, color.Gray{100}, 4, 4),
		"cats/notes.txt": []byte("no"),
	})
	s, err := LoadFolder(dir, 4, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(s.Classes, []string{"ants", "cats"}) || !slices.Equal(s.Labels, []uint8{0, 1}) || s.C != 1 {
		t.Fatalf("classes %v labels %v channels %d", s.Classes, s.Labels, s.C)
	}
	var paths []string
	for _, f := range s.SkippedFiles {
		paths = append(paths, f.Path)
	}
	if !slices.Equal(paths, []string{"README.md", "ants/bad.jpg", "bees/x.png", "cats/notes.txt"}) {
		t.Fatalf("skipped %v", paths)
	}
	if got := s.SkippedNote(); got != "skipped 4 files that are not readable images (README.md, ants/bad.jpg, bees/x.png, ...)" {
		t.Fatalf("note %q", got)
	}
	// Nothing readable anywhere: one line naming what was skipped.
	bad := t.TempDir()
	writeFiles(t, bad, map[string][]byte{"a/x.png": []byte("no"), "b.txt": []byte("no")})
	if _, err := LoadFolder(bad, 4, 0); err == nil || strings.Contains(err.Error(), "\n") ||
		!strings.Contains(err.Error(), "no readable") || !strings.Contains(err.Error(), "(a/x.png, b.txt)") {
		t.Fatalf("all bad: %v", err)
	}
}

// Upscaling with the area filter: each output cell takes the source pixels it overlaps, weighted
// by overlap, so a 2-pixel edge upscaled to 4 is two and two, and to 3 has a half-way middle.
func TestResizeAreaUpscales(t *testing.T) {
	row := []float64{0, 0, 0, 255, 255, 255} // 2x1 RGB: black, white
	out := resizeArea(2, 1, row, 4, 1)
	for i, want := range []float64{0, 0, 255, 255} {
		if math.Abs(out[3*i]-want) > 1e-9 {
			t.Fatalf("2->4: %v", out)
		}
	}
	out = resizeArea(2, 1, row, 3, 1)
	for i, want := range []float64{0, 127.5, 255} {
		if math.Abs(out[3*i]-want) > 1e-9 {
			t.Fatalf("2->3: %v", out)
		}
	}
	// 1 -> n is n copies; weights stay within the source for every upscale factor.
	for _, n := range []int{1, 2, 5, 64, 4096} {
		first, w := areaWeights(1, n)
		for o := range n {
			if first[o] != 0 || len(w[o]) != 1 || math.Abs(w[o][0]-1) > 1e-12 {
				t.Fatalf("1->%d output %d: first %d weights %v", n, o, first[o], w[o])
			}
		}
	}
	for _, sz := range [][2]int{{5, 7}, {7, 64}, {28, 4096}, {3, 1000}} {
		first, w := areaWeights(sz[0], sz[1])
		for o := range w {
			sum := 0.0
			for k, x := range w[o] {
				if x <= 0 || first[o]+k >= sz[0] {
					t.Fatalf("%d->%d output %d: weight %v at %d", sz[0], sz[1], o, x, first[o]+k)
				}
				sum += x
			}
			if math.Abs(sum-1) > 1e-9 {
				t.Fatalf("%d->%d output %d: weights sum to %v", sz[0], sz[1], o, sum)
			}
		}
	}
}

// Open reads a folder with the natural shape when size and channels are 0.
func TestOpenFolderNatural(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string][]byte{"a.png": pngBytes(t, image.NewGray(image.Rect(0, 0, 50, 50)))})
	s, err := Open(dir, "", Train, 0, 0)
	if err != nil || s.C != 1 || s.H != 28 {
		t.Fatalf("grey folder: %v, %+v", err, s)
	}
	if _, err := Open(dir, "", Test, 0, 0); err == nil || !strings.Contains(err.Error(), "no test split") {
		t.Fatalf("folder test split: %v", err)
	}
}

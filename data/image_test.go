package data

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/ddpm-go/ddpm/internal/sysmem"
)

func TestOnWhite(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    color.NRGBA
		want [3]float64
	}{
		// a*c + (1-a)*255 with a = 128/255: red stays 255, green and blue are 255*127/255 = 127.
		{"half-transparent red", color.NRGBA{255, 0, 0, 128}, [3]float64{255, 127, 127}},
		{"transparent anything", color.NRGBA{10, 200, 30, 0}, [3]float64{255, 255, 255}},
		{"opaque colour", color.NRGBA{10, 200, 30, 255}, [3]float64{10, 200, 30}},
		{"quarter-opaque black", color.NRGBA{0, 0, 0, 51}, [3]float64{204, 204, 204}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nrgba := image.NewNRGBA(image.Rect(0, 0, 1, 1))
			nrgba.SetNRGBA(0, 0, tc.c)
			// The same colour premultiplied, so the general (16-bit) path is checked too.
			rgba := image.NewRGBA(image.Rect(0, 0, 1, 1))
			rgba.Set(0, 0, tc.c)
			for _, img := range []image.Image{nrgba, rgba} {
				_, _, got := onWhite(img, img.Bounds())
				for c := range 3 {
					if math.Abs(got[c]-tc.want[c]) > 0.51 { // premultiplying to 8 bits rounds
						t.Fatalf("%T: got %v, want %v", img, got, tc.want)
					}
				}
			}
			_, _, got := onWhite(nrgba, nrgba.Bounds())
			if [3]float64(got) != tc.want {
				t.Fatalf("NRGBA path: got %v, want exactly %v", got, tc.want)
			}
		})
	}
}

func TestAreaWeights(t *testing.T) {
	first, w := areaWeights(3, 2)
	want := [][]float64{{2.0 / 3, 1.0 / 3}, {1.0 / 3, 2.0 / 3}}
	if fmt.Sprint(first) != "[0 1]" || len(w) != 2 {
		t.Fatalf("3->2: first %v weights %v", first, w)
	}
	for o := range want {
		for k := range want[o] {
			if math.Abs(w[o][k]-want[o][k]) > 1e-12 {
				t.Fatalf("3->2 weights %v, want %v", w, want)
			}
		}
	}
	// Every output's weights sum to 1 and lie in (0, 1], for down- and upscaling alike.
	for _, sz := range [][2]int{{64, 32}, {7, 3}, {3, 7}, {28, 32}, {100, 1}, {5, 5}} {
		first, w := areaWeights(sz[0], sz[1])
		for o := range w {
			sum := 0.0
			for k, x := range w[o] {
				if x <= 0 || x > 1+1e-12 || first[o]+k >= sz[0] {
					t.Fatalf("%d->%d output %d: weight %v at %d", sz[0], sz[1], o, x, first[o]+k)
				}
				sum += x
			}
			if math.Abs(sum-1) > 1e-12 {
				t.Fatalf("%d->%d output %d: weights sum to %v", sz[0], sz[1], o, sum)
			}
		}
	}
}

func TestResizeAreaHalvesByBlockMeans(t *testing.T) {
	const w, h = 4, 2
	rgb := make([]float64, 3*w*h)
	for i := range rgb {
		rgb[i] = float64(i * 3 % 17)
	}
	out := resizeArea(w, h, rgb, 2, 1)
	for ox := 0; ox < 2; ox++ {
		for c := 0; c < 3; c++ {
			var s float64
			for y := 0; y < 2; y++ {
				for x := 2 * ox; x < 2*ox+2; x++ {
					s += rgb[3*(y*w+x)+c]
				}
			}
			if got := out[3*ox+c]; math.Abs(got-s/4) > 1e-12 {
				t.Fatalf("output %d channel %d: %v, want the 2x2 mean %v", ox, c, got, s/4)
			}
		}
	}
	// A constant image stays constant at any size.
	flat := make([]float64, 3*7*5)
	for i := range flat {
		flat[i] = 99
	}
	for _, v := range resizeArea(7, 5, flat, 3, 4) {
		if math.Abs(v-99) > 1e-9 {
			t.Fatalf("constant image resized to %v", v)
		}
	}
}

func pngBytes(t *testing.T, img image.Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// An emoji-like 64x64 RGBA PNG: left half half-transparent red, right half a 2x2 checkerboard of
// opaque blue and transparent. Downscaled 2:1 onto white, the left half is (255,127,127) and each
// 2x2 checker block averages to (127.5, 127.5, 255), which rounds to (128, 128, 255).
func TestEmojiPipeline(t *testing.T) {
	img := image.NewNRGBA(image.Rect(0, 0, 64, 64))
	for y := 0; y < 64; y++ {
		for x := 0; x < 64; x++ {
			switch {
			case x < 32:
				img.SetNRGBA(x, y, color.NRGBA{255, 0, 0, 128})
			case (x+y)%2 == 0:
				img.SetNRGBA(x, y, color.NRGBA{0, 0, 255, 255})
			}
		}
	}
	px := make([]uint8, 3*32*32)
	if _, err := squareImage("emoji.png", pngBytes(t, img), 32, 3, px); err != nil {
		t.Fatal(err)
	}
	at := func(c, y, x int) uint8 { return px[c*1024+y*32+x] }
	for y := 0; y < 32; y++ {
		for x := 0; x < 32; x++ {
			want := [3]uint8{255, 127, 127}
			if x >= 16 {
				want = [3]uint8{128, 128, 255}
			}
			if got := [3]uint8{at(0, y, x), at(1, y, x), at(2, y, x)}; got != want {
				t.Fatalf("pixel (%d,%d) = %v, want %v", x, y, got, want)
			}
		}
	}
}

func TestCenterSquareAndGrey(t *testing.T) {
	// A 6x2 image whose columns are 0, 50, 100, 150, 200, 250 grey: the centred 2x2 square holds
	// columns 2 and 3, and downscaled to 1x1 it is their mean, 125.
	img := image.NewGray(image.Rect(0, 0, 6, 2))
	for y := 0; y < 2; y++ {
		for x := 0; x < 6; x++ {
			img.SetGray(x, y, color.Gray{uint8(50 * x)})
		}
	}
	px := make([]uint8, 1)
	if _, err := squareImage("g.png", pngBytes(t, img), 1, 1, px); err != nil {
		t.Fatal(err)
	}
	if px[0] != 125 {
		t.Fatalf("got %d, want 125", px[0])
	}
}

func TestLoadFolder(t *testing.T) {
	dir := t.TempDir()
	solid := func(c color.Color, w, h int) image.Image {
		m := image.NewNRGBA(image.Rect(0, 0, w, h))
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				m.Set(x, y, c)
			}
		}
		return m
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(dir, "b.png"), pngBytes(t, solid(color.NRGBA{0, 255, 0, 255}, 20, 10)), 0o644))
	must(os.WriteFile(filepath.Join(dir, "a.PNG"), pngBytes(t, solid(color.NRGBA{255, 0, 0, 255}, 8, 8)), 0o644))
	var jb bytes.Buffer
	must(jpeg.Encode(&jb, solid(color.NRGBA{0, 0, 255, 255}, 16, 16), &jpeg.Options{Quality: 100}))
	must(os.WriteFile(filepath.Join(dir, "c.jpg"), jb.Bytes(), 0o644))
	must(os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("ignored"), 0o644))
	must(os.Mkdir(filepath.Join(dir, "sub.png"), 0o755))

	s, err := LoadFolder(dir, 4, 3)
	must(err)
	if s.N != 3 || s.C != 3 || s.H != 4 || s.W != 4 || s.Labels != nil || s.Skipped != 1 || s.SkippedNote() != "skipped 1 file that is not a readable image (notes.txt)" {
		t.Fatalf("set %dx%dx%dx%d labels %v", s.N, s.C, s.H, s.W, s.Labels)
	}
	for i, want := range [][3]int{{255, 0, 0}, {0, 255, 0}, {0, 0, 255}} { // a.PNG, b.png, c.jpg
		px := s.Uint8(i)
		for c := range 3 {
			for k := 0; k < 16; k++ {
				if d := int(px[c*16+k]) - want[c]; d < -3 || d > 3 { // JPEG is lossy
					t.Fatalf("image %d channel %d = %d, want %d", i, c, px[c*16+k], want[c])
				}
			}
		}
	}
	g, err := LoadFolder(dir, 2, 1)
	must(err)
	if px := g.Uint8(0); g.C != 1 || px[0] != 76 { // 0.299*255 = 76.2
		t.Fatalf("grey red = %v, want 76", px)
	}
}

// pngWithSize rewrites a PNG's IHDR to claim w x h (fixing the chunk CRC), without the pixel data
// to back it: a decompression-bomb-shaped file.
func pngWithSize(t *testing.T, w, h uint32) []byte {
	b := pngBytes(t, image.NewGray(image.Rect(0, 0, 1, 1)))
	// signature (8), IHDR length (4), "IHDR" (4), width, height, ...; CRC after 13 data bytes.
	binary.BigEndian.PutUint32(b[16:], w)
	binary.BigEndian.PutUint32(b[20:], h)
	binary.BigEndian.PutUint32(b[29:], crc32.ChecksumIEEE(b[12:29]))
	return b
}

// A file that is not a readable image is skipped, with why, and the rest load; a folder with none
// left, or bad arguments, is a one-line error.
func TestLoadFolderErrors(t *testing.T) {
	good := pngBytes(t, image.NewGray(image.Rect(0, 0, 4, 4)))
	for _, tc := range []struct {
		name string
		file []byte
		want string
	}{
		{"truncated png", good[:len(good)/2], "bad.png"},
		{"not an image", []byte("hello, world"), "bad.png: image: unknown format"},
		{"huge declared size", pngWithSize(t, 100000, 100000), "larger than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "bad.png"), tc.file, 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := LoadFolder(dir, 8, 3)
			if err == nil || !strings.Contains(err.Error(), "no readable") || !strings.Contains(err.Error(), "(bad.png)") || strings.Contains(err.Error(), "\n") {
				t.Fatalf("only a bad file: error %v", err)
			}
			if err := os.WriteFile(filepath.Join(dir, "good.png"), good, 0o644); err != nil {
				t.Fatal(err)
			}
			s, err := LoadFolder(dir, 8, 3)
			if err != nil || s.N != 1 || s.Skipped != 1 || s.SkippedFiles[0].Path != "bad.png" || !strings.Contains(s.SkippedFiles[0].Reason, tc.want) {
				t.Fatalf("bad file beside a good one: %v, %+v; want one skipped saying %q", err, s, tc.want)
			}
		})
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "good.png"), good, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		size, chans int
		want        string
	}{{8, 2, "channels 2"}, {-1, 3, "image size -1"}, {4097, 0, "image size 4097"}} {
		if _, err := LoadFolder(dir, tc.size, tc.chans); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("size %d channels %d: %v, want %q", tc.size, tc.chans, err, tc.want)
		}
	}
	if _, err := LoadFolder(t.TempDir(), 8, 3); err == nil || !strings.Contains(err.Error(), "no readable .png, .jpg, .jpeg or .gif images") {
		t.Fatalf("empty folder: %v", err)
	}
	if _, err := LoadFolder(filepath.Join(dir, "missing"), 8, 3); err == nil {
		t.Fatal("missing folder loaded")
	}
}

func TestCenterSquareTallAndSubImage(t *testing.T) {
	// A 2x6 image whose rows are 0, 50, ..., 250: the centred square holds rows 2 and 3, mean 125.
	img := image.NewGray(image.Rect(0, 0, 2, 6))
	for y := 0; y < 6; y++ {
		for x := 0; x < 2; x++ {
			img.SetGray(x, y, color.Gray{uint8(50 * y)})
		}
	}
	px := make([]uint8, 1)
	if _, err := squareImage("tall.png", pngBytes(t, img), 1, 1, px); err != nil {
		t.Fatal(err)
	}
	if px[0] != 125 {
		t.Fatalf("got %d, want 125", px[0])
	}
	// onWhite honours a rectangle that does not start at the origin, on the NRGBA fast path.
	m := image.NewNRGBA(image.Rect(0, 0, 4, 4))
	m.SetNRGBA(2, 3, color.NRGBA{9, 8, 7, 255})
	sub := m.SubImage(image.Rect(1, 2, 4, 4)).(*image.NRGBA)
	w, h, rgb := onWhite(sub, image.Rect(2, 3, 3, 4))
	if w != 1 || h != 1 || [3]float64(rgb) != [3]float64{9, 8, 7} {
		t.Fatalf("got %dx%d %v, want the pixel at (2,3)", w, h, rgb)
	}
}

// FuzzDecodeImage feeds arbitrary bytes through the folder/emoji pipeline: decoding may fail, with
// an error that names the file, but must never panic.
func FuzzDecodeImage(f *testing.F) {
	rgba := image.NewNRGBA(image.Rect(0, 0, 5, 3))
	for i := range rgba.Pix {
		rgba.Pix[i] = uint8(i * 37)
	}
	pal := image.NewPaletted(image.Rect(0, 0, 3, 4), color.Palette{color.Black, color.NRGBA{255, 0, 0, 128}})
	pal.Pix[3] = 1
	g16 := image.NewGray16(image.Rect(0, 0, 2, 2))
	var buf bytes.Buffer
	for _, img := range []image.Image{rgba, pal, g16} {
		buf.Reset()
		if err := png.Encode(&buf, img); err != nil {
			f.Fatal(err)
		}
		f.Add(append([]byte(nil), buf.Bytes()...))
	}
	buf.Reset()
	if err := jpeg.Encode(&buf, rgba, nil); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		px := make([]uint8, 3*4*4)
		_, err := squareImage("fuzz.png", b, 4, 3, px)
		if err != nil && !strings.Contains(err.Error(), "fuzz.png") {
			t.Fatalf("error %q does not name the file", err)
		}
	})
}

// TestLoadFolderSymlinks: a link to an image is loaded like the image; a link pointing nowhere or
// at a FIFO is skipped, saying why.
func TestLoadFolderSymlinks(t *testing.T) {
	src, dir := t.TempDir(), t.TempDir()
	img := image.NewGray(image.Rect(0, 0, 4, 4))
	for i := range img.Pix {
		img.Pix[i] = 200
	}
	target := filepath.Join(src, "real.png")
	if err := os.WriteFile(target, pngBytes(t, img), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Symlink(target, filepath.Join(dir, "link.png"))
	s, err := LoadFolder(dir, 4, 1)
	if err != nil || s.N != 1 || s.Uint8(0)[0] != 200 || s.Skipped != 0 {
		t.Fatalf("symlinked image: %v", err)
	}
	os.Symlink(filepath.Join(src, "missing.png"), filepath.Join(dir, "dangling.png"))
	fifo := filepath.Join(src, "fifo")
	syscall.Mkfifo(fifo, 0o644)
	os.Symlink(fifo, filepath.Join(dir, "pipe.png"))
	s, err = LoadFolder(dir, 4, 1)
	if err != nil || s.N != 1 || s.Skipped != 2 {
		t.Fatalf("with a dangling link and a link to a FIFO: %v, %+v", err, s)
	}
	if f := s.SkippedFiles; f[0].Path != "dangling.png" || f[1].Path != "pipe.png" || !strings.Contains(f[1].Reason, "not a regular file") {
		t.Fatalf("skipped %+v", f)
	}
}

// TestLoadFolderBeyondMemory: a folder whose set at the asked size cannot fit is refused before any
// image is decoded (at --size 4096 a few thousand photos are hundreds of gigabytes), naming the
// folder; the same folder at a size that fits loads.
func TestLoadFolderBeyondMemory(t *testing.T) {
	total := sysmem.Total
	sysmem.Total = func() uint64 { return 256 << 20 }
	defer func() { sysmem.Total = total }()
	dir := t.TempDir()
	for i := range 2 {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%d.png", i)), pngBytes(t, image.NewGray(image.Rect(0, 0, 4, 4))), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := LoadFolder(dir, 4096, 3); err == nil || !strings.Contains(err.Error(), dir+": 2 images of 3x4096x4096 needs") {
		t.Fatalf("2 images of 3x4096x4096 on a 256 MiB machine: %v", err)
	}
	if s, err := LoadFolder(dir, 64, 3); err != nil || s.N != 2 {
		t.Fatalf("at 64x64: %v", err)
	}
}

// TestLoadFolderClasses: a folder of class folders is a labelled set (torchvision's ImageFolder):
// classes sorted by folder name, each image labelled with its folder's index, empty and hidden
// folders skipped; a folder with images of its own ignores its subfolders.
func TestLoadFolderClasses(t *testing.T) {
	dir := t.TempDir()
	grey := func(v uint8) []byte {
		m := image.NewGray(image.Rect(0, 0, 4, 4))
		for i := range m.Pix {
			m.Pix[i] = v
		}
		return pngBytes(t, m)
	}
	files := map[string]uint8{"zebra/1.png": 200, "zebra/0.png": 100, "ant/x.png": 10, ".hidden/h.png": 50}
	for _, d := range []string{"zebra", "ant", "empty", ".hidden"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, v := range files {
		if err := os.WriteFile(filepath.Join(dir, name), grey(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s, err := LoadFolder(dir, 4, 1)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(s.Classes, []string{"ant", "zebra"}) || !slices.Equal(s.Labels, []uint8{0, 1, 1}) {
		t.Fatalf("classes %v labels %v, want [ant zebra] [0 1 1]", s.Classes, s.Labels)
	}
	for i, want := range []uint8{10, 100, 200} {
		if px := s.Uint8(i); px[0] != want {
			t.Errorf("image %d = %d, want %d", i, px[0], want)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "top.png"), grey(7), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err = LoadFolder(dir, 4, 1)
	if err != nil || s.N != 1 || s.Labels != nil || s.Classes != nil {
		t.Fatalf("folder with its own image: %v, %+v", err, s)
	}
}

package imageio

import (
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"testing"
)

func TestToUint8(t *testing.T) {
	if got := ToUint8(nil, []float32{-3, 3, 0}); string(got) != string([]uint8{0, 255, 128}) {
		t.Fatalf("clamping: %v", got)
	}
	// Every byte b survives b/127.5 - 1 and back, from either float type.
	for b := range 256 {
		v := float64(b)/127.5 - 1
		if got := ToUint8(nil, []float64{v}); got[0] != uint8(b) {
			t.Fatalf("float64: %d -> %v -> %d", b, v, got[0])
		}
		if got := ToUint8(nil, []float32{float32(b)/127.5 - 1}); got[0] != uint8(b) {
			t.Fatalf("float32: %d -> %d", b, got[0])
		}
	}
}

func TestWriteGrid(t *testing.T) {
	// Two 1x1x2 images in [-1, 1]: black|white and white|black, side by side with a white border.
	imgs := []float32{-1, 1, 1, -1}
	p := filepath.Join(t.TempDir(), "g.png")
	if err := WriteGrid(p, imgs, 2, 1, 1, 2, 8); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if b := m.Bounds(); b.Dx() != 2*(2+2)+2 || b.Dy() != 1+4 {
		t.Fatalf("grid is %v", b)
	}
	gray := func(x, y int) uint8 { return color.GrayModel.Convert(m.At(x, y)).(color.Gray).Y }
	if gray(2, 2) != 0 || gray(3, 2) != 255 || gray(6, 2) != 255 || gray(7, 2) != 0 || gray(0, 0) != 255 {
		t.Fatal("grid pixels are not where they belong")
	}
	if err := WriteGrid(p, imgs, 3, 1, 1, 2, 8); err == nil {
		t.Error("4 values accepted for 3 images of 2")
	}
}

func TestGridRGBAndScale(t *testing.T) {
	// One 3x1x1 image (red) at scale 2: a 2x2 red square inside the border.
	img, err := Grid([]uint8{255, 0, 0}, 1, 3, 1, 1, 4, 2)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != (1+2*GridPad)*2 || b.Dy() != (1+2*GridPad)*2 {
		t.Fatalf("grid is %v", b)
	}
	for _, p := range [][2]int{{4, 4}, {5, 5}} {
		if c := color.NRGBAModel.Convert(img.At(p[0], p[1])).(color.NRGBA); c != (color.NRGBA{255, 0, 0, 255}) {
			t.Errorf("pixel %v is %v", p, c)
		}
	}
	if c := color.NRGBAModel.Convert(img.At(3, 3)).(color.NRGBA); c != (color.NRGBA{255, 255, 255, 255}) {
		t.Errorf("border is %v", c)
	}
}

// Image is a picture of one image alone: no border.
func TestImage(t *testing.T) {
	img, err := Image(1, 1, 2, []uint8{7, 9})
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != 2 || b.Dy() != 1 || color.GrayModel.Convert(img.At(1, 0)).(color.Gray).Y != 9 {
		t.Fatalf("image %v: %v", b, img)
	}
	if _, err := Image(2, 1, 2, []uint8{7, 9, 1, 2}); err == nil {
		t.Error("2 channels accepted")
	}
}

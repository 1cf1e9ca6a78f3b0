package imageio

import (
	"bytes"
	"fmt"
	"image/color"
	"image/gif"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"testing"
)

func TestNHWC(t *testing.T) {
	// Two 2x2 images of 3 channels; pixel p of channel c of image i holds 100*i + 10*c + p.
	var nchw []uint8
	for i := 0; i < 2; i++ {
		for c := 0; c < 3; c++ {
			for p := 0; p < 4; p++ {
				nchw = append(nchw, uint8(100*i+10*c+p))
			}
		}
	}
	got := NHWC(nchw, 2, 3, 2, 2)
	want := []uint8{0, 10, 20, 1, 11, 21, 2, 12, 22, 3, 13, 23, 100, 110, 120, 101, 111, 121, 102, 112, 122, 103, 113, 123}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("NHWC = %v, want %v", got, want)
	}
}

func TestSaveImagesNPZ(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "s.npz")
	n, c, h, w := 3, 3, 2, 4
	nchw := make([]uint8, n*c*h*w)
	for i := range nchw {
		nchw[i] = uint8(i * 7)
	}
	if err := SaveImagesNPZ(path, nchw, n, c, h, w); err != nil {
		t.Fatal(err)
	}
	m, err := LoadNPZ(path)
	if err != nil {
		t.Fatal(err)
	}
	a := m["arr_0"]
	if a == nil || !reflect.DeepEqual(a.Shape, []int{n, h, w, c}) || a.Descr != "|u1" {
		t.Fatalf("arr_0 = %+v, want uint8 of shape (%d,%d,%d,%d)", a, n, h, w, c)
	}
	hwc := NHWC(nchw, n, c, h, w)
	for i, v := range a.Values {
		if v != float64(hwc[i]) {
			t.Fatalf("value %d = %v, want %d", i, v, hwc[i])
		}
	}
	if err := SaveImagesNPZ(path, nchw[1:], n, c, h, w); err == nil {
		t.Error("wrong length accepted")
	}

	py := numpy(t)
	script := fmt.Sprintf(`
import sys, numpy as np
z = np.load(sys.argv[1])
assert z.files == ["arr_0"], z.files
a = z["arr_0"]
assert a.dtype == np.uint8 and a.shape == (%d, %d, %d, %d), (a.dtype, a.shape)
x = (np.arange(%d) * 7 %% 256).astype(np.uint8).reshape(%d, %d, %d, %d).transpose(0, 2, 3, 1)
assert (a == x).all()
print("ok")
`, n, h, w, c, n*c*h*w, n, c, h, w)
	out, err := exec.Command(py, "-c", script, path).CombinedOutput()
	if err != nil || string(out) != "ok\n" {
		t.Fatalf("numpy.load: %v\n%s", err, out)
	}
}

func TestNPZDeterministic(t *testing.T) {
	var a, b bytes.Buffer
	for _, buf := range []*bytes.Buffer{&a, &b} {
		if err := WriteNPZ(buf, Named{"arr_0", []int{2}, []uint8{1, 2}}, Named{"x", []int{1}, []float64{3}}); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Error("two writes of the same arrays differ")
	}
}

func TestLoadNPZCorrupt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.npz")
	os.WriteFile(path, []byte("PK\x03\x04 not really"), 0o644)
	if _, err := LoadNPZ(path); err == nil {
		t.Error("corrupt archive accepted")
	}
}

func TestReelGray(t *testing.T) {
	r, err := NewReel(1, 2, 3, 2, 2)
	if err != nil {
		t.Fatal(err)
	}
	// Frame k: image 0 is all -1 (black), image 1 all +1 (white) except pixel 0 set to k/2.
	for k := 0; k < 3; k++ {
		imgs := make([]float64, 12)
		for i := range 6 {
			imgs[i], imgs[6+i] = -1, 1
		}
		imgs[6] = float64(k) / 2
		if err := r.Add(imgs, 2, 10+k); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	if err := r.Encode(&buf); err != nil {
		t.Fatal(err)
	}
	g, err := gif.DecodeAll(&buf)
	if err != nil {
		t.Fatal(err)
	}
	// Width (2 cols * (3+2) + 2) * 2 = 24, height (1 * (2+2) + 2) * 2 = 12.
	if len(g.Image) != 3 || g.Config.Width != 24 || g.Config.Height != 12 || !reflect.DeepEqual(g.Delay, []int{10, 11, 12}) {
		t.Fatalf("gif: %d frames of %dx%d, delays %v", len(g.Image), g.Config.Width, g.Config.Height, g.Delay)
	}
	for k, fr := range g.Image {
		at := func(x, y int) uint8 { return color.GrayModel.Convert(fr.At(x, y)).(color.Gray).Y }
		// Image 0 starts at pixel (2,2)*scale; image 1 at (2+3+2, 2)*scale = (14, 4).
		if at(4, 4) != 0 || at(15, 5) != uint8(127.5*(1+float64(k)/2)+0.5) || at(16, 4) != 255 || at(0, 0) != 255 {
			t.Errorf("frame %d: pixels %d %d %d %d", k, at(4, 4), at(15, 5), at(16, 4), at(0, 0))
		}
	}
}

func TestReelColourAndErrors(t *testing.T) {
	r, err := NewReel(3, 4, 4, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	red := make([]float64, 48)
	for i := range 16 {
		red[i], red[16+i], red[32+i] = 1, -1, -1
	}
	if err := r.Add(red, 1, 5); err != nil {
		t.Fatal(err)
	}
	if err := r.Add(red[:47], 1, 5); err == nil {
		t.Error("short frame accepted")
	}
	if err := r.Add(append(red, red...), 2, 5); err == nil {
		t.Error("frame of another size accepted")
	}
	path := filepath.Join(t.TempDir(), "a.gif")
	if err := r.Save(path); err != nil {
		t.Fatal(err)
	}
	f, _ := os.Open(path)
	defer f.Close()
	g, err := gif.DecodeAll(f)
	if err != nil || len(g.Image) != 1 {
		t.Fatalf("decode: %v", err)
	}
	if c := color.RGBAModel.Convert(g.Image[0].At(3, 3)).(color.RGBA); c.R < 200 || c.G > 60 || c.B > 60 {
		t.Errorf("red pixel drawn as %v", c)
	}
	if _, err := NewReel(2, 4, 4, 1, 1); err == nil {
		t.Error("2 channels accepted")
	}
	empty, _ := NewReel(1, 1, 1, 1, 1)
	if err := empty.Encode(&bytes.Buffer{}); err == nil {
		t.Error("empty reel encoded")
	}
}

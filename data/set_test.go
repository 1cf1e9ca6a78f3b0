package data

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestUint8RoundTrip(t *testing.T) {
	pix := make([]uint8, 256)
	for i := range pix {
		pix[i] = uint8(i)
	}
	s, err := NewSet("all", 1, 1, 16, 16, pix, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.Images[0] != -1 || s.Images[255] != 1 {
		t.Fatalf("0 -> %v, 255 -> %v, want -1 and 1", s.Images[0], s.Images[255])
	}
	if got := s.Uint8(0); string(got) != string(pix) {
		t.Fatal("Uint8 does not invert the [-1, 1] scaling")
	}
}

func TestNewSetErrors(t *testing.T) {
	if _, err := NewSet("x", 2, 1, 2, 2, make([]uint8, 7), nil); err == nil {
		t.Error("7 bytes accepted for 2x1x2x2")
	}
	if _, err := NewSet("x", 2, 1, 2, 2, make([]uint8, 8), []uint8{1}); err == nil {
		t.Error("1 label accepted for 2 images")
	}
}

// writeToySource writes a pinned idx source with 3 images of 2x2 into dir/toy and returns it.
func writeToySource(t *testing.T, dir string, labels []uint8) *Source {
	t.Helper()
	img, err := EncodeIDX([]int{3, 2, 2}, []uint8{0, 255, 0, 255, 1, 2, 3, 4, 10, 20, 30, 40})
	if err != nil {
		t.Fatal(err)
	}
	lab, err := EncodeIDX([]int{len(labels)}, labels)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "toy"), 0o755); err != nil {
		t.Fatal(err)
	}
	src := &Source{Name: "toy"}
	for name, b := range map[string][]byte{"train-images-idx3-ubyte": img, "train-labels-idx1-ubyte": lab} {
		if err := os.WriteFile(filepath.Join(dir, "toy", name), b, 0o644); err != nil {
			t.Fatal(err)
		}
		src.Files = append(src.Files, File{Name: name, Size: int64(len(b)), SHA256: hexSum(b)})
	}
	return src
}

func TestLoadSourceIDX(t *testing.T) {
	dir := t.TempDir()
	src := writeToySource(t, dir, []uint8{3, 1, 4})
	s, err := loadSource(src, dir, Train)
	if err != nil {
		t.Fatal(err)
	}
	if s.N != 3 || s.C != 1 || s.H != 2 || s.W != 2 || string(s.Labels) != "\x03\x01\x04" {
		t.Fatalf("set %+v", s)
	}
	if got := s.Uint8(2); string(got) != string([]uint8{10, 20, 30, 40}) || s.Image(0)[1] != 1 {
		t.Fatalf("image 2 = %v", got)
	}
	if _, err := loadSource(src, dir, Test); err == nil {
		t.Error("loaded a test split the source does not have")
	}

}

func TestLoadSourceErrors(t *testing.T) {
	dir := t.TempDir()
	labels14 := writeToySource(t, dir, []uint8{3, 1, 14})
	if _, err := loadSource(labels14, dir, Train); err == nil || !strings.Contains(err.Error(), "label 14") {
		t.Errorf("label 14: %v", err)
	}
	dir2 := t.TempDir()
	twoLabels := writeToySource(t, dir2, []uint8{3, 1})
	if _, err := loadSource(twoLabels, dir2, Train); err == nil || !strings.Contains(err.Error(), "for 3 images") {
		t.Errorf("2 labels for 3 images: %v", err)
	}
	// A cached file changed after fetching fails its pin on load, naming the file.
	p := filepath.Join(dir2, "toy", "train-images-idx3-ubyte")
	b, _ := os.ReadFile(p)
	b[len(b)-1] ^= 1
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := loadSource(twoLabels, dir2, Train); err == nil || !strings.Contains(err.Error(), p) {
		t.Errorf("corrupted cache: %v", err)
	}
	if _, err := Load("mnist", t.TempDir(), Train); !errors.Is(err, errNotCached) {
		t.Errorf("empty cache: %v", err)
	}
}

// realCache returns the default cache directory if name has been fetched there, else skips.
func realCache(t *testing.T, name string) string {
	t.Helper()
	dir, err := DefaultDir()
	if err != nil {
		t.Skip(err)
	}
	if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
		t.Skipf("%s not fetched into %s (run `ddpm data fetch %s`)", name, dir, name)
	}
	return dir
}

// The real MNIST, when fetched: sizes, the first labels everyone knows (5 0 4 1 9 / 7 2 1 0 4), the
// class counts and the mean pixel (0.1307 * 255 on the training set).
func TestRealMNIST(t *testing.T) {
	dir := realCache(t, "mnist")
	train, err := Load("mnist", dir, Train)
	if err != nil {
		t.Fatal(err)
	}
	test, err := Load("mnist", dir, Test)
	if err != nil {
		t.Fatal(err)
	}
	if train.N != 60000 || test.N != 10000 || train.C != 1 || train.H != 28 || train.W != 28 {
		t.Fatalf("train %d test %d of %dx%dx%d", train.N, test.N, train.C, train.H, train.W)
	}
	if string(train.Labels[:5]) != "\x05\x00\x04\x01\x09" || string(test.Labels[:5]) != "\x07\x02\x01\x00\x04" {
		t.Fatalf("first labels %v / %v", train.Labels[:5], test.Labels[:5])
	}
	var count [10]int
	for _, l := range train.Labels {
		count[l]++
	}
	if count != [10]int{5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949} {
		t.Fatalf("class counts %v", count)
	}
	var sum float64
	for i := 0; i < train.N; i++ {
		for _, v := range train.Uint8(i) {
			sum += float64(v)
		}
	}
	if mean := sum / float64(train.N*784) / 255; mean < 0.1306 || mean > 0.1308 {
		t.Fatalf("mean pixel %.5f, want 0.1307", mean)
	}
}

func TestRealEmoji(t *testing.T) {
	if testing.Short() {
		t.Skip("decodes 6,674 PNGs")
	}
	dir := realCache(t, "emoji")
	s, err := Load("emoji", dir, Train)
	if err != nil {
		t.Fatal(err)
	}
	if s.N != 6674 || s.C != 3 || s.H != 32 || s.W != 32 || len(s.Labels) != s.N {
		t.Fatalf("emoji %dx%dx%dx%d", s.N, s.C, s.H, s.W)
	}
	// Transparent backgrounds became white: most images' corner pixel is pure white.
	white := 0
	for i := 0; i < s.N; i++ {
		px := s.Uint8(i)
		if px[0] == 255 && px[1024] == 255 && px[2048] == 255 {
			white++
		}
	}
	if white < s.N/2 {
		t.Fatalf("only %d of %d images have a white corner", white, s.N)
	}
}

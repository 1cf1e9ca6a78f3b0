package main

import (
	"bytes"
	"fmt"
	"image"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ddpm-go/ddpm/data"
	"github.com/ddpm-go/ddpm/imageio"
)

// readGrey reads a grey PNG's pixels.
func readGrey(t *testing.T, path string) []uint8 {
	t.Helper()
	g, ok := readPNG(t, path).(*image.Gray)
	if !ok {
		t.Fatalf("%s is not a grey PNG", path)
	}
	return g.Pix
}

// TestInpaintKeepsKnownPixels: `ddpm inpaint` writes a completion whose known pixels are the
// input's, byte for byte, with a box and with a mask PNG, by replacement and by RePaint.
func TestInpaintKeepsKnownPixels(t *testing.T) {
	model, _ := evalFixtures(t)
	dir := t.TempDir()
	px := make([]uint8, 28*28)
	for i := range px {
		px[i] = uint8((i * 37) % 256)
	}
	in := filepath.Join(dir, "in.png")
	if err := imageio.WritePNG(in, 1, 28, 28, px); err != nil {
		t.Fatal(err)
	}
	// The mask fills a diagonal band (white) and keeps the rest.
	maskPx := make([]uint8, 28*28)
	for y := range 28 {
		for x := range 28 {
			if d := x - y; d > -4 && d < 4 {
				maskPx[y*28+x] = 255
			}
		}
	}
	maskPath := filepath.Join(dir, "mask.png")
	if err := imageio.WritePNG(maskPath, 1, 28, 28, maskPx); err != nil {
		t.Fatal(err)
	}
	common := []string{"inpaint", "--ckpt", model, "--image", in, "--engine", "ref", "--threads", "1"}
	for name, c := range map[string]struct {
		args []string
		keep func(i int) bool
	}{
		"box":           {[]string{"--box", "0,14,28,14", "--steps", "4"}, func(i int) bool { return i < 14*28 }},
		"mask":          {[]string{"--mask", maskPath, "--steps", "4"}, func(i int) bool { return maskPx[i] == 0 }},
		"box, repaint":  {[]string{"--box", "3,3,10,20", "--repaint", "--steps", "8", "--jumps", "2", "--jump-length", "2"}, func(i int) bool { x, y := i%28, i/28; return x < 3 || x >= 13 || y < 3 || y >= 23 }},
		"mask, 3 drawn": {[]string{"--mask", maskPath, "--steps", "3", "--n", "3", "--seed", "4"}, func(i int) bool { return maskPx[i] == 0 }},
	} {
		out := filepath.Join(dir, "out-"+strings.NewReplacer(" ", "", ",", "-").Replace(name)+".png")
		code, _, errs := runCLI(t, append(append(common, c.args...), "--out", out, "--grid", filepath.Join(dir, "grid.png"))...)
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", name, code, errs)
		}
		got := readGrey(t, out)
		changed, kept := 0, 0
		for i, v := range got {
			if c.keep(i) {
				kept++
				if v != px[i] {
					t.Fatalf("%s: known pixel %d is %d, want %d", name, i, v, px[i])
				}
			} else if v != px[i] {
				changed++
			}
		}
		if changed == 0 || kept == 0 {
			t.Errorf("%s: %d pixels kept, %d filled pixels changed", name, kept, changed)
		}
	}
}

func TestInpaintErrors(t *testing.T) {
	model, _ := evalFixtures(t)
	dir := t.TempDir()
	in := filepath.Join(dir, "in.png")
	if err := imageio.WritePNG(in, 1, 28, 28, make([]uint8, 28*28)); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out.png")
	for name, args := range map[string][]string{
		"no image":       {"inpaint", "--box", "0,0,4,4", "--out", out},
		"mask and box":   {"inpaint", "--image", in, "--box", "0,0,4,4", "--mask", in, "--out", out},
		"neither":        {"inpaint", "--image", in, "--out", out},
		"no output":      {"inpaint", "--image", in, "--box", "0,0,4,4"},
		"box outside":    {"inpaint", "--ckpt", model, "--engine", "ref", "--image", in, "--box", "20,0,10,4", "--out", out},
		"bad box":        {"inpaint", "--image", in, "--box", "1,2,3", "--out", out},
		"class, uncond":  {"inpaint", "--ckpt", model, "--engine", "ref", "--image", in, "--box", "0,0,4,4", "--class", "3", "--out", out},
		"jumps, replace": {"inpaint", "--ckpt", model, "--engine", "ref", "--image", in, "--box", "0,0,4,4", "--jumps", "3", "--out", out},
		"missing image":  {"inpaint", "--ckpt", model, "--engine", "ref", "--image", filepath.Join(dir, "none.png"), "--box", "0,0,4,4", "--out", out},
		"out not png":    {"inpaint", "--image", in, "--box", "0,0,4,4", "--out", filepath.Join(dir, "o.jpg")},
		"mask count":     {"inpaint", "--image", in, "--image", in, "--image", in, "--mask", in, "--mask", in, "--out", out},
		"missing second": {"inpaint", "--ckpt", model, "--engine", "ref", "--image", in, "--image", filepath.Join(dir, "none.png"), "--box", "0,0,4,4", "--out", out},
		"missing mask":   {"inpaint", "--ckpt", model, "--engine", "ref", "--image", in, "--image", in, "--mask", in, "--mask", filepath.Join(dir, "none.png"), "--out", out},
		"too many":       {"inpaint", "--image", in, "--image", in, "--box", "0,0,4,4", "--n", "20000", "--grid", out},
	} {
		code, _, errs := runCLI(t, args...)
		if code == 0 || strings.Count(strings.TrimSpace(errs), "\n") > 0 || strings.Contains(errs, "panic") {
			t.Errorf("%s: exit %d, stderr %q; want one line and a failure", name, code, errs)
		}
	}
}

// TestEvalInpaint: the measurement runs every mask with every method and the three baselines, and
// the original test digits score the classifier's own accuracy on them, whatever the mask.
func TestEvalInpaint(t *testing.T) {
	needMNIST(t)
	model, clf := evalFixtures(t)
	out := t.TempDir()
	code, stdout, errs := runCLI(t, "eval", "inpaint", "--ckpt", model, "--classifier", clf, "--n", "4", "--steps", "3",
		"--repaint-steps", "6", "--jumps", "2", "--jump-length", "2", "--engine", "ref", "--threads", "1", "--out", out)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, row := range []string{"| original |", "| masked |", "| unconditional fill |", "| replace |", "| repaint |"} {
		if !strings.Contains(stdout, row) {
			t.Errorf("no row %q in\n%s", row, stdout)
		}
	}
	b, err := os.ReadFile(filepath.Join(out, "inpaint.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Count(string(b), "\n"); lines != 2*5 {
		t.Errorf("%d JSON lines, want 10 (2 masks x 5 rows)", lines)
	}
	for _, f := range []string{"inpaint-bottom-replace.png", "inpaint-box-repaint.png"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}
	for name, args := range map[string][]string{
		"bad mask":     {"eval", "inpaint", "--masks", "left"},
		"bad method":   {"eval", "inpaint", "--methods", "paint"},
		"class uncond": {"eval", "inpaint", "--ckpt", model, "--classifier", clf, "--n", "2", "--engine", "ref", "--methods", "replace+class", "--steps", "2"},
	} {
		code, _, errs := runCLI(t, args...)
		if code == 0 || strings.Count(strings.TrimSpace(errs), "\n") > 0 {
			t.Errorf("%s: exit %d: %q", name, code, errs)
		}
	}
}

// TestInpaintImages: several --image files, colour and grey of odd sizes, on a colour model: --out
// writes each image's first completion to out-k.png, keeping that image's known pixels byte for
// byte (one box for all, or one mask per image); --grid has a row per image, its masked input then
// its completions; and the first image's completions are the ones it gets alone.
func TestInpaintImages(t *testing.T) {
	model := tinyModelFile(t, 3)
	colour, grey := userImages(t)
	dir := t.TempDir()
	const size = 8
	// Mask A fills the left half, mask B the bottom right quarter.
	maskA, maskB := make([]uint8, size*size), make([]uint8, size*size)
	for i := range maskA {
		x, y := i%size, i/size
		if x < 4 {
			maskA[i] = 255
		}
		if x >= 4 && y >= 4 {
			maskB[i] = 255
		}
	}
	pathA, pathB := filepath.Join(dir, "a.png"), filepath.Join(dir, "b.png")
	for p, px := range map[string][]uint8{pathA: maskA, pathB: maskB} {
		if err := imageio.WritePNG(p, 1, size, size, px); err != nil {
			t.Fatal(err)
		}
	}
	images := []string{colour, grey}
	common := []string{"inpaint", "--ckpt", model, "--image", colour, "--image", grey, "--engine", "ref", "--threads", "1", "--steps", "3", "--n", "2", "--seed", "5"}
	for name, c := range map[string]struct {
		args []string
		keep func(k, i int) bool // pixel i of image k is known
	}{
		"box":       {[]string{"--box", "0,0,8,3"}, func(_, i int) bool { return i >= 3*size }},
		"two masks": {[]string{"--mask", pathA, "--mask", pathB}, func(k, i int) bool { return [][]uint8{maskA, maskB}[k][i] == 0 }},
	} {
		out, grid := filepath.Join(dir, "out.png"), filepath.Join(dir, "grid-"+strings.ReplaceAll(name, " ", "")+".png")
		code, stdout, errs := runCLI(t, append(append(common, c.args...), "--out", out, "--grid", grid)...)
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", name, code, errs)
		}
		if strings.Count(stdout, "wrote ") != 3 {
			t.Errorf("%s: stdout %q, want out-0, out-1 and the grid", name, stdout)
		}
		if _, err := os.Stat(out); err == nil {
			t.Errorf("%s: wrote %s itself for two images", name, out)
		}
		if b := readPNG(t, grid).Bounds(); b.Size() != gridSize(3, 2, size) {
			t.Errorf("%s: --grid is %v, want 3 columns x 2 rows %v", name, b.Size(), gridSize(3, 2, size))
		}
		for k, img := range images {
			want, err := data.ReadImage(img, size, 3)
			if err != nil {
				t.Fatal(err)
			}
			first := filepath.Join(dir, fmt.Sprintf("out-%d.png", k))
			for _, got := range [][]uint8{cellCHW(t, first, 0, 0, size, 3), cellCHW(t, grid, k, 1, size, 3), cellCHW(t, grid, k, 2, size, 3)} {
				changed := 0
				for i, v := range got {
					if c.keep(k, i%(size*size)) {
						if v != want[i] {
							t.Fatalf("%s: image %d: known value %d is %d, want %d", name, k, i, v, want[i])
						}
					} else if v != want[i] {
						changed++
					}
				}
				if changed == 0 {
					t.Errorf("%s: image %d: no unknown value changed", name, k)
				}
			}
			if !bytes.Equal(cellCHW(t, first, 0, 0, size, 3), cellCHW(t, grid, k, 1, size, 3)) {
				t.Errorf("%s: out-%d.png is not the first completion in row %d of the grid", name, k, k)
			}
		}
	}
	// The first image alone: its --out is out-0.png of the pair, its grid row 0 of theirs.
	alone, aloneGrid := filepath.Join(dir, "alone.png"), filepath.Join(dir, "alone-grid.png")
	code, _, errs := runCLI(t, "inpaint", "--ckpt", model, "--image", colour, "--engine", "ref", "--threads", "1", "--steps", "3", "--n", "2", "--seed", "5",
		"--box", "0,0,8,3", "--out", alone, "--grid", aloneGrid)
	if code != 0 {
		t.Fatalf("alone: exit %d: %s", code, errs)
	}
	for col := range 3 {
		if !bytes.Equal(cellCHW(t, aloneGrid, 0, col, size, 3), cellCHW(t, filepath.Join(dir, "grid-box.png"), 0, col, size, 3)) {
			t.Errorf("the first image alone differs from its row of the pair at column %d", col)
		}
	}
}

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ddpm-go/ddpm/data"
	"github.com/ddpm-go/ddpm/imageio"
)

func TestEncodeRecon(t *testing.T) {
	needMNIST(t)
	model, _ := evalFixtures(t)
	npy := filepath.Join(t.TempDir(), "xt.npy")
	code, out, errs := runCLI(t, "encode", "--ckpt", model, "--n", "3", "--steps", "4", "--engine", "ref", "--threads", "1", "--batch", "2", "--out", npy, "--recon")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var r encodeResult
	if err := json.Unmarshal([]byte(out), &r); err != nil || r.N != 3 || r.Steps != 4 || !(r.MSE >= 0) || r.MSE01 != r.MSE/4 {
		t.Fatalf("output %q: %v", out, err)
	}
	a, err := imageio.LoadNPY(npy)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Shape) != 4 || a.Shape[0] != 3 || a.Shape[1] != 1 || a.Shape[2] != 28 || a.Descr != "<f4" {
		t.Errorf("x_T array shape %v dtype %s", a.Shape, a.Descr)
	}
	// --grid: a row of 2 originals over their 2 reconstructions, then the third image and a blank.
	grid := filepath.Join(t.TempDir(), "recon.png")
	code, _, errs = runCLI(t, "encode", "--ckpt", model, "--n", "3", "--steps", "4", "--engine", "ref", "--threads", "1", "--recon", "--grid", grid, "--cols", "2")
	if code != 0 {
		t.Fatalf("--grid: exit %d: %s", code, errs)
	}
	const pad, w = 2, 28
	if b := readPNG(t, grid).Bounds(); b.Dx() != 2*(w+pad)+pad || b.Dy() != 4*(w+pad)+pad {
		t.Errorf("--grid of 3 images in 2 columns: %v, want 2 columns x 4 rows", b)
	}
	show := filepath.Join(t.TempDir(), "show.png")
	if code, _, errs := runCLI(t, "data", "show", "--split", "test", "--n", "2", "--grid", show, "mnist"); code != 0 {
		t.Fatalf("data show: %s", errs)
	}
	g, o := readPNG(t, grid), readPNG(t, show)
	for y := range w + 2*pad {
		for x := range 2*(w+pad) + pad {
			if g.At(x, y) != o.At(x, y) {
				t.Fatalf("--grid's first row differs from the test images at (%d, %d)", x, y)
			}
		}
	}
	// The latents decode through ddpm sample --init like any x_T.
	mustSample(t, "--ckpt", model, "--init", npy, "--steps", "4", "--engine", "ref", "--grid", filepath.Join(t.TempDir(), "g.png"))
}

func readPNG(t *testing.T, path string) image.Image {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// TestInterpolateEnds: the strip's end frames are the images `ddpm sample` draws for indices 0 and 1
// under the same seed (slerp at 0 and 1 returns the latents themselves).
func TestInterpolateEnds(t *testing.T) {
	model, _ := evalFixtures(t)
	dir := t.TempDir()
	strip, grid := filepath.Join(dir, "strip.png"), filepath.Join(dir, "grid.png")
	code, _, errs := runCLI(t, "interpolate", "--ckpt", model, "--pairs", "1", "--frames", "3", "--steps", "3", "--seed", "4", "--engine", "ref", "--out", strip)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	mustSample(t, "--ckpt", model, "--n", "2", "--cols", "2", "--steps", "3", "--seed", "4", "--engine", "ref", "--grid", grid)
	s, g := readPNG(t, strip), readPNG(t, grid)
	const pad, w = 2, 28
	for k, col := range map[int]int{0: 0, 1: 2} { // sample k is strip column col
		for y := range w {
			for x := range w {
				a := g.At(pad+k*(w+pad)+x, pad+y)
				b := s.At(pad+col*(w+pad)+x, pad+y)
				if a != b {
					t.Fatalf("sample %d differs from strip column %d at (%d, %d): %v vs %v", k, col, x, y, a, b)
				}
			}
		}
	}
	for name, args := range map[string][]string{
		"no out":                    {"interpolate", "--ckpt", model},
		"frames 1":                  {"interpolate", "--ckpt", model, "--frames", "1", "--out", strip},
		"encode no-op":              {"encode", "--ckpt", model},
		"encode split":              {"encode", "--ckpt", model, "--split", "val", "--recon"},
		"encode grid without recon": {"encode", "--ckpt", model, "--grid", "g.png", "--out", "x.npy"},
		"encode cols 0":             {"encode", "--ckpt", model, "--recon", "--cols", "0"},
	} {
		if code, _, errs := runCLI(t, args...); code != 2 || strings.Count(strings.TrimSpace(errs), "\n") != 0 {
			t.Errorf("%s: exit %d, stderr %q", name, code, errs)
		}
	}
}

// TestEncodeImages: `ddpm encode --image` encodes the user's files, colour and grey of odd sizes,
// at a colour and a grey model's own shape, in the order given: one latent each, and a --grid whose
// first row is the files as read.
func TestEncodeImages(t *testing.T) {
	colour, grey := userImages(t)
	grey28, _ := evalFixtures(t)
	for _, mc := range []struct {
		name    string
		model   string
		c, size int
	}{{"colour 8x8", tinyModelFile(t, 3), 3, 8}, {"grey 28x28", grey28, 1, 28}} {
		dir := t.TempDir()
		npy, grid := filepath.Join(dir, "xt.npy"), filepath.Join(dir, "recon.png")
		code, out, errs := runCLI(t, "encode", "--ckpt", mc.model, "--image", grey, "--image", colour, "--image", grey, "--steps", "3",
			"--engine", "ref", "--threads", "1", "--batch", "2", "--out", npy, "--recon", "--grid", grid, "--cols", "2")
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", mc.name, code, errs)
		}
		var r encodeResult
		if err := json.Unmarshal([]byte(out), &r); err != nil || r.N != 3 || r.Data != "images" || len(r.Images) != 3 || r.Images[1] != colour || !(r.MSE >= 0) {
			t.Fatalf("%s: output %q: %v", mc.name, out, err)
		}
		a, err := imageio.LoadNPY(npy)
		if err != nil {
			t.Fatal(err)
		}
		if want := []int{3, mc.c, mc.size, mc.size}; fmt.Sprint(a.Shape) != fmt.Sprint(want) {
			t.Errorf("%s: x_T shape %v, want %v", mc.name, a.Shape, want)
		}
		// 3 images in 2 columns: originals, reconstructions, the third original and its reconstruction.
		if b := readPNG(t, grid).Bounds(); b.Size() != gridSize(2, 4, mc.size) {
			t.Errorf("%s: --grid is %v, want %v", mc.name, b.Size(), gridSize(2, 4, mc.size))
		}
		for col, path := range []string{grey, colour} {
			want, err := data.ReadImage(path, mc.size, mc.c)
			if err != nil {
				t.Fatal(err)
			}
			if got := cellCHW(t, grid, 0, col, mc.size, mc.c); !bytes.Equal(got, want) {
				t.Errorf("%s: grid cell %d is not %s as read", mc.name, col, filepath.Base(path))
			}
		}
	}
}

func TestEncodeImageErrors(t *testing.T) {
	model := tinyModelFile(t, 3)
	colour, _ := userImages(t)
	npy := filepath.Join(t.TempDir(), "x.npy")
	for name, args := range map[string][]string{
		"image and data":  {"encode", "--ckpt", model, "--image", colour, "--data", "mnist", "--out", npy},
		"image and n":     {"encode", "--ckpt", model, "--image", colour, "--n", "2", "--out", npy},
		"image and split": {"encode", "--ckpt", model, "--image", colour, "--split", "train", "--recon"},
		"missing file":    {"encode", "--ckpt", model, "--engine", "ref", "--image", colour, "--image", filepath.Join(t.TempDir(), "none.png"), "--out", npy},
		"not an image":    {"encode", "--ckpt", model, "--engine", "ref", "--image", model, "--out", npy},
		"empty image":     {"encode", "--ckpt", model, "--image", "", "--out", npy},
	} {
		oneLineFailure(t, name, args...)
	}
	if _, err := os.Stat(npy); err == nil {
		t.Error("a failed encode wrote its --out")
	}
}

// TestInterpolateImages: `ddpm interpolate --image` slerps between the DDIM encodings of pairs of
// files, one row per pair; a row's ends are the files' reconstructions (`ddpm encode --recon` with
// the same steps), and a file interpolated with itself is its reconstruction at every frame.
func TestInterpolateImages(t *testing.T) {
	colour, grey := userImages(t)
	grey28, _ := evalFixtures(t)
	for _, mc := range []struct {
		name    string
		model   string
		c, size int
	}{{"colour 8x8", tinyModelFile(t, 3), 3, 8}, {"grey 28x28", grey28, 1, 28}} {
		dir := t.TempDir()
		strip, recon := filepath.Join(dir, "strip.png"), filepath.Join(dir, "recon.png")
		common := []string{"--ckpt", mc.model, "--steps", "3", "--engine", "ref", "--threads", "1"}
		code, out, errs := runCLI(t, append([]string{"interpolate", "--image", colour, "--image", colour, "--image", grey, "--image", colour,
			"--frames", "3", "--out", strip}, common...)...)
		if code != 0 || !strings.Contains(out, "2 pairs x 3 frames") {
			t.Fatalf("%s: exit %d: %s%s", mc.name, code, out, errs)
		}
		if b := readPNG(t, strip).Bounds(); b.Size() != gridSize(3, 2, mc.size) {
			t.Fatalf("%s: strip is %v, want 3 frames x 2 pairs %v", mc.name, b.Size(), gridSize(3, 2, mc.size))
		}
		code, _, errs = runCLI(t, append([]string{"encode", "--image", colour, "--image", grey, "--recon", "--grid", recon, "--cols", "2"}, common...)...)
		if code != 0 {
			t.Fatalf("%s: encode: exit %d: %s", mc.name, code, errs)
		}
		reconColour, reconGrey := cellCHW(t, recon, 1, 0, mc.size, mc.c), cellCHW(t, recon, 1, 1, mc.size, mc.c)
		for _, cell := range []struct {
			row, col int
			want     []uint8
			what     string
		}{
			{0, 0, reconColour, "colour"}, {0, 1, reconColour, "colour"}, {0, 2, reconColour, "colour"},
			{1, 0, reconGrey, "grey"}, {1, 2, reconColour, "colour"},
		} {
			if !bytes.Equal(cellCHW(t, strip, cell.row, cell.col, mc.size, mc.c), cell.want) {
				t.Errorf("%s: strip row %d frame %d is not the %s file's reconstruction", mc.name, cell.row, cell.col, cell.what)
			}
		}
		if bytes.Equal(cellCHW(t, strip, 1, 1, mc.size, mc.c), reconGrey) {
			t.Errorf("%s: the middle of grey-to-colour is the grey end", mc.name)
		}
	}
}

func TestInterpolateImageErrors(t *testing.T) {
	model := tinyModelFile(t, 1)
	colour, grey := userImages(t)
	out := filepath.Join(t.TempDir(), "strip.png")
	for name, args := range map[string][]string{
		"odd count":    {"interpolate", "--ckpt", model, "--image", colour, "--image", grey, "--image", colour, "--out", out},
		"one image":    {"interpolate", "--ckpt", model, "--image", colour, "--out", out},
		"with seed":    {"interpolate", "--ckpt", model, "--image", colour, "--image", grey, "--seed", "3", "--out", out},
		"with pairs":   {"interpolate", "--ckpt", model, "--image", colour, "--image", grey, "--pairs", "1", "--out", out},
		"missing file": {"interpolate", "--ckpt", model, "--engine", "ref", "--image", colour, "--image", filepath.Join(t.TempDir(), "none.jpg"), "--out", out},
		"no out":       {"interpolate", "--ckpt", model, "--image", colour, "--image", grey},
	} {
		oneLineFailure(t, name, args...)
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("a failed interpolate wrote its --out")
	}
}

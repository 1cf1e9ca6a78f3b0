package main

import (
	"encoding/json"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

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

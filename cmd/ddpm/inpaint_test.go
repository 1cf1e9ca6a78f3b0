package main

import (
	"image"
	"os"
	"path/filepath"
	"strings"
	"testing"

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

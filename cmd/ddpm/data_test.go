package main

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDataCommandErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"data"}, "missing subcommand"},
		{[]string{"data", "frobnicate"}, `unknown subcommand "frobnicate"`},
		{[]string{"data", "fetch"}, "name a dataset"},
		{[]string{"data", "fetch", "cifar10"}, `unknown dataset "cifar10"`},
		{[]string{"data", "verify", "mnist", "--dir", "/nonexistent/ddpm"}, "ddpm data fetch mnist"},
		{[]string{"data", "show", "--split", "val", "mnist"}, `--split "val"`},
		{[]string{"data", "show", "/nonexistent/folder"}, "neither a dataset"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(tc.args, &stdout, &stderr); code != 2 {
			t.Errorf("%v: exit %d, want 2", tc.args, code)
		}
		if !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%v: stderr %q, want %q", tc.args, stderr.String(), tc.want)
		}
	}
}

// `ddpm data show FOLDER --grid` loads a folder of images (flags after the name work too) and
// writes the grid.
func TestDataShowFolder(t *testing.T) {
	dir := t.TempDir()
	for i, c := range []color.Gray{{0}, {255}} {
		m := image.NewGray(image.Rect(0, 0, 10, 6))
		for k := range m.Pix {
			m.Pix[k] = c.Y
		}
		var b bytes.Buffer
		if err := png.Encode(&b, m); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, string(rune('a'+i))+".png"), b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	grid := filepath.Join(t.TempDir(), "grid.png")
	var stdout, stderr bytes.Buffer
	code := run([]string{"data", "show", dir, "--size", "4", "--channels", "1", "--grid", grid}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), "2 images of 1x4x4") {
		t.Fatalf("stdout %q", stdout.String())
	}
	if _, err := os.Stat(grid); err != nil {
		t.Fatal(err)
	}
}

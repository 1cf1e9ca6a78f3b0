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

	"github.com/ddpm-go/ddpm/data"
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
		{[]string{"data", "show", "emoji:colour"}, `unknown label set "colour" (emoji has category, style)`},
		{[]string{"data", "fetch", "emoji:colour"}, `unknown label set "colour"`},
		{[]string{"data", "show", "mnist", "--size", "32"}, "--size 32: mnist images are 28x28"},
		{[]string{"data", "show", "emoji", "--size", "8", "--dir", "/nonexistent/ddpm"}, "--size 8: emoji can be read at 16 to 64"},
		{[]string{"data", "verify", "emoji", "--dir", "/nonexistent/ddpm"}, "ddpm data fetch emoji"},
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
	// With no --size or --channels a grey folder is 1x28x28, and a file that is not a readable
	// image is skipped in one line.
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	stdout.Reset()
	if code := run([]string{"data", "show", dir}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if out := stdout.String(); !strings.Contains(out, "2 images of 1x28x28") || !strings.Contains(out, "skipped 1 file that is not a readable image (notes.txt)") {
		t.Fatalf("stdout %q", out)
	}
}

// `ddpm data show emoji` on the real data, when fetched: the test split with its class names.
func TestDataShowEmoji(t *testing.T) {
	dir, err := data.DefaultDir()
	if err != nil {
		t.Skip(err)
	}
	if _, _, err := data.Verify(mustLookup(t, "emoji"), dir); err != nil {
		t.Skipf("emoji not fetched: %v", err)
	}
	for spec, want := range map[string]string{
		"emoji":       "classes: 0 Smileys & Emotion 30, 1 People & Body 584,",
		"emoji:style": "classes: 0 Google Noto 444, 1 Twitter Twemoji 444",
	} {
		var stdout, stderr bytes.Buffer
		if code := run([]string{"data", "show", spec, "--split", "test"}, &stdout, &stderr); code != 0 {
			t.Fatalf("%s: exit %d: %s", spec, code, stderr.String())
		}
		if out := stdout.String(); !strings.Contains(out, "888 images of 3x32x32 (test split)") || !strings.Contains(out, want) {
			t.Fatalf("%s: stdout %q", spec, out)
		}
	}
}

func mustLookup(t *testing.T, name string) *data.Source {
	t.Helper()
	src, err := data.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	return src
}

package main

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ddpm-go/ddpm/checkpoint"
	"github.com/ddpm-go/ddpm/imageio"
	"github.com/ddpm-go/ddpm/tensor"
)

const trainTinyModel = `{"name": "tiny", "image_size": 8, "in_channels": 1, "out_channels": 1,
	"base_channels": 8, "channel_mult": [1, 2], "res_blocks": 1, "attn_resolutions": [],
	"heads": 1, "dropout": 0, "time_embed_dim": 16, "sinusoidal_dim": 8, "groups": 4}`

// trainFolder writes n small grey PNGs (diagonal stripes) to a fresh folder.
func trainFolder(t *testing.T, n int) string {
	t.Helper()
	dir := t.TempDir()
	for i := range n {
		pix := make([]uint8, 8*8)
		for j := range pix {
			if (j/8+j%8+i)%4 < 2 {
				pix[j] = 255
			}
		}
		if err := imageio.WritePNG(filepath.Join(dir, fmt.Sprintf("%02d.png", i)), 1, 8, 8, pix); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestTrainFolderAndResume(t *testing.T) {
	dir := t.TempDir()
	model := writeFile(t, dir, "tiny.json", trainTinyModel)
	imgs := trainFolder(t, 12)
	out := filepath.Join(dir, "run")
	code, stdout, stderr := runCLI(t, "train", "--data", imgs, "--model", model, "--engine", "ref", "--steps", "3",
		"--batch", "4", "--sample-n", "4", "--out", out, "--threads", "1")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "step 3/3") || !strings.Contains(stdout, checkpoint.CheckpointPath(out, 3)) {
		t.Fatalf("stdout: %q", stdout)
	}
	if !strings.Contains(stderr, "step 3/3") { // a log line (stderr is not a terminal here)
		t.Fatalf("stderr has no progress line: %q", stderr)
	}
	code, stdout, stderr = runCLI(t, "train", "--resume", out, "--steps", "5")
	if code != 0 || !strings.Contains(stdout, "step 5/5") {
		t.Fatalf("resume: exit %d: %s %s", code, stdout, stderr)
	}
	if _, err := os.Stat(checkpoint.GridPath(out, 5)); err != nil {
		t.Fatal(err)
	}
	// The run directory loads for sampling.
	code, _, stderr = runCLI(t, "train", "--resume", out, "--batch", "8")
	if code != 2 || !strings.Contains(stderr, "--batch cannot change on resume") {
		t.Fatalf("changing batch on resume: exit %d, %q", code, stderr)
	}
}

// Invalid input: exit status 2 and exactly one line on stderr.
func TestTrainInvalidFlags(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--batch", "0"}, "--batch must be at least 1"},
		{[]string{"--bogus"}, "flag provided but not defined: -bogus"},
		{[]string{"--prediction", "score"}, "--prediction"},
		{[]string{"--schedule", "cosine", "--zero-snr"}, "--zero-snr needs"},
		{[]string{"--preset", "seed-cifar"}, "unknown preset"},
		{[]string{"--config", filepath.Join(dir, "none.json")}, "none.json"},
		{[]string{"--resume", filepath.Join(dir, "norun")}, "norun"},
		{[]string{"--resume", dir, "--preset", "paper-mnist"}, "drop --preset"},
		{[]string{"--lr", "abc"}, "invalid value"},
		{[]string{"extra"}, "unexpected argument"},
		{[]string{"--model", "unet-xl", "--data", trainFolder(t, 1), "--out", filepath.Join(dir, "r")}, "unet-xl"},
	} {
		code, _, stderr := runCLI(t, append([]string{"train"}, tc.args...)...)
		lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
		if code != 2 || len(lines) != 1 || !strings.HasPrefix(stderr, "ddpm train: ") || !strings.Contains(stderr, tc.want) {
			t.Errorf("train %v: exit %d, stderr %q; want 2 and one line with %q", tc.args, code, stderr, tc.want)
		}
	}
}

// A folder of colour pictures of mixed sizes and formats trains with no model flag: the images come
// in at 32x32 RGB and the model is unet-c32, recorded as such in the checkpoint.
func TestTrainColourFolderAuto(t *testing.T) {
	dir := t.TempDir()
	imgs := filepath.Join(dir, "pics")
	if err := os.Mkdir(imgs, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, wh := range [][2]int{{40, 30}, {20, 50}, {64, 64}, {33, 17}} {
		img := image.NewNRGBA(image.Rect(0, 0, wh[0], wh[1]))
		for y := range wh[1] {
			for x := range wh[0] {
				img.Set(x, y, color.NRGBA{uint8(40 * i), uint8(4 * x), uint8(4 * y), 255})
			}
		}
		var buf bytes.Buffer
		name := fmt.Sprintf("%d.png", i)
		if i%2 == 1 {
			name = fmt.Sprintf("%d.jpg", i)
			if err := jpeg.Encode(&buf, img, nil); err != nil {
				t.Fatal(err)
			}
		} else if err := png.Encode(&buf, img); err != nil {
			t.Fatal(err)
		}
		writeFile(t, imgs, name, buf.String())
	}
	out := filepath.Join(dir, "run")
	code, stdout, stderr := runCLI(t, "train", "--data", imgs, "--engine", "ref", "--steps", "1",
		"--batch", "2", "--sample-n", "0", "--out", out, "--threads", "1")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "step 1/1") {
		t.Fatalf("stdout: %q", stdout)
	}
	m, err := checkpoint.LoadForSampling(out, tensor.NewReference(1), true)
	if err != nil {
		t.Fatal(err)
	}
	if c := m.Net.Cfg; c.Name != "unet-c32" || c.InChannels != 3 || c.ImageSize != 32 {
		t.Fatalf("model %s %dx%d", c.Name, c.InChannels, c.ImageSize)
	}
	// A size the named model cannot take is refused before training, with sizes it can.
	code, _, stderr = runCLI(t, "train", "--data", imgs, "--model", "unet-c32", "--size", "20", "--engine", "ref",
		"--steps", "1", "--batch", "2", "--out", filepath.Join(dir, "r2"))
	if code == 0 || !strings.Contains(stderr, "try --size 16 or 24") {
		t.Fatalf("--size 20 with unet-c32: exit %d, %q", code, stderr)
	}
}

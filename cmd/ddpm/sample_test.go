package main

import (
	"bytes"
	"fmt"
	"image/gif"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/ddpm-go/ddpm/checkpoint"
	"github.com/ddpm-go/ddpm/imageio"
	"github.com/ddpm-go/ddpm/nn"
	"github.com/ddpm-go/ddpm/tensor"
	"github.com/ddpm-go/ddpm/tensor/dnnl"
)

// tinyModelFile saves a small random UNet (8x8, 1 or 3 channels, attention at 4x4) with the sampling
// keys of package train, T = 40, and returns its path.
func tinyModelFile(t *testing.T, channels int) string {
	t.Helper()
	cfg := nn.Config{Name: "tiny", ImageSize: 8, InChannels: channels, OutChannels: channels, BaseChannels: 8,
		ChannelMult: []int{1, 2}, ResBlocks: 1, AttnResolutions: []int{4}, Heads: 2,
		TimeEmbedDim: 16, SinusoidalDim: 8, Groups: 4}
	u, err := nn.New(cfg, tensor.NewReference(1), 5)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), fmt.Sprintf("tiny%d.safetensors", channels))
	meta := map[string]string{checkpoint.MetaSchedule: "linear", checkpoint.MetaTimesteps: "40", checkpoint.MetaZeroSNR: "false", checkpoint.MetaPrediction: "eps"}
	if err := checkpoint.SaveModel(path, u, meta); err != nil {
		t.Fatal(err)
	}
	return path
}

func mustSample(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errs := runCLI(t, append([]string{"sample"}, args...)...)
	if code != 0 {
		t.Fatalf("ddpm sample %s: exit %d: %s", strings.Join(args, " "), code, errs)
	}
	return out
}

func loadArr0(t *testing.T, path string) *imageio.Array {
	t.Helper()
	z, err := imageio.LoadNPZ(path)
	if err != nil {
		t.Fatal(err)
	}
	a := z["arr_0"]
	if a == nil {
		t.Fatalf("%s has no arr_0", path)
	}
	return a
}

// Off a terminal, progress is a header and plain lines, ending at 100% of all batches' steps.
func TestSampleProgressLines(t *testing.T) {
	model := tinyModelFile(t, 1)
	code, _, errs := runCLI(t, "sample", "--ckpt", model, "--engine", "ref", "--n", "3", "--batch", "2", "--steps", "10",
		"--npz", filepath.Join(t.TempDir(), "s.npz"))
	lines := strings.Split(strings.TrimSpace(errs), "\n")
	if code != 0 || !strings.HasPrefix(lines[0], "sampling 3 images (0..2, seed 0) of 1x8x8") || len(lines) > 14 ||
		!strings.Contains(errs, "step 10/10 of batch 2/2 (100%)") || strings.Contains(errs, "\r") {
		t.Errorf("exit %d, stderr:\n%s", code, errs)
	}
}

// TestSampleIndexInvariance: image i depends only on the seed and its global index. Four images in
// one batch, in batches of one, and images 2..3 alone (--start 2) are the same bytes, on the
// reference engine with 1 and 2 threads and on oneDNN fp32 when built in.
func TestSampleIndexInvariance(t *testing.T) {
	model := tinyModelFile(t, 1)
	dir := t.TempDir()
	engines := [][]string{{"--engine", "ref", "--threads", "1"}, {"--engine", "ref", "--threads", "2"}}
	if dnnl.Available() {
		engines = append(engines, []string{"--engine", "dnnl", "--precision", "fp32", "--threads", "1"},
			[]string{"--engine", "dnnl", "--precision", "fp32", "--threads", "2"},
			[]string{"--engine", "dnnl", "--precision", "bf16", "--threads", "2"})
	}
	for _, sampler := range [][]string{{"--sampler", "ddpm", "--steps", "5"}, {"--sampler", "ddim", "--steps", "4", "--eta", "0.7"}} {
		byEngine := map[string][]float64{} // engine and precision -> bytes of the first thread count
		for _, eng := range engines {
			get := func(name string, extra ...string) []float64 {
				p := filepath.Join(dir, name)
				args := append(append(append([]string{"--ckpt", model, "--seed", "11", "--npz", p}, sampler...), eng...), extra...)
				mustSample(t, args...)
				return loadArr0(t, p).Values
			}
			all := get("all.npz", "--n", "4", "--batch", "4")
			ones := get("ones.npz", "--n", "4", "--batch", "1")
			tail := get("tail.npz", "--n", "2", "--start", "2", "--batch", "2")
			if !reflect.DeepEqual(all, ones) || !reflect.DeepEqual(all[len(all)/2:], tail) {
				t.Errorf("%v %v: --batch 4, --batch 1 and --start 2 give different bytes", sampler, eng)
			}
			key := strings.Join(eng[:len(eng)-2], " ")
			if prev, ok := byEngine[key]; !ok {
				byEngine[key] = all
			} else if !reflect.DeepEqual(prev, all) {
				t.Errorf("%v %s: the bytes depend on --threads", sampler, key)
			}
		}
	}
}

func TestSampleOutputs(t *testing.T) {
	for _, channels := range []int{1, 3} {
		model := tinyModelFile(t, channels)
		dir := t.TempDir()
		grid, npz, out, anim := filepath.Join(dir, "g.png"), filepath.Join(dir, "s.npz"), filepath.Join(dir, "pngs"), filepath.Join(dir, "r.gif")
		stdout := mustSample(t, "--ckpt", model, "--engine", "ref", "--n", "5", "--start", "7", "--batch", "2", "--steps", "8",
			"--grid", grid, "--out-dir", out, "--npz", npz, "--gif", anim, "--gif-n", "3", "--gif-every", "3")
		for _, p := range []string{grid, npz, out, anim} {
			if !strings.Contains(stdout, p) {
				t.Errorf("stdout does not name %s:\n%s", p, stdout)
			}
		}
		// Grid: ceil(sqrt(5)) = 3 columns, 2 rows of 8x8 images with a 2-pixel border.
		f, _ := os.Open(grid)
		img, err := png.Decode(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if b := img.Bounds(); b.Dx() != 3*10+2 || b.Dy() != 2*10+2 {
			t.Errorf("grid is %v, want 32x22", b)
		}
		// One PNG per image, named by global index, holding the same pixels as the .npz, and so does
		// the grid (image 0 sits at (2, 2)).
		a := loadArr0(t, npz)
		for y := 0; y < 8; y++ {
			for x := 0; x < 8; x++ {
				r, g, b, _ := img.At(2+x, 2+y).RGBA()
				want := a.Values[(y*8+x)*channels : (y*8+x+1)*channels]
				if got := []float64{float64(r >> 8), float64(g >> 8), float64(b >> 8)}[:channels]; !reflect.DeepEqual(got, want) {
					t.Fatalf("grid pixel (%d,%d) = %v, npz has %v", x, y, got, want)
				}
			}
		}
		if !reflect.DeepEqual(a.Shape, []int{5, 8, 8, channels}) || a.Descr != "|u1" {
			t.Fatalf("npz arr_0: %v %s, want (5,8,8,%d) uint8", a.Shape, a.Descr, channels)
		}
		entries, _ := os.ReadDir(out)
		if len(entries) != 5 || entries[0].Name() != "000007.png" || entries[4].Name() != "000011.png" {
			t.Fatalf("out-dir holds %v", entries)
		}
		f, _ = os.Open(filepath.Join(out, "000009.png"))
		im2, err := png.Decode(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		for y := 0; y < 8; y++ {
			for x := 0; x < 8; x++ {
				r, g, b, _ := im2.At(x, y).RGBA()
				want := a.Values[((2*8+y)*8+x)*channels : ((2*8+y)*8+x+1)*channels]
				got := []float64{float64(r >> 8), float64(g >> 8), float64(b >> 8)}[:channels]
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("000009.png pixel (%d,%d) = %v, npz has %v", x, y, got, want)
				}
			}
		}
		// GIF: 3 images, one (x_t, x0) pair per row; steps 0, 3, 6, the last (7), and the final frame.
		f, _ = os.Open(anim)
		g, err := gif.DecodeAll(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		scale := 64 / 8
		if len(g.Image) != 5 || g.Config.Width != (2*10+2)*scale || g.Config.Height != (3*10+2)*scale || g.Delay[4] != 200 {
			t.Errorf("gif: %d frames of %dx%d, delays %v", len(g.Image), g.Config.Width, g.Config.Height, g.Delay)
		}
	}
}

// The .npz must load in NumPy itself as uint8 (N,H,W,C).
func TestSampleNPZNumPy(t *testing.T) {
	const py = "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import numpy").Run(); err != nil {
		t.Skip("no python3 with numpy")
	}
	model := tinyModelFile(t, 3)
	npz := filepath.Join(t.TempDir(), "s.npz")
	mustSample(t, "--ckpt", model, "--engine", "ref", "--n", "3", "--steps", "4", "--npz", npz)
	out, err := exec.Command(py, "-c", `import sys, numpy as np; a = np.load(sys.argv[1])["arr_0"]; print(a.dtype, a.shape)`, npz).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "uint8 (3, 8, 8, 3)" {
		t.Errorf("numpy: %v: %s", err, out)
	}
}

// --init starts from a given x_T, in either accepted shape; deterministic DDIM then gives the same
// images whatever the seed.
func TestSampleInit(t *testing.T) {
	model := tinyModelFile(t, 1)
	dir := t.TempDir()
	xt := make([]float32, 3*64)
	for i := range xt {
		xt[i] = float32(i%7) - 3
	}
	flat, nchw := filepath.Join(dir, "flat.npy"), filepath.Join(dir, "nchw.npy")
	if err := imageio.SaveNPY(flat, []int{3, 64}, xt); err != nil {
		t.Fatal(err)
	}
	if err := imageio.SaveNPY(nchw, []int{3, 1, 8, 8}, xt); err != nil {
		t.Fatal(err)
	}
	var got [][]float64
	for i, init := range []string{flat, nchw} {
		p := filepath.Join(dir, fmt.Sprintf("%d.npz", i))
		mustSample(t, "--ckpt", model, "--engine", "ref", "--steps", "5", "--init", init, "--seed", fmt.Sprint(i), "--npz", p)
		a := loadArr0(t, p)
		if a.Shape[0] != 3 {
			t.Fatalf("--init of 3 rows gave %d images", a.Shape[0])
		}
		got = append(got, a.Values)
	}
	if !reflect.DeepEqual(got[0], got[1]) {
		t.Error("the same x_T as (N,D) and (N,C,H,W) with different seeds gives different DDIM images")
	}
	p := filepath.Join(dir, "noinit.npz")
	mustSample(t, "--ckpt", model, "--engine", "ref", "--steps", "5", "--n", "3", "--npz", p)
	if reflect.DeepEqual(loadArr0(t, p).Values, got[0]) {
		t.Error("--init made no difference")
	}
}

func TestSampleErrors(t *testing.T) {
	model := tinyModelFile(t, 1)
	dir := t.TempDir()
	corrupt := writeFile(t, dir, "corrupt.safetensors", "\x10\x00\x00\x00\x00\x00\x00\x00{not json}      ")
	badInit := filepath.Join(dir, "bad.npy")
	imageio.SaveNPY(badInit, []int{2, 1, 4, 4}, make([]float32, 32))
	intInit := filepath.Join(dir, "u8.npy")
	imageio.SaveNPY(intInit, []int{2, 64}, make([]uint8, 128))
	okInit := filepath.Join(dir, "ok.npy")
	imageio.SaveNPY(okInit, []int{2, 64}, make([]float64, 128))
	garbage := writeFile(t, dir, "garbage.npy", "hello")
	grid := filepath.Join(dir, "g.png")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--ckpt", filepath.Join(dir, "nope.safetensors"), "--grid", grid}, "nope.safetensors"},
		{[]string{"--ckpt", corrupt, "--grid", grid}, "corrupt.safetensors"},
		{[]string{"--ckpt", dir, "--grid", grid}, checkpoint.EMAFile},
		{[]string{"--ckpt", model, "--steps", "0", "--grid", grid}, "--steps 0"},
		{[]string{"--ckpt", model, "--steps", "41", "--grid", grid}, "steps 41 outside [1, 40]"},
		{[]string{"--ckpt", model, "--steps", "-3", "--grid", grid}, "--steps -3"},
		{[]string{"--ckpt", model, "--eta", "-1", "--grid", grid}, "--eta -1"},
		{[]string{"--ckpt", model, "--eta", "NaN", "--grid", grid}, "--eta NaN"},
		{[]string{"--ckpt", model, "--eps-scale", "0", "--grid", grid}, "--eps-scale 0"},
		{[]string{"--ckpt", model, "--eps-scale", "-Inf", "--grid", grid}, "--eps-scale -Inf"},
		{[]string{"--ckpt", model, "--sampler", "euler", "--grid", grid}, "unknown sampler"},
		{[]string{"--ckpt", model, "--spacing", "uniform", "--grid", grid}, "unknown spacing"},
		{[]string{"--ckpt", model, "--sampler", "ddpm", "--variance", "small", "--grid", grid}, "unknown variance"},
		{[]string{"--ckpt", model, "--sampler", "ddim", "--variance", "beta", "--grid", grid}, "variance applies"},
		{[]string{"--ckpt", model, "--sampler", "ddpm", "--eta", "1", "--grid", grid}, "eta"},
		{[]string{"--ckpt", model, "--sigma-hat", "--eta", "0.5", "--grid", grid}, "sigma-hat"},
		{[]string{"--ckpt", model, "--init", badInit, "--grid", grid}, "shape [2 1 4 4]"},
		{[]string{"--ckpt", model, "--init", intInit, "--grid", grid}, "dtype |u1"},
		{[]string{"--ckpt", model, "--init", garbage, "--grid", grid}, "garbage.npy"},
		{[]string{"--ckpt", model, "--init", okInit, "--n", "3", "--grid", grid}, "holds 2 images"},
		{[]string{"--ckpt", model, "--n", "0", "--grid", grid}, "--n 0"},
		{[]string{"--ckpt", model, "--batch", "0", "--grid", grid}, "--batch 0"},
		{[]string{"--ckpt", model, "--start", "-1", "--grid", grid}, "--start -1"},
		{[]string{"--ckpt", model}, "nowhere to write"},
		{[]string{"--ckpt", model, "--ema", "--no-ema", "--grid", grid}, "not both"},
		{[]string{"--ckpt", model, "--grid", filepath.Join(dir, "no", "g.png")}, "does not exist"},
		{[]string{"--ckpt", model, "--grid", grid, "extra"}, "unexpected argument"},
		{[]string{"--ckpt", model, "--bogus", "--grid", grid}, "bogus"},
		{[]string{"--ckpt", model, "--engine", "ref", "--precision", "bf16", "--grid", grid}, "bf16"},
		{[]string{"--ckpt", model, "--engine", "cuda", "--grid", grid}, "unknown engine"},
	} {
		code, _, errs := runCLI(t, append([]string{"sample"}, tc.args...)...)
		lines := strings.Split(strings.TrimSpace(errs), "\n")
		if code != 2 || len(lines) != 1 || !strings.Contains(errs, tc.want) || strings.Contains(errs, "panic") {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 and one line containing %q", tc.args, code, errs, tc.want)
		}
	}
	if _, err := os.Stat(grid); err == nil {
		t.Error("a failed run wrote the grid")
	}
}

// Without --ckpt the shipped model is used; a build without one says so in one line.
func TestSampleShipped(t *testing.T) {
	grid := filepath.Join(t.TempDir(), "g.png")
	code, _, errs := runCLI(t, "sample", "--engine", "ref", "--n", "2", "--steps", "2", "--grid", grid)
	if code != 0 {
		if !strings.Contains(errs, "no shipped model") || strings.Count(errs, "\n") != 1 {
			t.Errorf("exit %d: %q", code, errs)
		}
		return
	}
	b, _ := os.ReadFile(grid)
	if _, err := png.Decode(bytes.NewReader(b)); err != nil {
		t.Errorf("shipped model grid: %v", err)
	}
}

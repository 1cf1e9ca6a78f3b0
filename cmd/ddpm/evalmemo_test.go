package main

import (
	"encoding/json"
	"fmt"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ddpm-go/ddpm/eval"
	"github.com/ddpm-go/ddpm/imageio"
)

// imageFolder writes n random 8x8 colour PNGs into a new folder and returns it.
func imageFolder(t *testing.T, n int, seed uint64) string {
	t.Helper()
	dir := t.TempDir()
	r := rand.New(rand.NewPCG(seed, 1))
	for i := range n {
		px := make([]uint8, 3*8*8)
		for j := range px {
			px[j] = uint8(r.IntN(256))
		}
		if err := imageio.WritePNG(filepath.Join(dir, fmt.Sprintf("%03d.png", i)), 3, 8, 8, px); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// The command end to end on a tiny random 8x8 model: a folder of training images has no test split,
// so the test images come from --test, a folder of held-out ones. Noise from an untrained model
// copies nothing; the report counts what was asked (--test-n above the folder's 20: all of them) and the pairs grid has a row of samples above a
// row of their nearest training images.
func TestEvalMemorization(t *testing.T) {
	model := tinyModelFile(t, 3)
	train, test := imageFolder(t, 60, 1), imageFolder(t, 20, 2)
	grid := filepath.Join(t.TempDir(), "pairs.png")
	code, out, errs := runCLI(t, "eval", "memorization", "--ckpt", model, "--data", train, "--test", test, "--n", "6",
		"--steps", "2", "--engine", "ref", "--threads", "1", "--pairs", grid, "--pairs-n", "5", "--test-n", "50")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if strings.Count(out, "\n") != 1 {
		t.Fatalf("want one JSON line, got %q", out)
	}
	var rep eval.MemoReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("not JSON: %v: %q", err, out)
	}
	if rep.N != 6 || rep.TrainN != 60 || rep.TestN != 20 || rep.K != eval.MemoK || rep.Copies || rep.Flagged != 0 ||
		rep.Rule != eval.MemoRule || !(rep.Samples.Min > 0 && rep.Samples.Min <= rep.Samples.P50) || rep.Test.P1 <= 0 {
		t.Errorf("report %s", out)
	}
	for _, field := range []string{`"samples_nn":{"min":`, `"test_nn":`, `"below_test_p1":`, `"test_flagged":0`, `"copies":false`, `"test":"` + test} {
		if !strings.Contains(out, field) {
			t.Errorf("no %s in %s", field, out)
		}
	}
	f, err := os.Open(grid)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	// 5 columns, one band of two rows, 8-pixel images with the grid's padding.
	if b := img.Bounds(); b.Dx() != 5*(8+imageio.GridPad)+imageio.GridPad || b.Dy() != 2*(8+imageio.GridPad)+imageio.GridPad {
		t.Errorf("pairs grid is %v", b)
	}
}

func TestEvalMemorizationErrors(t *testing.T) {
	model := tinyModelFile(t, 3)
	train := imageFolder(t, 3, 1)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--ckpt", model, "--data", train, "--n", "2"}, "has no test split: give --test DIR"},
		{[]string{"--n", "0"}, "--n 0 must be >= 1"},
		{[]string{"--test-n", "-1"}, "--test-n -1 must be >= 0"},
		{[]string{"--pairs-n", "4"}, "--pairs-n needs --pairs"},
		{[]string{"--guidance", "2"}, "--guidance needs --class-balanced"},
		{[]string{"--ckpt", model, "--data", train, "--test", "mnist"}, "--test mnist: want a folder"},
		{[]string{"--ckpt", model, "--data", train, "--test", train, "--class-balanced", "--n", "2", "--steps", "1", "--engine", "ref"}, "--class-balanced: model"},
	} {
		code, _, errs := runCLI(t, append([]string{"eval", "memorization"}, c.args...)...)
		if code != 2 || !strings.Contains(errs, c.want) || strings.Count(strings.TrimSpace(errs), "\n") > 2 {
			t.Errorf("%v: exit %d, stderr %q, want %q", c.args, code, errs, c.want)
		}
	}
}

package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestBadInputOneLine: every input below, each found by probing a command as a hostile but fair user
// would, gets exit status 2 and one line naming what is wrong, in seconds, with nothing allocated for
// it: no panic, no goroutine dump, no hang.
func TestBadInputOneLine(t *testing.T) {
	model := tinyModelFile(t, 1)
	dir := t.TempDir()
	file := filepath.Join(dir, "a-file")
	os.WriteFile(file, []byte("x"), 0o644)
	fifo := filepath.Join(dir, "fifo.safetensors")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	sparse := filepath.Join(dir, "sparse.safetensors")
	if b, err := os.ReadFile(model); err == nil {
		os.WriteFile(sparse, b, 0o644)
		os.Truncate(sparse, 20<<30)
	}
	trailing := filepath.Join(dir, "run.json")
	os.WriteFile(trailing, []byte(`{"steps": 3} {"steps": 4}`), 0o644)
	huge := filepath.Join(dir, "huge.json")
	os.WriteFile(huge, []byte(`{"name": "huge", "image_size": 32, "in_channels": 1, "out_channels": 1, "base_channels": 16384,
		"channel_mult": [1, 2], "res_blocks": 2, "attn_resolutions": [], "heads": 1, "dropout": 0,
		"time_embed_dim": 256, "sinusoidal_dim": 64, "groups": 8}`), 0o644)
	grid := filepath.Join(dir, "g.png")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"sample", "--ckpt", model, "--eta", "NaN", "--grid", grid}, "--eta NaN: must be a finite number"},
		{[]string{"sample", "--ckpt", model, "--eps-scale", "+Inf", "--grid", grid}, "--eps-scale +Inf: must be a finite number"},
		{[]string{"toy", "--mixture", "x.json", "--eta", "-Inf"}, "--eta -Inf: must be a finite number"},
		{[]string{"sample", "--ckpt", model, "--threads", "100000", "--grid", grid}, "--threads 100000: more than"},
		{[]string{"sample", "--ckpt", model, "--n", "1000000000", "--grid", grid}, "--grid of 1000000000 images: at most"},
		{[]string{"sample", "--ckpt", model, "--grid", filepath.Join(dir, "g.jpg")}, `--grid "`},
		{[]string{"sample", "--ckpt", model, "--n", "1000000000", "--out-dir", dir, "--gif", filepath.Join(dir, "a.gif"), "--gif-n", "1000000000"}, "--gif-n 1000000000: at most 256"},
		{[]string{"schedule", "--timesteps", "100001"}, "--timesteps 100001: more than 100000"},
		{[]string{"sample", "--ckpt", model, "--npz", filepath.Join(dir, "g.png")}, "name it *.npz"},
		{[]string{"sample", "--ckpt", model, "--start", "9223372036854775000", "--n", "1000", "--grid", grid}, "--start 9223372036854775000 + --n 1000"},
		{[]string{"sample", "--ckpt", model, "--out-dir", file}, "--out-dir: mkdir"},
		{[]string{"sample", "--ckpt", fifo, "--grid", grid}, "not a regular file"},
		{[]string{"sample", "--ckpt", "/dev/zero", "--grid", grid}, "not a regular file"},
		{[]string{"sample", "--ckpt", sparse, "--grid", grid}, "bytes of tensor data but"},
		{[]string{"schedule", "--timesteps", "1000000000"}, "--timesteps 1000000000: more than 100000"},
		{[]string{"interpolate", "--frames", "1000000"}, "--frames 1000000: more than"},
		{[]string{"interpolate", "--pairs", "1000", "--frames", "1000", "--out", filepath.Join(dir, "i.png")}, "1000 pairs x --frames 1000: more than 25000 images in one strip"},
		{[]string{"interpolate", "--out", filepath.Join(dir, "i.jpg")}, "name it *.png"},
		{[]string{"interpolate", "--out", filepath.Join(dir, "none", "i.png")}, "does not exist"},
		{[]string{"toy", "--mixture", "../../docs/mixture3.json", "--n", "2000000000"}, "--n 2000000000: sampling 2000000000 points of dimension 2 needs"},
		{[]string{"encode", "--out", filepath.Join(dir, "x.npz")}, "name it *.npy"},
		{[]string{"encode", "--out", filepath.Join(dir, "x.npy"), "--first", "9223372036854775800", "--n", "10"}, "--first 9223372036854775800 + --n 10: image indices past"},
		{[]string{"eval", "fid", "--n", "1000000000", "--steps", "1"}, "--n 1000000000: scoring 1000000000 samples needs"},
		{[]string{"train", "--batch", "100000", "--steps", "1", "--out", filepath.Join(dir, "run")}, "at --batch 100000 needs"},
		{[]string{"train", "--model", huge, "--steps", "1", "--out", filepath.Join(dir, "run2")}, "more than this machine's"},
		{[]string{"train", "--config", trailing, "--out", filepath.Join(dir, "run3")}, "trailing data after the JSON object"},
		{[]string{"train", "--model", fifo, "--out", filepath.Join(dir, "run4")}, "not a regular file"},
	} {
		var stdout, stderr bytes.Buffer
		done := make(chan int, 1)
		go func() { done <- run(c.args, &stdout, &stderr) }()
		select {
		case code := <-done:
			msg := stderr.String()
			if code != 2 || !strings.Contains(msg, c.want) || strings.Count(strings.TrimSpace(msg), "\n") > 1 {
				t.Errorf("%v: exit %d, stderr %q; want exit 2 and one line with %q", c.args, code, msg, c.want)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("%v: still running after 30 s", c.args)
		}
	}
}

// TestSampleStreamsLargeN: sampling to --out-dir keeps one batch, whatever --n. A job of two billion
// images starts (nothing sized by n is allocated up front) and stops at its first image, which
// cannot be written; and a single batch of two billion is refused by its memory estimate.
func TestSampleStreamsLargeN(t *testing.T) {
	model := tinyModelFile(t, 1)
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "000000.png"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--n", "2000000000", "--batch", "1"}, "000000.png: is a directory"},
		{[]string{"--n", "2000000000", "--batch", "2000000000", "--chunk", "0"}, "sampling a batch of 2000000000 images (--batch 2000000000, 2000000000 per network call) needs"},
	} {
		args := append([]string{"sample", "--ckpt", model, "--steps", "1", "--engine", "ref", "--threads", "1", "--out-dir", dir}, c.args...)
		var stdout, stderr bytes.Buffer
		done := make(chan int, 1)
		go func() { done <- run(args, &stdout, &stderr) }()
		var code int
		select {
		case code = <-done:
		case <-time.After(30 * time.Second):
			t.Fatalf("%v: still running after 30 s", c.args)
		}
		lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
		if last := lines[len(lines)-1]; code != 2 || !strings.Contains(last, c.want) || strings.Contains(stderr.String(), "goroutine") {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 ending in one line with %q", c.args, code, stderr.String(), c.want)
		}
	}
}

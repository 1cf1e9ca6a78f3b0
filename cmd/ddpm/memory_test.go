package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/ddpm-go/ddpm/checkpoint"
	"github.com/ddpm-go/ddpm/internal/sysmem"
	"github.com/ddpm-go/ddpm/nn"
	"github.com/ddpm-go/ddpm/tensor"
)

// TestHugeImageModelOneLine: a model of small weights over 16384x16384 images (a 2 MB file, or a
// config JSON) needs a terabyte for one image's forward pass. Every command that would run it says
// so in one line before the first step; sampling, interpolating and training it died out of
// memory with a goroutine dump.
func TestHugeImageModelOneLine(t *testing.T) {
	if sysmem.Total() == 0 {
		t.Skip("the machine's memory is unknown here")
	}
	cfg := nn.Config{Name: "huge-image", ImageSize: 16384, InChannels: 1, OutChannels: 1, BaseChannels: 8,
		ChannelMult: []int{1, 2}, ResBlocks: 1, AttnResolutions: []int{}, Heads: 1,
		TimeEmbedDim: 16, SinusoidalDim: 8, Groups: 4}
	u, err := nn.New(cfg, tensor.NewReference(1), 1)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	model := filepath.Join(dir, "huge-image.safetensors")
	if err := checkpoint.SaveModel(model, u, nil); err != nil {
		t.Fatal(err)
	}
	config := writeFile(t, dir, "huge-image.json", string(cfg.JSON()))
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"sample", "--ckpt", model, "--n", "1", "--steps", "1", "--engine", "ref", "--grid", filepath.Join(dir, "g.png")},
			"model huge-image on one 1x16384x16384 image needs"},
		{[]string{"interpolate", "--ckpt", model, "--pairs", "1", "--frames", "2", "--steps", "1", "--engine", "ref", "--out", filepath.Join(dir, "i.png")},
			"model huge-image on one 1x16384x16384 image needs"},
		{[]string{"train", "--model", config, "--batch", "1", "--steps", "1", "--engine", "ref", "--out", filepath.Join(dir, "run")},
			"training huge-image (1x16384x16384 images) at --batch 1 needs"},
	} {
		code, _, stderr := runCLI(t, c.args...)
		if code != 2 || !strings.Contains(stderr, c.want) || strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 and one line with %q", c.args, code, stderr, c.want)
		}
	}
}

// TestTrainRunFileBounds: a run file sets what flags would, and the shared bounds apply to it: 100,000
// threads from --config started them all (a step took half a minute on two cores), a progress grid
// of a billion images ran the whole run and then died out of memory.
func TestTrainRunFileBounds(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct{ json, want string }{
		{`{"threads": 100000, "steps": 1}`, "--threads 100000: more than"},
		{`{"sample-n": 1000000000, "steps": 1}`, "--sample-n 1000000000: more than 1024"},
	} {
		cfg := writeFile(t, dir, "run.json", c.json)
		code, _, stderr := runCLI(t, "train", "--config", cfg, "--engine", "ref", "--out", filepath.Join(dir, "run"))
		if code != 2 || !strings.Contains(stderr, c.want) || strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
			t.Errorf("%s: exit %d, stderr %q; want exit 2 and one line with %q", c.json, code, stderr, c.want)
		}
	}
}

// TestSampleNPZStreams: --npz is written batch by batch, the same bytes whatever --batch (a job
// kept every image in memory for the archive, which 1e9 images could not fit), and a job whose
// archive the disk cannot hold is refused before sampling, in one line.
func TestSampleNPZStreams(t *testing.T) {
	model := tinyModelFile(t, 3)
	dir := t.TempDir()
	var archives [][]byte
	for _, batch := range []string{"2", "5"} {
		p := filepath.Join(dir, "b"+batch+".npz")
		mustSample(t, "--ckpt", model, "--n", "5", "--batch", batch, "--steps", "2", "--engine", "ref", "--npz", p)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		archives = append(archives, b)
	}
	if !bytes.Equal(archives[0], archives[1]) {
		t.Fatal("the archive depends on --batch")
	}
	var st syscall.Statfs_t
	const n = 1 << 31
	if err := syscall.Statfs(dir, &st); err != nil || float64(st.Bavail)*float64(st.Bsize) > n*3*8*8 {
		t.Skip("this file system could hold 2^31 images of 3x8x8")
	}
	code, _, stderr := runCLI(t, "sample", "--ckpt", model, "--n", fmt.Sprint(n), "--steps", "1", "--engine", "ref", "--npz", filepath.Join(dir, "big.npz"))
	if code != 2 || !strings.Contains(stderr, "GB free") || strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
		t.Fatalf("2^31 images: exit %d, stderr %q", code, stderr)
	}
}

// TestEncodeEvalBatchMemory: encode and eval fid size their batch like sample before the first
// network call; 10,000 MNIST images in one batch ended in a dnnl out-of-memory panic.
func TestEncodeEvalBatchMemory(t *testing.T) {
	needMNIST(t)
	total := sysmem.Total
	sysmem.Total = func() uint64 { return 4 << 30 }
	defer func() { sysmem.Total = total }()
	for _, args := range [][]string{
		{"encode", "--n", "10000", "--batch", "10000", "--steps", "1", "--engine", "ref", "--out", filepath.Join(t.TempDir(), "x.npy")},
		{"eval", "fid", "--n", "10000", "--batch", "10000", "--chunk", "0", "--steps", "1", "--engine", "ref"},
	} {
		code, _, stderr := runCLI(t, args...)
		want := "a batch of 10000 images (--batch 10000, 10000 per network call) needs"
		if code != 2 || !strings.Contains(stderr, want) || strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 and one line with %q", args, code, stderr, want)
		}
	}
}

// TestTrainClassifierBatchMemory: the classifier's training batch is sized before the data is
// loaded; ten million images died out of memory allocating the batch.
func TestTrainClassifierBatchMemory(t *testing.T) {
	total := sysmem.Total
	sysmem.Total = func() uint64 { return 1 << 30 }
	defer func() { sysmem.Total = total }()
	code, _, stderr := runCLI(t, "eval", "train-classifier", "--batch", "10000000", "--out", filepath.Join(t.TempDir(), "c.safetensors"))
	want := "training the classifier at --batch 10000000 needs"
	if code != 2 || !strings.Contains(stderr, want) || strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
		t.Fatalf("exit %d, stderr %q; want exit 2 and one line with %q", code, stderr, want)
	}
}

// TestEvalFIDReadsClassifierFirst: a --classifier that cannot be read is one line before any
// sampling (it was read after the samples were drawn, minutes into a large job).
func TestEvalFIDReadsClassifierFirst(t *testing.T) {
	needMNIST(t)
	fifo := filepath.Join(t.TempDir(), "c.safetensors")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runCLI(t, "eval", "fid", "--classifier", fifo, "--n", "10", "--steps", "1", "--engine", "ref")
	if code != 2 || !strings.Contains(stderr, "not a regular file") || strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
		t.Fatalf("exit %d, stderr %q; want exit 2 and one line", code, stderr)
	}
}

// TestToyInitBeyondMemory: an --init CSV the machine cannot hold as values is refused by its size
// before the csv reader buffers it (a sparse file of zero bytes is one endless line).
func TestToyInitBeyondMemory(t *testing.T) {
	total := sysmem.Total
	sysmem.Total = func() uint64 { return 1 << 30 }
	defer func() { sysmem.Total = total }()
	dir := t.TempDir()
	mix := writeFile(t, dir, "m.json", `{"weights":[1],"means":[[0,0]],"stds":[1]}`)
	init := writeFile(t, dir, "xt.csv", "")
	if err := os.Truncate(init, 1<<30); err != nil {
		t.Skipf("no sparse files here: %v", err)
	}
	code, _, stderr := runCLI(t, "toy", "--mixture", mix, "--init", init, "--sampler", "ddim", "--steps", "2")
	if code != 2 || !strings.Contains(stderr, "reading "+init+" needs") || strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
		t.Fatalf("exit %d, stderr %q; want exit 2 and one line refusing the file", code, stderr)
	}
}

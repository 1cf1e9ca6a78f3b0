package train

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/ddpm-go/ddpm/checkpoint"

	"github.com/ddpm-go/ddpm/data"
	"github.com/ddpm-go/ddpm/engine"
	"github.com/ddpm-go/ddpm/tensor/dnnl"
)

// TestResumeBitIdenticalDNNL repeats the resume check on the oneDNN backend, in both precisions,
// with a fresh backend for every segment as a new process would have: its convolutions and
// reductions are deterministic, so a resumed run matches an uninterrupted one bit for bit there too.
func TestResumeBitIdenticalDNNL(t *testing.T) {
	if !dnnl.Available() {
		t.Skip("built without cgo: no oneDNN backend")
	}
	for _, prec := range []string{"fp32", "bf16"} {
		t.Run(prec, func(t *testing.T) {
			a := tinyConfig(t, filepath.Join(t.TempDir(), "a"))
			a.Engine, a.Precision = "dnnl", prec
			resumeMatches(t, a, tinySet(t))
		})
	}
}

// TestUNetSDeterministicDNNL trains UNet-S at batch 48 with 2 threads, where every OpenMP loop of the
// step runs in parallel (GroupNorm's backward over 48 samples, the loss over 37,632 values in two
// chunks, the convolutions' weight gradients in per-thread chunks): two runs with one seed must give
// the same bytes, and a run stopped at step 2 and resumed must equal the uninterrupted one. The
// reductions add their partial sums in a fixed order, so results depend on the seed and the thread
// count only (not on which thread finished first); across thread counts the convolutions' weight
// gradients are split differently and the last bits differ.
func TestUNetSDeterministicDNNL(t *testing.T) {
	if !dnnl.Available() {
		t.Skip("built without cgo: no oneDNN backend")
	}
	if testing.Short() {
		t.Skip("-short: UNet-S steps take seconds")
	}
	set := digitsLike(t, 96)
	for _, prec := range []string{"fp32", "bf16"} {
		t.Run(prec, func(t *testing.T) {
			c := Default()
			c.Data, c.Model, c.Out = "unet-s-test", "unet-s", filepath.Join(t.TempDir(), "a")
			c.Batch, c.Steps, c.Warmup, c.LR = 48, 4, 2, 1e-3
			c.Engine, c.Precision, c.Threads = "dnnl", prec, 2
			c.CkptEvery, c.SampleEvery, c.Keep, c.LogEvery = 2, 0, 3, 1
			c.Seed = 11
			twin := c
			twin.Out = filepath.Join(t.TempDir(), "twin")
			runDNNL(t, c, set, false)
			runDNNL(t, twin, set, false)
			sameFile(t, checkpoint.CheckpointPath(c.Out, 4), checkpoint.CheckpointPath(twin.Out, 4))
			resumeMatches(t, c, set)
		})
	}
}

// resumeMatches trains b = a's config for half of a's steps in a new directory, resumes it to a's
// step count on a fresh backend, and requires the final state to equal a's finished run (which
// resumeMatches trains first if a.Out has no checkpoint at its last step).
func resumeMatches(t *testing.T, a Config, set *data.Set) {
	t.Helper()
	if _, err := os.Stat(checkpoint.CheckpointPath(a.Out, a.Steps)); err != nil {
		runDNNL(t, a, set, false)
	}
	b := a
	b.Out, b.Steps = filepath.Join(t.TempDir(), "b"), a.Steps/2
	runDNNL(t, b, set, false)
	rc, err := ResumeConfig(b.Out, Config{Steps: a.Steps}, []string{"steps"})
	if err != nil {
		t.Fatal(err)
	}
	runDNNL(t, rc, set, true)
	sameFile(t, checkpoint.CheckpointPath(a.Out, a.Steps), checkpoint.CheckpointPath(b.Out, a.Steps))
}

func runDNNL(t *testing.T, c Config, set *data.Set, resume bool) {
	t.Helper()
	be, err := engine.New("dnnl", c.Precision, c.Threads)
	if err != nil {
		t.Fatal(err)
	}
	defer engine.Close(be)
	if _, err := Run(context.Background(), c, Options{Resume: resume, Set: set, Backend: be}); err != nil {
		t.Fatal(err)
	}
}

// digitsLike is n random 28x28 images, UNet-S's input shape.
func digitsLike(t *testing.T, n int) *data.Set {
	t.Helper()
	r := rand.New(rand.NewPCG(3, 4))
	pix := make([]uint8, n*28*28)
	for i := range pix {
		pix[i] = uint8(r.IntN(256))
	}
	s, err := data.NewSet("unet-s-test", n, 1, 28, 28, pix, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

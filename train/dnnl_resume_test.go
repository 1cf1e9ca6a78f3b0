package train

import (
	"context"
	"path/filepath"
	"testing"

	"ddpm/engine"
	"ddpm/tensor/dnnl"
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
			run := func(c Config, resume bool) {
				t.Helper()
				be, err := engine.New("dnnl", prec, 2)
				if err != nil {
					t.Fatal(err)
				}
				defer engine.Close(be)
				if _, err := Run(context.Background(), c, Options{Resume: resume, Set: tinySet(t), Backend: be}); err != nil {
					t.Fatal(err)
				}
			}
			root := t.TempDir()
			a := tinyConfig(t, filepath.Join(root, "a"))
			a.Engine, a.Precision = "dnnl", prec
			run(a, false)
			b := a
			b.Out, b.Steps = filepath.Join(root, "b"), 3
			run(b, false)
			rc, err := ResumeConfig(b.Out, Config{Steps: 6}, []string{"steps"})
			if err != nil {
				t.Fatal(err)
			}
			run(rc, true)
			sameFile(t, CheckpointPath(a.Out, 6), CheckpointPath(b.Out, 6))
		})
	}
}

package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/ddpm-go/ddpm/checkpoint"
	"github.com/ddpm-go/ddpm/tensor"
)

// TestEvalMemorizationDistilled: eval memorization draws a distilled student without --steps over
// its own grid, as eval fid does, and warns when --steps takes it off that grid.
func TestEvalMemorizationDistilled(t *testing.T) {
	u, meta, err := checkpoint.LoadModel(tinyModelFile(t, 3), tensor.NewReference(1), "")
	if err != nil {
		t.Fatal(err)
	}
	meta[checkpoint.MetaDistilledSteps], meta[checkpoint.MetaDistilledTimesteps] = "2", "[39,13]"
	student := filepath.Join(t.TempDir(), "student.safetensors")
	if err := checkpoint.SaveModel(student, u, meta); err != nil {
		t.Fatal(err)
	}
	train, test := imageFolder(t, 30, 1), imageFolder(t, 10, 2)
	for _, c := range []struct {
		steps   []string
		sampler string
		warn    bool
	}{{nil, "ddim-2 eta=0 distilled", false}, {[]string{"--steps", "3"}, "ddim-3 eta=0 linspace", true}} {
		args := append([]string{"eval", "memorization", "--ckpt", student, "--data", train, "--test", test, "--n", "4",
			"--engine", "ref", "--threads", "1"}, c.steps...)
		code, _, errs := runCLI(t, args...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", c.steps, code, errs)
		}
		if !strings.Contains(errs, "with "+c.sampler+" on") {
			t.Errorf("%v: stderr does not name %s: %s", c.steps, c.sampler, errs)
		}
		if got := strings.Contains(errs, "warning: ") && strings.Contains(errs, "was distilled for 2 steps"); got != c.warn {
			t.Errorf("%v: warning %v, want %v: %s", c.steps, got, c.warn, errs)
		}
	}
}

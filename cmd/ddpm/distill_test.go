package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ddpm-go/ddpm/checkpoint"
	"github.com/ddpm-go/ddpm/distill"
)

// TestDistillCLI distils a tiny model trained for a few steps from 4 DDIM steps to 1 (round 0
// and two rounds of a few steps each), then samples the students: with their own step count over
// their own grid, by default, and with another count, which warns.
func TestDistillCLI(t *testing.T) {
	dir := t.TempDir()
	model := writeFile(t, dir, "tiny.json", trainTinyModel)
	imgs := trainFolder(t, 12)
	teacher := filepath.Join(dir, "teacher")
	if code, _, stderr := runCLI(t, "train", "--data", imgs, "--model", model, "--engine", "ref", "--steps", "2",
		"--batch", "4", "--sample-n", "0", "--out", teacher, "--threads", "1"); code != 0 {
		t.Fatalf("train: exit %d: %s", code, stderr)
	}
	out := filepath.Join(dir, "distilled")
	code, stdout, stderr := runCLI(t, "distill", "--teacher", teacher, "--from", "4", "--to", "1", "--out", out,
		"--round-steps", "3", "--reparam-steps", "2", "--batch", "4", "--ckpt-every", "2", "--sample-n", "4", "--engine", "ref", "--threads", "1")
	if code != 0 {
		t.Fatalf("distill: exit %d: %s", code, stderr)
	}
	for _, want := range []string{"reparam", "steps-2", "steps-1", "ddpm sample --ckpt " + filepath.Join(out, "steps-1") + " --steps 1"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q: %s", want, stdout)
		}
	}
	for _, f := range []string{distill.ConfigFile, distill.ProvenanceFile, "steps-2/" + checkpoint.EMAFile, "steps-2/" + checkpoint.ModelFile,
		"steps-1/" + checkpoint.MetricsFile, "steps-1/" + distill.ProvenanceFile, "reparam/" + checkpoint.EMAFile} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}
	f, err := checkpoint.ReadFile(filepath.Join(out, "steps-2", checkpoint.EMAFile))
	if err != nil {
		t.Fatal(err)
	}
	// linspace(0, 999, 4) = [999, 666, 333, 0]; every other: [999, 333].
	if got := f.Metadata[checkpoint.MetaDistilledTimesteps]; got != "[999,333]" || f.Metadata[checkpoint.MetaPrediction] != "v" || f.Metadata[checkpoint.MetaDistilledSteps] != "2" {
		t.Errorf("steps-2 metadata: %v", f.Metadata)
	}
	if got := f.Metadata[checkpoint.MetaDistilledFrom]; got != teacher {
		t.Errorf("steps-2 distilled_from %q, want the teacher %q", got, teacher)
	}

	for _, c := range []struct {
		ckpt  string
		steps []string
		warn  bool
		desc  string
	}{
		{"steps-2", []string{"--steps", "2"}, false, "ddim-2 eta=0 distilled"},
		{"steps-1", nil, false, "ddim-1 eta=0 distilled"},
		{"steps-1", []string{"--steps", "3"}, true, "ddim-3 eta=0 linspace"},
	} {
		grid := filepath.Join(dir, c.ckpt+".png")
		args := append([]string{"sample", "--ckpt", filepath.Join(out, c.ckpt), "--n", "2", "--grid", grid, "--engine", "ref", "--threads", "1"}, c.steps...)
		code, _, stderr := runCLI(t, args...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, stderr)
		}
		if got := strings.Contains(stderr, "warning: ") && strings.Contains(stderr, "was distilled for 1 steps"); got != c.warn {
			t.Errorf("%v: warning %v, want %v: %s", args, got, c.warn, stderr)
		}
		if !strings.Contains(stderr, c.desc) {
			t.Errorf("%v: stderr lacks %q: %s", args, c.desc, stderr)
		}
	}

	// Resuming a finished distillation does no more steps and changes no weights.
	before, _ := os.ReadFile(filepath.Join(out, "steps-1", checkpoint.EMAFile))
	if code, _, stderr := runCLI(t, "distill", "--resume", out); code != 0 {
		t.Fatalf("resume: exit %d: %s", code, stderr)
	}
	after, _ := os.ReadFile(filepath.Join(out, "steps-1", checkpoint.EMAFile))
	if string(before) != string(after) {
		t.Error("resuming a finished distillation changed its last student")
	}

	// A run continuing from a student names the model the chain started from, not the student.
	out2 := filepath.Join(dir, "continued")
	if code, _, stderr := runCLI(t, "distill", "--teacher", filepath.Join(out, "steps-2"), "--from", "2", "--to", "1", "--out", out2,
		"--round-steps", "1", "--reparam-steps", "0", "--batch", "4", "--sample-n", "0", "--engine", "ref", "--threads", "1"); code != 0 {
		t.Fatalf("distill from a student: exit %d: %s", code, stderr)
	}
	g, err := checkpoint.ReadFile(filepath.Join(out2, "steps-1", checkpoint.EMAFile))
	if err != nil {
		t.Fatal(err)
	}
	if got := g.Metadata[checkpoint.MetaDistilledFrom]; got != teacher || g.Metadata[checkpoint.MetaDistilledTimesteps] != "[999]" {
		t.Errorf("continued steps-1 metadata: distilled_from %q (want %q), %v", got, teacher, g.Metadata)
	}
}

// TestDistillFlagErrors checks that bad flags are refused in one line naming the flag.
func TestDistillFlagErrors(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--teacher", "x", "--from", "6", "--to", "1", "--out", dir}, "--from 6 must be a power of two"},
		{[]string{"--teacher", "x", "--from", "8", "--to", "8", "--out", dir}, "--to 8 must be below --from 8"},
		{[]string{"--teacher", "x", "--from", "8", "--to", "3", "--out", dir}, "--to 3 must be a power of two"},
		{[]string{"--from", "8", "--to", "1", "--out", dir}, "--teacher is required"},
		{[]string{"--teacher", filepath.Join(dir, "missing"), "--from", "8", "--to", "1", "--out", filepath.Join(dir, "o"), "--engine", "ref"}, "--teacher " + filepath.Join(dir, "missing") + ": no such model file or run directory"},
		{[]string{"--teacher", "x", "--out", dir, "--round-steps", "0"}, "--round-steps 0 must be >= 1"},
		{[]string{"--resume", dir, "--from", "8"}, "--resume takes the run's own distill.json; drop --from"},
		{[]string{"--resume", filepath.Join(dir, "none")}, "--resume " + filepath.Join(dir, "none")},
	} {
		code, _, stderr := runCLI(t, append([]string{"distill"}, c.args...)...)
		if code == 0 || !strings.Contains(stderr, c.want) || strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
			t.Errorf("%v: exit %d, stderr %q, want one line with %q", c.args, code, stderr, c.want)
		}
	}
}

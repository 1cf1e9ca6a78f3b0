package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestSharedFlagChecks: the checks checkFlags makes for every command, tried on commands other than
// sample: a --grid, --plot, --npz or --gif whose extension names another format (schedule wrote a
// PNG named .jpg, eval fid read a PNG as an archive), a NaN or infinite float, a count past its
// bound, an output file whose directory does not exist (encode and eval fid found out after all
// their work), and data show's grid, which is bounded like sample's. Each is one line and exit 2 before
// any work.
func TestSharedFlagChecks(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"schedule", "--plot", filepath.Join(dir, "s.jpg")}, `--plot "` + filepath.Join(dir, "s.jpg") + `": the file is PNG; name it *.png`},
		{[]string{"toy", "--mixture", "m.json", "--plot", "t.svg"}, "name it *.png"},
		{[]string{"eval", "table", "--in", "-", "--plot", "t.gif"}, "name it *.png"},
		{[]string{"eval", "fid", "--npz", "x.png"}, `--npz "x.png": the file is NPZ; name it *.npz`},
		{[]string{"encode", "--recon", "--grid", "r.jpeg"}, "name it *.png"},
		{[]string{"data", "show", "mnist", "--grid", "g.gif"}, "name it *.png"},
		{[]string{"data", "show", "--grid", "g.png", "mnist", "--n", "1000000"}, "--n 1000000: at most 25000 images in one --grid"},
		{[]string{"eval", "train-classifier", "--lr", "NaN", "--out", "c.safetensors"}, "--lr NaN: must be a finite number"},
		{[]string{"eval", "fid", "--confidence", "Inf"}, "--confidence +Inf: must be a finite number"},
		{[]string{"toy", "--mixture", "m.json", "--timesteps", "100001"}, "--timesteps 100001: more than 100000"},
		{[]string{"encode", "--recon", "--threads", "1000000"}, "--threads 1000000: more than"},
		{[]string{"encode", "--recon", "--grid", filepath.Join(dir, "no", "r.png")}, `--grid "` + filepath.Join(dir, "no", "r.png") + `": directory ` + filepath.Join(dir, "no") + " does not exist"},
		{[]string{"eval", "fid", "--drift", filepath.Join(dir, "no", "d.jsonl")}, "does not exist"},
		{[]string{"toy", "--mixture", "m.json", "--plot", filepath.Join(dir, "no", "t.png")}, "does not exist"},
		{[]string{"sample", "--npz", filepath.Join(dir, "no", "s.npz")}, "does not exist"},
	} {
		code, _, stderr := runCLI(t, c.args...)
		if code != 2 || !strings.Contains(stderr, c.want) || strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 and one line with %q", c.args, code, stderr, c.want)
		}
	}
}

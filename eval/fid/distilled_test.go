package fid

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/ddpm-go/ddpm/checkpoint"
	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/generate"
	"github.com/ddpm-go/ddpm/tensor"
)

// writeStudent writes model's weights again with the metadata ddpm distill writes for a student
// of len(grid) steps over grid.
func writeStudent(t *testing.T, model string, grid []int) string {
	t.Helper()
	u, meta, err := checkpoint.LoadModel(model, tensor.NewReference(1), "")
	if err != nil {
		t.Fatal(err)
	}
	g, _ := json.Marshal(grid)
	meta[checkpoint.MetaDistilledSteps] = strconv.Itoa(len(grid))
	meta[checkpoint.MetaDistilledTimesteps] = string(g)
	path := filepath.Join(t.TempDir(), "student.safetensors")
	if err := checkpoint.SaveModel(path, u, meta); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestRunDistilledStudent: a distilled student scored without steps is scored on its own grid with
// no warning, and its result names that sampler. With the grid DDIM-2's linspace grid, the scores
// equal the same weights scored as an ordinary model with an explicit DDIM-2 linspace: the same
// images. With a grid no spacing makes, the drift file shows the grid walked; other steps warn.
func TestRunDistilledStudent(t *testing.T) {
	model, clf := tinyFixtures(t, 0)
	base := Options{Data: "mnist", Classifier: clf, EMA: true, N: 10, Batch: 5, Chunk: -1, Seed: 3,
		Engine: "ref", Threads: 1, RefN: 64, KIDSubsets: 4, KIDSize: 5, Threshold: 0.9}
	run := func(o Options) (*Result, string) {
		t.Helper()
		var log bytes.Buffer
		r, err := Run(context.Background(), o, &log)
		if err != nil {
			t.Fatal(err)
		}
		return r, log.String()
	}

	linspace, err := diffusion.Timesteps(20, 2, diffusion.Linspace)
	if err != nil {
		t.Fatal(err)
	}
	o := base
	o.Ckpt = writeStudent(t, model, linspace)
	got, log := run(o)
	if got.Sampler != "ddim-2 eta=0 distilled" || got.Steps != 2 || got.Setting != "ddim eta=0 distilled" {
		t.Errorf("student without steps: sampler %q, steps %d, setting %q", got.Sampler, got.Steps, got.Setting)
	}
	if strings.Contains(log, "warning") {
		t.Errorf("student on its grid warned: %s", log)
	}
	o = base
	o.Ckpt, o.Spec = model, generate.SamplerSpec{Name: "ddim", Steps: 2, Spacing: "linspace"}
	want, _ := run(o)
	g, w := *got, *want
	g.Source, g.Sampler, g.Setting, w.Source, w.Sampler, w.Setting = "", "", "", "", "", ""
	if withoutTiming(t, &g) != withoutTiming(t, &w) {
		t.Errorf("student over its grid:\n%s\nexplicit DDIM over the same grid:\n%s", withoutTiming(t, &g), withoutTiming(t, &w))
	}

	grid := []int{17, 6}
	o = base
	o.Ckpt, o.Drift = writeStudent(t, model, grid), filepath.Join(t.TempDir(), "drift.jsonl")
	if got, _ := run(o); got.Sampler != "ddim-2 eta=0 distilled" {
		t.Errorf("student over %v: sampler %q", grid, got.Sampler)
	}
	if walked := driftTimesteps(t, o.Drift); !slices.Equal(walked[:len(grid)], grid) {
		t.Errorf("drift timesteps %v, want %v first", walked, grid)
	}
	o.Drift, o.Spec = "", generate.SamplerSpec{Steps: 3}
	got, log = run(o)
	if got.Sampler != "ddim-3 eta=0 linspace" || strings.Count(log, "warning: ") != 1 || !strings.Contains(log, "was distilled for 2 steps") {
		t.Errorf("student at 3 steps: sampler %q, log:\n%s", got.Sampler, log)
	}
}

// driftTimesteps is the t of each line of a --drift file.
func driftTimesteps(t *testing.T, path string) []int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var ts []int
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r struct {
			T int `json:"t"`
		}
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatal(err)
		}
		ts = append(ts, r.T)
	}
	return ts
}

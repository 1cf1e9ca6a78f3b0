package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBenchPrintsPeerKeys runs a tiny bench (batch 2, one step) and checks the one JSON line has the
// peer's keys with sane values.
func TestBenchPrintsPeerKeys(t *testing.T) {
	proj := filepath.Join(t.TempDir(), "scaling.md")
	code, out, errs := runCLI(t, "bench", "--batch", "2", "--sample-batch", "3", "--steps", "1", "--sample-reps", "1", "--threads", "1", "--project", proj)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	// The projection: unet-s's gradients, and a row per link and node count.
	tab, err := os.ReadFile(proj)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(tab), "6.96 MB of fp32 gradients per step") ||
		strings.Count(string(tab), " GbE | ") != 6 || !strings.Contains(string(tab), "| 64 | 25 GbE |") {
		t.Errorf("projection table:\n%s", tab)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 1 {
		t.Fatalf("want one line, got %q", out)
	}
	var r map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &r); err != nil {
		t.Fatalf("not JSON: %v: %s", err, out)
	}
	for _, k := range []string{"params", "train_img_s", "sample_img_s", "peak_rss_mib", "engine", "precision", "threads"} {
		if _, ok := r[k]; !ok {
			t.Errorf("missing key %q in %s", k, out)
		}
	}
	if r["params"] != float64(1741025) {
		t.Errorf("params %v, want the peer's 1741025", r["params"])
	}
	for _, k := range []string{"train_img_s", "sample_img_s", "peak_rss_mib"} {
		if v, _ := r[k].(float64); !(v > 0) {
			t.Errorf("%s = %v, want > 0", k, r[k])
		}
	}
}

func TestBenchRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"bench", "--batch", "0"},
		{"bench", "--per-node", "-1"},
		{"bench", "--precision", "fp16"},
		{"bench", "--engine", "gpu"},
		{"bench", "extra"},
	} {
		if code, _, errs := runCLI(t, args...); code != 2 || !strings.Contains(errs, "ddpm bench:") {
			t.Errorf("%v: exit %d, stderr %q; want 2 and a one-line error", args, code, errs)
		}
	}
}

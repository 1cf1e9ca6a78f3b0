package main

import (
	"image/png"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestScheduleCSV(t *testing.T) {
	code, out, errs := runCLI(t, "schedule", "--schedule", "cosine", "--timesteps", "50", "--zero-snr")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	recs := parseCSV(t, out)
	if len(recs) != 51 || strings.Join(recs[0][:3], ",") != "t,beta,alpha_bar" {
		t.Fatalf("got %d lines, header %v", len(recs), recs[0])
	}
	for i, r := range recs[1:] {
		if r[0] != strconv.Itoa(i) {
			t.Fatalf("row %d has t=%s", i, r[0])
		}
	}
	if last := recs[50]; last[2] != "0" || last[1] != "1" {
		t.Errorf("zero-SNR last row %v, want beta 1 and alpha_bar 0", last)
	}
	// Full precision: the linear schedule's first beta is exactly 0.0001.
	_, out, _ = runCLI(t, "schedule")
	recs = parseCSV(t, out)
	if len(recs) != 1001 || recs[1][1] != "0.0001" || recs[1000][1] != "0.02" {
		t.Errorf("default schedule: %d rows, beta_0 %q, beta_999 %q", len(recs), recs[1][1], recs[1000][1])
	}
}

func TestSchedulePlot(t *testing.T) {
	p := filepath.Join(t.TempDir(), "s.png")
	if code, _, errs := runCLI(t, "schedule", "--schedule", "sigmoid", "--plot", p); code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := png.Decode(f); err != nil {
		t.Errorf("not a PNG: %v", err)
	}
	if code, _, errs := runCLI(t, "schedule", "--plot", filepath.Join(p, "sub", "x.png")); code != 2 || strings.Count(errs, "\n") != 1 {
		t.Errorf("unwritable plot: exit %d, stderr %q", code, errs)
	}
}

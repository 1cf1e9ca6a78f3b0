package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ddpm-go/ddpm/checkpoint"
	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/engine"
	"github.com/ddpm-go/ddpm/generate"
	"github.com/ddpm-go/ddpm/serve"
	"github.com/ddpm-go/ddpm/tensor"
)

func TestCheckLoopback(t *testing.T) {
	for url, ok := range map[string]bool{
		"http://127.0.0.1:8080": true, "http://localhost:1": true, "http://[::1]:80": true, "http://127.1.2.3:9": true,
		"http://10.0.0.1:80": false, "http://example.com": false, "ftp://127.0.0.1": false, "127.0.0.1:80": false, "http://0.0.0.0:80": false,
	} {
		if err := checkLoopback(url); (err == nil) != ok {
			t.Errorf("%s: err %v, want ok=%v", url, err, ok)
		}
	}
}

// tinyServer serves the loadtest's tiny model as `ddpm serve` does (default engine, --max-batch 64,
// --max-n 64) with a two-slot queue.
func tinyServer(t *testing.T) *httptest.Server {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tiny.safetensors")
	if err := writeModelFile(path, "tiny", "", 0); err != nil {
		t.Fatal(err)
	}
	be, err := engine.New("auto", "auto", 1)
	if err != nil {
		t.Fatal(err)
	}
	s, err := checkpoint.LoadForSampling(path, be, true)
	if err != nil {
		t.Fatal(err)
	}
	s.Net.MaxBatch = 64
	m := &generate.Model{Model: *s}
	srv, err := serve.New([]serve.Model{{Name: "tiny", Copies: []*generate.Model{m}}}, serve.Options{Queue: 2, MaxN: 64})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		ts.Close()
		srv.Shutdown(context.Background())
		engine.Close(be)
	})
	return ts
}

// maxRSSMiB bounds this test process (the server runs in it) after a sweep of n = 1..64 and a
// second of load with the tiny model: 65 MiB on oneDNN here, the test binary included; a worker
// that kept every batch size's primitives and buffers reached 405 MiB.
const maxRSSMiB = 160

// TestLoad runs the load test for two seconds against a real server with the tiny model and a
// two-slot queue, after the sweep over every n: requests succeed, the overflow is 429, nothing is
// a 5xx or a transport error, and the server's memory stays under maxRSSMiB. (With one second and
// one slot, the two streams' 20-step jobs could hold the worker for all of it on the reference
// engine of a busy machine, and no POST got through.)
func TestLoad(t *testing.T) {
	ts := tinyServer(t)
	sum, err := load(config{url: ts.URL, clients: 6, streamers: 2, duration: 2 * time.Second, body: `{"steps":2,"n":2}`, backoff: 10 * time.Millisecond, sweep: true})
	if err != nil {
		t.Fatal(err)
	}
	if sum.OK == 0 || sum.Images != 2*sum.OK || sum.Status429 == 0 || sum.Status5xx != 0 || sum.Errors != 0 {
		t.Errorf("summary %+v: want OK answers of 2 images, some 429s, no 5xx or errors", sum)
	}
	if sum.P50ms <= 0 || sum.P99ms < sum.P50ms || sum.Maxms < sum.P99ms {
		t.Errorf("latency percentiles p50 %v p99 %v max %v", sum.P50ms, sum.P99ms, sum.Maxms)
	}
	t.Logf("RSS %.1f MiB at start, %.1f after the sweep of n = 1..%d, max %.1f; engine caches %.1f MiB, %d conv primitives",
		sum.RSSStartMiB, sum.RSSAfterSweepMiB, sum.SweepMaxN, sum.RSSMaxMiB, sum.CacheMiB, sum.ConvPrimitives)
	if sum.SweepMaxN != 64 || sum.RSSAfterSweepMiB <= 0 || sum.RSSMaxMiB < sum.RSSAfterSweepMiB {
		t.Errorf("sweep to %d, RSS after it %.1f MiB, max %.1f", sum.SweepMaxN, sum.RSSAfterSweepMiB, sum.RSSMaxMiB)
	}
	if sum.RSSMaxMiB > maxRSSMiB {
		t.Errorf("RSS peaked at %.1f MiB, want <= %d", sum.RSSMaxMiB, maxRSSMiB)
	}
}

// TestRunMaxRSS: with -max-rss-mib below the server's memory the run fails, saying so.
func TestRunMaxRSS(t *testing.T) {
	ts := tinyServer(t)
	args := []string{"-url", ts.URL, "-clients", "2", "-streamers", "0", "-duration", "300ms", "-body", `{"steps":1,"n":1}`, "-sweep=false"}
	var out strings.Builder
	if err := run(append(args, "-max-rss-mib", "1"), &out); err == nil || !strings.Contains(err.Error(), "-max-rss-mib 1") {
		t.Errorf("bound of 1 MiB: %v, want a failure naming it", err)
	}
	if err := run(append(args, "-max-rss-mib", "100000"), &out); err != nil {
		t.Errorf("bound of 100000 MiB: %v", err)
	}
	if !strings.Contains(out.String(), "server RSS:") {
		t.Errorf("report lacks the server's RSS:\n%s", out.String())
	}
}

// TestLoadCounts5xx: a server that fails is reported, and run would exit non-zero.
func TestLoadCounts5xx(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			return
		}
		http.Error(w, "broken", http.StatusInternalServerError)
	}))
	defer ts.Close()
	sum, err := load(config{url: ts.URL, clients: 2, duration: 200 * time.Millisecond, body: `{}`, backoff: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Status5xx == 0 || sum.OK != 0 {
		t.Errorf("summary %+v: want 5xx counted", sum)
	}
}

// TestWriteModelClasses: -classes writes a class-conditional model whose names a server reads back.
func TestWriteModelClasses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cond.safetensors")
	if err := writeModelFile(path, "tiny", "zero,one,two", 0); err != nil {
		t.Fatal(err)
	}
	s, err := checkpoint.LoadForSampling(path, tensor.NewReference(1), true)
	if err != nil {
		t.Fatal(err)
	}
	if s.Net.Cfg.NumClasses != 3 || strings.Join(s.Classes, ",") != "zero,one,two" {
		t.Errorf("%d classes %v, want zero, one, two", s.Net.Cfg.NumClasses, s.Classes)
	}
}

// TestWriteModelDistilled: -distilled 4 writes a model that loads as the 4-step student docs/distill.md
// describes (v prediction, the grid distilled from 256 steps on T = 1000), which generate samples
// over that grid with no warning; a step count no distillation makes is refused in one line.
func TestWriteModelDistilled(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "fast.safetensors")
	if err := run([]string{"-write-model", path, "-distilled", "4"}, io.Discard); err != nil {
		t.Fatal(err)
	}
	s, err := checkpoint.LoadForSampling(path, tensor.NewReference(1), true)
	if err != nil {
		t.Fatal(err)
	}
	grid, err := checkpoint.DistilledGrid(s.Meta, s.Schedule.T)
	if want := []int{999, 748, 498, 247}; err != nil || !slices.Equal(grid, want) {
		t.Errorf("grid %v (%v), want %v", grid, err, want)
	}
	if s.Prediction != diffusion.V || s.Meta[checkpoint.MetaDistilledGuidance] != "" {
		t.Errorf("prediction %v, guidance %q: want v and none for an unconditional student", s.Prediction, s.Meta[checkpoint.MetaDistilledGuidance])
	}
	m := &generate.Model{Model: *s}
	_, spec, warn, err := m.Sampler(generate.SamplerSpec{})
	if err != nil || warn != "" || spec.Steps != 4 || spec.Spacing != "distilled" {
		t.Errorf("default sampler %+v, warning %q, err %v: want the 4-step grid without a warning", spec, warn, err)
	}

	// A conditional student records the guidance scale it was distilled at; one step is a grid too.
	path = filepath.Join(dir, "fast-cond.safetensors")
	if err := writeModelFile(path, "tiny", "zero,one", 1); err != nil {
		t.Fatal(err)
	}
	if s, err = checkpoint.LoadForSampling(path, tensor.NewReference(1), true); err != nil {
		t.Fatal(err)
	}
	if g, err := checkpoint.DistilledGrid(s.Meta, s.Schedule.T); err != nil || !slices.Equal(g, []int{999}) || s.Meta[checkpoint.MetaDistilledGuidance] != "1.5" {
		t.Errorf("conditional 1-step student: grid %v (%v), meta %v", g, err, s.Meta)
	}

	for _, args := range [][]string{
		{"-write-model", path, "-distilled", "3"},
		{"-write-model", path, "-distilled", "-4"},
		{"-write-model", path, "-distilled", "1024"},
		{"-distilled", "4"},
	} {
		err := run(args, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "-distilled") || strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: %v, want a one-line error naming -distilled", args, err)
		}
	}
}

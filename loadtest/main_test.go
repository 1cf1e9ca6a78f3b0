package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"ddpm/generate"
	"ddpm/serve"
	"ddpm/tensor"
	"ddpm/train"
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

// TestLoad runs the load test for a second against a real server with the tiny model and a
// one-slot queue: requests succeed, the overflow is 429, nothing is a 5xx or a transport error.
func TestLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tiny.safetensors")
	if err := writeModelFile(path, "tiny"); err != nil {
		t.Fatal(err)
	}
	s, err := train.LoadForSampling(path, tensor.NewReference(1), true)
	if err != nil {
		t.Fatal(err)
	}
	m := &generate.Model{Net: s.Model, Schedule: s.Schedule, Prediction: s.Objective, Source: path}
	srv, err := serve.New([]serve.Model{{Name: "tiny", Copies: []*generate.Model{m}}}, serve.Options{Queue: 1})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	defer func() {
		ts.Close()
		srv.Shutdown(context.Background())
	}()
	sum, err := load(config{url: ts.URL, clients: 6, streamers: 2, duration: time.Second, body: `{"steps":2,"n":2}`, backoff: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if sum.OK == 0 || sum.Images != 2*sum.OK || sum.Status429 == 0 || sum.Status5xx != 0 || sum.Errors != 0 {
		t.Errorf("summary %+v: want OK answers of 2 images, some 429s, no 5xx or errors", sum)
	}
	if sum.P50ms <= 0 || sum.P99ms < sum.P50ms || sum.Maxms < sum.P99ms {
		t.Errorf("latency percentiles p50 %v p99 %v max %v", sum.P50ms, sum.P99ms, sum.Maxms)
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

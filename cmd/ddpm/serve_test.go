package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ddpm-go/ddpm/tensor/dnnl"
)

func TestServeFlagErrors(t *testing.T) {
	model := tinyModelFile(t, 1)
	for _, args := range [][]string{
		{"--max-n", "0"},
		{"--max-steps", "-1"},
		{"--queue", "0"},
		{"--workers", "0"},
		{"--workers", "65"},
		{"--timeout", "0s"},
		{"--grace", "-1s"},
		{"--max-body", "10"},
		{"--max-batch", "0"},
		{"--chunk", "-1"},
		{"--allowed-hosts", "http://ddpm.example"},
		{"--allowed-hosts", "ddpm.example,a b"},
		{"--allowed-hosts", "ddpm.example:99999"},
		{"--allowed-hosts", "*"},
		{"--ckpt", model, "--ckpt", model},
		{"--ckpt", "=x"},
		{"--ckpt", "a b=" + model},
		{"--ckpt", "/no/such/file.safetensors"},
		{"--ckpt", model, "--engine", "gpu"},
		{"--ckpt", model, "--addr", "256.0.0.1:1"},
		{"--bogus"},
		{"extra"},
	} {
		code, _, errs := runCLI(t, append([]string{"serve"}, args...)...)
		if code != 2 || strings.Count(strings.TrimSpace(errs), "\n") != 0 || !strings.HasPrefix(errs, "ddpm serve: ") {
			t.Errorf("serve %v: exit %d, stderr %q; want 2 and one line", args, code, errs)
		}
	}
}

// syncBuffer is a bytes.Buffer safe to write from the server's goroutines while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestServeCommand runs `ddpm serve` with two models on a free loopback port, uses the API, then
// stops it the way SIGTERM does while a request is in flight: the request still gets its images.
func TestServeCommand(t *testing.T) {
	model := tinyModelFile(t, 1)
	ctx, stop := context.WithCancel(context.Background())
	old := serveSignals
	serveSignals = func() (context.Context, context.CancelFunc) { return ctx, stop }
	defer func() { serveSignals = old }()

	var stderr syncBuffer
	exit := make(chan int, 1)
	go func() {
		exit <- run([]string{"serve", "--ckpt", model, "--ckpt", "second=" + model, "--addr", "127.0.0.1:0",
			"--engine", "ref", "--threads", "1", "--workers", "2", "--max-n", "4", "--allowed-hosts", "ddpm.example, other.example:81"}, io.Discard, &stderr)
	}()
	re := regexp.MustCompile(`serving on (http://[0-9.:]+)`)
	var url string
	for deadline := time.Now().Add(20 * time.Second); url == ""; time.Sleep(10 * time.Millisecond) {
		if m := re.FindStringSubmatch(stderr.String()); m != nil {
			url = m[1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("server did not start: %s", stderr.String())
		}
	}
	resp, err := http.Get(url + "/v1/info")
	if err != nil {
		t.Fatal(err)
	}
	var mr struct {
		Engine string
		Models []struct{ Name string }
		Limits struct {
			MaxN    int `json:"max_n"`
			Workers int
		}
	}
	json.NewDecoder(resp.Body).Decode(&mr)
	resp.Body.Close()
	if len(mr.Models) != 2 || mr.Models[0].Name != "tiny1" || mr.Models[1].Name != "second" || mr.Limits.MaxN != 4 || mr.Limits.Workers != 2 {
		t.Errorf("models %+v", mr)
	}
	// The engine line names the precision and the CPU features it was chosen from.
	if !strings.HasPrefix(mr.Engine, "ref fp32 (auto: ") || !strings.Contains(mr.Engine, dnnl.ThisCPU().ISAs()) {
		t.Errorf("engine %q", mr.Engine)
	}
	// The Host must name the server: its address, localhost on its port, or --allowed-hosts.
	port := url[strings.LastIndex(url, ":")+1:]
	for host, code := range map[string]int{"localhost:" + port: 200, "ddpm.example": 200, "other.example:81": 200,
		"other.example:82": 403, "evil.example:" + port: 403} {
		req, _ := http.NewRequest("GET", url+"/healthz", nil)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != code {
			t.Errorf("Host %q: %d, want %d", host, resp.StatusCode, code)
		}
	}
	// curl -d without -H sends a form type: refused with 415.
	resp, err = http.Post(url+"/v1/samples", "application/x-www-form-urlencoded", strings.NewReader(`{"n":1}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnsupportedMediaType {
		t.Errorf("form-typed POST: %d, want 415", resp.StatusCode)
	}

	// Requests in flight when the signal comes (running or queued) still complete.
	type answer struct {
		code int
		at   time.Time
	}
	answers := make(chan answer, 8)
	for i := 0; i < 8; i++ {
		go func() {
			resp, err := http.Post(url+"/v1/samples", "application/json", strings.NewReader(`{"model":"second","sampler":"ddpm","n":4,"seed":3}`))
			if err != nil {
				answers <- answer{-1, time.Now()}
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			answers <- answer{resp.StatusCode, time.Now()}
		}()
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(2 * time.Millisecond) {
		resp, err := http.Get(url + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		// Stop once all 8 are accepted (running, waiting or done) and one is running.
		var queued, running, done float64
		for _, l := range strings.Split(string(b), "\n") {
			fmt.Sscanf(l, "ddpm_queue_depth %g", &queued)
			fmt.Sscanf(l, "ddpm_jobs_running %g", &running)
			fmt.Sscanf(l, `ddpm_jobs_total{outcome="ok"} %g`, &done)
		}
		if running > 0 && queued+running+done == 8 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the 8 requests never were all accepted with one running")
		}
	}
	stopped := time.Now()
	stop()
	after := 0
	for i := 0; i < 8; i++ {
		a := <-answers
		if a.code != 200 {
			t.Errorf("request accepted before shutdown: status %d", a.code)
		}
		if a.code == 200 && a.at.After(stopped) {
			after++
		}
	}
	if after == 0 {
		t.Errorf("no in-flight request completed after the signal; stderr:\n%s", stderr.String())
	}
	select {
	case code := <-exit:
		if code != 0 {
			t.Errorf("exit %d: %s", code, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop")
	}
	if _, err := http.Get(url + "/healthz"); err == nil {
		t.Error("server still answers after shutdown")
	}
	if !strings.Contains(stderr.String(), "stopped") {
		t.Errorf("stderr lacks the shutdown report:\n%s", stderr.String())
	}
}

package serve

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ddpm-go/ddpm/checkpoint"
	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/generate"
	"github.com/ddpm-go/ddpm/nn"
	"github.com/ddpm-go/ddpm/schedule"
	"github.com/ddpm-go/ddpm/tensor"
)

// tinyConfig is a UNet small enough that a 20-step run of a few 8x8 images takes milliseconds on
// the reference engine.
var tinyConfig = nn.Config{Name: "tiny", ImageSize: 8, InChannels: 1, OutChannels: 1, BaseChannels: 8,
	ChannelMult: []int{1, 2}, ResBlocks: 1, AttnResolutions: []int{}, Heads: 1, TimeEmbedDim: 16, SinusoidalDim: 8, Groups: 4}

// tinyModel is a randomly initialised tiny UNet that went through a checkpoint file, as a served
// model does, with a linear schedule of T = 100.
func tinyModel(t testing.TB, seed uint64) *generate.Model {
	t.Helper()
	be := tensor.NewReference(1)
	u, err := nn.New(tinyConfig, be, seed)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "tiny.safetensors")
	if err := checkpoint.SaveModel(path, u, nil); err != nil {
		t.Fatal(err)
	}
	u2, _, err := checkpoint.LoadModel(path, be, "")
	if err != nil {
		t.Fatal(err)
	}
	s, err := schedule.New("linear", 100, false)
	if err != nil {
		t.Fatal(err)
	}
	return &generate.Model{Model: checkpoint.Model{Net: u2, Schedule: s, Prediction: diffusion.Eps, Source: path}}
}

// newTestServer serves the named models (one copy per worker each) on an httptest server.
func newTestServer(t testing.TB, opt Options, workers int, names ...string) (*Server, *httptest.Server) {
	t.Helper()
	if len(names) == 0 {
		names = []string{"tiny"}
	}
	var ms []Model
	for i, n := range names {
		m := Model{Name: n}
		for w := 0; w < workers; w++ {
			m.Copies = append(m.Copies, tinyModel(t, uint64(i+1)))
		}
		ms = append(ms, m)
	}
	return startServer(t, ms, opt)
}

// startServer serves ms behind an httptest server, both shut down when the test ends.
func startServer(t testing.TB, ms []Model, opt Options) (*Server, *httptest.Server) {
	t.Helper()
	s, err := New(ms, opt)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(func() {
		ts.Close()
		s.Shutdown(context.Background())
	})
	return s, ts
}

func post(t testing.TB, url, body string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.Post(url+"/v1/samples", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func get(t testing.TB, url string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// sseEvent is one parsed Server-Sent Event.
type sseEvent struct {
	Name string
	Data json.RawMessage
}

// readSSE parses events from r until EOF or until stop returns true.
func readSSE(t testing.TB, r io.Reader, stop func(sseEvent) bool) []sseEvent {
	t.Helper()
	var out []sseEvent
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	var ev sseEvent
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if ev.Name != "" {
				out = append(out, ev)
				if stop != nil && stop(ev) {
					return out
				}
			}
			ev = sseEvent{}
		case strings.HasPrefix(line, "event: "):
			ev.Name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			ev.Data = append(ev.Data, bytes.TrimPrefix([]byte(line), []byte("data: "))...)
		}
	}
	return out
}

func decodeAPIError(t testing.TB, b []byte) apiError {
	t.Helper()
	var e apiError
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatalf("error body is not JSON: %v: %q", err, b)
	}
	return e
}

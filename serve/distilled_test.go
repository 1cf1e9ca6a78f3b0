package serve

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/ddpm-go/ddpm/checkpoint"
	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/generate"
	"github.com/ddpm-go/ddpm/imageio"
)

// studentGrid is the grid of the test's distilled model on T = 100: no spacing of 4 steps makes it,
// so a run over it can only be the distilled sampler.
var studentGrid = []int{99, 73, 48, 22}

// tinyStudent is tinyModel with the metadata ddpm distill writes for a 4-step student.
func tinyStudent(t testing.TB, seed uint64) *generate.Model {
	m := tinyModel(t, seed)
	g, _ := json.Marshal(studentGrid)
	m.Meta = map[string]string{checkpoint.MetaDistilledSteps: "4", checkpoint.MetaDistilledTimesteps: string(g)}
	return m
}

// TestDistilledModel serves an ordinary model and a distilled student: /v1/models reports the
// student's step count; a request without steps samples the student over its own grid, with no
// warning, and returns what Model.Sampler draws; other steps still work, warned in a Warning
// header and the stream's done event; the ordinary model is unchanged.
func TestDistilledModel(t *testing.T) {
	var mu sync.Mutex
	var seen []int // timesteps of every step the worker runs
	hook := func(st diffusion.Step) {
		mu.Lock()
		seen = append(seen, st.T)
		mu.Unlock()
	}
	steps := func() []int {
		mu.Lock()
		defer mu.Unlock()
		out := seen
		seen = nil
		return out
	}
	student := tinyStudent(t, 2)
	_, ts := startServer(t, []Model{{Name: "plain", Copies: []*generate.Model{tinyModel(t, 1)}}, {Name: "student", Copies: []*generate.Model{student}}},
		Options{stepHook: hook})

	_, b := get(t, ts.URL+"/v1/models")
	var mr ModelsResponse
	if err := json.Unmarshal(b, &mr); err != nil {
		t.Fatal(err)
	}
	if len(mr.Models) != 2 || mr.Models[0].DistilledSteps != 0 || mr.Models[1].DistilledSteps != 4 {
		t.Errorf("models %+v", mr.Models)
	}
	if strings.Count(string(b), `"distilled_steps"`) != 1 {
		t.Errorf("distilled_steps should appear for the student only: %s", b)
	}

	for _, c := range []struct {
		body, sampler string
		ts            []int // the timesteps walked
		warn          bool
	}{
		{`{"model":"student","n":2,"seed":3}`, "ddim-4 eta=0 distilled", studentGrid, false},
		{`{"model":"student","sampler":"ddim","steps":4,"eta":0,"n":2,"seed":3}`, "ddim-4 eta=0 distilled", studentGrid, false},
		{`{"model":"student","steps":4,"spacing":"linspace","n":2,"seed":3}`, "ddim-4 eta=0 linspace", nil, true},
		{`{"model":"student","steps":8,"n":2,"seed":3}`, "ddim-8 eta=0 linspace", nil, true},
		{`{"model":"student","sampler":"ddpm","n":2,"seed":3}`, "ddpm-4 beta variance linspace", nil, true},
		{`{"model":"plain","n":2,"seed":3}`, "ddim-50 eta=0 linspace", nil, false},
	} {
		resp, b := post(t, ts.URL, c.body)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: status %d: %s", c.body, resp.StatusCode, b)
		}
		got := steps()
		if h := resp.Header.Get("X-Ddpm-Sampler"); h != c.sampler {
			t.Errorf("%s: X-Ddpm-Sampler %q, want %q", c.body, h, c.sampler)
		}
		if c.ts != nil && !slices.Equal(got, c.ts) {
			t.Errorf("%s: walked timesteps %v, want %v", c.body, got, c.ts)
		}
		w := resp.Header.Get("Warning")
		if (w != "") != c.warn {
			t.Errorf("%s: Warning %q, want one: %v", c.body, w, c.warn)
		}
		if c.warn && !strings.HasPrefix(w, `199 - "model student was distilled for 4 steps of ddim (eta 0) over the timesteps [99 73 48 22]; `+c.sampler) {
			t.Errorf("%s: Warning %q", c.body, w)
		}
	}

	// A request without steps returns what Model.Sampler draws with no settings.
	resp, b := post(t, ts.URL, `{"model":"student","n":3,"seed":9}`)
	steps()
	sm, _, _, err := student.Sampler(generate.SamplerSpec{})
	if err != nil {
		t.Fatal(err)
	}
	x, err := student.Sample(context.Background(), sm, generate.Job{N: 3, Seed: 9})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := gridPNG(x, 3, 1, 8, 8, imageio.GridCols(3))
	if resp.StatusCode != 200 || !bytes.Equal(b, want) {
		t.Errorf("student without steps: status %d, bytes differ from Model.Sampler's", resp.StatusCode)
	}

	// The stream: 4 frames over the grid and no warning by default; a warning in done off the grid.
	for _, c := range []struct {
		q     string
		total int
		warn  bool
	}{{"model=student&n=2", 4, false}, {"model=student&n=2&steps=6", 6, true}} {
		resp, err := http.Get(ts.URL + "/v1/samples/stream?" + c.q)
		if err != nil {
			t.Fatal(err)
		}
		events := readSSE(t, resp.Body, nil)
		resp.Body.Close()
		steps()
		var done DoneEvent
		frames := 0
		for _, e := range events {
			switch e.Name {
			case "step":
				var st StepEvent
				json.Unmarshal(e.Data, &st)
				if st.Total != c.total {
					t.Errorf("%s: step total %d, want %d", c.q, st.Total, c.total)
				}
				frames++
			case "done":
				if err := json.Unmarshal(e.Data, &done); err != nil {
					t.Fatal(err)
				}
			}
		}
		if frames != c.total || done.PNG == "" {
			t.Fatalf("%s: %d frames, done %+v", c.q, frames, done)
		}
		if (done.Warning != "") != c.warn || (c.warn && !strings.Contains(done.Warning, "model student was distilled for 4 steps")) {
			t.Errorf("%s: done warning %q, want one: %v", c.q, done.Warning, c.warn)
		}
		if (resp.Header.Get("Warning") != "") != c.warn {
			t.Errorf("%s: Warning header %q", c.q, resp.Header.Get("Warning"))
		}
		if _, err := base64.StdEncoding.DecodeString(done.PNG); err != nil {
			t.Error(err)
		}
	}
}

// TestDistilledBadMetadata: a model whose distillation metadata cannot be read is refused when the
// server starts, not on every request.
func TestDistilledBadMetadata(t *testing.T) {
	m := tinyModel(t, 1)
	m.Meta = map[string]string{checkpoint.MetaDistilledSteps: "2", checkpoint.MetaDistilledTimesteps: "[99,120]"}
	if _, err := New([]Model{{Name: "bad", Copies: []*generate.Model{m}}}, Options{}); err == nil || !strings.Contains(err.Error(), `model "bad"`) {
		t.Errorf("New: %v", err)
	}
}

// TestWarningHeader: the message is a quoted-string whatever it holds.
func TestWarningHeader(t *testing.T) {
	if got := warningHeader(`a "b" \c`); got != `199 - "a \"b\" \\c"` {
		t.Errorf("warningHeader: %s", got)
	}
}

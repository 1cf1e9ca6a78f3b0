package serve

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image/png"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/generate"
	"github.com/ddpm-go/ddpm/imageio"
)

// direct draws what a request should return, without the server: the oracle for the API's bytes.
func direct(t *testing.T, m *generate.Model, spec generate.SamplerSpec, n int, seed uint64) []float64 {
	t.Helper()
	s, _, err := spec.New(m.Schedule)
	if err != nil {
		t.Fatal(err)
	}
	x, err := m.Sample(context.Background(), s, generate.Job{N: n, Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	return x
}

func TestSamplesPNG(t *testing.T) {
	s, ts := newTestServer(t, Options{}, 1)
	body := `{"sampler":"ddim","steps":10,"eta":0.5,"n":5,"seed":42,"clip":true}`
	resp, b := post(t, ts.URL, body)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "image/png" {
		t.Errorf("Content-Type %q", ct)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	// 5 images of 8x8 in a 3-column grid (2 rows) with 2-pixel borders.
	if got := img.Bounds().Size(); got.X != 3*10+2 || got.Y != 2*10+2 {
		t.Errorf("grid size %v, want 32x22", got)
	}
	x := direct(t, s.models[0].Model, generate.SamplerSpec{Name: "ddim", Steps: 10, Eta: 0.5, Clip: true}, 5, 42)
	want, err := gridPNG(x, 5, 1, 8, 8, imageio.GridCols(5))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, want) {
		t.Error("server's PNG differs from sampling the model directly with the same settings")
	}
	_, again := post(t, ts.URL, body)
	if !bytes.Equal(b, again) {
		t.Error("same request, different bytes")
	}
	_, other := post(t, ts.URL, strings.Replace(body, `"seed":42`, `"seed":43`, 1))
	if bytes.Equal(b, other) {
		t.Error("seed 43 gave the bytes of seed 42")
	}
	_, full, _ := generate.SamplerSpec{Name: "ddim", Steps: 10, Eta: 0.5, Clip: true}.New(s.models[0].Schedule)
	if h := resp.Header.Get("X-Ddpm-Sampler"); h != full.String() {
		t.Errorf("X-Ddpm-Sampler %q", h)
	}
}

func TestSamplesDefaultsAndDDPM(t *testing.T) {
	s, ts := newTestServer(t, Options{MaxN: 4}, 1)
	// {} is ddim with min(50, T) steps, n = min(16, max-n) = 4, seed 0.
	resp, b := post(t, ts.URL, `{}`)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	want, _ := gridPNG(direct(t, s.models[0].Model, generate.SamplerSpec{Name: "ddim", Steps: 50}, 4, 0), 4, 1, 8, 8, imageio.GridCols(4))
	if !bytes.Equal(b, want) {
		t.Error("defaults: bytes differ from DDIM-50, n=4, seed 0")
	}
	resp, b = post(t, ts.URL, `{"sampler":"ddpm","variance":"posterior","n":2,"seed":7}`)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	want, _ = gridPNG(direct(t, s.models[0].Model, generate.SamplerSpec{Name: "ddpm", Variance: "posterior"}, 2, 7), 2, 1, 8, 8, imageio.GridCols(2))
	if !bytes.Equal(b, want) {
		t.Error("ddpm: bytes differ from DDPM-100 posterior")
	}
}

// TestEverySampler checks each sampler diffusion offers against sampling directly.
func TestEverySampler(t *testing.T) {
	s, ts := newTestServer(t, Options{}, 1)
	for _, name := range diffusion.SamplerNames() {
		resp, b := post(t, ts.URL, fmt.Sprintf(`{"sampler":%q,"steps":6,"n":2,"seed":3}`, name))
		if resp.StatusCode != 200 {
			t.Errorf("%s: status %d: %s", name, resp.StatusCode, b)
			continue
		}
		want, _ := gridPNG(direct(t, s.models[0].Model, generate.SamplerSpec{Name: name, Steps: 6}, 2, 3), 2, 1, 8, 8, imageio.GridCols(2))
		if !bytes.Equal(b, want) {
			t.Errorf("%s: bytes differ from sampling directly", name)
		}
		// eps_scale reaches the sampler.
		resp, b = post(t, ts.URL, fmt.Sprintf(`{"sampler":%q,"steps":6,"n":2,"seed":3,"eps_scale":1.5}`, name))
		if resp.StatusCode != 200 {
			t.Errorf("%s eps_scale: status %d: %s", name, resp.StatusCode, b)
			continue
		}
		want, _ = gridPNG(direct(t, s.models[0].Model, generate.SamplerSpec{Name: name, Steps: 6, EpsScale: 1.5}, 2, 3), 2, 1, 8, 8, imageio.GridCols(2))
		if !bytes.Equal(b, want) {
			t.Errorf("%s eps_scale: bytes differ from sampling directly", name)
		}
	}
}

// TestSamplerOrder: the order of UniPC and iPNDM reaches the sampler, by JSON and by query; a
// sampler without one, or an order out of range, is a 400 naming the field.
func TestSamplerOrder(t *testing.T) {
	s, ts := newTestServer(t, Options{}, 1)
	for _, c := range []struct {
		name  string
		order int
	}{{"unipc", 3}, {"unipc", 1}, {"ipndm-v", 2}} {
		resp, b := post(t, ts.URL, fmt.Sprintf(`{"sampler":%q,"steps":6,"n":2,"seed":3,"order":%d}`, c.name, c.order))
		if resp.StatusCode != 200 {
			t.Fatalf("%s order %d: status %d: %s", c.name, c.order, resp.StatusCode, b)
		}
		want, _ := gridPNG(direct(t, s.models[0].Model, generate.SamplerSpec{Name: c.name, Steps: 6, Order: c.order}, 2, 3), 2, 1, 8, 8, imageio.GridCols(2))
		if !bytes.Equal(b, want) {
			t.Errorf("%s order %d: bytes differ from sampling directly", c.name, c.order)
		}
	}
	for _, body := range []string{`{"sampler":"ddim","order":2}`, `{"sampler":"unipc","order":4}`, `{"sampler":"unipc","order":0}`} {
		resp, b := post(t, ts.URL, body)
		if e := decodeAPIError(t, b); resp.StatusCode != 400 || e.Field != "order" {
			t.Errorf("%s: status %d, error %+v; want 400 naming order", body, resp.StatusCode, e)
		}
	}
	if resp, b := get(t, ts.URL+"/v1/samples/stream?sampler=unipc&steps=4&n=1&order=3"); resp.StatusCode != 200 {
		t.Errorf("stream with order: status %d: %s", resp.StatusCode, b)
	}
}

func TestSamplesNPZ(t *testing.T) {
	s, ts := newTestServer(t, Options{}, 1)
	resp, b := post(t, ts.URL, `{"steps":5,"n":3,"seed":9,"format":"npz"}`)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	if cd := resp.Header.Get("Content-Disposition"); !strings.Contains(cd, ".npz") {
		t.Errorf("Content-Disposition %q", cd)
	}
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	if len(zr.File) != 1 || zr.File[0].Name != "arr_0.npy" {
		t.Fatalf("npz entries %v", zr.File)
	}
	f, _ := zr.File[0].Open()
	a, err := imageio.ReadNPY(f)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(a.Shape) != "[3 8 8 1]" {
		t.Fatalf("shape %v, want [3 8 8 1]", a.Shape)
	}
	x := direct(t, s.models[0].Model, generate.SamplerSpec{Name: "ddim", Steps: 5}, 3, 9)
	want := imageio.ToUint8(nil, x)
	if a.Descr != "|u1" || len(a.Values) != len(want) {
		t.Fatalf("npz holds %s x %d, want |u1 x %d", a.Descr, len(a.Values), len(want))
	}
	for i, v := range a.Values {
		if v != float64(want[i]) {
			t.Fatalf("npz pixel %d = %v, want %d (C = 1, so NHWC = NCHW)", i, v, want[i])
		}
	}
}

func TestModelsHealthPageMetrics(t *testing.T) {
	_, ts := newTestServer(t, Options{MaxN: 8, MaxSteps: 60, Queue: 3}, 2, "a", "b")
	resp, b := get(t, ts.URL+"/v1/models")
	if resp.StatusCode != 200 {
		t.Fatalf("models: %d", resp.StatusCode)
	}
	var mr ModelsResponse
	if err := json.Unmarshal(b, &mr); err != nil {
		t.Fatal(err)
	}
	if len(mr.Models) != 2 || mr.Models[0].Name != "a" || mr.Models[1].Name != "b" {
		t.Fatalf("models %+v", mr.Models)
	}
	m := mr.Models[0]
	if m.Timesteps != 100 || m.Schedule != "linear" || m.Prediction != "eps" || m.Channels != 1 || m.Height != 8 || m.Width != 8 || m.Params <= 0 {
		t.Errorf("model info %+v", m)
	}
	if mr.Limits != (Limits{MaxN: 8, MaxSteps: 60, Queue: 3, Workers: 2, TimeoutSeconds: 120, MaxBodyBytes: 16 << 10, MaxInpaintBodyBytes: 16<<10 + 2*16*64}) {
		t.Errorf("limits %+v", mr.Limits)
	}

	resp, b = get(t, ts.URL+"/healthz")
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"status": "ok"`) {
		t.Errorf("healthz %d %s", resp.StatusCode, b)
	}

	resp, b = get(t, ts.URL+"/")
	if resp.StatusCode != 200 || !strings.Contains(string(b), `/static/app.js`) || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Errorf("page: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
		t.Errorf("page CSP %q", csp)
	}
	for _, f := range []string{"app.js", "style.css"} {
		resp, b = get(t, ts.URL+"/static/"+f)
		if resp.StatusCode != 200 || len(b) < 100 {
			t.Errorf("static %s: %d, %d bytes", f, resp.StatusCode, len(b))
		}
	}

	// One good request to each model, one bad one, then the counters.
	for _, body := range []string{`{"model":"a","steps":3,"n":2}`, `{"model":"b","steps":3,"n":3}`, `{"n":-1}`} {
		post(t, ts.URL, body)
	}
	waitMetrics(t, ts.URL,
		`ddpm_images_generated_total{model="a",sampler="ddim"} 2`,
		`ddpm_images_generated_total{model="b",sampler="ddim"} 3`,
		`ddpm_http_requests_total{code="200",handler="samples"} 2`,
		`ddpm_http_requests_total{code="400",handler="samples"} 1`,
		`ddpm_sampler_steps_total 6`,
		`ddpm_jobs_total{outcome="ok"} 2`,
		`ddpm_queue_depth 0`,
		`ddpm_http_request_duration_seconds_count{handler="samples"} 3`,
		`process_resident_memory_bytes`,
	)
}

// waitMetrics polls /metrics until it holds every wanted line (a request's counters are updated
// just after its answer is written, so a client can be a little ahead of them), failing after 5 s.
func waitMetrics(t *testing.T, url string, wants ...string) {
	t.Helper()
	var b []byte
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		var resp *http.Response
		resp, b = get(t, url+"/metrics")
		if resp.StatusCode != 200 {
			t.Fatalf("metrics: %d", resp.StatusCode)
		}
		missing := false
		for _, w := range wants {
			missing = missing || !strings.Contains(string(b), w)
		}
		if !missing {
			return
		}
	}
	for _, w := range wants {
		if !strings.Contains(string(b), w) {
			t.Errorf("metrics lack %q", w)
		}
	}
}

func TestInvalidRequests(t *testing.T) {
	_, ts := newTestServer(t, Options{MaxN: 8, MaxSteps: 60, MaxBody: 256}, 1, "a", "b")
	for _, c := range []struct {
		body  string
		code  int
		field string
	}{
		{``, 400, "body"},
		{`{`, 400, "body"},
		{`[1,2]`, 400, "body"},
		{`{"n":2} {"n":3}`, 400, "body"},
		{`{"n":2}x`, 400, "body"},
		{`{"bogus":1}`, 400, "bogus"},
		{`{"steps":"ten"}`, 400, "steps"},
		{`{"steps":1.5}`, 400, "steps"},
		{`{"seed":-1}`, 400, "seed"},
		{`{"eta":"x"}`, 400, "eta"},
		{`{"clip":1}`, 400, "clip"},
		{`{"n":-1}`, 400, "n"},
		{`{"n":9}`, 400, "n"},
		{`{"steps":-1}`, 400, "steps"},
		{`{"steps":61}`, 400, "steps"},
		{`{"sampler":"ddpm"}`, 400, "steps"}, // its default T = 100 is above max-steps 60
		{`{"sampler":"euler"}`, 400, "sampler"},
		{`{"model":"c"}`, 400, "model"},
		{`{"eta":-0.1}`, 400, "eta"},
		{`{"eta":11}`, 400, "eta"},
		{`{"sampler":"ddpm","steps":10,"eta":0.5}`, 400, "eta"},
		{`{"sampler":"ddpm","steps":10,"sigma_hat":true}`, 400, "sigma_hat"},
		{`{"sampler":"ddim","variance":"beta"}`, 400, "variance"},
		{`{"sampler":"plms","eta":0.5}`, 400, "eta"},
		{`{"sampler":"dpm-solver++","variance":"beta"}`, 400, "variance"},
		{`{"sampler":"ddim","sigma_hat":true,"eta":1}`, 400, "sigma_hat"},
		{`{"sampler":"ddpm","steps":10,"variance":"large"}`, 400, "variance"},
		{`{"spacing":"cosine"}`, 400, "spacing"},
		{`{"eps_scale":-1}`, 400, "eps_scale"},
		{`{"eps_scale":3}`, 400, "eps_scale"},
		{`{"eps_scale":"big"}`, 400, "eps_scale"},
		{`{"format":"jpeg"}`, 400, "format"},
		{`{"every":5}`, 200, ""}, // ignored by POST, but must be in range
		{`{"every":51}`, 400, "every"},
		{`{"model":"` + strings.Repeat("x", 300) + `"}`, 413, "body"},
	} {
		resp, b := post(t, ts.URL, c.body)
		if resp.StatusCode != c.code {
			t.Errorf("%s: status %d, want %d (%s)", c.body, resp.StatusCode, c.code, b)
			continue
		}
		if c.code == 200 {
			continue
		}
		e := decodeAPIError(t, b)
		if e.Field != c.field || e.Error == "" {
			t.Errorf("%s: error %+v, want field %q", c.body, e, c.field)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s: Content-Type %q", c.body, ct)
		}
	}

	for _, c := range []struct {
		query string
		field string
	}{
		{"bogus=1", "bogus"},
		{"steps=ten", "steps"},
		{"n=1&n=2", "n"},
		{"seed=-3", "seed"},
		{"eta=abc", "eta"},
		{"clip=maybe", "clip"},
		{"sigma_hat=2", "sigma_hat"},
		{"every=x", "every"},
		{"format=npz", "format"},
		{"n=100", "n"},
		{"steps=10&every=11", "every"},
		{"sampler=ddpm&steps=5&eta=1", "eta"},
		{"model=zzz", "model"},
	} {
		resp, b := get(t, ts.URL+"/v1/samples/stream?"+c.query)
		if resp.StatusCode != 400 {
			t.Errorf("stream ?%s: status %d, want 400", c.query, resp.StatusCode)
			continue
		}
		if e := decodeAPIError(t, b); e.Field != c.field {
			t.Errorf("stream ?%s: error %+v, want field %q", c.query, e, c.field)
		}
	}

	resp, _ := get(t, ts.URL+"/v1/samples")
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /v1/samples: %d, want 405", resp.StatusCode)
	}
	resp, b := get(t, ts.URL+"/v2/nothing")
	if resp.StatusCode != 404 || decodeAPIError(t, b).Error == "" {
		t.Errorf("unknown path: %d %s", resp.StatusCode, b)
	}
}

func TestStream(t *testing.T) {
	_, ts := newTestServer(t, Options{}, 1)
	q := "sampler=ddim&steps=12&every=5&n=3&seed=5&eta=0.2"
	resp, err := http.Get(ts.URL + "/v1/samples/stream?" + q)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	events := readSSE(t, resp.Body, nil)
	var names []string
	var steps []StepEvent
	var done DoneEvent
	for _, e := range events {
		names = append(names, e.Name)
		switch e.Name {
		case "step":
			var s StepEvent
			if err := json.Unmarshal(e.Data, &s); err != nil {
				t.Fatal(err)
			}
			steps = append(steps, s)
		case "done":
			if err := json.Unmarshal(e.Data, &done); err != nil {
				t.Fatal(err)
			}
		}
	}
	if got := strings.Join(names, ","); got != "queued,start,step,step,step,step,done" {
		t.Fatalf("events %s", got)
	}
	// every=5 of 12 steps: indices 0, 5, 10 and the last, 11.
	ts0, _ := diffusion.Timesteps(100, 12, diffusion.Linspace)
	for i, want := range []int{0, 5, 10, 11} {
		s := steps[i]
		if s.Index != want || s.Total != 12 || s.T != ts0[want] || s.Progress != float64(want+1)/12 {
			t.Errorf("frame %d: %+v, want index %d t %d", i, s, want, ts0[want])
		}
		for _, b64 := range []string{s.XT, s.X0} {
			b, err := base64.StdEncoding.DecodeString(b64)
			if err != nil {
				t.Fatal(err)
			}
			img, err := png.Decode(bytes.NewReader(b))
			if err != nil || img.Bounds().Dx() != 2*10+2 {
				t.Errorf("frame %d: bad PNG (%v)", i, err)
			}
		}
	}
	if steps[0].XT == steps[3].XT || steps[0].X0 == steps[3].X0 {
		t.Error("x_t or x0 did not change between the first and the last frame")
	}
	// The stream's final grid is the bytes POST returns for the same parameters.
	_, b := post(t, ts.URL, `{"sampler":"ddim","steps":12,"n":3,"seed":5,"eta":0.2}`)
	png, _ := base64.StdEncoding.DecodeString(done.PNG)
	if !bytes.Equal(png, b) {
		t.Error("stream's final PNG differs from POST /v1/samples with the same parameters")
	}
	if !strings.HasPrefix(strings.ToLower(done.Sampler), "ddim-12") || done.Seed != 5 || done.N != 3 {
		t.Errorf("done %+v", done)
	}
}

// slowHook makes every step take d, so a run lasts long enough to cancel it, and counts steps.
func slowHook(d time.Duration, count *atomic.Int64) func(diffusion.Step) {
	return func(diffusion.Step) {
		count.Add(1)
		time.Sleep(d)
	}
}

func TestStreamStopsWhenClientLeaves(t *testing.T) {
	var steps atomic.Int64
	s, ts := newTestServer(t, Options{stepHook: slowHook(10*time.Millisecond, &steps)}, 1)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", ts.URL+"/v1/samples/stream?steps=100&every=1&n=2", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	readSSE(t, resp.Body, func(e sseEvent) bool {
		if e.Name == "step" {
			seen++
		}
		return seen == 3
	})
	cancel()
	resp.Body.Close()
	// The worker must notice within a step or two and report the job canceled.
	deadline := time.Now().Add(5 * time.Second)
	for testutilCounter(t, ts.URL, `ddpm_jobs_total{outcome="canceled"} 1`) == false {
		if time.Now().After(deadline) {
			t.Fatal("job not canceled 5 s after the client left")
		}
		time.Sleep(20 * time.Millisecond)
	}
	n := steps.Load()
	time.Sleep(100 * time.Millisecond)
	if n2 := steps.Load(); n2 != n || n >= 50 {
		t.Errorf("sampler ran %d then %d of 100 steps after the client left at step 3", n, n2)
	}
	// The worker is free again: a new request is served.
	s.opt.stepHook = nil
	if resp, b := post(t, ts.URL, `{"steps":2,"n":1}`); resp.StatusCode != 200 {
		t.Errorf("after cancel: %d %s", resp.StatusCode, b)
	}
}

func testutilCounter(t *testing.T, url, line string) bool {
	_, b := get(t, url+"/metrics")
	return strings.Contains(string(b), line)
}

func TestPOSTCanceledByClient(t *testing.T) {
	var steps atomic.Int64
	_, ts := newTestServer(t, Options{stepHook: slowHook(10*time.Millisecond, &steps)}, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", ts.URL+"/v1/samples", strings.NewReader(`{"steps":100}`))
	req.Header.Set("Content-Type", "application/json")
	if _, err := http.DefaultClient.Do(req); err == nil {
		t.Fatal("want a client timeout")
	}
	deadline := time.Now().Add(5 * time.Second)
	for !testutilCounter(t, ts.URL, `ddpm_jobs_total{outcome="canceled"} 1`) {
		if time.Now().After(deadline) {
			t.Fatal("job not canceled after the client gave up")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := steps.Load(); n >= 50 {
		t.Errorf("sampler ran %d of 100 steps for a client that left after ~10", n)
	}
}

func TestTimeout(t *testing.T) {
	var steps atomic.Int64
	_, ts := newTestServer(t, Options{Timeout: 80 * time.Millisecond, stepHook: slowHook(10*time.Millisecond, &steps)}, 1)
	resp, b := post(t, ts.URL, `{"steps":100,"n":1}`)
	if resp.StatusCode != http.StatusGatewayTimeout {
		t.Fatalf("status %d, want 504: %s", resp.StatusCode, b)
	}
	if e := decodeAPIError(t, b); !strings.Contains(e.Error, "timed out") {
		t.Errorf("error %q", e.Error)
	}
	if n := steps.Load(); n >= 50 {
		t.Errorf("sampler ran %d steps past an 80 ms timeout at 10 ms a step", n)
	}
	// A stream that times out says so in an error event.
	r, err := http.Get(ts.URL + "/v1/samples/stream?steps=100&n=1")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	ev := readSSE(t, r.Body, nil)
	last := ev[len(ev)-1]
	if last.Name != "error" || !strings.Contains(string(last.Data), "timed out") {
		t.Errorf("last event %s %s", last.Name, last.Data)
	}
	waitMetrics(t, ts.URL, `ddpm_jobs_total{outcome="timeout"} 2`)
}

// TestQueueFull fills the one worker and the queue, and checks that the next request is refused at
// once with 429 and Retry-After, and that the waiting ones are then served.
func TestQueueFull(t *testing.T) {
	release := make(chan struct{})
	var started atomic.Int64
	s, ts := newTestServer(t, Options{Queue: 2, stepHook: func(diffusion.Step) {
		started.Add(1)
		<-release
	}}, 1)
	var wg sync.WaitGroup
	codes := make([]int, 3)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, _ := post(t, ts.URL, `{"steps":2,"n":1}`)
			codes[i] = resp.StatusCode
		}()
		// Wait until this request is running or queued before sending the next.
		for deadline := time.Now().Add(5 * time.Second); ; {
			if (i == 0 && started.Load() > 0) || (i > 0 && len(s.q.jobs) == i) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("request %d never reached the worker or the queue", i)
			}
			time.Sleep(time.Millisecond)
		}
	}
	// Worker busy, queue holds 2: the fourth is refused.
	resp, b := post(t, ts.URL, `{"steps":2,"n":1}`)
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("status %d, want 429: %s", resp.StatusCode, b)
	}
	if ra := resp.Header.Get("Retry-After"); ra == "" || ra == "0" {
		t.Errorf("Retry-After %q", ra)
	}
	rs, _ := get(t, ts.URL+"/v1/samples/stream?steps=2&n=1")
	if rs.StatusCode != http.StatusTooManyRequests {
		t.Errorf("stream: status %d, want 429", rs.StatusCode)
	}
	waitMetrics(t, ts.URL, "ddpm_queue_depth 2", "ddpm_queue_rejected_total 2")
	close(release)
	wg.Wait()
	for i, c := range codes {
		if c != 200 {
			t.Errorf("queued request %d: status %d", i, c)
		}
	}
}

func TestShutdown(t *testing.T) {
	t.Run("finishes in-flight work", func(t *testing.T) {
		var steps atomic.Int64
		s, ts := newTestServer(t, Options{stepHook: slowHook(5*time.Millisecond, &steps)}, 1)
		got := make(chan int, 1)
		go func() {
			resp, _ := post(t, ts.URL, `{"steps":20,"n":1}`)
			got <- resp.StatusCode
		}()
		for steps.Load() == 0 {
			time.Sleep(time.Millisecond)
		}
		errc := make(chan error, 1)
		go func() { errc <- s.Shutdown(context.Background()) }()
		for {
			s.mu.RLock()
			d := s.draining
			s.mu.RUnlock()
			if d {
				break
			}
			time.Sleep(time.Millisecond)
		}
		resp, b := post(t, ts.URL, `{"steps":2}`)
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("while draining: %d %s", resp.StatusCode, b)
		}
		if resp, _ := get(t, ts.URL+"/healthz"); resp.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("healthz while draining: %d", resp.StatusCode)
		}
		if err := <-errc; err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if c := <-got; c != 200 {
			t.Errorf("in-flight request: %d, want 200", c)
		}
		if n := steps.Load(); n != 20 {
			t.Errorf("in-flight job ran %d of 20 steps", n)
		}
	})
	t.Run("cancels after the grace period", func(t *testing.T) {
		var steps atomic.Int64
		s, ts := newTestServer(t, Options{stepHook: slowHook(10*time.Millisecond, &steps)}, 1)
		got := make(chan []byte, 1)
		code := make(chan int, 1)
		go func() {
			resp, b := post(t, ts.URL, `{"steps":100,"n":1}`)
			code <- resp.StatusCode
			got <- b
		}()
		for steps.Load() == 0 {
			time.Sleep(time.Millisecond)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		if err := s.Shutdown(ctx); err != context.DeadlineExceeded {
			t.Errorf("Shutdown: %v, want deadline exceeded", err)
		}
		if c := <-code; c != http.StatusServiceUnavailable {
			t.Errorf("canceled request: %d, want 503 (%s)", c, <-got)
		}
		if n := steps.Load(); n >= 50 {
			t.Errorf("job ran %d steps after a 50 ms grace at 10 ms a step", n)
		}
	})
}

// TestWorkersConcurrent runs requests on two workers at once and checks each got the bytes a
// single worker gives: the copies share nothing.
func TestWorkersConcurrent(t *testing.T) {
	_, one := newTestServer(t, Options{}, 1)
	_, two := newTestServer(t, Options{Queue: 32}, 2)
	bodies := []string{`{"steps":8,"n":2,"seed":1}`, `{"steps":8,"n":3,"seed":2,"sampler":"ddpm"}`, `{"steps":8,"n":1,"seed":3,"eta":1}`}
	want := map[string][]byte{}
	for _, b := range bodies {
		_, want[b] = post(t, one.URL, b)
	}
	var wg sync.WaitGroup
	for i := 0; i < 12; i++ {
		b := bodies[i%len(bodies)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, got := post(t, two.URL, b)
			if resp.StatusCode != 200 || !bytes.Equal(got, want[b]) {
				t.Errorf("%s on 2 workers: status %d, bytes equal %v", b, resp.StatusCode, bytes.Equal(got, want[b]))
			}
		}()
	}
	wg.Wait()
}

func TestNewErrors(t *testing.T) {
	m := tinyModel(t, 1)
	for _, c := range []struct {
		name   string
		models []Model
		opt    Options
	}{
		{"no models", nil, Options{}},
		{"no copies", []Model{{Name: "a"}}, Options{}},
		{"empty name", []Model{{Name: "", Copies: []*generate.Model{m}}}, Options{}},
		{"duplicate", []Model{{Name: "a", Copies: []*generate.Model{m}}, {Name: "a", Copies: []*generate.Model{m}}}, Options{}},
		{"copies differ", []Model{{Name: "a", Copies: []*generate.Model{m}}, {Name: "b", Copies: []*generate.Model{m, m}}}, Options{}},
		{"negative limit", []Model{{Name: "a", Copies: []*generate.Model{m}}}, Options{MaxN: -1}},
	} {
		if _, err := New(c.models, c.opt); err == nil {
			t.Errorf("%s: no error", c.name)
		}
	}
}

// TestPanicIsA500 checks that a panic inside sampling fails that request only: the worker lives on.
func TestPanicIsA500(t *testing.T) {
	var once atomic.Bool
	_, ts := newTestServer(t, Options{stepHook: func(diffusion.Step) {
		if once.CompareAndSwap(false, true) {
			panic("boom")
		}
	}}, 1)
	resp, b := post(t, ts.URL, `{"steps":3,"n":1}`)
	if resp.StatusCode != 500 || !strings.Contains(decodeAPIError(t, b).Error, "boom") {
		t.Errorf("panicking job: %d %s", resp.StatusCode, b)
	}
	if resp, b := post(t, ts.URL, `{"steps":3,"n":1}`); resp.StatusCode != 200 {
		t.Errorf("next job: %d %s", resp.StatusCode, b)
	}
	waitMetrics(t, ts.URL, `ddpm_jobs_total{outcome="error"} 1`, `ddpm_jobs_total{outcome="ok"} 1`)
}

func TestHeadStreamRunsNoJob(t *testing.T) {
	_, ts := newTestServer(t, Options{}, 1)
	resp, err := http.Head(ts.URL + "/v1/samples/stream?steps=3")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("HEAD stream: %v %v", resp, err)
	}
	if r, _ := http.Head(ts.URL + "/v1/samples/stream?steps=-3"); r.StatusCode != 400 {
		t.Errorf("HEAD with bad steps: %d, want 400", r.StatusCode)
	}
	waitMetrics(t, ts.URL, "ddpm_sampler_steps_total 0", `ddpm_http_requests_total{code="200",handler="stream"} 1`)
}

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
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ddpm-go/ddpm/checkpoint"
	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/generate"
	"github.com/ddpm-go/ddpm/imageio"
	"github.com/ddpm-go/ddpm/nn"
	"github.com/ddpm-go/ddpm/schedule"
	"github.com/ddpm-go/ddpm/tensor"
)

// condClasses are the class names of the conditional test model.
var condClasses = []string{"zero", "One", "two"}

// tinyCondModel is tinyModel with a label embedding for condClasses, its names stored in the file's
// metadata and read back as a served model's are.
func tinyCondModel(t testing.TB, seed uint64) *generate.Model {
	t.Helper()
	be := tensor.NewReference(1)
	cfg := tinyConfig
	cfg.NumClasses = len(condClasses)
	u, err := nn.New(cfg, be, seed)
	if err != nil {
		t.Fatal(err)
	}
	names, _ := json.Marshal(condClasses)
	path := filepath.Join(t.TempDir(), "cond.safetensors")
	if err := checkpoint.SaveModel(path, u, map[string]string{checkpoint.MetaClasses: string(names)}); err != nil {
		t.Fatal(err)
	}
	u2, meta, err := checkpoint.LoadModel(path, be, "")
	if err != nil {
		t.Fatal(err)
	}
	classes, err := checkpoint.ClassNames(meta, u2.Cfg.NumClasses)
	if err != nil {
		t.Fatal(err)
	}
	s, err := schedule.New("linear", 100, false)
	if err != nil {
		t.Fatal(err)
	}
	return &generate.Model{Model: checkpoint.Model{Net: u2, Schedule: s, Prediction: diffusion.Eps, Source: path, Classes: classes}}
}

// newCondServer serves "plain" (unconditional, the default model) and "cond" (conditional on
// condClasses) with one worker.
func newCondServer(t testing.TB, opt Options) (*Server, *httptest.Server) {
	t.Helper()
	return startServer(t, []Model{
		{Name: "plain", Copies: []*generate.Model{tinyModel(t, 1)}},
		{Name: "cond", Copies: []*generate.Model{tinyCondModel(t, 2)}},
	}, opt)
}

// directLabeled samples the model without the server, as a request with these labels should.
func directLabeled(t *testing.T, m *generate.Model, steps, n int, seed uint64, labels []int, s float64) []float64 {
	t.Helper()
	sampler, _, err := generate.SamplerSpec{Name: "ddim", Steps: steps}.New(m.Schedule)
	if err != nil {
		t.Fatal(err)
	}
	x, err := m.Sample(context.Background(), sampler, generate.Job{N: n, Seed: seed, Labels: labels, Guidance: s})
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// npzImages is the uint8 pixels of an NPZ answer (N,H,W,C; C = 1 here, so image after image).
func npzImages(t *testing.T, b []byte) []uint8 {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatalf("not an npz: %v", err)
	}
	f, err := zr.File[0].Open()
	if err != nil {
		t.Fatal(err)
	}
	a, err := imageio.ReadNPY(f)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]uint8, len(a.Values))
	for i, v := range a.Values {
		out[i] = uint8(v)
	}
	return out
}

func mustPost(t *testing.T, url, body string) (*http.Response, []byte) {
	t.Helper()
	resp, b := post(t, url, body)
	if resp.StatusCode != 200 {
		t.Fatalf("%s: status %d: %s", body, resp.StatusCode, b)
	}
	return resp, b
}

func TestClassRequests(t *testing.T) {
	s, ts := newCondServer(t, Options{MaxN: 12})
	m := s.models[1].Model

	// An index, the same index as a JSON number, and the name in another case are one request.
	body := `{"model":"cond","class":"1","guidance":3,"steps":5,"n":4,"seed":9,"format":"npz"}`
	resp, b := mustPost(t, ts.URL, body)
	want := imageio.ToUint8(nil, directLabeled(t, m, 5, 4, 9, []int{1, 1, 1, 1}, 3))
	if !bytes.Equal(npzImages(t, b), want) {
		t.Error(`class "1", guidance 3: images differ from sampling with labels 1 and s = 3 directly`)
	}
	if resp.Header.Get("X-Ddpm-Class") != "1" || resp.Header.Get("X-Ddpm-Guidance") != "3" {
		t.Errorf("class headers %q %q", resp.Header.Get("X-Ddpm-Class"), resp.Header.Get("X-Ddpm-Guidance"))
	}
	for _, alt := range []string{`"class":1`, "\"class\" :\n 1", `"class":"one"`, `"Class":1`, `"class":" 1 "`} {
		_, b2 := mustPost(t, ts.URL, strings.Replace(body, `"class":"1"`, alt, 1))
		if !bytes.Equal(b2, b) {
			t.Errorf(`%s: bytes differ from "class":"1"`, alt)
		}
	}

	// Without guidance the scale is generate.DefaultGuidance; class and scale both change images.
	_, def := mustPost(t, ts.URL, `{"model":"cond","class":"1","steps":5,"n":4,"seed":9,"format":"npz"}`)
	if !bytes.Equal(npzImages(t, def), imageio.ToUint8(nil, directLabeled(t, m, 5, 4, 9, []int{1, 1, 1, 1}, generate.DefaultGuidance))) {
		t.Error("no guidance: images differ from s = DefaultGuidance")
	}
	_, other := mustPost(t, ts.URL, `{"model":"cond","class":"2","guidance":3,"steps":5,"n":4,"seed":9,"format":"npz"}`)
	if bytes.Equal(npzImages(t, b), npzImages(t, other)) || bytes.Equal(npzImages(t, b), npzImages(t, def)) {
		t.Error("class 2 or guidance 2 gave the images of class 1 at guidance 3")
	}

	// A conditional model without a class samples its unconditional branch.
	_, none := mustPost(t, ts.URL, `{"model":"cond","steps":5,"n":2,"seed":9,"format":"npz"}`)
	if !bytes.Equal(npzImages(t, none), imageio.ToUint8(nil, directLabeled(t, m, 5, 2, 9, nil, 0))) {
		t.Error("conditional model, no class: images differ from unlabelled sampling")
	}

	// A list repeats by index.
	_, list := mustPost(t, ts.URL, `{"model":"cond","class":"0,2","guidance":0.5,"steps":5,"n":3,"seed":4,"format":"npz"}`)
	if !bytes.Equal(npzImages(t, list), imageio.ToUint8(nil, directLabeled(t, m, 5, 3, 4, []int{0, 2, 0}, 0.5))) {
		t.Error(`class "0,2": images differ from labels 0, 2, 0`)
	}

	// "all": with max-n 12 and 3 classes, 4 images per class, one grid row each; n defaults to 12.
	resp, grid := mustPost(t, ts.URL, `{"model":"cond","class":"all","steps":5,"seed":1}`)
	if resp.Header.Get("X-Ddpm-Grid-Cols") != "4" {
		t.Errorf(`class "all": %s grid columns, want 4`, resp.Header.Get("X-Ddpm-Grid-Cols"))
	}
	img, err := png.Decode(bytes.NewReader(grid))
	if err != nil {
		t.Fatal(err)
	}
	if got := img.Bounds().Size(); got.X != 4*10+2 || got.Y != 3*10+2 {
		t.Errorf(`class "all": grid %v, want 4 columns and 3 rows of 8x8 images (42x32)`, got)
	}
	labels := []int{0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2}
	wantGrid, _ := gridPNG(directLabeled(t, m, 5, 12, 1, labels, generate.DefaultGuidance), 12, 1, 8, 8, 4)
	if !bytes.Equal(grid, wantGrid) {
		t.Error(`class "all": grid differs from 4 images of each class in turn`)
	}

	// The stream takes the same parameters and ends with the bytes POST returns.
	q := "model=cond&class=two&guidance=1.5&steps=6&n=3&seed=5"
	sresp, err := http.Get(ts.URL + "/v1/samples/stream?" + q)
	if err != nil {
		t.Fatal(err)
	}
	defer sresp.Body.Close()
	var done DoneEvent
	var queued map[string]any
	for _, e := range readSSE(t, sresp.Body, nil) {
		switch e.Name {
		case "queued":
			json.Unmarshal(e.Data, &queued)
		case "done":
			json.Unmarshal(e.Data, &done)
		case "error":
			t.Fatalf("stream error %s", e.Data)
		}
	}
	_, pb := mustPost(t, ts.URL, `{"model":"cond","class":"two","guidance":1.5,"steps":6,"n":3,"seed":5}`)
	if got, _ := base64.StdEncoding.DecodeString(done.PNG); !bytes.Equal(got, pb) {
		t.Error("stream's final PNG with a class differs from POST's")
	}
	if done.Class != "two" || done.Guidance == nil || *done.Guidance != 1.5 || done.Cols != 2 {
		t.Errorf("done event: class %q guidance %v cols %d", done.Class, done.Guidance, done.Cols)
	}
	if queued["class"] != "two" || queued["guidance"] != 1.5 {
		t.Errorf("queued event %v", queued)
	}
}

// TestClassBatchInvariance: image i depends only on the seed, i and its class, so a request for n
// images is the first n images of a bigger request, for every way of giving classes.
func TestClassBatchInvariance(t *testing.T) {
	_, ts := newCondServer(t, Options{MaxN: 12})
	const dim = 64
	for _, class := range []string{`"2"`, `1`, `"0,2,1"`, `"all"`} {
		body := func(n int) string {
			return fmt.Sprintf(`{"model":"cond","class":%s,"guidance":2.5,"steps":4,"n":%d,"seed":11,"format":"npz"}`, class, n)
		}
		_, small := mustPost(t, ts.URL, body(3))
		_, big := mustPost(t, ts.URL, body(11))
		s, b := npzImages(t, small), npzImages(t, big)
		if len(s) != 3*dim || len(b) != 11*dim {
			t.Fatalf("class %s: %d and %d pixels", class, len(s), len(b))
		}
		if !bytes.Equal(s, b[:3*dim]) {
			t.Errorf("class %s: n = 3 differs from the first 3 images of n = 11", class)
		}
		if class == `"all"` && bytes.Equal(b[4*dim:5*dim], b[:dim]) {
			t.Error(`class "all": image 4 (class 1) equals image 0 (class 0)`)
		}
	}
}

func TestClassInvalidRequests(t *testing.T) {
	_, ts := newCondServer(t, Options{MaxN: 12})
	for _, c := range []struct{ body, field string }{
		{`{"class":"1"}`, "class"}, // the default model is unconditional
		{`{"model":"plain","class":"all"}`, "class"},
		{`{"model":"plain","class":1,"guidance":2}`, "class"},
		{`{"model":"plain","guidance":2}`, "guidance"},
		{`{"model":"cond","guidance":2}`, "guidance"},
		{`{"model":"cond","guidance":0}`, "guidance"},
		{`{"model":"cond","class":"1","guidance":-0.5}`, "guidance"},
		{`{"model":"cond","class":"1","guidance":20.5}`, "guidance"},
		{`{"model":"cond","class":"1","guidance":"big"}`, "guidance"},
		{`{"model":"cond","class":"1","guidance":null}`, "guidance"},
		{`{"model":"cond","class":"3"}`, "class"},
		{`{"model":"cond","class":3}`, "class"},
		{`{"model":"cond","class":-1}`, "class"},
		{`{"model":"cond","class":"seven"}`, "class"},
		{`{"model":"cond","class":"0,9"}`, "class"},
		{`{"model":"cond","class":"0,"}`, "class"},
		{`{"model":"cond","class":""}`, "class"},
		{`{"model":"cond","class":1.5}`, "class"},
		{`{"model":"cond","class":1e0}`, "class"},
		{`{"model":"cond","class":true}`, "class"},
		{`{"model":"cond","class":[0,1]}`, "class"},
		{`{"model":"cond","class":{}}`, "class"},
		{`{"model":"cond","class":null}`, "class"},
		{`{"model":"cond","class":1,"class":2}`, "class"},
		{`{"model":"cond","class":1,"Class":"2"}`, "class"},
	} {
		resp, b := post(t, ts.URL, c.body)
		if resp.StatusCode != 400 {
			t.Errorf("%s: status %d, want 400 (%s)", c.body, resp.StatusCode, b)
			continue
		}
		if e := decodeAPIError(t, b); e.Field != c.field || e.Error == "" {
			t.Errorf("%s: error %+v, want field %q", c.body, e, c.field)
		}
	}
	for _, c := range []struct{ query, field string }{
		{"class=1", "class"},
		{"model=plain&guidance=1", "guidance"},
		{"model=cond&guidance=1", "guidance"},
		{"model=cond&class=", "class"},
		{"model=cond&class=4", "class"},
		{"model=cond&class=x", "class"},
		{"model=cond&class=1&guidance=abc", "guidance"},
		{"model=cond&class=1&guidance=NaN", "guidance"},
		{"model=cond&class=1&guidance=Inf", "guidance"},
		{"model=cond&class=1&guidance=21", "guidance"},
		{"model=cond&class=1&class=2", "class"},
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
}

func TestModelsListClasses(t *testing.T) {
	_, ts := newCondServer(t, Options{MaxN: 64})
	for _, path := range []string{"/v1/models", "/v1/info"} {
		resp, b := get(t, ts.URL+path)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d", path, resp.StatusCode)
		}
		var mr ModelsResponse
		if err := json.Unmarshal(b, &mr); err != nil {
			t.Fatal(err)
		}
		if len(mr.Models) != 2 {
			t.Fatalf("%s: models %+v", path, mr.Models)
		}
		plain, cond := mr.Models[0], mr.Models[1]
		if plain.NumClasses != 0 || plain.Classes == nil || len(plain.Classes) != 0 || plain.PerClass != 0 {
			t.Errorf("%s: unconditional model reports %d classes %v, %d per class", path, plain.NumClasses, plain.Classes, plain.PerClass)
		}
		if cond.NumClasses != 3 || !slices.Equal(cond.Classes, condClasses) || cond.PerClass != 8 {
			t.Errorf("%s: conditional model reports %d classes %v, %d per class", path, cond.NumClasses, cond.Classes, cond.PerClass)
		}
		if mr.Guidance != (GuidanceInfo{Default: generate.DefaultGuidance, Max: generate.MaxGuidance}) {
			t.Errorf("%s: guidance %+v", path, mr.Guidance)
		}
		// The page reads the JSON: an unconditional model's classes are an empty list, not null.
		if !strings.Contains(string(b), `"classes": []`) || !strings.Contains(string(b), `"num_classes": 0`) {
			t.Errorf("%s: no empty classes list for the unconditional model", path)
		}
	}
}

func TestPerClass(t *testing.T) {
	for _, c := range []struct{ maxN, k, want int }{{64, 10, 6}, {64, 3, 8}, {12, 3, 4}, {4, 10, 1}, {64, 0, 0}} {
		s := &Server{opt: Options{MaxN: c.maxN}}
		if got := s.perClass(c.k); got != c.want {
			t.Errorf("max-n %d, %d classes: %d per class, want %d", c.maxN, c.k, got, c.want)
		}
	}
}

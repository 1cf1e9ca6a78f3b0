package serve

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/generate"
	"github.com/ddpm-go/ddpm/imageio"
	"github.com/ddpm-go/ddpm/schedule"
)

// The test models are 1x8x8: 64 values an image.
const tinyDim = 64

// testImage is an 8x8 picture using the whole byte range, and testMask keeps its top half
// (1) and fills in the bottom half (0), as `ddpm inpaint --box 0,4,8,4` does.
func testImage() []int {
	v := make([]int, tinyDim)
	for i := range v {
		v[i] = (i * 37) % 256
	}
	v[0], v[1] = 0, 255
	return v
}

func testMask(t *testing.T) []float64 {
	t.Helper()
	m, err := generate.BoxMask(1, 8, 8, 0, 4, 8, 4)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// inpaintJSON is the inpaint object of a request: the image, the mask and extra fields (",..." or "").
func inpaintJSON(img []int, mask []float64, extra string) string {
	js := func(v any) string { b, _ := json.Marshal(v); return string(b) }
	return fmt.Sprintf(`{"image":%s,"mask":%s%s}`, js(img), js(mask), extra)
}

// directInpaint samples the model without the server, as an inpainting request should: n copies of
// img as Known.X0 and the shared mask, with the sampler InpaintSpec builds.
func directInpaint(t *testing.T, m *generate.Model, in generate.InpaintSpec, sp generate.SamplerSpec, img []int, mask []float64, n int, seed uint64, labels []int, s float64) []float64 {
	t.Helper()
	sampler, _, err := in.Sampler(sp, m.Schedule)
	if err != nil {
		t.Fatal(err)
	}
	x0 := make([]float64, 0, n*len(img))
	for range n {
		for _, v := range img {
			x0 = append(x0, float64(v)/127.5-1)
		}
	}
	x, err := m.Sample(context.Background(), sampler, generate.Job{N: n, Seed: seed, Labels: labels, Guidance: s,
		Known: &diffusion.Known{X0: x0, Mask: mask}})
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// checkKnown fails unless every kept pixel of each of the n images (uint8, image after image) is
// the request's.
func checkKnown(t *testing.T, what string, px []uint8, n int, img []int, mask []float64) {
	t.Helper()
	if len(px) != n*tinyDim {
		t.Fatalf("%s: %d pixels for %d images", what, len(px), n)
	}
	for i := range n {
		for j, keep := range mask {
			if keep == 1 && int(px[i*tinyDim+j]) != img[j] {
				t.Fatalf("%s: image %d pixel %d is %d, the known value is %d", what, i, j, px[i*tinyDim+j], img[j])
			}
		}
	}
}

// gridImages cuts the n images out of a PNG grid of cols columns (imageio.GridPad apart, one grey
// byte a pixel).
func gridImages(t *testing.T, b []byte, n, cols int) []uint8 {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	g, ok := img.(*image.Gray)
	if !ok {
		t.Fatalf("grid is a %T, want *image.Gray", img)
	}
	var out []uint8
	pad := imageio.GridPad
	for k := range n {
		x0, y0 := pad+(k%cols)*(8+pad), pad+(k/cols)*(8+pad)
		for y := range 8 {
			for x := range 8 {
				out = append(out, g.GrayAt(x0+x, y0+y).Y)
			}
		}
	}
	return out
}

// postStream posts a JSON request to the stream and returns its events.
func postStream(t *testing.T, url, body string) []sseEvent {
	t.Helper()
	resp, err := http.Post(url+"/v1/samples/stream", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("POST stream %s: status %d", body, resp.StatusCode)
	}
	return readSSE(t, resp.Body, nil)
}

func TestInpaintRequests(t *testing.T) {
	s, ts := newCondServer(t, Options{MaxN: 12, MaxSteps: 100})
	plain, cond := s.models[0].Model, s.models[1].Model
	img, mask := testImage(), testMask(t)
	in := inpaintJSON(img, mask, "")

	// Replacement on the default sampler (ddim): the server's images are Model.Sample's with the
	// same Known, and the kept pixels come back exactly, in the NPZ and in the PNG grid.
	resp, b := mustPost(t, ts.URL, `{"steps":5,"n":4,"seed":9,"format":"npz","inpaint":`+in+`}`)
	want := imageio.ToUint8(nil, directInpaint(t, plain, generate.InpaintSpec{}, generate.SamplerSpec{Name: "ddim", Steps: 5}, img, mask, 4, 9, nil, 0))
	got := npzImages(t, b)
	if !bytes.Equal(got, want) {
		t.Error("replacement (ddim): images differ from Model.Sample with the same Known")
	}
	checkKnown(t, "npz", got, 4, img, mask)
	repl := got
	if h := resp.Header.Get("X-Ddpm-Sampler"); h != "ddim-5 eta=0 linspace with replacement" || resp.Header.Get("X-Ddpm-Fill") != "32" {
		t.Errorf("headers: sampler %q, fill %q", h, resp.Header.Get("X-Ddpm-Fill"))
	}
	if !strings.Contains(resp.Header.Get("Content-Disposition"), "-inpaint-seed9.npz") {
		t.Errorf("Content-Disposition %q", resp.Header.Get("Content-Disposition"))
	}
	resp, pb := mustPost(t, ts.URL, `{"steps":5,"n":4,"seed":9,"inpaint":`+in+`}`)
	if !bytes.Equal(gridImages(t, pb, 4, 2), want) {
		t.Error("PNG grid: images differ from the NPZ's")
	}
	if resp.Header.Get("Content-Type") != "image/png" {
		t.Errorf("Content-Type %q", resp.Header.Get("Content-Type"))
	}
	// The images differ from each other and from plain sampling in the filled part only.
	_, pl := mustPost(t, ts.URL, `{"steps":5,"n":4,"seed":9,"format":"npz"}`)
	if bytes.Equal(npzImages(t, pl), got) || bytes.Equal(got[:tinyDim], got[tinyDim:2*tinyDim]) {
		t.Error("inpainting gave plain sampling's images, or two equal completions")
	}

	// Every sampler, replacement: the same as sampling directly, kept pixels exact.
	for _, name := range diffusion.SamplerNames() {
		body := fmt.Sprintf(`{"sampler":%q,"steps":4,"n":3,"seed":2,"format":"npz","clip":true,"inpaint":%s}`, name, in)
		_, b := mustPost(t, ts.URL, body)
		want := imageio.ToUint8(nil, directInpaint(t, plain, generate.InpaintSpec{}, generate.SamplerSpec{Name: name, Steps: 4, Clip: true}, img, mask, 3, 2, nil, 0))
		if got := npzImages(t, b); !bytes.Equal(got, want) {
			t.Errorf("%s: images differ from Model.Sample with the same Known", name)
		} else {
			checkKnown(t, name, got, 3, img, mask)
		}
	}

	// RePaint (10 respaced steps, j = 2, r = 3: 10 + 2*2*4 = 26 network calls) with a class and
	// guidance on the conditional model.
	rp := inpaintJSON(img, mask, `,"repaint":true,"jumps":3,"jump_length":2`)
	body := `{"model":"cond","class":"two","guidance":2.5,"steps":10,"n":3,"seed":4,"format":"npz","variance":"posterior","inpaint":` + rp + `}`
	resp, b = mustPost(t, ts.URL, body)
	want = imageio.ToUint8(nil, directInpaint(t, cond, generate.InpaintSpec{RePaint: true, Jumps: 3, JumpLength: 2},
		generate.SamplerSpec{Steps: 10, Variance: "posterior"}, img, mask, 3, 4, []int{2, 2, 2}, 2.5))
	got = npzImages(t, b)
	if !bytes.Equal(got, want) {
		t.Error("RePaint with class two, s = 2.5: images differ from Model.Sample with the same Known")
	}
	checkKnown(t, "repaint", got, 3, img, mask)
	if h := resp.Header.Get("X-Ddpm-Sampler"); !strings.HasPrefix(h, "repaint-10 j=2 r=3 (26 network calls)") {
		t.Errorf("RePaint sampler header %q", h)
	}

	// The stream, posted: its steps are RePaint's network calls, and it ends with POST's bytes.
	ev := postStream(t, ts.URL, strings.Replace(body, `"format":"npz",`, `"every":1,`, 1))
	var steps int
	var done DoneEvent
	for _, e := range ev {
		switch e.Name {
		case "step":
			var st StepEvent
			json.Unmarshal(e.Data, &st)
			if st.Total != 26 || st.Index != steps {
				t.Fatalf("step %+v, want index %d of 26", st.Index, steps)
			}
			steps++
		case "done":
			json.Unmarshal(e.Data, &done)
		case "error":
			t.Fatalf("stream error %s", e.Data)
		}
	}
	_, pb = mustPost(t, ts.URL, strings.Replace(body, `"format":"npz",`, "", 1))
	if png, _ := base64.StdEncoding.DecodeString(done.PNG); steps != 26 || !bytes.Equal(png, pb) || done.Fill != 32 || done.Class != "two" {
		t.Errorf("stream: %d steps, fill %d, class %q; final PNG equals POST's: %v", steps, done.Fill, done.Class, bytes.Equal(png, pb))
	}

	// A mask of all zeros keeps nothing: plain sampling, bit for bit (diffusion.Known).
	zeros := make([]float64, tinyDim)
	_, b = mustPost(t, ts.URL, `{"steps":5,"n":4,"seed":9,"format":"npz","inpaint":`+inpaintJSON(img, zeros, "")+`}`)
	if !bytes.Equal(npzImages(t, b), npzImages(t, pl)) {
		t.Error("all-zero mask: images differ from plain sampling")
	}
	// The inpaint object's fields match as encoding/json matches them, ignoring case.
	_, b = mustPost(t, ts.URL, `{"steps":5,"n":4,"seed":9,"format":"npz","Inpaint":`+strings.Replace(in, `"mask"`, `"MASK"`, 1)+`}`)
	if !bytes.Equal(npzImages(t, b), repl) {
		t.Error(`"Inpaint"/"MASK": images differ from "inpaint"/"mask"`)
	}
}

func mustPostBody(t *testing.T, url, body string) []byte {
	t.Helper()
	_, b := mustPost(t, url, body)
	return b
}

// TestInpaintBatchInvariance: image i depends only on the seed, i, its class and the known part, so
// a request for n completions is the first n of a bigger one, by replacement and by RePaint.
func TestInpaintBatchInvariance(t *testing.T) {
	_, ts := newCondServer(t, Options{MaxN: 12, MaxSteps: 100})
	img, mask := testImage(), testMask(t)
	for _, c := range []struct{ head, extra string }{
		{`"sampler":"ddpm","steps":6`, ""},
		{`"model":"cond","class":"0,2,1","guidance":2,"steps":6`, ""},
		{`"model":"cond","class":"all","steps":8`, `,"repaint":true,"jumps":2,"jump_length":3`},
	} {
		body := func(n int) string {
			return fmt.Sprintf(`{%s,"n":%d,"seed":11,"format":"npz","inpaint":%s}`, c.head, n, inpaintJSON(img, mask, c.extra))
		}
		s, b := npzImages(t, mustPostBody(t, ts.URL, body(3))), npzImages(t, mustPostBody(t, ts.URL, body(11)))
		if !bytes.Equal(s, b[:3*tinyDim]) {
			t.Errorf("%s%s: n = 3 differs from the first 3 images of n = 11", c.head, c.extra)
		}
		checkKnown(t, c.head, b, 11, img, mask)
	}
}

func TestInpaintInvalidRequests(t *testing.T) {
	_, ts := newCondServer(t, Options{MaxN: 12, MaxSteps: 100, MaxBody: 2048})
	img, mask := testImage(), testMask(t)
	in := inpaintJSON(img, mask, "")
	set := func(i, v int) []int { c := append([]int(nil), img...); c[i] = v; return c }
	mset := func(i int, v float64) []float64 { c := append([]float64(nil), mask...); c[i] = v; return c }
	ones := make([]float64, tinyDim)
	for i := range ones {
		ones[i] = 1
	}
	with := func(extra string) string { return `{"steps":10,"inpaint":` + inpaintJSON(img, mask, extra) + `}` }
	for _, c := range []struct{ body, field string }{
		{`{"inpaint":` + inpaintJSON(img[:63], mask, "") + `}`, "inpaint.image"},
		{`{"inpaint":` + inpaintJSON(append(img, 0), mask, "") + `}`, "inpaint.image"},
		{`{"inpaint":` + inpaintJSON(img, mask[:10], "") + `}`, "inpaint.mask"},
		{`{"inpaint":` + inpaintJSON(set(5, 256), mask, "") + `}`, "inpaint.image"},
		{`{"inpaint":` + inpaintJSON(set(5, -1), mask, "") + `}`, "inpaint.image"},
		{`{"inpaint":` + strings.Replace(in, `[0,255,`, `[0.5,255,`, 1) + `}`, "inpaint.image"},
		{`{"inpaint":` + strings.Replace(in, `[0,255,`, `[1e999,255,`, 1) + `}`, "inpaint.image"},
		{`{"inpaint":` + strings.Replace(in, `[0,255,`, `["0",255,`, 1) + `}`, "inpaint.image"},
		{`{"inpaint":` + inpaintJSON(img, mset(3, 2), "") + `}`, "inpaint.mask"},
		{`{"inpaint":` + inpaintJSON(img, mset(3, 0.5), "") + `}`, "inpaint.mask"},
		{`{"inpaint":` + inpaintJSON(img, mset(3, -1), "") + `}`, "inpaint.mask"},
		{`{"inpaint":` + inpaintJSON(img, ones, "") + `}`, "inpaint.mask"}, // nothing to fill in
		{`{"inpaint":{"mask":[1]}}`, "inpaint.image"},
		{`{"inpaint":{"image":[1]}}`, "inpaint.mask"},
		{`{"inpaint":{}}`, "inpaint.image"},
		{`{"inpaint":{"image":null,"mask":[0]}}`, "inpaint.image"},
		{`{"inpaint":{"image":"AAAA","mask":[0]}}`, "inpaint.image"},
		{`{"inpaint":{"image":[1],"mask":{}}}`, "inpaint.mask"},
		{`{"inpaint":null}`, "inpaint"},
		{`{"inpaint":"x"}`, "inpaint"},
		{`{"inpaint":[]}`, "inpaint"},
		{`{"inpaint":{},"inpaint":{}}`, "inpaint"},
		{`{"inpaint":` + strings.Replace(in, `{`, `{"box":[0,0,4,4],`, 1) + `}`, "inpaint.box"},
		{`{"inpaint":` + strings.Replace(in, `{`, `{"mask":[],`, 1) + `}`, "inpaint.mask"},
		{with(`,"repaint":"yes"`), "inpaint.repaint"},
		{with(`,"repaint":null`), "inpaint.repaint"},
		{with(`,"jumps":3`), "inpaint.jumps"}, // without repaint
		{with(`,"jump_length":3`), "inpaint.jumps"},
		{with(`,"repaint":true,"jumps":0`), "inpaint.jumps"},
		{with(`,"repaint":true,"jump_length":0`), "inpaint.jump_length"},
		{with(`,"repaint":true,"jumps":101`), "inpaint.jumps"},
		{with(`,"repaint":true,"jumps":-1`), "inpaint.jumps"},
		{with(`,"repaint":true,"jumps":2.5`), "inpaint.jumps"},
		{with(`,"repaint":true,"jump_length":10`), "inpaint.jump_length"}, // not below the 10 steps
		{with(`,"repaint":true,"jumps":2,"jumps":3`), "inpaint.jumps"},
		{`{"sampler":"ddim","steps":10,"inpaint":` + inpaintJSON(img, mask, `,"repaint":true`) + `}`, "sampler"},
		{`{"spacing":"trailing","steps":10,"inpaint":` + inpaintJSON(img, mask, `,"repaint":true`) + `}`, "sampler"},
		{`{"steps":10,"eta":0.5,"inpaint":` + inpaintJSON(img, mask, `,"repaint":true`) + `}`, "eta"},
		// RePaint's calls are bounded by --max-steps (100 here): the default 100 steps with
		// j = r = 10 make 910; 20 steps with j = 2, r = 10 make 20 + 9*2*9 = 182.
		{`{"inpaint":` + inpaintJSON(img, mask, `,"repaint":true`) + `}`, "steps"},
		{`{"steps":20,"inpaint":` + inpaintJSON(img, mask, `,"repaint":true,"jump_length":2`) + `}`, "steps"},
		{`{"steps":101,"inpaint":` + inpaintJSON(img, mask, `,"repaint":true`) + `}`, "steps"},
		{`{"every":27,"steps":10,"inpaint":` + inpaintJSON(img, mask, `,"repaint":true,"jumps":3,"jump_length":2`) + `}`, "every"},
		{`{"model":"cond","class":"9","inpaint":` + in + `}`, "class"},
	} {
		resp, b := post(t, ts.URL, c.body)
		if resp.StatusCode != 400 {
			t.Errorf("%.120s: status %d, want 400 (%s)", c.body, resp.StatusCode, b)
			continue
		}
		if e := decodeAPIError(t, b); e.Field != c.field || e.Error == "" {
			t.Errorf("%.120s: error %+v, want field %q", c.body, e, c.field)
		}
	}
	// The message says what fits.
	_, b := post(t, ts.URL, `{"inpaint":`+inpaintJSON(img, mask, `,"repaint":true`)+`}`)
	if e := decodeAPIError(t, b); !strings.Contains(e.Error, "910 network calls") || !strings.Contains(e.Error, "pass fewer jumps") {
		t.Errorf("RePaint over the bound: %q", e.Error)
	}
	_, b = post(t, ts.URL, `{"steps":20,"inpaint":`+inpaintJSON(img, mask, `,"repaint":true,"jump_length":2`)+`}`)
	if e := decodeAPIError(t, b); !strings.Contains(e.Error, "182 network calls") || !strings.Contains(e.Error, "steps <= 10,") {
		t.Errorf("RePaint over the bound: %q", e.Error)
	}
	// every = 26 is RePaint's last call: accepted.
	mustPost(t, ts.URL, `{"every":26,"steps":10,"inpaint":`+inpaintJSON(img, mask, `,"repaint":true,"jumps":3,"jump_length":2`)+`}`)

	// The GET stream cannot carry an image; the POST stream refuses what POST refuses.
	resp, b := get(t, ts.URL+"/v1/samples/stream?steps=5&inpaint=x")
	if e := decodeAPIError(t, b); resp.StatusCode != 400 || e.Field != "inpaint" || !strings.Contains(e.Error, "POST") {
		t.Errorf("GET stream with inpaint: %d %+v", resp.StatusCode, e)
	}
	resp, err := http.Post(ts.URL+"/v1/samples/stream", "application/json", strings.NewReader(`{"format":"npz","inpaint":`+in+`}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Errorf("POST stream with npz: status %d", resp.StatusCode)
	}
	resp, err = http.Post(ts.URL+"/v1/samples/stream", "text/plain", strings.NewReader(`{"inpaint":`+in+`}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 415 {
		t.Errorf("POST stream as text/plain: status %d, want 415", resp.StatusCode)
	}

	// Body size: MaxBody (2048) bounds a request without inpaint; one with an inpaint object may
	// add 16 bytes per value of image and mask (2048 for 8x8), enough for one value a line.
	pretty, _ := json.MarshalIndent(map[string]any{"steps": 5, "n": 1, "inpaint": map[string]any{"image": img, "mask": mask}}, "", "      ")
	if len(pretty) <= 2048 {
		t.Fatalf("pretty body of %d bytes does not test the room", len(pretty))
	}
	mustPost(t, ts.URL, string(pretty))
	for _, body := range []string{
		`{"model":"` + strings.Repeat("x", 2100) + `"}`,
		`{"steps":5,"inpaint":` + strings.Replace(in, `{`, `{"image":[`+strings.Repeat("0,", 2100)+`0],`, 1) + `}`,
	} {
		if resp, b := post(t, ts.URL, body); resp.StatusCode != 413 {
			t.Errorf("%d-byte body: status %d, want 413 (%s)", len(body), resp.StatusCode, b)
		}
	}
}

// TestRePaintCalls: repaintCalls counts what diffusion.RePaint makes, as generate describes it.
func TestRePaintCalls(t *testing.T) {
	s, err := schedule.New("linear", 100, false)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`\((\d+) network calls\)`)
	for _, c := range [][3]int{{10, 2, 3}, {10, 9, 2}, {11, 10, 5}, {100, 10, 10}, {50, 7, 1}, {37, 5, 4}, {2, 1, 100}} {
		_, desc, err := generate.InpaintSpec{RePaint: true, JumpLength: c[1], Jumps: c[2]}.Sampler(generate.SamplerSpec{Steps: c[0]}, s)
		if err != nil {
			t.Fatal(err)
		}
		m := re.FindStringSubmatch(desc)
		if want, _ := strconv.Atoi(m[1]); repaintCalls(c[0], c[1], c[2]) != want {
			t.Errorf("steps %d, j %d, r %d: repaintCalls %d, RePaint makes %d", c[0], c[1], c[2], repaintCalls(c[0], c[1], c[2]), want)
		}
	}
}

package serve

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
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

// The colour test model: 3x16x16 (neither grey nor 28 pixels), conditional on classes named as the
// emoji categories are, with the characters that need care in a URL, a header, JSON or HTML.
const (
	colC, colH, colW = 3, 16, 16
	colDim           = colC * colH * colW
)

var colourClasses = []string{"Smileys & Emotion", "Food & Drink", "A/B"}

// tinyColourModel is tinyCondModel at 3x16x16 with colourClasses, through a checkpoint file.
func tinyColourModel(t testing.TB, seed uint64) *generate.Model {
	t.Helper()
	be := tensor.NewReference(1)
	cfg := tinyConfig
	cfg.Name, cfg.ImageSize, cfg.InChannels, cfg.OutChannels = "tiny-rgb", colH, colC, colC
	cfg.NumClasses = len(colourClasses)
	u, err := nn.New(cfg, be, seed)
	if err != nil {
		t.Fatal(err)
	}
	names, _ := json.Marshal(colourClasses)
	path := filepath.Join(t.TempDir(), "emoji.safetensors")
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

// newColourServer serves "grey" (the 1x8x8 unconditional model, first) and "emoji" (colour,
// conditional) with one worker, so that one server holds both shapes.
func newColourServer(t testing.TB, opt Options) (*Server, *httptest.Server) {
	t.Helper()
	return startServer(t, []Model{
		{Name: "grey", Copies: []*generate.Model{tinyModel(t, 1)}},
		{Name: "emoji", Copies: []*generate.Model{tinyColourModel(t, 3)}},
	}, opt)
}

// colourGrid cuts the n images of a colour PNG grid of cols columns into CHW bytes, image after
// image, checking the grid's size and that it is an RGB image.
func colourGrid(t *testing.T, b []byte, n, cols int) []uint8 {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	rgb, ok := img.(*image.RGBA) // an opaque RGB PNG decodes so
	if !ok {
		t.Fatalf("colour grid is a %T, want an RGB image", img)
	}
	pad := imageio.GridPad
	rows := (n + cols - 1) / cols
	if got, want := img.Bounds().Size(), image.Pt(cols*(colW+pad)+pad, rows*(colH+pad)+pad); got != want {
		t.Fatalf("grid of %d images in %d columns is %v, want %v", n, cols, got, want)
	}
	out := make([]uint8, 0, n*colDim)
	for k := range n {
		x0, y0 := pad+(k%cols)*(colW+pad), pad+(k/cols)*(colH+pad)
		for ch := range colC {
			for y := range colH {
				for x := range colW {
					out = append(out, rgb.Pix[rgb.PixOffset(x0+x, y0+y)+ch])
				}
			}
		}
	}
	return out
}

// hasColour reports whether some pixel of CHW images has a red value other than its green one.
func hasColour(px []uint8) bool {
	for k := 0; k+colDim <= len(px); k += colDim {
		for i := range colH * colW {
			if px[k+i] != px[k+colH*colW+i] {
				return true
			}
		}
	}
	return false
}

// TestColourModelsInfo: /v1/models describes the colour model's shape and its class names as
// written, '&', spaces and '/' included, beside the grey model's.
func TestColourModelsInfo(t *testing.T) {
	_, ts := newColourServer(t, Options{MaxN: 12})
	resp, b := get(t, ts.URL+"/v1/models")
	if resp.StatusCode != 200 || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("/v1/models: %d, nosniff %q", resp.StatusCode, resp.Header.Get("X-Content-Type-Options"))
	}
	var mr ModelsResponse
	if err := json.Unmarshal(b, &mr); err != nil {
		t.Fatal(err)
	}
	grey, emoji := mr.Models[0], mr.Models[1]
	if grey.Channels != 1 || grey.Height != 8 || grey.Width != 8 || grey.NumClasses != 0 {
		t.Errorf("grey model: %dx%dx%d, %d classes", grey.Channels, grey.Height, grey.Width, grey.NumClasses)
	}
	if emoji.Channels != colC || emoji.Height != colH || emoji.Width != colW {
		t.Errorf("emoji model: %dx%dx%d, want %dx%dx%d", emoji.Channels, emoji.Height, emoji.Width, colC, colH, colW)
	}
	if emoji.NumClasses != 3 || !slices.Equal(emoji.Classes, colourClasses) || emoji.PerClass != 4 {
		t.Errorf("emoji model: %d classes %q, %d per class", emoji.NumClasses, emoji.Classes, emoji.PerClass)
	}
	// Readable as written by curl, not only by JSON decoders ("\u0026").
	if !strings.Contains(string(b), `"Smileys & Emotion"`) || !strings.Contains(string(b), `"A/B"`) {
		t.Errorf("/v1/models does not spell the class names as written:\n%s", b)
	}
	// The inpainting room is sized for the larger model: image and mask of 3x16x16 values.
	if got, want := mr.Limits.MaxInpaintBodyBytes, mr.Limits.MaxBodyBytes+2*inpaintBytesPerValue*colDim; got != int64(want) {
		t.Errorf("max_inpaint_body_bytes %d, want %d", got, want)
	}
}

// TestColourSamples: PNG grids, NPZ and the stream of a 3x16x16 class-conditional model, classes
// asked for by index or by name (with '&', spaces and '/'), equal sampling the model directly.
func TestColourSamples(t *testing.T) {
	s, ts := newColourServer(t, Options{MaxN: 12})
	m := s.models[1].Model

	// PNG: an RGB grid of 2x2 16x16 images equal to sampling with labels 1 and s = 3.
	body := `{"model":"emoji","class":"Food & Drink","guidance":3,"steps":5,"n":4,"seed":9}`
	resp, pb := mustPost(t, ts.URL, body)
	x := directLabeled(t, m, 5, 4, 9, []int{1, 1, 1, 1}, 3)
	want := imageio.ToUint8(nil, x)
	got := colourGrid(t, pb, 4, 2)
	if !bytes.Equal(got, want) {
		t.Error(`class "Food & Drink": PNG images differ from sampling with label 1 directly`)
	}
	if !hasColour(got) {
		t.Error("the colour model's images are grey (red = green everywhere)")
	}
	if wantPNG, _ := gridPNG(x, 4, colC, colH, colW, 2); !bytes.Equal(pb, wantPNG) {
		t.Error("PNG bytes differ from imageio's grid of the direct samples")
	}
	if resp.Header.Get("X-Ddpm-Class") != "Food & Drink" || resp.Header.Get("X-Ddpm-Grid-Cols") != "2" {
		t.Errorf("headers: class %q, cols %q", resp.Header.Get("X-Ddpm-Class"), resp.Header.Get("X-Ddpm-Grid-Cols"))
	}
	// The same class by index (string or number) and by name in another case: the same bytes.
	for _, alt := range []string{`"class":"1"`, `"class":1`, `"class":"food & drink"`, `"class":" Food & Drink "`} {
		_, b := mustPost(t, ts.URL, strings.Replace(body, `"class":"Food & Drink"`, alt, 1))
		if !bytes.Equal(b, pb) {
			t.Errorf(`%s: bytes differ from "class":"Food & Drink"`, alt)
		}
	}

	// NPZ: uint8 (N, H, W, C), channels last.
	_, zb := mustPost(t, ts.URL, strings.Replace(body, `"seed":9`, `"seed":9,"format":"npz"`, 1))
	a := npzArray(t, zb)
	if !slices.Equal(a.Shape, []int{4, colH, colW, colC}) || a.Descr != "|u1" {
		t.Errorf("npz: shape %v %s, want [4 %d %d %d] |u1", a.Shape, a.Descr, colH, colW, colC)
	}
	if !bytes.Equal(npzImages(t, zb), imageio.NHWC(want, 4, colC, colH, colW)) {
		t.Error("npz: images differ from the direct samples in NHWC order")
	}

	// A name with '/', and a list of names: image i gets entry i mod len.
	_, ab := mustPost(t, ts.URL, `{"model":"emoji","class":"A/B","steps":5,"n":2,"seed":4,"format":"npz"}`)
	_, ib := mustPost(t, ts.URL, `{"model":"emoji","class":2,"steps":5,"n":2,"seed":4,"format":"npz"}`)
	if !bytes.Equal(ab, ib) {
		t.Error(`class "A/B" differs from class 2`)
	}
	_, lb := mustPost(t, ts.URL, `{"model":"emoji","class":"Smileys & Emotion,A/B","guidance":0.5,"steps":5,"n":3,"seed":4,"format":"npz"}`)
	if !bytes.Equal(npzImages(t, lb), imageio.NHWC(imageio.ToUint8(nil, directLabeled(t, m, 5, 3, 4, []int{0, 2, 0}, 0.5)), 3, colC, colH, colW)) {
		t.Error(`class "Smileys & Emotion,A/B": images differ from labels 0, 2, 0`)
	}
	// Guidance and class change the images; no class is the unconditional branch.
	_, g0 := mustPost(t, ts.URL, strings.Replace(body, `"guidance":3`, `"guidance":0`, 1))
	_, c0 := mustPost(t, ts.URL, strings.Replace(body, `"Food & Drink"`, `"Smileys & Emotion"`, 1))
	_, none := mustPost(t, ts.URL, `{"model":"emoji","steps":5,"n":4,"seed":9}`)
	if bytes.Equal(g0, pb) || bytes.Equal(c0, pb) {
		t.Error("guidance 0 or another class gave the same images")
	}
	if !bytes.Equal(colourGrid(t, g0, 4, 2), colourGrid(t, none, 4, 2)) {
		t.Error("guidance 0 differs from no class (both are the unconditional model)")
	}

	// "all": 4 per class (max-n 12), one grid row per class.
	resp, all := mustPost(t, ts.URL, `{"model":"emoji","class":"all","steps":5,"seed":1}`)
	labels := []int{0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2}
	if resp.Header.Get("X-Ddpm-Grid-Cols") != "4" || !bytes.Equal(colourGrid(t, all, 12, 4), imageio.ToUint8(nil, directLabeled(t, m, 5, 12, 1, labels, generate.DefaultGuidance))) {
		t.Error(`class "all": grid differs from 4 images of each class in turn`)
	}

	// The stream, by GET with the name in the query (its '&' and spaces escaped as a URL needs):
	// colour frames of the grid's size, events naming the class, and POST's bytes at the end.
	q := url.Values{"model": {"emoji"}, "class": {"Food & Drink"}, "guidance": {"3"}, "steps": {"5"}, "n": {"4"}, "seed": {"9"}, "every": {"1"}}
	sresp, err := http.Get(ts.URL + "/v1/samples/stream?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer sresp.Body.Close()
	if sresp.StatusCode != 200 {
		t.Fatalf("stream: status %d", sresp.StatusCode)
	}
	checkColourStream(t, "GET stream", readSSE(t, sresp.Body, nil), 5, "Food & Drink", pb)
	// POST, with the class as "A/B".
	_, pab := mustPost(t, ts.URL, `{"model":"emoji","class":"A/B","steps":5,"n":4,"seed":9}`)
	checkColourStream(t, "POST stream", postStream(t, ts.URL, `{"model":"emoji","class":"A/B","steps":5,"n":4,"seed":9,"every":1}`), 5, "A/B", pab)

	// Names are matched whole: a part of one, or one with a typo, is refused naming the field and
	// listing the names.
	for _, c := range []string{`"Smileys"`, `"Food &Drink"`, `"A"`, `"A/B/C"`, `3`} {
		resp, b := post(t, ts.URL, `{"model":"emoji","class":`+c+`}`)
		e := decodeAPIError(t, b)
		if resp.StatusCode != 400 || e.Field != "class" {
			t.Errorf("class %s: %d %+v, want 400 naming class", c, resp.StatusCode, e)
		}
		if c != "3" && !strings.Contains(e.Error, "Smileys & Emotion, Food & Drink, A/B") {
			t.Errorf("class %s: error %q does not list the classes", c, e.Error)
		}
	}
}

// npzArray is the array of an NPZ answer.
func npzArray(t *testing.T, b []byte) *imageio.Array {
	t.Helper()
	path := filepath.Join(t.TempDir(), "a.npz")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	arrs, err := imageio.LoadNPZ(path)
	if err != nil {
		t.Fatal(err)
	}
	a := arrs["arr_0"]
	if a == nil {
		t.Fatalf("npz without arr_0: %v", arrs)
	}
	return a
}

// checkColourStream checks a stream's events: a frame per step, each an RGB grid of the final
// one's size, the class named in queued and done, and the final PNG equal to final.
func checkColourStream(t *testing.T, what string, evs []sseEvent, steps int, class string, final []byte) {
	t.Helper()
	frames := 0
	var done DoneEvent
	for _, e := range evs {
		switch e.Name {
		case "queued":
			var q map[string]any
			json.Unmarshal(e.Data, &q)
			if q["class"] != class {
				t.Errorf("%s: queued event %v, want class %q", what, q, class)
			}
		case "step":
			var st StepEvent
			json.Unmarshal(e.Data, &st)
			for _, s := range []string{st.XT, st.X0} {
				b, _ := base64.StdEncoding.DecodeString(s)
				img, err := png.Decode(bytes.NewReader(b))
				if err != nil {
					t.Fatalf("%s: step %d: %v", what, st.Index, err)
				}
				if _, ok := img.(*image.RGBA); !ok || img.Bounds().Dx() != 2*(colW+2)+2 || img.Bounds().Dy() != 2*(colH+2)+2 {
					t.Fatalf("%s: step %d frame is a %T of %v, want a 38x38 RGB grid", what, st.Index, img, img.Bounds())
				}
			}
			frames++
		case "done":
			json.Unmarshal(e.Data, &done)
		case "error":
			t.Fatalf("%s: error event %s", what, e.Data)
		}
	}
	if frames != steps {
		t.Errorf("%s: %d frames, want %d", what, frames, steps)
	}
	if b, _ := base64.StdEncoding.DecodeString(done.PNG); !bytes.Equal(b, final) || done.Class != class || done.Cols != 2 {
		t.Errorf("%s: done class %q cols %d; final PNG equals POST's: %v", what, done.Class, done.Cols, bytes.Equal(b, final))
	}
}

// colourImage is a 3x16x16 picture whose channels differ (a red-green gradient over blue stripes),
// and colourMask keeps its top half (1) and fills in the bottom half (0), one value per pixel.
func colourImage() []int {
	v := make([]int, colDim)
	for y := range colH {
		for x := range colW {
			i := y*colW + x
			v[i] = 16 * x                    // red
			v[colH*colW+i] = 255 - 16*y      // green
			v[2*colH*colW+i] = 255 * (x % 2) // blue
		}
	}
	return v
}

func colourMask(t *testing.T, c int) []float64 {
	t.Helper()
	m, err := generate.BoxMask(c, colH, colW, 0, colH/2, colW, colH/2)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// checkKnownCHW fails unless every kept value of the n images (CHW bytes, image after image) is
// the request's; mask has one value per pixel (shared by the channels) or one per value.
func checkKnownCHW(t *testing.T, what string, px []uint8, n int, img []int, mask []float64) int {
	t.Helper()
	if len(px) != n*colDim {
		t.Fatalf("%s: %d values for %d images", what, len(px), n)
	}
	kept := 0
	for k := range n {
		for j := range colDim {
			keep := mask[j%len(mask)]
			if keep == 1 {
				kept++
				if int(px[k*colDim+j]) != img[j] {
					t.Fatalf("%s: image %d value %d is %d, the known value is %d", what, k, j, px[k*colDim+j], img[j])
				}
			}
		}
	}
	return kept
}

// TestColourInpaint: inpainting a 3x16x16 image with a per-pixel (H*W) or per-value (C*H*W) mask,
// replacement and RePaint, POST and stream: the same as sampling directly with that Known, every kept
// value exact in every channel, and the lengths checked against the colour model's shape.
func TestColourInpaint(t *testing.T) {
	s, ts := newColourServer(t, Options{MaxN: 12, MaxSteps: 100})
	m := s.models[1].Model
	img := colourImage()
	pixMask := colourMask(t, 1)  // H*W
	valMask := colourMask(t, 3)  // C*H*W, the same box in every channel
	for i := range colH * colW { // ... but red is kept whole: only green and blue are filled in
		valMask[i] = 1
	}
	for _, c := range []struct {
		name string
		mask []float64
		fill int
	}{{"H*W mask", pixMask, colDim / 2}, {"C*H*W mask", valMask, colDim / 3}} {
		body := `{"model":"emoji","class":"Smileys & Emotion","guidance":2,"steps":5,"n":3,"seed":7,"inpaint":` + inpaintJSON(img, c.mask, "") + `}`
		resp, pb := mustPost(t, ts.URL, body)
		full := c.mask
		if len(full) != colDim {
			full = slices.Concat(c.mask, c.mask, c.mask)
		}
		x := directInpaint(t, m, generate.InpaintSpec{}, generate.SamplerSpec{Name: "ddim", Steps: 5}, img, full, 3, 7, []int{0, 0, 0}, 2)
		want := imageio.ToUint8(nil, x)
		got := colourGrid(t, pb, 3, 2)
		if !bytes.Equal(got, want) {
			t.Errorf("%s: images differ from Model.Sample with the same Known", c.name)
		}
		kept := checkKnownCHW(t, c.name, got, 3, img, c.mask)
		if resp.Header.Get("X-Ddpm-Fill") != fmt.Sprint(c.fill) || kept != 3*(colDim-c.fill) {
			t.Errorf("%s: X-Ddpm-Fill %q, %d kept values; want %d filled", c.name, resp.Header.Get("X-Ddpm-Fill"), kept, c.fill)
		}
		if !hasColour(got) {
			t.Errorf("%s: completions are grey", c.name)
		}
		// The filled part is the model's: the completions differ there.
		if bytes.Equal(got[:colDim], got[colDim:2*colDim]) {
			t.Errorf("%s: two equal completions", c.name)
		}
		// The stream, posted, ends with the same bytes.
		ev := postStream(t, ts.URL, strings.Replace(body, `"seed":7`, `"seed":7,"every":1`, 1))
		checkColourStream(t, c.name+" stream", ev, 5, "Smileys & Emotion", pb)
	}
	// The grey H*W mask of the 1-channel model's size is the wrong length for the colour model and
	// the other way round.
	grey := testImage()
	for _, c := range []struct{ body, field string }{
		{`{"model":"emoji","inpaint":` + inpaintJSON(grey, testMask(t), "") + `}`, "inpaint.image"},
		{`{"model":"emoji","inpaint":` + inpaintJSON(img[:colH*colW], pixMask, "") + `}`, "inpaint.image"},
		{`{"model":"emoji","inpaint":` + inpaintJSON(img, slices.Concat(pixMask, pixMask), "") + `}`, "inpaint.mask"},
		{`{"model":"grey","inpaint":` + inpaintJSON(img, pixMask, "") + `}`, "inpaint.image"},
	} {
		resp, b := post(t, ts.URL, c.body)
		if e := decodeAPIError(t, b); resp.StatusCode != 400 || e.Field != c.field || !strings.Contains(e.Error, "want") {
			t.Errorf("%.60s...: %d %+v, want 400 naming %s", c.body, resp.StatusCode, e, c.field)
		}
	}
	// RePaint (8 steps, j = 2, r = 2: 8 + 1*2*3 = 14 calls) with the per-pixel mask, NPZ.
	rp := inpaintJSON(img, pixMask, `,"repaint":true,"jumps":2,"jump_length":2`)
	_, zb := mustPost(t, ts.URL, `{"model":"emoji","class":"A/B","steps":8,"n":2,"seed":3,"format":"npz","inpaint":`+rp+`}`)
	x := directInpaint(t, m, generate.InpaintSpec{RePaint: true, Jumps: 2, JumpLength: 2}, generate.SamplerSpec{Steps: 8},
		img, slices.Concat(pixMask, pixMask, pixMask), 2, 3, []int{2, 2}, generate.DefaultGuidance)
	want := imageio.ToUint8(nil, x)
	if !bytes.Equal(npzImages(t, zb), imageio.NHWC(want, 2, colC, colH, colW)) {
		t.Error("RePaint: images differ from Model.Sample with the same Known")
	}
	checkKnownCHW(t, "RePaint", want, 2, img, pixMask)
}

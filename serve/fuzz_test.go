package serve

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// FuzzRequest feeds arbitrary bodies and query strings through decoding and validation: whatever
// comes in, the answer is a valid plan or a *FieldError (or the body-size error), never a panic. A
// body is accepted only if it is a JSON object without null values whose keys all count as given,
// a plan never turns an explicit n, steps or every of 0 into a default, and its classes are the
// model's, one per image.
func FuzzRequest(f *testing.F) {
	s, _ := newCondServer(f, Options{MaxN: 8, MaxSteps: 100})
	for _, seed := range []string{`{}`, `{"sampler":"ddpm","steps":10,"variance":"posterior"}`, `{"n":3,"seed":18446744073709551615}`,
		`{"eta":1e308}`, `{"sampler":"ddim","sigma_hat":true}`, `{"format":"npz","every":3}`, `[]`, `{"n":1}{`, "steps=5&n=2", "eta=NaN", "every=-1",
		`null`, `{"n":0}`, `{"steps":0}`, `{"n":1,"N":2}`, `{"n":null}`, `{"steps":5,"ſteps":6}`, `{"every":0}`, "n=0", "model=&n=1",
		`{"model":"cond","class":"all"}`, `{"model":"cond","class":1,"guidance":2}`, `{"model":"cond","class":"0,two","n":5}`,
		`{"model":"cond","class":-1}`, `{"class":1,"CLASS":2}`, `{"model":"cond","guidance":3}`, "model=cond&class=all&guidance=0&n=3", "class=1",
		`{"model":"cond","class":1e2}`, `{"model":"cond","class" : 2 , "n":2}`,
		`{"inpaint":{"image":[1],"mask":[0]}}`, `{"inpaint":{"repaint":true,"jumps":0}}`, `{"inpaint":{}}`, "inpaint=1", `{"inpaint":{"Image":[],"image":[]}}`} {
		f.Add(seed)
	}
	img := strings.Repeat("7,", 63) + "255"
	f.Add(`{"inpaint":{"image":[` + img + `],"mask":[` + strings.Repeat("1,", 32) + strings.Repeat("0,", 31) + `0]}}`)
	f.Add(`{"steps":10,"inpaint":{"image":[` + img + `],"mask":[` + strings.Repeat("0,", 63) + `0],"repaint":true,"jumps":2,"jump_length":3}}`)
	f.Fuzz(func(t *testing.T, in string) {
		check := func(req Request, err error, stream bool) {
			var fe *FieldError
			var mbe *http.MaxBytesError
			if err != nil {
				if !errors.As(err, &fe) && !errors.As(err, &mbe) {
					t.Fatalf("%q: error %T %v is not a FieldError", in, err, err)
				}
				return
			}
			p, err := s.validate(req, stream)
			if err != nil {
				if !errors.As(err, &fe) || fe.Field == "" {
					t.Fatalf("%q: validate error %T %v names no field", in, err, err)
				}
				return
			}
			if p.req.N < 1 || p.req.N > 8 || p.steps < 1 || p.steps > 100 || p.every < 1 || p.every > p.steps {
				t.Fatalf("%q: accepted out-of-range plan %+v", in, p)
			}
			if (p.labels == nil) != (p.req.Class == "") || (p.labels != nil && len(p.labels) != p.req.N) || p.cols < 1 || p.cols > p.req.N {
				t.Fatalf("%q: plan with %d labels for n = %d, class %q, %d columns", in, len(p.labels), p.req.N, p.req.Class, p.cols)
			}
			if p.known != nil && (req.Inpaint == nil || len(p.known.x0) != tinyDim || len(p.known.mask) != tinyDim || p.known.fill < 1) {
				t.Fatalf("%q: inpainting plan of %d values, mask %d, fill %d", in, len(p.known.x0), len(p.known.mask), p.known.fill)
			}
			for _, l := range p.labels {
				if l < 0 || l >= len(s.models[p.model].Classes) {
					t.Fatalf("%q: label %d for model %s", in, l, s.models[p.model].Name)
				}
			}
			if (req.given.given("n") && req.N != p.req.N) || (req.given.given("steps") && req.Steps != p.spec.Steps) || (req.given.given("every") && req.Every != p.every) {
				t.Fatalf("%q: a given n, steps or every was replaced: %+v -> %+v", in, req, p)
			}
		}
		req, err := decodeJSON(strings.NewReader(in))
		check(req, err, false)
		if err == nil {
			var m map[string]any
			if json.Unmarshal([]byte(in), &m) != nil || m == nil {
				t.Fatalf("%q: accepted a body that is not a JSON object", in)
			}
			n := 0
			for k, v := range m {
				if v == nil || !req.given.given(requestFields[max(0, fieldIndex(k))]) || fieldIndex(k) < 0 {
					t.Fatalf("%q: accepted key %q (value %v) not recorded as given", in, k, v)
				}
			}
			for i := range requestFields {
				if req.given.has(i) {
					n++
				}
			}
			if n != len(m) {
				t.Fatalf("%q: %d fields recorded as given, the object has %d keys", in, n, len(m))
			}
		}
		if q, err := url.ParseQuery(in); err == nil {
			req, err := parseQuery(q)
			check(req, err, true)
		}
	})
}

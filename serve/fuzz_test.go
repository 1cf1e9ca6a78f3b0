package serve

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// FuzzRequest feeds arbitrary bodies and query strings through decoding and validation: whatever
// comes in, the answer is a valid plan or a *FieldError (or the body-size error), never a panic.
func FuzzRequest(f *testing.F) {
	s, _ := newTestServer(f, Options{MaxN: 8, MaxSteps: 100}, 1)
	for _, seed := range []string{`{}`, `{"sampler":"ddpm","steps":10,"variance":"posterior"}`, `{"n":3,"seed":18446744073709551615}`,
		`{"eta":1e308}`, `{"sampler":"ddim","sigma_hat":true}`, `{"format":"npz","every":3}`, `[]`, `{"n":1}{`, "steps=5&n=2", "eta=NaN", "every=-1"} {
		f.Add(seed)
	}
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
		}
		req, err := decodeJSON(strings.NewReader(in))
		check(req, err, false)
		if q, err := url.ParseQuery(in); err == nil {
			req, err := parseQuery(q)
			check(req, err, true)
		}
	})
}

package serve

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/ddpm-go/ddpm/generate"
	"github.com/ddpm-go/ddpm/imageio"
)

// Request is what POST /v1/samples and POST /v1/samples/stream take as JSON and GET
// /v1/samples/stream as query parameters (same names; inpaint in JSON only). Absent fields take defaults; a field given with its zero value where that is not a
// valid setting (n, steps, every, eps_scale, or an empty name or class) is an error, not a default.
type Request struct {
	Model string `json:"model"` // a name from /v1/models; default: the first model
	// The sampler (default ddim) and its settings, validated by SamplerSpec.Validate; the server adds
	// that steps must be within its --max-steps and that a given eps_scale is not 0.
	generate.SamplerSpec
	// The class and guidance scale of a class-conditional model, validated by ClassSpec.Validate
	// against the model's classes (/v1/models): class is a name (any case), an index (the JSON
	// number 7 or the string "7"), a list "0,1,2" (image i gets entry i mod len) or "all" (per_class
	// images of each class in turn, per_class as /v1/models reports it, one grid row per class);
	// guidance, in [0, generate.MaxGuidance], needs a class and defaults to generate.DefaultGuidance.
	// No class: the model's unconditional branch (an unconditional model takes none).
	generate.ClassSpec
	N      int    `json:"n"`      // images; default min(16, max-n), or a grid row per class for "all"
	Seed   uint64 `json:"seed"`   // image i depends on (seed, i, its class) only
	Format string `json:"format"` // "png" (default, one grid) or "npz" (uint8 N,H,W,C under arr_0)
	// Every is the stream's frame stride: a frame every Every steps (and always the last);
	// default: about 100 frames in all. Ignored by POST /v1/samples.
	Every int `json:"every"`
	// Inpaint, if given, makes every image a completion of the same partly known image (see
	// Inpaint): image i then depends only on the seed, i, its class and the known part. JSON only
	// (POST /v1/samples or POST /v1/samples/stream): an image does not belong in a URL.
	Inpaint *Inpaint `json:"inpaint"`

	// given records the fields the client set, so that an explicit 0 or "" is an error rather than
	// a silent default; decodeJSON and parseQuery fill it in.
	given fieldSet
}

// FieldError is an invalid request parameter; the API answers it with 400 and
// {"error": Error(), "field": Field}.
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

func fieldErr(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// decodeJSON reads a Request from a JSON body. Unknown fields, wrong types, trailing data, an empty
// body, a body that is not an object (null included), fields given twice (encoding/json would keep
// the last) and null values (which would leave the default in place) are errors naming the field
// where there is one. The fields present are recorded in the Request, so that validate can tell an
// explicit 0 from an absent field.
func decodeJSON(r io.Reader) (Request, error) {
	var req Request
	body, err := io.ReadAll(r)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return req, err
		}
		return req, &readError{err}
	}
	dec := json.NewDecoder(bytes.NewReader(classNumberAsString(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		var te *json.UnmarshalTypeError
		var se *json.SyntaxError
		switch {
		case errors.As(err, &te) && te.Field == "":
			return req, fieldErr("body", "want a JSON object such as {\"sampler\":\"ddim\",\"steps\":50,\"n\":4,\"seed\":1}, got %s", te.Value)
		case errors.As(err, &te): // Field is a path through embedded structs: "SamplerSpec.steps"
			name := te.Field[strings.LastIndex(te.Field, ".")+1:]
			if top, _, nested := strings.Cut(te.Field, "."); strings.EqualFold(top, "inpaint") && nested {
				name = "inpaint." + name
			}
			switch name {
			case "inpaint":
				return req, fieldErr(name, "want an object such as {\"image\": [0, 255, ...], \"mask\": [1, 0, ...]}, got %s", te.Value)
			case "inpaint.image", "inpaint.mask":
				return req, fieldErr(name, "want an array of integers (image 0..255, mask 0 or 1), got %s", te.Value)
			}
			if name == "class" {
				return req, fieldErr(name, "want a class name, an integer index (7 or \"7\"), a list such as \"0,1,2\" or \"all\"; got %s", te.Value)
			}
			return req, fieldErr(name, "want a JSON %s, got %s", jsonKind(te.Type.Kind().String()), te.Value)
		case errors.As(err, &se):
			return req, fieldErr("body", "invalid JSON at byte %d: %v", se.Offset, err)
		case errors.Is(err, io.ErrUnexpectedEOF):
			return req, fieldErr("body", "truncated JSON")
		case errors.Is(err, io.EOF):
			return req, fieldErr("body", "empty; want a JSON object such as {\"sampler\":\"ddim\",\"steps\":50,\"n\":4,\"seed\":1}")
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			if inInpaint(body, name) {
				return req, fieldErr("inpaint."+name, "unknown field (known: %s)", strings.Join(inpaintFields, ", "))
			}
			return req, fieldErr(name, "unknown field (known: %s)", strings.Join(requestFields, ", "))
		}
		return req, fieldErr("body", "%v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return req, fieldErr("body", "trailing data after the JSON object")
	}
	var inner fieldSet
	req.given, inner, err = objectKeys(body)
	if req.Inpaint != nil {
		req.Inpaint.given = inner
	}
	return req, err
}

// classNumberAsString rewrites each top-level "class" key whose value is a JSON integer (7) into the
// string ("7") that ClassSpec.Class holds, so that an index decodes the same in either spelling.
// Anything else is left for decoding to accept or refuse with its usual error.
func classNumberAsString(body []byte) []byte {
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return body
	}
	var ends []int // offsets just past each integer class value
	for dec.More() {
		tok, err := dec.Token()
		key, ok := tok.(string)
		if err != nil || !ok {
			return body
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return body
		}
		if i := fieldIndex(key); i >= 0 && requestFields[i] == "class" && isInteger(raw) {
			end := int(dec.InputOffset())
			if !bytes.HasSuffix(body[:end], raw) {
				return body
			}
			ends = append(ends, end)
		}
	}
	if len(ends) == 0 {
		return body
	}
	out := make([]byte, 0, len(body)+2*len(ends))
	prev := 0
	for _, end := range ends {
		i := bytes.LastIndexFunc(body[:end], func(r rune) bool { return !(r == '-' || r >= '0' && r <= '9') }) + 1
		out = append(append(append(append(out, body[prev:i]...), '"'), body[i:end]...), '"')
		prev = end
	}
	return append(out, body[prev:]...)
}

// isInteger reports whether a JSON value is an integer literal (no fraction or exponent).
func isInteger(raw []byte) bool {
	raw = bytes.TrimPrefix(raw, []byte("-"))
	if len(raw) == 0 {
		return false
	}
	for _, c := range raw {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// readError is a failure to read the request body (the client stalled past the server's read
// timeout, or went away); fail answers 408 or 400.
type readError struct{ err error }

func (e *readError) Error() string { return "reading the request body: " + e.err.Error() }
func (e *readError) Unwrap() error { return e.err }

// objectKeys checks the top-level shape of a body that decoded without error: a JSON object whose
// keys (matched to the fields as encoding/json matches them, ignoring case) appear once each and
// are not null, and the same of the inpaint object's. It returns the fields present in each.
func objectKeys(body []byte) (set, inpaint fieldSet, err error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	tok, err := dec.Token()
	if err != nil {
		return set, inpaint, fieldErr("body", "%v", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return set, inpaint, fieldErr("body", "want a JSON object such as {\"sampler\":\"ddim\",\"steps\":50,\"n\":4,\"seed\":1}, got %s", jsonValueKind(tok))
	}
	for dec.More() {
		tok, err := dec.Token()
		key, ok := tok.(string)
		if err != nil || !ok {
			return set, inpaint, fieldErr("body", "invalid JSON object key")
		}
		i := fieldIndex(key)
		if i < 0 { // decoding rejects unknown fields first; kept for safety
			return set, inpaint, fieldErr(key, "unknown field (known: %s)", strings.Join(requestFields, ", "))
		}
		name := requestFields[i]
		if set.has(i) {
			return set, inpaint, fieldErr(name, "given more than once")
		}
		set |= 1 << i
		if tok, err = dec.Token(); err != nil {
			return set, inpaint, fieldErr(name, "%v", err)
		}
		if tok == nil {
			return set, inpaint, fieldErr(name, "null; leave the field out to get its default")
		}
		if d, ok := tok.(json.Delim); ok && d == '{' && name == "inpaint" {
			if inpaint, err = inpaintKeys(dec); err != nil {
				return set, inpaint, err
			}
			continue
		}
		if d, ok := tok.(json.Delim); ok && (d == '{' || d == '[') { // decoding rejects these first
			return set, inpaint, fieldErr(name, "want a %s, got an object or array", name)
		}
	}
	return set, inpaint, nil
}

// jsonValueKind names the JSON type of a top-level token for error messages.
func jsonValueKind(tok json.Token) string {
	switch v := tok.(type) {
	case nil:
		return "null"
	case json.Delim:
		if v == '[' {
			return "an array"
		}
	case bool:
		return "a boolean"
	case float64, json.Number:
		return "a number"
	case string:
		return "a string"
	}
	return fmt.Sprint(tok)
}

// fieldSet records which request fields a client gave, one bit per index in requestFields.
type fieldSet uint32

func (s fieldSet) has(i int) bool { return s&(1<<i) != 0 }

// given reports whether the client gave the named request field.
func (s fieldSet) given(name string) bool { return s.givenIn(requestFields, name) }

// givenIn reports whether the client gave the named field of an object whose fields are these.
func (s fieldSet) givenIn(fields []string, name string) bool {
	i := indexFold(fields, name)
	return i >= 0 && s.has(i)
}

// fieldIndex is the index in requestFields of the field encoding/json would decode key into
// (names match ignoring case, with Unicode folding), or -1.
func fieldIndex(key string) int { return indexFold(requestFields, key) }

func jsonKind(k string) string {
	switch k {
	case "int", "int64", "uint64", "float64":
		return "number (" + k + ")"
	case "bool":
		return "boolean"
	}
	return k
}

var requestFields = []string{"model", "sampler", "steps", "eta", "sigma_hat", "variance", "spacing", "clip", "eps_scale", "order", "class", "guidance", "n", "seed", "format", "every", "inpaint"}

// parseQuery reads a Request from URL query parameters (the stream endpoint, since EventSource can
// only GET). Unknown and repeated parameters are errors, like unknown JSON fields.
func parseQuery(q url.Values) (Request, error) {
	var req Request
	for k, vs := range q {
		if len(vs) != 1 {
			return req, fieldErr(k, "given %d times", len(vs))
		}
		v := vs[0]
		var err error
		switch k {
		case "model":
			req.Model = v
		case "sampler":
			req.Name = v
		case "variance":
			req.Variance = v
		case "spacing":
			req.Spacing = v
		case "format":
			req.Format = v
		case "class":
			req.Class = v
		case "guidance":
			var g float64
			g, err = strconv.ParseFloat(v, 64)
			req.Guidance = &g
		case "steps":
			req.Steps, err = strconv.Atoi(v)
		case "order":
			req.Order, err = strconv.Atoi(v)
		case "n":
			req.N, err = strconv.Atoi(v)
		case "every":
			req.Every, err = strconv.Atoi(v)
		case "seed":
			req.Seed, err = strconv.ParseUint(v, 10, 64)
		case "eta":
			req.Eta, err = strconv.ParseFloat(v, 64)
		case "sigma_hat":
			req.SigmaHat, err = strconv.ParseBool(v)
		case "clip":
			req.Clip, err = strconv.ParseBool(v)
		case "eps_scale":
			req.EpsScale, err = strconv.ParseFloat(v, 64)
		case "inpaint":
			return req, fieldErr(k, "an image does not fit a query string: POST the JSON request to /v1/samples/stream")
		default:
			return req, fieldErr(k, "unknown parameter (known: %s)", strings.Join(requestFields, ", "))
		}
		if err != nil {
			return req, fieldErr(k, "cannot parse %q: %v", v, errors.Unwrap(err))
		}
		req.given |= 1 << fieldIndex(k)
	}
	return req, nil
}

// plan is a validated request: the model index, the sampler spec, the classes, the known part of
// an inpainting and the derived stream stride and grid columns.
type plan struct {
	req      Request
	model    int
	spec     generate.SamplerSpec // with defaults filled in; Name "repaint" for RePaint
	desc     string               // the sampler as answers and logs describe it
	warn     string               // a distilled model sampled off its grid (distilledWarning); else ""
	steps    int                  // the steps the stream reports (RePaint: its network calls)
	known    *inpaintPlan         // nil: not an inpainting
	every    int
	labels   []int   // class of each image; nil: no class (generate.Job.Labels)
	guidance float64 // generate.Job.Guidance
	cols     int     // columns of the PNG grid
}

// specFieldErr answers a sampler spec's error under the field it names.
func specFieldErr(err error) *FieldError {
	var fe *generate.FieldError
	if errors.As(err, &fe) {
		return fieldErr(fe.Field, "%s", fe.Msg)
	}
	return fieldErr("sampler", "%v", err)
}

// validate checks a request against the models and limits, filling in defaults. Every error is a
// *FieldError naming the parameter.
func (s *Server) validate(req Request, stream bool) (plan, error) {
	p := plan{req: req}
	for _, f := range []struct {
		name  string
		empty bool
		dflt  string
	}{{"model", req.Model == "", "its default"}, {"format", req.Format == "", "its default"}, {"class", req.Class == "", "no class"}} {
		if f.empty && req.given.given(f.name) {
			return p, fieldErr(f.name, "empty; leave the field out to get %s", f.dflt)
		}
	}
	if req.Model == "" {
		req.Model = s.models[0].Name
	}
	p.model = -1
	for i, m := range s.models {
		if m.Name == req.Model {
			p.model = i
		}
	}
	if p.model < 0 {
		return p, fieldErr("model", "unknown model %q (have: %s)", req.Model, strings.Join(s.modelNames(), ", "))
	}
	m := s.models[p.model]
	T := m.Schedule.T
	repaint := req.Inpaint != nil && req.Inpaint.RePaint
	check := req.SamplerSpec
	if repaint && check.Name == "" {
		check.Name = "ddpm" // RePaint is a DDPM: variance applies
	}
	if err := check.ValidateGiven(T, req.given.given); err != nil {
		return p, specFieldErr(err)
	}
	if req.Name == "" && !repaint { // RePaint is its own DDPM
		req.Name = generate.DefaultSampler
	}
	if err := req.ClassSpec.Validate(m.Classes); err != nil {
		return p, specFieldErr(err)
	}
	perClass := s.perClass(len(m.Classes))
	if req.N == 0 && !req.given.given("n") {
		req.N = min(16, s.opt.MaxN)
		if req.Class == "all" {
			req.N = min(perClass*len(m.Classes), s.opt.MaxN)
		}
	}
	if req.N < 1 || req.N > s.opt.MaxN {
		return p, fieldErr("n", "%d outside [1, %d] (the server's --max-n)", req.N, s.opt.MaxN)
	}
	maxSteps := min(T, s.opt.MaxSteps)
	if req.Steps > maxSteps {
		return p, fieldErr("steps", "%d outside [1, %d] (model T=%d, server --max-steps %d)", req.Steps, maxSteps, T, s.opt.MaxSteps)
	}
	switch req.Format {
	case "":
		req.Format = "png"
	case "png", "npz":
	default:
		return p, fieldErr("format", "unknown %q (want png or npz)", req.Format)
	}
	if stream && req.Format != "png" {
		return p, fieldErr("format", "the stream sends PNG frames only; use POST /v1/samples for npz")
	}
	if !repaint {
		// Model.Sampler, as the worker's run uses, so that a distilled model samples its own grid
		// (and its step count is the default) and a request off that grid is warned. An
		// inpainting keeps SamplerSpec.New: its sampler (planInpaint) is built that way.
		var full generate.SamplerSpec
		var warn string
		var err error
		if req.Inpaint == nil {
			_, full, warn, err = m.Sampler(req.SamplerSpec)
		} else {
			_, full, err = req.SamplerSpec.New(m.Schedule)
		}
		if err != nil {
			return p, specFieldErr(err)
		}
		if warn != "" {
			p.warn = distilledWarning(m, full)
		}
		if full.Steps > s.opt.MaxSteps {
			return p, fieldErr("steps", "the %s default of %d steps is above the server's --max-steps %d; pass steps", req.Name, full.Steps, s.opt.MaxSteps)
		}
		p.spec, p.steps, p.desc = full, full.Steps, full.String()
	}
	if req.Inpaint != nil {
		if err := s.planInpaint(&p, req, m); err != nil {
			return p, err
		}
	}
	if req.Every < 0 || req.Every > p.steps || (req.Every == 0 && req.given.given("every")) {
		return p, fieldErr("every", "%d outside [1, %d] (the run's steps)", req.Every, p.steps)
	}
	p.every = req.Every
	if p.every == 0 {
		p.every = max(1, (p.steps+99)/100)
	}
	var err error
	if p.labels, err = req.Labels(m.Classes, 0, req.N, perClass); err != nil {
		return p, specFieldErr(err)
	}
	p.cols = imageio.GridCols(req.N)
	if p.labels != nil {
		p.guidance = req.Scale()
		if req.Class == "all" {
			p.cols = min(perClass, req.N)
		}
	}
	p.req = req
	return p, nil
}

// distilledWarning tells a client that sp is not the sampler distilled model m was trained for and
// what to send instead. Model.Sampler's own warning is for the command line (it names flags and the
// model's file), so the server words its own, with the API's names.
func distilledWarning(m modelInfo, sp generate.SamplerSpec) string {
	n := len(m.distilled)
	return fmt.Sprintf("model %s was distilled for %d steps of ddim (eta 0) over the timesteps %v; %s is not what it was trained for (send sampler ddim with steps %d, or no steps, and no spacing or eta)",
		m.Name, n, m.distilled, sp, n)
}

// perClass is how many images each class gets when a request asks for class "all", and so the
// grid's columns: one row per class. It is fixed per server rather than taken from n, so that image
// i's class, like its noise, does not depend on how many images were asked for (a request is the
// first rows of a bigger one). Eight, as `ddpm sample --class all`, or fewer so that one image of
// every class fits in --max-n.
func (s *Server) perClass(classes int) int {
	if classes == 0 {
		return 0
	}
	return max(1, min(8, s.opt.MaxN/classes))
}

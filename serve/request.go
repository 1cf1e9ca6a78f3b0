package serve

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"ddpm/diffusion"
	"ddpm/generate"
)

// Request is what POST /v1/samples takes as JSON and GET /v1/samples/stream as query parameters
// (same names). Zero values mean defaults.
type Request struct {
	Model    string  `json:"model"`     // a name from /v1/models; default: the first model
	Sampler  string  `json:"sampler"`   // one of diffusion.SamplerNames(); default "ddim"
	Steps    int     `json:"steps"`     // default: T for ddpm, min(50, T) for the others
	Eta      float64 `json:"eta"`       // ddim only, >= 0
	SigmaHat bool    `json:"sigma_hat"` // ddim only: the DDIM paper's sigma-hat noise
	Variance string  `json:"variance"`  // ddpm only: "beta" (default) or "posterior"
	Spacing  string  `json:"spacing"`   // "linspace" (default), "leading", "trailing", "quadratic"
	Clip     bool    `json:"clip"`      // clip the predicted x0 to [-1, 1]
	EpsScale float64 `json:"eps_scale"` // multiply the predicted eps by this at every step; default 1
	N        int     `json:"n"`         // images; default min(16, max-n)
	Seed     uint64  `json:"seed"`      // image i depends on (seed, i) only
	Format   string  `json:"format"`    // "png" (default, one grid) or "npz" (uint8 N,H,W,C under arr_0)
	// Every is the stream's frame stride: a frame every Every steps (and always the last);
	// default: about 100 frames in all. Ignored by POST.
	Every int `json:"every"`
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

// decodeJSON reads a Request from a JSON body. Unknown fields, wrong types, trailing data and an
// empty body are errors naming the field where there is one.
func decodeJSON(r io.Reader) (Request, error) {
	var req Request
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		var te *json.UnmarshalTypeError
		var se *json.SyntaxError
		switch {
		case errors.As(err, &te):
			return req, fieldErr(te.Field, "want a JSON %s, got %s", jsonKind(te.Type.Kind().String()), te.Value)
		case errors.As(err, &se):
			return req, fieldErr("body", "invalid JSON at byte %d: %v", se.Offset, err)
		case errors.Is(err, io.ErrUnexpectedEOF):
			return req, fieldErr("body", "truncated JSON")
		case errors.Is(err, io.EOF):
			return req, fieldErr("body", "empty; want a JSON object such as {\"sampler\":\"ddim\",\"steps\":50,\"n\":4,\"seed\":1}")
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			return req, fieldErr(name, "unknown field (known: %s)", strings.Join(requestFields, ", "))
		}
		return req, err // e.g. *http.MaxBytesError; the caller maps it
	}
	if _, err := dec.Token(); err != io.EOF {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return req, err
		}
		return req, fieldErr("body", "trailing data after the JSON object")
	}
	return req, nil
}

func jsonKind(k string) string {
	switch k {
	case "int", "int64", "uint64", "float64":
		return "number (" + k + ")"
	case "bool":
		return "boolean"
	}
	return k
}

var requestFields = []string{"model", "sampler", "steps", "eta", "sigma_hat", "variance", "spacing", "clip", "eps_scale", "n", "seed", "format", "every"}

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
			req.Sampler = v
		case "variance":
			req.Variance = v
		case "spacing":
			req.Spacing = v
		case "format":
			req.Format = v
		case "steps":
			req.Steps, err = strconv.Atoi(v)
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
		default:
			return req, fieldErr(k, "unknown parameter (known: %s)", strings.Join(requestFields, ", "))
		}
		if err != nil {
			return req, fieldErr(k, "cannot parse %q: %v", v, errors.Unwrap(err))
		}
	}
	return req, nil
}

// plan is a validated request: the model index, the sampler spec and the derived stream stride.
type plan struct {
	req   Request
	model int
	spec  generate.SamplerSpec // with defaults filled in
	steps int
	every int
}

// validate checks a request against the models and limits, filling in defaults. Every error is a
// *FieldError naming the parameter.
func (s *Server) validate(req Request, stream bool) (plan, error) {
	p := plan{req: req}
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
	if req.Sampler == "" {
		req.Sampler = "ddim"
	}
	if !slices.Contains(diffusion.SamplerNames(), req.Sampler) {
		return p, fieldErr("sampler", "unknown sampler %q (want %s)", req.Sampler, strings.Join(diffusion.SamplerNames(), ", "))
	}
	if req.N == 0 {
		req.N = min(16, s.opt.MaxN)
	}
	if req.N < 1 || req.N > s.opt.MaxN {
		return p, fieldErr("n", "%d outside [1, %d] (the server's --max-n)", req.N, s.opt.MaxN)
	}
	maxSteps := min(T, s.opt.MaxSteps)
	if req.Steps < 0 || req.Steps > maxSteps {
		return p, fieldErr("steps", "%d outside [1, %d] (model T=%d, server --max-steps %d)", req.Steps, maxSteps, T, s.opt.MaxSteps)
	}
	if math.IsNaN(req.Eta) || math.IsInf(req.Eta, 0) || req.Eta < 0 || req.Eta > 10 {
		return p, fieldErr("eta", "%v must be a number in [0, 10]", req.Eta)
	}
	if math.IsNaN(req.EpsScale) || req.EpsScale < 0 || req.EpsScale > 2 {
		return p, fieldErr("eps_scale", "%v must be a number in (0, 2] (default 1)", req.EpsScale)
	}
	if req.Sampler != "ddim" {
		if req.Eta != 0 {
			return p, fieldErr("eta", "applies to the ddim sampler only, not %s", req.Sampler)
		}
		if req.SigmaHat {
			return p, fieldErr("sigma_hat", "applies to the ddim sampler only, not %s", req.Sampler)
		}
	} else if req.SigmaHat && req.Eta != 0 {
		return p, fieldErr("sigma_hat", "uses the mean of eta = 1; do not combine it with eta")
	}
	if req.Sampler != "ddpm" && req.Variance != "" {
		return p, fieldErr("variance", "applies to the ddpm sampler only, not %s", req.Sampler)
	}
	if req.Variance != "" {
		if _, err := diffusion.ParseVariance(req.Variance); err != nil {
			return p, fieldErr("variance", "unknown %q (want beta or posterior)", req.Variance)
		}
	}
	if req.Spacing != "" {
		if _, err := diffusion.ParseSpacing(req.Spacing); err != nil {
			return p, fieldErr("spacing", "unknown %q (want %s)", req.Spacing, diffusion.SpacingNames)
		}
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
	spec := generate.SamplerSpec{Name: req.Sampler, Variance: req.Variance, Steps: req.Steps, Eta: req.Eta,
		SigmaHat: req.SigmaHat, Spacing: req.Spacing, Clip: req.Clip, EpsScale: req.EpsScale}
	_, full, err := spec.New(m.Schedule)
	if err != nil {
		return p, fieldErr("sampler", "%v", err)
	}
	if full.Steps > s.opt.MaxSteps {
		return p, fieldErr("steps", "the %s default of %d steps is above the server's --max-steps %d; pass steps", req.Sampler, full.Steps, s.opt.MaxSteps)
	}
	if req.Every < 0 || req.Every > full.Steps {
		return p, fieldErr("every", "%d outside [1, %d] (the run's steps)", req.Every, full.Steps)
	}
	p.every = req.Every
	if p.every == 0 {
		p.every = max(1, (full.Steps+99)/100)
	}
	p.req, p.spec, p.steps = req, full, full.Steps
	return p, nil
}

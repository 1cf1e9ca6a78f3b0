package serve

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"

	"github.com/ddpm-go/ddpm/generate"
)

// Inpaint is a request's "inpaint" object: every image of the request completes one partly known
// image, by the replacement method on the request's sampler (Song et al. 2021, App. I.2) or, with
// repaint, by RePaint (Lugmayr et al. 2022), as `ddpm inpaint` does (generate.InpaintSpec).
//
// Image and mask are JSON arrays of integers at the model's size (/v1/models: channels, height,
// width), row-major, channel after channel (CHW): what a canvas's pixels give with no decoding step,
// and exact, so the known pixels come back byte for byte. Image is C*H*W values in 0..255; mask is
// H*W values (one per pixel, every channel) or C*H*W, each 1 (keep the image's value) or 0 (fill
// in). This is the opposite polarity of `ddpm inpaint --mask`, whose white marks what to fill, and
// the one diffusion.Known takes. A mask of all ones leaves nothing to do and is refused; all zeros
// is plain sampling (diffusion.Known: a run with nothing known is the run without it).
type Inpaint struct {
	Image []float64 `json:"image"`
	Mask  []float64 `json:"mask"`
	// RePaint, Jumps and JumpLength (repaint, jumps, jump_length): RePaint instead of replacement,
	// over the request's steps (default generate.DefaultRePaintSteps, respaced). Its network calls,
	// about jumps x steps, count as the request's steps against the server's --max-steps (see
	// repaintCalls).
	generate.InpaintSpec

	given fieldSet // over inpaintFields
}

var inpaintFields = []string{"image", "mask", "repaint", "jumps", "jump_length"}

// inpaintPlan is a validated Inpaint: the known image in [-1, 1] (dim values, every image's), the
// mask (dim values, 1 = known), and what builds the sampler in the worker.
type inpaintPlan struct {
	x0, mask []float64
	fill     int // values to fill in per image
	spec     generate.InpaintSpec
	sampler  generate.SamplerSpec // passed to spec.Sampler
}

// indexFold is the index in fields of the field encoding/json would decode key into (an exact match
// first, else one ignoring case with Unicode folding), or -1.
func indexFold(fields []string, key string) int {
	for i, f := range fields {
		if f == key {
			return i
		}
	}
	for i, f := range fields {
		if strings.EqualFold(f, key) {
			return i
		}
	}
	return -1
}

// inpaintKeys checks the keys of the "inpaint" object whose '{' dec has just read, as objectKeys
// does the request's (once each, none null), consumes the object and returns the fields present.
func inpaintKeys(dec *json.Decoder) (fieldSet, error) {
	var set fieldSet
	for dec.More() {
		tok, err := dec.Token()
		key, ok := tok.(string)
		if err != nil || !ok {
			return set, fieldErr("inpaint", "invalid JSON object key")
		}
		i := indexFold(inpaintFields, key)
		if i < 0 { // decoding rejects unknown fields first; kept for safety
			return set, fieldErr("inpaint."+key, "unknown field (known: %s)", strings.Join(inpaintFields, ", "))
		}
		name := "inpaint." + inpaintFields[i]
		if set.has(i) {
			return set, fieldErr(name, "given more than once")
		}
		set |= 1 << i
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return set, fieldErr(name, "%v", err)
		}
		if string(raw) == "null" {
			return set, fieldErr(name, "null; leave the field out to get its default")
		}
	}
	if _, err := dec.Token(); err != nil {
		return set, fieldErr("inpaint", "%v", err)
	}
	return set, nil
}

// inpaintFieldErr names a generate.FieldError of the inpainting's sampler under the request's field:
// jumps and jump_length live in the inpaint object.
func inpaintFieldErr(err error) *FieldError {
	var fe *generate.FieldError
	if errors.As(err, &fe) && (fe.Field == "jumps" || fe.Field == "jump_length") {
		return fieldErr("inpaint."+fe.Field, "%s", fe.Msg)
	}
	return specFieldErr(err)
}

// known validates the image and mask against a c x h x w model: lengths, integer values in range,
// something to fill in.
func (in *Inpaint) known(c, h, w int) (x0, mask []float64, fill int, err error) {
	dim := c * h * w
	switch {
	case in.Image == nil:
		return nil, nil, 0, fieldErr("inpaint.image", "required: the image to complete, %d integers 0..255 (%dx%dx%d, CHW)", dim, c, h, w)
	case in.Mask == nil:
		return nil, nil, 0, fieldErr("inpaint.mask", "required: %d values (%dx%d, one per pixel) or %d (one per value), 1 = keep, 0 = fill in", h*w, h, w, dim)
	case len(in.Image) != dim:
		return nil, nil, 0, fieldErr("inpaint.image", "%d values, want %d: the model's %dx%dx%d (channels x height x width, CHW order)", len(in.Image), dim, c, h, w)
	case len(in.Mask) != h*w && len(in.Mask) != dim:
		return nil, nil, 0, fieldErr("inpaint.mask", "%d values, want %d (%dx%d, one per pixel) or %d (one per value, CHW)", len(in.Mask), h*w, h, w, dim)
	}
	x0 = make([]float64, dim)
	for i, v := range in.Image {
		if v != math.Trunc(v) || v < 0 || v > 255 {
			return nil, nil, 0, fieldErr("inpaint.image", "value %d is %v, want an integer 0..255", i, v)
		}
		x0[i] = v/127.5 - 1
	}
	for i, v := range in.Mask {
		if v != 0 && v != 1 {
			return nil, nil, 0, fieldErr("inpaint.mask", "value %d is %v, want 1 (keep) or 0 (fill in)", i, v)
		}
	}
	mask = in.Mask
	if len(mask) != dim { // one value per pixel: the same in every channel
		mask = make([]float64, 0, dim)
		for range c {
			mask = append(mask, in.Mask...)
		}
	}
	for _, v := range mask {
		if v == 0 {
			fill++
		}
	}
	if fill == 0 {
		return nil, nil, 0, fieldErr("inpaint.mask", "all ones keeps every pixel: nothing to fill in (mark the pixels to complete with 0)")
	}
	return x0, mask, fill, nil
}

// repaintCalls is the number of network calls of RePaint over steps timesteps with jump length j
// and r passes (diffusion.RePaint: one per down step), steps + (r-1) j P with P = ceil((steps-j)/j)
// jump points, without building the visited sequence.
func repaintCalls(steps, j, r int) int {
	points := 0
	if steps > j {
		points = (steps - 1) / j // the p = 0, j, 2j, ... below steps-j
	}
	return steps + (r-1)*j*points
}

// planInpaint validates a request's inpainting against its model and fills in p.known, p.spec,
// p.steps (for RePaint: its network calls, which is what the stream counts and --max-steps bounds)
// and p.desc. req.Name is the request's sampler ("" for RePaint's default).
//
// The bound on RePaint: each network call is one reverse step (the stream reports RePaint's down
// steps one by one), so a RePaint request may make at most --max-steps calls, what the costliest
// plain request may. Jumps x steps would otherwise let one request hold a worker for up to
// MaxJumps x T calls (some 100,000 for T = 1000: hours on a CPU) before the timeout ends it, work
// thrown away. The paper's 250 steps with j = r = 10 make 2410 calls: a server with the default
// --max-steps 1000 takes RePaint over up to 100 steps with those jumps (910 calls), and says so.
func (s *Server) planInpaint(p *plan, req Request, m modelInfo) error {
	in := req.Inpaint
	for _, f := range []string{"jumps", "jump_length"} {
		if in.given.givenIn(inpaintFields, f) {
			v := in.Jumps
			if f == "jump_length" {
				v = in.JumpLength
			}
			if v == 0 {
				return fieldErr("inpaint."+f, "0 outside [1, %d]; leave the field out to get 10", generate.MaxJumps)
			}
		}
	}
	c, h, w := m.Shape()
	x0, mask, fill, err := in.known(c, h, w)
	if err != nil {
		return err
	}
	_, desc, err := in.Sampler(req.SamplerSpec, m.Schedule)
	if err != nil {
		return inpaintFieldErr(err)
	}
	p.known = &inpaintPlan{x0: x0, mask: mask, fill: fill, spec: in.InpaintSpec, sampler: req.SamplerSpec}
	p.desc = desc
	if !in.RePaint {
		return nil
	}
	steps := req.Steps
	if steps == 0 {
		steps = min(generate.DefaultRePaintSteps, m.Schedule.T)
	}
	j, r := in.JumpLength, in.Jumps
	if j == 0 {
		j = 10
	}
	if r == 0 {
		r = 10
	}
	calls := repaintCalls(steps, j, r)
	if calls > s.opt.MaxSteps {
		// The most steps that fit with at least one jump (steps <= j would be plain replacement).
		fit := 0
		for k := steps; k > j && fit == 0; k-- {
			if repaintCalls(k, j, r) <= s.opt.MaxSteps {
				fit = k
			}
		}
		how := "its"
		if !req.given.given("steps") {
			how = "its default of"
		}
		advice := "fewer jumps or a shorter jump_length"
		if fit > 0 {
			advice = fmt.Sprintf("steps <= %d, or %s", fit, advice)
		}
		return fieldErr("steps", "RePaint over %s %d steps with jumps %d and jump_length %d makes %d network calls, above the server's --max-steps %d (each call is a step); pass %s",
			how, steps, r, j, calls, s.opt.MaxSteps, advice)
	}
	p.spec = req.SamplerSpec
	p.spec.Name, p.spec.Steps = "repaint", steps
	p.steps = calls
	return nil
}

// repeat is n copies of x, one after the other: every image's known part.
func repeat(x []float64, n int) []float64 {
	out := make([]float64, 0, n*len(x))
	for range n {
		out = append(out, x...)
	}
	return out
}

// inInpaint reports whether an unknown field the decoder names is the inpaint object's rather than
// the request's (encoding/json's error does not say where): it is not a top-level key, and the body
// has an inpaint object.
func inInpaint(body []byte, name string) bool {
	var top map[string]json.RawMessage
	if json.Unmarshal(body, &top) != nil {
		return false
	}
	if _, ok := top[name]; ok {
		return false
	}
	for k, v := range top {
		if strings.EqualFold(k, "inpaint") && len(v) > 0 && v[0] == '{' {
			return true
		}
	}
	return false
}

// inpaintBytesPerValue is the body room per value of an inpainting's image and mask: "255," takes
// 4 bytes, and 16 leaves room for JSON written one value a line with indentation.
const inpaintBytesPerValue = 16

// readJSON reads a JSON request body of at most MaxBody bytes, or MaxBody + inpaintRoom for one
// with an inpaint object: its image and mask grow with the model, not with anything the operator's
// MaxBody is meant to bound. The body is read whole either way (decodeJSON must see all of it).
func (s *Server) readJSON(w http.ResponseWriter, r *http.Request) (Request, error) {
	cr := &countingReader{r: http.MaxBytesReader(w, r.Body, s.opt.MaxBody+s.inpaintRoom)}
	req, err := decodeJSON(cr)
	if err == nil && req.Inpaint == nil && cr.n > s.opt.MaxBody {
		return req, &http.MaxBytesError{Limit: s.opt.MaxBody}
	}
	return req, err
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

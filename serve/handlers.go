package serve

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/generate"
)

// writeTimeout bounds each write of an answer or event, so a client that stops reading cannot hold
// a handler (and, for a stream, the worker waiting to hand it a frame) forever.
const writeTimeout = 30 * time.Second

// fail answers a request that could not be sampled (before any body was written).
func (s *Server) fail(w http.ResponseWriter, err error) {
	var fe *FieldError
	var mbe *http.MaxBytesError
	var re *readError
	switch {
	case errors.As(err, &fe):
		writeError(w, http.StatusBadRequest, fe.Field, fe.Error())
	case errors.As(err, &mbe):
		writeError(w, http.StatusRequestEntityTooLarge, "body", fmt.Sprintf("request body larger than %d bytes", mbe.Limit))
	case errors.As(err, &re):
		// The connection is in an unknown state after a failed read: do not reuse it.
		w.Header().Set("Connection", "close")
		if errors.Is(err, os.ErrDeadlineExceeded) {
			writeError(w, http.StatusRequestTimeout, "body", "the request body did not arrive within the server's read timeout")
			return
		}
		writeError(w, http.StatusBadRequest, "body", err.Error())
	case errors.Is(err, errQueueFull), errors.Is(err, errDraining):
		s.refuse(w, err)
	case errors.Is(err, errShutdown):
		writeError(w, http.StatusServiceUnavailable, "", "canceled: server shutting down")
	case errors.Is(err, context.DeadlineExceeded):
		writeError(w, http.StatusGatewayTimeout, "", err.Error())
	case errors.Is(err, context.Canceled):
		// The client went away; nobody reads this, but the status lands in the metrics.
		w.WriteHeader(499)
	default:
		s.opt.Log.Error("sampling failed", "err", err)
		writeError(w, http.StatusInternalServerError, "", err.Error())
	}
}

// POST /v1/samples: JSON in, a PNG grid or an NPZ of the images out.
func (s *Server) handleSamples(w http.ResponseWriter, r *http.Request) {
	if !jobRequestOK(w, r, true) {
		return
	}
	req, err := s.readJSON(w, r)
	if err != nil {
		s.fail(w, err)
		return
	}
	p, err := s.validate(req, false)
	if err != nil {
		s.fail(w, err)
		return
	}
	ctx, cancel := s.jobContext(r)
	defer cancel(nil)
	j := &job{ctx: ctx, plan: p, done: make(chan result, 1)}
	if err := s.submit(j); err != nil {
		s.fail(w, err)
		return
	}
	res := <-j.done
	s.inflight.Done()
	if res.err != nil {
		s.logJob(p, res, "")
		s.fail(w, res.err)
		return
	}
	m := s.models[p.model]
	c, h, wd := m.Shape()
	var body []byte
	var ctype, ext string
	if p.req.Format == "npz" {
		body, err = imagesNPZ(res.x, p.req.N, c, h, wd)
		ctype, ext = "application/octet-stream", "npz"
	} else {
		body, err = gridPNG(res.x, p.req.N, c, h, wd, p.cols)
		ctype, ext = "image/png", "png"
	}
	if err != nil {
		s.fail(w, err)
		return
	}
	s.logJob(p, res, "")
	// A client that reads the answer slowly holds only its own handler, and not forever.
	http.NewResponseController(w).SetWriteDeadline(time.Now().Add(writeTimeout))
	hd := w.Header()
	hd.Set("Content-Type", ctype)
	hd.Set("Content-Length", strconv.Itoa(len(body)))
	kind := ""
	if p.known != nil {
		kind = "-inpaint"
	}
	hd.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s-%s-%d%s-seed%d.%s"`, m.Name, p.spec.Name, p.steps, kind, p.req.Seed, ext))
	hd.Set("X-Ddpm-Sampler", p.desc)
	if p.warn != "" {
		hd.Set("Warning", warningHeader(p.warn))
	}
	hd.Set("X-Ddpm-Seed", strconv.FormatUint(p.req.Seed, 10))
	hd.Set("X-Ddpm-Grid-Cols", strconv.Itoa(p.cols))
	if p.labels != nil {
		hd.Set("X-Ddpm-Class", p.req.Class)
		hd.Set("X-Ddpm-Guidance", strconv.FormatFloat(p.guidance, 'g', -1, 64))
	}
	if p.known != nil {
		hd.Set("X-Ddpm-Fill", strconv.Itoa(p.known.fill))
	}
	w.WriteHeader(http.StatusOK)
	w.Write(body)
}

func (s *Server) logJob(p plan, res result, via string) {
	args := []any{"model", s.models[p.model].Name, "sampler", p.desc, "n", p.req.N, "seed", p.req.Seed}
	if p.labels != nil {
		args = append(args, "class", p.req.Class, "guidance", p.guidance)
	}
	if p.known != nil {
		args = append(args, "fill", p.known.fill)
	}
	if res.err != nil {
		s.opt.Log.Info("job", append(args, "err", res.err, "via", via)...)
		return
	}
	s.opt.Log.Info("job", append(args, "seconds", res.dur.Seconds(), "via", via)...)
}

// frame is one step as the stream shows it: copies of x_t and the predicted x0.
type frame struct {
	index, total, t int
	x, x0           []float64
}

// StepEvent is the data of a stream's "step" event.
type StepEvent struct {
	Index    int     `json:"index"` // 0-based step of Total
	Total    int     `json:"total"`
	T        int     `json:"t"`        // timestep of x_t
	Progress float64 `json:"progress"` // (Index+1)/Total
	XT       string  `json:"x_t"`      // PNG grid of x_t, base64
	X0       string  `json:"x0"`       // PNG grid of the predicted x0, base64
}

// DoneEvent is the data of a stream's final "done" event.
type DoneEvent struct {
	PNG     string  `json:"png"` // the samples as a PNG grid, base64: the bytes POST /v1/samples returns
	Sampler string  `json:"sampler"`
	Seed    uint64  `json:"seed"`
	N       int     `json:"n"`
	Cols    int     `json:"cols"`    // the grid's columns
	Seconds float64 `json:"seconds"` // worker time
	// The request's class and the guidance scale used, when it asked for a class.
	Class    string   `json:"class,omitempty"`
	Guidance *float64 `json:"guidance,omitempty"`
	// Fill is, for an inpainting, how many values of each image were filled in (the mask's zeros
	// over every channel); the others are the request's image, byte for byte.
	Fill int `json:"fill,omitempty"`
	// Warning says that a distilled model was sampled off the grid it was trained for (what POST
	// /v1/samples sends as a Warning header): a page reading the stream sees no headers.
	Warning string `json:"warning,omitempty"`
}

// GET /v1/samples/stream: the reverse process as Server-Sent Events. Events: "queued"
// {"position"}, "start" {}, "step" StepEvent (every `every` steps and the last), "done" DoneEvent,
// or "error" {"error"} once streaming has begun (errors before that are plain JSON answers with
// their status codes). The job is canceled as soon as the client goes away.
//
// POST /v1/samples/stream is the same stream for a JSON request, as POST /v1/samples takes it: an
// inpainting's image and mask are too large for a URL (servers and proxies cap those at a few KiB),
// and a POST answered with the events keeps one request per run, so the stream still ends the job
// when the client goes away, with no job registry to expire.
func (s *Server) handleStream(w http.ResponseWriter, r *http.Request) {
	body := r.Method == http.MethodPost
	if !jobRequestOK(w, r, body) {
		return
	}
	var req Request
	var err error
	if body {
		req, err = s.readJSON(w, r)
	} else {
		req, err = parseQuery(r.URL.Query())
	}
	if err != nil {
		s.fail(w, err)
		return
	}
	p, err := s.validate(req, true)
	if err != nil {
		s.fail(w, err)
		return
	}
	if r.Method == http.MethodHead { // a valid request; but no job runs for a HEAD
		w.Header().Set("Content-Type", "text/event-stream")
		return
	}
	ctx, cancel := s.jobContext(r)
	defer cancel(nil)
	m := s.models[p.model]
	c, h, wd := m.Shape()
	frames := make(chan frame, 4)
	started := make(chan struct{})
	j := &job{ctx: ctx, plan: p, done: make(chan result, 1), start: func() { close(started) }}
	j.step = func(st diffusion.Step) error {
		if st.Index%p.every != 0 && st.Index != st.Total-1 {
			return nil
		}
		f := frame{index: st.Index, total: st.Total, t: st.T, x: append([]float64(nil), st.X...), x0: append([]float64(nil), st.X0...)}
		select {
		case frames <- f:
			return nil
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
	if err := s.submit(j); err != nil {
		s.fail(w, err)
		return
	}
	rc := http.NewResponseController(w)
	hd := w.Header()
	hd.Set("Content-Type", "text/event-stream")
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Accel-Buffering", "no")
	hd.Set("X-Ddpm-Sampler", p.desc)
	if p.warn != "" {
		hd.Set("Warning", warningHeader(p.warn))
	}
	w.WriteHeader(http.StatusOK)
	alive := true
	send := func(event string, v any) {
		if !alive {
			return
		}
		b, _ := json.Marshal(v)
		rc.SetWriteDeadline(time.Now().Add(writeTimeout))
		_, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, b)
		if err == nil {
			err = rc.Flush()
		}
		if err != nil {
			alive = false
			cancel(context.Canceled) // the client is gone: stop the sampler
		}
	}
	queued := map[string]any{"position": len(s.q.jobs), "sampler": p.desc, "steps": p.steps, "n": p.req.N, "seed": p.req.Seed}
	if p.labels != nil {
		queued["class"], queued["guidance"] = p.req.Class, p.guidance
	}
	if p.known != nil {
		queued["fill"] = p.known.fill
	}
	send("queued", queued)
	sendFrame := func(f frame) {
		if !alive {
			return
		}
		xt, err1 := gridPNG(f.x, p.req.N, c, h, wd, p.cols)
		x0, err2 := gridPNG(f.x0, p.req.N, c, h, wd, p.cols)
		if err := errors.Join(err1, err2); err != nil {
			send("error", apiError{Error: err.Error()})
			cancel(err)
			return
		}
		send("step", StepEvent{Index: f.index, Total: f.total, T: f.t, Progress: float64(f.index+1) / float64(f.total),
			XT: base64.StdEncoding.EncodeToString(xt), X0: base64.StdEncoding.EncodeToString(x0)})
	}
	// The worker closes started before it sends any frame or result, so checking it first keeps
	// "start" ahead of them even when select finds several channels ready.
	flushStart := func() {
		select {
		case <-started:
			send("start", map[string]any{})
			started = nil
		default:
		}
	}
	var res result
	for waiting := true; waiting; {
		select {
		case <-started:
			flushStart()
		case f := <-frames:
			flushStart()
			sendFrame(f)
		case res = <-j.done:
			flushStart()
			waiting = false
		}
	}
	s.inflight.Done()
	for drained := false; !drained; {
		select {
		case f := <-frames:
			sendFrame(f)
		default:
			drained = true
		}
	}
	s.logJob(p, res, "stream")
	if res.err != nil {
		msg := res.err.Error()
		if errors.Is(res.err, context.DeadlineExceeded) {
			msg = context.Cause(ctx).Error()
		}
		send("error", apiError{Error: msg})
		return
	}
	png, err := gridPNG(res.x, p.req.N, c, h, wd, p.cols)
	if err != nil {
		send("error", apiError{Error: err.Error()})
		return
	}
	done := DoneEvent{PNG: base64.StdEncoding.EncodeToString(png), Sampler: p.desc, Seed: p.req.Seed, N: p.req.N, Cols: p.cols, Seconds: res.dur.Seconds(), Warning: p.warn}
	if p.labels != nil {
		done.Class, done.Guidance = p.req.Class, &p.guidance
	}
	if p.known != nil {
		done.Fill = p.known.fill
	}
	send("done", done)
}

// warningHeader is msg as the value of an HTTP Warning header (RFC 9111 5.5, obsolete there but
// what clients show): code 199, "miscellaneous warning", no agent, msg as a quoted-string.
func warningHeader(msg string) string {
	return `199 - "` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(msg) + `"`
}

// ModelInfo describes a served model in GET /v1/models.
type ModelInfo struct {
	Name       string `json:"name"`
	Source     string `json:"source"`
	Schedule   string `json:"schedule"`
	Timesteps  int    `json:"timesteps"`
	ZeroSNR    bool   `json:"zero_snr"`
	Prediction string `json:"prediction"`
	Channels   int    `json:"channels"`
	Height     int    `json:"height"`
	Width      int    `json:"width"`
	Params     int    `json:"params"`
	Config     any    `json:"config"`
	// NumClasses and Classes (the names, index order) describe a class-conditional model, which a
	// request's class picks from; an unconditional model has 0 and []. PerClass is how many images
	// each class gets for class "all" (the grid's columns; 0 for an unconditional model).
	NumClasses int      `json:"num_classes"`
	Classes    []string `json:"classes"`
	PerClass   int      `json:"per_class"`
	// DistilledSteps is the step count a progressively distilled model (ddpm distill) was trained
	// for, which a request without steps gets (with sampler ddim, no spacing, eta 0); 0 for others.
	// A client offers it as the model's setting, since other samplers or counts are off its grid.
	DistilledSteps int `json:"distilled_steps,omitempty"`
}

// GuidanceInfo is the range of a request's guidance scale, as GET /v1/models reports it.
type GuidanceInfo struct {
	Default float64 `json:"default"` // the scale of a request with a class and no guidance
	Max     float64 `json:"max"`
}

// Limits are the server's per-request limits, as GET /v1/models reports them.
type Limits struct {
	MaxN           int     `json:"max_n"`
	MaxSteps       int     `json:"max_steps"`
	Queue          int     `json:"queue"`
	Workers        int     `json:"workers"`
	TimeoutSeconds float64 `json:"timeout_seconds"`
	MaxBodyBytes   int64   `json:"max_body_bytes"`
	// MaxInpaintBodyBytes bounds the body of a request with an inpaint object: MaxBodyBytes and
	// room for the image and mask of the largest model (inpaintRoom).
	MaxInpaintBodyBytes int64 `json:"max_inpaint_body_bytes"`
}

// ModelsResponse is the body of GET /v1/models (also served as /v1/info).
type ModelsResponse struct {
	Engine    string       `json:"engine,omitempty"`
	Models    []ModelInfo  `json:"models"`
	Limits    Limits       `json:"limits"`
	Samplers  []string     `json:"samplers"`
	Spacings  []string     `json:"spacings"`
	Variances []string     `json:"variances"`
	Guidance  GuidanceInfo `json:"guidance"`
}

func (s *Server) handleModels(w http.ResponseWriter, r *http.Request) {
	resp := ModelsResponse{Engine: s.opt.Engine,
		Limits: Limits{MaxN: s.opt.MaxN, MaxSteps: s.opt.MaxSteps, Queue: s.opt.Queue, Workers: s.nworkers,
			TimeoutSeconds: s.opt.Timeout.Seconds(), MaxBodyBytes: s.opt.MaxBody, MaxInpaintBodyBytes: s.opt.MaxBody + s.inpaintRoom},
		Samplers: diffusion.SamplerNames(), Spacings: diffusion.Spacings(), Variances: []string{"beta", "posterior"},
		Guidance: GuidanceInfo{Default: generate.DefaultGuidance, Max: generate.MaxGuidance},
	}
	for _, m := range s.models {
		c, h, wd := m.Shape()
		resp.Models = append(resp.Models, ModelInfo{Name: m.Name, Source: m.Source,
			Schedule: m.Schedule.Name, Timesteps: m.Schedule.T, ZeroSNR: m.Schedule.ZeroSNR, Prediction: m.Prediction.String(),
			Channels: c, Height: h, Width: wd, Params: m.Net.NumParams(), Config: m.Net.Cfg,
			NumClasses: len(m.Classes), Classes: append([]string{}, m.Classes...), PerClass: s.perClass(len(m.Classes)),
			DistilledSteps: len(m.distilled)})
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	s.mu.RLock()
	draining := s.draining
	s.mu.RUnlock()
	body := map[string]any{"status": "ok", "models": len(s.models), "workers": s.nworkers, "queue_depth": len(s.q.jobs), "queue_capacity": cap(s.q.jobs)}
	if draining {
		body["status"] = "draining"
		writeJSON(w, http.StatusServiceUnavailable, body)
		return
	}
	writeJSON(w, http.StatusOK, body)
}

// Shutdown stops taking jobs (new requests get 503), lets queued and running jobs finish until ctx
// is done, then cancels the rest, and stops the workers. It returns ctx's error if work had to be
// canceled.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if s.draining {
		s.mu.Unlock()
		return errors.New("serve: Shutdown called twice")
	}
	s.draining = true
	s.mu.Unlock()
	finished := make(chan struct{})
	go func() {
		s.inflight.Wait()
		close(finished)
	}()
	var err error
	select {
	case <-finished:
	case <-ctx.Done():
		err = ctx.Err()
		s.stop(errShutdown)
		<-finished
	}
	s.stop(errShutdown)
	close(s.q.jobs)
	s.workers.Wait()
	return err
}

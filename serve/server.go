package serve

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/ddpm-go/ddpm/checkpoint"
	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/generate"
)

//go:embed web
var webFiles embed.FS

// Options are the server's limits. Zero values take the defaults of DefaultOptions.
type Options struct {
	MaxN     int           // images per request
	MaxSteps int           // reverse steps per request
	Queue    int           // jobs waiting for a worker; more get 429
	Timeout  time.Duration // per request, queue wait included
	MaxBody  int64         // bytes of a request body, besides an inpainting's image and mask (inpaintRoom)
	Log      *slog.Logger  // nil: no logging
	// Chunk is passed to generate.Job.Chunk: if > 0, every network call takes exactly Chunk rows
	// aligned to image indices, so on engines whose kernels depend on the row count (oneDNN) image
	// i of a seed is the same whatever n. 0 runs each call as calls of power-of-two row counts up
	// to the network's MaxBatch (else MaxN) on such engines (generate.Job.Pow2), and all n rows at
	// once on the reference engine: oneDNN keeps primitives, weight copies and buffers for every
	// row count it sees, so without a fixed set of row counts a server's memory grows with each new
	// n (to gigabytes for the shipped model over n = 1..64).
	Chunk int
	// Engine describes what the workers compute on and why (engine.Explain), for GET /v1/models.
	Engine string
	// AllowedHosts are Host header values accepted besides the address a connection came in on
	// (and loopback names for a loopback address): "name" for any port, "name:port" for one.
	// Other hosts get 403, so a DNS-rebinding name cannot reach the server (guard.go).
	AllowedHosts []string

	stepHook func(diffusion.Step) // tests: observe every step a worker runs
}

// DefaultOptions are the limits of `ddpm serve` without flags.
var DefaultOptions = Options{MaxN: 64, MaxSteps: 1000, Queue: 16, Timeout: 2 * time.Minute, MaxBody: 16 << 10}

// Model is one served model: a name for the API and one copy of the network per worker.
type Model struct {
	Name string
	// Copies[w] is worker w's copy (the same weights, each on its own backend); all need the
	// same image shape, schedule and prediction.
	Copies []*generate.Model
}

// Server is the HTTP API over a set of models. Create it with New, serve Handler, and stop it with
// Shutdown.
type Server struct {
	opt      Options
	models   []modelInfo
	q        queue
	met      *metrics
	mux      *http.ServeMux
	workers  sync.WaitGroup
	nworkers int
	// inpaintRoom is what a request with an inpaint object may add to MaxBody: inpaintBytesPerValue
	// for each value of the image and of a per-value mask at the largest model's size.
	inpaintRoom int64

	mu       sync.RWMutex // guards draining and sends on q.jobs (closed by Shutdown)
	draining bool
	inflight sync.WaitGroup // jobs enqueued whose handler has not got the result yet
	base     context.Context
	stop     context.CancelCauseFunc
}

type modelInfo struct {
	Name string
	*generate.Model
	pow2 int // generate.Job.Pow2 for this model's jobs
	// distilled is the timestep grid a progressively distilled model was trained for (nil for
	// others), read once so that /v1/models can offer it and a request off it can be told so.
	distilled []int
}

// New starts one worker per model copy (every model must have the same number of copies, at least
// one) and returns the server.
func New(models []Model, opt Options) (*Server, error) {
	d := DefaultOptions
	if opt.MaxN == 0 {
		opt.MaxN = d.MaxN
	}
	if opt.MaxSteps == 0 {
		opt.MaxSteps = d.MaxSteps
	}
	if opt.Queue == 0 {
		opt.Queue = d.Queue
	}
	if opt.Timeout == 0 {
		opt.Timeout = d.Timeout
	}
	if opt.MaxBody == 0 {
		opt.MaxBody = d.MaxBody
	}
	if opt.MaxN < 1 || opt.MaxSteps < 1 || opt.Queue < 1 || opt.Timeout < 0 || opt.MaxBody < 64 {
		return nil, fmt.Errorf("serve: limits must be positive: max-n %d, max-steps %d, queue %d, timeout %v, max body %d (>= 64)", opt.MaxN, opt.MaxSteps, opt.Queue, opt.Timeout, opt.MaxBody)
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	if opt.Chunk < 0 {
		return nil, fmt.Errorf("serve: chunk %d must be >= 0", opt.Chunk)
	}
	for _, h := range opt.AllowedHosts {
		if err := checkHostEntry(h); err != nil {
			return nil, fmt.Errorf("serve: %w", err)
		}
	}
	if len(models) == 0 {
		return nil, errors.New("serve: no models")
	}
	workers := len(models[0].Copies)
	if workers < 1 {
		return nil, fmt.Errorf("serve: model %q has no copies", models[0].Name)
	}
	s := &Server{opt: opt, nworkers: workers}
	s.met = newMetrics(func() float64 { return float64(len(s.q.jobs)) })
	seen := map[string]bool{}
	for _, m := range models {
		if m.Name == "" || seen[m.Name] {
			return nil, fmt.Errorf("serve: model names must be unique and not empty, got %q", m.Name)
		}
		seen[m.Name] = true
		if len(m.Copies) != workers {
			return nil, fmt.Errorf("serve: model %q has %d copies, %q has %d; want one per worker", m.Name, len(m.Copies), models[0].Name, workers)
		}
		c0 := m.Copies[0]
		for _, c := range m.Copies[1:] {
			if c.Dim() != c0.Dim() || c.Schedule.T != c0.Schedule.T || c.Prediction != c0.Prediction || !slices.Equal(c.Classes, c0.Classes) {
				return nil, fmt.Errorf("serve: copies of model %q differ in shape, T, prediction or classes", m.Name)
			}
		}
		pow2 := 0
		if opt.Chunk == 0 {
			rows := c0.Net.MaxBatch
			if rows < 1 {
				rows = opt.MaxN
			}
			pow2 = generate.DefaultPow2(c0.Net.Backend(), rows)
		}
		// Bad distillation metadata would fail every request to the model; refuse it at start.
		grid, err := checkpoint.DistilledGrid(c0.Meta, c0.Schedule.T)
		if err != nil {
			return nil, fmt.Errorf("serve: model %q: %w", m.Name, err)
		}
		s.models = append(s.models, modelInfo{Name: m.Name, Model: c0, pow2: pow2, distilled: grid})
		s.inpaintRoom = max(s.inpaintRoom, 2*inpaintBytesPerValue*int64(c0.Dim()))
	}
	s.base, s.stop = context.WithCancelCause(context.Background())
	s.q.jobs = make(chan *job, opt.Queue)
	for w := 0; w < workers; w++ {
		own := make([]*generate.Model, len(models))
		for i, m := range models {
			own[i] = m.Copies[w]
		}
		s.met.backendStats(w, own)
		s.workers.Add(1)
		go s.work(own)
	}
	s.routes()
	return s, nil
}

// Handler is the server's HTTP handler: the API, the metrics and the web page.
func (s *Server) Handler() http.Handler { return s.mux }

func (s *Server) routes() {
	mux := http.NewServeMux()
	static, _ := fs.Sub(webFiles, "web")
	// Every route checks the Host header first (guard.go) and counts its answers, refusals included.
	handle := func(pattern, name string, h http.Handler) {
		mux.Handle(pattern, s.met.instrument(name, s.guard(h)))
	}
	h := func(pattern, name string, f http.HandlerFunc) { handle(pattern, name, f) }
	h("POST /v1/samples", "samples", s.handleSamples)
	h("GET /v1/samples/stream", "stream", s.handleStream)
	h("POST /v1/samples/stream", "stream", s.handleStream)
	h("GET /v1/models", "models", s.handleModels)
	h("GET /v1/info", "info", s.handleModels)
	h("GET /healthz", "healthz", s.handleHealth)
	handle("GET /metrics", "metrics", s.met.handler())
	handle("GET /static/", "static", pageHeaders(http.StripPrefix("/static/", http.FileServerFS(static))))
	handle("GET /{$}", "page", pageHeaders(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		b, _ := fs.ReadFile(static, "index.html")
		w.Write(b)
	})))
	for path, allow := range map[string]string{"/v1/samples": "POST", "/v1/samples/stream": "GET, HEAD, POST", "/v1/models": "GET, HEAD", "/healthz": "GET, HEAD", "/metrics": "GET, HEAD"} {
		h(path, "badmethod", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", allow)
			writeError(w, http.StatusMethodNotAllowed, "", fmt.Sprintf("%s %s: method not allowed (allowed: %s)", r.Method, r.URL.Path, allow))
		})
	}
	h("/", "notfound", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "", fmt.Sprintf("no such endpoint: %s %s (see GET /v1/models, POST /v1/samples, GET or POST /v1/samples/stream, /healthz, /metrics)", r.Method, r.URL.Path))
	})
	s.mux = mux
}

// pageHeaders keeps the page to its own origin: scripts and styles from /static/ only, images
// from data: URLs (the stream's frames) and blob: (downloads), no framing.
func pageHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data: blob:; frame-ancestors 'none'")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "no-referrer")
		h.ServeHTTP(w, r)
	})
}

func (s *Server) modelNames() []string {
	var ns []string
	for _, m := range s.models {
		ns = append(ns, m.Name)
	}
	return ns
}

// apiError is the JSON body of every error answer.
type apiError struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	// nosniff: no browser treats the JSON as anything else, so names such as "Food & Drink" (class
	// names, errors quoting them) can be written as they are rather than as "Food \u0026 Drink".
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, field, msg string) {
	writeJSON(w, code, apiError{Error: msg, Field: field})
}

// errQueueFull and errDraining are submit's refusals.
var (
	errQueueFull = errors.New("queue full")
	errDraining  = errors.New("server shutting down")
)

// submit puts a job on the queue without waiting: a full queue is the client's signal to come back
// later, not a reason to hold its connection.
func (s *Server) submit(j *job) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.draining {
		return errDraining
	}
	s.inflight.Add(1)
	select {
	case s.q.jobs <- j:
		return nil
	default:
		s.inflight.Done()
		s.met.rejected.Inc()
		return errQueueFull
	}
}

// jobContext is the request's context with the server's timeout, canceled also when the server
// shuts down (with cause errShutdown).
func (s *Server) jobContext(r *http.Request) (context.Context, context.CancelCauseFunc) {
	ctx, cancel := context.WithCancelCause(r.Context())
	ctx, cancelT := context.WithTimeoutCause(ctx, s.opt.Timeout, &timeoutError{s.opt.Timeout})
	stopAfter := context.AfterFunc(s.base, func() { cancel(errShutdown) })
	return ctx, func(cause error) {
		stopAfter()
		cancelT()
		cancel(cause)
	}
}

// refuse answers a submit error.
func (s *Server) refuse(w http.ResponseWriter, err error) {
	retry := strconv.Itoa(s.q.retryAfter(s.nworkers))
	w.Header().Set("Retry-After", retry)
	if errors.Is(err, errDraining) {
		writeError(w, http.StatusServiceUnavailable, "", "server is shutting down")
		return
	}
	writeError(w, http.StatusTooManyRequests, "", fmt.Sprintf("the queue is full (%d jobs waiting); retry after %s s", cap(s.q.jobs), retry))
}

// timeoutError is the cause of a job context that hit the server's timeout; it is a
// context.DeadlineExceeded with a message naming the limit.
type timeoutError struct{ d time.Duration }

func (e *timeoutError) Error() string {
	return fmt.Sprintf("request timed out after %v (the server's --timeout)", e.d)
}
func (e *timeoutError) Unwrap() error { return context.DeadlineExceeded }

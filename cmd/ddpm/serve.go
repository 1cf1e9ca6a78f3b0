package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/ddpm-go/ddpm/engine"
	"github.com/ddpm-go/ddpm/generate"
	"github.com/ddpm-go/ddpm/serve"
	"github.com/ddpm-go/ddpm/tensor"
)

func init() {
	register(&command{name: "serve", summary: "serve models over HTTP: JSON API, live reverse-process stream, metrics and a web page", run: runServe})
}

// ckptList is the repeatable --ckpt flag.
type ckptList []string

func (c *ckptList) String() string     { return strings.Join(*c, ",") }
func (c *ckptList) Set(v string) error { *c = append(*c, v); return nil }

// serveSignals is the context that ends `ddpm serve`; tests replace it to stop the server without
// sending the process a signal.
var serveSignals = func() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

func runServe(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("serve", stderr)
	var ckpts ckptList
	fs.Var(&ckpts, "ckpt", "model to serve, repeatable: a run directory or weights file, optionally NAME=PATH (default: the shipped MNIST model as \"mnist\")")
	addr := fs.String("addr", "127.0.0.1:8080", "listen address (loopback by default; the server has no authentication)")
	d := serve.DefaultOptions
	maxN := fs.Int("max-n", d.MaxN, "most images per request")
	maxSteps := fs.Int("max-steps", d.MaxSteps, "most sampling steps per request")
	queue := fs.Int("queue", d.Queue, "jobs waiting for a worker; beyond it requests get 429 with Retry-After")
	// Two workers by default so the page's Compare runs both samplers at once; on a busy machine two
	// single-threaded workers also served more than one two-threaded one (docs/serve.md).
	workers := fs.Int("workers", min(2, runtime.NumCPU()), "sampling workers, each with its own copy of every model and its own engine")
	timeout := fs.Duration("timeout", d.Timeout, "per-request limit, queue wait included")
	maxBody := fs.Int64("max-body", d.MaxBody, "most bytes of a request body")
	grace := fs.Duration("grace", 30*time.Second, "on SIGTERM/SIGINT, how long in-flight work may finish before it is canceled")
	noEMA := fs.Bool("no-ema", false, "serve the raw (non-EMA) weights of runs and checkpoints")
	engName := fs.String("engine", "auto", "auto, dnnl or ref")
	precision := fs.String("precision", "auto", "auto, fp32 or bf16")
	threads := fs.Int("threads", 0, "engine threads per worker (0: all cores divided among the workers)")
	maxBatch := fs.Int("max-batch", 64, "most images per network call (bounds memory; results do not depend on it on the ref engine)")
	chunk := fs.Int("chunk", 0, "if > 0, network calls of exactly this many rows aligned to image indices, so image i of a seed does not depend on n on dnnl (costs up to chunk/n more work); 0: calls of power-of-two row counts up to --max-batch, which bounds dnnl's per-shape memory")
	quiet := fs.Bool("quiet", false, "do not log every job")
	allowedHosts := fs.String("allowed-hosts", "", "comma-separated host names (or host:port) the server also answers to besides its listen address and, on loopback, localhost; other Host headers get 403 (DNS rebinding)")
	if err := parseFlagsOneLine(fs, args, stderr); err != nil {
		return err
	}
	for _, c := range []struct {
		name string
		v    int64
	}{{"max-n", int64(*maxN)}, {"max-steps", int64(*maxSteps)}, {"queue", int64(*queue)}, {"workers", int64(*workers)}, {"max-batch", int64(*maxBatch)}} {
		if c.v < 1 {
			return fmt.Errorf("--%s %d must be >= 1", c.name, c.v)
		}
	}
	if *workers > 64 {
		return fmt.Errorf("--workers %d: at most 64", *workers)
	}
	if *timeout <= 0 || *grace < 0 {
		return fmt.Errorf("--timeout %v must be > 0 and --grace %v >= 0", *timeout, *grace)
	}
	if *maxBody < 64 {
		return fmt.Errorf("--max-body %d must be >= 64", *maxBody)
	}
	if *chunk < 0 || *threads < 0 {
		return fmt.Errorf("--chunk %d and --threads %d must be >= 0", *chunk, *threads)
	}
	hosts, err := serve.ParseHosts(*allowedHosts)
	if err != nil {
		return fmt.Errorf("--allowed-hosts: %w", err)
	}
	named, err := modelNames(ckpts)
	if err != nil {
		return err
	}
	perWorker := *threads
	if perWorker == 0 {
		perWorker = max(1, runtime.NumCPU()/(*workers))
	}

	models := make([]serve.Model, len(named))
	for i, n := range named {
		models[i].Name = n.name
	}
	var backends []tensor.Backend
	defer func() {
		for _, be := range backends {
			engine.Close(be)
		}
	}()
	for w := 0; w < *workers; w++ {
		be, err := engine.New(*engName, *precision, perWorker)
		if err != nil {
			return err
		}
		backends = append(backends, be)
		for i, n := range named {
			m, err := generate.Load(n.path, be, !*noEMA)
			if err != nil {
				return fmt.Errorf("model %s: %w", n.name, err)
			}
			m.Net.MaxBatch = *maxBatch
			models[i].Copies = append(models[i].Copies, m)
		}
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	opt := serve.Options{MaxN: *maxN, MaxSteps: *maxSteps, Queue: *queue, Timeout: *timeout, MaxBody: *maxBody, Chunk: *chunk,
		AllowedHosts: hosts, Log: logger, Engine: engine.Explain(backends[0], *precision)}
	if *quiet {
		opt.Log = nil
	}
	srv, err := serve.New(models, opt)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		srv.Shutdown(context.Background())
		return fmt.Errorf("listen %s: %w", *addr, err)
	}
	if host, _, err := net.SplitHostPort(ln.Addr().String()); err == nil {
		if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
			fmt.Fprintf(stderr, "warning: listening on %s, not loopback: anyone who can reach it can use it (no authentication); clients must use the address or a name from --allowed-hosts\n", ln.Addr())
		}
	}
	for _, m := range models {
		c := m.Copies[0]
		ch, h, w := c.Shape()
		fmt.Fprintf(stderr, "model %s: %s (%dx%dx%d, %s T=%d, %s)\n", m.Name, c.Source, ch, h, w, c.Schedule.Name, c.Schedule.T, c.Prediction)
	}
	fmt.Fprintf(stderr, "serving on http://%s (%d worker(s) on %s, queue %d) — page at /, API at /v1/samples\n", ln.Addr(), *workers, engine.Describe(backends[0]), *queue)

	// No WriteTimeout: streams last as long as their run; serve bounds each write instead.
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute}
	ctx, stop := serveSignals()
	defer stop()
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	select {
	case err := <-served:
		srv.Shutdown(context.Background())
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	fmt.Fprintf(stderr, "shutting down: finishing in-flight work (up to %v)\n", *grace)
	// The job side first: new requests get 503, running jobs finish or are canceled at the grace
	// deadline, which lets their handlers answer; then the HTTP side waits for those answers.
	graceCtx, cancel := context.WithTimeout(context.Background(), *grace)
	defer cancel()
	jobsDone := make(chan error, 1)
	go func() { jobsDone <- srv.Shutdown(graceCtx) }()
	httpCtx, cancelHTTP := context.WithTimeout(context.Background(), *grace+5*time.Second)
	defer cancelHTTP()
	httpErr := hs.Shutdown(httpCtx)
	jobErr := <-jobsDone
	if httpErr != nil {
		hs.Close()
	}
	if errors.Is(jobErr, context.DeadlineExceeded) {
		fmt.Fprintln(stderr, "stopped: in-flight work was canceled at the grace deadline")
	} else {
		fmt.Fprintln(stderr, "stopped")
	}
	return nil
}

type namedCkpt struct{ name, path string }

// modelNames turns --ckpt values into unique API names: NAME=PATH as given, else the file name
// without .safetensors or the run directory's name; no --ckpt is the shipped model, "mnist".
func modelNames(ckpts []string) ([]namedCkpt, error) {
	if len(ckpts) == 0 {
		return []namedCkpt{{"mnist", ""}}, nil
	}
	var out []namedCkpt
	seen := map[string]string{}
	for _, c := range ckpts {
		name, path, ok := strings.Cut(c, "=")
		if !ok {
			path = c
			name = strings.TrimSuffix(filepath.Base(filepath.Clean(c)), ".safetensors")
		}
		if path == "" || name == "" || strings.ContainsAny(name, " /?&#") {
			return nil, fmt.Errorf("--ckpt %q: want PATH or NAME=PATH with a name of letters, digits, '-', '_' or '.'", c)
		}
		if prev, dup := seen[name]; dup {
			return nil, fmt.Errorf("--ckpt: %s and %s are both named %q; name them with NAME=PATH", prev, path, name)
		}
		seen[name] = path
		out = append(out, namedCkpt{name, path})
	}
	return out, nil
}

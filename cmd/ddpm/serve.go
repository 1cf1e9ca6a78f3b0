package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/ddpm-go/ddpm/engine"
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

// serveFlags are the flags of `ddpm serve`.
type serveFlags struct {
	ckpts              ckptList
	addr, allowedHosts string
	opt                serve.Options
	workers, maxBatch  int
	grace              time.Duration
	quiet              bool
	eng                engineFlags
}

func parseServeFlags(args []string, stderr io.Writer) (*serveFlags, error) {
	fs := newFlagSet("serve", stderr)
	f := &serveFlags{opt: serve.DefaultOptions}
	o := &f.opt
	fs.Var(&f.ckpts, "ckpt", "model to serve, repeatable: a run directory or weights file, optionally NAME=PATH (default: the shipped MNIST models, \"mnist\" and the 4-step instant option \"mnist-instant\")")
	fs.StringVar(&f.addr, "addr", "127.0.0.1:8080", "listen address (loopback by default; the server has no authentication)")
	fs.IntVar(&o.MaxN, "max-n", o.MaxN, "most images per request")
	fs.IntVar(&o.MaxSteps, "max-steps", o.MaxSteps, "most sampling steps per request")
	fs.IntVar(&o.Queue, "queue", o.Queue, "jobs waiting for a worker; beyond it requests get 429 with Retry-After")
	// Two workers by default so the page's Compare runs both samplers at once; on a busy machine two
	// single-threaded workers also served more than one two-threaded one (docs/serve.md).
	fs.IntVar(&f.workers, "workers", min(2, runtime.NumCPU()), "sampling workers, each with its own copy of every model and its own engine")
	fs.DurationVar(&o.Timeout, "timeout", o.Timeout, "per-request limit, queue wait included")
	fs.Int64Var(&o.MaxBody, "max-body", o.MaxBody, "most bytes of a request body")
	fs.DurationVar(&f.grace, "grace", 30*time.Second, "on SIGTERM/SIGINT, how long in-flight work may finish before it is canceled")
	addEngineFlags(fs, &f.eng, engineOpts{noEMA: true, noEMAHelp: "serve the raw (non-EMA) weights of runs and checkpoints",
		precisionHelp: "auto, fp32 or bf16", threadsHelp: "engine threads per worker (0: all cores divided among the workers)"})
	fs.IntVar(&f.maxBatch, "max-batch", 64, "most images per network call (bounds memory; results do not depend on it on the ref engine)")
	fs.IntVar(&o.Chunk, "chunk", 0, "if > 0, network calls of exactly this many rows aligned to image indices, so image i of a seed does not depend on n on dnnl (costs up to chunk/n more work); 0: calls of power-of-two row counts up to --max-batch, which bounds dnnl's per-shape memory")
	fs.BoolVar(&f.quiet, "quiet", false, "do not log every job")
	fs.StringVar(&f.allowedHosts, "allowed-hosts", "", "comma-separated host names (or host:port) the server also answers to besides its listen address and, on loopback, localhost; other Host headers get 403 (DNS rebinding)")
	if err := parseFlagsOneLine(fs, args, stderr); err != nil {
		return nil, err
	}
	if err := atLeast(fs, map[string]int64{"max-n": 1, "max-steps": 1, "queue": 1, "workers": 1, "max-batch": 1, "max-body": 64, "chunk": 0, "threads": 0}); err != nil {
		return nil, err
	}
	switch {
	case f.workers > 64:
		return nil, fmt.Errorf("--workers %d: at most 64", f.workers)
	case o.Timeout <= 0 || f.grace < 0:
		return nil, fmt.Errorf("--timeout %v must be > 0 and --grace %v >= 0", o.Timeout, f.grace)
	}
	var err error
	if o.AllowedHosts, err = serve.ParseHosts(f.allowedHosts); err != nil {
		return nil, fmt.Errorf("--allowed-hosts: %w", err)
	}
	return f, nil
}

func runServe(args []string, stdout, stderr io.Writer) error {
	f, err := parseServeFlags(args, stderr)
	if err != nil {
		return err
	}
	paths, err := serve.ParseModels(f.ckpts)
	if err != nil {
		return fmt.Errorf("--ckpt %w", err)
	}
	threads := f.eng.threads
	if threads == 0 {
		threads = max(1, runtime.NumCPU()/f.workers)
	}
	models, backends, err := serve.LoadModels(paths, f.workers, func() (tensor.Backend, error) { return f.eng.backend(threads) }, !f.eng.noEMA, f.maxBatch)
	defer func() {
		for _, be := range backends {
			engine.Close(be)
		}
	}()
	if err != nil {
		return err
	}
	f.opt.Engine = engine.Explain(backends[0], f.eng.precision)
	if !f.quiet {
		f.opt.Log = slog.New(slog.NewTextHandler(stderr, nil))
	}
	srv, err := serve.New(models, f.opt)
	if err != nil {
		return err
	}
	ln, err := serve.Listen(f.addr, stderr)
	if err != nil {
		srv.Shutdown(context.Background())
		return err
	}
	serve.Banner(stderr, models, ln.Addr(), f.workers, engine.Describe(backends[0]), f.opt.Queue)
	ctx, stop := serveSignals()
	defer stop()
	return serve.Run(ctx, srv, ln, f.grace, stderr)
}

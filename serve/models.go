package serve

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/ddpm-go/ddpm/generate"
	"github.com/ddpm-go/ddpm/tensor"
)

// ModelPath is a model to serve: its name in the API and the run directory or weights file it is
// loaded from ("" for the model compiled into the binary under that name, generate.ShippedNames).
type ModelPath struct{ Name, Path string }

// ParseModels turns model arguments into unique API names: NAME=PATH as given, else the file name
// without .safetensors or the run directory's name; none are the shipped models, "mnist" and the
// instant option "mnist-instant" (a 4-step distilled student).
func ParseModels(args []string) ([]ModelPath, error) {
	if len(args) == 0 {
		var out []ModelPath
		for _, name := range generate.ShippedNames() {
			out = append(out, ModelPath{name, ""})
		}
		return out, nil
	}
	var out []ModelPath
	seen := map[string]string{}
	for _, c := range args {
		name, path, ok := strings.Cut(c, "=")
		if !ok {
			path = c
			name = strings.TrimSuffix(filepath.Base(filepath.Clean(c)), ".safetensors")
		}
		if path == "" || name == "" || strings.ContainsAny(name, " /?&#") {
			return nil, fmt.Errorf("%q: want PATH or NAME=PATH with a name of letters, digits, '-', '_' or '.'", c)
		}
		if prev, dup := seen[name]; dup {
			return nil, fmt.Errorf("%s and %s are both named %q; name them with NAME=PATH", prev, path, name)
		}
		seen[name] = path
		out = append(out, ModelPath{name, path})
	}
	return out, nil
}

// LoadModels starts one backend per worker with newBackend, so workers share no engine state, and
// loads every model on each, with network calls of at most maxBatch rows. The caller closes the
// backends returned, also on error.
func LoadModels(paths []ModelPath, workers int, newBackend func() (tensor.Backend, error), ema bool, maxBatch int) ([]Model, []tensor.Backend, error) {
	var backends []tensor.Backend
	models := make([]Model, len(paths))
	for range workers {
		be, err := newBackend()
		if err != nil {
			return nil, backends, err
		}
		backends = append(backends, be)
		for i, p := range paths {
			var m *generate.Model
			if p.Path == "" {
				m, err = generate.LoadShippedNamed(p.Name, be)
			} else {
				m, err = generate.Load(p.Path, be, ema)
			}
			if err != nil {
				return nil, backends, fmt.Errorf("model %s: %w", p.Name, err)
			}
			m.Net.MaxBatch = maxBatch
			models[i].Name = p.Name
			models[i].Copies = append(models[i].Copies, m)
		}
	}
	return models, backends, nil
}

// Listen listens on addr, warning on log when that is not a loopback address: the server has no
// authentication, so anyone who can reach it can use it.
func Listen(addr string, log io.Writer) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	if host, _, err := net.SplitHostPort(ln.Addr().String()); err == nil {
		if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
			fmt.Fprintf(log, "warning: listening on %s, not loopback: anyone who can reach it can use it (no authentication); clients must use the address or a name from --allowed-hosts\n", ln.Addr())
		}
	}
	return ln, nil
}

// Run serves s on ln until ctx ends, then shuts down gracefully, reporting to log: the job side
// first (new requests get 503, running jobs finish or are canceled at the grace deadline, which
// lets their handlers answer), then the HTTP side waits for those answers. It returns nil after a
// shutdown and the listener's error if serving fails.
func Run(ctx context.Context, s *Server, ln net.Listener, grace time.Duration, log io.Writer) error {
	// No WriteTimeout: streams last as long as their run; the handlers bound each write instead.
	hs := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	select {
	case err := <-served:
		s.Shutdown(context.Background())
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	fmt.Fprintf(log, "shutting down: finishing in-flight work (up to %v)\n", grace)
	graceCtx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	jobsDone := make(chan error, 1)
	go func() { jobsDone <- s.Shutdown(graceCtx) }()
	httpCtx, cancelHTTP := context.WithTimeout(context.Background(), grace+5*time.Second)
	defer cancelHTTP()
	httpErr := hs.Shutdown(httpCtx)
	jobErr := <-jobsDone
	if httpErr != nil {
		hs.Close()
	}
	if errors.Is(jobErr, context.DeadlineExceeded) {
		fmt.Fprintln(log, "stopped: in-flight work was canceled at the grace deadline")
	} else {
		fmt.Fprintln(log, "stopped")
	}
	return nil
}

// Banner writes the lines `ddpm serve` starts with: each model's source and setup, and where the
// page and the API answer.
func Banner(w io.Writer, models []Model, addr net.Addr, workers int, engineDesc string, queue int) {
	for _, m := range models {
		c := m.Copies[0]
		ch, h, wd := c.Shape()
		fmt.Fprintf(w, "model %s: %s (%dx%dx%d, %s T=%d, %s)\n", m.Name, c.Source, ch, h, wd, c.Schedule.Name, c.Schedule.T, c.Prediction)
	}
	fmt.Fprintf(w, "serving on http://%s (%d worker(s) on %s, queue %d) — page at /, API at /v1/samples\n", addr, workers, engineDesc, queue)
}

// Command loadtest drives a running `ddpm serve` on the loopback interface with many concurrent
// clients for a bounded time and reports throughput, latency percentiles, status codes and the
// server's resident memory. It exits non-zero if the server answered any request with a 5xx or
// dropped a connection: under overload the server must say 429, not fail.
//
//	go run ./loadtest -write-model /tmp/tiny.safetensors      # a small random UNet to serve
//	go run ./loadtest -write-model /tmp/cond.safetensors -classes a,b,c  # class-conditional
//	go run ./loadtest -write-model /tmp/fast.safetensors -distilled 4    # as a 4-step distilled student
//	ddpm serve --ckpt /tmp/tiny.safetensors --queue 16 &
//	go run ./loadtest -url http://127.0.0.1:8080 -clients 32 -duration 20s -pid $!
//
// Most clients POST /v1/samples in a loop (a new seed each time; after a 429 they wait -backoff
// and try again, so the queue stays full); -streamers clients read GET /v1/samples/stream, and
// every other stream is abandoned after a few frames to exercise cancellation under load.
//
// First, with -sweep (the default), it asks for one one-step sample of every n from 1 to the
// server's max-n: each new batch size used to leave oneDNN primitives and buffers behind, so this is
// what grew the server's memory without bound. The server's resident memory (from /proc with -pid,
// else its /metrics) is reported after the sweep and at its peak, with the engine caches /metrics
// reports; -max-rss-mib makes a peak above it a failure.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ddpm-go/ddpm/checkpoint"
	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/generate"
	"github.com/ddpm-go/ddpm/nn"
	"github.com/ddpm-go/ddpm/tensor"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(2)
	}
}

type config struct {
	url       string
	clients   int
	streamers int
	duration  time.Duration
	body      string
	backoff   time.Duration
	pid       int
	jsonOut   string
	sweep     bool
	maxRSS    float64 // MiB; 0: no bound
}

func run(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("loadtest", flag.ContinueOnError)
	var c config
	fs.StringVar(&c.url, "url", "http://127.0.0.1:8080", "server base URL; must be a loopback address")
	fs.IntVar(&c.clients, "clients", 32, "concurrent clients (1..512)")
	fs.IntVar(&c.streamers, "streamers", 2, "of the clients, how many use the SSE stream instead of POST")
	fs.DurationVar(&c.duration, "duration", 20*time.Second, "how long to run (at most 10m)")
	fs.StringVar(&c.body, "body", `{"sampler":"ddim","steps":10,"n":4}`, "POST body; each request gets its own seed")
	fs.DurationVar(&c.backoff, "backoff", 50*time.Millisecond, "wait after a 429 before retrying (the server's Retry-After is reported, not obeyed, to keep the queue full)")
	fs.IntVar(&c.pid, "pid", 0, "server process id, to sample its resident memory from /proc")
	fs.StringVar(&c.jsonOut, "json", "", "also write the summary as JSON here")
	fs.BoolVar(&c.sweep, "sweep", true, "before the load, one one-step request for every n from 1 to the server's max-n (every batch size)")
	fs.Float64Var(&c.maxRSS, "max-rss-mib", 0, "fail if the server's resident memory exceeds this many MiB (0: report only)")
	writeModel := fs.String("write-model", "", "write a random UNet (28x28x1, T=1000) to this path and exit")
	modelConfig := fs.String("model-config", "tiny", "the UNet of -write-model: tiny (26K parameters) or a built-in config such as unet-s")
	classes := fs.String("classes", "", "with -write-model: make the UNet class-conditional with these comma-separated class names")
	distilled := fs.Int("distilled", 0, "with -write-model: label the UNet a distilled student of this many steps (a power of two; its grid as ddpm distill makes it from 256 steps)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *writeModel != "" {
		return writeModelFile(*writeModel, *modelConfig, *classes, *distilled)
	}
	if *distilled != 0 {
		return errors.New("-distilled labels the model -write-model writes; give -write-model PATH")
	}
	if c.clients < 1 || c.clients > 512 || c.streamers < 0 || c.streamers > c.clients {
		return fmt.Errorf("-clients %d must be in [1, 512] and -streamers %d in [0, clients]", c.clients, c.streamers)
	}
	if c.duration <= 0 || c.duration > 10*time.Minute {
		return fmt.Errorf("-duration %v must be in (0, 10m]", c.duration)
	}
	if c.maxRSS < 0 {
		return fmt.Errorf("-max-rss-mib %v must be >= 0", c.maxRSS)
	}
	if err := checkLoopback(c.url); err != nil {
		return err
	}
	var probe map[string]any
	if err := json.Unmarshal([]byte(c.body), &probe); err != nil {
		return fmt.Errorf("-body: %w", err)
	}
	sum, err := load(c)
	if err != nil {
		return err
	}
	sum.print(stdout)
	if c.jsonOut != "" {
		b, _ := json.MarshalIndent(sum, "", "  ")
		if err := os.WriteFile(c.jsonOut, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	if sum.Status5xx > 0 || sum.Errors > 0 {
		return fmt.Errorf("%d 5xx answers and %d transport errors", sum.Status5xx, sum.Errors)
	}
	if c.maxRSS > 0 && sum.RSSMaxMiB > c.maxRSS {
		return fmt.Errorf("server resident memory peaked at %.1f MiB, above -max-rss-mib %.1f", sum.RSSMaxMiB, c.maxRSS)
	}
	if sum.OK == 0 {
		return errors.New("no request succeeded")
	}
	return nil
}

// checkLoopback refuses any target but this machine: a load test is not to be pointed elsewhere.
func checkLoopback(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return fmt.Errorf("-url %q: want http://HOST:PORT", raw)
	}
	host := u.Hostname()
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("-url %q: only loopback addresses (127.0.0.0/8, ::1, localhost) are allowed", raw)
	}
	return nil
}

// Summary is the load test's result.
type Summary struct {
	Clients, Streamers int
	Seconds            float64
	Requests           int            // answered POSTs and streams, any status
	OK                 int            // POSTs answered 200
	Images             int            // images in those answers
	Status             map[string]int // answers by status code
	Status429          int
	Status5xx          int
	Errors             int // transport errors (refused or reset connections), excluding our own aborts
	StreamsDone        int // streams read to their "done" event
	StreamsAbandoned   int // streams the client closed early on purpose
	ThroughputRPS      float64
	ImagesPerSecond    float64
	P50ms, P90ms       float64 // latency of 200 POSTs, queue wait included
	P99ms, Maxms       float64
	RetryAfterSeconds  []int   // distinct Retry-After values seen
	RSSStartMiB        float64 // server resident memory (from /proc with -pid, else /metrics)
	RSSMaxMiB          float64
	RSSEndMiB          float64
	SweepMaxN          int      // the sweep asked for every n in 1..SweepMaxN (0: no sweep)
	RSSAfterSweepMiB   float64  // server resident memory right after the sweep
	CacheMiB           float64  // the engines' caches at the end (/metrics ddpm_backend_cache_bytes, all workers)
	ConvPrimitives     int      // at the end (/metrics ddpm_backend_conv_primitives, all workers)
	FirstErrors        []string `json:",omitempty"`
}

func (s *Summary) print(w io.Writer) {
	fmt.Fprintf(w, "%d clients (%d streaming) for %.1f s: %d answers, %d OK POSTs (%.1f req/s, %.1f images/s)\n",
		s.Clients, s.Streamers, s.Seconds, s.Requests, s.OK, s.ThroughputRPS, s.ImagesPerSecond)
	fmt.Fprintf(w, "latency of OK POSTs (queue wait included): p50 %.1f ms, p90 %.1f ms, p99 %.1f ms, max %.1f ms\n", s.P50ms, s.P90ms, s.P99ms, s.Maxms)
	codes := make([]string, 0, len(s.Status))
	for c := range s.Status {
		codes = append(codes, c)
	}
	slices.Sort(codes)
	var parts []string
	for _, c := range codes {
		parts = append(parts, fmt.Sprintf("%s: %d", c, s.Status[c]))
	}
	fmt.Fprintf(w, "status codes: %s; 429s %d (Retry-After values %v); 5xx %d; transport errors %d\n", strings.Join(parts, ", "), s.Status429, s.RetryAfterSeconds, s.Status5xx, s.Errors)
	fmt.Fprintf(w, "streams: %d read to the end, %d abandoned on purpose\n", s.StreamsDone, s.StreamsAbandoned)
	if s.SweepMaxN > 0 {
		fmt.Fprintf(w, "sweep: one one-step request for every n in 1..%d first; server RSS %.1f MiB after it\n", s.SweepMaxN, s.RSSAfterSweepMiB)
	}
	if s.RSSMaxMiB > 0 {
		fmt.Fprintf(w, "server RSS: %.1f MiB at start, max %.1f MiB, %.1f MiB at end; engine caches %.1f MiB in %d conv primitives\n",
			s.RSSStartMiB, s.RSSMaxMiB, s.RSSEndMiB, s.CacheMiB, s.ConvPrimitives)
	}
	for _, e := range s.FirstErrors {
		fmt.Fprintln(w, "error:", e)
	}
}

// serverStats is what the server's /metrics says about its memory.
type serverStats struct {
	rssMiB, cacheMiB float64
	convs            int
}

// scrape reads the server's resident memory and engine caches from its /metrics (summed over
// workers); zero values where a series is missing.
func scrape(client *http.Client, base string) serverStats {
	var st serverStats
	resp, err := client.Get(base + "/metrics")
	if err != nil {
		return st
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if !ok || strings.HasPrefix(name, "#") {
			continue
		}
		v, err := strconv.ParseFloat(val, 64)
		if err != nil {
			continue
		}
		name, _, _ = strings.Cut(name, "{")
		switch name {
		case "process_resident_memory_bytes":
			st.rssMiB = v / (1 << 20)
		case "ddpm_backend_cache_bytes":
			st.cacheMiB += v / (1 << 20)
		case "ddpm_backend_conv_primitives":
			st.convs += int(v)
		}
	}
	return st
}

// rss is the server's resident memory in MiB: from /proc with a pid, else from its /metrics.
func rss(client *http.Client, base string, pid int) float64 {
	if pid > 0 {
		return rssMiB(pid)
	}
	return scrape(client, base).rssMiB
}

// sweep asks for one one-step sample of every n in 1..maxN (the request body otherwise as given),
// so the server meets every batch size before the load.
func sweep(ctx context.Context, client *http.Client, base, body string, maxN int) error {
	var m map[string]any
	json.Unmarshal([]byte(body), &m)
	for n := 1; n <= maxN; n++ {
		m["n"], m["steps"], m["seed"] = n, 1, n
		b, _ := json.Marshal(m)
		req, _ := http.NewRequestWithContext(ctx, "POST", base+"/v1/samples", bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return fmt.Errorf("sweep n=%d: %w", n, err)
		}
		msg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("sweep n=%d: status %d: %s", n, resp.StatusCode, bytes.TrimSpace(msg))
		}
	}
	return nil
}

// maxN is the server's max-n from /v1/models.
func maxN(client *http.Client, base string) (int, error) {
	resp, err := client.Get(base + "/v1/models")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var mr struct {
		Limits struct {
			MaxN int `json:"max_n"`
		} `json:"limits"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&mr); err != nil || mr.Limits.MaxN < 1 {
		return 0, fmt.Errorf("GET /v1/models: no max_n (%v)", err)
	}
	return mr.Limits.MaxN, nil
}

// rssMiB reads a process's resident set size from /proc.
func rssMiB(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

type tally struct {
	mu        sync.Mutex
	s         Summary
	latencies []float64
	retry     map[int]bool
}

func (t *tally) answer(code int, lat time.Duration, images int, retryAfter string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.s.Requests++
	t.s.Status[strconv.Itoa(code)]++
	switch {
	case code == 200 && images > 0:
		t.s.OK++
		t.s.Images += images
		t.latencies = append(t.latencies, float64(lat.Microseconds())/1000)
	case code == 429:
		t.s.Status429++
		if n, err := strconv.Atoi(retryAfter); err == nil {
			t.retry[n] = true
		}
	case code >= 500:
		t.s.Status5xx++
	}
}

func (t *tally) fail(err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.s.Errors++
	if len(t.s.FirstErrors) < 5 {
		t.s.FirstErrors = append(t.s.FirstErrors, err.Error())
	}
}

func load(c config) (*Summary, error) {
	base := strings.TrimSuffix(c.url, "/")
	var n int
	var probe map[string]any
	json.Unmarshal([]byte(c.body), &probe)
	if v, ok := probe["n"].(float64); ok {
		n = int(v)
	}
	if n == 0 {
		n = 16
	}
	if r, err := http.Get(base + "/healthz"); err != nil {
		return nil, fmt.Errorf("server not reachable: %w", err)
	} else {
		r.Body.Close()
	}
	t := &tally{retry: map[int]bool{}}
	t.s.Status = map[string]int{}
	t.s.Clients, t.s.Streamers = c.clients, c.streamers
	tr := &http.Transport{MaxIdleConnsPerHost: c.clients, MaxConnsPerHost: c.clients + 4}
	client := &http.Client{Transport: tr}
	t.s.RSSStartMiB = rss(client, base, c.pid)
	if c.sweep {
		mn, err := maxN(client, base)
		if err != nil {
			return nil, err
		}
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		err = sweep(sctx, client, base, c.body, mn)
		cancel()
		if err != nil {
			return nil, err
		}
		t.s.SweepMaxN, t.s.RSSAfterSweepMiB = mn, rss(client, base, c.pid)
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.duration)
	defer cancel()
	var wg sync.WaitGroup
	var seed sync.Mutex
	next := uint64(1)
	nextSeed := func() uint64 {
		seed.Lock()
		defer seed.Unlock()
		next++
		return next
	}
	start := time.Now()
	for i := 0; i < c.clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i < c.streamers {
				streamer(ctx, client, base, i, nextSeed, t, c.backoff)
				return
			}
			poster(ctx, client, base, c.body, n, nextSeed, t, c.backoff)
		}()
	}
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				r := rss(client, base, c.pid)
				t.mu.Lock()
				t.s.RSSMaxMiB = max(t.s.RSSMaxMiB, r)
				t.mu.Unlock()
			}
		}
	}()
	wg.Wait()
	seconds := time.Since(start).Seconds()
	cancel()
	<-sampled
	s := t.s
	s.Seconds = seconds
	time.Sleep(500 * time.Millisecond)
	end := scrape(client, base)
	s.RSSEndMiB = rss(client, base, c.pid)
	s.RSSMaxMiB = max(s.RSSMaxMiB, s.RSSEndMiB, s.RSSStartMiB, s.RSSAfterSweepMiB)
	s.CacheMiB, s.ConvPrimitives = end.cacheMiB, end.convs
	s.ThroughputRPS = float64(s.OK) / s.Seconds
	s.ImagesPerSecond = float64(s.Images) / s.Seconds
	slices.Sort(t.latencies)
	q := func(p float64) float64 {
		if len(t.latencies) == 0 {
			return 0
		}
		return t.latencies[min(len(t.latencies)-1, int(p*float64(len(t.latencies))))]
	}
	s.P50ms, s.P90ms, s.P99ms = q(0.50), q(0.90), q(0.99)
	if len(t.latencies) > 0 {
		s.Maxms = t.latencies[len(t.latencies)-1]
	}
	for r := range t.retry {
		s.RetryAfterSeconds = append(s.RetryAfterSeconds, r)
	}
	slices.Sort(s.RetryAfterSeconds)
	return &s, nil
}

// poster POSTs until ctx ends. A request cut off by the end of the test is not counted.
func poster(ctx context.Context, client *http.Client, base, body string, n int, nextSeed func() uint64, t *tally, backoff time.Duration) {
	var m map[string]any
	json.Unmarshal([]byte(body), &m)
	for ctx.Err() == nil {
		m["seed"] = nextSeed()
		b, _ := json.Marshal(m)
		req, _ := http.NewRequestWithContext(ctx, "POST", base+"/v1/samples", bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		t0 := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			if ctx.Err() == nil {
				t.fail(err)
				sleep(ctx, backoff)
			}
			continue
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil {
			if ctx.Err() == nil {
				t.fail(err)
			}
			continue
		}
		imgs := 0
		if resp.StatusCode == 200 {
			imgs = n
		}
		t.answer(resp.StatusCode, time.Since(t0), imgs, resp.Header.Get("Retry-After"))
		if resp.StatusCode != 200 {
			sleep(ctx, backoff+time.Duration(rand.Int64N(int64(backoff)+1)))
		}
	}
}

// streamer reads streams until ctx ends; every second stream it abandons after three frames.
func streamer(ctx context.Context, client *http.Client, base string, id int, nextSeed func() uint64, t *tally, backoff time.Duration) {
	for k := 0; ctx.Err() == nil; k++ {
		abandon := (id+k)%2 == 1
		sctx, cancel := context.WithCancel(ctx)
		u := fmt.Sprintf("%s/v1/samples/stream?sampler=ddim&steps=20&every=1&n=4&seed=%d", base, nextSeed())
		req, _ := http.NewRequestWithContext(sctx, "GET", u, nil)
		resp, err := client.Do(req)
		if err != nil {
			cancel()
			if ctx.Err() == nil {
				t.fail(err)
				sleep(ctx, backoff)
			}
			continue
		}
		if resp.StatusCode != 200 {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			cancel()
			t.answer(resp.StatusCode, 0, 0, resp.Header.Get("Retry-After"))
			sleep(ctx, backoff)
			continue
		}
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		frames, done, failed := 0, false, false
		for sc.Scan() {
			line := sc.Text()
			if line == "event: step" {
				frames++
				if abandon && frames == 3 {
					break
				}
			}
			if line == "event: done" {
				done = true
			}
			if line == "event: error" {
				failed = true
			}
		}
		resp.Body.Close()
		cancel()
		switch {
		case abandon && frames == 3:
			t.mu.Lock()
			t.s.StreamsAbandoned++
			t.mu.Unlock()
			t.answer(200, 0, 0, "")
		case done:
			t.mu.Lock()
			t.s.StreamsDone++
			t.mu.Unlock()
			t.answer(200, 0, 0, "")
		case ctx.Err() != nil:
			// cut off by the end of the test
		case failed:
			t.fail(fmt.Errorf("stream ended with an error event"))
		default:
			t.fail(fmt.Errorf("stream ended after %d frames without done: %v", frames, sc.Err()))
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// writeModelFile saves a randomly initialised UNet with the sampling keys `ddpm serve` reads: enough
// to load the server with real network work, without a trained model. With classes (comma-separated
// names) the UNet is class-conditional and the names go into its metadata, which is all the page's
// class controls need to be tested. With distilled > 0 it carries the metadata of a progressively
// distilled student of that many steps (see studentMeta), so the server's and the page's handling
// of a student can be tested without running ddpm distill.
func writeModelFile(path, config, classes string, distilled int) error {
	cfg := nn.Config{Name: "tiny28", ImageSize: 28, InChannels: 1, OutChannels: 1, BaseChannels: 8,
		ChannelMult: []int{1, 2}, ResBlocks: 1, AttnResolutions: []int{}, Heads: 1, TimeEmbedDim: 32, SinusoidalDim: 16, Groups: 4}
	if config != "tiny" {
		var err error
		if cfg, err = nn.Named(config); err != nil {
			return err
		}
	}
	meta := map[string]string{checkpoint.MetaSchedule: "linear", checkpoint.MetaTimesteps: "1000", checkpoint.MetaZeroSNR: "false", checkpoint.MetaPrediction: "eps"}
	if classes != "" {
		names := strings.Split(classes, ",")
		b, _ := json.Marshal(names)
		meta[checkpoint.MetaClasses] = string(b)
		cfg.NumClasses = len(names)
		cfg.Name += "-cond"
	}
	if distilled != 0 {
		if err := studentMeta(meta, distilled, classes != ""); err != nil {
			return err
		}
		cfg.Name += fmt.Sprintf("-distilled%d", distilled)
	}
	u, err := nn.New(cfg, tensor.NewReference(1), 1)
	if err != nil {
		return err
	}
	if dir := filepath.Dir(path); dir != "" {
		os.MkdirAll(dir, 0o755)
	}
	if err := checkpoint.SaveModel(path, u, meta); err != nil {
		return err
	}
	fmt.Printf("wrote %s (%s, %d parameters)\n", path, cfg.Name, u.NumParams())
	return nil
}

// studentFrom is the teacher's step count the grid of -distilled is derived from: ddpm distill's
// default --from, so the file looks like a student of the default distillation.
const studentFrom = 256

// studentMeta adds to meta (a T = 1000 model's) what ddpm distill writes into a student of steps
// steps: v prediction, the step count and the nested grid, computed by diffusion.NestedGrid rather than
// spelled out here so that the e2e test exercises the same grid a real student has. Steps above
// studentFrom (512) get the linspace grid of that many steps, the grid a distillation from 512
// would start at, since no default distillation reaches them.
func studentMeta(meta map[string]string, steps int, cond bool) error {
	T, err := strconv.Atoi(meta[checkpoint.MetaTimesteps])
	if err != nil {
		return err
	}
	if !diffusion.IsPow2(steps) || steps > T {
		return fmt.Errorf("-distilled %d must be a power of two in [1, %d] (a student's steps, e.g. 4)", steps, T)
	}
	grid, err := diffusion.NestedGrid(T, max(studentFrom, steps), steps)
	if err != nil {
		return fmt.Errorf("-distilled %d: %w", steps, err)
	}
	g, _ := json.Marshal(grid)
	meta[checkpoint.MetaDistilledSteps], meta[checkpoint.MetaDistilledTimesteps] = strconv.Itoa(steps), string(g)
	meta[checkpoint.MetaPrediction] = diffusion.V.String()
	if cond {
		// A conditional student was distilled from its teacher's guided prediction at one scale.
		meta[checkpoint.MetaDistilledGuidance] = strconv.FormatFloat(generate.DefaultGuidance, 'g', -1, 64)
	}
	return nil
}

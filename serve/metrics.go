package serve

import (
	"net/http"
	"strconv"
	"time"

	"github.com/ddpm-go/ddpm/generate"
	"github.com/ddpm-go/ddpm/tensor"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the server's Prometheus series. Each Server has its own registry, so tests (and
// several servers in one process) do not share counters.
type metrics struct {
	reg        *prometheus.Registry
	requests   *prometheus.CounterVec   // handler, code
	latency    *prometheus.HistogramVec // handler
	images     *prometheus.CounterVec   // model, sampler
	steps      prometheus.Counter
	running    prometheus.Gauge
	rejected   prometheus.Counter
	jobs       *prometheus.CounterVec // outcome: ok, canceled, timeout, error
	jobSeconds prometheus.Histogram
}

// newMetrics registers the series; queueDepth is read at scrape time, so it is never stale.
func newMetrics(queueDepth func() float64) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ddpm_http_requests_total", Help: "HTTP requests by handler and status code.",
		}, []string{"handler", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "ddpm_http_request_duration_seconds", Help: "Time from request to the last byte of the response (streams included).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 14),
		}, []string{"handler"}),
		images: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ddpm_images_generated_total", Help: "Images of finished sampling jobs.",
		}, []string{"model", "sampler"}),
		steps: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ddpm_sampler_steps_total", Help: "Reverse steps run by the workers (one network call each), finished or not.",
		}),
		running: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ddpm_jobs_running", Help: "Jobs a worker is sampling now.",
		}),
		rejected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ddpm_queue_rejected_total", Help: "Requests answered 429 because the queue was full.",
		}),
		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ddpm_jobs_total", Help: "Sampling jobs by outcome (ok, canceled by the client or shutdown, timeout, error).",
		}, []string{"outcome"}),
		jobSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "ddpm_job_duration_seconds", Help: "Worker time per job, queue wait excluded.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 14),
		}),
	}
	m.reg.MustRegister(m.requests, m.latency, m.images, m.steps, m.running,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ddpm_queue_depth", Help: "Jobs waiting for a worker."}, queueDepth), m.rejected, m.jobs, m.jobSeconds,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// cacheStater is a backend that reports what it keeps between calls (tensor/dnnl's Backend).
type cacheStater interface {
	CacheStats() (convs, weightBytes, pooledBytes int)
}

// backendStats registers, for worker w, the gauges of what its engines keep between jobs: the
// convolution primitives and the bytes of reordered weights and pooled buffers, summed over the
// distinct backends of its models (0 on the reference engine, which keeps no per-shape state).
// They are read at scrape time; a fixed set of batch shapes keeps them bounded.
func (m *metrics) backendStats(w int, models []*generate.Model) {
	var bes []cacheStater
	seen := map[tensor.Backend]bool{}
	for _, md := range models {
		be := md.Net.Backend()
		if cs, ok := be.(cacheStater); ok && !seen[be] {
			seen[be] = true
			bes = append(bes, cs)
		}
	}
	stat := func(pick func(convs, weights, pooled int) int) func() float64 {
		return func() float64 {
			sum := 0
			for _, be := range bes {
				sum += pick(be.CacheStats())
			}
			return float64(sum)
		}
	}
	worker := strconv.Itoa(w)
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ddpm_backend_conv_primitives",
			Help:        "Convolution primitives the worker's engine keeps (one per layer and batch shape).",
			ConstLabels: prometheus.Labels{"worker": worker}}, stat(func(c, _, _ int) int { return c })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ddpm_backend_cache_bytes",
			Help:        "Bytes the worker's engine keeps between jobs: weights reordered per primitive, and activation buffers pooled for reuse.",
			ConstLabels: prometheus.Labels{"worker": worker, "kind": "weights"}}, stat(func(_, w, _ int) int { return w })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ddpm_backend_cache_bytes",
			Help:        "Bytes the worker's engine keeps between jobs: weights reordered per primitive, and activation buffers pooled for reuse.",
			ConstLabels: prometheus.Labels{"worker": worker, "kind": "pool"}}, stat(func(_, _, p int) int { return p })),
	)
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// statusWriter records the status code. Unwrap lets http.ResponseController reach the underlying
// writer's Flush, which the event stream needs.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// instrument counts and times the requests of one handler.
func (m *metrics) instrument(name string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		h.ServeHTTP(sw, r)
		if sw.code == 0 {
			sw.code = http.StatusOK
		}
		m.requests.WithLabelValues(name, strconv.Itoa(sw.code)).Inc()
		m.latency.WithLabelValues(name).Observe(time.Since(start).Seconds())
	})
}

package serve

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/generate"
)

// job is one sampling request on its way through the queue. The worker always sends exactly one
// result on done (buffered), so it never waits for the handler.
type job struct {
	ctx   context.Context
	plan  plan
	step  func(diffusion.Step) error // nil unless streaming; called on the worker's goroutine
	start func()                     // called when a worker takes the job (may be nil)
	done  chan result
}

type result struct {
	x   []float64 // N*dim values in [-1, 1] (unclamped)
	dur time.Duration
	err error
}

// errShutdown is the cause of jobs canceled because the server stops.
var errShutdown = errors.New("server shutting down")

// queue hands jobs to the workers and keeps a running mean of job time for Retry-After.
type queue struct {
	jobs chan *job
	mu   sync.Mutex
	mean time.Duration // exponentially weighted mean of recent job times
}

func (q *queue) observe(d time.Duration) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.mean == 0 {
		q.mean = d
		return
	}
	q.mean = (q.mean*7 + d) / 8
}

// retryAfter is how many seconds a rejected client should wait: the time to drain the queue at the
// recent job rate, at least 1.
func (q *queue) retryAfter(workers int) int {
	q.mu.Lock()
	mean := q.mean
	q.mu.Unlock()
	wait := time.Duration(len(q.jobs)+1) * mean / time.Duration(max(1, workers))
	return max(1, int((wait+time.Second-1)/time.Second))
}

// work runs jobs on one worker's copies of the models until the queue is closed. Nothing else
// touches these models, which is what makes the unsynchronised networks safe to use.
func (s *Server) work(models []*generate.Model) {
	defer s.workers.Done()
	for j := range s.q.jobs {
		if err := context.Cause(j.ctx); err != nil {
			s.met.jobs.WithLabelValues(outcome(j.ctx, err)).Inc()
			j.done <- result{err: err}
			continue
		}
		if j.start != nil {
			j.start()
		}
		s.met.running.Inc()
		t0 := time.Now()
		x, err := s.run(j, models[j.plan.model])
		d := time.Since(t0)
		s.met.running.Dec()
		s.met.jobSeconds.Observe(d.Seconds())
		if err == nil {
			s.q.observe(d)
			s.met.images.WithLabelValues(s.models[j.plan.model].Name, j.plan.spec.Name).Add(float64(j.plan.req.N))
			s.met.jobs.WithLabelValues("ok").Inc()
		} else {
			if c := context.Cause(j.ctx); c != nil {
				err = c
			}
			s.met.jobs.WithLabelValues(outcome(j.ctx, err)).Inc()
		}
		j.done <- result{x: x, dur: d, err: err}
	}
}

func outcome(ctx context.Context, err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled), errors.Is(err, errShutdown):
		return "canceled"
	case ctx.Err() != nil:
		return "canceled"
	}
	return "error"
}

// run samples all N images in one sampler call (the network's MaxBatch bounds the memory of each
// network call), so a stream's frames show every image at every step. Network calls take a fixed
// set of row counts (Options.Chunk), which is what bounds the engine's per-shape caches.
//
// A panic in the sampler or the network becomes the job's error (a 500) instead of ending the
// process and every other client's work with it.
func (s *Server) run(j *job, m *generate.Model) (x []float64, err error) {
	defer func() {
		if r := recover(); r != nil {
			s.opt.Log.Error("sampling panicked", "panic", r, "stack", string(debug.Stack()))
			x, err = nil, fmt.Errorf("internal error: sampling panicked: %v", r)
		}
	}()
	var sampler diffusion.Sampler
	if k := j.plan.known; k != nil {
		sampler, _, err = k.spec.Sampler(k.sampler, m.Schedule)
	} else {
		// From the request's spec, as validate planned it: plan.spec may name the "distilled"
		// spacing, which only Model.Sampler builds.
		sampler, _, _, err = m.Sampler(j.plan.req.SamplerSpec)
	}
	if err != nil {
		return nil, err
	}
	job := generate.Job{N: j.plan.req.N, Seed: j.plan.req.Seed, Chunk: s.opt.Chunk, Pow2: s.models[j.plan.model].pow2,
		Labels: j.plan.labels, Guidance: j.plan.guidance,
		Step: func(_ generate.Batch, st diffusion.Step) error {
			s.met.steps.Inc()
			if s.opt.stepHook != nil {
				s.opt.stepHook(st)
			}
			if j.step != nil {
				return j.step(st)
			}
			return nil
		}}
	if k := j.plan.known; k != nil {
		// Every image completes the same known image: X0 row i is image i's, the mask is shared.
		job.Known = &diffusion.Known{X0: repeat(k.x0, job.N), Mask: k.mask}
	}
	return m.Sample(j.ctx, sampler, job)
}

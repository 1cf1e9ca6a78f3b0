package train

import (
	"math"
	"math/rand/v2"
	"slices"
	"syscall"
	"time"

	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/engine"
	"github.com/ddpm-go/ddpm/nn"
	"github.com/ddpm-go/ddpm/schedule"
	"github.com/ddpm-go/ddpm/tensor"
	"github.com/ddpm-go/ddpm/tensor/dnnl"
)

// BenchOptions say what Bench times: training steps of Model at Batch (after 3 warmup steps) and
// sampling forwards at SampleBatch (after 2), on Threads threads.
type BenchOptions struct {
	Model              string // built-in UNet name or JSON config file
	Batch, SampleBatch int
	Steps, SampleReps  int
	Threads            int // the backend's thread count, reported and used for the FMA peak
}

// BenchResult has the keys of the PyTorch UNet-S's benchmark in bench/ (engine, precision, threads,
// params, train_img_s, sample_img_s, peak_rss_mib) plus what the CPU can do, measured in the same
// run: its FMA peak for this precision (fp32 FMAs, or AVX512-BF16 dot products), and the share of
// it the convolutions, linear layers and attention products of a step reach (a training step
// counted as three forwards).
type BenchResult struct {
	Engine         string  `json:"engine"`
	Precision      string  `json:"precision"`
	Threads        int     `json:"threads"`
	Params         int     `json:"params"`
	TrainImgS      float64 `json:"train_img_s"`
	SampleImgS     float64 `json:"sample_img_s"`
	PeakRSSMiB     float64 `json:"peak_rss_mib"`
	CPU            string  `json:"cpu"`
	ISA            string  `json:"isa,omitempty"`
	PeakGFLOPS     float64 `json:"peak_gflops,omitempty"`
	TrainGFLOPS    float64 `json:"train_gflops"`
	SampleGFLOPS   float64 `json:"sample_gflops"`
	TrainPeakFrac  float64 `json:"train_peak_frac,omitempty"`
	SamplePeakFrac float64 `json:"sample_peak_frac,omitempty"`
}

// Bench times training and sampling on be. A training step is Stepper.Step, the step of Run with
// Default's optimiser settings, on x0 uniform in [-1, 1] (the PyTorch benchmark's batch), so the
// rate it reports is the rate `ddpm train` reaches less the data loading; a sampling forward is
// one inference pass of the UNet at random timesteps.
func Bench(be tensor.Backend, o BenchOptions) (*BenchResult, error) {
	cfg := Default()
	cfg.Model, cfg.Batch, cfg.Threads = o.Model, o.Batch, o.Threads
	mcfg, err := nn.LoadConfig(cfg.Model)
	if err != nil {
		return nil, err
	}
	u, err := nn.New(mcfg, be, 0)
	if err != nil {
		return nil, err
	}
	cpu := dnnl.ThisCPU()
	res := &BenchResult{Engine: be.Name(), Precision: be.Precision().String(), Threads: o.Threads, Params: u.NumParams(),
		CPU: cpu.Model + " (" + cpu.ISAs() + ")"}
	if be.Name() == "dnnl" {
		res.ISA = dnnl.ISA()
	}
	fwd, err := nn.ForwardFLOPs(mcfg)
	if err != nil {
		return nil, err
	}
	sched, err := schedule.New(cfg.Schedule, cfg.Timesteps, false)
	if err != nil {
		return nil, err
	}
	st := NewStepper(cfg, u, sched, diffusion.Eps)
	rng := rand.New(rand.NewPCG(0, 1))
	x0 := make([]float32, o.Batch*mcfg.InChannels*mcfg.ImageSize*mcfg.ImageSize)
	trainS, err := medianSeconds(o.Steps, 3, func() error {
		for i := range x0 {
			x0[i] = float32(2*rng.Float64() - 1)
		}
		_, err := st.Step(x0, nil, rng, cfg.LR, cfg.EMA)
		return err
	})
	if err != nil {
		return nil, err
	}
	res.TrainImgS = round1(float64(o.Batch) / trainS)

	if t, ok := be.(interface{ Trim() }); ok {
		t.Trim() // training's buffers are not the sampling pass's shapes
	}
	sampleS, err := sampleSeconds(u, sched.T, rng, o)
	if err != nil {
		return nil, err
	}
	res.SampleImgS = round1(float64(o.SampleBatch) / sampleS)

	res.TrainGFLOPS = round1(res.TrainImgS * 3 * fwd / 1e9)
	res.SampleGFLOPS = round1(res.SampleImgS * fwd / 1e9)
	if be.Name() == "dnnl" {
		if peak, err := dnnl.PeakGFLOPS(be.Precision(), o.Threads); err == nil {
			res.PeakGFLOPS = round1(peak)
			res.TrainPeakFrac = math.Round(res.TrainGFLOPS/peak*1000) / 1000
			res.SamplePeakFrac = math.Round(res.SampleGFLOPS/peak*1000) / 1000
		}
	}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err == nil {
		res.PeakRSSMiB = round1(float64(ru.Maxrss) / 1024) // Linux reports KiB, as Python's resource module
	}
	return res, nil
}

// sampleSeconds is the median time of one inference forward of u over SampleBatch noise images at
// random timesteps below T.
func sampleSeconds(u *nn.UNet, T int, rng *rand.Rand, o BenchOptions) (float64, error) {
	be, c, n := u.Backend(), u.Cfg, o.SampleBatch
	xs := make([]float32, n*c.InChannels*c.ImageSize*c.ImageSize)
	for i := range xs {
		xs[i] = float32(rng.NormFloat64())
	}
	ts := make([]int, n)
	for i := range ts {
		ts[i] = rng.IntN(T)
	}
	x := be.Upload([]int{n, c.InChannels, c.ImageSize, c.ImageSize}, xs)
	defer be.Release(x)
	return medianSeconds(o.SampleReps, 2, func() error {
		return engine.Do(be, func() error {
			y, err := u.Forward(x, ts, false)
			if err == nil {
				be.Release(y)
			}
			return err
		})
	})
}

// medianSeconds runs fn warmup times, then reps timed times, and returns the median duration.
func medianSeconds(reps, warmup int, fn func() error) (float64, error) {
	for range warmup {
		if err := fn(); err != nil {
			return 0, err
		}
	}
	ts := make([]float64, reps)
	for i := range ts {
		t0 := time.Now()
		if err := fn(); err != nil {
			return 0, err
		}
		ts[i] = time.Since(t0).Seconds()
	}
	slices.Sort(ts)
	if reps%2 == 1 {
		return ts[reps/2], nil
	}
	return (ts[reps/2-1] + ts[reps/2]) / 2, nil
}

func round1(v float64) float64 { return math.Round(v*10) / 10 }

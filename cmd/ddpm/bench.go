package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"syscall"
	"time"

	"github.com/ddpm-go/ddpm/engine"
	"github.com/ddpm-go/ddpm/nn"
	"github.com/ddpm-go/ddpm/schedule"
	"github.com/ddpm-go/ddpm/tensor"
	"github.com/ddpm-go/ddpm/tensor/dnnl"
)

func init() {
	register(&command{name: "bench", summary: "time UNet-S training and sampling like the PyTorch peer; one JSON line", run: runBench})
}

// benchResult has the peer script's keys (../shared/peer/unet_s_torch.py) plus what was measured.
type benchResult struct {
	Engine     string  `json:"engine"`
	Precision  string  `json:"precision"`
	Threads    int     `json:"threads"`
	Params     int     `json:"params"`
	TrainImgS  float64 `json:"train_img_s"`
	SampleImgS float64 `json:"sample_img_s"`
	PeakRSSMiB float64 `json:"peak_rss_mib"`
	// What the CPU can do, measured in the same run: its FMA peak for this precision (fp32 FMAs, or
	// AVX512-BF16 dot products), and the share of it the convolutions, linear layers and attention
	// products of a step reach (a training step counted as three forwards).
	CPU            string  `json:"cpu"`
	ISA            string  `json:"isa,omitempty"`
	PeakGFLOPS     float64 `json:"peak_gflops,omitempty"`
	TrainGFLOPS    float64 `json:"train_gflops"`
	SampleGFLOPS   float64 `json:"sample_gflops"`
	TrainPeakFrac  float64 `json:"train_peak_frac,omitempty"`
	SamplePeakFrac float64 `json:"sample_peak_frac,omitempty"`
}

func runBench(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench", stderr)
	engName := fs.String("engine", "auto", "auto, dnnl or ref")
	precision := fs.String("precision", "auto", "auto, fp32 or bf16 (auto: bf16 where the CPU has AMX or AVX512-BF16)")
	model := fs.String("model", "unet-s", "UNet config: a built-in name or a JSON file")
	batch := fs.Int("batch", 128, "training batch size")
	sampleBatch := fs.Int("sample-batch", 256, "batch of the sampling forward pass")
	threads := fs.Int("threads", 0, "threads (0: all cores)")
	steps := fs.Int("steps", 10, "timed training steps (after 3 warmup steps)")
	sampleReps := fs.Int("sample-reps", 5, "timed sampling forwards (after 2 warmup)")
	if err := parseFlagsOneLine(fs, args, stderr); err != nil {
		return err
	}
	if *batch < 1 || *sampleBatch < 1 || *steps < 1 || *sampleReps < 1 || *threads < 0 {
		return fmt.Errorf("--batch, --sample-batch, --steps and --sample-reps must be positive, --threads >= 0")
	}
	if *threads == 0 {
		*threads = runtime.NumCPU()
	}
	cfg, err := nn.LoadConfig(*model)
	if err != nil {
		return err
	}
	be, err := engine.New(*engName, *precision, *threads)
	if err != nil {
		return err
	}
	defer engine.Close(be)
	u, err := nn.New(cfg, be, 0)
	if err != nil {
		return err
	}
	res := benchResult{Engine: be.Name(), Precision: be.Precision().String(), Threads: *threads, Params: u.NumParams(),
		CPU: dnnl.ThisCPU().Model + " (" + dnnl.ThisCPU().ISAs() + ")"}
	if be.Name() == "dnnl" {
		res.ISA = dnnl.ISA()
	}
	fwd, err := nn.ForwardFLOPs(cfg)
	if err != nil {
		return err
	}

	sched, err := schedule.New("linear", 1000, false)
	if err != nil {
		return err
	}
	opt := nn.NewAdamW(u.Params(), 2e-4)
	rng := rand.New(rand.NewPCG(0, 1))
	trainS, err := medianSeconds(*steps, 3, func() error {
		return onBackend(be, func() error { return benchTrainStep(u, opt, sched, rng, *batch, cfg) })
	})
	if err != nil {
		return err
	}
	res.TrainImgS = round1(float64(*batch) / trainS)

	if t, ok := be.(interface{ Trim() }); ok {
		t.Trim() // training's buffers are not the sampling pass's shapes
	}
	n, sz := *sampleBatch, cfg.ImageSize
	xs := make([]float32, n*cfg.InChannels*sz*sz)
	for i := range xs {
		xs[i] = float32(rng.NormFloat64())
	}
	ts := make([]int, n)
	for i := range ts {
		ts[i] = rng.IntN(sched.T)
	}
	x := be.Upload([]int{n, cfg.InChannels, sz, sz}, xs)
	sampleS, err := medianSeconds(*sampleReps, 2, func() error {
		return onBackend(be, func() error {
			y, err := u.Forward(x, ts, false)
			if err == nil {
				be.Release(y)
			}
			return err
		})
	})
	if err != nil {
		return err
	}
	be.Release(x)
	res.SampleImgS = round1(float64(n) / sampleS)

	res.TrainGFLOPS = round1(res.TrainImgS * 3 * fwd / 1e9)
	res.SampleGFLOPS = round1(res.SampleImgS * fwd / 1e9)
	if be.Name() == "dnnl" {
		if peak, err := dnnl.PeakGFLOPS(be.Precision(), *threads); err == nil {
			res.PeakGFLOPS = round1(peak)
			res.TrainPeakFrac = math.Round(res.TrainGFLOPS/peak*1000) / 1000
			res.SamplePeakFrac = math.Round(res.SampleGFLOPS/peak*1000) / 1000
		}
	}

	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err == nil {
		res.PeakRSSMiB = round1(float64(ru.Maxrss) / 1024) // Linux reports KiB, as Python's resource module
	}
	line, err := json.Marshal(res)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, string(line))
	return err
}

// onBackend runs f through the backend's Do when it has one (dnnl: every op of f then runs inline
// on its worker thread instead of being handed over one at a time).
func onBackend(be tensor.Backend, f func() error) error {
	d, ok := be.(interface{ Do(func()) })
	if !ok {
		return f()
	}
	var err error
	d.Do(func() { err = f() })
	return err
}

// benchTrainStep is the peer's train_step: x0 uniform in [-1,1], t uniform, eps ~ N(0,I),
// x_t = sqrt(abar_t) x0 + sqrt(1-abar_t) eps, loss = MSE(eps_theta(x_t, t), eps), AdamW.
func benchTrainStep(u *nn.UNet, opt *nn.AdamW, s *schedule.Schedule, rng *rand.Rand, n int, cfg nn.Config) error {
	be := u.Backend()
	per := cfg.InChannels * cfg.ImageSize * cfg.ImageSize
	xt, eps, t := make([]float32, n*per), make([]float32, n*per), make([]int, n)
	for i := range n {
		t[i] = rng.IntN(s.T)
		a, b := math.Sqrt(s.AlphaBar[t[i]]), math.Sqrt(1-s.AlphaBar[t[i]])
		for j := i * per; j < (i+1)*per; j++ {
			e := rng.NormFloat64()
			eps[j] = float32(e)
			xt[j] = float32(a*(2*rng.Float64()-1) + b*e)
		}
	}
	shape := []int{n, cfg.InChannels, cfg.ImageSize, cfg.ImageSize}
	x, target := be.Upload(shape, xt), be.Upload(shape, eps)
	defer be.Release(x)
	defer be.Release(target)
	out, err := u.Forward(x, t, true)
	if err != nil {
		return err
	}
	defer be.Release(out)
	_, dout := be.MSE(out, target)
	defer be.Release(dout)
	u.ZeroGrad()
	dx, err := u.Backward(dout)
	if err != nil {
		return err
	}
	be.Release(dx)
	opt.Step()
	return nil
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

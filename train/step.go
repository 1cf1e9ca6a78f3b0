package train

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/engine"
	"github.com/ddpm-go/ddpm/nn"
	"github.com/ddpm-go/ddpm/schedule"
	"github.com/ddpm-go/ddpm/tensor"
)

// Stepper is one optimisation step of a run on a batch its caller provides: what Run does at every
// step, and what `ddpm bench` times, so the speed a bench reports is the speed of training.
type Stepper struct {
	Model *nn.UNet
	Adam  *nn.AdamW
	EMA   *nn.EMA

	sched    *schedule.Schedule
	pred     diffusion.Prediction
	gradClip float64
	pUncond  float64 // probability a label is dropped to NoLabel

	ts                    []int
	x0, noise, xt, target []float64
	buf                   []float32
}

// NewStepper sets up the optimiser and the EMA of model as cfg says (weight decay, EMA decay,
// threads, gradient clipping); the learning rate and EMA decay are given per step.
func NewStepper(cfg Config, model *nn.UNet, s *schedule.Schedule, pred diffusion.Prediction) *Stepper {
	st := &Stepper{Model: model, sched: s, pred: pred, gradClip: cfg.GradClip, pUncond: cfg.PUncond}
	st.Adam = nn.NewAdamW(model.Params(), cfg.LR)
	st.Adam.WeightDecay = cfg.WeightDecay
	st.Adam.Threads = cfg.Threads
	st.EMA = nn.NewEMA(model.Params(), cfg.EMA)
	st.EMA.Threads = cfg.Threads
	return st
}

// NonFiniteError is a step refused because its loss or gradient norm is not a finite number; the
// weights are left as they were.
type NonFiniteError struct {
	What  string // "loss" or "gradient norm"
	Value float64
}

func (e *NonFiniteError) Error() string {
	if e.What == "loss" {
		return fmt.Sprintf("loss is %g; lower --lr or enable --grad-clip", e.Value)
	}
	return fmt.Sprintf("%s is %g", e.What, e.Value)
}

// Step trains on the clean images x0 (rows of the model's image size, in [-1, 1]): it draws each
// row's timestep and noise from rng (DDPM Algorithm 1), forms x_t and the target of the run's
// prediction (Eq. 14's simple loss), takes the MSE's gradient, clips it, and applies AdamW at lr and
// the EMA at emaDecay. It returns the loss.
//
// labels (nil for an unconditional model) are the rows' classes; each is replaced by NoLabel with
// probability pUncond, drawn from rng after the noise (Ho & Salimans 2022, Algorithm 1), so an
// unconditional run's random stream is what it was before labels existed.
func (st *Stepper) Step(x0 []float32, labels []int, rng *rand.Rand, lr, emaDecay float64) (float64, error) {
	c := st.Model.Cfg
	dim := c.InChannels * c.ImageSize * c.ImageSize
	n := len(x0) / dim
	st.grow(n, dim)
	for i := range st.ts {
		st.ts[i] = rng.IntN(st.sched.T)
	}
	for i := range st.noise {
		st.noise[i] = rng.NormFloat64()
	}
	var lab []int
	if labels != nil {
		if len(labels) != n {
			return 0, fmt.Errorf("train step: %d labels for %d images", len(labels), n)
		}
		lab = make([]int, n)
		for i, c := range labels {
			lab[i] = c
			if rng.Float64() < st.pUncond {
				lab[i] = diffusion.NoLabel
			}
		}
	}
	for i, v := range x0 {
		st.x0[i] = float64(v)
	}
	if err := diffusion.TrainingBatch(st.sched, st.pred, st.x0, n, dim, st.ts, st.noise, st.xt, st.target); err != nil {
		return 0, err
	}
	var loss float64
	be := st.Model.Backend()
	err := engine.Do(be, func() error {
		shape := []int{n, c.InChannels, c.ImageSize, c.ImageSize}
		xt := be.Upload(shape, toFloat32(st.buf, st.xt))
		tgt := be.Upload(shape, toFloat32(st.buf, st.target))
		out, err := st.Model.ForwardLabels(xt, st.ts, lab, true)
		if err != nil {
			return err
		}
		var dOut *tensor.Tensor
		loss, dOut = be.MSE(out, tgt)
		st.Model.ZeroGrad()
		dx, err := st.Model.Backward(dOut)
		if err != nil {
			return err
		}
		for _, t := range []*tensor.Tensor{xt, tgt, out, dOut, dx} {
			be.Release(t)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	if math.IsNaN(loss) || math.IsInf(loss, 0) {
		return loss, &NonFiniteError{"loss", loss}
	}
	if st.gradClip > 0 {
		if norm := nn.ClipGradNorm(st.Model.Params(), st.gradClip); math.IsNaN(norm) || math.IsInf(norm, 0) {
			return loss, &NonFiniteError{"gradient norm", norm}
		}
	}
	st.Adam.LR = lr
	st.Adam.Step()
	st.EMA.Decay = emaDecay
	st.EMA.Update()
	return loss, nil
}

// grow sizes the work buffers for n rows of dim values.
func (st *Stepper) grow(n, dim int) {
	if len(st.ts) == n {
		return
	}
	st.ts = make([]int, n)
	st.x0, st.noise = make([]float64, n*dim), make([]float64, n*dim)
	st.xt, st.target = make([]float64, n*dim), make([]float64, n*dim)
	st.buf = make([]float32, n*dim)
}

// toFloat32 converts src into dst, which the upload copies before dst is reused.
func toFloat32(dst []float32, src []float64) []float32 {
	for i, v := range src {
		dst[i] = float32(v)
	}
	return dst
}

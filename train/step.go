package train

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/engine"
	"github.com/ddpm-go/ddpm/mpi"
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

	// Comm, if it has more than one rank, makes Step one rank's part of a data-parallel step: every
	// rank is given the same global batch and takes its shard of the rows (mpi.Shard), and the
	// gradients and the loss are summed over the ranks before the update (see Step). nil is one
	// process.
	Comm mpi.Comm

	ts                    []int
	x0, noise, xt, target []float64
	buf                   []float32
	flat                  []float32 // every gradient, end to end, for the allreduce
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
//
// With a Comm of N ranks, x0 and labels are still the whole batch of B rows, the same on every
// rank, and so is rng: each rank draws every row's randomness and trains on its B/N rows, and the
// summed update is the one-process update of the B rows (data parallelism as in Goyal et al. 2017,
// "Accurate, Large Minibatch SGD", section 2 and 3: the batch is the global one, so the learning
// rate, warmup and EMA need no change with N, unlike scaling B up with N, where their linear
// scaling rule and warmup would apply). The returned loss is the whole batch's on every rank.
func (st *Stepper) Step(x0 []float32, labels []int, rng *rand.Rand, lr, emaDecay float64) (float64, error) {
	c := st.Model.Cfg
	dim := c.InChannels * c.ImageSize * c.ImageSize
	n := len(x0) / dim
	comm := st.Comm
	if comm == nil {
		comm = mpi.Solo
	}
	if n%comm.Size() != 0 {
		return 0, fmt.Errorf("train step: a batch of %d does not split over %d ranks", n, comm.Size())
	}
	// The whole batch's randomness is drawn on every rank, in the order one process draws it, and
	// each rank keeps its rows: the ranks' shards together are the one-process step, row for row.
	lo, hi := mpi.Shard(n, comm.Rank(), comm.Size())
	st.grow(n, hi-lo, dim)
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
		lab = lab[lo:hi]
	}
	ts, noise := st.ts[lo:hi], st.noise[lo*dim:hi*dim]
	if comm.Size() > 1 {
		st.Model.DropoutShard.From, st.Model.DropoutShard.Of = lo, n
	}
	n = hi - lo
	for i, v := range x0[lo*dim : hi*dim] {
		st.x0[i] = float64(v)
	}
	if err := diffusion.TrainingBatch(st.sched, st.pred, st.x0, n, dim, ts, noise, st.xt, st.target); err != nil {
		return 0, err
	}
	var loss float64
	be := st.Model.Backend()
	err := engine.Do(be, func() error {
		shape := []int{n, c.InChannels, c.ImageSize, c.ImageSize}
		xt := be.Upload(shape, toFloat32(st.buf, st.xt))
		tgt := be.Upload(shape, toFloat32(st.buf, st.target))
		out, err := st.Model.ForwardLabels(xt, ts, lab, true)
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
	if comm.Size() > 1 {
		if loss, err = st.allreduce(comm, loss, float64(n)/float64(len(st.ts))); err != nil {
			return 0, err
		}
	}
	// Every rank now holds the same loss and gradients, so every rank takes the same branch here
	// and applies the same update: the replicas never drift apart and never wait for each other.
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

// allreduce turns this rank's shard mean loss and gradients into the global batch's: each is
// weighted by share, the shard's fraction of the batch (the shard's MSE is a mean over its own
// rows, the batch's over all of them), and summed over the ranks. The gradients go in one
// allreduce of one flat buffer (Param.G is float32 host memory on every backend, bf16 training
// included, so the sum is in fp32): one collective per step costs one latency, and without
// overlapping communication with the backward pass (Horovod's tensor fusion, Sergeev & Del Balso
// 2018) there is nothing to gain from smaller buckets. Weighting by 1/2 (two ranks) is exact, so
// -np 2 differs from one process only by the order of the sums over rows in the backward pass.
// Clipping comes after, on the summed gradient, as the global norm is the one process's.
func (st *Stepper) allreduce(comm mpi.Comm, loss, share float64) (float64, error) {
	params := st.Model.Params()
	k := 0
	for _, p := range params {
		for _, g := range p.G {
			st.flat[k] = float32(float64(g) * share)
			k++
		}
	}
	if err := comm.AllreduceFloat32(st.flat); err != nil {
		return 0, fmt.Errorf("train step: allreduce of the gradients: %w", err)
	}
	k = 0
	for _, p := range params {
		k += copy(p.G, st.flat[k:])
	}
	l := []float64{loss * share}
	if err := comm.AllreduceFloat64(l); err != nil {
		return 0, fmt.Errorf("train step: allreduce of the loss: %w", err)
	}
	return l[0], nil
}

// grow sizes the work buffers for a batch of n rows of dim values of which this rank takes local.
func (st *Stepper) grow(n, local, dim int) {
	if st.Comm != nil && st.Comm.Size() > 1 && st.flat == nil {
		k := 0
		for _, p := range st.Model.Params() {
			k += len(p.G)
		}
		st.flat = make([]float32, k)
	}
	if len(st.ts) == n && len(st.x0) == local*dim {
		return
	}
	st.ts, st.noise = make([]int, n), make([]float64, n*dim)
	st.x0, st.xt, st.target = make([]float64, local*dim), make([]float64, local*dim), make([]float64, local*dim)
	st.buf = make([]float32, local*dim)
}

// toFloat32 converts src into dst, which the upload copies before dst is reused.
func toFloat32(dst []float32, src []float64) []float32 {
	for i, v := range src {
		dst[i] = float32(v)
	}
	return dst
}

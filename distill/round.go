package distill

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/ddpm-go/ddpm/checkpoint"
	"github.com/ddpm-go/ddpm/data"
	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/engine"
	"github.com/ddpm-go/ddpm/imageio"
	"github.com/ddpm-go/ddpm/nn"
	"github.com/ddpm-go/ddpm/tensor"
	"github.com/ddpm-go/ddpm/train"
)

// ErrInterrupted is returned (wrapped) when the context is cancelled; a checkpoint has been saved.
var ErrInterrupted = errors.New("interrupted")

// Hyper are a round's optimisation settings.
type Hyper struct {
	Batch     int     `json:"batch"`
	LR        float64 `json:"lr"`         // AdamW, decayed linearly to 0 over the round
	EMA       float64 `json:"ema"`        // EMA decay of the weights written; 0: none (the weights as trained)
	GradClip  float64 `json:"grad-clip"`  // global gradient norm; 0: none
	Seed      uint64  `json:"seed"`       // batches, timesteps, noise
	Threads   int     `json:"threads"`    // optimizer threads (0: all cores)
	CkptEvery int     `json:"ckpt-every"` // steps between checkpoints (0: at the end only)
	Keep      int     `json:"keep"`       // checkpoints kept
	LogEvery  int     `json:"log-every"`  // steps between log lines when not on a terminal
	SampleN   int     `json:"sample-n"`   // images in the grid drawn at the end (0: none)
}

// Round is one stage of a distillation, trained into its own run directory.
type Round struct {
	Name  string // "reparam" or "steps-N", also the directory's name
	Dir   string
	Steps int // optimisation steps
	// Grid is the student's grid (distillation rounds); nil for the reparameterisation, which
	// regresses the teacher's v at timesteps uniform over [0, T-1].
	Grid    []int
	Teacher *Teacher
	// Student holds the initial weights (the previous stage's); a resumed round overwrites them
	// from its checkpoint.
	Student *nn.UNet
	Set     *data.Set
	Labels  bool // train on the data's labels (a class-conditional student)
	Hyper   Hyper
	// Meta is the metadata of the model file written (the diffusion setup, classes and the
	// distilled_* keys); "step" is added.
	Meta map[string]string
	// SampleGrid is the grid the progress images are drawn over (DDIM, eta 0): the student's.
	SampleGrid []int
	Log        io.Writer
	Terminal   bool
}

// RoundResult summarises a round (or the part of it this call did).
type RoundResult struct {
	Name       string  `json:"name"`
	Dir        string  `json:"dir"`
	Steps      int     `json:"steps"`                 // student sampling steps (0 for reparam)
	Timesteps  []int   `json:"timesteps,omitempty"`   // the student's grid
	TrainSteps int     `json:"train_steps"`           // optimisation steps done
	Loss       float64 `json:"loss"`                  // moving average at the end
	WallS      float64 `json:"wall_s"`                // seconds, resumed segments included
	ImgPerSec  float64 `json:"img_per_s,omitempty"`   // this call's throughput
	Model      string  `json:"model"`                 // the weights file to sample
	SampleGrid string  `json:"sample_grid,omitempty"` // the PNG drawn at the end
}

// Metadata keys of a round's checkpoints, besides the model file's.
const (
	metaBatcher = "batcher"
	metaWall    = "wall_s"
	metaRound   = "distill_round" // roundKey as JSON: a resume must continue the same round
)

// roundKey is what a checkpoint must share with the round resuming from it.
type roundKey struct {
	Name  string `json:"name"`
	Steps int    `json:"steps"`
	Grid  []int  `json:"grid"`
	Hyper Hyper  `json:"hyper"`
}

// stepStream separates the round's timestep and noise stream from other users of the seed.
const stepStream = 0x6469_7374_696c_6c31 // "distill1"

// roundSeed makes each round's data order and noise differ: a function of the seed and the
// student's step count (0 for reparam).
func (r *Round) roundSeed() uint64 { return r.Hyper.Seed ^ stepStream ^ uint64(len(r.Grid))<<32 }

type roundRun struct {
	*Round
	be      tensor.Backend
	adam    *nn.AdamW
	ema     *nn.EMA
	batcher *data.Batcher
	metrics *train.Metrics
	prog    *train.Progress
	step    int
	wall0   float64
	start   time.Time
	res     RoundResult
	key     string
}

// Run trains the round to its last step (continuing from the round directory's latest checkpoint
// if there is one) and writes the model file; a round already done only has its model file
// checked. A cancelled ctx ends it with a checkpoint and an error wrapping ErrInterrupted.
func (r *Round) Run(ctx context.Context) (*RoundResult, error) {
	rr := &roundRun{Round: r, be: r.Student.Backend(), start: time.Now()}
	rr.res = RoundResult{Name: r.Name, Dir: r.Dir, Steps: len(r.Grid), Timesteps: r.Grid, Model: filepath.Join(r.Dir, checkpoint.EMAFile)}
	if err := rr.setup(); err != nil {
		if rr.metrics != nil {
			rr.metrics.Close()
		}
		return nil, err
	}
	err := rr.loop(ctx)
	if cerr := rr.metrics.Close(); err == nil && cerr != nil {
		err = cerr
	}
	rr.res.TrainSteps, rr.res.WallS = rr.step, rr.wall()
	if err != nil {
		return &rr.res, err
	}
	return &rr.res, nil
}

func (rr *roundRun) wall() float64 { return rr.wall0 + time.Since(rr.start).Seconds() }

func (rr *roundRun) setup() error {
	r := rr.Round
	h := r.Hyper
	for _, d := range []string{r.Dir, filepath.Join(r.Dir, checkpoint.CheckpointDir), filepath.Join(r.Dir, checkpoint.SampleDir)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	if _, _, err := train.RemoveTempFiles(r.Dir); err != nil {
		return err
	}
	rr.prog = train.NewProgress(r.Log, r.Terminal, h.LogEvery, r.Steps)
	params := r.Student.Params()
	rr.adam = nn.NewAdamW(params, h.LR)
	rr.adam.Threads = h.Threads
	rr.ema = nn.NewEMA(params, h.EMA)
	rr.ema.Threads = h.Threads
	var err error
	if rr.batcher, err = data.NewBatcher(r.Set, h.Batch, r.roundSeed(), false); err != nil {
		return err
	}
	k, _ := json.Marshal(roundKey{r.Name, r.Steps, r.Grid, h})
	rr.key = string(k)
	_, paths, err := checkpoint.Checkpoints(r.Dir)
	if err != nil {
		return err
	}
	resume := len(paths) > 0
	if resume {
		if err := rr.restore(paths[len(paths)-1]); err != nil {
			return err
		}
	} else {
		cfg, _ := json.MarshalIndent(struct {
			Round roundKey          `json:"round"`
			Meta  map[string]string `json:"model_metadata"`
		}{roundKey{r.Name, r.Steps, r.Grid, h}, r.Meta}, "", "  ")
		if err := train.WriteAtomic(filepath.Join(r.Dir, checkpoint.ConfigFile), append(cfg, '\n')); err != nil {
			return err
		}
		if err := train.WriteAtomic(filepath.Join(r.Dir, checkpoint.ModelFile), append(r.Student.Cfg.JSON(), '\n')); err != nil {
			return err
		}
	}
	if rr.metrics, err = train.OpenMetrics(r.Dir, resume, rr.step, r.Log); err != nil {
		return err
	}
	return nil
}

func (rr *roundRun) restore(path string) error {
	st := checkpoint.Training{Model: rr.Student, EMA: rr.ema, Opt: rr.adam}
	if err := checkpoint.LoadTraining(path, &st); err != nil {
		return fmt.Errorf("resume: %w", err)
	}
	if got := st.Meta[metaRound]; got != rr.key {
		return fmt.Errorf("resume: %s was trained as %s, the round is %s", path, got, rr.key)
	}
	var bs data.BatchState
	if err := json.Unmarshal([]byte(st.Meta[metaBatcher]), &bs); err != nil {
		return fmt.Errorf("resume: %s: bad %s: %v", path, metaBatcher, err)
	}
	if err := rr.batcher.Restore(bs); err != nil {
		return fmt.Errorf("resume: %s: %v", path, err)
	}
	w, err := strconv.ParseFloat(st.Meta[metaWall], 64)
	if err != nil {
		return fmt.Errorf("resume: %s: bad %s %q", path, metaWall, st.Meta[metaWall])
	}
	rr.wall0, rr.step = w, st.Step
	if st.Step < rr.Steps {
		rr.prog.Note("%s: resuming at step %d of %d from %s", rr.Name, st.Step, rr.Steps, path)
	}
	return nil
}

func (rr *roundRun) loop(ctx context.Context) error {
	r := rr.Round
	h := r.Hyper
	c := r.Student.Cfg
	dim := c.InChannels * c.ImageSize * c.ImageSize
	x32 := make([]float32, h.Batch*dim)
	var lab8 []uint8
	if r.Labels {
		lab8 = make([]uint8, h.Batch)
	}
	var lossAvg, lossW float64
	for _, row := range rr.metrics.Rows() {
		lossAvg, lossW = 0.98*lossAvg+0.02*row.Loss, 0.98*lossW+0.02
	}
	first := rr.step
	var secs, rate float64
	lastCkpt := rr.step
	finish := func() {
		rr.res.Loss = lossAvg / max(lossW, 1e-12)
		if secs > 0 {
			rr.res.ImgPerSec = float64((rr.step-first)*h.Batch) / secs
		}
	}
	for rr.step < r.Steps {
		if ctx.Err() != nil {
			rr.prog.Note("interrupted at step %d of %s; saving a checkpoint", rr.step, r.Name)
			if rr.step > lastCkpt {
				if err := rr.save(); err != nil {
					return err
				}
			}
			finish()
			return fmt.Errorf("%w at step %d of %s (continue with --resume)", ErrInterrupted, rr.step, r.Name)
		}
		t0 := time.Now()
		step := rr.step + 1
		lr := nn.CooldownLR(h.LR, 0, r.Steps, r.Steps, step)
		bs := rr.batcher.State()
		loss, err := rr.train(ctx, step, x32, lab8, lr)
		if err != nil {
			if ctx.Err() != nil {
				// An abandoned step leaves the weights as they were; put its batch back too, so
				// the checkpoint the check above saves resumes with it.
				if rerr := rr.batcher.Restore(bs); rerr != nil {
					return rerr
				}
				continue
			}
			return fmt.Errorf("%s step %d: %w", r.Name, step, err)
		}
		rr.step = step
		s := time.Since(t0).Seconds()
		secs += s
		imgS := float64(h.Batch) / s
		if rate == 0 {
			rate = imgS
		} else {
			rate = 0.9*rate + 0.1*imgS
		}
		lossAvg, lossW = 0.98*lossAvg+0.02*loss, 0.98*lossW+0.02
		if err := rr.metrics.Add(train.Row{Step: step, Loss: loss, LR: lr, ImgS: imgS, Wall: rr.wall()}); err != nil {
			return err
		}
		eta := time.Duration(float64(r.Steps-step) * float64(h.Batch) / rate * float64(time.Second))
		rr.prog.Update(step, float64(step)*float64(h.Batch)/float64(r.Set.N), lossAvg/lossW, lr, rate, eta, time.Duration(rr.wall()*float64(time.Second)))
		if h.CkptEvery > 0 && step%h.CkptEvery == 0 && step < r.Steps {
			if err := rr.save(); err != nil {
				return err
			}
			lastCkpt = step
		}
	}
	finish()
	if rr.step > lastCkpt || lastCkpt == 0 {
		if err := rr.save(); err != nil {
			return err
		}
	} else if err := rr.repairModel(); err != nil {
		return err
	}
	if h.SampleN > 0 && rr.step > first {
		path, err := rr.sampleGrid(ctx)
		if err != nil {
			return err
		}
		rr.res.SampleGrid = path
	}
	rr.prog.Note("%s: done, step %d, loss %.5f, model %s", r.Name, rr.step, rr.res.Loss, rr.res.Model)
	return nil
}

// train is one optimisation step: the batch, per-row timesteps and noise from the step's stream,
// the teacher's target, the student's weighted regression on v, AdamW.
func (rr *roundRun) train(ctx context.Context, step int, x32 []float32, lab8 []uint8, lr float64) (float64, error) {
	r := rr.Round
	c := r.Student.Cfg
	s := r.Teacher.Schedule
	n := r.Hyper.Batch
	dim := c.InChannels * c.ImageSize * c.ImageSize
	if err := rr.batcher.Next(x32, lab8); err != nil {
		return 0, err
	}
	rng := diffusion.RowRNG(r.roundSeed(), step)
	ts, si := make([]int, n), make([]int, n)
	for i := range ts {
		if r.Grid == nil {
			ts[i] = rng.IntN(s.T)
		} else {
			si[i] = rng.IntN(len(r.Grid))
			ts[i] = r.Grid[si[i]]
		}
	}
	z := make([]float64, n*dim)
	for i := range z {
		z[i] = rng.NormFloat64()
	}
	for i, t := range ts {
		a, sg := alphaSigma(s, t)
		for j := i * dim; j < (i+1)*dim; j++ {
			z[j] = a*float64(x32[j]) + sg*z[j]
		}
	}
	var labels []int
	if lab8 != nil {
		labels = make([]int, n)
		for i, l := range lab8 {
			labels[i] = int(l)
		}
	}
	vt := make([]float64, n*dim)
	w := make([]float64, n)
	if r.Grid == nil {
		if err := r.Teacher.V(ctx, z, ts, labels, dim, vt); err != nil {
			return 0, err
		}
		for i := range w {
			w[i] = 1
		}
	} else {
		if err := r.Teacher.Target(ctx, z, si, labels, dim, vt); err != nil {
			return 0, err
		}
		for i, t := range ts {
			w[i] = VTarget(s, t, z[i*dim:(i+1)*dim], vt[i*dim:(i+1)*dim], vt[i*dim:(i+1)*dim])
		}
	}
	var loss float64
	be := rr.be
	u := r.Student
	err := engine.Do(be, func() error {
		shape := []int{n, c.InChannels, c.ImageSize, c.ImageSize}
		buf := make([]float32, n*dim)
		for i, v := range z {
			buf[i] = float32(v)
		}
		xt := be.Upload(shape, buf)
		out, err := u.ForwardLabels(xt, ts, labels, true)
		if err != nil {
			return err
		}
		// The weighted MSE and its gradient, on the host: the backends' MSE has no per-row weight.
		o := be.Read(out)
		inv := 1 / float64(n*dim)
		for i := range o {
			d := float64(o[i]) - vt[i]
			wi := w[i/dim]
			loss += wi * d * d * inv
			buf[i] = float32(2 * wi * d * inv)
		}
		dOut := be.Upload(shape, buf)
		u.ZeroGrad()
		dx, err := u.Backward(dOut)
		if err != nil {
			return err
		}
		for _, t := range []*tensor.Tensor{xt, out, dOut, dx} {
			be.Release(t)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	if math.IsNaN(loss) || math.IsInf(loss, 0) {
		return loss, fmt.Errorf("loss is %g; lower --lr", loss)
	}
	if r.Hyper.GradClip > 0 {
		if norm := nn.ClipGradNorm(u.Params(), r.Hyper.GradClip); math.IsNaN(norm) || math.IsInf(norm, 0) {
			return loss, fmt.Errorf("gradient norm is %g", norm)
		}
	}
	rr.adam.LR = lr
	rr.adam.Step()
	rr.ema.Decay = r.Hyper.EMA
	rr.ema.Update()
	return loss, nil
}

// modelMeta is the model file's metadata at the current step.
func (rr *roundRun) modelMeta() map[string]string {
	m := map[string]string{checkpoint.MetaStep: strconv.Itoa(rr.step), "ema_decay": strconv.FormatFloat(rr.Hyper.EMA, 'g', -1, 64)}
	for k, v := range rr.Meta {
		m[k] = v
	}
	return m
}

// save writes the checkpoint, then the model file beside it, then prunes old checkpoints (the
// order of train's save: a kill between the two writes is repaired on resume by repairModel).
func (rr *roundRun) save() error {
	r := rr.Round
	if err := rr.metrics.Sync(); err != nil {
		return err
	}
	b, _ := json.Marshal(rr.batcher.State())
	meta := map[string]string{metaBatcher: string(b), metaWall: strconv.FormatFloat(rr.wall(), 'g', -1, 64), metaRound: rr.key}
	for k, v := range rr.Meta {
		meta[k] = v
	}
	st := checkpoint.Training{Model: r.Student, EMA: rr.ema, Opt: rr.adam, Step: rr.step, Meta: meta}
	if err := checkpoint.SaveTraining(checkpoint.CheckpointPath(r.Dir, rr.step), &st); err != nil {
		return err
	}
	if err := checkpoint.SaveWeights(rr.res.Model, r.Student.Cfg, rr.ema.Params(), rr.modelMeta()); err != nil {
		return err
	}
	if err := rr.metrics.Plot(r.Dir, fmt.Sprintf("%s: %s distillation (v, truncated-SNR weight)", r.Student.Cfg.Name, r.Name)); err != nil {
		return err
	}
	steps, paths, err := checkpoint.Checkpoints(r.Dir)
	if err != nil {
		return err
	}
	for i := 0; i < len(steps)-max(r.Hyper.Keep, 1); i++ {
		if err := os.Remove(paths[i]); err != nil {
			return err
		}
	}
	return nil
}

// repairModel rewrites the model file of a finished round unless it is already at its last step.
func (rr *roundRun) repairModel() error {
	if s, err := checkpoint.FileStep(rr.res.Model); err == nil && s == rr.step {
		return nil
	}
	return checkpoint.SaveWeights(rr.res.Model, rr.Student.Cfg, rr.ema.Params(), rr.modelMeta())
}

// sampleGrid draws SampleN images with the written weights over the round's sampling grid from
// fixed noise, one class per column for a conditional student.
func (rr *roundRun) sampleGrid(ctx context.Context) (string, error) {
	r := rr.Round
	c := r.Student.Cfg
	m, err := nn.New(c, rr.be, 0)
	if err != nil {
		return "", err
	}
	if err := rr.ema.CopyTo(m.Params()); err != nil {
		return "", err
	}
	n := r.Hyper.SampleN
	dim := c.InChannels * c.ImageSize * c.ImageSize
	var pred diffusion.Predictor = m
	cols := int(math.Ceil(math.Sqrt(float64(n))))
	if k := c.NumClasses; k > 0 {
		labels := make([]int, n)
		for i := range labels {
			labels[i] = i % k
		}
		pred = &diffusion.Guided{Model: nn.Labeled{U: m}, Labels: labels, Scale: 1}
		cols = min(n, k)
	}
	d := &diffusion.DDIM{Schedule: r.Teacher.Schedule, Grid: r.SampleGrid}
	x, err := d.Sample(ctx, pred, n, dim, diffusion.Options{Seed: 20201220, Prediction: diffusion.V})
	if err != nil {
		return "", err
	}
	img := make([]float32, len(x))
	for i, v := range x {
		img[i] = float32(v)
	}
	path := checkpoint.GridPath(r.Dir, rr.step)
	return path, imageio.WriteGrid(path, img, n, c.InChannels, c.ImageSize, c.ImageSize, cols)
}

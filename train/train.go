package train

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/ddpm-go/ddpm/checkpoint"
	"github.com/ddpm-go/ddpm/data"
	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/engine"
	"github.com/ddpm-go/ddpm/imageio"
	"github.com/ddpm-go/ddpm/internal/sysmem"
	"github.com/ddpm-go/ddpm/mpi"
	"github.com/ddpm-go/ddpm/nn"
	"github.com/ddpm-go/ddpm/schedule"
	"github.com/ddpm-go/ddpm/tensor"
)

// Options are how a run is carried out, as opposed to what it computes (Config).
type Options struct {
	// Resume continues the run in Config.Out from its latest checkpoint instead of starting one.
	Resume bool
	// Log receives progress; Terminal selects a redrawn bar instead of log lines.
	Log      io.Writer
	Terminal bool
	// Backend, if not nil, is used instead of starting one from Config.Engine/Precision/Threads
	// (tests pass the reference backend); the caller keeps ownership.
	Backend tensor.Backend
	// Set, if not nil, is the dataset instead of loading Config.Data.
	Set *data.Set
	// Comm, if it has more than one rank, makes this call one rank of a data-parallel run (nil:
	// one process). Every rank loads the data and draws every batch and its randomness as one
	// process would, trains on its shard of the rows (Stepper.Comm) and applies the same summed
	// update, so N ranks follow the one-process run. Rank 0 alone touches Config.Out: it writes the
	// checkpoints, metrics, grids and run files, logs to Log (the others log nothing), and on
	// --resume reads the checkpoint and broadcasts the state, so the other ranks need the data
	// but not the run directory. Config.Batch is the global batch and must divide by the ranks.
	Comm mpi.Comm
}

// Result summarises a run (or the part of it this call did).
type Result struct {
	Start, Step, Steps int     // first step of this call minus one, last step done, run length
	Loss               float64 // moving average of the loss at the end
	ImgPerSec          float64 // training throughput of this call (data, forward, backward, update)
	Wall               time.Duration
	Checkpoint         string // the last checkpoint written
	Grid               string // the last sample grid written
	Backend            string
}

// ErrInterrupted is returned (wrapped) when the context is cancelled; a checkpoint has been saved.
var ErrInterrupted = errors.New("interrupted")

// gridSeed fixes the noise of the progress grids so grids of one run (and of different runs) are
// comparable image by image.
const gridSeed = 20201220

// stepStream separates the timestep/noise generator from other users of the seed.
const stepStream = 0x7472_6169_6e5f_7473 // "train_ts"

// StepRNG is the generator of step's timesteps and noise: a function of (seed, step) alone, which
// is what makes a resumed run identical to an uninterrupted one without saving generator state.
func StepRNG(seed uint64, step int) *rand.Rand {
	return diffusion.RowRNG(seed^stepStream, step)
}

// EMADecay is the EMA decay used after step (1-based): the configured decay, capped by
// (1+step)/(10+step) early on, so the average forgets the random initial weights within the first
// few hundred steps instead of carrying them for thousands (with 0.999 and no cap, 45% of the
// average is still the initialisation after 800 steps). This is the warmup of the EMA in
// diffusers' EMAModel and in the latent-diffusion code.
func EMADecay(decay float64, step int) float64 {
	return min(decay, float64(1+step)/float64(10+step))
}

// run is the state of one training run.
type run struct {
	cfg      Config
	opt      Options
	be       tensor.Backend
	set      *data.Set
	sched    *schedule.Schedule
	obj      diffusion.Prediction
	model    *nn.UNet
	sampler  *nn.UNet // holds the EMA weights for grids
	adam     *nn.AdamW
	ema      *nn.EMA
	stepper  *Stepper
	batcher  *data.Batcher
	metrics  *metrics
	prog     *progress
	total    int
	step     int
	wallBase float64 // seconds of earlier segments
	start    time.Time
	lastCkpt int
	res      Result
}

// Run trains as cfg says, writing into cfg.Out, until cfg's step count is reached or ctx is
// cancelled; either way it ends with a checkpoint. A cancelled run returns an error wrapping
// ErrInterrupted.
func Run(ctx context.Context, cfg Config, opt Options) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if opt.Comm == nil {
		opt.Comm = mpi.Solo
	}
	if n := opt.Comm.Size(); cfg.Batch%n != 0 {
		return nil, fmt.Errorf("--batch %d does not split over %d ranks: use a multiple of %d (the batch is the global one, shared by the ranks)", cfg.Batch, n, n)
	}
	if opt.Comm.Rank() != 0 {
		opt.Log = nil
	}
	r := &run{cfg: cfg, opt: opt, start: time.Now()}
	if err := r.setup(); err != nil {
		r.close()
		return nil, err
	}
	res, err := r.loop(ctx)
	if cerr := r.close(); err == nil && cerr != nil {
		err = cerr
	}
	return res, err
}

func (r *run) close() error {
	var err error
	if r.metrics != nil {
		err = r.metrics.close()
	}
	if r.be != nil && r.opt.Backend == nil {
		engine.Close(r.be)
	}
	return err
}

func (r *run) setup() error {
	c := r.cfg
	var err error
	if r.sched, err = schedule.New(c.Schedule, c.Timesteps, c.ZeroSNR); err != nil {
		return err
	}
	if r.obj, err = diffusion.ParsePrediction(c.Prediction); err != nil {
		return err
	}
	if r.set, err = r.opt.Set, nil; r.set == nil {
		if r.set, err = c.OpenData(); err != nil {
			return err
		}
	}
	mcfg, err := c.ModelFor(r.set)
	if err != nil {
		return err
	}
	if err := conditioning(c, r.set, &mcfg); err != nil {
		return err
	}
	// A model or batch the machine cannot hold is refused here, before any of it is allocated: the
	// forward pass sized from the config alone (a config of small weights over huge images would
	// need tens of gigabytes to size by running it), then a whole training step.
	// A rank holds the activations of its shard only.
	local := c.Batch / r.opt.Comm.Size()
	if err := checkMemory(mcfg, local); err != nil {
		return err
	}
	need, err := nn.TrainingBytes(mcfg, local)
	if err != nil {
		return err
	}
	if err := sysmem.Check(fmt.Sprintf("training %s at --batch %d", mcfg.Name, c.Batch), need); err != nil {
		return err
	}
	r.total = c.TotalSteps(r.set.N)
	if c.Cooldown > r.total {
		return fmt.Errorf("--cooldown %d is longer than the run (%d steps)", c.Cooldown, r.total)
	}
	r.prog = &progress{w: r.opt.Log, terminal: r.opt.Terminal, every: c.LogEvery, total: r.total}
	if r.set.Skipped > 0 {
		r.prog.note("%s", r.set.SkippedNote())
	}

	root := r.opt.Comm.Rank() == 0
	if !r.opt.Resume && root {
		if _, paths, _ := checkpoint.Checkpoints(c.Out); len(paths) > 0 {
			return fmt.Errorf("%s already holds a run (%s); continue it with --resume %s or choose another --out",
				c.Out, paths[len(paths)-1], c.Out)
		}
	}
	if root {
		if err := r.prepareOut(); err != nil {
			return err
		}
	}

	if r.be = r.opt.Backend; r.be == nil {
		if r.be, err = engine.New(c.Engine, c.Precision, c.Threads); err != nil {
			return err
		}
	}
	r.res.Backend = engine.Describe(r.be)
	r.prog.note("engine %s", engine.Explain(r.be, c.Precision))
	if n := r.opt.Comm.Size(); n > 1 {
		r.prog.note("data parallel over %d ranks: %d of the %d images of each batch per rank", n, local, c.Batch)
	}
	if r.model, err = nn.New(mcfg, r.be, c.Seed); err != nil {
		return err
	}
	r.stepper = NewStepper(c, r.model, r.sched, r.obj)
	r.stepper.Comm = r.opt.Comm
	r.adam, r.ema = r.stepper.Adam, r.stepper.EMA
	if r.batcher, err = data.NewBatcher(r.set, c.Batch, c.Seed, c.Flip); err != nil {
		return err
	}

	// A resume rewrites config.json with what it was given (--steps, --cooldown, ...), so that the
	// next resume continues the same schedule without the flags being repeated.
	if !root {
		// Rank 0 restores or initialises; everything it then holds is broadcast.
		r.metrics = &metrics{}
		return r.receiveState()
	}
	b, _ := json.MarshalIndent(c, "", "  ")
	if r.opt.Resume {
		if err := r.restore(); err != nil {
			return err
		}
		if err := r.repairEMA(); err != nil {
			return err
		}
		if err := writeAtomic(fileIn(c.Out, checkpoint.ConfigFile), append(b, '\n')); err != nil {
			return err
		}
	} else {
		if err := writeAtomic(fileIn(c.Out, checkpoint.ConfigFile), append(b, '\n')); err != nil {
			return err
		}
		if err := writeAtomic(fileIn(c.Out, checkpoint.ModelFile), append(mcfg.JSON(), '\n')); err != nil {
			return err
		}
	}
	r.lastCkpt = r.step
	if r.metrics, err = openMetrics(c.Out, r.opt.Resume, r.step, r.prog); err != nil {
		return err
	}
	if r.opt.Comm.Size() > 1 {
		return r.sendState()
	}
	return nil
}

// prepareOut creates the run directory and clears what interrupted writes left in it.
func (r *run) prepareOut() error {
	c := r.cfg
	for _, d := range []string{c.Out, filepath.Join(c.Out, checkpoint.CheckpointDir), filepath.Join(c.Out, checkpoint.SampleDir)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	// A write killed before its rename leaves its temporary file behind (a checkpoint's is as large
	// as the checkpoint), and no later write reuses the name: remove them before anything else
	// writes into the directory.
	n, size, err := removeTempFiles(c.Out)
	if err != nil {
		return err
	}
	if n > 0 {
		r.prog.note("removed %d temporary files (%.1f MB) of interrupted writes from %s", n, float64(size)/(1<<20), c.Out)
	}
	return nil
}

// rankState is what rank 0 sends the other ranks of a data-parallel run besides the tensors:
// everything restore sets.
type rankState struct {
	Step, AdamSteps int
	Wall            float64
	DropoutSeed     uint64
	Batcher         data.BatchState
}

// stateTensors are the float32 buffers of the training state, in a fixed order: the weights, the
// EMA and AdamW's moments.
func (r *run) stateTensors() []*tensor.Param {
	ps := append([]*tensor.Param(nil), r.model.Params()...)
	ps = append(ps, r.ema.Params()...)
	m, v := r.adam.Moments()
	return append(append(ps, m...), v...)
}

// sendState broadcasts rank 0's training state, fresh or resumed, to the other ranks
// (receiveState), as Horovod's broadcast_parameters and broadcast_optimizer_state do at the start
// of a run: the ranks would build the same initial weights from the seed anyway, but a resume reads
// the checkpoint on rank 0 only (the others may have no access to the run directory), and the
// broadcast makes the replicas identical by construction rather than by coincidence. A failure on
// rank 0 before this point returns an error and the caller aborts the job (mpi.Comm.Abort), which
// ends the ranks waiting here.
func (r *run) sendState() error {
	b, err := json.Marshal(rankState{r.step, r.adam.Steps(), r.wallBase, r.model.DropoutSeed, r.batcher.State()})
	if err != nil {
		return err
	}
	if _, err := r.opt.Comm.Bcast(b, 0); err != nil {
		return err
	}
	for _, p := range r.stateTensors() {
		if err := r.opt.Comm.BcastFloat32(p.W, 0); err != nil {
			return err
		}
	}
	return nil
}

func (r *run) receiveState() error {
	b, err := r.opt.Comm.Bcast(nil, 0)
	if err != nil {
		return err
	}
	var st rankState
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("state from rank 0: %w", err)
	}
	for _, p := range r.stateTensors() {
		if err := r.opt.Comm.BcastFloat32(p.W, 0); err != nil {
			return err
		}
		p.Version++ // backends keep converted copies of weights keyed by version
	}
	if err := r.batcher.Restore(st.Batcher); err != nil {
		return fmt.Errorf("state from rank 0: %w", err)
	}
	r.step, r.wallBase, r.model.DropoutSeed = st.Step, st.Wall, st.DropoutSeed
	r.adam.SetSteps(st.AdamSteps)
	r.lastCkpt = r.step
	return nil
}

// fixedJSON is the part of a Config that a resumed run must share with the checkpoint.
func fixedJSON(c Config) string {
	all := map[string]json.RawMessage{}
	b, _ := json.Marshal(c)
	json.Unmarshal(b, &all)
	for k := range ResumeFlags {
		delete(all, k)
	}
	delete(all, "out")
	b, _ = json.Marshal(all)
	return string(b)
}

func (r *run) restore() error {
	path, _, err := checkpoint.LatestCheckpoint(r.cfg.Out)
	if err != nil {
		return fmt.Errorf("resume: %w", err)
	}
	st := checkpoint.Training{Model: r.model, EMA: r.ema, Opt: r.adam}
	if err := checkpoint.LoadTraining(path, &st); err != nil {
		return fmt.Errorf("resume: %w", err)
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("resume: %s: %s", path, fmt.Sprintf(format, args...))
	}
	var saved Config
	if err := json.Unmarshal([]byte(st.Meta[metaTrainCfg]), &saved); err != nil {
		return bad("bad %s: %v", metaTrainCfg, err)
	}
	if got, want := fixedJSON(saved), fixedJSON(r.cfg); got != want {
		return bad("checkpoint was trained with %s, the run's config is %s", got, want)
	}
	var bs data.BatchState
	if err := json.Unmarshal([]byte(st.Meta[metaBatcher]), &bs); err != nil {
		return bad("bad %s: %v", metaBatcher, err)
	}
	if err := r.batcher.Restore(bs); err != nil {
		return bad("%v", err)
	}
	if r.wallBase, err = strconv.ParseFloat(st.Meta[metaWall], 64); err != nil {
		return bad("bad %s %q", metaWall, st.Meta[metaWall])
	}
	if st.Step != r.adam.Steps() {
		return bad("step %d but optimizer step %d", st.Step, r.adam.Steps())
	}
	r.step = st.Step
	return nil
}

// repairEMA rewrites model-ema.safetensors from the checkpoint just restored unless it is already
// that checkpoint's: save writes the checkpoint first, so a kill between the two writes leaves the
// file a checkpoint behind, or absent after a run's first save, and the run directory would offer
// older weights for sampling than it resumes from until the next checkpoint (or forever, if the
// run ends before one). Whatever else is wrong with the file (unreadable, from a step the run no
// longer has) is mended the same way, since it is derived from the checkpoint alone.
func (r *run) repairEMA() error {
	path := fileIn(r.cfg.Out, checkpoint.EMAFile)
	s, err := checkpoint.FileStep(path)
	if err == nil && s == r.step {
		return nil
	}
	why := fmt.Sprintf("was at step %d", s)
	if errors.Is(err, os.ErrNotExist) {
		why = "was missing"
	} else if err != nil {
		why = fmt.Sprintf("was unreadable (%v)", err)
	}
	if err := r.writeEMA(r.meta(r.wallBase)); err != nil {
		return fmt.Errorf("resume: %w", err)
	}
	r.prog.note("%s %s; rewrote it from the checkpoint of step %d", path, why, r.step)
	return nil
}

// writeEMA writes the EMA weights of the current step as the run's model file, with the metadata
// that lets it be sampled alone.
func (r *run) writeEMA(meta map[string]string) error {
	emaMeta := map[string]string{checkpoint.MetaStep: strconv.Itoa(r.step)}
	for _, k := range modelFileKeys {
		emaMeta[k] = meta[k]
	}
	emaMeta["ema_decay"] = strconv.FormatFloat(r.cfg.EMA, 'g', -1, 64)
	return checkpoint.SaveWeights(fileIn(r.cfg.Out, checkpoint.EMAFile), r.model.Cfg, r.ema.Params(), emaMeta)
}

// meta is the metadata of the files a checkpoint writes.
func (r *run) meta(wall float64) map[string]string {
	c := r.cfg
	b, _ := json.Marshal(r.batcher.State())
	tc, _ := json.Marshal(c)
	m := map[string]string{
		checkpoint.MetaSchedule: c.Schedule, checkpoint.MetaTimesteps: strconv.Itoa(c.Timesteps), checkpoint.MetaZeroSNR: strconv.FormatBool(c.ZeroSNR),
		checkpoint.MetaPrediction: c.Prediction, checkpoint.MetaDataset: c.Data,
		metaBatcher: string(b), metaWall: strconv.FormatFloat(wall, 'g', -1, 64), metaTrainCfg: string(tc),
	}
	if r.set.Classes != nil && c.Conditional() {
		names, _ := json.Marshal(r.set.Classes)
		m[checkpoint.MetaClasses] = string(names)
	}
	return m
}

// conditioning checks the run's --cond against the data and the network, and gives a
// class-conditional network as many classes as the data has.
func conditioning(c Config, set *data.Set, mcfg *nn.Config) error {
	if !c.Conditional() {
		if mcfg.NumClasses > 0 {
			return fmt.Errorf("model %s is class-conditional (num_classes %d); train it with --cond class", mcfg.Name, mcfg.NumClasses)
		}
		return nil
	}
	if set.Labels == nil || len(set.Classes) == 0 {
		return fmt.Errorf("--cond class: data %s has no labels (a folder needs one subfolder per class: DIR/<class>/*.png)", c.Data)
	}
	if mcfg.NumClasses != 0 && mcfg.NumClasses != len(set.Classes) {
		return fmt.Errorf("--cond class: model %s has num_classes %d, data %s has %d classes", mcfg.Name, mcfg.NumClasses, c.Data, len(set.Classes))
	}
	mcfg.NumClasses = len(set.Classes)
	return nil
}

func (r *run) wall() float64 { return r.wallBase + time.Since(r.start).Seconds() }

// save writes the training state of the current step, the EMA weights beside it, the metrics and
// the loss plot, and drops checkpoints beyond the newest Keep. The checkpoint goes first: it is
// what a resume and a sampler trust, and a model file left behind by a kill after it is repaired
// (repairEMA) or passed over (checkpoint.LoadForSampling).
func (r *run) save() error {
	c := r.cfg
	meta := r.meta(r.wall())
	path := checkpoint.CheckpointPath(c.Out, r.step)
	if err := r.metrics.sync(); err != nil {
		return err
	}
	st := checkpoint.Training{Model: r.model, EMA: r.ema, Opt: r.adam, Step: r.step, Meta: meta}
	if err := checkpoint.SaveTraining(path, &st); err != nil {
		return err
	}
	if err := r.writeEMA(meta); err != nil {
		return err
	}
	r.lastCkpt, r.res.Checkpoint = r.step, path
	if err := r.metrics.plot(c.Out, fmt.Sprintf("%s on %s (%s)", r.model.Cfg.Name, c.Data, c.Prediction)); err != nil {
		return err
	}
	steps, paths, err := checkpoint.Checkpoints(c.Out)
	if err != nil {
		return err
	}
	for i := 0; i < len(steps)-c.Keep; i++ {
		if err := os.Remove(paths[i]); err != nil {
			return err
		}
	}
	return nil
}

// grid samples SampleN images with DDIM-50 (eta 0) from the EMA weights, always from the same
// noise, and writes them as a PNG.
func (r *run) grid(ctx context.Context) error {
	n := r.cfg.SampleN
	if n == 0 {
		return nil
	}
	if r.sampler == nil {
		m, err := nn.New(r.model.Cfg, r.be, 0)
		if err != nil {
			return err
		}
		m.MaxBatch = 64
		r.sampler = m
	}
	if err := r.ema.CopyTo(r.sampler.Params()); err != nil {
		return err
	}
	path, err := SampleGrid(ctx, r.sampler, r.sched, r.obj, n, checkpoint.GridPath(r.cfg.Out, r.step))
	if err != nil {
		return err
	}
	r.res.Grid = path
	return nil
}

// SampleGrid draws n images from model with DDIM over 50 steps (eta 0, linspace spacing) from the
// fixed grid noise and writes them to path as a square-ish grid PNG. A class-conditional model draws
// image i of class i mod K (no guidance: s = 1), one class per column.
func SampleGrid(ctx context.Context, model *nn.UNet, s *schedule.Schedule, obj diffusion.Prediction, n int, path string) (string, error) {
	c := model.Cfg
	dim := c.InChannels * c.ImageSize * c.ImageSize
	ddim := &diffusion.DDIM{Schedule: s, Steps: min(50, s.T), Eta: 0}
	var pred diffusion.Predictor = model
	cols := int(math.Ceil(math.Sqrt(float64(n))))
	if k := c.NumClasses; k > 0 {
		labels := make([]int, n)
		for i := range labels {
			labels[i] = i % k
		}
		pred = &diffusion.Guided{Model: nn.Labeled{U: model}, Labels: labels, Scale: 1}
		cols = min(n, k)
	}
	x, err := ddim.Sample(ctx, pred, n, dim, diffusion.Options{Seed: gridSeed, Prediction: obj})
	if err != nil {
		return "", err
	}
	img := make([]float32, len(x))
	for i, v := range x {
		img[i] = float32(v)
	}
	if err := imageio.WriteGrid(path, img, n, c.InChannels, c.ImageSize, c.ImageSize, cols); err != nil {
		return "", err
	}
	return path, nil
}

func (r *run) loop(ctx context.Context) (*Result, error) {
	c := r.cfg
	n := c.Batch
	x32 := make([]float32, n*r.set.Size())
	var lab8 []uint8
	if c.Conditional() {
		lab8 = make([]uint8, n)
	}

	r.res.Start, r.res.Steps = r.step, r.total
	var lossAvg, lossW float64
	for _, row := range r.metrics.rows { // continue the moving average of a resumed run
		lossAvg, lossW = 0.98*lossAvg+0.02*row.Loss, 0.98*lossW+0.02
	}
	var trainSecs float64
	var rate float64 // moving average of img/s
	interrupted := func() (*Result, error) {
		r.prog.note("interrupted at step %d; saving a checkpoint", r.step)
		if (r.step > r.lastCkpt || r.res.Checkpoint == "" && r.step > 0) && r.opt.Comm.Rank() == 0 {
			if err := r.save(); err != nil {
				return nil, err
			}
		}
		r.finish(lossAvg/max(lossW, 1e-12), trainSecs)
		return &r.res, fmt.Errorf("%w at step %d; saved %s (continue with --resume %s)", ErrInterrupted, r.step, r.res.Checkpoint, c.Out)
	}

	comm := r.opt.Comm
	root := comm.Rank() == 0
	// The ranks of a data-parallel run stop together: a signal may reach some ranks a step before
	// the others, and a rank that left the loop alone would leave its peers waiting in the next
	// allreduce; so whether to stop is itself reduced (any rank interrupted stops all of them at
	// the same step), and the grids, which only rank 0 draws, are not interrupted halfway.
	gridCtx := ctx
	if comm.Size() > 1 {
		gridCtx = context.WithoutCancel(ctx)
	}
	for r.step < r.total {
		stop, err := mpi.Or(comm, ctx.Err() != nil)
		if err != nil {
			return nil, err
		}
		if stop {
			return interrupted()
		}
		t0 := time.Now()
		step := r.step + 1
		if err := r.batcher.Next(x32, lab8); err != nil {
			return nil, err
		}
		var labels []int
		if lab8 != nil {
			labels = make([]int, n)
			for i, l := range lab8 {
				labels[i] = int(l)
			}
		}
		lr := nn.CooldownLR(c.LR, c.Warmup, c.Cooldown, r.total, step)
		loss, err := r.stepper.Step(x32, labels, StepRNG(c.Seed, step), lr, EMADecay(c.EMA, step))
		var nf *NonFiniteError
		if errors.As(err, &nf) {
			return nil, fmt.Errorf("step %d: %w (last checkpoint %s)", step, err, r.res.Checkpoint)
		}
		if err != nil {
			return nil, err
		}
		r.step = step

		secs := time.Since(t0).Seconds()
		trainSecs += secs
		imgS := float64(n) / secs
		if rate == 0 {
			rate = imgS
		} else {
			rate = 0.9*rate + 0.1*imgS
		}
		lossAvg, lossW = 0.98*lossAvg+0.02*loss, 0.98*lossW+0.02
		if err := r.metrics.add(Row{Step: step, Loss: loss, LR: lr, ImgS: imgS, Wall: r.wall()}); err != nil {
			return nil, err
		}
		if step%50 == 0 {
			if err := r.metrics.flush(); err != nil {
				return nil, err
			}
		}
		eta := time.Duration(float64(r.total-step) * float64(n) / rate * float64(time.Second))
		r.prog.update(status{step: step, epoch: float64(step) * float64(n) / float64(r.set.N), loss: lossAvg / lossW,
			lr: lr, imgS: rate, eta: eta, elapsed: time.Duration(r.wall() * float64(time.Second))})

		last := step == r.total
		if c.SampleEvery > 0 && step%c.SampleEvery == 0 && !last && root {
			if err := r.grid(gridCtx); err != nil {
				if ctx.Err() != nil {
					return interrupted()
				}
				return nil, err
			}
			r.prog.note("step %d: grid %s", step, r.res.Grid)
		}
		if c.CkptEvery > 0 && step%c.CkptEvery == 0 && !last && root {
			if err := r.save(); err != nil {
				return nil, err
			}
			r.prog.note("step %d: checkpoint %s", step, r.res.Checkpoint)
		}
	}
	if (r.step > r.lastCkpt || r.res.Checkpoint == "") && root {
		if err := r.save(); err != nil {
			return nil, err
		}
	}
	if (r.step > r.res.Start || r.res.Grid == "") && root {
		if err := r.grid(gridCtx); err != nil {
			if ctx.Err() != nil {
				return interrupted()
			}
			return nil, err
		}
	}
	r.finish(lossAvg/max(lossW, 1e-12), trainSecs)
	r.prog.note("done: step %d, loss %.5f, %.1f img/s, checkpoint %s, grid %s", r.step, r.res.Loss, r.res.ImgPerSec, r.res.Checkpoint, r.res.Grid)
	return &r.res, nil
}

func (r *run) finish(loss, trainSecs float64) {
	r.res.Step, r.res.Loss = r.step, loss
	if trainSecs > 0 {
		r.res.ImgPerSec = float64((r.step-r.res.Start)*r.cfg.Batch) / trainSecs
	}
	r.res.Wall = time.Since(r.start)
}

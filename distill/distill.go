package distill

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/ddpm-go/ddpm/checkpoint"
	"github.com/ddpm-go/ddpm/data"
	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/engine"
	"github.com/ddpm-go/ddpm/internal/safeio"
	"github.com/ddpm-go/ddpm/nn"
	"github.com/ddpm-go/ddpm/tensor"
	"github.com/ddpm-go/ddpm/train"
)

// Config is a whole distillation; its JSON keys are the flag names of `ddpm distill`, and the
// run directory keeps it as distill.json, which --resume reads back.
type Config struct {
	Teacher      string  `json:"teacher"` // a model file or run directory
	From         int     `json:"from"`    // S0: the teacher's DDIM steps
	To           int     `json:"to"`      // S1: the last student's
	Out          string  `json:"out"`
	Data         string  `json:"data"` // "" = the teacher's dataset (its "dataset" metadata)
	DataDir      string  `json:"data-dir"`
	RoundSteps   int     `json:"round-steps"`
	ReparamSteps int     `json:"reparam-steps"`
	Guidance     float64 `json:"guidance"` // class-conditional teachers: s = 1 + w (0 = the default)
	Engine       string  `json:"engine"`
	Precision    string  `json:"precision"`
	Hyper
}

// File names in a distillation's run directory (each round's is a run directory of its own).
const (
	ConfigFile     = "distill.json"
	ProvenanceFile = "provenance.json"
	ReparamDir     = "reparam"
)

// DefaultGuidance is the guidance scale of a class-conditional teacher when none is given: the
// sampler's default (generate.DefaultGuidance).
const DefaultGuidance = 1.5

// Default is the configuration the flags start from: 2000 steps per round at batch 64 and AdamW
// 1e-4 decayed linearly to 0 (the paper's schedule, Salimans & Ho 2022 Appendix E, at its upper
// learning rate: a small UNet on a CPU has few steps to spend), no EMA (the paper's distillation
// uses none), a 500-step reparameterisation.
func Default() Config {
	return Config{From: 256, To: 1, RoundSteps: 2000, ReparamSteps: 500, Engine: "auto", Precision: "auto",
		Hyper: Hyper{Batch: 64, LR: 1e-4, GradClip: 1, CkptEvery: 250, Keep: 2, LogEvery: 50, SampleN: 64}}
}

// Validate checks the settings; each error names its flag.
func (c Config) Validate() error {
	switch {
	case c.Teacher == "":
		return fmt.Errorf("--teacher is required: a model file or run directory (e.g. models/mnist)")
	case !diffusion.IsPow2(c.From):
		return fmt.Errorf("--from %d must be a power of two (the teacher's DDIM steps, e.g. 256)", c.From)
	case !diffusion.IsPow2(c.To):
		return fmt.Errorf("--to %d must be a power of two (the last student's steps, e.g. 1)", c.To)
	case c.To >= c.From:
		return fmt.Errorf("--to %d must be below --from %d: each round halves the steps", c.To, c.From)
	case c.Out == "":
		return fmt.Errorf("--out is required: the run directory")
	case c.RoundSteps < 1:
		return fmt.Errorf("--round-steps %d must be >= 1", c.RoundSteps)
	case c.ReparamSteps < 0:
		return fmt.Errorf("--reparam-steps %d must be >= 0", c.ReparamSteps)
	case c.Batch < 1:
		return fmt.Errorf("--batch %d must be >= 1", c.Batch)
	case !(c.LR > 0 && c.LR < 1):
		return fmt.Errorf("--lr %v must be in (0, 1)", c.LR)
	case !(c.EMA >= 0 && c.EMA < 1):
		return fmt.Errorf("--ema %v must be in [0, 1) (0: none)", c.EMA)
	case !(c.GradClip >= 0):
		return fmt.Errorf("--grad-clip %v must be >= 0 (0: none)", c.GradClip)
	case !(c.Guidance >= 0 && c.Guidance <= 20):
		return fmt.Errorf("--guidance %v must be in (0, 20] (0: the default, %g)", c.Guidance, float64(DefaultGuidance))
	case c.Threads < 0 || c.CkptEvery < 0 || c.Keep < 1 || c.LogEvery < 0 || c.SampleN < 0:
		return fmt.Errorf("--threads, --ckpt-every, --log-every and --sample-n must be >= 0 and --keep >= 1")
	}
	return nil
}

// Options are how a distillation is carried out, as opposed to what it computes.
type Options struct {
	Resume   bool
	Log      io.Writer
	Terminal bool
	Backend  tensor.Backend // if not nil, used instead of starting Config.Engine (the caller keeps it)
	Set      *data.Set      // if not nil, the training images instead of loading Config.Data
}

// Result is the rounds of a distillation, in order.
type Result struct {
	Rounds  []RoundResult
	Backend string
}

// Provenance is what provenance.json records, in the run directory and in each round's.
type Provenance struct {
	Teacher  string        `json:"teacher"`
	From     int           `json:"from"`
	To       int           `json:"to"`
	Guidance float64       `json:"guidance,omitempty"`
	Config   Config        `json:"config"`
	Backend  string        `json:"backend"`
	CPU      string        `json:"cpu"`
	Cores    int           `json:"cores"`
	Go       string        `json:"go"`
	Updated  string        `json:"updated"`
	Rounds   []RoundResult `json:"rounds"`
	WallS    float64       `json:"wall_s"`
}

// ReadConfig reads a distillation's distill.json, for --resume.
func ReadConfig(dir string) (Config, error) {
	b, err := safeio.ReadFile(filepath.Join(dir, ConfigFile), 1<<20)
	if err != nil {
		return Config{}, fmt.Errorf("--resume %s: %w", dir, err)
	}
	var c Config
	if err := json.Unmarshal(b, &c); err != nil {
		return Config{}, fmt.Errorf("--resume %s: %s: %v", dir, ConfigFile, err)
	}
	c.Out = dir
	return c, nil
}

// Run distils cfg.Teacher from cfg.From steps to cfg.To in rounds, each in its own run directory
// under cfg.Out: reparam/ (round 0, when the teacher does not predict v) and steps-N/ for every
// N from From/2 down to To. With opt.Resume it skips the rounds already done and continues the
// current one from its latest checkpoint, bit for bit as if it had not stopped.
func Run(ctx context.Context, cfg Config, opt Options) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(cfg.Out, ConfigFile)
	if _, err := os.Stat(cfgPath); err == nil && !opt.Resume {
		return nil, fmt.Errorf("--out %s already holds a distillation; continue it with --resume %s or choose another --out", cfg.Out, cfg.Out)
	}
	if _, err := os.Stat(cfgPath); err != nil && opt.Resume {
		return nil, fmt.Errorf("--resume %s: no %s there", cfg.Out, ConfigFile)
	}
	be := opt.Backend
	if be == nil {
		var err error
		if be, err = engine.New(cfg.Engine, cfg.Precision, cfg.Threads); err != nil {
			return nil, err
		}
		defer engine.Close(be)
	}
	log := opt.Log
	if log == nil {
		log = io.Discard
	}
	tm, err := checkpoint.LoadForSampling(cfg.Teacher, be, true)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("--teacher %s: no such model file or run directory", cfg.Teacher)
	}
	if err != nil {
		return nil, fmt.Errorf("--teacher %w", err)
	}
	s := tm.Schedule
	grid0, err := teacherGrid(tm, cfg.From)
	if err != nil {
		return nil, err
	}
	if cfg.From > s.T {
		return nil, fmt.Errorf("--from %d exceeds the teacher's %d timesteps", cfg.From, s.T)
	}
	cond := tm.Net.Cfg.NumClasses > 0
	scale := cfg.Guidance
	if !cond && scale != 0 {
		return nil, fmt.Errorf("--guidance applies to class-conditional teachers; %s is unconditional", cfg.Teacher)
	}
	if cond && scale == 0 {
		scale = DefaultGuidance
	}
	if tm.Prediction != diffusion.V && cfg.ReparamSteps == 0 {
		return nil, fmt.Errorf("--reparam-steps 0 needs a v-prediction teacher; %s predicts %s", cfg.Teacher, tm.Prediction)
	}
	set := opt.Set
	if set == nil {
		spec := cfg.Data
		if spec == "" {
			if spec = tm.Meta[checkpoint.MetaDataset]; spec == "" {
				return nil, fmt.Errorf("--data is required: %s does not name its dataset", cfg.Teacher)
			}
		}
		c := tm.Net.Cfg
		if set, err = data.Open(spec, cfg.DataDir, data.Train, c.ImageSize, c.InChannels); err != nil {
			return nil, fmt.Errorf("--data %w", err)
		}
	}
	if cond && set.Labels == nil {
		return nil, fmt.Errorf("--data: %s is class-conditional; its training images need labels", cfg.Teacher)
	}
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return nil, err
	}
	if !opt.Resume {
		b, _ := json.MarshalIndent(cfg, "", "  ")
		if err := train.WriteAtomic(cfgPath, append(b, '\n')); err != nil {
			return nil, err
		}
	}
	prog := train.NewProgress(log, opt.Terminal, 0, 0)
	prog.Note("distilling %s (%s, %s, T=%d) from %d to %d DDIM steps into %s on %s", cfg.Teacher, tm.Net.Cfg.Name, tm.Prediction, s.T,
		cfg.From, cfg.To, cfg.Out, engine.Describe(be))

	// The model file's metadata: the teacher's setup, with v prediction, descending from the
	// teacher or, for a student as teacher, from the model its chain started from.
	base := map[string]string{checkpoint.MetaDistilledFrom: cfg.Teacher}
	for _, k := range []string{checkpoint.MetaSchedule, checkpoint.MetaTimesteps, checkpoint.MetaZeroSNR, checkpoint.MetaDataset, checkpoint.MetaClasses, checkpoint.MetaDistilledFrom} {
		if v, ok := tm.Meta[k]; ok {
			base[k] = v
		}
	}
	base[checkpoint.MetaSchedule], base[checkpoint.MetaTimesteps] = s.Name, strconv.Itoa(s.T)
	base[checkpoint.MetaPrediction] = diffusion.V.String()
	if cond {
		base[checkpoint.MetaDistilledGuidance] = strconv.FormatFloat(scale, 'g', -1, 64)
	}

	res := &Result{Backend: engine.Describe(be)}
	prov := Provenance{Teacher: cfg.Teacher, From: cfg.From, To: cfg.To, Config: cfg, Backend: res.Backend, CPU: cpuName(),
		Cores: runtime.NumCPU(), Go: runtime.Version()}
	if cond {
		prov.Guidance = scale
	}
	// Round 1's teacher (and round 0's): the original model, guided at the fixed scale.
	teacher := &Teacher{Model: Net{U: tm.Net, Guided: cond, Scale: scale}, Prediction: tm.Prediction, Schedule: s, Grid: grid0}
	init := tm.Net
	round := func(name string, steps int, grid, sampleGrid []int, tc *Teacher) (*nn.UNet, error) {
		student, err := nn.New(tm.Net.Cfg, be, cfg.Seed)
		if err != nil {
			return nil, err
		}
		for k, p := range student.Params() {
			copy(p.W, init.Params()[k].W)
			p.Version++
		}
		meta := map[string]string{}
		for k, v := range base {
			meta[k] = v
		}
		if grid != nil {
			g, _ := json.Marshal(grid)
			meta[checkpoint.MetaDistilledSteps], meta[checkpoint.MetaDistilledTimesteps] = strconv.Itoa(len(grid)), string(g)
		}
		r := &Round{Name: name, Dir: filepath.Join(cfg.Out, name), Steps: steps, Grid: grid, Teacher: tc, Student: student,
			Set: set, Labels: cond, Hyper: cfg.Hyper, Meta: meta, SampleGrid: sampleGrid, Log: log, Terminal: opt.Terminal}
		prog.Note("%s: %d steps, teacher grid of %d steps, student grid %s", name, steps, len(tc.Grid), gridString(grid))
		rr, err := r.Run(ctx)
		if rr != nil {
			res.Rounds = append(res.Rounds, *rr)
			prov.Rounds = res.Rounds
			prov.WallS = 0
			for _, x := range res.Rounds {
				prov.WallS += x.WallS
			}
			prov.Updated = time.Now().UTC().Format(time.RFC3339)
			b, _ := json.MarshalIndent(prov, "", "  ")
			b = append(b, '\n')
			for _, p := range []string{filepath.Join(cfg.Out, ProvenanceFile), filepath.Join(r.Dir, ProvenanceFile)} {
				if werr := train.WriteAtomic(p, b); werr != nil && err == nil {
					err = werr
				}
			}
		}
		if err != nil {
			return nil, err
		}
		// The next stage starts from the weights written (the EMA's, which without EMA are the
		// trained ones).
		out, err := nn.New(tm.Net.Cfg, be, 0)
		if err != nil {
			return nil, err
		}
		if _, err := checkpoint.LoadSome(rr.Model, checkpoint.Group{Params: out.Params()}); err != nil {
			return nil, err
		}
		return out, nil
	}
	if tm.Prediction != diffusion.V {
		if init, err = round(ReparamDir, cfg.ReparamSteps, nil, grid0, teacher); err != nil {
			return res, err
		}
	}
	for g := grid0; len(g) > cfg.To; {
		sg := diffusion.HalveGrid(g)
		student, err := round(fmt.Sprintf("steps-%d", len(sg)), cfg.RoundSteps, sg, sg, teacher)
		if err != nil {
			return res, err
		}
		// The student is the next round's teacher: v, its own grid, the class alone.
		teacher = &Teacher{Model: Net{U: student}, Prediction: diffusion.V, Schedule: s, Grid: sg}
		init, g = student, sg
	}
	return res, nil
}

// teacherGrid is the grid of the first teacher: the linspace grid of from steps, or, for a teacher
// that is itself distilled, its own grid (whose length from must be).
func teacherGrid(tm *checkpoint.Model, from int) ([]int, error) {
	g, err := checkpoint.DistilledGrid(tm.Meta, tm.Schedule.T)
	if err != nil {
		return nil, fmt.Errorf("--teacher %s: %w", tm.Source, err)
	}
	if g != nil {
		if len(g) != from {
			return nil, fmt.Errorf("--from %d: the teacher %s is distilled for %d steps; give --from %d", from, tm.Source, len(g), len(g))
		}
		return g, nil
	}
	if from > tm.Schedule.T {
		return nil, fmt.Errorf("--from %d exceeds the teacher's %d timesteps", from, tm.Schedule.T)
	}
	return diffusion.NestedGrid(tm.Schedule.T, from, from)
}

func gridString(g []int) string {
	if g == nil {
		return "(none: v regression at every t)"
	}
	if len(g) > 8 {
		return fmt.Sprintf("%v ... (%d)", g[:8], len(g))
	}
	return fmt.Sprint(g)
}

// cpuName is the "model name" of /proc/cpuinfo, or GOARCH where there is none.
func cpuName() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				return strings.TrimSpace(v)
			}
		}
	}
	return runtime.GOARCH
}

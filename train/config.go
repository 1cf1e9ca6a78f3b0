package train

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"

	"github.com/ddpm-go/ddpm/checkpoint"

	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/engine"
	"github.com/ddpm-go/ddpm/internal/safeio"
	"github.com/ddpm-go/ddpm/nn"
	"github.com/ddpm-go/ddpm/schedule"
)

// Config is everything that defines a training run. Its JSON keys are the flag names of
// `ddpm train`, so a run file (--config run.json), the config.json a run writes into its directory
// and the command line all speak the same language.
type Config struct {
	Data     string `json:"data"`     // mnist, fashion, emoji, or a folder of images
	DataDir  string `json:"data-dir"` // dataset cache ("" = data.DefaultDir)
	Size     int    `json:"size"`     // image size of a folder dataset
	Channels int    `json:"channels"` // 1 or 3, for a folder dataset
	Flip     bool   `json:"flip"`     // random horizontal flips
	// Cond "class" trains a class-conditional model for classifier-free guidance (Ho & Salimans
	// 2022): each image's label goes in, dropped to "no label" with probability PUncond. "" or
	// "none" trains an unconditional model.
	Cond    string  `json:"cond,omitempty"`
	PUncond float64 `json:"p-uncond,omitempty"`

	Model      string `json:"model"`      // built-in UNet name or a JSON config file
	Schedule   string `json:"schedule"`   // linear, cosine, ...
	Timesteps  int    `json:"timesteps"`  // T
	ZeroSNR    bool   `json:"zero-snr"`   // Lin et al. 2023 rescaling (needs prediction x0 or v)
	Prediction string `json:"prediction"` // eps, x0 or v

	Batch       int     `json:"batch"`
	LR          float64 `json:"lr"`
	Steps       int     `json:"steps"`              // total optimizer steps; 0 = from Epochs
	Epochs      float64 `json:"epochs"`             // used when Steps is 0
	Warmup      int     `json:"warmup"`             // linear LR warmup steps
	Cooldown    int     `json:"cooldown,omitempty"` // linear LR decay over the last steps (0 = none)
	EMA         float64 `json:"ema"`                // EMA decay
	GradClip    float64 `json:"grad-clip"`
	WeightDecay float64 `json:"weight-decay"`
	Seed        uint64  `json:"seed"`

	Out       string `json:"out"`       // run directory
	Engine    string `json:"engine"`    // auto, dnnl or ref
	Precision string `json:"precision"` // auto, fp32 or bf16
	Threads   int    `json:"threads"`   // 0 = all cores

	SampleEvery int `json:"sample-every"` // steps between sample grids (0 = only at the end)
	SampleN     int `json:"sample-n"`     // images in a grid
	CkptEvery   int `json:"ckpt-every"`   // steps between checkpoints (0 = only at the end)
	Keep        int `json:"keep"`         // checkpoints kept
	LogEvery    int `json:"log-every"`    // steps between log lines when stderr is not a terminal
}

// Default is the configuration flags start from: MNIST with the model chosen from the data's shape
// (UNet-S for MNIST's 1x28x28, unet-c32 for colour; nn.ForData), the DDPM paper's linear
// schedule and eps prediction, batch 128 with AdamW at 1e-3 after a 100-step warmup, an EMA of
// 0.999: the settings of the shipped model (models/mnist/PROVENANCE.md), which on two CPU cores
// reach recognisable digits within a few hundred steps where the paper's 2e-4 needs far more.
func Default() Config {
	return Config{
		Data: "mnist", Model: nn.Auto, Schedule: "linear", Timesteps: 1000, Prediction: "eps",
		Cond: "none", PUncond: 0.1,
		Batch: 128, LR: 1e-3, Steps: 2000, Warmup: 100, EMA: 0.999, GradClip: 1, WeightDecay: 0,
		Seed: 0, Out: "runs/mnist", Engine: "auto", Precision: "auto",
		SampleEvery: 500, SampleN: 64, CkptEvery: 500, Keep: 3, LogEvery: 50,
	}
}

// Presets are named starting points; flags and --config override their values.
var Presets = map[string]func() Config{
	// The DDPM paper's schedule, prediction and learning rate (Ho et al. 2020, Section 4 and Appendix B:
	// linear betas 1e-4 .. 0.02, T = 1000, eps, Adam at 2e-4) at batch 512, for 20 epochs of MNIST.
	"paper-mnist": func() Config {
		c := Default()
		c.Batch = 512
		c.LR = 2e-4
		c.Steps = 0
		c.Epochs = 20
		c.Warmup = 100
		c.Out = "runs/paper-mnist"
		return c
	},
	// Default under its own name, so a run file can say "preset": "default".
	"default": Default,
}

// PresetNames lists the presets, sorted.
func PresetNames() []string {
	var names []string
	for n := range Presets {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// BindFlags defines one flag per Config field on fs, named as the field's JSON key, writing into c
// (whose current values are the defaults shown in -h).
func (c *Config) BindFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Data, "data", c.Data, "dataset: mnist, fashion, emoji (emoji:style for the style labels), or a folder of PNG, JPEG or GIF images (DIR/<class>/* for labels)")
	fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "dataset cache directory (default $DDPM_DATA or ~/.cache/ddpm)")
	fs.IntVar(&c.Size, "size", c.Size, "image size: the short side is resized to it and the centre cropped (default: the dataset's own; a folder: 32 colour, 28 grey; with a --model file, its image_size)")
	fs.IntVar(&c.Channels, "channels", c.Channels, "1 or 3 (default: the data's: a folder of grey images stays grey; with a --model file, its in_channels)")
	fs.BoolVar(&c.Flip, "flip", c.Flip, "random horizontal flips")
	fs.StringVar(&c.Cond, "cond", c.Cond, "none, or class: a class-conditional model for classifier-free guidance (labels of mnist, fashion, or a folder of class folders)")
	fs.Float64Var(&c.PUncond, "p-uncond", c.PUncond, "with --cond class, the probability a label is dropped to \"no label\" (the unconditional half of guidance)")
	fs.StringVar(&c.Model, "model", c.Model, "UNet: auto (from the data's shape: unet-s for grey, unet-c32 for colour), a built-in name ("+strings.Join(nn.Names(), ", ")+"; adapted to the data's channels and size) or a JSON config file (taken as written)")
	fs.StringVar(&c.Schedule, "schedule", c.Schedule, "noise schedule: "+strings.Join(schedule.Names(), ", "))
	fs.IntVar(&c.Timesteps, "timesteps", c.Timesteps, "diffusion steps T (1 to 100000)")
	fs.BoolVar(&c.ZeroSNR, "zero-snr", c.ZeroSNR, "rescale the schedule to zero terminal SNR (needs --prediction x0 or v)")
	fs.StringVar(&c.Prediction, "prediction", c.Prediction, "what the network predicts: eps, x0 or v")
	fs.IntVar(&c.Batch, "batch", c.Batch, "images per step")
	fs.Float64Var(&c.LR, "lr", c.LR, "AdamW learning rate after warmup")
	fs.IntVar(&c.Steps, "steps", c.Steps, "optimizer steps (0: use --epochs)")
	fs.Float64Var(&c.Epochs, "epochs", c.Epochs, "passes over the data, used when --steps is 0")
	fs.IntVar(&c.Warmup, "warmup", c.Warmup, "linear learning-rate warmup steps")
	fs.IntVar(&c.Cooldown, "cooldown", c.Cooldown, "decay the learning rate linearly over the last N steps (0: constant after warmup)")
	fs.Float64Var(&c.EMA, "ema", c.EMA, "EMA decay of the weights sampled from")
	fs.Float64Var(&c.GradClip, "grad-clip", c.GradClip, "clip the global gradient norm to this (0: off)")
	fs.Float64Var(&c.WeightDecay, "weight-decay", c.WeightDecay, "AdamW decoupled weight decay")
	fs.Uint64Var(&c.Seed, "seed", c.Seed, "seed of the initial weights, data order, timesteps and noise")
	fs.StringVar(&c.Out, "out", c.Out, "run directory (checkpoints, metrics, grids)")
	fs.StringVar(&c.Engine, "engine", c.Engine, "auto, dnnl or ref")
	fs.StringVar(&c.Precision, "precision", c.Precision, "auto, fp32 or bf16 (auto: bf16 where the CPU has AMX or AVX512-BF16)")
	fs.IntVar(&c.Threads, "threads", c.Threads, "threads (0: all cores)")
	fs.IntVar(&c.SampleEvery, "sample-every", c.SampleEvery, "steps between DDIM-50 sample grids from the EMA weights (0: only at the end)")
	fs.IntVar(&c.SampleN, "sample-n", c.SampleN, "images per sample grid, at most 1024 (0: no grids)")
	fs.IntVar(&c.CkptEvery, "ckpt-every", c.CkptEvery, "steps between checkpoints (0: only at the end)")
	fs.IntVar(&c.Keep, "keep", c.Keep, "checkpoints to keep")
	fs.IntVar(&c.LogEvery, "log-every", c.LogEvery, "steps between log lines when stderr is not a terminal")
}

// ResumeFlags are the settings a resumed run may change: how long it runs and how it reports and
// computes, not what it computes. (Changing precision or threads keeps the run valid but not
// bit-identical to an uninterrupted one.) The cooldown is the exception that proves the rule: the
// point of a warmup-stable-decay schedule is to decide on the decay when resuming a run for the last
// time, with --steps; the steps already taken are unchanged as long as the cooldown starts after them.
var ResumeFlags = map[string]bool{
	"steps": true, "epochs": true, "cooldown": true, "sample-every": true, "sample-n": true, "ckpt-every": true,
	"keep": true, "log-every": true, "engine": true, "precision": true, "threads": true, "data-dir": true,
}

// Resolve builds the run's configuration in layers: Default, then the preset (if not ""), then
// the JSON file configPath (if not ""), then the flags named in set, whose values are taken from
// flags. The result is validated.
func Resolve(preset, configPath string, flags Config, set []string) (Config, error) {
	c := Default()
	if preset != "" {
		p, ok := Presets[preset]
		if !ok {
			return Config{}, fmt.Errorf("unknown preset %q (want %s)", preset, strings.Join(PresetNames(), ", "))
		}
		c = p()
	}
	if configPath != "" {
		b, err := safeio.ReadFile(configPath, 1<<20)
		if err != nil {
			return Config{}, fmt.Errorf("read config: %w", err)
		}
		if err := decodeStrict(b, &c); err != nil {
			return Config{}, fmt.Errorf("read config %s: %w", configPath, err)
		}
	}
	if err := overlay(&c, flags, set); err != nil {
		return Config{}, err
	}
	return c, c.Validate()
}

// ResumeConfig reads the config.json of run directory dir and applies the flags in set, which must
// all be in ResumeFlags.
func ResumeConfig(dir string, flags Config, set []string) (Config, error) {
	path := fileIn(dir, checkpoint.ConfigFile)
	b, err := safeio.ReadFile(path, 1<<20)
	if err != nil {
		return Config{}, fmt.Errorf("resume: %w", err)
	}
	var c Config
	if err := decodeStrict(b, &c); err != nil {
		return Config{}, fmt.Errorf("resume: read %s: %w", path, err)
	}
	for _, name := range set {
		if !ResumeFlags[name] {
			return Config{}, fmt.Errorf("resume: --%s cannot change on resume (it is fixed by %s)", name, path)
		}
	}
	if err := overlay(&c, flags, set); err != nil {
		return Config{}, err
	}
	c.Out = dir
	return c, c.Validate()
}

// overlay copies the fields named (by JSON key) in set from src into dst. Going through JSON keeps
// one source of truth for the names: the struct tags.
func overlay(dst *Config, src Config, set []string) error {
	if len(set) == 0 {
		return nil
	}
	all := map[string]json.RawMessage{}
	b, _ := json.Marshal(src)
	if err := json.Unmarshal(b, &all); err != nil {
		return err
	}
	pick := map[string]json.RawMessage{}
	for _, name := range set {
		v, ok := all[name]
		if !ok {
			return fmt.Errorf("flag --%s is not a config key", name)
		}
		pick[name] = v
	}
	b, _ = json.Marshal(pick)
	return json.Unmarshal(b, dst)
}

// decodeStrict decodes JSON into c, rejecting unknown keys so a typo is an error, not a default,
// and anything after the object (a second object pasted in, a stray brace), which a plain Decode
// would silently leave unread.
func decodeStrict(b []byte, c *Config) error {
	dec := json.NewDecoder(bytes.NewReader(renameLegacyKeys(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(c); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("trailing data after the JSON object at byte %d", dec.InputOffset())
	}
	return nil
}

// renameLegacyKeys maps the key "objective" of run files written before the key was named
// "prediction", so an old run resumes; input that is not one JSON object is left for decodeStrict
// to refuse.
func renameLegacyKeys(b []byte) []byte {
	var m map[string]json.RawMessage
	if json.Unmarshal(b, &m) != nil {
		return b
	}
	v, old := m["objective"]
	if _, now := m["prediction"]; !old || now {
		return b
	}
	delete(m, "objective")
	m["prediction"] = v
	out, err := json.Marshal(m)
	if err != nil {
		return b
	}
	return out
}

// Bounds of Validate on values a run file can set past the command line's checks.
const (
	// MaxSampleN bounds the progress grid: its images are drawn in one DDIM call holding all of
	// them (a --sample-n of 1e9 ran a whole training run and then died out of memory), and 1,024
	// is a 32x32 grid, more than anyone looks at.
	MaxSampleN = 1024
	// MaxEpochs bounds --epochs so that the run's steps, epochs x images / batch, stay an int (1e300
	// overflowed into a run of one step).
	MaxEpochs = 1e6
)

// Validate checks the values that do not need the data or the model file.
func (c Config) Validate() error {
	bad := func(format string, args ...any) error { return fmt.Errorf(format, args...) }
	switch {
	case c.Data == "":
		return bad("--data is empty")
	case c.Model == "":
		return bad("--model is empty")
	case c.Timesteps < 1:
		return bad("--timesteps must be at least 1, got %d", c.Timesteps)
	case c.Batch < 1:
		return bad("--batch must be at least 1, got %d", c.Batch)
	case !(c.LR > 0) || math.IsInf(c.LR, 0):
		return bad("--lr must be positive, got %g", c.LR)
	case c.Steps < 0:
		return bad("--steps must be >= 0, got %d", c.Steps)
	case c.Steps == 0 && !(c.Epochs > 0):
		return bad("give --steps or a positive --epochs")
	case math.IsInf(c.Epochs, 0) || math.IsNaN(c.Epochs) || c.Epochs < 0:
		return bad("--epochs must be >= 0, got %g", c.Epochs)
	case c.Warmup < 0:
		return bad("--warmup must be >= 0, got %d", c.Warmup)
	case c.Cooldown < 0:
		return bad("--cooldown must be >= 0, got %d", c.Cooldown)
	case c.Steps > 0 && c.Cooldown > c.Steps:
		return bad("--cooldown %d is longer than --steps %d", c.Cooldown, c.Steps)
	case !(c.EMA >= 0 && c.EMA < 1):
		return bad("--ema must be in [0, 1), got %g", c.EMA)
	case !(c.GradClip >= 0) || math.IsInf(c.GradClip, 0):
		return bad("--grad-clip must be >= 0, got %g", c.GradClip)
	case !(c.WeightDecay >= 0) || math.IsInf(c.WeightDecay, 0):
		return bad("--weight-decay must be >= 0, got %g", c.WeightDecay)
	case c.Out == "":
		return bad("--out is empty")
	case c.Threads < 0:
		return bad("--threads must be >= 0, got %d", c.Threads)
	case c.SampleEvery < 0 || c.SampleN < 0 || c.CkptEvery < 0 || c.LogEvery < 0:
		return bad("--sample-every, --sample-n, --ckpt-every and --log-every must be >= 0")
	case c.SampleN > MaxSampleN:
		return bad("--sample-n %d: more than %d images in a progress grid (it is drawn in one sampler call)", c.SampleN, MaxSampleN)
	case c.Epochs > MaxEpochs:
		return bad("--epochs %g: more than %g", c.Epochs, float64(MaxEpochs))
	case c.Cond != "" && c.Cond != "none" && c.Cond != "class":
		return bad("unknown --cond %q (want none or class)", c.Cond)
	case !(c.PUncond >= 0 && c.PUncond <= 1):
		return bad("--p-uncond must be in [0, 1], got %g", c.PUncond)
	case c.Keep < 1:
		return bad("--keep must be at least 1, got %d", c.Keep)
	case c.Size < 0 || (c.Channels != 0 && c.Channels != 1 && c.Channels != 3):
		return bad("--size must be >= 0 and --channels 1 or 3")
	}
	if !contains(engine.Names, c.Engine) {
		return bad("unknown --engine %q (want %s)", c.Engine, strings.Join(engine.Names, ", "))
	}
	if !contains([]string{"auto", "fp32", "bf16"}, c.Precision) {
		return bad("unknown --precision %q (want auto, fp32 or bf16)", c.Precision)
	}
	obj, err := diffusion.ParsePrediction(c.Prediction)
	if err != nil {
		return bad("--prediction: %v", err)
	}
	if _, err := schedule.New(c.Schedule, c.Timesteps, c.ZeroSNR); err != nil {
		return bad("--schedule: %v", err)
	}
	if c.ZeroSNR && obj == diffusion.Eps {
		return bad("--zero-snr needs --prediction x0 or v (eps cannot recover x0 at alpha_bar = 0)")
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// Conditional reports whether the run trains a class-conditional model.
func (c Config) Conditional() bool { return c.Cond == "class" }

// TotalSteps is the run's length in optimizer steps: Steps, or Epochs passes over n images.
func (c Config) TotalSteps(n int) int {
	if c.Steps > 0 {
		return c.Steps
	}
	return max(1, int(math.Ceil(c.Epochs*float64(n)/float64(c.Batch))))
}

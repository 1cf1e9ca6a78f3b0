package train

import (
	"flag"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ddpm-go/ddpm/checkpoint"
)

// The JSON keys of Config and the flags of `ddpm train` are the same set of names, so a run file
// can say anything the command line can.
func TestFlagNamesAreJSONKeys(t *testing.T) {
	fs := flag.NewFlagSet("train", flag.ContinueOnError)
	c := Default()
	c.BindFlags(fs)
	var flags []string
	fs.VisitAll(func(f *flag.Flag) { flags = append(flags, f.Name) })
	var keys []string
	rt := reflect.TypeOf(Config{})
	for i := range rt.NumField() {
		keys = append(keys, strings.Split(rt.Field(i).Tag.Get("json"), ",")[0])
	}
	sort.Strings(flags)
	sort.Strings(keys)
	if !reflect.DeepEqual(flags, keys) {
		t.Fatalf("flags %v\nkeys  %v", flags, keys)
	}
	// The defaults shown by -h are Default's values.
	if err := fs.Parse(nil); err != nil || !reflect.DeepEqual(c, Default()) {
		t.Fatalf("binding flags changed the config: %+v", c)
	}
}

func TestResolveLayers(t *testing.T) {
	dir := t.TempDir()
	runFile := filepath.Join(dir, "run.json")
	os.WriteFile(runFile, []byte(`{"lr": 0.001, "batch": 64, "objective": "v"}`), 0o644)
	badFile := filepath.Join(dir, "bad.json")
	os.WriteFile(badFile, []byte(`{"learning-rate": 0.001}`), 0o644)

	paper, err := Resolve("paper-mnist", "", Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if paper.Schedule != "linear" || paper.Timesteps != 1000 || paper.Prediction != "eps" || paper.Batch != 512 || paper.LR != 2e-4 || paper.Data != "mnist" || paper.Out != "runs/paper-mnist" {
		t.Fatalf("paper-mnist preset: %+v", paper)
	}
	if got := paper.TotalSteps(60000); got != 2344 { // 20 epochs of 60000 at 512 = 2343.75
		t.Fatalf("paper-mnist steps: %d, want 2344", got)
	}

	// preset < file < flags
	c, err := Resolve("paper-mnist", runFile, Config{Batch: 32, Seed: 9}, []string{"batch", "seed"})
	if err != nil {
		t.Fatal(err)
	}
	if c.LR != 0.001 || c.Prediction != "v" || c.Batch != 32 || c.Seed != 9 || c.Timesteps != 1000 {
		t.Fatalf("layered config: %+v", c)
	}
	// A flag set to its zero value still wins over the file.
	c, err = Resolve("", "", Config{Flip: false, Steps: 0, Epochs: 2}, []string{"steps", "epochs"})
	if err != nil || c.Steps != 0 || c.Epochs != 2 {
		t.Fatalf("zero-valued flag: %+v, %v", c, err)
	}

	for _, tc := range []struct {
		preset, file string
		flags        Config
		set          []string
		want         string
	}{
		{"nope", "", Config{}, nil, "unknown preset"},
		{"", badFile, Config{}, nil, "learning-rate"},
		{"", filepath.Join(dir, "missing.json"), Config{}, nil, "missing.json"},
		{"", "", Config{Batch: 0}, []string{"batch"}, "--batch"},
		{"", "", Config{LR: -1}, []string{"lr"}, "--lr"},
		{"", "", Config{EMA: 1}, []string{"ema"}, "--ema"},
		{"", "", Config{Prediction: "eps2"}, []string{"prediction"}, "--prediction"},
		{"", "", Config{Schedule: "cosin"}, []string{"schedule"}, "--schedule"},
		{"", "", Config{ZeroSNR: true}, []string{"zero-snr"}, "--zero-snr"},
		{"", "", Config{Engine: "cuda"}, []string{"engine"}, "--engine"},
		{"", "", Config{Precision: "fp16"}, []string{"precision"}, "--precision"},
		{"", "", Config{Keep: 0}, []string{"keep"}, "--keep"},
		{"", "", Config{Channels: 2}, []string{"channels"}, "--channels"},
		{"", "", Config{Steps: 0, Epochs: 0}, []string{"steps", "epochs"}, "--steps"},
		{"", "", Config{Timesteps: 0}, []string{"timesteps"}, "--timesteps"},
		{"", "", Config{Out: ""}, []string{"out"}, "--out"},
	} {
		if _, err := Resolve(tc.preset, tc.file, tc.flags, tc.set); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Resolve(%q, %q, %v): error %v, want one mentioning %q", tc.preset, tc.file, tc.set, err, tc.want)
		}
	}
}

func TestResumeConfigRefusesChanges(t *testing.T) {
	dir := t.TempDir()
	c := Default()
	c.Out = "elsewhere"
	b := []byte(`{"data":"mnist","data-dir":"","size":0,"channels":0,"flip":false,"model":"unet-s","schedule":"linear","timesteps":1000,"zero-snr":false,"prediction":"eps","batch":128,"lr":0.0002,"steps":100,"epochs":0,"warmup":10,"ema":0.999,"grad-clip":1,"weight-decay":0,"seed":3,"out":"x","engine":"auto","precision":"auto","threads":0,"sample-every":0,"sample-n":4,"ckpt-every":0,"keep":1,"log-every":1}`)
	os.WriteFile(filepath.Join(dir, checkpoint.ConfigFile), b, 0o644)
	got, err := ResumeConfig(dir, Config{Steps: 200, Threads: 2}, []string{"steps", "threads"})
	if err != nil {
		t.Fatal(err)
	}
	if got.Steps != 200 || got.Threads != 2 || got.Seed != 3 || got.Out != dir {
		t.Fatalf("resume config: %+v", got)
	}
	if _, err := ResumeConfig(dir, Config{Batch: 64}, []string{"batch"}); err == nil || !strings.Contains(err.Error(), "--batch") {
		t.Fatalf("changing --batch on resume: %v", err)
	}
	if _, err := ResumeConfig(t.TempDir(), Config{}, nil); err == nil || !strings.Contains(err.Error(), checkpoint.ConfigFile) {
		t.Fatalf("resume of an empty directory: %v", err)
	}
}

func TestPlotLoss(t *testing.T) {
	rows := []Row{{Step: 1, Loss: 1}, {Step: 2, Loss: 0.5}, {Step: 3, Loss: 0.25}}
	if err := PlotLoss(io.Discard, rows, "t"); err != nil {
		t.Fatal(err)
	}
	if err := PlotLoss(io.Discard, nil, "t"); err == nil {
		t.Fatal("plot of no rows succeeded")
	}
}

func TestEMADecay(t *testing.T) {
	for _, tc := range []struct {
		decay float64
		step  int
		want  float64
	}{
		{0.999, 1, 2.0 / 11}, {0.999, 90, 0.91}, {0.999, 8990, 0.999}, {0.999, 100000, 0.999}, {0.5, 1, 2.0 / 11}, {0.5, 10, 0.5},
	} {
		if got := EMADecay(tc.decay, tc.step); math.Abs(got-tc.want) > 1e-15 {
			t.Errorf("EMADecay(%g, %d) = %g, want %g", tc.decay, tc.step, got, tc.want)
		}
	}
}

func TestProgress(t *testing.T) {
	var term, lines strings.Builder
	pt := &progress{w: &term, terminal: true, every: 2, total: 4}
	pl := &progress{w: &lines, terminal: false, every: 2, total: 4}
	for step := 1; step <= 4; step++ {
		s := status{step: step, epoch: 0.5, loss: 0.25, lr: 1e-3, imgS: 100, eta: time.Minute}
		pt.update(s)
		pl.update(s)
	}
	pl.note("saved")
	if got := term.String(); !strings.HasPrefix(got, "\r[######..................] 1/4") || !strings.Contains(got, "\r[########################] 4/4") ||
		!strings.Contains(got, "100 img/s  ETA 1m0s") || strings.Contains(got, "\n") {
		t.Errorf("terminal progress %q", got)
	}
	want := "step 2/4 epoch 0.50 loss 0.25000 lr 0.001 100.0 img/s elapsed 0s eta 1m0s\n" +
		"step 4/4 epoch 0.50 loss 0.25000 lr 0.001 100.0 img/s elapsed 0s eta 1m0s\nsaved\n"
	if lines.String() != want {
		t.Errorf("log lines\n%q\nwant\n%q", lines.String(), want)
	}
}

// TestValidateRunFileBounds: values a run file can set past the command line's checks are bounded:
// a progress grid of a billion images (drawn in one sampler call after the first steps, it died out
// of memory) and epochs so many that the run's step count overflowed into one step.
func TestValidateRunFileBounds(t *testing.T) {
	for _, tc := range []struct {
		json, want string
	}{
		{`{"sample-n": 1000000000}`, "--sample-n 1000000000: more than 1024"},
		{`{"steps": 0, "epochs": 1e300}`, "--epochs 1e+300: more than 1e+06"},
	} {
		p := filepath.Join(t.TempDir(), "run.json")
		os.WriteFile(p, []byte(tc.json), 0o644)
		if _, err := Resolve("", p, Config{}, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.json, err, tc.want)
		}
	}
	c := Default()
	c.SampleN, c.Steps, c.Epochs = MaxSampleN, 0, MaxEpochs
	if err := c.Validate(); err != nil {
		t.Errorf("at the bounds: %v", err)
	}
}

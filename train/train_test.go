package train

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/ddpm-go/ddpm/checkpoint"
	"github.com/ddpm-go/ddpm/data"
	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/tensor"
)

// tinyModel has every kind of layer (attention at 4x4, dropout, two levels) at a size the reference
// backend trains in milliseconds.
const tinyModel = `{"name": "tiny", "image_size": 8, "in_channels": 1, "out_channels": 1,
	"base_channels": 8, "channel_mult": [1, 2], "res_blocks": 1, "attn_resolutions": [4],
	"heads": 2, "dropout": 0.1, "time_embed_dim": 32, "sinusoidal_dim": 16, "groups": 4}`

// tinySet is 20 random 8x8 images: with batch 8, an epoch ends inside the third batch, so a
// resume at step 3 or later crosses an epoch boundary.
func tinySet(t *testing.T) *data.Set {
	t.Helper()
	r := rand.New(rand.NewPCG(1, 2))
	pix := make([]uint8, 20*64)
	for i := range pix {
		pix[i] = uint8(r.IntN(256))
	}
	s, err := data.NewSet("tiny", 20, 1, 8, 8, pix, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func tinyConfig(t *testing.T, out string) Config {
	t.Helper()
	model := filepath.Join(t.TempDir(), "tiny.json")
	if err := os.WriteFile(model, []byte(tinyModel), 0o644); err != nil {
		t.Fatal(err)
	}
	c := Default()
	c.Data, c.Model, c.Out = "tiny", model, out
	c.Batch, c.Steps, c.Warmup, c.LR = 8, 6, 2, 1e-3
	c.Engine, c.Precision, c.Threads = "ref", "fp32", 2
	c.CkptEvery, c.SampleEvery, c.SampleN, c.Keep, c.LogEvery = 3, 4, 4, 2, 1
	c.Flip, c.WeightDecay, c.Seed = true, 0.01, 7
	return c
}

func runTiny(t *testing.T, ctx context.Context, c Config, resume bool, log *bytes.Buffer) (*Result, error) {
	t.Helper()
	if log == nil {
		log = new(bytes.Buffer)
	}
	return Run(ctx, c, Options{Resume: resume, Set: tinySet(t), Backend: tensor.NewReference(2), Log: log})
}

// sameFile fails unless two training-state files hold bit-identical tensors (weights, EMA, AdamW
// moments) and the same step and data position.
func sameFile(t *testing.T, a, b string) {
	t.Helper()
	fa, err := checkpoint.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	fb, err := checkpoint.ReadFile(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(fa.Tensors) != len(fb.Tensors) {
		t.Fatalf("%d vs %d tensors", len(fa.Tensors), len(fb.Tensors))
	}
	for _, ta := range fa.Tensors {
		tb, ok := fb.Lookup(ta.Name)
		if !ok {
			t.Fatalf("%s missing from %s", ta.Name, b)
		}
		for i := range ta.Data {
			if math.Float32bits(ta.Data[i]) != math.Float32bits(tb.Data[i]) {
				t.Fatalf("%s[%d]: %v (straight) != %v (resumed)", ta.Name, i, ta.Data[i], tb.Data[i])
			}
		}
	}
	for _, k := range []string{checkpoint.MetaStep, checkpoint.MetaDropoutSeed, checkpoint.MetaAdamW, metaBatcher} {
		if fa.Metadata[k] != fb.Metadata[k] {
			t.Fatalf("metadata %s: %q vs %q", k, fa.Metadata[k], fb.Metadata[k])
		}
	}
}

func lossColumn(t *testing.T, dir string) []float64 {
	t.Helper()
	rows, err := ReadMetrics(filepath.Join(dir, checkpoint.MetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	var l []float64
	for i, r := range rows {
		if r.Step != i+1 {
			t.Fatalf("metrics row %d has step %d", i, r.Step)
		}
		l = append(l, r.Loss)
	}
	return l
}

// TestResumeBitIdentical trains 6 steps straight, 3 + resume 3, and 2-ish steps cut by a
// cancellation (as Ctrl-C) + resume, and requires the final training states to be equal bit for
// bit: weights, EMA, AdamW moments, data order, dropout seed.
func TestResumeBitIdentical(t *testing.T) {
	root := t.TempDir()
	straight := tinyConfig(t, filepath.Join(root, "straight"))
	res, err := runTiny(t, context.Background(), straight, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Step != 6 || res.Checkpoint != checkpoint.CheckpointPath(straight.Out, 6) {
		t.Fatalf("straight run: %+v", res)
	}

	// 3 steps, then resume with --steps 6.
	split := tinyConfig(t, filepath.Join(root, "split"))
	split.Model = straight.Model
	split.Steps = 3
	if _, err := runTiny(t, context.Background(), split, false, nil); err != nil {
		t.Fatal(err)
	}
	resumed, err := ResumeConfig(split.Out, Config{Steps: 6}, []string{"steps"})
	if err != nil {
		t.Fatal(err)
	}
	if res, err = runTiny(t, context.Background(), resumed, true, nil); err != nil {
		t.Fatal(err)
	}
	if res.Start != 3 || res.Step != 6 {
		t.Fatalf("resumed run went from %d to %d, want 3 to 6", res.Start, res.Step)
	}
	sameFile(t, checkpoint.CheckpointPath(straight.Out, 6), checkpoint.CheckpointPath(split.Out, 6))

	// Interrupted by a cancellation after step 2 (no periodic checkpoint yet), then resumed.
	cut := tinyConfig(t, filepath.Join(root, "cut"))
	cut.Model = straight.Model
	ctx, cancel := context.WithCancel(context.Background())
	log := &cancelWriter{at: "step 2/6", cancel: cancel}
	_, err = Run(ctx, cut, Options{Set: tinySet(t), Backend: tensor.NewReference(2), Log: log})
	if !errors.Is(err, ErrInterrupted) {
		t.Fatalf("cancelled run returned %v, want ErrInterrupted", err)
	}
	if _, step, err := checkpoint.LatestCheckpoint(cut.Out); err != nil || step != 2 {
		t.Fatalf("after Ctrl-C: latest checkpoint step %d, %v; want 2", step, err)
	}
	resumed, err = ResumeConfig(cut.Out, Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := runTiny(t, context.Background(), resumed, true, nil); err != nil {
		t.Fatal(err)
	}
	sameFile(t, checkpoint.CheckpointPath(straight.Out, 6), checkpoint.CheckpointPath(cut.Out, 6))

	// The logged losses agree too, and the metrics have exactly one row per step.
	a, b, c := lossColumn(t, straight.Out), lossColumn(t, split.Out), lossColumn(t, cut.Out)
	for i := range a {
		if a[i] != b[i] || a[i] != c[i] {
			t.Fatalf("loss of step %d: %v straight, %v split, %v cut", i+1, a[i], b[i], c[i])
		}
	}
	if len(a) != 6 || len(b) != 6 || len(c) != 6 {
		t.Fatalf("metrics rows %d %d %d, want 6", len(a), len(b), len(c))
	}

	// Keep = 2: only the newest two checkpoints remain.
	steps, _, _ := checkpoint.Checkpoints(straight.Out)
	if len(steps) != 2 || steps[0] != 3 || steps[1] != 6 {
		t.Fatalf("checkpoints kept: %v, want [3 6]", steps)
	}
	for _, f := range []string{checkpoint.ConfigFile, checkpoint.ModelFile, checkpoint.EMAFile, checkpoint.MetricsFile, checkpoint.LossPlotFile} {
		if _, err := os.Stat(filepath.Join(straight.Out, f)); err != nil {
			t.Error(err)
		}
	}
	if _, err := os.Stat(checkpoint.GridPath(straight.Out, 4)); err != nil {
		t.Errorf("sample grid of step 4: %v", err)
	}
}

// cancelWriter cancels a context when a log line containing at is written: a deterministic Ctrl-C.
type cancelWriter struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	at     string
	cancel func()
}

func (w *cancelWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if strings.Contains(string(p), w.at) {
		w.cancel()
	}
	return w.buf.Write(p)
}

func TestLoadForSampling(t *testing.T) {
	c := tinyConfig(t, filepath.Join(t.TempDir(), "run"))
	c.Prediction = "v"
	c.Schedule = "cosine"
	c.Timesteps = 100
	c.Steps = 3
	if _, err := runTiny(t, context.Background(), c, false, nil); err != nil {
		t.Fatal(err)
	}
	be := tensor.NewReference(1)
	ck := checkpoint.CheckpointPath(c.Out, 3)
	ckFile, err := checkpoint.ReadFile(ck)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path    string
		ema     bool
		file    string
		wantEMA bool
		prefix  string
	}{
		{c.Out, true, filepath.Join(c.Out, checkpoint.EMAFile), true, checkpoint.PrefixEMA},
		{c.Out, false, ck, false, ""},
		{ck, true, ck, true, checkpoint.PrefixEMA},
		{ck, false, ck, false, ""},
		{filepath.Join(c.Out, checkpoint.EMAFile), true, filepath.Join(c.Out, checkpoint.EMAFile), true, checkpoint.PrefixEMA},
	} {
		s, err := checkpoint.LoadForSampling(tc.path, be, tc.ema)
		if err != nil {
			t.Fatalf("%s ema=%v: %v", tc.path, tc.ema, err)
		}
		if s.Source != tc.file || s.EMA != tc.wantEMA || s.Step != 3 || s.Prediction != diffusion.V ||
			s.Schedule.Name != "cosine" || s.Schedule.T != 100 {
			t.Fatalf("%s ema=%v: got path %s ema %v step %d prediction %v schedule %s/%d", tc.path, tc.ema,
				s.Source, s.EMA, s.Step, s.Prediction, s.Schedule.Name, s.Schedule.T)
		}
		// The weights are the checkpoint's EMA or model copy.
		p := s.Net.Params()[0]
		want, _ := ckFile.Lookup(tc.prefix + p.Name)
		if p.W[0] != want.Data[0] {
			t.Fatalf("%s ema=%v: %s[0] = %v, checkpoint %s%s has %v", tc.path, tc.ema, p.Name, p.W[0], tc.prefix, p.Name, want.Data[0])
		}
	}
}

// TestResumeErrors: corrupt, truncated and mismatched checkpoints are errors naming the file.
func TestResumeErrors(t *testing.T) {
	c := tinyConfig(t, filepath.Join(t.TempDir(), "run"))
	c.Steps, c.SampleN = 3, 0
	if _, err := runTiny(t, context.Background(), c, false, nil); err != nil {
		t.Fatal(err)
	}
	ck := checkpoint.CheckpointPath(c.Out, 3)
	good, err := os.ReadFile(ck)
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(c.Out, checkpoint.ConfigFile)
	goodCfg, _ := os.ReadFile(cfgPath)
	resume := func() error {
		rc, err := ResumeConfig(c.Out, Config{Steps: 5}, []string{"steps"})
		if err != nil {
			return err
		}
		_, err = runTiny(t, context.Background(), rc, true, nil)
		return err
	}
	for _, tc := range []struct {
		name   string
		mutate func()
		want   string
	}{
		{"truncated", func() { os.WriteFile(ck, good[:len(good)/2], 0o644) }, ck},
		{"garbage header", func() {
			b := append([]byte(nil), good...)
			copy(b[8:], "{{{{")
			os.WriteFile(ck, b, 0o644)
		}, ck},
		{"empty", func() { os.WriteFile(ck, nil, 0o644) }, ck},
		{"other schedule", func() {
			var cc Config
			json.Unmarshal(goodCfg, &cc)
			cc.Schedule = "cosine"
			b, _ := json.Marshal(cc)
			os.WriteFile(cfgPath, b, 0o644)
		}, ck},
		{"other model", func() {
			var cc Config
			json.Unmarshal(goodCfg, &cc)
			cc.Model = "unet-s"
			b, _ := json.Marshal(cc)
			os.WriteFile(cfgPath, b, 0o644)
		}, "model"},
		{"no checkpoint", func() { os.Remove(ck) }, filepath.Join(c.Out, checkpoint.CheckpointDir)},
		{"bad config.json", func() { os.WriteFile(cfgPath, []byte(`{"data": "tiny", "bogus": 1}`), 0o644) }, cfgPath},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.mutate()
			defer os.WriteFile(ck, good, 0o644)
			defer os.WriteFile(cfgPath, goodCfg, 0o644)
			err := resume()
			if err == nil {
				t.Fatal("resume succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not name %s", err, tc.want)
			}
		})
	}
	// A fresh run into a directory that holds one is refused rather than mixed in.
	if _, err := runTiny(t, context.Background(), c, false, nil); err == nil || !strings.Contains(err.Error(), "--resume") {
		t.Fatalf("second fresh run into %s: %v", c.Out, err)
	}
	// And after all that the good checkpoint still resumes.
	if err := resume(); err != nil {
		t.Fatal(err)
	}
}

// TestCooldownOnResume decides on the cooldown only when resuming, as a warmup-stable-decay run
// does, and requires the result to equal a run that planned it from the start, with the learning
// rate falling linearly over the last steps.
func TestCooldownOnResume(t *testing.T) {
	root := t.TempDir()
	planned := tinyConfig(t, filepath.Join(root, "planned"))
	planned.Cooldown = 3
	if _, err := runTiny(t, context.Background(), planned, false, nil); err != nil {
		t.Fatal(err)
	}
	late := tinyConfig(t, filepath.Join(root, "late"))
	late.Model = planned.Model
	late.Steps = 3
	if _, err := runTiny(t, context.Background(), late, false, nil); err != nil {
		t.Fatal(err)
	}
	resumed, err := ResumeConfig(late.Out, Config{Steps: 6, Cooldown: 3}, []string{"steps", "cooldown"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := runTiny(t, context.Background(), resumed, true, nil); err != nil {
		t.Fatal(err)
	}
	sameFile(t, checkpoint.CheckpointPath(planned.Out, 6), checkpoint.CheckpointPath(late.Out, 6))
	rows, err := ReadMetrics(filepath.Join(late.Out, checkpoint.MetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	base := planned.LR
	want := []float64{base / 2, base, base, base, base * 2 / 3, base / 3} // warmup 2, cooldown 3
	if planned.Warmup != 2 || len(rows) != len(want) {
		t.Fatalf("warmup %d, %d metrics rows; the test expects 2 and %d", planned.Warmup, len(rows), len(want))
	}
	for i, r := range rows {
		if math.Abs(r.LR-want[i]) > 1e-6*base {
			t.Errorf("step %d: lr %g, want %g", r.Step, r.LR, want[i])
		}
	}
	// The resume wrote its steps and cooldown into config.json, so the next resume keeps them.
	if again, err := ResumeConfig(late.Out, Config{}, nil); err != nil || again.Steps != 6 || again.Cooldown != 3 {
		t.Errorf("config after the resume: steps %d, cooldown %d, %v; want 6, 3", again.Steps, again.Cooldown, err)
	}
	// With --epochs the length is known only once the data is: a cooldown longer than that is refused.
	byEpochs := tinyConfig(t, filepath.Join(root, "epochs"))
	byEpochs.Steps, byEpochs.Epochs, byEpochs.Cooldown = 0, 0.01, 1000
	if _, err := runTiny(t, context.Background(), byEpochs, false, nil); err == nil || !strings.Contains(err.Error(), "--cooldown") {
		t.Errorf("a cooldown longer than an --epochs run: %v", err)
	}
	if _, err := ResumeConfig(late.Out, Config{Cooldown: -1}, []string{"cooldown"}); err == nil {
		t.Error("a negative cooldown was accepted")
	}
}

// TestAverageWeights averages the EMA weights of a run's two checkpoints and requires the file to
// load for sampling with every weight the mean of the two, and bad inputs to be errors.
func TestAverageWeights(t *testing.T) {
	root := t.TempDir()
	c := tinyConfig(t, filepath.Join(root, "run"))
	if _, err := runTiny(t, context.Background(), c, false, nil); err != nil {
		t.Fatal(err)
	}
	a, b := checkpoint.CheckpointPath(c.Out, 3), checkpoint.CheckpointPath(c.Out, 6)
	out := filepath.Join(root, "avg.safetensors")
	if err := AverageWeights(out, []string{a, b}, true); err != nil {
		t.Fatal(err)
	}
	be := tensor.NewReference(1)
	avg, err := checkpoint.LoadForSampling(out, be, true)
	if err != nil {
		t.Fatal(err)
	}
	sa, _ := checkpoint.LoadForSampling(a, be, true)
	sb, _ := checkpoint.LoadForSampling(b, be, true)
	pa, pb, pm := sa.Net.Params(), sb.Net.Params(), avg.Net.Params()
	differ := false
	for j := range pm {
		for k := range pm[j].W {
			want := float32((float64(pa[j].W[k]) + float64(pb[j].W[k])) / 2)
			if pm[j].W[k] != want {
				t.Fatalf("%s[%d] = %v, want %v", pm[j].Name, k, pm[j].W[k], want)
			}
			differ = differ || pa[j].W[k] != pb[j].W[k]
		}
	}
	if !differ {
		t.Fatal("the two checkpoints hold the same weights; the test shows nothing")
	}
	if avg.Meta[MetaAveraged] != "3,6" || avg.Meta[checkpoint.MetaPrediction] != sa.Meta[checkpoint.MetaPrediction] {
		t.Errorf("metadata %v", avg.Meta)
	}
	other := tinyConfig(t, filepath.Join(root, "other"))
	other.Prediction = "v"
	if _, err := runTiny(t, context.Background(), other, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := AverageWeights(out, []string{a, checkpoint.CheckpointPath(other.Out, 6)}, true); err == nil || !strings.Contains(err.Error(), "prediction") {
		t.Errorf("checkpoints trained for other predictions: %v", err)
	}
	if err := AverageWeights(out, nil, true); err == nil {
		t.Error("no checkpoints: no error")
	}
	if err := AverageWeights(out, []string{a, filepath.Join(root, "missing.safetensors")}, true); err == nil {
		t.Error("a missing checkpoint: no error")
	}
}

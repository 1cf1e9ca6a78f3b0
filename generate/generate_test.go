package generate

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/ddpm-go/ddpm/checkpoint"
	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/imageio"
	"github.com/ddpm-go/ddpm/nn"
	"github.com/ddpm-go/ddpm/schedule"
	"github.com/ddpm-go/ddpm/tensor"
	"github.com/ddpm-go/ddpm/tensor/dnnl"
)

// tinyConfig is a UNet small enough to sample in milliseconds, with attention at 4x4 so every kind
// of layer takes part.
func tinyConfig() nn.Config {
	return nn.Config{Name: "tiny", ImageSize: 8, InChannels: 1, OutChannels: 1, BaseChannels: 8,
		ChannelMult: []int{1, 2}, ResBlocks: 1, AttnResolutions: []int{4}, Heads: 2,
		TimeEmbedDim: 16, SinusoidalDim: 8, Groups: 4}
}

func tinyModel(t testing.TB, be tensor.Backend, seed uint64) *Model {
	t.Helper()
	u, err := nn.New(tinyConfig(), be, seed)
	if err != nil {
		t.Fatal(err)
	}
	s, err := schedule.New("linear", 100, false)
	if err != nil {
		t.Fatal(err)
	}
	return &Model{checkpoint.Model{Net: u, Schedule: s, Prediction: diffusion.Eps, Source: "random"}}
}

func TestBatches(t *testing.T) {
	for _, tc := range []struct {
		n, start, batch int
		want            []Batch
	}{
		{4, 0, 0, []Batch{{0, 1, 0, 4}}},
		{4, 0, 8, []Batch{{0, 1, 0, 4}}},
		{5, 10, 2, []Batch{{0, 3, 10, 2}, {1, 3, 12, 2}, {2, 3, 14, 1}}},
		{3, 1, 1, []Batch{{0, 3, 1, 1}, {1, 3, 2, 1}, {2, 3, 3, 1}}},
	} {
		if got := (Job{N: tc.n, Start: tc.start, Batch: tc.batch}).Batches(); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("n=%d start=%d batch=%d: %v, want %v", tc.n, tc.start, tc.batch, got, tc.want)
		}
	}
}

// backends are the engines the batch-invariance promise is checked on.
func backends(t *testing.T) map[string]tensor.Backend {
	bes := map[string]tensor.Backend{"ref1": tensor.NewReference(1), "ref2": tensor.NewReference(2)}
	if dnnl.Available() {
		for _, threads := range []int{1, 2} {
			be, err := dnnl.New(dnnl.Options{Precision: "fp32", Threads: threads})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { be.(interface{ Close() error }).Close() })
			bes["dnnl-fp32-"+string(rune('0'+threads))] = be
		}
	}
	return bes
}

// TestBatchInvariance is the promise of the package: image i depends on the seed and its global
// index only. Four images in one batch, in batches of one, and the last two alone with start = 2 must
// agree to the bit, with DDPM (noise every step) and DDIM, with and without a given x_T, on every
// engine and thread count; and the engines must agree with each other in the images' bytes.
func TestBatchInvariance(t *testing.T) {
	ctx := context.Background()
	bes := backends(t)
	var refBytes []uint8
	for name, be := range bes {
		chunk := 0
		if strings.HasPrefix(name, "dnnl") {
			chunk = 3 // not a divisor of 4, so chunks straddle batches
		}
		m := tinyModel(t, be, 3)
		dim := m.Dim()
		xt := make([]float64, 4*dim)
		for i := range xt {
			xt[i] = math.Sin(float64(i))
		}
		for _, sp := range []SamplerSpec{{Name: "ddpm", Steps: 12}, {Name: "ddim", Steps: 8, Eta: 0.5, Spacing: "trailing", Clip: true}} {
			sampler, _, err := sp.New(m.Schedule)
			if err != nil {
				t.Fatal(err)
			}
			for _, init := range [][]float64{nil, xt} {
				all, err := m.Sample(ctx, sampler, Job{N: 4, Seed: 9, Batch: 4, XT: init, Chunk: chunk})
				if err != nil {
					t.Fatal(err)
				}
				ones, err := m.Sample(ctx, sampler, Job{N: 4, Seed: 9, Batch: 1, XT: init, Chunk: chunk})
				if err != nil {
					t.Fatal(err)
				}
				var tailXT []float64
				if init != nil {
					tailXT = init[2*dim:]
				}
				tail, err := m.Sample(ctx, sampler, Job{N: 2, Start: 2, Seed: 9, Batch: 3, XT: tailXT, Chunk: chunk})
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(all, ones) || !reflect.DeepEqual(all[2*dim:], tail) {
					t.Errorf("%s %s (x_T given: %v): batch 4, batch 1 and start 2 differ", name, sp.Name, init != nil)
				}
				other, err := m.Sample(ctx, sampler, Job{N: 4, Seed: 10, Batch: 4, XT: init, Chunk: chunk})
				if err != nil {
					t.Fatal(err)
				}
				if sp.Name == "ddpm" && reflect.DeepEqual(all, other) {
					t.Errorf("%s: seeds 9 and 10 give the same DDPM samples", name)
				}
				if sp.Name == "ddpm" && init == nil {
					b := imageio.ToUint8(nil, all)
					if refBytes == nil {
						refBytes = b
					} else if diff := countDiff(refBytes, b); diff > len(b)/100 {
						t.Errorf("%s: %d of %d bytes differ from another engine's", name, diff, len(b))
					}
				}
			}
		}
	}
}

func countDiff(a, b []uint8) int {
	n := 0
	for i := range a {
		if a[i] != b[i] {
			n++
		}
	}
	return n
}

func TestRunErrors(t *testing.T) {
	m := tinyModel(t, tensor.NewReference(1), 1)
	sampler, _, _ := SamplerSpec{Name: "ddim", Steps: 2}.New(m.Schedule)
	ctx := context.Background()
	for _, tc := range []struct {
		job  Job
		want string
	}{
		{Job{N: 0}, "at least one"},
		{Job{N: 2, Start: -1}, "start"},
		{Job{N: 2, XT: make([]float64, 3)}, "x_T has 3 values"},
	} {
		if _, err := m.Sample(ctx, sampler, tc.job); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: got %v, want an error containing %q", tc.job, err, tc.want)
		}
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := m.Sample(cctx, sampler, Job{N: 2, Batch: 1}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: got %v", err)
	}
	stop := errors.New("stop")
	calls := 0
	_, err := m.Sample(ctx, sampler, Job{N: 3, Batch: 2, Step: func(b Batch, s diffusion.Step) error {
		calls++
		if b.Index == 1 {
			if b.Start != 2 || b.N != 1 || s.Total != 2 {
				t.Errorf("second batch %+v step %d/%d", b, s.Index, s.Total)
			}
			return stop
		}
		return nil
	}})
	if !errors.Is(err, stop) || calls != 3 || !strings.Contains(err.Error(), "batch 2/2 (images 2..2)") {
		t.Errorf("callback error: got %v after %d calls", err, calls)
	}

	// Emit sees every batch, in order, with exactly what Run would have returned.
	whole, err := m.Sample(ctx, sampler, Job{N: 5, Seed: 4, Batch: 2})
	if err != nil {
		t.Fatal(err)
	}
	var emitted []float64
	var starts []int
	got, err := m.Sample(ctx, sampler, Job{N: 5, Seed: 4, Batch: 2, Emit: func(b Batch, x []float64) error {
		starts = append(starts, b.Start)
		emitted = append(emitted, x...)
		return nil
	}})
	if err != nil || got != nil || !reflect.DeepEqual(emitted, whole) || !reflect.DeepEqual(starts, []int{0, 2, 4}) {
		t.Errorf("Emit: err %v, returned %d values, batches %v, same images %v", err, len(got), starts, reflect.DeepEqual(emitted, whole))
	}
}

func TestSamplerSpec(t *testing.T) {
	s, _ := schedule.New("linear", 100, false)
	for _, tc := range []struct {
		spec SamplerSpec
		want string // error substring, or the resolved String
	}{
		{SamplerSpec{Name: "ddpm"}, "ddpm-100 beta variance linspace"},
		{SamplerSpec{Name: "ddpm", Variance: "posterior", Steps: 10, Spacing: "leading"}, "ddpm-10 posterior variance leading"},
		{SamplerSpec{Name: "ddim"}, "ddim-50 eta=0 linspace"},
		{SamplerSpec{Name: "ddim", Steps: 7, SigmaHat: true, Spacing: "trailing", Clip: true}, "ddim-7 sigma-hat trailing clip"},
		{SamplerSpec{Name: "dpm-solver++", Steps: 20}, "dpm-solver++-20 linspace"},
		{SamplerSpec{Name: "plms"}, "plms-50 linspace"},
		{SamplerSpec{Name: "ddim", EpsScale: 1.012}, "ddim-50 eta=0 linspace eps-scale=1.012"},
		{SamplerSpec{Name: "ddpm", Steps: 10, EpsScale: 0.99, Clip: true}, "ddpm-10 beta variance linspace clip eps-scale=0.99"},
		{SamplerSpec{Name: "ddim", EpsScale: -1}, "eps-scale -1"},
		{SamplerSpec{Name: "plms", EpsScale: math.Inf(1)}, "eps-scale"},
		{SamplerSpec{Name: "plms", Eta: 0.5}, "apply to the ddim"},
		{SamplerSpec{Name: "ddim", Steps: 101}, "steps 101 outside [1, 100]"},
		{SamplerSpec{Name: "ddim", Steps: -1}, "outside"},
		{SamplerSpec{Name: "ddim", Eta: -0.1}, "eta"},
		{SamplerSpec{Name: "ddim", Eta: math.NaN()}, "eta"},
		{SamplerSpec{Name: "ddim", Eta: 1, SigmaHat: true}, "sigma-hat"},
		{SamplerSpec{Name: "ddim", Variance: "beta"}, "variance applies"},
		{SamplerSpec{Name: "ddpm", SigmaHat: true}, "apply to the ddim"},
		{SamplerSpec{Name: "ddpm", Eta: 1}, "apply to the ddim"},
		{SamplerSpec{Name: "ddpm", Variance: "small"}, "unknown variance"},
		{SamplerSpec{Name: "ddim", Spacing: "uniform"}, "unknown spacing"},
		{SamplerSpec{Name: "euler"}, "unknown sampler"},
	} {
		_, got, err := tc.spec.New(s)
		msg := ""
		if err != nil {
			msg = err.Error()
		} else {
			msg = got.String()
		}
		if !strings.Contains(msg, tc.want) {
			t.Errorf("%+v: got %q, want %q", tc.spec, msg, tc.want)
		}
		if err == nil && (tc.spec.EpsScale == 0 || tc.spec.EpsScale == 1) && strings.Contains(msg, "eps-scale") {
			t.Errorf("%+v: an unscaled sampler describes itself as %q", tc.spec, msg)
		}
	}
}

func TestLoad(t *testing.T) {
	be := tensor.NewReference(2)
	run := t.TempDir()
	u, _ := nn.New(tinyConfig(), be, 1)
	ema := nn.NewEMA(u.Params(), 0.5)
	for _, p := range u.Params() { // move the model away from its EMA so the two can be told apart
		for i := range p.W {
			p.W[i] += 0.25
		}
	}
	meta := map[string]string{checkpoint.MetaSchedule: "cosine", checkpoint.MetaTimesteps: "50", checkpoint.MetaZeroSNR: "false", checkpoint.MetaPrediction: "v"}
	if err := checkpoint.SaveWeights(filepath.Join(run, checkpoint.EMAFile), u.Cfg, ema.Params(), meta); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Dir(checkpoint.CheckpointPath(run, 7)), 0o755)
	if err := checkpoint.SaveTraining(checkpoint.CheckpointPath(run, 7), &checkpoint.Training{Model: u, EMA: ema, Step: 7, Meta: meta}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path    string
		ema     bool
		weights *nn.UNet
		params  []*tensor.Param
	}{
		{run, true, nil, ema.Params()},
		{run, false, u, nil},
		{checkpoint.CheckpointPath(run, 7), true, nil, ema.Params()},
		{checkpoint.CheckpointPath(run, 7), false, u, nil},
	} {
		m, err := Load(tc.path, be, tc.ema)
		if err != nil {
			t.Fatal(err)
		}
		want := tc.params
		if tc.weights != nil {
			want = tc.weights.Params()
		}
		if !reflect.DeepEqual(m.Net.Params()[0].W, want[0].W) || m.EMA != tc.ema {
			t.Errorf("%s ema=%v: wrong weights (EMA %v)", tc.path, tc.ema, m.EMA)
		}
		if m.Schedule.Name != "cosine" || m.Schedule.T != 50 || m.Prediction != diffusion.V || m.Dim() != 64 {
			t.Errorf("%s: %s T=%d %v dim %d", tc.path, m.Schedule.Name, m.Schedule.T, m.Prediction, m.Dim())
		}
	}

	// Errors name the file.
	bad := filepath.Join(run, "bad.safetensors")
	os.WriteFile(bad, []byte("not a safetensors file at all"), 0o644)
	badMeta := filepath.Join(run, "badmeta.safetensors")
	checkpoint.SaveModel(badMeta, u, map[string]string{checkpoint.MetaSchedule: "quadratic"})
	for _, tc := range []struct{ path, want string }{
		{bad, bad},
		{badMeta, badMeta},
		{filepath.Join(run, "missing.safetensors"), "missing.safetensors"},
		{t.TempDir(), checkpoint.EMAFile},
	} {
		if _, err := Load(tc.path, be, true); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Load(%s): %v, want an error naming %q", tc.path, err, tc.want)
		}
	}
}

func TestLoadShipped(t *testing.T) {
	m, err := LoadShipped(tensor.NewReference(1))
	if err != nil {
		t.Fatal(err)
	}
	if c, h, w := m.Shape(); c != 1 || h != 28 || w != 28 {
		t.Errorf("shipped model draws %dx%dx%d images, want 1x28x28 digits", c, h, w)
	}
}

// TestAligned checks the chunking predictor: every inner call has exactly k rows, and the row of
// global index g sits at position g mod k, whatever the batch's start.
func TestAligned(t *testing.T) {
	const k, dim = 4, 2
	inner := diffusion.PredictorFunc(func(_ context.Context, x []float64, n, d, _ int, out []float64) error {
		if n != k || d != dim {
			t.Fatalf("inner call with %d rows of %d", n, d)
		}
		for r := 0; r < n; r++ {
			for j := 0; j < d; j++ {
				out[r*d+j] = 2*x[r*d+j] + float64(r) // the position leaves its mark
			}
		}
		return nil
	})
	for _, start := range []int{0, 3, 5, 8} {
		n := 7
		a := &aligned{inner: unlabeled{inner}, start: start, rows: n, k: k}
		x := make([]float64, n*dim)
		for i := range x {
			x[i] = float64(i)
		}
		out := make([]float64, n*dim)
		if err := a.Predict(context.Background(), x, nil, n, dim, 0, out); err != nil {
			t.Fatal(err)
		}
		for r := 0; r < n; r++ {
			for j := 0; j < dim; j++ {
				if want := 2*x[r*dim+j] + float64((start+r)%k); out[r*dim+j] != want {
					t.Fatalf("start %d row %d: %v, want %v", start, r, out[r*dim+j], want)
				}
			}
		}
	}
}

func TestDefaultChunk(t *testing.T) {
	if got := DefaultChunk(tensor.NewReference(1)); got != 0 {
		t.Errorf("reference engine: chunk %d, want 0", got)
	}
	if dnnl.Available() {
		be, err := dnnl.New(dnnl.Options{Precision: "fp32", Threads: 1})
		if err != nil {
			t.Fatal(err)
		}
		defer be.(interface{ Close() error }).Close()
		if got := DefaultChunk(be); got != 32 {
			t.Errorf("dnnl: chunk %d, want 32", got)
		}
	}
}

// labeledFunc adapts a function to diffusion.LabeledPredictor.
type labeledFunc func(x []float64, labels []int, n, dim int, out []float64) error

func (f labeledFunc) Predict(_ context.Context, x []float64, labels []int, n, dim, _ int, out []float64) error {
	return f(x, labels, n, dim, out)
}

// TestAlignedGuidance: a guided call (2n rows: the batch's rows with their labels, then the same
// rows unlabelled) goes out as calls of 2k rows, each chunk's conditional rows at positions
// g mod k and its unconditional rows at k + g mod k, padding unlabelled; every output row is its own.
func TestAlignedGuidance(t *testing.T) {
	const k, dim, n = 4, 2, 7
	for _, start := range []int{0, 3, 5} {
		var calls int
		inner := labeledFunc(func(x []float64, labels []int, rows, d int, out []float64) error {
			calls++
			if rows != 2*k || len(labels) != 2*k {
				t.Fatalf("inner call with %d rows, %d labels; want %d", rows, len(labels), 2*k)
			}
			for r := range rows {
				if r >= k && labels[r] != diffusion.NoLabel {
					t.Fatalf("row %d of the unconditional half has label %d", r, labels[r])
				}
				for j := range d {
					out[r*d+j] = 2*x[r*d+j] + float64(r) + 100*float64(labels[r])
				}
			}
			return nil
		})
		a := &aligned{inner: inner, start: start, rows: n, k: k}
		x := make([]float64, 2*n*dim)
		labels := make([]int, 2*n)
		for i := range x {
			x[i] = float64(i)
		}
		for r := range n {
			labels[r], labels[n+r] = r%3, diffusion.NoLabel
		}
		out := make([]float64, 2*n*dim)
		if err := a.Predict(context.Background(), x, labels, 2*n, dim, 0, out); err != nil {
			t.Fatal(err)
		}
		for r := range 2 * n {
			pos := (start + r%n) % k
			if r >= n {
				pos += k
			}
			for j := range dim {
				if want := 2*x[r*dim+j] + float64(pos) + 100*float64(labels[r]); out[r*dim+j] != want {
					t.Fatalf("start %d row %d: %v, want %v", start, r, out[r*dim+j], want)
				}
			}
		}
		if want := (start+n-1)/k - start/k + 1; calls != want {
			t.Errorf("start %d: %d calls, want one per chunk (%d)", start, calls, want)
		}
	}
}

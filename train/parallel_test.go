package train

import (
	"bytes"
	"context"
	"math"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/ddpm-go/ddpm/checkpoint"
	"github.com/ddpm-go/ddpm/mpi"
	"github.com/ddpm-go/ddpm/tensor"
)

// runRanks trains c on n in-process ranks (mpi.NewLocal) and returns rank 0's error.
func runRanks(t *testing.T, c Config, n int, resume bool) error {
	t.Helper()
	comms := mpi.NewLocal(n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for r, comm := range comms {
		wg.Go(func() {
			_, errs[r] = Run(context.Background(), c, Options{Resume: resume, Set: tinySet(t), Backend: tensor.NewReference(1),
				Log: new(bytes.Buffer), Comm: comm})
		})
	}
	wg.Wait()
	for r, err := range errs[1:] {
		if err != nil {
			t.Fatalf("rank %d: %v", r+1, err)
		}
	}
	return errs[0]
}

// closeLosses fails unless two loss columns agree to rel relatively, row by row.
func closeLosses(t *testing.T, a, b []float64, rel float64) {
	t.Helper()
	if len(a) != len(b) {
		t.Fatalf("%d vs %d loss rows", len(a), len(b))
	}
	for i := range a {
		if math.Abs(a[i]-b[i]) > rel*math.Abs(a[i]) {
			t.Fatalf("step %d: loss %.9g vs %.9g", i+1, a[i], b[i])
		}
	}
}

// closeStates fails unless two training-state files hold the same tensors to within fp32
// rounding of the summation order (relative to the tensor's largest value), and the same step and
// data position; lrSteps is the learning rate times the steps of the run.
func closeStates(t *testing.T, a, b string, lrSteps float64) {
	t.Helper()
	fa, err := checkpoint.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	fb, err := checkpoint.ReadFile(b)
	if err != nil {
		t.Fatal(err)
	}
	if fa.Metadata[checkpoint.MetaStep] != fb.Metadata[checkpoint.MetaStep] || fa.Metadata[metaBatcher] != fb.Metadata[metaBatcher] {
		t.Fatalf("step/data position %s %s vs %s %s", fa.Metadata[checkpoint.MetaStep], fa.Metadata[metaBatcher],
			fb.Metadata[checkpoint.MetaStep], fb.Metadata[metaBatcher])
	}
	if len(fa.Tensors) != len(fb.Tensors) {
		t.Fatalf("%d vs %d tensors", len(fa.Tensors), len(fb.Tensors))
	}
	for _, ta := range fa.Tensors {
		tb, ok := fb.Lookup(ta.Name)
		if !ok {
			t.Fatalf("%s missing from %s", ta.Name, b)
		}
		var scale float64
		for _, v := range ta.Data {
			scale = max(scale, math.Abs(float64(v)))
		}
		// Weights and EMA: fp32 rounding of values of this size, plus what a gradient 1e-5 off
		// (rounding, summed in another order) moves AdamW's steps.
		limit := 1e-6*scale + 1e-5*lrSteps
		switch {
		case strings.HasSuffix(ta.Name, ".k.bias") && strings.HasPrefix(ta.Name, "adamw."):
			continue
		case strings.HasSuffix(ta.Name, ".k.bias"):
			// A key bias adds the same q.b to every logit of a query, which the softmax cancels: its
			// true gradient is 0 and what both runs compute is summation noise, which AdamW's
			// normalisation m/sqrt(v) turns into steps of up to lr in either run. Bounded by the
			// run's total step length, not by rounding.
			limit = 0.01 * lrSteps
		case strings.HasPrefix(ta.Name, "adamw."):
			limit = 1e-4 * scale // moments are gradients, summed in another order over the rows
		}
		for i := range ta.Data {
			if d := math.Abs(float64(ta.Data[i]) - float64(tb.Data[i])); d > limit {
				t.Fatalf("%s[%d]: %v (one process) vs %v (ranks): %.3g apart, limit %.3g", ta.Name, i, ta.Data[i], tb.Data[i], d, limit)
			}
		}
	}
}

// TestDataParallelMatchesOneProcess: 2 and 4 in-process ranks train the tiny model (dropout,
// attention, labels off) for 20 steps along the one-process trajectory: the loss column to 1e-5
// relative and the final weights, EMA and moments to fp32 rounding; only rank 0 writes the run
// directory. A resume on 2 ranks of a 1-process checkpoint continues the same run.
func TestDataParallelMatchesOneProcess(t *testing.T) {
	dir := t.TempDir()
	base := tinyConfig(t, filepath.Join(dir, "one"))
	base.Steps, base.CkptEvery, base.SampleEvery, base.Threads = 20, 10, 0, 1
	one := base
	if _, err := runTiny(t, context.Background(), one, false, nil); err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{2, 4} {
		c := base
		c.Out = filepath.Join(dir, "ranks", string(rune('0'+n)))
		if err := runRanks(t, c, n, false); err != nil {
			t.Fatal(err)
		}
		closeLosses(t, lossColumn(t, one.Out), lossColumn(t, c.Out), 1e-5)
		closeStates(t, checkpoint.CheckpointPath(one.Out, 20), checkpoint.CheckpointPath(c.Out, 20), c.LR*20)
	}

	// Resume: 10 steps on one process, then 10 more on 2 ranks (rank 0 reads and broadcasts).
	half := base
	half.Out, half.Steps = filepath.Join(dir, "resumed"), 10
	if _, err := runTiny(t, context.Background(), half, false, nil); err != nil {
		t.Fatal(err)
	}
	half.Steps = 20
	if err := runRanks(t, half, 2, true); err != nil {
		t.Fatal(err)
	}
	closeLosses(t, lossColumn(t, one.Out), lossColumn(t, half.Out), 1e-5)
	closeStates(t, checkpoint.CheckpointPath(one.Out, 20), checkpoint.CheckpointPath(half.Out, 20), half.LR*20)
}

func TestDataParallelBatchMustSplit(t *testing.T) {
	c := tinyConfig(t, filepath.Join(t.TempDir(), "run"))
	c.Batch = 6
	comms := mpi.NewLocal(4)
	_, err := Run(context.Background(), c, Options{Set: tinySet(t), Backend: tensor.NewReference(1), Comm: comms[0]})
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte("does not split over 4 ranks")) {
		t.Fatalf("batch 6 on 4 ranks: %v", err)
	}
}

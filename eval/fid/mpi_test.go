package fid

import (
	"context"
	"encoding/json"
	"io"
	"path/filepath"
	"sync"
	"testing"

	"github.com/ddpm-go/ddpm/checkpoint"
	"github.com/ddpm-go/ddpm/classifier"
	"github.com/ddpm-go/ddpm/data"
	"github.com/ddpm-go/ddpm/generate"
	"github.com/ddpm-go/ddpm/mpi"
	"github.com/ddpm-go/ddpm/nn"
	"github.com/ddpm-go/ddpm/tensor"
)

// tinyFixtures writes a random 1x28x28 UNet of k classes (0: unconditional, T = 20) and a random
// classifier, or skips t when MNIST is not cached (tests never download).
func tinyFixtures(t *testing.T, k int) (model, clf string) {
	t.Helper()
	if _, err := data.Load("mnist", "", data.Test); err != nil {
		t.Skipf("MNIST not cached: %v", err)
	}
	dir := t.TempDir()
	cfg := nn.Config{Name: "tiny28", ImageSize: 28, InChannels: 1, OutChannels: 1, BaseChannels: 8,
		ChannelMult: []int{1, 2}, ResBlocks: 1, Heads: 1, TimeEmbedDim: 16, SinusoidalDim: 8, Groups: 4, NumClasses: k}
	u, err := nn.New(cfg, tensor.NewReference(1), 2)
	if err != nil {
		t.Fatal(err)
	}
	model = filepath.Join(dir, "tiny.safetensors")
	meta := map[string]string{checkpoint.MetaSchedule: "linear", checkpoint.MetaTimesteps: "20", checkpoint.MetaZeroSNR: "false", checkpoint.MetaPrediction: "eps"}
	if err := checkpoint.SaveModel(model, u, meta); err != nil {
		t.Fatal(err)
	}
	c, err := classifier.New(classifier.Default(), tensor.NewReference(1), 3)
	if err != nil {
		t.Fatal(err)
	}
	clf = filepath.Join(dir, "clf.safetensors")
	if err := classifier.Save(clf, c, nil); err != nil {
		t.Fatal(err)
	}
	return model, clf
}

// withoutTiming is r's JSON without its timing field.
func withoutTiming(t *testing.T, r *Result) string {
	t.Helper()
	c := *r
	c.SampleSecs = 0
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestRunRanksMatchOneProcess: Run on 2 and 3 in-process ranks (mpi.NewLocal) gives rank 0 the
// one-process result, timing aside, and the other ranks nil; class-balanced (labels sharded with
// the images) and with --chunk cutting the parts unevenly too.
func TestRunRanksMatchOneProcess(t *testing.T) {
	model, clf := tinyFixtures(t, 3)
	two := 2.0
	base := Options{Data: "mnist", Classifier: clf, Ckpt: model, EMA: true, N: 11, Batch: 4, Chunk: -1, Seed: 7,
		Engine: "ref", Threads: 1, RefN: 64, KIDSubsets: 4, KIDSize: 5, Threshold: 0.9,
		Spec: generate.SamplerSpec{Name: "ddim", Steps: 2, Spacing: "linspace"}}
	balanced := base
	balanced.ClassBalanced, balanced.Guidance = true, &two
	chunked := balanced
	chunked.Chunk = 4
	for name, o := range map[string]Options{"plain": base, "balanced": balanced, "chunk 4": chunked} {
		one, err := Run(context.Background(), o, io.Discard)
		if err != nil {
			t.Fatalf("%s: one process: %v", name, err)
		}
		want := withoutTiming(t, one)
		for _, n := range []int{2, 3} {
			res := make([]*Result, n)
			errs := make([]error, n)
			var wg sync.WaitGroup
			for r, c := range mpi.NewLocal(n) {
				wg.Go(func() {
					o := o
					o.Comm = c
					res[r], errs[r] = Run(context.Background(), o, io.Discard)
				})
			}
			wg.Wait()
			for r := range n {
				if errs[r] != nil {
					t.Fatalf("%s, %d ranks: rank %d: %v", name, n, r, errs[r])
				}
				if r > 0 && res[r] != nil {
					t.Fatalf("%s, %d ranks: rank %d returned a result", name, n, r)
				}
			}
			if res[0] == nil {
				t.Fatalf("%s, %d ranks: no result on rank 0", name, n)
			}
			if got := withoutTiming(t, res[0]); got != want {
				t.Errorf("%s, %d ranks:\n%s\none process:\n%s", name, n, got, want)
			}
		}
	}
	// --drift follows every image in one process: refused on several ranks, by every rank.
	o := base
	o.Drift = filepath.Join(t.TempDir(), "drift.jsonl")
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for r, c := range mpi.NewLocal(2) {
		wg.Go(func() {
			o := o
			o.Comm = c
			_, errs[r] = Run(context.Background(), o, io.Discard)
		})
	}
	wg.Wait()
	if errs[0] == nil || errs[1] == nil {
		t.Errorf("--drift on 2 ranks: %v", errs)
	}
}

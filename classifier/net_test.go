package classifier

import (
	"context"
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/ddpm-go/ddpm/data"
	"github.com/ddpm-go/ddpm/tensor"
	"github.com/ddpm-go/ddpm/tensor/dnnl"
)

func tinyConfig() Config {
	return Config{InChannels: 1, ImageSize: 8, Widths: []int{4, 8}, Groups: 2, Features: 6, Classes: 3}
}

type host64 interface {
	Read64(*tensor.Tensor) []float64
	Upload64([]int, []float64) *tensor.Tensor
}

// TestGradients checks every parameter's gradient (a sample of entries of each) against central
// finite differences of L = sum(logits * r), in float64 through the reference backend.
func TestGradients(t *testing.T) {
	be := tensor.NewReference64(1)
	h64 := be.(host64)
	cfg := tinyConfig()
	n, err := New(cfg, be, 3)
	if err != nil {
		t.Fatal(err)
	}
	const N = 3
	x := make([]float64, N*64)
	r := rand.New(rand.NewPCG(1, 1))
	for i := range x {
		x[i] = r.NormFloat64()
	}
	rw := make([]float64, N*cfg.Classes)
	for i := range rw {
		rw[i] = r.NormFloat64()
	}
	loss := func(train bool) (float64, *tensor.Tensor) {
		xt := h64.Upload64([]int{N, 1, 8, 8}, x)
		f, l := n.Forward(xt, train)
		s := 0.0
		for i, v := range h64.Read64(l) {
			s += v * rw[i]
		}
		if !train {
			be.Release(f)
			be.Release(l)
			be.Release(xt)
			return s, nil
		}
		return s, l
	}
	_, logits := loss(true)
	n.ZeroGrad()
	dl := h64.Upload64(logits.Shape, rw)
	n.Backward(dl)
	for _, p := range n.Params() {
		for _, i := range []int{0, len(p.W) / 2, len(p.W) - 1} {
			w := p.W[i]
			const h = 1e-2
			p.W[i] = w + h
			p.Version++
			up, _ := loss(false)
			p.W[i] = w - h
			p.Version++
			down, _ := loss(false)
			p.W[i] = w
			p.Version++
			// The perturbations are exact in float32 only up to rounding of w +- h; use the actual step.
			step := float64(w+h) - float64(w-h)
			fd := (up - down) / step
			got := float64(p.G[i])
			if math.Abs(got-fd) > 2e-3*max(1, math.Abs(fd)) {
				t.Errorf("%s[%d]: gradient %.6g, finite differences %.6g", p.Name, i, got, fd)
			}
		}
	}
}

// TestCrossEntropy: loss and gradient against a direct computation and finite differences.
func TestCrossEntropy(t *testing.T) {
	logits := []float32{2, 1, 0.1, -1, 3, 0}
	labels := []uint8{0, 2}
	loss, grad, correct := CrossEntropy(logits, labels, 3)
	want := 0.0
	for i, l := range labels {
		row := logits[i*3 : (i+1)*3]
		s := 0.0
		for _, v := range row {
			s += math.Exp(float64(v))
		}
		want += -math.Log(math.Exp(float64(row[l])) / s)
	}
	want /= 2
	if math.Abs(loss-want) > 1e-12 || correct != 1 {
		t.Errorf("loss %v (want %v), correct %d (want 1)", loss, want, correct)
	}
	for i := range logits {
		const h = 1e-3
		p := append([]float32(nil), logits...)
		p[i] += h
		lp, _, _ := CrossEntropy(p, labels, 3)
		p[i] -= 2 * h
		lm, _, _ := CrossEntropy(p, labels, 3)
		if fd := (lp - lm) / (2 * h); math.Abs(fd-float64(grad[i])) > 1e-4 {
			t.Errorf("grad[%d] = %v, finite differences %v", i, grad[i], fd)
		}
	}
}

// squares is a 3-class toy set: a bright 3x3 square in one of three places on an 8x8 dark image,
// with a little noise.
func squares(n int, seed uint64) *data.Set {
	r := rand.New(rand.NewPCG(seed, 7))
	pix := make([]uint8, n*64)
	labels := make([]uint8, n)
	for i := range n {
		c := r.IntN(3)
		labels[i] = uint8(c)
		x0, y0 := []int{0, 4, 2}[c], []int{0, 1, 5}[c]
		for y := range 8 {
			for x := range 8 {
				v := r.IntN(40)
				if x >= x0 && x < x0+3 && y >= y0 && y < y0+3 {
					v = 200 + r.IntN(56)
				}
				pix[i*64+y*8+x] = uint8(v)
			}
		}
	}
	s, err := data.NewSet("squares", n, 1, 8, 8, pix, labels)
	if err != nil {
		panic(err)
	}
	return s
}

// TestTrainLearns: a few hundred steps on the toy set reach (nearly) perfect held-out accuracy, and
// the saved weights reload to the same predictions.
func TestTrainLearns(t *testing.T) {
	be := tensor.NewReference(1)
	n, err := New(tinyConfig(), be, 1)
	if err != nil {
		t.Fatal(err)
	}
	trainSet, testSet := squares(512, 1), squares(200, 2)
	before, _ := n.Accuracy(context.Background(), testSet, 64)
	if err := Train(context.Background(), n, trainSet, TrainOptions{Epochs: 4, Batch: 32, LR: 1e-2, Warmup: 10, Seed: 1, Shift: 0}); err != nil {
		t.Fatal(err)
	}
	after, _ := n.Accuracy(context.Background(), testSet, 64)
	if after < 0.98 {
		t.Errorf("accuracy %.3f before, %.3f after training; want >= 0.98", before, after)
	}
	path := filepath.Join(t.TempDir(), "c.safetensors")
	if err := Save(path, n, map[string]string{"data": "squares"}); err != nil {
		t.Fatal(err)
	}
	m, meta, err := Load(path, be)
	if err != nil || meta["data"] != "squares" {
		t.Fatalf("load: %v, meta %v", err, meta)
	}
	f1, l1, _ := n.Apply(context.Background(), testSet.Images, testSet.N, 50)
	f2, l2, _ := m.Apply(context.Background(), testSet.Images, testSet.N, 50)
	for i := range f1 {
		if f1[i] != f2[i] {
			t.Fatalf("reloaded features differ at %d", i)
		}
	}
	for i := range l1 {
		if l1[i] != l2[i] {
			t.Fatalf("reloaded logits differ at %d", i)
		}
	}
	if _, _, err := Load(filepath.Join(t.TempDir(), "none"), be); err == nil {
		t.Error("missing file loaded")
	}
}

// TestApplyBatchInvariant: features do not depend on the batch size (reference backend: exactly).
func TestApplyBatchInvariant(t *testing.T) {
	be := tensor.NewReference(1)
	n, _ := New(tinyConfig(), be, 2)
	s := squares(23, 3)
	a, _, err := n.Apply(context.Background(), s.Images, s.N, 23)
	if err != nil {
		t.Fatal(err)
	}
	b, _, _ := n.Apply(context.Background(), s.Images, s.N, 4)
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("batch 23 vs 4: feature %d differs: %v vs %v", i, a[i], b[i])
		}
	}
	if _, _, err := n.Apply(context.Background(), s.Images[:10], s.N, 4); err == nil {
		t.Error("short input accepted")
	}
}

// TestDNNLMatchesReference: the oneDNN backend computes the same features (fp32 rounding apart).
func TestDNNLMatchesReference(t *testing.T) {
	if !dnnl.Available() {
		t.Skip("built without oneDNN")
	}
	dn, err := dnnl.New(dnnl.Options{Precision: "fp32", Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer dn.(interface{ Close() error }).Close()
	ref := tensor.NewReference(1)
	cfg := Default()
	a, _ := New(cfg, ref, 5)
	b, _ := New(cfg, dn, 5)
	imgs := make([]float32, 6*28*28)
	r := rand.New(rand.NewPCG(4, 4))
	for i := range imgs {
		imgs[i] = float32(2*r.Float64() - 1)
	}
	fa, la, _ := a.Apply(context.Background(), imgs, 6, 6)
	fb, lb, _ := b.Apply(context.Background(), imgs, 6, 6)
	worst := 0.0
	for i := range fa {
		worst = max(worst, math.Abs(fa[i]-fb[i]))
	}
	for i := range la {
		worst = max(worst, math.Abs(la[i]-lb[i]))
	}
	if worst > 1e-4 {
		t.Errorf("dnnl vs reference: worst difference %g", worst)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, c := range []Config{
		{},
		{InChannels: 1, ImageSize: 8, Widths: []int{5}, Groups: 2, Features: 4, Classes: 3},
		{InChannels: 1, ImageSize: 2, Widths: []int{4, 4, 4}, Groups: 2, Features: 4, Classes: 3},
		{InChannels: 1, ImageSize: 8, Widths: []int{4}, Groups: 2, Features: 4, Classes: 1},
	} {
		if _, err := New(c, tensor.NewReference(1), 0); err == nil {
			t.Errorf("config %+v accepted", c)
		}
	}
}

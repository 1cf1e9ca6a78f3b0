package nn_test

import (
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/ddpm-go/ddpm/nn"
	"github.com/ddpm-go/ddpm/tensor"
	"github.com/ddpm-go/ddpm/tensor/dnnl"
)

// tinyCond is tiny with three classes.
func tinyCond() nn.Config {
	c := tiny
	c.NumClasses = 3
	return c
}

// TestLabelEmbeddingGradCheck64 checks the class embedding's gradient by central differences on the
// float64 reference: every entry of the rows the batch uses (class 2 twice, class 0, and the
// no-label row), plus temb.2's bias which the label shares its path with. The rows of a class absent
// from the batch must get exactly zero. Tolerance as TestUNetGradCheck64.
func TestLabelEmbeddingGradCheck64(t *testing.T) {
	be := tensor.NewReference64(0)
	b64 := be.(ref64)
	cfg := tinyCond()
	u, err := nn.New(cfg, be, 3)
	if err != nil {
		t.Fatal(err)
	}
	const n = 4
	shape := []int{n, cfg.InChannels, cfg.ImageSize, cfg.ImageSize}
	ts, labels := []int{3, 700, 50, 999}, []int{2, -1, 0, 2}
	x, r := make([]float64, tensor.Numel(shape)), make([]float64, tensor.Numel(shape))
	for i, v := range tensor.RandN(shape, 1) {
		x[i] = float64(v)
	}
	for i, v := range tensor.RandN(shape, 2) {
		r[i] = float64(v)
	}
	forward := func() (*tensor.Tensor, *tensor.Tensor) {
		u.DropoutSeed = 11
		xt := b64.Upload64(shape, x)
		eps, err := u.ForwardLabels(xt, ts, labels, true)
		if err != nil {
			t.Fatal(err)
		}
		return xt, eps
	}
	eval := func() float64 {
		xt, eps := forward()
		var s float64
		for i, v := range b64.Read64(eps) {
			s += v * r[i]
		}
		u.ZeroGrad()
		if _, err := u.Backward(b64.Upload64(eps.Shape, r)); err != nil { // clears the saved state
			t.Fatal(err)
		}
		be.Release(eps)
		be.Release(xt)
		return s
	}
	_, eps := forward()
	u.ZeroGrad()
	if _, err := u.Backward(b64.Upload64(eps.Shape, r)); err != nil {
		t.Fatal(err)
	}
	var emb, bias *tensor.Param
	for _, p := range u.Params() {
		switch p.Name {
		case nn.LabelEmbedName:
			emb = p
		case "temb.2.bias":
			bias = p
		}
	}
	if emb == nil || u.Params()[len(u.Params())-1] != emb {
		t.Fatalf("%s is not the last parameter", nn.LabelEmbedName)
	}
	if !slices.Equal(emb.Shape, []int{4, cfg.TimeEmbedDim}) {
		t.Fatalf("%s shape %v, want [4 %d]", nn.LabelEmbedName, emb.Shape, cfg.TimeEmbedDim)
	}
	D := cfg.TimeEmbedDim
	for j, v := range emb.G[D : 2*D] {
		if v != 0 {
			t.Fatalf("row of class 1 (not in the batch) has gradient %g at %d", v, j)
		}
	}
	type probe struct {
		p *tensor.Param
		i int
	}
	var probes []probe
	for _, row := range []int{0, 2, 3} {
		for j := range D {
			probes = append(probes, probe{emb, row*D + j})
		}
	}
	for j := range D {
		probes = append(probes, probe{bias, j})
	}
	grads := make([]float64, len(probes))
	scale := 0.0
	for k, pr := range probes {
		grads[k] = float64(pr.p.G[pr.i])
		scale = max(scale, math.Abs(grads[k]))
	}
	worst := 0.0
	for k, pr := range probes {
		w0 := pr.p.W[pr.i]
		pr.p.W[pr.i] = w0 + 1e-3
		hp := float64(pr.p.W[pr.i]) - float64(w0)
		lp := eval()
		pr.p.W[pr.i] = w0 - 1e-3
		hm := float64(w0) - float64(pr.p.W[pr.i])
		lm := eval()
		pr.p.W[pr.i] = w0
		fd := (lp - lm) / (hp + hm)
		e := math.Abs(fd - grads[k])
		worst = max(worst, e/scale)
		if e > 1e-5*math.Abs(grads[k])+1e-7*scale {
			t.Errorf("%s[%d]: finite difference %.9g, backward %.9g", pr.p.Name, pr.i, fd, grads[k])
		}
	}
	t.Logf("%d entries, worst error %.3g of the largest gradient %.3g", len(probes), worst, scale)
}

// TestLabelsLeaveUnconditionalUnchanged: a conditional network has the unconditional network's
// parameters, in the same order with the same initial values, plus the embedding; labels change
// the output, nil labels equal NoLabel rows, and bad labels are errors.
func TestLabelsLeaveUnconditionalUnchanged(t *testing.T) {
	be := tensor.NewReference(0)
	plain, _ := nn.New(tiny, be, 5)
	cond, err := nn.New(tinyCond(), be, 5)
	if err != nil {
		t.Fatal(err)
	}
	pp, cp := plain.Params(), cond.Params()
	if len(cp) != len(pp)+1 {
		t.Fatalf("%d parameters, want %d + 1", len(cp), len(pp))
	}
	for i, p := range pp {
		if p.Name != cp[i].Name || !slices.Equal(p.W, cp[i].W) {
			t.Fatalf("parameter %d: %s differs from the unconditional network's %s", i, cp[i].Name, p.Name)
		}
	}
	shape := []int{3, 2, 8, 8}
	run := func(u *nn.UNet, labels []int) []float32 {
		x := be.Upload(shape, tensor.RandN(shape, 1))
		eps, err := u.ForwardLabels(x, []int{5, 400, 900}, labels, false)
		if err != nil {
			t.Fatal(err)
		}
		return be.Read(eps)
	}
	none, nilLabels := run(cond, []int{-1, -1, -1}), run(cond, nil)
	if !slices.Equal(none, nilLabels) {
		t.Error("nil labels differ from NoLabel rows")
	}
	withLabels := run(cond, []int{0, 1, 2})
	if slices.Equal(withLabels, none) {
		t.Error("labels do not change the output")
	}
	// Row i depends only on its own label.
	mixed := run(cond, []int{0, -1, 2})
	dim := 2 * 8 * 8
	if !slices.Equal(mixed[:dim], withLabels[:dim]) || !slices.Equal(mixed[dim:2*dim], none[dim:2*dim]) {
		t.Error("a row's output depends on another row's label")
	}
	for _, c := range []struct {
		u      *nn.UNet
		labels []int
		want   string
	}{
		{plain, []int{-1, 0, -1}, "unconditional"},
		{cond, []int{0, 3, 0}, "label 3"},
		{cond, []int{0, 1}, "2 labels for 3"},
	} {
		x := be.Upload(shape, tensor.RandN(shape, 1))
		_, err := c.u.ForwardLabels(x, []int{1, 2, 3}, c.labels, false)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("labels %v: error %v, want one containing %q", c.labels, err, c.want)
		}
	}
	x := be.Upload(shape, tensor.RandN(shape, 1))
	if _, err := plain.ForwardLabels(x, []int{1, 2, 3}, []int{-1, -1, -1}, false); err != nil {
		t.Errorf("NoLabel rows on an unconditional network: %v", err)
	}
	bad := tinyCond()
	bad.NumClasses = -1
	if _, err := nn.New(bad, be, 1); err == nil || !strings.Contains(err.Error(), "num_classes") {
		t.Errorf("num_classes -1: %v", err)
	}
}

// TestLabelsDNNLMatchesReference: a conditional training step on oneDNN fp32 against the reference,
// output within 1e-4 and the embedding's gradient within 1e-3 relative to its largest entry.
func TestLabelsDNNLMatchesReference(t *testing.T) {
	if !dnnl.Available() {
		t.Skip("built without oneDNN")
	}
	fast, err := dnnl.New(dnnl.Options{Precision: "fp32", Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	if cl, ok := fast.(interface{ Close() error }); ok {
		defer cl.Close()
	}
	run := func(be tensor.Backend) ([]float32, []float32) {
		u, _ := nn.New(tinyCond(), be, 8)
		shape := []int{4, 2, 8, 8}
		x := be.Upload(shape, tensor.RandN(shape, 1))
		eps, err := u.ForwardLabels(x, []int{1, 50, 900, 50}, []int{2, 0, -1, 2}, true)
		if err != nil {
			t.Fatal(err)
		}
		out := be.Read(eps)
		_, d := be.MSE(eps, be.Upload(shape, tensor.RandN(shape, 2)))
		u.ZeroGrad()
		if _, err := u.Backward(d); err != nil {
			t.Fatal(err)
		}
		ps := u.Params()
		return out, ps[len(ps)-1].G
	}
	refOut, refG := run(tensor.NewReference(0))
	out, g := run(fast)
	if e := relErr(out, refOut); e > 1e-4 {
		t.Errorf("output rel err %.3g", e)
	}
	if e := relErr(g, refG); e > 1e-3 {
		t.Errorf("%s gradient rel err %.3g", nn.LabelEmbedName, e)
	}
}

// Package inpaint measures inpainting on real digits: test images with part of them hidden are
// completed by a model, and the project's classifier says whether the completions still show the
// digit they were cut from. The baselines bound the result: the classifier on the whole image, on
// the masked image alone, and on the known part pasted onto an unconditional sample (a fill that
// ignores what is known).
package inpaint

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"time"

	"github.com/ddpm-go/ddpm/classifier"
	"github.com/ddpm-go/ddpm/data"
	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/engine"
	"github.com/ddpm-go/ddpm/eval/fid"
	"github.com/ddpm-go/ddpm/generate"
	"github.com/ddpm-go/ddpm/imageio"
)

// Masks are the hidden regions measured: "bottom", the lower half of the image, and "box", a
// square of half the side at a random place per image (drawn from the seed and the image's index).
var Masks = []string{"bottom", "box"}

// Method is one way to complete the images.
type Method struct {
	Name    string
	Spec    generate.SamplerSpec
	Inpaint generate.InpaintSpec
	// Guidance, if not nil, tells a class-conditional model each image's true class, guided at
	// this scale: how much knowing the digit helps beyond the known pixels.
	Guidance *float64
}

// Options are what Run measures.
type Options struct {
	Data, DataDir, Classifier string
	Ckpt                      string
	EMA                       bool
	N                         int // test images, the first N of the test set
	Seed                      uint64
	Engine, Precision         string
	Threads                   int
	Methods                   []Method
	Masks                     []string
	// Grid, if not empty, is where each (mask, method) writes a grid of its first completions:
	// Grid + "-" + mask + "-" + method + ".png".
	Grid string
}

// Result is the classifier's accuracy against the true labels for one mask and one way of filling.
type Result struct {
	Mask     string  `json:"mask"`
	Method   string  `json:"method"`  // "original", "masked", "unconditional fill", or a Method's name
	Sampler  string  `json:"sampler"` // what drew the fill
	N        int     `json:"n"`
	Accuracy float64 `json:"accuracy"`
	Secs     float64 `json:"secs,omitempty"`
}

// boxMask is image i's mask for the named region of an h x w (square) image.
func boxMask(name string, h, w int, seed uint64, i int) ([]float64, error) {
	switch name {
	case "bottom":
		return generate.BoxMask(1, h, w, 0, h/2, w, h-h/2)
	case "box":
		r := rand.New(rand.NewPCG(seed, uint64(i)))
		s := h / 2
		return generate.BoxMask(1, h, w, r.IntN(w-s+1), r.IntN(h-s+1), s, s)
	}
	return nil, fmt.Errorf("unknown mask %q (want bottom or box)", name)
}

// Run measures every mask with every method and the baselines, logging progress to log.
func Run(ctx context.Context, o Options, log io.Writer) ([]Result, error) {
	set, images, err := data.LoadRange(o.Data, o.DataDir, "test", 0, o.N)
	if err != nil {
		return nil, err
	}
	be, err := engine.New(o.Engine, o.Precision, o.Threads)
	if err != nil {
		return nil, err
	}
	defer engine.Close(be)
	m, err := generate.Load(o.Ckpt, be, o.EMA)
	if err != nil {
		return nil, err
	}
	for _, me := range o.Methods {
		if me.Guidance != nil && m.Classes == nil {
			return nil, fmt.Errorf("method %s: model %s is unconditional: it takes no class", me.Name, m.Source)
		}
	}
	c, h, w := m.Shape()
	if c != set.C || h != set.H || w != set.W {
		return nil, fmt.Errorf("model %s makes %dx%dx%d images, %s has %dx%dx%d", m.Source, c, h, w, o.Data, set.C, set.H, set.W)
	}
	cbe, err := engine.New(o.Engine, "fp32", o.Threads)
	if err != nil {
		return nil, err
	}
	defer engine.Close(cbe)
	net, _, err := fid.LoadClassifier(o.Classifier, o.Data, cbe)
	if err != nil {
		return nil, err
	}
	n, dim := o.N, c*h*w
	labels := make([]int, n)
	for i := range labels {
		labels[i] = int(set.Labels[i])
	}
	x0 := make([]float64, n*dim)
	for i, v := range images {
		x0[i] = float64(v)
	}
	acc := func(x []float64) (float64, error) { return accuracy(ctx, net, x, labels) }

	// The unconditional fill: samples that never saw the known part.
	ddim, spec, err := generate.SamplerSpec{}.New(m.Schedule)
	if err != nil {
		return nil, err
	}
	free, err := m.Sample(ctx, ddim, generate.Job{N: n, Seed: o.Seed, Batch: 64, Chunk: generate.DefaultChunk(be)})
	if err != nil {
		return nil, err
	}
	var out []Result
	for _, mk := range o.Masks {
		mask := make([]float64, n*dim)
		for i := range n {
			mi, err := boxMask(mk, h, w, o.Seed, i)
			if err != nil {
				return nil, err
			}
			copy(mask[i*dim:], mi)
		}
		blend := func(fill []float64) []float64 {
			x := make([]float64, len(x0))
			for i := range x {
				x[i] = mask[i]*x0[i] + (1-mask[i])*fill[i]
			}
			return x
		}
		base := []struct {
			name, sampler string
			x             []float64
		}{
			{"original", "", x0},
			{"masked", "hidden part black", blend(minusOnes(len(x0)))},
			{"unconditional fill", spec.String(), blend(free)},
		}
		for _, b := range base {
			a, err := acc(b.x)
			if err != nil {
				return nil, err
			}
			out = append(out, Result{Mask: mk, Method: b.name, Sampler: b.sampler, N: n, Accuracy: a})
		}
		for _, me := range o.Methods {
			sampler, desc, err := me.Inpaint.Sampler(me.Spec, m.Schedule)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", me.Name, err)
			}
			fmt.Fprintf(log, "%s mask, %s: %d images with %s\n", mk, me.Name, n, desc)
			job := generate.Job{N: n, Seed: o.Seed, Batch: 64, Chunk: generate.DefaultChunk(be), Known: &diffusion.Known{X0: x0, Mask: mask}}
			if me.Guidance != nil {
				job.Labels, job.Guidance = labels, *me.Guidance
				desc += fmt.Sprintf(", true class at s = %g", job.Guidance)
			}
			bar := generate.NewProgress(log, job.NumBatches(), 0)
			job.Step = bar.Step
			t0 := time.Now()
			x, err := m.Sample(ctx, sampler, job)
			bar.Finish()
			if err != nil {
				return nil, err
			}
			a, err := acc(x)
			if err != nil {
				return nil, err
			}
			out = append(out, Result{Mask: mk, Method: me.Name, Sampler: desc, N: n, Accuracy: a, Secs: time.Since(t0).Seconds()})
			if o.Grid != "" {
				if err := grid(o.Grid+"-"+mk+"-"+me.Name+".png", x0, mask, x, min(n, 10), c, h, w); err != nil {
					return nil, err
				}
			}
		}
	}
	return out, nil
}

func minusOnes(n int) []float64 {
	x := make([]float64, n)
	for i := range x {
		x[i] = -1
	}
	return x
}

// grid writes k columns: the originals, the masked inputs (hidden part mid-grey) and the completions.
func grid(path string, x0, mask, x []float64, k, c, h, w int) error {
	dim := c * h * w
	var rows []float64
	rows = append(rows, x0[:k*dim]...)
	for i := range k * dim {
		rows = append(rows, x0[i]*mask[i])
	}
	rows = append(rows, x[:k*dim]...)
	return imageio.WriteGrid(path, rows, 3*k, c, h, w, k)
}

// accuracy is the fraction of images the classifier puts in their label's class.
func accuracy(ctx context.Context, net *classifier.Net, x []float64, labels []int) (float64, error) {
	u := imageio.ToUint8(nil, x) // scored as the saved images would be
	f := make([]float32, len(u))
	for i, v := range u {
		f[i] = float32(v)/127.5 - 1
	}
	_, logits, err := net.Apply(ctx, f, len(labels), 500)
	if err != nil {
		return 0, err
	}
	k := len(logits) / len(labels)
	hit := 0
	for i, l := range labels {
		row := logits[i*k : (i+1)*k]
		best := 0
		for j, v := range row {
			if v > row[best] {
				best = j
			}
		}
		if best == l {
			hit++
		}
	}
	return float64(hit) / float64(len(labels)), nil
}

// Markdown writes the results as a table, one row per way of filling, one column per mask.
func Markdown(w io.Writer, rs []Result, masks []string) {
	fmt.Fprint(w, "| completion |")
	for _, m := range masks {
		fmt.Fprintf(w, " %s hidden |", m)
	}
	fmt.Fprint(w, " sampler |\n|---|")
	for range masks {
		fmt.Fprint(w, "---:|")
	}
	fmt.Fprintln(w, "---|")
	var order []string
	cell := map[[2]string]Result{}
	for _, r := range rs {
		if _, ok := cell[[2]string{r.Method, masks[0]}]; !ok && r.Mask == masks[0] {
			order = append(order, r.Method)
		}
		cell[[2]string{r.Method, r.Mask}] = r
	}
	for _, me := range order {
		fmt.Fprintf(w, "| %s |", me)
		for _, m := range masks {
			fmt.Fprintf(w, " %.1f%% |", 100*cell[[2]string{me, m}].Accuracy)
		}
		fmt.Fprintf(w, " %s |\n", cell[[2]string{me, masks[0]}].Sampler)
	}
}

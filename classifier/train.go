package classifier

import (
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"time"

	"github.com/ddpm-go/ddpm/data"
	"github.com/ddpm-go/ddpm/nn"
)

// CrossEntropy returns the mean softmax cross-entropy of n rows of k logits against labels (in
// float64), its gradient with respect to the logits, (softmax - onehot)/n, and the number of rows
// whose argmax is the label.
func CrossEntropy(logits []float32, labels []uint8, k int) (loss float64, grad []float32, correct int) {
	n := len(labels)
	grad = make([]float32, n*k)
	p := make([]float64, k)
	for i := range n {
		row := logits[i*k : (i+1)*k]
		best := 0
		for j, v := range row {
			if v > row[best] {
				best = j
			}
		}
		if best == int(labels[i]) {
			correct++
		}
		sum := 0.0
		for j, v := range row {
			p[j] = math.Exp(float64(v) - float64(row[best]))
			sum += p[j]
		}
		loss += math.Log(sum) - (float64(row[labels[i]]) - float64(row[best]))
		for j := range row {
			g := p[j] / sum
			if j == int(labels[i]) {
				g--
			}
			grad[i*k+j] = float32(g / float64(n))
		}
	}
	return loss / float64(n), grad, correct
}

// Apply runs the network in inference mode on count images (host NCHW, [-1, 1]) in batches of at
// most batch, returning the features (count x Features) and logits (count x Classes) in float64.
// The result does not depend on batch beyond the backend's own rounding (the reference backend is
// exact across batch sizes).
func (n *Net) Apply(ctx context.Context, images []float32, count, batch int) (features, logits []float64, err error) {
	c := n.Cfg
	dim := c.InChannels * c.ImageSize * c.ImageSize
	if count < 0 || len(images) != count*dim {
		return nil, nil, fmt.Errorf("classifier: %d values for %d images of %dx%dx%d", len(images), count, c.InChannels, c.ImageSize, c.ImageSize)
	}
	if batch < 1 {
		batch = 256
	}
	features = make([]float64, count*c.Features)
	logits = make([]float64, count*c.Classes)
	for lo := 0; lo < count; lo += batch {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		m := min(batch, count-lo)
		x := n.be.Upload([]int{m, c.InChannels, c.ImageSize, c.ImageSize}, images[lo*dim:(lo+m)*dim])
		f, l := n.Forward(x, false)
		n.be.Release(x)
		for i, v := range n.be.Read(f) {
			features[lo*c.Features+i] = float64(v)
		}
		for i, v := range n.be.Read(l) {
			logits[lo*c.Classes+i] = float64(v)
		}
		n.be.Release(f)
		n.be.Release(l)
	}
	return features, logits, nil
}

// Accuracy is the fraction of set's images whose predicted class is their label.
func (n *Net) Accuracy(ctx context.Context, set *data.Set, batch int) (float64, error) {
	if set.Labels == nil {
		return 0, fmt.Errorf("accuracy: %s has no labels", set.Name)
	}
	_, logits, err := n.Apply(ctx, set.Images, set.N, batch)
	if err != nil {
		return 0, err
	}
	k := n.Cfg.Classes
	correct := 0
	for i := range set.N {
		row := logits[i*k : (i+1)*k]
		best := 0
		for j, v := range row {
			if v > row[best] {
				best = j
			}
		}
		if best == int(set.Labels[i]) {
			correct++
		}
	}
	return float64(correct) / float64(set.N), nil
}

// TrainOptions configures Train. The learning rate warms up linearly over Warmup steps and then
// follows a cosine to zero at the last step.
type TrainOptions struct {
	Epochs      int
	Batch       int
	LR          float64
	WeightDecay float64
	Warmup      int
	Shift       int    // random translation of up to Shift pixels each way; 0 = none
	White       bool   // the pixels a shift uncovers are white (+1, the emoji's background), not black (-1)
	Flip        bool   // random horizontal flips (for clothing, not for digits)
	Seed        uint64 // data order and shifts
	Log         io.Writer
	LogEvery    int // steps between log lines (0 = once per epoch)
}

// Train fits the network to set with AdamW on the softmax cross-entropy. The run is a function of
// its seeds (weights from New, data order and shifts from opts.Seed) and the backend's arithmetic.
func Train(ctx context.Context, n *Net, set *data.Set, opts TrainOptions) error {
	c := n.Cfg
	if set.Labels == nil {
		return fmt.Errorf("train classifier: %s has no labels", set.Name)
	}
	if set.C != c.InChannels || set.H != c.ImageSize || set.W != c.ImageSize {
		return fmt.Errorf("train classifier: %s images are %dx%dx%d, the network takes %dx%dx%d", set.Name, set.C, set.H, set.W, c.InChannels, c.ImageSize, c.ImageSize)
	}
	for _, l := range set.Labels {
		if int(l) >= c.Classes {
			return fmt.Errorf("train classifier: label %d outside the network's %d classes", l, c.Classes)
		}
	}
	if opts.Epochs < 1 || opts.Batch < 1 || !(opts.LR > 0) {
		return fmt.Errorf("train classifier: need epochs >= 1, batch >= 1 and lr > 0, got %d, %d, %v", opts.Epochs, opts.Batch, opts.LR)
	}
	batcher, err := data.NewBatcher(set, opts.Batch, opts.Seed, opts.Flip)
	if err != nil {
		return err
	}
	opt := nn.NewAdamW(n.Params(), opts.LR)
	opt.WeightDecay = opts.WeightDecay
	perEpoch := set.N / opts.Batch
	total := perEpoch * opts.Epochs
	dim := set.Size()
	x := make([]float32, opts.Batch*dim)
	shifted := make([]float32, opts.Batch*dim)
	labels := make([]uint8, opts.Batch)
	var lossSum float64
	var correct, seen int
	start := time.Now()
	for step := 1; step <= total; step++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := batcher.Next(x, labels); err != nil {
			return err
		}
		in := x
		if opts.Shift > 0 {
			fill := float32(-1)
			if opts.White {
				fill = 1
			}
			shift(shifted, x, opts.Batch, c.InChannels, c.ImageSize, opts.Shift, fill, rand.New(rand.NewPCG(opts.Seed, uint64(step))))
			in = shifted
		}
		xt := n.be.Upload([]int{opts.Batch, c.InChannels, c.ImageSize, c.ImageSize}, in)
		_, logits := n.Forward(xt, true)
		loss, grad, ok := CrossEntropy(n.be.Read(logits), labels, c.Classes)
		if math.IsNaN(loss) || math.IsInf(loss, 0) {
			return fmt.Errorf("train classifier: loss %v at step %d", loss, step)
		}
		dl := n.be.Upload(logits.Shape, grad)
		n.be.Release(logits)
		n.ZeroGrad()
		n.Backward(dl)
		n.be.Release(dl)
		n.be.Release(xt)
		opt.LR = lrAt(opts, step, total)
		opt.Step()
		lossSum += loss * float64(opts.Batch)
		correct += ok
		seen += opts.Batch
		every := opts.LogEvery
		if every < 1 {
			every = perEpoch
		}
		if opts.Log != nil && (step%every == 0 || step == total) {
			fmt.Fprintf(opts.Log, "step %d/%d (epoch %.2f) loss %.4f train acc %.4f lr %.2e %s\n", step, total,
				float64(step)/float64(perEpoch), lossSum/float64(seen), float64(correct)/float64(seen), opt.LR, time.Since(start).Round(time.Second))
			lossSum, correct, seen = 0, 0, 0
		}
	}
	return nil
}

func lrAt(o TrainOptions, step, total int) float64 {
	if step <= o.Warmup {
		return nn.WarmupLR(o.LR, o.Warmup, step)
	}
	frac := float64(step-o.Warmup) / float64(max(1, total-o.Warmup))
	return o.LR * 0.5 * (1 + math.Cos(math.Pi*frac))
}

// shift translates each of n images (c channels, size x size) by a random offset in [-s, s] on each
// axis, filling uncovered pixels with fill (the background: -1 behind the digits, +1 behind emoji).
func shift(dst, src []float32, n, c, size, s int, fill float32, r *rand.Rand) {
	plane := size * size
	for i := range n {
		dx, dy := r.IntN(2*s+1)-s, r.IntN(2*s+1)-s
		for ch := range c {
			off := (i*c + ch) * plane
			for y := range size {
				sy := y - dy
				for x := range size {
					sx := x - dx
					v := fill
					if sy >= 0 && sy < size && sx >= 0 && sx < size {
						v = src[off+sy*size+sx]
					}
					dst[off+y*size+x] = v
				}
			}
		}
	}
}

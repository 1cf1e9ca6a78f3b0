package nn

import (
	"context"
	"fmt"
)

// Predict runs the network in inference mode on host data: the n rows of x (each one image of
// dim = InChannels*ImageSize*ImageSize values, NCHW) at timestep t, writing eps into out. Its
// signature is diffusion.Predictor's, so a *UNet drives the samplers directly while neither package
// imports the other. Batches larger than MaxBatch (when > 0) run in pieces to bound memory.
func (u *UNet) Predict(ctx context.Context, x []float64, n, dim, t int, out []float64) error {
	return u.predict(ctx, x, nil, n, dim, t, out)
}

// Labeled is a class-conditional UNet seen as a diffusion.LabeledPredictor (whose Predict takes a
// label per row, diffusion.NoLabel for none), the model classifier-free guidance calls.
type Labeled struct{ U *UNet }

// Predict is UNet.Predict with row i conditioned on labels[i] (nil labels: none on every row).
func (l Labeled) Predict(ctx context.Context, x []float64, labels []int, n, dim, t int, out []float64) error {
	if labels != nil && len(labels) != n {
		return fmt.Errorf("unet predict: %d labels for %d rows", len(labels), n)
	}
	return l.U.predict(ctx, x, labels, n, dim, t, out)
}

func (u *UNet) predict(ctx context.Context, x []float64, labels []int, n, dim, t int, out []float64) error {
	c := u.Cfg
	if want := c.InChannels * c.ImageSize * c.ImageSize; dim != want || c.InChannels != c.OutChannels {
		return fmt.Errorf("unet predict: dim %d, model %s takes %d (in %d, out %d channels)", dim, c.Name, want, c.InChannels, c.OutChannels)
	}
	if len(x) < n*dim || len(out) < n*dim {
		return fmt.Errorf("unet predict: %d rows of %d need %d values, have x %d, out %d", n, dim, n*dim, len(x), len(out))
	}
	step := n
	if u.MaxBatch > 0 {
		step = u.MaxBatch
	}
	for lo := 0; lo < n; lo += step {
		if err := ctx.Err(); err != nil {
			return err
		}
		m := min(step, n-lo)
		buf := make([]float32, m*dim)
		for i := range buf {
			buf[i] = float32(x[lo*dim+i])
		}
		ts := make([]int, m)
		for i := range ts {
			ts[i] = t
		}
		xt := u.be.Upload([]int{m, c.InChannels, c.ImageSize, c.ImageSize}, buf)
		var lab []int
		if labels != nil {
			lab = labels[lo : lo+m]
		}
		eps, err := u.ForwardLabels(xt, ts, lab, false)
		u.be.Release(xt)
		if err != nil {
			return err
		}
		for i, v := range u.be.Read(eps) {
			out[lo*dim+i] = float64(v)
		}
		u.be.Release(eps)
	}
	return nil
}

package distill

import (
	"context"
	"fmt"

	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/engine"
	"github.com/ddpm-go/ddpm/nn"
	"github.com/ddpm-go/ddpm/schedule"
)

// Denoiser predicts for rows at their own timesteps: diffusion.Predictor takes one t for a whole
// batch, but Algorithm 2 draws a timestep per row, and a network evaluates such a batch in one
// call.
type Denoiser interface {
	// Denoise writes the output for the n = len(ts) rows of x (dim values each) at timesteps ts
	// with classes labels (nil: none) into out.
	Denoise(ctx context.Context, x []float64, ts, labels []int, dim int, out []float64) error
}

// Net is a UNet as a Denoiser. With Guided set it is classifier-free guidance at Scale (Ho &
// Salimans 2022, Eq. 6, as diffusion.Guided): u + Scale (c - u) from one call of 2n rows, the
// conditional ones then the same with no label. Without, rows are conditioned on their labels.
type Net struct {
	U      *nn.UNet
	Guided bool
	Scale  float64
}

// Denoise implements Denoiser.
func (m Net) Denoise(ctx context.Context, x []float64, ts, labels []int, dim int, out []float64) error {
	n := len(ts)
	if !m.Guided {
		return forward(ctx, m.U, x, ts, labels, n, dim, out)
	}
	if len(labels) != n {
		return fmt.Errorf("guided teacher: %d labels for %d rows", len(labels), n)
	}
	x2 := make([]float64, 2*n*dim)
	copy(x2, x[:n*dim])
	copy(x2[n*dim:], x[:n*dim])
	ts2 := append(append([]int(nil), ts...), ts...)
	lab2 := append([]int(nil), labels...)
	for range n {
		lab2 = append(lab2, diffusion.NoLabel)
	}
	out2 := make([]float64, 2*n*dim)
	if err := forward(ctx, m.U, x2, ts2, lab2, 2*n, dim, out2); err != nil {
		return err
	}
	for i := range out[:n*dim] {
		u := out2[n*dim+i]
		out[i] = u + m.Scale*(out2[i]-u)
	}
	return nil
}

// forward runs u in inference mode on n rows at timesteps ts.
func forward(ctx context.Context, u *nn.UNet, x []float64, ts, labels []int, n, dim int, out []float64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c := u.Cfg
	be := u.Backend()
	buf := make([]float32, n*dim)
	for i := range buf {
		buf[i] = float32(x[i])
	}
	return engine.Do(be, func() error {
		xt := be.Upload([]int{n, c.InChannels, c.ImageSize, c.ImageSize}, buf)
		y, err := u.ForwardLabels(xt, ts, labels, false)
		be.Release(xt)
		if err != nil {
			return err
		}
		for i, v := range be.Read(y) {
			out[i] = float64(v)
		}
		be.Release(y)
		return nil
	})
}

// Oracle is a diffusion.Predictor of one timestep per call (the exact mixture denoiser,
// diffusion.Oracle) as a Denoiser, calling it row by row; labels are ignored.
type Oracle struct{ P diffusion.Predictor }

// Denoise implements Denoiser.
func (o Oracle) Denoise(ctx context.Context, x []float64, ts, labels []int, dim int, out []float64) error {
	for i, t := range ts {
		if err := o.P.Predict(ctx, x[i*dim:(i+1)*dim], 1, dim, t, out[i*dim:(i+1)*dim]); err != nil {
			return err
		}
	}
	return nil
}

// Teacher is a round's teacher: a model, what it outputs, its schedule and the grid of its
// DDIM (eta 0) sampler.
type Teacher struct {
	Model      Denoiser
	Prediction diffusion.Prediction
	Schedule   *schedule.Schedule
	Grid       []int // len N, even; the student's grid is diffusion.HalveGrid(Grid)
}

// x0Eps reads the teacher's output on rows z at timesteps ts as (x0, eps).
func (tc *Teacher) x0Eps(ctx context.Context, z []float64, ts, labels []int, dim int, x0, eps []float64) error {
	out := make([]float64, len(z))
	if err := tc.Model.Denoise(ctx, z, ts, labels, dim, out); err != nil {
		return err
	}
	for i, t := range ts {
		r := i * dim
		if err := diffusion.X0Eps(tc.Prediction, tc.Schedule.AlphaBar[t], z[r:r+dim], out[r:r+dim], x0[r:r+dim], eps[r:r+dim]); err != nil {
			return err
		}
	}
	return nil
}

// V writes the teacher's prediction on rows z at timesteps ts in the v parameterisation,
// v = alpha eps - sigma x0: the target of round 0 (Reparam).
func (tc *Teacher) V(ctx context.Context, z []float64, ts, labels []int, dim int, v []float64) error {
	x0, eps := make([]float64, len(z)), make([]float64, len(z))
	if err := tc.x0Eps(ctx, z, ts, labels, dim, x0, eps); err != nil {
		return err
	}
	for i, t := range ts {
		a, sg := alphaSigma(tc.Schedule, t)
		for j := i * dim; j < (i+1)*dim; j++ {
			v[j] = a*eps[j] - sg*x0[j]
		}
	}
	return nil
}

// Steps runs the teacher's DDIM (eta 0) from rows z, row i at grid index k[i], for `steps` steps
// of its grid each (stopping at the clean sample), writing the result into out. It returns the
// timestep each row ends at (-1: clean).
func (tc *Teacher) Steps(ctx context.Context, z []float64, k, labels []int, dim, steps int, out []float64) ([]int, error) {
	n := len(k)
	cur := append([]int(nil), k...)
	copy(out, z[:n*dim])
	x0, eps := make([]float64, n*dim), make([]float64, n*dim)
	end := make([]int, n)
	for range steps {
		// Rows already clean take no more steps; the rest go together, one call.
		var rows, ts []int
		for i, j := range cur {
			if j < len(tc.Grid) {
				rows, ts = append(rows, i), append(ts, tc.Grid[j])
			}
		}
		if len(rows) == 0 {
			break
		}
		zs := make([]float64, len(rows)*dim)
		var lab []int
		for r, i := range rows {
			copy(zs[r*dim:(r+1)*dim], out[i*dim:(i+1)*dim])
			if labels != nil {
				lab = append(lab, labels[i])
			}
		}
		if err := tc.x0Eps(ctx, zs, ts, lab, dim, x0[:len(zs)], eps[:len(zs)]); err != nil {
			return nil, err
		}
		for r, i := range rows {
			cur[i]++
			prev := -1
			if cur[i] < len(tc.Grid) {
				prev = tc.Grid[cur[i]]
			}
			ddimStep(tc.Schedule, prev, x0[r*dim:(r+1)*dim], eps[r*dim:(r+1)*dim], out[i*dim:(i+1)*dim])
		}
	}
	for i, j := range cur {
		end[i] = -1
		if j < len(tc.Grid) {
			end[i] = tc.Grid[j]
		}
	}
	return end, nil
}

// Target is Algorithm 2 for a batch: rows z at the student's grid indices si (the teacher's 2 si),
// two teacher DDIM steps t -> t1 -> t2, and the x that one step from t to t2 would need
// (XTarget), written into x.
func (tc *Teacher) Target(ctx context.Context, z []float64, si, labels []int, dim int, x []float64) error {
	k := make([]int, len(si))
	for i, s := range si {
		k[i] = 2 * s
		if k[i] >= len(tc.Grid) {
			return fmt.Errorf("distill target: student step %d of a teacher of %d steps", s, len(tc.Grid))
		}
	}
	end, err := tc.Steps(ctx, z, k, labels, dim, 2, x)
	if err != nil {
		return err
	}
	for i, s := range si {
		r := x[i*dim : (i+1)*dim]
		XTarget(tc.Schedule, tc.Grid[2*s], end[i], z[i*dim:(i+1)*dim], r, r)
	}
	return nil
}

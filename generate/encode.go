package generate

import (
	"context"
	"fmt"
	"math"

	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/imageio"
)

// Encode maps clean images x0 (j.N rows, values in [-1, 1]) to their latents x_T with DDIM run
// backwards (DDIM Sec. 4.3, 5.4), j.Batch rows at a time, reporting every step to j.Step.
func (m *Model) Encode(ctx context.Context, ddim *diffusion.DDIM, x0 []float64, j Job) ([]float64, error) {
	dim := m.Dim()
	if len(x0) != j.N*dim {
		return nil, fmt.Errorf("encode: %d values for %d images of %d", len(x0), j.N, dim)
	}
	xT := make([]float64, 0, len(x0))
	for k := range j.NumBatches() {
		b := j.batch(k)
		lo := (b.Start - j.Start) * dim
		opts := diffusion.Options{Prediction: m.Prediction}
		if j.Step != nil {
			opts.Callback = func(s diffusion.Step) error { return j.Step(b, s) }
		}
		z, err := ddim.Encode(ctx, m.Net, x0[lo:lo+b.N*dim], b.N, dim, opts)
		if err != nil {
			return nil, err
		}
		xT = append(xT, z...)
	}
	return xT, nil
}

// Reconstruct decodes the latents xT of images x0 with the same DDIM and returns the decoded
// images and their mean squared error per value (images in [-1, 1]), the reconstruction error of
// DDIM's Table 2.
func (m *Model) Reconstruct(ctx context.Context, ddim *diffusion.DDIM, x0, xT []float64, j Job) (back []float64, mse float64, err error) {
	j.XT = xT
	if back, err = m.Sample(ctx, ddim, j); err != nil {
		return nil, 0, err
	}
	for i, v := range back {
		d := v - x0[i]
		mse += d * d
	}
	mse /= float64(len(back))
	if math.IsNaN(mse) {
		return nil, 0, fmt.Errorf("reconstruction produced NaN")
	}
	return back, mse, nil
}

// WriteReconGrid writes n images over their reconstructions as a PNG grid of cols columns: a row
// of originals, the row of their reconstructions below it, and so on; white fills a short last
// row, so reconstructions stay under their images.
func WriteReconGrid(path string, orig, back []float64, n, c, h, w, cols int) error {
	dim := c * h * w
	cols = min(cols, n)
	out := make([]float64, 0, 2*n*dim)
	for lo := 0; lo < n; lo += cols {
		hi := min(n, lo+cols)
		out = append(out, orig[lo*dim:hi*dim]...)
		for range (cols - (hi - lo)) * dim {
			out = append(out, 1)
		}
		out = append(out, back[lo*dim:hi*dim]...)
	}
	return imageio.WriteGrid(path, out, len(out)/dim, c, h, w, cols)
}

// SlerpLatents is the x_T of an interpolation strip: row p holds frames points from the x_T of
// images 2p to 2p+1 under seed, slerped (diffusion.Slerp), so the strip's ends are exactly the
// images a sampler draws for those indices.
func SlerpLatents(seed uint64, pairs, frames, dim int) []float64 {
	xT := make([]float64, pairs*frames*dim)
	a, b := make([]float64, dim), make([]float64, dim)
	for p := range pairs {
		for i, dst := range [][]float64{a, b} {
			rng := diffusion.RowRNG(seed, 2*p+i)
			for j := range dst {
				dst[j] = rng.NormFloat64()
			}
		}
		for f := range frames {
			row := (p*frames + f) * dim
			diffusion.Slerp(a, b, float64(f)/float64(frames-1), xT[row:row+dim])
		}
	}
	return xT
}

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

// RoundTrip is what to do with the DDIM encoding of j.N clean images (Model.RoundTrip).
type RoundTrip struct {
	Latents string // save x_T here as a float32 .npy (N,C,H,W), the starting noise of a later job
	Decode  bool   // decode x_T again and measure the reconstruction
	Grid    string // with Decode: the images over their reconstructions (WriteReconGrid), Cols per row
	Cols    int
}

// RoundTrip encodes images x0 (j.N rows in [-1, 1]) with ddim, saves their latents and, with
// rt.Decode, decodes them and returns the reconstruction's MSE (else 0). j.Step sees both passes.
func (m *Model) RoundTrip(ctx context.Context, ddim *diffusion.DDIM, x0 []float32, j Job, rt RoundTrip) (mse float64, err error) {
	x := make([]float64, len(x0))
	for i, v := range x0 {
		x[i] = float64(v)
	}
	xT, err := m.Encode(ctx, ddim, x, j)
	if err != nil {
		return 0, err
	}
	c, h, w := m.Shape()
	if rt.Latents != "" {
		x32 := make([]float32, len(xT))
		for i, v := range xT {
			x32[i] = float32(v)
		}
		if err := imageio.SaveNPY(rt.Latents, []int{j.N, c, h, w}, x32); err != nil {
			return 0, err
		}
	}
	if !rt.Decode {
		return 0, nil
	}
	back, mse, err := m.Reconstruct(ctx, ddim, x, xT, j)
	if err == nil && rt.Grid != "" {
		err = WriteReconGrid(rt.Grid, x, back, j.N, c, h, w, rt.Cols)
	}
	return mse, err
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
// images 2p to 2p+1 under seed, slerped (SlerpPairs), so the strip's ends are exactly the
// images a sampler draws for those indices.
func SlerpLatents(seed uint64, pairs, frames, dim int) []float64 {
	ends := make([]float64, 2*pairs*dim)
	for i := range 2 * pairs {
		rng, row := diffusion.RowRNG(seed, i), ends[i*dim:(i+1)*dim]
		for j := range row {
			row[j] = rng.NormFloat64()
		}
	}
	return SlerpPairs(ends, frames, dim)
}

// SlerpPairs is the x_T of an interpolation strip between given latents (ends: rows of dim
// values, an even number of them, such as Model.Encode returns for images): row p holds frames
// >= 2 points slerped (diffusion.Slerp) from latent 2p to latent 2p+1, both ends included exactly, so
// decoding a strip of encoded images with the encoding's DDIM starts and ends each row at the
// images' reconstructions (DDIM Sec. 5.3).
func SlerpPairs(ends []float64, frames, dim int) []float64 {
	pairs := len(ends) / (2 * dim)
	xT := make([]float64, pairs*frames*dim)
	for p := range pairs {
		a, b := ends[2*p*dim:(2*p+1)*dim], ends[(2*p+1)*dim:(2*p+2)*dim]
		for f := range frames {
			row := (p*frames + f) * dim
			diffusion.Slerp(a, b, float64(f)/float64(frames-1), xT[row:row+dim])
		}
	}
	return xT
}

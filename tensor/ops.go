package tensor

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// dropoutStream is the PCG stream of dropout masks, so a dropout seed never replays the numbers
// of a RandN with the same seed.
const dropoutStream = 0x64726f706f7574 // "dropout"

// DropoutMask returns the mask of Backend.Dropout for n elements: element i is dropped (0) when
// the i-th Float64 of PCG(seed, dropoutStream) is below p, and kept with 1/(1-p) otherwise. It is
// exported so that every backend draws the same mask for the same seed.
func DropoutMask(n int, p float32, seed uint64) []float32 {
	if !(p >= 0 && p < 1) {
		panic(fmt.Sprintf("tensor: Dropout: probability %v outside [0,1)", p))
	}
	mask := make([]float32, n)
	keep := float32(1 / (1 - float64(p)))
	if p == 0 {
		for i := range mask {
			mask[i] = 1
		}
		return mask
	}
	rng := rand.New(rand.NewPCG(seed, dropoutStream))
	for i := range mask {
		if rng.Float64() >= float64(p) {
			mask[i] = keep
		}
	}
	return mask
}

// SinusoidalEmbedding returns the (len(t), dim) time embedding of DDPM's UNet in the layout of
// the peer model: row i is [sin(t_i f_0), ..., sin(t_i f_{h-1}), cos(t_i f_0), ..., cos(t_i f_{h-1})]
// with h = dim/2 and f_j = exp(-ln(10000) j / h). The frequencies and products are rounded to
// float32 where PyTorch computes in float32, so the two agree to float32 precision. The timesteps
// are not learned, so there is no backward; upload the result with Backend.Upload.
func SinusoidalEmbedding(t []float32, dim int) []float32 {
	if dim < 2 || dim%2 != 0 {
		panic(fmt.Sprintf("tensor: SinusoidalEmbedding: dim %d must be even and >= 2", dim))
	}
	half := dim / 2
	freqs := make([]float32, half)
	for j := range freqs {
		e := float32(-math.Log(10000)) * float32(j) / float32(half)
		freqs[j] = float32(math.Exp(float64(e)))
	}
	out := make([]float32, len(t)*dim)
	for i, ti := range t {
		row := out[i*dim : (i+1)*dim]
		for j, f := range freqs {
			a := float64(ti * f)
			row[j] = float32(math.Sin(a))
			row[half+j] = float32(math.Cos(a))
		}
	}
	return out
}

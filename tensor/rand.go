package tensor

import "math/rand/v2"

var (
	_ Backend = (*Reference[float32])(nil)
	_ Backend = (*Reference[float64])(nil)
)

// RandN returns Numel(shape) standard normal float32 values drawn from PCG(seed, 0), for tests
// and initialisation that must repeat exactly given the seed.
func RandN(shape []int, seed uint64) []float32 {
	rng := rand.New(rand.NewPCG(seed, 0))
	out := make([]float32, Numel(shape))
	for i := range out {
		out[i] = float32(rng.NormFloat64())
	}
	return out
}

// RandParam returns a parameter whose weights are std * N(0,1) from RandN(shape, seed).
func RandParam(name string, std float32, seed uint64, shape ...int) *Param {
	p := NewParam(name, shape...)
	for i, v := range RandN(shape, seed) {
		p.W[i] = std * v
	}
	return p
}

package generate

import "github.com/ddpm-go/ddpm/data"

// Float32 converts samples to float32, the type of the data package's image helpers (data.WriteGrid).
func Float32(x []float64) []float32 {
	out := make([]float32, len(x))
	for i, v := range x {
		out[i] = float32(v)
	}
	return out
}

// ToUint8 maps samples in [-1, 1] to bytes 0..255 (clamping outside it) exactly as data.ToUint8
// maps training images and data.WriteGrid draws grids, so every output of a sample shows the same
// pixels.
func ToUint8(x []float64) []uint8 { return data.ToUint8(make([]uint8, 0, len(x)), Float32(x)) }

package generate

import "math"

// ToUint8 maps samples in [-1, 1] to bytes 0..255 (clamping outside it), the inverse of the scaling
// the training data went through (data.ToUint8, here for float64 samples).
func ToUint8(x []float64) []uint8 {
	out := make([]uint8, len(x))
	for i, v := range x {
		out[i] = uint8(math.Max(0, math.Min(255, math.Round((v+1)*127.5))))
	}
	return out
}

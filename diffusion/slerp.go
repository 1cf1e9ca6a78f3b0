package diffusion

import "math"

// Slerp is spherical interpolation between a and b into out, alpha = 0 giving a and 1 giving b (DDIM
// Sec. 5.3, after White 2016): Gaussian latents concentrate on a sphere, and the straight line
// between two of them passes through low-norm points the model never saw, which slerp avoids.
func Slerp(a, b []float64, alpha float64, out []float64) {
	var dot, na, nb float64
	for i := range a {
		dot += a[i] * b[i]
		na += a[i] * a[i]
		nb += b[i] * b[i]
	}
	theta := math.Acos(max(-1, min(1, dot/math.Sqrt(na*nb))))
	if theta < 1e-8 {
		for i := range a {
			out[i] = (1-alpha)*a[i] + alpha*b[i]
		}
		return
	}
	wa, wb := math.Sin((1-alpha)*theta)/math.Sin(theta), math.Sin(alpha*theta)/math.Sin(theta)
	for i := range a {
		out[i] = wa*a[i] + wb*b[i]
	}
}

package eval

import (
	"fmt"
	"slices"
)

// Coverage is the coverage of Naeem et al. 2020 ("Reliable Fidelity and Diversity Metrics for
// Generative Models", Eq. 4): the fraction of real samples X_i whose k-nearest-neighbour ball among the
// real samples holds at least one generated sample Y_j,
//
//	coverage = (1/N) sum_i 1[ exists j: ||Y_j - X_i|| <= NND_k(X_i) ]
//
// It measures how much of the real data's support the generator reaches (mode coverage): a generator
// that collapses onto a few modes, or onto the most typical images of each class as strong guidance
// does, leaves the balls of the rest empty. Unlike recall it is not inflated by generated outliers.
// real holds nr rows and fake nf rows of dim features; 1 <= k < nr.
func Coverage(real []float64, nr int, fake []float64, nf int, dim, k int) (float64, error) {
	if nr < 2 || nf < 1 || dim < 1 || len(real) != nr*dim || len(fake) != nf*dim {
		return 0, fmt.Errorf("coverage: %d real and %d fake values for %d and %d rows of %d", len(real), len(fake), nr, nf, dim)
	}
	if k < 1 || k >= nr {
		return 0, fmt.Errorf("coverage: k = %d outside [1, %d)", k, nr)
	}
	dist2 := func(a, b []float64) float64 {
		s := 0.0
		for i, v := range a {
			d := v - b[i]
			s += d * d
		}
		return s
	}
	covered := 0
	d := make([]float64, nr)
	for i := range nr {
		xi := real[i*dim : (i+1)*dim]
		for j := range nr {
			d[j] = dist2(xi, real[j*dim:(j+1)*dim])
		}
		// d[i] = 0 is X_i itself; its k-th nearest other neighbour is the (k+1)-th smallest.
		radius := kth(d, k)
		for j := range nf {
			if dist2(xi, fake[j*dim:(j+1)*dim]) <= radius {
				covered++
				break
			}
		}
	}
	return float64(covered) / float64(nr), nil
}

// kth is the k-th smallest value of d (0-based, so kth(d, 0) is the minimum); d is reordered.
func kth(d []float64, k int) float64 {
	slices.Sort(d)
	return d[k]
}

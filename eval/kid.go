package eval

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
)

// KIDOptions chooses the subsets of Binkowski et al. (2018): the MMD is averaged over Subsets random
// subsets of SubsetSize vectors drawn from each set, without replacement within a subset. The zero
// value means 100 subsets of 1000 (their and torch-fidelity's defaults); SubsetSize is capped at the
// smaller set's size.
type KIDOptions struct {
	Subsets    int
	SubsetSize int
	Seed       uint64
	Threads    int // goroutines over subsets; 0 = 1. The result does not depend on it.
}

// KID returns the kernel inception distance between feature sets x (nx rows) and y (ny rows) of
// length dim: the mean over subsets of the unbiased estimate of MMD^2 with the cubic polynomial kernel
// k(a, b) = (a.b/dim + 1)^3 (Binkowski et al. 2018, eq. 4 and Sec. 4), and the standard deviation
// over subsets. Unlike FID the estimate is unbiased, so it can be compared across sample sizes and is
// near zero (possibly negative) for two samples of one distribution.
func KID(x []float64, nx int, y []float64, ny int, dim int, o KIDOptions) (mean, std float64, err error) {
	if dim < 1 || nx < 2 || ny < 2 || len(x) != nx*dim || len(y) != ny*dim {
		return 0, 0, fmt.Errorf("kid: need >= 2 vectors per set in n*dim values, got nx=%d ny=%d dim=%d with %d and %d values", nx, ny, dim, len(x), len(y))
	}
	subsets, m := o.Subsets, o.SubsetSize
	if subsets == 0 {
		subsets = 100
	}
	if m == 0 {
		m = 1000
	}
	if subsets < 1 || m < 2 {
		return 0, 0, fmt.Errorf("kid: need subsets >= 1 and subset size >= 2, got %d and %d", subsets, m)
	}
	m = min(m, nx, ny)
	// Draw every subset's indices up front from one stream, so the result does not depend on Threads.
	r := rand.New(rand.NewPCG(o.Seed, 0x4b4944))
	idx := make([][2][]int, subsets)
	for s := range idx {
		idx[s] = [2][]int{r.Perm(nx)[:m], r.Perm(ny)[:m]}
	}
	vals := make([]float64, subsets)
	threads := max(1, o.Threads)
	var wg sync.WaitGroup
	next := make(chan int)
	for range threads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for s := range next {
				vals[s] = mmd2(x, y, idx[s][0], idx[s][1], dim)
			}
		}()
	}
	for s := range subsets {
		next <- s
	}
	close(next)
	wg.Wait()
	for _, v := range vals {
		mean += v
	}
	mean /= float64(subsets)
	for _, v := range vals {
		std += (v - mean) * (v - mean)
	}
	if subsets > 1 {
		std = math.Sqrt(std / float64(subsets-1))
	}
	return mean, std, nil
}

// mmd2 is the unbiased MMD^2 between rows ix of x and rows iy of y (equal counts m):
// sum_{i!=j} k(x_i,x_j)/(m(m-1)) + sum_{i!=j} k(y_i,y_j)/(m(m-1)) - 2 sum_{i,j} k(x_i,y_j)/m^2.
func mmd2(x, y []float64, ix, iy []int, dim int) float64 {
	m := len(ix)
	k := func(a, b []float64) float64 {
		s := dot(a, b)/float64(dim) + 1
		return s * s * s
	}
	var kxx, kyy, kxy float64
	for i := range m {
		xi, yi := x[ix[i]*dim:(ix[i]+1)*dim], y[iy[i]*dim:(iy[i]+1)*dim]
		for j := i + 1; j < m; j++ {
			kxx += k(xi, x[ix[j]*dim:(ix[j]+1)*dim])
			kyy += k(yi, y[iy[j]*dim:(iy[j]+1)*dim])
		}
		for j := range m {
			kxy += k(xi, y[iy[j]*dim:(iy[j]+1)*dim])
		}
	}
	fm := float64(m)
	return 2*(kxx+kyy)/(fm*(fm-1)) - 2*kxy/(fm*fm)
}

func dot(a, b []float64) float64 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}

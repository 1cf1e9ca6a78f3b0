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
// The subsets are gathered into contiguous rows first so the kernel sums run as blocked Gram products
// (kernelSum); the tests hold it to the pair-by-pair definition.
func mmd2(x, y []float64, ix, iy []int, dim int) float64 {
	m := len(ix)
	xs, ys := gather(x, ix, dim), gather(y, iy, dim)
	kxx := kernelSum(xs, xs, m, m, dim, true)
	kyy := kernelSum(ys, ys, m, m, dim, true)
	kxy := kernelSum(xs, ys, m, m, dim, false)
	fm := float64(m)
	return 2*(kxx+kyy)/(fm*(fm-1)) - 2*kxy/(fm*fm)
}

// gather copies rows idx of x into a new matrix, padded with zero rows to a multiple of 4 for
// kernelSum's blocks (the padding is masked there).
func gather(x []float64, idx []int, dim int) []float64 {
	rows := (len(idx) + 3) &^ 3
	out := make([]float64, rows*dim)
	for i, r := range idx {
		copy(out[i*dim:(i+1)*dim], x[r*dim:(r+1)*dim])
	}
	return out
}

// kernelSum returns sum k(a_i, b_j) with k(u, v) = (u.v/dim + 1)^3 over i < na, j < nb, or over
// i < j only when upper (a and b the same set). a and b hold at least na and nb rows rounded up to a
// multiple of 4. Each 4x4 block of dot products shares its loads: 16 accumulators per 8 loads where
// a lone dot product needs two loads per multiply-add, which is what bounds the pair-by-pair loop.
func kernelSum(a, b []float64, na, nb, dim int, upper bool) float64 {
	var total float64
	inv := 1 / float64(dim)
	var c [4][4]float64
	for i0 := 0; i0 < na; i0 += 4 {
		a0, a1, a2, a3 := a[i0*dim:(i0+1)*dim], a[(i0+1)*dim:(i0+2)*dim], a[(i0+2)*dim:(i0+3)*dim], a[(i0+3)*dim:(i0+4)*dim]
		j0 := 0
		if upper {
			j0 = i0
		}
		for ; j0 < nb; j0 += 4 {
			b0, b1, b2, b3 := b[j0*dim:(j0+1)*dim], b[(j0+1)*dim:(j0+2)*dim], b[(j0+2)*dim:(j0+3)*dim], b[(j0+3)*dim:(j0+4)*dim]
			dot4x4(&c, a0, a1, a2, a3, b0, b1, b2, b3)
			for di := range 4 {
				i := i0 + di
				if i >= na {
					break
				}
				for dj := range 4 {
					j := j0 + dj
					if j >= nb || upper && j <= i {
						continue
					}
					v := c[di][dj]*inv + 1
					total += v * v * v
				}
			}
		}
	}
	return total
}

// dot4x4 sets c[i][j] to the dot product of a_i and b_j, two columns at a time so the accumulators
// and loaded values fit the 16 floating-point registers of amd64.
func dot4x4(c *[4][4]float64, a0, a1, a2, a3, b0, b1, b2, b3 []float64) {
	n := len(a0)
	a1, a2, a3 = a1[:n], a2[:n], a3[:n]
	for p := 0; p < 4; p += 2 {
		bp, bq := b0, b1
		if p == 2 {
			bp, bq = b2, b3
		}
		bp, bq = bp[:n], bq[:n]
		var c00, c01, c10, c11, c20, c21, c30, c31 float64
		for k := range n {
			u, w := bp[k], bq[k]
			x0, x1, x2, x3 := a0[k], a1[k], a2[k], a3[k]
			c00 += x0 * u
			c01 += x0 * w
			c10 += x1 * u
			c11 += x1 * w
			c20 += x2 * u
			c21 += x2 * w
			c30 += x3 * u
			c31 += x3 * w
		}
		c[0][p], c[0][p+1] = c00, c01
		c[1][p], c[1][p+1] = c10, c11
		c[2][p], c[2][p+1] = c20, c21
		c[3][p], c[3][p+1] = c30, c31
	}
}

package diffusion

import (
	"fmt"
	"math"
)

// ComponentFit is what samples say about one mixture component.
type ComponentFit struct {
	Weight float64   // fraction of samples assigned to the component
	Mean   []float64 // their mean
	Std    float64   // their standard deviation, pooled over the D dimensions
}

// Recovery summarises how well samples reproduce a mixture: the worst absolute weight error, the worst
// distance between a fitted and a true mean, and the worst relative std error |s_fit - s|/s.
type Recovery struct {
	Components []ComponentFit
	WeightErr  float64
	MeanErr    float64
	StdRelErr  float64
	Unassigned int // components with no samples (their errors count as total)
}

// Fit assigns each of the n samples (rows of m.Dim() values) to the component with the highest
// posterior responsibility under the data density and measures each component's weight, mean and std.
// Hard assignment biases the estimates when components overlap, so use it on well-separated mixtures
// (the tests' and docs/mixture3.json have separations of many stds).
func Fit(m *Mixture, x []float64, n int) (*Recovery, error) {
	D := m.Dim()
	if len(x) != n*D || n < 1 {
		return nil, fmt.Errorf("fit: %d values for %d samples of dimension %d", len(x), n, D)
	}
	K := len(m.Weights)
	count := make([]int, K)
	sum := make([][]float64, K)
	sumSq := make([][]float64, K)
	for k := range sum {
		sum[k], sumSq[k] = make([]float64, D), make([]float64, D)
	}
	nm := m.noised(1)
	for i := 0; i < n; i++ {
		xi := x[i*D : (i+1)*D]
		logp := nm.logp
		nm.logs(xi, logp)
		best := 0
		for k := range logp {
			if logp[k] > logp[best] {
				best = k
			}
		}
		count[best]++
		for j, v := range xi {
			sum[best][j] += v
			sumSq[best][j] += v * v
		}
	}
	rec := &Recovery{Components: make([]ComponentFit, K)}
	for k := range count {
		c := &rec.Components[k]
		c.Weight = float64(count[k]) / float64(n)
		rec.WeightErr = max(rec.WeightErr, math.Abs(c.Weight-m.Weights[k]))
		if count[k] == 0 {
			rec.Unassigned++
			rec.MeanErr, rec.StdRelErr = math.Inf(1), math.Inf(1)
			continue
		}
		c.Mean = make([]float64, D)
		variance, dist := 0.0, 0.0
		for j := range c.Mean {
			mean := sum[k][j] / float64(count[k])
			c.Mean[j] = mean
			variance += sumSq[k][j]/float64(count[k]) - mean*mean
			d := mean - m.Means[k][j]
			dist += d * d
		}
		c.Std = math.Sqrt(max(0, variance/float64(D)))
		rec.MeanErr = max(rec.MeanErr, math.Sqrt(dist))
		rec.StdRelErr = max(rec.StdRelErr, math.Abs(c.Std-m.Stds[k])/m.Stds[k])
	}
	return rec, nil
}

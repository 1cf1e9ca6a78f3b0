package eval

import "fmt"

// Drift measures how far a sampler's states stray from the forward process, the input mismatch that
// Ning et al. 2024 call exposure bias: the network was trained only on x_t = sqrt(abar) x0 +
// sqrt(1-abar) eps with x0 from the data, whose mean energy per value is exactly
//
//	E|x_t|^2 / d = abar m2 + (1 - abar),   m2 = E|x0|^2 / d of the data,
//
// because x0 and eps are independent and eps has unit variance. A sampler that follows the forward
// marginals (the exact reverse process does) keeps Energy/Forward = 1 at every step; an ODE driven by
// an imperfect network can drift away, and every later prediction is then made off the training
// distribution. It is a diagnostic that needs no test set and no classifier.
type Drift struct {
	sum   []float64 // by step index: sum over images of |x|^2 / d
	count []int
	ts    []int
	final float64 // the same for the sampler's output
	nOut  int
}

// Add records the states x (n rows of dim values) that step k (at timestep t) starts from; called
// with every batch of a job, in any order.
func (d *Drift) Add(k, t int, x []float64, n, dim int) {
	for len(d.sum) <= k {
		d.sum, d.count, d.ts = append(d.sum, 0), append(d.count, 0), append(d.ts, -1)
	}
	d.ts[k] = t
	d.sum[k] += rowEnergies(x, n, dim)
	d.count[k] += n
}

// AddFinal records the sampler's output (n rows of dim values).
func (d *Drift) AddFinal(x []float64, n, dim int) {
	d.final += rowEnergies(x, n, dim)
	d.nOut += n
}

// rowEnergies is the sum over the n rows of x of |row|^2 / dim.
func rowEnergies(x []float64, n, dim int) float64 {
	var sum float64
	for i := range n {
		var e float64
		for _, v := range x[i*dim : (i+1)*dim] {
			e += v * v
		}
		sum += e / float64(dim)
	}
	return sum
}

// DriftRow is one step of a Drift report. T is -1 for the sampler's output, compared with the data.
type DriftRow struct {
	Step     int     `json:"step"`
	T        int     `json:"t"`
	AlphaBar float64 `json:"abar"`
	Energy   float64 `json:"energy"`  // mean |x|^2 / d of the sampler's states
	Forward  float64 `json:"forward"` // the forward process's: abar m2 + 1 - abar
	Ratio    float64 `json:"ratio"`   // Energy / Forward
}

// Rows returns one row per step in sampling order, then the output's row, given the schedule's
// abar by timestep and the data's m2 (see SecondMoment).
func (d *Drift) Rows(abar []float64, m2 float64) ([]DriftRow, error) {
	if !(m2 > 0) {
		return nil, fmt.Errorf("drift: data second moment %v must be > 0", m2)
	}
	var rows []DriftRow
	for k, t := range d.ts {
		if d.count[k] == 0 || t < 0 || t >= len(abar) {
			return nil, fmt.Errorf("drift: step %d was not recorded (or has timestep %d outside the schedule)", k, t)
		}
		e := d.sum[k] / float64(d.count[k])
		f := abar[t]*m2 + 1 - abar[t]
		rows = append(rows, DriftRow{Step: k, T: t, AlphaBar: abar[t], Energy: e, Forward: f, Ratio: e / f})
	}
	if d.nOut > 0 {
		e := d.final / float64(d.nOut)
		rows = append(rows, DriftRow{Step: len(d.ts), T: -1, AlphaBar: 1, Energy: e, Forward: m2, Ratio: e / m2})
	}
	return rows, nil
}

// SecondMoment returns m2 = mean of v^2 over all values of images (in the model's [-1, 1] range).
func SecondMoment(images []float32) float64 {
	var s float64
	for _, v := range images {
		s += float64(v) * float64(v)
	}
	return s / float64(max(1, len(images)))
}

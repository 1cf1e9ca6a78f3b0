package eval

import (
	"fmt"
	"math"
)

// ClassStats summarises a classifier's predictions on generated images: which classes the generator
// covers (mode coverage) and how often the classifier is sure (a proxy for recognisable samples).
type ClassStats struct {
	Histogram []int // predicted-class counts (argmax)
	Fractions []float64
	// Confident is the fraction of images whose top softmax probability is at least Threshold.
	Confident float64
	Threshold float64
	// KLUniform is KL(histogram || uniform) in nats: 0 when every class is predicted equally often,
	// log(classes) when one class takes everything.
	KLUniform float64
}

// Classes computes ClassStats from n rows of logits over k classes, with a softmax per row in float64.
func Classes(logits []float64, n, k int, threshold float64) (*ClassStats, error) {
	if n < 1 || k < 2 || len(logits) != n*k {
		return nil, fmt.Errorf("classes: %d logits for n=%d rows of k=%d classes", len(logits), n, k)
	}
	if !(threshold > 0 && threshold <= 1) {
		return nil, fmt.Errorf("classes: confidence threshold %v outside (0, 1]", threshold)
	}
	st := &ClassStats{Histogram: make([]int, k), Fractions: make([]float64, k), Threshold: threshold}
	confident := 0
	for i := range n {
		row := logits[i*k : (i+1)*k]
		best := 0
		for j, v := range row {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, fmt.Errorf("classes: non-finite logit %v (row %d, class %d)", v, i, j)
			}
			if v > row[best] {
				best = j
			}
		}
		// Top probability = 1 / sum_j exp(l_j - l_best).
		sum := 0.0
		for _, v := range row {
			sum += math.Exp(v - row[best])
		}
		if 1/sum >= threshold {
			confident++
		}
		st.Histogram[best]++
	}
	st.Confident = float64(confident) / float64(n)
	for j, c := range st.Histogram {
		p := float64(c) / float64(n)
		st.Fractions[j] = p
		if p > 0 {
			st.KLUniform += p * math.Log(p*float64(k))
		}
	}
	return st, nil
}

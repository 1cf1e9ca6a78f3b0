package diffusion

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"

	"github.com/ddpm-go/ddpm/internal/safeio"
	"github.com/ddpm-go/ddpm/schedule"
)

// Mixture is a mixture of isotropic Gaussians in D dimensions: component k has weight Weights[k],
// mean Means[k] (D values) and the same standard deviation Stds[k] in every dimension. Its JSON form
// is {"weights":[...],"means":[[...],...],"stds":[...]}.
type Mixture struct {
	Weights []float64   `json:"weights"`
	Means   [][]float64 `json:"means"`
	Stds    []float64   `json:"stds"`
}

// weightTol is how far from 1 the weights may sum; within it they are rescaled to sum to 1 exactly.
// A looser sum is an error rather than silently normalised, since it usually means a typo.
const weightTol = 1e-6

// maxScale bounds means and stds (and 1/maxScale bounds stds from below) so that squared distances
// and variances stay far from float64 overflow and underflow; diffusion works at unit scale anyway.
const maxScale = 1e6

// Validate checks the mixture and rescales the weights to sum to exactly 1. It requires at least one
// component; as many weights, means and stds as components; finite positive weights summing to 1
// within 1e-6; means of one dimension D >= 1 with values within +-1e6; stds in [1e-6, 1e6].
func (m *Mixture) Validate() error {
	K := len(m.Weights)
	if K == 0 {
		return fmt.Errorf("mixture: no components (empty weights)")
	}
	if len(m.Means) != K || len(m.Stds) != K {
		return fmt.Errorf("mixture: %d weights, %d means, %d stds; want one of each per component", K, len(m.Means), len(m.Stds))
	}
	sum := 0.0
	for k, w := range m.Weights {
		if !(w > 0) || math.IsInf(w, 0) {
			return fmt.Errorf("mixture: weight %d is %v, want a finite number > 0", k, w)
		}
		sum += w
	}
	if math.Abs(sum-1) > weightTol {
		return fmt.Errorf("mixture: weights sum to %v, want 1 (within %g)", sum, weightTol)
	}
	for k := range m.Weights {
		m.Weights[k] /= sum
	}
	D := len(m.Means[0])
	if D == 0 {
		return fmt.Errorf("mixture: mean 0 is empty, want dimension >= 1")
	}
	for k, mu := range m.Means {
		if len(mu) != D {
			return fmt.Errorf("mixture: mean %d has %d values, mean 0 has %d", k, len(mu), D)
		}
		for j, v := range mu {
			if !(math.Abs(v) <= maxScale) {
				return fmt.Errorf("mixture: mean %d value %d is %v, want a number within +-%g", k, j, v, maxScale)
			}
		}
	}
	for k, s := range m.Stds {
		if !(s >= 1/maxScale && s <= maxScale) {
			return fmt.Errorf("mixture: std %d is %v, want a number in [%g, %g]", k, s, 1/maxScale, maxScale)
		}
	}
	return nil
}

// Dim is the dimension D of the mixture's samples.
func (m *Mixture) Dim() int { return len(m.Means[0]) }

// ParseMixture reads a mixture's JSON form and validates it. Unknown fields are errors.
func ParseMixture(r io.Reader) (*Mixture, error) {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	var m Mixture
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("mixture: %w", err)
	}
	if dec.More() {
		return nil, fmt.Errorf("mixture: trailing data after the JSON object")
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// LoadMixture reads and validates a mixture JSON file.
func LoadMixture(path string) (*Mixture, error) {
	b, err := safeio.ReadFile(path, 16<<20)
	if err != nil {
		return nil, err
	}
	m, err := ParseMixture(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// Sample draws n points (n*D values, row-major) from the mixture.
func (m *Mixture) Sample(r *rand.Rand, n int) []float64 {
	D := m.Dim()
	out := make([]float64, n*D)
	for i := 0; i < n; i++ {
		u, k := r.Float64(), 0
		for k < len(m.Weights)-1 && u >= m.Weights[k] {
			u -= m.Weights[k]
			k++
		}
		for j := 0; j < D; j++ {
			out[i*D+j] = m.Means[k][j] + m.Stds[k]*r.NormFloat64()
		}
	}
	return out
}

// LogDensity returns log p(x) of the noised mixture at noise level abar: the law of
// x_t = sqrt(abar) x_0 + sqrt(1-abar) eps with x_0 from m, itself a mixture with means sqrt(abar) mu_k
// and variances abar s_k^2 + 1 - abar. abar = 1 gives the data density.
func (m *Mixture) LogDensity(x []float64, abar float64) float64 {
	nm := m.noised(abar)
	return nm.logs(x, nm.logp)
}

// noisedMixture holds the per-component constants of the mixture at one noise level, so the per-row
// work is a few multiply-adds and one exp per component.
type noisedMixture struct {
	a      float64     // sqrt(abar)
	b      float64     // sqrt(1 - abar)
	means  [][]float64 // sqrt(abar) mu_k
	logc   []float64   // log w_k - D/2 log(2 pi v_k)
	invV   []float64   // 1 / v_k, v_k = abar s_k^2 + 1 - abar
	shrink []float64   // sqrt(abar) s_k^2 / v_k, the slope of E[x_0 | x_t, k] in x_t
	logp   []float64   // scratch: per-component log terms of the current row
}

func (m *Mixture) noised(abar float64) *noisedMixture {
	K, D := len(m.Weights), m.Dim()
	a := math.Sqrt(abar)
	nm := &noisedMixture{a: a, b: math.Sqrt(1 - abar), means: make([][]float64, K)}
	buf := make([]float64, 4*K+K*D)
	nm.logc, nm.invV, nm.shrink, nm.logp = buf[:K], buf[K:2*K], buf[2*K:3*K], buf[3*K:4*K]
	for k, mu := range m.Means {
		s2 := m.Stds[k] * m.Stds[k]
		v := abar*s2 + 1 - abar
		nm.logc[k] = math.Log(m.Weights[k]) - 0.5*float64(D)*math.Log(2*math.Pi*v)
		nm.invV[k] = 1 / v
		nm.shrink[k] = a * s2 / v
		nm.means[k] = buf[4*K+k*D : 4*K+(k+1)*D]
		for j, mj := range mu {
			nm.means[k][j] = a * mj
		}
	}
	return nm
}

// logs writes log(w_k N(x; sqrt(abar) mu_k, v_k I)) for each k into logp and returns their
// log-sum-exp, log p_t(x).
func (nm *noisedMixture) logs(x, logp []float64) float64 {
	best := math.Inf(-1)
	for k, mu := range nm.means {
		d2 := 0.0
		for j, xj := range x {
			d := xj - mu[j]
			d2 += d * d
		}
		logp[k] = nm.logc[k] - 0.5*d2*nm.invV[k]
		best = max(best, logp[k])
	}
	sum := 0.0
	for _, l := range logp {
		sum += math.Exp(l - best)
	}
	return best + math.Log(sum)
}

// Oracle is the exact denoiser of data drawn from a Gaussian mixture: the Predictor a perfectly trained
// network would be. With p_t the noised mixture (see LogDensity) and r_k(x) its posterior component
// responsibilities, computed stably by log-sum-exp,
//
//	eps*(x_t, t) = -sqrt(1-abar) grad log p_t(x_t) = sqrt(1-abar) sum_k r_k (x_t - sqrt(abar) mu_k) / v_k
//	x0*(x_t, t)  = E[x_0 | x_t] = sum_k r_k (mu_k + sqrt(abar) s_k^2 / v_k (x_t - sqrt(abar) mu_k))
//
// with v_k = abar s_k^2 + 1 - abar. Both are computed directly, so x0 stays defined where abar = 0.
type Oracle struct {
	Mixture  *Mixture
	Schedule *schedule.Schedule
	Output   Prediction // what Predict writes; the samplers' Options.Prediction must match
}

// Predict implements Predictor.
func (o *Oracle) Predict(ctx context.Context, x []float64, n, dim, t int, out []float64) error {
	if dim != o.Mixture.Dim() {
		return fmt.Errorf("oracle: rows of %d values, mixture dimension is %d", dim, o.Mixture.Dim())
	}
	if t < 0 || t >= o.Schedule.T {
		return fmt.Errorf("oracle: timestep %d outside [0, %d]", t, o.Schedule.T-1)
	}
	if len(x) != n*dim || len(out) != n*dim {
		return fmt.Errorf("oracle: %d inputs and %d outputs for %d rows of %d", len(x), len(out), n, dim)
	}
	if o.Output != Eps && o.Output != X0 && o.Output != V {
		return fmt.Errorf("oracle: unknown parameterization %d", int(o.Output))
	}
	nm := o.Mixture.noised(o.Schedule.AlphaBar[t])
	for i := 0; i < n; i++ {
		xi := x[i*dim : (i+1)*dim]
		lse := nm.logs(xi, nm.logp)
		nm.predictRow(o.Mixture, xi, out[i*dim:(i+1)*dim], o.Output, func(k int) float64 { return math.Exp(nm.logp[k] - lse) })
	}
	return nil
}

// predictRow writes to oi the prediction at x_t = xi of the components weighted by r(k): their
// posterior responsibilities for the whole mixture (Oracle), or the indicator of one class
// (ClassOracle). Each component's term is that Gaussian's exact eps, x0 or v.
func (nm *noisedMixture) predictRow(m *Mixture, xi, oi []float64, output Prediction, r func(k int) float64) {
	a, b := nm.a, nm.b
	for j := range oi {
		oi[j] = 0
	}
	for k, amu := range nm.means {
		rk := r(k)
		if rk == 0 {
			continue
		}
		mu := m.Means[k]
		for j, xj := range xi {
			d := xj - amu[j] // x_t - sqrt(abar) mu_k
			switch output {
			case Eps:
				oi[j] += rk * b * d * nm.invV[k]
			case X0:
				oi[j] += rk * (mu[j] + nm.shrink[k]*d)
			case V:
				// v = sqrt(abar) eps - sqrt(1-abar) x0, accumulated per component.
				oi[j] += rk * (a*b*d*nm.invV[k] - b*(mu[j]+nm.shrink[k]*d))
			}
		}
	}
}

package diffusion

import (
	"context"
	"fmt"
	"math"

	"github.com/ddpm-go/ddpm/schedule"
)

// UniPC is the unified predictor-corrector solver of Zhao et al. 2023 ("UniPC: A Unified
// Predictor-Corrector Framework for Fast Sampling of Diffusion Models"), multistep, in its data
// prediction form: the predictor UniP-p followed by the corrector UniC-p, which raises the order to
// p+1 at no extra cost because it reuses the model evaluation the next step needs anyway.
//
// Both are exponential integrators of the data-prediction ODE in lambda = log(alpha/sigma), as
// DPM-Solver++ (see DPMSolver): for a step from s to t, h = lambda_t - lambda_s,
//
//	x_t = (sigma_t/sigma_s) x_s + alpha_t (1 - e^{-h}) m_0 + alpha_t B(h) sum_j rho_j D_j,
//	D_j = (m_j - m_0) / r_j,   r_j = (lambda_j - lambda_s) / h,
//
// where m_0 is the model's x0 at s and m_j its x0 at other points: earlier timesteps for the
// predictor (r_j < 0), and also t itself (r = 1) for the corrector. Expanding x0 in a Taylor series
// in lambda, the step is exact to order K+1 when the weights satisfy the paper's order conditions
//
//	sum_j rho_j r_j^(k-1) = g_k / B(h),  g_k = k! h phi_{k+1}(-h) = int_0^h e^{-(h-u)} u^k du / h^k,
//
// for k = 1..K, K being the number of points D_j (one Vandermonde system per step; phi as in
// exponential integrators, phi_{k+1}(z) = sum_i z^i/(i+k+1)!). UniP-p uses the p-1 previous
// predictions (order p); UniC-p adds the prediction at t (order p+1). As in the paper's code, the one
// point systems (UniP-2, UniC-1) take rho = 1/2, the limit of their solution as h -> 0; UniP-2 with
// B(h) = 1 - e^{-h} is then DPM-Solver++(2M) exactly.
//
// B(h) is either choice the paper offers: B(h) = 1 - e^{-h}, its "bh2" (the default here, and
// diffusers'; the paper recommends it for guided sampling), or B(h) = h, its "bh1" (recommended for
// unconditional sampling at very few steps); BH1 selects the latter. (In the paper's sign convention,
// written with hh = -h for data prediction, these are e^{hh} - 1 and hh.)
//
// The loop is the paper's: x^p_{k+1} = UniP(x^c_k), the model is evaluated at x^p_{k+1} (that is the
// next step's call), x^c_{k+1} = UniC(x^c_k, that evaluation), and the next predictor starts from
// x^c_{k+1} reusing the evaluation at x^p_{k+1}. The model is never called at x^c, so S steps cost
// S calls, and the last step, whose evaluation would serve no further step, has no corrector. Step
// reports show the points where the model was called: X is x^p_k (the corrector's x^c_k is not
// reported) and Next is x^p_{k+1}; with Options.Known the corrected state keeps the known part
// imposed on x^p_k.
//
// Orders: min(Order, k+1) while the history fills, first order onto t = 0 and onto the clean sample
// (as every multistep solver here; see DPMSolver), and lower order before those in the way of the
// paper's code (lower_order_final: at most order j+1 on the j-th step before the final one). A
// zero-SNR start (lambda = -Inf) is never a node of a higher order step, and with BH1 the infinite
// first step gets no correction.
type UniPC struct {
	Schedule *schedule.Schedule
	Steps    int // S in [1, T]; S model calls
	Spacing  Spacing
	Clip     bool    // clip each model x0 (and its eps) to [-1, 1] before it is used
	Order    int     // p in 1..3 (0: 2): UniP-p with UniC-p, order p+1
	BH1      bool    // B(h) = h instead of 1 - e^{-h}
	EpsScale float64 // multiply the model's eps by this at every step (0 or 1: off; see walk)
}

// Timesteps returns the sequence this sampler visits.
func (u *UniPC) Timesteps() ([]int, error) {
	if u.Schedule == nil {
		return nil, fmt.Errorf("unipc: nil schedule")
	}
	if u.Order < 0 || u.Order > 3 {
		return nil, fmt.Errorf("unipc: order %d, want 1, 2 or 3", u.Order)
	}
	if err := checkEpsScale("unipc", u.EpsScale); err != nil {
		return nil, err
	}
	return Timesteps(u.Schedule.T, u.Steps, u.Spacing)
}

// uniCorrection is what a predictor step leaves for the corrector of the next step.
type uniCorrection struct {
	order  int
	h, b   float64   // the step's h and B(h)
	alphaT float64   // alpha at the step's target
	base   []float64 // the first order part (sigma_t/sigma_s) x_s + alpha_t (1 - e^{-h}) m_0
}

// Sample implements Sampler.
func (u *UniPC) Sample(ctx context.Context, pred Predictor, n, dim int, opts Options) ([]float64, error) {
	ts, err := u.Timesteps()
	if err != nil {
		return nil, err
	}
	s := u.Schedule
	w, err := newWalker(s, adjust{u.Clip, u.EpsScale}, pred, n, dim, opts)
	if err != nil {
		return nil, err
	}
	maxOrder := u.Order
	if maxOrder == 0 {
		maxOrder = 2
	}
	// ms[j] is the model's x0 j steps ago (ms[0]: the current step's, once pushed) at lambda lams[j].
	ms := make([][]float64, maxOrder)
	lams := make([]float64, maxOrder)
	for j := range ms {
		ms[j] = make([]float64, n*dim)
	}
	xc := make([]float64, n*dim)
	corr := uniCorrection{base: make([]float64, n*dim)}
	final := firstFinal(ts)
	var rks, rho []float64
	step := func(k, t, prev int, x, x0, eps, z, next []float64) {
		abS, abT := s.AlphaBar[t], s.AlphaBarPrev(prev)
		lamS := lambda(abS)
		// 1. UniC: correct x^p_k (= x, where the model was just called) with that call, m_k = x0.
		cur := x
		if corr.order > 0 && !math.IsInf(corr.b, 0) {
			// Nodes: the corrector's previous step started at ms[0] (lambda lams[0]); its own past
			// points are ms[1..order-1], and the new one is at r = 1.
			rks = rks[:0]
			for j := 1; j < corr.order; j++ {
				rks = append(rks, (lams[j]-lams[0])/corr.h)
			}
			rks = append(rks, 1)
			rho = uniWeights(rho, rks, corr.h, corr.b)
			last := rho[len(rho)-1]
			for i := range xc {
				sum := last * (x0[i] - ms[0][i])
				for j := 1; j < corr.order; j++ {
					sum += rho[j-1] * (ms[j][i] - ms[0][i]) / rks[j-1]
				}
				xc[i] = corr.base[i] + corr.alphaT*corr.b*sum
			}
			w.keepKnown(xc, x)
			cur = xc
		}
		// 2. Push m_k.
		oldest := ms[len(ms)-1]
		copy(ms[1:], ms[:len(ms)-1])
		copy(lams[1:], lams[:len(lams)-1])
		ms[0], lams[0] = oldest, lamS
		copy(ms[0], x0)
		// 3. The order of this step: the history so far, never through a zero-SNR node, and the
		//    lower order final steps.
		order := min(maxOrder, k+1, max(1, final-k+1))
		for order > 1 && math.IsInf(lams[order-1], -1) {
			order--
		}
		// 4. UniP: the first order part, then the predictor's sum over the previous points.
		alphaS, sigmaS := math.Sqrt(abS), math.Sqrt(1-abS)
		alphaT, sigmaT := math.Sqrt(abT), math.Sqrt(1-abT)
		cx, cd := sigmaT/sigmaS, alphaT-sigmaT*alphaS/sigmaS // alpha_t e^{-h} = sigma_t alpha_s / sigma_s
		h := lambda(abT) - lamS
		b := 1 - math.Exp(-h)
		if u.BH1 {
			b = h
		}
		for i := range next {
			corr.base[i] = cx*cur[i] + cd*x0[i]
		}
		copy(next, corr.base)
		if order > 1 {
			rks = rks[:0]
			for j := 1; j < order; j++ {
				rks = append(rks, (lams[j]-lamS)/h)
			}
			rho = uniWeights(rho, rks, h, b)
			for i := range next {
				sum := 0.0
				for j := 1; j < order; j++ {
					sum += rho[j-1] * (ms[j][i] - x0[i]) / rks[j-1]
				}
				next[i] += alphaT * b * sum
			}
		}
		// 5. Leave the corrector to the next step, if there is one (not after the last step).
		corr.order, corr.h, corr.b, corr.alphaT = 0, h, b, alphaT
		if k+1 < len(ts) {
			corr.order = order
		}
	}
	return w.walk(ctx, ts, step)
}

// firstFinal is the index of the first step of ts onto t = 0 or the clean sample: the first of the
// lower order final steps.
func firstFinal(ts []int) int {
	for k := range ts {
		if k+1 == len(ts) || ts[k+1] <= 0 {
			return k
		}
	}
	return len(ts) - 1
}

// uniWeights solves UniPC's order conditions sum_j rho_j r_j^(k-1) = g_k / b, k = 1..len(r), for
// the weights rho (written into dst), with rho = 1/2 for a single point (see UniPC).
func uniWeights(dst, r []float64, h, b float64) []float64 {
	K := len(r)
	dst = dst[:0]
	if K == 1 {
		return append(dst, 0.5)
	}
	// The augmented Vandermonde system, solved by Gaussian elimination with partial pivoting.
	var a [3][4]float64
	for k := range K {
		for j := range K {
			a[k][j] = math.Pow(r[j], float64(k))
		}
		a[k][K] = phiG(k+1, h) / b
	}
	for c := range K {
		p := c
		for i := c + 1; i < K; i++ {
			if math.Abs(a[i][c]) > math.Abs(a[p][c]) {
				p = i
			}
		}
		a[c], a[p] = a[p], a[c]
		for i := c + 1; i < K; i++ {
			f := a[i][c] / a[c][c]
			for j := c; j <= K; j++ {
				a[i][j] -= f * a[c][j]
			}
		}
	}
	for range K {
		dst = append(dst, 0)
	}
	for c := K - 1; c >= 0; c-- {
		v := a[c][K]
		for j := c + 1; j < K; j++ {
			v -= a[c][j] * dst[j]
		}
		dst[c] = v / a[c][c]
	}
	return dst
}

// phiG is g_k(h) = int_0^h e^{-(h-u)} u^k du / h^k = k! h phi_{k+1}(-h). Its recursion
// g_k = 1 - k g_{k-1} / h from g_0 = 1 - e^{-h} cancels for small h (g_k ~ h/(k+1)), so below h = 1/4
// it sums the series k! h sum_i (-h)^i / (i+k+1)! instead.
func phiG(k int, h float64) float64 {
	if math.IsInf(h, 1) {
		return 1
	}
	if h < 0.25 {
		term := h // k! h (-h)^0 / (k+1)! times (k+1)
		for i := 1; i <= k+1; i++ {
			term /= float64(i)
		}
		for i := 2; i <= k; i++ {
			term *= float64(i)
		}
		sum := 0.0
		for i := 0; i < 30 && term != 0; i++ {
			sum += term
			term *= -h / float64(i+k+2)
		}
		return sum
	}
	g := -math.Expm1(-h)
	for i := 1; i <= k; i++ {
		g = 1 - float64(i)*g/h
	}
	return g
}

// keepKnown copies the known coordinates (Options.Known) of src into dst.
func (w *walker) keepKnown(dst, src []float64) {
	for i, idx := range w.known {
		for _, j := range idx {
			dst[i*w.dim+j] = src[i*w.dim+j]
		}
	}
}

package nn

import "github.com/ddpm-go/ddpm/tensor"

// TimeEmbed is the peer's time embedding temb = Linear(SiLU(Linear(sinusoidal(t)))) (modules temb.0,
// temb.1 = SiLU, temb.2), followed by the SiLU every ResBlock applies to it before its own Linear.
// That last SiLU is computed once here and shared, which equals the peer's per-block F.silu(temb):
//
//	t (N ints) -> features (N,SinusoidalDim) -> e1 (N,D) -> e2 = silu(e1) -> e3 (N,D) -> act = silu(e3)
type TimeEmbed struct {
	be      tensor.Backend
	In, Out *Linear // temb.0, temb.2
	Dim     int     // sinusoidal feature width

	feat, e1, e2, e3 *tensor.Tensor // saved for backward (owned)
}

func (b *builder) timeEmbed(name string, dim, tdim int) *TimeEmbed {
	return &TimeEmbed{be: b.be, In: b.linear(name+".0", dim, tdim), Out: b.linear(name+".2", tdim, tdim), Dim: dim}
}

// Forward returns act = silu(temb(t)) (N,D), owned by the caller.
func (e *TimeEmbed) Forward(t []int, train bool) *tensor.Tensor {
	be := e.be
	feat := be.Upload([]int{len(t), e.Dim}, TimeFeatures(t, e.Dim))
	e1 := e.In.Forward(feat, train)
	e2 := be.SiLU(e1)
	e3 := e.Out.Forward(e2, train)
	act := be.SiLU(e3)
	if train {
		e.feat, e.e1, e.e2, e.e3 = feat, e1, e2, e3
	} else {
		release(be, feat, e1, e2, e3)
	}
	return act
}

// Backward takes dL/dact (summed over all blocks) and accumulates the MLP's gradients; the
// timesteps are integers, so no gradient flows further.
func (e *TimeEmbed) Backward(dact *tensor.Tensor) {
	be := e.be
	de3 := be.SiLUBackward(dact, e.e3)
	de2 := e.Out.Backward(de3)
	de1 := be.SiLUBackward(de2, e.e1)
	dfeat := e.In.Backward(de1)
	release(be, de3, de2, de1, dfeat)
	e.reset()
}

func (e *TimeEmbed) reset() {
	release(e.be, e.feat, e.e1, e.e2, e.e3)
	e.feat, e.e1, e.e2, e.e3 = nil, nil, nil, nil
}

// Params returns temb.0 and temb.2's parameters.
func (e *TimeEmbed) Params() []*tensor.Param { return concat(e.In.Params(), e.Out.Params()) }

// TimeFeatures is the peer's sinusoidal(t, dim): row i is [sin(t_i f_0..), cos(t_i f_0..)] with
// f_j = exp(-ln(10000) j / (dim/2)), computed in float32 like PyTorch.
func TimeFeatures(t []int, dim int) []float32 {
	tf := make([]float32, len(t))
	for i, v := range t {
		tf[i] = float32(v)
	}
	return tensor.SinusoidalEmbedding(tf, dim)
}

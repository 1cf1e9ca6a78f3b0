package nn

import (
	"fmt"

	"github.com/ddpm-go/ddpm/tensor"
)

// TimeEmbed is the peer's time embedding temb = Linear(SiLU(Linear(sinusoidal(t)))) (modules temb.0,
// temb.1 = SiLU, temb.2), followed by the SiLU every ResBlock applies to it before its own Linear.
// That last SiLU is computed once here and shared, which equals the peer's per-block F.silu(temb):
//
//	t (N ints) -> features (N,SinusoidalDim) -> e1 (N,D) -> e2 = silu(e1) -> e3 (N,D) -> act = silu(e3)
//
// A class-conditional network adds a learned row of Label (label_emb.weight, (classes+1) x D) to e3
// before the SiLU, the class embedding of Ho & Salimans' classifier-free models and of diffusers'
// class_embedding: e3 = temb.2(...) + Label[y]. Row classes is the "no label" token that training
// drops labels to and unconditional sampling uses.
type TimeEmbed struct {
	be      tensor.Backend
	In, Out *Linear       // temb.0, temb.2
	Label   *tensor.Param // label_emb.weight; nil for an unconditional network
	Dim     int           // sinusoidal feature width
	Classes int           // number of real classes (Label has one more row)

	feat, e1, e2, e3 *tensor.Tensor // saved for backward (owned)
	rows             []int          // the Label row of each sample of the last training Forward
}

// LabelEmbedName is the parameter name of the class embedding (after openai/guided-diffusion's
// label_emb); it is created after every other parameter, so an unconditional network's parameters,
// their order and their initial values are the same with or without it.
const LabelEmbedName = "label_emb.weight"

func (b *builder) timeEmbed(name string, dim, tdim, classes int) *TimeEmbed {
	e := &TimeEmbed{be: b.be, In: b.linear(name+".0", dim, tdim), Out: b.linear(name+".2", tdim, tdim), Dim: dim, Classes: classes}
	if classes > 0 {
		// nn.Embedding's default initialisation, N(0, 1).
		e.Label = b.normal(LabelEmbedName, 1, classes+1, tdim)
	}
	return e
}

// labelRows maps labels (len n; nil = all unlabelled) to rows of Label: a class c in [0, Classes) to
// c, NoLabel (any negative label) to the last row.
func (e *TimeEmbed) labelRows(labels []int, n int) ([]int, error) {
	if labels == nil {
		if e.Label == nil {
			return nil, nil
		}
		labels = make([]int, n)
		for i := range labels {
			labels[i] = -1
		}
	}
	if e.Label == nil {
		// An unconditional network is its own "no label" branch.
		for i, c := range labels {
			if c >= 0 {
				return nil, fmt.Errorf("label %d of image %d given to an unconditional network (its config has no num_classes)", c, i)
			}
		}
		return nil, nil
	}
	if len(labels) != n {
		return nil, fmt.Errorf("%d labels for %d images", len(labels), n)
	}
	rows := make([]int, n)
	for i, c := range labels {
		switch {
		case c >= e.Classes:
			return nil, fmt.Errorf("label %d of image %d: the network has classes 0..%d", c, i, e.Classes-1)
		case c < 0:
			rows[i] = e.Classes
		default:
			rows[i] = c
		}
	}
	return rows, nil
}

// Forward returns act = silu(temb(t) + Label[labels]) (N,D), owned by the caller; labels may be nil
// (no label on every row). An unconditional network takes only nil or NoLabel (negative) labels.
func (e *TimeEmbed) Forward(t, labels []int, train bool) (*tensor.Tensor, error) {
	rows, err := e.labelRows(labels, len(t))
	if err != nil {
		return nil, err
	}
	be := e.be
	feat := be.Upload([]int{len(t), e.Dim}, TimeFeatures(t, e.Dim))
	e1 := e.In.Forward(feat, train)
	e2 := be.SiLU(e1)
	e3 := e.Out.Forward(e2, train)
	if rows != nil {
		D := e.Label.Shape[1]
		emb := make([]float32, len(rows)*D)
		for i, r := range rows {
			copy(emb[i*D:(i+1)*D], e.Label.W[r*D:(r+1)*D])
		}
		lab := be.Upload([]int{len(rows), D}, emb)
		sum := be.Add(e3, lab)
		release(be, e3, lab)
		e3 = sum
	}
	act := be.SiLU(e3)
	if train {
		e.feat, e.e1, e.e2, e.e3, e.rows = feat, e1, e2, e3, rows
	} else {
		release(be, feat, e1, e2, e3)
	}
	return act, nil
}

// Backward takes dL/dact (summed over all blocks) and accumulates the MLP's gradients and, for a
// conditional network, each label row's (rows added in sample order, so the sum is deterministic);
// the timesteps and labels are integers, so no gradient flows further.
func (e *TimeEmbed) Backward(dact *tensor.Tensor) {
	be := e.be
	de3 := be.SiLUBackward(dact, e.e3)
	if e.rows != nil {
		D := e.Label.Shape[1]
		g := be.Read(de3)
		for i, r := range e.rows {
			dst := e.Label.G[r*D : (r+1)*D]
			for j, v := range g[i*D : (i+1)*D] {
				dst[j] += v
			}
		}
	}
	de2 := e.Out.Backward(de3)
	de1 := be.SiLUBackward(de2, e.e1)
	dfeat := e.In.Backward(de1)
	release(be, de3, de2, de1, dfeat)
	e.reset()
}

func (e *TimeEmbed) reset() {
	release(e.be, e.feat, e.e1, e.e2, e.e3)
	e.feat, e.e1, e.e2, e.e3, e.rows = nil, nil, nil, nil, nil
}

// Params returns temb.0 and temb.2's parameters (the label embedding is listed last by the UNet).
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

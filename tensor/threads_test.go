package tensor

import (
	"slices"
	"testing"
)

// TestThreadsBitIdentical runs the ops that split work across goroutines on tensors big enough to
// take the parallel paths, and requires bit-identical results for 1, 2 and 3 threads: the
// single-thread path is the one the gradient tests check, and a model trained with the reference
// backend must not depend on the machine's core count.
func TestThreadsBitIdentical(t *testing.T) {
	shape := []int{3, 16, 28, 28} // 37632 elements: above the elementwise split threshold
	type result struct{ outs [][]float32 }
	run := func(threads int) result {
		be := NewReference(threads)
		x := be.Upload(shape, RandN(shape, 1))
		dy := be.Upload(shape, RandN(shape, 2))
		w := RandParam("w", 0.1, 3, 16, 16, 3, 3)
		b := RandParam("b", 0.1, 4, 16)
		c := Conv{Stride: 1, Pad: 1}
		y := be.Conv2D(x, w, b, c)
		dx := be.Conv2DBackward(dy, x, w, b, c)
		ws := RandParam("ws", 0.1, 5, 16, 16, 3, 3)
		ys := be.Conv2D(x, ws, nil, Conv{Stride: 2, Pad: 1})
		dxs := be.Conv2DBackward(ys, x, ws, nil, Conv{Stride: 2, Pad: 1})
		g, bt := RandParam("g", 1, 6, 16), RandParam("bt", 1, 7, 16)
		gy, st := be.GroupNorm(x, g, bt, 4, 1e-5)
		gdx := be.GroupNormBackward(dy, x, st, g, bt, 4)
		s := be.SiLU(x)
		sdx := be.SiLUBackward(dy, x)
		q := be.Upload([]int{2, 32, 7, 7}, RandN([]int{2, 32, 7, 7}, 8))
		ao, ap := be.Attention(q, q, q, 2)
		aq, _, _ := be.AttentionBackward(q, q, q, q, ap, 2)
		return result{[][]float32{be.Read(y), be.Read(dx), w.G, b.G, be.Read(ys), be.Read(dxs), ws.G,
			be.Read(gy), be.Read(gdx), g.G, bt.G, be.Read(s), be.Read(sdx), be.Read(ao), be.Read(aq)}}
	}
	want := run(1)
	for _, threads := range []int{2, 3} {
		got := run(threads)
		for i := range want.outs {
			if !slices.Equal(got.outs[i], want.outs[i]) {
				t.Errorf("threads=%d: output %d differs from the single-thread result", threads, i)
			}
		}
	}
}

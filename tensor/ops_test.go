package tensor

import (
	"math"
	"testing"
)

// TestAttentionHandCase: one head of width 1 over two positions, where the softmax can be done by
// hand: q = (1, 0), k = (0, ln 3) give query 0 the weights (1/4, 3/4) and query 1 (1/2, 1/2).
func TestAttentionHandCase(t *testing.T) {
	r := NewReference(1)
	q := r.Upload([]int{1, 1, 1, 2}, []float32{1, 0})
	k := r.Upload([]int{1, 1, 1, 2}, []float32{0, float32(math.Log(3))})
	v := r.Upload([]int{1, 1, 1, 2}, []float32{1, 3})
	out, saved := r.Attention(q, k, v, 1)
	checkClose(t, "attention", r.Read(out), []float64{2.5, 2}, 1e-6)
	checkClose(t, "attention probs", r.Read(saved), []float64{0.25, 0.75, 0.5, 0.5}, 1e-6)
	// dv = P^T dout: with dout = (1, 0) only query 0's weights flow back.
	_, _, dv := r.AttentionBackward(r.Upload([]int{1, 1, 1, 2}, []float32{1, 0}), q, k, v, saved, 1)
	checkClose(t, "attention dv", r.Read(dv), []float64{0.25, 0.75}, 1e-6)

	// Two heads must not mix: head 1 sees zero queries (uniform weights) whatever head 0 does.
	q2 := r.Upload([]int{1, 2, 1, 2}, []float32{1, 0, 0, 0})
	k2 := r.Upload([]int{1, 2, 1, 2}, []float32{0, float32(math.Log(3)), 5, -5})
	v2 := r.Upload([]int{1, 2, 1, 2}, []float32{1, 3, 10, 20})
	out2, _ := r.Attention(q2, k2, v2, 2)
	checkClose(t, "attention 2 heads", r.Read(out2), []float64{2.5, 2, 15, 15}, 1e-6)
}

func TestDropout(t *testing.T) {
	r := NewReference(1)
	const n = 20000
	x := r.Upload([]int{n}, RandN([]int{n}, 1))
	y, mask := r.Dropout(x, 0.25, 7)
	m := r.Read(mask)
	yd := r.Read(y)
	kept := 0
	for i, v := range m {
		switch v {
		case 0:
		case float32(1 / 0.75):
			kept++
		default:
			t.Fatalf("mask[%d] = %v, want 0 or 4/3", i, v)
		}
		if yd[i] != x.Data[i]*v {
			t.Fatalf("y[%d] = %v, want %v", i, yd[i], x.Data[i]*v)
		}
	}
	// Binomial(20000, 0.75) has std 61; 5 std is a test that fails only when the mask is wrong.
	if kept < n*3/4-300 || kept > n*3/4+300 {
		t.Errorf("kept %d of %d, want about %d", kept, n, n*3/4)
	}
	_, mask2 := r.Dropout(x, 0.25, 7)
	_, mask3 := r.Dropout(x, 0.25, 8)
	same, diff := true, false
	for i := range m {
		same = same && mask2.Data[i] == m[i]
		diff = diff || mask3.Data[i] != m[i]
	}
	if !same || !diff {
		t.Errorf("same seed same mask: %v; other seed other mask: %v", same, diff)
	}
	dx := r.DropoutBackward(y, mask)
	for i, v := range r.Read(dx) {
		if v != yd[i]*m[i] {
			t.Fatalf("dx[%d] = %v, want %v", i, v, yd[i]*m[i])
		}
	}
	_, m0 := r.Dropout(x, 0, 7)
	for _, v := range m0.Data {
		if v != 1 {
			t.Fatalf("p=0 mask has %v", v)
		}
	}
}

func TestScale(t *testing.T) {
	r := NewReference(1)
	checkClose(t, "scale", r.Read(r.Scale(r.Upload([]int{2}, []float32{1, -2}), 0.5)), []float64{0.5, -1}, 0)
}

func TestSinusoidalEmbedding(t *testing.T) {
	got := SinusoidalEmbedding([]float32{0, 1, 500}, 4)
	want := []float64{0, 0, 1, 1, math.Sin(1), math.Sin(0.01), math.Cos(1), math.Cos(0.01),
		math.Sin(500), math.Sin(5), math.Cos(500), math.Cos(5)}
	checkClose(t, "embedding", got, want, 1e-5)
}

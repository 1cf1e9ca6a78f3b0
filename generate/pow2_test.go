package generate

import (
	"context"
	"fmt"
	"reflect"
	"testing"

	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/tensor"
)

func TestPow2Pieces(t *testing.T) {
	for _, c := range []struct {
		n, max int
		want   []int
	}{
		{1, 64, []int{1}},
		{3, 64, []int{4}},
		{16, 64, []int{16}},
		{24, 64, []int{16, 8}},
		{33, 64, []int{32, 1}},
		{48, 64, []int{32, 16}},
		{60, 64, []int{64}},
		{64, 64, []int{64}},
		{100, 64, []int{64, 32, 4}},
		{130, 64, []int{64, 64, 2}},
		{5, 1, []int{1, 1, 1, 1, 1}},
		{7, 4, []int{4, 4}},
	} {
		if got := Pow2Pieces(c.n, c.max); !reflect.DeepEqual(got, c.want) {
			t.Errorf("Pow2Pieces(%d, %d) = %v, want %v", c.n, c.max, got, c.want)
		}
	}
	// Every plan: powers of two up to max, covering n, padding only the last piece, and no dearer
	// than one padded call per max rows (what rounding up would do).
	for _, max := range []int{1, 2, 8, 64} {
		for n := 1; n <= 3*max+5; n++ {
			p := Pow2Pieces(n, max)
			sum, cost := 0, 0
			for i, k := range p {
				if k < 1 || k > max || k&(k-1) != 0 {
					t.Fatalf("Pow2Pieces(%d, %d) = %v: piece %d is not a power of two up to max", n, max, p, k)
				}
				if i == len(p)-1 && sum >= n {
					t.Fatalf("Pow2Pieces(%d, %d) = %v: the last piece holds no row", n, max, p)
				}
				sum += k
				cost += callRows + k
			}
			if sum < n {
				t.Fatalf("Pow2Pieces(%d, %d) = %v covers %d rows", n, max, p, sum)
			}
			full, rest := n/max, n%max
			rounded := full * (callRows + max)
			if rest > 0 {
				rounded += callRows + nextPow2(rest)
			}
			if cost > rounded {
				t.Errorf("Pow2Pieces(%d, %d) = %v costs %d, rounding up costs %d", n, max, p, cost, rounded)
			}
		}
	}
}

// nextPow2 is the least power of two >= n.
func nextPow2(n int) int {
	k := 1
	for k < n {
		k *= 2
	}
	return k
}

// TestPadded: the inner predictor sees only the planned power-of-two row counts, and each row's
// output is its own, whatever the padding.
func TestPadded(t *testing.T) {
	const dim = 3
	var sizes []int
	inner := diffusion.PredictorFunc(func(_ context.Context, x []float64, n, d, _ int, out []float64) error {
		sizes = append(sizes, n)
		for i := range n * d {
			out[i] = 2*x[i] + 1
		}
		return nil
	})
	for _, n := range []int{1, 3, 5, 24, 33, 60, 64, 100} {
		sizes = nil
		p := &padded{inner: unlabeled{inner}, max: 64}
		x := make([]float64, n*dim)
		for i := range x {
			x[i] = float64(i)
		}
		out := make([]float64, n*dim)
		for range 2 { // the second call reuses the plan and the buffers
			if err := p.Predict(context.Background(), x, nil, n, dim, 0, out); err != nil {
				t.Fatal(err)
			}
		}
		want := Pow2Pieces(n, 64)
		if fmt.Sprint(sizes) != fmt.Sprint(append(append([]int(nil), want...), want...)) {
			t.Errorf("n=%d: inner calls %v, want %v twice", n, sizes, want)
		}
		for i := range out {
			if out[i] != 2*x[i]+1 {
				t.Fatalf("n=%d: out[%d] = %v, want %v", n, i, out[i], 2*x[i]+1)
			}
		}
	}
}

// TestPow2Job: on the reference engine, whose rows never depend on the row count, a job run in
// power-of-two calls gives the unpadded job's images to the bit; Pow2 must be a power of two.
func TestPow2Job(t *testing.T) {
	m := tinyModel(t, tensor.NewReference(1), 3)
	sampler, _, err := SamplerSpec{Name: "ddpm", Steps: 5}.New(m.Schedule)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, n := range []int{1, 3, 6} {
		plain, err := m.Sample(ctx, sampler, Job{N: n, Seed: 4})
		if err != nil {
			t.Fatal(err)
		}
		pad, err := m.Sample(ctx, sampler, Job{N: n, Seed: 4, Pow2: 4})
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(plain, pad) {
			t.Errorf("n=%d: power-of-two calls changed the images", n)
		}
	}
	if _, err := m.Sample(ctx, sampler, Job{N: 2, Pow2: 3}); err == nil {
		t.Error("Pow2 3 accepted")
	}
}

func TestDefaultPow2(t *testing.T) {
	if got := DefaultPow2(tensor.NewReference(1), 64); got != 0 {
		t.Errorf("reference engine: %d, want 0", got)
	}
	for rows, want := range map[int]int{64: 64, 100: 64, 48: 32, 1: 1, 0: 0} {
		if got := DefaultPow2(namedBackend{tensor.NewReference(1)}, rows); got != want {
			t.Errorf("DefaultPow2(other, %d) = %d, want %d", rows, got, want)
		}
	}
}

// namedBackend is a backend that is not the reference engine by name.
type namedBackend struct{ tensor.Backend }

func (namedBackend) Name() string { return "other" }

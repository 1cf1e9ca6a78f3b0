package eval

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// naiveNearest is Nearest written plainly: every distance in float64, sorted by (distance, index).
func naiveNearest(queries, refs []float32, dim, k int) ([]float64, []int) {
	nq, nr := len(queries)/dim, len(refs)/dim
	var dist []float64
	var idx []int
	for q := range nq {
		type pair struct {
			d float64
			j int
		}
		ps := make([]pair, nr)
		for j := range nr {
			s := 0.0
			for i := range dim {
				d := float64(queries[q*dim+i]) - float64(refs[j*dim+i])
				s += d * d
			}
			ps[j] = pair{math.Sqrt(s / float64(dim)), j}
		}
		slices.SortStableFunc(ps, func(a, b pair) int {
			if a.d < b.d {
				return -1
			}
			if a.d > b.d {
				return 1
			}
			return 0
		})
		for _, p := range ps[:k] {
			dist, idx = append(dist, p.d), append(idx, p.j)
		}
	}
	return dist, idx
}

func naiveDist(a, b []float32) float64 {
	d, _ := naiveNearest(a, b, len(a), 1)
	return d[0]
}

// images returns n random rows of dim 8-bit levels mapped to [-1, 1], as data.Set holds them.
func images(r *rand.Rand, n, dim int) []float32 {
	x := make([]float32, n*dim)
	for i := range x {
		x[i] = float32(r.IntN(256))/127.5 - 1
	}
	return x
}

// Nearest agrees with the naive search on random data, for dims that exercise the 256-value runs
// and their odd tails, query counts that leave partial blocks and groups of four, and k from 1 to
// all refs.
func TestNearestNaive(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, c := range []struct{ nq, nr, dim, k int }{{1, 1, 1, 1}, {7, 30, 3, 5}, {37, 50, 257, 7}, {21, 40, 600, 40}, {5, 9, 513, 9}} {
		q, refs := images(r, c.nq, c.dim), images(r, c.nr, c.dim)
		d, ix, err := Nearest(q, refs, c.dim, c.k)
		if err != nil {
			t.Fatal(err)
		}
		wd, _ := naiveNearest(q, refs, c.dim, c.k)
		for i := range wd {
			if math.Abs(d[i]-wd[i]) > 1e-6*(1+wd[i]) {
				t.Fatalf("%+v: distance %d = %v, naive %v", c, i, d[i], wd[i])
			}
			// The ref named is at the distance given (indices may differ from the naive ones only
			// where two distances are too close for float32 sums to order).
			if exact := naiveDist(q[i/c.k*c.dim:(i/c.k+1)*c.dim], refs[ix[i]*c.dim:(ix[i]+1)*c.dim]); math.Abs(exact-d[i]) > 1e-6*(1+exact) {
				t.Fatalf("%+v: neighbour %d is ref %d at %v, reported %v", c, i, ix[i], exact, d[i])
			}
			if i%c.k > 0 && d[i] < d[i-1] {
				t.Fatalf("%+v: distances not ascending at %d: %v", c, i, d[i/c.k*c.k:(i/c.k+1)*c.k])
			}
		}
	}
}

// Equal distances (duplicate refs, and refs at the same distance) come in ref order, and an
// exact copy is at distance 0 exactly.
func TestNearestTies(t *testing.T) {
	const dim = 300
	r := rand.New(rand.NewPCG(3, 4))
	base := images(r, 3, dim)
	// refs: 0 = far, 1 = copy of query 0, 2 = far, 3 = copy of query 0, 4 = query 0 with one level
	// changed, 5 = copy of 4.
	far := images(r, 2, dim)
	near := slices.Clone(base[:dim])
	near[10] += 2 / 255.0
	var refs []float32
	for _, row := range [][]float32{far[:dim], base[:dim], far[dim:], base[:dim], near, near} {
		refs = append(refs, row...)
	}
	for _, nq := range []int{1, 3, 5} { // alone, and as row 0 of a group of four
		q := slices.Clone(base[:dim])
		for range nq - 1 {
			q = append(q, base[dim:2*dim]...)
		}
		d, ix, err := Nearest(q, refs, dim, 5)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(ix[:5], []int{1, 3, 4, 5, 0}) && !slices.Equal(ix[:5], []int{1, 3, 4, 5, 2}) {
			t.Errorf("%d queries: neighbours %v, want 1, 3, 4, 5 then a far one", nq, ix[:5])
		}
		step := float64(2/255.0) / math.Sqrt(dim)
		if d[0] != 0 || d[1] != 0 || math.Abs(d[2]-step) > 1e-6 || d[2] != d[3] {
			t.Errorf("%d queries: distances %v, want 0, 0, %v, %v", nq, d[:5], step, step)
		}
	}
	if _, _, err := Nearest(base, refs, dim, 7); err == nil {
		t.Error("k = 7 of 6 refs: no error")
	}
	if _, _, err := Nearest(base[:dim+1], refs, dim, 1); err == nil {
		t.Error("ragged queries: no error")
	}
}

// Samples that are training images (one level of noise on a few) are all flagged and the verdict
// is copies; fresh draws of the same distribution are not, and neither are the test images.
func TestMemorizationCopies(t *testing.T) {
	const dim, ntrain, ntest, n = 48, 400, 100, 120
	r := rand.New(rand.NewPCG(5, 6))
	// A distribution with structure: a random mix of a few prototypes plus noise, in [-1, 1].
	protos := images(r, 4, dim)
	draw := func(m int) []float32 {
		x := make([]float32, m*dim)
		for i := range m {
			w := [4]float32{r.Float32(), r.Float32(), r.Float32(), r.Float32()}
			sum := w[0] + w[1] + w[2] + w[3]
			for j := range dim {
				v := float32(r.NormFloat64()) * 0.3
				for p := range 4 {
					v += w[p] / sum * protos[p*dim+j]
				}
				x[i*dim+j] = float32(math.Round(float64(max(-1, min(1, v))+1)*127.5))/127.5 - 1
			}
		}
		return x
	}
	train, test := draw(ntrain), draw(ntest)
	copies := make([]float32, 0, n*dim)
	for i := range n {
		copies = append(copies, train[(i*7%ntrain)*dim:(i*7%ntrain+1)*dim]...)
		if i%3 == 0 {
			copies[len(copies)-1-i%dim] += 2 / 255.0
		}
	}
	rep, err := Memorization(copies, train, test, dim)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Copies || rep.Flagged != n || rep.FlaggedFrac != 1 || rep.BelowTestP1 != 1 || rep.Samples.Min != 0 || rep.K != MemoK {
		t.Errorf("copies: %+v", rep)
	}
	if rep.TestFlagged != 0 || rep.Test.P1 <= 0 || rep.N != n || rep.TrainN != ntrain || rep.TestN != ntest {
		t.Errorf("copies' reference: %+v", rep)
	}
	if rep.NearestIndex[5] != 35 || rep.Nearest[5] != 0 {
		t.Errorf("sample 5 is training image 35: nearest %d at %v", rep.NearestIndex[5], rep.Nearest[5])
	}
	fresh, err := Memorization(draw(n), train, test, dim)
	if err != nil {
		t.Fatal(err)
	}
	if fresh.Copies || fresh.Flagged != 0 || fresh.BelowTestP1 > 0.1 || math.Abs(fresh.Samples.P50-fresh.Test.P50) > 0.1*fresh.Test.P50 {
		t.Errorf("fresh draws: %+v", fresh)
	}
	// Fewer than MemoK training images: the neighbourhood is all of them.
	small, err := Memorization(copies[:dim*5], train[:dim*10], test, dim)
	if err != nil || small.K != 10 {
		t.Errorf("10 training images: %+v, %v", small, err)
	}
}

func TestQuantiles(t *testing.T) {
	q := quantiles([]float64{4, 0, 3, 1, 2})
	if q != (Quantiles{Min: 0, P1: 0.04, P5: 0.2, P50: 2}) {
		t.Errorf("quantiles %+v", q)
	}
	if q := quantiles([]float64{7}); q != (Quantiles{7, 7, 7, 7}) {
		t.Errorf("one value: %+v", q)
	}
}

// BenchmarkNearest is the search of `ddpm eval memorization` on emoji: 1000 samples against the
// 6674 training images of 3x32x32, k = 50. Run with -benchtime=1x.
func BenchmarkNearest(b *testing.B) {
	const dim = 3 * 32 * 32
	r := rand.New(rand.NewPCG(7, 8))
	q, refs := images(r, 1000, dim), images(r, 6674, dim)
	b.ResetTimer()
	for b.Loop() {
		if _, _, err := Nearest(q, refs, dim, MemoK); err != nil {
			b.Fatal(err)
		}
	}
}

package data

import (
	"encoding/json"
	"math"
	"testing"

	"github.com/ddpm-go/ddpm/imageio"
)

// indexSet makes n 1x2x3 images whose pixels encode their index (and position), so a batch tells
// which images it holds and whether each was flipped.
func indexSet(t *testing.T, n int) *Set {
	t.Helper()
	pix := make([]uint8, n*6)
	labels := make([]uint8, n)
	for i := 0; i < n; i++ {
		for k := 0; k < 6; k++ {
			pix[i*6+k] = uint8(i*6 + k)
		}
		labels[i] = uint8(i % 10)
	}
	s, err := NewSet("index", n, 1, 2, 3, pix, labels)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// decode returns the image index of each batch entry and whether it was mirrored; image i of
// indexSet is the rows (6i, 6i+1, 6i+2), (6i+3, 6i+4, 6i+5).
func decode(t *testing.T, x []float32, n int) (idx []int, flipped []bool) {
	t.Helper()
	for k := 0; k < n; k++ {
		px := imageio.ToUint8(nil, x[k*6:(k+1)*6])
		i := int(min(px[0], px[2])) / 6
		b := uint8(6 * i)
		plain := []uint8{b, b + 1, b + 2, b + 3, b + 4, b + 5}
		mirror := []uint8{b + 2, b + 1, b, b + 5, b + 4, b + 3}
		switch string(px) {
		case string(plain):
			flipped = append(flipped, false)
		case string(mirror):
			flipped = append(flipped, true)
		default:
			t.Fatalf("entry %d is neither an image nor its mirror: %v", k, px)
		}
		idx = append(idx, i)
	}
	return idx, flipped
}

func draw(t *testing.T, b *Batcher, batches int) (x []float32, labels []uint8) {
	t.Helper()
	per := b.set.Size() * b.BatchSize()
	x = make([]float32, batches*per)
	labels = make([]uint8, batches*b.BatchSize())
	for i := 0; i < batches; i++ {
		if err := b.Next(x[i*per:(i+1)*per], labels[i*b.BatchSize():(i+1)*b.BatchSize()]); err != nil {
			t.Fatal(err)
		}
	}
	return x, labels
}

func TestBatcherEpochsArePermutations(t *testing.T) {
	const n, batch = 10, 3
	s := indexSet(t, n)
	b, err := NewBatcher(s, batch, 7, false)
	if err != nil {
		t.Fatal(err)
	}
	x, labels := draw(t, b, 10) // 30 images: exactly 3 epochs
	idx, flipped := decode(t, x, 30)
	for e := 0; e < 3; e++ {
		seen := map[int]bool{}
		for _, i := range idx[e*n : (e+1)*n] {
			seen[i] = true
		}
		if len(seen) != n {
			t.Fatalf("epoch %d visits %v", e, idx[e*n:(e+1)*n])
		}
	}
	if st := b.State(); st.Epoch != 3 || st.Pos != 0 {
		t.Fatalf("after 30 images: %+v", st)
	}
	for k, i := range idx {
		if flipped[k] {
			t.Fatal("flipped with Flip off")
		}
		if labels[k] != uint8(i%10) {
			t.Fatalf("label %d for image %d", labels[k], i)
		}
	}
	same := true
	for k := range n {
		same = same && idx[k] == idx[n+k]
	}
	if same {
		t.Fatal("epochs 0 and 1 have the same order")
	}
}

func TestBatcherSeeds(t *testing.T) {
	s := indexSet(t, 50)
	run := func(seed uint64) []float32 {
		b, err := NewBatcher(s, 8, seed, true)
		if err != nil {
			t.Fatal(err)
		}
		x, _ := draw(t, b, 20)
		return x
	}
	a, a2, c := run(1), run(1), run(2)
	if !bitEqual(a, a2) {
		t.Fatal("same seed, different batches")
	}
	if bitEqual(a, c) {
		t.Fatal("different seeds, same batches")
	}
}

func bitEqual(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

// A run stopped after k batches, its state saved as JSON and restored into a fresh Batcher, draws
// exactly the batches the uninterrupted run draws, across epoch boundaries and with flips.
func TestBatcherResumeIsBitIdentical(t *testing.T) {
	s := indexSet(t, 23)
	for _, stopAt := range []int{0, 1, 4, 5, 11} {
		whole, err := NewBatcher(s, 5, 42, true)
		if err != nil {
			t.Fatal(err)
		}
		want, wantLab := draw(t, whole, 20)

		first, _ := NewBatcher(s, 5, 42, true)
		draw(t, first, stopAt)
		saved, err := json.Marshal(first.State())
		if err != nil {
			t.Fatal(err)
		}
		var st BatchState
		if err := json.Unmarshal(saved, &st); err != nil {
			t.Fatal(err)
		}
		resumed, _ := NewBatcher(s, 5, 0, false) // seed and flip come from the state
		if err := resumed.Restore(st); err != nil {
			t.Fatal(err)
		}
		got, gotLab := draw(t, resumed, 20-stopAt)
		per := 5 * s.Size()
		if !bitEqual(got, want[stopAt*per:]) || string(gotLab) != string(wantLab[stopAt*5:]) {
			t.Fatalf("resumed after %d batches (state %s): batches differ", stopAt, saved)
		}
	}
}

func TestBatcherFlip(t *testing.T) {
	s := indexSet(t, 40)
	b, _ := NewBatcher(s, 40, 3, true)
	x, _ := draw(t, b, 25) // 1000 draws
	_, flipped := decode(t, x, 1000)
	nf := 0
	for _, f := range flipped {
		if f {
			nf++
		}
	}
	if nf < 430 || nf > 570 { // 1000 fair coins: mean 500, sd 16
		t.Fatalf("%d of 1000 draws flipped, want about half", nf)
	}
}

func TestBatcherSmallSetAndErrors(t *testing.T) {
	s := indexSet(t, 3)
	b, err := NewBatcher(s, 8, 1, false)
	if err != nil {
		t.Fatal(err)
	}
	x, _ := draw(t, b, 3)
	idx, _ := decode(t, x, 24)
	if st := b.State(); st.Epoch != 8 || st.Pos != 0 || len(idx) != 24 {
		t.Fatalf("24 draws of 3 images: %+v", st)
	}
	if err := b.Next(make([]float32, 5), nil); err == nil {
		t.Error("Next accepted a short buffer")
	}
	other := indexSet(t, 4)
	b2, _ := NewBatcher(other, 2, 1, false)
	if err := b2.Restore(b.State()); err == nil {
		t.Error("Restore accepted a state for another set size")
	}
	if _, err := NewBatcher(s, 0, 1, false); err == nil {
		t.Error("batch size 0 accepted")
	}
	unlabelled, _ := NewSet("u", 2, 1, 1, 1, []uint8{0, 1}, nil)
	b3, _ := NewBatcher(unlabelled, 2, 1, false)
	if err := b3.Next(make([]float32, 2), make([]uint8, 2)); err == nil {
		t.Error("Next filled labels from a set without labels")
	}
}

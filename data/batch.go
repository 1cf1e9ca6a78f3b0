package data

import (
	"fmt"
	"math/rand/v2"
)

// BatchState is everything a Batcher needs to continue exactly where it stopped; a checkpoint saves
// it (it marshals to small JSON) and NewBatcher's caller restores it with Restore.
//
// There is no generator state to save: epoch e's order and flips come from a generator seeded with
// (Seed, e) alone, so (Seed, Epoch, Pos) fixes every later batch.
type BatchState struct {
	Seed  uint64 `json:"seed"`
	Flip  bool   `json:"flip"`
	N     int    `json:"n"`     // size of the Set it was drawn from, checked on Restore
	Epoch uint64 `json:"epoch"` // epochs completed
	Pos   int    `json:"pos"`   // images of the current epoch already drawn
}

// Batcher draws minibatches from a Set: each epoch visits every image once in a seeded random order,
// and, when Flip is on, mirrors each drawn image left-right with probability 1/2. Batches are always
// full: one that reaches the end of an epoch continues into the next, so no image is dropped and a
// Set smaller than a batch still works.
type Batcher struct {
	set   *Set
	size  int
	st    BatchState
	order []int
	flip  []bool // flip[j] applies to order[j]
}

// NewBatcher returns a Batcher of batch images per call, starting at epoch 0.
func NewBatcher(s *Set, batch int, seed uint64, flip bool) (*Batcher, error) {
	if s == nil || s.N <= 0 {
		return nil, fmt.Errorf("batcher: empty data set")
	}
	if batch <= 0 {
		return nil, fmt.Errorf("batcher: batch size %d, want > 0", batch)
	}
	b := &Batcher{set: s, size: batch, st: BatchState{Seed: seed, Flip: flip, N: s.N}}
	b.shuffle()
	return b, nil
}

// shuffle fills the order and flips of epoch st.Epoch.
func (b *Batcher) shuffle() {
	rng := rand.New(rand.NewPCG(b.st.Seed, b.st.Epoch))
	b.order = rng.Perm(b.set.N)
	if b.flip == nil {
		b.flip = make([]bool, b.set.N)
	}
	for j := range b.flip {
		b.flip[j] = b.st.Flip && rng.Uint64()&1 == 1
	}
}

// State returns the position to save for an exact resume.
func (b *Batcher) State() BatchState { return b.st }

// Restore continues from a saved state. It fails if the state was made for a Set of another size.
func (b *Batcher) Restore(st BatchState) error {
	if st.N != b.set.N {
		return fmt.Errorf("batcher: saved state is for %d images, data set has %d", st.N, b.set.N)
	}
	if st.Pos < 0 || st.Pos >= st.N {
		return fmt.Errorf("batcher: saved position %d outside 0..%d", st.Pos, st.N-1)
	}
	b.st = st
	b.shuffle()
	return nil
}

// BatchSize is the number of images each Next draws.
func (b *Batcher) BatchSize() int { return b.size }

// Next fills x (BatchSize*C*H*W values, NCHW) with the next batch and, if labels is not nil,
// labels (BatchSize) with their labels; the Set must have labels for that.
func (b *Batcher) Next(x []float32, labels []uint8) error {
	s := b.set
	per := s.Size()
	if len(x) != b.size*per {
		return fmt.Errorf("batcher: batch buffer has %d values, want %d", len(x), b.size*per)
	}
	if labels != nil && (len(labels) != b.size || s.Labels == nil) {
		return fmt.Errorf("batcher: label buffer of %d for batch %d (set has labels: %v)", len(labels), b.size, s.Labels != nil)
	}
	for k := 0; k < b.size; k++ {
		i, flip := b.order[b.st.Pos], b.flip[b.st.Pos]
		dst, src := x[k*per:(k+1)*per], s.Image(i)
		if flip {
			for row := 0; row < s.C*s.H; row++ {
				d, r := dst[row*s.W:(row+1)*s.W], src[row*s.W:(row+1)*s.W]
				for c := range d {
					d[c] = r[s.W-1-c]
				}
			}
		} else {
			copy(dst, src)
		}
		if labels != nil {
			labels[k] = s.Labels[i]
		}
		b.st.Pos++
		if b.st.Pos == s.N {
			b.st.Pos = 0
			b.st.Epoch++
			b.shuffle()
		}
	}
	return nil
}

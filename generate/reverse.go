package generate

import (
	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/imageio"
)

// Recorder keeps x_t and the predicted x0 of the first few images of a job every few steps,
// whichever batches they come in, to animate the reverse process (Ho et al. 2020, Fig. 6: the
// prediction of x0 sharpens as t falls).
type Recorder struct {
	start, n, dim, every int
	steps                []int               // the recorded step indices, in order
	xt, x0               map[int][][]float64 // step index -> per image (n) copies
	final                [][]float64         // the clean samples
}

// NewRecorder records the first n images of job (of dim values each) every every steps (0: about
// 40 frames) and at the last step.
func NewRecorder(job Job, dim, n, every int) *Recorder {
	n = min(n, job.N)
	return &Recorder{start: job.Start, n: n, dim: dim, every: every,
		xt: map[int][][]float64{}, x0: map[int][][]float64{}, final: make([][]float64, n)}
}

// Record is a Job.Step: it copies what it keeps.
func (r *Recorder) Record(b Batch, s diffusion.Step) {
	every := r.every
	if every == 0 {
		every = max(1, (s.Total+39)/40)
	}
	last := s.Index == s.Total-1
	if s.Index%every != 0 && !last {
		return
	}
	for row := 0; row < b.N; row++ {
		img := b.Start + row - r.start
		if img >= r.n {
			break
		}
		if r.xt[s.Index] == nil {
			r.xt[s.Index], r.x0[s.Index] = make([][]float64, r.n), make([][]float64, r.n)
			if img == 0 {
				r.steps = append(r.steps, s.Index)
			}
		}
		lo, hi := row*r.dim, (row+1)*r.dim
		r.xt[s.Index][img] = append([]float64(nil), s.X[lo:hi]...)
		r.x0[s.Index][img] = append([]float64(nil), s.X0[lo:hi]...)
		if last {
			r.final[img] = append([]float64(nil), s.Next[lo:hi]...)
		}
	}
}

// Reel lays each frame out as one row per image: x_t on the left, the predicted x0 on the right; it
// ends on the clean samples beside the last prediction, held for two seconds.
func (r *Recorder) Reel(c, h, w int) (*imageio.Reel, error) {
	reel, err := imageio.NewReel(c, h, w, 2, max(1, 64/max(h, w)))
	if err != nil {
		return nil, err
	}
	add := func(a, b [][]float64, delay int) error {
		var frame []float64
		for i := 0; i < r.n; i++ {
			frame = append(append(frame, a[i]...), b[i]...)
		}
		return reel.Add(frame, 2*r.n, delay)
	}
	for _, k := range r.steps {
		if err := add(r.xt[k], r.x0[k], 8); err != nil {
			return nil, err
		}
	}
	if len(r.steps) > 0 {
		if err := add(r.final, r.x0[r.steps[len(r.steps)-1]], 200); err != nil {
			return nil, err
		}
	}
	return reel, nil
}

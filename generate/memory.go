package generate

import (
	"fmt"
	"math"

	"github.com/ddpm-go/ddpm/imageio"
	"github.com/ddpm-go/ddpm/internal/sysmem"
	"github.com/ddpm-go/ddpm/nn"
)

// CheckMemory refuses a job whose single batch the machine cannot hold, before the first
// allocation (10,000 images in one batch ended in a dnnl out-of-memory panic): the sampler's
// float64 state of the batch (x_t, the prediction, x0, the next x and up to four past predictions
// for PLMS) and the network's forward over the rows of one call (the chunk, or the whole batch when
// calls are not chunked).
func (m *Model) CheckMemory(j Job) error {
	rows := j.batchSize()
	callRows := rows
	if j.Chunk > 0 {
		callRows = j.Chunk
	}
	net, err := nn.InferenceBytes(m.Net.Cfg, callRows)
	if err != nil {
		return err
	}
	return sysmem.Check(fmt.Sprintf("sampling a batch of %d images (--batch %d, %d per network call)", rows, j.Batch, callRows),
		8*8*float64(rows)*float64(m.Dim())+net)
}

// ReadInit reads starting noise x_T for a c x h x w model from a float32/float64 .npy of shape
// (N,C,H,W) or (N,C*H*W), refusing values that are not finite. Row i is image i of the job.
func ReadInit(path string, c, h, w int) (x []float64, n int, err error) {
	a, err := imageio.LoadNPY(path)
	if err != nil {
		return nil, 0, err
	}
	if a.Descr[1] != 'f' {
		return nil, 0, fmt.Errorf("%s: dtype %s, want float32 or float64", path, a.Descr)
	}
	ok := (len(a.Shape) == 4 && a.Shape[1] == c && a.Shape[2] == h && a.Shape[3] == w) ||
		(len(a.Shape) == 2 && a.Shape[1] == c*h*w)
	if !ok || a.Shape[0] < 1 {
		return nil, 0, fmt.Errorf("%s: shape %v, want (N,%d,%d,%d) or (N,%d) with N >= 1 for this model", path, a.Shape, c, h, w, c*h*w)
	}
	for i, v := range a.Values {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, 0, fmt.Errorf("%s: value %d is %v", path, i, v)
		}
	}
	return a.Values, a.Shape[0], nil
}

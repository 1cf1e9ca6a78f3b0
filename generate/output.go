package generate

import (
	"fmt"
	"path/filepath"

	"github.com/ddpm-go/ddpm/imageio"
	"github.com/ddpm-go/ddpm/internal/sysmem"
)

// Outputs writes a job's images as its batches finish (its Emit is a Job.Emit): one PNG per image
// named by global index, an .npz appended batch by batch, and a grid. Only the grid keeps images, as
// one byte per value, so a job of any N needs the memory of one batch and the disk of its images.
// Every output is made from the same bytes (imageio.ToUint8), so they show identical pixels.
type Outputs struct {
	Grid string // PNG grid of all images, Cols per row (0: near-square)
	Cols int
	Dir  string // one PNG per image, 000000.png ...
	NPZ  string // uint8 (N,H,W,C) under arr_0

	n, c, h, w int
	px         []uint8
	npz        *imageio.ImagesNPZ
}

// Open checks that the outputs can hold n images of c x h x w, before any sampling: the grid's
// bytes against memory, the .npz against the disk (it is created now); Dir must exist. Call Abort
// unless Close is reached.
func (o *Outputs) Open(n, c, h, w int) error {
	o.n, o.c, o.h, o.w = n, c, h, w
	dim := c * h * w
	if o.Grid != "" {
		if err := sysmem.Check(fmt.Sprintf("keeping %d images for --grid", n), 5*float64(n)*float64(dim)); err != nil {
			return err
		}
		o.px = make([]uint8, 0, n*dim)
	}
	if o.NPZ != "" {
		var err error
		if o.npz, err = imageio.CreateImagesNPZ(o.NPZ, n, c, h, w); err != nil {
			return err
		}
	}
	return nil
}

// Emit writes batch b's images x (values in [-1, 1]).
func (o *Outputs) Emit(b Batch, x []float64) error {
	u8 := imageio.ToUint8(make([]uint8, 0, len(x)), x)
	if o.px != nil {
		o.px = append(o.px, u8...)
	}
	if o.npz != nil {
		if err := o.npz.Write(u8); err != nil {
			return err
		}
	}
	if o.Dir != "" {
		dim := o.c * o.h * o.w
		for i := range b.N {
			if err := imageio.WritePNG(filepath.Join(o.Dir, fmt.Sprintf("%06d.png", b.Start+i)), o.c, o.h, o.w, u8[i*dim:(i+1)*dim]); err != nil {
				return err
			}
		}
	}
	return nil
}

// Close writes the grid and completes the .npz.
func (o *Outputs) Close() error {
	if o.Grid != "" {
		cols := o.Cols
		if cols == 0 {
			cols = imageio.GridCols(o.n)
		}
		if err := imageio.WriteGridBytes(o.Grid, o.px, o.n, o.c, o.h, o.w, cols); err != nil {
			return err
		}
	}
	if o.npz != nil {
		return o.npz.Close()
	}
	return nil
}

// Abort removes the .npz unless Close completed it.
func (o *Outputs) Abort() {
	if o.npz != nil {
		o.npz.Abort()
	}
}

package generate

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/imageio"
	"github.com/ddpm-go/ddpm/internal/sysmem"
)

// Outputs writes a job's images as its batches finish: one PNG per image named by global index, an
// .npz appended batch by batch, a grid, and a GIF of the reverse process of the first few images.
// Only the grid keeps images, as one byte per value, so a job of any N needs the memory of one batch
// and the disk of its images. Every output is made from the same bytes (imageio.ToUint8), so they
// show identical pixels.
type Outputs struct {
	Grid string // PNG grid of all images, Cols per row (0: near-square)
	Cols int
	Dir  string // one PNG per image, 000000.png ...; must exist
	NPZ  string // uint8 (N,H,W,C) under arr_0
	GIF  string // x_t beside the predicted x0 of the first GIFN images, every GIFEvery steps (Recorder)

	GIFN, GIFEvery int

	n, c, h, w int
	px         []uint8
	npz        *imageio.ImagesNPZ
	rec        *Recorder
}

// Bounds of a sampling job's outputs, checked by Check before any work.
const (
	// MaxImages bounds a job's n: 2^31 keeps global indices in an int32 and file names in six to ten
	// digits; large jobs stream to Dir or NPZ batch by batch.
	MaxImages = 1 << 31
	// MaxGridImages bounds a PNG grid, which is assembled in memory (28x28 images at this count make
	// a 4,600 x 4,600 picture).
	MaxGridImages = 25_000
	// MaxGIFImages bounds GIFN: each image's x_t and x0 are kept at every recorded step (about 40),
	// and a GIF is at most 65,535 pixels tall.
	MaxGIFImages = 256
)

// Check refuses, before a model is loaded, outputs that cannot be written for images
// start..start+n-1, and makes Dir (or finds it unusable) now rather than after the sampling.
func (o *Outputs) Check(start, n int) error {
	switch {
	case o.GIFN > MaxGIFImages:
		return fmt.Errorf("--gif-n %d: at most %d (every recorded step of each is kept in memory)", o.GIFN, MaxGIFImages)
	case o.Grid == "" && o.Dir == "" && o.NPZ == "":
		return fmt.Errorf("nowhere to write the images: give --grid FILE.png, --out-dir DIR or --npz FILE.npz")
	case start > MaxImages-n: // not start+n, which overflows for a start near the largest int
		return fmt.Errorf("--start %d + --n %d: image indices past %d", start, n, MaxImages)
	case o.Grid != "" && n > MaxGridImages:
		return fmt.Errorf("--grid of %d images: at most %d in one picture (use --out-dir or --npz)", n, MaxGridImages)
	}
	if o.Dir != "" {
		if err := os.MkdirAll(o.Dir, 0o755); err != nil {
			return fmt.Errorf("--out-dir: %w", err)
		}
	}
	if o.NPZ != "" {
		if st, err := os.Stat(filepath.Dir(o.NPZ)); err != nil || !st.IsDir() {
			return fmt.Errorf("--npz %q: directory %s does not exist", o.NPZ, filepath.Dir(o.NPZ))
		}
	}
	return nil
}

// Open readies the outputs for j on m and hooks them into j (Emit, and Step for the GIF ahead of
// j's own), refusing before any sampling what cannot be held: the batch (Model.CheckMemory), the
// grid's bytes against memory, the .npz against the disk (it is created now). Call Abort unless
// Close is reached.
func (o *Outputs) Open(m *Model, j *Job) error {
	if err := m.CheckMemory(*j); err != nil {
		return err
	}
	o.n = j.N
	o.c, o.h, o.w = m.Shape()
	dim := m.Dim()
	if o.Grid != "" {
		if err := sysmem.Check(fmt.Sprintf("keeping %d images for --grid", j.N), 5*float64(j.N)*float64(dim)); err != nil {
			return err
		}
		o.px = make([]uint8, 0, j.N*dim)
	}
	if o.NPZ != "" {
		var err error
		if o.npz, err = imageio.CreateImagesNPZ(o.NPZ, j.N, o.c, o.h, o.w); err != nil {
			return err
		}
	}
	if o.GIF != "" {
		o.rec = NewRecorder(*j, dim, o.GIFN, o.GIFEvery)
		step := j.Step
		j.Step = func(b Batch, s diffusion.Step) error {
			o.rec.Record(b, s)
			if step == nil {
				return nil
			}
			return step(b, s)
		}
	}
	j.Emit = o.Emit
	return nil
}

// Emit writes batch b's images x (values in [-1, 1]).
func (o *Outputs) Emit(b Batch, x []float64) error {
	return o.EmitBytes(b, imageio.ToUint8(make([]uint8, 0, len(x)), x))
}

// EmitBytes writes batch b's images already converted to bytes by imageio.ToUint8: how the root
// of a sharded job (ddpm sample under mpirun) writes the images the other ranks drew, so its
// outputs are byte for byte those of one process.
func (o *Outputs) EmitBytes(b Batch, u8 []uint8) error {
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

// Close writes the grid and the GIF and completes the .npz; it returns a line naming each output.
func (o *Outputs) Close() ([]string, error) {
	var wrote []string
	if o.Grid != "" {
		cols := o.Cols
		if cols == 0 {
			cols = imageio.GridCols(o.n)
		}
		if err := imageio.WriteGridBytes(o.Grid, o.px, o.n, o.c, o.h, o.w, cols); err != nil {
			return nil, err
		}
		wrote = append(wrote, o.Grid)
	}
	if o.Dir != "" {
		wrote = append(wrote, fmt.Sprintf("%d PNGs to %s", o.n, o.Dir))
	}
	if o.npz != nil {
		if err := o.npz.Close(); err != nil {
			return nil, err
		}
		wrote = append(wrote, o.NPZ)
	}
	if o.rec != nil {
		reel, err := o.rec.Reel(o.c, o.h, o.w)
		if err == nil {
			err = reel.Save(o.GIF)
		}
		if err != nil {
			return nil, err
		}
		wrote = append(wrote, fmt.Sprintf("%s (%d frames)", o.GIF, reel.Frames()))
	}
	return wrote, nil
}

// Abort removes the .npz unless Close completed it.
func (o *Outputs) Abort() {
	if o.npz != nil {
		o.npz.Abort()
	}
}

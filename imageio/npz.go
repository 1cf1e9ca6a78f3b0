package imageio

import (
	"archive/zip"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/ddpm-go/ddpm/internal/safeio"
)

// Named is one array of an .npz archive; Data is []uint8, []float32 or []float64.
type Named struct {
	Name  string
	Shape []int
	Data  any
}

// WriteNPZ writes arrays as an uncompressed .npz archive, as numpy.savez does: one NAME.npy entry per
// array. numpy.load(path)[NAME] gives the array back.
func WriteNPZ(w io.Writer, arrays ...Named) error {
	zw := zip.NewWriter(w)
	for _, a := range arrays {
		// A zero Modified time keeps the archive's bytes a function of its contents only.
		f, err := zw.CreateHeader(&zip.FileHeader{Name: a.Name + ".npy", Method: zip.Store})
		if err != nil {
			return fmt.Errorf("npz: %w", err)
		}
		if err := WriteNPY(f, a.Shape, a.Data); err != nil {
			return fmt.Errorf("npz: %s: %w", a.Name, err)
		}
	}
	return zw.Close()
}

// SaveNPZ writes arrays to path through a temporary file renamed into place, so a reader never sees
// a half-written archive.
func SaveNPZ(path string, arrays ...Named) error {
	var buf bytes.Buffer
	if err := WriteNPZ(&buf, arrays...); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return writeFileAtomic(path, buf.Bytes())
}

// SaveImagesNPZ writes n images of h x w pixels and c channels, given as bytes in NCHW order, as
// uint8 (N,H,W,C) under "arr_0": the layout FID tools read from a sample batch.
func SaveImagesNPZ(path string, nchw []uint8, n, c, h, w int) error {
	if n < 0 || c < 1 || h < 1 || w < 1 || len(nchw) != n*c*h*w {
		return fmt.Errorf("write %s: %d bytes for %d images of %dx%dx%d", path, len(nchw), n, c, h, w)
	}
	return SaveNPZ(path, Named{Name: "arr_0", Shape: []int{n, h, w, c}, Data: NHWC(nchw, n, c, h, w)})
}

// NHWC reorders n images from NCHW to NHWC.
func NHWC(nchw []uint8, n, c, h, w int) []uint8 {
	out := make([]uint8, len(nchw))
	hw := h * w
	for i := 0; i < n; i++ {
		src, dst := nchw[i*c*hw:(i+1)*c*hw], out[i*c*hw:(i+1)*c*hw]
		for ch := 0; ch < c; ch++ {
			for p := 0; p < hw; p++ {
				dst[p*c+ch] = src[ch*hw+p]
			}
		}
	}
	return out
}

// LoadNPZ reads every .npy entry of an .npz archive (stored or deflated), keyed by its name without
// ".npy".
// The path must be a regular file (zip.OpenReader would block on a FIFO until a writer came).
func LoadNPZ(path string) (map[string]*Array, error) {
	f, err := safeio.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	zr, err := zip.NewReader(f, st.Size())
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	out := map[string]*Array{}
	for _, f := range zr.File {
		if !strings.HasSuffix(f.Name, ".npy") {
			continue
		}
		rc, err := f.Open()
		if err != nil {
			return nil, fmt.Errorf("read %s: %s: %w", path, f.Name, err)
		}
		a, err := ReadNPY(rc)
		rc.Close()
		if err != nil {
			return nil, fmt.Errorf("read %s: %s: %w", path, f.Name, err)
		}
		out[strings.TrimSuffix(f.Name, ".npy")] = a
	}
	return out, nil
}

// LoadNPY reads a .npy file.
func LoadNPY(path string) (*Array, error) {
	f, err := safeio.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	a, err := ReadNPY(f)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return a, nil
}

// SaveNPY writes one array to path (see WriteNPY), atomically.
func SaveNPY(path string, shape []int, data any) error {
	var buf bytes.Buffer
	if err := WriteNPY(&buf, shape, data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return writeFileAtomic(path, buf.Bytes())
}

func writeFileAtomic(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	_, err = tmp.Write(b)
	if err == nil {
		err = tmp.Chmod(0o644)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

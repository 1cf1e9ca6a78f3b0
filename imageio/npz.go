package imageio

import (
	"archive/zip"
	"bufio"
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
// a half-written archive. The archive streams to the file: it is never held in memory whole.
func SaveNPZ(path string, arrays ...Named) error {
	return writeAtomic(path, func(w io.Writer) error { return WriteNPZ(w, arrays...) })
}

// SaveImagesNPZ writes n images of h x w pixels and c channels, given as bytes in NCHW order, as
// uint8 (N,H,W,C) under "arr_0": the layout FID tools read from a sample batch.
func SaveImagesNPZ(path string, nchw []uint8, n, c, h, w int) error {
	if n < 0 || c < 1 || h < 1 || w < 1 || len(nchw) != n*c*h*w {
		return fmt.Errorf("write %s: %d bytes for %d images of %dx%dx%d", path, len(nchw), n, c, h, w)
	}
	z, err := CreateImagesNPZ(path, n, c, h, w)
	if err != nil {
		return err
	}
	if err := z.Write(nchw); err != nil {
		z.Abort()
		return err
	}
	return z.Close()
}

// ImagesNPZ writes an .npz of n images as SaveImagesNPZ does, a few images at a time: the npy
// header knows N from the start and each Write appends whole images, so an archive of millions of
// samples needs the memory of one batch and the disk of its bytes. Until Close the archive is a
// temporary file beside path; Abort removes it.
type ImagesNPZ struct {
	path       string
	tmp        *os.File
	bw         *bufio.Writer
	zw         *zip.Writer
	entry      io.Writer
	n, written int
	c, h, w    int
	nhwc       []uint8
	done       bool // closed or aborted
}

// CreateImagesNPZ starts an .npz of n images of c x h x w at path. The disk must have room for the
// images' bytes (checked where the file system says how much it has), so a job too large for it is
// refused before any sampling rather than when the disk fills.
func CreateImagesNPZ(path string, n, c, h, w int) (*ImagesNPZ, error) {
	if n < 0 || c < 1 || h < 1 || w < 1 {
		return nil, fmt.Errorf("write %s: %d images of %dx%dx%d", path, n, c, h, w)
	}
	need := float64(n)*float64(c*h*w) + 4096
	if free, ok := freeBytes(filepath.Dir(path)); ok && need > float64(free) {
		return nil, fmt.Errorf("write %s: %d images of %dx%dx%d are %.1f GB, and its file system has %.1f GB free",
			path, n, c, h, w, need/1e9, float64(free)/1e9)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	z := &ImagesNPZ{path: path, tmp: tmp, bw: bufio.NewWriterSize(tmp, 1<<16), n: n, c: c, h: h, w: w}
	z.zw = zip.NewWriter(z.bw)
	// A zero Modified time keeps the archive's bytes a function of its contents only.
	if z.entry, err = z.zw.CreateHeader(&zip.FileHeader{Name: "arr_0.npy", Method: zip.Store}); err == nil {
		err = writeNPYHeader(z.entry, "|u1", []int{n, h, w, c})
	}
	if err != nil {
		z.Abort()
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	return z, nil
}

// Write appends whole images given as bytes in NCHW order.
func (z *ImagesNPZ) Write(nchw []uint8) error {
	dim := z.c * z.h * z.w
	k := len(nchw) / dim
	if len(nchw)%dim != 0 || z.written+k > z.n {
		return fmt.Errorf("write %s: %d bytes are not whole %dx%dx%d images, or more than the %d announced", z.path, len(nchw), z.c, z.h, z.w, z.n)
	}
	out := nchw
	if z.c > 1 {
		if cap(z.nhwc) < len(nchw) {
			z.nhwc = make([]uint8, len(nchw))
		}
		out = nhwcInto(z.nhwc[:len(nchw)], nchw, k, z.c, z.h, z.w)
	}
	if _, err := z.entry.Write(out); err != nil {
		return fmt.Errorf("write %s: %w", z.path, err)
	}
	z.written += k
	return nil
}

// Close finishes the archive, which must hold the n images announced, and renames it into place.
func (z *ImagesNPZ) Close() error {
	if z.done {
		return fmt.Errorf("write %s: already closed", z.path)
	}
	if z.written != z.n {
		z.Abort()
		return fmt.Errorf("write %s: %d of %d images written", z.path, z.written, z.n)
	}
	z.done = true
	err := z.zw.Close()
	if err == nil {
		err = z.bw.Flush()
	}
	return finishAtomic(z.tmp, z.path, err)
}

// Abort removes the unfinished archive; after Close it does nothing, so it can be deferred.
func (z *ImagesNPZ) Abort() {
	if z.done {
		return
	}
	z.done = true
	z.tmp.Close()
	os.Remove(z.tmp.Name())
}

// NHWC reorders n images from NCHW to NHWC.
func NHWC(nchw []uint8, n, c, h, w int) []uint8 {
	return nhwcInto(make([]uint8, len(nchw)), nchw, n, c, h, w)
}

// nhwcInto is NHWC into out, which has len(nchw) bytes.
func nhwcInto(out, nchw []uint8, n, c, h, w int) []uint8 {
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
	return writeAtomic(path, func(w io.Writer) error { return WriteNPY(w, shape, data) })
}

// writeAtomic streams what write writes into a temporary file beside path and renames it into
// place once it is complete and synced.
func writeAtomic(path string, write func(io.Writer) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	bw := bufio.NewWriterSize(tmp, 1<<16)
	err = write(bw)
	if err == nil {
		err = bw.Flush()
	}
	return finishAtomic(tmp, path, err)
}

func writeFileAtomic(path string, b []byte) error {
	return writeAtomic(path, func(w io.Writer) error { _, err := w.Write(b); return err })
}

// finishAtomic syncs and closes tmp and renames it to path if err is nil; otherwise, or if any of
// that fails, it removes tmp. Errors name path.
func finishAtomic(tmp *os.File, path string, err error) error {
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

package imageio

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ddpm-go/ddpm/internal/sysmem"
)

// TestLoadNPZNotRegular: a FIFO or a device named as an .npz is refused at once; opening a FIFO
// for zip.OpenReader blocked until a writer came.
func TestLoadNPZNotRegular(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "x.npz")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{fifo, "/dev/zero"} {
		done := make(chan error, 1)
		go func() { _, err := LoadNPZ(p); done <- err }()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), "not a regular file") {
				t.Errorf("%s: %v, want not a regular file", p, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: LoadNPZ still running after 5 s", p)
		}
	}
}

// TestReadNPYShapeBeyondMemory: a header whose shape the machine cannot hold is refused by its
// size, before any data is read (a deflated .npz entry of zeros can claim gigabytes in megabytes).
func TestReadNPYShapeBeyondMemory(t *testing.T) {
	total := sysmem.Total
	sysmem.Total = func() uint64 { return 1 << 30 }
	defer func() { sysmem.Total = total }()
	var buf bytes.Buffer
	if err := WriteNPY(&buf, []int{1}, []float64{0}); err != nil {
		t.Fatal(err)
	}
	h := "{'descr': '<f8', 'fortran_order': False, 'shape': (200000000,), }\n"
	b := append([]byte("\x93NUMPY\x01\x00"), byte(len(h)), 0)
	_, err := ReadNPY(bytes.NewReader(append(b, h...)))
	if err == nil || !strings.Contains(err.Error(), "more than this machine's 1.0 GiB") {
		t.Fatalf("shape of 1.6 GB on a 1 GiB machine: %v", err)
	}
	// What fits is read as before.
	if a, err := ReadNPY(bytes.NewReader(buf.Bytes())); err != nil || len(a.Values) != 1 {
		t.Fatalf("one value: %v", err)
	}
}

// TestImagesNPZStreams: an archive written a few images at a time is byte for byte the one
// SaveImagesNPZ writes from all of them; one that ends short of the images it announced is an error
// and leaves nothing behind; and one the disk cannot hold is refused before its first byte.
func TestImagesNPZStreams(t *testing.T) {
	dir := t.TempDir()
	const n, c, h, w = 5, 3, 2, 4
	nchw := make([]uint8, n*c*h*w)
	for i := range nchw {
		nchw[i] = uint8(7 * i)
	}
	whole, parts := filepath.Join(dir, "whole.npz"), filepath.Join(dir, "parts.npz")
	if err := SaveImagesNPZ(whole, nchw, n, c, h, w); err != nil {
		t.Fatal(err)
	}
	z, err := CreateImagesNPZ(parts, n, c, h, w)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range [][2]int{{0, 2}, {2, 3}, {3, 5}} {
		if err := z.Write(nchw[k[0]*c*h*w : k[1]*c*h*w]); err != nil {
			t.Fatal(err)
		}
	}
	if err := z.Close(); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(whole)
	b, _ := os.ReadFile(parts)
	if !bytes.Equal(a, b) {
		t.Fatalf("streamed archive differs from the whole one (%d vs %d bytes)", len(b), len(a))
	}
	arr, err := LoadNPZ(parts)
	if err != nil || arr["arr_0"].Shape[0] != n || arr["arr_0"].Values[1] != float64(nchw[h*w]) {
		t.Fatalf("read back: %v", err)
	}

	short := filepath.Join(dir, "short.npz")
	z, err = CreateImagesNPZ(short, n, c, h, w)
	if err != nil {
		t.Fatal(err)
	}
	z.Write(nchw[:c*h*w])
	if err := z.Close(); err == nil || !strings.Contains(err.Error(), "1 of 5 images written") {
		t.Fatalf("short archive: %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".short*")); len(left) > 0 {
		t.Fatalf("short archive left %v", left)
	}
	if _, err := os.Stat(short); err == nil {
		t.Fatal("short archive renamed into place")
	}

	if _, ok := freeBytes(dir); ok {
		if _, err := CreateImagesNPZ(filepath.Join(dir, "huge.npz"), 1<<50, 3, 64, 64); err == nil || !strings.Contains(err.Error(), "GB free") {
			t.Fatalf("2^50 images: %v", err)
		}
	}
}

package imageio

import (
	"bytes"
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

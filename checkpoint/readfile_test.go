package checkpoint

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestReadFileRefusesBeforeReading: files whose header gives them away are refused from their first
// bytes, in milliseconds and without memory: a FIFO (opening it would block), /dev/zero (endless), a
// 20 GB sparse file behind a valid header, and a file with data past what its header describes.
func TestReadFileRefusesBeforeReading(t *testing.T) {
	dir := t.TempDir()
	var good bytes.Buffer
	if err := Encode(&good, []Tensor{{Name: "a", Shape: []int{2}, Data: []float32{1, 2}}}, nil); err != nil {
		t.Fatal(err)
	}
	sparse := filepath.Join(dir, "sparse.safetensors")
	if err := os.WriteFile(sparse, good.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(sparse, 20<<30); err != nil {
		t.Skipf("no sparse files here: %v", err)
	}
	fifo := filepath.Join(dir, "fifo.safetensors")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	bigHeader := filepath.Join(dir, "big-header.safetensors")
	os.WriteFile(bigHeader, append([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0}, "{}"...), 0o644)
	cases := map[string]string{
		fifo:        "not a regular file",
		"/dev/zero": "not a regular file",
		sparse:      "describes 8 bytes of tensor data but 21474836",
		dir:         "not a regular file",
		bigHeader:   "exceeds the",
	}
	for path, want := range cases {
		done := make(chan error, 1)
		go func() { _, err := ReadFile(path); done <- err }()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), path) {
				t.Errorf("%s: %v, want an error naming it with %q", path, err, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: ReadFile still running after 5 s", path)
		}
	}
	// The same file cut back to its real length reads.
	if err := os.Truncate(sparse, int64(good.Len())); err != nil {
		t.Fatal(err)
	}
	if f, err := ReadFile(sparse); err != nil || len(f.Tensors) != 1 {
		t.Fatalf("the intact file: %v", err)
	}
}

// FuzzReadFile: whatever the bytes, ReadFile never fails where Decode succeeds on a file that ends
// where its tensors do, and never succeeds where Decode fails.
func FuzzReadFile(f *testing.F) {
	var buf bytes.Buffer
	Encode(&buf, []Tensor{{Name: "a", Shape: []int{2}, Data: []float32{1, 2}}}, map[string]string{"m": "x"})
	f.Add(buf.Bytes())
	f.Add(append(buf.Bytes(), 0))
	f.Add(rawFile(`{"x":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]}}`, []byte{1, 2, 3, 4}))
	f.Add([]byte{1, 2, 3})
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(dir, "f.safetensors")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := ReadFile(p)
		want, derr := Decode(b)
		if derr != nil && err == nil {
			t.Fatalf("ReadFile accepted what Decode refused: %v", derr)
		}
		if err == nil && len(got.Tensors) != len(want.Tensors) {
			t.Fatalf("ReadFile %d tensors, Decode %d", len(got.Tensors), len(want.Tensors))
		}
	})
}

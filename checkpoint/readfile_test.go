package checkpoint

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
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
	for _, b := range headerEdges() {
		f.Add(b)
	}
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

// headerEdges are files whose first bytes lie about what follows: a header length of 2^64-1 or just
// past the cap, one longer than the file, and tensors whose shape or offsets claim terabytes.
func headerEdges() [][]byte {
	le := func(n uint64) []byte { return binary.LittleEndian.AppendUint64(nil, n) }
	return [][]byte{
		append(le(math.MaxUint64), "{}"...),
		append(le(maxHeader+1), "{}"...),
		append(le(16), "{}"...),
		rawFile(`{"x":{"dtype":"F32","shape":[1099511627776],"data_offsets":[0,4]}}`, make([]byte, 4)),
		rawFile(`{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,9223372036854775807]}}`, make([]byte, 4)),
		rawFile(`{"x":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}}`, nil),
	}
}

// TestHeaderEdges: each lying header is an error from Decode and from ReadFile (which must say so
// from the header, before reading the rest), never a panic or an allocation of what it claims.
func TestHeaderEdges(t *testing.T) {
	dir := t.TempDir()
	for i, b := range headerEdges() {
		if _, err := Decode(b); err == nil {
			t.Errorf("edge %d: Decode accepted it", i)
		}
		p := filepath.Join(dir, fmt.Sprintf("edge%d.safetensors", i))
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadFile(p); err == nil || !strings.Contains(err.Error(), p) || strings.Contains(err.Error(), "\n") {
			t.Errorf("edge %d: ReadFile: %v, want a one-line error naming the file", i, err)
		}
	}
}

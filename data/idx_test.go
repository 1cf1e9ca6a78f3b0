package data

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"runtime"
	"strings"
	"testing"
)

// idxBytes builds an idx file by hand (not with EncodeIDX) so the parser is checked against the
// format, not against its own inverse.
func idxBytes(dtype byte, dims []uint32, data []byte) []byte {
	b := []byte{0, 0, dtype, byte(len(dims))}
	for _, d := range dims {
		b = binary.BigEndian.AppendUint32(b, d)
	}
	return append(b, data...)
}

func TestParseIDX(t *testing.T) {
	valid3 := idxBytes(8, []uint32{2, 2, 3}, []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12})
	x, err := ParseIDX(valid3)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(x.Dims) != "[2 2 3]" || !bytes.Equal(x.Data, valid3[16:]) {
		t.Fatalf("got dims %v data %v", x.Dims, x.Data)
	}
	labels, err := ParseIDX(idxBytes(8, []uint32{3}, []byte{7, 0, 9}))
	if err != nil || fmt.Sprint(labels.Dims, labels.Data) != "[3] [7 0 9]" {
		t.Fatalf("labels: %v %v", labels, err)
	}

	for _, tc := range []struct {
		name, want string
		b          []byte
	}{
		{"empty", "shorter than the 4-byte magic", nil},
		{"three bytes", "shorter than the 4-byte magic", []byte{0, 0, 8}},
		{"bad magic", "bad magic number", append([]byte{0x1f, 0x8b}, valid3[2:]...)}, // a gzip header
		{"float dtype", "unsupported dtype 0x0d", idxBytes(0x0d, []uint32{1}, []byte{0, 0, 0, 0})},
		{"rank 0", "0 dimensions", idxBytes(8, nil, nil)},
		{"rank 9", "9 dimensions", idxBytes(8, make([]uint32, 9), nil)},
		{"truncated header", "truncated header", valid3[:10]},
		{"zero dimension", "dimension 1 is 0", idxBytes(8, []uint32{2, 0, 3}, nil)},
		{"truncated data", "truncated: dimensions [2 2 3] need 12 data bytes, file has 11", valid3[:len(valid3)-1]},
		{"trailing bytes", "1 trailing bytes", append(append([]byte{}, valid3...), 0)},
		{"huge dimensions", "truncated", idxBytes(8, []uint32{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}, []byte{1, 2, 3})},
		{"product overflows int64", "truncated", idxBytes(8, []uint32{1 << 31, 1 << 31, 1 << 31}, nil)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x, err := ParseIDX(tc.b)
			if err == nil {
				t.Fatalf("parsed %v, want error containing %q", x.Dims, tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q, want it to contain %q", err, tc.want)
			}
		})
	}
}

// A header claiming 2^128 bytes must be rejected without allocating anything of that order.
func TestParseIDXHugeHeaderDoesNotAllocate(t *testing.T) {
	b := idxBytes(8, []uint32{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 28, 28}, make([]byte, 1000))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := 0; i < 100; i++ {
		if _, err := ParseIDX(b); err == nil {
			t.Fatal("parsed a file whose header claims 2^128 bytes")
		}
	}
	runtime.ReadMemStats(&after)
	if d := after.TotalAlloc - before.TotalAlloc; d > 1<<20 {
		t.Fatalf("100 rejected parses allocated %d bytes", d)
	}
}

func TestReadIDXFileNamesFile(t *testing.T) {
	p := t.TempDir() + "/bad-idx"
	if err := writeFile(p, []byte{0, 0, 8, 1, 0, 0, 0, 5, 1}); err != nil {
		t.Fatal(err)
	}
	_, err := ReadIDXFile(p)
	if err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "truncated") {
		t.Fatalf("error %v, want the path and 'truncated'", err)
	}
}

func TestEncodeIDXRoundTrip(t *testing.T) {
	data := []byte{1, 2, 3, 4, 5, 6}
	b, err := EncodeIDX([]int{3, 2}, data)
	if err != nil {
		t.Fatal(err)
	}
	if want := idxBytes(8, []uint32{3, 2}, data); !bytes.Equal(b, want) {
		t.Fatalf("encoded %v, want %v", b, want)
	}
	if _, err := EncodeIDX([]int{4, 2}, data); err == nil {
		t.Fatal("encoded 6 bytes as 4x2")
	}
}

// FuzzParseIDX checks that no input panics, and that whatever parses is exactly what its header
// says: re-encoding the result gives back the input byte for byte.
func FuzzParseIDX(f *testing.F) {
	f.Add(idxBytes(8, []uint32{3}, []byte{7, 0, 9}))
	f.Add(idxBytes(8, []uint32{2, 2, 3}, make([]byte, 12)))
	f.Add(idxBytes(8, []uint32{1, 1, 1, 1, 1, 1, 1, 1}, []byte{42}))
	f.Add(idxBytes(8, []uint32{0xffffffff, 2}, []byte{1}))
	f.Add(idxBytes(0x0d, []uint32{1}, []byte{0, 0, 0, 0}))
	f.Add([]byte{0, 0, 8})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		x, err := ParseIDX(b)
		if err != nil {
			if x != nil {
				t.Fatal("error with a result")
			}
			return
		}
		n := 1
		for _, d := range x.Dims {
			n *= d
		}
		if n != len(x.Data) || 4+4*len(x.Dims)+len(x.Data) != len(b) {
			t.Fatalf("dims %v, %d data bytes, %d input bytes", x.Dims, len(x.Data), len(b))
		}
		re, err := EncodeIDX(x.Dims, x.Data)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(re, b) {
			t.Fatal("re-encoding differs from the input")
		}
	})
}

func ExampleParseIDX() {
	// Three labels, as in MNIST's train-labels-idx1-ubyte: magic 0x00000801, one dimension of 3.
	b := []byte{0, 0, 8, 1, 0, 0, 0, 3, 5, 0, 4}
	x, err := ParseIDX(b)
	fmt.Println(x.Dims, x.Data, err)
	// Output: [3] [5 0 4] <nil>
}

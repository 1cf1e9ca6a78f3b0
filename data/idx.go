package data

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"os"
)

// IDX is a parsed idx file (the format MNIST and Fashion-MNIST ship in): an n-dimensional array of
// unsigned bytes with its dimensions, outermost first.
type IDX struct {
	Dims []int
	Data []uint8 // len == product of Dims; aliases the parsed buffer
}

// maxIDXDims bounds the header so that a corrupted dimension count cannot make the parser read or
// allocate far past the magic number. Real files have 1 (labels) or 3 (images).
const maxIDXDims = 8

// ParseIDX parses an idx file held in memory. Only dtype 0x08 (unsigned byte) is accepted, the one
// type every dataset here uses. The data must be exactly the product of the dimensions: a short file
// is truncated and a long one is not what its header says it is, and both are errors. Nothing is
// allocated from header values: sizes are checked against len(b) first, and Data aliases b.
func ParseIDX(b []byte) (*IDX, error) {
	if len(b) < 4 {
		return nil, fmt.Errorf("idx: file is %d bytes, shorter than the 4-byte magic number", len(b))
	}
	if b[0] != 0 || b[1] != 0 {
		return nil, fmt.Errorf("idx: bad magic number %02x%02x%02x%02x (want 0000 then dtype and rank)", b[0], b[1], b[2], b[3])
	}
	if b[2] != 0x08 {
		return nil, fmt.Errorf("idx: unsupported dtype 0x%02x (only 0x08, unsigned byte)", b[2])
	}
	rank := int(b[3])
	if rank == 0 || rank > maxIDXDims {
		return nil, fmt.Errorf("idx: %d dimensions, want 1 to %d", rank, maxIDXDims)
	}
	hdr := 4 + 4*rank
	if len(b) < hdr {
		return nil, fmt.Errorf("idx: truncated header: %d dimensions need %d bytes, file is %d", rank, hdr, len(b))
	}
	dims := make([]int, rank)
	avail := uint64(len(b) - hdr)
	var size uint64 = 1
	tooBig := false
	for i := range dims {
		d := binary.BigEndian.Uint32(b[4+4*i:])
		if d == 0 {
			return nil, fmt.Errorf("idx: dimension %d is 0", i)
		}
		dims[i] = int(d)
		// The product of up to 8 32-bit dimensions can pass 2^64; a full 128-bit multiply tells.
		hi, lo := bits.Mul64(size, uint64(d))
		if hi != 0 {
			tooBig = true
		}
		size = lo
	}
	switch {
	case tooBig:
		return nil, fmt.Errorf("idx: truncated: dimensions %v need more than the %d data bytes the file has", dims, avail)
	case size > avail:
		return nil, fmt.Errorf("idx: truncated: dimensions %v need %d data bytes, file has %d", dims, size, avail)
	case size < avail:
		return nil, fmt.Errorf("idx: %d trailing bytes after the %d data bytes that dimensions %v describe", avail-size, size, dims)
	}
	return &IDX{Dims: dims, Data: b[hdr:]}, nil
}

// ReadIDXFile reads and parses the idx file at path. The file is read whole, so memory use is bounded
// by its size on disk, not by what its header claims.
func ReadIDXFile(path string) (*IDX, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	x, err := ParseIDX(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return x, nil
}

// EncodeIDX is ParseIDX's inverse for unsigned-byte arrays; tests and tools use it to write idx files.
func EncodeIDX(dims []int, data []uint8) ([]byte, error) {
	if len(dims) == 0 || len(dims) > maxIDXDims {
		return nil, fmt.Errorf("idx: %d dimensions, want 1 to %d", len(dims), maxIDXDims)
	}
	n := 1
	for _, d := range dims {
		if d <= 0 || d > 1<<32-1 {
			return nil, fmt.Errorf("idx: dimension %d out of range", d)
		}
		n *= d
	}
	if n != len(data) {
		return nil, fmt.Errorf("idx: dimensions %v hold %d bytes, data has %d", dims, n, len(data))
	}
	b := make([]byte, 4+4*len(dims), 4+4*len(dims)+len(data))
	b[2], b[3] = 0x08, byte(len(dims))
	for i, d := range dims {
		binary.BigEndian.PutUint32(b[4+4*i:], uint32(d))
	}
	return append(b, data...), nil
}

// Package checkpoint stores model weights, EMA weights and training state as safetensors files, the
// Hugging Face format PyTorch users already read (an 8-byte little-endian header length, a JSON header,
// raw little-endian data), so weights move between this project and PyTorch in both directions
// (scripts/torch/convert.py), and writes every file atomically so a crash never leaves half a
// checkpoint behind.
//
// Layers, from the bytes up:
//   - Encode/Decode and WriteFile/ReadFile: safetensors files of named float32 tensors plus the
//     string map "__metadata__". Decode validates everything (header length, JSON, dtypes, shapes,
//     offsets in range and not overlapping) and returns errors, never panics.
//   - Save/Load: groups of *tensor.Param under name prefixes, checked name by name and shape by shape.
//   - SaveModel/LoadModel and SaveTraining/LoadTraining: a UNet with its JSON config, and the whole
//     state a training run needs to resume (model, EMA, AdamW moments, step, RNG) in one file.
package checkpoint

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/ddpm-go/ddpm/internal/safeio"
	"github.com/ddpm-go/ddpm/internal/sysmem"
)

// Tensor is a named float32 array in row-major order.
type Tensor struct {
	Name  string
	Shape []int
	Data  []float32
}

// File is a decoded safetensors file: its tensors in file (offset) order and its metadata.
type File struct {
	Tensors  []Tensor
	Metadata map[string]string
}

// Lookup returns the tensor named name.
func (f *File) Lookup(name string) (Tensor, bool) {
	for _, t := range f.Tensors {
		if t.Name == name {
			return t, true
		}
	}
	return Tensor{}, false
}

// maxHeader bounds the JSON header (the reference implementation uses 100 MB) so that a corrupt
// length field cannot make us allocate gigabytes.
const maxHeader = 100 << 20

// entry is one tensor's header record after validation.
type entry struct {
	name       string
	dtype      string
	shape      []int
	begin, end int64
}

var dtypeSize = map[string]int64{"F32": 4, "BF16": 2}

// parseHeader validates a safetensors JSON header against the size of the data section that follows
// it and returns the entries sorted by offset.
func parseHeader(h []byte, dataLen int64) ([]entry, map[string]string, error) {
	dec := json.NewDecoder(bytes.NewReader(h))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, nil, fmt.Errorf("header is not JSON: %w", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, nil, errors.New("header is not a JSON object")
	}
	var entries []entry
	var meta map[string]string
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, nil, fmt.Errorf("header is not JSON: %w", err)
		}
		name, ok := tok.(string)
		if !ok {
			return nil, nil, errors.New("header: object key is not a string")
		}
		if seen[name] {
			return nil, nil, fmt.Errorf("header: duplicate key %q", name)
		}
		seen[name] = true
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, nil, fmt.Errorf("header is not JSON: value of %q: %w", name, err)
		}
		if name == "__metadata__" {
			if err := json.Unmarshal(raw, &meta); err != nil {
				return nil, nil, fmt.Errorf("header: __metadata__ must map strings to strings: %w", err)
			}
			continue
		}
		e, err := parseEntry(name, raw, dataLen)
		if err != nil {
			return nil, nil, err
		}
		entries = append(entries, e)
	}
	if _, err := dec.Token(); err != nil {
		return nil, nil, fmt.Errorf("header is not JSON: %w", err)
	}
	if dec.More() {
		return nil, nil, errors.New("header: trailing data after the JSON object")
	}
	slices.SortFunc(entries, func(a, b entry) int {
		if a.begin != b.begin {
			return int(a.begin - b.begin)
		}
		return int(a.end - b.end)
	})
	for i := 1; i < len(entries); i++ {
		if p, e := entries[i-1], entries[i]; e.begin < p.end {
			return nil, nil, fmt.Errorf("tensor %q: data_offsets [%d,%d] overlap tensor %q [%d,%d]",
				e.name, e.begin, e.end, p.name, p.begin, p.end)
		}
	}
	return entries, meta, nil
}

func parseEntry(name string, raw json.RawMessage, dataLen int64) (entry, error) {
	var rec struct {
		Dtype       string    `json:"dtype"`
		Shape       []int64   `json:"shape"`
		DataOffsets []float64 `json:"data_offsets"`
	}
	if err := json.Unmarshal(raw, &rec); err != nil {
		return entry{}, fmt.Errorf("tensor %q: bad header record: %w", name, err)
	}
	if name == "" {
		return entry{}, errors.New("tensor with an empty name")
	}
	size, ok := dtypeSize[rec.Dtype]
	if !ok {
		return entry{}, fmt.Errorf("tensor %q: dtype %q not supported (want F32 or BF16)", name, rec.Dtype)
	}
	if rec.Shape == nil {
		return entry{}, fmt.Errorf("tensor %q: no shape", name)
	}
	if len(rec.DataOffsets) != 2 {
		return entry{}, fmt.Errorf("tensor %q: data_offsets must have two numbers", name)
	}
	for _, o := range rec.DataOffsets {
		if o < 0 || o != math.Trunc(o) || o > float64(dataLen) {
			return entry{}, fmt.Errorf("tensor %q: data_offsets %v outside the %d data bytes", name, rec.DataOffsets, dataLen)
		}
	}
	begin, end := int64(rec.DataOffsets[0]), int64(rec.DataOffsets[1])
	if begin > end {
		return entry{}, fmt.Errorf("tensor %q: data_offsets [%d,%d] end before they begin", name, begin, end)
	}
	n := int64(1)
	shape := make([]int, len(rec.Shape))
	for i, d := range rec.Shape {
		if d < 0 || d > dataLen {
			return entry{}, fmt.Errorf("tensor %q: bad shape %v", name, rec.Shape)
		}
		if d != 0 && n > dataLen/d {
			return entry{}, fmt.Errorf("tensor %q: shape %v larger than the file", name, rec.Shape)
		}
		n *= d
		shape[i] = int(d)
	}
	if n*size != end-begin {
		return entry{}, fmt.Errorf("tensor %q: shape %v of %s needs %d bytes, data_offsets give %d",
			name, rec.Shape, rec.Dtype, n*size, end-begin)
	}
	return entry{name: name, dtype: rec.Dtype, shape: shape, begin: begin, end: end}, nil
}

// Decode parses a whole safetensors file held in memory. F32 and BF16 tensors are returned as float32.
func Decode(b []byte) (*File, error) {
	if len(b) < 8 {
		return nil, fmt.Errorf("truncated: %d bytes, need at least 8 for the header length", len(b))
	}
	n := binary.LittleEndian.Uint64(b[:8])
	if n > maxHeader {
		return nil, fmt.Errorf("header length %d exceeds the %d limit (not a safetensors file?)", n, maxHeader)
	}
	if n > uint64(len(b)-8) {
		return nil, fmt.Errorf("truncated: header length %d but only %d bytes follow", n, len(b)-8)
	}
	data := b[8+n:]
	entries, meta, err := parseHeader(b[8:8+n], int64(len(data)))
	if err != nil {
		return nil, err
	}
	f := &File{Metadata: meta, Tensors: make([]Tensor, len(entries))}
	for i, e := range entries {
		raw := data[e.begin:e.end]
		var v []float32
		switch e.dtype {
		case "F32":
			v = make([]float32, len(raw)/4)
			for j := range v {
				v[j] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*j:]))
			}
		case "BF16":
			v = make([]float32, len(raw)/2)
			for j := range v {
				v[j] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(raw[2*j:])) << 16)
			}
		}
		f.Tensors[i] = Tensor{Name: e.name, Shape: e.shape, Data: v}
	}
	return f, nil
}

// Encode writes tensors (as F32, in the given order) and metadata in safetensors format.
func Encode(w io.Writer, tensors []Tensor, meta map[string]string) error {
	header := map[string]any{}
	var off int64
	for _, t := range tensors {
		if t.Name == "" || t.Name == "__metadata__" {
			return fmt.Errorf("invalid tensor name %q", t.Name)
		}
		if _, dup := header[t.Name]; dup {
			return fmt.Errorf("duplicate tensor name %q", t.Name)
		}
		n := 1
		for _, d := range t.Shape {
			n *= d
		}
		if n != len(t.Data) {
			return fmt.Errorf("tensor %q: shape %v holds %d values, data has %d", t.Name, t.Shape, n, len(t.Data))
		}
		shape := t.Shape
		if shape == nil {
			shape = []int{}
		}
		header[t.Name] = map[string]any{"dtype": "F32", "shape": shape, "data_offsets": []int64{off, off + 4*int64(n)}}
		off += 4 * int64(n)
	}
	if len(meta) > 0 {
		header["__metadata__"] = meta
	}
	h, err := json.Marshal(header)
	if err != nil {
		return err
	}
	// Pad with spaces so that the data starts 8-byte aligned, as the reference writer does.
	h = append(h, bytes.Repeat([]byte(" "), (8-len(h)%8)%8)...)
	bw := bufio.NewWriterSize(w, 1<<16)
	var lenBuf [8]byte
	binary.LittleEndian.PutUint64(lenBuf[:], uint64(len(h)))
	bw.Write(lenBuf[:])
	bw.Write(h)
	var buf [4]byte
	for _, t := range tensors {
		for _, x := range t.Data {
			binary.LittleEndian.PutUint32(buf[:], math.Float32bits(x))
			bw.Write(buf[:])
		}
	}
	return bw.Flush()
}

// ReadFile reads and decodes a safetensors file; errors name the file.
func ReadFile(path string) (*File, error) {
	b, err := readChecked(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	f, err := Decode(b)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return f, nil
}

// readChecked reads a safetensors file whole only after its 8-byte length and JSON header say the
// rest is worth reading: the path must be a regular file (a FIFO would block, /dev/zero never ends),
// its size must be what the header describes (so a 20 GB sparse file behind a valid header is
// refused, not read), and what decoding needs must fit in the machine's memory.
func readChecked(path string) ([]byte, error) {
	f, err := safeio.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	size := st.Size()
	var lenBuf [8]byte
	if _, err := io.ReadFull(f, lenBuf[:]); err != nil {
		return nil, fmt.Errorf("truncated: %d bytes, need at least 8 for the header length", size)
	}
	n := binary.LittleEndian.Uint64(lenBuf[:])
	if n > maxHeader {
		return nil, fmt.Errorf("header length %d exceeds the %d limit (not a safetensors file?)", n, maxHeader)
	}
	if n > uint64(size-8) {
		return nil, fmt.Errorf("truncated: header length %d but only %d bytes follow", n, size-8)
	}
	h := make([]byte, n)
	if _, err := io.ReadFull(f, h); err != nil {
		return nil, fmt.Errorf("header: %w", err)
	}
	dataLen := size - 8 - int64(n)
	entries, _, err := parseHeader(h, dataLen)
	if err != nil {
		return nil, err
	}
	var end, floats int64
	for _, e := range entries {
		end = max(end, e.end)
		floats += (e.end - e.begin) / dtypeSize[e.dtype]
	}
	if end != dataLen {
		return nil, fmt.Errorf("the header describes %d bytes of tensor data but %d follow it (%d-byte file)", end, dataLen, size)
	}
	if err := sysmem.Check("decoding it", float64(size+4*floats)); err != nil {
		return nil, err
	}
	b := make([]byte, size)
	copy(b, lenBuf[:])
	copy(b[8:], h)
	if _, err := io.ReadFull(f, b[8+n:]); err != nil {
		return nil, fmt.Errorf("tensor data: %w", err)
	}
	return b, nil
}

// WriteFile writes a safetensors file atomically: the bytes go to a temporary file in the same
// directory, which is synced and renamed over path, and the directory is synced so the rename itself
// survives a crash. Readers see either the old file or the complete new one.
func WriteFile(path string, tensors []Tensor, meta map[string]string) error {
	return writeAtomic(path, func(w io.Writer) error { return Encode(w, tensors, meta) })
}

func writeAtomic(path string, write func(io.Writer) error) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+strings.TrimPrefix(base, ".")+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
			err = fmt.Errorf("write %s: %w", path, err)
		}
	}()
	if err = write(tmp); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

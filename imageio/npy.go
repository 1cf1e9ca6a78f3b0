package imageio

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/ddpm-go/ddpm/internal/sysmem"
)

// Array is a numeric array from a .npy file: its shape, NumPy type descriptor ("<f4", "<f8", "|u1")
// and values in C order, widened to float64 whatever the stored type.
type Array struct {
	Shape  []int
	Descr  string
	Values []float64
}

var npyMagic = []byte("\x93NUMPY")

// maxNPYValues bounds what ReadNPY accepts, so a corrupt header cannot ask for an absurd allocation.
const maxNPYValues = 1 << 31

// WriteNPY writes data with the given shape as a version 1.0 .npy file (2.0 if the header is too
// long for 1.0). data is []uint8, []float32 or []float64 and must hold exactly prod(shape) values.
func WriteNPY(w io.Writer, shape []int, data any) error {
	var descr string
	var n int
	switch d := data.(type) {
	case []uint8:
		descr, n = "|u1", len(d)
	case []float32:
		descr, n = "<f4", len(d)
	case []float64:
		descr, n = "<f8", len(d)
	default:
		return fmt.Errorf("npy: unsupported data type %T", data)
	}
	count := 1
	for _, s := range shape {
		if s < 0 {
			return fmt.Errorf("npy: negative dimension in shape %v", shape)
		}
		count *= s
	}
	if count != n {
		return fmt.Errorf("npy: shape %v holds %d values, data has %d", shape, count, n)
	}
	bw := bufio.NewWriter(w)
	writeNPYHeader(bw, descr, shape)
	switch d := data.(type) {
	case []uint8:
		bw.Write(d)
	case []float32:
		var b [4]byte
		for _, v := range d {
			binary.LittleEndian.PutUint32(b[:], math.Float32bits(v))
			bw.Write(b[:])
		}
	case []float64:
		var b [8]byte
		for _, v := range d {
			binary.LittleEndian.PutUint64(b[:], math.Float64bits(v))
			bw.Write(b[:])
		}
	}
	return bw.Flush()
}

// writeNPYHeader writes the magic, version and header of a .npy of shape and NumPy type descr;
// the values follow in C order. Version 2.0 is used only if the header is too long for 1.0.
func writeNPYHeader(w io.Writer, descr string, shape []int) error {
	dims := make([]string, len(shape))
	for i, s := range shape {
		dims[i] = strconv.Itoa(s)
	}
	tuple := "(" + strings.Join(dims, ", ") + ")"
	if len(shape) == 1 {
		tuple = "(" + dims[0] + ",)"
	}
	header := fmt.Sprintf("{'descr': '%s', 'fortran_order': False, 'shape': %s, }", descr, tuple)
	// The header is padded with spaces and ends in '\n' so that the data starts at a multiple of 64
	// bytes, as NumPy writes it.
	version, lenBytes := byte(1), 2
	if len(header)+11+lenBytes > math.MaxUint16 {
		version, lenBytes = 2, 4
	}
	pre := len(npyMagic) + 2 + lenBytes
	total := (pre + len(header) + 1 + 63) / 64 * 64
	header += strings.Repeat(" ", total-pre-len(header)-1) + "\n"
	b := append(append([]byte(nil), npyMagic...), version, 0)
	if version == 1 {
		b = binary.LittleEndian.AppendUint16(b, uint16(len(header)))
	} else {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(header)))
	}
	_, err := w.Write(append(b, header...))
	return err
}

// ReadNPY reads a .npy file of float32, float64 or uint8 values in C order. Anything else (Fortran
// order, other types, a truncated or malformed file) is an error, never a panic.
func ReadNPY(r io.Reader) (*Array, error) {
	br := bufio.NewReader(r)
	pre := make([]byte, len(npyMagic)+2)
	if _, err := io.ReadFull(br, pre); err != nil {
		return nil, fmt.Errorf("npy: short file: %w", err)
	}
	if !bytes.Equal(pre[:len(npyMagic)], npyMagic) {
		return nil, errors.New("npy: not a .npy file (bad magic)")
	}
	var hlen int
	switch major := pre[len(npyMagic)]; major {
	case 1:
		var b [2]byte
		if _, err := io.ReadFull(br, b[:]); err != nil {
			return nil, fmt.Errorf("npy: short header: %w", err)
		}
		hlen = int(binary.LittleEndian.Uint16(b[:]))
	case 2, 3:
		var b [4]byte
		if _, err := io.ReadFull(br, b[:]); err != nil {
			return nil, fmt.Errorf("npy: short header: %w", err)
		}
		hlen = int(binary.LittleEndian.Uint32(b[:]))
		if hlen > 1<<20 {
			return nil, fmt.Errorf("npy: header of %d bytes is implausibly long", hlen)
		}
	default:
		return nil, fmt.Errorf("npy: unsupported format version %d", major)
	}
	h := make([]byte, hlen)
	if _, err := io.ReadFull(br, h); err != nil {
		return nil, fmt.Errorf("npy: short header: %w", err)
	}
	descr, fortran, shape, err := parseNPYHeader(string(h))
	if err != nil {
		return nil, err
	}
	if fortran {
		return nil, errors.New("npy: Fortran-order arrays are not supported (save with numpy.ascontiguousarray)")
	}
	count := 1
	for _, s := range shape {
		if s < 0 || (s > 0 && count > maxNPYValues/s) {
			return nil, fmt.Errorf("npy: shape %v is too large", shape)
		}
		count *= s
	}
	var size int
	var order binary.ByteOrder = binary.LittleEndian
	switch descr {
	case "|u1", "<u1", ">u1":
		size = 1
	case "<f4", ">f4", "=f4":
		size = 4
	case "<f8", ">f8", "=f8":
		size = 8
	default:
		return nil, fmt.Errorf("npy: unsupported dtype %q (want float32, float64 or uint8)", descr)
	}
	if descr[0] == '>' {
		order = binary.BigEndian
	}
	// A shape the machine cannot hold (the bytes and their float64 values) is refused before
	// reading: a deflated .npz entry of two billion zero bytes is a few megabytes on disk.
	if err := sysmem.Check(fmt.Sprintf("npy: shape %v of %s", shape, descr), float64(count)*float64(size+8)); err != nil {
		return nil, err
	}
	// Read before allocating the values, so a corrupt shape in a short file costs nothing.
	raw, err := io.ReadAll(io.LimitReader(br, int64(count*size)))
	if err != nil {
		return nil, fmt.Errorf("npy: read data: %w", err)
	}
	if len(raw) != count*size {
		return nil, fmt.Errorf("npy: data truncated: shape %v of %s needs %d bytes, file has %d", shape, descr, count*size, len(raw))
	}
	vals := make([]float64, count)
	for i := range vals {
		switch size {
		case 1:
			vals[i] = float64(raw[i])
		case 4:
			vals[i] = float64(math.Float32frombits(order.Uint32(raw[4*i:])))
		case 8:
			vals[i] = math.Float64frombits(order.Uint64(raw[8*i:]))
		}
	}
	return &Array{Shape: shape, Descr: descr, Values: vals}, nil
}

// parseNPYHeader reads the Python dict literal of a .npy header: {'descr': '<f4', 'fortran_order':
// False, 'shape': (2, 3), }. Only these three keys, string/bool/int-tuple values, are understood.
func parseNPYHeader(h string) (descr string, fortran bool, shape []int, err error) {
	bad := func(format string, args ...any) (string, bool, []int, error) {
		return "", false, nil, fmt.Errorf("npy: bad header %q: %s", strings.TrimSpace(h), fmt.Sprintf(format, args...))
	}
	s := strings.TrimSpace(h)
	if !strings.HasPrefix(s, "{") || !strings.HasSuffix(s, "}") {
		return bad("not a dict")
	}
	s = s[1 : len(s)-1]
	seen := map[string]bool{}
	for {
		s = strings.TrimLeft(s, " \t\n")
		if s == "" {
			break
		}
		key, rest, ok := pyString(s)
		if !ok {
			return bad("expected a quoted key")
		}
		rest = strings.TrimLeft(rest, " ")
		if !strings.HasPrefix(rest, ":") {
			return bad("expected ':' after %q", key)
		}
		rest = strings.TrimLeft(rest[1:], " ")
		switch key {
		case "descr":
			descr, rest, ok = pyString(rest)
			if !ok {
				return bad("descr is not a string")
			}
		case "fortran_order":
			switch {
			case strings.HasPrefix(rest, "True"):
				fortran, rest = true, rest[4:]
			case strings.HasPrefix(rest, "False"):
				fortran, rest = false, rest[5:]
			default:
				return bad("fortran_order is not True or False")
			}
		case "shape":
			end := strings.IndexByte(rest, ')')
			if !strings.HasPrefix(rest, "(") || end < 0 {
				return bad("shape is not a tuple")
			}
			shape = []int{}
			for _, f := range strings.Split(rest[1:end], ",") {
				f = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(f), "L"))
				if f == "" {
					continue
				}
				v, err := strconv.Atoi(f)
				if err != nil || v < 0 {
					return bad("shape entry %q is not a non-negative integer", f)
				}
				shape = append(shape, v)
			}
			rest = rest[end+1:]
		default:
			return bad("unknown key %q", key)
		}
		seen[key] = true
		rest = strings.TrimLeft(rest, " ")
		if strings.HasPrefix(rest, ",") {
			rest = rest[1:]
		} else if strings.TrimSpace(rest) != "" {
			return bad("expected ',' after %q", key)
		}
		s = rest
	}
	if !seen["descr"] || !seen["fortran_order"] || !seen["shape"] {
		return bad("missing descr, fortran_order or shape")
	}
	return descr, fortran, shape, nil
}

// pyString reads a single- or double-quoted string without escapes at the start of s.
func pyString(s string) (val, rest string, ok bool) {
	if s == "" || (s[0] != '\'' && s[0] != '"') {
		return "", s, false
	}
	end := strings.IndexByte(s[1:], s[0])
	if end < 0 {
		return "", s, false
	}
	return s[1 : 1+end], s[2+end:], true
}

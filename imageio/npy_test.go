package imageio

import (
	"bytes"
	"encoding/binary"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// numpy returns the path of a Python with NumPy, or skips the test.
func numpy(t *testing.T) string {
	t.Helper()
	const py = "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import numpy").Run(); err != nil {
		t.Skipf("no %s with numpy: %v", py, err)
	}
	return py
}

func TestNPYRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name  string
		shape []int
		data  any
		want  []float64
		descr string
	}{
		{"uint8 4-D", []int{2, 1, 1, 3}, []uint8{0, 1, 2, 253, 254, 255}, []float64{0, 1, 2, 253, 254, 255}, "|u1"},
		{"float32 2-D", []int{2, 2}, []float32{-1.5, 0, 3.25, 1e-8}, []float64{-1.5, 0, 3.25, float64(float32(1e-8))}, "<f4"},
		{"float64 1-D", []int{3}, []float64{1, -2, 0.1}, []float64{1, -2, 0.1}, "<f8"},
		{"scalar", []int{}, []float64{7}, []float64{7}, "<f8"},
		{"empty", []int{0, 5}, []float32{}, []float64{}, "<f4"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := WriteNPY(&buf, tc.shape, tc.data); err != nil {
				t.Fatal(err)
			}
			hlen := int(binary.LittleEndian.Uint16(buf.Bytes()[8:10]))
			if (10+hlen)%64 != 0 || buf.Bytes()[10+hlen-1] != '\n' {
				t.Errorf("header of %d bytes: data not 64-byte aligned or no trailing newline", hlen)
			}
			a, err := ReadNPY(&buf)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(a.Shape, tc.shape) || a.Descr != tc.descr || !reflect.DeepEqual(a.Values, tc.want) {
				t.Errorf("read back shape %v %s %v, want %v %s %v", a.Shape, a.Descr, a.Values, tc.shape, tc.descr, tc.want)
			}
		})
	}
}

func TestWriteNPYErrors(t *testing.T) {
	for _, tc := range []struct {
		shape []int
		data  any
	}{
		{[]int{2, 2}, []float32{1, 2, 3}},
		{[]int{-1}, []float32{}},
		{[]int{2}, []int{1, 2}},
	} {
		if err := WriteNPY(&bytes.Buffer{}, tc.shape, tc.data); err == nil {
			t.Errorf("WriteNPY(%v, %T) succeeded", tc.shape, tc.data)
		}
	}
}

func TestReadNPYErrors(t *testing.T) {
	var good bytes.Buffer
	if err := WriteNPY(&good, []int{2, 3}, []float32{1, 2, 3, 4, 5, 6}); err != nil {
		t.Fatal(err)
	}
	g := good.Bytes()
	header := func(h string) []byte {
		b := append([]byte("\x93NUMPY\x01\x00"), byte(len(h)), byte(len(h)>>8))
		return append(b, h...)
	}
	for _, tc := range []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "short file"},
		{"bad magic", append([]byte("\x93NUMPZ"), g[6:]...), "bad magic"},
		{"version 9", append(append([]byte{}, g[:6]...), append([]byte{9, 0}, g[8:]...)...), "version 9"},
		{"short header", g[:20], "short header"},
		{"truncated data", g[:len(g)-1], "truncated"},
		{"fortran", header("{'descr': '<f4', 'fortran_order': True, 'shape': (1,), }\n"), "Fortran"},
		{"int64", header("{'descr': '<i8', 'fortran_order': False, 'shape': (1,), }\n"), "unsupported dtype"},
		{"no shape", header("{'descr': '<f4', 'fortran_order': False, }\n"), "missing"},
		{"bad shape", header("{'descr': '<f4', 'fortran_order': False, 'shape': (a,), }\n"), "shape entry"},
		{"huge shape", header("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999, 99999999999), }\n"), "too large"},
		{"not a dict", header("[1, 2]\n"), "not a dict"},
		{"unknown key", header("{'descr': '<f4', 'x': 1}\n"), "unknown key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadNPY(bytes.NewReader(tc.b))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestNPYWithNumPy checks both directions against NumPy itself: what we write numpy.load reads with
// the right dtype, shape and values, and what numpy.save writes (both byte orders, format 2.0) we read.
func TestNPYWithNumPy(t *testing.T) {
	py := numpy(t)
	dir := t.TempDir()
	ours := filepath.Join(dir, "ours.npy")
	if err := SaveNPY(ours, []int{2, 3}, []float32{0.5, -1, 2, 3, 4, 1e30}); err != nil {
		t.Fatal(err)
	}
	script := `
import sys, numpy as np
a = np.load(sys.argv[1])
assert a.dtype == np.float32 and a.shape == (2, 3), (a.dtype, a.shape)
assert a.tolist() == [[0.5, -1, 2], [3, 4, np.float32(1e30)]], a
d = sys.argv[2]
np.save(d + "/le.npy", np.arange(6, dtype="<f8").reshape(1, 2, 3) / 4)
np.save(d + "/be.npy", np.arange(4, dtype=">f4") - 1.5)
np.save(d + "/u8.npy", np.arange(250, 256, dtype=np.uint8).reshape(3, 2))
np.lib.format.write_array(open(d + "/v2.npy", "wb"), np.ones((2, 2), np.float32), version=(2, 0))
`
	if out, err := exec.Command(py, "-c", script, ours, dir).CombinedOutput(); err != nil {
		t.Fatalf("numpy: %v\n%s", err, out)
	}
	for _, tc := range []struct {
		file  string
		shape []int
		vals  []float64
	}{
		{"le.npy", []int{1, 2, 3}, []float64{0, 0.25, 0.5, 0.75, 1, 1.25}},
		{"be.npy", []int{4}, []float64{-1.5, -0.5, 0.5, 1.5}},
		{"u8.npy", []int{3, 2}, []float64{250, 251, 252, 253, 254, 255}},
		{"v2.npy", []int{2, 2}, []float64{1, 1, 1, 1}},
	} {
		a, err := LoadNPY(filepath.Join(dir, tc.file))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(a.Shape, tc.shape) || !reflect.DeepEqual(a.Values, tc.vals) {
			t.Errorf("%s: got %v %v, want %v %v", tc.file, a.Shape, a.Values, tc.shape, tc.vals)
		}
	}
}

func FuzzReadNPY(f *testing.F) {
	var b bytes.Buffer
	WriteNPY(&b, []int{2, 2}, []float32{1, 2, 3, 4})
	f.Add(b.Bytes())
	b.Reset()
	WriteNPY(&b, []int{3}, []uint8{1, 2, 3})
	f.Add(b.Bytes())
	f.Fuzz(func(t *testing.T, in []byte) {
		a, err := ReadNPY(bytes.NewReader(in))
		if err != nil {
			return
		}
		n := 1
		for _, s := range a.Shape {
			n *= s
		}
		if n != len(a.Values) {
			t.Fatalf("shape %v but %d values", a.Shape, len(a.Values))
		}
	})
}

func TestLoadNPYMissing(t *testing.T) {
	_, err := LoadNPY(filepath.Join(t.TempDir(), "nope.npy"))
	if err == nil || !strings.Contains(err.Error(), "nope.npy") {
		t.Errorf("got %v, want an error naming the file", err)
	}
}

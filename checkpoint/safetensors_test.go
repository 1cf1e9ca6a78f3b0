package checkpoint

import (
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ddpm-go/ddpm/tensor"
)

// rawFile builds a safetensors file from a literal header and data, for the malformed-input cases.
func rawFile(header string, data []byte) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	b = append(b, header...)
	return append(b, data...)
}

func TestRoundTrip(t *testing.T) {
	ts := []Tensor{
		{Name: "a.weight", Shape: []int{2, 3}, Data: []float32{1, -2, 3.5, float32(math.Inf(1)), 0, -0.125}},
		{Name: "b", Shape: []int{}, Data: []float32{42}},
		{Name: "empty", Shape: []int{0, 4}, Data: []float32{}},
	}
	meta := map[string]string{"config": `{"name":"x"}`, "step": "7"}
	var buf bytes.Buffer
	if err := Encode(&buf, ts, meta); err != nil {
		t.Fatal(err)
	}
	if hl := binary.LittleEndian.Uint64(buf.Bytes()); (8+hl)%8 != 0 {
		t.Errorf("data section starts at %d, want 8-byte aligned", 8+hl)
	}
	f, err := Decode(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Tensors) != len(ts) || f.Metadata["config"] != meta["config"] || f.Metadata["step"] != "7" {
		t.Fatalf("decoded %+v", f)
	}
	for _, want := range ts {
		got, ok := f.Lookup(want.Name)
		if !ok {
			t.Fatalf("missing %s", want.Name)
		}
		if len(got.Shape) != len(want.Shape) || len(got.Data) != len(want.Data) {
			t.Fatalf("%s: got %v %v", want.Name, got.Shape, got.Data)
		}
		for i := range want.Data {
			if math.Float32bits(got.Data[i]) != math.Float32bits(want.Data[i]) {
				t.Errorf("%s[%d] = %v, want %v", want.Name, i, got.Data[i], want.Data[i])
			}
		}
	}
}

// TestReadPython reads a file written by scripts/torch/sftensors.py and checks values torch produced.
func TestReadPython(t *testing.T) {
	f, err := ReadFile("../nn/testdata/adamw_fixture.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	a, ok := f.Lookup("w0.a")
	if !ok || len(a.Shape) != 2 || a.Shape[0] != 3 || a.Shape[1] != 4 || len(a.Data) != 12 {
		t.Fatalf("w0.a = %+v", a)
	}
	if f.Metadata["lr"] != "0.01" {
		t.Errorf("metadata %v", f.Metadata)
	}
}

func TestBF16(t *testing.T) {
	// bf16 is the top half of a float32: 1.5 = 0x3FC0, -2 = 0xC000.
	data := []byte{0xC0, 0x3F, 0x00, 0xC0}
	f, err := Decode(rawFile(`{"x":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]}}`, data))
	if err != nil {
		t.Fatal(err)
	}
	if got := f.Tensors[0].Data; got[0] != 1.5 || got[1] != -2 {
		t.Errorf("got %v, want [1.5 -2]", got)
	}
}

func TestDecodeErrors(t *testing.T) {
	eight := make([]byte, 8)
	cases := []struct {
		name string
		file []byte
		want string
	}{
		{"empty", nil, "truncated"},
		{"short length", []byte{1, 2, 3}, "truncated"},
		{"huge header length", binary.LittleEndian.AppendUint64(nil, 1<<40), "exceeds"},
		{"header past end", append(binary.LittleEndian.AppendUint64(nil, 100), "{}"...), "truncated"},
		{"not json", rawFile(`{"x":`, nil), "not JSON"},
		{"not object", rawFile(`[1,2]`, nil), "not a JSON object"},
		{"trailing", rawFile(`{} {}`, nil), "trailing"},
		{"duplicate", rawFile(`{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"x":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, eight), "duplicate"},
		{"dtype", rawFile(`{"x":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}`, eight), `dtype "F16"`},
		{"no shape", rawFile(`{"x":{"dtype":"F32","data_offsets":[0,4]}}`, eight), "no shape"},
		{"negative dim", rawFile(`{"x":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}`, eight), "bad shape"},
		{"size mismatch", rawFile(`{"x":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}`, eight), "needs 12 bytes"},
		{"out of range", rawFile(`{"x":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}`, eight), "outside"},
		{"reversed", rawFile(`{"x":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}}`, eight), "end before"},
		{"overlap", rawFile(`{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"y":{"dtype":"F32","shape":[1],"data_offsets":[2,6]}}`, eight), "overlap"},
		{"fractional offset", rawFile(`{"x":{"dtype":"F32","shape":[1],"data_offsets":[0.5,4.5]}}`, eight), "outside"},
		{"overflowing shape", rawFile(`{"x":{"dtype":"F32","shape":[4,4611686018427387904],"data_offsets":[0,8]}}`, eight), "shape"},
		{"bad metadata", rawFile(`{"__metadata__":{"a":1}}`, nil), "__metadata__"},
		{"empty name", rawFile(`{"":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, eight), "empty name"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Decode(c.file)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Decode error = %v, want one containing %q", err, c.want)
			}
		})
	}
}

func TestReadFileNamesFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.safetensors")
	if err := os.WriteFile(path, []byte{1, 0, 0}, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFile(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("error %v does not name %s", err, path)
	}
}

func TestTruncatedWrittenFile(t *testing.T) {
	var buf bytes.Buffer
	if err := Encode(&buf, []Tensor{{Name: "w", Shape: []int{10}, Data: make([]float32, 10)}}, nil); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	for cut := 0; cut < len(b); cut++ {
		if _, err := Decode(b[:cut]); err == nil {
			t.Fatalf("file cut to %d of %d bytes decoded without error", cut, len(b))
		}
	}
}

func params() []*tensor.Param {
	a := tensor.NewParam("layer.weight", 2, 3)
	b := tensor.NewParam("layer.bias", 2)
	for i := range a.W {
		a.W[i] = float32(i) - 2.5
	}
	b.W[0], b.W[1] = 7, -7
	return []*tensor.Param{a, b}
}

func TestSaveLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m.safetensors")
	src := params()
	ema := params()
	ema[0].W[0] = 100
	if err := Save(path, map[string]string{"k": "v"}, Group{"", src}, Group{"ema.", ema}); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries after an atomic write, want 1", len(entries))
	}
	dst, dstEMA := params(), params()
	for _, p := range append(dst, dstEMA...) {
		clear(p.W)
	}
	meta, err := Load(path, Group{"", dst}, Group{"ema.", dstEMA})
	if err != nil {
		t.Fatal(err)
	}
	if meta["k"] != "v" {
		t.Errorf("meta %v", meta)
	}
	for i := range src {
		if !slicesEqual(dst[i].W, src[i].W) || !slicesEqual(dstEMA[i].W, ema[i].W) {
			t.Errorf("%s: loaded %v / %v", src[i].Name, dst[i].W, dstEMA[i].W)
		}
		if dst[i].Version != 1 {
			t.Errorf("%s: Version %d after load, want 1", dst[i].Name, dst[i].Version)
		}
	}

	// Extra tensors: Load refuses, LoadSome takes the EMA group only.
	if _, err := Load(path, Group{"", params()}); err == nil || !strings.Contains(err.Error(), `unexpected tensor "ema.`) {
		t.Errorf("Load with extra tensors: %v", err)
	}
	only := params()
	if _, err := LoadSome(path, Group{"ema.", only}); err != nil || only[0].W[0] != 100 {
		t.Errorf("LoadSome: %v, w[0]=%v", err, only[0].W[0])
	}

	// Missing tensor and shape mismatch name the file and the tensor and leave the params untouched.
	missing := append(params(), tensor.NewParam("other", 1))
	if _, err := LoadSome(path, Group{"", missing}); err == nil || !strings.Contains(err.Error(), `missing tensor "other"`) || !strings.Contains(err.Error(), path) {
		t.Errorf("missing: %v", err)
	}
	if missing[0].Version != 0 {
		t.Error("a failed load modified a parameter")
	}
	wrong := []*tensor.Param{tensor.NewParam("layer.weight", 3, 2), tensor.NewParam("layer.bias", 2)}
	if _, err := LoadSome(path, Group{"", wrong}); err == nil || !strings.Contains(err.Error(), `"layer.weight" has shape [2 3], the model wants [3 2]`) {
		t.Errorf("shape: %v", err)
	}
}

func TestWriteFileFailureLeavesOld(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m.safetensors")
	if err := Save(path, nil, Group{"", params()}); err != nil {
		t.Fatal(err)
	}
	// An invalid tensor fails inside Encode: the old file must survive and no temp file remain.
	bad := []Tensor{{Name: "x", Shape: []int{3}, Data: []float32{1}}}
	if err := WriteFile(path, bad, nil); err == nil {
		t.Fatal("want error for inconsistent tensor")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("%d entries left in dir, want 1", len(entries))
	}
	if _, err := Load(path, Group{"", params()}); err != nil {
		t.Errorf("old file damaged: %v", err)
	}
}

func slicesEqual(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// FuzzDecode feeds arbitrary bytes to the header parser and decoder: they must return an error or a
// consistent file, never panic or allocate without bound.
func FuzzDecode(f *testing.F) {
	var buf bytes.Buffer
	Encode(&buf, []Tensor{{Name: "a", Shape: []int{2}, Data: []float32{1, 2}}, {Name: "b", Shape: []int{}, Data: []float32{3}}}, map[string]string{"m": "x"})
	f.Add(buf.Bytes())
	f.Add(rawFile(`{"x":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]}}`, []byte{1, 2, 3, 4}))
	f.Add(rawFile(`{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"y":{"dtype":"F32","shape":[1],"data_offsets":[2,6]}}`, make([]byte, 8)))
	for _, b := range headerEdges() {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		file, err := Decode(b)
		if err != nil {
			return
		}
		for _, ts := range file.Tensors {
			if tensor.Numel(ts.Shape) != len(ts.Data) {
				t.Fatalf("tensor %q: shape %v but %d values", ts.Name, ts.Shape, len(ts.Data))
			}
		}
	})
}

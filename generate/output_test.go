package generate

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/imageio"
	"github.com/ddpm-go/ddpm/tensor"
)

// Outputs streamed batch by batch hold the bytes of one unbatched Sample call: the .npz and each
// PNG, with the grid and GIF written at Close.
func TestOutputs(t *testing.T) {
	m := tinyModel(t, tensor.NewReference(1), 1)
	sampler, _, err := SamplerSpec{Name: "ddim", Steps: 3}.New(m.Schedule)
	if err != nil {
		t.Fatal(err)
	}
	want, err := m.Sample(context.Background(), sampler, Job{N: 3, Start: 5, Seed: 2})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	o := &Outputs{Grid: filepath.Join(dir, "g.png"), Dir: dir, NPZ: filepath.Join(dir, "s.npz"), GIF: filepath.Join(dir, "r.gif"), GIFN: 2}
	steps := 0
	job := Job{N: 3, Start: 5, Seed: 2, Batch: 2, Step: func(Batch, diffusion.Step) error { steps++; return nil }}
	if err := o.Open(m, &job); err != nil {
		t.Fatal(err)
	}
	defer o.Abort()
	if x, err := m.Sample(context.Background(), sampler, job); err != nil || x != nil {
		t.Fatalf("emitting job returned %d values, %v", len(x), err)
	}
	wrote, err := o.Close()
	if err != nil || len(wrote) != 4 || steps != 2*3 {
		t.Fatalf("wrote %q, %v; %d steps seen through the GIF's hook, want 6", wrote, err, steps)
	}
	z, err := imageio.LoadNPZ(o.NPZ)
	if err != nil {
		t.Fatal(err)
	}
	u8 := imageio.ToUint8(nil, want)
	for i, v := range z["arr_0"].Values { // one channel: NHWC is NCHW
		if v != float64(u8[i]) {
			t.Fatalf("npz value %d = %v, want %d", i, v, u8[i])
		}
	}
	for _, name := range []string{"000005.png", "000007.png", "g.png", "r.gif"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Error(err)
		}
	}
}

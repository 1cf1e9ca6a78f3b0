package generate

import (
	"context"
	"fmt"
	"math"
	"testing"

	"github.com/ddpm-go/ddpm/engine"
	"github.com/ddpm-go/ddpm/nn"
)

// BenchmarkChunk measures UNet-S inference throughput per network-call size on the default engine,
// which is what Job.Chunk fixes (`ddpm sample` uses 32 on oneDNN). On the shared 2-core machine
// (load ~12) one image per call was clearly the slowest (4-23 img/s, bf16), but 16, 32 and 64 ranged
// over 16-117 img/s from run to run: rerun on a quiet machine before changing the default.
func BenchmarkChunk(b *testing.B) {
	be, err := engine.New("auto", "auto", 0)
	if err != nil {
		b.Fatal(err)
	}
	defer engine.Close(be)
	cfg, _ := nn.Named("unet-s")
	u, err := nn.New(cfg, be, 1)
	if err != nil {
		b.Fatal(err)
	}
	dim := cfg.InChannels * cfg.ImageSize * cfg.ImageSize
	for _, k := range []int{1, 8, 16, 32, 64} {
		b.Run(fmt.Sprintf("%s/k=%d", engine.Describe(be), k), func(b *testing.B) {
			x, out := make([]float64, k*dim), make([]float64, k*dim)
			for i := range x {
				x[i] = math.Sin(float64(i))
			}
			for b.Loop() {
				if err := u.Predict(context.Background(), x, k, dim, 500, out); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(k*b.N)/b.Elapsed().Seconds(), "img/s")
		})
	}
}

package generate_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"

	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/engine"
	"github.com/ddpm-go/ddpm/generate"
	"github.com/ddpm-go/ddpm/imageio"
	"github.com/ddpm-go/ddpm/schedule"
)

// A job of 6 samples split in two, as two processes would run it with --start, gives the same
// samples as one run: each image's noise comes from the seed and its global index only. The exact
// Gaussian-mixture oracle stands in for a trained network.
func ExampleRun() {
	s, _ := schedule.New("linear", 1000, false)
	m := &diffusion.Mixture{Weights: []float64{0.5, 0.5}, Means: [][]float64{{-1}, {1}}, Stds: []float64{0.1, 0.1}}
	if err := m.Validate(); err != nil {
		panic(err)
	}
	oracle := &diffusion.Oracle{Mixture: m, Schedule: s, Output: diffusion.Eps}
	sampler, spec, err := generate.SamplerSpec{Name: "ddpm", Steps: 100}.New(s)
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	whole, _ := generate.Run(ctx, sampler, oracle, diffusion.Eps, 1, generate.Job{N: 6, Seed: 7, Batch: 4})
	first, _ := generate.Run(ctx, sampler, oracle, diffusion.Eps, 1, generate.Job{N: 3, Seed: 7, Batch: 2})
	second, _ := generate.Run(ctx, sampler, oracle, diffusion.Eps, 1, generate.Job{N: 3, Start: 3, Seed: 7, Batch: 1})
	fmt.Println(spec)
	fmt.Println(reflect.DeepEqual(whole, append(first, second...)))
	// Output:
	// ddpm-100 beta variance linspace
	// true
}

// Batches shows how a job is cut into sampler calls; each call gets its first global index.
func ExampleJob_Batches() {
	for _, b := range (generate.Job{N: 5, Start: 100, Batch: 2}).Batches() {
		fmt.Printf("batch %d/%d: images %d..%d\n", b.Index+1, b.Count, b.Start, b.Start+b.N-1)
	}
	// Output:
	// batch 1/3: images 100..101
	// batch 2/3: images 102..103
	// batch 3/3: images 104..104
}

// The shipped MNIST model, 16 digits with DDIM in 20 steps, as a PNG grid: the whole of using ddpm
// from Go (examples/sample is the same as a module of its own).
func ExampleLoadShipped() {
	be, err := engine.New("auto", "auto", 0)
	if err != nil {
		panic(err)
	}
	defer engine.Close(be)
	m, err := generate.LoadShipped(be)
	if err != nil {
		panic(err)
	}
	ddim, spec, err := generate.SamplerSpec{Name: "ddim", Steps: 20}.New(m.Schedule)
	if err != nil {
		panic(err)
	}
	x, err := m.Sample(context.Background(), ddim, generate.Job{N: 16, Seed: 1})
	if err != nil {
		panic(err)
	}
	c, h, w := m.Shape()
	grid := filepath.Join(os.TempDir(), "ddpm-example-digits.png")
	if err := imageio.WriteGrid(grid, x, 16, c, h, w, 4); err != nil {
		panic(err)
	}
	defer os.Remove(grid)
	fmt.Printf("%s: %d images of %dx%dx%d\n", spec, len(x)/m.Dim(), c, h, w)
	// Output:
	// ddim-20 eta=0 linspace: 16 images of 1x28x28
}

// Command sample draws 16 digits, 0 to 9 and 0 to 5, from ddpm's shipped class-conditional MNIST
// model with DDIM in 20 steps and classifier-free guidance, and writes them as a 4x4 grid to
// digits.png: ddpm used as a library from another module.
package main

import (
	"context"
	"log"

	"github.com/ddpm-go/ddpm/engine"
	"github.com/ddpm-go/ddpm/generate"
	"github.com/ddpm-go/ddpm/imageio"
)

func main() {
	be, err := engine.New("auto", "auto", 0) // oneDNN where built with cgo; bf16 where the CPU has it
	check(err)
	defer engine.Close(be)
	m, err := generate.LoadShipped(be) // the MNIST model compiled into the module
	check(err)
	ddim, _, err := generate.SamplerSpec{Name: "ddim", Steps: 20}.New(m.Schedule)
	check(err)
	labels := make([]int, 16) // image i is a drawing of digit i mod 10
	for i := range labels {
		labels[i] = i % 10
	}
	job := generate.Job{N: 16, Seed: 1, Labels: labels, Guidance: generate.DefaultGuidance}
	x, err := m.Sample(context.Background(), ddim, job)
	check(err)
	c, h, w := m.Shape()
	check(imageio.WriteGrid("digits.png", x, 16, c, h, w, 4))
	log.Printf("wrote digits.png: digits 0-9 and 0-5 from %s, DDIM-20, guidance s = %g, on %s", m.Source, job.Guidance, engine.Describe(be))
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}

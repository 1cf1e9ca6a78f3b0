// Command sample draws 16 digits from ddpm's shipped MNIST model with DDIM in 20 steps and writes
// them as a 4x4 grid to digits.png: ddpm used as a library from another module.
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
	x, err := m.Sample(context.Background(), ddim, generate.Job{N: 16, Seed: 1})
	check(err)
	c, h, w := m.Shape()
	check(imageio.WriteGrid("digits.png", x, 16, c, h, w, 4))
	log.Printf("wrote digits.png: 16 samples of %s, DDIM-20, on %s", m.Source, engine.Describe(be))
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}

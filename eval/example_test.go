package eval_test

import (
	"fmt"

	"github.com/ddpm-go/ddpm/eval"
)

// Two 1-D feature sets with equal spread whose means differ by 2: the Frechet distance is the squared
// mean difference, 4.
func ExampleFID() {
	real := []float64{-1, 0, 1, -1, 0, 1}
	fake := []float64{1, 2, 3, 1, 2, 3}
	d, err := eval.FID(real, 6, fake, 6, 1)
	if err != nil {
		panic(err)
	}
	fmt.Printf("%.6f\n", d)
	// Output: 4.000000
}

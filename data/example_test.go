package data_test

import (
	"encoding/json"
	"fmt"

	"github.com/ddpm-go/ddpm/data"
)

// A training loop saves the Batcher's state with each checkpoint; a resumed run restores it and
// draws exactly the batches the uninterrupted run would have drawn.
func ExampleBatcher_Restore() {
	set, _ := data.NewSet("five", 5, 1, 1, 1, []uint8{0, 64, 128, 192, 255}, []uint8{0, 1, 2, 3, 4})
	x, labels := make([]float32, 2), make([]uint8, 2)

	run, _ := data.NewBatcher(set, 2, 1, false)
	for range 3 {
		run.Next(x, labels)
	}
	saved, _ := json.Marshal(run.State()) // goes into the checkpoint
	run.Next(x, labels)
	fmt.Println("uninterrupted 4th batch:", labels)

	var st data.BatchState
	json.Unmarshal(saved, &st)
	resumed, _ := data.NewBatcher(set, 2, 0, false)
	if err := resumed.Restore(st); err != nil {
		fmt.Println(err)
	}
	resumed.Next(x, labels)
	fmt.Println("resumed 4th batch:", labels)
	fmt.Println("state:", string(saved))
	// Output:
	// uninterrupted 4th batch: [0 2]
	// resumed 4th batch: [0 2]
	// state: {"seed":1,"flip":false,"n":5,"epoch":1,"pos":1}
}

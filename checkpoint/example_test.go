package checkpoint_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/ddpm-go/ddpm/checkpoint"
	"github.com/ddpm-go/ddpm/nn"
	"github.com/ddpm-go/ddpm/tensor"
)

// Example saves a unet-s with its config and rebuilds it from the file alone, as a sampler or the
// server would.
func Example() {
	dir, _ := os.MkdirTemp("", "ckpt")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "unet-s.safetensors")

	be := tensor.NewReference(1)
	cfg, _ := nn.Named("unet-s")
	model, _ := nn.New(cfg, be, 42)
	if err := checkpoint.SaveModel(path, model, map[string]string{"dataset": "mnist"}); err != nil {
		fmt.Println(err)
		return
	}

	loaded, meta, err := checkpoint.LoadModel(path, be, "")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(loaded.Cfg.Name, loaded.NumParams(), meta["dataset"])
	fmt.Println(loaded.Params()[0].Name, loaded.Params()[0].W[0] == model.Params()[0].W[0])
	// Output:
	// unet-s 1741025 mnist
	// temb.0.weight true
}

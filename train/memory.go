package train

import (
	"fmt"

	"github.com/ddpm-go/ddpm/internal/sysmem"
	"github.com/ddpm-go/ddpm/nn"
)

// CheckMemory refuses a run whose forward pass alone, at its batch, needs more than the
// machine's memory, sized from the model config without building the network: Run sizes a
// step by running the network on one image, which for a config of small weights over huge images
// (16384x16384) is itself tens of gigabytes. A training step needs more than a forward pass (the
// gradients, the optimizer's state), which Run then checks.
func CheckMemory(cfg Config) error {
	mcfg, err := nn.LoadConfig(cfg.Model)
	if err != nil {
		return err
	}
	need, err := nn.InferenceBytes(mcfg, cfg.Batch)
	if err != nil {
		return err
	}
	return sysmem.Check(fmt.Sprintf("training %s (%dx%dx%d images) at --batch %d", mcfg.Name, mcfg.InChannels, mcfg.ImageSize, mcfg.ImageSize, cfg.Batch), need)
}

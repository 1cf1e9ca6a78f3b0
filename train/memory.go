package train

import (
	"fmt"

	"github.com/ddpm-go/ddpm/data"
	"github.com/ddpm-go/ddpm/internal/sysmem"
	"github.com/ddpm-go/ddpm/nn"
)

// CheckMemory refuses a run whose forward pass alone, at its batch, needs more than the
// machine's memory, sized from the model config without building the network: Run sizes a
// step by running the network on one image, which for a config of small weights over huge images
// (16384x16384) is itself tens of gigabytes. A training step needs more than a forward pass (the
// gradients, the optimizer's state), which Run then checks. A built-in config takes its shape from
// the data, so it is checked by Run once the data is loaded.
func CheckMemory(cfg Config) error {
	if nn.IsBuiltIn(cfg.Model) {
		return nil
	}
	mcfg, err := nn.LoadConfig(cfg.Model)
	if err != nil {
		return err
	}
	return checkMemory(mcfg, cfg.Batch)
}

func checkMemory(mcfg nn.Config, batch int) error {
	need, err := nn.InferenceBytes(mcfg, batch)
	if err != nil {
		return err
	}
	return sysmem.Check(fmt.Sprintf("training %s (%dx%dx%d images) at --batch %d", mcfg.Name, mcfg.InChannels, mcfg.ImageSize, mcfg.ImageSize, batch), need)
}

// OpenData loads the training images c names. --size and --channels left at 0 mean the data's own:
// a built-in dataset's shape, a folder's images at the size of the built-in configs (see
// data.Open); with a model config file, its image_size and in_channels.
func (c Config) OpenData() (*data.Set, error) {
	size, ch := c.Size, c.Channels
	if !nn.IsBuiltIn(c.Model) {
		mcfg, err := nn.LoadConfig(c.Model)
		if err != nil {
			return nil, err
		}
		if size == 0 {
			size = mcfg.ImageSize
		}
		if ch == 0 {
			ch = mcfg.InChannels
		}
	}
	return data.Open(c.Data, c.DataDir, data.Train, size, ch)
}

// ModelFor is the network c trains on set: a built-in config (or auto) adapted to the images' shape
// by nn.ForData, or a config file taken as written, which must match the images.
func (c Config) ModelFor(set *data.Set) (nn.Config, error) {
	if nn.IsBuiltIn(c.Model) {
		if set.H != set.W {
			return nn.Config{}, fmt.Errorf("data %s has %dx%d images; the models take square ones", c.Data, set.H, set.W)
		}
		return nn.ForData(c.Model, set.C, set.H)
	}
	mcfg, err := nn.LoadConfig(c.Model)
	if err != nil {
		return nn.Config{}, err
	}
	if set.C != mcfg.InChannels || set.H != mcfg.ImageSize || set.W != mcfg.ImageSize {
		return nn.Config{}, fmt.Errorf("data %s has %dx%dx%d images, model %s takes %dx%dx%d",
			c.Data, set.C, set.H, set.W, mcfg.Name, mcfg.InChannels, mcfg.ImageSize, mcfg.ImageSize)
	}
	return mcfg, nil
}

// Package models holds the model that ships with ddpm: the EMA weights of a UNet trained on MNIST by
// `ddpm train` (see mnist/PROVENANCE.md for how), compiled into the binary so that `ddpm sample` with
// no --ckpt draws digits on a fresh machine without any download or file lookup.
//
// The files live in models/mnist/: the weights as a safetensors file whose metadata holds the model
// config and the sampling keys of package train (schedule, timesteps, zero_snr, prediction), named
// model.safetensors by preference, and a PROVENANCE.md.
package models

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
)

// mnist/README.md keeps the directory (and so this package) buildable before any weights exist; a
// pattern naming a missing or empty directory is a compile error.
//
//go:embed mnist
var files embed.FS

// Dir is where the shipped model's files live, relative to the repository root.
const Dir = "models/mnist"

// ErrNone means this build has no shipped model (models/mnist held no weights when it was built).
var ErrNone = errors.New("no shipped model in this build: " + Dir + " held no .safetensors file when ddpm was built (train one with `ddpm train` and pass --ckpt)")

// MNIST returns the shipped model's weights file: its name under the repository root and its bytes.
func MNIST() (name string, weights []byte, err error) {
	entries, err := fs.ReadDir(files, "mnist")
	if err != nil {
		return "", nil, ErrNone
	}
	var candidates []string
	for _, e := range entries {
		if !e.IsDir() && strings.HasSuffix(e.Name(), ".safetensors") {
			candidates = append(candidates, e.Name())
		}
	}
	pick := ""
	for _, want := range []string{"model.safetensors", "model-ema.safetensors"} {
		for _, c := range candidates {
			if c == want && pick == "" {
				pick = c
			}
		}
	}
	if pick == "" {
		switch len(candidates) {
		case 0:
			return "", nil, ErrNone
		case 1:
			pick = candidates[0]
		default:
			return "", nil, fmt.Errorf("shipped model: %s holds %d weight files (%s) and none is model.safetensors", Dir, len(candidates), strings.Join(candidates, ", "))
		}
	}
	weights, err = files.ReadFile(path.Join("mnist", pick))
	if err != nil {
		return "", nil, fmt.Errorf("shipped model: %w", err)
	}
	return path.Join(Dir, pick), weights, nil
}

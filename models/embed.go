// Package models holds the model that ships with ddpm: the EMA weights of a UNet trained on MNIST by
// `ddpm train` (see mnist/PROVENANCE.md for how), compiled into the binary so that `ddpm sample` with
// no --ckpt draws digits on a fresh machine without any download or file lookup.
//
// Only the weights are embedded: a safetensors file whose metadata holds the model config and the
// diffusion setup (checkpoint.Setup). The grid, loss plot and provenance beside it document the
// model in the repository and stay out of the binary.
package models

import _ "embed" // the shipped weights

//go:embed mnist/model-ema.safetensors
var mnist []byte

// MNISTName is the shipped weights file, relative to the repository root.
const MNISTName = "models/mnist/model-ema.safetensors"

// MNIST returns the shipped model's weights file: its name under the repository root and its bytes.
func MNIST() (name string, weights []byte) { return MNISTName, mnist }

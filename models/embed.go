// Package models holds the model that ships with ddpm: the EMA weights of a class-conditional UNet
// trained on MNIST by `ddpm train --cond class` (see mnist-cond/PROVENANCE.md for how), compiled into
// the binary so that `ddpm sample` with no --ckpt draws digits, any digit asked for with --class, on
// a fresh machine without any download or file lookup. Without --class it draws from the model's
// unconditional branch. The unconditional model it replaced stays in mnist/ (--ckpt models/mnist).
//
// Only the weights are embedded: a safetensors file whose metadata holds the model config and the
// diffusion setup (checkpoint.Setup). The grid, loss plot and provenance beside it document the
// model in the repository and stay out of the binary.
package models

import _ "embed" // the shipped weights

//go:embed mnist-cond/model-ema.safetensors
var mnist []byte

// MNISTName is the shipped weights file, relative to the repository root.
const MNISTName = "models/mnist-cond/model-ema.safetensors"

// MNIST returns the shipped model's weights file: its name under the repository root and its bytes.
func MNIST() (name string, weights []byte) { return MNISTName, mnist }

// Package models holds the model that ships with ddpm: the EMA weights of a class-conditional UNet
// trained on MNIST by `ddpm train --cond class` (see mnist-cond/PROVENANCE.md for how), compiled into
// the binary so that `ddpm sample` with no --ckpt draws digits, any digit asked for with --class, on
// a fresh machine without any download or file lookup. Without --class it draws from the model's
// unconditional branch. The unconditional model it replaced stays in mnist/ (--ckpt models/mnist).
//
// Beside it ships the 4-step student progressively distilled from the unconditional model
// (mnist-distilled/steps-4, docs/fewstep.md): the server offers it as the instant option, a sample
// in four network calls instead of fifty.
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

//go:embed mnist-distilled/steps-4/model-ema.safetensors
var instant []byte

// InstantName is the shipped 4-step student's weights file, relative to the repository root.
const InstantName = "models/mnist-distilled/steps-4/model-ema.safetensors"

// MNISTInstant returns the shipped 4-step student's weights file: its name and its bytes.
func MNISTInstant() (name string, weights []byte) { return InstantName, instant }

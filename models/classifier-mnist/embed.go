// Package classifiermnist holds the MNIST classifier whose features define the project's FID on
// MNIST (see PROVENANCE.md), compiled into the binary so `ddpm eval fid --data mnist` needs no file.
package classifiermnist

import _ "embed"

//go:embed model.safetensors
var weights []byte

// Weights returns the safetensors bytes of the classifier (package classifier reads them) and a name
// for logs.
func Weights() (name string, b []byte) { return "models/classifier-mnist/model.safetensors", weights }

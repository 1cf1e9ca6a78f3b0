// Package classifierfashion holds the Fashion-MNIST classifier whose features define the project's
// FID on Fashion-MNIST (see PROVENANCE.md), compiled into the binary so `ddpm eval fid --data
// fashion` needs no file.
package classifierfashion

import _ "embed"

//go:embed model.safetensors
var weights []byte

// Weights returns the safetensors bytes of the classifier (package classifier reads them) and a name
// for logs.
func Weights() (name string, b []byte) { return "models/classifier-fashion/model.safetensors", weights }

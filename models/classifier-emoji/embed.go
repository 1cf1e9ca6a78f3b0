// Package classifieremoji holds the emoji category classifier whose features define the project's
// FID on emoji (see PROVENANCE.md), compiled into the binary so `ddpm eval fid --data emoji` needs
// no file.
package classifieremoji

import _ "embed"

//go:embed model.safetensors
var weights []byte

// Weights returns the safetensors bytes of the classifier (package classifier reads them) and a name
// for logs.
func Weights() (name string, b []byte) { return "models/classifier-emoji/model.safetensors", weights }

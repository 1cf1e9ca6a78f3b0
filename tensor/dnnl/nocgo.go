//go:build !cgo

package dnnl

import (
	"errors"

	"github.com/ddpm-go/ddpm/tensor"
)

// ErrUnavailable is returned by New in builds without cgo.
var ErrUnavailable = errors.New("dnnl: backend unavailable: built without cgo (CGO_ENABLED=0)")

// Available reports whether this build contains the oneDNN backend.
func Available() bool { return false }

// New always fails without cgo; callers fall back to tensor.NewReference.
func New(opts Options) (tensor.Backend, error) {
	if _, _, err := opts.resolve(); err != nil {
		return nil, err
	}
	return nil, ErrUnavailable
}

package models

import (
	"strings"
	"testing"

	"github.com/ddpm-go/ddpm/checkpoint"
)

// The shipped weights must decode and carry their model config, since nothing else
// travels with the binary.
func TestMNIST(t *testing.T) {
	name, w := MNIST()
	if !strings.HasPrefix(name, "models/mnist-cond/") {
		t.Errorf("name %q not under models/mnist-cond", name)
	}
	f, err := checkpoint.Decode(w)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if _, ok := f.Metadata[checkpoint.MetaConfig]; !ok {
		t.Errorf("%s has no model config in its metadata", name)
	}
}

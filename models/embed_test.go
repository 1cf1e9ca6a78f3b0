package models

import (
	"errors"
	"strings"
	"testing"

	"github.com/ddpm-go/ddpm/checkpoint"
)

// The shipped weights, when present, must decode and carry their model config, since nothing else
// travels with the binary.
func TestMNIST(t *testing.T) {
	name, w, err := MNIST()
	if errors.Is(err, ErrNone) {
		t.Skip("no shipped model in this build")
	}
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(name, Dir+"/") {
		t.Errorf("name %q not under %s", name, Dir)
	}
	f, err := checkpoint.Decode(w)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if _, ok := f.Metadata[checkpoint.MetaConfig]; !ok {
		t.Errorf("%s has no model config in its metadata", name)
	}
}

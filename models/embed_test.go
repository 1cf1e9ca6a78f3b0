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

// The instant student must decode as a student: its metadata names the four steps it was
// distilled for, which is what makes the server and `ddpm sample` walk its grid.
func TestMNISTInstant(t *testing.T) {
	name, w := MNISTInstant()
	f, err := checkpoint.Decode(w)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if got := f.Metadata[checkpoint.MetaDistilledSteps]; got != "4" {
		t.Errorf("%s: distilled_steps %q, want 4", name, got)
	}
}

//go:build !cgo

package dnnl

import (
	"errors"
	"testing"
)

func TestUnavailableWithoutCgo(t *testing.T) {
	if Available() {
		t.Fatal("Available() is true in a build without cgo")
	}
	if _, err := New(Options{}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("New: %v, want ErrUnavailable", err)
	}
}

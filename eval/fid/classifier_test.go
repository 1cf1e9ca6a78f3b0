package fid

import (
	"testing"

	"github.com/ddpm-go/ddpm/classifier"
)

// TestTrainingBytes: a training step of the default classifier at batch 128 is sized between 100
// MiB and 1 GiB.
func TestTrainingBytes(t *testing.T) {
	if b := trainingBytes(classifier.Default(), 128); b < 100<<20 || b > 1<<30 {
		t.Errorf("batch 128: %.0f MiB", b/(1<<20))
	}
}

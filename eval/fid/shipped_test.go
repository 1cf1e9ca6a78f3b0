package fid

import (
	"context"
	"math"
	"strconv"
	"testing"

	"github.com/ddpm-go/ddpm/classifier"
	"github.com/ddpm-go/ddpm/data"
	"github.com/ddpm-go/ddpm/engine"
)

// The shipped classifiers score on their test sets what their metadata (and PROVENANCE.md) says, on
// whatever engine this build has: the embedded bytes are the weights that were measured. A kernel
// that rounds differently may flip a prediction or two, hence the tolerance of two test images.
func TestShippedClassifiers(t *testing.T) {
	if testing.Short() {
		t.Skip("scores every test image")
	}
	dir, err := data.DefaultDir()
	if err != nil {
		t.Skip(err)
	}
	be, err := engine.New("auto", "fp32", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer engine.Close(be)
	for _, name := range []string{"mnist", "fashion", "emoji"} {
		src, _ := data.Lookup(name)
		if _, _, err := data.Verify(src, dir); err != nil {
			t.Logf("%s: not fetched (%v); skipped", name, err)
			continue
		}
		net, where, err := LoadClassifier("", name, be)
		if err != nil {
			t.Fatal(err)
		}
		_, b := shipped[name]()
		_, meta, err := classifier.Decode(b, be)
		if err != nil {
			t.Fatal(err)
		}
		want, err := strconv.ParseFloat(meta["test_accuracy"], 64)
		if err != nil {
			t.Fatalf("%s: test_accuracy %q", where, meta["test_accuracy"])
		}
		test, err := data.Load(name, dir, data.Test)
		if err != nil {
			t.Fatal(err)
		}
		acc, err := net.Accuracy(context.Background(), test, 500)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(acc-want) > 2.5/float64(test.N)+5e-5 {
			t.Errorf("%s: test accuracy %.4f, metadata says %.4f", where, acc, want)
		}
		t.Logf("%s: %.4f on %d test images (metadata %.4f)", where, acc, test.N, want)
	}
}

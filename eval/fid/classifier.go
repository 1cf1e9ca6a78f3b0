package fid

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/ddpm-go/ddpm/classifier"
	"github.com/ddpm-go/ddpm/data"
	"github.com/ddpm-go/ddpm/engine"
	"github.com/ddpm-go/ddpm/internal/sysmem"
	classifieremoji "github.com/ddpm-go/ddpm/models/classifier-emoji"
	classifierfashion "github.com/ddpm-go/ddpm/models/classifier-fashion"
	classifiermnist "github.com/ddpm-go/ddpm/models/classifier-mnist"
	"github.com/ddpm-go/ddpm/tensor"
)

// shipped are the classifiers compiled into the binary, by the data set they were trained on.
var shipped = map[string]func() (string, []byte){
	"mnist": classifiermnist.Weights, "fashion": classifierfashion.Weights, "emoji": classifieremoji.Weights,
}

// LoadClassifier loads the weights at path, or the shipped classifier for the data set when path is
// empty, and returns a description of where they came from.
func LoadClassifier(path, dataName string, be tensor.Backend) (*classifier.Net, string, error) {
	if path != "" {
		n, _, err := classifier.Load(path, be)
		return n, path, err
	}
	w, ok := shipped[dataName]
	if !ok {
		return nil, "", fmt.Errorf("no shipped classifier for %q: pass --classifier FILE", dataName)
	}
	name, b := w()
	n, _, err := classifier.Decode(b, be)
	if err != nil {
		return nil, "", fmt.Errorf("shipped %s: %w", name, err)
	}
	return n, name, nil
}

// Trained is what TrainClassifier reports.
type Trained struct {
	Accuracy float64 // on the test set
	TestN    int
	Wall     time.Duration
}

// TrainClassifier trains the feature network of FID (classifier.Default's widths at the data's shape
// and class count, seeded by o.Seed) on the training set of dataName with o, scores it on the test
// set and writes its weights to out with their provenance in the metadata: meta and the data set,
// test accuracy, engine and wall time. dataName is a built-in labelled source with a test split
// (mnist, fashion, emoji).
func TrainClassifier(ctx context.Context, be tensor.Backend, dataName, dataDir, out string, o classifier.TrainOptions, meta map[string]string) (*Trained, error) {
	trainSet, err := data.Load(dataName, dataDir, data.Train)
	if err != nil {
		return nil, err
	}
	if trainSet.Labels == nil || len(trainSet.Classes) < 2 {
		return nil, fmt.Errorf("--data %q has no labels to train a classifier on", dataName)
	}
	cfg := ConfigFor(trainSet)
	if err := sysmem.Check(fmt.Sprintf("training the classifier at --batch %d", o.Batch), trainingBytes(cfg, o.Batch)); err != nil {
		return nil, err
	}
	testSet, err := data.Load(dataName, dataDir, data.Test)
	if err != nil {
		return nil, err
	}
	net, err := classifier.New(cfg, be, o.Seed)
	if err != nil {
		return nil, err
	}
	o.White = whiteBackground(trainSet)
	start := time.Now()
	if err := classifier.Train(ctx, net, trainSet, o); err != nil {
		return nil, err
	}
	acc, err := net.Accuracy(ctx, testSet, 500)
	if err != nil {
		return nil, err
	}
	t := &Trained{Accuracy: acc, TestN: testSet.N, Wall: time.Since(start).Round(time.Second)}
	m := map[string]string{"data": dataName, "test_accuracy": fmt.Sprintf("%.4f", acc), "engine": engine.Describe(be), "wall": t.Wall.String()}
	for k, v := range meta {
		m[k] = v
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return nil, err
	}
	return t, classifier.Save(out, net, m)
}

// whiteBackground reports whether set's images are mostly drawn on white (emoji) rather than black
// (digits, clothes), from the mean of their corner pixels: what a shift should uncover.
func whiteBackground(set *data.Set) bool {
	var sum float64
	last := set.H*set.W - 1
	for i := range set.N {
		for ch := range set.C {
			p := set.Image(i)[ch*set.H*set.W:]
			sum += float64(p[0] + p[set.W-1] + p[last-set.W+1] + p[last])
		}
	}
	return sum > 0
}

// ConfigFor is the classifier for set's images and classes: classifier.Default's widths, groups and
// features, the shipped MNIST and Fashion-MNIST classifiers' network, at set's shape.
func ConfigFor(set *data.Set) classifier.Config {
	c := classifier.Default()
	c.InChannels, c.ImageSize, c.Classes = set.C, set.H, len(set.Classes)
	return c
}

// trainingBytes estimates a training step of the classifier at batch n as nn.TrainingBytes
// does the UNet's: per image every convolution's output, kept for the backward pass with its norm
// and activation and met again as a gradient (eight times), and the batch's input with its
// augmented copy. A batch of ten million images died out of memory allocating its input.
func trainingBytes(c classifier.Config, n int) float64 {
	res := c.ImageSize
	per := 2 * float64(c.InChannels*res*res)
	for i, w := range c.Widths {
		per += 8 * float64(w*res*res)
		if i < len(c.Widths)-1 {
			res = (res + 1) / 2
			per += 8 * float64(w*res*res)
		}
	}
	return 4 * float64(n) * per
}

// ClassifierAccuracy is the test accuracy of the classifier LoadClassifier finds for path and
// dataName: a feature network that misreads the test set would make FID measure the wrong thing.
// It returns the accuracy, where the weights came from and the number of test images.
func ClassifierAccuracy(ctx context.Context, be tensor.Backend, path, dataName, dataDir string) (acc float64, src string, n int, err error) {
	net, src, err := LoadClassifier(path, dataName, be)
	if err != nil {
		return 0, "", 0, err
	}
	testSet, err := data.Load(dataName, dataDir, data.Test)
	if err != nil {
		return 0, "", 0, err
	}
	acc, err = net.Accuracy(ctx, testSet, 500)
	return acc, src, testSet.N, err
}

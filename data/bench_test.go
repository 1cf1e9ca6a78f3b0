package data

import (
	"image"
	"image/color"
	"testing"
)

func BenchmarkLoadMNISTTrain(b *testing.B) {
	dir := realCacheB(b, "mnist")
	for b.Loop() {
		if _, err := Load("mnist", dir, Train); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLoadEmoji(b *testing.B) {
	dir := realCacheB(b, "emoji")
	for b.Loop() {
		if _, err := Load("emoji", dir, Train); err != nil {
			b.Fatal(err)
		}
	}
}

func realCacheB(b *testing.B, name string) string {
	dir, err := DefaultDir()
	if err != nil {
		b.Skip(err)
	}
	if _, _, err := Verify(mustLookup(b, name), dir); err != nil {
		b.Skipf("%s: %v", name, err)
	}
	return dir
}

func mustLookup(b *testing.B, name string) *Source {
	s, err := Lookup(name)
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// One emoji: decode, composite, downscale 64 -> 32.
func BenchmarkEmojiImage(b *testing.B) {
	img := image.NewNRGBA(image.Rect(0, 0, 64, 64))
	for y := 0; y < 64; y++ {
		for x := 0; x < 64; x++ {
			img.SetNRGBA(x, y, color.NRGBA{uint8(4 * x), uint8(4 * y), 100, uint8(x * y)})
		}
	}
	png := pngBytesB(b, img)
	px := make([]uint8, 3*32*32)
	for b.Loop() {
		if _, err := squareImage("e.png", png, 32, 3, px); err != nil {
			b.Fatal(err)
		}
	}
}

// A training batch of 128 MNIST-shaped images with flips.
func BenchmarkBatcherNext128(b *testing.B) {
	s, err := NewSet("synthetic", 1000, 1, 28, 28, make([]uint8, 1000*784), nil)
	if err != nil {
		b.Fatal(err)
	}
	bt, _ := NewBatcher(s, 128, 1, true)
	x := make([]float32, 128*784)
	b.SetBytes(int64(len(x) * 4))
	for b.Loop() {
		if err := bt.Next(x, nil); err != nil {
			b.Fatal(err)
		}
	}
}

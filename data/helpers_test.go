package data

import (
	"bytes"
	"image"
	"image/png"
	"os"
	"testing"
)

func writeFile(p string, b []byte) error { return os.WriteFile(p, b, 0o644) }

func pngBytesB(b *testing.B, img image.Image) []byte {
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		b.Fatal(err)
	}
	return buf.Bytes()
}

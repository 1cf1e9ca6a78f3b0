package main

import (
	"flag"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/ddpm-go/ddpm/data"
	"github.com/ddpm-go/ddpm/generate"
)

// pathList is a repeatable file flag (--image a.png --image b.jpg): the user's own pictures, kept
// in the order given, because that order is the order of the outputs (rows of a grid, pairs of an
// interpolation, latents in an .npy).
type pathList []string

func (p *pathList) String() string {
	if p == nil {
		return ""
	}
	return strings.Join(*p, ",")
}

// Set takes one path per use of the flag; a comma is a legal file-name character, so paths are
// never split.
func (p *pathList) Set(s string) error {
	if s == "" {
		return fmt.Errorf("empty path")
	}
	if len(*p) >= generate.MaxGridImages {
		return fmt.Errorf("more than %d files", generate.MaxGridImages)
	}
	*p = append(*p, s)
	return nil
}

// addImageFlag registers the repeatable --image flag with a help that says what the command does
// with the files, and how every command reads them.
func addImageFlag(fs *flag.FlagSet, p *pathList, what string) {
	fs.Var(p, "image", what+" (repeatable: --image a.png --image b.jpg; PNG, JPEG or GIF, centre-cropped, "+
		"transparency over white, area-resized to the model's size, grey for a 1-channel model)")
}

// setFlags lists the flags given on the command line, so a command can refuse combinations
// (--image with --data) that defaults alone cannot tell apart.
func setFlags(fs *flag.FlagSet) map[string]bool {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	return set
}

// readImages reads the files of flag name at the model's shape (c channels, h x w, square) as
// values in [-1, 1], image after image, scaled exactly as the training sets are (float32 byte
// b/127.5 - 1): the model sees a user's picture as it saw its data, and a file holding a dataset
// image encodes to the very latent its dataset row does. An error names the flag and (in
// data.ReadImage's own wording) the file.
func readImages(name string, paths []string, c, h, w int) ([]float32, error) {
	if h != w {
		return nil, fmt.Errorf("--%s: model images are %dx%d; only square ones can be read", name, h, w)
	}
	x := make([]float32, 0, len(paths)*c*h*w)
	for _, p := range paths {
		px, err := data.ReadImage(p, h, c)
		if err != nil {
			return nil, fmt.Errorf("--%s %w", name, err)
		}
		for _, v := range px {
			x = append(x, float32(v)/127.5-1)
		}
	}
	return x, nil
}

// widen is x as float64, the samplers' type.
func widen(x []float32) []float64 {
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = float64(v)
	}
	return out
}

// numbered is the file of image k of several written through --out FILE.png: FILE-k.png, so the
// files sort with the --image order they come from; one image keeps FILE.png itself.
func numbered(path string, k, n int) string {
	if n == 1 {
		return path
	}
	ext := filepath.Ext(path)
	return strings.TrimSuffix(path, ext) + "-" + strconv.Itoa(k) + ext
}

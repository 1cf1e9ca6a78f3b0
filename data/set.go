package data

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/ddpm-go/ddpm/imageio"
)

// Set is a dataset in memory: N images of C x H x W as float32 in [-1, 1], NCHW, with a label per
// image where the source has them.
type Set struct {
	Name       string
	N, C, H, W int
	// Images holds pixel value v (0..255) as v/127.5 - 1, so 0 is -1 and 255 is +1 exactly.
	Images []float32
	Labels []uint8 // len N, or nil when the source has no labels (a folder without class folders)
	// Classes names the labels: label l is class Classes[l]. Nil when Labels is.
	Classes []string
	// Skipped counts the files of an image folder that were not loaded because they are not
	// readable images; SkippedFiles lists them all (sorted by path, with why) and SkippedNote says
	// it in one line. 0 and nil for a built-in source, whose files are all pinned.
	Skipped      int
	SkippedFiles []SkippedFile
}

// Split chooses between a source's training and test images.
type Split int

const (
	Train Split = iota
	Test
)

func (s Split) String() string {
	if s == Test {
		return "test"
	}
	return "train"
}

// NewSet builds a Set from CHW bytes per image, n images in a row; labels may be nil.
func NewSet(name string, n, c, h, w int, pix []uint8, labels []uint8) (*Set, error) {
	if n <= 0 || c <= 0 || h <= 0 || w <= 0 {
		return nil, fmt.Errorf("%s: empty shape %dx%dx%dx%d", name, n, c, h, w)
	}
	if len(pix) != n*c*h*w {
		return nil, fmt.Errorf("%s: %d pixel bytes for shape %dx%dx%dx%d", name, len(pix), n, c, h, w)
	}
	if labels != nil && len(labels) != n {
		return nil, fmt.Errorf("%s: %d labels for %d images", name, len(labels), n)
	}
	s := &Set{Name: name, N: n, C: c, H: h, W: w, Images: make([]float32, len(pix)), Labels: labels}
	for i, v := range pix {
		s.Images[i] = toUnit(v)
	}
	return s, nil
}

func toUnit(v uint8) float32 { return float32(v)/127.5 - 1 }

// Size is the number of values in one image, C*H*W.
func (s *Set) Size() int { return s.C * s.H * s.W }

// Image returns image i (CHW, [-1, 1]) as a slice of Images.
func (s *Set) Image(i int) []float32 { return s.Images[i*s.Size() : (i+1)*s.Size()] }

// Uint8 returns image i as CHW bytes 0..255; it inverts the [-1, 1] scaling exactly.
func (s *Set) Uint8(i int) []uint8 { return imageio.ToUint8(nil, s.Image(i)) }

// Load reads a fetched built-in source from dir (DefaultDir if empty) at its natural size,
// checking every file against its pin as it is read. spec is a name, or NAME:LABELS to choose a
// label set (ParseSpec). MNIST and Fashion-MNIST give 1x28x28 images with labels 0..9 (60,000
// train, 10,000 test). emoji gives 3x32x32 RGB, composited over white and area-downscaled from
// 64x64, in two styles (Google Noto, Twitter Twemoji); "emoji" is labelled by category (9 classes,
// from emoji.json) and "emoji:style" by style (2 classes), and its test split is the emoji that
// emojiTest picks (about 10%, every style and skin variation of an emoji on the same side).
func Load(spec, dir string, split Split) (*Set, error) {
	return loadBuiltin(spec, dir, split, 0, 0)
}

// loadBuiltin reads a built-in source at size x size with channels, 0 meaning the source's own.
func loadBuiltin(spec, dir string, split Split, size, channels int) (*Set, error) {
	src, labels, err := ParseSpec(spec)
	if err != nil {
		return nil, err
	}
	if size, channels, err = src.shape(size, channels); err != nil {
		return nil, err
	}
	dir, err = dirOrDefault(dir)
	if err != nil {
		return nil, err
	}
	if len(src.Parts) > 0 {
		return loadEmoji(src, dir, labels, split, size, channels)
	}
	return loadSource(src, dir, split)
}

// shape resolves the size and channels a built-in source is asked for (0: its own) and refuses
// what it cannot give, naming the flags: an idx source only as it is; a source of image files at
// MinSize..MaxSize and in grey or colour.
func (s *Source) shape(size, channels int) (int, int, error) {
	if s.MinSize == 0 {
		if size != 0 && size != s.Size {
			return 0, 0, fmt.Errorf("--size %d: %s images are %dx%d (leave --size out or give %d)", size, s.Name, s.Size, s.Size, s.Size)
		}
		if channels != 0 && channels != s.Channels {
			return 0, 0, fmt.Errorf("--channels %d: %s images have %d channel(s) (leave --channels out or give %d)", channels, s.Name, s.Channels, s.Channels)
		}
		return s.Size, s.Channels, nil
	}
	if size == 0 {
		size = s.Size
	}
	if size < s.MinSize || size > s.MaxSize {
		return 0, 0, fmt.Errorf("--size %d: %s can be read at %d to %d (resized from its %dx%d originals)", size, s.Name, s.MinSize, s.MaxSize, s.MaxSize, s.MaxSize)
	}
	if channels == 0 {
		channels = s.Channels
	}
	if channels != 1 && channels != 3 {
		return 0, 0, fmt.Errorf("--channels %d: want 1 (grey) or 3 (colour)", channels)
	}
	return size, channels, nil
}

// loadSource reads a source of idx files (train-* and t10k-*) from dir.
func loadSource(src *Source, dir string, split Split) (*Set, error) {
	dir, err := dirOrDefault(dir)
	if err != nil {
		return nil, err
	}
	base := filepath.Join(dir, src.Name)
	prefix := "train"
	if split == Test {
		prefix = "t10k"
	}
	var images, labels *IDX
	for _, f := range src.Files {
		var dst **IDX
		switch f.Name {
		case prefix + "-images-idx3-ubyte":
			dst = &images
		case prefix + "-labels-idx1-ubyte":
			dst = &labels
		default:
			continue
		}
		b, err := readPinned(base, f)
		if err != nil {
			return nil, fmt.Errorf("load %s: %w", src.Name, err)
		}
		x, err := ParseIDX(b)
		if err != nil {
			return nil, fmt.Errorf("load %s: %s: %w", src.Name, filepath.Join(base, f.Name), err)
		}
		*dst = x
	}
	if images == nil || labels == nil {
		return nil, fmt.Errorf("load %s: source lists no %s images and labels", src.Name, split)
	}
	set, err := idxSet(src.Name, images, labels)
	if err != nil {
		return nil, err
	}
	set.Classes = src.Classes
	return set, nil
}

// idxSet joins an images idx (N, H, W) and a labels idx (N) with labels 0..9.
func idxSet(name string, images, labels *IDX) (*Set, error) {
	if len(images.Dims) != 3 {
		return nil, fmt.Errorf("%s: images have dimensions %v, want (N, H, W)", name, images.Dims)
	}
	if len(labels.Dims) != 1 || labels.Dims[0] != images.Dims[0] {
		return nil, fmt.Errorf("%s: labels have dimensions %v for %d images", name, labels.Dims, images.Dims[0])
	}
	for i, l := range labels.Data {
		if l > 9 {
			return nil, fmt.Errorf("%s: label %d of image %d is not a digit class 0..9", name, l, i)
		}
	}
	lab := append([]uint8(nil), labels.Data...)
	return NewSet(name, images.Dims[0], 1, images.Dims[1], images.Dims[2], images.Data, lab)
}

// Open loads what a --data flag names: a built-in source by spec (NAME or NAME:LABELS, from cache
// dir dir), or else a folder of images (LoadFolder). size and channels 0 mean the data's natural
// shape: a built-in's own (mnist and fashion 1x28x28, which is all they can be; emoji 3x32x32,
// which can be read at 16..64 and in grey), a folder's as LoadFolder picks it; so a command that
// was given no --size or --channels can read them off the Set. A folder has only one split. A
// name wins over a folder of the same name; write ./mnist to mean the folder.
func Open(spec, dir string, split Split, size, channels int) (*Set, error) {
	if name, _, _ := strings.Cut(spec, ":"); lookupName(name) != nil {
		return loadBuiltin(spec, dir, split, size, channels)
	}
	if st, err := os.Stat(spec); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("%q is neither a dataset (%s) nor a folder of images", spec, strings.Join(Names(), ", "))
	}
	if split != Train {
		return nil, fmt.Errorf("image folder %s has no %s split", spec, split)
	}
	return LoadFolder(spec, size, channels)
}

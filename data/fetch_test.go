package data

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func gz(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// tgz builds an npm-style tarball: every member under "package/", plus a directory entry and a
// symlink that must be ignored.
func tgz(t *testing.T, members map[string][]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	if err := tw.WriteHeader(&tar.Header{Name: "package/", Typeflag: tar.TypeDir, Mode: 0o755}); err != nil {
		t.Fatal(err)
	}
	if err := tw.WriteHeader(&tar.Header{Name: "package/data/link", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"}); err != nil {
		t.Fatal(err)
	}
	for name, b := range members {
		if err := tw.WriteHeader(&tar.Header{Name: "package/" + name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(b))}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func hexSum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// fakeNPM serves a fixed tarball instead of running npm, and counts how often it was asked.
type fakeNPM struct {
	tarball []byte
	calls   int
	err     error
}

func (f *fakeNPM) fetcher() NPM {
	return NPM{Pack: func(ctx context.Context, spec, dir string) (string, error) {
		f.calls++
		if f.err != nil {
			return "", f.err
		}
		p := filepath.Join(dir, "pkg-1.0.0.tgz")
		return p, os.WriteFile(p, f.tarball, 0o644)
	}}
}

// testPackage is a small package with a plain file, a gzipped file and a tree of two PNG-named
// files, and the Source that pins it.
func testPackage(t *testing.T) (*Source, map[string][]byte) {
	plain := []byte("plain file contents")
	inner := bytes.Repeat([]byte("gunzipped "), 100)
	a, b := []byte("first image"), []byte("second image")
	members := map[string][]byte{
		"data/plain":     plain,
		"data/inner.gz":  gz(t, inner),
		"img/64/a.png":   a,
		"img/64/b.png":   b,
		"img/64/c.txt":   []byte("not a png: skipped"),
		"img/64/x/d.png": []byte("in a subdirectory: skipped"),
		"README.md":      []byte("unwanted"),
	}
	src := &Source{
		Name: "toy", Manager: "npm", Package: "toy@1.0.0",
		Files: []File{
			{Member: "data/plain", Name: "plain", Size: int64(len(plain)), SHA256: hexSum(plain)},
			{Member: "data/inner.gz", Name: "inner", Gzip: true, Size: int64(len(inner)), SHA256: hexSum(inner)},
		},
		Tree: &Tree{Member: "img/64/", Ext: ".png", Name: "64", Count: 2, MaxSize: 100,
			SHA256: hexSum([]byte(hexSum(a) + "  a.png\n" + hexSum(b) + "  b.png\n"))},
	}
	return src, members
}

func leftovers(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, ".fetch-*"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestFetchSourceKeepsVerifiedFilesAndIsIdempotent(t *testing.T) {
	src, members := testPackage(t)
	dir := t.TempDir()
	npm := &fakeNPM{tarball: tgz(t, members)}
	var log bytes.Buffer
	rep, err := FetchSource(context.Background(), src, dir, npm.fetcher(), &log)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Cached || rep.Files != 4 || rep.Bytes != int64(19+1000+11+12) {
		t.Fatalf("report %+v", rep)
	}
	if !strings.Contains(log.String(), "npm pack toy@1.0.0") {
		t.Fatalf("log %q does not say what it ran", log.String())
	}
	got, err := os.ReadFile(filepath.Join(dir, "toy", "inner"))
	if err != nil || !bytes.Equal(got, bytes.Repeat([]byte("gunzipped "), 100)) {
		t.Fatalf("inner: %v (kept decoded?)", err)
	}
	ents, _ := os.ReadDir(filepath.Join(dir, "toy", "64"))
	if len(ents) != 2 {
		t.Fatalf("tree kept %d files, want a.png and b.png only", len(ents))
	}
	if l := leftovers(t, dir); len(l) != 0 {
		t.Fatalf("temporary directories left: %v", l)
	}

	rep, err = FetchSource(context.Background(), src, dir, npm.fetcher(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Cached || npm.calls != 1 || rep.Files != 4 {
		t.Fatalf("second fetch: report %+v after %d packs, want a cached hit and 1 pack", rep, npm.calls)
	}
}

func TestFetchSourceRejectsAndKeepsNothing(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(src *Source, members map[string][]byte)
		want   string
	}{
		{"file checksum", func(s *Source, m map[string][]byte) { m["data/plain"] = []byte("plain file contentZ") },
			"data/plain: sha256 mismatch"},
		{"gzipped checksum", func(s *Source, m map[string][]byte) { s.Files[1].SHA256 = hexSum([]byte("other")) },
			"data/inner.gz: sha256 mismatch"},
		{"longer than pinned", func(s *Source, m map[string][]byte) { m["data/plain"] = []byte("plain file contents, and more") },
			"larger than the 19 bytes"},
		{"shorter than pinned", func(s *Source, m map[string][]byte) { m["data/plain"] = []byte("plain") },
			"5 bytes, pinned 19"},
		{"missing member", func(s *Source, m map[string][]byte) { delete(m, "data/plain") },
			"data/plain: missing from the package"},
		{"corrupt gzip", func(s *Source, m map[string][]byte) { m["data/inner.gz"] = []byte("this is not a gzip stream at all") },
			"data/inner.gz: gzip: invalid header"},
		{"tree checksum", func(s *Source, m map[string][]byte) { m["img/64/b.png"] = []byte("second imagf") },
			"sha256 mismatch over the 2 files"},
		{"tree file missing", func(s *Source, m map[string][]byte) { delete(m, "img/64/b.png") },
			"1 files, want 2"},
		{"tree file extra", func(s *Source, m map[string][]byte) { m["img/64/e.png"] = []byte("extra") },
			"more than the 2 pinned files"},
		{"tree file too big", func(s *Source, m map[string][]byte) { m["img/64/a.png"] = make([]byte, 101) },
			"larger than the 100 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src, members := testPackage(t)
			tc.change(src, members)
			dir := t.TempDir()
			npm := &fakeNPM{tarball: tgz(t, members)}
			_, err := FetchSource(context.Background(), src, dir, npm.fetcher(), nil)
			if err == nil {
				t.Fatal("fetch succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "nothing was kept") {
				t.Fatalf("error %q, want %q and 'nothing was kept'", err, tc.want)
			}
			if _, err := os.Stat(filepath.Join(dir, "toy")); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("cache directory exists after a failed fetch (%v)", err)
			}
			if l := leftovers(t, dir); len(l) != 0 {
				t.Fatalf("temporary directories left: %v", l)
			}
		})
	}
}

func TestFetchSourcePackFailure(t *testing.T) {
	src, _ := testPackage(t)
	dir := t.TempDir()
	npm := &fakeNPM{err: errors.New("npm pack toy@1.0.0: exit status 1: E404")}
	_, err := FetchSource(context.Background(), src, dir, npm.fetcher(), nil)
	if err == nil || !strings.Contains(err.Error(), "E404") {
		t.Fatalf("error %v, want the npm failure", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "toy")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("cache directory exists after a failed pack")
	}
}

func TestFetchSourceReplacesCorruptedCache(t *testing.T) {
	src, members := testPackage(t)
	dir := t.TempDir()
	npm := &fakeNPM{tarball: tgz(t, members)}
	if _, err := FetchSource(context.Background(), src, dir, npm.fetcher(), nil); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "toy", "plain")
	if err := os.WriteFile(p, []byte("plain file contentZ"), 0o644); err != nil { // same size, one byte off
		t.Fatal(err)
	}
	_, _, err := Verify(src, dir)
	if err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "sha256") {
		t.Fatalf("Verify of a corrupted file: %v, want an error naming %s", err, p)
	}
	var log bytes.Buffer
	rep, err := FetchSource(context.Background(), src, dir, npm.fetcher(), &log)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Cached || npm.calls != 2 || !strings.Contains(log.String(), "cached copy is bad") {
		t.Fatalf("report %+v, %d packs, log %q: want a refetch that says why", rep, npm.calls, log.String())
	}
	if _, _, err := Verify(src, dir); err != nil {
		t.Fatalf("after refetch: %v", err)
	}
}

func TestVerifyMissingSaysHowToFetch(t *testing.T) {
	src, _ := testPackage(t)
	_, _, err := Verify(src, t.TempDir())
	if !errors.Is(err, errNotCached) || !strings.Contains(err.Error(), "ddpm data fetch toy") {
		t.Fatalf("error %v, want errNotCached and the command to run", err)
	}
}

// The apt fetcher reads an installed package's directory; here a temporary one stands in for
// /usr/share/datasets/..., so nothing is installed.
func TestAptFetcherReadsInstalledFiles(t *testing.T) {
	root := t.TempDir()
	inner := []byte("decoded idx bytes")
	if err := os.WriteFile(filepath.Join(root, "x-idx1-ubyte.gz"), gz(t, inner), 0o644); err != nil {
		t.Fatal(err)
	}
	src := &Source{Name: "aptly", Manager: "apt", Package: "dataset-test", Root: root,
		Files: []File{{Member: "x-idx1-ubyte.gz", Name: "x-idx1-ubyte", Gzip: true, Size: int64(len(inner)), SHA256: hexSum(inner)}}}
	dir := t.TempDir()
	var log bytes.Buffer
	if _, err := FetchSource(context.Background(), src, dir, Apt{}, &log); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dir, "aptly", "x-idx1-ubyte"))
	if err != nil || !bytes.Equal(got, inner) {
		t.Fatalf("kept %q, %v", got, err)
	}
	if !strings.Contains(log.String(), "using installed Debian package dataset-test") {
		t.Fatalf("log %q", log.String())
	}
}

func TestTreeDigestIsSha256sumOutput(t *testing.T) {
	// sha256sum prints "HEX  NAME\n" per file; with LC_ALL=C, "B.png" sorts before "a.png".
	sums := map[string]string{"a.png": hexSum([]byte("a")), "B.png": hexSum([]byte("b"))}
	want := hexSum([]byte(sums["B.png"] + "  B.png\n" + sums["a.png"] + "  a.png\n"))
	if got := treeDigest(sums); got != want {
		t.Fatalf("treeDigest %s, want %s", got, want)
	}
}

func TestBuiltinSourcesArePinned(t *testing.T) {
	var check func(s *Source)
	check = func(s *Source) {
		if s.Tree == nil && len(s.Files) == 0 && len(s.Parts) == 0 {
			t.Errorf("%s keeps nothing", s.Name)
		}
		if len(s.Parts) > 0 && (s.Tree != nil || len(s.Files) > 0 || s.Manager != "") {
			t.Errorf("%s: a composite source has files or a package of its own", s.Name)
		}
		for _, f := range s.Files {
			if len(f.SHA256) != 64 || f.Size <= 0 {
				t.Errorf("%s %s: pin %q size %d", s.Name, f.Name, f.SHA256, f.Size)
			}
		}
		if s.Tree != nil && (len(s.Tree.SHA256) != 64 || s.Tree.Count <= 0) {
			t.Errorf("%s tree: pin %q count %d", s.Name, s.Tree.SHA256, s.Tree.Count)
		}
		for _, p := range s.Parts {
			check(p)
		}
	}
	for _, s := range sources {
		check(s)
		if s.Size <= 0 || (s.Channels != 1 && s.Channels != 3) {
			t.Errorf("%s: natural shape %dx%d", s.Name, s.Channels, s.Size)
		}
	}
	if _, err := Lookup("cifar"); err == nil {
		t.Error("Lookup of an unknown name succeeded")
	}
}

func TestDefaultDir(t *testing.T) {
	t.Setenv(EnvDir, "/some/where")
	if d, _ := DefaultDir(); d != "/some/where" {
		t.Fatalf("with %s set: %s", EnvDir, d)
	}
	t.Setenv(EnvDir, "")
	t.Setenv("XDG_CACHE_HOME", "/xdg")
	if d, _ := DefaultDir(); d != "/xdg/ddpm" {
		t.Fatalf("with XDG_CACHE_HOME: %s", d)
	}
}

// Two fetches of one source into one directory at once both succeed and leave one good copy.
func TestFetchSourceConcurrent(t *testing.T) {
	src, members := testPackage(t)
	dir := t.TempDir()
	tarball := tgz(t, members)
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			npm := &fakeNPM{tarball: tarball}
			_, err := FetchSource(context.Background(), src, dir, npm.fetcher(), nil)
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if _, _, err := Verify(src, dir); err != nil {
		t.Fatal(err)
	}
	if l := leftovers(t, dir); len(l) != 0 {
		t.Fatalf("temporary directories left: %v", l)
	}
}

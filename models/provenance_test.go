package models

import (
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/ddpm-go/ddpm/checkpoint"
)

// sha256Line is how a PROVENANCE.md names the weights it describes: a table row or a list item.
var sha256Line = regexp.MustCompile("(?m)^(?:\\| sha256 \\||- sha256:) `([0-9a-f]{64})`")

// Every weights file under models/ is a result someone measured; its PROVENANCE.md says which bytes
// were measured, so swapping the file without updating the record (or the reverse) must fail here.
func TestProvenanceHashes(t *testing.T) {
	// Every folder holding weights, at any depth (the distilled students sit in
	// mnist-distilled/steps-N).
	var dirs []string
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".safetensors") && !slices.Contains(dirs, filepath.Dir(path)) {
			dirs = append(dirs, filepath.Dir(path))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, dir := range dirs {
		weights, _ := filepath.Glob(filepath.Join(dir, "*.safetensors"))
		if len(weights) > 1 {
			t.Errorf("%s: %d weights files, want one: %v", dir, len(weights), weights)
			continue
		}
		prov, err := os.ReadFile(filepath.Join(dir, "PROVENANCE.md"))
		if err != nil {
			t.Errorf("%s: weights without provenance: %v", dir, err)
			continue
		}
		m := sha256Line.FindAllSubmatch(prov, -1)
		if len(m) != 1 {
			t.Errorf("%s/PROVENANCE.md: %d sha256 lines, want one", dir, len(m))
			continue
		}
		b, err := os.ReadFile(weights[0])
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		if got, want := hex.EncodeToString(sum[:]), string(m[0][1]); got != want {
			t.Errorf("%s: sha256 %s, PROVENANCE.md says %s", weights[0], got, want)
		}
		if _, err := checkpoint.Decode(b); err != nil {
			t.Errorf("%s: %v", weights[0], err)
		}
		checked++
	}
	if checked == 0 {
		t.Fatal("no weights found under models/")
	}
}

func TestSha256Line(t *testing.T) {
	h := strings.Repeat("ab", 32)
	for _, s := range []string{"| sha256 | `" + h + "` |", "- sha256: `" + h + "`"} {
		if m := sha256Line.FindStringSubmatch(s); m == nil || m[1] != h {
			t.Errorf("%q: no hash found", s)
		}
	}
	if sha256Line.MatchString("(sha256 `" + h + "`, still in git history)") {
		t.Error("a hash quoted in prose counted as the file's")
	}
}

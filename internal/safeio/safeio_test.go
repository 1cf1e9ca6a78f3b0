package safeio

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	ok := filepath.Join(dir, "ok.json")
	os.WriteFile(ok, []byte(`{"a":1}`), 0o644)
	link := filepath.Join(dir, "link.json")
	os.Symlink(ok, link)
	big := filepath.Join(dir, "big.json")
	os.WriteFile(big, nil, 0o644)
	os.Truncate(big, 1<<30)
	fifo := filepath.Join(dir, "fifo")
	syscall.Mkfifo(fifo, 0o644)
	for _, p := range []string{ok, link} {
		if b, err := ReadFile(p, 100); err != nil || string(b) != `{"a":1}` {
			t.Errorf("%s: %q, %v", p, b, err)
		}
	}
	for p, want := range map[string]string{big: "more than the 100", fifo: "not a regular file", "/dev/zero": "not a regular file", dir: "not a regular file", filepath.Join(dir, "none"): "no such file"} {
		done := make(chan error, 1)
		go func() { _, err := ReadFile(p, 100); done <- err }()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("%s: %v, want %q", p, err, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: still reading after 5 s", p)
		}
	}
}

package data

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestWithProgress: a download that takes more than a second reports its elapsed time and the bytes
// that have arrived; a quick one prints nothing.
func TestWithProgress(t *testing.T) {
	dir := t.TempDir()
	var log bytes.Buffer
	err := withProgress(&log, "x", dir, func() error {
		os.WriteFile(filepath.Join(dir, "part"), make([]byte, 2_500_000), 0o644)
		time.Sleep(5*time.Second + 300*time.Millisecond)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log.String(), "x: downloading ... 5s, 2.5 MB so far") {
		t.Fatalf("progress log %q", log.String())
	}
	log.Reset()
	if err := withProgress(&log, "x", dir, func() error { return nil }); err != nil || log.Len() != 0 {
		t.Fatalf("quick download printed %q (err %v)", log.String(), err)
	}
}

// TestDpkgLockHolder: a lock taken the way dpkg takes it (an fcntl write lock) is seen, with the
// holder's pid, from another process's point of view (the test's child), and a free file is not.
func TestDpkgLockHolder(t *testing.T) {
	lock := filepath.Join(t.TempDir(), "lock-frontend")
	if err := os.WriteFile(lock, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if pid := dpkgLockHolder(lock); pid != 0 {
		t.Fatalf("free lock reported held by %d", pid)
	}
	if dpkgLockHolder(filepath.Join(t.TempDir(), "missing")) != 0 {
		t.Fatal("missing lock file reported held")
	}
	// F_GETLK reports only other processes' locks, so a child holds it.
	cmd := execLocker(t, lock)
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	deadline := time.Now().Add(5 * time.Second)
	for dpkgLockHolder(lock) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("lock held by a child process not seen")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if pid := dpkgLockHolder(lock); pid != cmd.Process.Pid {
		t.Fatalf("holder %d, want %d", pid, cmd.Process.Pid)
	}
}

// TestHoldLock is not a test: run as a child of TestDpkgLockHolder, it takes the lock named by
// $DDPM_TEST_HOLD_LOCK as dpkg does and holds it until killed.
func TestHoldLock(t *testing.T) {
	p := os.Getenv("DDPM_TEST_HOLD_LOCK")
	if p == "" {
		t.Skip("helper process of TestDpkgLockHolder")
	}
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	lk := syscall.Flock_t{Type: syscall.F_WRLCK}
	if err := syscall.FcntlFlock(f.Fd(), syscall.F_SETLKW, &lk); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Minute)
}

func execLocker(t *testing.T, lock string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run", "^TestHoldLock$")
	cmd.Env = append(os.Environ(), "DDPM_TEST_HOLD_LOCK="+lock)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd
}

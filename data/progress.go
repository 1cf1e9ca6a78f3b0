package data

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// progressAfter is how long a download runs before it starts reporting: quick ones stay one line.
const progressAfter = time.Second

// withProgress runs f (a download by a child process into dir) and, once it has run for a second,
// reports on log every second (in place on a terminal, every five seconds otherwise) how long it
// has taken and how many bytes have arrived in dir.
func withProgress(log io.Writer, label, dir string, f func() error) error {
	done := make(chan struct{})
	finished := make(chan struct{})
	tty := isTerminal(log)
	go func() {
		defer close(finished)
		t0 := time.Now()
		tick := time.NewTicker(progressAfter)
		defer tick.Stop()
		shown := false
		for {
			select {
			case <-done:
				if shown && tty {
					fmt.Fprintln(log)
				}
				return
			case now := <-tick.C:
				el := now.Sub(t0).Round(time.Second)
				if !tty && el%(5*time.Second) != 0 {
					continue
				}
				msg := fmt.Sprintf("%s: %s ... %v, %.1f MB so far", label, "downloading", el, float64(dirBytes(dir))/1e6)
				if tty {
					fmt.Fprintf(log, "\r%s ", msg)
				} else {
					fmt.Fprintln(log, msg)
				}
				shown = true
			}
		}
	}()
	err := f()
	close(done)
	<-finished
	return err
}

// dirBytes adds up the sizes of the files under dir (npm and apt write their downloads there).
func dirBytes(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// aptLockTimeout is how long apt-get waits for another apt or dpkg process to release the dpkg
// lock (its DPkg::Lock::Timeout) instead of failing at once.
const aptLockTimeout = 10 * time.Minute

// dpkgLockHolder returns the pid of a process holding lock (a dpkg lock file, locked with fcntl by
// apt and dpkg), or 0 when none does or it cannot be told.
func dpkgLockHolder(lock string) int {
	f, err := os.Open(lock)
	if err != nil {
		return 0
	}
	defer f.Close()
	lk := syscall.Flock_t{Type: syscall.F_WRLCK}
	if err := syscall.FcntlFlock(f.Fd(), syscall.F_GETLK, &lk); err != nil || lk.Type == syscall.F_UNLCK {
		return 0
	}
	return int(lk.Pid)
}

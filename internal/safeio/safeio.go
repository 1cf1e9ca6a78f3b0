// Package safeio reads files a user names (configs, images, CSVs) with the checks that turn hostile
// or mistaken paths into one-line errors: a FIFO or a device would block or never end, and a file
// far larger than its kind ever is would take the machine's memory before any parser saw it.
package safeio

import (
	"fmt"
	"io"
	"os"
)

// ReadFile reads path whole if it is a regular file of at most limit bytes (symlinks are followed).
func ReadFile(path string, limit int64) ([]byte, error) {
	f, err := Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() > limit {
		return nil, fmt.Errorf("%s: %d bytes, more than the %d this kind of file may have", path, st.Size(), limit)
	}
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: more than the %d bytes this kind of file may have", path, limit)
	}
	return b, nil
}

// Open opens path for reading if it is a regular file, checking before the open (opening a FIFO
// blocks until a writer comes) and after it (the path may have changed in between).
func Open(path string) (*os.File, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file (%v)", path, st.Mode().Type())
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	if st, err = f.Stat(); err != nil || !st.Mode().IsRegular() {
		f.Close()
		if err == nil {
			err = fmt.Errorf("%s: not a regular file (%v)", path, st.Mode().Type())
		}
		return nil, err
	}
	return f, nil
}

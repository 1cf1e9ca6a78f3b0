package main

import (
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/ddpm-go/ddpm/generate"
	"github.com/ddpm-go/ddpm/schedule"
)

// Limits every command shares, checked once for every flag set by checkFlags (called by
// parseFlagsOneLine), so a value far outside what the machine can do is one line, not a crash deep
// in an allocation or in oneDNN. Each sits well above any real use on a CPU.
const (
	// maxTimesteps bounds T of a schedule: tables of T float64s are cheap, but a T of 1e9 is 40 GB
	// of them and no paper goes past 4,000.
	maxTimesteps = schedule.MaxTimesteps
	// maxFrames bounds interpolate's frames per row (each frame is a decoded image in the strip).
	maxFrames = 1_000
)

// maxThreads is the largest thread count worth asking for: OpenMP starts every thread it is given,
// and 100,000 of them exhaust the process before any work is done.
func maxThreads() int { return max(256, 4*runtime.NumCPU()) }

// extOf is the extension of the file behind each flag that names one format in every command
// (--grid and --plot are PNGs wherever they appear, --npz an .npz written by sample and read by eval
// fid), so a misnamed path is refused before any work, not written in a format its name belies.
var extOf = map[string]string{"grid": ".png", "plot": ".png", "npz": ".npz", "gif": ".gif"}

// outFiles are the flags that name a file a command writes at its end, in every command that has
// them: its directory must exist when the command starts, not when the work is done.
var outFiles = map[string]bool{"grid": true, "plot": true, "gif": true, "drift": true}

// checkFlags applies the shared limits to the flags that were set on the command line: every
// float flag must be finite (a NaN eta would otherwise surface as a JSON encoding error far away),
// the counts named below must be in range, the files of extOf must carry their extension, and
// those of outFiles must have a directory to go to.
func checkFlags(fs *flag.FlagSet) error {
	var err error
	fs.Visit(func(f *flag.Flag) {
		if err != nil {
			return
		}
		g, ok := f.Value.(flag.Getter)
		if !ok {
			return
		}
		switch v := g.Get().(type) {
		case float64:
			if math.IsNaN(v) || math.IsInf(v, 0) {
				err = fmt.Errorf("--%s %s: must be a finite number", f.Name, f.Value.String())
			}
		case int:
			err = checkCount(f.Name, v)
		case string:
			if ext, ok := extOf[f.Name]; ok {
				err = checkExt(f.Name, v, ext)
			}
			if err == nil && outFiles[f.Name] {
				err = checkOutFile(f.Name, v, "")
			}
		}
	})
	return err
}

func checkCount(name string, v int) error {
	bound := func(hi int, why string) error {
		if v > hi {
			return fmt.Errorf("--%s %d: more than %d (%s)", name, v, hi, why)
		}
		return nil
	}
	switch name {
	case "threads":
		return bound(maxThreads(), "4 per core, or 256")
	case "timesteps":
		return bound(maxTimesteps, "a diffusion process of more steps has no use")
	case "frames":
		return bound(maxFrames, "frames per row of an interpolation strip")
	case "pairs":
		return bound(maxFrames, "rows of an interpolation strip")
	case "n":
		return bound(generate.MaxImages, "images in one job; split it with --start")
	}
	return nil
}

// checkOutFile refuses a file the command would write at its end whose extension is not ext (unless
// ext is "") or whose directory does not exist, before any work is done.
func checkOutFile(flagName, path, ext string) error {
	if err := checkExt(flagName, path, ext); err != nil || path == "" {
		return err
	}
	if st, err := os.Stat(filepath.Dir(path)); err != nil || !st.IsDir() {
		return fmt.Errorf("--%s %s: directory %s does not exist", flagName, strconv.Quote(path), filepath.Dir(path))
	}
	return nil
}

// checkExt refuses a path whose extension says another format than the one the flag's file has.
func checkExt(flagName, path, ext string) error {
	if path != "" && ext != "" && !strings.EqualFold(filepath.Ext(path), ext) {
		return fmt.Errorf("--%s %s: the file is %s; name it *%s", flagName, strconv.Quote(path), strings.ToUpper(strings.TrimPrefix(ext, ".")), ext)
	}
	return nil
}

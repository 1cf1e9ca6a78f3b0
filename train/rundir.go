package train

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/ddpm-go/ddpm/checkpoint"
)

// Metadata keys only training reads back (the model file's keys are checkpoint's).
const (
	metaBatcher  = "batcher"      // data.BatchState as JSON
	metaWall     = "wall_s"       // wall-clock seconds spent training up to this checkpoint
	metaTrainCfg = "train_config" // the Config the run was started with
)

func fileIn(dir, name string) string { return filepath.Join(dir, name) }

// tempTarget is the file that name is a temporary of, if name follows the pattern of the atomic
// writers (writeAtomic here, checkpoint.WriteFile): ".TARGET.tmp" followed by os.CreateTemp's
// random digits.
func tempTarget(name string) (string, bool) {
	i := strings.LastIndex(name, ".tmp")
	if i < 2 || name[0] != '.' {
		return "", false
	}
	digits := name[i+len(".tmp"):]
	if digits == "" || strings.Trim(digits, "0123456789") != "" {
		return "", false
	}
	return name[1:i], true
}

// removeTempFiles deletes the temporary files that atomic writes killed before their rename left in
// run directory dir: a checkpoint's is as large as the checkpoint, and nothing else would ever
// remove them. Only temporaries of the files a run writes are touched (config.json, metrics.csv,
// model-ema.safetensors, ... in dir; step-N.safetensors in dir/checkpoints), so a file someone
// else is writing into the directory (`ddpm average --out RUNDIR/avg.safetensors`) is left alone.
// It returns how many files it removed and their size.
func removeTempFiles(dir string) (n int, size int64, err error) {
	runFiles := map[string]bool{checkpoint.ConfigFile: true, checkpoint.ModelFile: true, checkpoint.EMAFile: true, checkpoint.MetricsFile: true, checkpoint.LossPlotFile: true}
	for _, d := range []struct {
		dir string
		ok  func(target string) bool
	}{
		{dir, func(t string) bool { return runFiles[t] }},
		{filepath.Join(dir, checkpoint.CheckpointDir), func(t string) bool { _, ok := checkpoint.CheckpointStep(t); return ok }},
	} {
		entries, err := os.ReadDir(d.dir)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return n, size, fmt.Errorf("remove temporary files: %w", err)
		}
		for _, e := range entries {
			target, ok := tempTarget(e.Name())
			if !ok || !e.Type().IsRegular() || !d.ok(target) {
				continue
			}
			var sz int64
			if info, err := e.Info(); err == nil {
				sz = info.Size()
			}
			if err := os.Remove(filepath.Join(d.dir, e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
				return n, size, fmt.Errorf("remove temporary file: %w", err)
			}
			n, size = n+1, size+sz
		}
	}
	return n, size, nil
}

package train

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/ddpm-go/ddpm/checkpoint"
	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/nn"
	"github.com/ddpm-go/ddpm/schedule"
	"github.com/ddpm-go/ddpm/tensor"
)

// Names of the files and directories in a run directory (see the package documentation).
const (
	ConfigFile     = "config.json"
	ModelFile      = "model.json"
	EMAFile        = "model-ema.safetensors"
	CheckpointDir  = "checkpoints"
	SampleDir      = "samples"
	MetricsFile    = "metrics.csv"
	LossPlotFile   = "loss.png"
	checkpointExt  = ".safetensors"
	checkpointStem = "step-"
)

// Metadata keys train adds to the files it writes.
const (
	MetaSchedule         = "schedule"
	MetaTimesteps        = "timesteps"
	MetaZeroSNR          = "zero_snr"
	MetaPrediction       = "prediction"
	metaLegacyPrediction = "objective" // the key of MetaPrediction in files written before it was renamed
	MetaDataset          = "dataset"
	metaBatcher          = "batcher"      // data.BatchState as JSON
	metaWall             = "wall_s"       // wall-clock seconds spent training up to this checkpoint
	metaTrainCfg         = "train_config" // the Config the run was started with
)

func fileIn(dir, name string) string { return filepath.Join(dir, name) }

// CheckpointPath is the training-state file of step in run directory dir.
func CheckpointPath(dir string, step int) string {
	return filepath.Join(dir, CheckpointDir, fmt.Sprintf("%s%08d%s", checkpointStem, step, checkpointExt))
}

// GridPath is the sample grid of step in run directory dir.
func GridPath(dir string, step int) string {
	return filepath.Join(dir, SampleDir, fmt.Sprintf("%s%08d.png", checkpointStem, step))
}

// Checkpoints lists the training-state files in run directory dir by increasing step. Files whose
// names are not step-N.safetensors (temporary files of an interrupted write, say) are ignored.
func Checkpoints(dir string) (steps []int, paths []string, err error) {
	entries, err := os.ReadDir(filepath.Join(dir, CheckpointDir))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	for _, e := range entries {
		if s, ok := checkpointStep(e.Name()); ok && !e.IsDir() {
			steps = append(steps, s)
		}
	}
	sort.Ints(steps)
	for _, s := range steps {
		paths = append(paths, CheckpointPath(dir, s))
	}
	return steps, paths, nil
}

// checkpointStep is the step of a checkpoint's file name (step-N.safetensors).
func checkpointStep(name string) (int, bool) {
	if !strings.HasPrefix(name, checkpointStem) || !strings.HasSuffix(name, checkpointExt) {
		return 0, false
	}
	s, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(name, checkpointStem), checkpointExt))
	if err != nil || s < 0 {
		return 0, false
	}
	return s, true
}

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
	runFiles := map[string]bool{ConfigFile: true, ModelFile: true, EMAFile: true, MetricsFile: true, LossPlotFile: true}
	for _, d := range []struct {
		dir string
		ok  func(target string) bool
	}{
		{dir, func(t string) bool { return runFiles[t] }},
		{filepath.Join(dir, CheckpointDir), func(t string) bool { _, ok := checkpointStep(t); return ok }},
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

// fileStep reads the "step" metadata of a safetensors file from its header alone: deciding whether
// model-ema.safetensors is current should not cost reading its tensors.
func fileStep(path string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var n uint64
	if err := binary.Read(f, binary.LittleEndian, &n); err != nil {
		return 0, fmt.Errorf("read %s: header length: %w", path, err)
	}
	if n > 100<<20 {
		return 0, fmt.Errorf("read %s: header length %d (not a safetensors file?)", path, n)
	}
	h := make([]byte, n)
	if _, err := io.ReadFull(f, h); err != nil {
		return 0, fmt.Errorf("read %s: header: %w", path, err)
	}
	var hdr struct {
		Meta map[string]string `json:"__metadata__"`
	}
	if err := json.Unmarshal(h, &hdr); err != nil {
		return 0, fmt.Errorf("read %s: header: %w", path, err)
	}
	v, ok := hdr.Meta[checkpoint.MetaStep]
	if !ok {
		return 0, fmt.Errorf("read %s: no %q in the metadata", path, checkpoint.MetaStep)
	}
	s, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("read %s: bad step %q", path, v)
	}
	return s, nil
}

// LatestCheckpoint returns the path and step of the newest checkpoint in run directory dir.
func LatestCheckpoint(dir string) (string, int, error) {
	steps, paths, err := Checkpoints(dir)
	if err != nil {
		return "", 0, fmt.Errorf("list checkpoints of %s: %w", dir, err)
	}
	if len(steps) == 0 {
		return "", 0, fmt.Errorf("no checkpoint in %s", filepath.Join(dir, CheckpointDir))
	}
	return paths[len(paths)-1], steps[len(steps)-1], nil
}

// Sampling is a trained network with what a sampler needs to drive it.
type Sampling struct {
	Model      *nn.UNet
	Schedule   *schedule.Schedule
	Prediction diffusion.Prediction // Options.Prediction of the samplers
	Step       int                  // training steps behind the weights (-1 if unknown)
	Path       string               // the file the weights came from
	EMA        bool                 // the weights are the EMA copy
	Meta       map[string]string    // the file's metadata
}

// LoadForSampling loads a network for sampling from path, which is one of
//   - a run directory: the EMA weights (ema true) or the model weights (ema false) of its newest
//     checkpoint; the EMA weights are read from model-ema.safetensors when that file is at the
//     newest checkpoint's step (see runModel);
//   - a training-state file (a checkpoint): its "ema." weights (ema true) or its model weights;
//   - a model file (model-ema.safetensors, the shipped model, any checkpoint.SaveModel output):
//     its weights, whatever ema says.
//
// The schedule and prediction come from the file's metadata (see the package documentation).
func LoadForSampling(path string, be tensor.Backend, ema bool) (*Sampling, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("load model: %w", err)
	}
	if st.IsDir() {
		if path, err = runModel(path, ema); err != nil {
			return nil, err
		}
	}
	f, err := checkpoint.ReadFile(path)
	if err != nil {
		return nil, err
	}
	prefix := ""
	isTraining := f.Metadata[checkpoint.MetaFormat] == "ddpm-train-v1"
	if isTraining && ema {
		prefix = checkpoint.PrefixEMA
	}
	model, meta, err := checkpoint.LoadModel(path, be, prefix)
	if err != nil {
		return nil, err
	}
	s := &Sampling{Model: model, Path: path, EMA: prefix != "" || (!isTraining && ema), Meta: meta, Step: -1}
	if v, ok := meta[checkpoint.MetaStep]; ok {
		if s.Step, err = strconv.Atoi(v); err != nil {
			return nil, fmt.Errorf("read %s: bad step %q", path, v)
		}
	}
	if s.Schedule, s.Prediction, err = processOf(meta); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return s, nil
}

// runModel is the file that holds the latest weights of run directory dir. The run writes
// model-ema.safetensors after each checkpoint, so a kill between the two leaves it a checkpoint
// behind (or absent, in a run's first save): then the newest checkpoint, whose "ema." weights are
// the same EMA one step of saving later, is the file to sample, which is what a resume continues
// from too. A directory without checkpoints (a copied model-ema, models/mnist) is its model file.
func runModel(dir string, ema bool) (string, error) {
	if !ema {
		path, _, err := LatestCheckpoint(dir)
		return path, err
	}
	emaPath := fileIn(dir, EMAFile)
	steps, paths, err := Checkpoints(dir)
	if err != nil {
		return "", fmt.Errorf("list checkpoints of %s: %w", dir, err)
	}
	if len(steps) == 0 {
		return emaPath, nil
	}
	if s, err := fileStep(emaPath); err == nil && s == steps[len(steps)-1] {
		return emaPath, nil
	}
	return paths[len(paths)-1], nil
}

// processOf reads the sampling keys, defaulting to the DDPM paper's setting.
func processOf(meta map[string]string) (*schedule.Schedule, diffusion.Prediction, error) {
	name, T, zero, obj := "linear", 1000, false, "eps"
	if v, ok := meta[MetaSchedule]; ok {
		name = v
	}
	if v, ok := meta[MetaTimesteps]; ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			return nil, 0, fmt.Errorf("bad %s %q", MetaTimesteps, v)
		}
		T = n
	}
	if v, ok := meta[MetaZeroSNR]; ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, 0, fmt.Errorf("bad %s %q", MetaZeroSNR, v)
		}
		zero = b
	}
	if v, ok := meta[metaLegacyPrediction]; ok {
		obj = v
	}
	if v, ok := meta[MetaPrediction]; ok {
		obj = v
	}
	s, err := schedule.New(name, T, zero)
	if err != nil {
		return nil, 0, err
	}
	p, err := diffusion.ParsePrediction(obj)
	if err != nil {
		return nil, 0, err
	}
	return s, p, nil
}

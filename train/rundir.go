package train

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"ddpm/checkpoint"
	"ddpm/diffusion"
	"ddpm/nn"
	"ddpm/schedule"
	"ddpm/tensor"
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

// ShippedModel is the MNIST model committed with the repository (EMA weights of UNet-S trained by
// `ddpm train`, see models/mnist/PROVENANCE.md), relative to the repository root: what a sampler
// loads (with LoadForSampling) when it is given no checkpoint.
const ShippedModel = "models/mnist/model-ema.safetensors"

// Metadata keys train adds to the files it writes.
const (
	MetaSchedule  = "schedule"
	MetaTimesteps = "timesteps"
	MetaZeroSNR   = "zero_snr"
	MetaObjective = "objective"
	MetaDataset   = "dataset"
	metaBatcher   = "batcher"      // data.BatchState as JSON
	metaWall      = "wall_s"       // wall-clock seconds spent training up to this checkpoint
	metaTrainCfg  = "train_config" // the Config the run was started with
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
		name := e.Name()
		if e.IsDir() || !strings.HasPrefix(name, checkpointStem) || !strings.HasSuffix(name, checkpointExt) {
			continue
		}
		s, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(name, checkpointStem), checkpointExt))
		if err != nil || s < 0 {
			continue
		}
		steps = append(steps, s)
	}
	sort.Ints(steps)
	for _, s := range steps {
		paths = append(paths, CheckpointPath(dir, s))
	}
	return steps, paths, nil
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
	Model     *nn.UNet
	Schedule  *schedule.Schedule
	Objective diffusion.Parameterization // Options.Prediction of the samplers
	Step      int                        // training steps behind the weights (-1 if unknown)
	Path      string                     // the file the weights came from
	EMA       bool                       // the weights are the EMA copy
	Meta      map[string]string          // the file's metadata
}

// LoadForSampling loads a network for sampling from path, which is one of
//   - a run directory: its model-ema.safetensors (ema true) or the model weights of its latest
//     checkpoint (ema false);
//   - a training-state file (a checkpoint): its "ema." weights (ema true) or its model weights;
//   - a model file (model-ema.safetensors, the shipped model, any checkpoint.SaveModel output):
//     its weights, whatever ema says.
//
// The schedule and objective come from the file's metadata (see the package documentation).
func LoadForSampling(path string, be tensor.Backend, ema bool) (*Sampling, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("load model: %w", err)
	}
	if st.IsDir() {
		if ema {
			path = fileIn(path, EMAFile)
		} else if path, _, err = LatestCheckpoint(path); err != nil {
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
	if s.Schedule, s.Objective, err = processOf(meta); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return s, nil
}

// processOf reads the sampling keys, defaulting to the DDPM paper's setting.
func processOf(meta map[string]string) (*schedule.Schedule, diffusion.Parameterization, error) {
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
	if v, ok := meta[MetaObjective]; ok {
		obj = v
	}
	s, err := schedule.New(name, T, zero)
	if err != nil {
		return nil, 0, err
	}
	p, err := diffusion.ParseParameterization(obj)
	if err != nil {
		return nil, 0, err
	}
	return s, p, nil
}

package checkpoint

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

	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/nn"
	"github.com/ddpm-go/ddpm/schedule"
	"github.com/ddpm-go/ddpm/tensor"
)

// The run directory is the one layout every part of the project reads and writes: training fills it,
// sampling, serving and evaluation read their model from it. Keeping its names here, beside the
// file format, lets those readers load a model without linking the trainer.

// Names of the files and directories in a run directory.
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

// Metadata keys of the diffusion setup a model was trained with, which a sampler needs besides the
// weights (see Setup).
const (
	MetaSchedule         = "schedule"
	MetaTimesteps        = "timesteps"
	MetaZeroSNR          = "zero_snr"
	MetaPrediction       = "prediction"
	MetaLegacyPrediction = "objective" // MetaPrediction's name in files written before it was renamed
	MetaDataset          = "dataset"
	// MetaClasses names a class-conditional model's classes, label 0 first, as a JSON array of
	// strings ("0".."9" for MNIST); a sampler shows them and accepts them for --class.
	MetaClasses = "classes"
)

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
		if s, ok := CheckpointStep(e.Name()); ok && !e.IsDir() {
			steps = append(steps, s)
		}
	}
	sort.Ints(steps)
	for _, s := range steps {
		paths = append(paths, CheckpointPath(dir, s))
	}
	return steps, paths, nil
}

// CheckpointStep is the step of a checkpoint's file name (step-N.safetensors).
func CheckpointStep(name string) (int, bool) {
	if !strings.HasPrefix(name, checkpointStem) || !strings.HasSuffix(name, checkpointExt) {
		return 0, false
	}
	s, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(name, checkpointStem), checkpointExt))
	if err != nil || s < 0 {
		return 0, false
	}
	return s, true
}

// FileStep reads the "step" metadata of a safetensors file from its header alone: deciding whether
// model-ema.safetensors is current should not cost reading its tensors.
func FileStep(path string) (int, error) {
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
	v, ok := hdr.Meta[MetaStep]
	if !ok {
		return 0, fmt.Errorf("read %s: no %q in the metadata", path, MetaStep)
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

// Model is a trained network with the diffusion setup a sampler needs to drive it.
type Model struct {
	Net        *nn.UNet
	Schedule   *schedule.Schedule
	Prediction diffusion.Prediction // what Net outputs: eps, x0 or v (Options.Prediction of the samplers)
	Source     string               // the weights file
	EMA        bool                 // the weights are an EMA copy
	Step       int                  // training steps behind the weights (-1 if unknown)
	Meta       map[string]string    // the weights file's metadata
	// Classes names the labels of a class-conditional Net (len Net.Cfg.NumClasses; "0", "1", ...
	// when the file does not name them); nil for an unconditional one.
	Classes []string
}

// LoadForSampling loads a network for sampling from path, which is one of
//   - a run directory: the EMA weights (ema true) or the model weights (ema false) of its newest
//     checkpoint; the EMA weights are read from model-ema.safetensors when that file is at the
//     newest checkpoint's step (see runModel);
//   - a training-state file (a checkpoint): its "ema." weights (ema true) or its model weights;
//   - a model file (model-ema.safetensors, the shipped model, any checkpoint.SaveModel output):
//     its weights, whatever ema says.
//
// The schedule and prediction come from the file's metadata (Setup).
func LoadForSampling(path string, be tensor.Backend, ema bool) (*Model, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("load model: %w", err)
	}
	if st.IsDir() {
		if path, err = runModel(path, ema); err != nil {
			return nil, err
		}
	}
	f, err := ReadFile(path)
	if err != nil {
		return nil, err
	}
	prefix := ""
	isTraining := f.Metadata[MetaFormat] == "ddpm-train-v1"
	if isTraining && ema {
		prefix = PrefixEMA
	}
	model, meta, err := LoadModel(path, be, prefix)
	if err != nil {
		return nil, err
	}
	s := &Model{Net: model, Source: path, EMA: prefix != "" || (!isTraining && ema), Meta: meta, Step: -1}
	if v, ok := meta[MetaStep]; ok {
		if s.Step, err = strconv.Atoi(v); err != nil {
			return nil, fmt.Errorf("read %s: bad step %q", path, v)
		}
	}
	if s.Schedule, s.Prediction, err = Setup(meta); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if s.Classes, err = ClassNames(meta, model.Cfg.NumClasses); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return s, nil
}

// ClassNames reads the names of a model's k classes from its metadata (MetaClasses), numbering
// them "0".."k-1" when absent; nil for k = 0.
func ClassNames(meta map[string]string, k int) ([]string, error) {
	if k == 0 {
		return nil, nil
	}
	v := meta[MetaClasses]
	if v == "" {
		names := make([]string, k)
		for i := range names {
			names[i] = strconv.Itoa(i)
		}
		return names, nil
	}
	var names []string
	if err := json.Unmarshal([]byte(v), &names); err != nil {
		return nil, fmt.Errorf("bad %s: %v", MetaClasses, err)
	}
	if len(names) != k {
		return nil, fmt.Errorf("%s names %d classes, the network has %d", MetaClasses, len(names), k)
	}
	return names, nil
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
	emaPath := filepath.Join(dir, EMAFile)
	steps, paths, err := Checkpoints(dir)
	if err != nil {
		return "", fmt.Errorf("list checkpoints of %s: %w", dir, err)
	}
	if len(steps) == 0 {
		return emaPath, nil
	}
	if s, err := FileStep(emaPath); err == nil && s == steps[len(steps)-1] {
		return emaPath, nil
	}
	return paths[len(paths)-1], nil
}

// Setup reads the diffusion setup from a weights file's metadata; absent keys take the DDPM paper's
// setting (linear schedule, T = 1000, eps).
func Setup(meta map[string]string) (*schedule.Schedule, diffusion.Prediction, error) {
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
	if v, ok := meta[MetaLegacyPrediction]; ok {
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

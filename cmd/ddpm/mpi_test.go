package main

import (
	"bytes"
	"encoding/json"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ddpm-go/ddpm/checkpoint"
	"github.com/ddpm-go/ddpm/mpi"
	"github.com/ddpm-go/ddpm/tensor"
	"github.com/ddpm-go/ddpm/train"
)

// mpiTrainModel is trainTinyModel with attention and dropout: the sharded dropout masks are part
// of what the ranks must reproduce.
const mpiTrainModel = `{"name": "tiny", "image_size": 8, "in_channels": 1, "out_channels": 1,
	"base_channels": 8, "channel_mult": [1, 2], "res_blocks": 1, "attn_resolutions": [],
	"heads": 1, "dropout": 0.1, "time_embed_dim": 16, "sinusoidal_dim": 8, "groups": 4}`

// mpiRun starts `ddpm ARGS` as n ranks under mpirun (the test binary, running TestMPIRank), or
// skips t without -tags mpi or without mpirun. The ranks write their pids to dir/pid-RANK. With
// DDPM_MPI_OUT=DIR appended to its Env, each rank writes what ddpm prints to DIR/stdout-RANK and
// DIR/stderr-RANK instead (apart from the test binary's own PASS).
func mpiRun(t *testing.T, n int, dir string, args ...string) *exec.Cmd {
	t.Helper()
	if !mpi.Enabled {
		t.Skip("built without -tags mpi")
	}
	path, err := exec.LookPath("mpirun")
	if err != nil {
		t.Skip("mpirun not installed")
	}
	b, _ := json.Marshal(args)
	cmd := exec.Command(path, "--oversubscribe", "--allow-run-as-root", "-np", strconv.Itoa(n),
		"-x", "DDPM_MPI_ARGS", "-x", "DDPM_MPI_PIDS", "-x", "DDPM_MPI_OUT", "-x", "OMP_WAIT_POLICY=passive",
		os.Args[0], "-test.run=^TestMPIRank$", "-test.count=1")
	cmd.Env = append(os.Environ(), "DDPM_MPI_ARGS="+string(b), "DDPM_MPI_PIDS="+dir, "DDPM_MPI_OUT=")
	return cmd
}

// TestMPIRank is one rank of the jobs mpiRun starts; it skips unless DDPM_MPI_ARGS is set.
func TestMPIRank(t *testing.T) {
	js := os.Getenv("DDPM_MPI_ARGS")
	if js == "" {
		t.Skip("a rank of an mpirun test")
	}
	var args []string
	if err := json.Unmarshal([]byte(js), &args); err != nil {
		t.Fatal(err)
	}
	if dir := os.Getenv("DDPM_MPI_PIDS"); dir != "" {
		os.WriteFile(filepath.Join(dir, "pid-"+os.Getenv("OMPI_COMM_WORLD_RANK")), []byte(strconv.Itoa(os.Getpid())), 0o644)
	}
	stdout, stderr := io.Writer(os.Stdout), io.Writer(os.Stderr)
	if dir := os.Getenv("DDPM_MPI_OUT"); dir != "" {
		rank := os.Getenv("OMPI_COMM_WORLD_RANK")
		fo, err := os.Create(filepath.Join(dir, "stdout-"+rank))
		if err != nil {
			t.Fatal(err)
		}
		fe, err := os.Create(filepath.Join(dir, "stderr-"+rank))
		if err != nil {
			t.Fatal(err)
		}
		defer fo.Close()
		defer fe.Close()
		stdout, stderr = fo, fe
	}
	if code := run(args, stdout, stderr); code != 0 {
		os.Exit(code)
	}
}

func trainArgs(imgs, model, out string, steps int) []string {
	return []string{"train", "--data", imgs, "--model", model, "--engine", "ref", "--steps", strconv.Itoa(steps),
		"--batch", "4", "--sample-n", "4", "--out", out, "--threads", "1", "--lr", "1e-3", "--seed", "5"}
}

// TestMPITrainMatchesOneProcess: `mpirun -np 2 ddpm train` follows the one-process run: the
// loss column agrees to 1e-5 relative over 20 steps, the final weights, EMA and AdamW moments to
// fp32 rounding of another summation order; rank 0 alone wrote the run directory. Then sampling
// that run on 2 ranks writes the .npz and grid of one process byte for byte.
func TestMPITrainMatchesOneProcess(t *testing.T) {
	dir := t.TempDir()
	model := writeFile(t, dir, "tiny.json", mpiTrainModel)
	imgs := trainFolder(t, 12)
	one, two := filepath.Join(dir, "one"), filepath.Join(dir, "two")
	cmd := mpiRun(t, 2, dir, trainArgs(imgs, model, two, 20)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mpirun: %v\n%s", err, out)
	}
	if code, _, stderr := runCLI(t, trainArgs(imgs, model, one, 20)...); code != 0 {
		t.Fatalf("one process: %s", stderr)
	}
	la, err := train.ReadMetrics(filepath.Join(one, checkpoint.MetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	lb, err := train.ReadMetrics(filepath.Join(two, checkpoint.MetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	if len(la) != 20 || len(lb) != 20 {
		t.Fatalf("%d and %d metrics rows", len(la), len(lb))
	}
	for i := range la {
		if math.Abs(la[i].Loss-lb[i].Loss) > 1e-5*la[i].Loss {
			t.Fatalf("step %d: loss %.8g (one process) vs %.8g (2 ranks)", i+1, la[i].Loss, lb[i].Loss)
		}
	}
	fa, err := checkpoint.ReadFile(checkpoint.CheckpointPath(one, 20))
	if err != nil {
		t.Fatal(err)
	}
	fb, err := checkpoint.ReadFile(checkpoint.CheckpointPath(two, 20))
	if err != nil {
		t.Fatal(err)
	}
	for _, ta := range fa.Tensors {
		tb, ok := fb.Lookup(ta.Name)
		if !ok || len(tb.Data) != len(ta.Data) {
			t.Fatalf("%s missing or resized", ta.Name)
		}
		var scale float64
		for _, v := range ta.Data {
			scale = max(scale, math.Abs(float64(v)))
		}
		// fp32 rounding of values of this size, plus what gradients 1e-5 apart (summed in another
		// order) move 20 AdamW steps of lr 1e-3; moments are gradients, to 1e-4 of their size.
		limit := 1e-6*scale + 1e-5*20*1e-3
		if strings.HasPrefix(ta.Name, "adamw.") {
			limit = 1e-4 * scale
		}
		for i := range ta.Data {
			if d := math.Abs(float64(ta.Data[i]) - float64(tb.Data[i])); d > limit {
				t.Fatalf("%s[%d]: %v vs %v", ta.Name, i, ta.Data[i], tb.Data[i])
			}
		}
	}

	// Sharded sampling: byte-identical outputs for 7 images over 2 ranks (odd, so uneven parts).
	sampleArgs := func(tag string) []string {
		return []string{"sample", "--ckpt", two, "--engine", "ref", "--n", "7", "--steps", "4", "--seed", "3",
			"--npz", filepath.Join(dir, tag+".npz"), "--grid", filepath.Join(dir, tag+".png")}
	}
	if out, err := mpiRun(t, 2, "", sampleArgs("ranks")...).CombinedOutput(); err != nil {
		t.Fatalf("mpirun sample: %v\n%s", err, out)
	}
	if code, _, stderr := runCLI(t, sampleArgs("one")...); code != 0 {
		t.Fatalf("one process: %s", stderr)
	}
	for _, ext := range []string{".npz", ".png"} {
		a, errA := os.ReadFile(filepath.Join(dir, "one"+ext))
		b, errB := os.ReadFile(filepath.Join(dir, "ranks"+ext))
		if errA != nil || errB != nil || !bytes.Equal(a, b) {
			t.Fatalf("%s differs between one process and 2 ranks (%v, %v)", ext, errA, errB)
		}
	}
}

// TestMPIRankDies: a rank killed mid-run ends the job (mpirun exits non-zero well within 30 s,
// nobody waits forever in an allreduce) and the last checkpoint, written atomically, loads.
func TestMPIRankDies(t *testing.T) {
	dir := t.TempDir()
	model := writeFile(t, dir, "tiny.json", mpiTrainModel)
	out := filepath.Join(dir, "run")
	args := append(trainArgs(trainFolder(t, 12), model, out, 100000), "--ckpt-every", "5", "--sample-every", "0")
	cmd := mpiRun(t, 2, dir, args...)
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, paths, _ := checkpoint.Checkpoints(out); len(paths) >= 2 {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("no checkpoints after 60 s\n%s", log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	b, err := os.ReadFile(filepath.Join(dir, "pid-1"))
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(string(b))
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	select {
	case err := <-done:
		if err == nil {
			t.Fatalf("job exited 0 after a rank was killed\n%s", log.String())
		}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("job still running 30 s after a rank was killed\n%s", log.String())
	}
	t.Logf("job ended %v after the kill", time.Since(t0).Round(time.Millisecond))
	path, step, err := checkpoint.LatestCheckpoint(out)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := checkpoint.ReadFile(path); err != nil {
		t.Fatalf("last checkpoint (step %d): %v", step, err)
	}
	if _, err := checkpoint.LoadForSampling(out, tensor.NewReference(1), true); err != nil {
		t.Fatalf("run directory after the kill: %v", err)
	}
}

// TestMPIStubRefuses: a build without MPI started as rank 0 of 2 refuses in one line, exit 2.
func TestMPIStubRefuses(t *testing.T) {
	if mpi.Enabled {
		t.Skip("built with MPI")
	}
	t.Setenv("OMPI_COMM_WORLD_SIZE", "2")
	code, _, stderr := runCLI(t, "sample", "--n", "1", "--npz", filepath.Join(t.TempDir(), "x.npz"))
	if code != 2 || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, "-tags mpi") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
}

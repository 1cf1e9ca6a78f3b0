package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/ddpm-go/ddpm/generate"
	"github.com/ddpm-go/ddpm/mpi"
)

func TestMPIAware(t *testing.T) {
	for _, c := range []struct {
		args []string
		want bool
	}{
		{[]string{"train", "--steps", "1"}, true}, {[]string{"sample"}, true},
		{[]string{"eval", "fid", "--n", "2"}, true}, {[]string{"eval", "guidance"}, true},
		{[]string{"eval"}, false}, {[]string{"eval", "table"}, false}, {[]string{"eval", "--help"}, false},
		{[]string{"data", "fetch", "mnist"}, false}, {[]string{"version"}, false}, {[]string{"serve"}, false},
		{[]string{"toy", "sample"}, false},
	} {
		if got := mpiAware(c.args); got != c.want {
			t.Errorf("mpiAware(%q) = %v", c.args, got)
		}
	}
}

// launchCLI runs `ddpm ARGS` in a subprocess (the test binary as TestMPIRank) with env added, as
// an MPI launcher would start one rank, and returns its exit status and what ddpm printed.
func launchCLI(t *testing.T, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	dir := t.TempDir()
	b, _ := json.Marshal(args)
	cmd := exec.Command(os.Args[0], "-test.run=^TestMPIRank$", "-test.count=1")
	cmd.Env = append(os.Environ(), "DDPM_MPI_ARGS="+string(b), "DDPM_MPI_PIDS=", "DDPM_MPI_OUT="+dir, "OMPI_COMM_WORLD_RANK=0")
	cmd.Env = append(cmd.Env, env...)
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	err := cmd.Run()
	code = cmd.ProcessState.ExitCode()
	if code < 0 {
		t.Fatalf("ddpm %s: %v\n%s", strings.Join(args, " "), err, log.String())
	}
	rank := "0"
	for _, e := range env {
		if r, ok := strings.CutPrefix(e, "OMPI_COMM_WORLD_RANK="); ok {
			rank = r
		}
	}
	o, _ := os.ReadFile(filepath.Join(dir, "stdout-"+rank))
	e, _ := os.ReadFile(filepath.Join(dir, "stderr-"+rank))
	return code, string(o), string(e)
}

// TestLaunchStubRefuses: a build without MPI started as one of 2 ranks refuses every command,
// MPI-aware or not, before it parses a flag or touches a file: one line naming -tags mpi, exit 2,
// nothing on stdout. A one-rank launch runs as ever.
func TestLaunchStubRefuses(t *testing.T) {
	if mpi.Enabled {
		t.Skip("built with MPI (TestMPILaunchRefusesOtherCommands covers that build)")
	}
	cache := t.TempDir()
	for _, args := range [][]string{
		{"version"}, {"data", "fetch", "mnist", "--dir", cache}, {"eval", "table", "--no-such-flag"}, {"toy", "sample"},
		{"sample", "--n", "1", "--npz", filepath.Join(cache, "x.npz")}, {"train"}, {"eval", "fid"}, {"eval", "guidance"},
		{"average"}, {"bench", "--help"},
	} {
		code, stdout, stderr := launchCLI(t, []string{"OMPI_COMM_WORLD_SIZE=2"}, args...)
		if code != 2 || stdout != "" || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, "-tags mpi") ||
			!strings.HasPrefix(stderr, "ddpm "+args[0]+": ") {
			t.Errorf("ddpm %s under 2 ranks: exit %d, stdout %q, stderr %q", strings.Join(args, " "), code, stdout, stderr)
		}
	}
	if ents, _ := os.ReadDir(cache); len(ents) != 0 {
		t.Errorf("a refused command wrote %d files", len(ents))
	}
	// Rank 1 of a PMIx launch that announces no size.
	if code, _, stderr := launchCLI(t, []string{"PMIX_RANK=1", "OMPI_COMM_WORLD_RANK=1"}, "version"); code != 2 || !strings.Contains(stderr, "-tags mpi") {
		t.Errorf("rank 1 of a PMIx launch: exit %d, %q", code, stderr)
	}
	if code, stdout, stderr := launchCLI(t, []string{"OMPI_COMM_WORLD_SIZE=1"}, "version"); code != 0 || stdout == "" {
		t.Errorf("one-rank launch: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

// TestMPILaunchRefusesOtherCommands: the MPI build under `mpirun -np 2` refuses a command that is
// one process in one line naming the commands that run under mpirun, exit non-zero; under
// `mpirun -np 1` it runs and finalises MPI (mpirun exits 0).
func TestMPILaunchRefusesOtherCommands(t *testing.T) {
	out := t.TempDir()
	cmd := mpiRun(t, 2, "", "version")
	cmd.Env = append(cmd.Env, "DDPM_MPI_OUT="+out)
	log, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("mpirun -np 2 ddpm version exited 0\n%s", log)
	}
	var lines []string
	for _, r := range []string{"0", "1"} {
		for _, f := range []string{"stdout-", "stderr-"} {
			b, _ := os.ReadFile(filepath.Join(out, f+r))
			if s := strings.TrimSpace(string(b)); s != "" {
				lines = append(lines, strings.Split(s, "\n")...)
			}
		}
	}
	want := "ddpm version: mpirun started 2 ranks, but `ddpm version` runs as one process; only train, sample, eval fid, eval guidance run as an MPI job: run it without mpirun"
	if !slices.Equal(lines, []string{want}) {
		t.Errorf("ranks printed %q, want the one line %q\nmpirun:\n%s", lines, want, log)
	}
	one := t.TempDir()
	cmd = mpiRun(t, 1, "", "version")
	cmd.Env = append(cmd.Env, "DDPM_MPI_OUT="+one)
	if log, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mpirun -np 1 ddpm version: %v\n%s", err, log)
	}
	if b, _ := os.ReadFile(filepath.Join(one, "stdout-0")); len(b) == 0 {
		t.Errorf("mpirun -np 1 ddpm version printed nothing")
	}
}

// sameJSON reports every field in which the JSON objects a (one process) and b (ranks) differ,
// the timing field sample_secs aside.
func sameJSON(t *testing.T, what, a, b string) {
	t.Helper()
	var ma, mb map[string]any
	if err := json.Unmarshal([]byte(a), &ma); err != nil {
		t.Fatalf("%s: one process: %v: %q", what, err, a)
	}
	if err := json.Unmarshal([]byte(b), &mb); err != nil {
		t.Fatalf("%s: ranks: %v: %q", what, err, b)
	}
	delete(ma, "sample_secs")
	delete(mb, "sample_secs")
	for k := range mb {
		if _, ok := ma[k]; !ok {
			t.Errorf("%s: field %s only on the ranks: %v", what, k, mb[k])
		}
	}
	for k, va := range ma {
		if vb, ok := mb[k]; !ok || !reflect.DeepEqual(va, vb) {
			t.Errorf("%s: field %s: one process %v, ranks %v", what, k, va, vb)
		}
	}
}

// mpiOutputs runs `ddpm ARGS` on 2 ranks under mpirun and returns what each rank printed to stdout.
func mpiOutputs(t *testing.T, args ...string) [2]string {
	t.Helper()
	out := t.TempDir()
	cmd := mpiRun(t, 2, "", args...)
	cmd.Env = append(cmd.Env, "DDPM_MPI_OUT="+out)
	if log, err := cmd.CombinedOutput(); err != nil {
		e0, _ := os.ReadFile(filepath.Join(out, "stderr-0"))
		e1, _ := os.ReadFile(filepath.Join(out, "stderr-1"))
		t.Fatalf("mpirun -np 2 ddpm %s: %v\n%s\nrank 0: %s\nrank 1: %s", strings.Join(args, " "), err, log, e0, e1)
	}
	var res [2]string
	for r := range res {
		b, err := os.ReadFile(filepath.Join(out, "stdout-"+string(rune('0'+r))))
		if err != nil {
			t.Fatal(err)
		}
		res[r] = string(b)
	}
	return res
}

// TestMPIEvalFIDMatchesOneProcess: `mpirun -np 2 ddpm eval fid` on a tiny 1x28x28 model prints,
// on rank 0 alone, the JSON line of one process, every field equal but the timing; rank 1 prints
// nothing and exits 0. `eval guidance` (class-balanced, --chunk 8 so the ranks' parts are 16 and 4
// images) writes the same guidance.jsonl (timing aside), guidance.md and table.
func TestMPIEvalFIDMatchesOneProcess(t *testing.T) {
	if !mpi.Enabled {
		t.Skip("built without -tags mpi")
	}
	if _, err := exec.LookPath("mpirun"); err != nil {
		t.Skip("mpirun not installed")
	}
	needMNIST(t)
	model, clf := evalFixtures(t)
	common := []string{"--classifier", clf, "--n", "20", "--steps", "2", "--engine", "ref", "--threads", "1",
		"--ref-n", "64", "--kid-subsets", "4", "--kid-subset-size", "5", "--seed", "7"}
	args := append([]string{"eval", "fid", "--ckpt", model}, common...)
	ranks := mpiOutputs(t, args...)
	if ranks[1] != "" || strings.Count(ranks[0], "\n") != 1 {
		t.Fatalf("rank 0 printed %q, rank 1 %q; want one JSON line on rank 0 alone", ranks[0], ranks[1])
	}
	code, one, stderr := runCLI(t, args...)
	if code != 0 {
		t.Fatalf("one process: %s", stderr)
	}
	sameJSON(t, "eval fid", one, ranks[0])

	cond, clf2 := evalFixturesClasses(t, 10)
	common[1] = clf2
	gargs := func(out string) []string {
		return append([]string{"eval", "guidance", "--ckpt", cond, "--scales", "0,2", "--chunk", "8", "--out", out}, common...)
	}
	dirOne, dirRanks := t.TempDir(), t.TempDir()
	granks := mpiOutputs(t, gargs(dirRanks)...)
	code, gone, stderr := runCLI(t, gargs(dirOne)...)
	if code != 0 {
		t.Fatalf("one process: %s", stderr)
	}
	if granks[0] != gone || granks[1] != "" {
		t.Errorf("eval guidance: rank 0 printed\n%s\nrank 1 %q; one process\n%s", granks[0], granks[1], gone)
	}
	for _, f := range []string{"guidance.md", "guidance.jsonl"} {
		a, errA := os.ReadFile(filepath.Join(dirOne, f))
		b, errB := os.ReadFile(filepath.Join(dirRanks, f))
		if errA != nil || errB != nil {
			t.Fatalf("%s: %v, %v", f, errA, errB)
		}
		if f == "guidance.md" {
			if !bytes.Equal(a, b) {
				t.Errorf("guidance.md differs:\n%s\n%s", a, b)
			}
			continue
		}
		la, lb := strings.Split(strings.TrimSpace(string(a)), "\n"), strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(la) != 2 || len(lb) != 2 {
			t.Fatalf("guidance.jsonl: %d and %d lines", len(la), len(lb))
		}
		for i := range la {
			sameJSON(t, "eval guidance line "+string(rune('1'+i)), la[i], lb[i])
		}
	}
}

// TestShardJobEmptyPart: a rank whose part holds no whole chunk (20 images, --chunk 32, as
// on dnnl) gets an empty job at the end, labels included, and the parts cover the job in order.
func TestShardJobEmptyPart(t *testing.T) {
	j := generate.Job{N: 20, Start: 5, Chunk: 32, Labels: make([]int, 20)}
	for i := range j.Labels {
		j.Labels[i] = i
	}
	next := j.Start
	for r := range 3 {
		p := shardJob(j, r, 3, 4)
		if p.Start != next || len(p.Labels) != p.N || (p.N > 0 && p.Labels[0] != p.Start-j.Start) {
			t.Fatalf("rank %d: start %d n %d labels %v after %d", r, p.Start, p.N, p.Labels, next)
		}
		next += p.N
	}
	if next != j.Start+j.N {
		t.Fatalf("parts cover up to %d", next)
	}
}

package mpi

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestShard(t *testing.T) {
	for _, c := range []struct{ n, size int }{{10, 1}, {10, 2}, {10, 3}, {2, 4}, {0, 2}} {
		next := 0
		for r := range c.size {
			lo, hi := Shard(c.n, r, c.size)
			if lo != next || hi < lo || hi-lo > c.n/c.size+1 {
				t.Fatalf("Shard(%d, %d, %d) = %d, %d", c.n, r, c.size, lo, hi)
			}
			next = hi
		}
		if next != c.n {
			t.Fatalf("Shard(%d, *, %d) covers %d", c.n, c.size, next)
		}
	}
}

// TestShardChunks: the parts cover start..start+n-1 in rank order, every cut between parts falls on
// a multiple of chunk, and chunk 0 is Shard.
func TestShardChunks(t *testing.T) {
	for _, c := range []struct{ start, n, chunk, size int }{
		{0, 10, 0, 3}, {0, 10, 4, 2}, {3, 10, 4, 2}, {5, 7, 4, 3}, {0, 20, 32, 2}, {7, 0, 4, 2}, {30, 5, 32, 2}, {1, 100, 8, 4},
	} {
		next := 0
		for r := range c.size {
			lo, hi := ShardChunks(c.start, c.n, c.chunk, r, c.size)
			if lo != next || hi < lo || hi > c.n {
				t.Fatalf("ShardChunks(%d, %d, %d, %d, %d) = %d, %d after %d", c.start, c.n, c.chunk, r, c.size, lo, hi, next)
			}
			if c.chunk == 0 {
				if slo, shi := Shard(c.n, r, c.size); slo != lo || shi != hi {
					t.Fatalf("chunk 0: %d, %d; Shard %d, %d", lo, hi, slo, shi)
				}
			} else if hi > lo && hi < c.n && (c.start+hi)%c.chunk != 0 {
				t.Fatalf("ShardChunks(%d, %d, %d, %d, %d) = %d, %d cuts chunk at %d", c.start, c.n, c.chunk, r, c.size, lo, hi, c.start+hi)
			}
			next = hi
		}
		if next != c.n {
			t.Fatalf("ShardChunks(%d, %d, %d, *, %d) covers %d", c.start, c.n, c.chunk, c.size, next)
		}
	}
}

// collectives runs every collective of Comm on c and reports what disagrees with MPI's semantics;
// the -tags mpi test runs the same function on Open MPI's ranks.
func collectives(c Comm) error {
	r, n := c.Rank(), c.Size()
	f32 := []float32{float32(r), 1, 0.5}
	if err := c.AllreduceFloat32(f32); err != nil {
		return err
	}
	if want := float32(n*(n-1)) / 2; f32[0] != want || f32[1] != float32(n) || f32[2] != float32(n)/2 {
		return fmt.Errorf("rank %d: allreduce float32 = %v", r, f32)
	}
	f64 := []float64{1e-17, float64(r)}
	if err := c.AllreduceFloat64(f64); err != nil {
		return err
	}
	if f64[0] != float64(n)*1e-17 || f64[1] != float64(n*(n-1))/2 {
		return fmt.Errorf("rank %d: allreduce float64 = %v", r, f64)
	}
	var msg []byte
	if r == n-1 {
		msg = []byte("from the last rank")
	}
	got, err := c.Bcast(msg, n-1)
	if err != nil {
		return err
	}
	if string(got) != "from the last rank" {
		return fmt.Errorf("rank %d: bcast = %q", r, got)
	}
	w := []float32{float32(r), float32(r)}
	if err := c.BcastFloat32(w, 0); err != nil {
		return err
	}
	if w[0] != 0 || w[1] != 0 {
		return fmt.Errorf("rank %d: bcast float32 = %v", r, w)
	}
	if err := c.Barrier(); err != nil {
		return err
	}
	all, err := c.Gather([]byte(strings.Repeat("x", r)), 0)
	if err != nil {
		return err
	}
	if r == 0 {
		if len(all) != n {
			return fmt.Errorf("gather: %d slices from %d ranks", len(all), n)
		}
		for i, b := range all {
			if string(b) != strings.Repeat("x", i) {
				return fmt.Errorf("gather: rank %d sent %q", i, b)
			}
		}
	} else if all != nil {
		return fmt.Errorf("rank %d: gather returned data off the root", r)
	}
	stop, err := Or(c, r == n-1)
	if err != nil {
		return err
	}
	if !stop {
		return fmt.Errorf("rank %d: Or missed the last rank's true", r)
	}
	return nil
}

func TestLocal(t *testing.T) {
	for _, n := range []int{1, 2, 3} {
		cs := NewLocal(n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for r, c := range cs {
			wg.Go(func() { errs[r] = collectives(c) })
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Fatalf("%d ranks: %v", n, err)
			}
		}
	}
	if err := collectives(Solo); err != nil {
		t.Fatal(err)
	}
}

func TestTimeAllreduce(t *testing.T) {
	cs := NewLocal(2)
	var wg sync.WaitGroup
	res := make([]AllreduceTiming, 2)
	errs := make([]error, 2)
	for r, c := range cs {
		wg.Go(func() { res[r], errs[r] = TimeAllreduce(c, 1<<16, 3) })
	}
	wg.Wait()
	if errs[0] != nil || errs[1] != nil {
		t.Fatal(errs)
	}
	if res[0].Bytes != 1<<16 || res[0].Iters != 3 || res[0].Mean <= 0 || res[0].BusGBs <= 0 {
		t.Fatalf("%+v", res[0])
	}
}

// TestStubRefusesMPILaunch: a binary without MPI started as one of several ranks must not run.
func TestStubRefusesMPILaunch(t *testing.T) {
	if Enabled {
		t.Skip("built with MPI")
	}
	t.Setenv("OMPI_COMM_WORLD_SIZE", "2")
	if _, err := Init(); err != ErrNoMPI {
		t.Fatalf("Init under a 2-rank launch = %v, want ErrNoMPI", err)
	}
	t.Setenv("OMPI_COMM_WORLD_SIZE", "1")
	if c, err := Init(); err != nil || c.Size() != 1 {
		t.Fatalf("Init under a 1-rank launch = %v, %v", c, err)
	}
}

// mpirun returns the command line that starts n ranks of the test binary running the test named
// run with env set, or skips t when this build has no MPI or mpirun is missing. Root (CI
// containers) needs --allow-run-as-root and the two cores of CI --oversubscribe.
func mpirun(t *testing.T, n int, run string, env ...string) *exec.Cmd {
	t.Helper()
	if !Enabled {
		t.Skip("built without -tags mpi")
	}
	path, err := exec.LookPath("mpirun")
	if err != nil {
		t.Skip("mpirun not installed")
	}
	args := []string{"--oversubscribe", "--allow-run-as-root", "-np", fmt.Sprint(n)}
	for _, e := range env {
		args = append(args, "-x", e)
	}
	args = append(args, os.Args[0], "-test.run=^"+run+"$", "-test.count=1")
	cmd := exec.Command(path, args...)
	cmd.Env = append(os.Environ(), "OMPI_MCA_rmaps_base_oversubscribe=1")
	return cmd
}

// TestOpenMPI runs collectives on 1, 2 and 3 Open MPI ranks (rankHelper below is each rank).
func TestOpenMPI(t *testing.T) {
	for _, n := range []int{1, 2, 3} {
		cmd := mpirun(t, n, "TestRankHelper", "DDPM_MPI_HELPER=1")
		t0 := time.Now()
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%d ranks: %v\n%s", n, err, out)
		}
		if c := strings.Count(string(out), "rank ok"); c != n {
			t.Fatalf("%d ranks: %d reported ok\n%s", n, c, out)
		}
		t.Logf("%d ranks: %v", n, time.Since(t0).Round(time.Millisecond))
	}
}

// TestOpenMPIAbort: a rank that aborts ends the job, its peers blocked in a collective included,
// with the rank's code, well within a bound.
func TestOpenMPIAbort(t *testing.T) {
	cmd := mpirun(t, 2, "TestRankHelper", "DDPM_MPI_HELPER=abort")
	t0 := time.Now()
	done := make(chan error, 1)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatalf("job with an aborted rank exited 0\n%s", out.String())
		}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("job with an aborted rank still running after 30 s\n%s", out.String())
	}
	t.Logf("ended in %v", time.Since(t0).Round(time.Millisecond))
}

// TestRankHelper is one rank of the jobs above; it does nothing unless DDPM_MPI_HELPER is set.
func TestRankHelper(t *testing.T) {
	mode := os.Getenv("DDPM_MPI_HELPER")
	if mode == "" {
		t.Skip("a rank of TestOpenMPI")
	}
	c, err := Init()
	if err != nil {
		t.Fatal(err)
	}
	if want := LaunchedSize(); c.Size() != want || c.Rank() != LaunchedRank() {
		t.Fatalf("rank %d of %d, launcher says %d of %d", c.Rank(), c.Size(), LaunchedRank(), want)
	}
	if mode == "abort" {
		if c.Rank() == 1 {
			time.Sleep(200 * time.Millisecond)
			c.Abort(3)
		}
		c.Barrier() // rank 0 waits here for a peer that never comes
		t.Fatal("barrier returned after a peer aborted")
	}
	// Go's own signal handlers survive MPI_Init: a nil dereference is still a recoverable panic.
	func() {
		defer func() {
			if recover() == nil {
				t.Error("nil dereference did not panic")
			}
		}()
		var p *int
		_ = *p
	}()
	if err := collectives(c); err != nil {
		t.Fatal(err)
	}
	// A gather of several rounds (pieces of 1 MB).
	setGatherPiece(1 << 20)
	big := make([]byte, 3<<20+c.Rank())
	for i := range big {
		big[i] = byte(i + c.Rank())
	}
	all, err := c.Gather(big, 0)
	if err != nil {
		t.Fatal(err)
	}
	for r, b := range all {
		if len(b) != 3<<20+r || b[12345] != byte(12345+r) {
			t.Fatalf("gather from rank %d: %d bytes", r, len(b))
		}
	}
	if err := Finalize(); err != nil {
		t.Fatal(err)
	}
	fmt.Printf("rank ok %d/%d\n", c.Rank(), c.Size())
}

// TestAllreduceTime is the allreduce benchmark of docs/distributed.md: with DDPM_ALLREDUCE_BYTES
// set, under mpirun, it times that many bytes of float32 allreduce and rank 0 prints the result.
func TestAllreduceTime(t *testing.T) {
	s := os.Getenv("DDPM_ALLREDUCE_BYTES")
	if s == "" {
		t.Skip("set DDPM_ALLREDUCE_BYTES and run under mpirun (docs/distributed.md)")
	}
	var bytes, iters int
	if _, err := fmt.Sscan(s, &bytes); err != nil {
		t.Fatal(err)
	}
	iters = 50
	c, err := Init()
	if err != nil {
		t.Fatal(err)
	}
	res, err := TimeAllreduce(c, bytes, iters)
	if err != nil {
		t.Fatal(err)
	}
	if c.Rank() == 0 {
		fmt.Printf("allreduce %d bytes on %d ranks: mean %v, min %v, bus %.2f GB/s\n", res.Bytes, res.Ranks, res.Mean, res.Min, res.BusGBs)
	}
	if err := Finalize(); err != nil {
		t.Fatal(err)
	}
}

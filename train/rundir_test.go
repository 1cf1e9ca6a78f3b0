package train

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/ddpm-go/ddpm/checkpoint"
	"github.com/ddpm-go/ddpm/tensor"
)

// writeFiles writes each of files (path -> contents), failing the test on error.
func writeFiles(t *testing.T, files map[string]string) {
	t.Helper()
	for p, b := range files {
		if err := os.WriteFile(p, []byte(b), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestTempFilesRemoved leaves the temporary files of killed atomic writes in a run directory, as a
// kill during a checkpoint or a metrics rewrite does, and requires a resume and a fresh start to
// remove them, and only them.
func TestTempFilesRemoved(t *testing.T) {
	c := tinyConfig(t, filepath.Join(t.TempDir(), "run"))
	c.Steps, c.SampleN = 3, 0
	if _, err := runTiny(t, context.Background(), c, false, nil); err != nil {
		t.Fatal(err)
	}
	ckDir := filepath.Join(c.Out, checkpoint.CheckpointDir)
	debris := map[string]string{
		filepath.Join(ckDir, ".step-00000006.safetensors.tmp1234567"): strings.Repeat("x", 1<<16),
		filepath.Join(ckDir, ".step-00000003.safetensors.tmp42"):      "x",
		filepath.Join(c.Out, ".model-ema.safetensors.tmp987654321"):   "x",
		filepath.Join(c.Out, ".metrics.csv.tmp55"):                    "step,loss",
		filepath.Join(c.Out, ".config.json.tmp7"):                     "{",
	}
	// Files that only look alike, or are the temporaries of something else written into the
	// directory, stay.
	others := map[string]string{
		filepath.Join(c.Out, ".avg.safetensors.tmp123"):         "someone else's",
		filepath.Join(c.Out, "notes.txt"):                       "mine",
		filepath.Join(ckDir, ".step-00000006.safetensors.tmpx"): "not CreateTemp's",
		filepath.Join(ckDir, "step-00000006.safetensors.tmp12"): "no leading dot",
		filepath.Join(ckDir, ".other.safetensors.tmp12"):        "not a checkpoint's",
	}
	writeFiles(t, debris)
	writeFiles(t, others)

	rc, err := ResumeConfig(c.Out, Config{Steps: 6}, []string{"steps"})
	if err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	if _, err := runTiny(t, context.Background(), rc, true, &log); err != nil {
		t.Fatal(err)
	}
	for p := range debris {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s survived the resume (%v)", p, err)
		}
	}
	for p := range others {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s was removed: %v", p, err)
		}
	}
	if !strings.Contains(log.String(), "removed 5 temporary files") {
		t.Errorf("the log does not say how many files were removed:\n%s", log.String())
	}

	// A fresh run into a directory whose first run was killed in its first checkpoint.
	fresh := tinyConfig(t, filepath.Join(t.TempDir(), "fresh"))
	fresh.Steps, fresh.SampleN = 3, 0
	leftover := filepath.Join(fresh.Out, checkpoint.CheckpointDir, ".step-00000003.safetensors.tmp99")
	if err := os.MkdirAll(filepath.Dir(leftover), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFiles(t, map[string]string{leftover: "x"})
	if _, err := runTiny(t, context.Background(), fresh, false, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(leftover); !os.IsNotExist(err) {
		t.Errorf("%s survived a fresh start (%v)", leftover, err)
	}
}

// staleRun trains 3 steps, keeps the run's model-ema.safetensors of step 3, resumes to step 6 and
// puts the step-3 file back: what a kill between the checkpoint of step 6 and the model file
// leaves. It returns the model file the run wrote at step 6.
func staleRun(t *testing.T) (Config, []byte) {
	t.Helper()
	c := tinyConfig(t, filepath.Join(t.TempDir(), "run"))
	c.Steps, c.SampleN = 3, 0
	if _, err := runTiny(t, context.Background(), c, false, nil); err != nil {
		t.Fatal(err)
	}
	emaPath := filepath.Join(c.Out, checkpoint.EMAFile)
	old, err := os.ReadFile(emaPath)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := ResumeConfig(c.Out, Config{Steps: 6}, []string{"steps"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := runTiny(t, context.Background(), rc, true, nil); err != nil {
		t.Fatal(err)
	}
	current, err := os.ReadFile(emaPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(emaPath, old, 0o644); err != nil {
		t.Fatal(err)
	}
	return rc, current
}

// sameAsCheckpointEMA fails unless s holds the "ema." weights of checkpoint ck.
func sameAsCheckpointEMA(t *testing.T, s *checkpoint.Model, ck string) {
	t.Helper()
	f, err := checkpoint.ReadFile(ck)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range s.Net.Params() {
		want, ok := f.Lookup(checkpoint.PrefixEMA + p.Name)
		if !ok {
			t.Fatalf("%s has no %s%s", ck, checkpoint.PrefixEMA, p.Name)
		}
		for i := range p.W {
			if p.W[i] != want.Data[i] {
				t.Fatalf("%s[%d] = %v, %s has %v", p.Name, i, p.W[i], ck, want.Data[i])
			}
		}
	}
}

// TestSamplingFollowsNewestCheckpoint: a run directory whose model-ema.safetensors is a checkpoint
// behind, or missing, is sampled from its newest checkpoint's EMA weights.
func TestSamplingFollowsNewestCheckpoint(t *testing.T) {
	c, _ := staleRun(t)
	be := tensor.NewReference(1)
	ck := checkpoint.CheckpointPath(c.Out, 6)
	for _, name := range []string{"stale", "missing"} {
		if name == "missing" {
			if err := os.Remove(filepath.Join(c.Out, checkpoint.EMAFile)); err != nil {
				t.Fatal(err)
			}
		}
		s, err := checkpoint.LoadForSampling(c.Out, be, true)
		if err != nil {
			t.Fatalf("%s model file: %v", name, err)
		}
		if s.Source != ck || s.Step != 6 || !s.EMA {
			t.Fatalf("%s model file: sampled %s (step %d, EMA %v), want the EMA weights of %s", name, s.Source, s.Step, s.EMA, ck)
		}
		sameAsCheckpointEMA(t, s, ck)
	}
}

// hookWriter calls fn once, when a log line containing at is written.
type hookWriter struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	at   string
	fn   func()
	done bool
}

func (w *hookWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done && strings.Contains(string(p), w.at) {
		w.done = true
		w.fn()
	}
	return w.buf.Write(p)
}

// TestResumeRepairsModelFile: a resume rewrites a stale or missing model-ema.safetensors from the
// checkpoint before training on, so the run directory offers the weights it resumed from even if
// this segment is killed before its first checkpoint.
func TestResumeRepairsModelFile(t *testing.T) {
	for _, name := range []string{"stale", "missing"} {
		t.Run(name, func(t *testing.T) {
			c, want := staleRun(t)
			emaPath := filepath.Join(c.Out, checkpoint.EMAFile)
			if name == "missing" {
				if err := os.Remove(emaPath); err != nil {
					t.Fatal(err)
				}
			}
			rc, err := ResumeConfig(c.Out, Config{Steps: 9}, []string{"steps"})
			if err != nil {
				t.Fatal(err)
			}
			// At step 7 nothing has been saved since the resume: the model file is what setup left.
			var got []byte
			var readErr error
			log := &hookWriter{at: "step 7/9", fn: func() { got, readErr = os.ReadFile(emaPath) }}
			if _, err := Run(context.Background(), rc, Options{Resume: true, Set: tinySet(t), Backend: tensor.NewReference(2), Log: log}); err != nil {
				t.Fatal(err)
			}
			if !log.done {
				t.Fatalf("no line %q in the log:\n%s", log.at, log.buf.String())
			}
			if readErr != nil {
				t.Fatalf("model file during the resumed segment: %v", readErr)
			}
			if !bytes.Equal(got, want) {
				step := "none"
				if f, err := checkpoint.Decode(got); err == nil {
					step = f.Metadata[checkpoint.MetaStep]
				}
				t.Fatalf("model file during the resumed segment (step %s) is not the one the run wrote at step 6", step)
			}
			note := map[string]string{"stale": "was at step 3", "missing": "was missing"}[name]
			if !strings.Contains(log.buf.String(), note) {
				t.Errorf("the log does not say the model file %s:\n%s", note, log.buf.String())
			}
		})
	}
}

// TestResumeTornMetrics cuts metrics.csv inside a row, as a kill during an append does, and
// requires the resume to go on with exactly one complete row per step, the same losses as an
// uninterrupted run.
func TestResumeTornMetrics(t *testing.T) {
	root := t.TempDir()
	straight := tinyConfig(t, filepath.Join(root, "straight"))
	straight.SampleN = 0
	if _, err := runTiny(t, context.Background(), straight, false, nil); err != nil {
		t.Fatal(err)
	}
	want := lossColumn(t, straight.Out)

	for _, tail := range []string{
		"4,0.98765",                 // cut inside a row
		"4,0.9,0.001,100,1.5\n5,0.", // a complete row past the checkpoint, then a cut
		"\x00\x00\x00\x00",          // the zeros a power loss can leave
		"4,0.98765\n",               // a short row that did get its newline
	} {
		c := tinyConfig(t, filepath.Join(t.TempDir(), "run"))
		c.Model, c.Steps, c.SampleN = straight.Model, 3, 0
		if _, err := runTiny(t, context.Background(), c, false, nil); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(c.Out, checkpoint.MetricsFile)
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString(tail)
		f.Close()

		// Plots read it too.
		rows, err := ReadMetrics(path)
		if err != nil {
			t.Fatalf("tail %q: ReadMetrics: %v", tail, err)
		}
		if n := len(rows); n != 3 && n != 4 {
			t.Fatalf("tail %q: ReadMetrics: %d rows", tail, n)
		}

		rc, err := ResumeConfig(c.Out, Config{Steps: 6}, []string{"steps"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := runTiny(t, context.Background(), rc, true, nil); err != nil {
			t.Fatalf("tail %q: resume: %v", tail, err)
		}
		got := lossColumn(t, c.Out) // one row per step, in order
		if len(got) != len(want) {
			t.Fatalf("tail %q: %d rows after the resume, want %d", tail, len(got), len(want))
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("tail %q: loss of step %d: %v, uninterrupted %v", tail, i+1, got[i], want[i])
			}
		}
		b, _ := os.ReadFile(path)
		if !bytes.HasSuffix(b, []byte("\n")) || bytes.Count(b, []byte("\n")) != 7 {
			t.Fatalf("tail %q: metrics.csv after the resume:\n%s", tail, b)
		}
	}
}

// TestReadMetricsTorn: only the last line may be torn; a bad row before it is an error naming the
// file and line.
func TestReadMetricsTorn(t *testing.T) {
	path := filepath.Join(t.TempDir(), checkpoint.MetricsFile)
	head := "step,loss,lr,img_s,wall_s\n1,0.5,0.001,100,1\n"
	for _, tc := range []struct {
		body string
		rows int
		torn bool
		err  string
	}{
		{head, 1, false, ""},
		{head + "2,0.4,0.001,100,2\n", 2, false, ""},
		{head + "2,0.4,0.001,100,2", 1, true, ""}, // parses, but could be cut inside "2"
		{head + "2,0.4,0.0", 1, true, ""},
		{head + "2,0.4\n", 1, true, ""},
		{head + "2,0.4\n3,0.3,0.001,100,3\n", 0, false, "line 3"},
		{"garbage\n", 0, false, "not a metrics file"},
	} {
		writeFiles(t, map[string]string{path: tc.body})
		rows, torn, err := readMetrics(path)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), path) {
				t.Errorf("%q: error %v, want one naming %s and %q", tc.body, err, path, tc.err)
			}
			continue
		}
		if err != nil || len(rows) != tc.rows || torn != tc.torn {
			t.Errorf("%q: %d rows, torn %v, %v; want %d rows, torn %v", tc.body, len(rows), torn, err, tc.rows, tc.torn)
		}
	}
}

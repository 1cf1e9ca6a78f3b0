package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ddpm-go/ddpm/checkpoint"
	"github.com/ddpm-go/ddpm/classifier"
	"github.com/ddpm-go/ddpm/data"
	"github.com/ddpm-go/ddpm/eval/fid"
	"github.com/ddpm-go/ddpm/nn"
	"github.com/ddpm-go/ddpm/tensor"
	"github.com/ddpm-go/ddpm/tensor/dnnl"
)

// needMNIST skips a test when the MNIST files are not in the data cache (they are fetched by
// `ddpm data fetch mnist`; tests never download).
func needMNIST(t *testing.T) {
	t.Helper()
	if _, err := data.Load("mnist", "", data.Test); err != nil {
		t.Skipf("MNIST not cached: %v", err)
	}
}

// evalFixtures writes a tiny random 28x28 UNet (T = 20) and a random classifier, returning their paths.
func evalFixtures(t *testing.T) (model, clf string) {
	return evalFixturesClasses(t, 0)
}

// evalFixturesClasses is evalFixtures with a class-conditional UNet of k classes (0: unconditional).
func evalFixturesClasses(t *testing.T, k int) (model, clf string) {
	t.Helper()
	dir := t.TempDir()
	cfg := nn.Config{Name: "tiny28", ImageSize: 28, InChannels: 1, OutChannels: 1, BaseChannels: 8,
		ChannelMult: []int{1, 2}, ResBlocks: 1, Heads: 1, TimeEmbedDim: 16, SinusoidalDim: 8, Groups: 4, NumClasses: k}
	u, err := nn.New(cfg, tensor.NewReference(1), 2)
	if err != nil {
		t.Fatal(err)
	}
	model = filepath.Join(dir, "tiny.safetensors")
	meta := map[string]string{checkpoint.MetaSchedule: "linear", checkpoint.MetaTimesteps: "20", checkpoint.MetaZeroSNR: "false", checkpoint.MetaPrediction: "eps"}
	if err := checkpoint.SaveModel(model, u, meta); err != nil {
		t.Fatal(err)
	}
	c, err := classifier.New(classifier.Default(), tensor.NewReference(1), 3)
	if err != nil {
		t.Fatal(err)
	}
	clf = filepath.Join(dir, "clf.safetensors")
	if err := classifier.Save(clf, c, nil); err != nil {
		t.Fatal(err)
	}
	return model, clf
}

func fidJSON(t *testing.T, args ...string) fid.Result {
	t.Helper()
	code, out, errs := runCLI(t, append([]string{"eval", "fid"}, args...)...)
	if code != 0 {
		t.Fatalf("ddpm eval fid %s: exit %d: %s", strings.Join(args, " "), code, errs)
	}
	if strings.Count(out, "\n") != 1 {
		t.Fatalf("want one JSON line, got %q", out)
	}
	var r fid.Result
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("output is not JSON: %v: %q", err, out)
	}
	return r
}

// TestEvalFIDReproducible: the same seed gives the same numbers whatever --batch, for a model
// sampled in the command and for its images written by `ddpm sample --npz` and scored with --npz.
func TestEvalFIDReproducible(t *testing.T) {
	needMNIST(t)
	model, clf := evalFixtures(t)
	common := []string{"--ckpt", model, "--classifier", clf, "--n", "6", "--steps", "3", "--engine", "ref", "--threads", "1",
		"--ref-n", "64", "--kid-subsets", "4", "--kid-subset-size", "5", "--seed", "7"}
	a := fidJSON(t, append(common, "--batch", "6")...)
	b := fidJSON(t, append(common, "--batch", "4")...)
	a.SampleSecs, b.SampleSecs = 0, 0
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	if string(ja) != string(jb) {
		t.Errorf("--batch 6 and 4 differ:\n%s\n%s", ja, jb)
	}
	if a.N != 6 || a.RefN != 64 || len(a.Classes) != 10 || !(a.FID > 0) || !(a.Floor > 0) || a.Sampler != "ddim-3 eta=0 linspace" {
		t.Errorf("unexpected result %s", ja)
	}
	hist := 0
	for _, c := range a.Classes {
		hist += c
	}
	if hist != 6 {
		t.Errorf("class histogram %v does not sum to n", a.Classes)
	}
	npz := filepath.Join(t.TempDir(), "s.npz")
	mustSample(t, "--ckpt", model, "--n", "6", "--steps", "3", "--engine", "ref", "--seed", "7", "--npz", npz)
	c := fidJSON(t, "--npz", npz, "--classifier", clf, "--ref-n", "64", "--kid-subsets", "4", "--kid-subset-size", "5", "--seed", "7", "--engine", "ref")
	if c.FID != a.FID || c.KID != a.KID || c.Floor != a.Floor {
		t.Errorf("--npz of the same images: fid %v kid %v floor %v; sampled: %v %v %v", c.FID, c.KID, c.Floor, a.FID, a.KID, a.Floor)
	}
	if dnnl.Available() {
		// oneDNN: network calls are chunked to global indices (--chunk default 32), so the batch size
		// changes nothing there either.
		dn := []string{"--ckpt", model, "--classifier", clf, "--n", "6", "--steps", "3", "--engine", "dnnl", "--threads", "1",
			"--ref-n", "64", "--kid-subsets", "4", "--kid-subset-size", "5", "--seed", "7"}
		e := fidJSON(t, append(dn, "--batch", "6")...)
		f := fidJSON(t, append(dn, "--batch", "4")...)
		e.SampleSecs, f.SampleSecs = 0, 0
		je, _ := json.Marshal(e)
		jf, _ := json.Marshal(f)
		if string(je) != string(jf) {
			t.Errorf("dnnl --batch 6 and 4 differ:\n%s\n%s", je, jf)
		}
	}
	// --drift: one row per step and one for the output, the first at t = T-1 where x_T is pure noise.
	driftPath := filepath.Join(t.TempDir(), "drift.jsonl")
	g := fidJSON(t, append(common, "--drift", driftPath)...)
	if g.FID != a.FID {
		t.Errorf("--drift changed the FID: %v vs %v", g.FID, a.FID)
	}
	db, err := os.ReadFile(driftPath)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(db)), "\n")
	if len(lines) != 4 {
		t.Fatalf("drift: %d lines, want 3 steps and the output:\n%s", len(lines), db)
	}
	var first, last struct {
		T     int     `json:"t"`
		Ratio float64 `json:"ratio"`
	}
	if json.Unmarshal([]byte(lines[0]), &first) != nil || json.Unmarshal([]byte(lines[3]), &last) != nil {
		t.Fatalf("drift lines are not JSON:\n%s", db)
	}
	// x_T of 6 images of 784 values is N(0, 1); the forward energy at the first t is near 1.
	if first.T < 10 || math.Abs(first.Ratio-1) > 0.1 || last.T != -1 || !(last.Ratio > 0) {
		t.Errorf("drift rows: first %+v last %+v", first, last)
	}
	// PLMS needs S >= 4 to differ from DDIM (its first step and the steps onto t = 0 and the clean
	// sample are DDIM steps); the flag given last wins.
	d := fidJSON(t, append(common, "--sampler", "plms", "--steps", "5")...)
	e := fidJSON(t, append(common, "--steps", "5")...)
	if d.FID == e.FID || d.Sampler != "plms-5 linspace" {
		t.Errorf("plms-5 gives the same FID as ddim-5 (%v) or sampler %q", d.FID, d.Sampler)
	}
}

func TestEvalErrors(t *testing.T) {
	cases := map[string][]string{
		"no subcommand":       {"eval"},
		"unknown subcommand":  {"eval", "bogus"},
		"fid bad data":        {"eval", "fid", "--data", "cifar"},
		"fid n 1":             {"eval", "fid", "--n", "1"},
		"fid npz with steps":  {"eval", "fid", "--npz", "x.npz", "--steps", "10"},
		"fid bad sampler":     {"eval", "fid", "--sampler", "euler"},
		"fid eta with plms":   {"eval", "fid", "--sampler", "plms", "--eta", "0.5"},
		"fid eps-scale 0":     {"eval", "fid", "--eps-scale", "-0.5"},
		"fid npz eps-scale":   {"eval", "fid", "--npz", "x.npz", "--eps-scale", "1.01"},
		"fid confidence 0":    {"eval", "fid", "--confidence", "0"},
		"fid ref-n 1":         {"eval", "fid", "--ref-n", "1"},
		"fid kid size 1":      {"eval", "fid", "--kid-subset-size", "1"},
		"fid missing npz":     {"eval", "fid", "--npz", filepath.Join(t.TempDir(), "none.npz"), "--classifier", "x"},
		"train no out":        {"eval", "train-classifier"},
		"train bad data":      {"eval", "train-classifier", "--data", "nope", "--out", "x"},
		"classifier missing":  {"eval", "classifier", "--classifier", filepath.Join(t.TempDir(), "none")},
		"fid positional":      {"eval", "fid", "extra"},
		"fid unknown flag":    {"eval", "fid", "--bogus"},
		"fid ema and no-ema":  {"eval", "fid", "--ema", "--no-ema"},
		"fid negative thread": {"eval", "fid", "--threads", "-1"},
		"fid guidance alone":  {"eval", "fid", "--guidance", "2"},
		"fid guidance 30":     {"eval", "fid", "--class-balanced", "--guidance", "30"},
		"fid balanced npz":    {"eval", "fid", "--class-balanced", "--npz", "x.npz"},
		"guidance bad scales": {"eval", "guidance", "--scales", "1,x"},
		"guidance scale -1":   {"eval", "guidance", "--scales", "-1"},
	}
	for name, args := range cases {
		code, out, errs := runCLI(t, args...)
		if code != 2 || out != "" || strings.Count(strings.TrimSpace(errs), "\n") > 1 && name != "no subcommand" {
			t.Errorf("%s: exit %d, stdout %q, stderr %q", name, code, out, errs)
		}
	}
}

func TestEvalTable(t *testing.T) {
	dir := t.TempDir()
	lines := `{"fid":2.5,"kid":0.1,"kid_std":0.01,"n":2000,"floor":0.3,"kid_floor":0.001,"sampler":"ddim-10 eta=0 linspace"}
{"fid":1.5,"kid":0.05,"kid_std":0.01,"n":2000,"floor":0.3,"kid_floor":0.001,"sampler":"ddim-20 eta=0 linspace"}
{"fid":1.2,"kid":0.04,"kid_std":0.01,"n":2000,"floor":0.3,"kid_floor":0.001,"sampler":"dpm-solver++-10 linspace"}
{"fid":1.4,"kid":0.04,"kid_std":0.02,"n":500,"floor":0.9,"kid_floor":0.002,"sampler":"dpm-solver++-10 linspace"}
{"fid":3.0,"kid":0.03,"kid_std":0.02,"n":500,"floor":0.9,"kid_floor":0.002,"sampler":"ddpm-1000 beta"}
`
	in := writeFile(t, dir, "r.jsonl", lines)
	png := filepath.Join(dir, "p.png")
	code, out, errs := runCLI(t, "eval", "table", "--in", in, "--plot", png)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if !strings.Contains(errs, "plot: left out 1 cell(s) not at n = 2000") {
		t.Errorf("the plot does not say it left out the n = 500 cells: %q", errs)
	}
	for _, want := range []string{"| sampler | S=10 | S=20 |", "| ddim eta=0 linspace | 2.5 (KID 0.1 ± 0.01) | 1.5 (KID 0.05 ± 0.01) |",
		"| dpm-solver++ linspace | 1.2 (KID 0.04 ± 0.01) | | |", "| ddpm beta | | | 3 (KID 0.03 ± 0.02, n = 500) |",
		"at n = 2000: FID 0.3", "at n = 500: FID 0.9"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	// At one n: only those cells, unmarked.
	code, out, errs = runCLI(t, "eval", "table", "--in", in, "--n", "500")
	if code != 0 {
		t.Fatalf("--n 500: exit %d: %s", code, errs)
	}
	for _, want := range []string{"| sampler | S=10 | S=1000 |", "| dpm-solver++ linspace | 1.4 (KID 0.04 ± 0.02) | |", "| ddpm beta | | 3 (KID 0.03 ± 0.02) |"} {
		if !strings.Contains(out, want) {
			t.Errorf("--n 500 table lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "ddim") || strings.Contains(out, "n = 2000") {
		t.Errorf("--n 500 table has n = 2000 results:\n%s", out)
	}
	if code, _, _ := runCLI(t, "eval", "table", "--in", in, "--n", "7"); code != 2 {
		t.Error("--n with no results accepted")
	}
	readPNG(t, png)
	bad := writeFile(t, dir, "bad.jsonl", `{"fid":1,"sampler":"/tmp/x.npz"}`)
	if code, _, _ := runCLI(t, "eval", "table", "--in", bad); code != 2 {
		t.Error("a result without a step count accepted")
	}
}

// TestEvalGuidance: the sweep scores a class-conditional model at each scale, class-balanced (per-class
// accuracy over the requested classes), writes its table, JSON lines and plot; eval fid
// --class-balanced at one scale gives the sweep's numbers; an unconditional model is refused.
func TestEvalGuidance(t *testing.T) {
	needMNIST(t)
	model, clf := evalFixturesClasses(t, 10)
	out := t.TempDir()
	common := []string{"--ckpt", model, "--classifier", clf, "--n", "20", "--steps", "3", "--engine", "ref", "--threads", "1",
		"--ref-n", "64", "--kid-subsets", "4", "--kid-subset-size", "5", "--seed", "7"}
	code, stdout, errs := runCLI(t, append([]string{"eval", "guidance", "--scales", "0,2", "--out", out}, common...)...)
	if code != 0 {
		t.Fatalf("eval guidance: exit %d: %s", code, errs)
	}
	if !strings.Contains(stdout, "| 0 |") || !strings.Contains(stdout, "| 2 |") || !strings.Contains(stdout, "Best FID: s = ") {
		t.Errorf("table:\n%s", stdout)
	}
	b, err := os.ReadFile(filepath.Join(out, "guidance.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d JSON lines, want 2", len(lines))
	}
	var r fid.Result
	if err := json.Unmarshal([]byte(lines[1]), &r); err != nil {
		t.Fatal(err)
	}
	if r.Guidance == nil || *r.Guidance != 2 || len(r.ClassAccuracy) != 10 || r.N != 20 {
		t.Errorf("second line: guidance %v, %d class accuracies, n %d", r.Guidance, len(r.ClassAccuracy), r.N)
	}
	// eval fid --class-balanced at s = 2 gives the sweep's numbers.
	one := fidJSON(t, append(common, "--class-balanced", "--guidance", "2")...)
	if one.FID != r.FID || one.Accuracy != r.Accuracy {
		t.Errorf("eval fid --class-balanced: FID %v accuracy %v, the sweep's %v %v", one.FID, one.Accuracy, r.FID, r.Accuracy)
	}
	for _, f := range []string{"guidance.md", "guidance.png"} {
		if st, err := os.Stat(filepath.Join(out, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
	// --class-prior (classes in the test split's proportions) is accepted by the sweep and gives
	// eval fid's numbers with the same flags.
	code, stdout, errs = runCLI(t, append([]string{"eval", "guidance", "--scales", "2", "--class-prior"}, common...)...)
	if code != 0 {
		t.Fatalf("eval guidance --class-prior: exit %d: %s", code, errs)
	}
	prior := fidJSON(t, append(common, "--class-balanced", "--class-prior", "--guidance", "2")...)
	if !strings.Contains(stdout, fmt.Sprintf("%.3f", prior.FID)) {
		t.Errorf("eval guidance --class-prior table does not show eval fid's FID %.3f:\n%s", prior.FID, stdout)
	}
	plain, _ := evalFixtures(t)
	code, _, errs = runCLI(t, append([]string{"eval", "fid", "--class-balanced"}, append(common, "--ckpt", plain)...)...)
	if code == 0 || !strings.Contains(errs, "unconditional") {
		t.Errorf("unconditional model, --class-balanced: exit %d: %s", code, errs)
	}
}

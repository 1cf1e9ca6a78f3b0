package main

import (
	"bytes"
	"encoding/csv"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// runCLI runs the ddpm command in-process and returns its exit status, stdout and stderr.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const mixture2D = `{"weights":[0.6,0.4],"means":[[-1.5,0],[1.5,0.5]],"stds":[0.3,0.4]}`

func parseCSV(t *testing.T, s string) [][]string {
	t.Helper()
	recs, err := csv.NewReader(strings.NewReader(s)).ReadAll()
	if err != nil {
		t.Fatalf("output is not CSV: %v\n%s", err, s)
	}
	return recs
}

func TestToySamplesCSV(t *testing.T) {
	dir := t.TempDir()
	mix := writeFile(t, dir, "mix.json", mixture2D)
	code, out, errs := runCLI(t, "toy", "--mixture", mix, "--sampler", "ddim", "--steps", "20", "--n", "7", "--seed", "3")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	recs := parseCSV(t, out)
	if len(recs) != 8 || strings.Join(recs[0], ",") != "d0,d1" {
		t.Fatalf("got %d lines, header %v; want 8 and d0,d1", len(recs), recs[0])
	}
	// DDIM eta=0 from a given x_T is reproducible to float precision: feed the output of one run as
	// --init twice and compare the text.
	init := writeFile(t, dir, "xt.csv", out)
	_, a, _ := runCLI(t, "toy", "--mixture", mix, "--sampler", "ddim", "--init", init, "--seed", "1")
	_, b, errs := runCLI(t, "toy", "--mixture", mix, "--sampler", "ddim", "--init", init, "--seed", "2")
	if a != b || len(parseCSV(t, a)) != 8 {
		t.Errorf("eta=0 from the same x_T differs between seeds:\n%s\n%s\n%s", a, b, errs)
	}
	// The multistep solvers are deterministic too.
	for _, name := range []string{"dpm-solver++", "plms", "dpm-solver++3m", "ipndm", "ipndm-v", "unipc"} {
		_, a, _ := runCLI(t, "toy", "--mixture", mix, "--sampler", name, "--steps", "10", "--init", init, "--seed", "1")
		_, b, errs := runCLI(t, "toy", "--mixture", mix, "--sampler", name, "--steps", "10", "--init", init, "--seed", "2")
		if a != b || len(parseCSV(t, a)) != 8 {
			t.Errorf("%s from the same x_T differs between seeds:\n%s\n%s\n%s", name, a, b, errs)
		}
	}
	// --out and --plot write files; --stats reports on stderr.
	outPath, plotPath := filepath.Join(dir, "s.csv"), filepath.Join(dir, "s.png")
	code, out, errs = runCLI(t, "toy", "--mixture", mix, "--timesteps", "200", "--n", "300", "--out", outPath, "--plot", plotPath, "--stats")
	if code != 0 || out != "" || !strings.Contains(errs, "max |weight error|") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errs)
	}
	b2, err := os.ReadFile(outPath)
	if err != nil || len(parseCSV(t, string(b2))) != 301 {
		t.Fatalf("--out file: %v", err)
	}
	f, err := os.Open(plotPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := png.Decode(f); err != nil {
		t.Errorf("--plot file is not a PNG: %v", err)
	}
}

// TestInvalidInput: every bad input exits with status 2 and exactly one line on stderr.
func TestInvalidInput(t *testing.T) {
	dir := t.TempDir()
	mix := writeFile(t, dir, "mix.json", mixture2D)
	mix3 := writeFile(t, dir, "mix3.json", `{"weights":[1],"means":[[0,0,0]],"stds":[1]}`)
	badMix := map[string]string{
		"not json":       `{"weights":`,
		"weights sum":    `{"weights":[0.5,0.6],"means":[[0],[1]],"stds":[1,1]}`,
		"count mismatch": `{"weights":[1],"means":[[0],[1]],"stds":[1]}`,
		"ragged means":   `{"weights":[0.5,0.5],"means":[[0,1],[1]],"stds":[1,1]}`,
		"zero std":       `{"weights":[1],"means":[[0]],"stds":[0]}`,
		"unknown field":  `{"weights":[1],"means":[[0]],"stds":[1],"std":[1]}`,
	}
	badCSV := map[string]string{
		"bad header":  "x,y\n1,2\n",
		"short row":   "d0,d1\n1\n",
		"not number":  "d0,d1\n1,abc\n",
		"NaN":         "d0,d1\n1,NaN\n",
		"no rows":     "d0,d1\n",
		"empty":       "",
		"3 columns":   "d0,d1,d2\n1,2,3\n",
		"bare quote":  "d0,d1\n1,\"2\n",
		"extra field": "d0,d1\n1,2,3\n",
	}
	cases := map[string][]string{
		"schedule unknown":         {"schedule", "--schedule", "quadratic"},
		"schedule T=0":             {"schedule", "--timesteps", "0"},
		"schedule bad int":         {"schedule", "--timesteps", "ten"},
		"schedule positional":      {"schedule", "extra"},
		"schedule unknown flag":    {"schedule", "--steps", "3"},
		"toy no mixture":           {"toy"},
		"toy missing mixture":      {"toy", "--mixture", filepath.Join(dir, "none.json")},
		"toy unknown schedule":     {"toy", "--mixture", mix, "--schedule", "quadratic"},
		"toy steps 0":              {"toy", "--mixture", mix, "--sampler", "ddim", "--steps", "0"},
		"toy steps > T":            {"toy", "--mixture", mix, "--sampler", "ddim", "--steps", "1001"},
		"toy ddpm steps > T":       {"toy", "--mixture", mix, "--timesteps", "100", "--steps", "101"},
		"toy eta < 0":              {"toy", "--mixture", mix, "--sampler", "ddim", "--eta", "-0.5"},
		"toy eta NaN":              {"toy", "--mixture", mix, "--sampler", "ddim", "--eta", "NaN"},
		"toy eta with ddpm":        {"toy", "--mixture", mix, "--eta", "1"},
		"toy variance with ddim":   {"toy", "--mixture", mix, "--sampler", "ddim", "--variance", "beta"},
		"toy sigma-hat and eta":    {"toy", "--mixture", mix, "--sampler", "ddim", "--sigma-hat", "--eta", "0.5"},
		"toy unknown sampler":      {"toy", "--mixture", mix, "--sampler", "euler"},
		"toy eta with plms":        {"toy", "--mixture", mix, "--sampler", "plms", "--eta", "0.5"},
		"toy variance with dpm":    {"toy", "--mixture", mix, "--sampler", "dpm-solver++", "--variance", "beta"},
		"toy dpm steps > T":        {"toy", "--mixture", mix, "--sampler", "dpm-solver++", "--steps", "1001"},
		"toy order with ddim":      {"toy", "--mixture", mix, "--sampler", "ddim", "--order", "2"},
		"toy unipc order 4":        {"toy", "--mixture", mix, "--sampler", "unipc", "--order", "4"},
		"toy ipndm order 5":        {"toy", "--mixture", mix, "--sampler", "ipndm", "--order", "5"},
		"toy unknown variance":     {"toy", "--mixture", mix, "--variance", "small"},
		"toy unknown spacing":      {"toy", "--mixture", mix, "--spacing", "even"},
		"toy unknown prediction":   {"toy", "--mixture", mix, "--prediction", "score"},
		"toy zero-snr with eps":    {"toy", "--mixture", mix, "--zero-snr"},
		"toy n 0":                  {"toy", "--mixture", mix, "--n", "0"},
		"toy plot 3-D":             {"toy", "--mixture", mix3, "--n", "3", "--plot", filepath.Join(dir, "p.png")},
		"toy unwritable out":       {"toy", "--mixture", mix, "--n", "3", "--timesteps", "10", "--out", filepath.Join(dir, "no", "dir.csv")},
		"toy init n mismatch":      {"toy", "--mixture", mix, "--init", writeFile(t, dir, "ok.csv", "d0,d1\n1,2\n"), "--n", "5"},
		"toy init missing":         {"toy", "--mixture", mix, "--init", filepath.Join(dir, "none.csv")},
		"toy bad seed":             {"toy", "--mixture", mix, "--seed", "-1"},
		"toy positional":           {"toy", "--mixture", mix, "extra"},
		"toy timesteps 0":          {"toy", "--mixture", mix, "--timesteps", "0"},
		"toy steps with T=10 ddim": {"toy", "--mixture", mix, "--sampler", "ddim", "--timesteps", "10"},
	}
	for name, content := range badMix {
		cases["mixture "+name] = []string{"toy", "--mixture", writeFile(t, dir, strings.ReplaceAll(name, " ", "_")+".json", content)}
	}
	for name, content := range badCSV {
		cases["init "+name] = []string{"toy", "--mixture", mix, "--init", writeFile(t, dir, strings.ReplaceAll(name, " ", "_")+".csv", content)}
	}
	for name, args := range cases {
		if name == "toy steps with T=10 ddim" {
			// Not an error: the ddim default of 50 steps is capped at T.
			if code, _, errs := runCLI(t, append(args, "--n", "2")...); code != 0 {
				t.Errorf("%s: exit %d: %s", name, code, errs)
			}
			continue
		}
		code, out, errs := runCLI(t, args...)
		if code != 2 || strings.Count(errs, "\n") != 1 || !strings.HasPrefix(errs, "ddpm ") || out != "" {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want 2, nothing, one line", name, code, out, errs)
		}
	}
}

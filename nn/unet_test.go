package nn_test

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/ddpm-go/ddpm/checkpoint"
	"github.com/ddpm-go/ddpm/nn"
	"github.com/ddpm-go/ddpm/tensor"
)

// TestUNetSParams compares unet-s with the peer's state_dict, written by scripts/torch/params_list.py:
// the same names, shapes and order, 1,741,025 parameters in all.
func TestUNetSParams(t *testing.T) {
	cfg, err := nn.Named("unet-s")
	if err != nil {
		t.Fatal(err)
	}
	u, err := nn.New(cfg, tensor.NewReference(1), 1)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open("testdata/unet_s_params.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var want []string
	total := -1
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, shape, _ := strings.Cut(sc.Text(), " ")
		if name == "total" {
			total, _ = strconv.Atoi(shape)
			continue
		}
		want = append(want, name+" "+shape)
	}
	var got []string
	for _, p := range u.Params() {
		dims := make([]string, len(p.Shape))
		for i, d := range p.Shape {
			dims[i] = strconv.Itoa(d)
		}
		got = append(got, p.Name+" "+strings.Join(dims, ","))
	}
	if !slices.Equal(got, want) {
		for i := range max(len(got), len(want)) {
			var g, w string
			if i < len(got) {
				g = got[i]
			}
			if i < len(want) {
				w = want[i]
			}
			if g != w {
				t.Errorf("param %d: got %q, peer has %q", i, g, w)
			}
		}
	}
	if u.NumParams() != 1741025 || total != 1741025 {
		t.Errorf("NumParams = %d, peer file total %d, want 1741025", u.NumParams(), total)
	}
}

// relErr is max|got-want| / max|want| (the absolute error when want is all zero; NaN counts as Inf).
func relErr(got, want []float32) float64 {
	if len(got) != len(want) {
		return math.Inf(1)
	}
	var d, m float64
	for i := range want {
		if math.IsNaN(float64(got[i])) {
			return math.Inf(1)
		}
		d = math.Max(d, math.Abs(float64(got[i])-float64(want[i])))
		m = math.Max(m, math.Abs(float64(want[i])))
	}
	if m == 0 {
		return d
	}
	return d / m
}

// TestUNetSMatchesPyTorch runs the peer's weights, input and timesteps (scripts/torch/make_fixture.py)
// through our unet-s on the reference backend and compares output, loss and gradients with PyTorch's.
// Tolerances: max|diff|/max|torch| < 1e-4 for the output and loss, < 1e-3 for gradients (float32
// sums taken in a different order). Measured: about 2e-6 for both.
func TestUNetSMatchesPyTorch(t *testing.T) {
	checkFixture(t, tensor.NewReference(0), 1e-4, 1e-3)
}

// checkFixture runs the PyTorch fixture on be; tolOut bounds the output's and the loss's relative
// error, tolGrad the input's and parameters' gradients'.
func checkFixture(t *testing.T, be tensor.Backend, tolOut, tolGrad float64) {
	fix, err := checkpoint.ReadFile("testdata/unet_s_fixture.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := nn.Named("unet-s")
	u, err := nn.New(cfg, be, 7)
	if err != nil {
		t.Fatal(err)
	}
	if err := fix.Assign(false, checkpoint.Group{Params: u.Params()}); err != nil {
		t.Fatal(err)
	}
	get := func(name string) checkpoint.Tensor {
		v, ok := fix.Lookup(name)
		if !ok {
			t.Fatalf("fixture has no %q", name)
		}
		return v
	}
	in, tt := get("input"), get("t")
	ts := make([]int, len(tt.Data))
	for i, v := range tt.Data {
		ts[i] = int(v)
	}
	x := be.Upload(in.Shape, in.Data)
	eps, err := u.Forward(x, ts, true)
	if err != nil {
		t.Fatal(err)
	}
	eOut := relErr(be.Read(eps), get("output").Data)
	if eOut > tolOut {
		t.Errorf("output rel err %.3g > %g", eOut, tolOut)
	}
	target := get("target")
	loss, dEps := be.MSE(eps, be.Upload(target.Shape, target.Data))
	if want := float64(get("loss").Data[0]); math.Abs(loss-want) > tolOut*want {
		t.Errorf("loss %v, torch %v", loss, want)
	}
	u.ZeroGrad()
	dx, err := u.Backward(dEps)
	if err != nil {
		t.Fatal(err)
	}
	eIn := relErr(be.Read(dx), get("grad.input").Data)
	if eIn > tolGrad {
		t.Errorf("grad.input rel err %.3g > %g", eIn, tolGrad)
	}
	byName := map[string]*tensor.Param{}
	for _, p := range u.Params() {
		byName[p.Name] = p
	}
	n, worst := 0, 0.0
	for _, ft := range fix.Tensors {
		name, ok := strings.CutPrefix(ft.Name, "grad.")
		if !ok || name == "input" {
			continue
		}
		p := byName[name]
		if p == nil {
			t.Fatalf("fixture gradient for unknown param %q", name)
		}
		e := relErr(p.G, ft.Data)
		worst = math.Max(worst, e)
		if e > tolGrad {
			t.Errorf("grad %s rel err %.3g > %g", name, e, tolGrad)
		}
		n++
	}
	if n < 10 {
		t.Fatalf("only %d parameter gradients in the fixture", n)
	}
	t.Logf("%s/%s: output rel err %.3g, loss %.6g, input grad %.3g, %d param grads worst %.3g",
		be.Name(), be.Precision(), eOut, loss, eIn, n, worst)
}

func TestConfigErrors(t *testing.T) {
	cases := []struct {
		json, want string
	}{
		{`{"image_size":28}`, "must be positive"},
		{`{"image_sise":28}`, "unknown field"},
		{`{"image_size":30,"in_channels":1,"out_channels":1,"base_channels":32,"channel_mult":[1,2,4],"res_blocks":1,"heads":1,"time_embed_dim":64,"sinusoidal_dim":16,"groups":8}`, "divisible by 4"},
		{`{"image_size":28,"in_channels":1,"out_channels":1,"base_channels":30,"channel_mult":[1,2],"res_blocks":1,"heads":1,"time_embed_dim":64,"sinusoidal_dim":16,"groups":8}`, "groups"},
		{`{"image_size":28,"in_channels":1,"out_channels":1,"base_channels":32,"channel_mult":[1,2],"res_blocks":1,"attn_resolutions":[7],"heads":1,"time_embed_dim":64,"sinusoidal_dim":16,"groups":8}`, "attention resolution 7"},
		{`{"image_size":28,"in_channels":1,"out_channels":1,"base_channels":32,"channel_mult":[1,2],"res_blocks":1,"attn_resolutions":[14],"heads":3,"time_embed_dim":64,"sinusoidal_dim":16,"groups":8}`, "heads"},
		{`{"image_size":28,"in_channels":1,"out_channels":1,"base_channels":32,"channel_mult":[1,2],"res_blocks":1,"heads":1,"dropout":1,"time_embed_dim":64,"sinusoidal_dim":16,"groups":8}`, "dropout"},
	}
	for _, c := range cases {
		if _, err := nn.ParseConfig([]byte(c.json)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseConfig(%s) = %v, want error containing %q", c.json, err, c.want)
		}
	}
	if _, err := nn.LoadConfig("no-such-model"); err == nil || !strings.Contains(err.Error(), "unet-s") {
		t.Errorf("LoadConfig of unknown name: %v", err)
	}
	cfg, _ := nn.Named("unet-s")
	back, err := nn.ParseConfig(cfg.JSON())
	if err != nil || fmt.Sprint(back) != fmt.Sprint(cfg) {
		t.Errorf("JSON round trip: %v %+v", err, back)
	}
}

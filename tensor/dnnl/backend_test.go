//go:build cgo

package dnnl

import (
	"fmt"
	"math"
	"runtime"
	"testing"
	"time"

	"github.com/ddpm-go/ddpm/tensor"
)

// Tolerances against the reference backend, as max|got-want| / max(1e-3, max|want|) per output:
// fp32 differs only in summation order; bf16 rounds every activation to 8 mantissa bits
// (relative error 2^-9 per rounding, a few roundings deep).
const (
	tolFP32 = 2e-5
	tolBF16 = 1.5e-2
)

type prec struct {
	name string
	tol  float64
}

var precisions = []prec{{"fp32", tolFP32}, {"bf16", tolBF16}}

func newBackend(t testing.TB, p string) *Backend {
	t.Helper()
	be, err := New(Options{Precision: p, Threads: 2})
	if err != nil {
		t.Fatalf("New(%s): %v", p, err)
	}
	t.Cleanup(func() { be.(*Backend).Close() })
	return be.(*Backend)
}

// relErr is max|got-want| over max(1e-3, max|want|).
func relErr(got, want []float32) float64 {
	if len(got) != len(want) {
		return math.Inf(1)
	}
	var d, m float64
	for i := range want {
		d = math.Max(d, math.Abs(float64(got[i])-float64(want[i])))
		m = math.Max(m, math.Abs(float64(want[i])))
	}
	return d / math.Max(m, 1e-3)
}

// params returns copies of ps with gradients preset to known values, so tests see accumulation.
func cloneParams(ps []*tensor.Param) []*tensor.Param {
	out := make([]*tensor.Param, len(ps))
	for i, p := range ps {
		if p == nil {
			continue
		}
		q := tensor.NewParam(p.Name, p.Shape...)
		copy(q.W, p.W)
		copy(q.G, p.G)
		out[i] = q
	}
	return out
}

func randParam(name string, seed uint64, shape ...int) *tensor.Param {
	p := tensor.RandParam(name, 0.5, seed, shape...)
	copy(p.G, tensor.RandN(shape, seed+1000))
	return p
}

// opCase runs one op (forward and backward) on a backend, given uploaded inputs and its own copies of
// the params, and returns every output read back as float32 in NCHW order. Param gradients are
// compared separately.
type opCase struct {
	name   string
	inputs [][]int // shapes of random inputs
	params []*tensor.Param
	run    func(be tensor.Backend, in []*tensor.Tensor, ps []*tensor.Param) []*tensor.Tensor
}

func conv(n, cin, h, w, cout, k, stride, pad int, bias bool) opCase {
	c := tensor.Conv{Stride: stride, Pad: pad}
	ho, wo := c.OutSize(h, k), c.OutSize(w, k)
	ps := []*tensor.Param{randParam("w", 1, cout, cin, k, k), nil}
	if bias {
		ps[1] = randParam("b", 2, cout)
	}
	return opCase{
		name:   fmt.Sprintf("Conv2D/%dx%dx%dx%d-%d-k%ds%dp%d-bias%v", n, cin, h, w, cout, k, stride, pad, bias),
		inputs: [][]int{{n, cin, h, w}, {n, cout, ho, wo}},
		params: ps,
		run: func(be tensor.Backend, in []*tensor.Tensor, ps []*tensor.Param) []*tensor.Tensor {
			y := be.Conv2D(in[0], ps[0], ps[1], c)
			dx := be.Conv2DBackward(in[1], in[0], ps[0], ps[1], c)
			return []*tensor.Tensor{y, dx}
		},
	}
}

func cases() []opCase {
	gn := func(n, c, h, w, g int) opCase {
		return opCase{
			name:   fmt.Sprintf("GroupNorm/%dx%dx%dx%d-g%d", n, c, h, w, g),
			inputs: [][]int{{n, c, h, w}, {n, c, h, w}},
			params: []*tensor.Param{randParam("gamma", 3, c), randParam("beta", 4, c)},
			run: func(be tensor.Backend, in []*tensor.Tensor, ps []*tensor.Param) []*tensor.Tensor {
				y, st := be.GroupNorm(in[0], ps[0], ps[1], g, 1e-5)
				dx := be.GroupNormBackward(in[1], in[0], st, ps[0], ps[1], g)
				return []*tensor.Tensor{y, st, dx}
			},
		}
	}
	return []opCase{
		conv(3, 5, 9, 7, 6, 3, 1, 1, true),
		conv(3, 3, 13, 11, 17, 7, 2, 3, true),
		conv(2, 16, 8, 8, 32, 1, 1, 0, false),
		conv(3, 32, 14, 14, 32, 3, 2, 1, true),
		conv(3, 1, 28, 28, 32, 3, 1, 1, true),
		conv(3, 32, 28, 28, 1, 3, 1, 1, true),
		conv(4, 64, 14, 14, 64, 3, 1, 1, true),
		conv(4, 128, 7, 7, 128, 3, 1, 1, true),
		{
			name: "Linear/5x7->9", inputs: [][]int{{5, 7}, {5, 9}},
			params: []*tensor.Param{randParam("w", 5, 9, 7), randParam("b", 6, 9)},
			run: func(be tensor.Backend, in []*tensor.Tensor, ps []*tensor.Param) []*tensor.Tensor {
				return []*tensor.Tensor{be.Linear(in[0], ps[0], ps[1]), be.LinearBackward(in[1], in[0], ps[0], ps[1])}
			},
		},
		{
			name: "Linear/3x64->256-nobias", inputs: [][]int{{3, 64}, {3, 256}},
			params: []*tensor.Param{randParam("w", 7, 256, 64), nil},
			run: func(be tensor.Backend, in []*tensor.Tensor, ps []*tensor.Param) []*tensor.Tensor {
				return []*tensor.Tensor{be.Linear(in[0], ps[0], nil), be.LinearBackward(in[1], in[0], ps[0], nil)}
			},
		},
		gn(3, 12, 5, 7, 4),
		gn(2, 96, 14, 14, 8),
		gn(3, 8, 4, 4, 8),
		{
			name: "GroupNorm/rank3", inputs: [][]int{{3, 8, 10}, {3, 8, 10}},
			params: []*tensor.Param{randParam("gamma", 3, 8), randParam("beta", 4, 8)},
			run: func(be tensor.Backend, in []*tensor.Tensor, ps []*tensor.Param) []*tensor.Tensor {
				y, st := be.GroupNorm(in[0], ps[0], ps[1], 2, 1e-5)
				return []*tensor.Tensor{y, st, be.GroupNormBackward(in[1], in[0], st, ps[0], ps[1], 2)}
			},
		},
		{
			name: "GroupNorm/rank2", inputs: [][]int{{5, 12}, {5, 12}},
			params: []*tensor.Param{randParam("gamma", 3, 12), randParam("beta", 4, 12)},
			run: func(be tensor.Backend, in []*tensor.Tensor, ps []*tensor.Param) []*tensor.Tensor {
				y, st := be.GroupNorm(in[0], ps[0], ps[1], 3, 1e-5)
				return []*tensor.Tensor{y, st, be.GroupNormBackward(in[1], in[0], st, ps[0], ps[1], 3)}
			},
		},
		{
			name: "SiLU", inputs: [][]int{{3, 5, 7, 9}, {3, 5, 7, 9}},
			run: func(be tensor.Backend, in []*tensor.Tensor, _ []*tensor.Param) []*tensor.Tensor {
				return []*tensor.Tensor{be.SiLU(in[0]), be.SiLUBackward(in[1], in[0])}
			},
		},
		{
			name: "SiLU/2d", inputs: [][]int{{3, 70}, {3, 70}},
			run: func(be tensor.Backend, in []*tensor.Tensor, _ []*tensor.Param) []*tensor.Tensor {
				return []*tensor.Tensor{be.SiLU(in[0]), be.SiLUBackward(in[1], in[0])}
			},
		},
		{
			name: "Add+Scale", inputs: [][]int{{3, 5, 7, 9}, {3, 5, 7, 9}},
			run: func(be tensor.Backend, in []*tensor.Tensor, _ []*tensor.Param) []*tensor.Tensor {
				return []*tensor.Tensor{be.Add(in[0], in[1]), be.Scale(in[0], -0.7)}
			},
		},
		{
			name: "AddChannel+SumHW", inputs: [][]int{{3, 5, 7, 9}, {3, 5}},
			run: func(be tensor.Backend, in []*tensor.Tensor, _ []*tensor.Param) []*tensor.Tensor {
				return []*tensor.Tensor{be.AddChannel(in[0], in[1]), be.SumHW(in[0])}
			},
		},
		{
			name: "Concat", inputs: [][]int{{3, 5, 7, 9}, {3, 6, 7, 9}, {3, 11, 7, 9}},
			run: func(be tensor.Backend, in []*tensor.Tensor, _ []*tensor.Param) []*tensor.Tensor {
				da, db := be.ConcatBackward(in[2], 5)
				return []*tensor.Tensor{be.Concat(in[0], in[1]), da, db}
			},
		},
		{
			name: "Upsample2x", inputs: [][]int{{3, 5, 7, 9}, {3, 5, 14, 18}},
			run: func(be tensor.Backend, in []*tensor.Tensor, _ []*tensor.Param) []*tensor.Tensor {
				return []*tensor.Tensor{be.Upsample2x(in[0]), be.Upsample2xBackward(in[1])}
			},
		},
		{
			name: "MSE", inputs: [][]int{{3, 1, 7, 9}, {3, 1, 7, 9}},
			run: func(be tensor.Backend, in []*tensor.Tensor, _ []*tensor.Param) []*tensor.Tensor {
				loss, d := be.MSE(in[0], in[1])
				return []*tensor.Tensor{be.Upload([]int{1}, []float32{float32(loss)}), d}
			},
		},
		{
			name: "Attention", inputs: [][]int{{2, 8, 3, 3}, {2, 8, 3, 3}, {2, 8, 3, 3}, {2, 8, 3, 3}},
			run: func(be tensor.Backend, in []*tensor.Tensor, _ []*tensor.Param) []*tensor.Tensor {
				o, s := be.Attention(in[0], in[1], in[2], 2)
				dq, dk, dv := be.AttentionBackward(in[3], in[0], in[1], in[2], s, 2)
				return []*tensor.Tensor{o, dq, dk, dv}
			},
		},
		{
			name: "Attention/3x32x7x7-h4", inputs: [][]int{{3, 32, 7, 7}, {3, 32, 7, 7}, {3, 32, 7, 7}, {3, 32, 7, 7}},
			run: func(be tensor.Backend, in []*tensor.Tensor, _ []*tensor.Param) []*tensor.Tensor {
				o, s := be.Attention(in[0], in[1], in[2], 4)
				dq, dk, dv := be.AttentionBackward(in[3], in[0], in[1], in[2], s, 4)
				return []*tensor.Tensor{o, dq, dk, dv}
			},
		},
		{
			name: "Dropout", inputs: [][]int{{2, 8, 3, 3}, {2, 8, 3, 3}},
			run: func(be tensor.Backend, in []*tensor.Tensor, _ []*tensor.Param) []*tensor.Tensor {
				y, m := be.Dropout(in[0], 0.3, 7)
				return []*tensor.Tensor{y, be.DropoutBackward(in[1], m)}
			},
		},
	}
}

// TestOpsMatchReference runs every op forward and backward on random inputs with odd shapes on the
// reference and on this backend in both precisions, comparing outputs and accumulated param gradients.
func TestOpsMatchReference(t *testing.T) {
	ref := tensor.NewReference(2)
	for _, p := range precisions {
		be := newBackend(t, p.name)
		for ci, c := range cases() {
			t.Run(p.name+"/"+c.name, func(t *testing.T) {
				var inRef, inBe []*tensor.Tensor
				for i, s := range c.inputs {
					d := tensor.RandN(s, uint64(100*ci+i))
					inRef = append(inRef, ref.Upload(s, d))
					inBe = append(inBe, be.Upload(s, d))
				}
				pRef, pBe := cloneParams(c.params), cloneParams(c.params)
				want := c.run(ref, inRef, pRef)
				got := c.run(be, inBe, pBe)
				for i := range want {
					if !sameShape(got[i].Shape, want[i].Shape) {
						t.Fatalf("output %d: shape %v, want %v", i, got[i].Shape, want[i].Shape)
					}
					e := relErr(be.Read(got[i]), ref.Read(want[i]))
					t.Logf("output %d: relative error %.3g", i, e)
					if e > p.tol {
						t.Errorf("output %d %v: relative error %.3g > %.3g", i, want[i].Shape, e, p.tol)
					}
				}
				for i := range pRef {
					if pRef[i] == nil {
						continue
					}
					if e := relErr(pBe[i].G, pRef[i].G); e > p.tol {
						t.Errorf("param %s grad: relative error %.3g > %.3g", pRef[i].Name, e, p.tol)
					}
				}
				for _, x := range append(inBe, got...) {
					be.Release(x)
				}
			})
		}
	}
}

// TestGroupNormSiLU checks the fused GroupNorm+SiLU kernels, forward and backward, against GroupNorm
// then SiLU on the reference, on the shapes TestLazyGroupNorm leaves out: one pixel, and three or
// eight channels a group. The network reaches the kernels only through lazy.go's fusion, so this
// does too.
func TestGroupNormSiLU(t *testing.T) {
	ref := tensor.NewReference(2)
	for _, p := range precisions {
		be := newBackend(t, p.name)
		for _, s := range [][]int{{3, 32, 6, 5}, {2, 12, 1, 1}} {
			xd, dyd := tensor.RandN(s, 1), tensor.RandN(s, 2)
			g, bt := randParam("g", 2, s[1]), randParam("b", 3, s[1])
			gr, btr := cloneParams([]*tensor.Param{g, bt})[0], cloneParams([]*tensor.Param{g, bt})[1]
			// In the activation type, like a conv output: the case lazy.go fuses.
			x, dy := be.Scale(be.Upload(s, xd), 1), be.Scale(be.Upload(s, dyd), 1)
			a0, st := be.GroupNorm(x, g, bt, 4, 1e-5)
			y := be.SiLU(a0)
			dx := be.GroupNormBackward(be.SiLUBackward(dy, a0), x, st, g, bt, 4)

			xr, dyr := ref.Upload(s, xd), ref.Upload(s, dyd)
			nr, str := ref.GroupNorm(xr, gr, btr, 4, 1e-5)
			yr := ref.SiLU(nr)
			dxr := ref.GroupNormBackward(ref.SiLUBackward(dyr, nr), xr, str, gr, btr, 4)
			for _, c := range []struct {
				name      string
				got, want []float32
			}{
				{"y", be.Read(y), ref.Read(yr)}, {"dx", be.Read(dx), ref.Read(dxr)},
				{"dgamma", g.G, gr.G}, {"dbeta", bt.G, btr.G},
			} {
				if e := relErr(c.got, c.want); e > p.tol {
					t.Errorf("%s %v %s: relative error %.3g > %.3g", p.name, s, c.name, e, p.tol)
				}
			}
		}
	}
}

// TestWeightCacheFollowsVersion checks that a cached reordered weight is refreshed exactly when
// Param.Version changes.
func TestWeightCacheFollowsVersion(t *testing.T) {
	be := newBackend(t, "fp32")
	s := []int{2, 4, 5, 5}
	x := be.Upload(s, tensor.RandN(s, 1))
	w := randParam("w", 2, 3, 4, 3, 3)
	c := tensor.Conv{Stride: 1, Pad: 1}
	y0 := be.Read(be.Conv2D(x, w, nil, c))
	for i := range w.W {
		w.W[i] *= 2
	}
	if y1 := be.Read(be.Conv2D(x, w, nil, c)); relErr(y1, y0) != 0 {
		t.Fatalf("weights changed without a Version bump were picked up: the cache is not used")
	}
	w.Version++
	y2 := be.Read(be.Conv2D(x, w, nil, c))
	for i := range y0 {
		y0[i] *= 2
	}
	if e := relErr(y2, y0); e > tolFP32 {
		t.Fatalf("after Version bump: relative error %.3g vs doubled output", e)
	}
}

// TestUploadRead checks the layout round trip is exact and that shape errors panic with the op name.
func TestUploadRead(t *testing.T) {
	for _, p := range precisions {
		be := newBackend(t, p.name)
		for _, s := range [][]int{{3, 5, 7, 2}, {4, 9}, {6}} {
			d := tensor.RandN(s, 9)
			if e := relErr(be.Read(be.Upload(s, d)), d); e != 0 {
				t.Errorf("%s %v: round trip error %g", p.name, s, e)
			}
		}
	}
	be := newBackend(t, "fp32")
	defer func() {
		if r := recover(); r == nil || !containsStr(fmt.Sprint(r), "Add") {
			t.Fatalf("Add of mismatched shapes: panic %v, want a message naming Add", r)
		}
	}()
	be.Add(be.Upload([]int{1, 2, 3, 4}, make([]float32, 24)), be.Upload([]int{1, 2, 4, 3}, make([]float32, 24)))
}

func containsStr(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

// TestDo checks that ops inside Do run inline and give the same results, and that a panic inside
// Do reaches the caller.
func TestDo(t *testing.T) {
	be := newBackend(t, "fp32")
	s := []int{2, 3, 4, 5}
	x := be.Upload(s, tensor.RandN(s, 1))
	want := be.Read(be.SiLU(x))
	var got []float32
	be.Do(func() { got = be.Read(be.SiLU(x)) })
	if e := relErr(got, want); e != 0 {
		t.Fatalf("SiLU inside Do differs: %g", e)
	}
	defer func() {
		if r := recover(); r == nil {
			t.Fatal("a shape panic inside Do did not reach the caller")
		}
		// The backend must still work after the panic.
		if e := relErr(be.Read(be.SiLU(x)), want); e != 0 {
			t.Fatalf("after a panic: %g", e)
		}
	}()
	be.Do(func() { be.Add(x, be.Upload([]int{1}, []float32{1})) })
}

// TestLazyGroupNorm follows the UNet's use of GroupNorm then SiLU, forward and backward, releasing
// tensors in the order nn does (so the fused paths of lazy.go run), and checks every result and
// gradient against the reference; then checks that reading the lazy tensors directly gives the
// unfused values too.
func TestLazyGroupNorm(t *testing.T) {
	ref := tensor.NewReference(2)
	s := []int{3, 32, 7, 6}
	xd, dyd := tensor.RandN(s, 11), tensor.RandN(s, 12)
	for _, p := range precisions {
		for _, readLazy := range []bool{false, true} {
			be := newBackend(t, p.name)
			g, bt := randParam("g", 2, 32), randParam("b", 3, 32)
			ps := cloneParams([]*tensor.Param{g, bt})
			gr, btr := ps[0], ps[1]

			xr := ref.Upload(s, xd)
			a0r, str := ref.GroupNorm(xr, gr, btr, 8, 1e-5)
			a1r := ref.SiLU(a0r)
			da0r := ref.SiLUBackward(ref.Upload(s, dyd), a0r)
			dxr := ref.GroupNormBackward(da0r, xr, str, gr, btr, 8)

			up := []*tensor.Tensor{be.Upload(s, xd), be.Upload(s, dyd)}
			x := be.Scale(up[0], 1) // in the activation type, like a conv output
			a0, st := be.GroupNorm(x, g, bt, 8, 1e-5)
			a1 := be.SiLU(a0)
			da1 := be.Scale(up[1], 1)
			da0 := be.SiLUBackward(da1, a0)
			be.Release(da1)
			if readLazy {
				if e := relErr(be.Read(a0), ref.Read(a0r)); e > p.tol {
					t.Errorf("%s: lazy GroupNorm output read: relative error %.3g", p.name, e)
				}
				if e := relErr(be.Read(da0), ref.Read(da0r)); e > p.tol {
					t.Errorf("%s: lazy SiLU gradient read: relative error %.3g", p.name, e)
				}
			}
			dx := be.GroupNormBackward(da0, x, st, g, bt, 8)
			if !readLazy && (a0.Impl.(*buf).p != nil || da0.Impl.(*buf).p != nil) {
				t.Errorf("%s: the GroupNorm output or the SiLU gradient was computed: the fused paths were not taken", p.name)
			}
			be.Release(st)
			be.Release(da0)
			for _, c := range []struct {
				name      string
				got, want []float32
			}{
				{"a1", be.Read(a1), ref.Read(a1r)}, {"dx", be.Read(dx), ref.Read(dxr)},
				{"dgamma", g.G, gr.G}, {"dbeta", bt.G, btr.G},
			} {
				if e := relErr(c.got, c.want); e > p.tol {
					t.Errorf("%s readLazy=%v %s: relative error %.3g > %.3g", p.name, readLazy, c.name, e, p.tol)
				}
			}
			for _, z := range append(up, a0, a1, dx, x) {
				be.Release(z)
			}
			if live, _, _ := be.MemStats(); live != 0 {
				t.Errorf("%s readLazy=%v: %d bytes still live after releasing everything", p.name, readLazy, live)
			}
		}
	}
}

// TestUnreleasedTensorsAreReclaimed drops tensors without Release and checks that the garbage
// collector's cleanups give their memory back (lazy ones included).
func TestUnreleasedTensorsAreReclaimed(t *testing.T) {
	be := newBackend(t, "fp32")
	s := []int{2, 16, 8, 8}
	g, bt := randParam("g", 1, 16), randParam("b", 2, 16)
	func() {
		x := be.Upload(s, tensor.RandN(s, 1))
		for range 10 {
			y, st := be.GroupNorm(x, g, bt, 4, 1e-5)
			_ = be.SiLU(y)
			_ = st
		}
	}()
	for range 50 {
		runtime.GC()
		if live, _, _ := be.MemStats(); live == 0 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	live, _, _ := be.MemStats()
	t.Fatalf("%d bytes still live after the tensors became unreachable", live)
}

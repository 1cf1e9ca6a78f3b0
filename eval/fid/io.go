package fid

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"

	"github.com/ddpm-go/ddpm/data"
	"github.com/ddpm-go/ddpm/eval"
	"github.com/ddpm-go/ddpm/imageio"
)

// readNPZ reads arr_0 of o.NPZ as uint8 (N,H,W,C) images of ref's shape and returns them NCHW in
// [-1, 1], the first o.N of them with o.LimitN.
func readNPZ(o Options, ref *data.Set) ([]float32, error) {
	path, c, h, w := o.NPZ, ref.C, ref.H, ref.W
	z, err := imageio.LoadNPZ(path)
	if err != nil {
		return nil, err
	}
	a := z["arr_0"]
	if a == nil {
		return nil, fmt.Errorf("%s has no arr_0", path)
	}
	if len(a.Descr) != 3 || a.Descr[1:] != "u1" {
		return nil, fmt.Errorf("%s: arr_0 has dtype %s, want uint8 (|u1)", path, a.Descr)
	}
	if len(a.Shape) != 4 || a.Shape[1] != h || a.Shape[2] != w || a.Shape[3] != c || a.Shape[0] < 2 {
		return nil, fmt.Errorf("%s: arr_0 has shape %v, want (N>=2, %d, %d, %d)", path, a.Shape, h, w, c)
	}
	n := a.Shape[0]
	if o.LimitN {
		if o.N > n {
			return nil, fmt.Errorf("--n %d but %s holds %d images", o.N, path, n)
		}
		n = o.N
	}
	out := make([]float32, n*c*h*w)
	for i := range n {
		for y := range h {
			for x := range w {
				for ch := range c {
					v := a.Values[((i*h+y)*w+x)*c+ch]
					out[((i*c+ch)*h+y)*w+x] = float32(v)/127.5 - 1
				}
			}
		}
	}
	return out, nil
}

// writeDrift writes the drift report as JSON lines and names its largest departure on log.
func writeDrift(path string, d *eval.Drift, abar []float64, m2 float64, log io.Writer) error {
	rows, err := d.Rows(abar, m2)
	if err != nil {
		return err
	}
	var b bytes.Buffer
	worst := rows[0]
	for _, r := range rows {
		line, err := json.Marshal(r)
		if err != nil {
			return err
		}
		b.Write(append(line, '\n'))
		if math.Abs(r.Ratio-1) > math.Abs(worst.Ratio-1) {
			worst = r
		}
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(log, "drift: energy / forward process's is furthest from 1 at t = %d: %.4f (%s)\n", worst.T, worst.Ratio, path)
	return nil
}

package dnnl

import (
	"runtime"
	"testing"

	"github.com/ddpm-go/ddpm/tensor"
)

func TestOptionsResolve(t *testing.T) {
	for _, c := range []struct {
		opts    Options
		prec    tensor.Precision
		threads int
		err     bool
	}{
		{Options{}, AutoPrecision(), runtime.NumCPU(), false},
		{Options{Precision: "auto", Threads: 3}, AutoPrecision(), 3, false},
		{Options{Precision: "fp32", Threads: 1}, tensor.FP32, 1, false},
		{Options{Precision: "bf16"}, tensor.BF16, runtime.NumCPU(), false},
		{Options{Precision: "fp16"}, 0, 0, true},
	} {
		p, n, err := c.opts.resolve()
		if (err != nil) != c.err || (!c.err && (p != c.prec || n != c.threads)) {
			t.Errorf("%+v: got %v, %d, %v; want %v, %d, error %v", c.opts, p, n, err, c.prec, c.threads, c.err)
		}
	}
}

func TestNewRejectsBadPrecision(t *testing.T) {
	if _, err := New(Options{Precision: "int8"}); err == nil {
		t.Fatal("New accepted precision int8")
	}
}

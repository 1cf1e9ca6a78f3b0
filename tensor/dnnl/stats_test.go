//go:build cgo

package dnnl

import (
	"sync"
	"testing"

	"github.com/ddpm-go/ddpm/tensor"
)

// TestCacheStats: a convolution at a new batch size adds a primitive and a reordered weight copy
// that stay after the tensors are released; a batch size seen before adds nothing; the pooled bytes
// are the released activations; Close frees it all. CacheStats may be read while the backend works.
func TestCacheStats(t *testing.T) {
	be := newBackend(t, "fp32")
	w := &tensor.Param{Name: "w", Shape: []int{8, 4, 3, 3}, W: make([]float32, 8*4*9), G: make([]float32, 8*4*9)}
	for i := range w.W {
		w.W[i] = float32(i%7) / 7
	}
	conv := func(n int) {
		x := be.Upload([]int{n, 4, 6, 6}, make([]float32, n*4*36))
		y := be.Conv2D(x, w, nil, tensor.Conv{Stride: 1, Pad: 1})
		be.Read(y)
		be.Release(x)
		be.Release(y)
	}
	if c, wb, p := be.CacheStats(); c != 0 || wb != 0 || p != 0 {
		t.Fatalf("new backend: %d primitives, %d weight bytes, %d pooled", c, wb, p)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() { // the metrics endpoint reads the stats from its own goroutine
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
				be.CacheStats()
			}
		}
	}()
	conv(2)
	c1, w1, p1 := be.CacheStats()
	if c1 != 1 || w1 < 8*4*9*4 || p1 < 2*(4+8)*36*4 {
		t.Errorf("after one batch of 2: %d primitives, %d weight bytes, %d pooled; want 1, >= %d, >= %d", c1, w1, p1, 8*4*9*4, 2*(4+8)*36*4)
	}
	conv(2)
	if c, wb, p := be.CacheStats(); c != c1 || wb != w1 || p != p1 {
		t.Errorf("the same batch again: %d, %d, %d; want %d, %d, %d unchanged", c, wb, p, c1, w1, p1)
	}
	conv(3)
	if c, wb, p := be.CacheStats(); c != 2 || wb != 2*w1 || p <= p1 {
		t.Errorf("after a batch of 3: %d primitives, %d weight bytes, %d pooled; want 2, %d, > %d", c, wb, p, 2*w1, p1)
	}
	close(stop)
	wg.Wait()
	be.Close()
	if c, wb, p := be.CacheStats(); c != 0 || wb != 0 || p != 0 {
		t.Errorf("after Close: %d primitives, %d weight bytes, %d pooled", c, wb, p)
	}
}

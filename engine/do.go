package engine

import "github.com/ddpm-go/ddpm/tensor"

// Do runs f through the backend's Do when it has one (dnnl: every op of f then runs inline on its
// worker thread instead of being handed over one at a time, which costs microseconds per op and a
// training step makes several hundred), else calls f. f must use be from its own goroutine only.
func Do(be tensor.Backend, f func() error) error {
	d, ok := be.(interface{ Do(func()) })
	if !ok {
		return f()
	}
	var err error
	d.Do(func() { err = f() })
	return err
}

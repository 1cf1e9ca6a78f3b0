package serve

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/ddpm-go/ddpm/checkpoint"
	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/engine"
	"github.com/ddpm-go/ddpm/generate"
	"github.com/ddpm-go/ddpm/nn"
	"github.com/ddpm-go/ddpm/schedule"
)

// rssBytes is this process's resident set size (VmRSS), or 0 where /proc is missing.
func rssBytes() int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.Atoi(f[1])
			return kb << 10
		}
	}
	return 0
}

// TestMemoryBoundedOverN sends one one-step request for every n from 1 to max-n on the default
// engine (oneDNN where built in), as `ddpm serve` configures it (--max-batch 64). oneDNN keeps
// primitives, weight copies and pooled buffers per batch shape; unpadded, the 64 shapes made the
// pool alone hold the buffers of 2,080 rows (n = 1 + ... + 64), and a worker of the shipped model
// grew to gigabytes. Padded to powers of two the worker holds 7 shapes: the bound asserted is
//
//	conv primitives  = 7 x those of one shape
//	pooled bytes    <= 2 x those after a single max-n request (1 + 2 + ... + 64 = 127 rows, not 64)
//	weight bytes    <= 7 x those of one shape
//	RSS growth      <= 7 x one shape's weights + 2 x the pool after n = 64 alone, + 32 MiB (Go heap,
//	                   oneDNN's code and scratchpads); on the reference engine, 32 MiB
func TestMemoryBoundedOverN(t *testing.T) {
	be, err := engine.New("auto", "fp32", 1)
	if err != nil {
		t.Fatal(err)
	}
	defer engine.Close(be)
	cfg := nn.Config{Name: "mem16", ImageSize: 16, InChannels: 1, OutChannels: 1, BaseChannels: 16,
		ChannelMult: []int{1, 2}, ResBlocks: 1, AttnResolutions: []int{}, Heads: 1, TimeEmbedDim: 32, SinusoidalDim: 16, Groups: 4}
	if be.Name() == "ref" {
		cfg.BaseChannels = 8 // nothing to measure but the Go heap: keep it quick
	}
	u, err := nn.New(cfg, be, 1)
	if err != nil {
		t.Fatal(err)
	}
	u.MaxBatch = 64
	sch, err := schedule.New("linear", 100, false)
	if err != nil {
		t.Fatal(err)
	}
	m := &generate.Model{Model: checkpoint.Model{Net: u, Schedule: sch, Prediction: diffusion.Eps, Source: "random"}}
	s, err := New([]Model{{Name: "m", Copies: []*generate.Model{m}}}, Options{MaxN: 64})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	defer func() {
		ts.Close()
		s.Shutdown(context.Background())
	}()
	if want := map[bool]int{true: 0, false: 64}[be.Name() == "ref"]; s.models[0].pow2 != want {
		t.Fatalf("%s: pow2 %d, want %d", be.Name(), s.models[0].pow2, want)
	}
	cs, stats := be.(cacheStater)
	sample := func(n int) {
		t.Helper()
		if resp, b := post(t, ts.URL, fmt.Sprintf(`{"steps":1,"n":%d,"seed":%d}`, n, n)); resp.StatusCode != 200 {
			t.Fatalf("n=%d: %d %s", n, resp.StatusCode, b)
		}
	}
	sample(1)
	var convs1, weights1 int
	if stats {
		convs1, weights1, _ = cs.CacheStats()
	}
	sample(64)
	var pooled64 int
	if stats {
		_, _, pooled64 = cs.CacheStats()
	}
	rss0 := rssBytes()
	for n := 1; n <= 64; n++ {
		sample(n)
	}
	rss1 := rssBytes()
	if stats {
		convs, weights, pooled := cs.CacheStats()
		t.Logf("%s: one shape %d primitives, %.1f MiB of weights; after n = 1..64: %d primitives, %.1f MiB of weights, %.1f MiB pooled (%.1f after n = 64 alone)",
			be.Name(), convs1, mib(weights1), convs, mib(weights), mib(pooled), mib(pooled64))
		if convs != 7*convs1 {
			t.Errorf("%d conv primitives after n = 1..64, want 7 shapes x %d", convs, convs1)
		}
		if weights > 7*weights1 {
			t.Errorf("%.1f MiB of weight copies, want <= 7 x %.1f", mib(weights), mib(weights1))
		}
		if pooled > 2*pooled64 {
			t.Errorf("%.1f MiB pooled after n = 1..64, want <= 2 x %.1f (after n = 64 alone)", mib(pooled), mib(pooled64))
		}
	}
	if rss0 > 0 {
		grew := rss1 - rss0
		bound := 7*weights1 + 2*pooled64 + 32<<20
		t.Logf("RSS %.1f -> %.1f MiB over the sweep (bound: growth <= %.1f MiB)", mib(rss0), mib(rss1), mib(bound))
		if grew > bound {
			t.Errorf("RSS grew %.1f MiB over n = 1..64, want <= %.1f", mib(grew), mib(bound))
		}
	}
	waitMetrics(t, ts.URL, `ddpm_backend_conv_primitives{worker="0"}`, `ddpm_backend_cache_bytes{kind="pool",worker="0"}`,
		`ddpm_backend_cache_bytes{kind="weights",worker="0"}`)
}

func mib(b int) float64 { return float64(b) / (1 << 20) }

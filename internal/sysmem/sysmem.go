// Package sysmem tells how much memory the machine has, so that a request for more (a huge batch,
// a model config asking for 100 GB, a file claiming gigabytes) is refused with one line before any
// allocation, instead of ending in the kernel's OOM killer or a Go runtime dump.
package sysmem

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
)

// Total is the machine's memory in bytes (MemTotal of /proc/meminfo), or 0 where it cannot be read.
var Total = sync.OnceValue(func() uint64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
})

// Check returns an error naming what when need bytes exceed the machine's memory (nil when the
// total is unknown: the allocation itself then decides).
func Check(what string, need float64) error {
	t := Total()
	if t == 0 || need <= float64(t) {
		return nil
	}
	return fmt.Errorf("%s needs %s of memory, more than this machine's %s", what, Bytes(need), Bytes(float64(t)))
}

// Bytes formats a byte count for a message, e.g. "3.2 GiB".
func Bytes(b float64) string {
	switch {
	case b >= 1<<40:
		return fmt.Sprintf("%.1f TiB", b/(1<<40))
	case b >= 1<<30:
		return fmt.Sprintf("%.1f GiB", b/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.1f MiB", b/(1<<20))
	}
	return fmt.Sprintf("%.0f KiB", b/(1<<10))
}

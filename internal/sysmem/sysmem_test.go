package sysmem

import (
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	if Total() == 0 {
		t.Skip("no /proc/meminfo")
	}
	if err := Check("a small thing", 1<<20); err != nil {
		t.Fatal(err)
	}
	err := Check("a model of 1e12 parameters", 4e12)
	if err == nil || !strings.Contains(err.Error(), "a model of 1e12 parameters needs 3.6 TiB") {
		t.Fatalf("got %v", err)
	}
}

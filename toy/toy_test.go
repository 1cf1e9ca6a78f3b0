package toy

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestCSVRoundTrip: what WriteCSV writes, ReadCSV reads back bit for bit, and Start takes its row
// count as n.
func TestCSVRoundTrip(t *testing.T) {
	x := []float64{0.1, -2.5e-7, 3, 1.0 / 3}
	var b strings.Builder
	if err := WriteCSV(&b, x, 2); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "x.csv")
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	got, n, err := Start(p, 1000, false, 2)
	if err != nil || n != 2 || !slices.Equal(got, x) {
		t.Errorf("read back %v (n %d, err %v), want %v", got, n, err, x)
	}
	if _, _, err := Start(p, 5, true, 2); err == nil {
		t.Error("--n 5 with a 2-row init accepted")
	}
}

package diffusion

import (
	"slices"
	"testing"
)

// TestGrids checks the nested grids: linspace from 999, every other point per halving.
func TestGrids(t *testing.T) {
	for _, c := range []struct {
		s0, s int
		want  []int
	}{
		{4, 4, []int{999, 666, 333, 0}},
		{4, 2, []int{999, 333}},
		{4, 1, []int{999}},
		{8, 2, []int{999, 428}},
	} {
		g, err := NestedGrid(1000, c.s0, c.s)
		if err != nil || !slices.Equal(g, c.want) {
			t.Errorf("NestedNestedGrid(1000, %d, %d) = %v, %v; want %v", c.s0, c.s, g, err, c.want)
		}
	}
	g256, _ := NestedGrid(1000, 256, 256)
	g1, _ := NestedGrid(1000, 256, 1)
	if g256[0] != 999 || g256[255] != 0 || !slices.Equal(g1, []int{999}) {
		t.Errorf("256-step grid %v..%v, 1-step %v", g256[:2], g256[254:], g1)
	}
	if _, err := NestedGrid(1000, 6, 3); err == nil {
		t.Error("a grid of 6 steps was accepted")
	}
}

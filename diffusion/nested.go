package diffusion

import "fmt"

// IsPow2 reports whether n is a power of two (1 included).
func IsPow2(n int) bool { return n > 0 && n&(n-1) == 0 }

// NestedGrid is the grid of a progressive-distillation student (Salimans & Ho 2022) of steps
// steps distilled from an s0-step teacher of T timesteps: the linspace grid of s0 steps
// (Timesteps), thinned to every other timestep once per halving, so that every student's grid is
// a subset of its teacher's. Both counts must be powers of two with steps <= s0 <= T.
func NestedGrid(T, s0, steps int) ([]int, error) {
	if !IsPow2(s0) || !IsPow2(steps) || steps > s0 {
		return nil, fmt.Errorf("nested grid: %d and %d steps must be powers of two, the second at most the first", s0, steps)
	}
	g, err := Timesteps(T, s0, Linspace)
	if err != nil {
		return nil, err
	}
	for len(g) > steps {
		g = HalveGrid(g)
	}
	return g, nil
}

// HalveGrid is a student's grid from its teacher's: timesteps 0, 2, 4, ... of it, so the student's
// step from g[2i] covers the teacher's steps g[2i] -> g[2i+1] -> g[2i+2] (the clean sample after
// the last).
func HalveGrid(g []int) []int {
	out := make([]int, 0, (len(g)+1)/2)
	for i := 0; i < len(g); i += 2 {
		out = append(out, g[i])
	}
	return out
}

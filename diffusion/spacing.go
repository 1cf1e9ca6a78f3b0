package diffusion

import (
	"fmt"
	"math"
)

// Spacing chooses which S of the T training timesteps a sampler visits. The zero value is Linspace.
type Spacing int

// The spacings of diffusers (and of Lin et al. 2023, Table 2).
const (
	// Linspace: round(linspace(0, T-1, S)) reversed. Visits both t = T-1 and t = 0.
	Linspace Spacing = iota
	// Leading: [i * (T/S) for i in 0..S-1] reversed (integer division). Starts below T-1 unless S = T.
	Leading
	// Trailing: round(T - i*T/S) - 1 for i in 0..S-1. Always starts at T-1; ends at T/S - 1.
	Trailing
)

func (sp Spacing) String() string {
	switch sp {
	case Linspace:
		return "linspace"
	case Leading:
		return "leading"
	case Trailing:
		return "trailing"
	}
	return fmt.Sprintf("Spacing(%d)", int(sp))
}

// ParseSpacing is the inverse of String.
func ParseSpacing(s string) (Spacing, error) {
	switch s {
	case "linspace":
		return Linspace, nil
	case "leading":
		return Leading, nil
	case "trailing":
		return Trailing, nil
	}
	return 0, fmt.Errorf("unknown spacing %q (want linspace, leading or trailing)", s)
}

// Timesteps returns the S timesteps a sampler visits, in the order it visits them (decreasing), for a
// model trained with T steps. This is the only place timestep sequences are computed: every sampler
// walks its result, taking "prev" of step k to be element k+1 (and abar_prev = 1 after the last).
//
// The values match diffusers' set_timesteps with steps_offset = 0, including numpy's rounding of
// halves to even: linspace(0, 9, 3) = [0, 4.5, 9] rounds to [9, 4, 0].
func Timesteps(T, S int, sp Spacing) ([]int, error) {
	if T < 1 {
		return nil, fmt.Errorf("timesteps: T = %d < 1", T)
	}
	if S < 1 || S > T {
		return nil, fmt.Errorf("timesteps: steps %d outside [1, %d]", S, T)
	}
	ts := make([]int, S)
	switch sp {
	case Linspace:
		// numpy.linspace(0, T-1, S): i*step, with the last value exactly T-1; [0] when S == 1.
		step := 0.0
		if S > 1 {
			step = float64(T-1) / float64(S-1)
		}
		for i := 0; i < S; i++ {
			v := float64(i) * step
			if i == S-1 && S > 1 {
				v = float64(T - 1)
			}
			ts[S-1-i] = int(math.RoundToEven(v))
		}
	case Leading:
		ratio := T / S
		for i := 0; i < S; i++ {
			ts[S-1-i] = i * ratio
		}
	case Trailing:
		// numpy.round(numpy.arange(T, 0, -T/S)) - 1. numpy's float arange fills start + i*delta with
		// delta = (start + step) - start, reproduced here so even the rounding of halves agrees.
		start := float64(T)
		delta := (start - start/float64(S)) - start
		for i := 0; i < S; i++ {
			ts[i] = int(math.RoundToEven(start+float64(i)*delta)) - 1
		}
	default:
		return nil, fmt.Errorf("timesteps: unknown spacing %d", int(sp))
	}
	for i := 1; i < S; i++ {
		if ts[i] >= ts[i-1] {
			// Cannot happen for S <= T with the definitions above; a guard against silent repeats.
			return nil, fmt.Errorf("timesteps: %s spacing of %d in %d repeats timestep %d", sp, S, T, ts[i])
		}
	}
	return ts, nil
}

package diffusion

import (
	"fmt"
	"math"
)

// Spacing chooses which S of the T training timesteps a sampler visits. The zero value is Linspace.
type Spacing int

// The spacings of diffusers (and of Lin et al. 2023, Table 2), and the DDIM paper's quadratic one.
const (
	// Linspace: round(linspace(0, T-1, S)) reversed. Visits both t = T-1 and t = 0.
	Linspace Spacing = iota
	// Leading: [i * (T/S) for i in 0..S-1] reversed (integer division). Starts below T-1 unless S = T.
	Leading
	// Trailing: round(T - i*T/S) - 1 for i in 0..S-1. Always starts at T-1; ends at T/S - 1.
	Trailing
	// Quadratic: int((i * sqrt(0.8 T)/(S-1))^2) for i in 0..S-1, reversed: the DDIM paper's "quad"
	// selection (Song et al. 2021, appendix D.2, their code's skip_type "quad"), which the paper used for
	// its CIFAR-10 Table 1. It crowds the steps at small t, where images get their detail, and starts at
	// t = 0.8 T, treating x_T ~ N(0, I) as x at 0.8 T (abar_800 = 0.0017 on the linear schedule).
	// Where the squares of the first few i truncate to the same integer (S = 50 of 1000 gives 0, 0, 1)
	// the paper's code spends a step going from t to t; here such a timestep moves up to one past the
	// previous, so every step counts and the sequence stays strictly decreasing.
	Quadratic
)

func (sp Spacing) String() string {
	switch sp {
	case Linspace:
		return "linspace"
	case Leading:
		return "leading"
	case Trailing:
		return "trailing"
	case Quadratic:
		return "quadratic"
	}
	return fmt.Sprintf("Spacing(%d)", int(sp))
}

// SpacingNames lists the spacings ParseSpacing accepts, for help texts and errors.
const SpacingNames = "linspace, leading, trailing or quadratic"

// Spacings returns the names of all spacings, in the order of their values, for APIs that list them.
func Spacings() []string {
	var names []string
	for sp := Linspace; sp <= Quadratic; sp++ {
		names = append(names, sp.String())
	}
	return names
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
	case "quadratic":
		return Quadratic, nil
	}
	return 0, fmt.Errorf("unknown spacing %q (want %s)", s, SpacingNames)
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
	case Quadratic:
		// numpy: (linspace(0, sqrt(T * 0.8), S) ** 2) truncated by int(), as in the DDIM code.
		stop := math.Sqrt(float64(T) * 0.8)
		step := 0.0
		if S > 1 {
			step = stop / float64(S-1)
		}
		prev := -1
		for i := 0; i < S; i++ {
			v := float64(i) * step
			if i == S-1 && S > 1 {
				v = stop
			}
			t := max(int(v*v), prev+1)
			ts[S-1-i] = t
			prev = t
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

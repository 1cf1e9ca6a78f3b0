package checkpoint

import (
	"encoding/json"
	"fmt"
	"strconv"
)

// Metadata keys of a progressively distilled model (package distill; Salimans & Ho 2022): the
// student was trained to reproduce two of its teacher's DDIM steps in one, over one fixed grid of
// timesteps, so it is only right when sampled with that many DDIM (eta 0) steps over that grid.
const (
	MetaDistilledSteps     = "distilled_steps"     // the step count, e.g. "4"
	MetaDistilledTimesteps = "distilled_timesteps" // its grid as a JSON array, decreasing: "[999,749,499,249]"
	// MetaDistilledGuidance is the classifier-free guidance scale s (1 + w) the teacher's guided
	// prediction was distilled at (Meng et al. 2023, first stage), for a class-conditional
	// student; absent for an unconditional one. Such a student gives the guided prediction from
	// its class input alone, so it is sampled at guidance 1.
	MetaDistilledGuidance = "distilled_guidance"
	// MetaDistilledFrom names the trained model a student descends from: the teacher given to
	// the first distillation, kept through students of students (a run may continue from another
	// run's student), so a student names the model whose quality it is measured against.
	MetaDistilledFrom = "distilled_from"
)

// DistilledGrid reads the grid a distilled model was trained for from its metadata: nil, nil for
// a model that is not distilled.
func DistilledGrid(meta map[string]string, T int) ([]int, error) {
	v, ok := meta[MetaDistilledSteps]
	if !ok {
		return nil, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return nil, fmt.Errorf("bad %s %q", MetaDistilledSteps, v)
	}
	var grid []int
	if err := json.Unmarshal([]byte(meta[MetaDistilledTimesteps]), &grid); err != nil {
		return nil, fmt.Errorf("bad %s: %v", MetaDistilledTimesteps, err)
	}
	if len(grid) != n {
		return nil, fmt.Errorf("%s has %d timesteps, %s is %d", MetaDistilledTimesteps, len(grid), MetaDistilledSteps, n)
	}
	for i, t := range grid {
		if t < 0 || t >= T || i > 0 && t >= grid[i-1] {
			return nil, fmt.Errorf("%s %v is not a decreasing sequence in [0, %d]", MetaDistilledTimesteps, grid, T-1)
		}
	}
	return grid, nil
}

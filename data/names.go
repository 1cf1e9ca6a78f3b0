package data

import (
	"fmt"
	"strings"
)

// ParseSplit reads a split's name as the commands' --split flag spells it.
func ParseSplit(s string) (Split, error) {
	sp, ok := map[string]Split{"train": Train, "test": Test}[s]
	if !ok {
		return sp, fmt.Errorf("--split %q: want train or test", s)
	}
	return sp, nil
}

// ExpandNames expands "all" to every dataset and checks every name, so a typo in the last of
// several names is found before the first is fetched.
func ExpandNames(names []string) ([]string, error) {
	if len(names) == 0 {
		return nil, fmt.Errorf("name a dataset: %s, or all", strings.Join(Names(), ", "))
	}
	var out []string
	for _, n := range names {
		if n == "all" {
			out = append(out, Names()...)
			continue
		}
		if _, err := Lookup(n); err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, nil
}

// LabelCounts lists how many images carry each label, "label:count" by increasing label (a
// dataset's balance at a glance).
func (s *Set) LabelCounts() string {
	var count [256]int
	for _, l := range s.Labels {
		count[l]++
	}
	var parts []string
	for l, c := range count {
		if c > 0 {
			parts = append(parts, fmt.Sprintf("%d:%d", l, c))
		}
	}
	return strings.Join(parts, " ")
}

// LoadRange loads a data set's split (as ParseSplit reads it) and returns it with its images
// first..first+n-1.
func LoadRange(name, dir, split string, first, n int) (*Set, []float32, error) {
	sp, err := ParseSplit(split)
	if err != nil {
		return nil, nil, err
	}
	set, err := Load(name, dir, sp)
	if err != nil {
		return nil, nil, err
	}
	if first < 0 || n < 0 || first > set.N-n {
		return nil, nil, fmt.Errorf("images %d..%d requested, %s has %d", first, first+n-1, set.Name, set.N)
	}
	return set, set.Images[first*set.Size() : (first+n)*set.Size()], nil
}

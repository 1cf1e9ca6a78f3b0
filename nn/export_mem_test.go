package nn

// ForwardValues exposes forwardValues to the external tests.
func ForwardValues(c Config) (acts, work float64) { return c.forwardValues() }

// CountedActs is the convolution outputs per image that running the network counts.
func CountedActs(c Config) (float64, error) {
	k, err := count(c)
	if err != nil {
		return 0, err
	}
	return k.acts, nil
}

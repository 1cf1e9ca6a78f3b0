package nn

// ParamBound exposes paramBound to the external tests.
func ParamBound(c Config) float64 { return c.paramBound() }

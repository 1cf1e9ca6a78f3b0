// Package train is the training loop that joins the diffusion math (package diffusion) to the
// network (package nn): each step draws a batch of images, a timestep and a noise image per row,
// forms x_t and the regression target of the chosen prediction (DDPM Algorithm 1), and takes one
// AdamW step on the mean squared error, followed by an update of the EMA weights that sampling uses.
//
// A run is reproducible and resumable bit for bit: the timesteps and noise of step s come from a
// generator seeded by (seed, s) alone, the data order from (seed, epoch) (data.Batcher), and the
// dropout masks from a counter saved with the weights, so a checkpoint holds no generator whose
// internal state could drift. A run stopped at any checkpoint and resumed with --resume computes
// exactly what the uninterrupted run computes.
//
// # Run directory
//
// Everything a run writes lives in one directory (Config.Out, `ddpm train --out RUNDIR`):
//
//	RUNDIR/config.json                      the resolved Config (JSON keys = flag names)
//	RUNDIR/model.json                       the UNet's nn.Config
//	RUNDIR/model-ema.safetensors            EMA weights at the latest checkpoint, with the model
//	                                        config and the sampling keys below in the metadata
//	RUNDIR/checkpoints/step-NNNNNNNN.safetensors
//	                                        full training state (checkpoint.SaveTraining: weights,
//	                                        "ema." weights, AdamW moments, step, data order); the
//	                                        last Config.Keep are kept
//	RUNDIR/samples/step-NNNNNNNN.png        DDIM-50 (eta 0) grids from the EMA weights, fixed seed
//	RUNDIR/metrics.csv                      step,loss,lr,img_s,wall_s (one row per step)
//	RUNDIR/loss.png                         the loss curve
//
// Every file is written atomically (temporary file, fsync, rename), so a crash or Ctrl-C leaves
// either the old or the new version. The checkpoint with the highest step is the one --resume
// continues from.
//
// # Sampling keys
//
// model-ema.safetensors and every checkpoint carry, besides checkpoint's own keys ("config",
// "step", ...), the metadata a sampler needs to walk the right reverse process:
//
//	"schedule"   schedule name (linear, cosine, ...)
//	"timesteps"  T
//	"zero_snr"   "true" or "false"
//	"prediction" what the network predicts: eps, x0 or v
//	"dataset"    the --data value
//
// The names of the run directory and these keys belong to package checkpoint, whose LoadForSampling
// reads a RUNDIR, a model-ema file, a checkpoint, or any model file saved with checkpoint.SaveModel
// (files without these keys are taken as linear, T = 1000, eps: the DDPM setting) and returns the
// network with its schedule and prediction, so sampling and serving never link the trainer.
package train

// Package diffusion is the mathematics of DDPM (Ho et al. 2020) and DDIM (Song et al. 2021) as plain Go:
// the forward process, its posterior, the eps/x0/v parametrisations and their training targets, the
// timestep spacing, the samplers, and an exact Gaussian-mixture oracle that plays the part of a perfect
// network so every sampler can be checked against a known distribution without training anything.
//
// It imports no network code. A model meets this package only through Predictor, which sees rows of
// float64 values and one shared timestep per call; an adapter elsewhere reshapes them into images.
//
// # Notation
//
// As in package schedule and the DDPM paper: beta_t, alpha_t = 1 - beta_t, abar_t = prod_{s<=t} alpha_s,
// with 0-indexed t in [0, T-1]. The forward process is
//
//	q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I)          (DDPM eq. 4)
//	x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps,  eps ~ N(0, I)
//
// and the three things a model may predict from x_t are related, for fixed x_t and abar = abar_t, by
//
//	x_0 = (x_t - sqrt(1-abar) eps) / sqrt(abar)                   (DDPM eq. 4 solved for x_0)
//	v   = sqrt(abar) eps - sqrt(1-abar) x_0                      (Salimans & Ho 2022, "v-prediction")
//	x_0 = sqrt(abar) x_t - sqrt(1-abar) v,   eps = sqrt(1-abar) x_t + sqrt(abar) v
//
// # Samplers
//
// A Sampler walks a decreasing timestep sequence from Timesteps (the one place spacing is computed) and
// at each step asks the Predictor once for all n rows. DDPM and DDIM implement Sampler; later
// multi-step solvers (DPM-Solver++(2M), PLMS) plug into the same shared loop (see walk), keeping their
// history of model outputs inside their step function.
//
// Randomness is per row: row i of a call draws x_T and every z from its own stream
// RowRNG(seed, start+i), in the order x_T, then one z per non-final step. A sample therefore
// depends only on the seed and its global index, never on how rows were batched.
package diffusion

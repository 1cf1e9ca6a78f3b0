// Package distill is progressive distillation (Salimans & Ho 2022, "Progressive Distillation for
// Fast Sampling of Diffusion Models", Algorithm 2): a student learns to take two of its teacher's
// deterministic DDIM steps in one, the student becomes the next round's teacher, and S0 sampling
// steps become S0/2, S0/4, ... S1 in log2(S0/S1) rounds.
//
// Choices the paper leaves to the implementation (docs/distill.md states them for users):
//
//   - Grids. Every round works on one nested grid of timesteps: the S0-step grid is the linspace
//     spacing of the teacher's T (diffusion.Timesteps, the project's default, so round 1's teacher is
//     exactly `ddpm sample --steps S0`; it starts at t = T-1), and each student's grid is every other
//     timestep of its teacher's, starting at the same t = T-1; its last step goes to the clean sample.
//     The student's grid is stored in its model file (checkpoint.MetaDistilledTimesteps) and is what
//     `ddpm sample` walks when asked for that many steps.
//   - Parameterisation. Students predict v (Salimans & Ho 2022, Section 4). The teacher shipped
//     predicts eps, and the paper's x-target read through eps, x = (z - sigma eps)/alpha, is
//     ill-conditioned near t = T (alpha_999 = 0.0063 on the linear schedule). A round 0 (Reparam)
//     first fine-tunes a copy of the teacher to output the teacher's own v on forward-process
//     samples, so round 1 starts from a v-model equal to the teacher.
//   - Loss. The paper's "truncated SNR" weighting (Section 4, the discussion of Eq. 9):
//     max(SNR(t), 1) ||x_target - x_hat||^2 with x_hat = alpha z - sigma v_hat. Since
//     x_hat - x_target = sigma (v_target - v_hat) with v_target = (alpha z - x_target)/sigma, this is
//     max(alpha^2, sigma^2) ||v_hat - v_target||^2, a weight within [1/2, 1]: the network regresses
//     v, and the loss reported is the weighted mean over the elements.
//   - Guidance. A class-conditional teacher is distilled at one fixed guidance scale s (Meng et al.
//     2023, "On Distillation of Guided Diffusion Models", first stage): the guided prediction
//     eps(z) + s (eps(z, c) - eps(z)) is the teacher of round 0 and 1, the student keeps the class
//     input, and later rounds' teachers (students already guided) take the class alone.
package distill

// Per-sample kernels for one element type, included twice by kernels.c: once with T = float and once
// with T = uint16_t (bf16). LD loads an element as float, ST stores a float. Each function works on a
// contiguous slice (one sample, or one chunk of an elementwise op) and is cloned for AVX-512, AVX2 and
// baseline x86-64 so one binary runs anywhere and vectorises where it can.

TC static void SFX(r_silu)(const T *restrict x, T *restrict y, size_t n) {
	for (size_t i = 0; i < n; i++) {
		float v = LD(x, i);
		ST(y, i, v / (1.0f + dd_expf(-v)));
	}
}

TC static void SFX(r_silu_bwd)(const T *restrict dy, const T *restrict x, T *restrict dx, size_t n) {
	for (size_t i = 0; i < n; i++) {
		float v = LD(x, i);
		float s = 1.0f / (1.0f + dd_expf(-v));
		ST(dx, i, LD(dy, i) * s * (1.0f + v * (1.0f - s)));
	}
}

TC static void SFX(r_add)(const T *restrict a, const T *restrict b, T *restrict y, size_t n) {
	for (size_t i = 0; i < n; i++) ST(y, i, LD(a, i) + LD(b, i));
}

TC static void SFX(r_mulf)(const T *restrict x, const float *restrict m, T *restrict y, size_t n) {
	for (size_t i = 0; i < n; i++) ST(y, i, LD(x, i) * m[i]);
}

TC static void SFX(r_scale)(const T *restrict x, T *restrict y, float k, size_t n) {
	for (size_t i = 0; i < n; i++) ST(y, i, k * LD(x, i));
}

TC static void SFX(r_addch)(const T *restrict x, const float *restrict v, T *restrict y, int HW, int C) {
	for (int p = 0; p < HW; p++) {
		const T *xr = x + (size_t)p * C;
		T *yr = y + (size_t)p * C;
		for (int c = 0; c < C; c++) ST(yr, c, LD(xr, c) + v[c]);
	}
}

TC static void SFX(r_sumhw)(const T *restrict x, float *restrict out, int HW, int C) {
	for (int c = 0; c < C; c++) out[c] = 0;
	for (int p = 0; p < HW; p++) {
		const T *xr = x + (size_t)p * C;
		for (int c = 0; c < C; c++) out[c] += LD(xr, c);
	}
}

TC static void SFX(r_up2)(const T *restrict x, T *restrict y, int H, int W, int C) {
	int W2 = 2 * W;
	for (int h = 0; h < H; h++) {
		T *y0 = y + (size_t)(2 * h) * W2 * C;
		for (int w = 0; w < W; w++) {
			const T *xr = x + ((size_t)h * W + w) * C;
			T *a = y0 + (size_t)(2 * w) * C;
			for (int c = 0; c < C; c++) {
				T v = xr[c];
				a[c] = v;
				a[C + c] = v;
			}
		}
		memcpy(y0 + (size_t)W2 * C, y0, sizeof(T) * (size_t)W2 * C);
	}
}

TC static void SFX(r_up2_bwd)(const T *restrict dy, T *restrict dx, int H, int W, int C) {
	int W2 = 2 * W;
	for (int h = 0; h < H; h++) {
		const T *r0 = dy + (size_t)(2 * h) * W2 * C;
		const T *r1 = r0 + (size_t)W2 * C;
		for (int w = 0; w < W; w++) {
			size_t o = (size_t)(2 * w) * C;
			T *d = dx + ((size_t)h * W + w) * C;
			for (int c = 0; c < C; c++)
				ST(d, c, (LD(r0, o + c) + LD(r0, o + C + c)) + (LD(r1, o + c) + LD(r1, o + C + c)));
		}
	}
}

// r_gn_stats computes each group's mean and 1/std over one sample (two passes over data that fits in
// cache, for accuracy), then the per-channel scale and shift that apply norm and affine in one FMA.
TC static void SFX(r_gn_stats)(const T *restrict x, const float *restrict gamma, const float *restrict beta, float *restrict stats,
                               float *restrict scale, float *restrict shift, float *restrict acc, int HW, int C, int G, float eps) {
	int cg = C / G;
	double cnt = (double)cg * HW;
	for (int c = 0; c < C; c++) acc[c] = 0;
	for (int p = 0; p < HW; p++) {
		const T *xr = x + (size_t)p * C;
		for (int c = 0; c < C; c++) acc[c] += LD(xr, c);
	}
	for (int g = 0; g < G; g++) {
		double s = 0;
		for (int c = g * cg; c < (g + 1) * cg; c++) s += acc[c];
		stats[2 * g] = (float)(s / cnt);
	}
	for (int c = 0; c < C; c++) {
		shift[c] = stats[2 * (c / cg)];
		acc[c] = 0;
	}
	for (int p = 0; p < HW; p++) {
		const T *xr = x + (size_t)p * C;
		for (int c = 0; c < C; c++) {
			float d = LD(xr, c) - shift[c];
			acc[c] += d * d;
		}
	}
	for (int g = 0; g < G; g++) {
		double s = 0;
		for (int c = g * cg; c < (g + 1) * cg; c++) s += acc[c];
		stats[2 * g + 1] = (float)(1.0 / sqrt(s / cnt + (double)eps));
	}
	for (int c = 0; c < C; c++) {
		float m = stats[2 * (c / cg)], r = stats[2 * (c / cg) + 1];
		scale[c] = r * gamma[c];
		shift[c] = beta[c] - m * r * gamma[c];
	}
}

TC static void SFX(r_scale_shift)(const T *restrict x, T *restrict y, const float *restrict scale, const float *restrict shift, int HW, int C,
                                  int silu) {
	for (int p = 0; p < HW; p++) {
		const T *xr = x + (size_t)p * C;
		T *yr = y + (size_t)p * C;
		if (silu) {
			for (int c = 0; c < C; c++) {
				float v = LD(xr, c) * scale[c] + shift[c];
				ST(yr, c, v / (1.0f + dd_expf(-v)));
			}
		} else {
			for (int c = 0; c < C; c++) ST(yr, c, LD(xr, c) * scale[c] + shift[c]);
		}
	}
}

// r_gn_bwd: with xhat = (x-mean)*rstd and g = dy*gamma, dx = rstd*(g - mean(g) - xhat*mean(g*xhat))
// over the group. The per-channel sums a = sum dy and b = sum dy*x give every group sum, so dx becomes
// dy*A[c] + x*B[c] + D[c]: one pass to sum, one to write. With silu set, the op was SiLU(GroupNorm(x))
// and dy is first taken through SiLU's derivative at h = GroupNorm(x), recomputed from x and the
// stats in the first pass and kept for the second in dh, a per-sample scratch that stays in cache.
TC static void SFX(r_gn_bwd)(const T *restrict dy, const T *restrict x, const float *restrict stats, const float *restrict gamma, const float *restrict gammaF,
                             const float *restrict betaF, T *restrict dx, float *restrict ggamma, float *restrict gbeta, float *restrict a, float *restrict b, float *restrict A,
                             float *restrict B, float *restrict D, float *restrict scale, float *restrict shift, float *restrict dh, int HW, int C, int G,
                             int silu) {
	int cg = C / G;
	double cnt = (double)cg * HW;
	for (int c = 0; c < C; c++) {
		float m = stats[2 * (c / cg)], r = stats[2 * (c / cg) + 1];
		a[c] = b[c] = 0;
		scale[c] = r * gammaF[c];
		shift[c] = betaF[c] - m * r * gammaF[c];
	}
	for (int p = 0; p < HW; p++) {
		const T *dr = dy + (size_t)p * C;
		const T *xr = x + (size_t)p * C;
		if (silu) {
			float *dhr = dh + (size_t)p * C;
			for (int c = 0; c < C; c++) {
				float xv = LD(xr, c), h = xv * scale[c] + shift[c];
				float sg = 1.0f / (1.0f + dd_expf(-h));
				float d = LD(dr, c) * sg * (1.0f + h * (1.0f - sg));
				dhr[c] = d;
				a[c] += d;
				b[c] += d * xv;
			}
		} else {
			for (int c = 0; c < C; c++) {
				float d = LD(dr, c);
				a[c] += d;
				b[c] += d * LD(xr, c);
			}
		}
	}
	for (int g = 0; g < G; g++) {
		float m = stats[2 * g], r = stats[2 * g + 1];
		double s1 = 0, s2 = 0;
		for (int c = g * cg; c < (g + 1) * cg; c++) {
			double dxh = (double)r * ((double)b[c] - (double)m * a[c]); // sum dy*xhat
			gbeta[c] += a[c];
			ggamma[c] += (float)dxh;
			s1 += (double)gamma[c] * a[c];
			s2 += (double)gamma[c] * dxh;
		}
		double m1 = s1 / cnt, m2 = s2 / cnt;
		for (int c = g * cg; c < (g + 1) * cg; c++) {
			A[c] = r * gamma[c];
			B[c] = (float)(-(double)r * r * m2);
			D[c] = (float)((double)r * ((double)m * r * m2 - m1));
		}
	}
	for (int p = 0; p < HW; p++) {
		const T *dr = dy + (size_t)p * C;
		const T *xr = x + (size_t)p * C;
		T *o = dx + (size_t)p * C;
		if (silu) {
			const float *dhr = dh + (size_t)p * C;
			for (int c = 0; c < C; c++) ST(o, c, dhr[c] * A[c] + LD(xr, c) * B[c] + D[c]);
		} else {
			for (int c = 0; c < C; c++) ST(o, c, LD(dr, c) * A[c] + LD(xr, c) * B[c] + D[c]);
		}
	}
}

static void SFX(silu)(const T *x, T *y, size_t n) {
	size_t nch = (n + CHUNK - 1) / CHUNK;
#pragma omp parallel for schedule(dynamic) if (nch > 1)
	for (size_t k = 0; k < nch; k++) {
		size_t o = k * CHUNK, m = n - o < CHUNK ? n - o : CHUNK;
		SFX(r_silu)(x + o, y + o, m);
	}
}

static void SFX(silu_bwd)(const T *dy, const T *x, T *dx, size_t n) {
	size_t nch = (n + CHUNK - 1) / CHUNK;
#pragma omp parallel for schedule(dynamic) if (nch > 1)
	for (size_t k = 0; k < nch; k++) {
		size_t o = k * CHUNK, m = n - o < CHUNK ? n - o : CHUNK;
		SFX(r_silu_bwd)(dy + o, x + o, dx + o, m);
	}
}

static void SFX(add)(const T *a, const T *b, T *y, size_t n) {
	size_t nch = (n + CHUNK - 1) / CHUNK;
#pragma omp parallel for schedule(dynamic) if (nch > 1)
	for (size_t k = 0; k < nch; k++) {
		size_t o = k * CHUNK, m = n - o < CHUNK ? n - o : CHUNK;
		SFX(r_add)(a + o, b + o, y + o, m);
	}
}

static void SFX(mulf)(const T *x, const float *m, T *y, size_t n) {
	size_t nch = (n + CHUNK - 1) / CHUNK;
#pragma omp parallel for schedule(dynamic) if (nch > 1)
	for (size_t k = 0; k < nch; k++) {
		size_t o = k * CHUNK, c = n - o < CHUNK ? n - o : CHUNK;
		SFX(r_mulf)(x + o, m + o, y + o, c);
	}
}

static void SFX(scale)(const T *x, T *y, float k, size_t n) {
	size_t nch = (n + CHUNK - 1) / CHUNK;
#pragma omp parallel for schedule(dynamic) if (nch > 1)
	for (size_t k2 = 0; k2 < nch; k2++) {
		size_t o = k2 * CHUNK, m = n - o < CHUNK ? n - o : CHUNK;
		SFX(r_scale)(x + o, y + o, k, m);
	}
}

static void SFX(addch)(const T *x, const float *v, T *y, int N, int HW, int C) {
	size_t s = (size_t)HW * C;
#pragma omp parallel for schedule(dynamic) if (BIG(N * s))
	for (int n = 0; n < N; n++) SFX(r_addch)(x + n * s, v + (size_t)n * C, y + n * s, HW, C);
}

static void SFX(sumhw)(const T *x, float *out, int N, int HW, int C) {
	size_t s = (size_t)HW * C;
#pragma omp parallel for schedule(dynamic) if (BIG(N * s))
	for (int n = 0; n < N; n++) SFX(r_sumhw)(x + n * s, out + (size_t)n * C, HW, C);
}

TC static void SFX(r_concat)(const T *restrict a, const T *restrict b, T *restrict y, int HW, int Ca, int Cb) {
	int C = Ca + Cb;
	for (int p = 0; p < HW; p++) {
		T *yr = y + (size_t)p * C;
		const T *ar = a + (size_t)p * Ca, *br = b + (size_t)p * Cb;
		for (int c = 0; c < Ca; c++) yr[c] = ar[c];
		for (int c = 0; c < Cb; c++) yr[Ca + c] = br[c];
	}
}

TC static void SFX(r_split)(const T *restrict dy, T *restrict da, T *restrict db, int HW, int Ca, int Cb) {
	int C = Ca + Cb;
	for (int p = 0; p < HW; p++) {
		const T *yr = dy + (size_t)p * C;
		T *ar = da + (size_t)p * Ca, *br = db + (size_t)p * Cb;
		for (int c = 0; c < Ca; c++) ar[c] = yr[c];
		for (int c = 0; c < Cb; c++) br[c] = yr[Ca + c];
	}
}

static void SFX(concat)(const T *a, const T *b, T *y, int N, int HW, int Ca, int Cb) {
	size_t C = (size_t)(Ca + Cb);
#pragma omp parallel for schedule(dynamic) if (BIG((size_t)N * HW * C))
	for (int n = 0; n < N; n++)
		SFX(r_concat)(a + (size_t)n * HW * Ca, b + (size_t)n * HW * Cb, y + (size_t)n * HW * C, HW, Ca, Cb);
}

static void SFX(split)(const T *dy, T *da, T *db, int N, int HW, int Ca, int Cb) {
	size_t C = (size_t)(Ca + Cb);
#pragma omp parallel for schedule(dynamic) if (BIG((size_t)N * HW * C))
	for (int n = 0; n < N; n++)
		SFX(r_split)(dy + (size_t)n * HW * C, da + (size_t)n * HW * Ca, db + (size_t)n * HW * Cb, HW, Ca, Cb);
}

static void SFX(up2)(const T *x, T *y, int N, int H, int W, int C) {
	size_t s = (size_t)H * W * C;
#pragma omp parallel for schedule(dynamic) if (BIG(N * s))
	for (int n = 0; n < N; n++) SFX(r_up2)(x + n * s, y + 4 * n * s, H, W, C);
}

static void SFX(up2_bwd)(const T *dy, T *dx, int N, int H, int W, int C) {
	size_t s = (size_t)H * W * C;
#pragma omp parallel for schedule(dynamic) if (BIG(N * s))
	for (int n = 0; n < N; n++) SFX(r_up2_bwd)(dy + 4 * n * s, dx + n * s, H, W, C);
}

// gn_fwd computes the stats of every sample (unless have_stats: then it uses those given) and, when
// y is not NULL, y = GroupNorm(x) or with silu set SiLU(GroupNorm(x)).
static void SFX(gn_fwd)(const T *x, T *y, const float *gamma, const float *beta, float *stats, int N, int HW,
                        int C, int G, float eps, int silu, int have_stats) {
	size_t s = (size_t)HW * C;
	int cg = C / G;
#pragma omp parallel if (BIG(N * s))
	{
		float *buf = malloc(sizeof(float) * 3 * C);
		float *scale = buf, *shift = buf + C;
#pragma omp for schedule(dynamic)
		for (int n = 0; n < N; n++) {
			float *st = stats + (size_t)n * 2 * G;
			if (have_stats) {
				for (int c = 0; c < C; c++) {
					float m = st[2 * (c / cg)], r = st[2 * (c / cg) + 1];
					scale[c] = r * gamma[c];
					shift[c] = beta[c] - m * r * gamma[c];
				}
			} else {
				SFX(r_gn_stats)(x + n * s, gamma, beta, st, scale, shift, buf + 2 * C, HW, C, G, eps);
			}
			if (y) SFX(r_scale_shift)(x + n * s, y + n * s, scale, shift, HW, C, silu);
		}
		free(buf);
	}
}

// gn_bwd gives every sample its own gamma/beta gradient rows and adds them in sample order once the
// parallel loop is done: the sum then depends on N alone, not on the thread count or the schedule.
static void SFX(gn_bwd)(const T *dy, const T *x, const float *stats, const float *gamma, const float *gammaF,
                        const float *betaF, T *dx, float *ggamma, float *gbeta, int N, int HW, int C, int G, int silu) {
	size_t s = (size_t)HW * C;
	float *per = calloc(2 * (size_t)N * C, sizeof(float)); // sample n: gamma grads at 2nC, beta at (2n+1)C
#pragma omp parallel if (BIG(N * s))
	{
		// dh keeps SiLU's gradient of one sample between the two passes (it stays in L2).
		float *buf = malloc(sizeof(float) * (7 * (size_t)C + (silu ? (size_t)HW * C : 0)));
#pragma omp for schedule(dynamic)
		for (int n = 0; n < N; n++) {
			float *gg = per + 2 * (size_t)n * C, *gb = gg + C;
			SFX(r_gn_bwd)(dy + n * s, x + n * s, stats + (size_t)n * 2 * G, gamma, gammaF, betaF, dx + n * s, gg, gb,
			              buf, buf + C, buf + 2 * C, buf + 3 * C, buf + 4 * C, buf + 5 * C, buf + 6 * C, buf + 7 * C,
			              HW, C, G, silu);
		}
		free(buf);
	}
	for (int n = 0; n < N; n++) {
		const float *gg = per + 2 * (size_t)n * C, *gb = gg + C;
		for (int c = 0; c < C; c++) {
			ggamma[c] += gg[c];
			gbeta[c] += gb[c];
		}
	}
	free(per);
}

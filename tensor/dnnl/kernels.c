//go:build cgo

// Memory-bound kernels on NHWC activations: the ops oneDNN 2.6 has no fast primitive for (group norm)
// or where its broadcasting falls to a slow reference kernel. Parallel over samples or chunks with
// OpenMP; the inner loops run over contiguous channels.
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dd.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define TC __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define TC
#endif

// CHUNK is the unit of work of elementwise ops: large enough to amortise the parallel loop, small
// enough to balance two to a few dozen threads on a UNet activation.
#define CHUNK ((size_t)1 << 15)
// Loops are scheduled dynamically, one sample or chunk at a time: when another process preempts one
// of the threads, the others take over its share instead of waiting out its time slice.
//
// BIG says whether n elements are worth a parallel region: waking the team costs microseconds, and
// far more when other processes hold the cores.
#define BIG(n) ((size_t)(n) >= CHUNK)

static inline float bf2f(uint16_t h) {
	union {
		uint32_t u;
		float f;
	} v;
	v.u = (uint32_t)h << 16;
	return v.f;
}

// f2bf rounds to nearest even, as oneDNN's own conversion does (NaN inputs are not expected here).
static inline uint16_t f2bf(float f) {
	union {
		uint32_t u;
		float f;
	} v;
	v.f = f;
	uint32_t u = v.u;
	u += 0x7fffu + ((u >> 16) & 1u);
	return (uint16_t)(u >> 16);
}

// dd_expf is Cephes' expf (range reduction to r in [-ln2/2, ln2/2], degree-6 polynomial, about
// 1 ulp), written in plain arithmetic so loops calling it vectorise: the libm call does not, and
// SiLU over every activation is then the slowest op of the network.
static inline float dd_expf(float x) {
	x = x < -87.0f ? -87.0f : x;
	x = x > 88.0f ? 88.0f : x;
	float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f; // round to nearest
	float r = x - n * 0.693359375f;
	r = r - n * -2.12194440e-4f;
	float p = 1.9875691500e-4f;
	p = p * r + 1.3981999507e-3f;
	p = p * r + 8.3334519073e-3f;
	p = p * r + 4.1665795894e-2f;
	p = p * r + 1.6666665459e-1f;
	p = p * r + 5.0000001201e-1f;
	p = p * r * r + r + 1.0f;
	union {
		int32_t i;
		float f;
	} e;
	e.i = ((int32_t)n + 127) << 23;
	return p * e.f;
}

#define T float
#define SFX(name) name##_f32
#define LD(p, i) ((p)[i])
#define ST(p, i, v) ((p)[i] = (v))
#include "kern.h"
#undef T
#undef SFX
#undef LD
#undef ST

#define T uint16_t
#define SFX(name) name##_bf16
#define LD(p, i) bf2f((p)[i])
#define ST(p, i, v) ((p)[i] = f2bf(v))
#include "kern.h"
#undef T
#undef SFX
#undef LD
#undef ST

#define DISPATCH(dt, name, ...)                                                                            \
	do {                                                                                               \
		if ((dt) == DD_BF16)                                                                       \
			name##_bf16(__VA_ARGS__);                                                          \
		else                                                                                       \
			name##_f32(__VA_ARGS__);                                                           \
	} while (0)

void dd_silu(int dt, const void *x, void *y, size_t n) { DISPATCH(dt, silu, x, y, n); }
void dd_silu_bwd(int dt, const void *dy, const void *x, void *dx, size_t n) {
	DISPATCH(dt, silu_bwd, dy, x, dx, n);
}
void dd_add(int dt, const void *a, const void *b, void *y, size_t n) { DISPATCH(dt, add, a, b, y, n); }
void dd_mulf(int dt, const void *x, const float *m, void *y, size_t n) { DISPATCH(dt, mulf, x, m, y, n); }
void dd_scale(int dt, const void *x, void *y, float k, size_t n) { DISPATCH(dt, scale, x, y, k, n); }
void dd_addch(int dt, const void *x, const float *v, void *y, int N, int HW, int C) {
	DISPATCH(dt, addch, x, v, y, N, HW, C);
}
void dd_sumhw(int dt, const void *x, float *out, int N, int HW, int C) { DISPATCH(dt, sumhw, x, out, N, HW, C); }
void dd_concat(int dt, const void *a, const void *b, void *y, int N, int HW, int Ca, int Cb) {
	DISPATCH(dt, concat, a, b, y, N, HW, Ca, Cb);
}
void dd_split(int dt, const void *dy, void *da, void *db, int N, int HW, int Ca, int Cb) {
	DISPATCH(dt, split, dy, da, db, N, HW, Ca, Cb);
}
void dd_up2(int dt, const void *x, void *y, int N, int H, int W, int C) { DISPATCH(dt, up2, x, y, N, H, W, C); }
void dd_up2_bwd(int dt, const void *dy, void *dx, int N, int H, int W, int C) {
	DISPATCH(dt, up2_bwd, dy, dx, N, H, W, C);
}
void dd_gn_fwd(int dt, const void *x, void *y, const float *gamma, const float *beta, float *stats, int N, int HW,
               int C, int G, float eps, int silu, int have_stats) {
	DISPATCH(dt, gn_fwd, x, y, gamma, beta, stats, N, HW, C, G, eps, silu, have_stats);
}
void dd_gn_bwd(int dt, const void *dy, const void *x, const float *stats, const float *gamma, const float *gammaF,
               const float *betaF, void *dx, float *ggamma, float *gbeta, int N, int HW, int C, int G, int silu) {
	DISPATCH(dt, gn_bwd, dy, x, stats, gamma, gammaF, betaF, dx, ggamma, gbeta, N, HW, C, G, silu);
}

TC static void r_f2bf(const float *s, uint16_t *d, size_t n) {
	for (size_t i = 0; i < n; i++) d[i] = f2bf(s[i]);
}
TC static void r_bf2f(const uint16_t *s, float *d, size_t n) {
	for (size_t i = 0; i < n; i++) d[i] = bf2f(s[i]);
}

void dd_convert(const void *src, int sdt, void *dst, int ddt, size_t n) {
	size_t es = sdt == DD_BF16 ? 2 : 4, ed = ddt == DD_BF16 ? 2 : 4;
	size_t nch = (n + CHUNK - 1) / CHUNK;
#pragma omp parallel for schedule(dynamic) if (nch > 1)
	for (size_t k = 0; k < nch; k++) {
		size_t o = k * CHUNK, m = n - o < CHUNK ? n - o : CHUNK;
		const char *s = (const char *)src + o * es;
		char *d = (char *)dst + o * ed;
		if (sdt == ddt)
			memcpy(d, s, m * es);
		else if (sdt == DD_F32)
			r_f2bf((const float *)s, (uint16_t *)d, m);
		else
			r_bf2f((const uint16_t *)s, (float *)d, m);
	}
}

void dd_nchw_to_nhwc(const float *src, void *dst, int dt, int N, int C, int HW) {
#pragma omp parallel for schedule(dynamic) if (BIG((size_t)N * C * HW))
	for (int n = 0; n < N; n++) {
		const float *s = src + (size_t)n * C * HW;
		for (int p = 0; p < HW; p++) {
			size_t o = ((size_t)n * HW + p) * C;
			if (dt == DD_BF16)
				for (int c = 0; c < C; c++) ((uint16_t *)dst)[o + c] = f2bf(s[(size_t)c * HW + p]);
			else
				for (int c = 0; c < C; c++) ((float *)dst)[o + c] = s[(size_t)c * HW + p];
		}
	}
}

void dd_nhwc_to_nchw(const void *src, int dt, float *dst, int N, int C, int HW) {
#pragma omp parallel for schedule(dynamic) if (BIG((size_t)N * C * HW))
	for (int n = 0; n < N; n++) {
		float *d = dst + (size_t)n * C * HW;
		for (int p = 0; p < HW; p++) {
			size_t o = ((size_t)n * HW + p) * C;
			if (dt == DD_BF16)
				for (int c = 0; c < C; c++) d[(size_t)c * HW + p] = bf2f(((const uint16_t *)src)[o + c]);
			else
				for (int c = 0; c < C; c++) d[(size_t)c * HW + p] = ((const float *)src)[o + c];
		}
	}
}

// dd_mse returns mean((p-t)^2) summed in double and writes its gradient 2(p-t)/n. Each CHUNK has
// its own partial sum and the partials are added in chunk order, so the result depends on n alone:
// not on the thread count or on which thread ran which chunk (an OpenMP reduction adds per-thread
// sums in whatever order threads finish, which moves the last bit between identical runs).
double dd_mse(const float *p, const float *t, float *dp, size_t n) {
	float k = 2.0f / (float)n;
	size_t nch = (n + CHUNK - 1) / CHUNK;
	double one, *part = nch > 1 ? malloc(sizeof(double) * nch) : &one;
#pragma omp parallel for schedule(dynamic) if (nch > 1)
	for (size_t c = 0; c < nch; c++) {
		size_t lo = c * CHUNK, hi = n - lo < CHUNK ? n : lo + CHUNK;
		double s = 0;
		for (size_t i = lo; i < hi; i++) {
			float d = p[i] - t[i];
			s += (double)d * d;
			dp[i] = k * d;
		}
		part[c] = s;
	}
	double s = 0;
	for (size_t c = 0; c < nch; c++) s += part[c];
	if (nch > 1) free(part);
	return s / (double)n;
}

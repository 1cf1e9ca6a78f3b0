//go:build cgo

// The machine's arithmetic peak, measured by the same kind of loop a BLAS inner kernel runs: 12
// independent accumulators, so the FMA units never wait on a previous result. Benchmarks divide
// their FLOP rates by it to say how much of the machine a step uses.
#include <immintrin.h>
#include <omp.h>
#include <stdint.h>

#include "dd.h"

#define ACC 12

#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("avx512f"))) static float peak_f32_512(int64_t iters) {
	__m512 a[ACC], x = _mm512_set1_ps(0.999f), y = _mm512_set1_ps(1e-3f);
	for (int i = 0; i < ACC; i++) a[i] = _mm512_set1_ps((float)i);
	for (int64_t it = 0; it < iters; it++)
		for (int i = 0; i < ACC; i++) a[i] = _mm512_fmadd_ps(a[i], x, y);
	float s = 0;
	for (int i = 0; i < ACC; i++) s += _mm512_reduce_add_ps(a[i]);
	return s;
}

__attribute__((target("avx2,fma"))) static float peak_f32_256(int64_t iters) {
	__m256 a[ACC], x = _mm256_set1_ps(0.999f), y = _mm256_set1_ps(1e-3f);
	for (int i = 0; i < ACC; i++) a[i] = _mm256_set1_ps((float)i);
	for (int64_t it = 0; it < iters; it++)
		for (int i = 0; i < ACC; i++) a[i] = _mm256_fmadd_ps(a[i], x, y);
	float buf[8], s = 0;
	for (int i = 0; i < ACC; i++) {
		_mm256_storeu_ps(buf, a[i]);
		for (int j = 0; j < 8; j++) s += buf[j];
	}
	return s;
}

// vdpbf16ps: 32 bf16 products summed pairwise into 16 fp32 lanes, 64 FLOPs an instruction.
__attribute__((target("avx512f,avx512bf16"))) static float peak_bf16_512(int64_t iters) {
	__m512 a[ACC];
	__m512bh x = (__m512bh)_mm512_set1_epi16(0x3f80), y = (__m512bh)_mm512_set1_epi16(0x3a83); // 1.0, ~1e-3
	for (int i = 0; i < ACC; i++) a[i] = _mm512_set1_ps((float)i);
	for (int64_t it = 0; it < iters; it++)
		for (int i = 0; i < ACC; i++) a[i] = _mm512_dpbf16_ps(a[i], x, y);
	float s = 0;
	for (int i = 0; i < ACC; i++) s += _mm512_reduce_add_ps(a[i]);
	return s;
}
#endif

// dd_peak runs the loop of kind (0: fp32 AVX-512 FMA, 1: fp32 AVX2 FMA, 2: bf16 AVX512-BF16 dot
// products) on `threads` threads, iters iterations each, and returns the FLOPs done and the seconds
// taken. The caller checks that the CPU has the instructions.
double dd_peak(int kind, int threads, long long iters, double *flops) {
	double lanes = kind == 0 ? 16 : kind == 1 ? 8 : 32; // products per instruction
	volatile float sink = 0;
	double t0 = omp_get_wtime();
#pragma omp parallel num_threads(threads)
	{
		float s = 0;
#if defined(__x86_64__) && defined(__GNUC__)
		if (kind == 0)
			s = peak_f32_512(iters);
		else if (kind == 1)
			s = peak_f32_256(iters);
		else
			s = peak_bf16_512(iters);
#endif
#pragma omp atomic
		sink += s;
	}
	double secs = omp_get_wtime() - t0;
	*flops = 2.0 * lanes * ACC * (double)iters * threads;
	(void)sink;
	return secs;
}

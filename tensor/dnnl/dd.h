// C side of the oneDNN backend: convolution primitives, and the memory-bound kernels the UNet needs,
// written for the NHWC layout the Go side keeps every 4-D activation in. Every function here must be
// called from the backend's single worker OS thread (oneDNN's OpenMP pool is per thread).
#ifndef DD_H
#define DD_H
#include <stddef.h>
#include <stdint.h>

// Element types of activation buffers.
enum { DD_F32 = 0, DD_BF16 = 1 };

// dd_init creates the engine once per process and a stream for the calling thread.
int dd_init(int threads);
const char *dd_isa(void);
// dd_peak times an FMA loop (kind 0: fp32 AVX-512, 1: fp32 AVX2, 2: bf16 AVX512-BF16).
double dd_peak(int kind, int threads, long long iters, double *flops);

void *dd_alloc(size_t bytes);
void dd_free(void *p, size_t bytes);

// Convolutions. A dd_conv holds the forward primitive and, created on first use, the two backward
// ones plus the weight reorders, all for one (shape, precision).
typedef struct dd_conv dd_conv;
dd_conv *dd_conv_new(int N, int Cin, int H, int W, int Cout, int K, int S, int P, int dt, int bias,
                     int *status);
int dd_conv_init_bwd(dd_conv *c);
// role 0: forward weights, role 1: backward-data weights.
size_t dd_conv_wbytes(dd_conv *c, int role);
int dd_conv_wreorder(dd_conv *c, int role, const float *oihw, void *dst);
int dd_conv_fwd(dd_conv *c, const void *src, const void *wei, const float *bias, void *dst);
int dd_conv_bwd_data(dd_conv *c, const void *ddst, const void *wei, void *dsrc);
int dd_conv_bwd_weights(dd_conv *c, const void *src, const void *ddst, float *gw, float *gb);
const char *dd_conv_impl(dd_conv *c, int which);
void dd_conv_free(dd_conv *c);

// Linear layers on plain row-major f32, through oneDNN's sgemm.
int dd_linear_fwd(const float *x, const float *w, const float *b, float *y, int N, int In, int Out);
int dd_linear_bwd(const float *dy, const float *x, const float *w, float *dx, float *gw, float *gb,
                  int N, int In, int Out);

// Multi-head self-attention on f32 NHWC (N, L, C) tensors; p holds the (N, heads, L, L) probabilities.
void dd_attn_fwd(const float *q, const float *k, const float *v, float *o, float *p, int N, int L, int C, int heads);
void dd_attn_bwd(const float *dout, const float *q, const float *k, const float *v, const float *p, float *dq,
                 float *dk, float *dv, int N, int L, int C, int heads);

// Conversions and layout changes.
void dd_convert(const void *src, int sdt, void *dst, int ddt, size_t n);
void dd_nchw_to_nhwc(const float *src, void *dst, int dt, int N, int C, int HW);
void dd_nhwc_to_nchw(const void *src, int dt, float *dst, int N, int C, int HW);

// Elementwise and layout kernels on NHWC buffers of element type dt.
void dd_silu(int dt, const void *x, void *y, size_t n);
void dd_silu_bwd(int dt, const void *dy, const void *x, void *dx, size_t n);
void dd_add(int dt, const void *a, const void *b, void *y, size_t n);
// dd_mulf: y = x * m with m float32 (a dropout mask).
void dd_mulf(int dt, const void *x, const float *m, void *y, size_t n);
void dd_scale(int dt, const void *x, void *y, float k, size_t n);
void dd_addch(int dt, const void *x, const float *v, void *y, int N, int HW, int C);
void dd_sumhw(int dt, const void *x, float *out, int N, int HW, int C);
void dd_concat(int dt, const void *a, const void *b, void *y, int N, int HW, int Ca, int Cb);
void dd_split(int dt, const void *dy, void *da, void *db, int N, int HW, int Ca, int Cb);
void dd_up2(int dt, const void *x, void *y, int N, int H, int W, int C);
void dd_up2_bwd(int dt, const void *dy, void *dx, int N, int H, int W, int C);
// dd_gn_fwd computes the per-(sample, group) mean and 1/std into stats (or, with have_stats, uses
// those given) and, unless y is NULL, y = GroupNorm(x), or SiLU(GroupNorm(x)) with silu set.
void dd_gn_fwd(int dt, const void *x, void *y, const float *gamma, const float *beta, float *stats,
               int N, int HW, int C, int G, float eps, int silu, int have_stats);
// dd_gn_bwd is the backward of GroupNorm, or with silu set of SiLU(GroupNorm(x)), whose normalised
// values it recomputes with the forward's affine gammaF, betaF; gamma is the current weight.
void dd_gn_bwd(int dt, const void *dy, const void *x, const float *stats, const float *gamma, const float *gammaF,
               const float *betaF, void *dx, float *ggamma, float *gbeta, int N, int HW, int C, int G, int silu);
double dd_mse(const float *p, const float *t, float *dp, size_t n);
#endif

//go:build cgo

// Convolution and linear layers through oneDNN's C API. Activations are NHWC in the backend's element
// type (f32, or bf16 where AMX makes oneDNN pick its brgemm kernels); weights arrive as PyTorch's plain
// f32 OIHW and are reordered into whatever blocked format each primitive asked for.
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <dnnl.h>

#include "dd.h"

#include <pthread.h>

static dnnl_engine_t eng;
static dnnl_status_t eng_status;
static pthread_once_t eng_once = PTHREAD_ONCE_INIT;
static __thread dnnl_stream_t strm;

static void make_engine(void) { eng_status = dnnl_engine_create(&eng, dnnl_cpu, 0); }

#define CK(x)                                                                                              \
	do {                                                                                               \
		dnnl_status_t st_ = (x);                                                                   \
		if (st_ != dnnl_success) return (int)st_;                                                  \
	} while (0)

int dd_init(int threads) {
	if (threads > 0) omp_set_num_threads(threads);
	pthread_once(&eng_once, make_engine);
	CK(eng_status);
	CK(dnnl_stream_create(&strm, eng, dnnl_stream_default_flags));
	return 0;
}

// dd_isa names the widest instruction set oneDNN dispatches its kernels to on this CPU (after any
// DNNL_MAX_CPU_ISA limit), so test logs and run headers can say which kernels ran.
const char *dd_isa(void) {
	switch (dnnl_get_effective_cpu_isa()) {
	case dnnl_cpu_isa_sse41: return "sse41";
	case dnnl_cpu_isa_avx: return "avx";
	case dnnl_cpu_isa_avx2: return "avx2";
	case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni";
	case dnnl_cpu_isa_avx512_mic: return "avx512_mic";
	case dnnl_cpu_isa_avx512_mic_4ops: return "avx512_mic_4ops";
	case dnnl_cpu_isa_avx512_core: return "avx512_core";
	case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
	case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
	case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
	default: return "unknown";
	}
}

// Large buffers come straight from mmap so that freeing them returns the memory to the OS (malloc
// would keep them in its heap, and the process's peak RSS would only grow).
#define MMAP_MIN ((size_t)1 << 18)

void *dd_alloc(size_t bytes) {
	size_t n = (bytes + 63) & ~(size_t)63;
	if (n == 0) n = 64;
	if (n >= MMAP_MIN) {
		void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		return p == MAP_FAILED ? NULL : p;
	}
	return aligned_alloc(64, n);
}

void dd_free(void *p, size_t bytes) {
	size_t n = (bytes + 63) & ~(size_t)63;
	if (n == 0) n = 64;
	if (n >= MMAP_MIN)
		munmap(p, n);
	else
		free(p);
}

// MAXCHUNK bounds the weight-gradient chunks (one per thread, see dd_conv_init_bwd).
#define MAXCHUNK 64

struct dd_conv {
	int N, Cin, H, W, Cout, K, S, P, dt, bias, nthreads;
	dnnl_memory_desc_t src, dst, wplain, bmd;
	dnnl_primitive_desc_t fpd, bdpd;
	dnnl_primitive_t fwd, bwdd, wre[2];
	// The weight gradient runs as nchunk single-threaded primitives over slices of the batch, one
	// per thread, each into its own buffers, summed afterwards. oneDNN 2.6's multi-threaded
	// backward-weights kernels (AMX bf16 above all) split the batch with spinning barriers, which
	// take a scheduler time slice each whenever another process holds a core: 30x slower on a busy
	// machine, and no faster on a quiet one.
	int nchunk, cn[MAXCHUNK], coff[MAXCHUNK], ckind[MAXCHUNK];
	int kn[2]; // samples of each chunk kind
	dnnl_memory_desc_t csrc[2], cdst[2];
	dnnl_primitive_desc_t bwpd[2];
	dnnl_primitive_t bwdw[2], dwre[2];
	void *dw[MAXCHUNK]; // per chunk, diff weights in its primitive's format
	float *db[MAXCHUNK];
	void *sp[MAXCHUNK]; // per chunk scratchpad
};

static dnnl_data_type_t ddt(int dt) { return dt == DD_BF16 ? dnnl_bf16 : dnnl_f32; }

static int conv_dims(dd_conv *c, dnnl_memory_desc_t *w_any, dnnl_memory_desc_t *bias) {
	dnnl_dims_t sd = {c->N, c->Cin, c->H, c->W};
	int Ho = (c->H + 2 * c->P - c->K) / c->S + 1, Wo = (c->W + 2 * c->P - c->K) / c->S + 1;
	dnnl_dims_t dd = {c->N, c->Cout, Ho, Wo}, wd = {c->Cout, c->Cin, c->K, c->K}, bd = {c->Cout};
	CK(dnnl_memory_desc_init_by_tag(&c->src, 4, sd, ddt(c->dt), dnnl_nhwc));
	CK(dnnl_memory_desc_init_by_tag(&c->dst, 4, dd, ddt(c->dt), dnnl_nhwc));
	CK(dnnl_memory_desc_init_by_tag(&c->wplain, 4, wd, dnnl_f32, dnnl_oihw));
	CK(dnnl_memory_desc_init_by_tag(&c->bmd, 1, bd, dnnl_f32, dnnl_x));
	CK(dnnl_memory_desc_init_by_tag(w_any, 4, wd, ddt(c->dt), dnnl_format_tag_any));
	*bias = c->bmd;
	return 0;
}

static int make_reorder(const dnnl_memory_desc_t *from, const dnnl_memory_desc_t *to, int sum,
                        dnnl_primitive_t *out) {
	dnnl_primitive_attr_t attr = NULL;
	if (sum) {
		dnnl_post_ops_t po;
		CK(dnnl_primitive_attr_create(&attr));
		CK(dnnl_post_ops_create(&po));
		CK(dnnl_post_ops_append_sum(po, 1.0f));
		CK(dnnl_primitive_attr_set_post_ops(attr, po));
		dnnl_post_ops_destroy(po);
	}
	dnnl_primitive_desc_t pd;
	dnnl_status_t s = dnnl_reorder_primitive_desc_create(&pd, from, eng, to, eng, attr);
	if (attr) dnnl_primitive_attr_destroy(attr);
	CK(s);
	s = dnnl_primitive_create(out, pd);
	dnnl_primitive_desc_destroy(pd);
	return (int)s;
}

dd_conv *dd_conv_new(int N, int Cin, int H, int W, int Cout, int K, int S, int P, int dt, int bias, int *status) {
	dd_conv *c = calloc(1, sizeof(dd_conv));
	*c = (dd_conv){.N = N, .Cin = Cin, .H = H, .W = W, .Cout = Cout, .K = K, .S = S, .P = P, .dt = dt, .bias = bias,
	               .nthreads = omp_get_max_threads()};
	dnnl_memory_desc_t wany, bmd;
	int s = conv_dims(c, &wany, &bmd);
	dnnl_convolution_desc_t cd;
	dnnl_dims_t str = {S, S}, pad = {P, P};
	if (!s)
		s = dnnl_convolution_forward_desc_init(&cd, dnnl_forward_training, dnnl_convolution_direct, &c->src, &wany,
		                                       bias ? &bmd : NULL, &c->dst, str, pad, pad);
	if (!s) s = dnnl_primitive_desc_create(&c->fpd, &cd, NULL, eng, NULL);
	if (!s) s = dnnl_primitive_create(&c->fwd, c->fpd);
	if (!s) s = make_reorder(&c->wplain, dnnl_primitive_desc_query_md(c->fpd, dnnl_query_weights_md, 0), 0, &c->wre[0]);
	*status = s;
	if (s) {
		free(c);
		return NULL;
	}
	return c;
}

// bwd_weights_kind creates the single-threaded backward-weights primitive for chunks of n samples.
static int bwd_weights_kind(dd_conv *c, int k, int n) {
	dnnl_dims_t sd = {n, c->Cin, c->H, c->W};
	int Ho = (c->H + 2 * c->P - c->K) / c->S + 1, Wo = (c->W + 2 * c->P - c->K) / c->S + 1;
	dnnl_dims_t dd = {n, c->Cout, Ho, Wo}, wd = {c->Cout, c->Cin, c->K, c->K};
	dnnl_memory_desc_t wany, wf;
	CK(dnnl_memory_desc_init_by_tag(&c->csrc[k], 4, sd, ddt(c->dt), dnnl_nhwc));
	CK(dnnl_memory_desc_init_by_tag(&c->cdst[k], 4, dd, ddt(c->dt), dnnl_nhwc));
	CK(dnnl_memory_desc_init_by_tag(&wany, 4, wd, ddt(c->dt), dnnl_format_tag_any));
	CK(dnnl_memory_desc_init_by_tag(&wf, 4, wd, dnnl_f32, dnnl_format_tag_any));
	dnnl_dims_t str = {c->S, c->S}, pad = {c->P, c->P};
	dnnl_convolution_desc_t fd, bw;
	dnnl_primitive_desc_t hint;
	CK(dnnl_convolution_forward_desc_init(&fd, dnnl_forward_training, dnnl_convolution_direct, &c->csrc[k], &wany,
	                                      c->bias ? &c->bmd : NULL, &c->cdst[k], str, pad, pad));
	CK(dnnl_primitive_desc_create(&hint, &fd, NULL, eng, NULL));
	CK(dnnl_convolution_backward_weights_desc_init(&bw, dnnl_convolution_direct, &c->csrc[k], &wf,
	                                               c->bias ? &c->bmd : NULL, &c->cdst[k], str, pad, pad));
	// The chunks run the same primitive at once, so each brings its own scratchpad.
	dnnl_primitive_attr_t attr;
	CK(dnnl_primitive_attr_create(&attr));
	dnnl_status_t s = dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
	if (!s) s = dnnl_primitive_desc_create(&c->bwpd[k], &bw, attr, eng, hint);
	dnnl_primitive_attr_destroy(attr);
	dnnl_primitive_desc_destroy(hint);
	CK(s);
	CK(dnnl_primitive_create(&c->bwdw[k], c->bwpd[k]));
	CK(make_reorder(dnnl_primitive_desc_query_md(c->bwpd[k], dnnl_query_diff_weights_md, 0), &c->wplain, 1,
	                &c->dwre[k]));
	c->kn[k] = n;
	return 0;
}

static size_t spbytes(dd_conv *c, int k) {
	return dnnl_memory_desc_get_size(dnnl_primitive_desc_query_md(c->bwpd[k], dnnl_query_scratchpad_md, 0));
}

int dd_conv_init_bwd(dd_conv *c) {
	if (c->bwdd) return 0;
	dnnl_memory_desc_t wany, bmd;
	CK(conv_dims(c, &wany, &bmd));
	dnnl_dims_t str = {c->S, c->S}, pad = {c->P, c->P};
	dnnl_convolution_desc_t bd;
	CK(dnnl_convolution_backward_data_desc_init(&bd, dnnl_convolution_direct, &c->src, &wany, &c->dst, str, pad, pad));
	CK(dnnl_primitive_desc_create(&c->bdpd, &bd, NULL, eng, c->fpd));
	CK(make_reorder(&c->wplain, dnnl_primitive_desc_query_md(c->bdpd, dnnl_query_weights_md, 0), 0, &c->wre[1]));

	int T = omp_get_max_threads();
	T = T > MAXCHUNK ? MAXCHUNK : T;
	T = T > c->N ? c->N : T;
	int base = c->N / T, rem = c->N % T;
	c->nchunk = T;
	for (int t = 0; t < T; t++) {
		c->cn[t] = base + (t < rem);
		c->coff[t] = t * base + (t < rem ? t : rem);
		c->ckind[t] = t < rem ? 1 : 0;
	}
	omp_set_num_threads(1); // oneDNN sizes a kernel's threading when the primitive is created
	int s = bwd_weights_kind(c, 0, base);
	if (!s && rem) s = bwd_weights_kind(c, 1, base + 1);
	omp_set_num_threads(c->nthreads);
	if (s) return s;
	for (int t = 0; t < T; t++) {
		int k = c->ckind[t];
		c->dw[t] = dd_alloc(dnnl_memory_desc_get_size(dnnl_primitive_desc_query_md(c->bwpd[k], dnnl_query_diff_weights_md, 0)));
		c->db[t] = dd_alloc(sizeof(float) * c->Cout);
		c->sp[t] = dd_alloc(spbytes(c, k));
	}
	CK(dnnl_primitive_create(&c->bwdd, c->bdpd));
	return 0;
}

static const dnnl_memory_desc_t *wmd(dd_conv *c, int role) {
	return dnnl_primitive_desc_query_md(role == 0 ? c->fpd : c->bdpd, dnnl_query_weights_md, 0);
}

size_t dd_conv_wbytes(dd_conv *c, int role) { return dnnl_memory_desc_get_size(wmd(c, role)); }

// run executes p with up to 5 (arg, md, pointer) triples, wrapping each pointer in a memory object
// only for the duration of the call, so Go memory may be passed in.
typedef struct {
	int arg;
	const dnnl_memory_desc_t *md;
	void *ptr;
} xarg;

static int run(dnnl_primitive_t p, int n, xarg *a) {
	dnnl_memory_t m[6];
	dnnl_exec_arg_t ea[6];
	int made = 0;
	dnnl_status_t s = dnnl_success;
	for (; made < n; made++) {
		s = dnnl_memory_create(&m[made], a[made].md, eng, a[made].ptr);
		if (s) break;
		ea[made].arg = a[made].arg;
		ea[made].memory = m[made];
	}
	if (!s && !strm) s = dnnl_stream_create(&strm, eng, dnnl_stream_default_flags); // an OpenMP helper thread
	if (!s) s = dnnl_primitive_execute(p, strm, n, ea);
	if (!s) s = dnnl_stream_wait(strm);
	for (int i = 0; i < made; i++) dnnl_memory_destroy(m[i]);
	return (int)s;
}

int dd_conv_wreorder(dd_conv *c, int role, const float *oihw, void *dst) {
	xarg a[2] = {{DNNL_ARG_FROM, &c->wplain, (void *)oihw}, {DNNL_ARG_TO, wmd(c, role), dst}};
	return run(c->wre[role], 2, a);
}

int dd_conv_fwd(dd_conv *c, const void *src, const void *wei, const float *bias, void *dst) {
	xarg a[4] = {{DNNL_ARG_SRC, &c->src, (void *)src},
	             {DNNL_ARG_WEIGHTS, wmd(c, 0), (void *)wei},
	             {DNNL_ARG_DST, &c->dst, dst},
	             {DNNL_ARG_BIAS, &c->bmd, (void *)bias}};
	return run(c->fwd, c->bias ? 4 : 3, a);
}

int dd_conv_bwd_data(dd_conv *c, const void *ddst, const void *wei, void *dsrc) {
	xarg a[3] = {{DNNL_ARG_DIFF_DST, &c->dst, (void *)ddst},
	             {DNNL_ARG_WEIGHTS, wmd(c, 1), (void *)wei},
	             {DNNL_ARG_DIFF_SRC, &c->src, dsrc}};
	return run(c->bwdd, 3, a);
}

int dd_conv_bwd_weights(dd_conv *c, const void *src, const void *ddst, float *gw, float *gb) {
	int Ho = (c->H + 2 * c->P - c->K) / c->S + 1, Wo = (c->W + 2 * c->P - c->K) / c->S + 1;
	size_t es = c->dt == DD_BF16 ? 2 : 4;
	size_t sstride = (size_t)c->H * c->W * c->Cin * es, dstride = (size_t)Ho * Wo * c->Cout * es;
	int err = 0;
#pragma omp parallel for schedule(static, 1) if (c->nchunk > 1)
	for (int t = 0; t < c->nchunk; t++) {
		int k = c->ckind[t];
		xarg a[5] = {{DNNL_ARG_SRC, &c->csrc[k], (char *)src + c->coff[t] * sstride},
		             {DNNL_ARG_DIFF_DST, &c->cdst[k], (char *)ddst + c->coff[t] * dstride},
		             {DNNL_ARG_DIFF_WEIGHTS, dnnl_primitive_desc_query_md(c->bwpd[k], dnnl_query_diff_weights_md, 0), c->dw[t]},
		             {DNNL_ARG_SCRATCHPAD, dnnl_primitive_desc_query_md(c->bwpd[k], dnnl_query_scratchpad_md, 0), c->sp[t]},
		             {DNNL_ARG_DIFF_BIAS, &c->bmd, c->db[t]}};
		int s = run(c->bwdw[k], c->bias ? 5 : 4, a);
		if (s) {
#pragma omp atomic write
			err = s;
		}
	}
	if (err) return err;
	for (int t = 0; t < c->nchunk; t++) {
		int k = c->ckind[t];
		xarg r[2] = {{DNNL_ARG_FROM, dnnl_primitive_desc_query_md(c->bwpd[k], dnnl_query_diff_weights_md, 0), c->dw[t]},
		             {DNNL_ARG_TO, &c->wplain, gw}};
		CK(run(c->dwre[k], 2, r));
		if (c->bias && gb)
			for (int i = 0; i < c->Cout; i++) gb[i] += c->db[t][i];
	}
	return 0;
}

void dd_conv_free(dd_conv *c) {
	for (int t = 0; t < c->nchunk; t++) {
		int k = c->ckind[t];
		dd_free(c->dw[t], dnnl_memory_desc_get_size(dnnl_primitive_desc_query_md(c->bwpd[k], dnnl_query_diff_weights_md, 0)));
		dd_free(c->db[t], sizeof(float) * c->Cout);
		dd_free(c->sp[t], spbytes(c, k));
	}
	dnnl_primitive_t ps[] = {c->fwd, c->bwdd, c->bwdw[0], c->bwdw[1], c->wre[0], c->wre[1], c->dwre[0], c->dwre[1]};
	for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++)
		if (ps[i]) dnnl_primitive_destroy(ps[i]);
	dnnl_primitive_desc_t pds[] = {c->fpd, c->bdpd, c->bwpd[0], c->bwpd[1]};
	for (size_t i = 0; i < sizeof pds / sizeof pds[0]; i++)
		if (pds[i]) dnnl_primitive_desc_destroy(pds[i]);
	free(c);
}

const char *dd_conv_impl(dd_conv *c, int which) {
	dnnl_primitive_desc_t pd = which == 0 ? c->fpd : which == 1 ? c->bdpd : c->bwpd[0];
	const char *s = "";
	if (pd) dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &s);
	return s;
}

// small_gemm runs GEMMs too small to share on one thread (the time-embedding MLP at batch 128 is
// 8 MFLOP); it returns the thread count to restore.
static int small_gemm(double macs) {
	int t = omp_get_max_threads();
	if (macs < 16e6) omp_set_num_threads(1);
	return t;
}

// Linear: y = x w^T + b with x (N,In), w (Out,In), row-major.
int dd_linear_fwd(const float *x, const float *w, const float *b, float *y, int N, int In, int Out) {
	int t = small_gemm((double)N * In * Out);
	dnnl_status_t s = dnnl_sgemm('N', 'T', N, Out, In, 1.0f, x, In, w, In, 0.0f, y, Out);
	omp_set_num_threads(t);
	CK(s);
	if (b)
		for (int n = 0; n < N; n++)
			for (int o = 0; o < Out; o++) y[(size_t)n * Out + o] += b[o];
	return 0;
}

// dx = dy w; gw += dy^T x; gb += column sums of dy.
int dd_linear_bwd(const float *dy, const float *x, const float *w, float *dx, float *gw, float *gb, int N, int In,
                  int Out) {
	int t = small_gemm((double)N * In * Out);
	dnnl_status_t s = dnnl_sgemm('N', 'N', N, In, Out, 1.0f, dy, Out, w, In, 0.0f, dx, In);
	if (!s) s = dnnl_sgemm('T', 'N', Out, In, N, 1.0f, dy, Out, x, In, 1.0f, gw, In);
	omp_set_num_threads(t);
	CK(s);
	if (gb)
		for (int n = 0; n < N; n++)
			for (int o = 0; o < Out; o++) gb[o] += dy[(size_t)n * Out + o];
	return 0;
}

// Attention over the L positions of NHWC tensors q, k, v (N, L, C), heads splitting C into blocks of
// d = C/heads: for each sample and head, P = softmax(Q K^T / sqrt(d)) row-wise (saved in p as
// (N, heads, L, L)) and O = P V, written into o's channels of that head. Samples and heads run in
// parallel, each GEMM on one thread.
void dd_attn_fwd(const float *q, const float *k, const float *v, float *o, float *p, int N, int L, int C,
                 int heads) {
	int d = C / heads;
	float scale = 1.0f / sqrtf((float)d);
	int jobs = N * heads;
#pragma omp parallel for schedule(dynamic)
	for (int job = 0; job < jobs; job++) {
		int n = job / heads, h = job % heads;
		size_t off = (size_t)n * L * C + (size_t)h * d;
		float *P = p + (size_t)job * L * L;
		dnnl_sgemm('N', 'T', L, L, d, scale, q + off, C, k + off, C, 0.0f, P, L);
		for (int i = 0; i < L; i++) {
			float *row = P + (size_t)i * L, m = row[0], s = 0;
			for (int j = 1; j < L; j++) m = row[j] > m ? row[j] : m;
			for (int j = 0; j < L; j++) s += row[j] = expf(row[j] - m);
			for (int j = 0; j < L; j++) row[j] /= s;
		}
		dnnl_sgemm('N', 'N', L, d, L, 1.0f, P, L, v + off, C, 0.0f, o + off, C);
	}
}

// dd_attn_bwd: dV = P^T dO, dP = dO V^T, dS = P*(dP - rowsum(dP*P)), dQ = dS K/sqrt(d), dK = dS^T Q/sqrt(d).
void dd_attn_bwd(const float *dout, const float *q, const float *k, const float *v, const float *p, float *dq,
                 float *dk, float *dv, int N, int L, int C, int heads) {
	int d = C / heads;
	float scale = 1.0f / sqrtf((float)d);
	int jobs = N * heads;
#pragma omp parallel
	{
		float *dS = malloc(sizeof(float) * (size_t)L * L);
#pragma omp for schedule(dynamic)
		for (int job = 0; job < jobs; job++) {
			int n = job / heads, h = job % heads;
			size_t off = (size_t)n * L * C + (size_t)h * d;
			const float *P = p + (size_t)job * L * L;
			dnnl_sgemm('T', 'N', L, d, L, 1.0f, P, L, dout + off, C, 0.0f, dv + off, C);
			dnnl_sgemm('N', 'T', L, L, d, 1.0f, dout + off, C, v + off, C, 0.0f, dS, L);
			for (int i = 0; i < L; i++) {
				const float *pr = P + (size_t)i * L;
				float *sr = dS + (size_t)i * L, dot = 0;
				for (int j = 0; j < L; j++) dot += sr[j] * pr[j];
				for (int j = 0; j < L; j++) sr[j] = pr[j] * (sr[j] - dot);
			}
			dnnl_sgemm('N', 'N', L, d, L, scale, dS, L, k + off, C, 0.0f, dq + off, C);
			dnnl_sgemm('T', 'N', L, d, L, scale, dS, L, q + off, C, 0.0f, dk + off, C);
		}
		free(dS);
	}
}

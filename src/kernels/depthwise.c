/* Depthwise 2-D convolution, NHWC, computed directly.
 *
 * Output channel o = ch * m + j reads input channel ch = o / m, and the
 * kernel [kh, kw, c, m] read flat is [kh * kw, f]: for one tap, the
 * weights of consecutive output channels are consecutive, as are the
 * inputs when m is 1. An output pixel is therefore kh * kw multiply-adds
 * of channel vectors, and the work is vectorised across channels. (An
 * im2col + GEMM per channel would write and read kh * kw copies of the
 * input for products of one column.) With so little arithmetic per value
 * read, each output is written once, its epilogue applied on the way.
 *
 * Forward with AVX-512 and m == 1: one block of 16 channels goes down a
 * run of rows of one image, so that the kh input rows it reads stay in L1
 * from one output row to the next. For 3x3 and 5x5 windows the taps stay
 * in registers; pixels whose window lies inside the input go 4 (stride 1)
 * or 2 (stride 2) at a time, sharing their loads, as independent chains;
 * border pixels load the taps outside the input under a zero mask and so
 * add zeros, as zero padding does. Other windows are clipped, their taps
 * read from memory. The portable path (depth multipliers above 1, CPUs
 * without AVX-512) accumulates each output pixel in place over its
 * clipped window, vectorised over channels. Every output is the sum of
 * its taps in (ky, kx) order, then the epilogue: the result does not
 * depend on the thread count (the two paths round differently: fused
 * multiply-adds or not).
 *
 * Backward: dx gathers, for each input pixel, the taps that read it
 * (parallel over input rows, each dx written once); at stride 1 with m 1
 * that is the forward pass over dout with the kernel flipped, and runs as
 * one. dkernel is summed over a fixed number of bands of output rows,
 * each into its own partial (with AVX-512, a register accumulator per tap
 * along each row), and the partials are added in band order: the same
 * bits for any thread count. dbias is nn__colsum_bands. */
#include "kernels/seg_kernels.h"

#include <math.h>
#include <omp.h>
#include <string.h>

#if NN_AVX512_CODE
#include <immintrin.h>
#endif

/* Channels per block of the portable path (its accumulators). */
#define DW_CB 64
/* Bands of output rows the kernel gradient is summed over. */
#define DW_BANDS 16
/* Below this many multiply-adds a call stays on one thread: a thread
 * team costs more than it saves (7x7x960 at batch 1 is 0.4 M). */
#define DW_PAR_MIN (1 << 20)

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

static size_t round16(size_t n) { return (n + 15) & ~(size_t)15; }

static int64_t in_size(const nn_conv_geom *g)
{
    return (int64_t)g->h * g->w * g->c;
}

static int64_t taps(const nn_conv_geom *g) { return (int64_t)g->kh * g->kw; }

static bool parallel_worth(const nn_conv_geom *g, int64_t pixels)
{
    return (double)pixels * (double)g->f * (double)taps(g) >= DW_PAR_MIN;
}

/* Taps [*k0, *k1) of a k-tap window starting at input position i0 that
 * fall inside [0, len). */
static void clip(int64_t i0, int k, int len, int *k0, int *k1)
{
    *k0 = (int)(i0 < 0 ? min64(-i0, k) : 0);
    *k1 = (int)max64(min64(k, len - i0), *k0);
}

/* Outputs [*o0, *o1) of [0, out_len) whose tap at offset d from the
 * window start reads inside the input: 0 <= o * s + d < len. */
static void outputs_inside(int64_t d, int s, int len, int out_len, int *o0,
                           int *o1)
{
    int64_t lo = d >= 0 ? 0 : (-d + s - 1) / s;
    int64_t end = len - 1 - d < 0 ? 0 : (len - 1 - d) / s + 1;
    *o0 = (int)min64(lo, out_len);
    *o1 = (int)max64(min64(end, out_len), *o0);
}

/* The taps k of one axis that read input position p, stride s: those
 * with k = p + pad - s * o for an output o in [0, out_len), which are
 * k = *first, *first + s, ... below *end. */
static void taps_reading(int64_t t, int k, int s, int out_len, int *first,
                         int *end)
{
    /* t = p + pad; o = (t - k) / s must be whole and in range. */
    int64_t lo = max64(0, t - (int64_t)(out_len - 1) * s);
    int64_t hi = min64(k - 1, t);
    if (lo > hi) {
        *first = *end = 0;
        return;
    }
    *first = (int)(lo + (t - lo) % s);
    *end = (int)hi + 1;
}

/* ---------------- forward ---------------- */

typedef struct dw_fwd {
    const nn_conv_geom *g;
    const float *x, *w;
    nn_epilogue e; /* residual at output pixel p is e.residual + p * ldr */
    float *out;
    int m;
    /* Add the result to out (dx of the backward pass; no epilogue then). */
    bool accum;
} dw_fwd;

static bool has_epilogue(const nn_epilogue *e)
{
    return e->scale || e->shift || e->residual || e->relu || e->relu6;
}

/* One output pixel (pix counts pixels across the batch) of image xi with
 * rows [ky0, ky1) of its window inside the input, accumulated in place in
 * the output: the portable path. */
NN_TARGET_CLONES
static void pixel_portable(const dw_fwd *a, const float *xi, int64_t iy0,
                           int ky0, int ky1, int64_t pix, int ox)
{
    const nn_conv_geom *g = a->g;
    const int64_t c = g->c, f = g->f, m = a->m;
    const int64_t ix0 = (int64_t)ox * g->sw - g->pad_left;
    int kx0, kx1;
    clip(ix0, g->kw, g->w, &kx0, &kx1);
    float *restrict out = a->out + pix * f;
    if (!a->accum) memset(out, 0, (size_t)f * sizeof(float));
    for (int ky = ky0; ky < ky1; ky++)
        for (int kx = kx0; kx < kx1; kx++) {
            const float *restrict xp =
                xi + ((iy0 + ky) * g->w + ix0 + kx) * c;
            const float *restrict wp =
                a->w + ((int64_t)ky * g->kw + kx) * f;
            if (m == 1)
                for (int64_t o = 0; o < f; o++) out[o] += xp[o] * wp[o];
            else
                for (int64_t ch = 0; ch < c; ch++)
                    for (int64_t j = 0; j < m; j++)
                        out[ch * m + j] += xp[ch] * wp[ch * m + j];
        }
    if (has_epilogue(&a->e))
        nn__epilogue_row(&a->e, f,
                         a->e.residual ? a->e.residual + pix * a->e.ldr : NULL,
                         out);
}

/* Output row r (counted across the batch), portable path. */
static void row_portable(const dw_fwd *a, int64_t r)
{
    const nn_conv_geom *g = a->g;
    const int64_t i = r / g->oh, oy = r % g->oh;
    const int64_t iy0 = oy * g->sh - g->pad_top;
    int ky0, ky1;
    clip(iy0, g->kh, g->h, &ky0, &ky1);
    for (int ox = 0; ox < g->ow; ox++)
        pixel_portable(a, a->x + i * in_size(g), iy0, ky0, ky1, r * g->ow + ox,
                       ox);
}

#if NN_AVX512_CODE

#define T512 __attribute__((target("avx512f")))
#define INLINE static inline __attribute__((always_inline)) T512

/* The mask of the first min(n, 16) lanes. */
static __mmask16 lanes(int64_t n)
{
    return n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1u);
}

/* The epilogue of one block of 16 channels, as gemm512.c applies it:
 * scale 1 and shift -0 where there is none, ReLU as max(lo, x), ReLU6 as
 * min(hi, x) after it (NaN passes both). */
typedef struct epi16 {
    __m512 scale, shift, lo, hi;
} epi16;

INLINE epi16 epi16_load(const nn_epilogue *e, int64_t c0, __mmask16 k)
{
    epi16 v;
    v.scale = e->scale ? _mm512_maskz_loadu_ps(k, e->scale + c0)
                       : _mm512_set1_ps(1.0f);
    v.shift = e->shift ? _mm512_maskz_loadu_ps(k, e->shift + c0)
                       : _mm512_set1_ps(-0.0f);
    v.lo = e->relu || e->relu6 ? _mm512_setzero_ps()
                               : _mm512_set1_ps(-INFINITY);
    v.hi = _mm512_set1_ps(e->relu6 ? 6.0f : INFINITY);
    return v;
}

/* Ends output pixel pix, channels [c0, c0 + 16) under mask k. */
INLINE void store_pixel(const dw_fwd *a, const epi16 *v, __m512 acc,
                        int64_t pix, int64_t c0, __mmask16 k)
{
    float *o = a->out + pix * a->g->f + c0;
    acc = _mm512_fmadd_ps(acc, v->scale, v->shift);
    if (a->e.residual)
        acc = _mm512_add_ps(
            acc, _mm512_maskz_loadu_ps(k, a->e.residual + pix * a->e.ldr + c0));
    acc = _mm512_min_ps(v->hi, _mm512_max_ps(v->lo, acc));
    if (a->accum) acc = _mm512_add_ps(acc, _mm512_maskz_loadu_ps(k, o));
    _mm512_mask_storeu_ps(o, k, acc);
}

/* Pixels [ox0, ox1) of one row, channels [c0, c0 + 16), any window,
 * each clipped to the input (rows [ky0, ky1) for the whole row). */
static T512 void block_clipped(const dw_fwd *a, const float *xi, int64_t iy0,
                               int ky0, int ky1, int64_t pix0, int ox0,
                               int ox1, int64_t c0, __mmask16 k,
                               const epi16 *v)
{
    const nn_conv_geom *g = a->g;
    const int64_t f = g->f;
    for (int ox = ox0; ox < ox1; ox++) {
        const int64_t ix0 = (int64_t)ox * g->sw - g->pad_left;
        int kx0, kx1;
        clip(ix0, g->kw, g->w, &kx0, &kx1);
        __m512 acc = _mm512_setzero_ps();
        for (int ky = ky0; ky < ky1; ky++) {
            const int64_t at = (iy0 + ky) * g->w + ix0;
            const float *wr = a->w + (int64_t)ky * g->kw * f + c0;
            for (int kx = kx0; kx < kx1; kx++)
                acc = _mm512_fmadd_ps(
                    _mm512_maskz_loadu_ps(k, xi + (at + kx) * f + c0),
                    _mm512_maskz_loadu_ps(k, wr + kx * f), acc);
        }
        store_pixel(a, v, acc, pix0 + ox, c0, k);
    }
}

/* Taps [t0, t1) as bits. */
static unsigned tap_bits(int t0, int t1)
{
    return ((1u << t1) - 1u) & ~((1u << t0) - 1u);
}

/* Output pixel pix whose window (starting at input pixel at, which may
 * lie outside the image) has rows rows and columns cols (bits) inside:
 * the taps outside load nothing (a zero mask, from the image's first
 * pixel: an address outside the buffer would cost a fault-suppression
 * assist) and add +0 products, as zero padding does. */
INLINE void pixel_masked(const dw_fwd *a, const float *xi, int64_t at,
                         unsigned rows, unsigned cols, const __m512 *wv,
                         int64_t pix, int64_t c0, __mmask16 k, const epi16 *v,
                         const int KH, const int KW)
{
    const int64_t f = a->g->f, w = a->g->w;
    __m512 acc = _mm512_setzero_ps();
#pragma GCC unroll 5
    for (int ky = 0; ky < KH; ky++)
#pragma GCC unroll 5
        for (int kx = 0; kx < KW; kx++) {
            const bool in = (rows >> ky) & (cols >> kx) & 1u;
            const int64_t t = in ? at + ky * w + kx : 0;
            acc = _mm512_fmadd_ps(
                _mm512_maskz_loadu_ps(in ? k : 0, xi + t * f + c0),
                wv[ky * KW + kx], acc);
        }
    store_pixel(a, v, acc, pix, c0, k);
}

/* Output rows [r0, r1) of one image, channels [c0, c0 + 16), a KH x KW
 * window whose taps stay in registers. Pixels whose window lies inside
 * the input go P at a time when P > 1 (stride SW): their rows of input
 * are loaded once as (P - 1) * SW + KW vectors, and the P sums are
 * independent chains that overlap in the pipeline; the others through
 * pixel_masked. Every sum is in (ky, kx) order. */
INLINE void rows_window(const dw_fwd *a, int64_t r0, int64_t r1, int64_t c0,
                        __mmask16 k, const epi16 *v, const int KH,
                        const int KW, const int SW, const int P)
{
    const nn_conv_geom *g = a->g;
    const int64_t f = g->f, wf = (int64_t)g->w * f, step = (int64_t)g->sw * f;
    __m512 wv[25]; /* KH * KW of them */
#pragma GCC unroll 25
    for (int t = 0; t < KH * KW; t++)
        wv[t] = _mm512_maskz_loadu_ps(k, a->w + t * f + c0);
    /* The pixels whose first and last taps are inside, [in0, in1). */
    int in0, in1, unused;
    outputs_inside(-g->pad_left, g->sw, g->w, g->ow, &in0, &unused);
    outputs_inside(KW - 1 - g->pad_left, g->sw, g->w, g->ow, &unused, &in1);
    in1 = in1 > in0 ? in1 : in0;
    const float *xi = a->x + r0 / g->oh * in_size(g);
    for (int64_t r = r0; r < r1; r++) {
        const int64_t oy = r % g->oh, pix0 = r * g->ow;
        const int64_t iy0 = oy * g->sh - g->pad_top;
        int ky0, ky1;
        clip(iy0, KH, g->h, &ky0, &ky1);
        const unsigned rows = tap_bits(ky0, ky1);
        const bool whole = ky0 == 0 && ky1 == KH;
        const int i0 = whole ? in0 : g->ow, i1 = whole ? in1 : g->ow;
        for (int ox = 0; ox < g->ow; ox++) {
            if (ox == i0) ox = i1; /* the inside ones, below */
            if (ox == g->ow) break;
            const int64_t ix0 = (int64_t)ox * g->sw - g->pad_left;
            int kx0, kx1;
            clip(ix0, KW, g->w, &kx0, &kx1);
            pixel_masked(a, xi, iy0 * g->w + ix0, rows, tap_bits(kx0, kx1),
                         wv, pix0 + ox, c0, k, v, KH, KW);
        }
        const float *p = xi + (iy0 * g->w + (int64_t)i0 * g->sw -
                               g->pad_left) * f + c0;
        int ox = i0;
        if (P > 1)
            for (; ox + P <= i1; ox += P, p += P * step) {
                __m512 acc[4], col[9]; /* P, (P - 1) * SW + KW */
#pragma GCC unroll 4
                for (int q = 0; q < P; q++) acc[q] = _mm512_setzero_ps();
#pragma GCC unroll 5
                for (int ky = 0; ky < KH; ky++) {
#pragma GCC unroll 9
                    for (int j = 0; j < (P - 1) * SW + KW; j++)
                        col[j] = _mm512_maskz_loadu_ps(k, p + ky * wf + j * f);
#pragma GCC unroll 5
                    for (int kx = 0; kx < KW; kx++)
#pragma GCC unroll 4
                        for (int q = 0; q < P; q++)
                            acc[q] = _mm512_fmadd_ps(col[q * SW + kx],
                                                     wv[ky * KW + kx], acc[q]);
                }
#pragma GCC unroll 4
                for (int q = 0; q < P; q++)
                    store_pixel(a, v, acc[q], pix0 + ox + q, c0, k);
            }
        for (; ox < i1; ox++, p += step) {
            __m512 acc = _mm512_setzero_ps();
#pragma GCC unroll 5
            for (int ky = 0; ky < KH; ky++)
#pragma GCC unroll 5
                for (int kx = 0; kx < KW; kx++)
                    acc = _mm512_fmadd_ps(
                        _mm512_maskz_loadu_ps(k, p + ky * wf + kx * f),
                        wv[ky * KW + kx], acc);
            store_pixel(a, v, acc, pix0 + ox, c0, k);
        }
    }
}

/* The windows with a kernel of their own, and the stride it is for. */
typedef enum window_kind {
    WINDOW_OTHER, WINDOW_3X3_S1, WINDOW_3X3_S2, WINDOW_3X3, WINDOW_5X5
} window_kind;

static window_kind window_kind_of(const nn_conv_geom *g)
{
    if (g->kh == 5 && g->kw == 5) return WINDOW_5X5;
    if (g->kh != 3 || g->kw != 3) return WINDOW_OTHER;
    if (g->sw == 1) return WINDOW_3X3_S1;
    return g->sw == 2 ? WINDOW_3X3_S2 : WINDOW_3X3;
}

typedef void (*rows_fn)(const dw_fwd *, int64_t, int64_t, int64_t,
                        __mmask16, const epi16 *);

#define ROWS_WINDOW(name, KH, KW, SW, P)                                       \
    static T512 void name(const dw_fwd *a, int64_t r0, int64_t r1,            \
                          int64_t c0, __mmask16 k, const epi16 *v)             \
    {                                                                          \
        rows_window(a, r0, r1, c0, k, v, KH, KW, SW, P);                       \
    }
ROWS_WINDOW(rows_3x3_s1, 3, 3, 1, 4)
ROWS_WINDOW(rows_3x3_s2, 3, 3, 2, 2)
ROWS_WINDOW(rows_3x3, 3, 3, 0, 1)
ROWS_WINDOW(rows_5x5, 5, 5, 0, 1)

/* Any other window: every pixel clipped, the taps read from memory. */
static T512 void rows_other(const dw_fwd *a, int64_t r0, int64_t r1,
                            int64_t c0, __mmask16 k, const epi16 *v)
{
    const nn_conv_geom *g = a->g;
    const float *xi = a->x + r0 / g->oh * in_size(g);
    for (int64_t r = r0; r < r1; r++) {
        const int64_t iy0 = r % g->oh * g->sh - g->pad_top;
        int ky0, ky1;
        clip(iy0, g->kh, g->h, &ky0, &ky1);
        block_clipped(a, xi, iy0, ky0, ky1, r * g->ow, 0, g->ow, c0, k, v);
    }
}

static const rows_fn rows_fns[] = {
    [WINDOW_OTHER] = rows_other, [WINDOW_3X3_S1] = rows_3x3_s1,
    [WINDOW_3X3_S2] = rows_3x3_s2, [WINDOW_3X3] = rows_3x3,
    [WINDOW_5X5] = rows_5x5,
};

/* Output rows [r0, r1) of one image, m == 1: one block of 16 channels at
 * a time goes down all the rows, so that the kh input rows of a block
 * stay in L1 from one output row to the next. */
static T512 void rows_avx512(const dw_fwd *a, int64_t r0, int64_t r1)
{
    const int64_t f = a->g->f;
    const rows_fn fn = rows_fns[window_kind_of(a->g)];
    for (int64_t c0 = 0; c0 < f; c0 += 16) {
        const __mmask16 k = lanes(f - c0);
        const epi16 v = epi16_load(&a->e, c0, k);
        fn(a, r0, r1, c0, k, &v);
    }
}

static bool avx512_ok(int m) { return m == 1 && nn__gemm512_ok(); }

#else /* no AVX-512 code in this build */

static bool avx512_ok(int m)
{
    (void)m;
    return false;
}

static void rows_avx512(const dw_fwd *a, int64_t r0, int64_t r1)
{
    (void)a, (void)r0, (void)r1;
}

#endif

/* Rows [r0, r1) of the output, of one image. */
static void forward_rows(const dw_fwd *a, int64_t r0, int64_t r1, bool fast)
{
    if (fast) {
        rows_avx512(a, r0, r1);
        return;
    }
    for (int64_t r = r0; r < r1; r++) row_portable(a, r);
}

static void forward_run(const dw_fwd *a)
{
    const nn_conv_geom *g = a->g;
    const int64_t rows = (int64_t)g->n * g->oh;
    if (rows <= 0 || g->ow <= 0 || g->f <= 0) return;
    const bool fast = avx512_ok(a->m);
    const int nt = parallel_worth(g, rows * g->ow) ? nn__threads() : 1;
    /* Each thread one contiguous run of rows, taken image by image. */
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        int t = omp_get_thread_num(), np = omp_get_num_threads();
        int64_t r0 = rows * t / np, r1 = rows * (t + 1) / np;
        for (int64_t r = r0; r < r1;) {
            int64_t end = (r / g->oh + 1) * g->oh;
            end = end < r1 ? end : r1;
            forward_rows(a, r, end, fast);
            r = end;
        }
    }
}

void nn__depthwise_forward(const nn_conv_geom *g, const float *x,
                           const float *w, const float *bias, float *out)
{
    nn_epilogue e = {.shift = bias};
    nn__depthwise_forward_epi(g, x, w, &e, out);
}

void nn__depthwise_forward_epi(const nn_conv_geom *g, const float *x,
                               const float *w, const nn_epilogue *e,
                               float *out)
{
    if (g->c <= 0) return;
    dw_fwd a = {g, x, w, *e, out, g->f / g->c, false};
    forward_run(&a);
}

/* ---------------- backward ---------------- */

size_t nn__depthwise_backward_scratch(const nn_conv_geom *g)
{
    /* Used one after the other: the flipped kernel (dx), the band
     * partials (dkernel), the column sums' (dbias). */
    size_t kernel = round16((size_t)(taps(g) * g->f));
    size_t bands = (size_t)min64((int64_t)g->n * g->oh, DW_BANDS) * kernel;
    size_t sums = nn__colsum_bands_scratch(g->f);
    size_t s = kernel > bands ? kernel : bands;
    return s > sums ? s : sums;
}

/* Stride 1, m == 1: dx[p] = sum over taps t of dout[p + pad - t] w[t] is
 * the forward pass of dout with the kernel reversed (wf) and the pads
 * mirrored. */
static void dx_flipped(const nn_conv_geom *g, const float *w,
                       const float *dout, float *dx, bool accum, float *wf)
{
    const int64_t t = taps(g), f = g->f;
    for (int64_t i = 0; i < t; i++)
        memcpy(wf + (t - 1 - i) * f, w + i * f, (size_t)f * sizeof(float));
    nn_conv_geom gd = {
        .n = g->n, .h = g->oh, .w = g->ow, .c = g->f,
        .kh = g->kh, .kw = g->kw, .sh = 1, .sw = 1,
        .pad_top = g->kh - 1 - g->pad_top,
        .pad_left = g->kw - 1 - g->pad_left,
        .oh = g->h, .ow = g->w, .f = g->c,
    };
    dw_fwd a = {&gd, dout, wf, {0}, dx, 1, accum};
    forward_run(&a);
}

/* Input row r (counted across the batch) of dx: each pixel sums the taps
 * that read it, those of the taps_reading of both axes. */
NN_TARGET_CLONES
static void dx_gather_row(const nn_conv_geom *g, int m, const float *w,
                          const float *dout, float *dx, bool accum, int64_t r)
{
    const int64_t c = g->c, f = g->f, i = r / g->h, iy = r % g->h;
    const float *dimg = dout + i * g->oh * g->ow * f;
    const int64_t ty = iy + g->pad_top;
    int ky0, ky1;
    taps_reading(ty, g->kh, g->sh, g->oh, &ky0, &ky1);
    for (int ix = 0; ix < g->w; ix++) {
        const int64_t tx = ix + g->pad_left;
        int kx0, kx1;
        taps_reading(tx, g->kw, g->sw, g->ow, &kx0, &kx1);
        float *restrict d = dx + (r * g->w + ix) * c;
        if (!accum) memset(d, 0, (size_t)c * sizeof(float));
        for (int ky = ky0; ky < ky1; ky += g->sh)
            for (int kx = kx0; kx < kx1; kx += g->sw) {
                const int64_t oy = (ty - ky) / g->sh, ox = (tx - kx) / g->sw;
                const float *restrict dp = dimg + (oy * g->ow + ox) * f;
                const float *restrict wp =
                    w + ((int64_t)ky * g->kw + kx) * f;
                if (m == 1)
                    for (int64_t o = 0; o < c; o++) d[o] += dp[o] * wp[o];
                else
                    for (int64_t ch = 0; ch < c; ch++) {
                        float s = 0.0f;
                        for (int j = 0; j < m; j++)
                            s += dp[ch * m + j] * wp[ch * m + j];
                        d[ch] += s;
                    }
            }
    }
}

static void backward_dx(const nn_conv_geom *g, int m, const float *w,
                        const float *dout, float *dx, bool accum,
                        float *scratch)
{
    if (m == 1 && g->sh == 1 && g->sw == 1) {
        dx_flipped(g, w, dout, dx, accum, scratch);
        return;
    }
    const int64_t rows = (int64_t)g->n * g->h;
#pragma omp parallel for num_threads(nn__threads())                         \
    if (parallel_worth(g, rows * g->w)) schedule(static)
    for (int64_t r = 0; r < rows; r++)
        dx_gather_row(g, m, w, dout, dx, accum, r);
}

/* Adds output row r's share of the kernel gradient into part [taps, f]:
 * per tap and block of channels, the row's sum is formed first. */
NN_TARGET_CLONES
static void dkernel_row(const nn_conv_geom *g, int m, const float *x,
                        const float *dout, int64_t r, float *part)
{
    const int64_t c = g->c, f = g->f, i = r / g->oh, oy = r % g->oh;
    const float *drow = dout + r * g->ow * f;
    const int64_t iy0 = oy * g->sh - g->pad_top;
    int ky0, ky1;
    clip(iy0, g->kh, g->h, &ky0, &ky1);
    for (int ky = ky0; ky < ky1; ky++) {
        const float *xrow = x + (i * g->h + iy0 + ky) * g->w * c;
        for (int kx = 0; kx < g->kw; kx++) {
            const int64_t d = kx - g->pad_left;
            int ox0, ox1;
            outputs_inside(d, g->sw, g->w, g->ow, &ox0, &ox1);
            float *pt = part + ((int64_t)ky * g->kw + kx) * f;
            for (int64_t c0 = 0; c0 < f; c0 += DW_CB) {
                const int64_t cb = min64(DW_CB, f - c0);
                float acc[DW_CB];
                for (int64_t j = 0; j < cb; j++) acc[j] = 0.0f;
                for (int ox = ox0; ox < ox1; ox++) {
                    const float *xp = xrow + (ox * g->sw + d) * c;
                    const float *dp = drow + ox * f + c0;
                    if (m == 1)
                        for (int64_t j = 0; j < cb; j++)
                            acc[j] += xp[c0 + j] * dp[j];
                    else
                        for (int64_t j = 0; j < cb; j++)
                            acc[j] += xp[(c0 + j) / m] * dp[j];
                }
                for (int64_t j = 0; j < cb; j++) pt[c0 + j] += acc[j];
            }
        }
    }
}

#if NN_AVX512_CODE

/* One output pixel's products for the kernel gradient: acc[t] += the
 * input under tap t times dv. masked: taps outside the input (rows, cols
 * bits) load nothing, from the image's first pixel (see pixel_masked). */
INLINE void dk_pixel(const float *xi, int64_t at, int64_t w, int64_t f,
                     int64_t c0, __mmask16 k, __m512 dv, unsigned rows,
                     unsigned cols, bool masked, __m512 *acc, const int KH,
                     const int KW)
{
#pragma GCC unroll 5
    for (int ky = 0; ky < KH; ky++)
#pragma GCC unroll 5
        for (int kx = 0; kx < KW; kx++) {
            const bool in = !masked || ((rows >> ky) & (cols >> kx) & 1u);
            const int64_t t = in ? at + ky * w + kx : 0;
            acc[ky * KW + kx] = _mm512_fmadd_ps(
                _mm512_maskz_loadu_ps(in ? k : 0, xi + t * f + c0), dv,
                acc[ky * KW + kx]);
        }
}

/* Output rows [r0, r1) of one band, channels [c0, c0 + 16), m == 1, a
 * KH x KW window: one accumulator per tap in registers along each row,
 * whose sums are then added into part [taps, f]. */
INLINE void dkernel_rows(const nn_conv_geom *g, const float *x,
                         const float *dout, int64_t r0, int64_t r1,
                         int64_t c0, __mmask16 k, float *part, const int KH,
                         const int KW)
{
    const int64_t f = g->f, w = g->w;
    int in0, in1, unused;
    outputs_inside(-g->pad_left, g->sw, g->w, g->ow, &in0, &unused);
    outputs_inside(KW - 1 - g->pad_left, g->sw, g->w, g->ow, &unused, &in1);
    in1 = in1 > in0 ? in1 : in0;
    for (int64_t r = r0; r < r1; r++) {
        const float *xi = x + r / g->oh * in_size(g);
        const float *drow = dout + r * g->ow * f + c0;
        const int64_t iy0 = r % g->oh * g->sh - g->pad_top;
        int ky0, ky1;
        clip(iy0, KH, g->h, &ky0, &ky1);
        const unsigned rows = tap_bits(ky0, ky1);
        const bool whole = ky0 == 0 && ky1 == KH;
        const int i0 = whole ? in0 : g->ow, i1 = whole ? in1 : g->ow;
        __m512 acc[25];
#pragma GCC unroll 25
        for (int t = 0; t < KH * KW; t++) acc[t] = _mm512_setzero_ps();
        for (int ox = 0; ox < g->ow; ox++) {
            const int64_t ix0 = (int64_t)ox * g->sw - g->pad_left;
            const __m512 dv = _mm512_maskz_loadu_ps(k, drow + ox * f);
            const int64_t at = iy0 * w + ix0;
            if (ox >= i0 && ox < i1) {
                dk_pixel(xi, at, w, f, c0, k, dv, 0, 0, false, acc, KH, KW);
                continue;
            }
            int kx0, kx1;
            clip(ix0, KW, g->w, &kx0, &kx1);
            dk_pixel(xi, at, w, f, c0, k, dv, rows, tap_bits(kx0, kx1), true,
                     acc, KH, KW);
        }
#pragma GCC unroll 25
        for (int t = 0; t < KH * KW; t++) {
            float *pt = part + t * f + c0;
            _mm512_mask_storeu_ps(
                pt, k, _mm512_add_ps(_mm512_maskz_loadu_ps(k, pt), acc[t]));
        }
    }
}

static T512 void dkernel_rows_3x3(const nn_conv_geom *g, const float *x,
                                  const float *dout, int64_t r0, int64_t r1,
                                  int64_t c0, __mmask16 k, float *part)
{
    dkernel_rows(g, x, dout, r0, r1, c0, k, part, 3, 3);
}

static T512 void dkernel_rows_5x5(const nn_conv_geom *g, const float *x,
                                  const float *dout, int64_t r0, int64_t r1,
                                  int64_t c0, __mmask16 k, float *part)
{
    dkernel_rows(g, x, dout, r0, r1, c0, k, part, 5, 5);
}

/* The band's rows [r0, r1) through the kernels above, or false where
 * they do not apply. */
static bool dkernel_band_avx512(const nn_conv_geom *g, int m, const float *x,
                                const float *dout, int64_t r0, int64_t r1,
                                float *part)
{
    window_kind kind = window_kind_of(g);
    if (!avx512_ok(m) || kind == WINDOW_OTHER) return false;
    for (int64_t c0 = 0; c0 < g->f; c0 += 16) {
        const __mmask16 k = lanes(g->f - c0);
        if (kind == WINDOW_5X5)
            dkernel_rows_5x5(g, x, dout, r0, r1, c0, k, part);
        else
            dkernel_rows_3x3(g, x, dout, r0, r1, c0, k, part);
    }
    return true;
}

#else

static bool dkernel_band_avx512(const nn_conv_geom *g, int m, const float *x,
                                const float *dout, int64_t r0, int64_t r1,
                                float *part)
{
    (void)g, (void)m, (void)x, (void)dout, (void)r0, (void)r1, (void)part;
    return false;
}

#endif

/* Band b's partial: the rows are split into a fixed number of bands. */
static void dkernel_band(const nn_conv_geom *g, int m, const float *x,
                         const float *dout, int64_t r0, int64_t r1,
                         float *part)
{
    memset(part, 0, (size_t)(taps(g) * g->f) * sizeof(float));
    if (dkernel_band_avx512(g, m, x, dout, r0, r1, part)) return;
    for (int64_t r = r0; r < r1; r++) dkernel_row(g, m, x, dout, r, part);
}

static void backward_dkernel(const nn_conv_geom *g, int m, const float *x,
                             const float *dout, float *dw, float *scratch)
{
    const int64_t rows = (int64_t)g->n * g->oh, len = taps(g) * g->f;
    const int nb = (int)min64(rows, DW_BANDS);
    const size_t slot = round16((size_t)len);
    if (nb == 0) {
        memset(dw, 0, (size_t)len * sizeof(float));
        return;
    }
    const bool par = parallel_worth(g, rows * g->ow);
#pragma omp parallel num_threads(nn__threads()) if (par)
    {
#pragma omp for schedule(static)
        for (int b = 0; b < nb; b++)
            dkernel_band(g, m, x, dout, rows * b / nb, rows * (b + 1) / nb,
                         scratch + (size_t)b * slot);
#pragma omp for schedule(static)
        for (int64_t e = 0; e < len; e++) {
            double s = 0.0;
            for (int b = 0; b < nb; b++) s += scratch[(size_t)b * slot + e];
            dw[e] = (float)s;
        }
    }
}

void nn__depthwise_backward(const nn_conv_geom *g, const float *x,
                            const float *w, const float *dout, float *dx,
                            bool accum, float *dw, float *db, float *scratch)
{
    if (g->c <= 0) return;
    const int m = g->f / g->c;
    if (dx) backward_dx(g, m, w, dout, dx, accum, scratch);
    if (dw) backward_dkernel(g, m, x, dout, dw, scratch);
    if (db)
        nn__colsum_bands(dout, (int64_t)g->n * g->oh * g->ow, g->f, db,
                         scratch);
}

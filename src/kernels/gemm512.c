/* A single-threaded AVX-512 matrix product for the shapes of convolutions:
 * C[m, n] (+)= op(A)[m, k] * B[k, n] with B row-major and n small (the
 * filters or the kernel window). OpenBLAS picks its kernels by the CPU it
 * is told it runs on (OPENBLAS_CORETYPE), which may leave AVX-512 unused;
 * this one asks the CPU itself.
 *
 * Register blocking: a tile of MR rows by NV 16-float vectors of C stays in
 * registers while k runs; each step loads one row of B (NV vectors) and
 * broadcasts MR values of A. Columns past n are masked, so any n works.
 * Every element of C is one chain of fused multiply-adds over p = 0..k-1
 * in order, from 0 (or from C when beta is 1): the result depends only on
 * the inputs, not on how rows, columns or k are blocked. */
#include "kernels/kernels.h"

#include <math.h>

#if NN_AVX512_CODE
#include <immintrin.h>
#endif

static bool disabled; /* nn__gemm512_disable (tests, benchmarks) */

void nn__gemm512_disable(bool off) { disabled = off; }

/* The epilogue of one row of C after the product is in it: one pass per
 * step (each vectorises), the steps in the order of nn_epilogue's. */
NN_TARGET_CLONES
static void epilogue_row(const nn_epilogue *e, int64_t n, const float *res,
                         float *restrict row)
{
    const float *restrict scale = e->scale, *restrict shift = e->shift;
    if (scale && shift)
        for (int64_t j = 0; j < n; j++)
            row[j] = fmaf(row[j], scale[j], shift[j]);
    else if (scale)
        for (int64_t j = 0; j < n; j++) row[j] = fmaf(row[j], scale[j], 0.0f);
    else if (shift)
        for (int64_t j = 0; j < n; j++) row[j] += shift[j];
    if (res)
        for (int64_t j = 0; j < n; j++) row[j] += res[j];
    if (e->relu || e->relu6)
        for (int64_t j = 0; j < n; j++) row[j] = row[j] < 0.0f ? 0.0f : row[j];
    if (e->relu6)
        for (int64_t j = 0; j < n; j++) row[j] = row[j] > 6.0f ? 6.0f : row[j];
}

void nn__epilogue_row(const nn_epilogue *e, int64_t n, const float *res,
                      float *row)
{
    epilogue_row(e, n, res, row);
}

/* nn__gemm512_epi through OpenBLAS: the product, then the epilogue. */
static void epilogue_fallback(int64_t m, int64_t n, int64_t k, const float *a,
                              int64_t lda, const float *b, int64_t ldb,
                              const nn_epilogue *e, float *c, int64_t ldc)
{
    nn__gemm1(false, false, m, n, k, a, lda, b, ldb, 0.0f, c, ldc);
    for (int64_t i = 0; i < m; i++)
        epilogue_row(e, n, e->residual ? e->residual + i * e->ldr : NULL,
                     c + i * ldc);
}

#if NN_AVX512_CODE

#define T512 __attribute__((target("avx512f")))
#define INLINE static inline __attribute__((always_inline)) T512

/* k is cut into blocks of this many steps: a block of B (KC rows by 64
 * columns, 128 KB) stays in L2 while every row tile of A runs over it.
 * Accumulators start from C for every block but the first, so each element
 * is still one chain of fused multiply-adds in k order: the blocking does
 * not change a bit of the result. */
#define KC 512
/* B comes from memory (a convolution's kernel is read once per pass;
 * at batch 1 that is most of the time), its rows ldb floats apart, where
 * the hardware prefetchers stop at page boundaries. So the first row tile
 * over a block of B fetches the rows PF_ROWS steps ahead of itself into
 * L1, and the next tiles fetch the following block into L2, one column
 * of vectors each, while they compute: at batch 1, ResNet50 took 12%
 * less time with both (docs/benchmarks.md). */
#define PF_ROWS 64
#define STREAM_BYTES (512 * 1024)

bool nn__gemm512_ok(void)
{
    __builtin_cpu_init(); /* a no-op once done; checks OS support too */
    return !disabled && __builtin_cpu_supports("avx512f");
}

typedef struct tile_args {
    const float *a; /* A(i0, k0) */
    int64_t lda;
    const float *b; /* B(k0, j0) */
    int64_t ldb;
    float *c; /* C(i0, j0) */
    int64_t ldc, k;
    __mmask16 last; /* columns of the last vector inside n */
    bool load;      /* accumulators start from C, else from 0 */
    bool final;     /* last block of k: apply the epilogue */
    bool prefetch;  /* first pass over this block of B: fetch ahead */
    /* Later passes: one 16-float column of the next block of B (next_k
     * rows) to fetch into L2 while this block computes, or NULL. */
    const float *next;
    int64_t next_k;
    const float *scale, *shift; /* at column j0, or NULL */
    const float *res;           /* residual at (i0, j0), or NULL */
    int64_t ldr;
    bool relu, relu6;
} tile_args;

/* A prefetch of p + off, which may lie past the end of p's array (a
 * prefetch never faults); the address is formed as an integer, since
 * such a pointer would be undefined. */
#define prefetch(p, off, hint)                                                 \
    _mm_prefetch((const char *)((uintptr_t)(p) +                               \
                                (uintptr_t)(off) * sizeof(float)),             \
                 hint)

/* The epilogue's per-column vectors, read once per tile: x * scale +
 * shift is one fused multiply-add, with scale 1 and shift -0 where there
 * is none (x * 1 + -0 is x, -0 included, and x * 1 + s is x + s rounded
 * once, as an addition); the ReLU is max(floor, x) with floor 0, or -inf
 * where there is none (max returns x when x is NaN, and -0 against 0),
 * then min(ceil, x) with ceil 6 for ReLU6, else +inf (NaN passes again). */
typedef struct epi_vecs {
    __m512 scale[4], shift[4], floor, ceil;
} epi_vecs;

INLINE void epi_load(const tile_args *t, const int NV, epi_vecs *e)
{
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) {
        __mmask16 m = v == NV - 1 ? t->last : (__mmask16)0xFFFF;
        e->scale[v] = t->scale ? _mm512_maskz_loadu_ps(m, t->scale + 16 * v)
                               : _mm512_set1_ps(1.0f);
        e->shift[v] = t->shift ? _mm512_maskz_loadu_ps(m, t->shift + 16 * v)
                               : _mm512_set1_ps(-0.0f);
    }
    e->floor = t->relu || t->relu6 ? _mm512_setzero_ps()
                                   : _mm512_set1_ps(-INFINITY);
    e->ceil = _mm512_set1_ps(t->relu6 ? 6.0f : INFINITY);
}

/* One MR x (16 NV) tile of C over one block of k. MR, NV and TA are
 * constants at every call; with every loop over them unrolled, acc lives
 * in registers (GCC keeps neither a variable-length array nor one indexed
 * by a variable there). The tests on t's flags sit outside the unrolled
 * loops: with k as short as 27 (a 3x3 kernel on RGB), a test per vector
 * costs a tenth of the tile. */
INLINE void tile(const tile_args *t, const int MR, const int NV, bool ta,
                 bool pf)
{
    const float *a = t->a, *b = t->b;
    const int64_t lda = t->lda, ldb = t->ldb, k = t->k, ldc = t->ldc;
    const __mmask16 last = t->last;
    /* A(r, p) is a[r * ra + p * pa]. */
    const int64_t ra = ta ? 1 : lda, pa = ta ? lda : 1;
    float *c = t->c;
    __m512 acc[12][4];
    if (t->load) {
#pragma GCC unroll 12
        for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
            for (int v = 0; v < NV; v++)
                acc[r][v] = _mm512_maskz_loadu_ps(
                    v == NV - 1 ? last : (__mmask16)0xFFFF,
                    c + r * ldc + 16 * v);
    } else {
#pragma GCC unroll 12
        for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
            for (int v = 0; v < NV; v++) acc[r][v] = _mm512_setzero_ps();
    }
    for (int64_t p = 0; p < k; p++, b += ldb, a += pa) {
        __m512 bv[4];
#pragma GCC unroll 4
        for (int v = 0; v < NV - 1; v++) bv[v] = _mm512_loadu_ps(b + 16 * v);
        bv[NV - 1] = _mm512_maskz_loadu_ps(last, b + 16 * (NV - 1));
        if (pf && t->prefetch)
#pragma GCC unroll 4
            for (int v = 0; v < NV; v++)
                prefetch(b, PF_ROWS * ldb + 16 * v, _MM_HINT_T0);
        if (pf && t->next && p < t->next_k)
            prefetch(t->next, p * ldb, _MM_HINT_T1);
#pragma GCC unroll 12
        for (int r = 0; r < MR; r++) {
            __m512 av = _mm512_set1_ps(a[r * ra]);
#pragma GCC unroll 4
            for (int v = 0; v < NV; v++)
                acc[r][v] = _mm512_fmadd_ps(av, bv[v], acc[r][v]);
        }
    }
    if (t->final) {
        epi_vecs e;
        epi_load(t, NV, &e);
#pragma GCC unroll 12
        for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
            for (int v = 0; v < NV; v++)
                acc[r][v] =
                    _mm512_fmadd_ps(acc[r][v], e.scale[v], e.shift[v]);
        if (t->res)
#pragma GCC unroll 12
            for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
                for (int v = 0; v < NV; v++)
                    acc[r][v] = _mm512_add_ps(
                        acc[r][v],
                        _mm512_maskz_loadu_ps(
                            v == NV - 1 ? last : (__mmask16)0xFFFF,
                            t->res + r * t->ldr + 16 * v));
#pragma GCC unroll 12
        for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
            for (int v = 0; v < NV; v++)
                acc[r][v] = _mm512_min_ps(e.ceil,
                                          _mm512_max_ps(e.floor, acc[r][v]));
    }
#pragma GCC unroll 12
    for (int r = 0; r < MR; r++, c += ldc)
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++)
            _mm512_mask_storeu_ps(c + 16 * v,
                                  v == NV - 1 ? last : (__mmask16)0xFFFF,
                                  acc[r][v]);
}

/* The variants: MR rows for NV vectors, A plain (n), plain with B
 * prefetched (p: B streams from memory) or transposed (t). Prefetching is
 * a variant of its own so that products whose B stays in cache carry no
 * test for it in their inner loop. */
#define TILE(MR, NV)                                                           \
    static T512 void tile_n_##MR##_##NV(const tile_args *t)                  \
    {                                                                          \
        tile(t, MR, NV, false, false);                                         \
    }                                                                          \
    static T512 void tile_p_##MR##_##NV(const tile_args *t)                  \
    {                                                                          \
        tile(t, MR, NV, false, true);                                          \
    }                                                                          \
    static T512 void tile_t_##MR##_##NV(const tile_args *t)                  \
    {                                                                          \
        tile(t, MR, NV, true, false);                                          \
    }
TILE(12, 1) TILE(8, 1) TILE(4, 1) TILE(2, 1) TILE(1, 1)
TILE(12, 2) TILE(8, 2) TILE(4, 2) TILE(2, 2) TILE(1, 2)
TILE(8, 3) TILE(6, 3) TILE(4, 3) TILE(2, 3) TILE(1, 3)
TILE(6, 4) TILE(4, 4) TILE(2, 4) TILE(1, 4)

typedef void (*tile_fn)(const tile_args *);

/* steps[nv]: the row counts a block of nv vectors of columns is cut into,
 * largest first: 24 accumulators (of the 32 vector registers) for the full
 * tiles, fewer for the remainder. */
typedef struct tile_step {
    int mr;
    tile_fn plain, fetch, trans;
} tile_step;

#define STEP(MR, NV)                                                           \
    {MR, tile_n_##MR##_##NV, tile_p_##MR##_##NV, tile_t_##MR##_##NV}

static const tile_step steps[5][5] = {
    {{0}},
    {STEP(12, 1), STEP(8, 1), STEP(4, 1), STEP(2, 1), STEP(1, 1)},
    {STEP(12, 2), STEP(8, 2), STEP(4, 2), STEP(2, 2), STEP(1, 2)},
    {STEP(8, 3), STEP(6, 3), STEP(4, 3), STEP(2, 3), STEP(1, 3)},
    {STEP(6, 4), STEP(4, 4), STEP(2, 4), STEP(1, 4), {0}},
};

/* Every row tile of one block of k against 16 nv columns of B. The first
 * tile fetches this block ahead of itself; the next next_nv tiles fetch
 * one column of vectors each of the next block (at next, NULL: none). */
static void run_rows(tile_args t, bool ta, int nv, int64_t m, const float *a,
                     int64_t lda, float *c, int64_t ldc, const float *res,
                     const float *next, int next_nv)
{
    int64_t i0 = 0;
    int pass = 0;
    for (int s = 0; s < 5 && i0 < m && steps[nv][s].mr; s++) {
        int mr = steps[nv][s].mr;
        tile_fn f = ta        ? steps[nv][s].trans
                    : next || t.prefetch ? steps[nv][s].fetch
                                         : steps[nv][s].plain;
        for (; m - i0 >= mr; i0 += mr) {
            t.a = ta ? a + i0 : a + i0 * lda;
            t.c = c + i0 * ldc;
            t.res = res ? res + i0 * t.ldr : NULL;
            f(&t);
            pass++;
            t.prefetch = false;
            t.next = next && pass <= next_nv ? next + 16 * (pass - 1) : NULL;
        }
    }
}

/* The product, its beta (0 or 1) and the epilogue (may be NULL), k >= 1. */
static void run_tiles(bool ta, int64_t m, int64_t n, int64_t k,
                      const float *a, int64_t lda, const float *b, int64_t ldb,
                      bool add, const nn_epilogue *e, float *c, int64_t ldc)
{
    /* A B that stays in cache between calls needs no prefetching. */
    const bool stream = (double)k * (double)n * sizeof(float) > STREAM_BYTES;
    for (int64_t j0 = 0; j0 < n; j0 += 64) {
        int64_t cols = n - j0 < 64 ? n - j0 : 64;
        int nv = (int)((cols + 15) / 16);
        int rem = (int)(cols - 16 * (nv - 1));
        tile_args t = {
            .lda = lda, .ldb = ldb, .ldc = ldc,
            .last = (__mmask16)((1u << rem) - 1u),
            .scale = e && e->scale ? e->scale + j0 : NULL,
            .shift = e && e->shift ? e->shift + j0 : NULL,
            .ldr = e ? e->ldr : 0, .relu = e && e->relu,
            .relu6 = e && e->relu6,
        };
        for (int64_t k0 = 0; k0 < k; k0 += KC) {
            t.k = k - k0 < KC ? k - k0 : KC;
            t.b = b + k0 * ldb + j0;
            t.load = add || k0 > 0;
            t.final = k0 + t.k == k;
            t.prefetch = stream;
            t.next = NULL;
            /* The next block: further down k, else the next columns. */
            int64_t nk0 = t.final ? 0 : k0 + KC, nj0 = t.final ? j0 + 64 : j0;
            const float *next = stream && nj0 < n ? b + nk0 * ldb + nj0 : NULL;
            int next_nv = (int)(((n - nj0 < 64 ? n - nj0 : 64) + 15) / 16);
            t.next_k = k - nk0 < KC ? k - nk0 : KC;
            run_rows(t, ta, nv, m, ta ? a + k0 * lda : a + k0, lda, c + j0,
                     ldc, e && e->residual ? e->residual + j0 : NULL, next,
                     next_nv);
        }
    }
}

void nn__gemm512(bool ta, int64_t m, int64_t n, int64_t k, const float *a,
                 int64_t lda, const float *b, int64_t ldb, float beta,
                 float *c, int64_t ldc)
{
    if (m <= 0 || n <= 0) return;
    /* beta other than 0 or 1 is not for this file. */
    if (!nn__gemm512_ok() || k <= 0 || (beta != 0.0f && beta != 1.0f)) {
        nn__gemm1(ta, false, m, n, k, a, lda, b, ldb, beta, c, ldc);
        return;
    }
    run_tiles(ta, m, n, k, a, lda, b, ldb, beta != 0.0f, NULL, c, ldc);
}

void nn__gemm512_epi(int64_t m, int64_t n, int64_t k, const float *a,
                     int64_t lda, const float *b, int64_t ldb,
                     const nn_epilogue *e, float *c, int64_t ldc)
{
    if (m <= 0 || n <= 0) return;
    if (!nn__gemm512_ok() || k <= 0) {
        epilogue_fallback(m, n, k, a, lda, b, ldb, e, c, ldc);
        return;
    }
    run_tiles(false, m, n, k, a, lda, b, ldb, false, e, c, ldc);
}

#else /* no AVX-512 code in this build */

bool nn__gemm512_ok(void) { return false; }

void nn__gemm512(bool ta, int64_t m, int64_t n, int64_t k, const float *a,
                 int64_t lda, const float *b, int64_t ldb, float beta,
                 float *c, int64_t ldc)
{
    nn__gemm1(ta, false, m, n, k, a, lda, b, ldb, beta, c, ldc);
}

void nn__gemm512_epi(int64_t m, int64_t n, int64_t k, const float *a,
                     int64_t lda, const float *b, int64_t ldb,
                     const nn_epilogue *e, float *c, int64_t ldc)
{
    if (m > 0 && n > 0)
        epilogue_fallback(m, n, k, a, lda, b, ldb, e, c, ldc);
}

#endif

void nn__gemm512_bias_relu(int64_t m, int64_t n, int64_t k, const float *a,
                           int64_t lda, const float *b, int64_t ldb,
                           const float *bias, bool relu, float *c, int64_t ldc)
{
    nn_epilogue e = {.shift = bias, .relu = relu};
    nn__gemm512_epi(m, n, k, a, lda, b, ldb, &e, c, ldc);
}

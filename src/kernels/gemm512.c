/* A single-threaded AVX-512 matrix product for the shapes of convolutions:
 * C[m, n] (+)= op(A)[m, k] * B[k, n] with B row-major and n small (the
 * filters or the kernel window). OpenBLAS picks its kernels by the CPU it
 * is told it runs on (OPENBLAS_CORETYPE), which may leave AVX-512 unused;
 * this one asks the CPU itself.
 *
 * Register blocking: a tile of MR rows by NV 16-float vectors of C stays in
 * registers while k runs; each step loads one row of B (NV vectors) and
 * broadcasts MR values of A. Columns past n are masked, so any n works.
 * Every element of C is a plain sum over p = 0..k-1 in order: the result
 * depends only on the inputs. */
#include "kernels/kernels.h"

/* -DNN_NO_AVX512 builds without it (to test the fallback, for one). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) &&        \
    !defined(NN_NO_AVX512)
#define HAVE_GEMM512 1
#include <immintrin.h>
#endif

static bool disabled; /* nn__gemm512_disable (tests, benchmarks) */

void nn__gemm512_disable(bool off) { disabled = off; }

/* nn__gemm512_bias_relu through OpenBLAS: the same operations in the same
 * order (product, + bias, ReLU). */
static void epilogue_fallback(int64_t m, int64_t n, int64_t k, const float *a,
                              int64_t lda, const float *b, int64_t ldb,
                              const float *bias, bool relu, float *c,
                              int64_t ldc)
{
    nn__gemm1(false, false, m, n, k, a, lda, b, ldb, 0.0f, c, ldc);
    for (int64_t i = 0; i < m; i++) {
        float *row = c + i * ldc;
        if (bias)
            for (int64_t j = 0; j < n; j++) row[j] += bias[j];
        if (relu)
            for (int64_t j = 0; j < n; j++)
                row[j] = row[j] < 0.0f ? 0.0f : row[j];
    }
}

#if HAVE_GEMM512

#define T512 __attribute__((target("avx512f")))
#define INLINE static inline __attribute__((always_inline)) T512

bool nn__gemm512_ok(void)
{
    __builtin_cpu_init(); /* a no-op once done; checks OS support too */
    return !disabled && __builtin_cpu_supports("avx512f");
}

typedef struct tile_args {
    const float *a; /* A(i0, 0) */
    int64_t lda;
    const float *b; /* B(0, j0) */
    int64_t ldb;
    float *c; /* C(i0, j0) */
    int64_t ldc, k;
    __mmask16 last; /* columns of the last vector inside n */
    bool add;       /* C += product, else C = product */
    const float *bias; /* bias(j0), added to each row when not NULL */
    bool relu;         /* then max(0, .), as nn__relu */
} tile_args;

/* One MR x (16 NV) tile of C. MR, NV and TA are constants at every call;
 * with every loop over them unrolled, acc lives in registers (GCC keeps
 * neither a variable-length array nor one indexed by a variable there). */
INLINE void tile(const tile_args *t, const int MR, const int NV, bool ta)
{
    const float *a = t->a, *b = t->b;
    const int64_t lda = t->lda, ldb = t->ldb, k = t->k;
    const __mmask16 last = t->last;
    /* A(r, p) is a[r * ra + p * pa]. */
    const int64_t ra = ta ? 1 : lda, pa = ta ? lda : 1;
    __m512 acc[12][4];
#pragma GCC unroll 12
    for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) acc[r][v] = _mm512_setzero_ps();
    for (int64_t p = 0; p < k; p++, b += ldb, a += pa) {
        __m512 bv[4];
#pragma GCC unroll 4
        for (int v = 0; v < NV - 1; v++) bv[v] = _mm512_loadu_ps(b + 16 * v);
        bv[NV - 1] = _mm512_maskz_loadu_ps(last, b + 16 * (NV - 1));
#pragma GCC unroll 12
        for (int r = 0; r < MR; r++) {
            __m512 av = _mm512_set1_ps(a[r * ra]);
#pragma GCC unroll 4
            for (int v = 0; v < NV; v++)
                acc[r][v] = _mm512_fmadd_ps(av, bv[v], acc[r][v]);
        }
    }
    float *c = t->c;
#pragma GCC unroll 12
    for (int r = 0; r < MR; r++, c += t->ldc)
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) {
            __mmask16 m = v == NV - 1 ? last : (__mmask16)0xFFFF;
            __m512 x = acc[r][v];
            if (t->add)
                x = _mm512_add_ps(_mm512_maskz_loadu_ps(m, c + 16 * v), x);
            if (t->bias)
                x = _mm512_add_ps(
                    x, _mm512_maskz_loadu_ps(m, t->bias + 16 * v));
            /* 0 > x ? 0 : x: NaN and -0 pass through, as in nn__relu. */
            if (t->relu) x = _mm512_max_ps(_mm512_setzero_ps(), x);
            _mm512_mask_storeu_ps(c + 16 * v, m, x);
        }
}

/* The variants: MR rows for NV vectors, A plain (n) or transposed (t). */
#define TILE(MR, NV)                                                           \
    static T512 void tile_n_##MR##_##NV(const tile_args *t)                  \
    {                                                                          \
        tile(t, MR, NV, false);                                                \
    }                                                                          \
    static T512 void tile_t_##MR##_##NV(const tile_args *t)                  \
    {                                                                          \
        tile(t, MR, NV, true);                                                 \
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
    tile_fn plain, trans;
} tile_step;

#define STEP(MR, NV) {MR, tile_n_##MR##_##NV, tile_t_##MR##_##NV}

static const tile_step steps[5][5] = {
    {{0}},
    {STEP(12, 1), STEP(8, 1), STEP(4, 1), STEP(2, 1), STEP(1, 1)},
    {STEP(12, 2), STEP(8, 2), STEP(4, 2), STEP(2, 2), STEP(1, 2)},
    {STEP(8, 3), STEP(6, 3), STEP(4, 3), STEP(2, 3), STEP(1, 3)},
    {STEP(6, 4), STEP(4, 4), STEP(2, 4), STEP(1, 4), {0}},
};

/* The product, its beta (0 or 1) and the epilogue, k >= 1. */
static void run_tiles(bool ta, int64_t m, int64_t n, int64_t k,
                      const float *a, int64_t lda, const float *b, int64_t ldb,
                      float beta, const float *bias, bool relu, float *c,
                      int64_t ldc)
{
    for (int64_t j0 = 0; j0 < n; j0 += 64) {
        int64_t cols = n - j0 < 64 ? n - j0 : 64;
        int nv = (int)((cols + 15) / 16);
        int rem = (int)(cols - 16 * (nv - 1));
        tile_args t = {
            .lda = lda, .b = b + j0, .ldb = ldb, .ldc = ldc, .k = k,
            .last = (__mmask16)((1u << rem) - 1u), .add = beta != 0.0f,
            .bias = bias ? bias + j0 : NULL, .relu = relu,
        };
        int64_t i0 = 0;
        for (int s = 0; s < 5 && i0 < m && steps[nv][s].mr; s++) {
            int mr = steps[nv][s].mr;
            tile_fn f = ta ? steps[nv][s].trans : steps[nv][s].plain;
            for (; m - i0 >= mr; i0 += mr) {
                t.a = ta ? a + i0 : a + i0 * lda;
                t.c = c + i0 * ldc + j0;
                f(&t);
            }
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
    run_tiles(ta, m, n, k, a, lda, b, ldb, beta, NULL, false, c, ldc);
}

void nn__gemm512_bias_relu(int64_t m, int64_t n, int64_t k, const float *a,
                           int64_t lda, const float *b, int64_t ldb,
                           const float *bias, bool relu, float *c, int64_t ldc)
{
    if (m <= 0 || n <= 0) return;
    if (!nn__gemm512_ok() || k <= 0) {
        epilogue_fallback(m, n, k, a, lda, b, ldb, bias, relu, c, ldc);
        return;
    }
    run_tiles(false, m, n, k, a, lda, b, ldb, 0.0f, bias, relu, c, ldc);
}

#else /* no AVX-512 code in this build */

bool nn__gemm512_ok(void) { return false; }

void nn__gemm512(bool ta, int64_t m, int64_t n, int64_t k, const float *a,
                 int64_t lda, const float *b, int64_t ldb, float beta,
                 float *c, int64_t ldc)
{
    nn__gemm1(ta, false, m, n, k, a, lda, b, ldb, beta, c, ldc);
}

void nn__gemm512_bias_relu(int64_t m, int64_t n, int64_t k, const float *a,
                           int64_t lda, const float *b, int64_t ldb,
                           const float *bias, bool relu, float *c, int64_t ldc)
{
    if (m > 0 && n > 0)
        epilogue_fallback(m, n, k, a, lda, b, ldb, bias, relu, c, ldc);
}

#endif

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

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define HAVE_GEMM512 1
#include <immintrin.h>
#endif

static bool disabled; /* nn__gemm512_disable (tests, benchmarks) */

void nn__gemm512_disable(bool off) { disabled = off; }

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
#define TILE_ROWS(NV) TILE(12, NV) TILE(8, NV) TILE(6, NV) TILE(4, NV)       \
    TILE(2, NV) TILE(1, NV)
TILE_ROWS(1)
TILE_ROWS(2)
TILE_ROWS(3)
TILE_ROWS(4)

typedef void (*tile_fn)(const tile_args *);

/* Row counts a column block is cut into, largest first: 24 accumulators
 * for the full tiles, fewer for the remainders. */
static const int row_steps[5][5] = {
    {0}, {12, 8, 4, 2, 1}, {12, 8, 4, 2, 1}, {8, 6, 4, 2, 1}, {6, 4, 2, 1, 0},
};

#define FNS(NV, X)                                                             \
    {tile_##X##_12_##NV, tile_##X##_8_##NV, tile_##X##_6_##NV,                \
     tile_##X##_4_##NV, tile_##X##_2_##NV, tile_##X##_1_##NV}

static const tile_fn fns_n[5][6] = {
    {0}, FNS(1, n), FNS(2, n), FNS(3, n), FNS(4, n)};
static const tile_fn fns_t[5][6] = {
    {0}, FNS(1, t), FNS(2, t), FNS(3, t), FNS(4, t)};

static tile_fn pick(bool ta, int nv, int mr)
{
    static const int slot[13] = {-1, 5, 4, -1, 3, -1, 2, -1, 1, -1,
                                 -1, -1, 0};
    return ta ? fns_t[nv][slot[mr]] : fns_n[nv][slot[mr]];
}

static void scale(int64_t m, int64_t n, float beta, float *c, int64_t ldc)
{
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++)
            c[i * ldc + j] = beta == 0.0f ? 0.0f : c[i * ldc + j] * beta;
}

void nn__gemm512(bool ta, int64_t m, int64_t n, int64_t k, const float *a,
                 int64_t lda, const float *b, int64_t ldb, float beta,
                 float *c, int64_t ldc)
{
    if (m <= 0 || n <= 0) return;
    if (!nn__gemm512_ok()) {
        nn__gemm1(ta, false, m, n, k, a, lda, b, ldb, beta, c, ldc);
        return;
    }
    if (k <= 0 || (beta != 0.0f && beta != 1.0f)) {
        /* Not a shape this file is for: beta other than 0 or 1. */
        if (k > 0) {
            nn__gemm1(ta, false, m, n, k, a, lda, b, ldb, beta, c, ldc);
            return;
        }
        scale(m, n, beta, c, ldc);
        return;
    }
    for (int64_t j0 = 0; j0 < n; j0 += 64) {
        int64_t cols = n - j0 < 64 ? n - j0 : 64;
        int nv = (int)((cols + 15) / 16);
        int rem = (int)(cols - 16 * (nv - 1));
        tile_args t = {
            .lda = lda, .b = b + j0, .ldb = ldb, .ldc = ldc, .k = k,
            .last = (__mmask16)((1u << rem) - 1u), .add = beta != 0.0f,
        };
        int64_t i0 = 0;
        for (int s = 0; s < 5 && i0 < m; s++) {
            int mr = row_steps[nv][s];
            if (mr == 0) break;
            tile_fn f = pick(ta, nv, mr);
            for (; m - i0 >= mr; i0 += mr) {
                t.a = ta ? a + i0 : a + i0 * lda;
                t.c = c + i0 * ldc + j0;
                f(&t);
            }
        }
    }
}

#else /* no AVX-512 code in this build */

bool nn__gemm512_ok(void) { return false; }

void nn__gemm512(bool ta, int64_t m, int64_t n, int64_t k, const float *a,
                 int64_t lda, const float *b, int64_t ldb, float beta,
                 float *c, int64_t ldc)
{
    nn__gemm1(ta, false, m, n, k, a, lda, b, ldb, beta, c, ldc);
}

#endif

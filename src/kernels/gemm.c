/* Matrix products. OpenBLAS runs single-threaded (see threads.c); the
 * parallelism is ours, so it composes with the other OpenMP loops and the
 * split (and therefore the rounding) depends only on the thread count. */
#include "kernels/kernels.h"

#include <cblas.h>
#include <omp.h>
#include <string.h>

/* Below this many multiply-adds (~70 us on one core) a thread team costs
 * more than it saves: its fork and join barriers take microseconds on an
 * idle machine and can take milliseconds when the cores are oversubscribed
 * (measured: a 128x10x2304 product, 85 us on one thread, 44 us on two at
 * best, 10 ms at the median on a loaded 2-core machine). */
#define GEMM_SERIAL_WORK (1 << 22)
/* Smallest slice of k worth a partial result of its own. */
#define GEMM_MIN_K_CHUNK 256

static void scale_rows(int64_t m, int64_t n, float beta, float *c, int64_t ldc)
{
    for (int64_t i = 0; i < m; i++) {
        float *r = c + i * ldc;
        if (beta == 0.0f)
            memset(r, 0, (size_t)n * sizeof(float));
        else
            for (int64_t j = 0; j < n; j++) r[j] *= beta;
    }
}

void nn__gemm1(bool ta, bool tb, int64_t m, int64_t n, int64_t k,
               const float *a, int64_t lda, const float *b, int64_t ldb,
               float beta, float *c, int64_t ldc)
{
    if (m <= 0 || n <= 0) return;
    if (k <= 0) {
        scale_rows(m, n, beta, c, ldc);
        return;
    }
    /* One row (a dense layer at batch 1): a matrix-vector product, which
     * streams B at memory speed where sgemm's packing does not. */
    if (m == 1) {
        /* Not every OpenBLAS ignores y when beta is 0 (NaN * 0). */
        if (beta == 0.0f) memset(c, 0, (size_t)n * sizeof(float));
        cblas_sgemv(CblasRowMajor, tb ? CblasNoTrans : CblasTrans,
                    (int)(tb ? n : k), (int)(tb ? k : n), 1.0f, b, (int)ldb,
                    a, ta ? (int)lda : 1, beta, c, 1);
        return;
    }
    /* OpenBLAS reads C when beta != 0 only, so garbage in C is fine. */
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans,
                tb ? CblasTrans : CblasNoTrans, (int)m, (int)n, (int)k, 1.0f,
                a, (int)lda, b, (int)ldb, beta, c, (int)ldc);
}

/* Start of op(A)'s row r, op(B)'s column j, and the k offset kk. */
static const float *a_at(bool ta, const float *a, int64_t lda, int64_t r,
                         int64_t kk)
{
    return ta ? a + kk * lda + r : a + r * lda + kk;
}

static const float *b_at(bool tb, const float *b, int64_t ldb, int64_t kk,
                         int64_t j)
{
    return tb ? b + j * ldb + kk : b + kk * ldb + j;
}

/* Weight gradients (x^T * dy): C is small, k is the whole batch. Each
 * thread multiplies one slice of k; the slices are then summed in slice
 * order. Returns false (nothing done) if the partials cannot be allocated. */
static bool gemm_split_k(bool ta, bool tb, int64_t m, int64_t n, int64_t k,
                         const float *a, int64_t lda, const float *b,
                         int64_t ldb, float beta, float *c, int64_t ldc, int p)
{
    size_t mn = (size_t)m * (size_t)n;
    /* Without it, the caller runs on one thread: no error to report. */
    float *part = nn__try_alloc((size_t)(p - 1) * mn * sizeof(float));
    if (!part) return false;
#pragma omp parallel num_threads(p)
    {
#pragma omp for schedule(static, 1)
        for (int j = 0; j < p; j++) {
            int64_t k0 = k * j / p, k1 = k * (j + 1) / p;
            float *dst = j == 0 ? c : part + (size_t)(j - 1) * mn;
            nn__gemm1(ta, tb, m, n, k1 - k0, a_at(ta, a, lda, 0, k0), lda,
                      b_at(tb, b, ldb, k0, 0), ldb, j == 0 ? beta : 0.0f, dst,
                      j == 0 ? ldc : n);
        }
#pragma omp for schedule(static)
        for (int64_t i = 0; i < m; i++) {
            float *r = c + i * ldc;
            for (int j = 1; j < p; j++) {
                const float *q = part + (size_t)(j - 1) * mn + (size_t)i * n;
                for (int64_t col = 0; col < n; col++) r[col] += q[col];
            }
        }
    }
    nn__free(part);
    return true;
}

/* Splits C by blocks of rows (or of columns when C is short and wide). */
static void gemm_split_mn(bool ta, bool tb, int64_t m, int64_t n, int64_t k,
                          const float *a, int64_t lda, const float *b,
                          int64_t ldb, float beta, float *c, int64_t ldc,
                          int p)
{
    bool by_rows = m >= n || m >= 16 * (int64_t)p;
    int64_t len = by_rows ? m : n;
    /* Blocks of whole micro-tiles keep OpenBLAS on its fast kernels. */
    int64_t blk = (len + p - 1) / p;
    blk = (blk + 15) & ~(int64_t)15;
    int nblk = (int)((len + blk - 1) / blk);
#pragma omp parallel for num_threads(p) schedule(static, 1)
    for (int j = 0; j < nblk; j++) {
        int64_t s = j * blk, e = s + blk < len ? s + blk : len;
        if (by_rows)
            nn__gemm1(ta, tb, e - s, n, k, a_at(ta, a, lda, s, 0), lda, b,
                      ldb, beta, c + s * ldc, ldc);
        else
            nn__gemm1(ta, tb, m, e - s, k, a, lda, b_at(tb, b, ldb, 0, s),
                      ldb, beta, c + s, ldc);
    }
}

void nn__gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k,
              const float *a, int64_t lda, const float *b, int64_t ldb,
              float beta, float *c, int64_t ldc)
{
    if (m <= 0 || n <= 0) return;
    int t = nn__threads();
    double work = (double)m * (double)n * (double)k;
    if (t <= 1 || work < GEMM_SERIAL_WORK || omp_in_parallel()) {
        nn__gemm1(ta, tb, m, n, k, a, lda, b, ldb, beta, c, ldc);
        return;
    }
    int64_t big = m > n ? m : n;
    if (ta && k >= 8 * big) {
        int64_t chunks = k / GEMM_MIN_K_CHUNK;
        int p = chunks < t ? (int)chunks : t;
        if (p >= 2 && gemm_split_k(ta, tb, m, n, k, a, lda, b, ldb, beta, c,
                                   ldc, p))
            return;
    }
    gemm_split_mn(ta, tb, m, n, k, a, lda, b, ldb, beta, c, ldc, t);
}

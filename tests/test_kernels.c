/* Numeric kernels against naive references: GEMM in every transpose
 * combination, convolution forward/backward on many random geometries,
 * pooling, element-wise maps and reductions; determinism of the parallel
 * splits; depthwise and transposed convolution against theirs, with
 * finite-difference checks of their gradients. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "kernels/seg_kernels.h"
#include "nn_internal.h"

static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;

static uint64_t next_u64(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static int rand_int(int lo, int hi) /* [lo, hi] */
{
    return lo + (int)(next_u64() % (uint64_t)(hi - lo + 1));
}

static float rand_float(void) /* [-1, 1) */
{
    return (float)((double)(next_u64() >> 11) * 0x1.0p-52 - 1.0);
}

static float *rand_buf(int64_t n)
{
    float *p = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    for (int64_t i = 0; i < n; i++) p[i] = rand_float();
    return p;
}

static float *nan_buf(int64_t n)
{
    float *p = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    for (int64_t i = 0; i < n; i++) p[i] = NAN;
    return p;
}

/* |got - want| <= tol * (1 + |want|) everywhere; reports the first miss. */
static int close_enough(const float *got, const double *want, int64_t n,
                        double tol, const char *what)
{
    for (int64_t i = 0; i < n; i++) {
        double err = fabs((double)got[i] - want[i]);
        if (!(err <= tol * (1.0 + fabs(want[i])))) {
            fprintf(stderr, "%s[%lld]: got %.8g want %.8g\n", what,
                    (long long)i, (double)got[i], want[i]);
            return 0;
        }
    }
    return 1;
}

/* ------------------------------------------------------------------ */
/* GEMM                                                                */
/* ------------------------------------------------------------------ */

static void gemm_ref(bool ta, bool tb, int64_t m, int64_t n, int64_t k,
                     const float *a, int64_t lda, const float *b, int64_t ldb,
                     float beta, const float *c0, int64_t ldc, double *out)
{
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            double s = 0.0;
            for (int64_t p = 0; p < k; p++) {
                double av = ta ? a[p * lda + i] : a[i * lda + p];
                double bv = tb ? b[j * ldb + p] : b[p * ldb + j];
                s += av * bv;
            }
            if (beta != 0.0f) s += (double)beta * c0[i * ldc + j];
            out[i * n + j] = s;
        }
}

/* One product with padded leading dimensions; C starts as NaN when beta is
 * 0 to prove C is not read then. */
static void check_gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k,
                       float beta)
{
    int64_t arows = ta ? k : m, acols = ta ? m : k;
    int64_t brows = tb ? n : k, bcols = tb ? k : n;
    int64_t lda = acols + 3, ldb = bcols + 1, ldc = n + 2;
    float *a = rand_buf(arows * lda), *b = rand_buf(brows * ldb);
    float *c = beta == 0.0f ? nan_buf(m * ldc) : rand_buf(m * ldc);
    float *c0 = malloc((size_t)(m * ldc) * sizeof(float));
    memcpy(c0, c, (size_t)(m * ldc) * sizeof(float));
    double *want = malloc((size_t)(m * n > 0 ? m * n : 1) * sizeof(double));
    gemm_ref(ta, tb, m, n, k, a, lda, b, ldb, beta, c0, ldc, want);
    nn__gemm(ta, tb, m, n, k, a, lda, b, ldb, beta, c, ldc);
    float *packed = malloc((size_t)(m * n > 0 ? m * n : 1) * sizeof(float));
    for (int64_t i = 0; i < m; i++)
        memcpy(packed + i * n, c + i * ldc, (size_t)n * sizeof(float));
    char what[96];
    snprintf(what, sizeof what, "gemm ta=%d tb=%d %lldx%lldx%lld beta=%g", ta,
             tb, (long long)m, (long long)n, (long long)k, (double)beta);
    double tol = 1e-5 * sqrt((double)k + 1.0);
    assert_true(close_enough(packed, want, m * n, tol, what));
    /* The padding between rows of C is never written. */
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = n; j < ldc; j++)
            assert_memory_equal(&c[i * ldc + j], &c0[i * ldc + j],
                                sizeof(float));
    free(a);
    free(b);
    free(c);
    free(c0);
    free(want);
    free(packed);
}

static void test_gemm_transposes(void **state)
{
    (void)state;
    /* Shapes for each path: serial, split by rows, by columns, by k. */
    static const int64_t shapes[][3] = {
        {1, 1, 1},     {3, 5, 7},     {17, 9, 33},  {130, 70, 90},
        {8, 300, 200}, {64, 10, 4000}, {5, 3, 9000}, {257, 129, 65},
        {40, 40, 0},   {2, 700, 300},
        {1, 37, 300},  {1, 1000, 2048}, /* one row: matrix-vector */
    };
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int t = 0; t < 4; t++) {
            check_gemm(t & 1, t & 2, shapes[s][0], shapes[s][1], shapes[s][2],
                       0.0f);
            check_gemm(t & 1, t & 2, shapes[s][0], shapes[s][1], shapes[s][2],
                       0.5f);
            check_gemm(t & 1, t & 2, shapes[s][0], shapes[s][1], shapes[s][2],
                       1.0f);
        }
}

static void test_gemm_thread_counts(void **state)
{
    (void)state;
    for (int threads = 1; threads <= 5; threads++) {
        assert_int_equal(nn_set_num_threads(threads), NN_OK);
        check_gemm(true, false, 48, 20, 6000, 0.0f); /* k split */
        /* Above the serial threshold (2^22 multiply-adds). */
        check_gemm(false, false, 333, 64, 300, 1.0f); /* rows */
        check_gemm(false, true, 3, 900, 2000, 0.0f);  /* columns */
    }
    assert_int_equal(nn_set_num_threads(0), NN_OK);
}

/* The AVX-512 product (used for convolutions where the CPU has it) and
 * its fallback both match the reference, with and without bias + ReLU. */
static void check_gemm512(bool ta, int64_t m, int64_t n, int64_t k, float beta)
{
    int64_t lda = (ta ? m : k) + 1, ldb = n + 3, ldc = n + 2;
    float *a = rand_buf((ta ? k : m) * lda), *b = rand_buf(k * ldb);
    float *c = beta == 0.0f ? nan_buf(m * ldc) : rand_buf(m * ldc);
    float *c0 = malloc((size_t)(m * ldc) * sizeof(float));
    memcpy(c0, c, (size_t)(m * ldc) * sizeof(float));
    double *want = malloc((size_t)(m * n) * sizeof(double));
    float *got = malloc((size_t)(m * n) * sizeof(float));
    gemm_ref(ta, false, m, n, k, a, lda, b, ldb, beta, c0, ldc, want);
    nn__gemm512(ta, m, n, k, a, lda, b, ldb, beta, c, ldc);
    for (int64_t i = 0; i < m; i++)
        memcpy(got + i * n, c + i * ldc, (size_t)n * sizeof(float));
    char what[96];
    snprintf(what, sizeof what, "gemm512 ta=%d %lldx%lldx%lld beta=%g", ta,
             (long long)m, (long long)n, (long long)k, (double)beta);
    assert_true(close_enough(got, want, m * n, 1e-5 * sqrt((double)k + 1),
                             what));
    if (!ta) { /* bias + ReLU epilogue: relu(A*B + bias) */
        float *bias = rand_buf(n);
        nn__gemm512_bias_relu(m, n, k, a, lda, b, ldb, bias, true, c, ldc);
        gemm_ref(false, false, m, n, k, a, lda, b, ldb, 0.0f, c0, ldc, want);
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++) {
                double v = want[i * n + j] + bias[j];
                want[i * n + j] = v > 0 ? v : 0;
                got[i * n + j] = c[i * ldc + j];
            }
        assert_true(close_enough(got, want, m * n,
                                 1e-5 * sqrt((double)k + 1), what));
        free(bias);
    }
    free(a);
    free(b);
    free(c);
    free(c0);
    free(want);
    free(got);
}

static void test_gemm512(void **state)
{
    (void)state;
    static const int64_t shapes[][3] = {
        {1, 1, 1}, {7, 16, 27}, {100, 32, 27}, {129, 64, 288},
        {33, 17, 5}, {512, 48, 96}, {5, 130, 300},
        {13, 70, 1100}, /* k in three blocks */
    };
    for (int off = 0; off <= 1; off++) {
        nn__gemm512_disable(off);
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            for (int ta = 0; ta <= 1; ta++) {
                check_gemm512(ta, shapes[s][0], shapes[s][1], shapes[s][2],
                              0.0f);
                check_gemm512(ta, shapes[s][0], shapes[s][1], shapes[s][2],
                              1.0f);
            }
    }
    nn__gemm512_disable(false);
}

/* Parallel sums whose partial buffers cannot be had run on one thread:
 * the right result, and no error left behind for a call that succeeded. */
static void test_partials_without_memory(void **state)
{
    (void)state;
    assert_int_equal(nn_set_num_threads(2), NN_OK);
    nn_clear_error();
    nn__debug_fail_alloc_after(1);
    check_gemm(true, false, 48, 20, 6000, 0.0f); /* k split */
    nn__debug_fail_alloc_after(1);
    int64_t rows = 100000, cols = 8;
    float *x = rand_buf(rows * cols), out[8];
    nn__colsum(x, rows, cols, out);
    nn__debug_fail_alloc_after(0);
    for (int64_t j = 0; j < cols; j++) {
        double want = 0;
        for (int64_t r = 0; r < rows; r++) want += x[r * cols + j];
        assert_true(fabs(out[j] - want) <= 1e-3 * (1 + fabs(want)));
    }
    assert_string_equal(nn_last_error(), "");
    nn_set_num_threads(0);
    free(x);
}

/* Same inputs, same thread count: bit-identical results. */
static void test_gemm_deterministic(void **state)
{
    (void)state;
    int64_t m = 37, n = 29, k = 20000;
    float *a = rand_buf(k * m), *b = rand_buf(k * n);
    float *c1 = malloc((size_t)(m * n) * sizeof(float));
    float *c2 = malloc((size_t)(m * n) * sizeof(float));
    for (int threads = 1; threads <= 3; threads++) {
        nn_set_num_threads(threads);
        nn__gemm(true, false, m, n, k, a, m, b, n, 0.0f, c1, n);
        for (int rep = 0; rep < 3; rep++) {
            nn__gemm(true, false, m, n, k, a, m, b, n, 0.0f, c2, n);
            assert_memory_equal(c1, c2, (size_t)(m * n) * sizeof(float));
        }
    }
    nn_set_num_threads(0);
    free(a);
    free(b);
    free(c1);
    free(c2);
}

/* ------------------------------------------------------------------ */
/* Convolution                                                         */
/* ------------------------------------------------------------------ */

/* Keras/TF output size and leading pad of one axis. */
static void axis(int in, int k, int s, bool same, int *out, int *pad)
{
    if (same) {
        *out = (in + s - 1) / s;
        int total = (*out - 1) * s + k - in;
        *pad = total > 0 ? total / 2 : 0;
    } else {
        *out = (in - k) / s + 1;
        *pad = 0;
    }
}

static nn_conv_geom make_geom(int n, int h, int w, int c, int kh, int kw,
                              int sh, int sw, bool same, int f)
{
    nn_conv_geom g = {.n = n, .h = h, .w = w, .c = c, .kh = kh, .kw = kw,
                      .sh = sh, .sw = sw, .f = f};
    axis(h, kh, sh, same, &g.oh, &g.pad_top);
    axis(w, kw, sw, same, &g.ow, &g.pad_left);
    return g;
}

static nn_conv_geom random_geom(void)
{
    for (;;) {
        bool same = rand_int(0, 1);
        int h = rand_int(1, 13), w = rand_int(1, 13);
        int kh = rand_int(1, 5), kw = rand_int(1, 5);
        if (!same && (kh > h || kw > w)) continue;
        return make_geom(rand_int(1, 4), h, w, rand_int(1, 6), kh, kw,
                         rand_int(1, 3), rand_int(1, 3), same, rand_int(1, 9));
    }
}

static int64_t in_count(const nn_conv_geom *g)
{
    return (int64_t)g->n * g->h * g->w * g->c;
}

static int64_t out_count(const nn_conv_geom *g)
{
    return (int64_t)g->n * g->oh * g->ow * g->f;
}

static int64_t w_count(const nn_conv_geom *g)
{
    return (int64_t)g->kh * g->kw * g->c * g->f;
}

static float *scratch_for(size_t floats)
{
    /* Exactly the size asked for, so AddressSanitizer sees overruns. */
    return floats ? malloc(floats * sizeof(float)) : NULL;
}

static void check_conv_forward(const nn_conv_geom *g, bool bias)
{
    float *x = rand_buf(in_count(g)), *w = rand_buf(w_count(g));
    float *b = bias ? rand_buf(g->f) : NULL;
    float *out = nan_buf(out_count(g)), *ref = nan_buf(out_count(g));
    float *scratch = scratch_for(nn__conv2d_forward_scratch(g));
    nn__conv2d_forward(g, x, w, b, out, scratch);
    nn__conv2d_forward_ref(g, x, w, b, ref);
    double *want = malloc((size_t)out_count(g) * sizeof(double));
    for (int64_t i = 0; i < out_count(g); i++) want[i] = ref[i];
    char what[160];
    snprintf(what, sizeof what,
             "conv n%d %dx%dx%d k%dx%d s%dx%d pad%d,%d f%d -> %dx%d", g->n,
             g->h, g->w, g->c, g->kh, g->kw, g->sh, g->sw, g->pad_top,
             g->pad_left, g->f, g->oh, g->ow);
    assert_true(close_enough(out, want, out_count(g), 1e-5, what));
    free(x);
    free(w);
    free(b);
    free(out);
    free(ref);
    free(scratch);
    free(want);
}

static void test_conv_forward_random(void **state)
{
    (void)state;
    for (int i = 0; i < 300; i++) {
        nn_conv_geom g = random_geom();
        check_conv_forward(&g, i % 3 != 0);
    }
}

static void test_conv_forward_special(void **state)
{
    (void)state;
    /* 1x1 stride 1 (plain GEMM, no scratch), 1x1 strided, kernel = input,
     * SAME with a kernel larger than the input, several tiles per image,
     * a batch bigger than the number of scratch slots. */
    nn_conv_geom gs[] = {
        make_geom(3, 7, 5, 4, 1, 1, 1, 1, false, 6),
        make_geom(2, 9, 9, 3, 1, 1, 1, 1, true, 5),
        make_geom(2, 9, 8, 3, 1, 1, 2, 2, false, 5),
        make_geom(2, 5, 4, 3, 5, 4, 1, 1, false, 3),
        make_geom(2, 3, 2, 2, 5, 5, 1, 1, true, 3),
        make_geom(2, 20, 18, 64, 3, 3, 1, 1, true, 8),
        make_geom(40, 6, 6, 2, 3, 3, 1, 1, false, 4),
        make_geom(2, 32, 32, 3, 3, 3, 1, 1, false, 32),
    };
    assert_int_equal(nn__conv2d_forward_scratch(&gs[0]), 0);
    assert_int_equal(nn__conv2d_forward_scratch(&gs[1]), 0);
    for (size_t i = 0; i < sizeof gs / sizeof gs[0]; i++) {
        check_conv_forward(&gs[i], true);
        check_conv_forward(&gs[i], false);
    }
}

/* Naive gradients in double. */
static void conv_backward_ref(const nn_conv_geom *g, const float *x,
                              const float *w, const float *dy, double *dx,
                              double *dw, double *db)
{
    memset(dx, 0, (size_t)in_count(g) * sizeof(double));
    memset(dw, 0, (size_t)w_count(g) * sizeof(double));
    memset(db, 0, (size_t)g->f * sizeof(double));
    for (int n = 0; n < g->n; n++)
        for (int oy = 0; oy < g->oh; oy++)
            for (int ox = 0; ox < g->ow; ox++)
                for (int f = 0; f < g->f; f++) {
                    double d = dy[(((int64_t)n * g->oh + oy) * g->ow + ox) *
                                      g->f + f];
                    db[f] += d;
                    for (int ky = 0; ky < g->kh; ky++)
                        for (int kx = 0; kx < g->kw; kx++) {
                            int iy = oy * g->sh - g->pad_top + ky;
                            int ix = ox * g->sw - g->pad_left + kx;
                            if (iy < 0 || iy >= g->h || ix < 0 || ix >= g->w)
                                continue;
                            for (int c = 0; c < g->c; c++) {
                                int64_t xi =
                                    (((int64_t)n * g->h + iy) * g->w + ix) *
                                        g->c + c;
                                int64_t wi =
                                    (((int64_t)ky * g->kw + kx) * g->c + c) *
                                        g->f + f;
                                dx[xi] += d * w[wi];
                                dw[wi] += d * x[xi];
                            }
                        }
                }
}

static void check_conv_backward(const nn_conv_geom *g, bool want_dx,
                                bool accum, bool want_dw)
{
    float *x = rand_buf(in_count(g)), *w = rand_buf(w_count(g));
    float *dy = rand_buf(out_count(g));
    float *dx = want_dx ? (accum ? rand_buf(in_count(g)) : nan_buf(in_count(g)))
                        : NULL;
    float *dx0 = NULL;
    if (dx) {
        dx0 = malloc((size_t)in_count(g) * sizeof(float));
        memcpy(dx0, dx, (size_t)in_count(g) * sizeof(float));
    }
    float *dw = want_dw ? nan_buf(w_count(g)) : NULL;
    float *db = nan_buf(g->f);
    float *scratch = scratch_for(nn__conv2d_backward_scratch(g, want_dx));
    nn__conv2d_backward(g, x, w, dy, dx, accum, dw, db, scratch);
    double *rdx = malloc((size_t)in_count(g) * sizeof(double));
    double *rdw = malloc((size_t)w_count(g) * sizeof(double));
    double *rdb = malloc((size_t)g->f * sizeof(double));
    conv_backward_ref(g, x, w, dy, rdx, rdw, rdb);
    if (dx && accum)
        for (int64_t i = 0; i < in_count(g); i++) rdx[i] += dx0[i];
    char what[160];
    snprintf(what, sizeof what,
             "conv bwd n%d %dx%dx%d k%dx%d s%dx%d pad%d,%d f%d", g->n, g->h,
             g->w, g->c, g->kh, g->kw, g->sh, g->sw, g->pad_top, g->pad_left,
             g->f);
    double tol = 2e-5 * sqrt((double)g->n * g->oh * g->ow + 1.0);
    if (dx) assert_true(close_enough(dx, rdx, in_count(g), tol, what));
    if (dw) assert_true(close_enough(dw, rdw, w_count(g), tol, what));
    assert_true(close_enough(db, rdb, g->f, tol, what));
    free(x);
    free(w);
    free(dy);
    free(dx);
    free(dx0);
    free(dw);
    free(db);
    free(scratch);
    free(rdx);
    free(rdw);
    free(rdb);
}

static void test_conv_backward_random(void **state)
{
    (void)state;
    for (int threads = 1; threads <= 3; threads++) {
        nn_set_num_threads(threads);
        for (int i = 0; i < 120; i++) {
            nn_conv_geom g = random_geom();
            check_conv_backward(&g, i % 4 != 3, i % 2 == 1, i % 7 != 6);
        }
    }
    nn_set_num_threads(0);
}

static void test_conv_backward_special(void **state)
{
    (void)state;
    nn_conv_geom gs[] = {
        make_geom(3, 7, 5, 4, 1, 1, 1, 1, false, 6),
        make_geom(64, 6, 6, 3, 1, 1, 1, 1, false, 5), /* k-split dW */
        make_geom(2, 9, 8, 3, 1, 1, 2, 2, false, 5),
        make_geom(2, 3, 2, 2, 5, 5, 1, 1, true, 3),
        make_geom(40, 6, 6, 2, 3, 3, 1, 1, false, 4),
        make_geom(5, 12, 12, 8, 3, 3, 2, 2, true, 16),
    };
    assert_int_equal(nn__conv2d_backward_scratch(&gs[0], true), 0);
    for (int threads = 1; threads <= 4; threads += 3) {
        nn_set_num_threads(threads);
        for (size_t i = 0; i < sizeof gs / sizeof gs[0]; i++) {
            check_conv_backward(&gs[i], true, false, true);
            check_conv_backward(&gs[i], true, true, true);
            check_conv_backward(&gs[i], false, false, true);
        }
    }
    nn_set_num_threads(0);
}

/* The forward result does not depend on the thread count; the backward
 * result is the same on every run with one thread count. */
static void test_conv_deterministic(void **state)
{
    (void)state;
    nn_conv_geom g = make_geom(9, 10, 10, 16, 3, 3, 1, 1, true, 12);
    float *x = rand_buf(in_count(&g)), *w = rand_buf(w_count(&g));
    float *b = rand_buf(g.f), *dy = rand_buf(out_count(&g));
    float *o1 = malloc((size_t)out_count(&g) * sizeof(float));
    float *o2 = malloc((size_t)out_count(&g) * sizeof(float));
    float *fs = scratch_for(nn__conv2d_forward_scratch(&g));
    float *bs = scratch_for(nn__conv2d_backward_scratch(&g, true));
    nn_set_num_threads(1);
    nn__conv2d_forward(&g, x, w, b, o1, fs);
    nn_set_num_threads(3);
    nn__conv2d_forward(&g, x, w, b, o2, fs);
    assert_memory_equal(o1, o2, (size_t)out_count(&g) * sizeof(float));
    float *dx1 = malloc((size_t)in_count(&g) * sizeof(float));
    float *dx2 = malloc((size_t)in_count(&g) * sizeof(float));
    float *dw1 = malloc((size_t)w_count(&g) * sizeof(float));
    float *dw2 = malloc((size_t)w_count(&g) * sizeof(float));
    float db1[12], db2[12];
    nn__conv2d_backward(&g, x, w, dy, dx1, false, dw1, db1, bs);
    nn__conv2d_backward(&g, x, w, dy, dx2, false, dw2, db2, bs);
    assert_memory_equal(dx1, dx2, (size_t)in_count(&g) * sizeof(float));
    assert_memory_equal(dw1, dw2, (size_t)w_count(&g) * sizeof(float));
    assert_memory_equal(db1, db2, sizeof db1);
    nn_set_num_threads(0);
    free(x);
    free(w);
    free(b);
    free(dy);
    free(o1);
    free(o2);
    free(fs);
    free(bs);
    free(dx1);
    free(dx2);
    free(dw1);
    free(dw2);
}

/* The forward pass cuts its work by rows, by ranges of filters (few
 * output rows: batch 1 at 7x7), into balanced tiles, and k into blocks;
 * pointwise convolutions take the batch's pixels as one matrix. Every cut
 * must give the reference's values and the same bits at every thread
 * count, with the fused epilogue too. */
static void check_conv_cuts(const nn_conv_geom *g, bool fallback)
{
    int64_t no = out_count(g), f = g->f;
    float *x = rand_buf(in_count(g)), *w = rand_buf(w_count(g));
    float *scale = rand_buf(f), *shift = rand_buf(f), *res = rand_buf(no);
    float *ref = nan_buf(no), *o1 = nan_buf(no), *o2 = nan_buf(no);
    double *want = malloc((size_t)no * sizeof(double));
    float *fs = scratch_for(nn__conv2d_forward_scratch(g));
    nn__conv2d_forward_ref(g, x, w, NULL, ref);
    for (int64_t i = 0; i < no; i++) {
        double v = (double)ref[i] * scale[i % f] + shift[i % f] + res[i];
        want[i] = v > 0 ? v : 0;
    }
    nn_epilogue e = {.scale = scale, .shift = shift, .residual = res,
                     .ldr = f, .relu = true};
    char what[96];
    for (int threads = 1; threads <= 3; threads++) {
        nn_set_num_threads(threads);
        nn__conv2d_forward_epi(g, x, w, &e, o2, fs);
        snprintf(what, sizeof what, "conv cuts %dx%dx%d k%d f%d n%d t%d",
                 g->h, g->w, g->c, g->kh, g->f, g->n, threads);
        assert_true(close_enough(o2, want, no, 1e-5, what));
        if (threads == 1) memcpy(o1, o2, (size_t)no * sizeof(float));
        /* OpenBLAS (the fallback) may round edge tiles differently. */
        if (!fallback)
            assert_memory_equal(o1, o2, (size_t)no * sizeof(float));
    }
    nn_set_num_threads(0);
    free(x);
    free(w);
    free(scale);
    free(shift);
    free(res);
    free(ref);
    free(o1);
    free(o2);
    free(want);
    free(fs);
}

static void test_conv_forward_cuts(void **state)
{
    (void)state;
    nn_conv_geom gs[] = {
        make_geom(1, 7, 7, 24, 3, 3, 1, 1, true, 200),   /* filters split */
        make_geom(2, 5, 5, 60, 1, 1, 1, 1, false, 130),  /* pointwise, split */
        make_geom(3, 9, 9, 70, 1, 1, 1, 1, false, 40),   /* pointwise rows */
        make_geom(1, 14, 14, 20, 3, 3, 1, 1, true, 70),  /* balanced tiles */
        make_geom(2, 6, 6, 80, 3, 3, 2, 2, true, 33),    /* k = 720 > block */
        make_geom(1, 4, 4, 600, 1, 1, 1, 1, false, 150), /* k blocks, split */
    };
    for (int off = 0; off <= 1; off++) {
        nn__gemm512_disable(off);
        for (size_t i = 0; i < sizeof gs / sizeof gs[0]; i++)
            check_conv_cuts(&gs[i], off || !nn__gemm512_ok());
    }
    nn__gemm512_disable(false);
}

/* ------------------------------------------------------------------ */
/* Pooling                                                             */
/* ------------------------------------------------------------------ */

static nn_conv_geom random_pool_geom(void)
{
    for (;;) {
        bool same = rand_int(0, 1);
        int h = rand_int(1, 11), w = rand_int(1, 11);
        int ph = rand_int(1, 4), pw = rand_int(1, 4);
        if (!same && (ph > h || pw > w)) continue;
        nn_conv_geom g = make_geom(rand_int(1, 3), h, w, rand_int(1, 5), ph,
                                   pw, rand_int(1, 4), rand_int(1, 4), same, 0);
        g.f = g.c;
        return g;
    }
}

static int64_t pool_out_count(const nn_conv_geom *g)
{
    return (int64_t)g->n * g->oh * g->ow * g->c;
}

/* Reference: forward value and, for max, the chosen input index. */
static void pool_ref(const nn_conv_geom *g, const float *x, bool max,
                     double *out, int64_t *arg)
{
    for (int n = 0; n < g->n; n++)
        for (int oy = 0; oy < g->oh; oy++)
            for (int ox = 0; ox < g->ow; ox++)
                for (int c = 0; c < g->c; c++) {
                    double best = -INFINITY, sum = 0.0;
                    int64_t at = -1, cnt = 0;
                    for (int ky = 0; ky < g->kh; ky++)
                        for (int kx = 0; kx < g->kw; kx++) {
                            int iy = oy * g->sh - g->pad_top + ky;
                            int ix = ox * g->sw - g->pad_left + kx;
                            if (iy < 0 || iy >= g->h || ix < 0 || ix >= g->w)
                                continue;
                            int64_t xi = (((int64_t)n * g->h + iy) * g->w +
                                          ix) * g->c + c;
                            if (x[xi] > best) {
                                best = x[xi];
                                at = xi;
                            }
                            sum += x[xi];
                            cnt++;
                        }
                    int64_t oi = (((int64_t)n * g->oh + oy) * g->ow + ox) *
                                     g->c + c;
                    out[oi] = max ? best : sum / (double)cnt;
                    if (arg) arg[oi] = max ? at : cnt;
                }
}

static void check_pool(const nn_conv_geom *g, bool max, bool accum)
{
    int64_t ni = in_count(g), no = pool_out_count(g);
    float *x = rand_buf(ni), *out = nan_buf(no), *dy = rand_buf(no);
    int32_t *arg = malloc((size_t)no * sizeof(int32_t));
    double *want = malloc((size_t)no * sizeof(double));
    int64_t *rarg = malloc((size_t)no * sizeof(int64_t));
    pool_ref(g, x, max, want, rarg);
    if (max)
        nn__maxpool_forward(g, x, out, arg);
    else
        nn__avgpool_forward(g, x, out);
    assert_true(close_enough(out, want, no, 1e-6, max ? "maxpool" : "avgpool"));
    /* Backward reference: route each gradient to its argmax, or spread it
     * evenly over the window's cells inside the input. */
    float *dx = accum ? rand_buf(ni) : nan_buf(ni);
    double *rdx = malloc((size_t)ni * sizeof(double));
    for (int64_t i = 0; i < ni; i++) rdx[i] = accum ? dx[i] : 0.0;
    for (int n = 0; n < g->n; n++)
        for (int oy = 0; oy < g->oh; oy++)
            for (int ox = 0; ox < g->ow; ox++)
                for (int c = 0; c < g->c; c++) {
                    int64_t oi = (((int64_t)n * g->oh + oy) * g->ow + ox) *
                                     g->c + c;
                    if (max) {
                        rdx[rarg[oi]] += dy[oi];
                        continue;
                    }
                    for (int ky = 0; ky < g->kh; ky++)
                        for (int kx = 0; kx < g->kw; kx++) {
                            int iy = oy * g->sh - g->pad_top + ky;
                            int ix = ox * g->sw - g->pad_left + kx;
                            if (iy < 0 || iy >= g->h || ix < 0 || ix >= g->w)
                                continue;
                            rdx[(((int64_t)n * g->h + iy) * g->w + ix) * g->c +
                                c] += dy[oi] / (double)rarg[oi];
                        }
                }
    if (max)
        nn__maxpool_backward(g, dy, arg, dx, accum);
    else
        nn__avgpool_backward(g, dy, dx, accum);
    assert_true(close_enough(dx, rdx, ni, 1e-5, max ? "maxpool bwd"
                                                    : "avgpool bwd"));
    free(x);
    free(out);
    free(dy);
    free(arg);
    free(want);
    free(rarg);
    free(dx);
    free(rdx);
}

static void test_pool_random(void **state)
{
    (void)state;
    for (int i = 0; i < 300; i++) {
        nn_conv_geom g = random_pool_geom();
        check_pool(&g, true, i % 2);
        check_pool(&g, false, i % 3 == 0);
    }
    /* Big enough for the parallel loops. */
    nn_conv_geom g = make_geom(8, 32, 32, 32, 2, 2, 2, 2, false, 32);
    check_pool(&g, true, false);
    check_pool(&g, false, true);
}

static void test_avgpool_same_ignores_padding(void **state)
{
    (void)state;
    /* 3x3 of ones, 2x2 SAME stride 2: with zero padding counted the corner
     * windows would average to 0.5 and 0.25. */
    nn_conv_geom g = make_geom(1, 3, 3, 1, 2, 2, 2, 2, true, 1);
    assert_int_equal(g.oh, 2);
    float x[9], out[4];
    for (int i = 0; i < 9; i++) x[i] = 1.0f;
    nn__avgpool_forward(&g, x, out);
    for (int i = 0; i < 4; i++) assert_float_equal(out[i], 1.0f, 1e-7);
}

static void test_maxpool_ties_and_negatives(void **state)
{
    (void)state;
    /* All-negative input with SAME padding: a padded zero must never win;
     * ties go to the first cell. */
    nn_conv_geom g = make_geom(1, 2, 3, 1, 2, 2, 2, 2, true, 1);
    float x[6] = {-5, -3, -3, -4, -3, -9};
    float out[2];
    int32_t arg[2];
    nn__maxpool_forward(&g, x, out, arg);
    assert_float_equal(out[0], -3.0f, 0);
    assert_int_equal(arg[0], 1);
    assert_float_equal(out[1], -3.0f, 0);
    assert_int_equal(arg[1], 2);
}

/* ------------------------------------------------------------------ */
/* Element-wise                                                        */
/* ------------------------------------------------------------------ */

static void test_relu_sigmoid(void **state)
{
    (void)state;
    float x[6] = {-2.0f, -0.0f, 0.5f, 100.0f, -100.0f, NAN};
    float y[6], dy[6] = {1, 2, 3, 4, 5, 6}, dx[6];
    nn__relu(x, y, 6);
    assert_float_equal(y[0], 0.0f, 0);
    assert_float_equal(y[2], 0.5f, 0);
    assert_float_equal(y[3], 100.0f, 0);
    assert_true(isnan(y[5])); /* NaN is not hidden */
    nn__relu_backward(y, dy, dx, 6, false);
    assert_float_equal(dx[0], 0.0f, 0);
    assert_float_equal(dx[1], 0.0f, 0);
    assert_float_equal(dx[2], 3.0f, 0);
    nn__relu_backward(y, dy, dx, 6, true);
    assert_float_equal(dx[2], 6.0f, 0);

    float s[5], in[5] = {0.0f, 2.0f, -2.0f, 200.0f, -200.0f};
    nn__sigmoid(in, s, 5);
    assert_float_equal(s[0], 0.5f, 1e-7);
    assert_float_equal(s[1], 1.0 / (1.0 + exp(-2.0)), 1e-7);
    assert_float_equal(s[2], 1.0 / (1.0 + exp(2.0)), 1e-7);
    assert_float_equal(s[3], 1.0f, 0);
    assert_true(s[4] >= 0.0f && s[4] < 1e-30f && isfinite(s[4]));
    float g[5] = {1, 1, 1, 1, 1}, gx[5];
    nn__sigmoid_backward(s, g, gx, 5, false);
    assert_float_equal(gx[0], 0.25f, 1e-7);
}

static void test_softmax(void **state)
{
    (void)state;
    float x[2][4] = {{1, 2, 3, 4}, {1000, 1001, -1000, 1000}};
    float y[2][4];
    nn__softmax(&x[0][0], &y[0][0], 2, 4);
    for (int r = 0; r < 2; r++) {
        double s = 0.0;
        for (int j = 0; j < 4; j++) {
            assert_true(isfinite(y[r][j]));
            s += y[r][j];
        }
        assert_float_equal(s, 1.0, 1e-6);
    }
    double z = exp(-3) + exp(-2) + exp(-1) + 1;
    assert_float_equal(y[0][3], 1.0 / z, 1e-6);
    assert_float_equal(y[1][1], 1.0 / (1.0 + 2.0 * exp(-1.0)), 1e-6);
    /* Backward equals the Jacobian product. */
    float dy[4] = {0.3f, -1.0f, 2.0f, 0.5f}, dx[4];
    nn__softmax_backward(&y[0][0], dy, dx, 1, 4, false);
    for (int i = 0; i < 4; i++) {
        double want = 0.0;
        for (int j = 0; j < 4; j++)
            want += dy[j] * y[0][j] * ((i == j) - y[0][i]);
        assert_float_equal(dx[i], want, 1e-6);
    }
    /* In place and large enough for the parallel loop. */
    int64_t rows = 5000, cols = 10;
    float *big = rand_buf(rows * cols);
    nn__softmax(big, big, rows, cols);
    for (int64_t r = 0; r < rows; r += 97) {
        double s = 0.0;
        for (int64_t j = 0; j < cols; j++) s += big[r * cols + j];
        assert_float_equal(s, 1.0, 1e-5);
    }
    free(big);
}

static void test_colsum_bias(void **state)
{
    (void)state;
    int64_t shapes[][2] = {{1, 1}, {7, 3}, {100000, 17}, {300, 700}, {3, 300}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int64_t rows = shapes[s][0], cols = shapes[s][1];
        float *x = rand_buf(rows * cols), *out = nan_buf(cols);
        double *want = calloc((size_t)cols, sizeof(double));
        for (int64_t r = 0; r < rows; r++)
            for (int64_t j = 0; j < cols; j++) want[j] += x[r * cols + j];
        nn__colsum(x, rows, cols, out);
        assert_true(close_enough(out, want, cols, 1e-5, "colsum"));
        float *b = rand_buf(cols), *y = malloc((size_t)(rows * cols) * 4);
        memcpy(y, x, (size_t)(rows * cols) * sizeof(float));
        nn__bias_add(y, b, rows, cols);
        for (int64_t i = 0; i < rows * cols; i += 13)
            assert_float_equal(y[i], x[i] + b[i % cols], 1e-6);
        free(x);
        free(out);
        free(want);
        free(b);
        free(y);
    }
}

/* ------------------------------------------------------------------ */
/* ReLU6 in the products' epilogue                                     */
/* ------------------------------------------------------------------ */

/* relu6 clamps to [0, 6] after scale, shift and residual, lets NaN
 * through, and overrides relu; on the AVX-512 path and its fallback. */
static void test_gemm512_relu6(void **state)
{
    (void)state;
    const int64_t m = 13, n = 37, k = 9;
    float *a = rand_buf(m * k), *b = rand_buf(k * n), *scale = rand_buf(n);
    float *shift = rand_buf(n), *res = rand_buf(m * n);
    float *c = nan_buf(m * n);
    double *ab = malloc((size_t)(m * n) * sizeof(double));
    double *want = malloc((size_t)(m * n) * sizeof(double));
    for (int64_t j = 0; j < n; j++) scale[j] *= 8.0f; /* reach past 6 */
    a[2 * k + 1] = NAN;                               /* row 2 is NaN */
    gemm_ref(false, false, m, n, k, a, k, b, n, 0.0f, NULL, n, ab);
    for (int64_t i = 0; i < m * n; i++) {
        double v = ab[i] * scale[i % n] + shift[i % n] + res[i];
        want[i] = v < 0 ? 0 : v > 6 ? 6 : v;
    }
    nn_epilogue e = {.scale = scale, .shift = shift, .residual = res,
                     .ldr = n, .relu = true, .relu6 = true};
    for (int off = 0; off <= 1; off++) {
        nn__gemm512_disable(off);
        nn__gemm512_epi(m, n, k, a, k, b, n, &e, c, n);
        int clamped = 0;
        for (int64_t i = 0; i < m * n; i++) {
            if (i / n == 2) {
                assert_true(isnan(c[i]));
                continue;
            }
            assert_true(fabs(c[i] - want[i]) <= 1e-5 * (1 + fabs(want[i])));
            clamped += c[i] == 6.0f;
        }
        assert_true(clamped > 0);
    }
    nn__gemm512_disable(false);
    free(a);
    free(b);
    free(scale);
    free(shift);
    free(res);
    free(c);
    free(ab);
    free(want);
}

/* ------------------------------------------------------------------ */
/* Depthwise and transposed convolution                                */
/* ------------------------------------------------------------------ */

/* A kernel under test: its passes, its buffer sizes and its reference in
 * double, built from the regular convolution's references above, as the
 * kernel's definition says. */
typedef struct kernel_kind {
    const char *name;
    int64_t (*x_count)(const nn_conv_geom *g), (*y_count)(const nn_conv_geom *g);
    int64_t (*w_count)(const nn_conv_geom *g), (*b_count)(const nn_conv_geom *g);
    size_t (*fwd_scratch)(const nn_conv_geom *g);
    size_t (*bwd_scratch)(const nn_conv_geom *g);
    void (*forward)(const nn_conv_geom *g, const float *x, const float *w,
                    const float *b, float *y, float *scratch);
    void (*backward)(const nn_conv_geom *g, const float *x, const float *w,
                     const float *dy, float *dx, bool accum, float *dw,
                     float *db, float *scratch);
    void (*ref_forward)(const nn_conv_geom *g, const float *x, const float *w,
                        const float *b, double *y);
    void (*ref_backward)(const nn_conv_geom *g, const float *x,
                         const float *w, const float *dy, double *dx,
                         double *dw, double *db);
    /* The forward pass gives the same bits at any thread count (else the
     * same values within rounding); so does dkernel without AVX-512. */
    bool fwd_bits, dw_bits_fallback;
} kernel_kind;

static void geom_name(char *buf, size_t cap, const char *what,
                      const nn_conv_geom *g)
{
    snprintf(buf, cap,
             "%s n%d %dx%dx%d k%dx%d s%dx%d pad%d,%d -> %dx%dx%d", what, g->n,
             g->h, g->w, g->c, g->kh, g->kw, g->sh, g->sw, g->pad_top,
             g->pad_left, g->oh, g->ow, g->f);
}

static void check_forward(const kernel_kind *k, const nn_conv_geom *g,
                          bool bias)
{
    const int64_t ny = k->y_count(g);
    float *x = rand_buf(k->x_count(g)), *w = rand_buf(k->w_count(g));
    float *b = bias ? rand_buf(k->b_count(g)) : NULL, *y = nan_buf(ny);
    float *scratch = scratch_for(k->fwd_scratch(g));
    double *want = malloc((size_t)ny * sizeof(double));
    k->ref_forward(g, x, w, b, want);
    k->forward(g, x, w, b, y, scratch);
    char what[160];
    geom_name(what, sizeof what, k->name, g);
    assert_true(close_enough(y, want, ny, 1e-5, what));
    free(x);
    free(w);
    free(b);
    free(y);
    free(scratch);
    free(want);
}

/* Every gradient against the reference; dx overwritten or accumulated. */
static void check_backward(const kernel_kind *k, const nn_conv_geom *g,
                           bool want_dx, bool accum)
{
    const int64_t nx = k->x_count(g), nw = k->w_count(g), nb = k->b_count(g);
    float *x = rand_buf(nx), *w = rand_buf(nw), *dy = rand_buf(k->y_count(g));
    float *dx = want_dx ? (accum ? rand_buf(nx) : nan_buf(nx)) : NULL;
    float *dx0 = malloc((size_t)nx * sizeof(float));
    if (dx) memcpy(dx0, dx, (size_t)nx * sizeof(float));
    float *dw = nan_buf(nw), *db = nan_buf(nb);
    float *scratch = scratch_for(k->bwd_scratch(g));
    k->backward(g, x, w, dy, dx, accum, dw, db, scratch);
    double *rdx = malloc((size_t)nx * sizeof(double));
    double *rdw = malloc((size_t)nw * sizeof(double));
    double *rdb = malloc((size_t)nb * sizeof(double));
    k->ref_backward(g, x, w, dy, rdx, rdw, rdb);
    if (dx && accum)
        for (int64_t i = 0; i < nx; i++) rdx[i] += dx0[i];
    char what[160];
    geom_name(what, sizeof what, k->name, g);
    double tol = 2e-5 * sqrt((double)k->y_count(g) / nb + 1.0);
    if (dx) assert_true(close_enough(dx, rdx, nx, tol, what));
    assert_true(close_enough(dw, rdw, nw, tol, what));
    assert_true(close_enough(db, rdb, nb, tol, what));
    free(x);
    free(w);
    free(dy);
    free(dx);
    free(dx0);
    free(dw);
    free(db);
    free(scratch);
    free(rdx);
    free(rdw);
    free(rdb);
}

/* Random geometries, forward then backward (at 1 and 2 threads), on the
 * AVX-512 path and on the fallback. */
static void check_random(const kernel_kind *k, nn_conv_geom (*geom)(void),
                         int cases)
{
    for (int off = 0; off <= 1; off++) {
        nn__gemm512_disable(off);
        for (int i = 0; i < 2 * cases; i++) {
            nn_conv_geom g = geom();
            check_forward(k, &g, i % 3 != 0);
        }
        for (int threads = 1; threads <= 2; threads++) {
            nn_set_num_threads(threads);
            for (int i = 0; i < cases; i++) {
                nn_conv_geom g = geom();
                check_backward(k, &g, i % 5 != 4, i % 2 == 1);
            }
        }
    }
    nn__gemm512_disable(false);
    nn_set_num_threads(0);
}

/* Both passes at 1, 2 and 3 threads on one input: the same bits for dx
 * and the reductions (dkernel and dbias over fixed bands or chains), and
 * for y where the kind says so; then y once more at 3 threads, the same
 * bits. Each result is also checked against the reference. */
static void check_threads(const kernel_kind *k, const nn_conv_geom *g)
{
    const int64_t nx = k->x_count(g), ny = k->y_count(g);
    const int64_t nw = k->w_count(g), nb = k->b_count(g);
    float *x = rand_buf(nx), *w = rand_buf(nw), *dy = rand_buf(ny);
    float *b = rand_buf(nb), *y[4], *dx[3], *dw[3], *db[3];
    float *fs = scratch_for(k->fwd_scratch(g));
    float *bs = scratch_for(k->bwd_scratch(g));
    for (int t = 0; t < 3; t++) {
        nn_set_num_threads(t + 1);
        y[t] = nan_buf(ny);
        dx[t] = nan_buf(nx);
        dw[t] = nan_buf(nw);
        db[t] = nan_buf(nb);
        k->forward(g, x, w, b, y[t], fs);
        k->backward(g, x, w, dy, dx[t], false, dw[t], db[t], bs);
    }
    y[3] = nan_buf(ny);
    k->forward(g, x, w, b, y[3], fs);
    assert_memory_equal(y[2], y[3], (size_t)ny * sizeof(float));
    double *want = malloc((size_t)ny * sizeof(double));
    for (int64_t i = 0; i < ny; i++) want[i] = y[0][i];
    for (int t = 1; t < 3; t++) {
        if (k->fwd_bits)
            assert_memory_equal(y[0], y[t], (size_t)ny * sizeof(float));
        assert_true(close_enough(y[t], want, ny, 1e-6, k->name));
        assert_memory_equal(dx[0], dx[t], (size_t)nx * sizeof(float));
        if (nn__gemm512_ok() || k->dw_bits_fallback)
            assert_memory_equal(dw[0], dw[t], (size_t)nw * sizeof(float));
        assert_memory_equal(db[0], db[t], (size_t)nb * sizeof(float));
    }
    nn_set_num_threads(1);
    check_forward(k, g, true);
    check_backward(k, g, true, true);
    nn_set_num_threads(0);
    for (int t = 0; t < 4; t++) free(y[t]);
    for (int t = 0; t < 3; t++) {
        free(dx[t]);
        free(dw[t]);
        free(db[t]);
    }
    free(x);
    free(w);
    free(dy);
    free(b);
    free(fs);
    free(bs);
    free(want);
}

/* Finite differences of dx, dkernel and dbias: L = sum r_i y_i, whose
 * gradient is the backward pass with dy = r. L is linear in every
 * coordinate, so the central difference errs by float rounding only. */
static double fd_loss(const kernel_kind *k, const nn_conv_geom *g,
                      const float *x, const float *w, const float *b,
                      const float *r, float *y, float *scratch)
{
    k->forward(g, x, w, b, y, scratch);
    double s = 0.0;
    for (int64_t i = 0; i < k->y_count(g); i++) s += (double)r[i] * y[i];
    return s;
}

static void check_fd(const kernel_kind *k, const nn_conv_geom *g)
{
    const int64_t nx = k->x_count(g), nw = k->w_count(g), nb = k->b_count(g);
    float *x = rand_buf(nx), *w = rand_buf(nw), *b = rand_buf(nb);
    float *r = rand_buf(k->y_count(g)), *y = nan_buf(k->y_count(g));
    float *dx = nan_buf(nx), *dw = nan_buf(nw), *db = nan_buf(nb);
    float *fs = scratch_for(k->fwd_scratch(g));
    float *bs = scratch_for(k->bwd_scratch(g));
    k->backward(g, x, w, r, dx, false, dw, db, bs);
    float *params[3] = {x, w, b}, *grads[3] = {dx, dw, db};
    const int64_t counts[3] = {nx, nw, nb};
    const double eps = 1e-2;
    int bad = 0;
    for (int a = 0; a < 3; a++)
        for (int64_t i = 0; i < counts[a]; i++) {
            float *p = params[a] + i, v = *p;
            *p = (float)(v + eps);
            double hp = (double)*p - v, lp = fd_loss(k, g, x, w, b, r, y, fs);
            *p = (float)(v - eps);
            double hm = v - (double)*p, lm = fd_loss(k, g, x, w, b, r, y, fs);
            *p = v;
            double num = (lp - lm) / (hp + hm), an = grads[a][i];
            double tol = 2e-3 + 1e-2 * fmax(fabs(num), fabs(an));
            if (!(fabs(num - an) <= tol) && bad++ < 5)
                fprintf(stderr, "fd %s d%s[%lld]: numeric %.6g analytic %.6g\n",
                        k->name, a == 0 ? "x" : a == 1 ? "kernel" : "bias",
                        (long long)i, num, an);
        }
    assert_int_equal(bad, 0);
    free(x);
    free(w);
    free(b);
    free(r);
    free(y);
    free(dx);
    free(dw);
    free(db);
    free(fs);
    free(bs);
}

/* ---- depthwise: the convolution whose kernel is zero except where the
 * output channel reads the input channel ---- */

static int64_t dw_w_count(const nn_conv_geom *g)
{
    return (int64_t)g->kh * g->kw * g->f;
}

static int64_t filters(const nn_conv_geom *g) { return g->f; }

static size_t no_scratch(const nn_conv_geom *g)
{
    (void)g;
    return 0;
}

/* The [kh, kw, c, f] kernel of the same convolution. */
static float *dw_full_kernel(const nn_conv_geom *g, const float *w)
{
    const int64_t taps = (int64_t)g->kh * g->kw, m = g->f / g->c;
    float *full = calloc((size_t)(w_count(g) > 0 ? w_count(g) : 1),
                         sizeof(float));
    for (int64_t t = 0; t < taps; t++)
        for (int64_t o = 0; o < g->f; o++)
            full[(t * g->c + o / m) * g->f + o] = w[t * g->f + o];
    return full;
}

static void dw_forward(const nn_conv_geom *g, const float *x, const float *w,
                       const float *b, float *y, float *scratch)
{
    (void)scratch;
    nn__depthwise_forward(g, x, w, b, y);
}

static void dw_ref_forward(const nn_conv_geom *g, const float *x,
                           const float *w, const float *b, double *y)
{
    float *full = dw_full_kernel(g, w), *yf = nan_buf(out_count(g));
    nn__conv2d_forward_ref(g, x, full, b, yf);
    for (int64_t i = 0; i < out_count(g); i++) y[i] = yf[i];
    free(full);
    free(yf);
}

static void dw_ref_backward(const nn_conv_geom *g, const float *x,
                            const float *w, const float *dy, double *dx,
                            double *dw, double *db)
{
    const int64_t taps = (int64_t)g->kh * g->kw, m = g->f / g->c;
    float *full = dw_full_kernel(g, w);
    double *dfull = malloc((size_t)w_count(g) * sizeof(double));
    conv_backward_ref(g, x, full, dy, dx, dfull, db);
    for (int64_t t = 0; t < taps; t++)
        for (int64_t o = 0; o < g->f; o++)
            dw[t * g->f + o] = dfull[(t * g->c + o / m) * g->f + o];
    free(full);
    free(dfull);
}

static size_t dw_bwd_scratch(const nn_conv_geom *g)
{
    return nn__depthwise_backward_scratch(g);
}

static const kernel_kind depthwise = {
    "depthwise", in_count, out_count, dw_w_count, filters, no_scratch,
    dw_bwd_scratch, dw_forward, nn__depthwise_backward, dw_ref_forward,
    dw_ref_backward, true, true,
};

static nn_conv_geom make_dw_geom(int n, int h, int w, int c, int kh, int kw,
                                 int sh, int sw, bool same, int mult)
{
    return make_geom(n, h, w, c, kh, kw, sh, sw, same, c * mult);
}

/* Square 3x3 and 5x5 windows half the time (the fast path's), depth
 * multipliers 1 to 3, channel counts across the 16-lane blocks. */
static nn_conv_geom random_dw_geom(void)
{
    for (;;) {
        bool same = rand_int(0, 1);
        int h = rand_int(1, 13), w = rand_int(1, 13);
        int kh = rand_int(1, 5), kw = rand_int(1, 5);
        if (rand_int(0, 1)) kh = kw = rand_int(0, 1) ? 3 : 5;
        if (!same && (kh > h || kw > w)) continue;
        int mult = rand_int(0, 3) ? 1 : rand_int(2, 3);
        return make_dw_geom(rand_int(1, 3), h, w, rand_int(1, 40), kh, kw,
                            rand_int(1, 3), rand_int(1, 3), same, mult);
    }
}

static void test_depthwise_random(void **state)
{
    (void)state;
    check_random(&depthwise, random_dw_geom, 120);
}

/* The fused epilogue (scale, shift, a residual, ReLU6) against the
 * reference, the same bits at 1 and 2 threads. */
static void check_dw_epilogue(const nn_conv_geom *g)
{
    const int64_t no = out_count(g), f = g->f;
    float *x = rand_buf(in_count(g)), *w = rand_buf(dw_w_count(g));
    float *scale = rand_buf(f), *shift = rand_buf(f), *res = rand_buf(no);
    float *out = nan_buf(no), *o1 = nan_buf(no);
    double *want = malloc((size_t)no * sizeof(double));
    dw_ref_forward(g, x, w, NULL, want);
    for (int64_t j = 0; j < f; j++) scale[j] *= 4.0f; /* reach past 6 */
    for (int64_t i = 0; i < no; i++) {
        double v = want[i] * scale[i % f] + shift[i % f] + res[i];
        want[i] = v < 0 ? 0 : v > 6 ? 6 : v;
    }
    nn_epilogue e = {.scale = scale, .shift = shift, .residual = res,
                     .ldr = f, .relu6 = true};
    char what[160];
    geom_name(what, sizeof what, "depthwise epilogue", g);
    for (int threads = 1; threads <= 2; threads++) {
        nn_set_num_threads(threads);
        nn__depthwise_forward_epi(g, x, w, &e, out);
        assert_true(close_enough(out, want, no, 1e-5, what));
        if (threads == 1) memcpy(o1, out, (size_t)no * sizeof(float));
        assert_memory_equal(o1, out, (size_t)no * sizeof(float));
    }
    nn_set_num_threads(0);
    free(x);
    free(w);
    free(scale);
    free(shift);
    free(res);
    free(out);
    free(o1);
    free(want);
}

static void test_depthwise_special(void **state)
{
    (void)state;
    /* MobileNetV2-like rows (odd and even, strides 1 and 2, asymmetric
     * SAME), 64+ channels and a masked rest, 5x5, a window larger than the
     * input, depth multiplier 2 with many channels, a 1-row image, enough
     * rows for two threads. */
    nn_conv_geom gs[] = {
        make_dw_geom(1, 16, 16, 32, 3, 3, 1, 1, true, 1),
        make_dw_geom(2, 15, 14, 96, 3, 3, 2, 2, true, 1),
        make_dw_geom(1, 14, 14, 144, 3, 3, 2, 2, true, 1),
        make_dw_geom(1, 9, 11, 70, 3, 3, 1, 1, true, 1),
        make_dw_geom(1, 9, 11, 70, 3, 3, 3, 3, false, 1),
        make_dw_geom(2, 12, 13, 21, 5, 5, 1, 1, true, 1),
        make_dw_geom(2, 12, 13, 21, 5, 5, 2, 1, false, 1),
        make_dw_geom(1, 3, 2, 5, 5, 5, 1, 1, true, 1),
        make_dw_geom(2, 7, 7, 40, 3, 3, 1, 1, true, 2),
        make_dw_geom(2, 1, 9, 17, 3, 3, 1, 1, true, 1),
        make_dw_geom(3, 40, 40, 32, 3, 3, 1, 1, true, 1),
    };
    for (int off = 0; off <= 1; off++) {
        nn__gemm512_disable(off);
        for (size_t i = 0; i < sizeof gs / sizeof gs[0]; i++) {
            check_forward(&depthwise, &gs[i], true);
            check_forward(&depthwise, &gs[i], false);
            check_dw_epilogue(&gs[i]);
        }
    }
    nn__gemm512_disable(false);
}

/* ReLU without a scale: shift only, no residual; a NaN input reaches the
 * outputs whose window holds it, in its channel only. */
static void test_depthwise_epilogue_relu(void **state)
{
    (void)state;
    nn_conv_geom g = make_dw_geom(1, 6, 6, 20, 3, 3, 1, 1, true, 1);
    const int64_t no = out_count(&g), at = (2 * 6 + 2) * 20 + 3;
    float *x = rand_buf(in_count(&g)), *w = rand_buf(dw_w_count(&g));
    float *shift = rand_buf(g.f), *out = nan_buf(no);
    double *ref = malloc((size_t)no * sizeof(double));
    x[at] = 0.0f;
    dw_ref_forward(&g, x, w, shift, ref);
    x[at] = NAN; /* channel 3 of pixel (2, 2) */
    nn_epilogue e = {.shift = shift, .relu = true};
    for (int off = 0; off <= 1; off++) {
        nn__gemm512_disable(off);
        nn__depthwise_forward_epi(&g, x, w, &e, out);
        int zeros = 0;
        for (int64_t i = 0; i < no; i++) {
            int64_t oy = i / (6 * 20), ox = i / 20 % 6, ch = i % 20;
            if (ch == 3 && oy >= 1 && oy <= 3 && ox >= 1 && ox <= 3) {
                assert_true(isnan(out[i]));
                continue;
            }
            double want = ref[i] < 0 ? 0.0 : ref[i];
            assert_true(fabs(out[i] - want) <= 1e-5 * (1 + fabs(want)));
            zeros += out[i] == 0.0f;
        }
        assert_true(zeros > 0);
    }
    nn__gemm512_disable(false);
    free(x);
    free(w);
    free(shift);
    free(out);
    free(ref);
}

static void test_depthwise_deterministic(void **state)
{
    (void)state;
    /* Large enough for every pass to run on several threads: the
     * stride-1 dx (flipped forward), the gathered dx (stride 2, depth
     * multiplier 2), 5x5 valid. */
    nn_conv_geom gs[] = {
        make_dw_geom(4, 40, 40, 48, 3, 3, 1, 1, true, 1),
        make_dw_geom(6, 41, 40, 24, 3, 3, 2, 2, true, 2),
        make_dw_geom(30, 9, 9, 70, 5, 5, 1, 1, false, 1),
    };
    for (size_t i = 0; i < sizeof gs / sizeof gs[0]; i++)
        check_threads(&depthwise, &gs[i]);
}

static void test_depthwise_gradcheck(void **state)
{
    (void)state;
    nn_conv_geom gs[] = {
        make_dw_geom(2, 6, 5, 3, 3, 3, 1, 1, true, 1),
        make_dw_geom(2, 7, 6, 3, 3, 3, 2, 2, true, 2),
        make_dw_geom(1, 8, 7, 4, 5, 5, 3, 2, false, 1),
        make_dw_geom(2, 5, 6, 2, 2, 3, 1, 2, true, 3),
    };
    for (size_t i = 0; i < sizeof gs / sizeof gs[0]; i++)
        check_fd(&depthwise, &gs[i]);
}

/* ---- transposed: the input gradient of the convolution g ---- */

static int64_t ct_x_count(const nn_conv_geom *g)
{
    return (int64_t)g->n * g->oh * g->ow * g->f;
}

static int64_t channels(const nn_conv_geom *g) { return g->c; }

static size_t ct_fwd_scratch(const nn_conv_geom *g)
{
    return nn__conv_transpose_forward_scratch(g);
}

static size_t ct_bwd_scratch(const nn_conv_geom *g)
{
    return nn__conv_transpose_backward_scratch(g, true);
}

static void ct_ref_forward(const nn_conv_geom *g, const float *x,
                           const float *w, const float *b, double *y)
{
    float *zeros = calloc((size_t)in_count(g) + 1, sizeof(float));
    double *dw = malloc((size_t)w_count(g) * sizeof(double));
    double *db = malloc((size_t)g->f * sizeof(double));
    conv_backward_ref(g, zeros, w, x, y, dw, db);
    if (b)
        for (int64_t i = 0; i < in_count(g); i++) y[i] += b[i % g->c];
    free(zeros);
    free(dw);
    free(db);
}

/* dx is the convolution g of dy, dW that convolution's weight gradient
 * with dy as its input and x as its output gradient. */
static void ct_ref_backward(const nn_conv_geom *g, const float *x,
                            const float *w, const float *dy, double *dx,
                            double *dw, double *db)
{
    const int64_t nx = ct_x_count(g), ny = in_count(g);
    float *dxf = nan_buf(nx);
    double *unused = malloc((size_t)(ny + g->f) * sizeof(double));
    nn__conv2d_forward_ref(g, dy, w, NULL, dxf);
    for (int64_t i = 0; i < nx; i++) dx[i] = dxf[i];
    conv_backward_ref(g, dy, w, x, unused, dw, unused + ny);
    for (int64_t j = 0; j < g->c; j++) db[j] = 0.0;
    for (int64_t i = 0; i < ny; i++) db[i % g->c] += dy[i];
    free(dxf);
    free(unused);
}

static const kernel_kind transposed = {
    "conv transpose", ct_x_count, in_count, w_count, channels,
    ct_fwd_scratch, ct_bwd_scratch, nn__conv_transpose_forward,
    nn__conv_transpose_backward, ct_ref_forward, ct_ref_backward, false,
    false,
};

/* The convolution g of a transposed convolution from x [n, h, w, cin] to
 * cout channels (op: output_padding, -1 for none). */
static nn_conv_geom make_ct_geom(int n, int h, int w, int cin, int cout,
                                 int kh, int kw, int sh, int sw, bool same,
                                 int op)
{
    nn_conv_geom g = {.n = n, .oh = h, .ow = w, .f = cin, .c = cout,
                      .kh = kh, .kw = kw, .sh = sh, .sw = sw};
    assert_true(nn__conv_transpose_axis(h, kh, sh, same, op, &g.h,
                                        &g.pad_top));
    assert_true(nn__conv_transpose_axis(w, kw, sw, same, op, &g.w,
                                        &g.pad_left));
    return g;
}

/* Strides 1 to 3, odd and even sizes and kernels, both paddings, with
 * and without output_padding (the same on both axes). */
static nn_conv_geom random_ct_geom(void)
{
    for (;;) {
        int kh = rand_int(1, 5), kw = rand_int(1, 5);
        int sh = rand_int(1, 3), sw = rand_int(1, 3);
        int h = rand_int(1, 7), w = rand_int(1, 7), out, pad;
        bool same = rand_int(0, 1);
        int op = rand_int(-1, (sh < sw ? sh : sw) - 1);
        if (!nn__conv_transpose_axis(h, kh, sh, same, op, &out, &pad) ||
            !nn__conv_transpose_axis(w, kw, sw, same, op, &out, &pad))
            continue;
        return make_ct_geom(rand_int(1, 3), h, w, rand_int(1, 9),
                            rand_int(1, 9), kh, kw, sh, sw, same, op);
    }
}

/* Keras' deconv_output_length and TensorFlow's pad, by hand. */
static void test_conv_transpose_axis(void **state)
{
    (void)state;
    static const struct {
        int in, k, s, same, op, out, pad;
    } cases[] = {
        {4, 3, 2, 1, -1, 8, 0},   /* pix2pix upsample: odd total, pad after */
        {4, 4, 2, 1, -1, 8, 1},   /* = PyTorch padding 1 */
        {5, 3, 1, 1, -1, 5, 1},   /* stride 1 SAME keeps the size */
        {4, 3, 2, 0, -1, 9, 0},   /* VALID: n s + k - s */
        {4, 2, 3, 0, -1, 12, 0},  /* VALID, k < s: n s */
        {4, 3, 2, 0, 1, 10, 0},   /* output_padding adds at the end */
        {4, 3, 2, 1, 1, 8, 0},    /* SAME, op 1: (n-1) s + k - 2 + 1 */
        {4, 3, 3, 1, 2, 12, 0},
        {3, 5, 2, 1, 0, 5, 2},    /* (n-1) s + 1: pad 2 each side */
        {1, 1, 1, 0, -1, 1, 0},
        {7, 1, 2, 1, -1, 14, 0},  /* total < 0: no pad */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int out = -1, pad = -1;
        assert_true(nn__conv_transpose_axis(cases[i].in, cases[i].k,
                                            cases[i].s, cases[i].same,
                                            cases[i].op, &out, &pad));
        assert_int_equal(out, cases[i].out);
        assert_int_equal(pad, cases[i].pad);
    }
    int out, pad;
    /* output_padding must be below the stride */
    assert_false(nn__conv_transpose_axis(4, 3, 2, true, 2, &out, &pad));
    /* SAME with an even kernel and op 0: the convolution of 6 gives 3 */
    assert_false(nn__conv_transpose_axis(4, 4, 2, true, 0, &out, &pad));
    /* an empty output */
    assert_false(nn__conv_transpose_axis(1, 2, 2, true, 0, &out, &pad));
    assert_false(nn__conv_transpose_axis(0, 3, 1, true, -1, &out, &pad));
}

static void test_conv_transpose_random(void **state)
{
    (void)state;
    nn_conv_geom gs[] = {
        make_ct_geom(3, 4, 4, 20, 33, 3, 3, 2, 2, true, -1),
        make_ct_geom(2, 5, 3, 8, 6, 4, 4, 2, 2, true, -1),
        make_ct_geom(2, 5, 6, 7, 5, 3, 3, 2, 2, false, 1),
        make_ct_geom(1, 3, 4, 5, 70, 3, 2, 3, 1, true, -1),
        make_ct_geom(2, 6, 5, 3, 4, 1, 1, 1, 1, false, -1), /* pointwise */
        make_ct_geom(40, 2, 2, 4, 3, 3, 3, 2, 2, true, -1), /* many images */
    };
    for (size_t i = 0; i < sizeof gs / sizeof gs[0]; i++) {
        check_forward(&transposed, &gs[i], true);
        check_backward(&transposed, &gs[i], true, false);
    }
    check_random(&transposed, random_ct_geom, 80);
}

static void test_conv_transpose_deterministic(void **state)
{
    (void)state;
    /* Above the serial threshold: a U-Net decoder step at small scale, the
     * last layer (3 channels: a short dW), a 4x4 kernel, images whose
     * columns fill a chunk each (three chunks). */
    nn_conv_geom gs[] = {
        make_ct_geom(6, 8, 8, 96, 64, 3, 3, 2, 2, true, -1),
        make_ct_geom(4, 16, 16, 40, 3, 3, 3, 2, 2, true, -1),
        make_ct_geom(8, 6, 5, 64, 16, 4, 4, 2, 2, true, -1),
        make_ct_geom(3, 32, 32, 4, 128, 3, 3, 2, 2, true, -1),
    };
    for (size_t i = 0; i < sizeof gs / sizeof gs[0]; i++)
        check_threads(&transposed, &gs[i]);
}

static void test_conv_transpose_gradcheck(void **state)
{
    (void)state;
    nn_conv_geom gs[] = {
        make_ct_geom(2, 3, 3, 3, 2, 3, 3, 2, 2, true, -1),
        make_ct_geom(2, 3, 2, 2, 3, 3, 2, 3, 1, false, 0),
        make_ct_geom(1, 3, 3, 2, 2, 4, 4, 2, 2, true, -1),
        make_ct_geom(2, 2, 3, 3, 2, 2, 3, 2, 2, false, 1),
    };
    for (size_t i = 0; i < sizeof gs / sizeof gs[0]; i++)
        check_fd(&transposed, &gs[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gemm_transposes),
        cmocka_unit_test(test_gemm_thread_counts),
        cmocka_unit_test(test_gemm_deterministic),
        cmocka_unit_test(test_partials_without_memory),
        cmocka_unit_test(test_gemm512),
        cmocka_unit_test(test_conv_forward_random),
        cmocka_unit_test(test_conv_forward_special),
        cmocka_unit_test(test_conv_backward_random),
        cmocka_unit_test(test_conv_backward_special),
        cmocka_unit_test(test_conv_deterministic),
        cmocka_unit_test(test_conv_forward_cuts),
        cmocka_unit_test(test_pool_random),
        cmocka_unit_test(test_avgpool_same_ignores_padding),
        cmocka_unit_test(test_maxpool_ties_and_negatives),
        cmocka_unit_test(test_relu_sigmoid),
        cmocka_unit_test(test_softmax),
        cmocka_unit_test(test_colsum_bias),
        cmocka_unit_test(test_gemm512_relu6),
        cmocka_unit_test(test_depthwise_random),
        cmocka_unit_test(test_depthwise_special),
        cmocka_unit_test(test_depthwise_epilogue_relu),
        cmocka_unit_test(test_depthwise_deterministic),
        cmocka_unit_test(test_depthwise_gradcheck),
        cmocka_unit_test(test_conv_transpose_axis),
        cmocka_unit_test(test_conv_transpose_random),
        cmocka_unit_test(test_conv_transpose_deterministic),
        cmocka_unit_test(test_conv_transpose_gradcheck),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

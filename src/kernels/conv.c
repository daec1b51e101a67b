/* 2-D convolution, NHWC, as im2col + GEMM.
 *
 * im2col row r of an image is output pixel r; its columns run (ky, kx, c),
 * which matches the [kh, kw, cin, cout] kernel read as a [K, F] matrix.
 * The forward pass works on tiles of output rows sized to stay in cache;
 * the tiling does not depend on the thread count, so neither do the
 * results. The backward pass gives each thread whole images and its own
 * weight-gradient partial; partials are summed in thread order. The
 * products go to nn__gemm512 (AVX-512 where the CPU has it, OpenBLAS
 * otherwise), which also adds the bias and applies ReLU in the forward.
 *
 * Scratch is laid out as up to CONV_SLOTS per-thread slots (the backward
 * pass keeps the transposed kernel ahead of them). The sizes returned by
 * the *_scratch functions never depend on the thread count, so a context
 * planned before nn_set_num_threads stays valid; slots no thread uses are
 * never touched, so they cost address space, not resident memory. */
#include "kernels/kernels.h"

#include <omp.h>
#include <string.h>

#define CONV_SLOTS 32
/* An im2col tile of about this many floats (256 KB) stays in L2. */
#define CONV_TILE_FLOATS 65536
#define CONV_MIN_TILE_ROWS 32

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

static int64_t col_width(const nn_conv_geom *g)
{
    return (int64_t)g->kh * g->kw * g->c;
}

static int64_t out_pixels(const nn_conv_geom *g)
{
    return (int64_t)g->oh * g->ow;
}

static int64_t in_size(const nn_conv_geom *g)
{
    return (int64_t)g->h * g->w * g->c;
}

/* A 1x1 stride-1 unpadded convolution is a plain product: x is already its
 * own im2col matrix. */
static bool pointwise(const nn_conv_geom *g)
{
    return g->kh == 1 && g->kw == 1 && g->sh == 1 && g->sw == 1 &&
           g->pad_top == 0 && g->pad_left == 0 && g->oh == g->h &&
           g->ow == g->w;
}

/* Rounded to 64 bytes so slots of different threads share no cache line. */
static size_t round16(size_t n) { return (n + 15) & ~(size_t)15; }

static int64_t tile_rows(const nn_conv_geom *g)
{
    int64_t m = out_pixels(g);
    int64_t r = CONV_TILE_FLOATS / col_width(g);
    if (r < CONV_MIN_TILE_ROWS) r = CONV_MIN_TILE_ROWS;
    if (r >= m) return m;
    int64_t tiles = (m + r - 1) / r;
    return (m + tiles - 1) / tiles; /* even tiles */
}

/* memcpy of n floats made of fixed-size pieces, which the compiler inlines:
 * the segments of im2col are short (kw * c floats, 9 for a 3x3 kernel on
 * RGB) and a library call each cost more than the copy. */
static inline void copy_floats(float *restrict d, const float *restrict s,
                               int64_t n)
{
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) memcpy(d + j, s + j, 8 * sizeof(float));
    if (n - j >= 4) {
        memcpy(d + j, s + j, 4 * sizeof(float));
        j += 4;
    }
    if (n - j >= 2) {
        memcpy(d + j, s + j, 2 * sizeof(float));
        j += 2;
    }
    if (n - j) d[j] = s[j];
}

/* Every window lies inside the input (no padding reaches it). */
static bool windows_inside(const nn_conv_geom *g)
{
    return g->pad_top == 0 && g->pad_left == 0 &&
           (int64_t)(g->oh - 1) * g->sh + g->kh <= g->h &&
           (int64_t)(g->ow - 1) * g->sw + g->kw <= g->w;
}

/* im2col when windows_inside: kh plain copies per pixel. */
NN_TARGET_CLONES
static void im2col_inside(const nn_conv_geom *g, const float *x, int64_t r0,
                          int64_t r1, float *col)
{
    const int64_t c = g->c, row = (int64_t)g->kw * c, wc = (int64_t)g->w * c;
    int64_t oy = r0 / g->ow, ox = r0 % g->ow;
    for (int64_t r = r0; r < r1; r++) {
        const float *src = x + (oy * g->sh * g->w + ox * g->sw) * c;
        for (int ky = 0; ky < g->kh; ky++, col += row, src += wc)
            copy_floats(col, src, row);
        if (++ox == g->ow) ox = 0, oy++;
    }
}

/* Columns of output pixels [r0, r1) of one image. The pixel's (oy, ox)
 * advance with r: no division per pixel. */
static void im2col(const nn_conv_geom *g, const float *x, int64_t r0,
                   int64_t r1, float *col)
{
    if (windows_inside(g)) {
        im2col_inside(g, x, r0, r1, col);
        return;
    }
    const int64_t c = g->c, kw = g->kw, row = kw * c;
    int64_t oy = r0 / g->ow, ox = r0 % g->ow;
    float *dst = col; /* rows of kh * row == col_width floats */
    for (int64_t r = r0; r < r1; r++) {
        int64_t iy0 = oy * g->sh - g->pad_top, ix0 = ox * g->sw - g->pad_left;
        int64_t kx0 = ix0 < 0 ? -ix0 : 0;
        int64_t kx1 = min64(kw, g->w - ix0);
        bool inside_x = kx0 == 0 && kx1 == kw;
        for (int64_t ky = 0; ky < g->kh; ky++, dst += row) {
            int64_t iy = iy0 + ky;
            if (iy < 0 || iy >= g->h || kx0 >= kx1) {
                memset(dst, 0, (size_t)row * sizeof(float));
                continue;
            }
            const float *src = x + (iy * g->w + ix0 + kx0) * c;
            if (inside_x) {
                copy_floats(dst, src, row);
                continue;
            }
            if (kx0 > 0) memset(dst, 0, (size_t)(kx0 * c) * sizeof(float));
            copy_floats(dst + kx0 * c, src, (kx1 - kx0) * c);
            if (kx1 < kw)
                memset(dst + kx1 * c, 0,
                       (size_t)((kw - kx1) * c) * sizeof(float));
        }
        if (++ox == g->ow) ox = 0, oy++;
    }
}

/* Adds the columns of a whole image back onto its input positions. */
NN_TARGET_CLONES
static void col2im_add(const nn_conv_geom *g, const float *restrict col,
                       float *restrict dx)
{
    const int64_t c = g->c, kw = g->kw, row = kw * c;
    const int64_t m = out_pixels(g);
    int64_t oy = 0, ox = 0;
    for (int64_t r = 0; r < m; r++) {
        int64_t iy0 = oy * g->sh - g->pad_top, ix0 = ox * g->sw - g->pad_left;
        int64_t kx0 = ix0 < 0 ? -ix0 : 0;
        int64_t kx1 = min64(kw, g->w - ix0);
        for (int64_t ky = 0; ky < g->kh; ky++, col += row) {
            int64_t iy = iy0 + ky;
            if (iy < 0 || iy >= g->h || kx0 >= kx1) continue;
            float *d = dx + (iy * g->w + ix0 + kx0) * c;
            const float *s = col + kx0 * c;
            int64_t len = (kx1 - kx0) * c;
            for (int64_t i = 0; i < len; i++) d[i] += s[i];
        }
        if (++ox == g->ow) ox = 0, oy++;
    }
}

/* acc[j] += sum over rows of y[r, j] (the bias gradient of one image). */
NN_TARGET_CLONES
static void add_col_sums(const float *restrict y, int64_t rows, int64_t f,
                         float *restrict acc)
{
    for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < f; j++) acc[j] += y[r * f + j];
}

static void add_bias_rows(float *y, const float *bias, int64_t rows,
                          int64_t f)
{
    for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < f; j++) y[r * f + j] += bias[j];
}

size_t nn__conv2d_forward_scratch(const nn_conv_geom *g)
{
    if (pointwise(g)) return 0;
    int64_t tr = tile_rows(g);
    int64_t items = (int64_t)g->n * ((out_pixels(g) + tr - 1) / tr);
    int64_t slots = min64(items, CONV_SLOTS);
    return (size_t)slots * round16((size_t)(tr * col_width(g)));
}

/* Bias, logits copy and activation of rows of the output, while they are
 * still in cache. */
static void epilogue(const float *bias, nn_activation act, float *logits,
                     float *y, int64_t rows, int64_t f)
{
    if (bias) add_bias_rows(y, bias, rows, f);
    if (logits) memcpy(logits, y, (size_t)(rows * f) * sizeof(float));
    nn__act_forward(act, y, rows, f);
}

void nn__conv2d_forward(const nn_conv_geom *g, const float *x, const float *w,
                        const float *bias, float *out, float *scratch)
{
    nn__conv2d_forward_act(g, x, w, bias, NN_ACT_NONE, NULL, out, scratch);
}

void nn__conv2d_forward_act(const nn_conv_geom *g, const float *x,
                            const float *w, const float *bias,
                            nn_activation act, float *logits, float *out,
                            float *scratch)
{
    const int64_t m = out_pixels(g), k = col_width(g), f = g->f;
    if (g->n <= 0 || m <= 0) return;
    if (pointwise(g)) {
        int64_t rows = (int64_t)g->n * m;
        nn__gemm(false, false, rows, f, k, x, k, w, f, 0.0f, out, f);
        if (bias) nn__bias_add(out, bias, rows, f);
        if (logits) memcpy(logits, out, (size_t)(rows * f) * sizeof(float));
        nn__act_forward(act, out, rows, f);
        return;
    }
    const int64_t tr = tile_rows(g), per_img = (m + tr - 1) / tr;
    const int64_t items = (int64_t)g->n * per_img;
    const size_t slot = round16((size_t)(tr * k));
    /* Bias and ReLU applied as the product leaves the registers. */
    const bool fused = !logits && (act == NN_ACT_NONE || act == NN_ACT_RELU);
    int p = (int)min64(min64(items, CONV_SLOTS), nn__threads());
#pragma omp parallel num_threads(p) if (p > 1)
    {
        float *col = scratch + (size_t)omp_get_thread_num() * slot;
#pragma omp for schedule(static)
        for (int64_t it = 0; it < items; it++) {
            int64_t i = it / per_img, r0 = (it % per_img) * tr;
            int64_t r1 = min64(m, r0 + tr);
            int64_t at = (i * m + r0) * f;
            im2col(g, x + i * in_size(g), r0, r1, col);
            if (fused) {
                nn__gemm512_bias_relu(r1 - r0, f, k, col, k, w, f, bias,
                                      act == NN_ACT_RELU, out + at, f);
                continue;
            }
            nn__gemm512(false, r1 - r0, f, k, col, k, w, f, 0.0f, out + at,
                        f);
            epilogue(bias, act, logits ? logits + at : NULL, out + at, r1 - r0,
                     f);
        }
    }
}

/* Per-thread slot of the backward pass: im2col, dx columns (when dx is
 * wanted), weight- and bias-gradient partials. */
typedef struct bwd_slot {
    size_t col, dcol, dw, db, size;
} bwd_slot;

/* Ahead of the slots: the kernel transposed ([f, k]) for the dx product,
 * when there is one. */
static size_t wt_floats(const nn_conv_geom *g, bool need_dx)
{
    return need_dx ? round16((size_t)(col_width(g) * g->f)) : 0;
}

static bwd_slot slot_layout(const nn_conv_geom *g, bool need_dx)
{
    size_t mk = round16((size_t)(out_pixels(g) * col_width(g)));
    bwd_slot s;
    s.col = 0;
    s.dcol = mk;
    s.dw = s.dcol + (need_dx ? mk : 0);
    s.db = s.dw + round16((size_t)(col_width(g) * g->f));
    s.size = s.db + round16((size_t)g->f);
    return s;
}

size_t nn__conv2d_backward_scratch(const nn_conv_geom *g, bool need_dx)
{
    if (pointwise(g)) return 0;
    int64_t slots = min64(g->n, CONV_SLOTS);
    return wt_floats(g, need_dx) + (size_t)slots * slot_layout(g, need_dx).size;
}

static void pointwise_backward(const nn_conv_geom *g, nn_activation act,
                               const float *y, const float *x, const float *w,
                               float *dout, float *dx, bool accum, float *dw,
                               float *db)
{
    int64_t rows = (int64_t)g->n * out_pixels(g), c = g->c, f = g->f;
    nn__act_backward(act, y, dout, rows, f);
    if (dw) nn__gemm(true, false, c, f, rows, x, c, dout, f, 0.0f, dw, f);
    if (db) nn__colsum(dout, rows, f, db);
    if (dx)
        nn__gemm(false, true, rows, c, f, dout, f, w, f, accum ? 1.0f : 0.0f,
                 dx, c);
}

/* One image's share of the backward pass, added into the thread's
 * partials pdw/pdb (either may be NULL). wt is the kernel as [f, k], or
 * NULL to multiply by w transposed through OpenBLAS. */
static void backward_image(const nn_conv_geom *g, nn_activation act,
                           const float *y, const float *x, const float *w,
                           const float *wt, float *dy, float *dx, bool accum,
                           float *pdw, float *pdb, float *col, float *dcol)
{
    const int64_t m = out_pixels(g), k = col_width(g), f = g->f;
    nn__act_backward(act, y, dy, m, f);
    if (pdw) {
        im2col(g, x, 0, m, col);
        nn__gemm512(true, k, f, m, col, k, dy, f, 1.0f, pdw, f);
    }
    if (pdb) add_col_sums(dy, m, f, pdb);
    if (dx) {
        if (!accum) memset(dx, 0, (size_t)in_size(g) * sizeof(float));
        if (wt)
            nn__gemm512(false, m, k, f, dy, f, wt, k, 0.0f, dcol, k);
        else
            nn__gemm1(false, true, m, k, f, dy, f, w, f, 0.0f, dcol, k);
        col2im_add(g, dcol, dx);
    }
}

/* wt[j, i] = w[i, j] for w [k, f]. */
static void transpose(const float *w, int64_t k, int64_t f, float *wt)
{
    for (int64_t i = 0; i < k; i++)
        for (int64_t j = 0; j < f; j++) wt[j * k + i] = w[i * f + j];
}

/* dst[i] += the same element of every other thread's partial, in order. */
static void reduce_partials(float *dst, const float *scratch, size_t off,
                            size_t slot, int np, int64_t len)
{
#pragma omp for schedule(static)
    for (int64_t e = 0; e < len; e++) {
        float s = dst[e];
        for (int t = 1; t < np; t++) s += scratch[(size_t)t * slot + off + e];
        dst[e] = s;
    }
}

void nn__conv2d_backward(const nn_conv_geom *g, const float *x, const float *w,
                         const float *dout, float *dx, bool accum, float *dw,
                         float *db, float *scratch)
{
    /* Without an activation dout is only read. */
    nn__conv2d_backward_act(g, NN_ACT_NONE, NULL, x, w, (float *)dout, dx,
                            accum, dw, db, scratch);
}

void nn__conv2d_backward_act(const nn_conv_geom *g, nn_activation act,
                             const float *y, const float *x, const float *w,
                             float *dout, float *dx, bool accum, float *dw,
                             float *db, float *scratch)
{
    if (g->n <= 0) return;
    if (pointwise(g)) {
        pointwise_backward(g, act, y, x, w, dout, dx, accum, dw, db);
        return;
    }
    const int64_t m = out_pixels(g), k = col_width(g), f = g->f;
    const bwd_slot s = slot_layout(g, dx != NULL);
    float *wt = NULL;
    if (dx && nn__gemm512_ok()) {
        wt = scratch;
        transpose(w, k, f, wt);
    }
    scratch += wt_floats(g, dx != NULL);
    int p = (int)min64(min64(g->n, CONV_SLOTS), nn__threads());
#pragma omp parallel num_threads(p) if (p > 1)
    {
        int t = omp_get_thread_num(), np = omp_get_num_threads();
        float *base = scratch + (size_t)t * s.size;
        /* Thread 0 accumulates straight into the outputs. */
        float *pdw = !dw ? NULL : t == 0 ? dw : base + s.dw;
        float *pdb = !db ? NULL : t == 0 ? db : base + s.db;
        if (pdw) memset(pdw, 0, (size_t)(k * f) * sizeof(float));
        if (pdb) memset(pdb, 0, (size_t)f * sizeof(float));
        int64_t i0 = g->n * (int64_t)t / np, i1 = g->n * (int64_t)(t + 1) / np;
        for (int64_t i = i0; i < i1; i++)
            backward_image(g, act, y ? y + i * m * f : NULL,
                           x + i * in_size(g), w, wt, dout + i * m * f,
                           dx ? dx + i * in_size(g) : NULL, accum, pdw, pdb,
                           base + s.col, base + s.dcol);
        if (np > 1) {
#pragma omp barrier
            if (dw) reduce_partials(dw, scratch, s.dw, s.size, np, k * f);
            if (db) reduce_partials(db, scratch, s.db, s.size, np, f);
        }
    }
}

void nn__conv2d_forward_ref(const nn_conv_geom *g, const float *x,
                            const float *w, const float *bias, float *out)
{
    for (int n = 0; n < g->n; n++)
        for (int oy = 0; oy < g->oh; oy++)
            for (int ox = 0; ox < g->ow; ox++)
                for (int f = 0; f < g->f; f++) {
                    double acc = bias ? bias[f] : 0.0;
                    for (int ky = 0; ky < g->kh; ky++)
                        for (int kx = 0; kx < g->kw; kx++) {
                            int iy = oy * g->sh - g->pad_top + ky;
                            int ix = ox * g->sw - g->pad_left + kx;
                            if (iy < 0 || iy >= g->h || ix < 0 || ix >= g->w)
                                continue;
                            for (int c = 0; c < g->c; c++)
                                acc += (double)x[(((int64_t)n * g->h + iy) *
                                                      g->w + ix) * g->c + c] *
                                       w[(((int64_t)ky * g->kw + kx) * g->c +
                                          c) * g->f + f];
                        }
                    out[(((int64_t)n * g->oh + oy) * g->ow + ox) * g->f + f] =
                        (float)acc;
                }
}

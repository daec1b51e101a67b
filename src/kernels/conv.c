/* 2-D convolution, NHWC, as im2col + GEMM.
 *
 * im2col row r of an image is output pixel r; its columns run (ky, kx, c),
 * which matches the [kh, kw, cin, cout] kernel read as a [K, F] matrix.
 * The forward pass works on tiles of output rows sized to stay in cache,
 * and splits the filters across threads when there are few rows (batch 1
 * deep in a network, where reading the kernel is most of the cost). Each
 * output is one chain of multiply-adds in k order however the work is
 * cut, so the results do not depend on the thread count. The backward
 * pass gives each thread whole images and its own weight-gradient
 * partial; partials are summed in thread order. The
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

/* Rows of a tile of an m-row product with k columns of A. */
static int64_t tile_rows(int64_t m, int64_t k)
{
    int64_t r = CONV_TILE_FLOATS / k;
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
void nn__im2col(const nn_conv_geom *g, const float *x, int64_t r0, int64_t r1,
                float *col)
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

void nn__col2im_add(const nn_conv_geom *g, const float *col, float *dx)
{
    col2im_add(g, col, dx);
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

/* How a forward pass is cut into work items: `tiles` tiles of up to
 * `rows` output rows per image times `parts` ranges of filters. A
 * pointwise convolution is one "image" of all the batch's pixels, since
 * its input rows already are its columns. Each element is one chain of
 * multiply-adds in k order however the work is cut, so the cut may depend
 * on the thread count without changing a bit of the result. */
typedef struct fwd_plan {
    int64_t images, m, rows, tiles, parts;
} fwd_plan;

/* Up to this many output rows (all images), the filters are split across
 * threads instead of the rows: each thread then reads only its share of
 * the kernel, which at batch 1 is most of the memory traffic. */
#define CONV_SPLIT_F_ROWS 256

static bool split_filters_possible(const nn_conv_geom *g)
{
    return (int64_t)g->n * out_pixels(g) <= CONV_SPLIT_F_ROWS && g->f > 64;
}

/* post: the epilogue cannot run per range of filters (see forward_item). */
static fwd_plan forward_plan(const nn_conv_geom *g, int threads, bool post)
{
    bool pw = pointwise(g);
    fwd_plan p = {.images = pw ? 1 : g->n,
                  .m = pw ? (int64_t)g->n * out_pixels(g) : out_pixels(g),
                  .parts = 1};
    p.rows = tile_rows(p.m, col_width(g));
    p.tiles = (p.m + p.rows - 1) / p.rows;
    int64_t blocks = (g->f + 63) / 64;
    if (threads > 1 && !post && split_filters_possible(g) &&
        blocks >= threads) {
        p.parts = threads;
        p.rows = p.m;
        p.tiles = 1;
        return p;
    }
    /* A few tiles: as many per thread, unless tiles get too short. */
    while (threads > 1 && (p.images * p.tiles) % threads &&
           p.images * p.tiles < 8 * threads && p.m / (p.tiles + 1) >= 12)
        p.tiles++;
    p.rows = (p.m + p.tiles - 1) / p.tiles;
    return p;
}

/* Floats of one thread's im2col slot (0 for pointwise). The largest any
 * thread count can plan, so that a context planned before
 * nn_set_num_threads stays valid. */
static size_t forward_slot(const nn_conv_geom *g)
{
    if (pointwise(g)) return 0;
    int64_t rows = tile_rows(out_pixels(g), col_width(g));
    if (split_filters_possible(g)) rows = out_pixels(g);
    return round16((size_t)(rows * col_width(g)));
}

size_t nn__conv2d_forward_scratch(const nn_conv_geom *g)
{
    size_t slot = forward_slot(g);
    if (!slot) return 0;
    /* Row tiles keep at least 12 rows; a split of the filters has one item
     * per thread and image. */
    int64_t items = (int64_t)g->n * ((out_pixels(g) + 11) / 12);
    if (split_filters_possible(g)) items = CONV_SLOTS;
    return (size_t)min64(items, CONV_SLOTS) * slot;
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

/* Filters [j0, j1) of part q of p: whole 64-column blocks. */
static void part_cols(int64_t f, int64_t q, int64_t p, int64_t *j0,
                      int64_t *j1)
{
    int64_t blocks = (f + 63) / 64;
    *j0 = min64(f, 64 * (blocks * q / p));
    *j1 = min64(f, 64 * (blocks * (q + 1) / p));
}

/* What runs after the product when the epilogue cannot: bias, a copy of
 * the pre-activation into logits, any activation. */
typedef struct post_ops {
    const float *bias;
    nn_activation act;
    float *logits;
} post_ops;

/* One work item: rows [r0, r1) of image i, filters [j0, j1). */
static void forward_item(const nn_conv_geom *g, const fwd_plan *p,
                         const float *x, const float *w, const nn_epilogue *e,
                         const post_ops *post, float *out, float *col,
                         int64_t i, int64_t r0, int64_t r1, int64_t j0,
                         int64_t j1)
{
    const int64_t k = col_width(g), f = g->f, at = (i * p->m + r0) * f;
    const float *a = x + (i * p->m + r0) * k; /* pointwise: x is im2col */
    if (!pointwise(g)) {
        nn__im2col(g, x + i * in_size(g), r0, r1, col);
        a = col;
    }
    nn_epilogue ej = *e;
    if (ej.scale) ej.scale += j0;
    if (ej.shift) ej.shift += j0;
    if (ej.residual) ej.residual += at + j0;
    nn__gemm512_epi(r1 - r0, j1 - j0, k, a, k, w + j0, f, &ej, out + at + j0,
                    f);
    if (post) /* whole rows: the plan has one part */
        epilogue(post->bias, post->act, post->logits ? post->logits + at : NULL,
                 out + at, r1 - r0, f);
}

static void forward_run(const nn_conv_geom *g, const float *x, const float *w,
                        const nn_epilogue *e, const post_ops *post, float *out,
                        float *scratch)
{
    if (g->n <= 0 || out_pixels(g) <= 0) return;
    const fwd_plan p = forward_plan(g, nn__threads(), post != NULL);
    const int64_t items = p.images * p.tiles * p.parts;
    const size_t slot = forward_slot(g);
    int nt = (int)min64(min64(items, CONV_SLOTS), nn__threads());
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        float *col = scratch + (size_t)omp_get_thread_num() * slot;
#pragma omp for schedule(static)
        for (int64_t it = 0; it < items; it++) {
            int64_t q = it % p.parts, t = it / p.parts;
            int64_t i = t / p.tiles, r0 = (t % p.tiles) * p.rows;
            int64_t j0, j1;
            part_cols(g->f, q, p.parts, &j0, &j1);
            if (j0 < j1 && r0 < p.m)
                forward_item(g, &p, x, w, e, post, out, col, i, r0,
                             min64(p.m, r0 + p.rows), j0, j1);
        }
    }
}

void nn__conv2d_forward_epi(const nn_conv_geom *g, const float *x,
                            const float *w, const nn_epilogue *e, float *out,
                            float *scratch)
{
    forward_run(g, x, w, e, NULL, out, scratch);
}

void nn__conv2d_forward_act(const nn_conv_geom *g, const float *x,
                            const float *w, const float *bias,
                            nn_activation act, float *logits, float *out,
                            float *scratch)
{
    /* Bias and ReLU or ReLU6 applied as the product leaves the registers. */
    if (!logits && (act == NN_ACT_NONE || act == NN_ACT_RELU ||
                    act == NN_ACT_RELU6)) {
        nn_epilogue e = {.shift = bias, .relu = act == NN_ACT_RELU,
                         .relu6 = act == NN_ACT_RELU6};
        forward_run(g, x, w, &e, NULL, out, scratch);
        return;
    }
    nn_epilogue none = {0};
    post_ops post = {bias, act, logits};
    forward_run(g, x, w, &none, &post, out, scratch);
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
        nn__im2col(g, x, 0, m, col);
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

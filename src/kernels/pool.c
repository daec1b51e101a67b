/* Max and average pooling, NHWC. Windows are clipped to the input, so
 * padded cells never win a max and never count in an average (Keras/TF).
 * With Keras/TF padding every window holds at least one input cell. */
#include "kernels/kernels.h"

#include <string.h>

/* Below this many window cells per call (~0.2 ms of work) the loops stay
 * on one thread: a thread team's barriers cost more, and far more when the
 * cores are shared with other processes. */
#define POOL_PAR_MIN (1 << 20)

typedef struct window {
    int y0, y1, x0, x1;
} window;

static window clip_window(const nn_conv_geom *g, int oy, int ox)
{
    window v;
    v.y0 = oy * g->sh - g->pad_top;
    v.x0 = ox * g->sw - g->pad_left;
    v.y1 = v.y0 + g->kh;
    v.x1 = v.x0 + g->kw;
    if (v.y0 < 0) v.y0 = 0;
    if (v.x0 < 0) v.x0 = 0;
    if (v.y1 > g->h) v.y1 = g->h;
    if (v.x1 > g->w) v.x1 = g->w;
    return v;
}

static int64_t in_size(const nn_conv_geom *g)
{
    return (int64_t)g->h * g->w * g->c;
}

static int64_t out_size(const nn_conv_geom *g)
{
    return (int64_t)g->oh * g->ow * g->c;
}

static bool parallel_worth(const nn_conv_geom *g)
{
    return (int64_t)g->n * out_size(g) * g->kh * g->kw >= POOL_PAR_MIN;
}

/* One output row (oy) of one image. Ties keep the first cell, as TF does;
 * a NaN in the first cell stays (every later test against it is false).
 * arg may be NULL (no argmax wanted). */
static void maxpool_row(const nn_conv_geom *g, const float *x, int oy,
                        float *out, int32_t *arg)
{
    const int c = g->c;
    for (int ox = 0; ox < g->ow; ox++, out += c) {
        window v = clip_window(g, oy, ox);
        int32_t first = (v.y0 * g->w + v.x0) * c;
        memcpy(out, x + first, (size_t)c * sizeof(float));
        if (arg)
            for (int ch = 0; ch < c; ch++) arg[ch] = first + ch;
        for (int iy = v.y0; iy < v.y1; iy++)
            for (int ix = v.x0; ix < v.x1; ix++) {
                int32_t at = (iy * g->w + ix) * c;
                const float *p = x + at;
                if (!arg) {
#pragma omp simd
                    for (int ch = 0; ch < c; ch++)
                        out[ch] = p[ch] > out[ch] ? p[ch] : out[ch];
                    continue;
                }
                /* Branch-free (a select through a bit mask) so the channel
                 * loop vectorizes. */
#pragma omp simd
                for (int ch = 0; ch < c; ch++) {
                    float val = p[ch], o = out[ch];
                    int32_t keep = -(int32_t)(val > o);
                    out[ch] = val > o ? val : o;
                    arg[ch] = (arg[ch] & ~keep) | ((at + ch) & keep);
                }
            }
        if (arg) arg += c;
    }
}

bool nn__maxpool_tiles_2x2(const nn_conv_geom *g)
{
    return g->kh == 2 && g->kw == 2 && g->sh == 2 && g->sw == 2 &&
           g->pad_top == 0 && g->pad_left == 0 && g->oh == g->h / 2 &&
           g->ow == g->w / 2;
}

/* The same max as maxpool_row, in the same order, for 2x2 windows: one
 * image. */
NN_TARGET_CLONES
static void maxpool_image_2x2(const nn_conv_geom *g, const float *restrict x,
                              float *restrict out)
{
    const int64_t c = g->c;
    for (int oy = 0; oy < g->oh; oy++) {
        const float *r0 = x + (int64_t)2 * oy * g->w * c, *r1 = r0 + g->w * c;
        for (int ox = 0; ox < g->ow; ox++, r0 += 2 * c, r1 += 2 * c, out += c)
            for (int64_t ch = 0; ch < c; ch++) {
                float o = r0[ch];
                o = r0[c + ch] > o ? r0[c + ch] : o;
                o = r1[ch] > o ? r1[ch] : o;
                out[ch] = r1[c + ch] > o ? r1[c + ch] : o;
            }
    }
}

void nn__maxpool_forward(const nn_conv_geom *g, const float *x, float *out,
                         int32_t *argmax)
{
    if (!argmax && nn__maxpool_tiles_2x2(g)) {
#pragma omp parallel for num_threads(nn__threads()) if (parallel_worth(g))  \
    schedule(static)
        for (int64_t i = 0; i < g->n; i++)
            maxpool_image_2x2(g, x + i * in_size(g), out + i * out_size(g));
        return;
    }
    int64_t rows = (int64_t)g->n * g->oh;
    int64_t row_len = (int64_t)g->ow * g->c;
#pragma omp parallel for num_threads(nn__threads()) if (parallel_worth(g))  \
    schedule(static)
    for (int64_t r = 0; r < rows; r++)
        maxpool_row(g, x + (r / g->oh) * in_size(g), (int)(r % g->oh),
                    out + r * row_len, argmax ? argmax + r * row_len : NULL);
}

void nn__maxpool_backward(const nn_conv_geom *g, const float *dout,
                          const int32_t *argmax, float *dx, bool accum)
{
    int64_t per_out = out_size(g), per_in = in_size(g);
#pragma omp parallel for num_threads(nn__threads()) if (parallel_worth(g))  \
    schedule(static)
    for (int64_t i = 0; i < g->n; i++) {
        float *d = dx + i * per_in;
        const float *dy = dout + i * per_out;
        const int32_t *a = argmax + i * per_out;
        if (!accum) memset(d, 0, (size_t)per_in * sizeof(float));
        for (int64_t j = 0; j < per_out; j++) d[a[j]] += dy[j];
    }
}

/* The cell nn__maxpool_forward chose for output (oy, ox, ch): the first
 * one in window order that equals the max y, or the first cell when y is
 * NaN (only a NaN first cell makes it NaN). */
static int64_t argmax_cell(const nn_conv_geom *g, const float *x, int oy,
                           int ox, int ch, float y)
{
    window v = clip_window(g, oy, ox);
    for (int iy = v.y0; iy < v.y1; iy++)
        for (int ix = v.x0; ix < v.x1; ix++) {
            int64_t at = ((int64_t)iy * g->w + ix) * g->c + ch;
            if (x[at] == y) return at;
        }
    return ((int64_t)v.y0 * g->w + v.x0) * g->c + ch;
}

static void maxpool_backward_image(const nn_conv_geom *g, const float *x,
                                   const float *y, const float *dy, float *dx)
{
    for (int oy = 0; oy < g->oh; oy++)
        for (int ox = 0; ox < g->ow; ox++)
            for (int ch = 0; ch < g->c; ch++, y++, dy++)
                dx[argmax_cell(g, x, oy, ox, ch, *y)] += *dy;
}

/* Output row oy of a tiling 2x2 pool: rows 2oy and 2oy+1 of dx. The
 * gradient goes to the first cell equal to the max (the first cell when
 * the max is NaN), as in argmax_cell, through selects that vectorise: r is
 * what no earlier cell took. Odd widths leave a last column no window
 * covers. */
static inline void maxpool_backward_row_2x2(const nn_conv_geom *g,
                                            const float *restrict x,
                                            const float *restrict y,
                                            const float *restrict dy,
                                            float *restrict dx, int oy,
                                            bool accum)
{
    const int64_t c = g->c, wc = (int64_t)g->w * c;
    const float *a = x + 2 * oy * wc, *b = a + wc;
    float *da = dx + 2 * oy * wc, *db = da + wc;
    for (int ox = 0; ox < g->ow; ox++) {
        for (int64_t ch = 0; ch < c; ch++) {
            float m = y[ch], r = dy[ch];
            bool e0 = (a[ch] == m) | (m != m), e1 = a[c + ch] == m;
            bool e2 = b[ch] == m;
            float g0 = e0 ? r : 0.0f;
            r = e0 ? 0.0f : r;
            float g1 = e1 ? r : 0.0f;
            r = e1 ? 0.0f : r;
            float g2 = e2 ? r : 0.0f;
            float g3 = e2 ? 0.0f : r;
            if (accum) {
                da[ch] += g0, da[c + ch] += g1, db[ch] += g2, db[c + ch] += g3;
            } else {
                da[ch] = g0, da[c + ch] = g1, db[ch] = g2, db[c + ch] = g3;
            }
        }
        a += 2 * c, b += 2 * c, da += 2 * c, db += 2 * c, y += c, dy += c;
    }
    if (!accum && g->w % 2) {
        memset(da, 0, (size_t)c * sizeof(float));
        memset(db, 0, (size_t)c * sizeof(float));
    }
}

/* One image of a tiling 2x2 pool; h odd leaves a last row no window
 * covers. */
NN_TARGET_CLONES
static void maxpool_backward_image_2x2(const nn_conv_geom *g, const float *x,
                                       const float *y, const float *dy,
                                       float *dx, bool accum)
{
    int64_t row_len = (int64_t)g->ow * g->c;
    for (int oy = 0; oy < g->oh; oy++, y += row_len, dy += row_len) {
        /* Constant accum: each call is compiled without the test. */
        if (accum)
            maxpool_backward_row_2x2(g, x, y, dy, dx, oy, true);
        else
            maxpool_backward_row_2x2(g, x, y, dy, dx, oy, false);
    }
    int64_t tail = g->h % 2 ? (int64_t)g->w * g->c : 0;
    if (!accum && tail)
        memset(dx + in_size(g) - tail, 0, (size_t)tail * sizeof(float));
}

void nn__maxpool_backward_x(const nn_conv_geom *g, const float *x,
                            const float *y, const float *dout, float *dx,
                            bool accum)
{
    int64_t per_out = out_size(g), per_in = in_size(g);
    bool fast = nn__maxpool_tiles_2x2(g);
#pragma omp parallel for num_threads(nn__threads()) if (parallel_worth(g))  \
    schedule(static)
    for (int64_t i = 0; i < g->n; i++) {
        const float *xi = x + i * per_in, *yi = y + i * per_out;
        const float *dyi = dout + i * per_out;
        float *d = dx + i * per_in;
        if (fast) {
            maxpool_backward_image_2x2(g, xi, yi, dyi, d, accum);
            continue;
        }
        if (!accum) memset(d, 0, (size_t)per_in * sizeof(float));
        maxpool_backward_image(g, xi, yi, dyi, d);
    }
}

/* Channels handled per block of the loops below: their float work and
 * their byte traffic go in separate loops, each of which GCC vectorises
 * at full width (in one loop it would size the vectors by the bytes and
 * leave short channel rows to scalar code). */
#define WIN_BLOCK 64

/* The cell (0..3, row-major in the window) each output of one image of
 * a 2x2 tiling pool takes: the first maximum, as maxpool_row. */
NN_TARGET_CLONES
static void maxpool_win_image(const nn_conv_geom *g, const float *restrict x,
                              float *restrict out, uint8_t *restrict win)
{
    const int64_t c = g->c;
    for (int oy = 0; oy < g->oh; oy++) {
        const float *r0 = x + (int64_t)2 * oy * g->w * c, *r1 = r0 + g->w * c;
        for (int ox = 0; ox < g->ow; ox++, r0 += 2 * c, r1 += 2 * c)
            for (int64_t c0 = 0; c0 < c; c0 += WIN_BLOCK) {
                int64_t cb = c - c0 < WIN_BLOCK ? c - c0 : WIN_BLOCK;
                float kb[WIN_BLOCK];
                for (int64_t j = 0; j < cb; j++) {
                    int64_t ch = c0 + j;
                    float o = r0[ch], k = 0.0f;
                    float v1 = r0[c + ch], v2 = r1[ch], v3 = r1[c + ch];
                    k = v1 > o ? 1.0f : k;
                    o = v1 > o ? v1 : o;
                    k = v2 > o ? 2.0f : k;
                    o = v2 > o ? v2 : o;
                    k = v3 > o ? 3.0f : k;
                    out[ox * c + ch] = v3 > o ? v3 : o;
                    kb[j] = k;
                }
                for (int64_t j = 0; j < cb; j++)
                    win[ox * c + c0 + j] = (uint8_t)kb[j];
            }
        out += g->ow * c;
        win += g->ow * c;
    }
}

void nn__maxpool_forward_win(const nn_conv_geom *g, const float *x,
                             float *out, uint8_t *win)
{
#pragma omp parallel for num_threads(nn__threads()) if (parallel_worth(g))  \
    schedule(static)
    for (int64_t i = 0; i < g->n; i++)
        maxpool_win_image(g, x + i * in_size(g), out + i * out_size(g),
                          win + i * out_size(g));
}

/* Row oy of dx from the chosen cells: each cell gets its output's
 * gradient or 0. */
static inline void maxpool_win_row(const nn_conv_geom *g,
                                   const uint8_t *restrict win,
                                   const float *restrict dy,
                                   float *restrict dx, int oy, bool accum)
{
    const int64_t c = g->c, wc = (int64_t)g->w * c;
    float *da = dx + 2 * oy * wc, *db = da + wc;
    for (int ox = 0; ox < g->ow; ox++) {
        for (int64_t c0 = 0; c0 < c; c0 += WIN_BLOCK) {
            int64_t cb = c - c0 < WIN_BLOCK ? c - c0 : WIN_BLOCK;
            float kb[WIN_BLOCK];
            for (int64_t j = 0; j < cb; j++) kb[j] = win[c0 + j];
            for (int64_t j = 0; j < cb; j++) {
                int64_t ch = c0 + j;
                float k = kb[j], r = dy[ch];
                float g0 = k == 0.0f ? r : 0.0f, g1 = k == 1.0f ? r : 0.0f;
                float g2 = k == 2.0f ? r : 0.0f, g3 = k == 3.0f ? r : 0.0f;
                if (accum) {
                    da[ch] += g0, da[c + ch] += g1;
                    db[ch] += g2, db[c + ch] += g3;
                } else {
                    da[ch] = g0, da[c + ch] = g1;
                    db[ch] = g2, db[c + ch] = g3;
                }
            }
        }
        da += 2 * c, db += 2 * c, win += c, dy += c;
    }
    if (!accum && g->w % 2) {
        memset(da, 0, (size_t)c * sizeof(float));
        memset(db, 0, (size_t)c * sizeof(float));
    }
}

NN_TARGET_CLONES
static void maxpool_win_backward_image(const nn_conv_geom *g,
                                       const uint8_t *win, const float *dy,
                                       float *dx, bool accum)
{
    int64_t row_len = (int64_t)g->ow * g->c;
    for (int oy = 0; oy < g->oh; oy++, win += row_len, dy += row_len) {
        if (accum)
            maxpool_win_row(g, win, dy, dx, oy, true);
        else
            maxpool_win_row(g, win, dy, dx, oy, false);
    }
    int64_t tail = g->h % 2 ? (int64_t)g->w * g->c : 0;
    if (!accum && tail)
        memset(dx + in_size(g) - tail, 0, (size_t)tail * sizeof(float));
}

void nn__maxpool_backward_win(const nn_conv_geom *g, const uint8_t *win,
                              const float *dout, float *dx, bool accum)
{
#pragma omp parallel for num_threads(nn__threads()) if (parallel_worth(g))  \
    schedule(static)
    for (int64_t i = 0; i < g->n; i++)
        maxpool_win_backward_image(g, win + i * out_size(g),
                                   dout + i * out_size(g), dx + i * in_size(g),
                                   accum);
}

static void avgpool_row(const nn_conv_geom *g, const float *x, int oy,
                        float *out)
{
    const int c = g->c;
    for (int ox = 0; ox < g->ow; ox++, out += c) {
        window v = clip_window(g, oy, ox);
        memset(out, 0, (size_t)c * sizeof(float));
        for (int iy = v.y0; iy < v.y1; iy++)
            for (int ix = v.x0; ix < v.x1; ix++) {
                const float *p = x + ((int64_t)iy * g->w + ix) * c;
                for (int ch = 0; ch < c; ch++) out[ch] += p[ch];
            }
        float inv = 1.0f / (float)((v.y1 - v.y0) * (v.x1 - v.x0));
        for (int ch = 0; ch < c; ch++) out[ch] *= inv;
    }
}

void nn__avgpool_forward(const nn_conv_geom *g, const float *x, float *out)
{
    int64_t rows = (int64_t)g->n * g->oh;
    int64_t row_len = (int64_t)g->ow * g->c;
#pragma omp parallel for num_threads(nn__threads()) if (parallel_worth(g))  \
    schedule(static)
    for (int64_t r = 0; r < rows; r++)
        avgpool_row(g, x + (r / g->oh) * in_size(g), (int)(r % g->oh),
                    out + r * row_len);
}

static void avgpool_backward_image(const nn_conv_geom *g, const float *dy,
                                   float *dx)
{
    const int c = g->c;
    for (int oy = 0; oy < g->oh; oy++)
        for (int ox = 0; ox < g->ow; ox++, dy += c) {
            window v = clip_window(g, oy, ox);
            float inv = 1.0f / (float)((v.y1 - v.y0) * (v.x1 - v.x0));
            for (int iy = v.y0; iy < v.y1; iy++)
                for (int ix = v.x0; ix < v.x1; ix++) {
                    float *d = dx + ((int64_t)iy * g->w + ix) * c;
                    for (int ch = 0; ch < c; ch++) d[ch] += dy[ch] * inv;
                }
        }
}

void nn__avgpool_backward(const nn_conv_geom *g, const float *dout, float *dx,
                          bool accum)
{
    int64_t per_out = out_size(g), per_in = in_size(g);
#pragma omp parallel for num_threads(nn__threads()) if (parallel_worth(g))  \
    schedule(static)
    for (int64_t i = 0; i < g->n; i++) {
        float *d = dx + i * per_in;
        if (!accum) memset(d, 0, (size_t)per_in * sizeof(float));
        avgpool_backward_image(g, dout + i * per_out, d);
    }
}

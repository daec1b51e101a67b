/* Image augmentation kernels: affine resampling, flips, contrast.
 *
 * The resampling reproduces tf.raw_ops.ImageProjectiveTransformV3 (what
 * Keras' RandomRotation/Translation/Zoom call): each output pixel maps to a
 * continuous input coordinate, the fill mode folds that coordinate back
 * into [0, len - 1] per axis (CONSTANT leaves it, and a coordinate outside
 * the image then yields fill_value), and the pixel is read by bilinear or
 * nearest (round half away from zero) interpolation. The folding rules,
 * TensorFlow's, are in map_coord. Because the folded coordinate always lies
 * inside the image, every tap with a non-zero weight is an input pixel, so
 * the backward pass scatters exactly onto the pixels that were read. */
#include "kernels/affine.h"

#include <math.h>
#include <string.h>

/* Below this many values per call the loops stay on one thread. */
#define AUG_PAR_MIN 16384

/* Coordinates beyond this are far outside any image (sizes are < 2^31):
 * clamping them keeps float arithmetic exact enough and NaN out. */
#define COORD_LIMIT 16777216.0f

static float clampf(float v, float lo, float hi)
{
    return v < lo ? lo : (v > hi ? hi : v);
}

/* TensorFlow's MapCoordinate. REFLECT is the half-sample symmetric
 * extension (dcba|abcd|dcba). WRAP keeps TensorFlow's rule, inherited from
 * the old scipy.ndimage: a shift by len * trunc(v / (len - 1)), which
 * differs from a true period-len wrap in the last cell (len - 1, len) and
 * beyond about one image size; see docs/augmentation.md. */
static inline __attribute__((always_inline)) float
map_coord(float v, int len, nn_fill_mode fill)
{
    if (!(v >= -COORD_LIMIT)) v = -COORD_LIMIT; /* also NaN */
    if (v > COORD_LIMIT) v = COORD_LIMIT;
    const float top = (float)(len - 1);
    switch (fill) {
    case NN_FILL_REFLECT:
        if (len <= 1) return 0.0f;
        if (v < 0.0f) {
            const float sz2 = 2.0f * (float)len;
            v = sz2 * truncf(-v / sz2) + v;
            v = v < -(float)len ? v + sz2 : -v - 1.0f;
        } else if (v > top) {
            const float sz2 = 2.0f * (float)len;
            v -= sz2 * truncf(v / sz2);
            if (v >= (float)len) v = sz2 - v - 1.0f;
        }
        return clampf(v, 0.0f, top);
    case NN_FILL_WRAP:
        if (len <= 1) return 0.0f;
        if (v < 0.0f)
            v += (float)len * (truncf(-v / top) + 1.0f);
        else if (v > top)
            v -= (float)len * truncf(v / top);
        return clampf(v, 0.0f, top);
    case NN_FILL_NEAREST:
        return clampf(v, 0.0f, top);
    case NN_FILL_CONSTANT:
    default:
        return v;
    }
}

/* What one output pixel reads: nothing (the fill value), one pixel, or a
 * bilinear blend of four, as pixel indices (row * w + col). */
typedef enum tap_kind { TAP_FILL, TAP_ONE, TAP_FOUR } tap_kind;

typedef struct taps {
    tap_kind kind;
    int32_t p00, p01, p10, p11; /* (y0,x0) (y0,x1) (y1,x0) (y1,x1) */
    float wx0, wx1, wy0, wy1;
} taps;

static inline __attribute__((always_inline)) void
sample_taps(const nn_affine_geom *g, const float *m, int ox, int oy, taps *t)
{
    const float fx = m[0] * (float)ox + m[1] * (float)oy + m[2];
    const float fy = m[3] * (float)ox + m[4] * (float)oy + m[5];
    const float x = map_coord(fx, g->w, g->fill);
    const float y = map_coord(fy, g->h, g->fill);
    if (!(x >= 0.0f && x <= (float)(g->w - 1) && y >= 0.0f &&
          y <= (float)(g->h - 1))) {
        t->kind = TAP_FILL;
        return;
    }
    /* x, y >= 0 here: a conversion to int is the floor, and rounding
     * half up is rounding half away from zero (std::round). */
    const int32_t ix = (int32_t)x, iy = (int32_t)y;
    const float x0 = (float)ix, y0 = (float)iy;
    if (g->interp == NN_INTERP_NEAREST) {
        t->kind = TAP_ONE;
        t->p00 = (iy + (y - y0 >= 0.5f)) * g->w + (ix + (x - x0 >= 0.5f));
        return;
    }
    /* At the last row/column the far tap has weight 0: point it at the
     * near one so no index leaves the image. */
    const int32_t ix1 = ix + 1 < g->w ? ix + 1 : ix;
    const int32_t iy1 = iy + 1 < g->h ? iy + 1 : iy;
    t->kind = TAP_FOUR;
    t->p00 = iy * g->w + ix;
    t->p01 = iy * g->w + ix1;
    t->p10 = iy1 * g->w + ix;
    t->p11 = iy1 * g->w + ix1;
    t->wx0 = (x0 + 1.0f) - x;
    t->wx1 = x - x0;
    t->wy0 = (y0 + 1.0f) - y;
    t->wy1 = y - y0;
}

static int64_t image_size(const nn_affine_geom *g)
{
    return (int64_t)g->h * g->w * g->c;
}

/* One output pixel of c channels. The bilinear blend is done in
 * TensorFlow's order (along x, then along y). */
static inline __attribute__((always_inline)) void
blend(const nn_affine_geom *g, const taps *t, const float *x, float *out,
      int c)
{
    if (t->kind == TAP_FILL) {
        for (int ch = 0; ch < c; ch++) out[ch] = g->fill_value;
    } else if (t->kind == TAP_ONE) {
        const float *a = x + (int64_t)t->p00 * c;
        for (int ch = 0; ch < c; ch++) out[ch] = a[ch];
    } else {
        const float *a = x + (int64_t)t->p00 * c, *b = x + (int64_t)t->p01 * c;
        const float *d = x + (int64_t)t->p10 * c, *e = x + (int64_t)t->p11 * c;
        for (int ch = 0; ch < c; ch++) {
            float v0 = t->wx0 * a[ch] + t->wx1 * b[ch];
            float v1 = t->wx0 * d[ch] + t->wx1 * e[ch];
            out[ch] = t->wy0 * v0 + t->wy1 * v1;
        }
    }
}

/* One output row of one image; 1 and 3 channels (grayscale, RGB) get
 * loops of constant length. */
static void affine_row(const nn_affine_geom *g, const float *m,
                       const float *x, int oy, float *out)
{
    const int c = g->c;
    for (int ox = 0; ox < g->w; ox++, out += c) {
        taps t;
        sample_taps(g, m, ox, oy, &t);
        if (c == 3)
            blend(g, &t, x, out, 3);
        else if (c == 1)
            blend(g, &t, x, out, 1);
        else
            blend(g, &t, x, out, c);
    }
}

void nn__affine_forward(const nn_affine_geom *g, const float *mats,
                        const float *x, float *y)
{
    const int64_t rows = (int64_t)g->n * g->h, isz = image_size(g);
    const int64_t row_len = (int64_t)g->w * g->c;
#pragma omp parallel for num_threads(nn__threads()) \
    if (rows * row_len >= AUG_PAR_MIN) schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        int64_t b = r / g->h;
        int oy = (int)(r % g->h);
        affine_row(g, mats + b * NN_AFFINE_COEFS, x + b * isz, oy,
                   y + r * row_len);
    }
}

/* The adjoint of affine_row for one image: scatters into dx. */
static void affine_image_backward(const nn_affine_geom *g, const float *m,
                                  const float *dy, float *dx)
{
    const int c = g->c;
    for (int oy = 0; oy < g->h; oy++)
        for (int ox = 0; ox < g->w; ox++, dy += c) {
            taps t;
            sample_taps(g, m, ox, oy, &t);
            if (t.kind == TAP_ONE) {
                float *a = dx + (int64_t)t.p00 * c;
                for (int ch = 0; ch < c; ch++) a[ch] += dy[ch];
            } else if (t.kind == TAP_FOUR) {
                float *a = dx + (int64_t)t.p00 * c;
                float *b = dx + (int64_t)t.p01 * c;
                float *d = dx + (int64_t)t.p10 * c;
                float *e = dx + (int64_t)t.p11 * c;
                for (int ch = 0; ch < c; ch++) {
                    float d0 = t.wy0 * dy[ch], d1 = t.wy1 * dy[ch];
                    a[ch] += t.wx0 * d0;
                    b[ch] += t.wx1 * d0;
                    d[ch] += t.wx0 * d1;
                    e[ch] += t.wx1 * d1;
                }
            }
        }
}

void nn__affine_backward(const nn_affine_geom *g, const float *mats,
                         const float *dy, float *dx, bool accum)
{
    const int64_t isz = image_size(g);
    /* Scatters of one image may hit any of its pixels: one image per
     * iteration, so no two threads write the same value. */
#pragma omp parallel for num_threads(nn__threads()) \
    if ((int64_t)g->n * isz >= AUG_PAR_MIN) schedule(static)
    for (int b = 0; b < g->n; b++) {
        float *d = dx + (int64_t)b * isz;
        if (!accum) memset(d, 0, (size_t)isz * sizeof(float));
        affine_image_backward(g, mats + (int64_t)b * NN_AFFINE_COEFS,
                              dy + (int64_t)b * isz, d);
    }
}

void nn__flip_images(int n, int h, int w, int c, const int32_t *flags,
                     const float *x, float *y, bool accum)
{
    const int64_t rows = (int64_t)n * h, row_len = (int64_t)w * c;
#pragma omp parallel for num_threads(nn__threads()) \
    if (rows * row_len >= AUG_PAR_MIN) schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        const int64_t b = r / h;
        const int i = (int)(r % h);
        const int32_t f = flags[b];
        const int src_row = (f & NN_FLIP_VERTICAL) ? h - 1 - i : i;
        const float *src = x + (b * h + src_row) * row_len;
        float *dst = y + r * row_len;
        if (!(f & NN_FLIP_HORIZONTAL)) {
            if (!accum) {
                memcpy(dst, src, (size_t)row_len * sizeof(float));
            } else {
                for (int64_t k = 0; k < row_len; k++) dst[k] += src[k];
            }
            continue;
        }
        for (int j = 0; j < w; j++) {
            const float *s = src + (int64_t)(w - 1 - j) * c;
            float *o = dst + (int64_t)j * c;
            for (int ch = 0; ch < c; ch++)
                o[ch] = accum ? o[ch] + s[ch] : s[ch];
        }
    }
}

/* Channels whose sums one pass accumulates. */
#define CONTRAST_CHUNK 64

/* Per-channel means of one image over `pixels` positions, for channels
 * [c0, c0 + cn). Summed in double: images can be large. */
static void channel_means(const float *x, int64_t pixels, int c, int c0,
                          int cn, float *mean)
{
    double acc[CONTRAST_CHUNK] = {0};
    for (int64_t p = 0; p < pixels; p++) {
        const float *v = x + p * c + c0;
        for (int k = 0; k < cn; k++) acc[k] += v[k];
    }
    for (int k = 0; k < cn; k++) mean[k] = (float)(acc[k] / (double)pixels);
}

void nn__contrast_forward(int n, int64_t pixels, int c, const float *factors,
                          const float *x, float *y)
{
    const int64_t isz = pixels * c;
#pragma omp parallel for num_threads(nn__threads()) \
    if ((int64_t)n * isz >= AUG_PAR_MIN) schedule(static)
    for (int b = 0; b < n; b++) {
        const float *xi = x + (int64_t)b * isz;
        float *yi = y + (int64_t)b * isz;
        const float f = factors[b];
        for (int c0 = 0; c0 < c; c0 += CONTRAST_CHUNK) {
            const int cn = c - c0 < CONTRAST_CHUNK ? c - c0 : CONTRAST_CHUNK;
            float mean[CONTRAST_CHUNK];
            channel_means(xi, pixels, c, c0, cn, mean);
            for (int64_t p = 0; p < pixels; p++)
                for (int k = 0; k < cn; k++) {
                    const int64_t at = p * c + c0 + k;
                    yi[at] = (xi[at] - mean[k]) * f + mean[k];
                }
        }
    }
}

void nn__contrast_backward(int n, int64_t pixels, int c, const float *factors,
                           const float *dy, float *dx, bool accum)
{
    const int64_t isz = pixels * c;
#pragma omp parallel for num_threads(nn__threads()) \
    if ((int64_t)n * isz >= AUG_PAR_MIN) schedule(static)
    for (int b = 0; b < n; b++) {
        const float *gi = dy + (int64_t)b * isz;
        float *di = dx + (int64_t)b * isz;
        const float f = factors[b];
        for (int c0 = 0; c0 < c; c0 += CONTRAST_CHUNK) {
            const int cn = c - c0 < CONTRAST_CHUNK ? c - c0 : CONTRAST_CHUNK;
            float mean[CONTRAST_CHUNK];
            channel_means(gi, pixels, c, c0, cn, mean);
            for (int64_t p = 0; p < pixels; p++)
                for (int k = 0; k < cn; k++) {
                    const int64_t at = p * c + c0 + k;
                    const float v = f * gi[at] + (1.0f - f) * mean[k];
                    di[at] = accum ? di[at] + v : v;
                }
        }
    }
}

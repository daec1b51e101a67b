/* Max and average pooling, NHWC. Windows are clipped to the input, so
 * padded cells never win a max and never count in an average (Keras/TF).
 * With Keras/TF padding every window holds at least one input cell. */
#include "kernels/kernels.h"

#include <string.h>

/* Below this many values per call the loops stay on one thread. */
#define POOL_PAR_MIN 16384

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

/* One output row (oy) of one image. Ties keep the first cell, as TF does. */
static void maxpool_row(const nn_conv_geom *g, const float *x, int oy,
                        float *out, int32_t *arg)
{
    const int c = g->c;
    for (int ox = 0; ox < g->ow; ox++, out += c, arg += c) {
        window v = clip_window(g, oy, ox);
        int32_t first = (v.y0 * g->w + v.x0) * c;
        for (int ch = 0; ch < c; ch++) {
            out[ch] = x[first + ch];
            arg[ch] = first + ch;
        }
        for (int iy = v.y0; iy < v.y1; iy++)
            for (int ix = v.x0; ix < v.x1; ix++) {
                int32_t at = (iy * g->w + ix) * c;
                const float *p = x + at;
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
    }
}

void nn__maxpool_forward(const nn_conv_geom *g, const float *x, float *out,
                         int32_t *argmax)
{
    int64_t rows = (int64_t)g->n * g->oh;
    int64_t row_len = (int64_t)g->ow * g->c;
#pragma omp parallel for num_threads(nn__threads()) if (parallel_worth(g))  \
    schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        int64_t i = r / g->oh;
        maxpool_row(g, x + i * in_size(g), (int)(r % g->oh),
                    out + r * row_len, argmax + r * row_len);
    }
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

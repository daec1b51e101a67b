/* Image resizing with half-pixel centers, NHWC. */
#include "kernels/graph_kernels.h"

#include <math.h>
#include <string.h>

#define RESIZE_PAR_MIN 32768

/* Output sample o of an axis reads in[i0] * (1 - t) + in[i1] * t. */
typedef struct tap {
    int i0, i1;
    float t;
} tap;

/* The scale and source coordinate in float, as TensorFlow computes them. */
static tap axis_tap(int o, int in, int out, nn_interpolation interp)
{
    float scale = (float)in / (float)out;
    if (interp == NN_INTERP_NEAREST) {
        int i = (int)floorf(((float)o + 0.5f) * scale);
        if (i > in - 1) i = in - 1;
        if (i < 0) i = 0;
        return (tap){i, i, 0.0f};
    }
    float src = ((float)o + 0.5f) * scale - 0.5f;
    if (src < 0.0f) src = 0.0f; /* the first half pixel reads in[0] */
    int i0 = (int)src;
    if (i0 > in - 1) i0 = in - 1;
    int i1 = i0 + 1 < in ? i0 + 1 : in - 1;
    return (tap){i0, i1, src - (float)i0};
}

void nn__resize_forward(const nn_resize_geom *g, const float *x, float *y)
{
    const int64_t c = g->c, rows = (int64_t)g->n * g->oh;
    const int64_t n = rows * g->ow * c;
#pragma omp parallel for num_threads(nn__threads()) if (n >= RESIZE_PAR_MIN) \
    schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        int64_t img = r / g->oh;
        tap ty = axis_tap((int)(r % g->oh), g->h, g->oh, g->interp);
        const float *top = x + ((img * g->h + ty.i0) * g->w) * c;
        const float *bot = x + ((img * g->h + ty.i1) * g->w) * c;
        float *out = y + r * g->ow * c;
        for (int ox = 0; ox < g->ow; ox++, out += c) {
            tap tx = axis_tap(ox, g->w, g->ow, g->interp);
            const float *a = top + tx.i0 * c, *b = top + tx.i1 * c;
            const float *d = bot + tx.i0 * c, *e = bot + tx.i1 * c;
            for (int64_t j = 0; j < c; j++) {
                float t = a[j] + (b[j] - a[j]) * tx.t;
                float u = d[j] + (e[j] - d[j]) * tx.t;
                out[j] = t + (u - t) * ty.t;
            }
        }
    }
}

/* Every output spreads its gradient over the (up to) four samples it read;
 * images are independent, so they are the unit of parallel work. */
void nn__resize_backward(const nn_resize_geom *g, const float *dy, float *dx,
                         bool accum)
{
    const int64_t c = g->c, in_img = (int64_t)g->h * g->w * c;
    const int64_t out_img = (int64_t)g->oh * g->ow * c;
    const int64_t n = (int64_t)g->n * out_img;
#pragma omp parallel for num_threads(nn__threads()) if (n >= RESIZE_PAR_MIN) \
    schedule(static)
    for (int img = 0; img < g->n; img++) {
        float *d = dx + img * in_img;
        if (!accum) memset(d, 0, (size_t)in_img * sizeof(float));
        const float *gy = dy + img * out_img;
        for (int oy = 0; oy < g->oh; oy++) {
            tap ty = axis_tap(oy, g->h, g->oh, g->interp);
            float *top = d + (int64_t)ty.i0 * g->w * c;
            float *bot = d + (int64_t)ty.i1 * g->w * c;
            for (int ox = 0; ox < g->ow; ox++, gy += c) {
                tap tx = axis_tap(ox, g->w, g->ow, g->interp);
                float w00 = (1.0f - ty.t) * (1.0f - tx.t);
                float w01 = (1.0f - ty.t) * tx.t;
                float w10 = ty.t * (1.0f - tx.t), w11 = ty.t * tx.t;
                float *a = top + tx.i0 * c, *b = top + tx.i1 * c;
                float *e = bot + tx.i0 * c, *f = bot + tx.i1 * c;
                for (int64_t j = 0; j < c; j++) {
                    a[j] += gy[j] * w00;
                    b[j] += gy[j] * w01;
                    e[j] += gy[j] * w10;
                    f[j] += gy[j] * w11;
                }
            }
        }
    }
}

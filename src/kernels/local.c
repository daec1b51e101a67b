/* Locally connected 2-D layer: a VALID convolution whose kernel differs at
 * every output position. Position p = oy * ow + ox owns the kernel
 * w[p] = [K, f], K = kh * kw * c in (ky, kx, c) order, as Keras stores it.
 *
 * The forward pass and the weight gradient work one position at a time:
 * the position's patches of the whole batch form an [n, K] matrix, so each
 * position is one GEMM. The input gradient works one image at a time
 * (positions overlap inside an image, images never do). Scratch is up to
 * LOCAL_SLOTS per-thread slots; its size does not depend on the thread
 * count. */
#include "kernels/graph_kernels.h"

#include <omp.h>
#include <string.h>

#define LOCAL_SLOTS 32

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

static int64_t positions(const nn_conv_geom *g)
{
    return (int64_t)g->oh * g->ow;
}

static int64_t patch(const nn_conv_geom *g)
{
    return (int64_t)g->kh * g->kw * g->c;
}

static int64_t in_size(const nn_conv_geom *g)
{
    return (int64_t)g->h * g->w * g->c;
}

static size_t round16(size_t n) { return (n + 15) & ~(size_t)15; }

static size_t slot_floats(const nn_conv_geom *g)
{
    return round16((size_t)((int64_t)g->n * patch(g)));
}

size_t nn__local_scratch(const nn_conv_geom *g)
{
    return (size_t)min64(positions(g), LOCAL_SLOTS) * slot_floats(g);
}

/* Row `dst` [K] = the window of image x at position p. */
static void gather(const nn_conv_geom *g, const float *x, int64_t p,
                   float *dst)
{
    int64_t oy = p / g->ow, ox = p % g->ow, row = (int64_t)g->kw * g->c;
    const float *src = x + ((oy * g->sh) * g->w + ox * g->sw) * g->c;
    for (int ky = 0; ky < g->kh; ky++)
        memcpy(dst + ky * row, src + (int64_t)ky * g->w * g->c,
               (size_t)row * sizeof(float));
}

static void scatter_add(const nn_conv_geom *g, const float *src, int64_t p,
                        float *dx)
{
    int64_t oy = p / g->ow, ox = p % g->ow, row = (int64_t)g->kw * g->c;
    float *dst = dx + ((oy * g->sh) * g->w + ox * g->sw) * g->c;
    for (int ky = 0; ky < g->kh; ky++) {
        float *d = dst + (int64_t)ky * g->w * g->c;
        const float *s = src + ky * row;
        for (int64_t i = 0; i < row; i++) d[i] += s[i];
    }
}

/* Patches of position p for every image: [n, K]. */
static void gather_batch(const nn_conv_geom *g, const float *x, int64_t p,
                         float *col)
{
    for (int i = 0; i < g->n; i++)
        gather(g, x + i * in_size(g), p, col + i * patch(g));
}

void nn__local_forward(const nn_conv_geom *g, const float *x, const float *w,
                       const float *bias, float *out, float *scratch)
{
    const int64_t np = positions(g), k = patch(g), f = g->f;
    const size_t slot = slot_floats(g);
    int t = (int)min64(min64(np, LOCAL_SLOTS), nn__threads());
#pragma omp parallel num_threads(t) if (t > 1)
    {
        float *col = scratch + (size_t)omp_get_thread_num() * slot;
#pragma omp for schedule(static)
        for (int64_t p = 0; p < np; p++) {
            gather_batch(g, x, p, col);
            float *y = out + p * f; /* rows of the batch, np * f apart */
            nn__gemm1(false, false, g->n, f, k, col, k, w + p * k * f, f,
                      0.0f, y, np * f);
            if (!bias) continue;
            for (int i = 0; i < g->n; i++)
                for (int64_t j = 0; j < f; j++)
                    y[i * np * f + j] += bias[p * f + j];
        }
    }
}

static void weight_grads(const nn_conv_geom *g, const float *x,
                         const float *dout, float *dw, float *db,
                         float *scratch)
{
    const int64_t np = positions(g), k = patch(g), f = g->f;
    const size_t slot = slot_floats(g);
    int t = (int)min64(min64(np, LOCAL_SLOTS), nn__threads());
#pragma omp parallel num_threads(t) if (t > 1)
    {
        float *col = scratch + (size_t)omp_get_thread_num() * slot;
#pragma omp for schedule(static)
        for (int64_t p = 0; p < np; p++) {
            const float *dy = dout + p * f;
            if (dw) {
                gather_batch(g, x, p, col);
                nn__gemm1(true, false, k, f, g->n, col, k, dy, np * f, 0.0f,
                          dw + p * k * f, f);
            }
            if (!db) continue;
            for (int64_t j = 0; j < f; j++) {
                double s = 0.0;
                for (int i = 0; i < g->n; i++) s += dy[i * np * f + j];
                db[p * f + j] = (float)s;
            }
        }
    }
}

static void input_grads(const nn_conv_geom *g, const float *w,
                        const float *dout, float *dx, bool accum,
                        float *scratch)
{
    const int64_t np = positions(g), k = patch(g), f = g->f;
    /* One [K] row per slot; the slots here are at most as many as the
     * forward's, each at least K long. */
    const size_t slot = slot_floats(g);
    int t = (int)min64(min64(g->n, min64(np, LOCAL_SLOTS)), nn__threads());
#pragma omp parallel num_threads(t) if (t > 1)
    {
        float *row = scratch + (size_t)omp_get_thread_num() * slot;
#pragma omp for schedule(static)
        for (int i = 0; i < g->n; i++) {
            float *d = dx + i * in_size(g);
            if (!accum) memset(d, 0, (size_t)in_size(g) * sizeof(float));
            for (int64_t p = 0; p < np; p++) {
                const float *dy = dout + (i * np + p) * f;
                nn__gemm1(false, true, 1, k, f, dy, f, w + p * k * f, f, 0.0f,
                          row, k);
                scatter_add(g, row, p, d);
            }
        }
    }
}

void nn__local_backward(const nn_conv_geom *g, const float *x, const float *w,
                        const float *dout, float *dx, bool accum, float *dw,
                        float *db, float *scratch)
{
    if (dw || db) weight_grads(g, x, dout, dw, db, scratch);
    if (dx) input_grads(g, w, dout, dx, accum, scratch);
}

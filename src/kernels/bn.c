/* Per-channel kernels of batch normalization on [rows, c] buffers. */
#include "kernels/graph_kernels.h"

#include <string.h>

/* Row bands of the reductions: fixed, so the sums do not depend on the
 * thread count. */
#define BN_BANDS 16
/* Below this many values a thread team costs more than it saves. */
#define BN_PAR_MIN 32768

typedef enum band_op { SUM_X, SUM_SQDEV, SUM_GRAD } band_op;

size_t nn__bn_scratch_floats(int64_t c)
{
    /* Two double accumulators per channel and band. */
    return (size_t)BN_BANDS * 2 * (size_t)c * (sizeof(double) / sizeof(float));
}

/* The means: doubles for the variance pass (d), the layer's floats for
 * the gradient pass (f). */
typedef struct means {
    const double *d;
    const float *f;
} means;

static void band_pass(band_op op, const float *x, const float *dy, means mu,
                      int64_t r0, int64_t r1, int64_t c, double *s1,
                      double *s2)
{
    memset(s1, 0, (size_t)c * sizeof(double));
    memset(s2, 0, (size_t)c * sizeof(double));
    for (int64_t r = r0; r < r1; r++) {
        const float *xr = x + r * c;
        if (op == SUM_X) {
            for (int64_t j = 0; j < c; j++) s1[j] += xr[j];
        } else if (op == SUM_SQDEV) {
            for (int64_t j = 0; j < c; j++) {
                double d = xr[j] - mu.d[j];
                s1[j] += d * d;
            }
        } else {
            const float *g = dy + r * c;
            for (int64_t j = 0; j < c; j++) {
                s1[j] += g[j];
                s2[j] += (double)g[j] * (xr[j] - mu.f[j]);
            }
        }
    }
}

/* out1/out2 = the band partials summed in band order. */
static void reduce(band_op op, const float *x, const float *dy, means mu,
                   int64_t rows, int64_t c, double *out1, double *out2,
                   float *scratch)
{
    int nb = rows < BN_BANDS ? (int)rows : BN_BANDS;
    double *part = (double *)(void *)scratch;
    int64_t n = rows * c;
#pragma omp parallel for num_threads(nn__threads()) if (n >= BN_PAR_MIN) \
    schedule(static)
    for (int b = 0; b < nb; b++) {
        double *s1 = part + (size_t)b * 2 * (size_t)c;
        band_pass(op, x, dy, mu, rows * b / nb, rows * (b + 1) / nb, c, s1,
                  s1 + c);
    }
    for (int64_t j = 0; j < c; j++) {
        double a = 0.0, s = 0.0;
        for (int b = 0; b < nb; b++) {
            a += part[(size_t)b * 2 * (size_t)c + (size_t)j];
            s += part[(size_t)b * 2 * (size_t)c + (size_t)(c + j)];
        }
        out1[j] = a;
        if (out2) out2[j] = s;
    }
}

void nn__bn_moments(const float *x, int64_t rows, int64_t c, double *mean,
                    double *var, float *scratch)
{
    means none = {NULL, NULL};
    reduce(SUM_X, x, NULL, none, rows, c, mean, NULL, scratch);
    for (int64_t j = 0; j < c; j++) mean[j] /= (double)rows;
    /* A second pass around the mean: exact where E[x^2] - E[x]^2 would
     * cancel. */
    means mu = {mean, NULL};
    reduce(SUM_SQDEV, x, NULL, mu, rows, c, var, NULL, scratch);
    for (int64_t j = 0; j < c; j++) var[j] /= (double)rows;
}

void nn__bn_grad_sums(const float *x, const float *dy, const float *mean,
                      int64_t rows, int64_t c, double *sum_dy,
                      double *sum_dyx, float *scratch)
{
    means mu = {NULL, mean};
    reduce(SUM_GRAD, x, dy, mu, rows, c, sum_dy, sum_dyx, scratch);
}

void nn__bn_affine(const float *x, float *y, int64_t rows, int64_t c,
                   const float *mean, const float *a, const float *b)
{
    int64_t n = rows * c;
#pragma omp parallel for num_threads(nn__threads()) if (n >= BN_PAR_MIN) \
    schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * c;
        float *yr = y + r * c;
        for (int64_t j = 0; j < c; j++) yr[j] = (xr[j] - mean[j]) * a[j] + b[j];
    }
}

void nn__bn_dx(const float *dy, const float *x, float *dx, int64_t rows,
               int64_t c, const float *mean, const float *p, const float *q,
               const float *s, bool accum)
{
    int64_t n = rows * c;
#pragma omp parallel for num_threads(nn__threads()) if (n >= BN_PAR_MIN) \
    schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        const float *g = dy + r * c, *xr = x + r * c;
        float *d = dx + r * c;
        for (int64_t j = 0; j < c; j++) {
            float v = p[j] * g[j] + q[j] * (xr[j] - mean[j]) + s[j];
            d[j] = accum ? d[j] + v : v;
        }
    }
}

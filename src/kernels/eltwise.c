/* Element-wise maps, softmax, column sums and the fused activations. */
#include "kernels/kernels.h"

#include <math.h>
#include <omp.h>
#include <string.h>

/* Below this many values a thread team costs more than it saves. */
#define PAR_MIN 32768

/* Every loop using it has its element count in a variable named n. */
/* simd: every loop using it is element-wise (at most exact aliasing). */
#define PAR_FOR                                                                \
    _Pragma("omp parallel for simd num_threads(nn__threads()) if (parallel: n >= PAR_MIN) schedule(static)")
/* The same for loops over rows. */
#define PAR_ROWS                                                               \
    _Pragma("omp parallel for num_threads(nn__threads()) if (parallel: n >= PAR_MIN) schedule(static)")

void nn__relu(const float *x, float *y, int64_t n)
{
    /* x < 0 rather than x > 0 so that NaN propagates. */
    PAR_FOR
    for (int64_t i = 0; i < n; i++) y[i] = x[i] < 0.0f ? 0.0f : x[i];
}

void nn__relu_backward(const float *y, const float *dy, float *dx, int64_t n,
                       bool accum)
{
    if (accum) {
        PAR_FOR
        for (int64_t i = 0; i < n; i++) {
            float d = dy[i]; /* loaded unconditionally: no branch */
            dx[i] += y[i] > 0.0f ? d : 0.0f;
        }
    } else {
        PAR_FOR
        for (int64_t i = 0; i < n; i++) {
            float d = dy[i];
            dx[i] = y[i] > 0.0f ? d : 0.0f;
        }
    }
}

/* min(max(x, 0), 6); comparisons that let NaN through, as nn__relu. */
void nn__relu6(const float *x, float *y, int64_t n)
{
    PAR_FOR
    for (int64_t i = 0; i < n; i++) {
        float v = x[i] < 0.0f ? 0.0f : x[i];
        y[i] = v > 6.0f ? 6.0f : v;
    }
}

/* The gradient passes where the output lies strictly between the clamps,
 * i.e. where 0 < x < 6 (TensorFlow's Relu6Grad, PyTorch's hardtanh). */
void nn__relu6_backward(const float *y, const float *dy, float *dx, int64_t n,
                        bool accum)
{
    if (accum) {
        PAR_FOR
        for (int64_t i = 0; i < n; i++) {
            float d = dy[i];
            dx[i] += y[i] > 0.0f && y[i] < 6.0f ? d : 0.0f;
        }
    } else {
        PAR_FOR
        for (int64_t i = 0; i < n; i++) {
            float d = dy[i];
            dx[i] = y[i] > 0.0f && y[i] < 6.0f ? d : 0.0f;
        }
    }
}

static float sigmoid1(float x)
{
    /* exp of a non-positive number only: no overflow either way. */
    if (x >= 0.0f) return 1.0f / (1.0f + expf(-x));
    float e = expf(x);
    return e / (1.0f + e);
}

void nn__sigmoid(const float *x, float *y, int64_t n)
{
    PAR_FOR
    for (int64_t i = 0; i < n; i++) y[i] = sigmoid1(x[i]);
}

void nn__sigmoid_backward(const float *y, const float *dy, float *dx,
                          int64_t n, bool accum)
{
    if (accum) {
        PAR_FOR
        for (int64_t i = 0; i < n; i++) dx[i] += dy[i] * y[i] * (1.0f - y[i]);
    } else {
        PAR_FOR
        for (int64_t i = 0; i < n; i++) dx[i] = dy[i] * y[i] * (1.0f - y[i]);
    }
}

void nn__tanh(const float *x, float *y, int64_t n)
{
    PAR_FOR
    for (int64_t i = 0; i < n; i++) y[i] = tanhf(x[i]);
}

void nn__tanh_backward(const float *y, const float *dy, float *dx, int64_t n,
                       bool accum)
{
    if (accum) {
        PAR_FOR
        for (int64_t i = 0; i < n; i++) dx[i] += dy[i] * (1.0f - y[i] * y[i]);
    } else {
        PAR_FOR
        for (int64_t i = 0; i < n; i++) dx[i] = dy[i] * (1.0f - y[i] * y[i]);
    }
}

/* x > 0 rather than x < 0 so that NaN goes through the product and
 * stays NaN. */
void nn__leaky_relu(const float *x, float *y, int64_t n, float alpha)
{
    PAR_FOR
    for (int64_t i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : alpha * x[i];
}

/* At x = 0 the slope is alpha, as PyTorch's and TensorFlow's. */
void nn__leaky_relu_backward(const float *y, const float *dy, float *dx,
                             int64_t n, float alpha, bool accum)
{
    if (accum) {
        PAR_FOR
        for (int64_t i = 0; i < n; i++) {
            float d = dy[i];
            dx[i] += y[i] > 0.0f ? d : alpha * d;
        }
    } else {
        PAR_FOR
        for (int64_t i = 0; i < n; i++) {
            float d = dy[i];
            dx[i] = y[i] > 0.0f ? d : alpha * d;
        }
    }
}

/* expm1f keeps the small negative values exact (PyTorch and TensorFlow
 * use expm1 too). */
void nn__elu(const float *x, float *y, int64_t n, float alpha)
{
    PAR_FOR
    for (int64_t i = 0; i < n; i++)
        y[i] = x[i] > 0.0f ? x[i] : alpha * expm1f(x[i]);
}

void nn__elu_backward(const float *pos, const float *y, const float *dy,
                      float *dx, int64_t n, float alpha, bool accum)
{
    if (accum) {
        PAR_FOR
        for (int64_t i = 0; i < n; i++) {
            float d = dy[i];
            dx[i] += pos[i] > 0.0f ? d : d * (y[i] + alpha);
        }
    } else {
        PAR_FOR
        for (int64_t i = 0; i < n; i++) {
            float d = dy[i];
            dx[i] = pos[i] > 0.0f ? d : d * (y[i] + alpha);
        }
    }
}

/* ---- PReLU: rows of the last axis, each with its alpha offset ---- */

static int64_t prelu_rows_per_sample(const nn_bcast *g)
{
    int64_t r = 1;
    for (int k = 0; k < g->rank - 1; k++) r *= g->d[k];
    return r;
}

/* Offset in alpha of row r (< rows per sample) of a sample. */
static int64_t prelu_row_alpha(const nn_bcast *g, int64_t r)
{
    int64_t off = 0;
    for (int k = g->rank - 2; k >= 0; k--) {
        off += r % g->d[k] * g->as[k];
        r /= g->d[k];
    }
    return off;
}

static void prelu_row(const float *x, float *y, int64_t cols, const float *a,
                      bool per_col)
{
    if (per_col) {
        for (int64_t j = 0; j < cols; j++)
            y[j] = x[j] > 0.0f ? x[j] : a[j] * x[j];
    } else {
        float s = a[0];
        for (int64_t j = 0; j < cols; j++)
            y[j] = x[j] > 0.0f ? x[j] : s * x[j];
    }
}

void nn__prelu(const nn_bcast *g, int64_t batch, const float *alpha,
               const float *x, float *y)
{
    int64_t per = prelu_rows_per_sample(g), cols = g->d[g->rank - 1];
    bool per_col = g->as[g->rank - 1] != 0;
    int64_t rows = batch * per, n = rows * cols;
    PAR_ROWS
    for (int64_t r = 0; r < rows; r++)
        prelu_row(x + r * cols, y + r * cols, cols,
                  alpha + prelu_row_alpha(g, r % per), per_col);
}

static void prelu_dx_row(const float *x, const float *dy, float *dx,
                         int64_t cols, const float *a, bool per_col,
                         bool accum)
{
    float s = a[0];
    int64_t st = per_col ? 1 : 0;
    if (accum)
        for (int64_t j = 0; j < cols; j++)
            dx[j] += x[j] > 0.0f ? dy[j] : a[j * st] * dy[j];
    else if (per_col)
        for (int64_t j = 0; j < cols; j++)
            dx[j] = x[j] > 0.0f ? dy[j] : a[j] * dy[j];
    else
        for (int64_t j = 0; j < cols; j++)
            dx[j] = x[j] > 0.0f ? dy[j] : s * dy[j];
}

static void prelu_dalpha_row(const float *x, const float *dy, int64_t cols,
                             double *acc, bool per_col)
{
    if (per_col) {
        for (int64_t j = 0; j < cols; j++)
            acc[j] += x[j] > 0.0f ? 0.0 : (double)x[j] * dy[j];
        return;
    }
    double s = 0.0;
    for (int64_t j = 0; j < cols; j++)
        s += x[j] > 0.0f ? 0.0 : (double)x[j] * dy[j];
    acc[0] += s;
}

static int64_t bcast_alpha_size(const nn_bcast *g)
{
    int64_t n = 1;
    for (int k = 0; k < g->rank; k++)
        if (g->as[k]) n *= g->d[k];
    return n;
}

/* Alpha's gradient before dx, which may overwrite dy. One thread: the sum
 * over rows keeps its order whatever the thread count. */
void nn__prelu_backward(const nn_bcast *g, int64_t batch, const float *alpha,
                        const float *x, const float *dy, float *dx,
                        bool accum, float *dalpha, double *acc)
{
    int64_t per = prelu_rows_per_sample(g), cols = g->d[g->rank - 1];
    bool per_col = g->as[g->rank - 1] != 0;
    int64_t rows = batch * per, n = rows * cols;
    if (dalpha) {
        int64_t na = bcast_alpha_size(g);
        for (int64_t i = 0; i < na; i++) acc[i] = 0.0;
        for (int64_t r = 0; r < rows; r++)
            prelu_dalpha_row(x + r * cols, dy + r * cols, cols,
                             acc + prelu_row_alpha(g, r % per), per_col);
        for (int64_t i = 0; i < na; i++) dalpha[i] = (float)acc[i];
    }
    if (!dx) return;
    PAR_ROWS
    for (int64_t r = 0; r < rows; r++)
        prelu_dx_row(x + r * cols, dy + r * cols, dx + r * cols, cols,
                     alpha + prelu_row_alpha(g, r % per), per_col, accum);
}

static void softmax_row(const float *x, float *y, int64_t cols)
{
    float mx = x[0];
    for (int64_t j = 1; j < cols; j++)
        if (x[j] > mx) mx = x[j];
    double sum = 0.0;
    for (int64_t j = 0; j < cols; j++) {
        float e = expf(x[j] - mx);
        y[j] = e;
        sum += e;
    }
    float inv = (float)(1.0 / sum);
    for (int64_t j = 0; j < cols; j++) y[j] *= inv;
}

void nn__softmax(const float *x, float *y, int64_t rows, int64_t cols)
{
    if (cols <= 0) return;
    int64_t n = rows * cols;
    PAR_ROWS
    for (int64_t r = 0; r < rows; r++)
        softmax_row(x + r * cols, y + r * cols, cols);
}

/* dx = y * (dy - <dy, y>): the softmax Jacobian applied to dy. */
static void softmax_back_row(const float *y, const float *dy, float *dx,
                             int64_t cols, bool accum)
{
    double dot = 0.0;
    for (int64_t j = 0; j < cols; j++) dot += (double)dy[j] * y[j];
    float d = (float)dot;
    if (accum)
        for (int64_t j = 0; j < cols; j++) dx[j] += y[j] * (dy[j] - d);
    else
        for (int64_t j = 0; j < cols; j++) dx[j] = y[j] * (dy[j] - d);
}

void nn__softmax_backward(const float *y, const float *dy, float *dx,
                          int64_t rows, int64_t cols, bool accum)
{
    int64_t n = rows * cols;
    PAR_ROWS
    for (int64_t r = 0; r < rows; r++)
        softmax_back_row(y + r * cols, dy + r * cols, dx + r * cols, cols,
                         accum);
}

void nn__bias_add(float *y, const float *b, int64_t rows, int64_t cols)
{
    int64_t n = rows * cols;
    PAR_ROWS
    for (int64_t r = 0; r < rows; r++) {
        float *row = y + r * cols;
        for (int64_t j = 0; j < cols; j++) row[j] += b[j];
    }
}

void nn__copy_or_add(const float *x, float *y, int64_t n, bool accum)
{
    if (!accum) {
        if (x != y) memcpy(y, x, (size_t)n * sizeof(float));
        return;
    }
    PAR_FOR
    for (int64_t i = 0; i < n; i++) y[i] += x[i];
}

/* Sums rows [r0, r1) into acc[cols] (doubles), a block of columns at a time
 * so the accumulators stay in registers and L1. */
static void colsum_rows(const float *x, int64_t r0, int64_t r1, int64_t cols,
                        double *acc)
{
    enum { BLK = 256 };
    for (int64_t c0 = 0; c0 < cols; c0 += BLK) {
        int64_t cb = cols - c0 < BLK ? cols - c0 : BLK;
        double *a = acc + c0;
        for (int64_t j = 0; j < cb; j++) a[j] = 0.0;
        for (int64_t r = r0; r < r1; r++) {
            const float *row = x + r * cols + c0;
            for (int64_t j = 0; j < cb; j++) a[j] += row[j];
        }
    }
}

static void colsum_serial(const float *x, int64_t rows, int64_t cols,
                          float *out)
{
    enum { BLK = 256 };
    double acc[BLK];
    for (int64_t c0 = 0; c0 < cols; c0 += BLK) {
        int64_t cb = cols - c0 < BLK ? cols - c0 : BLK;
        for (int64_t j = 0; j < cb; j++) acc[j] = 0.0;
        for (int64_t r = 0; r < rows; r++) {
            const float *row = x + r * cols + c0;
            for (int64_t j = 0; j < cb; j++) acc[j] += row[j];
        }
        for (int64_t j = 0; j < cb; j++) out[c0 + j] = (float)acc[j];
    }
}

/* out[j] = the sum of the np partials' column j, in partial order. */
static void sum_partials(const double *part, int np, int64_t cols,
                         float *out)
{
    for (int64_t j = 0; j < cols; j++) {
        double s = 0.0;
        for (int t = 0; t < np; t++) s += part[(size_t)t * cols + j];
        out[j] = (float)s;
    }
}

/* Tall inputs: each thread sums a band of rows into its own partial; the
 * partials are added in band order, so the result depends only on the
 * thread count. Falls back to one thread if the partials cannot be had. */
void nn__colsum(const float *x, int64_t rows, int64_t cols, float *out)
{
    if (cols <= 0) return;
    int p = nn__threads();
    if (rows < p) p = (int)rows;
    if (p <= 1 || rows * cols < 4 * PAR_MIN || omp_in_parallel()) {
        colsum_serial(x, rows, cols, out);
        return;
    }
    double *part = nn__try_alloc((size_t)p * (size_t)cols * sizeof(double));
    if (!part) {
        colsum_serial(x, rows, cols, out);
        return;
    }
#pragma omp parallel for num_threads(p) schedule(static, 1)
    for (int t = 0; t < p; t++)
        colsum_rows(x, rows * t / p, rows * (t + 1) / p, cols,
                    part + (size_t)t * cols);
    sum_partials(part, p, cols, out);
    nn__free(part);
}

void nn__act_forward(nn_activation act, float *y, int64_t rows, int64_t cols)
{
    int64_t n = rows * cols;
    switch (act) {
    case NN_ACT_RELU: nn__relu(y, y, n); break;
    case NN_ACT_RELU6: nn__relu6(y, y, n); break;
    case NN_ACT_SIGMOID: nn__sigmoid(y, y, n); break;
    case NN_ACT_SOFTMAX: nn__softmax(y, y, rows, cols); break;
    case NN_ACT_TANH: nn__tanh(y, y, n); break;
    case NN_ACT_ELU: nn__elu(y, y, n, 1.0f); break;
    case NN_ACT_LEAKY_RELU: nn__leaky_relu(y, y, n, NN__LEAKY_RELU_SLOPE); break;
    case NN_ACT_NONE:
    default: break;
    }
}

void nn__act_backward(nn_activation act, const float *y, float *dy,
                      int64_t rows, int64_t cols)
{
    int64_t n = rows * cols;
    switch (act) {
    case NN_ACT_RELU: nn__relu_backward(y, dy, dy, n, false); break;
    case NN_ACT_RELU6: nn__relu6_backward(y, dy, dy, n, false); break;
    case NN_ACT_SIGMOID: nn__sigmoid_backward(y, dy, dy, n, false); break;
    case NN_ACT_SOFTMAX: nn__softmax_backward(y, dy, dy, rows, cols, false); break;
    case NN_ACT_TANH: nn__tanh_backward(y, dy, dy, n, false); break;
    /* alpha 1 > 0: y has the sign of x, so it selects the branch. */
    case NN_ACT_ELU: nn__elu_backward(y, y, dy, dy, n, 1.0f, false); break;
    case NN_ACT_LEAKY_RELU:
        nn__leaky_relu_backward(y, dy, dy, n, NN__LEAKY_RELU_SLOPE, false);
        break;
    case NN_ACT_NONE:
    default: break;
    }
}

/* Row bands of nn__colsum_bands: fixed, so the sums do not depend on the
 * thread count. */
#define COLSUM_BANDS 16

size_t nn__colsum_bands_scratch(int64_t cols)
{
    return (size_t)COLSUM_BANDS * (size_t)cols *
           (sizeof(double) / sizeof(float));
}

void nn__colsum_bands(const float *x, int64_t rows, int64_t cols, float *out,
                      float *scratch)
{
    if (cols <= 0) return;
    int nb = rows < COLSUM_BANDS ? (int)rows : COLSUM_BANDS;
    double *part = (double *)(void *)scratch;
    int64_t n = rows * cols;
#pragma omp parallel for num_threads(nn__threads()) if (n >= 4 * PAR_MIN) \
    schedule(static)
    for (int b = 0; b < nb; b++)
        colsum_rows(x, rows * b / nb, rows * (b + 1) / nb, cols,
                    part + (size_t)b * cols);
    sum_partials(part, nb, cols, out);
}

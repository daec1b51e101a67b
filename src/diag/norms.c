/* Norms, finite checks and gradient clipping over raw float buffers, plus
 * the optimizer's clipping setters. */
#include "nn_internal.h"
#include "diag/diag.h"

#include <math.h>

/* A sum is split into at most MAX_CHUNKS chunks of at least MIN_CHUNK
 * values; each chunk is summed in double and the partial sums are added in
 * chunk order, which fixes the rounding whatever the thread count. */
#define MIN_CHUNK 16384
#define MAX_CHUNKS 256

static int64_t chunk_len(int64_t n)
{
    int64_t c = (n + MAX_CHUNKS - 1) / MAX_CHUNKS;
    return c < MIN_CHUNK ? MIN_CHUNK : c;
}

static double sumsq_serial(const float *x, int64_t n)
{
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < n; i++) s += (double)x[i] * (double)x[i];
    return s;
}

static double sumsq_diff_serial(const float *a, const float *b, int64_t n)
{
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)b[i];
        s += d * d;
    }
    return s;
}

/* Runs f over the chunks of [0, n) in parallel and adds the results in
 * chunk order. b may be NULL for one-buffer sums. */
static double chunked(double (*one)(const float *, int64_t),
                      double (*two)(const float *, const float *, int64_t),
                      const float *a, const float *b, int64_t n)
{
    int64_t len = chunk_len(n);
    int chunks = (int)((n + len - 1) / len);
    if (chunks <= 1) return one ? one(a, n) : two(a, b, n);
    double part[MAX_CHUNKS];
    int nt = nn__threads();
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int k = 0; k < chunks; k++) {
        int64_t lo = (int64_t)k * len;
        int64_t cnt = n - lo < len ? n - lo : len;
        part[k] = one ? one(a + lo, cnt) : two(a + lo, b + lo, cnt);
    }
    double s = 0;
    for (int k = 0; k < chunks; k++) s += part[k];
    return s;
}

double nn__sumsq(const float *x, int64_t n)
{
    return n > 0 ? chunked(sumsq_serial, NULL, x, NULL, n) : 0.0;
}

double nn__sumsq_diff(const float *a, const float *b, int64_t n)
{
    return n > 0 ? chunked(NULL, sumsq_diff_serial, a, b, n) : 0.0;
}

/* x * 0 is 0 for every finite x and NaN for NaN and +-Inf, so one sum
 * answers the question without a branch per value. */
static double nonfinite_serial(const float *x, int64_t n)
{
    float s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < n; i++) s += x[i] * 0.0f;
    return (double)s;
}

bool nn__all_finite(const float *x, int64_t n)
{
    if (n <= 0) return true;
    return !isnan(chunked(nonfinite_serial, NULL, x, NULL, n));
}

/* ---------------- clipping ---------------- */

#define PAR_MIN 32768

/* NaN fails both comparisons and stays NaN, as torch.clamp keeps it. */
static void clip_value(float *g, int64_t n, float v)
{
    int nt = nn__threads();
#pragma omp parallel for simd if (parallel: n >= PAR_MIN) num_threads(nt) schedule(static)
    for (int64_t i = 0; i < n; i++) {
        float x = g[i];
        g[i] = x > v ? v : (x < -v ? -v : x);
    }
}

static void scale(float *g, int64_t n, float s)
{
    int nt = nn__threads();
#pragma omp parallel for simd if (parallel: n >= PAR_MIN) num_threads(nt) schedule(static)
    for (int64_t i = 0; i < n; i++) g[i] *= s;
}

/* The parameters the optimizer updates (its slot order, optim.h). */
static nn_param *next_trainable(const nn_model *m, int *li, int *pj)
{
    for (; *li < m->n_layers; (*li)++, *pj = 0) {
        nn_layer *l = m->layers[*li];
        if (!l->trainable) continue;
        while (*pj < l->n_params) {
            nn_param *p = &l->params[(*pj)++];
            if (p->trainable && p->grad.data) return p;
        }
    }
    return NULL;
}

/* Keras' tf.clip_by_global_norm: scale = clipnorm / max(norm, clipnorm).
 * (torch's clip_grad_norm_ divides by norm + 1e-6 instead: the two differ
 * by about 1e-6 / norm relative.) A non-finite norm is left alone: the
 * finite check is the tool for that case. */
nn_status nn__clip_gradients(const nn_optimizer *o, nn_model *m)
{
    nn_param *p;
    int li = 0, pj = 0;
    if (o->clipvalue > 0)
        while ((p = next_trainable(m, &li, &pj)) != NULL)
            clip_value(p->grad.data, p->grad.size, o->clipvalue);
    if (!(o->global_clipnorm > 0)) return NN_OK;
    double total = 0;
    li = pj = 0;
    while ((p = next_trainable(m, &li, &pj)) != NULL)
        total += nn__sumsq(p->grad.data, p->grad.size);
    double norm = sqrt(total);
    if (!isfinite(norm) || norm <= o->global_clipnorm) return NN_OK;
    float s = (float)((double)o->global_clipnorm / norm);
    li = pj = 0;
    while ((p = next_trainable(m, &li, &pj)) != NULL)
        scale(p->grad.data, p->grad.size, s);
    return NN_OK;
}

static nn_status check_clip(const nn_optimizer *o, float v, const char *what)
{
    NN_CHECK(o, NN_ERR_INVALID, "%s: optimizer is NULL", what);
    NN_CHECK(isfinite(v) && v >= 0, NN_ERR_INVALID,
             "%s: %g must be finite and >= 0 (0 turns clipping off)", what,
             (double)v);
    return NN_OK;
}

nn_status nn_optimizer_set_global_clipnorm(nn_optimizer *o, float clipnorm)
{
    NN_TRY(check_clip(o, clipnorm, "nn_optimizer_set_global_clipnorm"));
    o->global_clipnorm = clipnorm;
    return NN_OK;
}

nn_status nn_optimizer_set_clipvalue(nn_optimizer *o, float clipvalue)
{
    NN_TRY(check_clip(o, clipvalue, "nn_optimizer_set_clipvalue"));
    o->clipvalue = clipvalue;
    return NN_OK;
}

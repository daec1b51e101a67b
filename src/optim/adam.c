/* Adam's elementwise update (Kingma & Ba), in Keras' or PyTorch's form.
 *
 * Both forms keep m and v the same way; they differ only in where epsilon
 * enters:
 *   Keras:   lr_t = lr * sqrt(1 - b2^t) / (1 - b1^t)
 *            w -= lr_t * m / (sqrt(v) + eps)
 *   PyTorch: w -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
 * The bias corrections are computed in double so that b^t stays accurate
 * for long runs; the per-element work is float and vectorises. */
#include "nn_internal.h"
#include "optim/optim.h"

#include <math.h>

/* Below this many values a parallel region costs more than it saves. */
#define PAR_MIN 32768

/* m and v move toward g and g^2 by (1 - beta): the same lerp form both
 * frameworks use. A zero denominator (eps = 0 and v = 0) means m is zero
 * too, so the step is zero rather than 0/0. */
static void adam_keras(float lr_t, float a1, float a2, float eps,
                       float *restrict w, const float *restrict g,
                       float *restrict m, float *restrict v, int64_t n)
{
    int nt = nn__threads();
#pragma omp parallel for simd if (parallel: n >= PAR_MIN) num_threads(nt) schedule(static)
    for (int64_t i = 0; i < n; i++) {
        float mi = m[i] + a1 * (g[i] - m[i]);
        float vi = v[i] + a2 * (g[i] * g[i] - v[i]);
        float den = sqrtf(vi) + eps;
        m[i] = mi;
        v[i] = vi;
        w[i] -= den > 0 ? lr_t * mi / den : 0.0f;
    }
}

static void adam_torch(float step, float inv_sqrt_bc2, float a1, float a2,
                       float eps, float *restrict w, const float *restrict g,
                       float *restrict m, float *restrict v, int64_t n)
{
    int nt = nn__threads();
#pragma omp parallel for simd if (parallel: n >= PAR_MIN) num_threads(nt) schedule(static)
    for (int64_t i = 0; i < n; i++) {
        float mi = m[i] + a1 * (g[i] - m[i]);
        float vi = v[i] + a2 * (g[i] * g[i] - v[i]);
        float den = sqrtf(vi) * inv_sqrt_bc2 + eps;
        m[i] = mi;
        v[i] = vi;
        w[i] -= den > 0 ? step * mi / den : 0.0f;
    }
}

void nn__adam_update(const nn_adam_opts *o, int64_t t, float *w,
                     const float *g, float *m, float *v, int64_t n)
{
    double b1 = o->beta1, b2 = o->beta2, lr = o->learning_rate;
    double bc1 = 1 - pow(b1, (double)t), bc2 = 1 - pow(b2, (double)t);
    float a1 = (float)(1 - b1), a2 = (float)(1 - b2);
    if (o->eps_mode == NN_ADAM_EPS_TORCH)
        adam_torch((float)(lr / bc1), (float)(1 / sqrt(bc2)), a1, a2,
                   o->epsilon, w, g, m, v, n);
    else
        adam_keras((float)(lr * sqrt(bc2) / bc1), a1, a2, o->epsilon, w, g, m,
                   v, n);
}

/* Gradient clipping, an optimizer setting: Keras' clipvalue and
 * global_clipnorm, applied by the step before the update, over the
 * parameters the step updates (the parameter walk's slots). */
#include "nn_internal.h"
#include "kernels/kernels.h"
#include "optim/optim.h"

#include <math.h>

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

/* Keras' tf.clip_by_global_norm: scale = clipnorm / max(norm, clipnorm).
 * (torch's clip_grad_norm_ divides by norm + 1e-6 instead: the two differ
 * by about 1e-6 / norm relative.) A non-finite norm is left alone: the
 * finite check is the tool for that case. */
static void clip_global(const nn_optimizer *o, nn_model *m)
{
    nn_param_iter it;
    double total = 0;
    nn__param_iter_init(&it, m, NULL);
    while (nn__param_next_slot(&it))
        total += nn__sumsq(it.p->grad.data, it.p->grad.size);
    double norm = sqrt(total);
    if (!isfinite(norm) || norm <= o->global_clipnorm) return;
    float s = (float)((double)o->global_clipnorm / norm);
    nn__param_iter_init(&it, m, NULL);
    while (nn__param_next_slot(&it))
        scale(it.p->grad.data, it.p->grad.size, s);
}

void nn__clip_gradients(const nn_optimizer *o, nn_model *m)
{
    if (o->clipvalue > 0) {
        nn_param_iter it;
        nn__param_iter_init(&it, m, NULL);
        while (nn__param_next_slot(&it))
            clip_value(it.p->grad.data, it.p->grad.size, o->clipvalue);
    }
    if (o->global_clipnorm > 0) clip_global(o, m);
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

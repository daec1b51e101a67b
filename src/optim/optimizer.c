/* Optimizer objects: options, slots, and the step over a model's
 * parameters. The update rules live in adam.c and sgd.c, clipping in
 * clip.c; slot k belongs to the k-th parameter of the parameter walk
 * (nn__param_next_slot), which checkpoints use too. */
#include "nn_internal.h"
#include "optim/optim.h"

#include <math.h>
#include <string.h>

/* ---------------- options ---------------- */

static bool rate_ok(float lr) { return isfinite(lr) && lr > 0; }

/* [0, 1); NaN fails both comparisons. */
static bool unit_ok(float b) { return b >= 0 && b < 1; }

static nn_status check_adam(const nn_adam_opts *a)
{
    NN_CHECK(rate_ok(a->learning_rate), NN_ERR_INVALID,
             "nn_adam: learning_rate %g must be positive and finite",
             (double)a->learning_rate);
    NN_CHECK(unit_ok(a->beta1) && unit_ok(a->beta2), NN_ERR_INVALID,
             "nn_adam: beta1 %g and beta2 %g must lie in [0, 1)",
             (double)a->beta1, (double)a->beta2);
    NN_CHECK(isfinite(a->epsilon) && a->epsilon >= 0, NN_ERR_INVALID,
             "nn_adam: epsilon %g must be finite and >= 0",
             (double)a->epsilon);
    NN_CHECK(a->eps_mode == NN_ADAM_EPS_KERAS ||
                 a->eps_mode == NN_ADAM_EPS_TORCH,
             NN_ERR_INVALID, "nn_adam: unknown eps_mode %d", (int)a->eps_mode);
    return NN_OK;
}

static nn_status check_sgd(const nn_sgd_opts *s)
{
    NN_CHECK(rate_ok(s->learning_rate), NN_ERR_INVALID,
             "nn_sgd: learning_rate %g must be positive and finite",
             (double)s->learning_rate);
    NN_CHECK(unit_ok(s->momentum), NN_ERR_INVALID,
             "nn_sgd: momentum %g must lie in [0, 1)", (double)s->momentum);
    return NN_OK;
}

static nn_optimizer *optimizer_new(nn_optim_kind kind)
{
    nn_optimizer *o = nn__calloc(1, sizeof *o);
    if (!o) return NULL;
    nn_adam_opts a = NN_ADAM_OPTS_INIT;
    nn_sgd_opts s = NN_SGD_OPTS_INIT;
    o->kind = kind;
    o->adam = a;
    o->sgd = s;
    return o;
}

nn_optimizer *nn_adam(const nn_adam_opts *opts)
{
    nn_adam_opts a = NN_ADAM_OPTS_INIT;
    if (nn__read_opts(&a, opts, "nn_adam") != NN_OK) return NULL;
    if (check_adam(&a) != NN_OK) return NULL;
    nn_optimizer *o = optimizer_new(NN_OPTIM_ADAM);
    if (o) o->adam = a;
    return o;
}

nn_optimizer *nn_sgd(const nn_sgd_opts *opts)
{
    nn_sgd_opts s = NN_SGD_OPTS_INIT;
    if (nn__read_opts(&s, opts, "nn_sgd") != NN_OK) return NULL;
    s.nesterov = s.nesterov != 0;
    if (check_sgd(&s) != NN_OK) return NULL;
    nn_optimizer *o = optimizer_new(NN_OPTIM_SGD);
    if (o) o->sgd = s;
    return o;
}

nn_status nn_optimizer_set_learning_rate(nn_optimizer *o, float lr)
{
    NN_CHECK(o, NN_ERR_INVALID, "nn_optimizer_set_learning_rate: NULL");
    NN_CHECK(rate_ok(lr), NN_ERR_INVALID,
             "nn_optimizer_set_learning_rate: %g must be positive and finite",
             (double)lr);
    if (o->kind == NN_OPTIM_ADAM)
        o->adam.learning_rate = lr;
    else
        o->sgd.learning_rate = lr;
    return NN_OK;
}

float nn_optimizer_learning_rate(const nn_optimizer *o)
{
    if (!o) {
        nn__fail(NN_ERR_INVALID, "nn_optimizer_learning_rate: NULL");
        return NAN;
    }
    return o->kind == NN_OPTIM_ADAM ? o->adam.learning_rate
                                    : o->sgd.learning_rate;
}

int64_t nn_optimizer_iterations(const nn_optimizer *o)
{
    if (!o) return nn__fail(NN_ERR_INVALID, "nn_optimizer_iterations: NULL");
    return o->iterations;
}

/* ---------------- slots ---------------- */

static void free_slots(nn_optimizer *o)
{
    for (int k = 0; k < o->n_slots; k++) {
        if (o->slot_m) nn__free(o->slot_m[k]);
        if (o->slot_v) nn__free(o->slot_v[k]);
    }
    nn__free(o->slot_m);
    nn__free(o->slot_v);
    nn__free(o->slot_size);
    o->slot_m = o->slot_v = NULL;
    o->slot_size = NULL;
    o->n_slots = 0;
}

/* A model owns its optimizer (nn_model_compile) and frees it by clearing
 * owned_by_model first; freeing it here would leave the model pointing at
 * freed memory, so such a call only records an error message. */
void nn_optimizer_free(nn_optimizer *o)
{
    if (!o) return;
    if (o->owned_by_model) {
        nn__fail(NN_ERR_STATE, "nn_optimizer_free: the optimizer belongs to "
                               "a model; nn_model_free frees it");
        return;
    }
    free_slots(o);
    nn__free(o);
}

static nn_status check_slots(const nn_optimizer *o, const nn_model *m, int n)
{
    NN_CHECK(n == o->n_slots, NN_ERR_STATE,
             "optimizer: the model now has %d trainable parameters, the "
             "optimizer's state was made for %d",
             n, o->n_slots);
    nn_param_iter it;
    nn__param_iter_init(&it, m, NULL);
    while (nn__param_next_slot(&it))
        NN_CHECK(it.p->value.size == o->slot_size[it.slot], NN_ERR_STATE,
                 "optimizer: parameter %d has %lld values, its state %lld",
                 it.slot, (long long)it.p->value.size,
                 (long long)o->slot_size[it.slot]);
    return NN_OK;
}

static nn_status alloc_slots(nn_optimizer *o, const nn_model *m, int n)
{
    bool adam = o->kind == NN_OPTIM_ADAM;
    o->slot_m = nn__calloc((size_t)n, sizeof *o->slot_m);
    o->slot_v = adam ? nn__calloc((size_t)n, sizeof *o->slot_v) : NULL;
    o->slot_size = nn__calloc((size_t)n, sizeof *o->slot_size);
    o->n_slots = n;
    if (!o->slot_m || (adam && !o->slot_v) || !o->slot_size) goto fail;
    nn_param_iter it;
    nn__param_iter_init(&it, m, NULL);
    while (nn__param_next_slot(&it)) {
        int k = it.slot;
        int64_t size = it.p->value.size;
        o->slot_size[k] = size;
        o->slot_m[k] = nn__calloc((size_t)size, sizeof(float));
        if (!o->slot_m[k]) goto fail;
        if (!adam) continue;
        o->slot_v[k] = nn__calloc((size_t)size, sizeof(float));
        if (!o->slot_v[k]) goto fail;
    }
    return NN_OK;
fail:
    free_slots(o);
    return nn__fail(NN_ERR_NOMEM, "optimizer: out of memory for its state");
}

nn_status nn__optimizer_prepare(nn_optimizer *o, const nn_model *m)
{
    NN_CHECK(o && m, NN_ERR_INVALID, "optimizer: NULL argument");
    int n = nn__param_slots(m);
    if (o->slot_size) return check_slots(o, m, n);
    if (n == 0) return NN_OK;
    return alloc_slots(o, m, n);
}

/* The training step allocates every gradient before it updates; a
 * parameter that trains without one cannot be stepped. */
static nn_status check_grads(const nn_model *m)
{
    nn_param_iter it;
    nn__param_iter_init(&it, m, NULL);
    while (nn__param_next_slot(&it))
        NN_CHECK(it.p->grad.data, NN_ERR_STATE,
                 "optimizer: parameter '%s' of layer '%s' has no gradient; "
                 "run a backward pass first",
                 it.p->name, it.l->name);
    return NN_OK;
}

static void tell(const nn_step_hook *hook, nn_step_event event,
                 const nn_param_iter *at, int64_t iterations)
{
    if (hook) hook->fn(hook->ctx, event, at, iterations);
}

nn_status nn__optimizer_step(nn_optimizer *o, nn_model *m,
                             const nn_step_hook *hook)
{
    NN_CHECK(o && m, NN_ERR_INVALID, "optimizer: NULL argument");
    NN_TRY(check_grads(m));
    NN_TRY(nn__optimizer_prepare(o, m));
    if (o->clipvalue > 0 || o->global_clipnorm > 0) nn__clip_gradients(o, m);
    int64_t t = o->iterations + 1;
    nn_param_iter it;
    nn__param_iter_init(&it, m, NULL);
    while (nn__param_next_slot(&it)) {
        nn_param *p = it.p;
        int k = it.slot;
        tell(hook, NN_STEP_BEFORE_UPDATE, &it, o->iterations);
        if (o->kind == NN_OPTIM_ADAM)
            nn__adam_update(&o->adam, t, p->value.data, p->grad.data,
                            o->slot_m[k], o->slot_v[k], p->value.size);
        else
            nn__sgd_update(&o->sgd, p->value.data, p->grad.data,
                           o->slot_m[k], p->value.size);
        tell(hook, NN_STEP_AFTER_UPDATE, &it, o->iterations);
    }
    o->iterations = t;
    tell(hook, NN_STEP_DONE, NULL, t);
    return NN_OK;
}

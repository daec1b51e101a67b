/* Optimizer objects: options, slots, and the step over a model's
 * parameters. The update rules live in adam.c and sgd.c; the slot order is
 * described in optim.h (checkpoints depend on it). */
#include "nn_internal.h"
#include "optim/optim.h"
#include "diag/diag.h"

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
    nn__diag_free(o->diag);
    nn__free(o);
}

/* Walks the parameters that get a slot, in slot order (see optim.h). */
typedef struct param_iter {
    const nn_model *m;
    int layer, param;
} param_iter;

static nn_param *next_param(param_iter *it)
{
    for (; it->layer < it->m->n_layers; it->layer++, it->param = 0) {
        nn_layer *l = it->m->layers[it->layer];
        if (!l->trainable) continue;
        while (it->param < l->n_params) {
            nn_param *p = &l->params[it->param++];
            if (p->trainable && p->grad.data) return p;
        }
    }
    return NULL;
}

int nn__optimizer_count_slots(const nn_model *m)
{
    param_iter it = {m, 0, 0};
    int n = 0;
    while (next_param(&it)) n++;
    return n;
}

static nn_status check_slots(const nn_optimizer *o, const nn_model *m, int n)
{
    NN_CHECK(n == o->n_slots, NN_ERR_STATE,
             "optimizer: the model now has %d trainable parameters, the "
             "optimizer's state was made for %d",
             n, o->n_slots);
    param_iter it = {m, 0, 0};
    nn_param *p;
    for (int k = 0; (p = next_param(&it)) != NULL; k++)
        NN_CHECK(p->value.size == o->slot_size[k], NN_ERR_STATE,
                 "optimizer: parameter %d has %lld values, its state %lld", k,
                 (long long)p->value.size, (long long)o->slot_size[k]);
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
    param_iter it = {m, 0, 0};
    nn_param *p;
    for (int k = 0; (p = next_param(&it)) != NULL; k++) {
        o->slot_size[k] = p->value.size;
        o->slot_m[k] = nn__calloc((size_t)p->value.size, sizeof(float));
        if (!o->slot_m[k]) goto fail;
        if (!adam) continue;
        o->slot_v[k] = nn__calloc((size_t)p->value.size, sizeof(float));
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
    int n = nn__optimizer_count_slots(m);
    if (o->slot_size) return check_slots(o, m, n);
    if (n == 0) return NN_OK;
    return alloc_slots(o, m, n);
}

nn_status nn__optimizer_step(nn_optimizer *o, nn_model *m)
{
    NN_TRY(nn__optimizer_prepare(o, m));
    /* Clipping and update measurements (src/diag/): off unless set. */
    if (o->clipvalue > 0 || o->global_clipnorm > 0)
        NN_TRY(nn__clip_gradients(o, m));
    nn_diag *d = nn__diag_records(o->diag) ? o->diag : NULL;
    int64_t t = o->iterations + 1;
    param_iter it = {m, 0, 0};
    nn_param *p;
    for (int k = 0; (p = next_param(&it)) != NULL; k++) {
        /* next_param has moved past p: it is it.param - 1 of it.layer */
        if (d) nn__diag_before_param(d, it.layer, it.param - 1, p);
        if (o->kind == NN_OPTIM_ADAM)
            nn__adam_update(&o->adam, t, p->value.data, p->grad.data,
                            o->slot_m[k], o->slot_v[k], p->value.size);
        else
            nn__sgd_update(&o->sgd, p->value.data, p->grad.data,
                           o->slot_m[k], p->value.size);
        if (d) nn__diag_after_param(d, it.layer, it.param - 1, p);
    }
    o->iterations = t;
    if (d) nn__diag_after_update(d, t);
    return NN_OK;
}

/* Optimizers (src/optim/): Adam and SGD trajectories against references
 * on a hand-made model, the step hook, option validation, slot state and
 * allocation, learning rate and iterations, deterministic parallel
 * updates. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn_internal.h"
#include "loss/loss.h"
#include "optim/optim.h"
#include "io/io.h"
#include "helpers.h"

#include <unistd.h>

/* ------------------------------------------------------------------ */
/* A hand-made model: no graph code involved.                           */
/* ------------------------------------------------------------------ */

enum { NL = 3 };

typedef struct fake_model {
    nn_model m;
    nn_layer *ptrs[NL];
    nn_layer l[NL];
} fake_model;

static void add_param(nn_layer *l, int64_t n, bool trainable, bool grad)
{
    nn_param *p = &l->params[l->n_params++];
    snprintf(p->name, sizeof p->name, "p%d", l->n_params - 1);
    int64_t shape[1] = {n};
    float *v = nn__calloc((size_t)n, sizeof(float));
    float *g = grad ? nn__calloc((size_t)n, sizeof(float)) : NULL;
    assert_non_null(v);
    nn__tensor_view(&p->value, 1, shape, v);
    nn__tensor_view(&p->grad, 1, shape, g);
    p->trainable = trainable;
    for (int64_t k = 0; k < n; k++)
        v[k] = 0.5f * sinf((float)k + 3.0f * (float)(l->index * 4 + l->n_params));
}

/* Layer 0: kernel [12] and bias [4]; layer 1 frozen; layer 2: a trainable
 * [5], a non-trainable [5] and a non-trainable one without a gradient [2].
 * Slots: l0.p0, l0.p1, l2.p0. */
static fake_model *fake_new(void)
{
    fake_model *f = calloc(1, sizeof *f);
    f->m.n_layers = NL;
    f->m.layers = f->ptrs;
    for (int i = 0; i < NL; i++) {
        f->ptrs[i] = &f->l[i];
        f->l[i].index = i;
        f->l[i].model = &f->m;
        f->l[i].trainable = i != 1;
    }
    add_param(&f->l[0], 12, true, true);
    add_param(&f->l[0], 4, true, true);
    add_param(&f->l[1], 4, true, true);
    add_param(&f->l[2], 5, true, true);
    add_param(&f->l[2], 5, false, true);
    add_param(&f->l[2], 2, false, false);
    return f;
}

static void fake_free(fake_model *f)
{
    for (int i = 0; i < NL; i++)
        for (int j = 0; j < f->l[i].n_params; j++) {
            nn__free(f->l[i].params[j].value.data);
            nn__free(f->l[i].params[j].grad.data);
        }
    free(f);
}

enum { NS = 3 };
static nn_param *slot_param(fake_model *f, int k)
{
    return k == 0 ? &f->l[0].params[0]
                  : k == 1 ? &f->l[0].params[1] : &f->l[2].params[0];
}

/* Gradient of step t (1-based) for slot k; every param with a gradient
 * buffer gets one, including those the optimizer must skip. */
static void set_grads(fake_model *f, int t)
{
    for (int i = 0; i < NL; i++)
        for (int j = 0; j < f->l[i].n_params; j++) {
            nn_param *p = &f->l[i].params[j];
            for (int64_t e = 0; p->grad.data && e < p->grad.size; e++)
                p->grad.data[e] = (float)((j + 1) * 0.7 *
                                          sin(0.37 * (double)e + 1.3 * t + i));
        }
}

typedef struct ref_state {
    double w[NS][12], m[NS][12], v[NS][12];
    int64_t n[NS];
} ref_state;

static void ref_init(ref_state *r, fake_model *f)
{
    memset(r, 0, sizeof *r);
    for (int k = 0; k < NS; k++) {
        nn_param *p = slot_param(f, k);
        r->n[k] = p->value.size;
        for (int64_t e = 0; e < p->value.size; e++) r->w[k][e] = p->value.data[e];
    }
}

static void ref_adam_step(ref_state *r, fake_model *f, const nn_adam_opts *o,
                          int t)
{
    double b1 = o->beta1, b2 = o->beta2, lr = o->learning_rate,
           eps = o->epsilon;
    double bc1 = 1 - pow(b1, t), bc2 = 1 - pow(b2, t);
    for (int k = 0; k < NS; k++)
        for (int64_t e = 0; e < r->n[k]; e++) {
            double g = slot_param(f, k)->grad.data[e];
            double *m = &r->m[k][e], *v = &r->v[k][e], *w = &r->w[k][e];
            *m = b1 * *m + (1 - b1) * g;
            *v = b2 * *v + (1 - b2) * g * g;
            if (o->eps_mode == NN_ADAM_EPS_KERAS)
                *w -= lr * sqrt(bc2) / bc1 * *m / (sqrt(*v) + eps);
            else
                *w -= lr / bc1 * *m / (sqrt(*v) / sqrt(bc2) + eps);
        }
}

static void ref_sgd_step(ref_state *r, fake_model *f, const nn_sgd_opts *o)
{
    double lr = o->learning_rate, mu = o->momentum;
    for (int k = 0; k < NS; k++)
        for (int64_t e = 0; e < r->n[k]; e++) {
            double g = slot_param(f, k)->grad.data[e];
            double *v = &r->m[k][e], *w = &r->w[k][e];
            *v = mu * *v - lr * g;
            *w += o->nesterov ? mu * *v - lr * g : *v;
        }
}

static double max_diff(const ref_state *r, fake_model *f)
{
    double d = 0;
    for (int k = 0; k < NS; k++)
        for (int64_t e = 0; e < r->n[k]; e++)
            d = fmax(d, fabs(r->w[k][e] - slot_param(f, k)->value.data[e]));
    return d;
}

/* Copies of the parameters the optimizer must not touch. */
static void snapshot_frozen(fake_model *f, float *buf)
{
    memcpy(buf, f->l[1].params[0].value.data, 4 * sizeof(float));
    memcpy(buf + 4, f->l[2].params[1].value.data, 5 * sizeof(float));
    memcpy(buf + 9, f->l[2].params[2].value.data, 2 * sizeof(float));
}

enum { STEPS = 20 };

static void run_adam(const nn_adam_opts *o, const nn_adam_opts *ref_opts,
                     double *diff)
{
    fake_model *f = fake_new();
    nn_optimizer *opt = nn_adam(o);
    assert_non_null(opt);
    ref_state r;
    ref_init(&r, f);
    float frozen[11], after[11];
    snapshot_frozen(f, frozen);
    for (int t = 1; t <= STEPS; t++) {
        set_grads(f, t);
        assert_int_equal(nn__optimizer_step(opt, &f->m, NULL), NN_OK);
        ref_adam_step(&r, f, ref_opts, t);
    }
    *diff = max_diff(&r, f);
    assert_int_equal(nn_optimizer_iterations(opt), STEPS);
    assert_int_equal(opt->n_slots, NS);
    for (int k = 0; k < NS; k++) {
        assert_int_equal(opt->slot_size[k], r.n[k]);
        for (int64_t e = 0; e < r.n[k]; e++) {
            assert_true(fabs(opt->slot_m[k][e] - r.m[k][e]) < 1e-6);
            assert_true(fabs(opt->slot_v[k][e] - r.v[k][e]) < 1e-6);
        }
    }
    snapshot_frozen(f, after);
    assert_memory_equal(frozen, after, sizeof frozen);
    nn_optimizer_free(opt);
    fake_free(f);
}

static void test_adam_matches_reference(void **state)
{
    (void)state;
    nn_adam_opts keras = NN_ADAM_OPTS_INIT;
    keras.learning_rate = 0.01f;
    keras.epsilon = 1e-3f; /* large, so the two modes differ visibly */
    nn_adam_opts torch = keras;
    torch.eps_mode = NN_ADAM_EPS_TORCH;
    double d;
    run_adam(&keras, &keras, &d);
    assert_true(d < 2e-6);
    run_adam(&torch, &torch, &d);
    assert_true(d < 2e-6);
    /* The test can tell the modes apart. */
    run_adam(&torch, &keras, &d);
    assert_true(d > 1e-3);
    /* Defaults (NULL opts) are Keras': lr 1e-3, eps 1e-7. */
    nn_adam_opts def = NN_ADAM_OPTS_INIT;
    fake_model *f = fake_new();
    nn_optimizer *opt = nn_adam(NULL);
    assert_non_null(opt);
    assert_true(opt->adam.learning_rate == def.learning_rate &&
                opt->adam.beta1 == def.beta1 && opt->adam.beta2 == def.beta2 &&
                opt->adam.epsilon == def.epsilon &&
                opt->adam.eps_mode == def.eps_mode);
    ref_state r;
    ref_init(&r, f);
    for (int t = 1; t <= STEPS; t++) {
        set_grads(f, t);
        assert_int_equal(nn__optimizer_step(opt, &f->m, NULL), NN_OK);
        ref_adam_step(&r, f, &def, t);
    }
    assert_true(max_diff(&r, f) < 2e-6);
    nn_optimizer_free(opt);
    fake_free(f);
}

static void run_sgd(float momentum, int nesterov)
{
    nn_sgd_opts o = NN_SGD_OPTS_INIT;
    o.learning_rate = 0.1f;
    o.momentum = momentum;
    o.nesterov = nesterov;
    fake_model *f = fake_new();
    nn_optimizer *opt = nn_sgd(&o);
    assert_non_null(opt);
    ref_state r;
    ref_init(&r, f);
    float frozen[11], after[11];
    snapshot_frozen(f, frozen);
    for (int t = 1; t <= STEPS; t++) {
        set_grads(f, t);
        assert_int_equal(nn__optimizer_step(opt, &f->m, NULL), NN_OK);
        ref_sgd_step(&r, f, &o);
    }
    assert_true(max_diff(&r, f) < 1e-5);
    assert_null(opt->slot_v);
    /* The velocity is left at zero without momentum. */
    for (int k = 0; k < NS; k++)
        for (int64_t e = 0; e < r.n[k]; e++)
            assert_true(fabs(opt->slot_m[k][e] -
                             (momentum == 0 ? 0 : r.m[k][e])) < 1e-5);
    snapshot_frozen(f, after);
    assert_memory_equal(frozen, after, sizeof frozen);
    assert_int_equal(nn_optimizer_iterations(opt), STEPS);
    nn_optimizer_free(opt);
    fake_free(f);
}

static void test_sgd_matches_reference(void **state)
{
    (void)state;
    run_sgd(0, 0);
    run_sgd(0.9f, 0);
    run_sgd(0.9f, 1);
    run_sgd(0, 1); /* nesterov without momentum is plain SGD */
}

/* PyTorch's form (buf = mu*buf + g; w -= lr*buf) gives the same weights
 * while the learning rate is constant. */
static void test_sgd_equals_torch_form(void **state)
{
    (void)state;
    nn_sgd_opts o = NN_SGD_OPTS_INIT;
    o.learning_rate = 0.05f;
    o.momentum = 0.8f;
    fake_model *f = fake_new();
    nn_optimizer *opt = nn_sgd(&o);
    ref_state r;
    ref_init(&r, f);
    for (int t = 1; t <= STEPS; t++) {
        set_grads(f, t);
        assert_int_equal(nn__optimizer_step(opt, &f->m, NULL), NN_OK);
        for (int k = 0; k < NS; k++)
            for (int64_t e = 0; e < r.n[k]; e++) {
                double g = slot_param(f, k)->grad.data[e];
                r.m[k][e] = (double)o.momentum * r.m[k][e] + g;
                r.w[k][e] -= (double)o.learning_rate * r.m[k][e];
            }
    }
    assert_true(max_diff(&r, f) < 1e-5);
    nn_optimizer_free(opt);
    fake_free(f);
}

static void test_model_changed(void **state)
{
    (void)state;
    fake_model *f = fake_new();
    nn_optimizer *opt = nn_adam(NULL);
    set_grads(f, 1);
    assert_int_equal(nn__optimizer_step(opt, &f->m, NULL), NN_OK);
    float before[12];
    memcpy(before, f->l[0].params[0].value.data, sizeof before);
    /* A parameter that starts to train without a gradient cannot be
     * stepped; nothing moves. */
    nn_param *p = &f->l[2].params[2];
    p->trainable = true;
    assert_int_equal(nn__optimizer_step(opt, &f->m, NULL), NN_ERR_STATE);
    assert_non_null(strstr(nn_last_error(), "no gradient"));
    /* With one, it has a slot the optimizer's state was not made for. */
    p->grad.data = nn__calloc(2, sizeof(float));
    assert_int_equal(nn__param_slots(&f->m), NS + 1);
    assert_int_equal(nn__optimizer_step(opt, &f->m, NULL), NN_ERR_STATE);
    assert_non_null(strstr(nn_last_error(), "trainable parameters"));
    assert_memory_equal(before, f->l[0].params[0].value.data, sizeof before);
    assert_int_equal(nn_optimizer_iterations(opt), 1);
    p->trainable = false;
    /* Same count, different size. */
    f->l[2].params[0].value.size = 4;
    assert_int_equal(nn__optimizer_step(opt, &f->m, NULL), NN_ERR_STATE);
    f->l[2].params[0].value.size = 5;
    assert_int_equal(nn__optimizer_step(opt, &f->m, NULL), NN_OK);
    assert_int_equal(nn__param_slots(&f->m), NS);
    assert_int_equal(nn__optimizer_step(NULL, &f->m, NULL), NN_ERR_INVALID);
    assert_int_equal(nn__optimizer_step(opt, NULL, NULL), NN_ERR_INVALID);
    nn_optimizer_free(opt);
    fake_free(f);
}

/* What a step hook hears: per slot, before and after that parameter's
 * update (with the weights as they are then), then the end of the step. */
typedef struct heard {
    int n;
    nn_step_event event[16];
    int slot[16], layer[16], param[16];
    float w0[16]; /* the parameter's first weight when told */
    int64_t iterations[16];
} heard;

static void listen_step(void *ctx, nn_step_event event, const nn_param_iter *at,
                        int64_t iterations)
{
    heard *h = ctx;
    assert_true(h->n < 16);
    int i = h->n++;
    h->event[i] = event;
    h->slot[i] = at ? at->slot : -1;
    h->layer[i] = at ? at->layer : -1;
    h->param[i] = at ? at->param : -1;
    h->w0[i] = at ? at->p->value.data[0] : NAN;
    h->iterations[i] = iterations;
}

static void test_step_hook(void **state)
{
    (void)state;
    fake_model *f = fake_new();
    nn_sgd_opts so = NN_SGD_OPTS_INIT;
    so.learning_rate = 0.1f;
    nn_optimizer *opt = nn_sgd(&so);
    heard h = {0};
    nn_step_hook hook = {listen_step, &h};
    set_grads(f, 1);
    float w[NS];
    for (int k = 0; k < NS; k++) w[k] = slot_param(f, k)->value.data[0];
    assert_int_equal(nn__optimizer_step(opt, &f->m, &hook), NN_OK);
    /* Slots l0.p0, l0.p1, l2.p0: the frozen layer and the parameters that
     * do not train are not reported. */
    const int layer[NS] = {0, 0, 2}, param[NS] = {0, 1, 0};
    assert_int_equal(h.n, 2 * NS + 1);
    for (int k = 0; k < NS; k++) {
        float g = slot_param(f, k)->grad.data[0];
        for (int e = 0; e < 2; e++) {
            int i = 2 * k + e;
            assert_int_equal(h.event[i], e == 0 ? NN_STEP_BEFORE_UPDATE
                                                : NN_STEP_AFTER_UPDATE);
            assert_int_equal(h.slot[i], k);
            assert_int_equal(h.layer[i], layer[k]);
            assert_int_equal(h.param[i], param[k]);
            assert_int_equal(h.iterations[i], 0);
            assert_true(h.w0[i] == (e == 0 ? w[k] : w[k] - 0.1f * g));
        }
    }
    assert_int_equal(h.event[2 * NS], NN_STEP_DONE);
    assert_int_equal(h.iterations[2 * NS], 1);
    /* A failed step tells nothing. */
    h.n = 0;
    f->l[2].params[0].value.size = 4;
    assert_int_equal(nn__optimizer_step(opt, &f->m, &hook), NN_ERR_STATE);
    assert_int_equal(h.n, 0);
    f->l[2].params[0].value.size = 5;
    nn_optimizer_free(opt);
    fake_free(f);
}

static void test_slot_allocation_failure(void **state)
{
    (void)state;
    fake_model *f = fake_new();
    float before[12];
    memcpy(before, f->l[0].params[0].value.data, sizeof before);
    set_grads(f, 1);
    const bool adam_kind[2] = {true, false};
    for (int a = 0; a < 2; a++) {
        nn_optimizer *opt = adam_kind[a] ? nn_adam(NULL) : nn_sgd(NULL);
        assert_non_null(opt);
        int k;
        for (k = 1; k < 100; k++) {
            nn__debug_fail_alloc_after(k);
            nn_status s = nn__optimizer_step(opt, &f->m, NULL);
            nn__debug_fail_alloc_after(0);
            if (s == NN_OK) break;
            assert_int_equal(s, NN_ERR_NOMEM);
            assert_int_equal(opt->n_slots, 0);
            assert_null(opt->slot_m);
            assert_int_equal(nn_optimizer_iterations(opt), 0);
            assert_memory_equal(before, f->l[0].params[0].value.data,
                                sizeof before);
        }
        /* 3 arrays + one buffer per slot (two for Adam). */
        assert_int_equal(k, adam_kind[a] ? 3 + 2 * NS + 1 : 2 + NS + 1);
        nn_optimizer_free(opt);
        memcpy(f->l[0].params[0].value.data, before, sizeof before);
    }
    nn__debug_fail_alloc_after(1);
    assert_null(nn_adam(NULL));
    nn__debug_fail_alloc_after(1);
    assert_null(nn_sgd(NULL));
    nn__debug_fail_alloc_after(0);
    fake_free(f);
}

static void test_invalid_options(void **state)
{
    (void)state;
    const float bad_lr[] = {0, -1, NAN, INFINITY};
    for (size_t i = 0; i < sizeof bad_lr / sizeof *bad_lr; i++) {
        nn_adam_opts a = NN_ADAM_OPTS_INIT;
        a.learning_rate = bad_lr[i];
        assert_null(nn_adam(&a));
        assert_non_null(strstr(nn_last_error(), "learning_rate"));
        nn_sgd_opts s = NN_SGD_OPTS_INIT;
        s.learning_rate = bad_lr[i];
        assert_null(nn_sgd(&s));
    }
    const float bad_unit[] = {1, -0.1f, 1.5f, NAN};
    for (size_t i = 0; i < sizeof bad_unit / sizeof *bad_unit; i++) {
        nn_adam_opts a = NN_ADAM_OPTS_INIT;
        a.beta1 = bad_unit[i];
        assert_null(nn_adam(&a));
        a = (nn_adam_opts)NN_ADAM_OPTS_INIT;
        a.beta2 = bad_unit[i];
        assert_null(nn_adam(&a));
        nn_sgd_opts s = NN_SGD_OPTS_INIT;
        s.momentum = bad_unit[i];
        assert_null(nn_sgd(&s));
    }
    nn_adam_opts a = NN_ADAM_OPTS_INIT;
    a.epsilon = -1e-8f;
    assert_null(nn_adam(&a));
    a.epsilon = NAN;
    assert_null(nn_adam(&a));
    a = (nn_adam_opts)NN_ADAM_OPTS_INIT;
    a.eps_mode = (nn_adam_eps_mode)7;
    assert_null(nn_adam(&a));
    a = (nn_adam_opts)NN_ADAM_OPTS_INIT;
    a.size = 0;
    assert_null(nn_adam(&a));
    a.size = 4;
    assert_null(nn_adam(&a));
    nn_sgd_opts s = NN_SGD_OPTS_INIT;
    s.size = 0;
    assert_null(nn_sgd(&s));

    /* Edge values that are valid. */
    a = (nn_adam_opts)NN_ADAM_OPTS_INIT;
    a.beta1 = 0;
    a.beta2 = 0;
    a.epsilon = 0;
    nn_optimizer *o = nn_adam(&a);
    assert_non_null(o);
    nn_optimizer_free(o);
}

static void test_options_size(void **state)
{
    (void)state;
    /* An older program's struct stops before epsilon: what lies beyond
     * `size` is never read, defaults fill in. */
    nn_adam_opts a = NN_ADAM_OPTS_INIT;
    a.size = offsetof(nn_adam_opts, epsilon);
    a.learning_rate = 0.5f;
    a.epsilon = -3; /* invalid, but outside size */
    a.eps_mode = (nn_adam_eps_mode)99;
    nn_optimizer *o = nn_adam(&a);
    assert_non_null(o);
    assert_true(o->adam.learning_rate == 0.5f);
    assert_true(o->adam.epsilon == 1e-7f);
    assert_int_equal(o->adam.eps_mode, NN_ADAM_EPS_KERAS);
    assert_int_equal(o->adam.size, sizeof(nn_adam_opts));
    nn_optimizer_free(o);

    /* A newer program's larger struct: a zero tail (its options at their
     * defaults) is accepted, anything else refused. */
    struct {
        nn_sgd_opts s;
        char future[32];
    } big;
    memset(&big, 0, sizeof big);
    big.s = (nn_sgd_opts)NN_SGD_OPTS_INIT;
    big.s.size = sizeof big;
    big.s.momentum = 0.5f;
    big.s.nesterov = 5;
    o = nn_sgd(&big.s);
    assert_non_null(o);
    assert_true(o->sgd.momentum == 0.5f);
    assert_int_equal(o->sgd.nesterov, 1);
    nn_optimizer_free(o);
    big.future[31] = 1;
    assert_null(nn_sgd(&big.s));
    assert_int_equal(nn_last_status(), NN_ERR_INVALID);

    o = nn_sgd(NULL);
    nn_sgd_opts def = NN_SGD_OPTS_INIT;
    assert_true(o->sgd.learning_rate == def.learning_rate &&
                o->sgd.momentum == def.momentum &&
                o->sgd.nesterov == def.nesterov);
    assert_int_equal(o->kind, NN_OPTIM_SGD);
    nn_optimizer_free(o);
}

static void test_learning_rate_and_iterations(void **state)
{
    (void)state;
    nn_sgd_opts so = NN_SGD_OPTS_INIT;
    so.learning_rate = 0.1f;
    nn_optimizer *o = nn_sgd(&so);
    assert_int_equal(nn_optimizer_iterations(o), 0);
    assert_true(nn_optimizer_iterations(NULL) < 0);
    assert_int_equal(nn_optimizer_set_learning_rate(NULL, 0.1f),
                     NN_ERR_INVALID);
    const float bad[] = {0, -1, NAN, INFINITY};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(nn_optimizer_set_learning_rate(o, bad[i]),
                         NN_ERR_INVALID);
    assert_true(o->sgd.learning_rate == 0.1f);
    assert_int_equal(nn_optimizer_set_learning_rate(o, 0.05f), NN_OK);

    fake_model *f = fake_new();
    float w0 = f->l[0].params[0].value.data[3];
    set_grads(f, 1);
    float g = f->l[0].params[0].grad.data[3];
    assert_int_equal(nn__optimizer_step(o, &f->m, NULL), NN_OK);
    assert_true(f->l[0].params[0].value.data[3] == w0 - 0.05f * g);
    assert_int_equal(nn__optimizer_step(o, &f->m, NULL), NN_OK);
    assert_int_equal(nn_optimizer_iterations(o), 2);
    nn_optimizer_free(o);

    o = nn_adam(NULL);
    assert_int_equal(nn_optimizer_set_learning_rate(o, 0.25f), NN_OK);
    assert_true(o->adam.learning_rate == 0.25f);
    /* First Adam step moves each weight by about lr (m/sqrt(v) = sign g). */
    float before = f->l[2].params[0].value.data[1];
    g = f->l[2].params[0].grad.data[1];
    assert_int_equal(nn__optimizer_step(o, &f->m, NULL), NN_OK);
    float moved = before - f->l[2].params[0].value.data[1];
    assert_true(fabsf(moved - (g > 0 ? 0.25f : -0.25f)) < 1e-4f);
    nn_optimizer_free(o);
    fake_free(f);
}

static void test_free_and_ownership(void **state)
{
    (void)state;
    nn_optimizer_free(NULL);
    nn_optimizer *o = nn_adam(NULL);
    o->owned_by_model = true;
    nn_clear_error();
    nn_optimizer_free(o); /* refused: the model would dangle */
    assert_non_null(strstr(nn_last_error(), "belongs to a model"));
    assert_true(o->adam.learning_rate == 1e-3f); /* still alive */
    o->owned_by_model = false;
    nn_optimizer_free(o);
}

/* Big tensors take the parallel path: same result for any thread count,
 * equal to the elementwise reference. */
static void test_parallel_update_deterministic(void **state)
{
    (void)state;
    enum { N = 100003 };
    float *w1 = malloc(N * sizeof(float)), *w2 = malloc(N * sizeof(float));
    float *g = malloc(N * sizeof(float));
    float *m1 = calloc(N, sizeof(float)), *v1 = calloc(N, sizeof(float));
    float *m2 = calloc(N, sizeof(float)), *v2 = calloc(N, sizeof(float));
    fill_uniform(w1, N, -1, 1, 20);
    memcpy(w2, w1, N * sizeof(float));
    nn_adam_opts a = NN_ADAM_OPTS_INIT;
    nn_sgd_opts s = NN_SGD_OPTS_INIT;
    s.momentum = 0.9f;
    for (int t = 1; t <= 3; t++) {
        fill_uniform(g, N, -1, 1, 100 + (uint64_t)t);
        nn_set_num_threads(1);
        nn__adam_update(&a, t, w1, g, m1, v1, N);
        nn__sgd_update(&s, w1, g, m1 + 7, N - 7);
        nn_set_num_threads(2);
        nn__adam_update(&a, t, w2, g, m2, v2, N);
        nn__sgd_update(&s, w2, g, m2 + 7, N - 7);
    }
    nn_set_num_threads(0);
    assert_memory_equal(w1, w2, N * sizeof(float));
    assert_memory_equal(m1, m2, N * sizeof(float));
    free(w1), free(w2), free(g), free(m1), free(v1), free(m2), free(v2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_adam_matches_reference),
        cmocka_unit_test(test_sgd_matches_reference),
        cmocka_unit_test(test_sgd_equals_torch_form),
        cmocka_unit_test(test_model_changed),
        cmocka_unit_test(test_step_hook),
        cmocka_unit_test(test_slot_allocation_failure),
        cmocka_unit_test(test_invalid_options),
        cmocka_unit_test(test_options_size),
        cmocka_unit_test(test_learning_rate_and_iterations),
        cmocka_unit_test(test_free_and_ownership),
        cmocka_unit_test(test_parallel_update_deterministic),
    };
    return cmocka_run_group_tests_name("optim", tests, NULL, NULL);
}

/* Gradient diagnostics: the per-model state, the training hooks, the
 * finite checks and the verdicts. */
#include "nn_internal.h"
#include "diag/diag.h"
#include "kernels/kernels.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define WINDOW_MAX 100000

struct nn_diag {
    nn_diag_opts opts;
    /* The layers of the last recorded step (layout and norms). */
    nn_diag_layer *layers;
    int n_layers, cap_layers;
    int *entry_of; /* model layer index -> index in layers, or -1 */
    int entry_cap;
    float *copy; /* one parameter's weights before its update */
    int64_t copy_cap;
    bool copy_valid;
    bool recorded; /* the fields below describe the last training step */
    int64_t generation;
    double global2;
    int64_t step;
    nn_health verdict;
    char why[NN_DIAG_WHY_MAX];
    /* The window: global norms and verdicts of the last steps. */
    double *ring_norm;
    unsigned char *ring_verdict;
    int ring_pos, ring_count;
    int count[4];       /* verdicts in the window */
    int64_t observed;   /* steps observed so far */
    int64_t bad_at[4];  /* observation number of the latest of each verdict */
    char bad_why[4][NN_DIAG_WHY_MAX];
    nn_health window_verdict;
    char window_why[NN_DIAG_WHY_MAX];
};

static const char *const health_name[4] = {"OK", "vanishing", "exploding",
                                           "non-finite"};

static void say(char *buf, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void say(char *buf, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, cap, fmt, ap);
    va_end(ap);
}

/* ---------------- state ---------------- */

void nn__diag_free(nn_diag *d)
{
    if (!d) return;
    nn__free(d->layers);
    nn__free(d->entry_of);
    nn__free(d->copy);
    nn__free(d->ring_norm);
    nn__free(d->ring_verdict);
    nn__free(d);
}

/* This step's gradients were recorded: its update can be measured. */
static bool records(const nn_diag *d)
{
    return d && d->opts.record && d->recorded;
}

bool nn__diag_scans(const nn_diag *d) { return d && d->opts.check_finite; }

static nn_status ring_alloc(nn_diag *d, int window)
{
    double *norm = nn__calloc((size_t)window, sizeof *norm);
    unsigned char *v = nn__calloc((size_t)window, 1);
    if (!norm || !v) {
        nn__free(norm);
        nn__free(v);
        return NN_ERR_NOMEM;
    }
    nn__free(d->ring_norm);
    nn__free(d->ring_verdict);
    d->ring_norm = norm;
    d->ring_verdict = v;
    d->ring_pos = d->ring_count = 0;
    memset(d->count, 0, sizeof d->count);
    return NN_OK;
}

static nn_diag *diag_new(const nn_diag_opts *o)
{
    nn_diag *d = nn__calloc(1, sizeof *d);
    if (!d) return NULL;
    d->opts = *o;
    if (ring_alloc(d, o->window) != NN_OK) {
        nn__free(d);
        return NULL;
    }
    return d;
}

/* Thresholds may be 0 or +Inf to switch a test off, never NaN. */
static nn_status check_opts(const nn_diag_opts *o)
{
    const char *w = "nn_model_set_diagnostics";
    NN_CHECK(o->window >= 1 && o->window <= WINDOW_MAX, NN_ERR_INVALID,
             "%s: window %d must lie in [1, %d]", w, o->window, WINDOW_MAX);
    const float t[5] = {o->vanishing_ratio, o->vanishing_floor,
                        o->exploding_ratio, o->exploding_ceiling,
                        o->exploding_growth};
    const char *names[5] = {"vanishing_ratio", "vanishing_floor",
                            "exploding_ratio", "exploding_ceiling",
                            "exploding_growth"};
    for (int i = 0; i < 5; i++)
        NN_CHECK(t[i] >= 0, NN_ERR_INVALID, "%s: %s is %g, must be >= 0", w,
                 names[i], (double)t[i]);
    return NN_OK;
}

nn_status nn_model_set_diagnostics(nn_model *m, const nn_diag_opts *opts)
{
    NN_CHECK(m, NN_ERR_INVALID, "nn_model_set_diagnostics: model is NULL");
    NN_CHECK(m->opt, NN_ERR_STATE,
             "nn_model_set_diagnostics: compile the model first");
    if (!opts) {
        nn__diag_free(m->diag);
        m->diag = NULL;
        return NN_OK;
    }
    nn_diag_opts o = NN_DIAG_OPTS_INIT;
    NN_TRY(nn__read_opts(&o, opts, "nn_model_set_diagnostics"));
    o.record = o.record != 0;
    o.check_finite = o.check_finite != 0;
    NN_TRY(check_opts(&o));
    nn_diag *d = m->diag;
    if (!d) {
        d = diag_new(&o);
        NN_CHECK(d, NN_ERR_NOMEM, "nn_model_set_diagnostics: out of memory");
        m->diag = d;
        return NN_OK;
    }
    if (o.window != d->opts.window)
        NN_CHECK(ring_alloc(d, o.window) == NN_OK, NN_ERR_NOMEM,
                 "nn_model_set_diagnostics: out of memory");
    d->opts = o;
    return NN_OK;
}

nn_status nn__diag_push(nn_model *m, bool record, bool check,
                        nn_diag_saved *saved)
{
    nn_diag *d = m->diag;
    saved->had_diag = d != NULL;
    if (d) saved->opts = d->opts;
    if (!record && !check) return NN_OK;
    if (!d) {
        nn_diag_opts o = NN_DIAG_OPTS_INIT;
        o.record = o.check_finite = 0;
        d = diag_new(&o);
        NN_CHECK(d, NN_ERR_NOMEM, "nn_model_fit: out of memory");
        m->diag = d;
    }
    d->opts.record |= record;
    d->opts.check_finite |= check;
    return NN_OK;
}

/* The diagnostics stay allocated after a run that switched them on, with
 * recording off, so the report of its last step can still be read. */
void nn__diag_pop(nn_model *m, const nn_diag_saved *saved)
{
    nn_diag *d = m->diag;
    if (!d) return;
    if (saved->had_diag) {
        d->opts.record = saved->opts.record;
        d->opts.check_finite = saved->opts.check_finite;
    } else {
        d->opts.record = d->opts.check_finite = 0;
    }
}

/* ---------------- layout and norms ---------------- */

/* A parameter's norms are measured when it trains and has a gradient (a
 * layer added after the last step has none yet). */
static bool counted(const nn_layer *l, const nn_param *p)
{
    return nn__param_trains(l->trainable, p) && p->grad.data;
}

static nn_status grow(nn_diag_layer **arr, int *cap, int n)
{
    if (n < *cap) return NN_OK;
    int nc = *cap ? 2 * *cap : 16;
    nn_diag_layer *a = nn__realloc(*arr, (size_t)nc * sizeof *a);
    if (!a) return NN_ERR_NOMEM;
    *arr = a;
    *cap = nc;
    return NN_OK;
}

/* Fills *arr with the layers that have a counted weight, in execution
 * order, growing the array as needed. */
static nn_status layout(const nn_model *m, nn_diag_layer **arr, int *cap,
                        int *n)
{
    *n = 0;
    nn_param_iter it;
    nn__param_iter_init(&it, m, NULL);
    while (nn__param_next_slot(&it)) {
        if (!it.p->grad.data) continue; /* not counted() */
        if (*n == 0 || (*arr)[*n - 1].index != it.layer) {
            NN_TRY(grow(arr, cap, *n));
            nn_diag_layer *e = &(*arr)[(*n)++];
            memset(e, 0, sizeof *e);
            e->index = it.layer;
            e->n_weights = it.l->n_params;
        }
        (*arr)[*n - 1].counted[it.param] = true;
    }
    return NN_OK;
}

/* Gradient and weight norms of the current state; no update. */
static double measure(const nn_model *m, nn_diag_layer *layers, int n)
{
    double total = 0;
    for (int k = 0; k < n; k++) {
        nn_diag_layer *e = &layers[k];
        const nn_layer *l = m->layers[e->index];
        for (int j = 0; j < e->n_weights; j++) {
            e->g2[j] = e->w2[j] = e->wb2[j] = e->u2[j] = NAN;
            if (!e->counted[j]) continue;
            const nn_param *p = &l->params[j];
            e->g2[j] = nn__sumsq(p->grad.data, p->grad.size);
            e->w2[j] = e->wb2[j] = nn__sumsq(p->value.data, p->value.size);
            total += e->g2[j];
        }
    }
    return total;
}

/* ---------------- verdicts ---------------- */

static double layer_grad(const nn_diag_layer *e)
{
    double s = 0;
    for (int j = 0; j < e->n_weights; j++)
        if (e->counted[j]) s += e->g2[j];
    return sqrt(s);
}

static nn_health nonfinite_verdict(const nn_model *m,
                                   const nn_diag_layer *layers, int n,
                                   char *why, size_t cap)
{
    int bad = 0, near_out = -1, near_in = -1;
    for (int k = n - 1; k >= 0; k--) {
        if (isfinite(layer_grad(&layers[k]))) continue;
        bad++;
        if (near_out < 0) near_out = k;
        near_in = k;
    }
    if (bad == 0) {
        say(why, cap, "the global gradient norm overflowed");
        return NN_HEALTH_NONFINITE;
    }
    say(why, cap,
        "NaN/Inf in the gradients of %d of %d layers: first in backward "
        "order '%s', nearest the input '%s'",
        bad, n, m->layers[layers[near_out].index]->name,
        m->layers[layers[near_in].index]->name);
    return NN_HEALTH_NONFINITE;
}

nn_health nn__diag_verdict(const nn_model *m, const nn_diag_opts *o,
                           const nn_diag_layer *layers, int n, double global2,
                           char *why, size_t cap)
{
    double g = sqrt(global2);
    if (!isfinite(g)) return nonfinite_verdict(m, layers, n, why, cap);
    if (n == 0) {
        say(why, cap, "no trainable weights");
        return NN_HEALTH_OK;
    }
    int big = 0;
    for (int k = 1; k < n; k++)
        if (layer_grad(&layers[k]) > layer_grad(&layers[big])) big = k;
    const char *first = m->layers[layers[0].index]->name;
    const char *last = m->layers[layers[n - 1].index]->name;
    double gin = layer_grad(&layers[0]), gout = layer_grad(&layers[n - 1]);
    double ratio = gout > 0 ? gin / gout : (gin > 0 ? INFINITY : 1.0);
    if (g > o->exploding_ceiling) {
        say(why, cap,
            "global gradient norm %.3g is above the ceiling %.3g; the layer "
            "with the largest gradient norm is '%s' (%.3g)",
            g, (double)o->exploding_ceiling, m->layers[layers[big].index]->name,
            layer_grad(&layers[big]));
        return NN_HEALTH_EXPLODING;
    }
    if (n >= 2 && ratio > o->exploding_ratio) {
        say(why, cap,
            "gradient norm of '%s' (input side, %.3g) is %.3g times that "
            "of '%s' (output side, %.3g)",
            first, gin, ratio, last, gout);
        return NN_HEALTH_EXPLODING;
    }
    if (g < o->vanishing_floor) {
        say(why, cap, "every gradient norm is below the floor %.3g",
            (double)o->vanishing_floor);
        return NN_HEALTH_VANISHING;
    }
    if (n >= 2 && ratio < o->vanishing_ratio) {
        say(why, cap,
            "gradient norm of '%s' (input side, %.3g) is only %.3g times "
            "that of '%s' (output side, %.3g)",
            first, gin, ratio, last, gout);
        return NN_HEALTH_VANISHING;
    }
    say(why, cap,
        "gradient norm of '%s' (input side) / '%s' (output side) = %.3g",
        first, last, ratio);
    return NN_HEALTH_OK;
}

/* Mean of `len` ring entries starting `back` steps before the newest. */
static double ring_mean(const nn_diag *d, int back, int len)
{
    int w = d->opts.window;
    double s = 0;
    for (int i = 0; i < len; i++) {
        int pos = ((d->ring_pos - 1 - back - i) % w + w) % w;
        s += d->ring_norm[pos];
    }
    return s / len;
}

static bool in_window(const nn_diag *d, nn_health h)
{
    return d->bad_at[h] > 0 && d->observed - d->bad_at[h] < d->ring_count;
}

static void window_verdict(nn_diag *d)
{
    int n = d->ring_count;
    char *why = d->window_why;
    size_t cap = sizeof d->window_why;
    for (int h = NN_HEALTH_NONFINITE; h >= NN_HEALTH_EXPLODING; h--) {
        if (!in_window(d, (nn_health)h)) continue;
        d->window_verdict = (nn_health)h;
        long long ago = (long long)(d->observed - d->bad_at[h]);
        /* At this step the step's own verdict carries the reason. */
        if (ago == 0)
            say(why, cap, "%s at %lld of the last %d steps, the latest at "
                          "this step",
                health_name[h], (long long)d->count[h], n);
        else
            say(why, cap, "%s at %lld of the last %d steps, the latest %lld "
                          "step%s ago: %s",
                health_name[h], (long long)d->count[h], n, ago,
                ago == 1 ? "" : "s", d->bad_why[h]);
        return;
    }
    int q = n / 4 > 0 ? n / 4 : 1;
    double newest = ring_mean(d, 0, q), oldest = ring_mean(d, n - q, q);
    double growth = oldest > 0 ? newest / oldest : (newest > 0 ? INFINITY : 1);
    if (n == d->opts.window && n >= 2 && growth > d->opts.exploding_growth) {
        d->window_verdict = NN_HEALTH_EXPLODING;
        say(why, cap,
            "the global gradient norm grew %.3g times over the last %d "
            "steps (mean %.3g -> %.3g)",
            growth, n, oldest, newest);
        return;
    }
    if (d->count[NN_HEALTH_VANISHING] == n) {
        d->window_verdict = NN_HEALTH_VANISHING;
        say(why, cap, "vanishing at every one of the last %d steps; "
                      "latest: %s",
            n, d->bad_why[NN_HEALTH_VANISHING]);
        return;
    }
    d->window_verdict = NN_HEALTH_OK;
    say(why, cap, "no problem over the last %d steps (global norm mean "
                  "%.3g -> %.3g)",
        n, oldest, newest);
}

/* Adds the step just recorded to the window. */
static void observe(nn_diag *d)
{
    int w = d->opts.window;
    if (d->ring_count == w) d->count[d->ring_verdict[d->ring_pos]]--;
    else d->ring_count++;
    d->ring_norm[d->ring_pos] = sqrt(d->global2);
    d->ring_verdict[d->ring_pos] = (unsigned char)d->verdict;
    d->count[d->verdict]++;
    d->ring_pos = (d->ring_pos + 1) % w;
    d->observed++;
    d->bad_at[d->verdict] = d->observed;
    memcpy(d->bad_why[d->verdict], d->why, sizeof d->why);
    window_verdict(d);
}

/* ---------------- hooks ---------------- */

static nn_status ensure_entries(nn_diag *d, const nn_model *m)
{
    if (d->entry_cap < m->n_layers) {
        int *e = nn__realloc(d->entry_of, (size_t)m->n_layers * sizeof *e);
        if (!e) return NN_ERR_NOMEM;
        d->entry_of = e;
        d->entry_cap = m->n_layers;
    }
    for (int i = 0; i < d->entry_cap; i++) d->entry_of[i] = -1;
    int64_t big = 0;
    for (int k = 0; k < d->n_layers; k++) {
        const nn_diag_layer *e = &d->layers[k];
        d->entry_of[e->index] = k;
        const nn_layer *l = m->layers[e->index];
        for (int j = 0; j < e->n_weights; j++)
            if (e->counted[j] && l->params[j].value.size > big)
                big = l->params[j].value.size;
    }
    if (big > d->copy_cap) {
        nn__free(d->copy);
        d->copy = nn__alloc((size_t)big * sizeof(float));
        d->copy_cap = d->copy ? big : 0;
        if (!d->copy) return NN_ERR_NOMEM;
    }
    return NN_OK;
}

static nn_status record_grads(nn_diag *d, nn_model *m)
{
    d->recorded = false;
    nn_status s = layout(m, &d->layers, &d->cap_layers, &d->n_layers);
    if (s == NN_OK) s = ensure_entries(d, m);
    if (s != NN_OK)
        return nn__fail(s, "gradient diagnostics: out of memory");
    d->global2 = measure(m, d->layers, d->n_layers);
    d->step = m->opt->iterations;
    d->generation = m->generation;
    d->copy_valid = false;
    d->recorded = true;
    d->verdict = nn__diag_verdict(m, &d->opts, d->layers, d->n_layers,
                                  d->global2, d->why, sizeof d->why);
    return NN_OK;
}

/* A step stopped by the finite check: its verdict is the check's. */
static nn_status stop_nonfinite(nn_diag *d, nn_model *m, bool forward,
                                const char *msg)
{
    if (d->opts.record) {
        if (forward && record_grads(d, m) == NN_OK) {
            /* no backward ran: the gradients are the previous step's */
            for (int k = 0; k < d->n_layers; k++)
                for (int j = 0; j < NN_LAYER_MAX_PARAMS; j++)
                    d->layers[k].g2[j] = NAN;
            d->global2 = NAN;
        }
        d->verdict = NN_HEALTH_NONFINITE;
        say(d->why, sizeof d->why, "%s", msg);
        if (d->recorded) observe(d);
    }
    return nn__fail(NN_ERR_NUMERIC, "%s", msg);
}

/* Where the first non-finite value of x (known to hold one) is, and what
 * it is. */
static const char *first_bad(const float *x, int64_t n, int64_t *at)
{
    const char *what;
    *at = nn__first_nonfinite(x, n, &what);
    return what;
}

nn_status nn__diag_after_forward(nn_model *m, const nn_context *c, int batch)
{
    nn_diag *d = m->diag;
    /* Until its backward pass is recorded, this step has no report of its
     * own (the loss may still fail). */
    d->recorded = false;
    if (!d->opts.check_finite) return NN_OK;
    for (int i = 0; i < m->n_layers; i++) {
        const nn_layer *l = m->layers[i];
        int64_t n = (int64_t)batch * nn__shape_size(&l->out);
        if (nn__all_finite(c->act[i], n)) continue;
        int64_t at;
        const char *what = first_bad(c->act[i], n, &at);
        char msg[NN_DIAG_WHY_MAX];
        say(msg, sizeof msg,
            "non-finite value: %s at index %lld of the %s of layer '%s' "
            "(%s), the first in the forward pass of step %lld",
            what, (long long)at,
            l->kind == NN_KIND_INPUT ? "input batch" : "output", l->name,
            l->ops->type_name, (long long)m->opt->iterations + 1);
        return stop_nonfinite(d, m, true, msg);
    }
    return NN_OK;
}

static int bad_message(char *msg, size_t cap, const float *x, int64_t n,
                       const char *what, const nn_layer *l, int64_t step)
{
    if (nn__all_finite(x, n)) return 0;
    int64_t at;
    const char *v = first_bad(x, n, &at);
    say(msg, cap,
        "non-finite value: %s at index %lld of the %s of layer '%s' (%s), "
        "the first in the backward pass of step %lld",
        v, (long long)at, what, l->name, l->ops->type_name, (long long)step);
    return 1;
}

/* Visits the layers in the order nn__backward runs them and checks, for
 * each, the gradient of its output (complete before it runs) and then
 * the gradients of its weights (what it computed). */
static nn_status check_backward(nn_diag *d, nn_model *m, const nn_context *c,
                                int batch, bool want_dx)
{
    int n = m->n_layers;
    bool needs[n], written[n];
    nn__mark_needs(m, want_dx, needs); /* as nn__backward decides */
    memset(written, 0, sizeof written);
    written[m->output->index] = true;
    int64_t step = m->opt->iterations + 1;
    char msg[NN_DIAG_WHY_MAX], what[64];
    for (int i = m->output->index; i >= 0; i--) {
        const nn_layer *l = m->layers[i];
        if (!written[i] || !needs[i] || l->kind == NN_KIND_INPUT) continue;
        int64_t sz = (int64_t)batch * nn__shape_size(&l->out);
        if (bad_message(msg, sizeof msg, c->dact[i], sz, "output gradient", l,
                        step))
            return stop_nonfinite(d, m, false, msg);
        for (int j = 0; j < l->n_params; j++) {
            const nn_param *p = &l->params[j];
            if (!counted(l, p)) continue;
            say(what, sizeof what, "gradient of '%s'", p->name);
            if (bad_message(msg, sizeof msg, p->grad.data, p->grad.size, what,
                            l, step))
                return stop_nonfinite(d, m, false, msg);
        }
        for (int j = 0; j < l->n_inputs; j++) {
            int k = l->inputs[j]->index;
            if (needs[k]) written[k] = true;
        }
    }
    return NN_OK;
}

nn_status nn__diag_after_backward(nn_model *m, const nn_context *c, int batch,
                                  bool want_dx)
{
    nn_diag *d = m->diag;
    if (!d->opts.record) d->recorded = false; /* its report would be stale */
    else NN_TRY(record_grads(d, m));
    if (d->opts.check_finite) NN_TRY(check_backward(d, m, c, batch, want_dx));
    if (d->opts.record) observe(d);
    return NN_OK;
}

static void before_update(nn_diag *d, int layer, const nn_param *p)
{
    d->copy_valid = false;
    if (layer >= d->entry_cap || d->entry_of[layer] < 0) return;
    if (p->value.size > d->copy_cap) return;
    memcpy(d->copy, p->value.data, (size_t)p->value.size * sizeof(float));
    d->copy_valid = true;
}

static void after_update(nn_diag *d, int layer, int param, const nn_param *p)
{
    if (!d->copy_valid) return;
    nn_diag_layer *e = &d->layers[d->entry_of[layer]];
    e->u2[param] = nn__sumsq_diff(p->value.data, d->copy, p->value.size);
    e->w2[param] = nn__sumsq(p->value.data, p->value.size);
    d->copy_valid = false;
}

static void on_step(void *ctx, nn_step_event event, const nn_param_iter *at,
                    int64_t iterations)
{
    nn_diag *d = ctx;
    if (event == NN_STEP_BEFORE_UPDATE)
        before_update(d, at->layer, at->p);
    else if (event == NN_STEP_AFTER_UPDATE)
        after_update(d, at->layer, at->param, at->p);
    else if (d->recorded)
        d->step = iterations;
}

bool nn__diag_step_hook(nn_diag *d, nn_step_hook *hook)
{
    if (!records(d)) return false;
    hook->fn = on_step;
    hook->ctx = d;
    return true;
}

bool nn__diag_last(const nn_model *m, double *global_norm,
                   nn_health *step_verdict, nn_health *window_verdict_out)
{
    const nn_diag *d = m->diag;
    if (!d || !d->opts.record || !d->recorded) return false;
    *global_norm = sqrt(d->global2);
    *step_verdict = d->verdict;
    *window_verdict_out = d->window_verdict;
    return true;
}

/* ---------------- snapshots for reports ---------------- */

static nn_status copy_layers(nn_diag_snapshot *s, const nn_diag_layer *src,
                             int n)
{
    s->layers = nn__alloc((size_t)(n > 0 ? n : 1) * sizeof *s->layers);
    if (!s->layers) return NN_ERR_NOMEM;
    if (n > 0) memcpy(s->layers, src, (size_t)n * sizeof *src);
    s->n_layers = n;
    return NN_OK;
}

static bool any_grad(const nn_model *m)
{
    nn_param_iter it;
    nn__param_iter_init(&it, m, NULL);
    while (nn__param_next(&it))
        if (it.p->grad.data) return true;
    return false;
}

static nn_status measure_now(const nn_model *m, const nn_diag *d,
                             nn_diag_snapshot *s)
{
    NN_CHECK(any_grad(m), NN_ERR_STATE,
             "gradient report: no gradients yet; train a step or call "
             "nn_model_backward first");
    int cap = 0;
    nn_diag_layer *arr = NULL;
    nn_status st = layout(m, &arr, &cap, &s->n_layers);
    if (st != NN_OK) {
        nn__free(arr);
        return nn__fail(st, "gradient report: out of memory");
    }
    if (!arr) {
        arr = nn__alloc(sizeof *arr);
        if (!arr) return nn__fail(NN_ERR_NOMEM, "gradient report: out of memory");
    }
    s->layers = arr;
    s->global2 = measure(m, arr, s->n_layers);
    s->step = m->opt ? m->opt->iterations : 0;
    nn_diag_opts defaults = NN_DIAG_OPTS_INIT;
    s->verdict[0] = nn__diag_verdict(m, d ? &d->opts : &defaults, arr,
                                     s->n_layers, s->global2, s->why[0],
                                     sizeof s->why[0]);
    s->verdict[1] = s->verdict[0];
    say(s->why[1], sizeof s->why[1], "no window recorded; this step: %s",
        s->why[0]);
    return NN_OK;
}

nn_status nn__diag_snapshot(const nn_model *m, nn_diag_snapshot *s)
{
    memset(s, 0, sizeof *s);
    const nn_diag *d = m->diag;
    if (!d || !d->recorded || d->generation != m->generation)
        return measure_now(m, d, s);
    if (copy_layers(s, d->layers, d->n_layers) != NN_OK)
        return nn__fail(NN_ERR_NOMEM, "gradient report: out of memory");
    s->global2 = d->global2;
    s->step = d->step;
    s->verdict[0] = d->verdict;
    s->verdict[1] = d->window_verdict;
    memcpy(s->why[0], d->why, sizeof s->why[0]);
    memcpy(s->why[1], d->window_why, sizeof s->why[1]);
    return NN_OK;
}

/* The public gradient report: a snapshot of the last step's norms and
 * verdicts, its accessors, and the table nn_model_grad_summary prints. */
#include "nn_internal.h"
#include "diag/diag.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

struct nn_grad_report {
    nn_diag_snapshot s;
    char (*names)[NN_NAME_MAX];
    char (*types)[32];
};

void nn_grad_report_free(nn_grad_report *r)
{
    if (!r) return;
    nn__free(r->s.layers);
    nn__free(r->names);
    nn__free(r->types);
    nn__free(r);
}

static nn_status make_report(const nn_model *m, nn_grad_report **out)
{
    nn_grad_report *r = nn__calloc(1, sizeof *r);
    NN_CHECK(r, NN_ERR_NOMEM, "gradient report: out of memory");
    nn_status s = nn__diag_snapshot(m, &r->s);
    if (s != NN_OK) {
        nn__free(r);
        return s;
    }
    size_t n = (size_t)(r->s.n_layers > 0 ? r->s.n_layers : 1);
    r->names = nn__calloc(n, sizeof *r->names);
    r->types = nn__calloc(n, sizeof *r->types);
    if (!r->names || !r->types) {
        nn_grad_report_free(r);
        return nn__fail(NN_ERR_NOMEM, "gradient report: out of memory");
    }
    for (int k = 0; k < r->s.n_layers; k++) {
        const nn_layer *l = m->layers[r->s.layers[k].index];
        snprintf(r->names[k], sizeof r->names[k], "%s", l->name);
        snprintf(r->types[k], sizeof r->types[k], "%s", l->ops->type_name);
    }
    *out = r;
    return NN_OK;
}

nn_status nn_model_grad_report(const nn_model *m, nn_grad_report **out)
{
    NN_CHECK(out, NN_ERR_INVALID, "nn_model_grad_report: out is NULL");
    *out = NULL;
    NN_CHECK(m, NN_ERR_INVALID, "nn_model_grad_report: model is NULL");
    NN_CHECK(m->compiled && m->opt, NN_ERR_STATE,
             "nn_model_grad_report: compile and train the model first");
    return make_report(m, out);
}

int nn_grad_report_num_layers(const nn_grad_report *r)
{
    if (!r) return nn__fail(NN_ERR_INVALID, "nn_grad_report_num_layers: NULL");
    return r->s.n_layers;
}

static bool layer_ok(const nn_grad_report *r, int layer, const char *what)
{
    if (!r) {
        nn__fail(NN_ERR_INVALID, "%s: report is NULL", what);
        return false;
    }
    if (layer < 0 || layer >= r->s.n_layers) {
        nn__fail(NN_ERR_INVALID, "%s: layer %d of a report of %d", what, layer,
                 r->s.n_layers);
        return false;
    }
    return true;
}

const char *nn_grad_report_layer_name(const nn_grad_report *r, int layer)
{
    return layer_ok(r, layer, "nn_grad_report_layer_name") ? r->names[layer]
                                                           : NULL;
}

int nn_grad_report_num_weights(const nn_grad_report *r, int layer)
{
    if (!layer_ok(r, layer, "nn_grad_report_num_weights"))
        return NN_ERR_INVALID;
    return r->s.layers[layer].n_weights;
}

typedef enum which { GRAD, WEIGHT, RATIO } which;

/* Squared norms summed over the counted weights (j = -1) or one weight. */
static double sum2(const nn_diag_layer *e, const double *v, int j)
{
    if (j >= 0) return e->counted[j] ? v[j] : NAN;
    double s = 0;
    for (int k = 0; k < e->n_weights; k++)
        if (e->counted[k]) s += v[k];
    return s;
}

static double ratio(double u2, double w2)
{
    if (isnan(u2) || isnan(w2)) return NAN;
    if (w2 == 0) return u2 == 0 ? 0.0 : INFINITY;
    return sqrt(u2) / sqrt(w2);
}

static double norm_of(const nn_grad_report *r, int layer, int weight,
                      which w, const char *what)
{
    if (!layer_ok(r, layer, what)) return NAN;
    const nn_diag_layer *e = &r->s.layers[layer];
    if (weight < -1 || weight >= e->n_weights) {
        nn__fail(NN_ERR_INVALID, "%s: weight %d of a layer with %d", what,
                 weight, e->n_weights);
        return NAN;
    }
    if (w == GRAD) return sqrt(sum2(e, e->g2, weight));
    if (w == WEIGHT) return sqrt(sum2(e, e->w2, weight));
    return ratio(sum2(e, e->u2, weight), sum2(e, e->wb2, weight));
}

double nn_grad_report_grad_norm(const nn_grad_report *r, int layer, int weight)
{
    return norm_of(r, layer, weight, GRAD, "nn_grad_report_grad_norm");
}

double nn_grad_report_weight_norm(const nn_grad_report *r, int layer,
                                  int weight)
{
    return norm_of(r, layer, weight, WEIGHT, "nn_grad_report_weight_norm");
}

double nn_grad_report_update_ratio(const nn_grad_report *r, int layer,
                                   int weight)
{
    return norm_of(r, layer, weight, RATIO, "nn_grad_report_update_ratio");
}

double nn_grad_report_global_norm(const nn_grad_report *r)
{
    if (!r) {
        nn__fail(NN_ERR_INVALID, "nn_grad_report_global_norm: NULL");
        return NAN;
    }
    return sqrt(r->s.global2);
}

int64_t nn_grad_report_step(const nn_grad_report *r)
{
    if (!r) return nn__fail(NN_ERR_INVALID, "nn_grad_report_step: NULL");
    return r->s.step;
}

nn_status nn_grad_report_health(const nn_grad_report *r, int window,
                                nn_health *verdict, const char **why)
{
    NN_CHECK(r && verdict, NN_ERR_INVALID,
             "nn_grad_report_health: NULL argument");
    NN_CHECK(window == 0 || window == 1, NN_ERR_INVALID,
             "nn_grad_report_health: window must be 0 (step) or 1, got %d",
             window);
    *verdict = r->s.verdict[window];
    if (why) *why = r->s.why[window];
    return NN_OK;
}

/* ---------------- the table ---------------- */


static const char *const verdict_name[4] = {
    "OK", "VANISHING", "EXPLODING", "NONFINITE"};

static void cell(nn_sbuf *s, double v)
{
    if (isnan(v)) nn__sbuf_put(s, " %13s", "-");
    else nn__sbuf_put(s, " %13.4e", v);
}

static void table(nn_sbuf *s, const nn_grad_report *r)
{
    const char *rule = "==================================================="
                       "================================";
    nn__sbuf_put(s, "Gradient report after step %lld\n", (long long)r->s.step);
    nn__sbuf_put(s, "%-40s %13s %13s %13s\n", "Layer (type)", "Grad norm",
        "Weight norm", "Update/weight");
    nn__sbuf_put(s, "%s\n", rule);
    for (int k = 0; k < r->s.n_layers; k++) {
        char label[NN_NAME_MAX + 40];
        snprintf(label, sizeof label, "%s (%s)", r->names[k], r->types[k]);
        nn__sbuf_put(s, "%-40s", label);
        cell(s, nn_grad_report_grad_norm(r, k, -1));
        cell(s, nn_grad_report_weight_norm(r, k, -1));
        cell(s, nn_grad_report_update_ratio(r, k, -1));
        nn__sbuf_put(s, "\n");
    }
    nn__sbuf_put(s, "%s\n", rule);
    nn__sbuf_put(s, "Global gradient norm: %.4e\n", nn_grad_report_global_norm(r));
    nn__sbuf_put(s, "Step health: %s - %s\n", verdict_name[r->s.verdict[0]],
        r->s.why[0]);
    nn__sbuf_put(s, "Window health: %s - %s\n", verdict_name[r->s.verdict[1]],
        r->s.why[1]);
}

nn_status nn_model_grad_summary(const nn_model *m, char *buf, size_t cap,
                                size_t *needed)
{
    NN_CHECK(buf || cap == 0, NN_ERR_INVALID,
             "nn_model_grad_summary: buf is NULL with cap %zu", cap);
    nn_grad_report *r;
    NN_TRY(nn_model_grad_report(m, &r));
    nn_sbuf s = {buf, cap, 0};
    table(&s, r);
    nn_grad_report_free(r);
    nn__sbuf_finish(&s, needed);
    return NN_OK;
}

/* Decision metrics of a model: the binary view of its output evaluated
 * over a data set (docs/metrics.md). The scores and curves are in
 * src/loss/ (scores.c, curve.c); this file runs the model. */
#include "nn_internal.h"
#include "train/train.h"
#include "loss/loss.h"

#include <string.h>

nn_status nn__binary_opts(const nn_model *m, const nn_binary_opts *opts,
                          nn_binary_opts *o, const char *what)
{
    *o = (nn_binary_opts)NN_BINARY_OPTS_INIT;
    NN_TRY(nn__read_opts(o, opts, what));
    nn_loss_batch b = nn__label_batch(m, NULL, 1);
    return nn__binary_check(o, b.classes, what);
}

/* The scores of every output position of (x, y), in inference mode. */
static nn_status collect(nn_model *m, const nn_tensor *x, const nn_tensor *y,
                         int batch_size, int positive_class, nn_curve **c)
{
    nn_loss_batch b = nn__label_batch(m, NULL, 1);
    nn_scores *s = nn__scores_new(positive_class, x->shape[0] * b.positions);
    NN_CHECK(s, NN_ERR_NOMEM, "nn_model_evaluate_binary: out of memory for "
                              "%lld scores",
             (long long)(x->shape[0] * b.positions));
    nn_step_stats sinks = {.scores = s};
    double loss, accuracy;
    nn_status st =
        nn__evaluate_into(m, x, y, batch_size, &sinks, &loss, &accuracy);
    if (st == NN_OK) st = nn__curve_new(s->score, s->label, s->n, c);
    nn__scores_free(s);
    return st;
}

nn_status nn_model_evaluate_binary(nn_model *m, const nn_tensor *x,
                                   const nn_tensor *y, int batch_size,
                                   const nn_binary_opts *opts,
                                   nn_binary_report *report, nn_curve **curve)
{
    const char *what = "nn_model_evaluate_binary";
    if (curve) *curve = NULL;
    NN_TRY(nn__check_xy(m, x, y, what, false));
    NN_CHECK(batch_size > 0, NN_ERR_INVALID, "%s: batch size %d", what,
             batch_size);
    NN_CHECK(report || curve, NN_ERR_INVALID,
             "%s: give a report, a curve or both", what);
    NN_CHECK(!report || report->size >= sizeof(size_t), NN_ERR_INVALID,
             "%s: report->size is %zu; set it to sizeof(nn_binary_report)",
             what, report ? report->size : 0);
    nn_binary_opts o;
    NN_TRY(nn__binary_opts(m, opts, &o, what));
    nn_curve *c = NULL;
    NN_TRY(collect(m, x, y, batch_size, o.positive_class, &c));
    nn_status st = report ? nn_curve_report(c, o.threshold, report) : NN_OK;
    if (st == NN_OK && curve)
        *curve = c;
    else
        nn_curve_free(c);
    return st;
}

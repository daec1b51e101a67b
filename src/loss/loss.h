/* Loss helpers shared with the training loop (src/loss/). */
#ifndef NN_LOSS_H
#define NN_LOSS_H

#include "nn_internal.h"

/* ---------------- compiled losses (src/loss/loss.c) ---------------- */

/* One batch for a compiled loss. The output is [batch, positions,
 * classes]: classes is its last axis, positions the product of the other
 * per-sample axes (1 for a flat output). */
typedef struct nn_loss_batch {
    int batch;
    int64_t positions, classes;
    const float *out;
    /* NULL: out holds probabilities. Else the pre-activation values of out
     * (the same pointer when the output itself is logits); the gradient is
     * then w.r.t. them. */
    const float *logits;
    /* Logits become probabilities by a sigmoid per value, else by a
     * softmax over the classes; also selects binary (per value) rather
     * than categorical (per position) accuracy. nn__loss_sigmoid. */
    bool sigmoid;
    const float *y;
    bool sparse; /* y holds class ids [batch, positions]: nn__loss_sparse */
    float *dout; /* NULL, or receives the gradient of the batch's loss */
    /* NULL, or one finite weight >= 0 per sample (fit's sample_weight and
     * class_weight); the terms weigh each sample's loss by it. */
    const float *sample_weight;
} nn_loss_batch;

static inline double nn__sample_weight(const nn_loss_batch *b, int64_t n)
{
    return b->sample_weight ? (double)b->sample_weight[n] : 1.0;
}

typedef struct nn_loss_sums {
    double loss;         /* += the sum over the batch of per-sample losses */
    int64_t correct;     /* += correct predictions (accuracy) */
    int64_t predictions; /* += predictions counted */
} nn_loss_sums;

/* Checks a loss description (kinds, weights, combination, options) for a
 * compile call named `what`. */
nn_status nn__loss_check(const nn_loss_terms *t, const nn_loss_opts *o,
                         const char *what);
/* The labels are class ids, one per position: a sparse categorical term,
 * or sparse_labels with more than one class. */
bool nn__loss_sparse(const nn_loss_terms *t, const nn_loss_opts *o,
                     int64_t classes);
/* Probabilities are sigmoids (binary): a binary cross-entropy term, or one
 * class and no categorical term. Else softmax over the classes. */
bool nn__loss_sigmoid(const nn_loss_terms *t, int64_t classes);
/* A cross-entropy term, whose stability wants the logits of a fused final
 * activation. */
bool nn__loss_wants_logits(const nn_loss_terms *t);
/* Checks what depends on the output: the class weights' count against
 * its `classes` channels. */
nn_status nn__loss_check_output(const nn_loss_terms *t, const nn_loss_opts *o,
                                int64_t classes, const char *what);
/* Evaluates the terms on one batch (contract in src/loss/loss.c). */
nn_status nn__loss_eval(const nn_loss_terms *t, const nn_loss_opts *o,
                        const nn_loss_batch *b, nn_loss_sums *s);
/* What a term's weighted sum over the batch is divided by: the samples,
 * or (NN_WEIGHT_NORM_SUM) the sum of the sample weights. */
double nn__loss_denominator(const nn_loss_opts *o, const nn_loss_batch *b);

/* Options that a model keeps: o->class_weights becomes the model's own
 * copy (own; NULL stays NULL), freed by release. */
nn_status nn__loss_opts_own(nn_loss_opts *o);
void nn__loss_opts_release(nn_loss_opts *o);

/* Label checks shared by the loss and the confusion matrix: class ids in
 * [0, ids) per position, or values in [0, 1]; messages name the sample
 * (and the position when there are several). */
nn_status nn__check_class_ids(const float *y, int batch, int64_t positions,
                              int64_t ids, const char *what);
nn_status nn__check_unit_labels(const float *y, int batch, int64_t positions,
                                int64_t classes, const char *what);
nn_status nn__check_finite_values(const float *v, int batch,
                                  int64_t positions, int64_t classes,
                                  const char *what, const char *name);
/* Index of the first maximum of v[0..n-1]. */
int64_t nn__argmax(const float *v, int64_t n);

/* ---------------- the terms (crossentropy.c, overlap.c) ------------- */

/* Each adds weight * its gradient into b->dout (when not NULL) and returns
 * the sum over the batch of its per-sample losses, not multiplied by
 * `weight` (sample weights included, scaled so that / batch is the
 * normalised mean). Inputs are already validated. */
double nn__cce_term(const nn_loss_batch *b, const nn_loss_opts *o,
                    double weight);
double nn__bce_term(const nn_loss_batch *b, const nn_loss_opts *o,
                    double weight);

/* IoU and Dice share their sums: one pass adds every overlap term of t.
 * ws holds nn__overlap_ws_doubles(...) doubles. Returns the sum over the
 * batch of per-sample losses, weighted. */
size_t nn__overlap_ws_doubles(const nn_loss_opts *o, const nn_loss_batch *b);
double nn__overlap_terms(const nn_loss_terms *t, const nn_loss_opts *o,
                         const nn_loss_batch *b, double *ws);

/* ---------------- confusion matrix (confusion.c) ---------------- */

struct nn_confusion {
    int classes;
    int64_t *counts; /* [truth * classes + predicted] */
};

/* The classes a confusion matrix of an output with `classes` channels
 * has: classes, or 2 for one channel. */
int nn__confusion_classes_for(int64_t classes);
/* Adds a validated batch: labels as the loss reads them (sparse: class
 * ids; else the output's shape, mask values for one channel). */
void nn__confusion_add(nn_confusion *cm, const nn_loss_batch *b,
                       bool out_is_logits);
/* Adds the counts of `from` (of as many classes) to `into`. */
void nn__confusion_merge(nn_confusion *into, const nn_confusion *from);
/* The true class of a row of validated labels: the id, the argmax of a
 * one-hot row, or for one channel 1 where the mask is > 0.5. */
int64_t nn__label_class(const nn_loss_batch *b, int64_t row);
/* The predicted class of one output row of `classes` values: the argmax
 * (first of ties), or for one channel 1 where p > 0.5 (the logit > 0). */
int64_t nn__row_class(const float *o, int64_t classes, bool out_is_logits);

/* ---------------- decision metrics (decision.c, curve.c) ------------ */

/* Scores of the positive class and their binary labels, collected over
 * batches into arrays sized once (fit, evaluate). */
typedef struct nn_scores {
    int positive_class; /* nn_binary_opts.positive_class */
    int64_t n, cap;
    float *score, *label;
} nn_scores;

/* Checks nn_binary_opts against an output of `classes` channels. */
nn_status nn__binary_check(const nn_binary_opts *o, int64_t classes,
                           const char *what);
/* A collector for `cap` rows; NULL when out of memory. */
nn_scores *nn__scores_new(int positive_class, int64_t cap);
void nn__scores_free(nn_scores *s);
/* The score of one output row of c values (docs/metrics.md): the
 * probability of the positive classes, through a sigmoid or softmax when
 * the row holds logits. The one rule for evaluation and for the
 * product's verdicts (src/io/infer.c). */
float nn__row_score(const float *o, int64_t c, bool logits,
                    int positive_class);
/* Appends every row of a validated batch: its score (the positive
 * classes' probability from b->out, through a sigmoid or softmax when
 * out_is_logits) and its label. */
nn_status nn__scores_add(nn_scores *s, const nn_loss_batch *b,
                         bool out_is_logits);
/* The decision at `threshold` over the collected scores, with ROC AUC and
 * average precision (NaN where undefined); no error message is left for
 * those. Allocates the curve for the time of the call. */
nn_status nn__scores_report(const nn_scores *s, float threshold,
                            nn_binary_report *r);
/* The curve of n validated scores and labels. */
nn_status nn__curve_new(const float *scores, const float *labels, int64_t n,
                        nn_curve **out);
/* The report at `threshold`, every member filled (quiet: NaN AUCs leave
 * no error message). */
void nn__curve_report(const nn_curve *c, float threshold,
                      nn_binary_report *r);

#endif

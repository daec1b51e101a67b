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
} nn_loss_batch;

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
/* Evaluates the terms on one batch (contract in src/loss/loss.c). */
nn_status nn__loss_eval(const nn_loss_terms *t, const nn_loss_opts *o,
                        const nn_loss_batch *b, nn_loss_sums *s);

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
 * the sum over the batch of its per-sample losses, unweighted. Inputs are
 * already validated. */
double nn__cce_term(const nn_loss_batch *b, double weight);
double nn__bce_term(const nn_loss_batch *b, double weight);

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

#endif

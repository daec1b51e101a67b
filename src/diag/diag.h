/* Gradient diagnostics (src/diag/): the internal interface the training
 * loop (src/train/) calls; the optimizer step reports to them through the
 * hook of nn__diag_step_hook. Every hook is only called when its feature
 * is on, so a model without diagnostics pays one pointer test per step. */
#ifndef NN_DIAG_H
#define NN_DIAG_H

#include "nn_internal.h"

typedef struct nn_diag nn_diag;

/* ---------------- state and hooks (diag.c) ---------------- */

void nn__diag_free(nn_diag *d);
/* The diagnostics scan every layer's output (check_finite): a training
 * pass then needs every activation (a full plan). */
bool nn__diag_scans(const nn_diag *d);

/* After the forward pass: the finite check of the outputs, in layer order
 * (only with check_finite). */
nn_status nn__diag_after_forward(nn_model *m, const nn_context *c, int batch);
/* After the backward pass: gradient and weight norms (record), the step's
 * verdict, then the finite check of the gradients in backward order
 * (check_finite). want_dx: the pass also computed the input gradient. */
nn_status nn__diag_after_backward(nn_model *m, const nn_context *c, int batch,
                                  bool want_dx);
/* The optimizer step's listener when this step's gradients were recorded
 * (nn__diag_records): before each update it keeps a copy of the weights,
 * after it measures the update from that copy. Returns false, and leaves
 * *hook alone, when nothing needs to listen. */
bool nn__diag_step_hook(nn_diag *d, nn_step_hook *hook);

/* What fit reads after each step; false when the step was not recorded. */
bool nn__diag_last(const nn_model *m, double *global_norm,
                   nn_health *step_verdict, nn_health *window_verdict);

/* fit's temporary settings: switches recording and/or checking on for
 * the run and restores the model's own settings afterwards. */
typedef struct nn_diag_saved {
    bool had_diag;
    nn_diag_opts opts;
} nn_diag_saved;
nn_status nn__diag_push(nn_model *m, bool record, bool check,
                        nn_diag_saved *saved);
void nn__diag_pop(nn_model *m, const nn_diag_saved *saved);

/* ---------------- reports (report.c uses diag.c's state) ---------------- */

/* Per layer of a report or of the recorded state. */
typedef struct nn_diag_layer {
    int index;     /* in model->layers */
    int n_weights; /* the layer's n_params */
    bool counted[NN_LAYER_MAX_PARAMS]; /* trainable weight with a gradient */
    double g2[NN_LAYER_MAX_PARAMS];  /* squared norms: gradient (unclipped) */
    double w2[NN_LAYER_MAX_PARAMS];  /* weights, after the update if any */
    double wb2[NN_LAYER_MAX_PARAMS]; /* weights before the update */
    double u2[NN_LAYER_MAX_PARAMS];  /* update; NaN when none recorded */
} nn_diag_layer;

#define NN_DIAG_WHY_MAX 320

/* The numbers behind a report: filled from the recorded state, or by
 * measuring the model now. `layers` is allocated (nn__free). */
typedef struct nn_diag_snapshot {
    nn_diag_layer *layers;
    int n_layers;
    double global2;
    int64_t step;
    nn_health verdict[2]; /* step, window */
    char why[2][NN_DIAG_WHY_MAX];
} nn_diag_snapshot;

nn_status nn__diag_snapshot(const nn_model *m, nn_diag_snapshot *s);

/* The step verdict from per-layer norms (also used for measured
 * snapshots). */
nn_health nn__diag_verdict(const nn_model *m, const nn_diag_opts *o,
                           const nn_diag_layer *layers, int n, double global2,
                           char *why, size_t cap);

#endif

/* Internal interface between the training loop files. */
#ifndef NN_TRAIN_H
#define NN_TRAIN_H

#include "nn_internal.h"
#include "loss/loss.h"

typedef struct nn_step_stats {
    double loss_sum;     /* sum of per-sample losses */
    int64_t correct;     /* correct predictions, of */
    int64_t predictions; /* (src/loss/loss.c: accuracy) */
    bool preact;         /* the loss gradient is w.r.t. the fused logits */
    nn_confusion *cm;    /* not NULL: the loss step adds the batch to it */
    /* NULL, or the weight of each sample of the batch (fit) */
    const float *sample_weight;
    /* not NULL: the loss step adds the batch's binary scores to it */
    struct nn_scores *scores;
    /* in a data-parallel fit, the samples of the step over all processes
     * (the gradient hook's nn_grad_info.total_samples); 0 otherwise */
    int64_t total_samples;
} nn_step_stats;

int64_t nn__label_size(const nn_model *m);
/* The labels y of n samples fit the compiled loss and the output (their
 * count, then their width); messages start with `what`, the public
 * function, and name y, or val_y for validation data. */
nn_status nn__check_labels(const nn_model *m, const nn_tensor *y, int64_t n,
                           const char *what, bool validation);
/* Everything fit, evaluate and a training step need of (x, y) before they
 * start: a compiled model, x's shape, the labels' count and width, a loss
 * that suits the output, finite inputs and valid label values (whose
 * messages name the sample's index in x and y). */
nn_status nn__check_xy(const nn_model *m, const nn_tensor *x,
                       const nn_tensor *y, const char *what,
                       bool validation);
nn_status nn__model_context(nn_model *m, nn_context **out);
nn_status nn__loss_step(nn_model *m, nn_context *c, const float *y, int batch,
                        bool want_grad, nn_step_stats *st);
/* The loss's view of `batch` rows of labels y for the model's output:
 * shape, label form and activation (no output, gradient or weights). */
nn_loss_batch nn__label_batch(const nn_model *m, const float *y, int batch);
/* Forward, loss, backward and (if update) an optimizer step on raw rows. */
nn_status nn__train_step(nn_model *m, const float *x, const float *y,
                         int batch, bool training, bool update, float *dx,
                         nn_step_stats *st);
/* A zeroed confusion matrix that fits the model's output. */
nn_confusion *nn__model_confusion(const nn_model *m);
/* Mean loss and accuracy in inference mode; cm (may be NULL) receives the
 * predictions. */
nn_status nn__evaluate(nn_model *m, const nn_tensor *x, const nn_tensor *y,
                       int batch_size, nn_confusion *cm, double *loss,
                       double *accuracy);
/* The same, adding the predictions to the sinks' cm and scores (either
 * may be NULL). */
nn_status nn__evaluate_into(nn_model *m, const nn_tensor *x,
                            const nn_tensor *y, int batch_size,
                            const nn_step_stats *sinks, double *loss,
                            double *accuracy);
/* Reads nn_binary_opts (NULL: defaults) and checks them against the
 * model's output. */
nn_status nn__binary_opts(const nn_model *m, const nn_binary_opts *opts,
                          nn_binary_opts *o, const char *what);
/* Per-sample weights of fit's training data (nn_fit_opts.class_weight
 * and sample_weight): *w receives a new array of x's N values, or NULL
 * when fit has neither. */
nn_status nn__fit_sample_weights(const nn_model *m, const nn_tensor *y,
                                 const nn_fit_opts *o, float **w);

/* ---- data-parallel training (src/train/parallel.c) ---- */

/* Runs the model's gradient hook, if any, on the gathered gradients of the
 * parameters that train (total: nn_grad_info.total_samples). */
nn_status nn__grad_hook_run(nn_model *m, int64_t total);
/* A step of a data-parallel fit in which this process has no sample:
 * zero gradients through the hook and the optimizer (src/train/train.c). */
nn_status nn__train_step_empty(nn_model *m, int64_t total);

/* The number of processes of a fit (world_size, 0 counting as 1). */
int nn__fit_world(const nn_fit_opts *o);
/* Checks rank, world_size and, for several processes, the hooks. */
nn_status nn__fit_check_parallel(const nn_model *m, const nn_fit_opts *o);
/* Process rank's samples of a global step of `total`: [start, start +
 * count) of it (the rule in include/nn.h, nn_sync_fn). */
void nn__shard(int64_t total, int rank, int world, int64_t *start,
               int64_t *count);
/* Before the first epoch: every process must agree on the data sizes and
 * options (NN_ERR_INVALID naming the first difference). */
nn_status nn__fit_sync_start(nn_model *m, int64_t n, const nn_fit_opts *o);

/* An epoch's training figures on this process, summed in place over all
 * of them by nn__fit_sync_epoch (with cm's counts, if cm). */
typedef struct nn_fit_sums {
    double loss_sum;
    int64_t correct, predictions, samples;
} nn_fit_sums;
nn_status nn__fit_sync_epoch(nn_model *m, const nn_fit_opts *o,
                             nn_fit_sums *sums, nn_confusion *cm);

#endif

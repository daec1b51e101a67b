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
} nn_step_stats;

int64_t nn__label_size(const nn_model *m);
nn_status nn__check_labels(const nn_model *m, const nn_tensor *y, int64_t n,
                           const char *what);
nn_status nn__check_xy(const nn_model *m, const nn_tensor *x,
                       const nn_tensor *y, const char *what);
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

#endif

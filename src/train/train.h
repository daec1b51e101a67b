/* Internal interface between the training loop files. */
#ifndef NN_TRAIN_H
#define NN_TRAIN_H

#include "nn_internal.h"

typedef struct nn_step_stats {
    double loss_sum;  /* sum of per-sample losses */
    int64_t correct;  /* see nn__loss_accuracy_denominator */
    bool preact;      /* the loss gradient is w.r.t. the fused logits */
} nn_step_stats;

int64_t nn__label_size(const nn_model *m);
nn_status nn__check_labels(const nn_model *m, const nn_tensor *y, int64_t n,
                           const char *what);
nn_status nn__check_xy(const nn_model *m, const nn_tensor *x,
                       const nn_tensor *y, const char *what);
nn_status nn__model_context(nn_model *m, nn_context **out);
nn_status nn__loss_step(nn_model *m, nn_context *c, const float *y, int batch,
                        bool want_grad, nn_step_stats *st);
/* Forward, loss, backward and (if update) an optimizer step on raw rows. */
nn_status nn__train_step(nn_model *m, const float *x, const float *y,
                         int batch, bool training, bool update, float *dx,
                         nn_step_stats *st);
nn_status nn__evaluate(nn_model *m, const nn_tensor *x, const nn_tensor *y,
                       int batch_size, double *loss, double *accuracy);

#endif

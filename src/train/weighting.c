/* fit's sample weights (Keras fit(class_weight=, sample_weight=);
 * docs/losses.md): one weight per training sample, the product of its
 * sample_weight and the class_weight of its label's class. */
#include "nn_internal.h"
#include "train/train.h"
#include "loss/loss.h"

#include <math.h>

static nn_status check_weights(const float *w, int64_t n, const char *what)
{
    for (int64_t i = 0; i < n; i++)
        NN_CHECK(isfinite(w[i]) && w[i] >= 0, NN_ERR_INVALID,
                 "nn_model_fit: %s %lld is %g; weights must be finite and "
                 ">= 0",
                 what, (long long)i, (double)w[i]);
    return NN_OK;
}

static nn_status check_sample_weight(const nn_tensor *sw, int64_t n)
{
    NN_CHECK(sw->shape[0] == n && sw->size == n, NN_ERR_SHAPE,
             "nn_model_fit: sample_weight has %lld values in %lld rows; "
             "give one per sample ([%lld])",
             (long long)sw->size, (long long)sw->shape[0], (long long)n);
    return check_weights(sw->data, n, "sample weight");
}

/* Keras reads the class of a sample from its label: the id, the argmax of
 * a one-hot row, the rounded value of a one-channel label; it refuses
 * labels with more positions than one. */
static nn_status check_class_weight(const nn_fit_opts *o,
                                    const nn_loss_batch *b)
{
    int classes = nn__confusion_classes_for(b->classes);
    NN_CHECK(o->num_class_weight == classes, NN_ERR_INVALID,
             "nn_model_fit: %d class weights for an output of %d classes",
             o->num_class_weight, classes);
    NN_CHECK(b->positions == 1, NN_ERR_INVALID,
             "nn_model_fit: class_weight weighs whole samples, and each "
             "sample has %lld output positions; weigh positions with "
             "nn_loss_opts.class_weights",
             (long long)b->positions);
    NN_TRY(check_weights(o->class_weight, classes, "class weight"));
    if (b->sparse)
        return nn__check_class_ids(b->y, b->batch, 1, b->classes,
                                   "nn_model_fit");
    return nn__check_unit_labels(b->y, b->batch, 1, b->classes,
                                 "nn_model_fit");
}

nn_status nn__fit_sample_weights(const nn_model *m, const nn_tensor *y,
                                 const nn_fit_opts *o, float **w)
{
    *w = NULL;
    NN_CHECK(o->class_weight || o->num_class_weight == 0, NN_ERR_INVALID,
             "nn_model_fit: num_class_weight is %d but class_weight is "
             "NULL",
             o->num_class_weight);
    if (!o->class_weight && !o->sample_weight) return NN_OK;
    int64_t n = y->shape[0];
    nn_loss_batch b = nn__label_batch(m, y->data, (int)n);
    if (o->sample_weight) NN_TRY(check_sample_weight(o->sample_weight, n));
    if (o->class_weight) NN_TRY(check_class_weight(o, &b));
    float *v = nn__alloc((size_t)n * sizeof *v);
    NN_CHECK(v, NN_ERR_NOMEM, "nn_model_fit: out of memory for %lld sample "
                              "weights", (long long)n);
    for (int64_t i = 0; i < n; i++) {
        v[i] = o->sample_weight ? o->sample_weight->data[i] : 1.0f;
        if (o->class_weight) v[i] *= o->class_weight[nn__label_class(&b, i)];
    }
    *w = v;
    return NN_OK;
}

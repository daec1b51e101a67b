/* Compile, one training step, backward for tests, evaluate, predict. The
 * loop never knows a layer kind: it sees the graph, the loss and the
 * optimizer. */
#include "nn_internal.h"
#include "train/train.h"
#include "loss/loss.h"
#include "optim/optim.h"
#include "diag/diag.h"

#include <math.h>
#include <string.h>

static bool loss_known(nn_loss loss)
{
    return loss == NN_LOSS_CATEGORICAL_CROSSENTROPY ||
           loss == NN_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY ||
           loss == NN_LOSS_BINARY_CROSSENTROPY;
}

nn_status nn_model_compile(nn_model *m, nn_optimizer *opt, nn_loss loss,
                           const nn_loss_opts *opts)
{
    NN_CHECK(m && opt, NN_ERR_INVALID, "nn_model_compile: NULL argument");
    NN_CHECK(loss_known(loss), NN_ERR_INVALID,
             "nn_model_compile: unknown loss %d", (int)loss);
    NN_CHECK(!opt->owned_by_model || opt == m->opt, NN_ERR_INVALID,
             "nn_model_compile: the optimizer belongs to another model");
    NN_CHECK(m->output, NN_ERR_STATE, "nn_model_compile: model is empty");
    nn_loss_opts lo = NN_LOSS_OPTS_INIT;
    if (opts) {
        NN_CHECK(opts->size >= sizeof(size_t), NN_ERR_INVALID,
                 "nn_model_compile: opts->size is %zu", opts->size);
        memcpy(&lo, opts, opts->size < sizeof lo ? opts->size : sizeof lo);
        lo.size = sizeof lo;
    }
    if (m->opt && m->opt != opt) {
        /* Diagnostics belong to the model: the new optimizer carries them. */
        if (!opt->diag) {
            opt->diag = m->opt->diag;
            m->opt->diag = NULL;
        }
        m->opt->owned_by_model = false;
        nn_optimizer_free(m->opt);
    }
    opt->owned_by_model = true;
    m->opt = opt;
    m->loss = loss;
    m->loss_opts = lo;
    m->compiled = true;
    return NN_OK;
}

int64_t nn__label_size(const nn_model *m)
{
    if (m->loss == NN_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY) return 1;
    return nn__shape_size(&m->output->out);
}

nn_status nn__check_labels(const nn_model *m, const nn_tensor *y, int64_t n,
                           const char *what)
{
    NN_CHECK(y, NN_ERR_INVALID, "%s: labels are NULL", what);
    NN_CHECK(y->shape[0] == n, NN_ERR_SHAPE,
             "%s: %lld labels for %lld samples", what, (long long)y->shape[0],
             (long long)n);
    int64_t per = y->size / y->shape[0];
    NN_CHECK(per == nn__label_size(m), NN_ERR_SHAPE,
             "%s: each label has %lld values, the loss needs %lld", what,
             (long long)per, (long long)nn__label_size(m));
    return NN_OK;
}

static nn_activation output_activation(const nn_layer *l)
{
    if (l->kind == NN_KIND_SOFTMAX) return NN_ACT_SOFTMAX;
    if (l->kind == NN_KIND_SIGMOID) return NN_ACT_SIGMOID;
    return l->activation;
}

/* Keras computes cross-entropy from the logits of a final softmax/sigmoid
 * (its `_keras_logits`), which is exact where probabilities underflow. */
static const float *fused_logits(const nn_model *m, const nn_context *c)
{
    const nn_layer *l = m->output;
    nn_activation act = output_activation(l);
    bool fits = m->loss == NN_LOSS_BINARY_CROSSENTROPY ? act == NN_ACT_SIGMOID
                                                       : act == NN_ACT_SOFTMAX;
    if (!fits || !l->ops->logits) return NULL;
    return l->ops->logits(l, c->state[l->index]);
}

nn_status nn__loss_step(nn_model *m, nn_context *c, const float *y, int batch,
                        bool want_grad, nn_step_stats *st)
{
    const nn_layer *o = m->output;
    const float *out = c->act[o->index];
    const float *logits = NULL;
    st->preact = false;
    if (m->loss_opts.from_logits) {
        logits = out;
    } else if ((logits = fused_logits(m, c)) != NULL) {
        st->preact = true;
    }
    return nn__loss(m->loss, batch, nn__shape_size(&o->out), out, logits, y,
                    want_grad ? c->dact[o->index] : NULL, &st->loss_sum,
                    &st->correct);
}

static nn_status ensure_grads(nn_model *m)
{
    for (int i = 0; i < m->n_layers; i++) {
        nn_layer *l = m->layers[i];
        for (int j = 0; j < l->n_params; j++) {
            nn_param *p = &l->params[j];
            if (p->grad.data) continue;
            p->grad.data = nn__calloc((size_t)p->value.size, sizeof(float));
            if (!p->grad.data) return NN_ERR_NOMEM;
        }
    }
    return NN_OK;
}

nn_status nn__model_context(nn_model *m, nn_context **out)
{
    if (!m->ctx) m->ctx = nn__context_new(m);
    if (!m->ctx) return NN_ERR_NOMEM;
    *out = m->ctx;
    return NN_OK;
}

static uint64_t step_key(nn_model *m)
{
    uint64_t z = m->seed + 0x9e3779b97f4a7c15ULL * (++m->step_counter);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    return z ^ (z >> 27);
}

nn_status nn__train_step(nn_model *m, const float *x, const float *y,
                         int batch, bool training, bool update, float *dx,
                         nn_step_stats *st)
{
    nn_context *c;
    NN_TRY(nn__model_context(m, &c));
    NN_TRY(ensure_grads(m));
    /* Gradient diagnostics (src/diag/): a NULL test when they are off. */
    nn_diag *d = m->opt->diag;
    /* The input gradient, or a scan of every output, needs them all. */
    bool full = dx || nn__diag_scans(d);
    NN_TRY(nn__context_plan(c, batch, true, full));
    /* Every allocation of a step comes before the forward pass, which
     * moves BatchNormalization's statistics and the dropout counter: a
     * step that runs out of memory changes nothing. */
    if (update) NN_TRY(nn__optimizer_prepare(m->opt, m));
    NN_TRY(nn__forward(c, x, batch, training, step_key(m)));
    if (d) NN_TRY(nn__diag_after_forward(m, c, batch));
    NN_TRY(nn__loss_step(m, c, y, batch, true, st));
    NN_TRY(nn__backward(c, batch, st->preact, dx));
    if (d) NN_TRY(nn__diag_after_backward(m, c, batch, dx != NULL));
    if (update) NN_TRY(nn__optimizer_step(m->opt, m));
    return NN_OK;
}

nn_status nn__check_xy(const nn_model *m, const nn_tensor *x,
                       const nn_tensor *y, const char *what)
{
    NN_CHECK(m, NN_ERR_INVALID, "%s: model is NULL", what);
    NN_CHECK(m->compiled, NN_ERR_STATE, "%s: compile the model first", what);
    NN_CHECK(x, NN_ERR_INVALID, "%s: x is NULL", what);
    NN_TRY(nn__check_data(m->input, x, what));
    return nn__check_labels(m, y, x->shape[0], what);
}

static void report(const nn_model *m, const nn_step_stats *st, int batch,
                   float *loss, float *accuracy)
{
    if (loss) *loss = (float)(st->loss_sum / batch);
    if (accuracy)
        *accuracy = (float)st->correct /
                    (float)nn__loss_accuracy_denominator(
                        m->loss, batch, nn__shape_size(&m->output->out));
}

static nn_status check_batch_size(const nn_tensor *x)
{
    NN_CHECK(x->shape[0] <= (1 << 30), NN_ERR_INVALID,
             "batch of %lld samples is too large: at most 1073741824 (2^30)",
             (long long)x->shape[0]);
    return NN_OK;
}

nn_status nn_model_train_batch(nn_model *m, const nn_tensor *x,
                               const nn_tensor *y, float *loss, float *accuracy)
{
    NN_TRY(nn__check_xy(m, x, y, "nn_model_train_batch"));
    NN_TRY(check_batch_size(x));
    nn_step_stats st = {0};
    int batch = (int)x->shape[0];
    NN_TRY(nn__train_step(m, x->data, y->data, batch, true, true, NULL, &st));
    report(m, &st, batch, loss, accuracy);
    return NN_OK;
}

nn_status nn_model_backward(nn_model *m, const nn_tensor *x, const nn_tensor *y,
                            int training, float *loss, nn_tensor *dx)
{
    NN_TRY(nn__check_xy(m, x, y, "nn_model_backward"));
    NN_TRY(check_batch_size(x));
    if (dx)
        NN_CHECK(dx->size == x->size, NN_ERR_SHAPE,
                 "nn_model_backward: dx has %lld values, x has %lld",
                 (long long)dx->size, (long long)x->size);
    nn_step_stats st = {0};
    int batch = (int)x->shape[0];
    NN_TRY(nn__train_step(m, x->data, y->data, batch, training != 0, false,
                          dx ? dx->data : NULL, &st));
    report(m, &st, batch, loss, NULL);
    return NN_OK;
}

nn_status nn_model_apply_gradients(nn_model *m)
{
    NN_CHECK(m, NN_ERR_INVALID, "nn_model_apply_gradients: model is NULL");
    NN_CHECK(m->compiled, NN_ERR_STATE,
             "nn_model_apply_gradients: compile the model first");
    NN_CHECK(m->ctx && m->ctx->training_ready, NN_ERR_STATE,
             "nn_model_apply_gradients: no gradients computed yet");
    return nn__optimizer_step(m->opt, m);
}

nn_status nn__evaluate(nn_model *m, const nn_tensor *x, const nn_tensor *y,
                       int batch_size, double *loss, double *accuracy)
{
    nn_context *c;
    NN_TRY(nn__model_context(m, &c));
    int64_t n = x->shape[0];
    int64_t in_sz = nn__shape_size(&m->input->out);
    int64_t y_sz = nn__label_size(m);
    int b = (int)(n < batch_size ? n : batch_size);
    NN_TRY(nn__context_plan(c, b, false, false));
    nn_step_stats total = {0};
    for (int64_t i = 0; i < n; i += b) {
        int cur = (int)(n - i < b ? n - i : b);
        nn_step_stats st = {0};
        NN_TRY(nn__forward(c, x->data + i * in_sz, cur, false, 0));
        NN_TRY(nn__loss_step(m, c, y->data + i * y_sz, cur, false, &st));
        total.loss_sum += st.loss_sum;
        total.correct += st.correct;
    }
    *loss = total.loss_sum / (double)n;
    *accuracy = (double)total.correct /
                (double)nn__loss_accuracy_denominator(
                    m->loss, (int)n, nn__shape_size(&m->output->out));
    return NN_OK;
}

nn_status nn_model_evaluate(nn_model *m, const nn_tensor *x, const nn_tensor *y,
                            int batch_size, float *loss, float *accuracy)
{
    NN_TRY(nn__check_xy(m, x, y, "nn_model_evaluate"));
    NN_CHECK(batch_size > 0, NN_ERR_INVALID,
             "nn_model_evaluate: batch size must be positive, got %d",
             batch_size);
    double l, a;
    NN_TRY(nn__evaluate(m, x, y, batch_size, &l, &a));
    if (loss) *loss = (float)l;
    if (accuracy) *accuracy = (float)a;
    return NN_OK;
}

nn_status nn_model_predict(nn_model *m, const nn_tensor *x, nn_tensor *out,
                           int batch_size)
{
    NN_CHECK(m, NN_ERR_INVALID, "nn_model_predict: model is NULL");
    nn_context *c;
    NN_TRY(nn__model_context(m, &c));
    return nn__predict(c, x, out, batch_size);
}

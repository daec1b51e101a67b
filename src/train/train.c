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

static int64_t out_classes(const nn_model *m);

nn_status nn_model_compile(nn_model *m, nn_optimizer *opt, nn_loss loss,
                           const nn_loss_opts *opts)
{
    NN_CHECK(m && opt, NN_ERR_INVALID, "nn_model_compile: NULL argument");
    NN_CHECK(!opt->owned_by_model || opt == m->opt, NN_ERR_INVALID,
             "nn_model_compile: the optimizer belongs to another model");
    NN_CHECK(m->output, NN_ERR_STATE, "nn_model_compile: model is empty");
    nn_loss_opts lo = NN_LOSS_OPTS_INIT;
    NN_TRY(nn__read_opts(&lo, opts, "nn_model_compile"));
    nn_loss_terms terms = {1, {loss}, {1.0f}};
    NN_TRY(nn__loss_check(&terms, &lo, "nn_model_compile"));
    NN_TRY(nn__loss_check_output(&terms, &lo, out_classes(m),
                                 "nn_model_compile"));
    NN_TRY(nn__loss_opts_own(&lo)); /* the caller's class weights */
    if (m->opt && m->opt != opt) {
        m->opt->owned_by_model = false;
        nn_optimizer_free(m->opt);
    }
    opt->owned_by_model = true;
    m->opt = opt;
    m->loss = loss;
    nn__loss_opts_release(&m->loss_opts);
    m->loss_opts = lo;
    m->loss_terms = terms;
    m->compiled = true;
    return NN_OK;
}

/* The model's destructor lives here, above everything a model owns: its
 * layers and contexts (graph), its optimizer and its diagnostics. */
void nn_model_free(nn_model *m)
{
    if (!m) return;
    nn_context_free(m->ctx);
    for (int i = 0; i < m->n_layers; i++) nn__layer_free(m->layers[i]);
    nn__free(m->layers);
    if (m->opt) {
        m->opt->owned_by_model = false;
        nn_optimizer_free(m->opt);
    }
    nn__diag_free(m->diag);
    nn__loss_opts_release(&m->loss_opts);
    nn__free(m);
}

nn_status nn_model_compile_weighted(nn_model *m, nn_optimizer *opt, int n,
                                    const nn_loss *losses,
                                    const float *weights,
                                    const nn_loss_opts *opts)
{
    const char *what = "nn_model_compile_weighted";
    NN_CHECK(losses && weights, NN_ERR_INVALID, "%s: NULL losses or weights",
             what);
    nn_loss_terms terms = {n, {0}, {0}};
    NN_CHECK(n >= 1 && n <= NN_LOSS_MAX_TERMS, NN_ERR_INVALID,
             "%s: %d losses; give 1 to %d", what, n, NN_LOSS_MAX_TERMS);
    for (int k = 0; k < n; k++) {
        terms.kind[k] = losses[k];
        terms.weight[k] = weights[k];
    }
    nn_loss_opts lo = NN_LOSS_OPTS_INIT;
    NN_TRY(nn__read_opts(&lo, opts, what));
    NN_TRY(nn__loss_check(&terms, &lo, what));
    NN_TRY(nn__loss_check_output(&terms, &lo, out_classes(m), what));
    /* The first term alone is a valid compile without the weights (IoU
     * may come before the cross-entropy they weigh); the sum replaces it,
     * with the weights copied beforehand so nothing fails after it. */
    nn_loss_opts first = lo;
    first.size = sizeof first;
    first.class_weights = NULL;
    first.num_class_weights = 0;
    first.pos_weight = 1.0f;
    NN_TRY(nn__loss_opts_own(&lo));
    nn_status s = nn_model_compile(m, opt, terms.kind[0], &first);
    if (s != NN_OK) {
        nn__loss_opts_release(&lo);
        return s;
    }
    lo.size = sizeof lo;
    m->loss_opts = lo;
    m->loss_terms = terms;
    return NN_OK;
}

/* The output [positions, classes] per sample: classes is its last axis. */
static int64_t out_classes(const nn_model *m)
{
    return m->output->out.d[m->output->out.rank - 1];
}

static int64_t out_positions(const nn_model *m)
{
    return nn__shape_size(&m->output->out) / out_classes(m);
}

static bool sparse_labels(const nn_model *m)
{
    return nn__loss_sparse(&m->loss_terms, &m->loss_opts, out_classes(m));
}

int64_t nn__label_size(const nn_model *m)
{
    if (sparse_labels(m)) return out_positions(m);
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
             "%s: each label has %lld values, the loss needs %lld (%s)", what,
             (long long)per, (long long)nn__label_size(m),
             sparse_labels(m) ? "a class id per output position"
                              : "the output's shape");
    return NN_OK;
}

static nn_activation output_activation(const nn_layer *l)
{
    nn_activation own = l->ops->logits_act;
    return own != NN_ACT_NONE ? own : l->activation;
}

/* Keras computes cross-entropy from the logits of a final softmax/sigmoid
 * (its `_keras_logits`), which is exact where probabilities underflow. A
 * sum with a cross-entropy term then computes every term from them (IoU
 * and Dice apply the same sigmoid or softmax). */
static const float *fused_logits(const nn_model *m, const nn_context *c)
{
    const nn_layer *l = m->output;
    nn_activation act = output_activation(l);
    bool sigmoid = nn__loss_sigmoid(&m->loss_terms, out_classes(m));
    bool fits = sigmoid ? act == NN_ACT_SIGMOID : act == NN_ACT_SOFTMAX;
    if (!fits || !nn__loss_wants_logits(&m->loss_terms) || !l->ops->logits)
        return NULL;
    return l->ops->logits(l, c->state[l->index]);
}

nn_loss_batch nn__label_batch(const nn_model *m, const float *y, int batch)
{
    nn_loss_batch b = {.batch = batch, .positions = out_positions(m),
                       .classes = out_classes(m), .y = y,
                       .sparse = sparse_labels(m)};
    b.sigmoid = nn__loss_sigmoid(&m->loss_terms, b.classes);
    return b;
}

nn_status nn__loss_step(nn_model *m, nn_context *c, const float *y, int batch,
                        bool want_grad, nn_step_stats *st)
{
    const nn_layer *o = m->output;
    nn_loss_batch b = nn__label_batch(m, y, batch);
    b.out = c->act[o->index];
    b.dout = want_grad ? c->dact[o->index] : NULL;
    b.sample_weight = st->sample_weight;
    st->preact = false;
    if (m->loss_opts.from_logits) {
        b.logits = b.out;
    } else if ((b.logits = fused_logits(m, c)) != NULL) {
        st->preact = true;
    }
    nn_loss_sums sums = {0};
    NN_TRY(nn__loss_eval(&m->loss_terms, &m->loss_opts, &b, &sums));
    st->loss_sum += sums.loss;
    st->correct += sums.correct;
    st->predictions += sums.predictions;
    if (st->cm) nn__confusion_add(st->cm, &b, m->loss_opts.from_logits);
    if (st->scores)
        NN_TRY(nn__scores_add(st->scores, &b, m->loss_opts.from_logits));
    return NN_OK;
}

static nn_status ensure_grads(nn_model *m)
{
    nn_param_iter it;
    nn__param_iter_init(&it, m, NULL);
    while (nn__param_next(&it)) {
        nn_param *p = it.p;
        if (p->grad.data) continue;
        p->grad.data = nn__calloc((size_t)p->value.size, sizeof(float));
        if (!p->grad.data) return NN_ERR_NOMEM;
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

/* The optimizer reports its updates to the diagnostics when they
 * recorded this step's gradients. */
static nn_status optimizer_step(nn_model *m)
{
    nn_step_hook hook;
    bool listen = nn__diag_step_hook(m->diag, &hook);
    return nn__optimizer_step(m->opt, m, listen ? &hook : NULL);
}

nn_status nn__train_step(nn_model *m, const float *x, const float *y,
                         int batch, bool training, bool update, float *dx,
                         nn_step_stats *st)
{
    nn_context *c;
    NN_TRY(nn__model_context(m, &c));
    NN_TRY(ensure_grads(m));
    /* Gradient diagnostics (src/diag/): a NULL test when they are off. */
    nn_diag *d = m->diag;
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
    return update ? optimizer_step(m) : NN_OK;
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

static void report(const nn_step_stats *st, int batch, float *loss,
                   float *accuracy)
{
    if (loss) *loss = (float)(st->loss_sum / batch);
    if (accuracy) *accuracy = (float)st->correct / (float)st->predictions;
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
    report(&st, batch, loss, accuracy);
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
    report(&st, batch, loss, NULL);
    return NN_OK;
}

nn_status nn_model_apply_gradients(nn_model *m)
{
    NN_CHECK(m, NN_ERR_INVALID, "nn_model_apply_gradients: model is NULL");
    NN_CHECK(m->compiled, NN_ERR_STATE,
             "nn_model_apply_gradients: compile the model first");
    NN_CHECK(m->ctx && m->ctx->training_ready, NN_ERR_STATE,
             "nn_model_apply_gradients: no gradients computed yet");
    return optimizer_step(m);
}

nn_status nn__evaluate(nn_model *m, const nn_tensor *x, const nn_tensor *y,
                       int batch_size, nn_confusion *cm, double *loss,
                       double *accuracy)
{
    nn_step_stats sinks = {.cm = cm};
    return nn__evaluate_into(m, x, y, batch_size, &sinks, loss, accuracy);
}

nn_status nn__evaluate_into(nn_model *m, const nn_tensor *x,
                            const nn_tensor *y, int batch_size,
                            const nn_step_stats *sinks, double *loss,
                            double *accuracy)
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
        nn_step_stats st = {.cm = sinks->cm, .scores = sinks->scores};
        NN_TRY(nn__forward(c, x->data + i * in_sz, cur, false, 0));
        NN_TRY(nn__loss_step(m, c, y->data + i * y_sz, cur, false, &st));
        total.loss_sum += st.loss_sum;
        total.correct += st.correct;
        total.predictions += st.predictions;
    }
    *loss = total.loss_sum / (double)n;
    *accuracy = (double)total.correct / (double)total.predictions;
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
    NN_TRY(nn__evaluate(m, x, y, batch_size, NULL, &l, &a));
    if (loss) *loss = (float)l;
    if (accuracy) *accuracy = (float)a;
    return NN_OK;
}

nn_confusion *nn__model_confusion(const nn_model *m)
{
    return nn_confusion_create(nn__confusion_classes_for(out_classes(m)));
}

nn_status nn_model_evaluate_confusion(nn_model *m, const nn_tensor *x,
                                      const nn_tensor *y, int batch_size,
                                      nn_confusion *cm, float *loss)
{
    const char *what = "nn_model_evaluate_confusion";
    NN_TRY(nn__check_xy(m, x, y, what));
    NN_CHECK(batch_size > 0, NN_ERR_INVALID, "%s: batch size %d", what,
             batch_size);
    NN_CHECK(cm, NN_ERR_INVALID, "%s: NULL confusion matrix", what);
    int want = nn__confusion_classes_for(out_classes(m));
    NN_CHECK(cm->classes == want, NN_ERR_SHAPE,
             "%s: the output makes %d classes, the matrix has %d", what, want,
             cm->classes);
    /* Counted apart, so that a failure part-way adds nothing. */
    nn_confusion *part = nn__model_confusion(m);
    if (!part) return nn_last_status();
    double l, a;
    nn_status s = nn__evaluate(m, x, y, batch_size, part, &l, &a);
    if (s == NN_OK) {
        nn__confusion_merge(cm, part);
        if (loss) *loss = (float)l;
    }
    nn_confusion_free(part);
    return s;
}

nn_status nn_model_predict(nn_model *m, const nn_tensor *x, nn_tensor *out,
                           int batch_size)
{
    NN_CHECK(m, NN_ERR_INVALID, "nn_model_predict: model is NULL");
    nn_context *c;
    NN_TRY(nn__model_context(m, &c));
    return nn__predict(c, x, out, batch_size);
}

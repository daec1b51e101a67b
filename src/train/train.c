/* Compile, one training step, backward for tests, evaluate, predict. The
 * loop never knows a layer kind: it sees the graph, the loss and the
 * optimizer. */
#include "nn_internal.h"
#include "train/train.h"
#include "loss/loss.h"
#include "optim/optim.h"
#include "diag/diag.h"
#include "kernels/kernels.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
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

nn_optimizer *nn_model_optimizer(nn_model *m)
{
    if (!m) {
        nn__fail(NN_ERR_INVALID, "nn_model_optimizer: model is NULL");
        return NULL;
    }
    if (!m->opt)
        nn__fail(NN_ERR_STATE,
                 "nn_model_optimizer: the model has no optimizer: compile "
                 "it, or load a model saved with NN_SAVE_OPTIMIZER");
    return m->opt;
}

int nn_model_loss(const nn_model *m, nn_loss *losses, float *weights,
                  int cap, nn_loss_opts *opts)
{
    const char *what = "nn_model_loss";
    NN_CHECK(m, NN_ERR_INVALID, "%s: model is NULL", what);
    NN_CHECK(cap >= 0 && (cap == 0 || (losses && weights)), NN_ERR_INVALID,
             "%s: cap %d needs arrays losses and weights of that length",
             what, cap);
    /* m->loss is set by compile and by a checkpoint that stored one. */
    int n = m->loss ? m->loss_terms.n : 0;
    if (opts && n) NN_TRY(nn__write_opts(opts, &m->loss_opts, what));
    for (int k = 0; k < n && k < cap; k++) {
        losses[k] = m->loss_terms.kind[k];
        weights[k] = m->loss_terms.weight[k];
    }
    return n;
}

/* The model's destructor lives here, above everything a model owns: its
 * layers and contexts (graph), its optimizer and its diagnostics. */
void nn_model_free(nn_model *m)
{
    if (!m) return;
    nn_context_free(m->ctx);
    nn_context_free(m->infer_ctx);
    for (int i = 0; i < m->n_layers; i++) nn__layer_free(m->layers[i]);
    nn__free(m->layers);
    if (m->opt) {
        m->opt->owned_by_model = false;
        nn_optimizer_free(m->opt);
    }
    nn__diag_free(m->diag);
    nn__loss_opts_release(&m->loss_opts);
    nn__free(m->grad_fused);
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

static nn_activation output_activation(const nn_layer *l)
{
    nn_activation own = l->ops->logits_act;
    return own != NN_ACT_NONE ? own : l->activation;
}

static bool has_loss(const nn_model *m, nn_loss kind)
{
    for (int k = 0; k < m->loss_terms.n; k++)
        if (m->loss_terms.kind[k] == kind) return true;
    return false;
}

/* Labels whose width fits another loss than the compiled one. */
static nn_status label_kind_mismatch(const nn_model *m, int64_t per,
                                     const char *what, const char *y,
                                     const char *out)
{
    int64_t pos = out_positions(m), c = out_classes(m);
    const char *name = m->output->name;
    if (!sparse_labels(m) && c > 1 && per == pos &&
        has_loss(m, NN_LOSS_CATEGORICAL_CROSSENTROPY))
        return nn__fail(
            NN_ERR_SHAPE,
            "%s: %s holds %lld value%s per sample, class ids it seems, but "
            "categorical cross-entropy reads one-hot labels, %lld per sample "
            "(the shape of output layer '%s', %s): convert the class ids "
            "with nn_one_hot(%s, %lld, ...), or compile with "
            "NN_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY, which reads them as "
            "they are",
            what, y, (long long)per, per == 1 ? "" : "s",
            (long long)(pos * c), name, out, y, (long long)c);
    if (sparse_labels(m) && per == pos * c)
        return nn__fail(
            NN_ERR_SHAPE,
            "%s: %s holds %lld values per sample, one-hot rows it seems, but "
            "the loss (%s) reads one class id per output position, %lld per "
            "sample (output layer '%s', %s): pass the class ids (the index "
            "of the 1 in each row), or compile with "
            "NN_LOSS_CATEGORICAL_CROSSENTROPY, which reads one-hot rows",
            what, y, (long long)per,
            has_loss(m, NN_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY)
                ? "sparse categorical cross-entropy"
                : "sparse_labels",
            (long long)pos, name, out);
    return NN_OK;
}

nn_status nn__check_labels(const nn_model *m, const nn_tensor *y, int64_t n,
                           const char *what, bool validation)
{
    const char *yn = validation ? "val_y" : "y";
    const char *xn = validation ? "val_x" : "x";
    NN_CHECK(y, NN_ERR_INVALID, "%s: %s (the labels) is NULL", what, yn);
    NN_CHECK(y->shape[0] == n, NN_ERR_SHAPE,
             "%s: %s has %lld samples, %s has %lld; give one label per "
             "sample",
             what, yn, (long long)y->shape[0], xn, (long long)n);
    int64_t per = y->size / y->shape[0], need = nn__label_size(m);
    if (per == need) return NN_OK;
    char out[NN_SHAPE_STR_MAX];
    nn__shape_str(&m->output->out, out, sizeof out);
    NN_TRY(label_kind_mismatch(m, per, what, yn, out));
    /* Labels of one row per sample for an output that kept its positions:
     * a Flatten or a pooling forgotten before the classifier. */
    int64_t c = out_classes(m);
    bool flat = m->output->out.rank > 1 && (per == 1 || per == c);
    return nn__fail(
        NN_ERR_SHAPE,
        "%s: %s holds %lld value%s per sample, but the loss needs %lld: %s "
        "of output layer '%s', %s%s",
        what, yn, (long long)per, per == 1 ? "" : "s", (long long)need,
        sparse_labels(m) ? "one class id per output position"
                         : "one per output value",
        m->output->name, out,
        flat ? "; that output has a row of classes at every position: for "
               "one prediction per sample, add a Flatten (nn_flatten) or a "
               "GlobalAveragePooling2D (nn_global_avgpool2d) before the "
               "layer that makes the classes"
             : "");
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

/* The model's inference context (struct nn_model says why it is not the
 * training one). */
static nn_status infer_context(nn_model *m, nn_context **out)
{
    if (!m->infer_ctx) m->infer_ctx = nn__context_new(m);
    if (!m->infer_ctx) return NN_ERR_NOMEM;
    *out = m->infer_ctx;
    return NN_OK;
}

static uint64_t step_key(nn_model *m)
{
    uint64_t z = m->seed + 0x9e3779b97f4a7c15ULL * (++m->step_counter) +
                 0xd1b54a32d192ed03ULL * m->key_stream;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    return z ^ (z >> 27);
}

/* The gradient hook (data-parallel training) sees the gradients first;
 * the optimizer reports its updates to the diagnostics when they recorded
 * this step's gradients. total: nn_grad_info.total_samples. */
static nn_status optimizer_step(nn_model *m, int64_t total, bool diag)
{
    NN_TRY(nn__grad_hook_run(m, total));
    nn_step_hook hook;
    bool listen = diag && nn__diag_step_hook(m->diag, &hook);
    return nn__optimizer_step(m->opt, m, listen ? &hook : NULL);
}

nn_status nn__train_step_empty(nn_model *m, int64_t total)
{
    NN_TRY(ensure_grads(m));
    nn_param_iter it;
    nn__param_iter_init(&it, m, NULL);
    while (nn__param_next_slot(&it))
        memset(it.p->grad.data, 0, (size_t)it.p->value.size * sizeof(float));
    m->grad_samples = 0;
    return optimizer_step(m, total, false);
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
    m->grad_samples = batch;
    if (d) NN_TRY(nn__diag_after_backward(m, c, batch, dx != NULL));
    return update ? optimizer_step(m, st->total_samples, true) : NN_OK;
}

/* NaN or Inf in the data would surface steps later as a diverged loss:
 * one scan (parallel, a small share of an epoch) names the sample. */
static nn_status check_finite_data(const nn_tensor *t, const char *what,
                                   const char *name)
{
    if (nn__all_finite(t->data, t->size)) return NN_OK;
    const char *v;
    int64_t at = nn__first_nonfinite(t->data, t->size, &v);
    int64_t per = t->size / t->shape[0];
    return nn__fail(NN_ERR_NUMERIC,
                    "%s: %s holds %s in sample %lld (value %lld of the "
                    "sample): the input data must be finite; fix or drop "
                    "that sample",
                    what, name, v, (long long)(at / per),
                    (long long)(at % per));
}

/* Label values over the whole data, so that a message names the sample's
 * index in what the caller passed (fit shuffles its batches). */
static nn_status check_label_values(const nn_model *m, const nn_tensor *y,
                                    const char *what, const char *name)
{
    char arg[96];
    snprintf(arg, sizeof arg, "%s: %s", what, name);
    int n = (int)y->shape[0];
    if (sparse_labels(m))
        return nn__check_class_ids(y->data, n, out_positions(m),
                                   out_classes(m), arg);
    return nn__check_unit_labels(y->data, n, out_positions(m),
                                 out_classes(m), arg);
}

/* Binary cross-entropy scores every output value as its own yes/no; a
 * softmax makes the values of a row compete, so the pair trains the wrong
 * thing while its per-value accuracy looks fine. Keras accepts it; we
 * refuse it. With from_logits the caller declares the output values to be
 * logits, whatever computed them, and gets the loss of those values (a
 * way to probe a layer's gradient, which the parity tests take). */
static nn_status check_loss_fits_output(const nn_model *m, const char *what)
{
    int64_t c = out_classes(m);
    if (!has_loss(m, NN_LOSS_BINARY_CROSSENTROPY) || c < 2 ||
        m->loss_opts.from_logits ||
        output_activation(m->output) != NN_ACT_SOFTMAX)
        return NN_OK;
    return nn__fail(
        NN_ERR_INVALID,
        "%s: binary cross-entropy on output layer '%s', a softmax over %lld "
        "classes: the softmax makes the classes exclude each other, while "
        "binary cross-entropy scores each one as an independent yes/no. For "
        "one class per sample compile with "
        "NN_LOSS_CATEGORICAL_CROSSENTROPY (one-hot labels) or "
        "NN_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY (class ids); for labels "
        "that may hold together, end the model in a sigmoid",
        what, m->output->name, (long long)c);
}

nn_status nn__check_xy(const nn_model *m, const nn_tensor *x,
                       const nn_tensor *y, const char *what, bool validation)
{
    const char *xn = validation ? "val_x" : "x";
    char arg[96];
    NN_CHECK(m, NN_ERR_INVALID, "%s: model is NULL", what);
    NN_CHECK(m->compiled, NN_ERR_STATE, "%s: compile the model first", what);
    NN_CHECK(x, NN_ERR_INVALID, "%s: %s is NULL", what, xn);
    snprintf(arg, sizeof arg, "%s: %s", what, xn);
    NN_TRY(nn__check_data(m->input, x, arg));
    NN_CHECK(x->shape[0] <= INT_MAX, NN_ERR_INVALID,
             "%s: %s has %lld samples; one call takes at most %d", what, xn,
             (long long)x->shape[0], INT_MAX);
    NN_TRY(nn__check_labels(m, y, x->shape[0], what, validation));
    NN_TRY(check_loss_fits_output(m, what));
    NN_TRY(check_finite_data(x, what, xn));
    return check_label_values(m, y, what, validation ? "val_y" : "y");
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
    NN_TRY(nn__check_xy(m, x, y, "nn_model_train_batch", false));
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
    NN_TRY(nn__check_xy(m, x, y, "nn_model_backward", false));
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
    return optimizer_step(m, 0, true);
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
    NN_TRY(infer_context(m, &c));
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
    NN_TRY(nn__check_xy(m, x, y, "nn_model_evaluate", false));
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
    NN_TRY(nn__check_xy(m, x, y, what, false));
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
    NN_TRY(infer_context(m, &c));
    return nn__predict(c, x, out, batch_size, "nn_model_predict");
}

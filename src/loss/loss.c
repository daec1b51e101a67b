/* Compiled losses: a weighted sum of terms evaluated on one batch.
 *
 * Contract of nn__loss_eval (the training loop relies on it):
 *  - The output is [batch, positions, classes] (loss.h). `logits`, when
 *    not NULL, are the pre-activation values of the same shape: the loss
 *    is then computed from them (stable log-softmax / log-sigmoid, and the
 *    sigmoid or softmax for IoU and Dice) and dout receives the gradient
 *    w.r.t. the LOGITS. When `logits` is NULL, `out` holds probabilities
 *    and dout receives the gradient w.r.t. `out`. With from_logits the
 *    caller passes logits == out.
 *  - Labels: class ids [batch, positions] (integral floats in
 *    [0, classes)) when b->sparse; else the output's shape with values in
 *    [0, 1]. Bad labels give NN_ERR_INVALID naming the sample (and the
 *    position); a non-finite output or logit, a categorical probability
 *    row that does not sum to a positive value, or an IoU/Dice probability
 *    outside [0, 1] give NN_ERR_NUMERIC. Nothing is written or added on
 *    failure.
 *  - s->loss += the SUM over the batch of per-sample losses, each term's
 *    times its weight; the caller divides by the number of samples. A
 *    per-sample loss is the mean over positions of the row loss for the
 *    categorical losses, the MEAN over the sample's values for binary
 *    cross-entropy (Keras), and for IoU and Dice the batch's loss (each
 *    sample is given the batch's mean) or, per image, the image's.
 *    With sample weights (b->sample_weight) or class weights, each term's
 *    sum is sum_n s_n L_n times N / D, D the number of samples or, with
 *    NN_WEIGHT_NORM_SUM, the sum of the weights: the caller's division
 *    by N then gives the weighted mean the options ask for.
 *  - dout (may be NULL) is overwritten with the gradient of the batch's
 *    mean loss: the weighted sum of the terms' gradients.
 *  - Accuracy: s->correct += correct predictions, s->predictions += their
 *    number. Categorical (b->sigmoid false): one per position,
 *    argmax(out) == argmax(y) (sparse: == id); ties go to the first
 *    maximum. Binary: one per output value, prediction (p > 0.5, or z > 0
 *    when out are logits) equal to the label (so soft labels never count,
 *    as in Keras' binary_accuracy). */
#include "nn_internal.h"
#include "loss/loss.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* Workspaces of the IoU and Dice sums up to this size live on the stack;
 * a steady-state training step allocates nothing for usual class counts. */
#define WS_STACK 640

int64_t nn__argmax(const float *v, int64_t n)
{
    int64_t best = 0;
    for (int64_t j = 1; j < n; j++)
        if (v[j] > v[best]) best = j;
    return best;
}

/* ---------------- what a description means ---------------- */

static bool has(const nn_loss_terms *t, nn_loss kind)
{
    for (int k = 0; k < t->n; k++)
        if (t->kind[k] == kind) return true;
    return false;
}

static bool is_categorical(nn_loss kind)
{
    return kind == NN_LOSS_CATEGORICAL_CROSSENTROPY ||
           kind == NN_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY;
}

static bool is_crossentropy(nn_loss kind)
{
    return is_categorical(kind) || kind == NN_LOSS_BINARY_CROSSENTROPY;
}

bool nn__loss_sparse(const nn_loss_terms *t, const nn_loss_opts *o,
                     int64_t classes)
{
    return has(t, NN_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY) ||
           (o->sparse_labels && classes > 1);
}

bool nn__loss_sigmoid(const nn_loss_terms *t, int64_t classes)
{
    if (has(t, NN_LOSS_BINARY_CROSSENTROPY)) return true;
    return classes == 1 && !has(t, NN_LOSS_CATEGORICAL_CROSSENTROPY) &&
           !has(t, NN_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY);
}

bool nn__loss_wants_logits(const nn_loss_terms *t)
{
    for (int k = 0; k < t->n; k++)
        if (is_crossentropy(t->kind[k])) return true;
    return false;
}

static const char *loss_name(nn_loss kind)
{
    switch (kind) {
    case NN_LOSS_CATEGORICAL_CROSSENTROPY: return "categorical cross-entropy";
    case NN_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY:
        return "sparse categorical cross-entropy";
    case NN_LOSS_BINARY_CROSSENTROPY: return "binary cross-entropy";
    case NN_LOSS_IOU: return "IoU";
    case NN_LOSS_DICE: return "Dice";
    }
    return "?";
}

static nn_status check_terms(const nn_loss_terms *t, const char *what)
{
    NN_CHECK(t->n >= 1 && t->n <= NN_LOSS_MAX_TERMS, NN_ERR_INVALID,
             "%s: %d losses; give 1 to %d", what, t->n, NN_LOSS_MAX_TERMS);
    int crossentropies = 0;
    for (int k = 0; k < t->n; k++) {
        nn_loss kind = t->kind[k];
        NN_CHECK(kind >= NN_LOSS_CATEGORICAL_CROSSENTROPY &&
                     kind <= NN_LOSS_DICE,
                 NN_ERR_INVALID, "%s: unknown loss %d", what, (int)kind);
        NN_CHECK(isfinite(t->weight[k]) && t->weight[k] > 0, NN_ERR_INVALID,
                 "%s: the weight of loss %d (%s) is %g; weights must be "
                 "finite and > 0",
                 what, k, loss_name(kind), (double)t->weight[k]);
        for (int j = 0; j < k; j++)
            NN_CHECK(t->kind[j] != kind, NN_ERR_INVALID,
                     "%s: %s appears twice; give each loss once with the sum "
                     "of its weights",
                     what, loss_name(kind));
        crossentropies += is_crossentropy(kind);
    }
    NN_CHECK(crossentropies <= 1, NN_ERR_INVALID,
             "%s: at most one cross-entropy per sum (their labels differ)",
             what);
    return NN_OK;
}

static nn_status check_opts(const nn_loss_terms *t, const nn_loss_opts *o,
                            const char *what)
{
    NN_CHECK(isfinite(o->smooth) && o->smooth >= 0, NN_ERR_INVALID,
             "%s: smooth is %g; it must be finite and >= 0", what, o->smooth);
    NN_CHECK(isfinite(o->eps) && o->eps > 0, NN_ERR_INVALID,
             "%s: eps is %g; it must be finite and > 0", what, o->eps);
    NN_CHECK(o->reduction == NN_LOSS_REDUCE_BATCH ||
                 o->reduction == NN_LOSS_REDUCE_IMAGE,
             NN_ERR_INVALID,
             "%s: reduction %d is neither NN_LOSS_REDUCE_BATCH nor "
             "NN_LOSS_REDUCE_IMAGE",
             what, o->reduction);
    NN_CHECK(o->sparse_labels == 0 || o->sparse_labels == 1, NN_ERR_INVALID,
             "%s: sparse_labels is %d, not 0 or 1", what, o->sparse_labels);
    NN_CHECK(!o->sparse_labels ||
                 (!has(t, NN_LOSS_CATEGORICAL_CROSSENTROPY) &&
                  !has(t, NN_LOSS_BINARY_CROSSENTROPY)),
             NN_ERR_INVALID,
             "%s: sparse_labels (class ids) with a cross-entropy that reads "
             "one-hot or mask labels; use sparse categorical cross-entropy",
             what);
    return NN_OK;
}

static bool has_categorical(const nn_loss_terms *t)
{
    return has(t, NN_LOSS_CATEGORICAL_CROSSENTROPY) ||
           has(t, NN_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY);
}

/* Class weights, pos_weight and the normalisation (weighted
 * cross-entropy): each must have the term it weighs. */
static nn_status check_weights(const nn_loss_terms *t, const nn_loss_opts *o,
                               const char *what)
{
    NN_CHECK(o->weight_norm == NN_WEIGHT_NORM_SAMPLES ||
                 o->weight_norm == NN_WEIGHT_NORM_SUM,
             NN_ERR_INVALID,
             "%s: weight_norm %d is neither NN_WEIGHT_NORM_SAMPLES nor "
             "NN_WEIGHT_NORM_SUM",
             what, o->weight_norm);
    NN_CHECK(isfinite(o->pos_weight) && o->pos_weight >= 0, NN_ERR_INVALID,
             "%s: pos_weight is %g; it must be finite and >= 0", what,
             (double)o->pos_weight);
    NN_CHECK(o->pos_weight == 1.0f || has(t, NN_LOSS_BINARY_CROSSENTROPY),
             NN_ERR_INVALID,
             "%s: pos_weight %g weighs binary cross-entropy, which this loss "
             "does not hold (class_weights weigh categorical ones)",
             what, (double)o->pos_weight);
    if (!o->class_weights) {
        NN_CHECK(o->num_class_weights == 0, NN_ERR_INVALID,
                 "%s: num_class_weights is %d but class_weights is NULL",
                 what, o->num_class_weights);
        return NN_OK;
    }
    NN_CHECK(o->num_class_weights > 0, NN_ERR_INVALID,
             "%s: class_weights given with num_class_weights %d", what,
             o->num_class_weights);
    NN_CHECK(has_categorical(t), NN_ERR_INVALID,
             "%s: class_weights weigh (sparse) categorical cross-entropy, "
             "which this loss does not hold (binary cross-entropy takes "
             "pos_weight, fit takes class_weight)",
             what);
    for (int k = 0; k < o->num_class_weights; k++)
        NN_CHECK(isfinite(o->class_weights[k]) && o->class_weights[k] >= 0,
                 NN_ERR_INVALID,
                 "%s: the weight of class %d is %g; class weights must be "
                 "finite and >= 0",
                 what, k, (double)o->class_weights[k]);
    return NN_OK;
}

nn_status nn__loss_check(const nn_loss_terms *t, const nn_loss_opts *o,
                         const char *what)
{
    NN_TRY(check_terms(t, what));
    NN_TRY(check_opts(t, o, what));
    return check_weights(t, o, what);
}

nn_status nn__loss_check_output(const nn_loss_terms *t, const nn_loss_opts *o,
                                int64_t classes, const char *what)
{
    (void)t;
    NN_CHECK(!o->class_weights || o->num_class_weights == classes,
             NN_ERR_SHAPE,
             "%s: %d class weights for an output of %lld classes; give one "
             "per class",
             what, o->num_class_weights, (long long)classes);
    return NN_OK;
}

double nn__loss_denominator(const nn_loss_opts *o, const nn_loss_batch *b)
{
    if (o->weight_norm != NN_WEIGHT_NORM_SUM) return (double)b->batch;
    double d = 0;
    for (int n = 0; n < b->batch; n++) d += nn__sample_weight(b, n);
    return d;
}

nn_status nn__loss_opts_own(nn_loss_opts *o)
{
    if (!o->class_weights) return NN_OK;
    size_t bytes = (size_t)o->num_class_weights * sizeof(float);
    float *copy = nn__alloc(bytes);
    NN_CHECK(copy, NN_ERR_NOMEM, "loss: out of memory for %d class weights",
             o->num_class_weights);
    memcpy(copy, o->class_weights, bytes);
    o->class_weights = copy;
    return NN_OK;
}

void nn__loss_opts_release(nn_loss_opts *o)
{
    nn__free((float *)o->class_weights);
    o->class_weights = NULL;
    o->num_class_weights = 0;
}

/* ---------------- validation ---------------- */

/* "sample 3" for a flat output, "sample 3, position 17" otherwise. */
static const char *where(char *buf, size_t cap, int64_t row,
                         int64_t positions)
{
    if (positions == 1)
        snprintf(buf, cap, "sample %lld", (long long)row);
    else
        snprintf(buf, cap, "sample %lld, position %lld",
                 (long long)(row / positions), (long long)(row % positions));
    return buf;
}

nn_status nn__check_class_ids(const float *y, int batch, int64_t positions,
                              int64_t ids, const char *what)
{
    int64_t rows = (int64_t)batch * positions;
    for (int64_t r = 0; r < rows; r++) {
        float id = y[r];
        if (isfinite(id) && id >= 0 && (double)id < (double)ids &&
            id == floorf(id))
            continue;
        char at[64];
        return nn__fail(NN_ERR_INVALID,
                        "%s: label of %s is %g, not a class id in [0, %lld)",
                        what, where(at, sizeof at, r, positions), (double)id,
                        (long long)ids);
    }
    return NN_OK;
}

nn_status nn__check_unit_labels(const float *y, int batch, int64_t positions,
                                int64_t classes, const char *what)
{
    int64_t n = (int64_t)batch * positions * classes;
    for (int64_t k = 0; k < n; k++) {
        if (y[k] >= 0 && y[k] <= 1) continue;
        char at[64];
        return nn__fail(NN_ERR_INVALID,
                        "%s: label %lld of %s is %g, not in [0, 1]", what,
                        (long long)(k % classes),
                        where(at, sizeof at, k / classes, positions),
                        (double)y[k]);
    }
    return NN_OK;
}

nn_status nn__check_finite_values(const float *v, int batch,
                                  int64_t positions, int64_t classes,
                                  const char *what, const char *name)
{
    int64_t n = (int64_t)batch * positions * classes;
    for (int64_t k = 0; k < n; k++) {
        if (isfinite(v[k])) continue;
        char at[64];
        return nn__fail(NN_ERR_NUMERIC,
                        "%s: %s of %s holds %g (training diverged?)", what,
                        name, where(at, sizeof at, k / classes, positions),
                        (double)v[k]);
    }
    return NN_OK;
}

/* Categorical probabilities are divided by their row sum: it must be > 0. */
static nn_status check_row_sums(const nn_loss_batch *b)
{
    int64_t rows = (int64_t)b->batch * b->positions;
    for (int64_t r = 0; r < rows; r++) {
        const float *row = b->out + r * b->classes;
        double s = 0;
        for (int64_t j = 0; j < b->classes; j++) s += row[j];
        if (s > 0) continue;
        char at[64];
        return nn__fail(NN_ERR_NUMERIC,
                        "loss: output %s sums to %g; probabilities must sum "
                        "to a positive value (use from_logits for a linear "
                        "output)",
                        where(at, sizeof at, r, b->positions), s);
    }
    return NN_OK;
}

/* IoU and Dice read probabilities as they are: they must be ones. */
static nn_status check_unit_probs(const nn_loss_batch *b)
{
    int64_t n = (int64_t)b->batch * b->positions * b->classes;
    for (int64_t k = 0; k < n; k++) {
        if (b->out[k] >= 0 && b->out[k] <= 1) continue;
        char at[64];
        return nn__fail(NN_ERR_NUMERIC,
                        "loss: output %lld of %s is %g, not a probability in "
                        "[0, 1] for IoU/Dice (use from_logits for a linear "
                        "output)",
                        (long long)(k % b->classes),
                        where(at, sizeof at, k / b->classes, b->positions),
                        (double)b->out[k]);
    }
    return NN_OK;
}

static nn_status validate(const nn_loss_terms *t, const nn_loss_batch *b)
{
    if (b->sparse)
        NN_TRY(nn__check_class_ids(b->y, b->batch, b->positions, b->classes,
                                   "loss"));
    else
        NN_TRY(nn__check_unit_labels(b->y, b->batch, b->positions,
                                     b->classes, "loss"));
    if (b->logits)
        return nn__check_finite_values(b->logits, b->batch, b->positions,
                                       b->classes, "loss", "logits");
    NN_TRY(nn__check_finite_values(b->out, b->batch, b->positions,
                                   b->classes, "loss", "output"));
    if (has_categorical(t)) NN_TRY(check_row_sums(b));
    if (has(t, NN_LOSS_IOU) || has(t, NN_LOSS_DICE))
        NN_TRY(check_unit_probs(b));
    return NN_OK;
}

/* ---------------- accuracy ---------------- */

static void accuracy(const nn_loss_batch *b, nn_loss_sums *s)
{
    int64_t rows = (int64_t)b->batch * b->positions, c = b->classes, hits = 0;
    /* Binary labels are never class ids (nn__loss_check). */
    if (b->sigmoid) {
        bool out_is_logits = b->logits && b->logits == b->out;
        int64_t n = rows * c;
        for (int64_t k = 0; k < n; k++) {
            bool pos = out_is_logits ? b->out[k] > 0 : b->out[k] > 0.5f;
            hits += (pos ? 1.0f : 0.0f) == b->y[k];
        }
        s->predictions += n;
    } else {
        for (int64_t r = 0; r < rows; r++) {
            int64_t truth = b->sparse ? (int64_t)b->y[r]
                                      : nn__argmax(b->y + r * c, c);
            hits += nn__argmax(b->out + r * c, c) == truth;
        }
        s->predictions += rows;
    }
    s->correct += hits;
}

/* ---------------- evaluation ---------------- */

static nn_status check_batch(const nn_loss_batch *b)
{
    NN_CHECK(b->out && b->y, NN_ERR_INVALID, "loss: NULL output or labels");
    NN_CHECK(b->batch > 0 && b->positions > 0 && b->classes > 0,
             NN_ERR_SHAPE, "loss: batch %d of %lld x %lld values", b->batch,
             (long long)b->positions, (long long)b->classes);
    return NN_OK;
}

static nn_status overlap_workspace(const nn_loss_terms *t,
                                   const nn_loss_opts *o,
                                   const nn_loss_batch *b, double *stack,
                                   double **ws)
{
    *ws = NULL;
    if (!has(t, NN_LOSS_IOU) && !has(t, NN_LOSS_DICE)) return NN_OK;
    size_t n = nn__overlap_ws_doubles(o, b);
    *ws = n <= WS_STACK ? stack : nn__alloc(n * sizeof(double));
    NN_CHECK(*ws, NN_ERR_NOMEM, "loss: out of memory for the IoU/Dice sums");
    return NN_OK;
}

nn_status nn__loss_eval(const nn_loss_terms *t, const nn_loss_opts *o,
                        const nn_loss_batch *b, nn_loss_sums *s)
{
    NN_TRY(nn__loss_check(t, o, "loss"));
    NN_TRY(check_batch(b));
    NN_TRY(nn__loss_check_output(t, o, b->classes, "loss"));
    NN_TRY(validate(t, b));
    double stack[WS_STACK], *ws;
    NN_TRY(overlap_workspace(t, o, b, stack, &ws));
    if (b->dout)
        memset(b->dout, 0, (size_t)(b->batch * b->positions * b->classes) *
                               sizeof(float));
    double sum = 0;
    for (int k = 0; k < t->n; k++) {
        if (is_categorical(t->kind[k]))
            sum += t->weight[k] * nn__cce_term(b, o, t->weight[k]);
        else if (t->kind[k] == NN_LOSS_BINARY_CROSSENTROPY)
            sum += t->weight[k] * nn__bce_term(b, o, t->weight[k]);
    }
    if (ws) sum += nn__overlap_terms(t, o, b, ws);
    if (ws != stack) nn__free(ws);
    s->loss += sum;
    accuracy(b, s);
    return NN_OK;
}

/* ---------------- one loss on a flat output ---------------- */

nn_status nn__loss(nn_loss kind, int batch, int64_t classes, const float *out,
                   const float *logits, const float *y, float *dout,
                   double *loss_sum, int64_t *correct)
{
    nn_loss_terms t = {1, {kind}, {1.0f}};
    nn_loss_opts o = NN_LOSS_OPTS_INIT;
    nn_loss_batch b = {.batch = batch, .positions = 1, .classes = classes,
                       .out = out, .logits = logits, .y = y, .dout = dout};
    b.sigmoid = nn__loss_sigmoid(&t, classes);
    b.sparse = nn__loss_sparse(&t, &o, classes);
    nn_loss_sums s = {0};
    NN_TRY(nn__loss_eval(&t, &o, &b, &s));
    if (loss_sum) *loss_sum += s.loss;
    if (correct) *correct += s.correct;
    return NN_OK;
}

/* Cross-entropy losses with Keras semantics.
 *
 * Contract of nn__loss (the training loop relies on it):
 *  - `out` is the model output [batch, classes] (classes = values per
 *    sample). `logits`, when not NULL, are the pre-activation values of the
 *    same shape: the loss is then computed from them with a stable
 *    log-softmax / log-sigmoid and `dout` receives the gradient w.r.t. the
 *    LOGITS. When `logits` is NULL, `out` holds probabilities and `dout`
 *    receives the gradient w.r.t. `out`. With from_logits the caller passes
 *    logits == out.
 *  - Labels: CATEGORICAL [batch, classes] with values in [0, 1];
 *    SPARSE [batch] class ids (integral floats in [0, classes));
 *    BINARY [batch, classes] with values in [0, 1]. Bad labels give
 *    NN_ERR_INVALID naming the row; a non-finite output or logit gives
 *    NN_ERR_NUMERIC. Nothing is written or added on failure.
 *  - *loss_sum += the SUM over the batch of per-sample losses; the caller
 *    divides by the number of samples. A per-sample loss is the sum over
 *    classes for the categorical losses and the MEAN over the sample's
 *    values for binary cross-entropy (Keras).
 *  - dout (may be NULL) is overwritten with the gradient of the MEAN loss
 *    over the batch: scaled by 1/batch (categorical) or 1/(batch*classes)
 *    (binary, because of the mean over values).
 *  - Accuracy: *correct (may be NULL) += the number of correct predictions.
 *    Categorical: one per sample, argmax(out) == argmax(y) (sparse: == id);
 *    ties go to the first maximum. Binary: one per output value,
 *    prediction (p > 0.5, or z > 0 when out are logits) equal to the label
 *    (so soft labels never count, as in Keras' binary_accuracy).
 *    Divide by nn__loss_accuracy_denominator(): batch for the categorical
 *    losses, batch * classes for binary cross-entropy.
 *
 * Probabilities (logits NULL) follow Keras: categorical rows are divided
 * by their sum, then clipped to [1e-7, 1 - 1e-7]; binary values are
 * clipped. Clipped values get zero gradient. The categorical gradient
 * includes the row normalisation: dL/dp_k = (g_k + sum of y_j over
 * unclipped j) / S with g_k = -y_k/q_k; after a softmax the added
 * per-row constant cancels, so it equals the plain -y/p there.
 * With logits the categorical gradient is softmax(z) * sum(y) - y, which is
 * softmax(z) - y for labels that sum to one. */
#include "nn_internal.h"
#include "loss/loss.h"

#include <math.h>
#include <stdbool.h>

#define P_LO 1e-7f
#define P_HI (1.0f - 1e-7f)

int64_t nn__loss_accuracy_denominator(nn_loss kind, int batch, int64_t classes)
{
    if (kind == NN_LOSS_BINARY_CROSSENTROPY) return (int64_t)batch * classes;
    return batch;
}

/* ---------------- validation ---------------- */

static nn_status check_labels(nn_loss kind, int batch, int64_t classes,
                              const float *y)
{
    if (kind == NN_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY) {
        for (int i = 0; i < batch; i++) {
            float id = y[i];
            NN_CHECK(isfinite(id) && id >= 0 && (double)id < (double)classes &&
                         id == floorf(id),
                     NN_ERR_INVALID,
                     "loss: label of row %d is %g, not a class id in [0, %lld)",
                     i, (double)id, (long long)classes);
        }
        return NN_OK;
    }
    for (int i = 0; i < batch; i++) {
        const float *row = y + (int64_t)i * classes;
        for (int64_t j = 0; j < classes; j++)
            NN_CHECK(row[j] >= 0 && row[j] <= 1, NN_ERR_INVALID,
                     "loss: label %lld of row %d is %g, not in [0, 1]",
                     (long long)j, i, (double)row[j]);
    }
    return NN_OK;
}

static nn_status check_finite(int batch, int64_t classes, const float *v,
                              const char *what)
{
    for (int i = 0; i < batch; i++) {
        const float *row = v + (int64_t)i * classes;
        for (int64_t j = 0; j < classes; j++)
            NN_CHECK(isfinite(row[j]), NN_ERR_NUMERIC,
                     "loss: %s of row %d holds %g (training diverged?)", what,
                     i, (double)row[j]);
    }
    return NN_OK;
}

/* Categorical probabilities are divided by their row sum: it must be > 0. */
static nn_status check_row_sums(int batch, int64_t classes, const float *p)
{
    for (int i = 0; i < batch; i++) {
        const float *row = p + (int64_t)i * classes;
        double s = 0;
        for (int64_t j = 0; j < classes; j++) s += row[j];
        NN_CHECK(s > 0, NN_ERR_NUMERIC,
                 "loss: output row %d sums to %g; probabilities must sum to a "
                 "positive value (use from_logits for a linear output)",
                 i, s);
    }
    return NN_OK;
}

static nn_status validate(nn_loss kind, int batch, int64_t classes,
                          const float *out, const float *logits,
                          const float *y)
{
    NN_TRY(check_labels(kind, batch, classes, y));
    if (logits) return check_finite(batch, classes, logits, "logits");
    NN_TRY(check_finite(batch, classes, out, "output"));
    if (kind == NN_LOSS_BINARY_CROSSENTROPY) return NN_OK;
    return check_row_sums(batch, classes, out);
}

/* ---------------- categorical ---------------- */

/* One row's labels: a one-hot/probability row, or a class id (row NULL). */
typedef struct label_row {
    const float *y;
    int64_t id;
} label_row;

static inline double label_at(const label_row *l, int64_t j)
{
    return l->y ? (double)l->y[j] : (double)(j == l->id);
}

static int64_t argmax(const float *v, int64_t n)
{
    int64_t best = 0;
    for (int64_t j = 1; j < n; j++)
        if (v[j] > v[best]) best = j;
    return best;
}

/* Stable log-softmax in double: exact for logits such as +-1000. */
static double cce_logits_row(const float *z, const label_row *l, int64_t c,
                             float *d, double scale)
{
    double mx = z[argmax(z, c)], s = 0, ysum = 0, loss = 0;
    for (int64_t j = 0; j < c; j++) s += exp((double)z[j] - mx);
    double lse = mx + log(s);
    for (int64_t j = 0; j < c; j++) {
        double yj = label_at(l, j);
        if (yj != 0) loss -= yj * ((double)z[j] - lse);
        ysum += yj;
    }
    if (d)
        for (int64_t j = 0; j < c; j++)
            d[j] = (float)((exp((double)z[j] - lse) * ysum - label_at(l, j)) *
                           scale);
    return loss;
}

static inline double clip_p(double q, bool *clipped)
{
    *clipped = q < (double)P_LO || q > (double)P_HI;
    return q < (double)P_LO ? (double)P_LO : q > (double)P_HI ? (double)P_HI : q;
}

static double cce_probs_row(const float *p, const label_row *l, int64_t c,
                            float *d, double scale)
{
    double s = 0, loss = 0, y_unclipped = 0;
    for (int64_t j = 0; j < c; j++) s += p[j];
    for (int64_t j = 0; j < c; j++) {
        bool clipped;
        double q = clip_p((double)p[j] / s, &clipped), yj = label_at(l, j);
        if (yj != 0) loss -= yj * log(q);
        if (!clipped) y_unclipped += yj;
    }
    if (d)
        for (int64_t j = 0; j < c; j++) {
            bool clipped;
            double q = clip_p((double)p[j] / s, &clipped);
            double g = clipped ? 0 : -label_at(l, j) / q;
            d[j] = (float)((g + y_unclipped) / s * scale);
        }
    return loss;
}

static void categorical(nn_loss kind, int batch, int64_t c, const float *out,
                        const float *logits, const float *y, float *dout,
                        double *loss_sum, int64_t *correct)
{
    double scale = 1.0 / batch, sum = 0;
    int64_t hits = 0;
    for (int i = 0; i < batch; i++) {
        int64_t off = (int64_t)i * c;
        label_row l = {NULL, -1};
        if (kind == NN_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY)
            l.id = (int64_t)y[i];
        else
            l.y = y + off;
        float *d = dout ? dout + off : NULL;
        sum += logits ? cce_logits_row(logits + off, &l, c, d, scale)
                      : cce_probs_row(out + off, &l, c, d, scale);
        int64_t truth = l.y ? argmax(l.y, c) : l.id;
        hits += argmax(out + off, c) == truth;
    }
    if (loss_sum) *loss_sum += sum;
    if (correct) *correct += hits;
}

/* ---------------- binary ---------------- */

/* max(z,0) - z*y + log1p(exp(-|z|)): no overflow for any finite z. */
static inline double bce_logit(double z, double y, double *grad)
{
    double e = exp(-fabs(z));
    *grad = (z >= 0 ? 1 / (1 + e) : e / (1 + e)) - y;
    return (z > 0 ? z : 0) - z * y + log1p(e);
}

static inline double bce_prob(double p, double y, double *grad)
{
    bool clipped;
    double q = clip_p(p, &clipped);
    *grad = clipped ? 0 : -y / q + (1 - y) / (1 - q);
    return -(y * log(q) + (1 - y) * log(1 - q));
}

static void binary(int batch, int64_t c, const float *out, const float *logits,
                   const float *y, float *dout, double *loss_sum,
                   int64_t *correct)
{
    int64_t n = (int64_t)batch * c;
    double scale = 1.0 / (double)n, sum = 0;
    int64_t hits = 0;
    bool out_is_logits = logits && logits == out;
    for (int64_t k = 0; k < n; k++) {
        double g;
        sum += logits ? bce_logit(logits[k], y[k], &g)
                      : bce_prob(out[k], y[k], &g);
        if (dout) dout[k] = (float)(g * scale);
        bool pos = out_is_logits ? out[k] > 0 : out[k] > 0.5f;
        hits += (pos ? 1.0f : 0.0f) == y[k];
    }
    /* Per-sample loss is the mean over its c values. */
    if (loss_sum) *loss_sum += sum / (double)c;
    if (correct) *correct += hits;
}

nn_status nn__loss(nn_loss kind, int batch, int64_t classes, const float *out,
                   const float *logits, const float *y, float *dout,
                   double *loss_sum, int64_t *correct)
{
    NN_CHECK(kind == NN_LOSS_CATEGORICAL_CROSSENTROPY ||
                 kind == NN_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY ||
                 kind == NN_LOSS_BINARY_CROSSENTROPY,
             NN_ERR_INVALID, "loss: unknown loss %d", (int)kind);
    NN_CHECK(out && y, NN_ERR_INVALID, "loss: NULL output or labels");
    NN_CHECK(batch > 0 && classes > 0, NN_ERR_SHAPE,
             "loss: batch %d of %lld values", batch, (long long)classes);
    NN_TRY(validate(kind, batch, classes, out, logits, y));
    if (kind == NN_LOSS_BINARY_CROSSENTROPY)
        binary(batch, classes, out, logits, y, dout, loss_sum, correct);
    else
        categorical(kind, batch, classes, out, logits, y, dout, loss_sum,
                    correct);
    return NN_OK;
}

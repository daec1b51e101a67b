/* Cross-entropy terms with Keras semantics (the contract every term keeps
 * is in src/loss/loss.c; definitions in docs/losses.md).
 *
 * Categorical (one-hot or class-id labels): each position's `classes`
 * values are one row; the row loss is -sum_j w_j y_j log q_j (w_j the
 * class weights, 1 without); a sample's loss is the mean of its rows
 * (Keras reduces the last axis, then averages over positions), so for a
 * flat output [N, C] it is the row itself. Binary: a sample's loss is the
 * mean over all its values of -(pw y log p + (1 - y) log(1 - p)).
 *
 * Weights: sample n's loss is multiplied by its sample weight s_n, and
 * the batch's sum is divided by D: the number of samples (Keras), or the
 * sum of the weights, sum_n s_n times the mean over its rows of
 * sum_j w_j y_j (PyTorch's weight= mean; 1 per row without class
 * weights). The term returns N / D times that weighted sum, so that the
 * caller's division by N gives the batch's loss.
 *
 * Probabilities (logits NULL) follow Keras: categorical rows are divided
 * by their sum, then clipped to [1e-7, 1 - 1e-7]; binary values are
 * clipped. Clipped values get zero gradient. The categorical gradient
 * includes the row normalisation: dL/dp_k = (g_k + sum of w_j y_j over
 * unclipped j) / S with g_k = -w_k y_k/q_k; after a softmax the added
 * per-row constant cancels, so it equals the plain -w y/p there.
 * With logits the categorical gradient is softmax(z) * sum(w y) - w y,
 * which is softmax(z) - y for unweighted labels that sum to one; binary:
 * sigmoid(z) - y - (pw - 1) y (1 - sigmoid(z)). */
#include "nn_internal.h"
#include "loss/loss.h"

#include <math.h>
#include <stdbool.h>

#define P_LO 1e-7f
#define P_HI (1.0f - 1e-7f)

/* ---------------- categorical ---------------- */

/* One row's labels: a one-hot/probability row, or a class id (row NULL),
 * with the class weights (NULL: 1). label_at is w_j y_j. */
typedef struct label_row {
    const float *y;
    int64_t id;
    const float *w;
} label_row;

static inline double label_at(const label_row *l, int64_t j)
{
    double y = l->y ? (double)l->y[j] : (double)(j == l->id);
    return l->w && y != 0 ? y * (double)l->w[j] : y;
}

static label_row row_labels(const nn_loss_batch *b, const nn_loss_opts *o,
                            int64_t r)
{
    label_row l = {NULL, -1, o->class_weights};
    if (b->sparse)
        l.id = (int64_t)b->y[r];
    else
        l.y = b->y + r * b->classes;
    return l;
}

/* The row's weight in a weighted mean: sum_j w_j y_j, 1 without class
 * weights. */
static double row_weight(const label_row *l, int64_t c)
{
    if (!l->w) return 1;
    if (!l->y) return (double)l->w[l->id];
    double s = 0;
    for (int64_t j = 0; j < c; j++) s += label_at(l, j);
    return s;
}

/* D of the file comment. */
static double cce_denominator(const nn_loss_batch *b, const nn_loss_opts *o)
{
    if (o->weight_norm != NN_WEIGHT_NORM_SUM || !o->class_weights)
        return nn__loss_denominator(o, b);
    int64_t rows = (int64_t)b->batch * b->positions;
    double d = 0;
    for (int64_t r = 0; r < rows; r++) {
        label_row l = row_labels(b, o, r);
        d += nn__sample_weight(b, r / b->positions) * row_weight(&l, b->classes);
    }
    return d / (double)b->positions;
}

/* Stable log-softmax in double: exact for logits such as +-1000. */
static double cce_logits_row(const float *z, const label_row *l, int64_t c,
                             float *d, double scale)
{
    double mx = z[nn__argmax(z, c)], s = 0, ysum = 0, loss = 0;
    for (int64_t j = 0; j < c; j++) s += exp((double)z[j] - mx);
    double lse = mx + log(s);
    for (int64_t j = 0; j < c; j++) {
        double yj = label_at(l, j);
        if (yj != 0) loss -= yj * ((double)z[j] - lse);
        ysum += yj;
    }
    if (d)
        for (int64_t j = 0; j < c; j++)
            d[j] += (float)((exp((double)z[j] - lse) * ysum - label_at(l, j)) *
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
            d[j] += (float)((g + y_unclipped) / s * scale);
        }
    return loss;
}

double nn__cce_term(const nn_loss_batch *b, const nn_loss_opts *o,
                    double weight)
{
    int64_t c = b->classes, rows = (int64_t)b->batch * b->positions;
    double den = cce_denominator(b, o), sum = 0;
    if (den <= 0) return 0; /* every weight 0: no loss, no gradient */
    double scale = weight / (den * (double)b->positions);
    for (int64_t r = 0; r < rows; r++) {
        int64_t off = r * c;
        label_row l = row_labels(b, o, r);
        double s = nn__sample_weight(b, r / b->positions);
        if (s == 0) continue;
        float *d = b->dout ? b->dout + off : NULL;
        sum += s * (b->logits
                        ? cce_logits_row(b->logits + off, &l, c, d, s * scale)
                        : cce_probs_row(b->out + off, &l, c, d, s * scale));
    }
    /* A sample's loss is the mean over its positions; N / D makes the
     * caller's mean the weighted one. */
    return sum / (double)b->positions * (double)b->batch / den;
}

/* ---------------- binary ---------------- */

/* -(pw y log s + (1 - y) log(1 - s)) with s = sigmoid(z) is
 * max(z, 0) - z y + log1p(exp(-|z|)) + (pw - 1) y softplus(-z), with
 * softplus(-z) = max(-z, 0) + log1p(exp(-|z|)): no overflow for any
 * finite z, and exactly the unweighted form for pw = 1. The gradient is
 * s - y - (pw - 1) y (1 - s). */
static inline double bce_logit(double z, double y, double pw, double *grad)
{
    double e = exp(-fabs(z)), l1p = log1p(e);
    double sig = z >= 0 ? 1 / (1 + e) : e / (1 + e);
    double one_minus = z >= 0 ? e / (1 + e) : 1 / (1 + e);
    double extra = (pw - 1) * y;
    *grad = sig - y - extra * one_minus;
    return (z > 0 ? z : 0) - z * y + l1p +
           extra * ((z < 0 ? -z : 0) + l1p);
}

static inline double bce_prob(double p, double y, double pw, double *grad)
{
    bool clipped;
    double q = clip_p(p, &clipped);
    *grad = clipped ? 0 : -pw * y / q + (1 - y) / (1 - q);
    return -(pw * y * log(q) + (1 - y) * log(1 - q));
}

double nn__bce_term(const nn_loss_batch *b, const nn_loss_opts *o,
                    double weight)
{
    int64_t per = b->positions * b->classes, n = (int64_t)b->batch * per;
    double den = nn__loss_denominator(o, b), pw = o->pos_weight, sum = 0;
    if (den <= 0) return 0;
    double scale = weight / (den * (double)per);
    for (int64_t k = 0; k < n; k++) {
        double g, s = nn__sample_weight(b, k / per);
        if (s == 0) continue;
        sum += s * (b->logits ? bce_logit(b->logits[k], b->y[k], pw, &g)
                              : bce_prob(b->out[k], b->y[k], pw, &g));
        if (b->dout) b->dout[k] += (float)(g * s * scale);
    }
    /* A sample's loss is the mean over its values. */
    return sum / (double)per * (double)b->batch / den;
}

/* Cross-entropy terms with Keras semantics (the contract every term keeps
 * is in src/loss/loss.c; definitions in docs/losses.md).
 *
 * Categorical (one-hot or class-id labels): each position's `classes`
 * values are one row; the row loss is -sum_j y_j log q_j; a sample's loss
 * is the mean of its rows (Keras reduces the last axis, then averages over
 * positions), so for a flat output [N, C] it is the row itself. Binary:
 * a sample's loss is the mean over all its values.
 *
 * Probabilities (logits NULL) follow Keras: categorical rows are divided
 * by their sum, then clipped to [1e-7, 1 - 1e-7]; binary values are
 * clipped. Clipped values get zero gradient. The categorical gradient
 * includes the row normalisation: dL/dp_k = (g_k + sum of y_j over
 * unclipped j) / S with g_k = -y_k/q_k; after a softmax the added
 * per-row constant cancels, so it equals the plain -y/p there.
 * With logits the categorical gradient is softmax(z) * sum(y) - y, which is
 * softmax(z) - y for labels that sum to one; binary: sigmoid(z) - y. */
#include "nn_internal.h"
#include "loss/loss.h"

#include <math.h>
#include <stdbool.h>

#define P_LO 1e-7f
#define P_HI (1.0f - 1e-7f)

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

double nn__cce_term(const nn_loss_batch *b, double weight)
{
    int64_t c = b->classes, rows = (int64_t)b->batch * b->positions;
    double scale = weight / (double)rows, sum = 0;
    for (int64_t r = 0; r < rows; r++) {
        int64_t off = r * c;
        label_row l = {NULL, -1};
        if (b->sparse)
            l.id = (int64_t)b->y[r];
        else
            l.y = b->y + off;
        float *d = b->dout ? b->dout + off : NULL;
        sum += b->logits ? cce_logits_row(b->logits + off, &l, c, d, scale)
                         : cce_probs_row(b->out + off, &l, c, d, scale);
    }
    /* A sample's loss is the mean over its positions. */
    return sum / (double)b->positions;
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

double nn__bce_term(const nn_loss_batch *b, double weight)
{
    int64_t per = b->positions * b->classes, n = (int64_t)b->batch * per;
    double scale = weight / (double)n, sum = 0;
    for (int64_t k = 0; k < n; k++) {
        double g;
        sum += b->logits ? bce_logit(b->logits[k], b->y[k], &g)
                         : bce_prob(b->out[k], b->y[k], &g);
        if (b->dout) b->dout[k] += (float)(g * scale);
    }
    /* A sample's loss is the mean over its values. */
    return sum / (double)per;
}

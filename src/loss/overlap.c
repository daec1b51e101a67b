/* Soft IoU (Jaccard) and Dice losses (definitions in docs/losses.md).
 *
 * Per group g (a class over the whole batch, or a class in one image):
 *   I = sum p*y, Sp = sum p, Sy = sum y over the group's positions,
 *   IoU:  L = 1 - (I + s) / max(Sp + Sy - I + s, eps)
 *   Dice: L = 1 - (2I + s) / max(Sp + Sy + s, eps)
 * and the loss is the mean of L over the groups of a batch (REDUCE_BATCH:
 * the classes) or of an image (REDUCE_IMAGE), then over the images.
 * p is the output (probabilities) or the sigmoid / softmax of the logits.
 *
 * Both losses are N/D ratios of sums that are linear in p, so
 * dL/dp_i = a_g y_i + b_g with two numbers per group: for IoU
 * a = -1/D - N/D^2, b = N/D^2; for Dice a = -2/D, b = N/D^2; where the eps
 * bound holds D constant, b = 0. The terms of a sum add their a and b, and
 * one more pass writes the gradient (through the sigmoid or softmax when
 * the loss sees logits). Sums are in double. */
#include "nn_internal.h"
#include "loss/loss.h"

#include <math.h>
#include <string.h>

enum { WS_I, WS_SP, WS_SY, WS_A, WS_B, WS_ARRAYS };

static int64_t groups(const nn_loss_opts *o, const nn_loss_batch *b)
{
    int64_t per_image = o->reduction == NN_LOSS_REDUCE_IMAGE ? b->batch : 1;
    return per_image * b->classes;
}

size_t nn__overlap_ws_doubles(const nn_loss_opts *o, const nn_loss_batch *b)
{
    return (size_t)(WS_ARRAYS * groups(o, b));
}

static inline int64_t group_of(const nn_loss_opts *o, const nn_loss_batch *b,
                               int64_t row, int64_t c)
{
    if (o->reduction != NN_LOSS_REDUCE_IMAGE) return c;
    return row / b->positions * b->classes + c;
}

static inline double label(const nn_loss_batch *b, int64_t row, int64_t c)
{
    if (b->sparse) return (double)((int64_t)b->y[row] == c);
    return (double)b->y[row * b->classes + c];
}

/* log-sum-exp of a row of logits, for the softmax; 0 otherwise. */
static double row_lse(const nn_loss_batch *b, int64_t row)
{
    if (!b->logits || b->sigmoid) return 0;
    const float *z = b->logits + row * b->classes;
    double mx = z[nn__argmax(z, b->classes)], s = 0;
    for (int64_t c = 0; c < b->classes; c++) s += exp((double)z[c] - mx);
    return mx + log(s);
}

static inline double prob(const nn_loss_batch *b, int64_t k, double lse)
{
    if (!b->logits) return b->out[k];
    double z = b->logits[k];
    if (!b->sigmoid) return exp(z - lse);
    double e = exp(-fabs(z));
    return z >= 0 ? 1 / (1 + e) : e / (1 + e);
}

static void accumulate(const nn_loss_opts *o, const nn_loss_batch *b,
                       double *ws, int64_t ng)
{
    double *in = ws + WS_I * ng, *sp = ws + WS_SP * ng, *sy = ws + WS_SY * ng;
    int64_t rows = (int64_t)b->batch * b->positions;
    for (int64_t r = 0; r < rows; r++) {
        double lse = row_lse(b, r);
        for (int64_t c = 0; c < b->classes; c++) {
            double p = prob(b, r * b->classes + c, lse), y = label(b, r, c);
            int64_t g = group_of(o, b, r, c);
            in[g] += p * y;
            sp[g] += p;
            sy[g] += y;
        }
    }
}

/* The group's loss, and its gradient coefficients a, b (dL/dp = a y + b). */
static double group_loss(nn_loss kind, const nn_loss_opts *o, double i,
                         double sp, double sy, double *a, double *b)
{
    bool iou = kind == NN_LOSS_IOU;
    double num = (iou ? i : 2 * i) + o->smooth;
    double den = (iou ? sp + sy - i : sp + sy) + o->smooth;
    bool bounded = den < o->eps;
    if (bounded) den = o->eps;
    *b = bounded ? 0 : num / (den * den);
    *a = iou ? -1 / den - *b : -2 / den;
    return 1 - num / den;
}

/* Sample weights: the batch's loss is sum_n s_n L_n / D (loss.c). Per
 * image a group counts s_n N / D times; over the batch every sample
 * carries the same L, so each group counts (sum_n s_n) / D times. 1
 * without weights. */
static double group_factor(const nn_loss_opts *o, const nn_loss_batch *b,
                           int64_t g, double den)
{
    if (!b->sample_weight) return 1;
    if (o->reduction == NN_LOSS_REDUCE_IMAGE)
        return nn__sample_weight(b, g / b->classes) * (double)b->batch / den;
    double s = 0;
    for (int n = 0; n < b->batch; n++) s += nn__sample_weight(b, n);
    return s / den;
}

/* Adds weight * the term's a and b, scaled to the mean over groups, into
 * A and B; returns the term's weighted sum of per-sample losses. */
static double add_term(nn_loss kind, double weight, const nn_loss_opts *o,
                       const nn_loss_batch *b, double *ws, int64_t ng)
{
    double *in = ws + WS_I * ng, *sp = ws + WS_SP * ng, *sy = ws + WS_SY * ng;
    double *ga = ws + WS_A * ng, *gb = ws + WS_B * ng;
    double scale = weight / (double)ng, sum = 0;
    double den = nn__loss_denominator(o, b);
    if (den <= 0) return 0; /* every weight 0: no loss, no gradient */
    for (int64_t g = 0; g < ng; g++) {
        double a, c, f = group_factor(o, b, g, den);
        sum += f * group_loss(kind, o, in[g], sp[g], sy[g], &a, &c);
        ga[g] += f * a * scale;
        gb[g] += f * c * scale;
    }
    /* The mean over the groups is the batch's loss: batch per-sample
     * losses of that mean. */
    return sum * scale * (double)b->batch;
}

static void write_grad(const nn_loss_opts *o, const nn_loss_batch *b,
                       const double *ws, int64_t ng)
{
    const double *ga = ws + WS_A * ng, *gb = ws + WS_B * ng;
    int64_t rows = (int64_t)b->batch * b->positions, nc = b->classes;
    for (int64_t r = 0; r < rows; r++) {
        double lse = row_lse(b, r), dot = 0;
        float *d = b->dout + r * nc;
        /* d p_c for the softmax: p_c (g_c - sum_k p_k g_k). */
        for (int64_t c = 0; b->logits && !b->sigmoid && c < nc; c++) {
            int64_t g = group_of(o, b, r, c);
            dot += prob(b, r * nc + c, lse) * (ga[g] * label(b, r, c) + gb[g]);
        }
        for (int64_t c = 0; c < nc; c++) {
            int64_t g = group_of(o, b, r, c);
            double gp = ga[g] * label(b, r, c) + gb[g];
            double p = prob(b, r * nc + c, lse);
            if (!b->logits)
                d[c] += (float)gp;
            else if (b->sigmoid)
                d[c] += (float)(gp * p * (1 - p));
            else
                d[c] += (float)(p * (gp - dot));
        }
    }
}

static bool is_overlap(nn_loss kind)
{
    return kind == NN_LOSS_IOU || kind == NN_LOSS_DICE;
}

double nn__overlap_terms(const nn_loss_terms *t, const nn_loss_opts *o,
                         const nn_loss_batch *b, double *ws)
{
    int64_t ng = groups(o, b);
    memset(ws, 0, (size_t)(WS_ARRAYS * ng) * sizeof *ws);
    accumulate(o, b, ws, ng);
    double sum = 0;
    for (int k = 0; k < t->n; k++)
        if (is_overlap(t->kind[k]))
            sum += add_term(t->kind[k], t->weight[k], o, b, ws, ng);
    if (b->dout) write_grad(o, b, ws, ng);
    return sum;
}

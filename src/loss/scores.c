/* The binary view of a classifier (nn_binary_opts, docs/metrics.md): the
 * score of the positive class for every output position, and its label,
 * collected over batches for the curves of curve.c.
 *
 * A score is computed from the output as predict returns it (float
 * probabilities), so a threshold chosen on these scores means the same
 * on the values a product reads: positive where score >= threshold. */
#include "nn_internal.h"
#include "loss/loss.h"

#include <math.h>

nn_status nn__binary_check(const nn_binary_opts *o, int64_t classes,
                           const char *what)
{
    int n = nn__confusion_classes_for(classes);
    int k = o->positive_class < 0 ? NN_ALL_BUT(o->positive_class)
                                  : o->positive_class;
    NN_CHECK(k >= 0 && k < n, NN_ERR_INVALID,
             "%s: positive_class %d; the output has %d classes: give 0 to "
             "%d, or NN_ALL_BUT(k) for every class but k",
             what, o->positive_class, n, n - 1);
    NN_CHECK(isfinite(o->threshold), NN_ERR_INVALID,
             "%s: the threshold is %g; it must be finite", what,
             (double)o->threshold);
    return NN_OK;
}

nn_scores *nn__scores_new(int positive_class, int64_t cap)
{
    nn_scores *s = nn__calloc(1, sizeof *s);
    if (!s) return NULL;
    s->positive_class = positive_class;
    s->cap = cap;
    s->score = nn__alloc((size_t)cap * sizeof(float));
    s->label = nn__alloc((size_t)cap * sizeof(float));
    if (s->score && s->label) return s;
    nn__scores_free(s);
    return NULL;
}

void nn__scores_free(nn_scores *s)
{
    if (!s) return;
    nn__free(s->score);
    nn__free(s->label);
    nn__free(s);
}

static bool is_positive(int positive_class, int64_t cls)
{
    return positive_class >= 0 ? cls == positive_class
                               : cls != NN_ALL_BUT(positive_class);
}

/* One channel: p (or sigmoid(z)) is class 1's probability; class 0's is
 * 1 - p, from the logit without cancellation. */
static float one_channel_score(float v, bool logits, int positive_class)
{
    bool class1 = is_positive(positive_class, 1);
    if (!logits) return class1 ? v : (float)(1 - (double)v);
    double e = exp(-fabs((double)v));
    double p = v >= 0 ? 1 / (1 + e) : e / (1 + e);
    double q = v >= 0 ? e / (1 + e) : 1 / (1 + e);
    return (float)(class1 ? p : q);
}

/* Several channels: p_k, or the sum of the others for NN_ALL_BUT(k)
 * (summed in double, small probabilities keep their precision). */
float nn__row_score(const float *o, int64_t c, bool logits,
                    int positive_class)
{
    if (c == 1) return one_channel_score(o[0], logits, positive_class);
    if (!logits && positive_class >= 0) return o[positive_class];
    double lse = 0;
    if (logits) {
        double mx = o[nn__argmax(o, c)], s = 0;
        for (int64_t j = 0; j < c; j++) s += exp((double)o[j] - mx);
        lse = mx + log(s);
    }
    double sum = 0;
    for (int64_t j = 0; j < c; j++)
        if (is_positive(positive_class, j))
            sum += logits ? exp((double)o[j] - lse) : (double)o[j];
    return (float)sum;
}

nn_status nn__scores_add(nn_scores *s, const nn_loss_batch *b,
                         bool out_is_logits)
{
    int64_t rows = (int64_t)b->batch * b->positions;
    NN_CHECK(s->n + rows <= s->cap, NN_ERR_STATE,
             "scores: %lld more rows than the %lld planned",
             (long long)(s->n + rows - s->cap), (long long)s->cap);
    for (int64_t r = 0; r < rows; r++, s->n++) {
        s->score[s->n] = nn__row_score(b->out + r * b->classes, b->classes,
                                       out_is_logits, s->positive_class);
        s->label[s->n] =
            is_positive(s->positive_class, nn__label_class(b, r)) ? 1.0f
                                                                  : 0.0f;
    }
    return NN_OK;
}

nn_status nn__scores_report(const nn_scores *s, float threshold,
                            nn_binary_report *r)
{
    nn_curve *c = NULL;
    NN_TRY(nn__curve_new(s->score, s->label, s->n, &c));
    nn__curve_report(c, threshold, r);
    nn_curve_free(c);
    return NN_OK;
}

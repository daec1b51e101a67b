/* ROC and precision-recall curves of binary scores, their areas, and the
 * choice of a decision threshold (definitions in docs/metrics.md, as
 * scikit-learn's roc_curve, precision_recall_curve, roc_auc_score and
 * average_precision_score).
 *
 * The scores are sorted once, decreasing; every distinct score k is a
 * threshold with the counts TP_k and FP_k of the samples whose score is
 * >= it (tied scores enter together, which is how ties make one point).
 * Everything else is read from those counts, exactly. */
#include "nn_internal.h"
#include "loss/loss.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct nn_curve {
    int64_t k;        /* distinct thresholds */
    int64_t pos, neg; /* samples of each label */
    float *thr;       /* [k], decreasing */
    int64_t *tp, *fp; /* [k]: counts with score >= thr */
};

typedef struct scored {
    float score, label;
} scored;

static int by_score_desc(const void *pa, const void *pb)
{
    float a = ((const scored *)pa)->score, b = ((const scored *)pb)->score;
    return (a < b) - (a > b);
}

static nn_status check_scores(const float *scores, const float *labels,
                              int64_t n, const char *what)
{
    NN_CHECK(scores && labels, NN_ERR_INVALID, "%s: NULL scores or labels",
             what);
    NN_CHECK(n >= 1 && n <= ((int64_t)1 << 40), NN_ERR_INVALID,
             "%s: %lld scores; give 1 to 2^40", what, (long long)n);
    for (int64_t i = 0; i < n; i++) {
        NN_CHECK(isfinite(scores[i]), NN_ERR_NUMERIC,
                 "%s: score %lld is %g; scores must be finite", what,
                 (long long)i, (double)scores[i]);
        NN_CHECK(labels[i] == 0 || labels[i] == 1, NN_ERR_INVALID,
                 "%s: label %lld is %g; labels are 0 (negative) or 1 "
                 "(positive)",
                 what, (long long)i, (double)labels[i]);
    }
    return NN_OK;
}

static void curve_free(nn_curve *c)
{
    if (!c) return;
    nn__free(c->thr);
    nn__free(c->tp);
    nn__free(c->fp);
    nn__free(c);
}

static nn_curve *curve_alloc(int64_t k)
{
    nn_curve *c = nn__calloc(1, sizeof *c);
    if (!c) return NULL;
    c->k = k;
    c->thr = nn__alloc((size_t)k * sizeof *c->thr);
    c->tp = nn__alloc((size_t)k * sizeof *c->tp);
    c->fp = nn__alloc((size_t)k * sizeof *c->fp);
    if (c->thr && c->tp && c->fp) return c;
    curve_free(c);
    return NULL;
}

/* The counts at the end of each run of equal scores. */
static void fill_counts(nn_curve *c, const scored *v, int64_t n)
{
    int64_t tp = 0, fp = 0, k = 0;
    for (int64_t i = 0; i < n; i++) {
        if (v[i].label == 1)
            tp++;
        else
            fp++;
        if (i + 1 < n && v[i + 1].score == v[i].score) continue;
        c->thr[k] = v[i].score;
        c->tp[k] = tp;
        c->fp[k] = fp;
        k++;
    }
    c->pos = tp;
    c->neg = fp;
}

nn_status nn__curve_new(const float *scores, const float *labels, int64_t n,
                        nn_curve **out)
{
    *out = NULL;
    NN_TRY(check_scores(scores, labels, n, "nn_curve_create"));
    scored *v = nn__alloc((size_t)n * sizeof *v);
    NN_CHECK(v, NN_ERR_NOMEM, "nn_curve_create: out of memory for %lld "
                              "scores", (long long)n);
    for (int64_t i = 0; i < n; i++) v[i] = (scored){scores[i], labels[i]};
    qsort(v, (size_t)n, sizeof *v, by_score_desc);
    int64_t k = 1;
    for (int64_t i = 1; i < n; i++) k += v[i].score != v[i - 1].score;
    nn_curve *c = curve_alloc(k);
    if (c) fill_counts(c, v, n);
    nn__free(v);
    NN_CHECK(c, NN_ERR_NOMEM, "nn_curve_create: out of memory for %lld "
                              "thresholds", (long long)k);
    *out = c;
    return NN_OK;
}

nn_curve *nn_curve_create(const float *scores, const float *labels,
                          int64_t n)
{
    nn_curve *c = NULL;
    nn__curve_new(scores, labels, n, &c);
    return c;
}

void nn_curve_free(nn_curve *c)
{
    curve_free(c);
}

int64_t nn_curve_size(const nn_curve *c)
{
    if (!c) return nn__fail(NN_ERR_INVALID, "nn_curve_size: NULL curve");
    return c->k;
}

int64_t nn_curve_positives(const nn_curve *c)
{
    if (!c) return nn__fail(NN_ERR_INVALID, "nn_curve_positives: NULL curve");
    return c->pos;
}

int64_t nn_curve_negatives(const nn_curve *c)
{
    if (!c) return nn__fail(NN_ERR_INVALID, "nn_curve_negatives: NULL curve");
    return c->neg;
}

/* ---------------- the curves ---------------- */

static double rate(int64_t count, int64_t total)
{
    return total ? (double)count / (double)total : NAN;
}

static double precision_at(const nn_curve *c, int64_t k)
{
    return (double)c->tp[k] / (double)(c->tp[k] + c->fp[k]);
}

static nn_status check_points(const nn_curve *c, int64_t cap, int64_t need,
                              const char *what)
{
    NN_CHECK(c, NN_ERR_INVALID, "%s: NULL curve", what);
    NN_CHECK(cap >= need, NN_ERR_INVALID,
             "%s: room for %lld points, the curve has %lld (nn_curve_size "
             "gives K)",
             what, (long long)cap, (long long)need);
    return NN_OK;
}

nn_status nn_curve_roc(const nn_curve *c, double *fpr, double *tpr,
                       float *thresholds, int64_t cap)
{
    NN_TRY(check_points(c, cap, c ? c->k + 1 : 0, "nn_curve_roc"));
    for (int64_t k = 0; k <= c->k; k++) {
        int64_t tp = k ? c->tp[k - 1] : 0, fp = k ? c->fp[k - 1] : 0;
        if (fpr) fpr[k] = rate(fp, c->neg);
        if (tpr) tpr[k] = rate(tp, c->pos);
        if (thresholds) thresholds[k] = k ? c->thr[k - 1] : INFINITY;
    }
    return NN_OK;
}

nn_status nn_curve_pr(const nn_curve *c, double *precision, double *recall,
                      float *thresholds, int64_t cap)
{
    NN_TRY(check_points(c, cap, c ? c->k : 0, "nn_curve_pr"));
    for (int64_t k = 0; k < c->k; k++) {
        if (precision) precision[k] = precision_at(c, k);
        if (recall) recall[k] = rate(c->tp[k], c->pos);
        if (thresholds) thresholds[k] = c->thr[k];
    }
    return NN_OK;
}

/* ---------------- areas ---------------- */

/* Trapezoids between consecutive points from (0, 0): a run of tied
 * scores holding both labels is a diagonal step, half credit. */
static double roc_auc(const nn_curve *c)
{
    if (!c->pos || !c->neg) return NAN;
    double area = 0;
    for (int64_t k = 0; k < c->k; k++) {
        int64_t tp0 = k ? c->tp[k - 1] : 0, fp0 = k ? c->fp[k - 1] : 0;
        area += (double)(c->fp[k] - fp0) * (double)(c->tp[k] + tp0);
    }
    return area / 2 / ((double)c->pos * (double)c->neg);
}

static double average_precision(const nn_curve *c)
{
    if (!c->pos) return NAN;
    double ap = 0;
    for (int64_t k = 0; k < c->k; k++) {
        int64_t tp0 = k ? c->tp[k - 1] : 0;
        ap += (double)(c->tp[k] - tp0) * precision_at(c, k);
    }
    return ap / (double)c->pos;
}

double nn_curve_roc_auc(const nn_curve *c)
{
    if (!c) {
        nn__fail(NN_ERR_INVALID, "nn_curve_roc_auc: NULL curve");
        return NAN;
    }
    double v = roc_auc(c);
    if (isnan(v))
        nn__fail(NN_ERR_INVALID,
                 "nn_curve_roc_auc: undefined with %lld positive and %lld "
                 "negative samples; both classes must be present",
                 (long long)c->pos, (long long)c->neg);
    return v;
}

double nn_curve_average_precision(const nn_curve *c)
{
    if (!c) {
        nn__fail(NN_ERR_INVALID, "nn_curve_average_precision: NULL curve");
        return NAN;
    }
    double v = average_precision(c);
    if (isnan(v))
        nn__fail(NN_ERR_INVALID, "nn_curve_average_precision: undefined "
                                 "without positive samples");
    return v;
}

/* ---------------- the decision at a threshold ---------------- */

/* Index of the smallest distinct score >= t (scores >= t are counted up
 * to it); -1 when every score is below t. */
static int64_t index_at(const nn_curve *c, float t)
{
    int64_t lo = 0, hi = c->k; /* thr[0 .. lo) >= t, thr[hi ..) < t */
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (c->thr[mid] >= t)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo - 1;
}

/* The precision, recall, F1 and accuracy come from the one home of those
 * formulas: a 2-class confusion matrix of the counts. */
void nn__curve_report(const nn_curve *c, float threshold, nn_binary_report *r)
{
    int64_t k = index_at(c, threshold);
    int64_t tp = k >= 0 ? c->tp[k] : 0, fp = k >= 0 ? c->fp[k] : 0;
    int64_t counts[4] = {c->neg - fp, fp, c->pos - tp, tp};
    nn_confusion cm = {2, counts};
    *r = (nn_binary_report){.size = sizeof *r, .threshold = threshold,
                            .tp = tp, .fp = fp, .tn = counts[0],
                            .fn = counts[2]};
    r->precision = nn_confusion_precision(&cm, 1);
    r->recall = nn_confusion_recall(&cm, 1);
    r->f1 = nn_confusion_f1(&cm, 1);
    r->accuracy = nn_confusion_pixel_accuracy(&cm);
    r->roc_auc = roc_auc(c);
    r->average_precision = average_precision(c);
}

/* Copies the members that fit in the caller's struct (its size says). */
static nn_status put_report(nn_binary_report *dst, const nn_binary_report *r,
                            const char *what)
{
    return nn__write_opts(dst, r, what);
}

nn_status nn_curve_report(const nn_curve *c, float threshold,
                          nn_binary_report *report)
{
    NN_CHECK(c, NN_ERR_INVALID, "nn_curve_report: NULL curve");
    NN_CHECK(!isnan(threshold), NN_ERR_INVALID,
             "nn_curve_report: the threshold is NaN");
    nn_binary_report r;
    nn__curve_report(c, threshold, &r);
    return put_report(report, &r, "nn_curve_report");
}

/* ---------------- choosing the threshold ---------------- */

static nn_status check_target(const nn_curve *c, double target,
                              const char *what)
{
    NN_CHECK(c, NN_ERR_INVALID, "%s: NULL curve", what);
    NN_CHECK(target > 0 && target <= 1, NN_ERR_INVALID,
             "%s: target %g; give a value in (0, 1]", what, target);
    NN_CHECK(c->pos > 0, NN_ERR_INVALID,
             "%s: no positive sample among the %lld scores: no threshold "
             "finds one",
             what, (long long)c->neg);
    return NN_OK;
}

/* Recall only grows as the threshold falls: the first point reaching
 * the target is the largest threshold that does. */
nn_status nn_curve_threshold_for_recall(const nn_curve *c, double target,
                                        nn_binary_report *report)
{
    const char *what = "nn_curve_threshold_for_recall";
    NN_TRY(check_target(c, target, what));
    int64_t k = 0;
    while (rate(c->tp[k], c->pos) < target) k++; /* k = K-1 has recall 1 */
    nn_binary_report r;
    nn__curve_report(c, c->thr[k], &r);
    return put_report(report, &r, what);
}

/* Precision goes up and down with the threshold: the last point (from
 * the top) reaching the target is the smallest threshold that does,
 * the one that also keeps the most recall. */
nn_status nn_curve_threshold_for_precision(const nn_curve *c, double target,
                                           nn_binary_report *report)
{
    const char *what = "nn_curve_threshold_for_precision";
    NN_TRY(check_target(c, target, what));
    int64_t best = c->k - 1; /* the highest precision, for the message */
    for (int64_t k = c->k - 1; k >= 0; k--) {
        if (precision_at(c, k) >= target) {
            nn_binary_report r;
            nn__curve_report(c, c->thr[k], &r);
            return put_report(report, &r, what);
        }
        if (precision_at(c, k) > precision_at(c, best)) best = k;
    }
    return nn__fail(NN_ERR_INVALID,
                    "%s: no threshold reaches precision %g; the best these "
                    "scores reach is %g (recall %g, threshold %g)",
                    what, target, precision_at(c, best),
                    rate(c->tp[best], c->pos), (double)c->thr[best]);
}

/* Confusion matrix over batches, and the thresholded metrics read from it
 * (Keras MeanIoU semantics, docs/losses.md; precision, recall and F1 as
 * scikit-learn, docs/metrics.md). Integer counts, so the metrics are
 * exact and do not depend on how the data were batched. */
#include "nn_internal.h"
#include "loss/loss.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define MAX_CLASSES 1024

int nn__confusion_classes_for(int64_t classes)
{
    return classes > 1 ? (int)classes : 2;
}

nn_confusion *nn_confusion_create(int classes)
{
    if (classes < 2 || classes > MAX_CLASSES) {
        nn__fail(NN_ERR_INVALID,
                 "nn_confusion_create: %d classes; give 2 to %d (2 for a "
                 "one-channel output)",
                 classes, MAX_CLASSES);
        return NULL;
    }
    nn_confusion *cm = nn__calloc(1, sizeof *cm);
    if (cm)
        cm->counts = nn__calloc((size_t)classes * (size_t)classes,
                                sizeof(int64_t));
    if (!cm || !cm->counts) {
        nn_confusion_free(cm);
        nn__fail(NN_ERR_NOMEM, "nn_confusion_create: out of memory");
        return NULL;
    }
    cm->classes = classes;
    return cm;
}

void nn_confusion_free(nn_confusion *cm)
{
    if (!cm) return;
    nn__free(cm->counts);
    nn__free(cm);
}

nn_status nn_confusion_reset(nn_confusion *cm)
{
    NN_CHECK(cm, NN_ERR_INVALID, "nn_confusion_reset: NULL matrix");
    memset(cm->counts, 0,
           (size_t)cm->classes * (size_t)cm->classes * sizeof(int64_t));
    return NN_OK;
}

int nn_confusion_classes(const nn_confusion *cm)
{
    if (!cm) return nn__fail(NN_ERR_INVALID, "nn_confusion_classes: NULL");
    return cm->classes;
}

/* ---------------- adding batches ---------------- */

int64_t nn__row_class(const float *o, int64_t classes, bool out_is_logits)
{
    if (classes > 1) return nn__argmax(o, classes);
    return out_is_logits ? o[0] > 0 : o[0] > 0.5f;
}

int64_t nn__label_class(const nn_loss_batch *b, int64_t row)
{
    if (b->sparse) return (int64_t)b->y[row];
    const float *y = b->y + row * b->classes;
    if (b->classes > 1) return nn__argmax(y, b->classes);
    return y[0] > 0.5f;
}

void nn__confusion_add(nn_confusion *cm, const nn_loss_batch *b,
                       bool out_is_logits)
{
    int64_t rows = (int64_t)b->batch * b->positions;
    for (int64_t r = 0; r < rows; r++)
        cm->counts[nn__label_class(b, r) * cm->classes +
                   nn__row_class(b->out + r * b->classes, b->classes,
                                 out_is_logits)]++;
}

void nn__confusion_merge(nn_confusion *into, const nn_confusion *from)
{
    int64_t cells = (int64_t)into->classes * into->classes;
    for (int64_t i = 0; i < cells; i++) into->counts[i] += from->counts[i];
}

/* Output [N, ..., C] and labels with, per sample, one value per position
 * or the output's size. */
static nn_status describe(const nn_confusion *cm, const nn_tensor *out,
                          const nn_tensor *labels, nn_loss_batch *b)
{
    const char *what = "nn_confusion_update";
    NN_CHECK(out->rank >= 2, NN_ERR_SHAPE,
             "%s: the output has rank %d; it needs a batch axis and a class "
             "axis",
             what, out->rank);
    int64_t n = out->shape[0], c = out->shape[out->rank - 1];
    NN_CHECK(n >= 1 && n <= (1 << 30), NN_ERR_SHAPE, "%s: batch of %lld",
             what, (long long)n);
    NN_CHECK(cm->classes == nn__confusion_classes_for(c), NN_ERR_SHAPE,
             "%s: an output of %lld channels makes %d classes; the matrix "
             "has %d",
             what, (long long)c, nn__confusion_classes_for(c), cm->classes);
    NN_CHECK(labels->shape[0] == n, NN_ERR_SHAPE,
             "%s: %lld labels for %lld samples", what,
             (long long)labels->shape[0], (long long)n);
    int64_t positions = out->size / n / c, per = labels->size / n;
    NN_CHECK(per == positions || per == positions * c, NN_ERR_SHAPE,
             "%s: each label has %lld values; the output needs %lld (one per "
             "position) or %lld (its own shape)",
             what, (long long)per, (long long)positions,
             (long long)(positions * c));
    *b = (nn_loss_batch){.batch = (int)n, .positions = positions,
                         .classes = c, .out = out->data, .y = labels->data,
                         .sparse = per == positions && c > 1};
    return NN_OK;
}

nn_status nn_confusion_update(nn_confusion *cm, const nn_tensor *out,
                              const nn_tensor *labels, int from_logits)
{
    const char *what = "nn_confusion_update";
    NN_CHECK(cm && out && labels, NN_ERR_INVALID, "%s: NULL argument", what);
    nn_loss_batch b = {0};
    NN_TRY(describe(cm, out, labels, &b));
    if (b.sparse)
        NN_TRY(nn__check_class_ids(b.y, b.batch, b.positions, b.classes,
                                   what));
    else
        NN_TRY(nn__check_unit_labels(b.y, b.batch, b.positions, b.classes,
                                     what));
    NN_TRY(nn__check_finite_values(b.out, b.batch, b.positions, b.classes,
                                   what, "output"));
    nn__confusion_add(cm, &b, from_logits != 0);
    return NN_OK;
}

/* ---------------- metrics ---------------- */

int64_t nn_confusion_count(const nn_confusion *cm, int truth_class,
                           int predicted_class)
{
    if (!cm || truth_class < 0 || truth_class >= cm->classes ||
        predicted_class < 0 || predicted_class >= cm->classes)
        return nn__fail(NN_ERR_INVALID,
                        "nn_confusion_count: no cell (%d, %d) in a %d-class "
                        "matrix",
                        truth_class, predicted_class, cm ? cm->classes : 0);
    return cm->counts[(int64_t)truth_class * cm->classes + predicted_class];
}

typedef struct class_counts {
    int64_t tp, truth, pred; /* diagonal, row sum, column sum */
} class_counts;

static class_counts counts_of(const nn_confusion *cm, int c)
{
    class_counts k = {cm->counts[(int64_t)c * cm->classes + c], 0, 0};
    for (int j = 0; j < cm->classes; j++) {
        k.truth += cm->counts[(int64_t)c * cm->classes + j];
        k.pred += cm->counts[(int64_t)j * cm->classes + c];
    }
    return k;
}

/* IoU or Dice of one class; NaN when it is in neither truth nor
 * prediction. */
static double ratio(const nn_confusion *cm, int c, bool dice)
{
    class_counts k = counts_of(cm, c);
    int64_t den = dice ? k.truth + k.pred : k.truth + k.pred - k.tp;
    if (den == 0) return NAN;
    return (double)(dice ? 2 * k.tp : k.tp) / (double)den;
}

static bool bad_class(const nn_confusion *cm, int c, const char *what)
{
    if (cm && c >= 0 && c < cm->classes) return false;
    nn__fail(NN_ERR_INVALID, "%s: no class %d in a %d-class matrix", what, c,
             cm ? cm->classes : 0);
    return true;
}

double nn_confusion_iou(const nn_confusion *cm, int cls)
{
    return bad_class(cm, cls, "nn_confusion_iou") ? NAN
                                                  : ratio(cm, cls, false);
}

double nn_confusion_dice(const nn_confusion *cm, int cls)
{
    return bad_class(cm, cls, "nn_confusion_dice") ? NAN
                                                   : ratio(cm, cls, true);
}

/* Keras' MeanIoU: the classes whose denominator is 0 are not counted, and
 * with none left the mean is 0 (divide_no_nan). */
static double mean_ratio(const nn_confusion *cm, int first, bool dice,
                         const char *what)
{
    if (bad_class(cm, first, what)) return NAN;
    double sum = 0;
    int valid = 0;
    for (int c = first; c < cm->classes; c++) {
        double v = ratio(cm, c, dice);
        if (isnan(v)) continue;
        sum += v;
        valid++;
    }
    return valid ? sum / valid : 0.0;
}

double nn_confusion_mean_iou(const nn_confusion *cm, int first_class)
{
    return mean_ratio(cm, first_class, false, "nn_confusion_mean_iou");
}

double nn_confusion_mean_dice(const nn_confusion *cm, int first_class)
{
    return mean_ratio(cm, first_class, true, "nn_confusion_mean_dice");
}

double nn_confusion_pixel_accuracy(const nn_confusion *cm)
{
    if (!cm) {
        nn__fail(NN_ERR_INVALID, "nn_confusion_pixel_accuracy: NULL");
        return NAN;
    }
    int64_t correct = 0, total = 0, k = cm->classes;
    for (int64_t i = 0; i < k * k; i++) total += cm->counts[i];
    for (int64_t c = 0; c < k; c++) correct += cm->counts[c * k + c];
    return total ? (double)correct / (double)total : 0.0;
}

/* ---------------- precision, recall, F1 ---------------- */

typedef enum prf { PRECISION, RECALL, F1 } prf;

static const char *prf_name(prf which)
{
    return which == PRECISION ? "precision" : which == RECALL ? "recall"
                                                              : "f1";
}

/* scikit-learn with zero_division=0: 0 where the denominator is 0. F1 is
 * 2TP / (2TP + FP + FN), the Dice of the class. */
static double prf_of(const class_counts *k, prf which)
{
    int64_t den = which == PRECISION ? k->pred
                  : which == RECALL  ? k->truth
                                     : k->truth + k->pred;
    int64_t num = which == F1 ? 2 * k->tp : k->tp;
    return den ? (double)num / (double)den : 0.0;
}

static double prf_class(const nn_confusion *cm, int cls, prf which)
{
    char what[40];
    snprintf(what, sizeof what, "nn_confusion_%s", prf_name(which));
    if (bad_class(cm, cls, what)) return NAN;
    class_counts k = counts_of(cm, cls);
    return prf_of(&k, which);
}

double nn_confusion_precision(const nn_confusion *cm, int cls)
{
    return prf_class(cm, cls, PRECISION);
}

double nn_confusion_recall(const nn_confusion *cm, int cls)
{
    return prf_class(cm, cls, RECALL);
}

double nn_confusion_f1(const nn_confusion *cm, int cls)
{
    return prf_class(cm, cls, F1);
}

/* Over the classes in the truth or the prediction (scikit-learn's default
 * labels): the plain mean, or weighted by the true counts; micro from the
 * summed counts. */
static double prf_average(const nn_confusion *cm, nn_average average,
                          prf which)
{
    char what[48];
    snprintf(what, sizeof what, "nn_confusion_%s_avg", prf_name(which));
    if (!cm || (average != NN_AVERAGE_MACRO && average != NN_AVERAGE_MICRO &&
                average != NN_AVERAGE_WEIGHTED)) {
        nn__fail(NN_ERR_INVALID,
                 "%s: %s matrix, average %d (NN_AVERAGE_MACRO, _MICRO or "
                 "_WEIGHTED)",
                 what, cm ? "a" : "a NULL", (int)average);
        return NAN;
    }
    class_counts sum = {0, 0, 0};
    double acc = 0, weights = 0;
    for (int c = 0; c < cm->classes; c++) {
        class_counts k = counts_of(cm, c);
        if (k.truth == 0 && k.pred == 0) continue;
        double w = average == NN_AVERAGE_WEIGHTED ? (double)k.truth : 1.0;
        acc += w * prf_of(&k, which);
        weights += w;
        sum.tp += k.tp;
        sum.truth += k.truth;
        sum.pred += k.pred;
    }
    if (average == NN_AVERAGE_MICRO) return prf_of(&sum, which);
    return weights > 0 ? acc / weights : 0.0;
}

double nn_confusion_precision_avg(const nn_confusion *cm, nn_average average)
{
    return prf_average(cm, average, PRECISION);
}

double nn_confusion_recall_avg(const nn_confusion *cm, nn_average average)
{
    return prf_average(cm, average, RECALL);
}

double nn_confusion_f1_avg(const nn_confusion *cm, nn_average average)
{
    return prf_average(cm, average, F1);
}

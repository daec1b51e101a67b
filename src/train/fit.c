/* fit: epochs of shuffled mini-batches, validation, history, progress. */
#include "nn_internal.h"
#include "train/train.h"
#include "loss/loss.h"
#include "diag/diag.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define N_METRICS 24

/* Per-step series of a fit with record_grad_norm = 2 (docs/diagnostics.md):
 * the batch loss, the global gradient norm and the step's verdict. */
#define N_STEP_SERIES 3

struct nn_history {
    int epochs, cap;
    float *v[N_METRICS]; /* indexed by nn_metric */
    bool grad;           /* the gradient metrics were recorded */
    bool seg;            /* the segmentation metrics were recorded */
    bool dec;            /* the decision metrics were recorded */
    int64_t steps, step_cap;
    float *step_v[N_STEP_SERIES];
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The segmentation metrics' CSV columns: training ones, then validation. */
#define SEG_CSV_COLUMNS                                                        \
    ",iou,mean_iou,dice,pixel_accuracy,val_iou,val_mean_iou,val_dice,"        \
    "val_pixel_accuracy"
static const nn_metric seg_csv_order[8] = {
    NN_METRIC_IOU,          NN_METRIC_MEAN_IOU,
    NN_METRIC_DICE,         NN_METRIC_PIXEL_ACCURACY,
    NN_METRIC_VAL_IOU,      NN_METRIC_VAL_MEAN_IOU,
    NN_METRIC_VAL_DICE,     NN_METRIC_VAL_PIXEL_ACCURACY};

/* The decision metrics' CSV columns, in the same way. */
#define DEC_CSV_COLUMNS                                                        \
    ",precision,recall,f1,roc_auc,val_precision,val_recall,val_f1,"          \
    "val_roc_auc"
static const nn_metric dec_csv_order[8] = {
    NN_METRIC_PRECISION,     NN_METRIC_RECALL,     NN_METRIC_F1,
    NN_METRIC_ROC_AUC,       NN_METRIC_VAL_PRECISION, NN_METRIC_VAL_RECALL,
    NN_METRIC_VAL_F1,        NN_METRIC_VAL_ROC_AUC};

static nn_history *history_new(int epochs)
{
    nn_history *h = nn__calloc(1, sizeof *h);
    if (!h) return NULL;
    h->cap = epochs;
    for (int k = 0; k < N_METRICS; k++) {
        h->v[k] = nn__calloc((size_t)epochs, sizeof(float));
        if (!h->v[k]) {
            nn_history_free(h);
            return NULL;
        }
    }
    for (int k = NN_METRIC_GRAD_NORM; k < N_METRICS; k++)
        for (int e = 0; e < epochs; e++) h->v[k][e] = NAN; /* not recorded */
    return h;
}

void nn_history_free(nn_history *h)
{
    if (!h) return;
    for (int k = 0; k < N_METRICS; k++) nn__free(h->v[k]);
    for (int k = 0; k < N_STEP_SERIES; k++) nn__free(h->step_v[k]);
    nn__free(h);
}

int nn_history_epochs(const nn_history *h)
{
    if (!h) return nn__fail(NN_ERR_INVALID, "nn_history_epochs: NULL");
    return h->epochs;
}

float nn_history_get(const nn_history *h, nn_metric metric, int epoch)
{
    if (!h || (int)metric < 0 || metric >= N_METRICS || epoch < 0 ||
        epoch >= h->epochs) {
        nn__fail(NN_ERR_INVALID, "nn_history_get: no metric %d at epoch %d",
                 (int)metric, epoch);
        return NAN;
    }
    return h->v[metric][epoch];
}

static nn_status write_csv(FILE *f, void *ctx)
{
    const nn_history *h = ctx;
    fprintf(f, "epoch,loss,accuracy,val_loss,val_accuracy,seconds%s%s%s\n",
            h->grad ? ",grad_norm,grad_norm_max,health" : "",
            h->seg ? SEG_CSV_COLUMNS : "", h->dec ? DEC_CSV_COLUMNS : "");
    for (int e = 0; e < h->epochs; e++) {
        fprintf(f, "%d,%.6g,%.6g,%.6g,%.6g,%.3f", e + 1, h->v[0][e],
                h->v[1][e], h->v[2][e], h->v[3][e], h->v[4][e]);
        if (h->grad)
            fprintf(f, ",%.6g,%.6g,%.0f", h->v[5][e], h->v[6][e], h->v[7][e]);
        for (int k = 0; h->seg && k < 8; k++)
            fprintf(f, ",%.6g", h->v[seg_csv_order[k]][e]);
        for (int k = 0; h->dec && k < 8; k++)
            fprintf(f, ",%.6g", h->v[dec_csv_order[k]][e]);
        fprintf(f, "\n");
    }
    return NN_OK;
}

nn_status nn_history_write_csv(const nn_history *h, const char *path)
{
    NN_CHECK(h && path, NN_ERR_INVALID, "nn_history_write_csv: NULL argument");
    NN_CHECK(path[0], NN_ERR_INVALID, "nn_history_write_csv: empty path");
    return nn__file_replace(path, "nn_history_write_csv", write_csv,
                            (void *)h);
}

int64_t nn_history_num_steps(const nn_history *h)
{
    if (!h) return nn__fail(NN_ERR_INVALID, "nn_history_num_steps: NULL");
    return h->steps;
}

static int step_series(nn_metric metric)
{
    if (metric == NN_METRIC_LOSS) return 0;
    if (metric == NN_METRIC_GRAD_NORM) return 1;
    if (metric == NN_METRIC_HEALTH) return 2;
    return -1;
}

float nn_history_step_get(const nn_history *h, nn_metric metric, int64_t step)
{
    int k = step_series(metric);
    if (!h || k < 0 || step < 0 || step >= h->steps) {
        nn__fail(NN_ERR_INVALID,
                 "nn_history_step_get: no per-step metric %d at step %lld",
                 (int)metric, (long long)step);
        return NAN;
    }
    return h->step_v[k][step];
}

static nn_status history_add_step(nn_history *h, const float v[N_STEP_SERIES])
{
    if (h->steps == h->step_cap) {
        int64_t cap = h->step_cap ? 2 * h->step_cap : 256;
        for (int k = 0; k < N_STEP_SERIES; k++) {
            float *a = nn__realloc(h->step_v[k], (size_t)cap * sizeof(float));
            if (!a) return NN_ERR_NOMEM;
            h->step_v[k] = a;
        }
        h->step_cap = cap;
    }
    for (int k = 0; k < N_STEP_SERIES; k++) h->step_v[k][h->steps] = v[k];
    h->steps++;
    return NN_OK;
}

typedef struct fit_buffers {
    float *xb, *yb;
    int64_t *perm;
    /* per-sample weights (class_weight, sample_weight): NULL, or all N
     * and the batch's */
    float *w, *wb;
} fit_buffers;

static void buffers_free(fit_buffers *b)
{
    nn__free(b->xb);
    nn__free(b->yb);
    nn__free(b->perm);
    nn__free(b->w);
    nn__free(b->wb);
}

static nn_status buffers_alloc(fit_buffers *b, int64_t n, int batch,
                               int64_t in_sz, int64_t y_sz)
{
    b->xb = nn__calloc((size_t)batch * (size_t)in_sz, sizeof(float));
    b->yb = nn__calloc((size_t)batch * (size_t)y_sz, sizeof(float));
    b->perm = nn__calloc((size_t)n, sizeof(int64_t));
    if (!b->xb || !b->yb || !b->perm) return NN_ERR_NOMEM;
    return NN_OK;
}

static void shuffle(nn_rng *rng, int64_t *perm, int64_t n, bool on)
{
    for (int64_t i = 0; i < n; i++) perm[i] = i;
    if (!on) return;
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)nn__rng_below(rng, (uint64_t)i + 1);
        int64_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

static void gather(const float *src, int64_t row, const int64_t *idx, int n,
                   float *dst)
{
    for (int i = 0; i < n; i++)
        memcpy(dst + (int64_t)i * row, src + idx[i] * row,
               (size_t)row * sizeof(float));
}

static nn_status check_fit(nn_model *m, const nn_tensor *x, const nn_tensor *y,
                           const nn_fit_opts *o)
{
    NN_TRY(nn__check_xy(m, x, y, "nn_model_fit", false));
    NN_CHECK(o->epochs >= 1 && o->epochs <= 1000000, NN_ERR_INVALID,
             "nn_model_fit: epochs must lie in 1..1000000, got %d",
             o->epochs);
    NN_CHECK(o->batch_size >= 1 && o->batch_size <= (1 << 20), NN_ERR_INVALID,
             "nn_model_fit: batch size must lie in 1..1048576 (2^20), got %d",
             o->batch_size);
    NN_CHECK(!o->val_x == !o->val_y, NN_ERR_INVALID,
             "nn_model_fit: give both val_x and val_y or neither");
    if (o->val_x)
        NN_TRY(nn__check_xy(m, o->val_x, o->val_y, "nn_model_fit", true));
    NN_CHECK(o->record_grad_norm >= 0 && o->record_grad_norm <= 2,
             NN_ERR_INVALID,
             "nn_model_fit: record_grad_norm must be 0, 1 or 2, got %d",
             o->record_grad_norm);
    NN_CHECK(o->segmentation_metrics == 0 || o->segmentation_metrics == 1,
             NN_ERR_INVALID,
             "nn_model_fit: segmentation_metrics must be 0 or 1, got %d",
             o->segmentation_metrics);
    nn_binary_opts bo;
    if (o->decision_metrics)
        NN_TRY(nn__binary_opts(m, o->decision_metrics, &bo, "nn_model_fit"));
    return nn__fit_check_parallel(m, o);
}

typedef struct epoch_ctx {
    nn_model *m;
    const nn_tensor *x, *y;
    const nn_fit_opts *o;
    fit_buffers *b;
    nn_progress p;
    double t0;
    /* gradient diagnostics of the epoch (record_grad_norm) */
    nn_history *h;
    double gsum, gmax;
    int64_t gcount;
    int worst; /* most severe nn_health seen */
    /* segmentation metrics (segmentation_metrics): the epoch's training
     * steps and the validation set */
    nn_confusion *cm, *val_cm;
    /* decision metrics (decision_metrics): their scores, likewise */
    nn_scores *scores, *val_scores;
} epoch_ctx;

/* Reads the diagnostics of the step just run, including one the finite
 * check stopped, into the epoch's figures and the per-step history. */
static nn_status note_step(epoch_ctx *e, nn_status s, double loss)
{
    double g;
    nn_health sv, wv;
    if (!e->o->record_grad_norm || (s != NN_OK && s != NN_ERR_NUMERIC) ||
        !nn__diag_last(e->m, &g, &sv, &wv))
        return NN_OK;
    e->gsum += g;
    e->gcount++;
    if (!isnan(e->gmax) && (isnan(g) || g > e->gmax)) e->gmax = g;
    if ((int)sv > e->worst) e->worst = (int)sv;
    if ((int)wv > e->worst) e->worst = (int)wv;
    if (e->o->record_grad_norm < 2 || !e->h) return NN_OK;
    float v[N_STEP_SERIES] = {s == NN_OK ? (float)loss : NAN, (float)g,
                              (float)sv};
    NN_CHECK(history_add_step(e->h, v) == NN_OK, NN_ERR_NOMEM,
             "fit: out of memory for the per-step history");
    return NN_OK;
}

static int notify(epoch_ctx *e)
{
    if (!e->o->progress) return 0;
    double el = now_s() - e->t0;
    e->p.elapsed_s = el;
    e->p.images_per_s = el > 0 ? (double)e->p.samples_seen / el : 0;
    return e->o->progress(&e->p, e->o->user);
}

/* IoU and mean IoU so far for the progress callback; NaN when off. */
static void seg_progress(const nn_confusion *cm, float *iou, float *mean_iou)
{
    *iou = cm ? (float)nn_confusion_mean_iou(cm, 1) : NAN;
    *mean_iou = cm ? (float)nn_confusion_mean_iou(cm, 0) : NAN;
}

/* Metric k (training) and k + 1 (validation, NaN without validation
 * data) from the two matrices. */
static void seg_record(nn_history *h, int epoch, nn_metric k,
                       const nn_confusion *cm, const nn_confusion *val_cm,
                       double (*metric)(const nn_confusion *, int), int first)
{
    h->v[k][epoch] = (float)metric(cm, first);
    h->v[k + 1][epoch] = val_cm ? (float)metric(val_cm, first) : NAN;
}

static double pixel_accuracy(const nn_confusion *cm, int unused)
{
    (void)unused;
    return nn_confusion_pixel_accuracy(cm);
}

static void seg_history(const epoch_ctx *e, nn_history *h, int epoch)
{
    if (!e->cm) return;
    h->seg = true;
    const nn_confusion *v = e->val_cm;
    seg_record(h, epoch, NN_METRIC_IOU, e->cm, v, nn_confusion_mean_iou, 1);
    seg_record(h, epoch, NN_METRIC_MEAN_IOU, e->cm, v, nn_confusion_mean_iou,
               0);
    seg_record(h, epoch, NN_METRIC_DICE, e->cm, v, nn_confusion_mean_dice, 1);
    seg_record(h, epoch, NN_METRIC_PIXEL_ACCURACY, e->cm, v, pixel_accuracy,
               0);
}

/* Precision, recall, F1 (at the options' threshold) and ROC AUC of the
 * training scores (metric k) and of the validation scores (k + 1). */
static nn_status dec_record(nn_history *h, int epoch, const nn_scores *s,
                            float threshold, int val)
{
    nn_binary_report r = {.precision = NAN, .recall = NAN, .f1 = NAN,
                          .roc_auc = NAN};
    if (s) NN_TRY(nn__scores_report(s, threshold, &r));
    h->v[NN_METRIC_PRECISION + val][epoch] = (float)r.precision;
    h->v[NN_METRIC_RECALL + val][epoch] = (float)r.recall;
    h->v[NN_METRIC_F1 + val][epoch] = (float)r.f1;
    h->v[NN_METRIC_ROC_AUC + val][epoch] = (float)r.roc_auc;
    return NN_OK;
}

static nn_status dec_history(const epoch_ctx *e, nn_history *h, int epoch)
{
    if (!e->scores) return NN_OK;
    h->dec = true;
    float t = e->o->decision_metrics->threshold;
    NN_TRY(dec_record(h, epoch, e->scores, t, 0));
    return dec_record(h, epoch, e->val_scores, t, 1);
}

/* One training step on the samples idx[0..cur) (this process's shard of
 * a global step of `total` samples in a data-parallel fit, else 0). */
static nn_status train_on(epoch_ctx *e, const int64_t *idx, int cur,
                          int64_t total, nn_fit_sums *sums)
{
    nn_model *m = e->m;
    if (cur == 0) return nn__train_step_empty(m, total);
    int64_t in_sz = nn__shape_size(&m->input->out), y_sz = nn__label_size(m);
    gather(e->x->data, in_sz, idx, cur, e->b->xb);
    gather(e->y->data, y_sz, idx, cur, e->b->yb);
    if (e->b->w) gather(e->b->w, 1, idx, cur, e->b->wb);
    nn_step_stats st = {.cm = e->cm, .scores = e->scores,
                        .sample_weight = e->b->wb, .total_samples = total};
    nn_status s = nn__train_step(m, e->b->xb, e->b->yb, cur, true, true, NULL,
                                 &st);
    if (e->o->record_grad_norm) NN_TRY(note_step(e, s, st.loss_sum / cur));
    NN_TRY(s);
    sums->loss_sum += st.loss_sum;
    sums->correct += st.correct;
    sums->predictions += st.predictions;
    sums->samples += cur;
    return NN_OK;
}

static void running_figures(epoch_ctx *e, const nn_fit_sums *sums)
{
    e->p.loss = (float)(sums->loss_sum / (double)sums->samples);
    e->p.accuracy = (float)sums->correct / (float)sums->predictions;
    seg_progress(e->cm, &e->p.iou, &e->p.mean_iou);
}

/* Global steps of world x batch_size samples; this process trains on its
 * shard of each (nn__shard; all of it with one process). */
static nn_status run_epoch(epoch_ctx *e)
{
    int64_t n = e->x->shape[0];
    int world = nn__fit_world(e->o);
    int64_t step = (int64_t)e->o->batch_size * world;
    nn_fit_sums sums = {0};
    shuffle(&e->m->rng, e->b->perm, n, e->o->shuffle != 0);
    for (int64_t i = 0, k = 0; i < n; i += step, k++) {
        int64_t total = n - i < step ? n - i : step, at, cur;
        nn__shard(total, e->o->rank, world, &at, &cur);
        NN_TRY(train_on(e, e->b->perm + i + at, (int)cur,
                        world > 1 ? total : 0, &sums));
        e->p.event = NN_PROGRESS_BATCH_END;
        e->p.batch = (int)k + 1;
        e->p.samples_seen = i + total;
        running_figures(e, &sums);
        if (notify(e))
            return nn__fail(NN_ERR_CANCELLED, "fit: stopped by the callback");
    }
    /* Every process then reports the figures of all of them. */
    if (world > 1) {
        NN_TRY(nn__fit_sync_epoch(e->m, e->o, &sums, e->cm));
        running_figures(e, &sums);
    }
    return NN_OK;
}

static nn_status finish_epoch(epoch_ctx *e, nn_history *h, int epoch)
{
    e->p.val_loss = e->p.val_accuracy = NAN;
    if (e->o->val_x) {
        double vl, va;
        nn_step_stats sinks = {.cm = e->val_cm, .scores = e->val_scores};
        NN_TRY(nn__evaluate_into(e->m, e->o->val_x, e->o->val_y,
                                 e->o->batch_size, &sinks, &vl, &va));
        e->p.val_loss = (float)vl;
        e->p.val_accuracy = (float)va;
        if (e->val_cm)
            seg_progress(e->val_cm, &e->p.val_iou, &e->p.val_mean_iou);
    }
    if (h) {
        h->v[NN_METRIC_LOSS][epoch] = e->p.loss;
        h->v[NN_METRIC_ACCURACY][epoch] = e->p.accuracy;
        h->v[NN_METRIC_VAL_LOSS][epoch] = e->p.val_loss;
        h->v[NN_METRIC_VAL_ACCURACY][epoch] = e->p.val_accuracy;
        h->v[NN_METRIC_EPOCH_SECONDS][epoch] = (float)(now_s() - e->t0);
        if (e->o->record_grad_norm && e->gcount > 0) {
            h->grad = true;
            h->v[NN_METRIC_GRAD_NORM][epoch] = (float)(e->gsum / e->gcount);
            h->v[NN_METRIC_GRAD_NORM_MAX][epoch] = (float)e->gmax;
            h->v[NN_METRIC_HEALTH][epoch] = (float)e->worst;
        }
        seg_history(e, h, epoch);
        NN_TRY(dec_history(e, h, epoch));
        h->epochs = epoch + 1;
    }
    e->p.event = NN_PROGRESS_EPOCH_END;
    if (notify(e))
        return nn__fail(NN_ERR_CANCELLED, "fit: stopped by the callback");
    return NN_OK;
}

static nn_status seg_alloc(epoch_ctx *e)
{
    e->cm = nn__model_confusion(e->m);
    if (e->cm && e->o->val_x) e->val_cm = nn__model_confusion(e->m);
    if (!e->cm || (e->o->val_x && !e->val_cm)) return NN_ERR_NOMEM;
    return NN_OK;
}

/* Room for the scores of every output position of the training and
 * validation data. */
static nn_status dec_alloc(epoch_ctx *e)
{
    nn_loss_batch b = nn__label_batch(e->m, NULL, 1);
    int pc = e->o->decision_metrics->positive_class;
    e->scores = nn__scores_new(pc, e->x->shape[0] * b.positions);
    if (e->scores && e->o->val_x)
        e->val_scores = nn__scores_new(pc, e->o->val_x->shape[0] * b.positions);
    if (!e->scores || (e->o->val_x && !e->val_scores)) return NN_ERR_NOMEM;
    return NN_OK;
}

static nn_status weights_alloc(const nn_model *m, const nn_tensor *y,
                               const nn_fit_opts *o, int batch,
                               fit_buffers *b)
{
    NN_TRY(nn__fit_sample_weights(m, y, o, &b->w));
    if (!b->w) return NN_OK;
    b->wb = nn__calloc((size_t)batch, sizeof(float));
    return b->wb ? NN_OK : NN_ERR_NOMEM;
}

static nn_status fit_epochs(epoch_ctx *e, nn_history *h)
{
    int64_t n = e->x->shape[0];
    e->p.size = sizeof e->p;
    e->p.epochs = e->o->epochs;
    int64_t step = (int64_t)e->o->batch_size * nn__fit_world(e->o);
    e->p.batches = (int)((n + step - 1) / step);
    for (int ep = 0; ep < e->o->epochs; ep++) {
        e->p.epoch = ep;
        e->p.val_loss = e->p.val_accuracy = NAN;
        e->p.iou = e->p.mean_iou = e->p.val_iou = e->p.val_mean_iou = NAN;
        if (e->cm) nn_confusion_reset(e->cm);
        if (e->val_cm) nn_confusion_reset(e->val_cm);
        if (e->scores) e->scores->n = 0;
        if (e->val_scores) e->val_scores->n = 0;
        e->t0 = now_s();
        e->gsum = e->gmax = 0;
        e->gcount = 0;
        e->worst = NN_HEALTH_OK;
        NN_TRY(run_epoch(e));
        NN_TRY(finish_epoch(e, h, ep));
    }
    return NN_OK;
}

nn_status nn_model_fit(nn_model *m, const nn_tensor *x, const nn_tensor *y,
                       const nn_fit_opts *opts, nn_history **history)
{
    nn_fit_opts o = NN_FIT_OPTS_INIT;
    if (history) *history = NULL;
    NN_TRY(nn__read_opts(&o, opts, "nn_model_fit"));
    NN_TRY(check_fit(m, x, y, &o));
    int batch = (int)(x->shape[0] < o.batch_size ? x->shape[0] : o.batch_size);
    fit_buffers b = {0};
    nn_history *h = history ? history_new(o.epochs) : NULL;
    nn_status s = (history && !h) ? NN_ERR_NOMEM : NN_OK;
    if (s == NN_OK)
        s = buffers_alloc(&b, x->shape[0], batch, nn__shape_size(&m->input->out),
                          nn__label_size(m));
    if (s == NN_OK) s = weights_alloc(m, y, &o, batch, &b);
    epoch_ctx e = {.m = m, .x = x, .y = y, .o = &o, .b = &b, .h = h};
    if (s == NN_OK && o.segmentation_metrics) s = seg_alloc(&e);
    if (s == NN_OK && o.decision_metrics) s = dec_alloc(&e);
    /* Diagnostics the options ask for are on for this run only. */
    nn_diag_saved saved;
    if (s == NN_OK)
        s = nn__diag_push(m, o.record_grad_norm > 0, o.stop_on_nonfinite != 0,
                          &saved);
    if (s == NN_OK) {
        /* Data-parallel: the processes check that they agree; each draws
         * its own dropout and augmentation. */
        m->key_stream = (uint64_t)o.rank;
        if (nn__fit_world(&o) > 1) s = nn__fit_sync_start(m, x->shape[0], &o);
        if (s == NN_OK) s = fit_epochs(&e, h);
        m->key_stream = 0;
        nn__diag_pop(m, &saved);
    }
    nn_confusion_free(e.cm);
    nn_confusion_free(e.val_cm);
    nn__scores_free(e.scores);
    nn__scores_free(e.val_scores);
    buffers_free(&b);
    /* A history of the epochs (or steps) that ran is useful even after a
     * failure. */
    if (history && h && (h->epochs > 0 || h->steps > 0)) *history = h;
    else nn_history_free(h);
    return s;
}

/* Losses (src/loss/): values and gradients against double-precision
 * references written here (cross-entropy, segmentation overlap losses,
 * class and sample weights), accuracy counts, label validation, confusion
 * matrices, decision metrics (precision/recall/F1, curves, thresholds) and
 * binary scores. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn_internal.h"
#include "loss/loss.h"
#include "optim/optim.h"
#include "io/io.h"
#include "helpers.h"

#include <unistd.h>

static const double LO = (double)1e-7f, HI = (double)(1.0f - 1e-7f);

/* ------------------------------------------------------------------ */
/* Double-precision references: the MEAN loss over the batch.           */
/* ------------------------------------------------------------------ */

typedef double (*ref_fn)(int b, int c, const double *x, const double *y);

static double ref_cce_logits(int b, int c, const double *z, const double *y)
{
    double tot = 0;
    for (int i = 0; i < b; i++) {
        const double *zr = z + i * c, *yr = y + i * c;
        double mx = zr[0], s = 0;
        for (int j = 1; j < c; j++) mx = fmax(mx, zr[j]);
        for (int j = 0; j < c; j++) s += exp(zr[j] - mx);
        for (int j = 0; j < c; j++) tot -= yr[j] * (zr[j] - mx - log(s));
    }
    return tot / b;
}

static double clipd(double q) { return q < LO ? LO : q > HI ? HI : q; }

static double ref_cce_probs(int b, int c, const double *p, const double *y)
{
    double tot = 0;
    for (int i = 0; i < b; i++) {
        double s = 0;
        for (int j = 0; j < c; j++) s += p[i * c + j];
        for (int j = 0; j < c; j++)
            if (y[i * c + j] != 0)
                tot -= y[i * c + j] * log(clipd(p[i * c + j] / s));
    }
    return tot / b;
}

/* The textbook form through sigmoid, independent of the library's. */
static double ref_bce_logits(int b, int c, const double *z, const double *y)
{
    double tot = 0;
    for (int k = 0; k < b * c; k++) {
        double p = 1 / (1 + exp(-z[k]));
        tot -= y[k] * log(p) + (1 - y[k]) * log(1 - p);
    }
    return tot / (b * c);
}

static double ref_bce_probs(int b, int c, const double *p, const double *y)
{
    double tot = 0;
    for (int k = 0; k < b * c; k++) {
        double q = clipd(p[k]);
        tot -= y[k] * log(q) + (1 - y[k]) * log(1 - q);
    }
    return tot / (b * c);
}

/* ------------------------------------------------------------------ */
/* Helpers                                                              */
/* ------------------------------------------------------------------ */

static double *to_double(const float *v, int n)
{
    double *d = malloc((size_t)n * sizeof *d);
    for (int k = 0; k < n; k++) d[k] = v[k];
    return d;
}

/* Runs nn__loss and checks its mean loss against `ref` and every gradient
 * value against a central difference of `ref`. */
static void check_loss_and_grad(nn_loss kind, int b, int c, const float *x,
                                bool logits, const float *y_lib,
                                const double *y_ref, ref_fn ref)
{
    int n = b * c;
    float *dout = malloc((size_t)n * sizeof *dout);
    double sum = 0;
    assert_int_equal(nn__loss(kind, b, c, x, logits ? x : NULL, y_lib, dout,
                              &sum, NULL),
                     NN_OK);
    double *xd = to_double(x, n);
    double want = ref(b, c, xd, y_ref);
    assert_true(isfinite(want));
    assert_true(fabs(sum / b - want) <= 1e-9 * fmax(1, fabs(want)));
    for (int k = 0; k < n; k++) {
        /* Tiny values still need a step that moves the row sum. */
        double x0 = xd[k], h = fmax(1e-4 * fabs(x0), 1e-8);
        xd[k] = x0 + h;
        double lp = ref(b, c, xd, y_ref);
        xd[k] = x0 - h;
        double lm = ref(b, c, xd, y_ref);
        xd[k] = x0;
        double fd = (lp - lm) / (2 * h);
        if (fabs(dout[k] - fd) > 1e-6 + 1e-5 * fabs(fd))
            fail_msg("gradient %d: library %.9g, finite difference %.9g", k,
                     (double)dout[k], fd);
    }
    free(xd);
    free(dout);
}

/* Random probability rows (soft labels) or one-hot rows. */
static void make_labels(int b, int c, bool one_hot, uint64_t seed, float *y,
                        double *yd, float *ids)
{
    nn_rng r;
    nn__rng_seed(&r, seed);
    for (int i = 0; i < b; i++) {
        int id = (int)nn__rng_below(&r, (uint64_t)c);
        float s = 0;
        for (int j = 0; j < c; j++) {
            y[i * c + j] = one_hot ? (float)(j == id) : nn__rng_uniform(&r);
            s += y[i * c + j];
        }
        for (int j = 0; j < c && !one_hot; j++) y[i * c + j] /= s;
        for (int j = 0; j < c; j++) yd[i * c + j] = y[i * c + j];
        if (ids) ids[i] = (float)id;
    }
}

/* ------------------------------------------------------------------ */
/* Loss tests                                                           */
/* ------------------------------------------------------------------ */

enum { B = 4, C = 5 };

static void test_cce_logits_grad(void **state)
{
    (void)state;
    float z[B * C], y[B * C], ids[B];
    double yd[B * C];
    fill_uniform(z, B * C, -4, 4, 1);
    make_labels(B, C, true, 2, y, yd, ids);
    check_loss_and_grad(CCE, B, C, z, true, y, yd, ref_cce_logits);
    check_loss_and_grad(SCCE, B, C, z, true, ids, yd, ref_cce_logits);
    /* Soft labels, and labels that do not sum to one. */
    make_labels(B, C, false, 3, y, yd, NULL);
    check_loss_and_grad(CCE, B, C, z, true, y, yd, ref_cce_logits);
    for (int k = 0; k < B * C; k++) yd[k] = y[k] *= 0.5f;
    check_loss_and_grad(CCE, B, C, z, true, y, yd, ref_cce_logits);
}

static void test_cce_probs_grad(void **state)
{
    (void)state;
    float p[B * C], y[B * C], ids[B];
    double yd[B * C];
    /* Rows that do not sum to one exercise the normalisation's gradient;
     * 1e-12 is clipped after normalisation, 0.9 of a row close to 0.9999999
     * is not. */
    fill_uniform(p, B * C, 0.05f, 1.0f, 4);
    p[1] = 1e-12f;
    make_labels(B, C, true, 5, y, yd, ids);
    check_loss_and_grad(CCE, B, C, p, false, y, yd, ref_cce_probs);
    check_loss_and_grad(SCCE, B, C, p, false, ids, yd, ref_cce_probs);
    make_labels(B, C, false, 6, y, yd, NULL);
    check_loss_and_grad(CCE, B, C, p, false, y, yd, ref_cce_probs);
}

static void test_bce_grad(void **state)
{
    (void)state;
    float z[B * C], p[B * C], y[B * C];
    double yd[B * C];
    fill_uniform(z, B * C, -4, 4, 7);
    fill_uniform(p, B * C, 0.02f, 0.98f, 8);
    p[3] = 1e-9f; /* clipped: zero gradient, finite loss */
    make_labels(B, C, false, 9, y, yd, NULL);
    y[0] = yd[0] = 0;
    y[1] = yd[1] = 1;
    check_loss_and_grad(BCE, B, C, z, true, y, yd, ref_bce_logits);
    check_loss_and_grad(BCE, B, C, p, false, y, yd, ref_bce_probs);
    /* One value per sample (the usual sigmoid output). */
    check_loss_and_grad(BCE, B * C, 1, z, true, y, yd, ref_bce_logits);
    check_loss_and_grad(BCE, B * C, 1, p, false, y, yd, ref_bce_probs);
}

/* The probability gradient pushed back through softmax / sigmoid must give
 * the logits gradient: the normalisation term cancels. */
static void test_probs_grad_matches_logits_grad(void **state)
{
    (void)state;
    float z[B * C], p[B * C], y[B * C], dz[B * C], dp[B * C];
    double yd[B * C], s1 = 0, s2 = 0;
    fill_uniform(z, B * C, -2, 2, 10);
    make_labels(B, C, false, 11, y, yd, NULL);
    for (int i = 0; i < B; i++) {
        double s = 0;
        for (int j = 0; j < C; j++) s += exp(z[i * C + j]);
        for (int j = 0; j < C; j++) p[i * C + j] = (float)(exp(z[i * C + j]) / s);
    }
    assert_int_equal(nn__loss(CCE, B, C, p, z, y, dz, &s1, NULL), NN_OK);
    assert_int_equal(nn__loss(CCE, B, C, p, NULL, y, dp, &s2, NULL), NN_OK);
    assert_true(fabs(s1 - s2) < 1e-5);
    for (int i = 0; i < B; i++) {
        double dot = 0;
        for (int j = 0; j < C; j++) dot += (double)dp[i * C + j] * p[i * C + j];
        for (int j = 0; j < C; j++) {
            double back = p[i * C + j] * (dp[i * C + j] - dot);
            assert_true(fabs(back - dz[i * C + j]) < 1e-5);
        }
    }
    for (int k = 0; k < B * C; k++) p[k] = (float)(1 / (1 + exp(-z[k])));
    assert_int_equal(nn__loss(BCE, B, C, p, z, y, dz, &s1, NULL), NN_OK);
    assert_int_equal(nn__loss(BCE, B, C, p, NULL, y, dp, &s2, NULL), NN_OK);
    for (int k = 0; k < B * C; k++) {
        double back = dp[k] * (double)p[k] * (1 - (double)p[k]);
        assert_true(fabs(back - dz[k]) < 1e-6);
    }
}

static void test_large_logits(void **state)
{
    (void)state;
    float z[2 * 3] = {1000, -1000, 0, 1000, -1000, 0};
    float y[2 * 3] = {1, 0, 0, 0, 1, 0}, ids[2] = {0, 1}, d[6], ds[6];
    double sum = 0, ssum = 0;
    int64_t correct = 0;
    assert_int_equal(nn__loss(CCE, 2, 3, z, z, y, d, &sum, &correct), NN_OK);
    assert_true(sum == 2000.0); /* 0 + 2000, exactly */
    float want[6] = {0, 0, 0, 0.5f, -0.5f, 0};
    for (int k = 0; k < 6; k++) assert_true(d[k] == want[k]);
    assert_int_equal(correct, 1);
    assert_int_equal(nn__loss(SCCE, 2, 3, z, z, ids, ds, &ssum, NULL), NN_OK);
    assert_true(ssum == sum);
    assert_memory_equal(d, ds, sizeof d);

    /* BCE: max(z,0) - z*y + log1p(exp(-|z|)). */
    float bz[4] = {1000, -1000, 1000, -1000}, by[4] = {0, 1, 1, 0}, bd[4];
    sum = 0;
    correct = 0;
    assert_int_equal(nn__loss(BCE, 1, 4, bz, bz, by, bd, &sum, &correct), NN_OK);
    assert_true(sum == 500.0); /* (1000 + 1000 + 0 + 0) / 4 */
    float bwant[4] = {0.25f, -0.25f, 0, 0};
    for (int k = 0; k < 4; k++) assert_true(bd[k] == bwant[k]);
    assert_int_equal(correct, 2);

    /* Probabilities at 0 and 1 are clipped: finite loss, zero gradient. */
    float p[4] = {1, 0, 1, 0};
    sum = 0;
    assert_int_equal(nn__loss(BCE, 1, 4, p, NULL, by, bd, &sum, NULL), NN_OK);
    assert_true(isfinite(sum) && sum > 7); /* two values at -log(1e-7) */
    for (int k = 0; k < 4; k++) assert_true(bd[k] == 0);
}

static void test_invalid_labels(void **state)
{
    (void)state;
    float z[2 * 3] = {1, 2, 3, 4, 5, 6}, d[6], keep[6];
    for (int k = 0; k < 6; k++) d[k] = keep[k] = -42;
    double sum = 7;
    int64_t correct = 3;
    const float bad_ids[] = {-1, 3, 1.5f, NAN, INFINITY, 1e30f};
    for (size_t i = 0; i < sizeof bad_ids / sizeof *bad_ids; i++) {
        float ids[2] = {0, bad_ids[i]};
        assert_int_equal(nn__loss(SCCE, 2, 3, z, z, ids, d, &sum, &correct),
                         NN_ERR_INVALID);
        assert_non_null(strstr(nn_last_error(), "sample 1"));
    }
    const float bad_vals[] = {NAN, -0.5f, 2, INFINITY};
    for (size_t i = 0; i < sizeof bad_vals / sizeof *bad_vals; i++) {
        float y[6] = {1, 0, 0, 0, 1, 0};
        y[4] = bad_vals[i];
        assert_int_equal(nn__loss(CCE, 2, 3, z, z, y, d, &sum, &correct),
                         NN_ERR_INVALID);
        assert_non_null(strstr(nn_last_error(), "sample 1"));
        assert_int_equal(nn__loss(BCE, 2, 3, z, NULL, y, d, &sum, &correct),
                         NN_ERR_INVALID);
    }
    /* Nothing was written or added by the failed calls. */
    assert_memory_equal(d, keep, sizeof d);
    assert_true(sum == 7);
    assert_int_equal(correct, 3);
}

static void test_invalid_outputs_and_args(void **state)
{
    (void)state;
    float y[2 * 3] = {1, 0, 0, 0, 1, 0}, d[6];
    float nan_out[6] = {0.2f, 0.3f, 0.5f, 0.1f, NAN, 0.4f};
    float inf_out[6] = {0.2f, 0.3f, 0.5f, 0.1f, INFINITY, 0.4f};
    float zero_row[6] = {0.2f, 0.3f, 0.5f, 0, 0, 0};
    double sum = 0;
    assert_int_equal(nn__loss(CCE, 2, 3, nan_out, NULL, y, d, &sum, NULL),
                     NN_ERR_NUMERIC);
    assert_int_equal(nn__loss(CCE, 2, 3, inf_out, inf_out, y, d, &sum, NULL),
                     NN_ERR_NUMERIC);
    assert_int_equal(nn__loss(BCE, 2, 3, nan_out, NULL, y, d, &sum, NULL),
                     NN_ERR_NUMERIC);
    assert_int_equal(nn__loss(CCE, 2, 3, zero_row, NULL, y, d, &sum, NULL),
                     NN_ERR_NUMERIC);
    assert_non_null(strstr(nn_last_error(), "sample 1"));
    /* The same zero row is fine as BCE probabilities (clipped). */
    assert_int_equal(nn__loss(BCE, 2, 3, zero_row, NULL, y, d, &sum, NULL),
                     NN_OK);
    assert_int_equal(nn__loss((nn_loss)0, 2, 3, zero_row, NULL, y, d, &sum,
                              NULL),
                     NN_ERR_INVALID);
    assert_int_equal(nn__loss(CCE, 2, 3, NULL, NULL, y, d, &sum, NULL),
                     NN_ERR_INVALID);
    assert_int_equal(nn__loss(CCE, 2, 3, zero_row, NULL, NULL, d, &sum, NULL),
                     NN_ERR_INVALID);
    assert_int_equal(nn__loss(CCE, 0, 3, zero_row, NULL, y, d, &sum, NULL),
                     NN_ERR_SHAPE);
    assert_int_equal(nn__loss(CCE, 2, 0, zero_row, NULL, y, d, &sum, NULL),
                     NN_ERR_SHAPE);
}

static void test_accumulates_and_optional_outputs(void **state)
{
    (void)state;
    float z[B * C], y[B * C];
    double yd[B * C], once = 0, twice = 0;
    int64_t c1 = 0, c2 = 0;
    fill_uniform(z, B * C, -3, 3, 12);
    make_labels(B, C, true, 13, y, yd, NULL);
    assert_int_equal(nn__loss(CCE, B, C, z, z, y, NULL, &once, &c1), NN_OK);
    assert_int_equal(nn__loss(CCE, B, C, z, z, y, NULL, &twice, &c2), NN_OK);
    assert_int_equal(nn__loss(CCE, B, C, z, z, y, NULL, &twice, &c2), NN_OK);
    assert_true(twice == 2 * once);
    assert_int_equal(c2, 2 * c1);
    double *zd = to_double(z, B * C);
    assert_true(fabs(once / B - ref_cce_logits(B, C, zd, yd)) < 1e-9);
    free(zd);
    assert_int_equal(nn__loss(CCE, B, C, z, z, y, NULL, NULL, NULL), NN_OK);
}

/* What the correct count is out of: one prediction per sample for the
 * categorical losses, one per value for binary cross-entropy. */
static int64_t predictions(nn_loss kind, int batch, int64_t classes,
                           const float *out, const float *y)
{
    nn_loss_terms t = {1, {kind}, {1}};
    nn_loss_opts o = NN_LOSS_OPTS_INIT;
    nn_loss_batch b = {.batch = batch, .positions = 1, .classes = classes,
                       .out = out, .y = y, .sigmoid = kind == BCE,
                       .sparse = kind == SCCE};
    nn_loss_sums s = {0};
    assert_int_equal(nn__loss_eval(&t, &o, &b, &s), NN_OK);
    return s.predictions;
}

static void test_accuracy_counts(void **state)
{
    (void)state;
    /* Ties go to the first maximum, in outputs and in labels. */
    float out[3 * 3] = {0.4f, 0.4f, 0.2f, 0.1f, 0.2f, 0.7f, 0.3f, 0.5f, 0.2f};
    float y1[9] = {1, 0, 0, 0, 0, 1, 1, 0, 0};
    float y2[9] = {0, 1, 0, 0, 0, 1, 0.5f, 0.5f, 0};
    float ids[3] = {0, 2, 0};
    int64_t correct = 0;
    double sum = 0;
    assert_int_equal(nn__loss(CCE, 3, 3, out, NULL, y1, NULL, &sum, &correct),
                     NN_OK);
    assert_int_equal(correct, 2);
    correct = 0;
    assert_int_equal(nn__loss(CCE, 3, 3, out, NULL, y2, NULL, &sum, &correct),
                     NN_OK);
    assert_int_equal(correct, 1);
    correct = 0;
    assert_int_equal(nn__loss(SCCE, 3, 3, out, NULL, ids, NULL, &sum,
                              &correct),
                     NN_OK);
    assert_int_equal(correct, 2);
    assert_int_equal(predictions(CCE, 3, 3, out, y1), 3);
    assert_int_equal(predictions(SCCE, 3, 3, out, ids), 3);

    /* BCE counts values: p > 0.5 (strictly) against the label; soft labels
     * never match. From logits (out == logits) the threshold is z > 0. */
    float p[6] = {0.7f, 0.3f, 0.5f, 0.5f, 0.9f, 0.9f};
    float z[6] = {0.1f, -0.1f, 0, 0, 3, 3};
    float by[6] = {1, 0, 0, 0, 1, 0.7f};
    correct = 0;
    assert_int_equal(nn__loss(BCE, 2, 3, p, NULL, by, NULL, &sum, &correct),
                     NN_OK);
    assert_int_equal(correct, 5);
    correct = 0;
    assert_int_equal(nn__loss(BCE, 2, 3, z, z, by, NULL, &sum, &correct),
                     NN_OK);
    assert_int_equal(correct, 5);
    /* Fused sigmoid: out are the probabilities, logits separate. */
    correct = 0;
    assert_int_equal(nn__loss(BCE, 2, 3, p, z, by, NULL, &sum, &correct),
                     NN_OK);
    assert_int_equal(correct, 5);
    assert_int_equal(predictions(BCE, 2, 3, p, by), 6);
}

/* ------------------------------------------------------------------ */
/* Segmentation: per-position losses, IoU, Dice, weighted sums.         */
/* ------------------------------------------------------------------ */

/* One evaluation of a compiled loss on [batch, P, C] values. */
typedef struct seg_case {
    nn_loss_terms t;
    nn_loss_opts o;
    int batch;
    int64_t p, c;
    bool logits;  /* x are logits (from_logits), else probabilities */
    bool sigmoid; /* what the library must decide (nn__loss_sigmoid) */
    bool sparse;  /* the library reads class ids */
} seg_case;

static seg_case seg_new(int batch, int64_t p, int64_t c, bool logits)
{
    seg_case sc = {.o = NN_LOSS_OPTS_INIT, .batch = batch, .p = p, .c = c,
                   .logits = logits};
    return sc;
}

static void seg_add(seg_case *sc, nn_loss kind, float w)
{
    sc->t.kind[sc->t.n] = kind;
    sc->t.weight[sc->t.n++] = w;
    sc->sigmoid = sc->c == 1 || kind == BCE ? true
                  : kind == CCE || kind == SCCE ? false : sc->sigmoid;
    sc->sparse = sc->sparse || kind == SCCE;
}

/* Probabilities of the reference: x, or its sigmoid / softmax. */
static void ref_probs(const seg_case *sc, const double *x, double *p)
{
    int64_t rows = sc->batch * sc->p, c = sc->c;
    for (int64_t r = 0; r < rows; r++) {
        const double *z = x + r * c;
        double mx = z[0], s = 0;
        for (int64_t j = 0; j < c; j++) mx = fmax(mx, z[j]);
        for (int64_t j = 0; j < c; j++) s += exp(z[j] - mx);
        for (int64_t j = 0; j < c; j++)
            p[r * c + j] = !sc->logits   ? z[j]
                           : sc->sigmoid ? 1 / (1 + exp(-z[j]))
                                         : exp(z[j] - mx) / s;
    }
}

/* The documented IoU / Dice, written from the definition. */
static double ref_overlap(nn_loss kind, const seg_case *sc, const double *p,
                          const double *y)
{
    enum { MAXG = 64 };
    double in[MAXG] = {0}, sp[MAXG] = {0}, sy[MAXG] = {0};
    bool image = sc->o.reduction == NN_LOSS_REDUCE_IMAGE;
    int64_t ng = (image ? sc->batch : 1) * sc->c;
    assert_true(ng <= MAXG);
    for (int n = 0; n < sc->batch; n++)
        for (int64_t q = 0; q < sc->p; q++)
            for (int64_t j = 0; j < sc->c; j++) {
                int64_t k = (n * sc->p + q) * sc->c + j;
                int64_t g = image ? n * sc->c + j : j;
                in[g] += p[k] * y[k];
                sp[g] += p[k];
                sy[g] += y[k];
            }
    double tot = 0, s = sc->o.smooth;
    for (int64_t g = 0; g < ng; g++) {
        double num = kind == IOU ? in[g] + s : 2 * in[g] + s;
        double den = (kind == IOU ? sp[g] + sy[g] - in[g] : sp[g] + sy[g]) + s;
        tot += 1 - num / fmax(den, sc->o.eps);
    }
    return tot / (double)ng;
}

/* The mean loss of the batch: the weighted sum of the references. */
static double ref_seg(const seg_case *sc, const double *x, const double *y)
{
    int64_t rows = sc->batch * sc->p, n = rows * sc->c;
    double *p = malloc((size_t)n * sizeof *p), tot = 0;
    ref_probs(sc, x, p);
    for (int k = 0; k < sc->t.n; k++) {
        nn_loss kind = sc->t.kind[k];
        double v;
        if (kind == BCE)
            v = (sc->logits ? ref_bce_logits : ref_bce_probs)(
                (int)rows, (int)sc->c, x, y);
        else if (kind == CCE || kind == SCCE)
            v = (sc->logits ? ref_cce_logits : ref_cce_probs)(
                (int)rows, (int)sc->c, x, y);
        else
            v = ref_overlap(kind, sc, p, y);
        tot += sc->t.weight[k] * v;
    }
    free(p);
    return tot;
}

/* The library's loss (mean over the batch) and gradient, with the
 * activation and label form of sc. */
static double lib_seg_as(const seg_case *sc, const float *x, const float *y,
                         float *dout)
{
    nn_loss_batch b = {.batch = sc->batch, .positions = sc->p,
                       .classes = sc->c, .out = x,
                       .logits = sc->logits ? x : NULL,
                       .sigmoid = sc->sigmoid, .y = y, .sparse = sc->sparse,
                       .dout = dout};
    nn_loss_sums s = {0};
    assert_int_equal(nn__loss_eval(&sc->t, &sc->o, &b, &s), NN_OK);
    return s.loss / sc->batch;
}

/* The same, checking that the library decides them as sc says. */
static double lib_seg(const seg_case *sc, const float *x, const float *y,
                      float *dout)
{
    assert_int_equal(nn__loss_sigmoid(&sc->t, sc->c), sc->sigmoid);
    assert_int_equal(nn__loss_sparse(&sc->t, &sc->o, sc->c), sc->sparse);
    return lib_seg_as(sc, x, y, dout);
}

/* Value and every gradient entry against the reference and its central
 * differences. y: labels as the library reads them; yd: dense form. */
static void check_seg(const seg_case *sc, const float *x, const float *y,
                      const double *yd)
{
    int n = (int)(sc->batch * sc->p * sc->c);
    float *d = malloc((size_t)n * sizeof *d);
    double got = lib_seg(sc, x, y, d);
    double *xd = to_double(x, n), want = ref_seg(sc, xd, yd);
    if (fabs(got - want) > 1e-7 * fmax(1, fabs(want)))
        fail_msg("loss: library %.12g, reference %.12g", got, want);
    double gmax = 0;
    for (int k = 0; k < n; k++) {
        double x0 = xd[k], h = 1e-6 * fmax(1, fabs(x0));
        xd[k] = x0 + h;
        double lp = ref_seg(sc, xd, yd);
        xd[k] = x0 - h;
        double lm = ref_seg(sc, xd, yd);
        xd[k] = x0;
        double fd = (lp - lm) / (2 * h);
        gmax = fmax(gmax, fabs(fd));
        if (fabs(d[k] - fd) > 1e-6 + 1e-4 * fabs(fd))
            fail_msg("gradient %d: library %.9g, finite difference %.9g", k,
                     (double)d[k], fd);
    }
    assert_true(gmax > 1e-4); /* the check saw a gradient */
    free(xd);
    free(d);
}

enum { SN = 2, SP = 6, SC = 3 };

/* Labels: ids in [0, classes_used) per position and their one-hot form;
 * class ids >= classes_used are absent from the batch. */
static void seg_labels(int64_t c, int classes_used, uint64_t seed, float *ids,
                       float *onehot, double *yd)
{
    nn_rng r;
    nn__rng_seed(&r, seed);
    for (int k = 0; k < SN * SP; k++) {
        int id = (int)nn__rng_below(&r, (uint64_t)classes_used);
        ids[k] = (float)id;
        for (int64_t j = 0; j < c; j++) {
            float v = c == 1 ? (float)id : (float)(j == id);
            onehot[k * c + j] = v;
            yd[k * c + j] = v;
        }
    }
}

/* Rows of probabilities (normalised for several classes). */
static void seg_probs(int64_t c, uint64_t seed, float *p)
{
    fill_uniform(p, (int)(SN * SP * c), 0.05f, 0.95f, seed);
    for (int64_t r = 0; r < SN * SP && c > 1; r++) {
        float s = 0;
        for (int64_t j = 0; j < c; j++) s += p[r * c + j];
        for (int64_t j = 0; j < c; j++) p[r * c + j] /= s;
    }
}

static void test_seg_crossentropy_per_pixel(void **state)
{
    (void)state;
    float x[SN * SP * SC], ids[SN * SP], oh[SN * SP * SC];
    double yd[SN * SP * SC];
    seg_labels(SC, SC, 30, ids, oh, yd);
    for (int lg = 0; lg < 2; lg++) {
        if (lg)
            fill_uniform(x, SN * SP * SC, -3, 3, 31);
        else
            seg_probs(SC, 32, x);
        seg_case sc = seg_new(SN, SP, SC, lg);
        seg_add(&sc, CCE, 1);
        check_seg(&sc, x, oh, yd);
        sc = seg_new(SN, SP, SC, lg);
        seg_add(&sc, SCCE, 1);
        check_seg(&sc, x, ids, yd); /* the same loss from ids */
    }
    /* BCE on [N, H, W, 1] masks: the per-sample mean over the pixels. */
    float z[SN * SP], p[SN * SP], m[SN * SP];
    double md[SN * SP];
    fill_uniform(z, SN * SP, -4, 4, 33);
    seg_probs(1, 34, p);
    seg_labels(1, 2, 35, ids, m, md);
    for (int lg = 0; lg < 2; lg++) {
        seg_case sc = seg_new(SN, SP, 1, lg);
        seg_add(&sc, BCE, 1);
        check_seg(&sc, lg ? z : p, m, md);
    }
    /* Per position is the flat loss over the rows: one per position. */
    float d1[SN * SP * SC], d2[SN * SP * SC];
    fill_uniform(x, SN * SP * SC, -3, 3, 36);
    seg_case sc = seg_new(SN, SP, SC, true);
    seg_add(&sc, SCCE, 1);
    double per_pos = lib_seg(&sc, x, ids, d1), flat = 0;
    assert_int_equal(nn__loss(SCCE, SN * SP, SC, x, x, ids, d2, &flat, NULL),
                     NN_OK);
    assert_true(fabs(per_pos - flat / (SN * SP)) < 1e-12);
    for (int k = 0; k < SN * SP * SC; k++)
        assert_true(fabs(d1[k] - d2[k]) <= 1e-7f);
}

/* IoU and Dice in every mode: one channel (sigmoid) and three (softmax),
 * logits and probabilities, both reductions, one-hot and class-id labels,
 * a class absent from the batch, smooth 1 and 0. */
static void test_seg_overlap_grads(void **state)
{
    (void)state;
    const nn_loss kinds[2] = {IOU, DICE};
    for (int ki = 0; ki < 2; ki++)
        for (int c = 1; c <= SC; c += SC - 1)
            for (int lg = 0; lg < 2; lg++)
                for (int red = 0; red < 2; red++)
                    for (int smooth = 0; smooth < 2; smooth++)
                        for (int sp = 0; sp < (c > 1 ? 2 : 1); sp++) {
                            float x[SN * SP * SC], ids[SN * SP],
                                oh[SN * SP * SC];
                            double yd[SN * SP * SC];
                            uint64_t seed = 40 + 16 * ki + 8 * lg + 4 * red +
                                            2 * smooth + sp + 100 * c;
                            /* the last class never occurs */
                            seg_labels(c, c > 1 ? c - 1 : 2, seed, ids, oh,
                                       yd);
                            if (lg)
                                fill_uniform(x, SN * SP * c, -3, 3, seed + 1);
                            else
                                seg_probs(c, seed + 1, x);
                            seg_case sc = seg_new(SN, SP, c, lg);
                            sc.o.reduction = red;
                            sc.o.smooth = smooth ? 1.0 : 0.0;
                            sc.o.sparse_labels = sp;
                            sc.sparse = sp;
                            seg_add(&sc, kinds[ki], 1);
                            check_seg(&sc, x, sp ? ids : oh, yd);
                        }
}

/* A weighted sum's gradient is the weighted sum of its terms' gradients
 * (each term with the sum's activation and labels), and both equal the
 * reference's finite differences. */
static void check_sum_of_terms(const seg_case *sum, const float *x,
                               const float *y, const double *yd)
{
    enum { N = SN * SP * SC };
    int n = (int)(sum->batch * sum->p * sum->c);
    float d[N], dk[N];
    double want_g[N] = {0}, want = 0;
    check_seg(sum, x, y, yd);
    double got = lib_seg(sum, x, y, d);
    for (int k = 0; k < sum->t.n; k++) {
        seg_case one = *sum;
        one.t.n = 1;
        one.t.kind[0] = sum->t.kind[k];
        one.t.weight[0] = 1;
        want += sum->t.weight[k] * lib_seg_as(&one, x, y, dk);
        for (int i = 0; i < n; i++) want_g[i] += sum->t.weight[k] * dk[i];
    }
    assert_true(fabs(got - want) < 1e-9 * fmax(1, fabs(want)));
    for (int i = 0; i < n; i++)
        assert_true(fabs(d[i] - want_g[i]) <= 1e-6 + 1e-5 * fabs(want_g[i]));
}

static void test_seg_weighted_sums(void **state)
{
    (void)state;
    float x[SN * SP * SC], ids[SN * SP], oh[SN * SP * SC];
    double yd[SN * SP * SC];
    /* BCE + IoU on one channel: the assignment's loss. */
    seg_labels(1, 2, 60, ids, oh, yd);
    fill_uniform(x, SN * SP, -3, 3, 61);
    for (int lg = 0; lg < 2; lg++) {
        if (!lg) seg_probs(1, 62, x);
        seg_case sc = seg_new(SN, SP, 1, lg);
        seg_add(&sc, BCE, 1);
        seg_add(&sc, IOU, 1);
        check_sum_of_terms(&sc, x, oh, yd);
    }
    /* CCE + Dice, softmax over three classes, per image. */
    seg_labels(SC, SC - 1, 63, ids, oh, yd);
    fill_uniform(x, SN * SP * SC, -3, 3, 64);
    seg_case sc = seg_new(SN, SP, SC, true);
    sc.o.reduction = NN_LOSS_REDUCE_IMAGE;
    seg_add(&sc, CCE, 0.5f);
    seg_add(&sc, DICE, 2);
    check_sum_of_terms(&sc, x, oh, yd);
    /* Sparse CE + IoU + Dice read class ids, as the tutorial trains. */
    sc = seg_new(SN, SP, SC, true);
    seg_add(&sc, SCCE, 1);
    seg_add(&sc, IOU, 0.25f);
    seg_add(&sc, DICE, 3);
    check_sum_of_terms(&sc, x, ids, yd);
    /* BCE + Dice on several channels: sigmoids (multi-label masks). */
    sc = seg_new(SN, SP, SC, true);
    seg_add(&sc, BCE, 1);
    seg_add(&sc, DICE, 1);
    check_sum_of_terms(&sc, x, oh, yd);
}

/* With a fused sigmoid the loss gets probabilities and logits apart: the
 * same loss and logit gradient as from the logits alone. */
static void test_seg_fused_logits(void **state)
{
    (void)state;
    float z[SN * SP], p[SN * SP], ids[SN * SP], m[SN * SP], d1[SN * SP],
        d2[SN * SP];
    double md[SN * SP];
    fill_uniform(z, SN * SP, -3, 3, 70);
    for (int k = 0; k < SN * SP; k++) p[k] = 1 / (1 + expf(-z[k]));
    seg_labels(1, 2, 71, ids, m, md);
    nn_loss_terms t = {2, {BCE, IOU}, {1, 1}};
    nn_loss_opts o = NN_LOSS_OPTS_INIT;
    nn_loss_batch b = {.batch = SN, .positions = SP, .classes = 1, .out = z,
                       .logits = z, .sigmoid = true, .y = m, .dout = d1};
    nn_loss_sums s1 = {0}, s2 = {0};
    assert_int_equal(nn__loss_eval(&t, &o, &b, &s1), NN_OK);
    b.out = p;
    b.dout = d2;
    assert_int_equal(nn__loss_eval(&t, &o, &b, &s2), NN_OK);
    assert_true(fabs(s1.loss - s2.loss) < 1e-12);
    assert_memory_equal(d1, d2, sizeof d1);
    /* Accuracy thresholds z > 0 on logits and p > 0.5 on probabilities. */
    assert_int_equal(s1.correct, s2.correct);
    assert_int_equal(s1.predictions, SN * SP);
}

/* Hand-computed values: what smooth does, and a class absent from the
 * batch. */
static void test_seg_overlap_values(void **state)
{
    (void)state;
    nn_loss_terms iou = {1, {IOU}, {1}}, dice = {1, {DICE}, {1}};
    nn_loss_opts o = NN_LOSS_OPTS_INIT;
    float p[4] = {0.5f, 0.5f, 0, 0}, y[4] = {1, 0, 0, 0};
    nn_loss_batch b = {.batch = 1, .positions = 4, .classes = 1, .out = p,
                       .y = y, .sigmoid = true};
    nn_loss_sums s = {0};
    /* I = 0.5, sum p = 1, sum y = 1: IoU 1 - 1.5/2.5, Dice 1 - 2/3. */
    assert_int_equal(nn__loss_eval(&iou, &o, &b, &s), NN_OK);
    assert_true(fabs(s.loss - 0.4) < 1e-12);
    s.loss = 0;
    assert_int_equal(nn__loss_eval(&dice, &o, &b, &s), NN_OK);
    assert_true(fabs(s.loss - 1.0 / 3) < 1e-12);
    /* Absent from the truth: 1 - 1/(sum p + 1), which smooth defines; 0
     * when the prediction is empty too. */
    float none[4] = {0, 0, 0, 0}, p2[4] = {0.2f, 0.2f, 0, 0};
    b.y = none;
    b.out = p2;
    s.loss = 0;
    assert_int_equal(nn__loss_eval(&iou, &o, &b, &s), NN_OK);
    assert_true(fabs(s.loss - (1 - 1 / 1.4)) < 1e-7);
    b.out = none;
    s.loss = 0;
    assert_int_equal(nn__loss_eval(&iou, &o, &b, &s), NN_OK);
    assert_true(s.loss == 0);
    /* smooth 0: an empty class and an empty prediction are 0/eps: loss 1,
     * zero gradient. */
    float d[4];
    o.smooth = 0;
    s.loss = 0;
    b.dout = d;
    assert_int_equal(nn__loss_eval(&iou, &o, &b, &s), NN_OK);
    assert_true(s.loss == 1);
    for (int k = 0; k < 4; k++) assert_true(d[k] == 0);
    /* Per image differs from per batch: image 1 perfect, image 2 not. */
    float p3[4] = {1, 0, 0, 0}, y3[4] = {1, 0, 1, 0};
    nn_loss_batch b3 = {.batch = 2, .positions = 2, .classes = 1, .out = p3,
                        .y = y3, .sigmoid = true};
    o = (nn_loss_opts)NN_LOSS_OPTS_INIT;
    o.smooth = 0;
    s.loss = 0;
    assert_int_equal(nn__loss_eval(&iou, &o, &b3, &s), NN_OK);
    assert_true(fabs(s.loss / 2 - 0.5) < 1e-12); /* 1 - 1/2 */
    o.reduction = NN_LOSS_REDUCE_IMAGE;
    s.loss = 0;
    assert_int_equal(nn__loss_eval(&iou, &o, &b3, &s), NN_OK);
    assert_true(fabs(s.loss / 2 - 0.5) < 1e-12); /* (0 + 1) / 2 */
    float p4[4] = {1, 0, 0.5f, 0.5f};
    b3.out = p4;
    s.loss = 0;
    assert_int_equal(nn__loss_eval(&iou, &o, &b3, &s), NN_OK);
    double per_image = s.loss / 2;
    o.reduction = NN_LOSS_REDUCE_BATCH;
    s.loss = 0;
    assert_int_equal(nn__loss_eval(&iou, &o, &b3, &s), NN_OK);
    assert_true(fabs(per_image - 1.0 / 3) < 1e-12); /* (0 + 1 - 1/3) / 2 */
    assert_true(fabs(s.loss / 2 - 0.4) < 1e-12);    /* 1 - 1.5 / 2.5 */
}

static void test_seg_loss_errors(void **state)
{
    (void)state;
    float x[SN * SP * SC], ids[SN * SP], oh[SN * SP * SC], d[SN * SP * SC];
    double yd[SN * SP * SC];
    seg_labels(SC, SC, 80, ids, oh, yd);
    fill_uniform(x, SN * SP * SC, -3, 3, 81);
    nn_loss_terms t = {2, {SCCE, IOU}, {1, 1}};
    nn_loss_opts o = NN_LOSS_OPTS_INIT;
    nn_loss_batch b = {.batch = SN, .positions = SP, .classes = SC, .out = x,
                       .logits = x, .y = ids, .sparse = true, .dout = d};
    for (int k = 0; k < SN * SP * SC; k++) d[k] = -42;
    nn_loss_sums s = {7, 3, 5};
    /* A class id out of range names the sample and the position. */
    ids[SP + 4] = 3;
    assert_int_equal(nn__loss_eval(&t, &o, &b, &s), NN_ERR_INVALID);
    assert_non_null(strstr(nn_last_error(), "sample 1, position 4"));
    assert_non_null(strstr(nn_last_error(), "[0, 3)"));
    ids[SP + 4] = 0.5f;
    assert_int_equal(nn__loss_eval(&t, &o, &b, &s), NN_ERR_INVALID);
    ids[SP + 4] = 1;
    /* NaN in the output. */
    x[5] = NAN;
    assert_int_equal(nn__loss_eval(&t, &o, &b, &s), NN_ERR_NUMERIC);
    assert_non_null(strstr(nn_last_error(), "sample 0, position 1"));
    x[5] = 0.5f;
    /* Probabilities outside [0, 1] for IoU (a linear output). */
    b.logits = NULL;
    t.kind[0] = IOU;
    t.n = 1;
    assert_int_equal(nn__loss_eval(&t, &o, &b, &s), NN_ERR_NUMERIC);
    assert_non_null(strstr(nn_last_error(), "from_logits"));
    /* Mask labels outside [0, 1]. */
    b.sparse = false;
    b.y = oh;
    seg_probs(SC, 82, x);
    oh[7] = 2;
    assert_int_equal(nn__loss_eval(&t, &o, &b, &s), NN_ERR_INVALID);
    assert_non_null(strstr(nn_last_error(), "sample 0, position 2"));
    oh[7] = 0;
    /* Nothing was written or added by the failures. */
    for (int k = 0; k < SN * SP * SC; k++) assert_true(d[k] == -42);
    assert_true(s.loss == 7 && s.correct == 3 && s.predictions == 5);
    assert_int_equal(nn__loss_eval(&t, &o, &b, &s), NN_OK);

    /* Descriptions compile refuses. */
    const struct {
        nn_loss_terms t;
        const char *msg;
    } bad[] = {
        {{0, {BCE}, {1}}, "0 losses"},
        {{2, {BCE, CCE}, {1, 1}}, "one cross-entropy"},
        {{2, {IOU, IOU}, {1, 1}}, "twice"},
        {{2, {BCE, IOU}, {1, 0}}, "weight of loss 1 (IoU)"},
        {{2, {BCE, IOU}, {1, NAN}}, "finite"},
        {{1, {(nn_loss)6}, {1}}, "unknown loss 6"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_int_equal(nn__loss_check(&bad[i].t, &o, "c"), NN_ERR_INVALID);
        assert_non_null(strstr(nn_last_error(), bad[i].msg));
    }
    nn_loss_terms ok = {1, {IOU}, {1}};
    o.smooth = -1;
    assert_int_equal(nn__loss_check(&ok, &o, "c"), NN_ERR_INVALID);
    o = (nn_loss_opts)NN_LOSS_OPTS_INIT;
    o.eps = 0;
    assert_int_equal(nn__loss_check(&ok, &o, "c"), NN_ERR_INVALID);
    o = (nn_loss_opts)NN_LOSS_OPTS_INIT;
    o.reduction = 2;
    assert_int_equal(nn__loss_check(&ok, &o, "c"), NN_ERR_INVALID);
    o = (nn_loss_opts)NN_LOSS_OPTS_INIT;
    o.sparse_labels = 1;
    assert_int_equal(nn__loss_check(&ok, &o, "c"), NN_OK);
    nn_loss_terms bce = {2, {BCE, IOU}, {1, 1}};
    assert_int_equal(nn__loss_check(&bce, &o, "c"), NN_ERR_INVALID);
    assert_non_null(strstr(nn_last_error(), "sparse"));
}

/* ------------------------------------------------------------------ */
/* Confusion matrix and the thresholded metrics                        */
/* ------------------------------------------------------------------ */

static nn_tensor *tensor_of(int rank, const int64_t *shape, const float *v)
{
    nn_tensor *t = nn_tensor_create(rank, shape);
    memcpy(t->data, v, (size_t)t->size * sizeof(float));
    return t;
}

static void test_confusion_hand_computed(void **state)
{
    (void)state;
    /* 4 classes, 2 images of 2 x 2 positions; class 3 never occurs. */
    const float truth[8] = {0, 0, 1, 2, 1, 1, 0, 2};
    const float pred[8] = {0, 1, 1, 2, 1, 0, 0, 1};
    float out[8 * 4], onehot[8 * 4];
    for (int k = 0; k < 8; k++)
        for (int j = 0; j < 4; j++) {
            out[k * 4 + j] = j == (int)pred[k] ? 2.0f : -1.0f + 0.1f * j;
            onehot[k * 4 + j] = (float)(j == (int)truth[k]);
        }
    int64_t so[4] = {2, 2, 2, 4}, sy[3] = {2, 2, 2}, sy1[4] = {2, 2, 2, 1};
    nn_tensor *to = tensor_of(4, so, out), *ty = tensor_of(3, sy, truth);
    nn_tensor *ty1 = tensor_of(4, sy1, truth), *toh = tensor_of(4, so, onehot);
    nn_confusion *cm = nn_confusion_create(4);
    assert_int_equal(nn_confusion_update(cm, to, ty, 0), NN_OK);
    /* truth\pred: 0: {2, 1, 0}, 1: {1, 2, 0}, 2: {0, 1, 1} */
    const int64_t want[4][4] = {{2, 1, 0, 0}, {1, 2, 0, 0}, {0, 1, 1, 0}};
    for (int t = 0; t < 4; t++)
        for (int p = 0; p < 4; p++)
            assert_int_equal(nn_confusion_count(cm, t, p), want[t][p]);
    /* IoU = TP / (row + column - TP): 2/4, 2/5, 1/2; class 3 is 0/0. */
    assert_true(fabs(nn_confusion_iou(cm, 0) - 0.5) < 1e-15);
    assert_true(fabs(nn_confusion_iou(cm, 1) - 0.4) < 1e-15);
    assert_true(fabs(nn_confusion_iou(cm, 2) - 0.5) < 1e-15);
    assert_true(isnan(nn_confusion_iou(cm, 3)));
    /* Keras MeanIoU counts the 3 classes that occur. */
    assert_true(fabs(nn_confusion_mean_iou(cm, 0) - 1.4 / 3) < 1e-15);
    assert_true(fabs(nn_confusion_mean_iou(cm, 1) - 0.45) < 1e-15);
    /* Dice = 2 TP / (row + column): 4/6, 4/7, 2/3. */
    assert_true(fabs(nn_confusion_dice(cm, 1) - 4.0 / 7) < 1e-15);
    assert_true(isnan(nn_confusion_dice(cm, 3)));
    assert_true(fabs(nn_confusion_mean_dice(cm, 0) -
                     (4.0 / 6 + 4.0 / 7 + 2.0 / 3) / 3) < 1e-15);
    assert_true(fabs(nn_confusion_pixel_accuracy(cm) - 5.0 / 8) < 1e-15);
    /* Labels [N, H, W, 1] and one-hot labels count the same. */
    nn_confusion *cm2 = nn_confusion_create(4);
    assert_int_equal(nn_confusion_update(cm2, to, ty1, 0), NN_OK);
    assert_int_equal(nn_confusion_update(cm2, to, toh, 1), NN_OK);
    for (int t = 0; t < 4; t++)
        for (int p = 0; p < 4; p++)
            assert_int_equal(nn_confusion_count(cm2, t, p), 2 * want[t][p]);
    /* The ratios do not depend on the batching. */
    assert_true(nn_confusion_mean_iou(cm2, 0) == nn_confusion_mean_iou(cm, 0));
    /* Reset; an empty matrix reads 0, as Keras' does. */
    assert_int_equal(nn_confusion_reset(cm2), NN_OK);
    assert_true(nn_confusion_mean_iou(cm2, 0) == 0);
    assert_true(nn_confusion_pixel_accuracy(cm2) == 0);
    assert_true(isnan(nn_confusion_iou(cm2, 0)));
    /* Bad indices. */
    assert_int_equal(nn_confusion_count(cm, 4, 0), -1);
    assert_true(isnan(nn_confusion_iou(cm, -1)));
    assert_true(isnan(nn_confusion_mean_iou(cm, 4)));
    assert_non_null(strstr(nn_last_error(), "no class 4"));
    nn_confusion_free(cm2);
    nn_confusion_free(cm);
    nn_tensor_free(to), nn_tensor_free(ty), nn_tensor_free(ty1);
    nn_tensor_free(toh);
}

static void test_confusion_one_channel(void **state)
{
    (void)state;
    /* One channel: two classes, threshold 0.5 on probabilities and 0 on
     * logits; masks threshold at 0.5 too. */
    const float p[6] = {0.9f, 0.5f, 0.2f, 0.7f, 0.1f, 0.6f};
    const float z[6] = {2, 0, -1, 1, -2, 0.5f};
    const float m[6] = {1, 1, 0, 0, 0, 1};
    int64_t so[4] = {1, 2, 3, 1}, sm[3] = {1, 2, 3};
    nn_tensor *tp = tensor_of(4, so, p), *tz = tensor_of(4, so, z);
    nn_tensor *tm = tensor_of(3, sm, m);
    nn_confusion *cm = nn_confusion_create(2);
    assert_int_equal(nn_confusion_update(cm, tp, tm, 0), NN_OK);
    /* predicted 1 0 0 1 0 1 against 1 1 0 0 0 1: TP 2, FN 1, FP 1, TN 2 */
    assert_int_equal(nn_confusion_count(cm, 1, 1), 2);
    assert_int_equal(nn_confusion_count(cm, 1, 0), 1);
    assert_int_equal(nn_confusion_count(cm, 0, 1), 1);
    assert_int_equal(nn_confusion_count(cm, 0, 0), 2);
    assert_true(fabs(nn_confusion_mean_iou(cm, 1) - 0.5) < 1e-15);
    assert_true(fabs(nn_confusion_dice(cm, 1) - 4.0 / 6) < 1e-15);
    assert_int_equal(nn_confusion_reset(cm), NN_OK);
    assert_int_equal(nn_confusion_update(cm, tz, tm, 1), NN_OK);
    assert_int_equal(nn_confusion_count(cm, 1, 1), 2);
    assert_int_equal(nn_confusion_count(cm, 0, 0), 2);
    nn_confusion_free(cm);
    nn_tensor_free(tp), nn_tensor_free(tz), nn_tensor_free(tm);
}

static void test_confusion_errors(void **state)
{
    (void)state;
    float out[2 * 3 * 3], ids[2 * 3] = {0, 1, 2, 2, 1, 0};
    fill_uniform(out, 18, -1, 1, 90);
    int64_t so[3] = {2, 3, 3}, sy[2] = {2, 3}, sbad[2] = {2, 2};
    nn_tensor *to = tensor_of(3, so, out), *ty = tensor_of(2, sy, ids);
    nn_tensor *tbad = tensor_of(2, sbad, ids);
    assert_null(nn_confusion_create(1));
    assert_null(nn_confusion_create(1025));
    nn_confusion *cm = nn_confusion_create(3), *cm2 = nn_confusion_create(2);
    /* Shapes: labels that fit neither form; a matrix of other classes. */
    assert_int_equal(nn_confusion_update(cm, to, tbad, 0), NN_ERR_SHAPE);
    assert_non_null(strstr(nn_last_error(), "one per position"));
    assert_int_equal(nn_confusion_update(cm2, to, ty, 0), NN_ERR_SHAPE);
    /* A class id out of range names the sample. */
    ty->data[4] = 3;
    assert_int_equal(nn_confusion_update(cm, to, ty, 0), NN_ERR_INVALID);
    assert_non_null(strstr(nn_last_error(), "sample 1, position 1"));
    ty->data[4] = 1;
    to->data[2] = NAN;
    assert_int_equal(nn_confusion_update(cm, to, ty, 0), NN_ERR_NUMERIC);
    to->data[2] = 0;
    assert_int_equal(nn_confusion_update(NULL, to, ty, 0), NN_ERR_INVALID);
    assert_int_equal(nn_confusion_reset(NULL), NN_ERR_INVALID);
    /* Nothing was added by the failures. */
    for (int t = 0; t < 3; t++)
        for (int p = 0; p < 3; p++)
            assert_int_equal(nn_confusion_count(cm, t, p), 0);
    assert_int_equal(nn_confusion_update(cm, to, ty, 0), NN_OK);
    assert_int_equal(nn_confusion_classes(cm), 3);
    /* Allocation failures. */
    for (int k = 1; k <= 2; k++) {
        nn__debug_fail_alloc_after(k);
        assert_null(nn_confusion_create(3));
        nn__debug_fail_alloc_after(0);
    }
    nn_confusion_free(NULL);
    nn_confusion_free(cm);
    nn_confusion_free(cm2);
    nn_tensor_free(to), nn_tensor_free(ty), nn_tensor_free(tbad);
}

/* ------------------------------------------------------------------ */
/* Weighted cross-entropy: class weights, pos_weight, sample weights    */
/* ------------------------------------------------------------------ */

/* One weighted evaluation: a cross-entropy (and optionally IoU) on
 * [batch, p, c] values with the weights of docs/losses.md. */
typedef struct wce_case {
    nn_loss kind; /* CCE, SCCE or BCE */
    bool iou;     /* + IoU (weight 1) */
    int batch;
    int64_t p, c;
    bool logits;
    nn_loss_opts o;
    const float *sw; /* sample weights or NULL */
} wce_case;

static double sw_of(const wce_case *w, int n) { return w->sw ? w->sw[n] : 1; }

/* The documented weighted cross-entropy, written from its definition:
 * sum_n s_n L_n / D. y dense (one-hot rows or values). */
static double ref_wce_ce(const wce_case *w, const double *x, const double *y)
{
    int64_t c = w->c, per = w->p * c;
    double num = 0, den = 0;
    for (int n = 0; n < w->batch; n++) {
        double ln = 0, omega = 0;
        for (int64_t q = 0; q < w->p; q++) {
            const double *xr = x + n * per + q * c, *yr = y + n * per + q * c;
            if (w->kind == BCE) {
                for (int64_t j = 0; j < c; j++) {
                    double s = w->logits ? 1 / (1 + exp(-xr[j])) : clipd(xr[j]);
                    ln -= (w->o.pos_weight * yr[j] * log(s) +
                           (1 - yr[j]) * log(1 - s)) / (double)per;
                }
                continue;
            }
            double mx = xr[0], sum = 0, rowsum = 0, wy = 0;
            for (int64_t j = 0; j < c; j++) mx = fmax(mx, xr[j]);
            for (int64_t j = 0; j < c; j++) sum += exp(xr[j] - mx);
            for (int64_t j = 0; j < c; j++) rowsum += xr[j];
            for (int64_t j = 0; j < c; j++) {
                double cw = w->o.class_weights ? w->o.class_weights[j] : 1;
                double lq = w->logits ? xr[j] - mx - log(sum)
                                      : log(clipd(xr[j] / rowsum));
                ln -= cw * yr[j] * lq / (double)w->p;
                wy += cw * yr[j];
            }
            omega += (w->o.class_weights ? wy : 1) / (double)w->p;
        }
        num += sw_of(w, n) * ln;
        den += sw_of(w, n) * (w->kind == BCE ? 1 : omega);
    }
    if (w->o.weight_norm != NN_WEIGHT_NORM_SUM) den = w->batch;
    return den > 0 ? num / den : 0;
}

/* IoU weighted by samples: per image the images' losses, over the batch
 * the batch's loss carried by every sample. */
static double ref_wce_iou(const wce_case *w, const double *x, const double *y)
{
    seg_case sc = seg_new(w->batch, w->p, w->c, w->logits);
    seg_add(&sc, IOU, 1);
    sc.o.reduction = w->o.reduction;
    int64_t per = w->p * w->c, n_all = w->batch * per;
    double *p = malloc((size_t)n_all * sizeof *p), num = 0, den = 0;
    sc.sigmoid = w->kind == BCE || w->c == 1;
    ref_probs(&sc, x, p);
    double whole = ref_overlap(IOU, &sc, p, y);
    for (int n = 0; n < w->batch; n++) {
        seg_case one = sc;
        one.batch = 1;
        double ln = w->o.reduction == NN_LOSS_REDUCE_IMAGE
                        ? ref_overlap(IOU, &one, p + n * per, y + n * per)
                        : whole;
        num += sw_of(w, n) * ln;
        den += sw_of(w, n);
    }
    free(p);
    if (w->o.weight_norm != NN_WEIGHT_NORM_SUM) den = w->batch;
    return den > 0 ? num / den : 0;
}

static double ref_wce(const wce_case *w, const double *x, const double *y)
{
    return ref_wce_ce(w, x, y) + (w->iou ? ref_wce_iou(w, x, y) : 0);
}

static double lib_wce(const wce_case *w, const float *x, const float *y,
                      float *dout)
{
    nn_loss_terms t = {1, {w->kind}, {1}};
    if (w->iou) {
        t.kind[1] = IOU;
        t.weight[1] = 1;
        t.n = 2;
    }
    nn_loss_batch b = {.batch = w->batch, .positions = w->p,
                       .classes = w->c, .out = x,
                       .logits = w->logits ? x : NULL,
                       .sigmoid = w->kind == BCE, .y = y,
                       .sparse = w->kind == SCCE, .dout = dout,
                       .sample_weight = w->sw};
    nn_loss_sums s = {0};
    assert_int_equal(nn__loss_eval(&t, &w->o, &b, &s), NN_OK);
    return s.loss / w->batch;
}

/* Value and every gradient entry against the reference's central
 * differences. y: labels as the library reads them; yd: dense. */
static void check_wce(const wce_case *w, const float *x, const float *y,
                      const double *yd)
{
    int n = (int)(w->batch * w->p * w->c);
    float *d = calloc((size_t)n, sizeof *d);
    double *xd = calloc((size_t)n, sizeof *xd);
    for (int k = 0; k < n; k++) xd[k] = x[k];
    double got = lib_wce(w, x, y, d), want = ref_wce(w, xd, yd);
    if (fabs(got - want) > 1e-9 * fmax(1, fabs(want)))
        fail_msg("weighted loss: library %.12g, reference %.12g", got, want);
    for (int k = 0; k < n; k++) {
        double x0 = xd[k], h = 1e-6 * fmax(1, fabs(x0));
        xd[k] = x0 + h;
        double lp = ref_wce(w, xd, yd);
        xd[k] = x0 - h;
        double lm = ref_wce(w, xd, yd);
        xd[k] = x0;
        double fd = (lp - lm) / (2 * h);
        if (fabs(d[k] - fd) > 1e-6 + 1e-4 * fabs(fd))
            fail_msg("weighted gradient %d: library %.9g, finite difference "
                     "%.9g",
                     k, (double)d[k], fd);
    }
    free(xd);
    free(d);
}

static wce_case wce_new(nn_loss kind, int batch, int64_t p, int64_t c,
                        bool logits)
{
    wce_case w = {.kind = kind, .batch = batch, .p = p, .c = c,
                  .logits = logits, .o = NN_LOSS_OPTS_INIT};
    return w;
}

/* Categorical with class weights: one-hot and soft labels, logits and
 * probabilities, flat and per position, both normalisations, with and
 * without sample weights (one of them 0). */
static void test_weighted_cce_grads(void **state)
{
    (void)state;
    const float cw[SC] = {0.5f, 2.0f, 3.0f}, sw[SN] = {1.5f, 0.0f};
    float x[SN * SP * SC], ids[SN * SP], oh[SN * SP * SC], soft[SN * SP * SC];
    double yd[SN * SP * SC], ysoft[SN * SP * SC];
    seg_labels(SC, SC, 200, ids, oh, yd);
    make_labels(SN * SP, SC, false, 201, soft, ysoft, NULL);
    for (int lg = 0; lg < 2; lg++)
        for (int norm = 0; norm < 2; norm++)
            for (int wsw = 0; wsw < 2; wsw++)
                for (int64_t p = 1; p <= SP; p += SP - 1) {
                    int batch = p == 1 ? SN * SP / 2 : SN;
                    float swb[SN * SP / 2];
                    for (int n = 0; n < batch; n++)
                        swb[n] = p == 1 ? 0.25f + 0.5f * (float)n : sw[n];
                    if (lg)
                        fill_uniform(x, SN * SP * SC, -3, 3, 202 + (uint64_t)p);
                    else
                        seg_probs(SC, 203 + (uint64_t)p, x);
                    wce_case w = wce_new(SCCE, batch, p, SC, lg);
                    w.o.class_weights = cw;
                    w.o.num_class_weights = SC;
                    w.o.weight_norm = norm;
                    w.sw = wsw ? swb : NULL;
                    check_wce(&w, x, ids, yd);
                    w.kind = CCE;
                    check_wce(&w, x, oh, yd);
                    check_wce(&w, x, soft, ysoft); /* -sum_c w_c y_c log q_c */
                }
}

/* Binary with pos_weight (logits and probabilities, one and several
 * channels) and sample weights; IoU and Dice sums weigh per image. */
static void test_weighted_bce_grads(void **state)
{
    (void)state;
    const float sw[SN] = {0.5f, 2.0f};
    float x[SN * SP * SC], m[SN * SP * SC];
    double md[SN * SP * SC];
    make_labels(SN * SP, SC, false, 210, m, md, NULL);
    for (int k = 0; k < SN * SP * SC; k += 4) m[k] = (float)(md[k] = 1);
    for (int lg = 0; lg < 2; lg++)
        for (int norm = 0; norm < 2; norm++)
            for (int64_t c = 1; c <= SC; c += SC - 1) {
                if (lg)
                    fill_uniform(x, SN * SP * SC, -4, 4, 211 + (uint64_t)c);
                else
                    fill_uniform(x, SN * SP * SC, 0.02f, 0.98f,
                                 212 + (uint64_t)c);
                wce_case w = wce_new(BCE, SN, SP, c, lg);
                w.o.pos_weight = 3.5f;
                w.o.weight_norm = norm;
                check_wce(&w, x, m, md);
                w.sw = sw;
                check_wce(&w, x, m, md);
                w.o.pos_weight = 0.25f;
                check_wce(&w, x, m, md);
                /* A sum with IoU: each term weighed, per image or batch. */
                w.iou = true;
                for (int red = 0; red < 2; red++) {
                    w.o.reduction = red;
                    check_wce(&w, x, m, md);
                }
            }
}

/* Hand-computed: class ids {0, 1} at q = 1/2 with weights {1, 3}; the
 * Keras mean divides by 2 samples, the weighted mean by 1 + 3. */
static void test_weighted_values(void **state)
{
    (void)state;
    float z[4] = {0, 0, 0, 0}, ids[2] = {0, 1}, cw[2] = {1, 3}, d[4];
    nn_loss_terms t = {1, {SCCE}, {1}};
    nn_loss_opts o = NN_LOSS_OPTS_INIT;
    o.class_weights = cw;
    o.num_class_weights = 2;
    nn_loss_batch b = {.batch = 2, .positions = 1, .classes = 2, .out = z,
                       .logits = z, .y = ids, .sparse = true, .dout = d};
    nn_loss_sums s = {0};
    assert_int_equal(nn__loss_eval(&t, &o, &b, &s), NN_OK);
    assert_true(fabs(s.loss / 2 - 2 * log(2.0)) < 1e-12);
    /* d/dz of (w_y (lse - z_y)) / 2: w_y (p - onehot) / 2 */
    assert_true(fabs(d[0] + 0.25) < 1e-7 && fabs(d[1] - 0.25) < 1e-7);
    assert_true(fabs(d[2] - 0.75) < 1e-7 && fabs(d[3] + 0.75) < 1e-7);
    o.weight_norm = NN_WEIGHT_NORM_SUM;
    s.loss = 0;
    assert_int_equal(nn__loss_eval(&t, &o, &b, &s), NN_OK);
    assert_true(fabs(s.loss / 2 - log(2.0)) < 1e-12);
    /* Sample weights 0: no loss, no gradient. */
    float zero[2] = {0, 0};
    b.sample_weight = zero;
    s.loss = 0;
    assert_int_equal(nn__loss_eval(&t, &o, &b, &s), NN_OK);
    assert_true(s.loss == 0);
    for (int k = 0; k < 4; k++) assert_true(d[k] == 0);
    /* BCE at z = 0: pos_weight 2 doubles a positive's ln 2. */
    nn_loss_terms tb = {1, {BCE}, {1}};
    nn_loss_opts ob = NN_LOSS_OPTS_INIT;
    ob.pos_weight = 2;
    float y2[2] = {1, 0};
    nn_loss_batch bb = {.batch = 2, .positions = 1, .classes = 1, .out = z,
                        .logits = z, .sigmoid = true, .y = y2, .dout = d};
    s.loss = 0;
    assert_int_equal(nn__loss_eval(&tb, &ob, &bb, &s), NN_OK);
    assert_true(fabs(s.loss - 3 * log(2.0)) < 1e-12);
    /* gradient (c s - pw y) / 2: (2 * 0.5 - 2) / 2 and (0.5 - 0) / 2 */
    assert_true(fabs(d[0] + 0.5) < 1e-7 && fabs(d[1] - 0.25) < 1e-7);
    /* Unit weights change nothing, to the bit. */
    float ones[2] = {1, 1}, d2[2];
    ob.pos_weight = 1;
    nn_loss_sums s1 = {0}, s2 = {0};
    assert_int_equal(nn__loss_eval(&tb, &ob, &bb, &s1), NN_OK);
    memcpy(d2, d, sizeof d2);
    bb.sample_weight = ones;
    assert_int_equal(nn__loss_eval(&tb, &ob, &bb, &s2), NN_OK);
    assert_true(s1.loss == s2.loss);
    assert_memory_equal(d, d2, sizeof d2);
}

static void test_weighted_loss_errors(void **state)
{
    (void)state;
    nn_model *m = dense_model(1, 3, NN_ACT_SOFTMAX);
    nn_optimizer *opt = nn_sgd(NULL);
    float cw[3] = {1, 2, 3};
    nn_loss_opts lo = NN_LOSS_OPTS_INIT;
    lo.class_weights = cw;
    lo.num_class_weights = 2;
    assert_int_equal(nn_model_compile(m, opt, SCCE, &lo), NN_ERR_SHAPE);
    assert_non_null(strstr(nn_last_error(), "2 class weights for an output "
                                            "of 3 classes"));
    lo.num_class_weights = 0;
    assert_int_equal(nn_model_compile(m, opt, SCCE, &lo), NN_ERR_INVALID);
    lo.num_class_weights = 3;
    cw[1] = -1;
    assert_int_equal(nn_model_compile(m, opt, SCCE, &lo), NN_ERR_INVALID);
    assert_non_null(strstr(nn_last_error(), "class 1 is -1"));
    cw[1] = NAN;
    assert_int_equal(nn_model_compile(m, opt, SCCE, &lo), NN_ERR_INVALID);
    cw[1] = 2;
    assert_int_equal(nn_model_compile(m, opt, BCE, &lo), NN_ERR_INVALID);
    assert_non_null(strstr(nn_last_error(), "pos_weight"));
    lo.class_weights = NULL;
    assert_int_equal(nn_model_compile(m, opt, SCCE, &lo), NN_ERR_INVALID);
    lo.num_class_weights = 0;
    lo.pos_weight = 2;
    assert_int_equal(nn_model_compile(m, opt, CCE, &lo), NN_ERR_INVALID);
    lo.pos_weight = -1;
    assert_int_equal(nn_model_compile(m, opt, BCE, &lo), NN_ERR_INVALID);
    lo.pos_weight = 1;
    lo.weight_norm = 2;
    assert_int_equal(nn_model_compile(m, opt, BCE, &lo), NN_ERR_INVALID);
    assert_false(m->compiled);
    /* IoU before the cross-entropy the weights are for: a valid sum. */
    lo.weight_norm = NN_WEIGHT_NORM_SUM;
    lo.class_weights = cw;
    lo.num_class_weights = 3;
    nn_loss two[2] = {IOU, SCCE};
    float w2[2] = {1, 1};
    assert_int_equal(nn_model_compile_weighted(m, opt, 2, two, w2, &lo), NN_OK);
    assert_int_equal(m->loss_opts.num_class_weights, 3);
    /* The model keeps its own copy of the weights. */
    assert_true(m->loss_opts.class_weights != cw);
    cw[0] = 100;
    assert_true(m->loss_opts.class_weights[0] == 1);
    /* Recompiling replaces them (ASan sees any leak). */
    lo.class_weights = NULL;
    lo.num_class_weights = 0;
    assert_int_equal(nn_model_compile(m, nn_sgd(NULL), SCCE, &lo), NN_OK);
    assert_null(m->loss_opts.class_weights);
    /* The copy's allocation failing leaves the model as it was. */
    lo.class_weights = cw;
    lo.num_class_weights = 3;
    nn_optimizer *o2 = nn_sgd(NULL);
    nn__debug_fail_alloc_after(1);
    assert_int_equal(nn_model_compile(m, o2, SCCE, &lo), NN_ERR_NOMEM);
    nn__debug_fail_alloc_after(0);
    assert_null(m->loss_opts.class_weights);
    nn_optimizer_free(o2);
    /* An older program's struct ends before the weights: defaults. */
    lo.size = offsetof(nn_loss_opts, class_weights);
    lo.pos_weight = NAN;
    assert_int_equal(nn_model_compile(m, nn_sgd(NULL), SCCE, &lo), NN_OK);
    assert_null(m->loss_opts.class_weights);
    assert_true(m->loss_opts.pos_weight == 1);
    nn_model_free(m);
}

/* Inputs [n, 4] and class ids from a fixed linear rule. */

/* ------------------------------------------------------------------ */
/* Decision metrics: precision/recall/F1, curves, thresholds            */
/* ------------------------------------------------------------------ */

static bool near(double a, double b) { return fabs(a - b) <= 1e-12; }

/* A matrix from counts [truth][predicted]. */
static nn_confusion *confusion_of(int k, const int64_t *counts)
{
    nn_confusion *cm = nn_confusion_create(k);
    memcpy(cm->counts, counts, (size_t)(k * k) * sizeof(int64_t));
    return cm;
}

/* scikit-learn's precision_recall_fscore_support, zero_division=0, on
 * the labels in truth or prediction, from the same counts. */
static void test_confusion_prf(void **state)
{
    (void)state;
    /* truth\pred: 0: {2, 1, 0}, 1: {1, 2, 0}, 2: {0, 1, 1}; class 3 in
     * neither (left out of the averages), class 4 only predicted. */
    const int64_t c[25] = {2, 1, 0, 0, 1, 1, 2, 0, 0, 0, 0, 1, 1,
                           0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    nn_confusion *cm = confusion_of(5, c);
    /* columns 3, 4, 1, 0, 1; rows 4, 3, 2, 0, 0; TP 2, 2, 1, 0, 0 */
    const double p[5] = {2.0 / 3, 0.5, 1, 0, 0}, r[5] = {0.5, 2.0 / 3, 0.5, 0, 0};
    const double f[5] = {4.0 / 7, 4.0 / 7, 2.0 / 3, 0, 0};
    for (int k = 0; k < 5; k++) {
        assert_true(near(nn_confusion_precision(cm, k), p[k]));
        assert_true(near(nn_confusion_recall(cm, k), r[k]));
        assert_true(near(nn_confusion_f1(cm, k), f[k]));
    }
    /* macro over classes 0, 1, 2, 4 */
    assert_true(near(nn_confusion_precision_avg(cm, NN_AVERAGE_MACRO),
                     (2.0 / 3 + 0.5 + 1 + 0) / 4));
    assert_true(near(nn_confusion_recall_avg(cm, NN_AVERAGE_MACRO),
                     (0.5 + 2.0 / 3 + 0.5 + 0) / 4));
    assert_true(near(nn_confusion_f1_avg(cm, NN_AVERAGE_MACRO),
                     (4.0 / 7 + 4.0 / 7 + 2.0 / 3) / 4));
    /* micro: TP 5 of 9 positions, all three */
    assert_true(near(nn_confusion_precision_avg(cm, NN_AVERAGE_MICRO), 5.0 / 9));
    assert_true(near(nn_confusion_recall_avg(cm, NN_AVERAGE_MICRO), 5.0 / 9));
    assert_true(near(nn_confusion_f1_avg(cm, NN_AVERAGE_MICRO), 5.0 / 9));
    /* weighted by the truth 4, 3, 2 (0 for class 4) */
    assert_true(near(nn_confusion_precision_avg(cm, NN_AVERAGE_WEIGHTED),
                     (4 * 2.0 / 3 + 3 * 0.5 + 2 * 1.0) / 9));
    assert_true(near(nn_confusion_recall_avg(cm, NN_AVERAGE_WEIGHTED),
                     5.0 / 9)); /* weighted recall is the accuracy */
    assert_true(near(nn_confusion_f1_avg(cm, NN_AVERAGE_WEIGHTED),
                     (4 * 4.0 / 7 + 3 * 4.0 / 7 + 2 * 2.0 / 3) / 9));
    /* F1 is the Dice of the class, but 0 where Dice is 0/0. */
    assert_true(near(nn_confusion_f1(cm, 1), nn_confusion_dice(cm, 1)));
    assert_true(isnan(nn_confusion_dice(cm, 3)) && nn_confusion_f1(cm, 3) == 0);
    /* Empty: 0 everywhere. */
    assert_int_equal(nn_confusion_reset(cm), NN_OK);
    assert_true(nn_confusion_precision(cm, 0) == 0);
    assert_true(nn_confusion_f1_avg(cm, NN_AVERAGE_MACRO) == 0);
    assert_true(nn_confusion_recall_avg(cm, NN_AVERAGE_WEIGHTED) == 0);
    assert_true(nn_confusion_precision_avg(cm, NN_AVERAGE_MICRO) == 0);
    /* Errors. */
    assert_true(isnan(nn_confusion_recall(cm, 5)));
    assert_non_null(strstr(nn_last_error(), "nn_confusion_recall: no class 5"));
    assert_true(isnan(nn_confusion_f1(NULL, 0)));
    assert_true(isnan(nn_confusion_precision_avg(cm, (nn_average)3)));
    assert_non_null(strstr(nn_last_error(), "average 3"));
    assert_true(isnan(nn_confusion_f1_avg(NULL, NN_AVERAGE_MACRO)));
    nn_confusion_free(cm);
}

/* scikit-learn's documented example: y (0, 0, 1, 1), scores (0.1, 0.4,
 * 0.35, 0.8): ROC fpr (0, 0, .5, .5, 1), tpr (0, .5, .5, 1, 1) at
 * thresholds (inf, .8, .4, .35, .1), AUC 0.75; precision (1, .5, 2/3,
 * .5) and recall (.5, .5, 1, 1) at (.8, .4, .35, .1), AP 5/6. */
static void test_curve_hand_computed(void **state)
{
    (void)state;
    const float s[4] = {0.1f, 0.4f, 0.35f, 0.8f}, y[4] = {0, 0, 1, 1};
    nn_curve *c = nn_curve_create(s, y, 4);
    assert_non_null(c);
    assert_int_equal(nn_curve_size(c), 4);
    assert_int_equal(nn_curve_positives(c), 2);
    assert_int_equal(nn_curve_negatives(c), 2);
    double fpr[5], tpr[5], pr[4], rc[4];
    float th[5];
    assert_int_equal(nn_curve_roc(c, fpr, tpr, th, 5), NN_OK);
    const double wf[5] = {0, 0, 0.5, 0.5, 1}, wt[5] = {0, 0.5, 0.5, 1, 1};
    const float wth[5] = {INFINITY, 0.8f, 0.4f, 0.35f, 0.1f};
    for (int k = 0; k < 5; k++)
        assert_true(fpr[k] == wf[k] && tpr[k] == wt[k] && th[k] == wth[k]);
    assert_true(nn_curve_roc_auc(c) == 0.75);
    assert_int_equal(nn_curve_pr(c, pr, rc, th, 4), NN_OK);
    const double wp[4] = {1, 0.5, 2.0 / 3, 0.5}, wr[4] = {0.5, 0.5, 1, 1};
    for (int k = 0; k < 4; k++)
        assert_true(near(pr[k], wp[k]) && rc[k] == wr[k] && th[k] == wth[k + 1]);
    assert_true(near(nn_curve_average_precision(c), 0.5 + 0.5 * 2.0 / 3));
    /* Outputs may be NULL; too little room is an error. */
    assert_int_equal(nn_curve_roc(c, NULL, tpr, NULL, 5), NN_OK);
    assert_int_equal(nn_curve_roc(c, fpr, tpr, th, 4), NN_ERR_INVALID);
    assert_int_equal(nn_curve_pr(c, pr, NULL, NULL, 3), NN_ERR_INVALID);
    /* The decision at a threshold between scores, above and below all. */
    nn_binary_report r = report_init();
    assert_int_equal(nn_curve_report(c, 0.37f, &r), NN_OK);
    assert_true(r.threshold == 0.37f);
    assert_true(r.tp == 1 && r.fp == 1 && r.tn == 1 && r.fn == 1);
    assert_true(r.precision == 0.5 && r.recall == 0.5 && r.f1 == 0.5 &&
                r.accuracy == 0.5);
    assert_true(r.roc_auc == 0.75 && near(r.average_precision, 5.0 / 6));
    assert_int_equal(nn_curve_report(c, 0.35f, &r), NN_OK); /* >= */
    assert_true(r.tp == 2 && r.fp == 1);
    assert_int_equal(nn_curve_report(c, 0.9f, &r), NN_OK);
    assert_true(r.tp == 0 && r.fp == 0 && r.precision == 0 && r.f1 == 0);
    assert_int_equal(nn_curve_report(c, -1, &r), NN_OK);
    assert_true(r.tp == 2 && r.fp == 2 && r.recall == 1);
    /* An older, shorter report gets the members that fit. */
    r = report_init();
    r.size = offsetof(nn_binary_report, roc_auc);
    assert_int_equal(nn_curve_report(c, 0.37f, &r), NN_OK);
    assert_true(r.f1 == 0.5 && r.accuracy == 0.5);
    uint64_t bits;
    memcpy(&bits, &r.roc_auc, sizeof bits);
    assert_true(bits == UINT64_MAX); /* untouched */
    r.size = 4;
    assert_int_equal(nn_curve_report(c, 0.37f, &r), NN_ERR_INVALID);
    assert_int_equal(nn_curve_report(c, NAN, &r), NN_ERR_INVALID);
    assert_int_equal(nn_curve_report(c, 0.5f, NULL), NN_ERR_INVALID);
    nn_curve_free(c);
}

/* Ties make one point: a diagonal step of the ROC (half credit, as
 * scikit-learn's trapezoids), one step of the precision-recall curve. */
static void test_curve_ties_and_extremes(void **state)
{
    (void)state;
    const float s[4] = {0.5f, 0.5f, 0.5f, 0.2f}, y[4] = {1, 0, 1, 0};
    nn_curve *c = nn_curve_create(s, y, 4);
    assert_int_equal(nn_curve_size(c), 2);
    /* (0, 0) -> (1/2, 1) -> (1, 1): 1/4 + 1/2 */
    assert_true(nn_curve_roc_auc(c) == 0.75);
    assert_true(near(nn_curve_average_precision(c), 2.0 / 3));
    nn_curve_free(c);
    /* Perfect, inverted and constant scores. */
    const float up[6] = {0.1f, 0.2f, 0.3f, 0.7f, 0.8f, 0.9f};
    const float yl[6] = {0, 0, 0, 1, 1, 1}, flat[6] = {0, 0, 0, 0, 0, 0};
    float down[6];
    for (int k = 0; k < 6; k++) down[k] = -up[k];
    c = nn_curve_create(up, yl, 6);
    assert_true(nn_curve_roc_auc(c) == 1 && nn_curve_average_precision(c) == 1);
    nn_curve_free(c);
    c = nn_curve_create(down, yl, 6);
    assert_true(nn_curve_roc_auc(c) == 0);
    /* AP of the worst ranking: the positives come last, 1/4, 2/5, 3/6 */
    assert_true(near(nn_curve_average_precision(c),
                     (1.0 / 4 + 2.0 / 5 + 3.0 / 6) / 3));
    nn_curve_free(c);
    c = nn_curve_create(flat, yl, 6);
    assert_true(nn_curve_roc_auc(c) == 0.5);
    assert_true(nn_curve_average_precision(c) == 0.5); /* the prevalence */
    nn_curve_free(c);
    /* A random classifier: AUC near 1/2 (n = 20000: sd about 0.004). */
    enum { NR = 20000 };
    float *rs = malloc(NR * sizeof *rs), *ry = malloc(NR * sizeof *ry);
    fill_uniform(rs, NR, 0, 1, 300);
    fill_uniform(ry, NR, 0, 1, 301);
    for (int k = 0; k < NR; k++) ry[k] = ry[k] < 0.3f;
    c = nn_curve_create(rs, ry, NR);
    double auc = nn_curve_roc_auc(c);
    print_message("random scores: ROC AUC %.4f, AP %.4f\n", auc,
                  nn_curve_average_precision(c));
    assert_true(fabs(auc - 0.5) < 0.02);
    assert_true(fabs(nn_curve_average_precision(c) - 0.3) < 0.02);
    nn_curve_free(c);
    free(rs), free(ry);
    /* One class only: ROC AUC undefined, with the reason. */
    const float ones[3] = {1, 1, 1}, zeros[3] = {0, 0, 0}, s3[3] = {0.2f, 0.6f, 0.4f};
    c = nn_curve_create(s3, ones, 3);
    assert_true(isnan(nn_curve_roc_auc(c)));
    assert_non_null(strstr(nn_last_error(), "3 positive and 0 negative"));
    assert_true(nn_curve_average_precision(c) == 1);
    double fpr[4], tpr[4];
    assert_int_equal(nn_curve_roc(c, fpr, tpr, NULL, 4), NN_OK);
    assert_true(isnan(fpr[2]) && tpr[2] == 2.0 / 3);
    nn_curve_free(c);
    c = nn_curve_create(s3, zeros, 3);
    assert_true(isnan(nn_curve_average_precision(c)));
    assert_non_null(strstr(nn_last_error(), "without positive"));
    nn_curve_free(c);
    /* Bad input names the index. */
    float bad_s[3] = {0.2f, NAN, 0.1f}, bad_y[3] = {0, 1, 0.5f};
    assert_null(nn_curve_create(bad_s, ones, 3));
    assert_int_equal(nn_last_status(), NN_ERR_NUMERIC);
    assert_non_null(strstr(nn_last_error(), "score 1 is nan"));
    assert_null(nn_curve_create(s3, bad_y, 3));
    assert_non_null(strstr(nn_last_error(), "label 2 is 0.5"));
    assert_null(nn_curve_create(s3, ones, 0));
    assert_null(nn_curve_create(NULL, ones, 3));
    assert_int_equal(nn_curve_size(NULL), -1);
    assert_true(isnan(nn_curve_roc_auc(NULL)));
    nn_curve_free(NULL);
    for (int k = 1; k <= 4; k++) {
        nn__debug_fail_alloc_after(k);
        assert_null(nn_curve_create(s3, ones, 3));
        nn__debug_fail_alloc_after(0);
    }
}

/* Six parts, four defective: recall at .9 .8 .7 .6 .5 .4 is 1/4, 1/4,
 * 2/4, 3/4, 3/4, 1; precision 1, 1/2, 2/3, 3/4, 3/5, 4/6. */
static void test_threshold_selection(void **state)
{
    (void)state;
    const float s[6] = {0.9f, 0.8f, 0.7f, 0.6f, 0.5f, 0.4f};
    const float y[6] = {1, 0, 1, 1, 0, 1};
    nn_curve *c = nn_curve_create(s, y, 6);
    nn_binary_report r = report_init();
    /* The largest threshold that keeps the recall. */
    assert_int_equal(nn_curve_threshold_for_recall(c, 0.75, &r), NN_OK);
    assert_true(r.threshold == 0.6f && r.recall == 0.75 && r.precision == 0.75);
    assert_true(r.tp == 3 && r.fp == 1 && r.fn == 1 && r.tn == 1);
    assert_int_equal(nn_curve_threshold_for_recall(c, 0.5, &r), NN_OK);
    assert_true(r.threshold == 0.7f && near(r.precision, 2.0 / 3));
    assert_int_equal(nn_curve_threshold_for_recall(c, 1, &r), NN_OK);
    assert_true(r.threshold == 0.4f && r.fn == 0); /* no defect shipped */
    assert_int_equal(nn_curve_threshold_for_recall(c, 0.2, &r), NN_OK);
    assert_true(r.threshold == 0.9f);
    /* The smallest threshold that keeps the precision (precision falls
     * and rises again: 2/3 is met at .7 and again at .4). */
    assert_int_equal(nn_curve_threshold_for_precision(c, 0.75, &r), NN_OK);
    assert_true(r.threshold == 0.6f && r.recall == 0.75);
    assert_int_equal(nn_curve_threshold_for_precision(c, 0.66, &r), NN_OK);
    assert_true(r.threshold == 0.4f && r.recall == 1);
    assert_int_equal(nn_curve_threshold_for_precision(c, 0.8, &r), NN_OK);
    assert_true(r.threshold == 0.9f && r.recall == 0.25);
    assert_int_equal(nn_curve_threshold_for_precision(c, 1, &r), NN_OK);
    assert_true(r.threshold == 0.9f);
    /* Targets outside (0, 1]. */
    assert_int_equal(nn_curve_threshold_for_recall(c, 0, &r), NN_ERR_INVALID);
    assert_int_equal(nn_curve_threshold_for_recall(c, 1.5, &r),
                     NN_ERR_INVALID);
    assert_int_equal(nn_curve_threshold_for_precision(c, NAN, &r),
                     NN_ERR_INVALID);
    assert_int_equal(nn_curve_threshold_for_recall(NULL, 0.5, &r),
                     NN_ERR_INVALID);
    nn_curve_free(c);
    /* Ties: the tied defective and good part are flagged together. */
    const float st[3] = {0.9f, 0.9f, 0.5f}, yt[3] = {1, 0, 1};
    c = nn_curve_create(st, yt, 3);
    assert_int_equal(nn_curve_threshold_for_recall(c, 0.5, &r), NN_OK);
    assert_true(r.threshold == 0.9f && r.tp == 1 && r.fp == 1);
    assert_int_equal(nn_curve_threshold_for_precision(c, 0.6, &r), NN_OK);
    assert_true(r.threshold == 0.5f && near(r.precision, 2.0 / 3));
    /* Unreachable: the message gives the best the scores reach. */
    assert_int_equal(nn_curve_threshold_for_precision(c, 0.9, &r),
                     NN_ERR_INVALID);
    assert_non_null(strstr(nn_last_error(), "the best these scores reach is "
                                            "0.666667 (recall 1, threshold "
                                            "0.5)"));
    nn_curve_free(c);
    /* Every part defective: any threshold is precise; the smallest. */
    const float all[3] = {1, 1, 1};
    c = nn_curve_create(s, all, 3);
    assert_int_equal(nn_curve_threshold_for_precision(c, 1, &r), NN_OK);
    assert_true(r.threshold == 0.7f && r.recall == 1);
    assert_int_equal(nn_curve_threshold_for_recall(c, 1, &r), NN_OK);
    assert_true(r.threshold == 0.7f);
    nn_curve_free(c);
    /* No defective part: nothing to find. */
    const float none[3] = {0, 0, 0};
    c = nn_curve_create(s, none, 3);
    assert_int_equal(nn_curve_threshold_for_recall(c, 0.9, &r),
                     NN_ERR_INVALID);
    assert_non_null(strstr(nn_last_error(), "no positive sample"));
    assert_int_equal(nn_curve_threshold_for_precision(c, 0.5, &r),
                     NN_ERR_INVALID);
    nn_curve_free(c);
}

/* The score of NN_ALL_BUT(k) sums the other classes' probabilities, so
 * a confident good part keeps a small score instead of 1 - p_k's
 * rounding; labels follow the view. */
static void test_binary_scores(void **state)
{
    (void)state;
    const float out[6] = {0.99999994f, 3e-8f, 2e-8f, 0.2f, 0.5f, 0.3f};
    const float ids[2] = {0, 2}, z[2] = {30, -2}, m[2] = {1, 0};
    nn_loss_batch b = {.batch = 2, .positions = 1, .classes = 3, .out = out,
                       .y = ids, .sparse = true};
    nn_scores *sc = nn__scores_new(NN_ALL_BUT(0), 4);
    assert_int_equal(nn__scores_add(sc, &b, false), NN_OK);
    assert_true(sc->score[0] == (float)((double)3e-8f + (double)2e-8f) && sc->score[1] == 0.8f);
    assert_true(sc->label[0] == 0 && sc->label[1] == 1);
    /* Too many rows for the room planned: refused, nothing written. */
    b.batch = 2;
    assert_int_equal(nn__scores_add(sc, &b, false), NN_OK);
    assert_int_equal(nn__scores_add(sc, &b, false), NN_ERR_STATE);
    assert_int_equal(sc->n, 4);
    nn__scores_free(sc);
    /* One channel from logits: class 0 scores 1 - sigmoid(z) = sigmoid(-z)
     * without cancellation. */
    nn_loss_batch b1 = {.batch = 2, .positions = 1, .classes = 1, .out = z,
                        .y = m};
    sc = nn__scores_new(0, 2);
    assert_int_equal(nn__scores_add(sc, &b1, true), NN_OK);
    assert_true(sc->score[0] == (float)(1 / (1 + exp(30.0))));
    assert_true(sc->label[0] == 0 && sc->label[1] == 1);
    nn__scores_free(sc);
    nn__debug_fail_alloc_after(2);
    assert_null(nn__scores_new(1, 8));
    nn__debug_fail_alloc_after(0);
}

/* fit records precision, recall, F1 and ROC AUC per epoch; the last
 * epoch's validation values are evaluate_binary's on the same data. */

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cce_logits_grad),
        cmocka_unit_test(test_cce_probs_grad),
        cmocka_unit_test(test_bce_grad),
        cmocka_unit_test(test_probs_grad_matches_logits_grad),
        cmocka_unit_test(test_large_logits),
        cmocka_unit_test(test_invalid_labels),
        cmocka_unit_test(test_invalid_outputs_and_args),
        cmocka_unit_test(test_accumulates_and_optional_outputs),
        cmocka_unit_test(test_accuracy_counts),
        cmocka_unit_test(test_seg_crossentropy_per_pixel),
        cmocka_unit_test(test_seg_overlap_grads),
        cmocka_unit_test(test_seg_weighted_sums),
        cmocka_unit_test(test_seg_fused_logits),
        cmocka_unit_test(test_seg_overlap_values),
        cmocka_unit_test(test_seg_loss_errors),
        cmocka_unit_test(test_confusion_hand_computed),
        cmocka_unit_test(test_confusion_one_channel),
        cmocka_unit_test(test_confusion_errors),
        cmocka_unit_test(test_weighted_cce_grads),
        cmocka_unit_test(test_weighted_bce_grads),
        cmocka_unit_test(test_weighted_values),
        cmocka_unit_test(test_weighted_loss_errors),
        cmocka_unit_test(test_confusion_prf),
        cmocka_unit_test(test_curve_hand_computed),
        cmocka_unit_test(test_curve_ties_and_extremes),
        cmocka_unit_test(test_threshold_selection),
        cmocka_unit_test(test_binary_scores),
    };
    return cmocka_run_group_tests_name("loss", tests, NULL, NULL);
}

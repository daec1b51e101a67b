/* Losses and optimizers: values and gradients against double-precision
 * references written here, accuracy counts, label validation, Adam and SGD
 * trajectories on a hand-made model, option validation and slot state. */
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

#define CCE NN_LOSS_CATEGORICAL_CROSSENTROPY
#define SCCE NN_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY
#define BCE NN_LOSS_BINARY_CROSSENTROPY

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

static void fill_uniform(float *v, int n, float lo, float hi, uint64_t seed)
{
    nn_rng r;
    nn__rng_seed(&r, seed);
    for (int k = 0; k < n; k++) v[k] = lo + (hi - lo) * nn__rng_uniform(&r);
}

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
        assert_non_null(strstr(nn_last_error(), "row 1"));
    }
    const float bad_vals[] = {NAN, -0.5f, 2, INFINITY};
    for (size_t i = 0; i < sizeof bad_vals / sizeof *bad_vals; i++) {
        float y[6] = {1, 0, 0, 0, 1, 0};
        y[4] = bad_vals[i];
        assert_int_equal(nn__loss(CCE, 2, 3, z, z, y, d, &sum, &correct),
                         NN_ERR_INVALID);
        assert_non_null(strstr(nn_last_error(), "row 1"));
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
    assert_non_null(strstr(nn_last_error(), "row 1"));
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
    assert_int_equal(nn__loss_accuracy_denominator(CCE, 3, 3), 3);
    assert_int_equal(nn__loss_accuracy_denominator(SCCE, 3, 3), 3);

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
    assert_int_equal(nn__loss_accuracy_denominator(BCE, 2, 3), 6);
}

/* ------------------------------------------------------------------ */
/* A hand-made model: no graph code involved.                           */
/* ------------------------------------------------------------------ */

enum { NL = 3 };

typedef struct fake_model {
    nn_model m;
    nn_layer *ptrs[NL];
    nn_layer l[NL];
} fake_model;

static void add_param(nn_layer *l, int64_t n, bool trainable, bool grad)
{
    nn_param *p = &l->params[l->n_params++];
    snprintf(p->name, sizeof p->name, "p%d", l->n_params - 1);
    int64_t shape[1] = {n};
    float *v = nn__calloc((size_t)n, sizeof(float));
    float *g = grad ? nn__calloc((size_t)n, sizeof(float)) : NULL;
    assert_non_null(v);
    nn__tensor_view(&p->value, 1, shape, v);
    nn__tensor_view(&p->grad, 1, shape, g);
    p->trainable = trainable;
    for (int64_t k = 0; k < n; k++)
        v[k] = 0.5f * sinf((float)k + 3.0f * (float)(l->index * 4 + l->n_params));
}

/* Layer 0: kernel [12] and bias [4]; layer 1 frozen; layer 2: a trainable
 * [5], a non-trainable [5] and a trainable one without a gradient [2].
 * Slots: l0.p0, l0.p1, l2.p0. */
static fake_model *fake_new(void)
{
    fake_model *f = calloc(1, sizeof *f);
    f->m.n_layers = NL;
    f->m.layers = f->ptrs;
    for (int i = 0; i < NL; i++) {
        f->ptrs[i] = &f->l[i];
        f->l[i].index = i;
        f->l[i].model = &f->m;
        f->l[i].trainable = i != 1;
    }
    add_param(&f->l[0], 12, true, true);
    add_param(&f->l[0], 4, true, true);
    add_param(&f->l[1], 4, true, true);
    add_param(&f->l[2], 5, true, true);
    add_param(&f->l[2], 5, false, true);
    add_param(&f->l[2], 2, true, false);
    return f;
}

static void fake_free(fake_model *f)
{
    for (int i = 0; i < NL; i++)
        for (int j = 0; j < f->l[i].n_params; j++) {
            nn__free(f->l[i].params[j].value.data);
            nn__free(f->l[i].params[j].grad.data);
        }
    free(f);
}

enum { NS = 3 };
static nn_param *slot_param(fake_model *f, int k)
{
    return k == 0 ? &f->l[0].params[0]
                  : k == 1 ? &f->l[0].params[1] : &f->l[2].params[0];
}

/* Gradient of step t (1-based) for slot k; every param with a gradient
 * buffer gets one, including those the optimizer must skip. */
static void set_grads(fake_model *f, int t)
{
    for (int i = 0; i < NL; i++)
        for (int j = 0; j < f->l[i].n_params; j++) {
            nn_param *p = &f->l[i].params[j];
            for (int64_t e = 0; p->grad.data && e < p->grad.size; e++)
                p->grad.data[e] = (float)((j + 1) * 0.7 *
                                          sin(0.37 * (double)e + 1.3 * t + i));
        }
}

typedef struct ref_state {
    double w[NS][12], m[NS][12], v[NS][12];
    int64_t n[NS];
} ref_state;

static void ref_init(ref_state *r, fake_model *f)
{
    memset(r, 0, sizeof *r);
    for (int k = 0; k < NS; k++) {
        nn_param *p = slot_param(f, k);
        r->n[k] = p->value.size;
        for (int64_t e = 0; e < p->value.size; e++) r->w[k][e] = p->value.data[e];
    }
}

static void ref_adam_step(ref_state *r, fake_model *f, const nn_adam_opts *o,
                          int t)
{
    double b1 = o->beta1, b2 = o->beta2, lr = o->learning_rate,
           eps = o->epsilon;
    double bc1 = 1 - pow(b1, t), bc2 = 1 - pow(b2, t);
    for (int k = 0; k < NS; k++)
        for (int64_t e = 0; e < r->n[k]; e++) {
            double g = slot_param(f, k)->grad.data[e];
            double *m = &r->m[k][e], *v = &r->v[k][e], *w = &r->w[k][e];
            *m = b1 * *m + (1 - b1) * g;
            *v = b2 * *v + (1 - b2) * g * g;
            if (o->eps_mode == NN_ADAM_EPS_KERAS)
                *w -= lr * sqrt(bc2) / bc1 * *m / (sqrt(*v) + eps);
            else
                *w -= lr / bc1 * *m / (sqrt(*v) / sqrt(bc2) + eps);
        }
}

static void ref_sgd_step(ref_state *r, fake_model *f, const nn_sgd_opts *o)
{
    double lr = o->learning_rate, mu = o->momentum;
    for (int k = 0; k < NS; k++)
        for (int64_t e = 0; e < r->n[k]; e++) {
            double g = slot_param(f, k)->grad.data[e];
            double *v = &r->m[k][e], *w = &r->w[k][e];
            *v = mu * *v - lr * g;
            *w += o->nesterov ? mu * *v - lr * g : *v;
        }
}

static double max_diff(const ref_state *r, fake_model *f)
{
    double d = 0;
    for (int k = 0; k < NS; k++)
        for (int64_t e = 0; e < r->n[k]; e++)
            d = fmax(d, fabs(r->w[k][e] - slot_param(f, k)->value.data[e]));
    return d;
}

/* Copies of the parameters the optimizer must not touch. */
static void snapshot_frozen(fake_model *f, float *buf)
{
    memcpy(buf, f->l[1].params[0].value.data, 4 * sizeof(float));
    memcpy(buf + 4, f->l[2].params[1].value.data, 5 * sizeof(float));
    memcpy(buf + 9, f->l[2].params[2].value.data, 2 * sizeof(float));
}

enum { STEPS = 20 };

static void run_adam(const nn_adam_opts *o, const nn_adam_opts *ref_opts,
                     double *diff)
{
    fake_model *f = fake_new();
    nn_optimizer *opt = nn_adam(o);
    assert_non_null(opt);
    ref_state r;
    ref_init(&r, f);
    float frozen[11], after[11];
    snapshot_frozen(f, frozen);
    for (int t = 1; t <= STEPS; t++) {
        set_grads(f, t);
        assert_int_equal(nn__optimizer_step(opt, &f->m), NN_OK);
        ref_adam_step(&r, f, ref_opts, t);
    }
    *diff = max_diff(&r, f);
    assert_int_equal(nn_optimizer_iterations(opt), STEPS);
    assert_int_equal(opt->n_slots, NS);
    for (int k = 0; k < NS; k++) {
        assert_int_equal(opt->slot_size[k], r.n[k]);
        for (int64_t e = 0; e < r.n[k]; e++) {
            assert_true(fabs(opt->slot_m[k][e] - r.m[k][e]) < 1e-6);
            assert_true(fabs(opt->slot_v[k][e] - r.v[k][e]) < 1e-6);
        }
    }
    snapshot_frozen(f, after);
    assert_memory_equal(frozen, after, sizeof frozen);
    nn_optimizer_free(opt);
    fake_free(f);
}

static void test_adam_matches_reference(void **state)
{
    (void)state;
    nn_adam_opts keras = NN_ADAM_OPTS_INIT;
    keras.learning_rate = 0.01f;
    keras.epsilon = 1e-3f; /* large, so the two modes differ visibly */
    nn_adam_opts torch = keras;
    torch.eps_mode = NN_ADAM_EPS_TORCH;
    double d;
    run_adam(&keras, &keras, &d);
    assert_true(d < 2e-6);
    run_adam(&torch, &torch, &d);
    assert_true(d < 2e-6);
    /* The test can tell the modes apart. */
    run_adam(&torch, &keras, &d);
    assert_true(d > 1e-3);
    /* Defaults (NULL opts) are Keras': lr 1e-3, eps 1e-7. */
    nn_adam_opts def = NN_ADAM_OPTS_INIT;
    fake_model *f = fake_new();
    nn_optimizer *opt = nn_adam(NULL);
    assert_non_null(opt);
    assert_true(opt->adam.learning_rate == def.learning_rate &&
                opt->adam.beta1 == def.beta1 && opt->adam.beta2 == def.beta2 &&
                opt->adam.epsilon == def.epsilon &&
                opt->adam.eps_mode == def.eps_mode);
    ref_state r;
    ref_init(&r, f);
    for (int t = 1; t <= STEPS; t++) {
        set_grads(f, t);
        assert_int_equal(nn__optimizer_step(opt, &f->m), NN_OK);
        ref_adam_step(&r, f, &def, t);
    }
    assert_true(max_diff(&r, f) < 2e-6);
    nn_optimizer_free(opt);
    fake_free(f);
}

static void run_sgd(float momentum, int nesterov)
{
    nn_sgd_opts o = NN_SGD_OPTS_INIT;
    o.learning_rate = 0.1f;
    o.momentum = momentum;
    o.nesterov = nesterov;
    fake_model *f = fake_new();
    nn_optimizer *opt = nn_sgd(&o);
    assert_non_null(opt);
    ref_state r;
    ref_init(&r, f);
    float frozen[11], after[11];
    snapshot_frozen(f, frozen);
    for (int t = 1; t <= STEPS; t++) {
        set_grads(f, t);
        assert_int_equal(nn__optimizer_step(opt, &f->m), NN_OK);
        ref_sgd_step(&r, f, &o);
    }
    assert_true(max_diff(&r, f) < 1e-5);
    assert_null(opt->slot_v);
    /* The velocity is left at zero without momentum. */
    for (int k = 0; k < NS; k++)
        for (int64_t e = 0; e < r.n[k]; e++)
            assert_true(fabs(opt->slot_m[k][e] -
                             (momentum == 0 ? 0 : r.m[k][e])) < 1e-5);
    snapshot_frozen(f, after);
    assert_memory_equal(frozen, after, sizeof frozen);
    assert_int_equal(nn_optimizer_iterations(opt), STEPS);
    nn_optimizer_free(opt);
    fake_free(f);
}

static void test_sgd_matches_reference(void **state)
{
    (void)state;
    run_sgd(0, 0);
    run_sgd(0.9f, 0);
    run_sgd(0.9f, 1);
    run_sgd(0, 1); /* nesterov without momentum is plain SGD */
}

/* PyTorch's form (buf = mu*buf + g; w -= lr*buf) gives the same weights
 * while the learning rate is constant. */
static void test_sgd_equals_torch_form(void **state)
{
    (void)state;
    nn_sgd_opts o = NN_SGD_OPTS_INIT;
    o.learning_rate = 0.05f;
    o.momentum = 0.8f;
    fake_model *f = fake_new();
    nn_optimizer *opt = nn_sgd(&o);
    ref_state r;
    ref_init(&r, f);
    for (int t = 1; t <= STEPS; t++) {
        set_grads(f, t);
        assert_int_equal(nn__optimizer_step(opt, &f->m), NN_OK);
        for (int k = 0; k < NS; k++)
            for (int64_t e = 0; e < r.n[k]; e++) {
                double g = slot_param(f, k)->grad.data[e];
                r.m[k][e] = (double)o.momentum * r.m[k][e] + g;
                r.w[k][e] -= (double)o.learning_rate * r.m[k][e];
            }
    }
    assert_true(max_diff(&r, f) < 1e-5);
    nn_optimizer_free(opt);
    fake_free(f);
}

static void test_model_changed(void **state)
{
    (void)state;
    fake_model *f = fake_new();
    nn_optimizer *opt = nn_adam(NULL);
    set_grads(f, 1);
    assert_int_equal(nn__optimizer_step(opt, &f->m), NN_OK);
    /* A gradient appears for the param that had none: one more slot. */
    nn_param *p = &f->l[2].params[2];
    p->grad.data = nn__calloc(2, sizeof(float));
    float before[12];
    memcpy(before, f->l[0].params[0].value.data, sizeof before);
    assert_int_equal(nn__optimizer_step(opt, &f->m), NN_ERR_STATE);
    assert_memory_equal(before, f->l[0].params[0].value.data, sizeof before);
    assert_int_equal(nn_optimizer_iterations(opt), 1);
    nn__free(p->grad.data);
    p->grad.data = NULL;
    /* Same count, different size. */
    f->l[2].params[0].value.size = 4;
    assert_int_equal(nn__optimizer_step(opt, &f->m), NN_ERR_STATE);
    f->l[2].params[0].value.size = 5;
    assert_int_equal(nn__optimizer_step(opt, &f->m), NN_OK);
    assert_int_equal(nn__optimizer_count_slots(&f->m), NS);
    assert_int_equal(nn__optimizer_step(NULL, &f->m), NN_ERR_INVALID);
    assert_int_equal(nn__optimizer_step(opt, NULL), NN_ERR_INVALID);
    nn_optimizer_free(opt);
    fake_free(f);
}

static void test_slot_allocation_failure(void **state)
{
    (void)state;
    fake_model *f = fake_new();
    float before[12];
    memcpy(before, f->l[0].params[0].value.data, sizeof before);
    set_grads(f, 1);
    const bool adam_kind[2] = {true, false};
    for (int a = 0; a < 2; a++) {
        nn_optimizer *opt = adam_kind[a] ? nn_adam(NULL) : nn_sgd(NULL);
        assert_non_null(opt);
        int k;
        for (k = 1; k < 100; k++) {
            nn__debug_fail_alloc_after(k);
            nn_status s = nn__optimizer_step(opt, &f->m);
            nn__debug_fail_alloc_after(0);
            if (s == NN_OK) break;
            assert_int_equal(s, NN_ERR_NOMEM);
            assert_int_equal(opt->n_slots, 0);
            assert_null(opt->slot_m);
            assert_int_equal(nn_optimizer_iterations(opt), 0);
            assert_memory_equal(before, f->l[0].params[0].value.data,
                                sizeof before);
        }
        /* 3 arrays + one buffer per slot (two for Adam). */
        assert_int_equal(k, adam_kind[a] ? 3 + 2 * NS + 1 : 2 + NS + 1);
        nn_optimizer_free(opt);
        memcpy(f->l[0].params[0].value.data, before, sizeof before);
    }
    nn__debug_fail_alloc_after(1);
    assert_null(nn_adam(NULL));
    nn__debug_fail_alloc_after(1);
    assert_null(nn_sgd(NULL));
    nn__debug_fail_alloc_after(0);
    fake_free(f);
}

static void test_invalid_options(void **state)
{
    (void)state;
    const float bad_lr[] = {0, -1, NAN, INFINITY};
    for (size_t i = 0; i < sizeof bad_lr / sizeof *bad_lr; i++) {
        nn_adam_opts a = NN_ADAM_OPTS_INIT;
        a.learning_rate = bad_lr[i];
        assert_null(nn_adam(&a));
        assert_non_null(strstr(nn_last_error(), "learning_rate"));
        nn_sgd_opts s = NN_SGD_OPTS_INIT;
        s.learning_rate = bad_lr[i];
        assert_null(nn_sgd(&s));
    }
    const float bad_unit[] = {1, -0.1f, 1.5f, NAN};
    for (size_t i = 0; i < sizeof bad_unit / sizeof *bad_unit; i++) {
        nn_adam_opts a = NN_ADAM_OPTS_INIT;
        a.beta1 = bad_unit[i];
        assert_null(nn_adam(&a));
        a = (nn_adam_opts)NN_ADAM_OPTS_INIT;
        a.beta2 = bad_unit[i];
        assert_null(nn_adam(&a));
        nn_sgd_opts s = NN_SGD_OPTS_INIT;
        s.momentum = bad_unit[i];
        assert_null(nn_sgd(&s));
    }
    nn_adam_opts a = NN_ADAM_OPTS_INIT;
    a.epsilon = -1e-8f;
    assert_null(nn_adam(&a));
    a.epsilon = NAN;
    assert_null(nn_adam(&a));
    a = (nn_adam_opts)NN_ADAM_OPTS_INIT;
    a.eps_mode = (nn_adam_eps_mode)7;
    assert_null(nn_adam(&a));
    a = (nn_adam_opts)NN_ADAM_OPTS_INIT;
    a.size = 0;
    assert_null(nn_adam(&a));
    a.size = 4;
    assert_null(nn_adam(&a));
    nn_sgd_opts s = NN_SGD_OPTS_INIT;
    s.size = 0;
    assert_null(nn_sgd(&s));

    /* Edge values that are valid. */
    a = (nn_adam_opts)NN_ADAM_OPTS_INIT;
    a.beta1 = 0;
    a.beta2 = 0;
    a.epsilon = 0;
    nn_optimizer *o = nn_adam(&a);
    assert_non_null(o);
    nn_optimizer_free(o);
}

static void test_options_size(void **state)
{
    (void)state;
    /* An older program's struct stops before epsilon: what lies beyond
     * `size` is never read, defaults fill in. */
    nn_adam_opts a = NN_ADAM_OPTS_INIT;
    a.size = offsetof(nn_adam_opts, epsilon);
    a.learning_rate = 0.5f;
    a.epsilon = -3; /* invalid, but outside size */
    a.eps_mode = (nn_adam_eps_mode)99;
    nn_optimizer *o = nn_adam(&a);
    assert_non_null(o);
    assert_true(o->adam.learning_rate == 0.5f);
    assert_true(o->adam.epsilon == 1e-7f);
    assert_int_equal(o->adam.eps_mode, NN_ADAM_EPS_KERAS);
    assert_int_equal(o->adam.size, sizeof(nn_adam_opts));
    nn_optimizer_free(o);

    /* A newer program's larger struct: a zero tail (its options at their
     * defaults) is accepted, anything else refused. */
    struct {
        nn_sgd_opts s;
        char future[32];
    } big;
    memset(&big, 0, sizeof big);
    big.s = (nn_sgd_opts)NN_SGD_OPTS_INIT;
    big.s.size = sizeof big;
    big.s.momentum = 0.5f;
    big.s.nesterov = 5;
    o = nn_sgd(&big.s);
    assert_non_null(o);
    assert_true(o->sgd.momentum == 0.5f);
    assert_int_equal(o->sgd.nesterov, 1);
    nn_optimizer_free(o);
    big.future[31] = 1;
    assert_null(nn_sgd(&big.s));
    assert_int_equal(nn_last_status(), NN_ERR_INVALID);

    o = nn_sgd(NULL);
    nn_sgd_opts def = NN_SGD_OPTS_INIT;
    assert_true(o->sgd.learning_rate == def.learning_rate &&
                o->sgd.momentum == def.momentum &&
                o->sgd.nesterov == def.nesterov);
    assert_int_equal(o->kind, NN_OPTIM_SGD);
    nn_optimizer_free(o);
}

static void test_learning_rate_and_iterations(void **state)
{
    (void)state;
    nn_sgd_opts so = NN_SGD_OPTS_INIT;
    so.learning_rate = 0.1f;
    nn_optimizer *o = nn_sgd(&so);
    assert_int_equal(nn_optimizer_iterations(o), 0);
    assert_true(nn_optimizer_iterations(NULL) < 0);
    assert_int_equal(nn_optimizer_set_learning_rate(NULL, 0.1f),
                     NN_ERR_INVALID);
    const float bad[] = {0, -1, NAN, INFINITY};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(nn_optimizer_set_learning_rate(o, bad[i]),
                         NN_ERR_INVALID);
    assert_true(o->sgd.learning_rate == 0.1f);
    assert_int_equal(nn_optimizer_set_learning_rate(o, 0.05f), NN_OK);

    fake_model *f = fake_new();
    float w0 = f->l[0].params[0].value.data[3];
    set_grads(f, 1);
    float g = f->l[0].params[0].grad.data[3];
    assert_int_equal(nn__optimizer_step(o, &f->m), NN_OK);
    assert_true(f->l[0].params[0].value.data[3] == w0 - 0.05f * g);
    assert_int_equal(nn__optimizer_step(o, &f->m), NN_OK);
    assert_int_equal(nn_optimizer_iterations(o), 2);
    nn_optimizer_free(o);

    o = nn_adam(NULL);
    assert_int_equal(nn_optimizer_set_learning_rate(o, 0.25f), NN_OK);
    assert_true(o->adam.learning_rate == 0.25f);
    /* First Adam step moves each weight by about lr (m/sqrt(v) = sign g). */
    float before = f->l[2].params[0].value.data[1];
    g = f->l[2].params[0].grad.data[1];
    assert_int_equal(nn__optimizer_step(o, &f->m), NN_OK);
    float moved = before - f->l[2].params[0].value.data[1];
    assert_true(fabsf(moved - (g > 0 ? 0.25f : -0.25f)) < 1e-4f);
    nn_optimizer_free(o);
    fake_free(f);
}

static void test_free_and_ownership(void **state)
{
    (void)state;
    nn_optimizer_free(NULL);
    nn_optimizer *o = nn_adam(NULL);
    o->owned_by_model = true;
    nn_clear_error();
    nn_optimizer_free(o); /* refused: the model would dangle */
    assert_non_null(strstr(nn_last_error(), "belongs to a model"));
    assert_true(o->adam.learning_rate == 1e-3f); /* still alive */
    o->owned_by_model = false;
    nn_optimizer_free(o);
}

/* Big tensors take the parallel path: same result for any thread count,
 * equal to the elementwise reference. */
static void test_parallel_update_deterministic(void **state)
{
    (void)state;
    enum { N = 100003 };
    float *w1 = malloc(N * sizeof(float)), *w2 = malloc(N * sizeof(float));
    float *g = malloc(N * sizeof(float));
    float *m1 = calloc(N, sizeof(float)), *v1 = calloc(N, sizeof(float));
    float *m2 = calloc(N, sizeof(float)), *v2 = calloc(N, sizeof(float));
    fill_uniform(w1, N, -1, 1, 20);
    memcpy(w2, w1, N * sizeof(float));
    nn_adam_opts a = NN_ADAM_OPTS_INIT;
    nn_sgd_opts s = NN_SGD_OPTS_INIT;
    s.momentum = 0.9f;
    for (int t = 1; t <= 3; t++) {
        fill_uniform(g, N, -1, 1, 100 + (uint64_t)t);
        nn_set_num_threads(1);
        nn__adam_update(&a, t, w1, g, m1, v1, N);
        nn__sgd_update(&s, w1, g, m1 + 7, N - 7);
        nn_set_num_threads(2);
        nn__adam_update(&a, t, w2, g, m2, v2, N);
        nn__sgd_update(&s, w2, g, m2 + 7, N - 7);
    }
    nn_set_num_threads(0);
    assert_memory_equal(w1, w2, N * sizeof(float));
    assert_memory_equal(m1, m2, N * sizeof(float));
    free(w1), free(w2), free(g), free(m1), free(v1), free(m2), free(v2);
}

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
        cmocka_unit_test(test_adam_matches_reference),
        cmocka_unit_test(test_sgd_matches_reference),
        cmocka_unit_test(test_sgd_equals_torch_form),
        cmocka_unit_test(test_model_changed),
        cmocka_unit_test(test_slot_allocation_failure),
        cmocka_unit_test(test_invalid_options),
        cmocka_unit_test(test_options_size),
        cmocka_unit_test(test_learning_rate_and_iterations),
        cmocka_unit_test(test_free_and_ownership),
        cmocka_unit_test(test_parallel_update_deterministic),
    };
    return cmocka_run_group_tests_name("loss_optim", tests, NULL, NULL);
}

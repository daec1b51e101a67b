/* Gradient diagnostics and clipping: norms against direct computations
 * from nn_layer_weight_grad, update ratios, the finite check naming the
 * layer a NaN was injected at, clipping by value and by global norm seen
 * through an SGD lr = 1 step, verdicts on constructed chains (sigmoid ->
 * vanishing, scaled-up -> exploding, growth over the window), fit's
 * history columns, the summary table, invalid arguments and allocation
 * failures. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nn_internal.h"
#include "diag/diag.h"
#include "kernels/kernels.h"

/* ---------------- helpers ---------------- */

static uint64_t lcg = 12345;
static float frand(void) /* uniform in [-1, 1) */
{
    lcg = lcg * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)((lcg >> 40) / (double)(1ULL << 24)) * 2.0f - 1.0f;
}

static nn_tensor *rand_tensor(int rank, const int64_t *shape, float scale)
{
    nn_tensor *t = nn_tensor_create(rank, shape);
    assert_non_null(t);
    float *d = nn_tensor_data(t);
    for (int64_t i = 0; i < nn_tensor_size(t); i++) d[i] = scale * frand();
    return t;
}

/* One-hot labels [n, classes], class i % classes. */
static nn_tensor *one_hot_labels(int64_t n, int classes)
{
    int64_t shape[2] = {n, classes};
    nn_tensor *y = nn_tensor_create(2, shape);
    assert_non_null(y);
    for (int64_t i = 0; i < n; i++) nn_tensor_data(y)[i * classes + i % classes] = 1;
    return y;
}

/* Input(in) -> depth x Dense(width, act) named d0..d{depth-1} ->
 * Dense(classes, softmax) named "out"; kernels scaled by `scale`. */
static nn_model *chain(int in, int depth, int width, nn_activation act,
                       int classes, float scale, nn_optimizer *opt)
{
    nn_model *m = nn_model_create(7);
    assert_non_null(m);
    int shape[1] = {in};
    nn_layer *x = nn_input(m, 1, shape, NULL);
    assert_non_null(x);
    char name[16];
    for (int i = 0; i <= depth; i++) {
        nn_dense_opts o = NN_DENSE_OPTS_INIT;
        snprintf(name, sizeof name, "d%d", i);
        o.name = i < depth ? name : "out";
        o.activation = i < depth ? act : NN_ACT_SOFTMAX;
        x = nn_dense(m, x, i < depth ? width : classes, &o);
        assert_non_null(x);
        float *k = nn_tensor_data(nn_layer_weight(x, 0));
        for (int64_t j = 0; j < nn_tensor_size(nn_layer_weight(x, 0)); j++)
            k[j] *= scale;
    }
    if (!opt) opt = nn_sgd(NULL);
    assert_non_null(opt);
    assert_int_equal(nn_model_compile(m, opt, NN_LOSS_CATEGORICAL_CROSSENTROPY,
                                      NULL),
                     NN_OK);
    return m;
}

static double sumsq_ref(const nn_tensor *t)
{
    double s = 0;
    const float *d = nn_tensor_data_const(t);
    for (int64_t i = 0; i < nn_tensor_size(t); i++) s += (double)d[i] * d[i];
    return s;
}

static void assert_close(double got, double want, double rel)
{
    double tol = rel * fmax(fabs(want), 1e-30);
    if (!(fabs(got - want) <= tol))
        fail_msg("got %.10g, want %.10g (rel tol %g)", got, want, rel);
}

static void set_diag(nn_model *m, int record, int check)
{
    nn_diag_opts o = NN_DIAG_OPTS_INIT;
    o.record = record;
    o.check_finite = check;
    assert_int_equal(nn_model_set_diagnostics(m, &o), NN_OK);
}

static nn_health verdict(const nn_model *m, int window, const char **why)
{
    nn_grad_report *r;
    assert_int_equal(nn_model_grad_report(m, &r), NN_OK);
    nn_health h;
    static char text[NN_DIAG_WHY_MAX];
    const char *w;
    assert_int_equal(nn_grad_report_health(r, window, &h, &w), NN_OK);
    snprintf(text, sizeof text, "%s", w);
    if (why) *why = text;
    nn_grad_report_free(r);
    return h;
}

/* ---------------- numeric passes ---------------- */

static void test_sumsq_deterministic(void **state)
{
    (void)state;
    int64_t n = 3000001;
    float *x = malloc((size_t)n * sizeof *x);
    float *y = malloc((size_t)n * sizeof *y);
    assert_non_null(x);
    assert_non_null(y);
    long double ref = 0, refd = 0;
    for (int64_t i = 0; i < n; i++) {
        x[i] = frand();
        y[i] = frand();
        ref += (long double)x[i] * x[i];
        refd += ((long double)x[i] - y[i]) * ((long double)x[i] - y[i]);
    }
    int saved = nn_get_num_threads();
    nn_set_num_threads(1);
    double a = nn__sumsq(x, n), ad = nn__sumsq_diff(x, y, n);
    nn_set_num_threads(2);
    double b = nn__sumsq(x, n), bd = nn__sumsq_diff(x, y, n);
    nn_set_num_threads(saved);
    assert_true(a == b); /* bitwise: the order does not follow threads */
    assert_true(ad == bd);
    assert_close(a, (double)ref, 1e-12);
    assert_close(ad, (double)refd, 1e-12);
    assert_true(nn__all_finite(x, n));
    x[n - 7] = INFINITY;
    assert_false(nn__all_finite(x, n));
    x[n - 7] = NAN;
    assert_false(nn__all_finite(x, n));
    x[n - 7] = -FLT_MAX;
    assert_true(nn__all_finite(x, n));
    assert_true(nn__all_finite(x, 0));
    assert_true(nn__sumsq(x, 0) == 0);
    free(x);
    free(y);
}

/* ---------------- norms ---------------- */

/* The report's norms equal the L2 norms computed here from
 * nn_layer_weight_grad and nn_layer_weight, with and without recording. */
static void check_norms(nn_model *m, int expect_layers)
{
    nn_grad_report *r;
    assert_int_equal(nn_model_grad_report(m, &r), NN_OK);
    assert_int_equal(nn_grad_report_num_layers(r), expect_layers);
    double global = 0;
    int k = 0;
    for (int i = 0; i < nn_model_num_layers(m); i++) {
        nn_layer *l = nn_model_layer(m, i);
        if (nn_layer_num_weights(l) == 0) continue;
        assert_string_equal(nn_grad_report_layer_name(r, k), nn_layer_name(l));
        assert_int_equal(nn_grad_report_num_weights(r, k),
                         nn_layer_num_weights(l));
        double lg = 0, lw = 0;
        for (int j = 0; j < nn_layer_num_weights(l); j++) {
            double g2 = sumsq_ref(nn_layer_weight_grad(l, j));
            double w2 = sumsq_ref(nn_layer_weight(l, j));
            assert_close(nn_grad_report_grad_norm(r, k, j), sqrt(g2), 1e-12);
            assert_close(nn_grad_report_weight_norm(r, k, j), sqrt(w2), 1e-12);
            lg += g2;
            lw += w2;
        }
        assert_close(nn_grad_report_grad_norm(r, k, -1), sqrt(lg), 1e-12);
        assert_close(nn_grad_report_weight_norm(r, k, -1), sqrt(lw), 1e-12);
        global += lg;
        k++;
    }
    assert_int_equal(k, expect_layers);
    assert_true(global > 0);
    assert_close(nn_grad_report_global_norm(r), sqrt(global), 1e-12);
    nn_grad_report_free(r);
}

static void test_norms_match_direct(void **state)
{
    (void)state;
    nn_model *m = chain(6, 3, 8, NN_ACT_RELU, 4, 1.0f, NULL);
    int64_t xs[2] = {16, 6};
    nn_tensor *x = rand_tensor(2, xs, 1.0f);
    nn_tensor *y = one_hot_labels(16, 4);
    float loss;
    /* measured on demand: diagnostics off */
    assert_int_equal(nn_model_backward(m, x, y, 1, &loss, NULL), NN_OK);
    check_norms(m, 4);
    /* recorded by the step */
    set_diag(m, 1, 0);
    assert_int_equal(nn_model_backward(m, x, y, 1, &loss, NULL), NN_OK);
    check_norms(m, 4);
    nn_grad_report *r;
    assert_int_equal(nn_model_grad_report(m, &r), NN_OK);
    assert_int_equal(nn_grad_report_step(r), 0);
    assert_true(isnan(nn_grad_report_update_ratio(r, 0, -1))); /* no update */
    nn_grad_report_free(r);
    nn_tensor_free(x);
    nn_tensor_free(y);
    nn_model_free(m);
}

/* A conv network: Conv2D -> MaxPool -> Flatten -> Dense; the recorded
 * norms still equal the direct ones and skip the layers without weights. */
static void test_norms_conv(void **state)
{
    (void)state;
    nn_model *m = nn_model_create(3);
    int shape[3] = {8, 8, 2};
    nn_layer *x = nn_input(m, 3, shape, NULL);
    nn_conv2d_opts co = NN_CONV2D_OPTS_INIT;
    co.activation = NN_ACT_RELU;
    x = nn_conv2d(m, x, 4, 3, 3, &co);
    x = nn_maxpool2d(m, x, 2, 2, NULL);
    x = nn_flatten(m, x, NULL);
    nn_dense_opts d = NN_DENSE_OPTS_INIT;
    d.activation = NN_ACT_SOFTMAX;
    assert_non_null(nn_dense(m, x, 3, &d));
    assert_int_equal(nn_model_compile(m, nn_adam(NULL),
                                      NN_LOSS_CATEGORICAL_CROSSENTROPY, NULL),
                     NN_OK);
    set_diag(m, 1, 1);
    int64_t xs[4] = {5, 8, 8, 2};
    nn_tensor *xt = rand_tensor(4, xs, 1.0f);
    nn_tensor *y = one_hot_labels(5, 3);
    assert_int_equal(nn_model_backward(m, xt, y, 1, NULL, NULL), NN_OK);
    check_norms(m, 2);
    assert_int_equal(nn_model_train_batch(m, xt, y, NULL, NULL), NN_OK);
    nn_grad_report *r;
    assert_int_equal(nn_model_grad_report(m, &r), NN_OK);
    assert_int_equal(nn_grad_report_step(r), 1);
    for (int k = 0; k < 2; k++) {
        double u = nn_grad_report_update_ratio(r, k, 0);
        assert_true(u > 0 && u < 1);
    }
    nn_grad_report_free(r);
    nn_tensor_free(xt);
    nn_tensor_free(y);
    nn_model_free(m);
}

/* SGD lr = 0.1, no momentum: the update of a weight is 0.1 * g, so its
 * ratio is 0.1 * ||g|| / ||w before||; the weight norm is taken after. */
static void test_update_ratio(void **state)
{
    (void)state;
    nn_sgd_opts so = NN_SGD_OPTS_INIT;
    so.learning_rate = 0.1f;
    nn_model *m = chain(5, 2, 6, NN_ACT_RELU, 3, 1.0f, nn_sgd(&so));
    set_diag(m, 1, 0);
    int64_t xs[2] = {8, 5};
    nn_tensor *x = rand_tensor(2, xs, 1.0f);
    nn_tensor *y = one_hot_labels(8, 3);
    double wb[3][2];
    for (int k = 0; k < 3; k++)
        for (int j = 0; j < 2; j++)
            wb[k][j] = sumsq_ref(nn_layer_weight(nn_model_layer(m, k + 1), j));
    assert_int_equal(nn_model_train_batch(m, x, y, NULL, NULL), NN_OK);
    nn_grad_report *r;
    assert_int_equal(nn_model_grad_report(m, &r), NN_OK);
    for (int k = 0; k < 3; k++) {
        nn_layer *l = nn_model_layer(m, k + 1);
        double u_all = 0, w_all = 0;
        for (int j = 0; j < 2; j++) {
            double g2 = sumsq_ref(nn_layer_weight_grad(l, j));
            u_all += 0.01 * g2;
            w_all += wb[k][j];
            if (wb[k][j] > 0)
                assert_close(nn_grad_report_update_ratio(r, k, j),
                             0.1 * sqrt(g2) / sqrt(wb[k][j]), 1e-5);
            assert_close(nn_grad_report_weight_norm(r, k, j),
                         sqrt(sumsq_ref(nn_layer_weight(l, j))), 1e-12);
        }
        assert_close(nn_grad_report_update_ratio(r, k, -1),
                     sqrt(u_all) / sqrt(w_all), 1e-5);
    }
    nn_grad_report_free(r);
    nn_tensor_free(x);
    nn_tensor_free(y);
    nn_model_free(m);
}

/* ---------------- the finite check ---------------- */

static void test_nonfinite_forward_weight(void **state)
{
    (void)state;
    nn_model *m = chain(4, 4, 6, NN_ACT_RELU, 3, 1.0f, NULL);
    int64_t xs[2] = {6, 4};
    nn_tensor *x = rand_tensor(2, xs, 1.0f);
    nn_tensor *y = one_hot_labels(6, 3);
    nn_layer *d2 = nn_model_find_layer(m, "d2");
    nn_tensor_data(nn_layer_weight(d2, 0))[5] = NAN;
    float before = nn_tensor_data(nn_layer_weight(nn_model_find_layer(m, "d0"), 0))[0];
    set_diag(m, 1, 1);
    assert_int_equal(nn_model_train_batch(m, x, y, NULL, NULL), NN_ERR_NUMERIC);
    const char *msg = nn_last_error();
    assert_non_null(strstr(msg, "'d2'"));
    assert_non_null(strstr(msg, "NaN"));
    assert_non_null(strstr(msg, "forward"));
    /* stopped before the update */
    assert_int_equal(nn_optimizer_iterations(m->opt), 0);
    assert_true(nn_tensor_data(nn_layer_weight(nn_model_find_layer(m, "d0"), 0))[0] ==
                before);
    const char *why;
    assert_int_equal(verdict(m, 0, &why), NN_HEALTH_NONFINITE);
    assert_non_null(strstr(why, "'d2'"));
    assert_int_equal(verdict(m, 1, NULL), NN_HEALTH_NONFINITE);
    nn_tensor_free(x);
    nn_tensor_free(y);
    nn_model_free(m);
}

static void test_nonfinite_forward_input(void **state)
{
    (void)state;
    nn_model *m = chain(4, 2, 6, NN_ACT_RELU, 3, 1.0f, NULL);
    int64_t xs[2] = {6, 4};
    nn_tensor *x = rand_tensor(2, xs, 1.0f);
    nn_tensor *y = one_hot_labels(6, 3);
    nn_tensor_data(x)[9] = -INFINITY;
    set_diag(m, 0, 1);
    assert_int_equal(nn_model_train_batch(m, x, y, NULL, NULL), NN_ERR_NUMERIC);
    /* Refused at the input, before any pass: the sample of x is named. */
    assert_non_null(
        strstr(nn_last_error(), "x holds -Inf in sample 2 (value 1 of"));
    assert_int_equal(nn_optimizer_iterations(m->opt), 0);
    nn_tensor_free(x);
    nn_tensor_free(y);
    nn_model_free(m);
}

/* The backward check in isolation: after a clean backward pass, values
 * are poked into the gradients and the hook must name the first one in
 * backward order: a layer's output gradient (complete before it runs),
 * then its weight gradients, layers from the output down. */
static void test_nonfinite_backward_order(void **state)
{
    (void)state;
    nn_model *m = chain(4, 3, 6, NN_ACT_RELU, 3, 1.0f, NULL);
    int64_t xs[2] = {6, 4};
    nn_tensor *x = rand_tensor(2, xs, 1.0f);
    nn_tensor *y = one_hot_labels(6, 3);
    set_diag(m, 0, 1);
    assert_int_equal(nn_model_backward(m, x, y, 1, NULL, NULL), NN_OK);
    nn_layer *d0 = nn_model_find_layer(m, "d0");
    nn_layer *d1 = nn_model_find_layer(m, "d1");
    nn_layer *d2 = nn_model_find_layer(m, "d2");
    nn_tensor_data(nn_layer_weight_grad(d0, 0))[3] = NAN;
    assert_int_equal(nn__diag_after_backward(m, m->ctx, 6, false),
                     NN_ERR_NUMERIC);
    assert_non_null(strstr(nn_last_error(), "gradient of 'kernel' of layer 'd0'"));
    nn_tensor_data(nn_layer_weight_grad(d1, 1))[0] = INFINITY;
    assert_int_equal(nn__diag_after_backward(m, m->ctx, 6, false),
                     NN_ERR_NUMERIC);
    assert_non_null(strstr(nn_last_error(), "+Inf at index 0 of the gradient "
                                            "of 'bias' of layer 'd1'"));
    m->ctx->dact[d2->index][7] = NAN; /* d2's output gradient */
    assert_int_equal(nn__diag_after_backward(m, m->ctx, 6, false),
                     NN_ERR_NUMERIC);
    assert_non_null(strstr(nn_last_error(), "output gradient of layer 'd2'"));
    assert_non_null(strstr(nn_last_error(), "backward pass of step 1"));
    nn_tensor_free(x);
    nn_tensor_free(y);
    nn_model_free(m);
}

/* A deep linear chain with large kernels on tiny inputs: the forward
 * signal stays finite, the gradient overflows on its way back. The check
 * stops the step in the backward pass, before any update; without it the
 * step would write Inf/NaN into the weights. */
static void test_nonfinite_backward_overflow(void **state)
{
    (void)state;
    for (int check = 1; check >= 0; check--) {
        nn_model *m = chain(32, 24, 32, NN_ACT_NONE, 10, 150.0f, NULL);
        int64_t xs[2] = {8, 32};
        nn_tensor *x = rand_tensor(2, xs, 1e-30f);
        nn_tensor *y = one_hot_labels(8, 10);
        set_diag(m, 1, check);
        nn_status s = nn_model_train_batch(m, x, y, NULL, NULL);
        const float *k0 = nn_tensor_data(nn_layer_weight(nn_model_find_layer(m, "d0"), 0));
        if (check) {
            assert_int_equal(s, NN_ERR_NUMERIC);
            assert_non_null(strstr(nn_last_error(), "backward pass"));
            assert_non_null(strstr(nn_last_error(), "output gradient of layer 'd"));
            assert_true(isfinite(k0[0]));
            assert_int_equal(nn_optimizer_iterations(m->opt), 0);
        } else {
            assert_int_equal(s, NN_OK);
            assert_false(isfinite(k0[0]) && isfinite(k0[1]) && isfinite(k0[2]));
            assert_int_equal(verdict(m, 0, NULL), NN_HEALTH_NONFINITE);
        }
        nn_tensor_free(x);
        nn_tensor_free(y);
        nn_model_free(m);
    }
}

/* fit's stop_on_nonfinite names the layer; the model's own settings
 * (off) come back afterwards. */
static void test_fit_stops_on_nonfinite(void **state)
{
    (void)state;
    nn_model *m = chain(4, 4, 6, NN_ACT_RELU, 3, 1.0f, NULL);
    int64_t xs[2] = {40, 4};
    nn_tensor *x = rand_tensor(2, xs, 1.0f);
    nn_tensor *y = one_hot_labels(40, 3);
    nn_tensor_data(nn_layer_weight(nn_model_find_layer(m, "d1"), 1))[2] = INFINITY;
    nn_fit_opts fo = NN_FIT_OPTS_INIT;
    fo.epochs = 2;
    fo.batch_size = 8;
    fo.stop_on_nonfinite = 1;
    fo.record_grad_norm = 2;
    nn_history *h = NULL;
    assert_int_equal(nn_model_fit(m, x, y, &fo, &h), NN_ERR_NUMERIC);
    assert_non_null(strstr(nn_last_error(), "'d1'"));
    assert_int_equal(nn_optimizer_iterations(m->opt), 0);
    /* the failing step is in the per-step history */
    assert_non_null(h);
    assert_int_equal(nn_history_epochs(h), 0);
    assert_int_equal(nn_history_num_steps(h), 1);
    assert_true(nn_history_step_get(h, NN_METRIC_HEALTH, 0) == NN_HEALTH_NONFINITE);
    nn_history_free(h);
    /* off again: the loss still refuses the non-finite logits, but cannot
     * say where they came from */
    fo.stop_on_nonfinite = 0;
    fo.record_grad_norm = 0;
    assert_int_equal(nn_model_fit(m, x, y, &fo, NULL), NN_ERR_NUMERIC);
    assert_non_null(strstr(nn_last_error(), "loss"));
    assert_null(strstr(nn_last_error(), "'d1'"));
    nn_tensor_free(x);
    nn_tensor_free(y);
    nn_model_free(m);
}

/* ---------------- clipping ---------------- */

typedef struct grads {
    int n;
    nn_layer *layer[16];
    int idx[16];
    float *g[16], *w[16];
    int64_t size[16];
} grads;

static void snapshot(nn_model *m, grads *s)
{
    s->n = 0;
    for (int i = 0; i < nn_model_num_layers(m); i++) {
        nn_layer *l = nn_model_layer(m, i);
        for (int j = 0; j < nn_layer_num_weights(l); j++) {
            nn_tensor *g = nn_layer_weight_grad(l, j), *w = nn_layer_weight(l, j);
            int k = s->n++;
            s->layer[k] = l;
            s->idx[k] = j;
            s->size[k] = nn_tensor_size(w);
            s->g[k] = malloc((size_t)s->size[k] * sizeof(float));
            s->w[k] = malloc((size_t)s->size[k] * sizeof(float));
            memcpy(s->g[k], nn_tensor_data(g), (size_t)s->size[k] * sizeof(float));
            memcpy(s->w[k], nn_tensor_data(w), (size_t)s->size[k] * sizeof(float));
        }
    }
}

static void snapshot_free(grads *s)
{
    for (int k = 0; k < s->n; k++) {
        free(s->g[k]);
        free(s->w[k]);
    }
}

/* With SGD lr = 1 the step is w -= clipped(g): check both the update and
 * the clipped gradient left in the buffers against `expect(g)`. */
static void check_sgd_step(grads *s, float (*expect)(float g, void *u),
                           void *u)
{
    for (int k = 0; k < s->n; k++) {
        const float *w = nn_tensor_data(nn_layer_weight(s->layer[k], s->idx[k]));
        const float *g = nn_tensor_data(nn_layer_weight_grad(s->layer[k], s->idx[k]));
        for (int64_t i = 0; i < s->size[k]; i++) {
            float want = expect(s->g[k][i], u);
            assert_close(g[i], want, 1e-6);
            float step = s->w[k][i] - w[i];
            if (fabsf(step - want) > 1e-6f * (fabsf(s->w[k][i]) + fabsf(want)))
                fail_msg("param %d[%lld]: step %.9g, clipped gradient %.9g", k,
                         (long long)i, step, want);
        }
    }
}

static float by_value(float g, void *u)
{
    float v = *(float *)u;
    return g > v ? v : (g < -v ? -v : g);
}

static float by_norm(float g, void *u) { return g * *(float *)u; }

static nn_model *clip_model(nn_tensor **x, nn_tensor **y)
{
    nn_sgd_opts so = NN_SGD_OPTS_INIT;
    so.learning_rate = 1.0f;
    nn_model *m = chain(5, 2, 7, NN_ACT_SIGMOID, 3, 1.0f, nn_sgd(&so));
    int64_t xs[2] = {9, 5};
    *x = rand_tensor(2, xs, 2.0f);
    *y = one_hot_labels(9, 3);
    return m;
}

static void test_clip_by_norm(void **state)
{
    (void)state;
    nn_tensor *x, *y;
    nn_model *m = clip_model(&x, &y);
    assert_int_equal(nn_model_backward(m, x, y, 1, NULL, NULL), NN_OK);
    grads s;
    snapshot(m, &s);
    double total = 0;
    for (int k = 0; k < s.n; k++)
        for (int64_t i = 0; i < s.size[k]; i++) total += (double)s.g[k][i] * s.g[k][i];
    float clip = (float)(0.25 * sqrt(total));
    assert_int_equal(nn_optimizer_set_global_clipnorm(m->opt, clip), NN_OK);
    assert_int_equal(nn_model_apply_gradients(m), NN_OK);
    float factor = (float)(clip / sqrt(total));
    check_sgd_step(&s, by_norm, &factor);
    /* the clipped gradients have the global norm `clip` */
    nn_grad_report *r;
    assert_int_equal(nn_model_grad_report(m, &r), NN_OK);
    assert_close(nn_grad_report_global_norm(r), clip, 1e-6);
    nn_grad_report_free(r);
    snapshot_free(&s);
    /* a norm below the threshold is left alone */
    assert_int_equal(nn_model_backward(m, x, y, 1, NULL, NULL), NN_OK);
    snapshot(m, &s);
    assert_int_equal(nn_optimizer_set_global_clipnorm(m->opt, 1e6f), NN_OK);
    assert_int_equal(nn_model_apply_gradients(m), NN_OK);
    factor = 1.0f;
    check_sgd_step(&s, by_norm, &factor);
    snapshot_free(&s);
    nn_tensor_free(x);
    nn_tensor_free(y);
    nn_model_free(m);
}

static void test_clip_by_value(void **state)
{
    (void)state;
    nn_tensor *x, *y;
    nn_model *m = clip_model(&x, &y);
    assert_int_equal(nn_model_backward(m, x, y, 1, NULL, NULL), NN_OK);
    grads s;
    snapshot(m, &s);
    float v = 0.02f;
    int over = 0, under = 0;
    for (int k = 0; k < s.n; k++)
        for (int64_t i = 0; i < s.size[k]; i++) {
            over += s.g[k][i] > v;
            under += s.g[k][i] < -v;
        }
    assert_true(over > 0 && under > 0); /* the case clips both ways */
    assert_int_equal(nn_optimizer_set_clipvalue(m->opt, v), NN_OK);
    assert_int_equal(nn_model_apply_gradients(m), NN_OK);
    check_sgd_step(&s, by_value, &v);
    snapshot_free(&s);
    nn_tensor_free(x);
    nn_tensor_free(y);
    nn_model_free(m);
}

/* Both set: values are clamped first, then the global norm is clipped,
 * so the final norm never exceeds clipnorm. With recording on the report
 * still shows the norm before clipping. */
static void test_clip_both(void **state)
{
    (void)state;
    nn_tensor *x, *y;
    nn_model *m = clip_model(&x, &y);
    set_diag(m, 1, 0);
    assert_int_equal(nn_model_backward(m, x, y, 1, NULL, NULL), NN_OK);
    grads s;
    snapshot(m, &s);
    float v = 0.05f;
    double clamped = 0, raw = 0;
    for (int k = 0; k < s.n; k++)
        for (int64_t i = 0; i < s.size[k]; i++) {
            double c = by_value(s.g[k][i], &v);
            clamped += c * c;
            raw += (double)s.g[k][i] * s.g[k][i];
        }
    float clip = (float)(0.5 * sqrt(clamped));
    assert_int_equal(nn_optimizer_set_clipvalue(m->opt, v), NN_OK);
    assert_int_equal(nn_optimizer_set_global_clipnorm(m->opt, clip), NN_OK);
    assert_int_equal(nn_model_apply_gradients(m), NN_OK);
    double after = 0;
    for (int k = 0; k < s.n; k++) {
        const float *g = nn_tensor_data(nn_layer_weight_grad(s.layer[k], s.idx[k]));
        for (int64_t i = 0; i < s.size[k]; i++) {
            assert_close(g[i], by_value(s.g[k][i], &v) * (clip / sqrt(clamped)),
                         1e-5);
            after += (double)g[i] * g[i];
        }
    }
    assert_close(sqrt(after), clip, 1e-5);
    nn_grad_report *r;
    assert_int_equal(nn_model_grad_report(m, &r), NN_OK);
    assert_close(nn_grad_report_global_norm(r), sqrt(raw), 1e-12);
    nn_grad_report_free(r);
    snapshot_free(&s);
    /* 0 turns each off */
    assert_int_equal(nn_optimizer_set_clipvalue(m->opt, 0), NN_OK);
    assert_int_equal(nn_optimizer_set_global_clipnorm(m->opt, 0), NN_OK);
    assert_int_equal(nn_model_backward(m, x, y, 1, NULL, NULL), NN_OK);
    snapshot(m, &s);
    assert_int_equal(nn_model_apply_gradients(m), NN_OK);
    float one = 1.0f;
    check_sgd_step(&s, by_norm, &one);
    snapshot_free(&s);
    nn_tensor_free(x);
    nn_tensor_free(y);
    nn_model_free(m);
}

/* ---------------- verdicts ---------------- */

static nn_health chain_verdict(int depth, nn_activation act, float scale,
                               const nn_diag_opts *o, const char **why)
{
    nn_model *m = chain(32, depth, 32, act, 10, scale, NULL);
    int64_t xs[2] = {32, 32};
    nn_tensor *x = rand_tensor(2, xs, 1.0f);
    nn_tensor *y = one_hot_labels(32, 10);
    if (o) assert_int_equal(nn_model_set_diagnostics(m, o), NN_OK);
    else set_diag(m, 1, 0);
    assert_int_equal(nn_model_backward(m, x, y, 1, NULL, NULL), NN_OK);
    nn_health h = verdict(m, 0, why);
    nn_tensor_free(x);
    nn_tensor_free(y);
    nn_model_free(m);
    return h;
}

/* Sigmoid layers pass back at most a quarter of the gradient each: 16 of
 * them at Glorot's scale leave the first layer orders of magnitude below
 * the last. */
static void test_verdict_vanishing_sigmoid_chain(void **state)
{
    (void)state;
    const char *why;
    assert_int_equal(chain_verdict(16, NN_ACT_SIGMOID, 1.0f, NULL, &why),
                     NN_HEALTH_VANISHING);
    assert_non_null(strstr(why, "'d0' (input side"));
    assert_non_null(strstr(why, "'out' (output side"));
    /* the same depth with ReLU is healthy */
    assert_int_equal(chain_verdict(16, NN_ACT_RELU, 1.2f, NULL, &why),
                     NN_HEALTH_OK);
    /* and so is a short sigmoid chain */
    assert_int_equal(chain_verdict(2, NN_ACT_SIGMOID, 1.0f, NULL, &why),
                     NN_HEALTH_OK);
    /* all gradients under the floor */
    nn_diag_opts o = NN_DIAG_OPTS_INIT;
    o.vanishing_floor = 1e6f;
    assert_int_equal(chain_verdict(2, NN_ACT_RELU, 1.0f, &o, &why),
                     NN_HEALTH_VANISHING);
    assert_non_null(strstr(why, "below"));
}

/* Kernels scaled up: every layer multiplies the signal (forward) and the
 * gradient (backward), so the global norm explodes with depth. */
static void test_verdict_exploding_scaled_chain(void **state)
{
    (void)state;
    const char *why;
    assert_int_equal(chain_verdict(12, NN_ACT_NONE, 1.0f, NULL, &why),
                     NN_HEALTH_OK);
    assert_int_equal(chain_verdict(12, NN_ACT_NONE, 4.0f, NULL, &why),
                     NN_HEALTH_EXPLODING);
    assert_non_null(strstr(why, "global gradient norm"));
    assert_non_null(strstr(why, "the largest gradient norm is 'd"));
    assert_int_equal(chain_verdict(12, NN_ACT_RELU, 3.0f, NULL, &why),
                     NN_HEALTH_EXPLODING);
    /* the input/output ratio rule, with a threshold this chain crosses */
    nn_diag_opts o = NN_DIAG_OPTS_INIT;
    o.exploding_ratio = 1.5f;
    assert_int_equal(chain_verdict(12, NN_ACT_RELU, 1.5f, &o, &why),
                     NN_HEALTH_EXPLODING);
    assert_non_null(strstr(why, "'d0' (input side"));
}

/* Growth over the window: one Dense layer (no ratio test), the ceiling
 * off, inputs scaled up step after step. */
static void test_verdict_window(void **state)
{
    (void)state;
    nn_model *m = chain(6, 0, 0, NN_ACT_NONE, 3, 1.0f, NULL);
    nn_diag_opts o = NN_DIAG_OPTS_INIT;
    o.window = 4;
    o.exploding_growth = 10;
    o.exploding_ceiling = INFINITY;
    assert_int_equal(nn_model_set_diagnostics(m, &o), NN_OK);
    int64_t xs[2] = {8, 6};
    nn_tensor *x = rand_tensor(2, xs, 1.0f);
    nn_tensor *y = one_hot_labels(8, 3);
    const float scales[4] = {1, 2, 5, 40};
    float prev = 1;
    for (int s = 0; s < 4; s++) {
        float *d = nn_tensor_data(x);
        for (int64_t i = 0; i < nn_tensor_size(x); i++) d[i] *= scales[s] / prev;
        prev = scales[s];
        assert_int_equal(nn_model_backward(m, x, y, 1, NULL, NULL), NN_OK);
        assert_int_equal(verdict(m, 0, NULL), NN_HEALTH_OK);
        if (s < 3) assert_int_equal(verdict(m, 1, NULL), NN_HEALTH_OK);
    }
    const char *why;
    assert_int_equal(verdict(m, 1, &why), NN_HEALTH_EXPLODING);
    assert_non_null(strstr(why, "grew"));
    /* a vanishing window: every step under the floor */
    o.vanishing_floor = 1e30f;
    o.exploding_growth = INFINITY;
    assert_int_equal(nn_model_set_diagnostics(m, &o), NN_OK);
    for (int s = 0; s < 3; s++)
        assert_int_equal(nn_model_backward(m, x, y, 1, NULL, NULL), NN_OK);
    assert_int_equal(verdict(m, 0, NULL), NN_HEALTH_VANISHING);
    nn_tensor_free(x);
    nn_tensor_free(y);
    nn_model_free(m);
}

/* The window's message says when the latest bad step was, in words a
 * user reads ("this step", "1 step ago", "2 steps ago"), and repeats the
 * reason only when it is not the step's own. */
static void test_verdict_window_latest(void **state)
{
    (void)state;
    nn_model *m = chain(6, 0, 0, NN_ACT_NONE, 3, 1.0f, NULL);
    nn_diag_opts o = NN_DIAG_OPTS_INIT;
    o.window = 8;
    o.exploding_ceiling = 1e3f;
    assert_int_equal(nn_model_set_diagnostics(m, &o), NN_OK);
    int64_t xs[2] = {8, 6};
    nn_tensor *x = rand_tensor(2, xs, 1.0f);
    nn_tensor *y = one_hot_labels(8, 3);
    float *d = nn_tensor_data(x);
    const char *why;
    for (int64_t i = 0; i < nn_tensor_size(x); i++) d[i] *= 1e6f;
    assert_int_equal(nn_model_backward(m, x, y, 1, NULL, NULL), NN_OK);
    assert_int_equal(verdict(m, 0, NULL), NN_HEALTH_EXPLODING);
    assert_int_equal(verdict(m, 1, &why), NN_HEALTH_EXPLODING);
    assert_string_equal(why, "exploding at 1 of the last 1 steps, the latest "
                             "at this step");
    for (int64_t i = 0; i < nn_tensor_size(x); i++) d[i] *= 1e-6f;
    const char *ago[2] = {"the latest 1 step ago: global gradient norm",
                          "the latest 2 steps ago: global gradient norm"};
    for (int s = 0; s < 2; s++) {
        assert_int_equal(nn_model_backward(m, x, y, 1, NULL, NULL), NN_OK);
        assert_int_equal(verdict(m, 0, NULL), NN_HEALTH_OK);
        assert_int_equal(verdict(m, 1, &why), NN_HEALTH_EXPLODING);
        assert_non_null(strstr(why, ago[s]));
        assert_null(strstr(why, "(s)"));
    }
    nn_tensor_free(x);
    nn_tensor_free(y);
    nn_model_free(m);
}

/* ---------------- fit, history, summary ---------------- */

static void test_fit_history(void **state)
{
    (void)state;
    nn_model *m = chain(6, 2, 8, NN_ACT_RELU, 3, 1.0f, nn_adam(NULL));
    int64_t xs[2] = {50, 6};
    nn_tensor *x = rand_tensor(2, xs, 1.0f);
    nn_tensor *y = one_hot_labels(50, 3);
    nn_fit_opts fo = NN_FIT_OPTS_INIT;
    fo.epochs = 3;
    fo.batch_size = 16; /* 4 steps per epoch */
    fo.record_grad_norm = 2;
    nn_history *h;
    assert_int_equal(nn_model_fit(m, x, y, &fo, &h), NN_OK);
    assert_int_equal(nn_history_num_steps(h), 12);
    for (int e = 0; e < 3; e++) {
        double mean = 0, mx = 0;
        for (int s = 0; s < 4; s++) {
            float g = nn_history_step_get(h, NN_METRIC_GRAD_NORM, e * 4 + s);
            assert_true(g > 0 && isfinite(g));
            assert_true(nn_history_step_get(h, NN_METRIC_LOSS, e * 4 + s) > 0);
            mean += g / 4;
            mx = fmax(mx, g);
        }
        assert_close(nn_history_get(h, NN_METRIC_GRAD_NORM, e), mean, 1e-5);
        assert_close(nn_history_get(h, NN_METRIC_GRAD_NORM_MAX, e), mx, 1e-6);
        float v = nn_history_get(h, NN_METRIC_HEALTH, e);
        assert_true(v >= 0 && v <= 3);
    }
    char path[64];
    snprintf(path, sizeof path, "/tmp/test_diag_%ld.csv", (long)getpid());
    assert_int_equal(nn_history_write_csv(h, path), NN_OK);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[256];
    assert_non_null(fgets(line, sizeof line, f));
    assert_string_equal(line, "epoch,loss,accuracy,val_loss,val_accuracy,"
                              "seconds,grad_norm,grad_norm_max,health\n");
    fclose(f);
    remove(path);
    nn_history_free(h);
    /* the last step's report stays; recording went off with the run */
    nn_grad_report *r;
    assert_int_equal(nn_model_grad_report(m, &r), NN_OK);
    assert_int_equal(nn_grad_report_step(r), 12);
    assert_false(isnan(nn_grad_report_update_ratio(r, 0, -1)));
    nn_grad_report_free(r);
    assert_int_equal(nn_model_train_batch(m, x, y, NULL, NULL), NN_OK);
    assert_int_equal(nn_model_grad_report(m, &r), NN_OK);
    assert_true(isnan(nn_grad_report_update_ratio(r, 0, -1))); /* measured */
    nn_grad_report_free(r);
    /* without recording: NaN metrics, no columns, no steps */
    fo.record_grad_norm = 0;
    fo.epochs = 1;
    assert_int_equal(nn_model_fit(m, x, y, &fo, &h), NN_OK);
    assert_true(isnan(nn_history_get(h, NN_METRIC_GRAD_NORM, 0)));
    assert_int_equal(nn_history_num_steps(h), 0);
    assert_int_equal(nn_history_write_csv(h, path), NN_OK);
    f = fopen(path, "r");
    assert_non_null(fgets(line, sizeof line, f));
    assert_string_equal(line, "epoch,loss,accuracy,val_loss,val_accuracy,seconds\n");
    fclose(f);
    remove(path);
    nn_history_free(h);
    /* per epoch only */
    fo.record_grad_norm = 1;
    assert_int_equal(nn_model_fit(m, x, y, &fo, &h), NN_OK);
    assert_true(nn_history_get(h, NN_METRIC_GRAD_NORM, 0) > 0);
    assert_int_equal(nn_history_num_steps(h), 0);
    nn_history_free(h);
    nn_tensor_free(x);
    nn_tensor_free(y);
    nn_model_free(m);
}

/* Diagnostics measure; they do not change what training computes. */
static void test_diag_does_not_change_training(void **state)
{
    (void)state;
    float w[2];
    for (int on = 0; on < 2; on++) {
        lcg = 99;
        nn_model *m = chain(6, 3, 8, NN_ACT_RELU, 3, 1.0f, nn_adam(NULL));
        if (on) set_diag(m, 1, 1);
        int64_t xs[2] = {32, 6};
        nn_tensor *x = rand_tensor(2, xs, 1.0f);
        nn_tensor *y = one_hot_labels(32, 3);
        nn_fit_opts fo = NN_FIT_OPTS_INIT;
        fo.epochs = 2;
        fo.batch_size = 8;
        assert_int_equal(nn_model_fit(m, x, y, &fo, NULL), NN_OK);
        w[on] = nn_tensor_data(nn_layer_weight(nn_model_find_layer(m, "d0"), 0))[3];
        nn_tensor_free(x);
        nn_tensor_free(y);
        nn_model_free(m);
    }
    assert_true(w[0] == w[1]);
}

static void test_recompile_keeps_diagnostics(void **state)
{
    (void)state;
    nn_model *m = chain(4, 1, 5, NN_ACT_RELU, 3, 1.0f, NULL);
    set_diag(m, 1, 0);
    assert_int_equal(nn_model_compile(m, nn_adam(NULL),
                                      NN_LOSS_CATEGORICAL_CROSSENTROPY, NULL),
                     NN_OK);
    int64_t xs[2] = {4, 4};
    nn_tensor *x = rand_tensor(2, xs, 1.0f);
    nn_tensor *y = one_hot_labels(4, 3);
    assert_int_equal(nn_model_train_batch(m, x, y, NULL, NULL), NN_OK);
    nn_grad_report *r;
    assert_int_equal(nn_model_grad_report(m, &r), NN_OK);
    assert_false(isnan(nn_grad_report_update_ratio(r, 1, -1)));
    nn_grad_report_free(r);
    nn_tensor_free(x);
    nn_tensor_free(y);
    nn_model_free(m);
}

static void test_summary(void **state)
{
    (void)state;
    nn_model *m = chain(4, 2, 5, NN_ACT_RELU, 3, 1.0f, NULL);
    int64_t xs[2] = {4, 4};
    nn_tensor *x = rand_tensor(2, xs, 1.0f);
    nn_tensor *y = one_hot_labels(4, 3);
    size_t need = 0;
    assert_int_equal(nn_model_grad_summary(m, NULL, 0, &need), NN_ERR_STATE);
    set_diag(m, 1, 0);
    assert_int_equal(nn_model_train_batch(m, x, y, NULL, NULL), NN_OK);
    assert_int_equal(nn_model_grad_summary(m, NULL, 0, &need), NN_OK);
    assert_true(need > 100);
    char *buf = malloc(need);
    assert_int_equal(nn_model_grad_summary(m, buf, need, NULL), NN_OK);
    assert_int_equal(strlen(buf) + 1, need);
    assert_non_null(strstr(buf, "d0 (Dense)"));
    assert_non_null(strstr(buf, "out (Dense)"));
    assert_non_null(strstr(buf, "Global gradient norm"));
    assert_non_null(strstr(buf, "Update/weight"));
    assert_non_null(strstr(buf, "Step health: OK"));
    /* the table prints the global norm once, not again in the verdicts */
    const char *first = strcasestr(buf, "global gradient norm");
    assert_non_null(first);
    assert_null(strcasestr(first + 1, "global gradient norm"));
    char small[20];
    assert_int_equal(nn_model_grad_summary(m, small, sizeof small, NULL), NN_OK);
    assert_int_equal(strlen(small), sizeof small - 1);
    assert_memory_equal(small, buf, sizeof small - 1);
    free(buf);
    nn_tensor_free(x);
    nn_tensor_free(y);
    nn_model_free(m);
}

/* ---------------- invalid arguments ---------------- */

static void test_invalid_arguments(void **state)
{
    (void)state;
    nn_diag_opts o = NN_DIAG_OPTS_INIT;
    assert_int_equal(nn_model_set_diagnostics(NULL, &o), NN_ERR_INVALID);
    nn_model *bare = nn_model_create(1);
    assert_int_equal(nn_model_set_diagnostics(bare, &o), NN_ERR_STATE);
    nn_grad_report *r = (nn_grad_report *)1;
    assert_int_equal(nn_model_grad_report(bare, &r), NN_ERR_STATE);
    assert_null(r);
    nn_model_free(bare);

    nn_model *m = chain(4, 1, 5, NN_ACT_RELU, 3, 1.0f, NULL);
    assert_int_equal(nn_model_grad_report(m, &r), NN_ERR_STATE); /* no grads */
    assert_int_equal(nn_model_grad_report(m, NULL), NN_ERR_INVALID);
    assert_int_equal(nn_model_grad_report(NULL, &r), NN_ERR_INVALID);
    o.window = 0;
    assert_int_equal(nn_model_set_diagnostics(m, &o), NN_ERR_INVALID);
    o.window = 20;
    o.vanishing_ratio = -1;
    assert_int_equal(nn_model_set_diagnostics(m, &o), NN_ERR_INVALID);
    o.vanishing_ratio = NAN;
    assert_int_equal(nn_model_set_diagnostics(m, &o), NN_ERR_INVALID);
    o.vanishing_ratio = 1e-3f;
    o.size = 0;
    assert_int_equal(nn_model_set_diagnostics(m, &o), NN_ERR_INVALID);
    /* an older, shorter struct: the rest keeps its defaults */
    o.size = offsetof(nn_diag_opts, window);
    assert_int_equal(nn_model_set_diagnostics(m, &o), NN_OK);
    assert_int_equal(nn_model_set_diagnostics(m, NULL), NN_OK);

    nn_optimizer *opt = nn_adam(NULL);
    assert_int_equal(nn_optimizer_set_global_clipnorm(NULL, 1), NN_ERR_INVALID);
    assert_int_equal(nn_optimizer_set_clipvalue(NULL, 1), NN_ERR_INVALID);
    assert_int_equal(nn_optimizer_set_global_clipnorm(opt, -1), NN_ERR_INVALID);
    assert_int_equal(nn_optimizer_set_global_clipnorm(opt, NAN), NN_ERR_INVALID);
    assert_int_equal(nn_optimizer_set_global_clipnorm(opt, INFINITY),
                     NN_ERR_INVALID);
    assert_int_equal(nn_optimizer_set_clipvalue(opt, -0.5f), NN_ERR_INVALID);
    assert_int_equal(nn_optimizer_set_clipvalue(opt, NAN), NN_ERR_INVALID);
    assert_int_equal(nn_optimizer_set_clipvalue(opt, 0.5f), NN_OK);
    assert_int_equal(nn_optimizer_set_global_clipnorm(opt, 0), NN_OK);
    nn_optimizer_free(opt);

    int64_t xs[2] = {4, 4};
    nn_tensor *x = rand_tensor(2, xs, 1.0f);
    nn_tensor *y = one_hot_labels(4, 3);
    assert_int_equal(nn_model_backward(m, x, y, 1, NULL, NULL), NN_OK);
    assert_int_equal(nn_model_grad_report(m, &r), NN_OK);
    assert_null(nn_grad_report_layer_name(r, 2));
    assert_null(nn_grad_report_layer_name(r, -1));
    assert_null(nn_grad_report_layer_name(NULL, 0));
    assert_true(nn_grad_report_num_weights(r, 5) < 0);
    assert_true(isnan(nn_grad_report_grad_norm(r, 0, 2)));
    assert_int_equal(nn_last_status(), NN_ERR_INVALID);
    assert_true(isnan(nn_grad_report_grad_norm(r, 0, -2)));
    assert_true(isnan(nn_grad_report_weight_norm(r, 7, 0)));
    assert_true(isnan(nn_grad_report_update_ratio(NULL, 0, 0)));
    assert_true(isnan(nn_grad_report_global_norm(NULL)));
    assert_true(nn_grad_report_num_layers(NULL) < 0);
    assert_true(nn_grad_report_step(NULL) < 0);
    nn_health h;
    assert_int_equal(nn_grad_report_health(r, 2, &h, NULL), NN_ERR_INVALID);
    assert_int_equal(nn_grad_report_health(r, 0, NULL, NULL), NN_ERR_INVALID);
    assert_int_equal(nn_grad_report_health(NULL, 0, &h, NULL), NN_ERR_INVALID);
    assert_int_equal(nn_grad_report_health(r, 1, &h, NULL), NN_OK);
    nn_grad_report_free(r);
    nn_grad_report_free(NULL);
    assert_int_equal(nn_model_grad_summary(NULL, NULL, 0, NULL), NN_ERR_INVALID);
    char buf[4];
    assert_int_equal(nn_model_grad_summary(m, NULL, sizeof buf, NULL),
                     NN_ERR_INVALID);

    nn_fit_opts fo = NN_FIT_OPTS_INIT;
    fo.record_grad_norm = 3;
    assert_int_equal(nn_model_fit(m, x, y, &fo, NULL), NN_ERR_INVALID);
    /* a program built before the new members: they read as 0 */
    fo.size = offsetof(nn_fit_opts, record_grad_norm);
    nn_history *hist;
    assert_int_equal(nn_model_fit(m, x, y, &fo, &hist), NN_OK);
    assert_true(isnan(nn_history_step_get(hist, NN_METRIC_GRAD_NORM, 0)));
    assert_true(isnan(nn_history_step_get(hist, NN_METRIC_ACCURACY, 0)));
    assert_true(isnan(nn_history_step_get(NULL, NN_METRIC_LOSS, 0)));
    assert_true(nn_history_num_steps(NULL) < 0);
    assert_true(isnan(nn_history_get(hist, (nn_metric)8, 0)));
    nn_history_free(hist);
    nn_tensor_free(x);
    nn_tensor_free(y);
    nn_model_free(m);
}

/* Every allocation of the diagnostics can fail without a leak or a
 * crash (the ASan run checks the leaks). */
static void test_allocation_failures(void **state)
{
    (void)state;
    int64_t xs[2] = {12, 4};
    int k;
    for (k = 1; k < 5000; k++) {
        nn_model *m = chain(4, 2, 5, NN_ACT_RELU, 3, 1.0f, NULL);
        nn_tensor *x = rand_tensor(2, xs, 1.0f);
        nn_tensor *y = one_hot_labels(12, 3);
        nn_fit_opts fo = NN_FIT_OPTS_INIT;
        fo.batch_size = 4;
        fo.record_grad_norm = 2;
        fo.stop_on_nonfinite = 1;
        nn_history *h = NULL;
        nn_grad_report *r = NULL;
        nn_optimizer_set_global_clipnorm(m->opt, 0.1f);
        nn__debug_fail_alloc_after(k);
        nn_status s = nn_model_fit(m, x, y, &fo, &h);
        if (s == NN_OK) s = nn_model_grad_report(m, &r);
        if (s == NN_OK) {
            nn_diag_opts o = NN_DIAG_OPTS_INIT;
            o.window = 7;
            s = nn_model_set_diagnostics(m, &o);
        }
        nn__debug_fail_alloc_after(0);
        nn_grad_report_free(r);
        nn_history_free(h);
        nn_model_free(m);
        nn_tensor_free(x);
        nn_tensor_free(y);
        if (s == NN_OK) break;
        assert_int_equal(s, NN_ERR_NOMEM);
    }
    assert_true(k > 5 && k < 5000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sumsq_deterministic),
        cmocka_unit_test(test_norms_match_direct),
        cmocka_unit_test(test_norms_conv),
        cmocka_unit_test(test_update_ratio),
        cmocka_unit_test(test_nonfinite_forward_weight),
        cmocka_unit_test(test_nonfinite_forward_input),
        cmocka_unit_test(test_nonfinite_backward_order),
        cmocka_unit_test(test_nonfinite_backward_overflow),
        cmocka_unit_test(test_fit_stops_on_nonfinite),
        cmocka_unit_test(test_clip_by_norm),
        cmocka_unit_test(test_clip_by_value),
        cmocka_unit_test(test_clip_both),
        cmocka_unit_test(test_verdict_vanishing_sigmoid_chain),
        cmocka_unit_test(test_verdict_exploding_scaled_chain),
        cmocka_unit_test(test_verdict_window),
        cmocka_unit_test(test_verdict_window_latest),
        cmocka_unit_test(test_fit_history),
        cmocka_unit_test(test_diag_does_not_change_training),
        cmocka_unit_test(test_recompile_keeps_diagnostics),
        cmocka_unit_test(test_summary),
        cmocka_unit_test(test_invalid_arguments),
        cmocka_unit_test(test_allocation_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Graph models (src/graph/): building, summary, names and lookup, branch
 * graphs' gradients, parameter counts and receptive fields, composition
 * (a model applied as a layer), the parameter walk, freezing and the
 * optimizer's state, inference plans and fusion, read-only and concurrent
 * inference, checkpoints of graphs, invalid calls and allocation
 * failures. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nn_internal.h"
#include "kernels/kernels.h"
#include "gradcheck.h"
#include "helpers.h"

/* ------------------------------------------------------------------ */
/* helpers                                                             */
/* ------------------------------------------------------------------ */

static nn_tensor *one_hot(int n, int classes)
{
    int64_t s[2] = {n, classes};
    nn_tensor *t = nn_tensor_create(2, s);
    if (!t) return NULL;
    for (int i = 0; i < n; i++)
        t->data[i * classes + (i * 7 + 3) % classes] = 1;
    return t;
}

static float *copy_floats(const float *p, int64_t n)
{
    float *c = malloc((size_t)n * sizeof(float));
    memcpy(c, p, (size_t)n * sizeof(float));
    return c;
}

/* ------------------------------------------------------------------ */
/* branch graphs through the model: accumulation of gradients          */
/* ------------------------------------------------------------------ */

static double model_loss(nn_model *m, const nn_tensor *x, const nn_tensor *y)
{
    float loss = NAN;
    assert_int_equal(nn_model_evaluate(m, x, y, 64, &loss, NULL), NN_OK);
    return loss;
}

static int check_coord(nn_model *m, const nn_tensor *x, const nn_tensor *y,
                       float *v, float analytic)
{
    const double eps = 1e-2;
    float keep = *v;
    double l0 = model_loss(m, x, y);
    *v = keep + (float)eps;
    double lp = model_loss(m, x, y);
    *v = keep - (float)eps;
    double lm = model_loss(m, x, y);
    *v = keep;
    double dp = (lp - l0) / eps, dm = (l0 - lm) / eps;
    double num = (lp - lm) / (2 * eps);
    double tol = 1e-3 + 2e-2 * fmax(fabs(num), fabs(analytic));
    if (fabs(num - analytic) <= tol + 0.5 * fabs(dp - dm)) return 0;
    fprintf(stderr, "model gradient: numeric %.6g analytic %.6g\n", num,
            (double)analytic);
    return 1;
}

/* Every input value and every 3rd weight of every layer against central
 * differences of nn_model_evaluate (inference mode). */
static void check_model_gradients(nn_model *m, int n, int classes)
{
    assert_int_equal(nn_model_compile(m, nn_sgd(NULL),
                                      NN_LOSS_CATEGORICAL_CROSSENTROPY, NULL),
                     NN_OK);
    const nn_shape *s = &m->input->out;
    nn_tensor *x = tensor4(n, s->d[0], s->d[1], s->d[2]);
    nn_tensor *dx = tensor4(n, s->d[0], s->d[1], s->d[2]);
    gc_fill(x->data, x->size, 1.0);
    nn_tensor *y = one_hot(n, classes);
    assert_int_equal(nn_model_backward(m, x, y, 0, NULL, dx), NN_OK);
    int bad = 0, checked = 0;
    for (int64_t i = 0; i < x->size; i++, checked++)
        bad += check_coord(m, x, y, &x->data[i], dx->data[i]);
    for (int li = 0; li < m->n_layers; li++) {
        nn_layer *l = m->layers[li];
        for (int j = 0; j < l->n_params; j++) {
            if (!l->params[j].trainable) continue;
            nn_tensor *w = nn_layer_weight(l, j);
            float *g = copy_floats(nn_layer_weight_grad(l, j)->data, w->size);
            for (int64_t i = 0; i < w->size; i += 3, checked++)
                bad += check_coord(m, x, y, &w->data[i], g[i]);
            free(g);
        }
    }
    assert_true(checked > 50);
    assert_int_equal(bad, 0);
    nn_tensor_free(x);
    nn_tensor_free(dx);
    nn_tensor_free(y);
}

static void test_branch_graph_gradients(void **state)
{
    (void)state;
    nn_model *m = nn_model_create(90);
    nn_conv2d_opts same = NN_CONV2D_OPTS_INIT;
    same.padding = NN_PADDING_SAME;
    same.activation = NN_ACT_RELU;
    same.bias_init = NN_INIT_GLOROT_UNIFORM;
    nn_layer *in = image_input(m, 5, 5, 2);
    /* The input feeds two convolutions; c1 feeds an Add and a
     * Concatenate; c2 appears twice in one Add. */
    nn_layer *c1 = nn_conv2d(m, in, 3, 3, 3, &same);
    nn_layer *c2 = nn_conv2d(m, in, 3, 1, 1, NULL);
    nn_layer *a_in[3] = {c1, c2, c2};
    nn_layer *a = nn_add(m, 3, a_in, NULL);
    nn_layer *k_in[3] = {c1, a, in};
    nn_layer *k = nn_concatenate(m, 3, k_in, NULL);
    nn_layer *bn = nn_batchnorm(m, k, NULL);
    for (int j = 0; j < bn->n_params; j++) randomize(&bn->params[j], 0.5, 1.5);
    nn_layer *p = nn_zeropad2d(m, bn, 1, 0, 0, 2, NULL);
    nn_layer *g = nn_global_avgpool2d(m, p, NULL);
    nn_dense_opts dop = NN_DENSE_OPTS_INIT;
    dop.activation = NN_ACT_SOFTMAX;
    assert_non_null(nn_dense(m, g, 4, &dop));
    check_model_gradients(m, 3, 4);
    nn_model_free(m);

    /* A chain of the remaining kinds. */
    m = nn_model_create(91);
    in = image_input(m, 6, 5, 1);
    nn_layer *r = nn_repeat_channels(m, in, 2, NULL);
    nn_layer *lc = nn_locally_connected2d(m, r, 3, 3, 2, NULL);
    randomize(&lc->params[0], -0.5, 0.5);
    nn_layer *rs = nn_resizing(m, lc, 5, 3, NULL);
    nn_layer *f = nn_flatten(m, rs, NULL);
    assert_non_null(nn_dense(m, f, 3, &dop));
    check_model_gradients(m, 2, 3);
    nn_model_free(m);
}

/* ------------------------------------------------------------------ */
/* shapes, parameter counts and receptive fields of Q2                 */
/* ------------------------------------------------------------------ */

static void expect_rf(const nn_layer *l, int rf, int jump)
{
    int rh = -1, rw = -1, jh = -1, jw = -1;
    assert_int_equal(nn_layer_receptive_field(l, &rh, &rw, &jh, &jw), NN_OK);
    assert_int_equal(rh, rf);
    assert_int_equal(rw, rf);
    assert_int_equal(jh, jump);
    assert_int_equal(jw, jump);
}

typedef struct inception {
    nn_model *m;
    nn_layer *a, *b, *c, *cat, *out;
} inception;

/* Q2a: 1x1 (A); 1x1 -> 3x3 (B); 1x1 -> 3x3 -> 3x3 (C); concatenate;
 * 1x1 conv to 256. 32 filters, same padding, biases. */
static inception q2a(int n)
{
    inception q;
    q.m = nn_model_create(7);
    nn_conv2d_opts o = NN_CONV2D_OPTS_INIT;
    o.padding = NN_PADDING_SAME;
    nn_layer *x = image_input(q.m, n, n, 3);
    q.a = nn_conv2d(q.m, x, 32, 1, 1, &o);
    q.b = nn_conv2d(q.m, nn_conv2d(q.m, x, 32, 1, 1, &o), 32, 3, 3, &o);
    nn_layer *c = nn_conv2d(q.m, nn_conv2d(q.m, x, 32, 1, 1, &o), 32, 3, 3, &o);
    q.c = nn_conv2d(q.m, c, 32, 3, 3, &o);
    nn_layer *br[3] = {q.a, q.b, q.c};
    q.cat = nn_concatenate(q.m, 3, br, NULL);
    q.out = nn_conv2d(q.m, q.cat, 256, 1, 1, &o);
    assert_non_null(q.out);
    return q;
}

static void test_q2a_inception(void **state)
{
    (void)state;
    const int sizes[] = {32, 7, 1};
    for (int i = 0; i < 3; i++) {
        int n = sizes[i];
        inception q = q2a(n);
        assert_int_equal(nn_model_num_params(q.m), 52960);
        assert_int_equal(nn_model_num_trainable_params(q.m), 52960);
        assert_int_equal(nn_layer_num_params(q.a), 128);
        assert_int_equal(nn_layer_num_params(q.b), 9248);
        assert_int_equal(nn_layer_num_params(q.out), 24832);
        expect_shape(q.cat, 3, n, n, 96);
        expect_shape(q.out, 3, n, n, 256);
        assert_string_equal(nn_layer_name(q.cat), "concatenate");
        assert_string_equal(nn_layer_type(q.cat), "Concatenate");
        expect_rf(q.a, 1, 1);
        expect_rf(q.b, 3, 1);
        expect_rf(q.c, 5, 1);
        expect_rf(q.cat, 5, 1);
        expect_rf(q.out, 5, 1);
        char buf[8192];
        assert_int_equal(nn_model_summary(q.m, buf, sizeof buf, NULL), NN_OK);
        assert_non_null(strstr(buf, "Total params: 52,960"));
        if (n == 32) assert_non_null(strstr(buf, "(None, 32, 32, 96)"));
        nn_model_free(q.m);
    }
}

static nn_model *q2b(int n, bool local, nn_layer **l1, nn_layer **l2)
{
    nn_model *m = nn_model_create(8);
    nn_layer *x = image_input(m, n, n, 3);
    if (local) {
        *l1 = nn_locally_connected2d(m, x, 16, 3, 3, NULL);
        *l2 = nn_locally_connected2d(m, *l1, 32, 3, 3, NULL);
    } else {
        *l1 = nn_conv2d(m, x, 16, 3, 3, NULL);
        *l2 = nn_conv2d(m, *l1, 32, 3, 3, NULL);
    }
    assert_non_null(*l2);
    return m;
}

static void test_q2b_conv_vs_local(void **state)
{
    (void)state;
    const int sizes[] = {32, 10, 5};
    for (int i = 0; i < 3; i++) {
        int n = sizes[i];
        nn_layer *l1, *l2;
        nn_model *m = q2b(n, false, &l1, &l2);
        assert_int_equal(nn_model_num_params(m), 5088);
        assert_int_equal(nn_layer_num_params(l1), 448);
        expect_shape(l2, 3, n - 4, n - 4, 32);
        expect_rf(l1, 3, 1);
        expect_rf(l2, 5, 1);
        nn_model_free(m);
        m = q2b(n, true, &l1, &l2);
        int64_t a = (int64_t)(n - 2) * (n - 2), b = (int64_t)(n - 4) * (n - 4);
        assert_int_equal(nn_layer_num_params(l1), 448 * a);
        assert_int_equal(nn_layer_num_params(l2), 4640 * b);
        assert_int_equal(nn_model_num_params(m), 448 * a + 4640 * b);
        assert_int_equal(nn_model_num_trainable_params(m), 448 * a + 4640 * b);
        expect_shape(l1, 3, n - 2, n - 2, 16);
        expect_shape(l2, 3, n - 4, n - 4, 32);
        nn_tensor *k = nn_layer_weight(l2, 0), *bias = nn_layer_weight(l2, 1);
        assert_int_equal(k->rank, 3);
        assert_int_equal(k->shape[0], b);
        assert_int_equal(k->shape[1], 3 * 3 * 16);
        assert_int_equal(k->shape[2], 32);
        assert_int_equal(bias->rank, 3);
        assert_int_equal(bias->shape[0], n - 4);
        assert_int_equal(bias->shape[2], 32);
        assert_string_equal(nn_layer_name(l2), "locally_connected2d_1");
        expect_rf(l1, 3, 1);
        expect_rf(l2, 5, 1);
        nn_model_free(m);
    }
}

static void test_receptive_fields(void **state)
{
    (void)state;
    nn_model *m = nn_model_create(9);
    nn_layer *x = image_input(m, 64, 48, 3);
    expect_rf(x, 1, 1);
    nn_conv2d_opts o = NN_CONV2D_OPTS_INIT;
    o.stride_h = o.stride_w = 2;
    o.padding = NN_PADDING_SAME;
    nn_layer *c = nn_conv2d(m, nn_zeropad2d(m, x, 3, 3, 3, 3, NULL), 8, 7, 7,
                            &o);
    expect_rf(c, 7, 2);
    nn_pool2d_opts po = NN_POOL2D_OPTS_INIT;
    po.stride_h = po.stride_w = 2;
    nn_layer *p = nn_maxpool2d(m, nn_batchnorm(m, c, NULL), 3, 3, &po);
    expect_rf(p, 7 + 2 * 2, 4); /* ResNet's stem: 11, jump 4 */
    nn_layer *r = nn_relu(m, p, NULL);
    expect_rf(r, 11, 4);
    nn_conv2d_opts k13 = NN_CONV2D_OPTS_INIT;
    nn_layer *c13 = nn_conv2d(m, r, 4, 1, 3, &k13);
    int rh, rw, jh, jw;
    assert_int_equal(nn_layer_receptive_field(c13, &rh, &rw, &jh, &jw), NN_OK);
    assert_int_equal(rh, 11);
    assert_int_equal(rw, 11 + 2 * 4);
    /* Positions are gone: the whole 64 x 48 input. */
    nn_layer *g = nn_global_avgpool2d(m, c13, NULL);
    assert_int_equal(nn_layer_receptive_field(g, &rh, &rw, &jh, &jw), NN_OK);
    assert_int_equal(rh, 64);
    assert_int_equal(rw, 48);
    nn_layer *d = nn_dense(m, g, 3, NULL);
    assert_int_equal(nn_layer_receptive_field(d, &rh, &rw, NULL, NULL), NN_OK);
    assert_int_equal(rh, 64);
    /* Dense on an image is position-wise. */
    nn_layer *dp = nn_dense(m, r, 3, NULL);
    expect_rf(dp, 11, 4);
    /* A merge takes the larger field. */
    nn_layer *r3 = nn_conv2d(m, r, 4, 3, 3, NULL);
    nn_layer *pad = nn_zeropad2d(m, r3, 1, 1, 1, 1, NULL);
    nn_layer *both[2] = {pad, nn_conv2d(m, r, 4, 1, 1, NULL)};
    expect_rf(nn_add(m, 2, both, NULL), 11 + 2 * 4, 4);
    nn_model_free(m);

    /* Resizing: 4 -> 8 halves the jump; bilinear reads 2 samples. */
    m = nn_model_create(10);
    x = image_input(m, 4, 4, 1);
    nn_layer *up = nn_resizing(m, x, 8, 8, NULL);
    assert_int_equal(nn_layer_receptive_field(up, &rh, &rw, &jh, &jw), NN_OK);
    assert_int_equal(rh, 2);
    assert_int_equal(jh, 1); /* 0.5 rounds to at least 1 */
    nn_layer *c3 = nn_conv2d(m, up, 1, 3, 3, NULL);
    assert_int_equal(nn_layer_receptive_field(c3, &rh, &rw, &jh, &jw), NN_OK);
    assert_int_equal(rh, 3); /* 2 + 2 * 0.5 */
    nn_resizing_opts ro = NN_RESIZING_OPTS_INIT;
    ro.interpolation = NN_INTERP_NEAREST;
    nn_layer *down = nn_resizing(m, x, 2, 2, &ro);
    expect_rf(down, 1, 2);
    nn_model_free(m);
}

/* ------------------------------------------------------------------ */
/* freezing                                                            */
/* ------------------------------------------------------------------ */

/* conv2d - batch_normalization - relu - flatten - dense(softmax) */
static nn_model *small_cnn(uint64_t seed)
{
    nn_model *m = nn_model_create(seed);
    nn_layer *x = image_input(m, 6, 6, 2);
    x = nn_conv2d(m, x, 4, 3, 3, NULL);
    x = nn_batchnorm(m, x, NULL);
    x = nn_relu(m, x, NULL);
    x = nn_flatten(m, x, NULL);
    nn_dense_opts d = NN_DENSE_OPTS_INIT;
    d.activation = NN_ACT_SOFTMAX;
    assert_non_null(nn_dense(m, x, 3, &d));
    return m;
}

static int64_t total_floats(nn_model *m)
{
    int64_t n = 0;
    for (int i = 0; i < m->n_layers; i++)
        for (int j = 0; j < m->layers[i]->n_params; j++)
            n += m->layers[i]->params[j].value.size;
    return n;
}

/* All parameters of the model, concatenated. */
static float *snapshot(nn_model *m)
{
    float *s = malloc((size_t)total_floats(m) * sizeof(float)), *p = s;
    for (int i = 0; i < m->n_layers; i++)
        for (int j = 0; j < m->layers[i]->n_params; j++) {
            nn_tensor *t = &m->layers[i]->params[j].value;
            memcpy(p, t->data, (size_t)t->size * sizeof(float));
            p += t->size;
        }
    return s;
}

static bool layer_same(nn_layer *l, const float *snap_at)
{
    for (int j = 0; j < l->n_params; j++) {
        nn_tensor *t = &l->params[j].value;
        if (memcmp(t->data, snap_at, (size_t)t->size * sizeof(float)))
            return false;
        snap_at += t->size;
    }
    return true;
}

static int64_t offset_of(nn_model *m, int layer)
{
    int64_t n = 0;
    for (int i = 0; i < layer; i++)
        for (int j = 0; j < m->layers[i]->n_params; j++)
            n += m->layers[i]->params[j].value.size;
    return n;
}

static void fit_once(nn_model *m, int epochs)
{
    nn_tensor *x = tensor4(24, 6, 6, 2);
    gc_fill(x->data, x->size, 1.0);
    nn_tensor *y = one_hot(24, 3);
    nn_fit_opts fo = NN_FIT_OPTS_INIT;
    fo.epochs = epochs;
    fo.batch_size = 8;
    assert_int_equal(nn_model_fit(m, x, y, &fo, NULL), NN_OK);
    nn_tensor_free(x);
    nn_tensor_free(y);
}

static void test_freeze_through_fit(void **state)
{
    (void)state;
    nn_model *m = small_cnn(30);
    nn_layer *conv = m->layers[1], *bn = m->layers[2], *dense = m->layers[5];
    int64_t all = nn_model_num_params(m);
    assert_int_equal(all, 76 + 16 + 195);
    assert_int_equal(nn_model_num_trainable_params(m), 76 + 8 + 195);
    assert_int_equal(nn_layer_trainable(conv), 1);
    assert_int_equal(nn_layer_set_trainable(conv, 0), NN_OK);
    assert_int_equal(nn_layer_set_trainable(bn, 0), NN_OK);
    assert_int_equal(nn_layer_trainable(conv), 0);
    assert_int_equal(nn_model_num_trainable_params(m), 195);
    char buf[4096];
    assert_int_equal(nn_model_summary(m, buf, sizeof buf, NULL), NN_OK);
    assert_non_null(strstr(buf, "Trainable params: 195\n"));
    assert_non_null(strstr(buf, "Non-trainable params: 92\n"));
    assert_int_equal(nn_model_compile(m, nn_adam(NULL),
                                      NN_LOSS_CATEGORICAL_CROSSENTROPY, NULL),
                     NN_OK);
    float *before = snapshot(m);
    fit_once(m, 2);
    /* Frozen conv and BN (moving statistics included): bit-identical. */
    assert_true(layer_same(conv, before + offset_of(m, 1)));
    assert_true(layer_same(bn, before + offset_of(m, 2)));
    assert_false(layer_same(dense, before + offset_of(m, 5)));
    free(before);
    /* Unfreezing after training continues training (the optimizer's state
     * is re-keyed, not refused). */
    assert_int_equal(nn_model_set_trainable(m, 1), NN_OK);
    assert_int_equal(nn_model_num_trainable_params(m), 76 + 8 + 195);
    before = snapshot(m);
    fit_once(m, 1);
    assert_false(layer_same(conv, before + offset_of(m, 1)));
    assert_false(layer_same(bn, before + offset_of(m, 2)));
    free(before);
    /* Freeze everything: fit runs and changes nothing. */
    assert_int_equal(nn_model_set_trainable(m, 0), NN_OK);
    assert_int_equal(nn_model_num_trainable_params(m), 0);
    before = snapshot(m);
    fit_once(m, 1);
    float *after = snapshot(m);
    assert_memory_equal(before, after, (size_t)all * sizeof(float));
    free(before);
    free(after);
    nn_model_free(m);
}

/* Re-keying keeps the moments of the parameters that stay trainable and
 * gives zero moments to those that become trainable. */
static void test_freeze_rekeys_optimizer(void **state)
{
    (void)state;
    for (int adam = 0; adam <= 1; adam++) {
        nn_model *m = small_cnn(31);
        nn_sgd_opts so = NN_SGD_OPTS_INIT;
        so.momentum = 0.9f;
        nn_optimizer *opt = adam ? nn_adam(NULL) : nn_sgd(&so);
        assert_int_equal(nn_model_compile(m, opt,
                                          NN_LOSS_CATEGORICAL_CROSSENTROPY,
                                          NULL),
                         NN_OK);
        fit_once(m, 1);
        /* slots: conv k, b; bn gamma, beta; dense k, b */
        assert_int_equal(opt->n_slots, 6);
        float *dense_m = copy_floats(opt->slot_m[4], 192);
        float *dense_v = adam ? copy_floats(opt->slot_v[4], 192) : NULL;
        assert_int_equal(nn_layer_set_trainable(m->layers[1], 0), NN_OK);
        assert_int_equal(opt->n_slots, 4);
        assert_int_equal(opt->slot_size[2], 192);
        assert_memory_equal(opt->slot_m[2], dense_m, 192 * sizeof(float));
        if (adam)
            assert_memory_equal(opt->slot_v[2], dense_v, 192 * sizeof(float));
        fit_once(m, 1);
        assert_int_equal(nn_layer_set_trainable(m->layers[1], 1), NN_OK);
        assert_int_equal(opt->n_slots, 6);
        for (int i = 0; i < 72; i++)
            assert_float_equal(opt->slot_m[0][i], 0, 0);
        fit_once(m, 1);
        /* The state still lines up with the model for a checkpoint. */
        char path[] = "/tmp/test_graph_XXXXXX";
        int fd = mkstemp(path);
        assert_true(fd >= 0);
        assert_int_equal(nn_layer_set_trainable(m->layers[2], 0), NN_OK);
        assert_int_equal(nn_model_save(m, path, NN_SAVE_OPTIMIZER), NN_OK);
        nn_model *back = nn_model_load(path);
        assert_non_null(back);
        assert_int_equal(nn_layer_trainable(back->layers[2]), 0);
        assert_int_equal(nn_model_num_trainable_params(back),
                         nn_model_num_trainable_params(m));
        fit_once(back, 1);
        nn_model_free(back);
        remove(path);
        free(dense_m);
        free(dense_v);
        nn_model_free(m);
    }
}

/* Inference through a context never writes batch norm's statistics. */
static void test_inference_is_read_only(void **state)
{
    (void)state;
    nn_model *m = small_cnn(32);
    float *before = snapshot(m);
    nn_tensor *x = tensor4(5, 6, 6, 2);
    gc_fill(x->data, x->size, 2.0);
    int64_t s[2] = {5, 3};
    nn_tensor *out = nn_tensor_create(2, s);
    nn_context *c = nn_context_create(m);
    assert_int_equal(nn_context_predict(c, x, out, 2), NN_OK);
    predict(m, x, out);
    float *after = snapshot(m);
    assert_memory_equal(before, after,
                        (size_t)total_floats(m) * sizeof(float));
    /* A training pass does move them. */
    assert_int_equal(nn_model_compile(m, nn_sgd(NULL),
                                      NN_LOSS_CATEGORICAL_CROSSENTROPY, NULL),
                     NN_OK);
    nn_tensor *y = one_hot(5, 3);
    assert_int_equal(nn_model_backward(m, x, y, 1, NULL, NULL), NN_OK);
    assert_false(layer_same(m->layers[2], before + offset_of(m, 2)));
    nn_context_free(c);
    nn_tensor_free(x);
    nn_tensor_free(y);
    nn_tensor_free(out);
    free(before);
    free(after);
    nn_model_free(m);
}

/* Inference contexts compute Conv2D -> BatchNormalization -> [Add] ->
 * [ReLU] in the convolution's epilogue. This graph has every case: a
 * conv-bn-relu chain, one with a residual Add, a normalization read twice
 * (the chain ends there), a convolution with its own activation (not
 * fused: the ReLU would come before the normalization) and an Add whose
 * other input is itself a fused chain's output. */
typedef struct fuse_net {
    nn_model *m;
    nn_layer *c[5], *bn[5], *add2, *add5, *relu1, *relu2;
} fuse_net;

static nn_layer *bn_random(nn_model *m, nn_layer *in)
{
    nn_layer *l = nn_batchnorm(m, in, NULL);
    randomize(&l->params[0], 0.5, 1.5);  /* gamma */
    randomize(&l->params[1], -0.5, 0.5); /* beta */
    randomize(&l->params[2], -0.3, 0.3); /* moving mean */
    randomize(&l->params[3], 0.5, 2.0);  /* moving variance */
    return l;
}

static fuse_net fuse_graph(void)
{
    fuse_net f = {.m = nn_model_create(5)};
    nn_model *m = f.m;
    nn_conv2d_opts same = NN_CONV2D_OPTS_INIT, s2 = NN_CONV2D_OPTS_INIT;
    nn_conv2d_opts relu = NN_CONV2D_OPTS_INIT;
    same.padding = s2.padding = NN_PADDING_SAME;
    same.use_bias = 0;
    s2.stride_h = s2.stride_w = 2;
    relu.activation = NN_ACT_RELU;
    nn_layer *x = image_input(m, 9, 9, 5);
    f.c[0] = nn_conv2d(m, x, 24, 3, 3, &same);
    f.relu1 = nn_relu(m, f.bn[0] = bn_random(m, f.c[0]), NULL);
    f.c[1] = nn_conv2d(m, f.relu1, 24, 1, 1, NULL);
    f.bn[1] = bn_random(m, f.c[1]);
    nn_layer *a2[2] = {f.bn[1], f.relu1};
    f.relu2 = nn_relu(m, f.add2 = nn_add(m, 2, a2, NULL), NULL);
    f.c[2] = nn_conv2d(m, f.relu2, 70, 3, 3, &s2);
    f.bn[2] = bn_random(m, f.c[2]);
    f.c[3] = nn_conv2d(m, f.bn[2], 70, 1, 1, &relu);
    f.bn[3] = bn_random(m, f.c[3]);
    same.use_bias = 1;
    f.c[4] = nn_conv2d(m, f.bn[2], 70, 1, 1, &same);
    f.bn[4] = bn_random(m, f.c[4]);
    nn_layer *a5[2] = {f.bn[3], f.bn[4]};
    f.add5 = nn_add(m, 2, a5, NULL);
    nn_dense(m, nn_global_avgpool2d(m, f.add5, NULL), 4, NULL);
    for (int i = 1; i < 5; i++) /* the biases */
        randomize(&f.c[i]->params[1], -0.2, 0.2);
    return f;
}

/* Predictions of a new context, fused or not. */
static void predict_ctx(nn_model *m, const nn_tensor *x, nn_tensor *out,
                        bool fuse)
{
    nn__fusion_disable(!fuse);
    nn_context *c = nn_context_create(m);
    assert_int_equal(nn_context_predict(c, x, out, 2), NN_OK);
    nn_context_free(c);
    nn__fusion_disable(false);
}

static void expect_close(const nn_tensor *a, const nn_tensor *b, double tol)
{
    for (int64_t i = 0; i < a->size; i++)
        assert_true(fabs(a->data[i] - b->data[i]) <=
                    tol * (1 + fabs(b->data[i])));
}

/* m's predictions (fused, in its own context) into `fused`: those of an
 * unfused context to float rounding, and the same bits at 1 and 3
 * threads. */
static void expect_fusion_exact(nn_model *m, const nn_tensor *x,
                                nn_tensor *fused)
{
    nn_tensor *plain = nn_tensor_create(fused->rank, fused->shape);
    nn_tensor *again = nn_tensor_create(fused->rank, fused->shape);
    predict_ctx(m, x, plain, false);
    assert_int_equal(nn_model_predict(m, x, fused, 2), NN_OK);
    expect_close(fused, plain, 1e-5);
    for (int t = 1; t <= 3; t += 2) {
        nn_set_num_threads(t);
        predict_ctx(m, x, again, true);
        assert_memory_equal(again->data, fused->data,
                            (size_t)fused->size * sizeof(float));
    }
    nn_set_num_threads(0);
    nn_tensor_free(plain);
    nn_tensor_free(again);
}

static void test_inference_fusion(void **state)
{
    (void)state;
    fuse_net f = fuse_graph();
    nn_tensor *x = tensor4(3, 9, 9, 5);
    gc_fill(x->data, x->size, 2.0);
    int64_t s[2] = {3, 4};
    nn_tensor *fused = nn_tensor_create(2, s), *plain = nn_tensor_create(2, s);
    nn_tensor *again = nn_tensor_create(2, s);
    expect_fusion_exact(f.m, x, fused);
    /* What fused into what. */
    const nn_context *c = f.m->infer_ctx;
    assert_non_null(c->fused_into);
    const nn_layer *into[][2] = {
        {f.bn[0], f.c[0]}, {f.relu1, f.c[0]}, {f.bn[1], f.c[1]},
        {f.add2, f.c[1]},  {f.relu2, f.c[1]}, {f.bn[2], f.c[2]},
        {f.bn[4], f.c[4]}, {f.add5, f.c[4]},
    };
    for (size_t i = 0; i < sizeof into / sizeof into[0]; i++)
        assert_int_equal(c->fused_into[into[i][0]->index], into[i][1]->index);
    assert_int_equal(c->fused_into[f.bn[3]->index], -1); /* conv's own ReLU */
    assert_int_equal(c->fuse[f.c[3]->index].tail, -1);
    assert_int_equal(c->fuse[f.c[1]->index].residual, f.relu1->index);
    assert_int_equal(c->fuse[f.c[4]->index].residual, f.bn[3]->index);
    /* Nothing is cached: new statistics written through the weight's
     * tensor count at the next call. */
    float *var = nn_tensor_data(nn_layer_weight(f.bn[1], 3));
    for (int j = 0; j < 24; j++) var[j] *= 3.0f;
    assert_int_equal(nn_model_predict(f.m, x, again, 2), NN_OK);
    predict_ctx(f.m, x, plain, false);
    expect_close(again, plain, 1e-5);
    assert_true(memcmp(again->data, fused->data,
                       (size_t)fused->size * sizeof(float)) != 0);
    nn_tensor_free(x);
    nn_tensor_free(fused);
    nn_tensor_free(plain);
    nn_tensor_free(again);
    nn_model_free(f.m);
}

/* MobileNetV2's inverted residual block and the segmentation layers:
 * Conv2D -> BN -> ReLU6 and DepthwiseConv2D -> BN -> ReLU6 fuse (their
 * normalizations scaled up so that ReLU6 clamps at 6 too), so does the
 * projection's BN -> Add; a DepthwiseConv2D with its own activation, a
 * Conv2DTranspose, UpSampling2D and Cropping2D do not fuse, and the whole
 * predicts as it does unfused. */
typedef struct seg_net {
    nn_model *m;
    nn_layer *expand, *expand_bn, *expand_relu, *dw, *dw_bn, *dw_relu;
    nn_layer *project, *project_bn, *add, *dw2, *dw2_bn, *dw3, *dw3_bn;
    nn_layer *dw3_relu, *ct, *ct_bn, *ct_relu;
} seg_net;

static nn_layer *bn_wide(nn_model *m, nn_layer *in)
{
    nn_layer *l = bn_random(m, in);
    randomize(&l->params[0], 2.0, 8.0); /* gamma: outputs beyond 6 */
    return l;
}

static seg_net seg_graph(void)
{
    seg_net f = {.m = nn_model_create(9)};
    nn_model *m = f.m;
    nn_conv2d_opts pw = NN_CONV2D_OPTS_INIT;
    pw.use_bias = 0;
    nn_depthwise_conv2d_opts dwo = NN_DEPTHWISE_CONV2D_OPTS_INIT;
    dwo.padding = NN_PADDING_SAME;
    dwo.use_bias = 0;
    nn_layer *x = image_input(m, 9, 9, 6);
    f.expand = nn_conv2d(m, x, 36, 1, 1, &pw);
    f.expand_relu = nn_relu6(m, f.expand_bn = bn_wide(m, f.expand), NULL);
    f.dw = nn_depthwise_conv2d(m, f.expand_relu, 3, 3, &dwo);
    f.dw_relu = nn_relu6(m, f.dw_bn = bn_wide(m, f.dw), NULL);
    f.project = nn_conv2d(m, f.dw_relu, 6, 1, 1, &pw);
    f.project_bn = bn_random(m, f.project);
    nn_layer *a[2] = {x, f.project_bn};
    f.add = nn_add(m, 2, a, NULL);
    dwo.stride_h = dwo.stride_w = 2; /* the block's stride-2 form */
    dwo.depth_multiplier = 2;
    dwo.use_bias = 1;
    f.dw2 = nn_depthwise_conv2d(m, f.add, 3, 3, &dwo);
    f.dw2_bn = bn_random(m, f.dw2); /* fuses without an activation */
    dwo.stride_h = dwo.stride_w = 1;
    dwo.depth_multiplier = 1;
    dwo.activation = NN_ACT_RELU6; /* before the BN: cannot fuse */
    f.dw3 = nn_depthwise_conv2d(m, f.dw2_bn, 3, 3, &dwo);
    f.dw3_relu = nn_relu6(m, f.dw3_bn = bn_wide(m, f.dw3), NULL);
    nn_conv2d_transpose_opts cto = NN_CONV2D_TRANSPOSE_OPTS_INIT;
    cto.stride_h = cto.stride_w = 2;
    cto.padding = NN_PADDING_SAME;
    cto.use_bias = 0;
    f.ct = nn_conv2d_transpose(m, f.dw3_relu, 8, 3, 3, &cto);
    f.ct_relu = nn_relu(m, f.ct_bn = bn_random(m, f.ct), NULL);
    nn_layer *up = nn_upsampling2d(m, f.ct_relu, 2, 2, NULL);
    nn_layer *crop = nn_cropping2d(m, up, 1, 2, 2, 1, NULL);
    nn_dense(m, nn_global_avgpool2d(m, nn_relu6(m, crop, NULL), NULL), 4,
             NULL);
    randomize(&f.dw2->params[1], -0.2, 0.2); /* the bias */
    return f;
}

static void test_seg_fusion(void **state)
{
    (void)state;
    seg_net f = seg_graph();
    nn_tensor *x = tensor4(3, 9, 9, 6);
    gc_fill(x->data, x->size, 2.0);
    int64_t s[2] = {3, 4};
    nn_tensor *fused = nn_tensor_create(2, s);
    expect_fusion_exact(f.m, x, fused);
    const nn_context *c = f.m->infer_ctx;
    assert_non_null(c->fused_into);
    const nn_layer *into[][2] = {
        {f.expand_bn, f.expand}, {f.expand_relu, f.expand},
        {f.dw_bn, f.dw},         {f.dw_relu, f.dw},
        {f.project_bn, f.project}, {f.add, f.project},
        {f.dw2_bn, f.dw2},
    };
    for (size_t i = 0; i < sizeof into / sizeof into[0]; i++)
        assert_int_equal(c->fused_into[into[i][0]->index], into[i][1]->index);
    assert_true(c->fuse[f.expand->index].relu6);
    assert_false(c->fuse[f.expand->index].relu);
    assert_true(c->fuse[f.dw->index].relu6);
    assert_false(c->fuse[f.dw2->index].relu6);
    const nn_layer *alone[] = {f.dw3, f.dw3_bn, f.dw3_relu, f.ct, f.ct_bn,
                               f.ct_relu};
    for (size_t i = 0; i < sizeof alone / sizeof alone[0]; i++) {
        assert_int_equal(c->fused_into[alone[i]->index], -1);
        assert_int_equal(c->fuse[alone[i]->index].tail, -1);
    }
    nn_tensor_free(x);
    nn_tensor_free(fused);
    nn_model_free(f.m);
}

/* ZeroPadding2D folded into the depthwise convolution that reads it:
 * asymmetric (Keras' correct_pad, bottom and right only) before a
 * stride-2 DepthwiseConv2D -> BN -> ReLU6 reading the model's input,
 * symmetric and wider than the window before a stride-1 one with
 * depth_multiplier 2; not folded before a Conv2D (3x3 or pointwise), nor
 * when the padding has two readers. The predictions are those of the
 * same fused plan without the folding, bit for bit. */
typedef struct pad_net {
    nn_model *m;
    nn_layer *pad[5], *reader[5];
} pad_net;

static pad_net pad_graph(void)
{
    pad_net f = {.m = nn_model_create(10)};
    nn_model *m = f.m;
    nn_depthwise_conv2d_opts dwo = NN_DEPTHWISE_CONV2D_OPTS_INIT;
    dwo.stride_h = dwo.stride_w = 2;
    nn_layer *x = image_input(m, 10, 10, 6);
    f.pad[0] = nn_zeropad2d(m, x, 0, 1, 0, 1, NULL);
    f.reader[0] = nn_depthwise_conv2d(m, f.pad[0], 3, 3, &dwo);
    nn_layer *r = nn_relu6(m, bn_wide(m, f.reader[0]), NULL); /* 5x5 */
    dwo.stride_h = dwo.stride_w = 1;
    dwo.depth_multiplier = 2;
    /* Wider than the window: the border windows read only zeros. */
    f.pad[1] = nn_zeropad2d(m, r, 3, 3, 3, 3, NULL);
    f.reader[1] = nn_depthwise_conv2d(m, f.pad[1], 3, 3, &dwo); /* 9x9x12 */
    f.pad[2] = nn_zeropad2d(m, f.reader[1], 2, 0, 1, 1, NULL);
    f.reader[2] = nn_conv2d(m, f.pad[2], 6, 3, 3, NULL); /* 9x9x6 */
    /* Two readers: the DepthwiseConv2D and the Add. */
    dwo.depth_multiplier = 1;
    f.pad[3] = nn_zeropad2d(m, f.reader[2], 1, 1, 1, 1, NULL);
    nn_layer *dw = nn_depthwise_conv2d(m, f.pad[3], 3, 3, &dwo); /* 9x9 */
    f.reader[3] = nn_zeropad2d(m, dw, 1, 1, 1, 1, NULL);
    nn_layer *in[2] = {f.pad[3], f.reader[3]};
    nn_layer *sum = nn_add(m, 2, in, NULL); /* 11x11x6 */
    f.pad[4] = nn_zeropad2d(m, sum, 1, 0, 0, 1, NULL);
    f.reader[4] = nn_conv2d(m, f.pad[4], 4, 1, 1, NULL);
    nn_dense(m, nn_global_avgpool2d(m, f.reader[4], NULL), 4, NULL);
    randomize(&f.reader[0]->params[1], -0.2, 0.2); /* the biases */
    randomize(&f.reader[1]->params[1], -0.2, 0.2);
    return f;
}

static void test_pad_fold(void **state)
{
    (void)state;
    pad_net f = pad_graph();
    nn_tensor *x = tensor4(3, 10, 10, 6);
    gc_fill(x->data, x->size, 2.0);
    for (int64_t i = 0; i < x->size; i += 3) x->data[i] = 0.0f;
    int64_t s[2] = {3, 4};
    nn_tensor *fused = nn_tensor_create(2, s), *plain = nn_tensor_create(2, s);
    expect_fusion_exact(f.m, x, fused);
    nn__pad_fold_disable(true);
    predict_ctx(f.m, x, plain, true);
    nn__pad_fold_disable(false);
    assert_memory_equal(plain->data, fused->data,
                        (size_t)fused->size * sizeof(float));
    const nn_context *c = f.m->infer_ctx;
    for (int i = 0; i < 2; i++) {
        const nn_layer *p = f.pad[i], *r = f.reader[i];
        assert_int_equal(c->fused_into[p->index], r->index);
        assert_int_equal(c->fuse[r->index].pad_of, p->index);
        assert_null(c->act[p->index]); /* no buffer */
    }
    assert_int_equal(c->fuse[f.reader[0]->index].pad[1], 1); /* bottom */
    assert_int_equal(c->fuse[f.reader[0]->index].pad[0], 0);
    assert_true(c->fuse[f.reader[0]->index].relu6); /* and its chain */
    for (int i = 2; i < 5; i++) {
        assert_int_equal(c->fused_into[f.pad[i]->index], -1);
        assert_non_null(c->act[f.pad[i]->index]);
    }
    /* The padding after the DepthwiseConv2D: read by the Add, not folded. */
    assert_int_equal(c->fused_into[f.reader[3]->index], -1);
    assert_int_equal(c->fuse[f.reader[4]->index].pad_of, -1);
    assert_int_equal(c->fuse[f.reader[2]->index].pad_of, -1);
    nn_tensor_free(x);
    nn_tensor_free(fused);
    nn_tensor_free(plain);
    nn_model_free(f.m);
}

/* A frozen backbone and a trainable head. */
typedef struct frozen_net {
    nn_model *m;
    nn_layer *conv0, *bn0, *relu2, *head;
} frozen_net;

static frozen_net frozen_graph(void)
{
    frozen_net f = {.m = nn_model_create(8)};
    nn_model *m = f.m;
    nn_conv2d_opts same = NN_CONV2D_OPTS_INIT;
    same.padding = NN_PADDING_SAME;
    same.use_bias = 0;
    nn_layer *x = image_input(m, 8, 8, 3);
    f.conv0 = nn_conv2d(m, x, 8, 3, 3, &same);
    nn_layer *r1 = nn_relu(m, f.bn0 = bn_random(m, f.conv0), NULL);
    nn_layer *b = bn_random(m, nn_conv2d(m, r1, 8, 1, 1, NULL));
    nn_layer *in[2] = {b, r1};
    f.relu2 = nn_relu(m, nn_add(m, 2, in, NULL), NULL);
    for (int i = 1; i <= f.relu2->index; i++)
        assert_int_equal(nn_layer_set_trainable(m->layers[i], 0), NN_OK);
    f.head = nn_conv2d(m, f.relu2, 6, 3, 3, NULL);
    nn_dense_opts d = NN_DENSE_OPTS_INIT;
    d.activation = NN_ACT_SOFTMAX;
    nn_dense(m, nn_flatten(m, f.head, NULL), 4, &d);
    assert_int_equal(nn_model_compile(m, nn_sgd(NULL),
                                      NN_LOSS_CATEGORICAL_CROSSENTROPY, NULL),
                     NN_OK);
    return f;
}

/* dst's weights set to src's (models built alike). */
static void copy_weights(nn_model *dst, const nn_model *src)
{
    for (int i = 0; i < src->n_layers; i++)
        for (int j = 0; j < src->layers[i]->n_params; j++)
            memcpy(dst->layers[i]->params[j].value.data,
                   src->layers[i]->params[j].value.data,
                   (size_t)src->layers[i]->params[j].value.size *
                       sizeof(float));
}

/* Training plans a frozen backbone as inference does (shared buffers,
 * fusion, no gradient buffers); the steps equal those of a full plan,
 * which a pass that wants the input gradient gets. */
static void test_frozen_prefix_plan(void **state)
{
    (void)state;
    frozen_net lean = frozen_graph(), full = frozen_graph();
    copy_weights(full.m, lean.m); /* bn_random drew anew */
    nn_tensor *x = tensor4(5, 8, 8, 3), *y = one_hot(5, 4);
    nn_tensor *dx = tensor4(5, 8, 8, 3);
    gc_fill(x->data, x->size, 2.0);
    float loss;
    for (int step = 0; step < 2; step++) {
        assert_int_equal(nn_model_train_batch(lean.m, x, y, &loss, NULL),
                         NN_OK);
        assert_int_equal(nn_model_backward(full.m, x, y, 1, &loss, dx), NN_OK);
        assert_int_equal(nn_model_apply_gradients(full.m), NN_OK);
    }
    const nn_context *c = lean.m->ctx, *cf = full.m->ctx;
    assert_true(c->lean);
    assert_false(cf->lean);
    assert_null(c->dact[lean.conv0->index]);
    assert_non_null(c->dact[lean.head->index]);
    assert_non_null(cf->dact[full.conv0->index]);
    assert_int_equal(c->fused_into[lean.bn0->index], lean.conv0->index);
    assert_int_equal(c->fused_into[lean.relu2->index], lean.conv0->index + 3);
    assert_int_equal(cf->fused_into[full.bn0->index], -1);
    for (int i = lean.head->index; i < lean.m->n_layers; i++)
        for (int j = 0; j < lean.m->layers[i]->n_params; j++) {
            const nn_tensor *a = &lean.m->layers[i]->params[j].value;
            const nn_tensor *b = &full.m->layers[i]->params[j].value;
            for (int64_t e = 0; e < a->size; e++)
                assert_true(fabsf(a->data[e] - b->data[e]) <=
                            1e-5f * (1 + fabsf(b->data[e])));
        }
    /* Unfreezing re-plans: the first convolution now learns. */
    float w0 = lean.conv0->params[0].value.data[0];
    assert_int_equal(nn_layer_set_trainable(lean.conv0, 1), NN_OK);
    assert_int_equal(nn_model_train_batch(lean.m, x, y, &loss, NULL), NN_OK);
    c = lean.m->ctx;
    assert_non_null(c->dact[lean.conv0->index]);
    assert_int_equal(c->fused_into[lean.bn0->index], -1);
    assert_true(lean.conv0->params[0].value.data[0] != w0);
    nn_tensor_free(x);
    nn_tensor_free(y);
    nn_tensor_free(dx);
    nn_model_free(lean.m);
    nn_model_free(full.m);
}

/* A frozen ZeroPadding2D -> DepthwiseConv2D -> BN -> ReLU6 in front of a
 * learning head: a lean training plan folds the padding (no gradient
 * reaches it) and takes the steps a full plan takes; once the depthwise
 * convolution learns, the padding is a layer of its own again. */
static nn_model *pad_frozen_graph(nn_layer **pad, nn_layer **dw)
{
    nn_model *m = nn_model_create(12);
    nn_layer *x = image_input(m, 8, 8, 3);
    *pad = nn_zeropad2d(m, x, 0, 1, 0, 1, NULL);
    nn_depthwise_conv2d_opts dwo = NN_DEPTHWISE_CONV2D_OPTS_INIT;
    dwo.stride_h = dwo.stride_w = 2;
    *dw = nn_depthwise_conv2d(m, *pad, 3, 3, &dwo);
    nn_layer *r = nn_relu6(m, bn_random(m, *dw), NULL);
    for (int i = 1; i <= r->index; i++)
        assert_int_equal(nn_layer_set_trainable(m->layers[i], 0), NN_OK);
    nn_dense_opts d = NN_DENSE_OPTS_INIT;
    d.activation = NN_ACT_SOFTMAX;
    nn_layer *h = nn_conv2d(m, r, 5, 3, 3, NULL);
    nn_dense(m, nn_flatten(m, h, NULL), 4, &d);
    assert_int_equal(nn_model_compile(m, nn_sgd(NULL),
                                      NN_LOSS_CATEGORICAL_CROSSENTROPY, NULL),
                     NN_OK);
    return m;
}

static void test_frozen_pad_fold(void **state)
{
    (void)state;
    nn_layer *pad, *dw, *pad_f, *dw_f;
    nn_model *lean = pad_frozen_graph(&pad, &dw);
    nn_model *full = pad_frozen_graph(&pad_f, &dw_f);
    copy_weights(full, lean);
    nn_tensor *x = tensor4(5, 8, 8, 3), *y = one_hot(5, 4);
    nn_tensor *dx = tensor4(5, 8, 8, 3);
    gc_fill(x->data, x->size, 2.0);
    float loss, loss_f;
    for (int step = 0; step < 2; step++) {
        assert_int_equal(nn_model_train_batch(lean, x, y, &loss, NULL), NN_OK);
        assert_int_equal(nn_model_backward(full, x, y, 1, &loss_f, dx), NN_OK);
        assert_int_equal(nn_model_apply_gradients(full), NN_OK);
        assert_true(fabsf(loss - loss_f) <= 1e-5f * (1 + fabsf(loss_f)));
    }
    assert_true(lean->ctx->lean);
    assert_int_equal(lean->ctx->fused_into[pad->index], dw->index);
    assert_int_equal(full->ctx->fused_into[pad_f->index], -1);
    for (int i = 0; i < lean->n_layers; i++)
        for (int j = 0; j < lean->layers[i]->n_params; j++) {
            const nn_tensor *a = &lean->layers[i]->params[j].value;
            const nn_tensor *b = &full->layers[i]->params[j].value;
            for (int64_t e = 0; e < a->size; e++)
                assert_true(fabsf(a->data[e] - b->data[e]) <=
                            1e-5f * (1 + fabsf(b->data[e])));
        }
    assert_int_equal(nn_layer_set_trainable(dw, 1), NN_OK);
    assert_int_equal(nn_model_train_batch(lean, x, y, &loss, NULL), NN_OK);
    assert_int_equal(lean->ctx->fused_into[pad->index], -1);
    assert_non_null(lean->ctx->act[pad->index]);
    nn_tensor_free(x);
    nn_tensor_free(y);
    nn_tensor_free(dx);
    nn_model_free(lean);
    nn_model_free(full);
}

/* Conv -> BN followed by the activation layers that do not fuse (PReLU,
 * LeakyReLU, ELU, tanh): the normalization still folds into the
 * convolution, the activation runs as a layer of its own on the chain's
 * output, and predictions equal the unfused ones. Training with those
 * chains frozen in front of a learning PReLU (lean plan, fused) takes
 * the steps a full plan takes. */
static nn_model *act_fusion_graph(nn_layer **prelu, bool freeze)
{
    nn_model *m = nn_model_create(21);
    nn_conv2d_opts same = NN_CONV2D_OPTS_INIT;
    same.padding = NN_PADDING_SAME;
    same.use_bias = 0;
    nn_layer *x = image_input(m, 7, 7, 3);
    nn_layer *c0 = nn_conv2d(m, x, 6, 3, 3, &same);
    x = nn_leaky_relu(m, bn_random(m, c0), 0.2f, NULL);
    x = nn_elu(m, bn_random(m, nn_conv2d(m, x, 6, 1, 1, &same)), 1.0f, NULL);
    x = nn_tanh(m, bn_random(m, nn_conv2d(m, x, 6, 1, 1, &same)), NULL);
    x = bn_random(m, nn_conv2d(m, x, 6, 3, 3, &same));
    if (freeze)
        for (int i = 1; i <= x->index; i++)
            assert_int_equal(nn_layer_set_trainable(m->layers[i], 0), NN_OK);
    nn_prelu_opts po = NN_PRELU_OPTS_INIT;
    po.shared_axes = (1u << 1) | (1u << 2);
    *prelu = nn_prelu(m, x, &po);
    randomize(&(*prelu)->params[0], -0.5, 1.5);
    nn_dense_opts d = NN_DENSE_OPTS_INIT;
    d.activation = NN_ACT_SOFTMAX;
    nn_dense(m, nn_global_avgpool2d(m, *prelu, NULL), 4, &d);
    assert_int_equal(nn_model_compile(m, nn_sgd(NULL),
                                      NN_LOSS_CATEGORICAL_CROSSENTROPY, NULL),
                     NN_OK);
    return m;
}

static void test_activation_layers_fusion(void **state)
{
    (void)state;
    nn_layer *prelu;
    nn_model *m = act_fusion_graph(&prelu, false);
    nn_tensor *x = tensor4(3, 7, 7, 3), *y = one_hot(3, 4);
    gc_fill(x->data, x->size, 2.0);
    int64_t s[2] = {3, 4};
    nn_tensor *fused = nn_tensor_create(2, s);
    expect_fusion_exact(m, x, fused);
    const nn_context *c = m->infer_ctx;
    for (int i = 1; i < m->n_layers; i++) {
        const nn_layer *l = m->layers[i];
        if (l->kind == NN_KIND_BATCHNORM)
            assert_int_equal(c->fused_into[i], l->inputs[0]->index);
        if (l->kind == NN_KIND_CONV2D) {
            assert_false(c->fuse[i].relu || c->fuse[i].relu6);
            assert_int_equal(c->fuse[i].tail, i + 1); /* its BN only */
        }
        if (l->kind >= NN_KIND_LEAKY_RELU)
            assert_int_equal(c->fused_into[i], -1);
    }
    nn_model_free(m);

    nn_layer *pl, *pf;
    nn_model *lean = act_fusion_graph(&pl, true);
    nn_model *full = act_fusion_graph(&pf, true);
    copy_weights(full, lean); /* bn_random drew anew */
    nn_tensor *dx = tensor4(3, 7, 7, 3);
    float loss;
    float a0 = pl->params[0].value.data[0];
    for (int step = 0; step < 2; step++) {
        assert_int_equal(nn_model_train_batch(lean, x, y, &loss, NULL), NN_OK);
        assert_int_equal(nn_model_backward(full, x, y, 1, &loss, dx), NN_OK);
        assert_int_equal(nn_model_apply_gradients(full), NN_OK);
    }
    assert_true(lean->ctx->lean);
    assert_int_equal(lean->ctx->fused_into[pl->inputs[0]->index],
                     pl->inputs[0]->index - 1);
    assert_true(pl->params[0].value.data[0] != a0); /* alpha learned */
    for (int e = 0; e < 6; e++)
        assert_true(fabsf(pl->params[0].value.data[e] -
                          pf->params[0].value.data[e]) <=
                    1e-5f * (1 + fabsf(pf->params[0].value.data[e])));
    nn_tensor_free(x);
    nn_tensor_free(y);
    nn_tensor_free(dx);
    nn_tensor_free(fused);
    nn_model_free(lean);
    nn_model_free(full);
}

/* Random graphs of convolutions (with or without bias and ReLU),
 * normalizations (frozen or not), ReLUs and Adds, some layers frozen:
 * whatever the planner fuses and shares, predictions equal those of an
 * unfused plan, and training steps those of a full plan. Each graph is
 * built twice from the same recipe. */
static uint64_t recipe_state;

static uint32_t recipe_next(uint32_t n)
{
    recipe_state ^= recipe_state << 13;
    recipe_state ^= recipe_state >> 7;
    recipe_state ^= recipe_state << 17;
    return (uint32_t)((recipe_state >> 20) % n);
}

static void recipe_fill(nn_param *p, float lo, float hi)
{
    for (int64_t i = 0; i < p->value.size; i++)
        p->value.data[i] = lo + (hi - lo) * (float)recipe_next(1000) / 1000.0f;
}

static nn_layer *random_layer(nn_model *m, nn_layer **made, int n)
{
    /* Mostly chains (what fuses), sometimes branches. */
    nn_layer *a = made[recipe_next(3) ? n - 1 : (int)recipe_next((uint32_t)n)];
    switch (recipe_next(5)) {
    case 0: {
        nn_layer *in[2] = {a, made[recipe_next((uint32_t)n)]};
        return nn_add(m, 2, in, NULL);
    }
    case 1: return nn_relu(m, a, NULL);
    case 2: {
        nn_layer *b = nn_batchnorm(m, a, NULL);
        recipe_fill(&b->params[2], -0.3f, 0.3f);
        recipe_fill(&b->params[3], 0.5f, 2.0f);
        return b;
    }
    default: {
        nn_conv2d_opts o = NN_CONV2D_OPTS_INIT;
        o.padding = NN_PADDING_SAME;
        o.use_bias = (int)recipe_next(2);
        o.activation = recipe_next(3) ? NN_ACT_NONE : NN_ACT_RELU;
        return nn_conv2d(m, a, 4, 1 + 2 * (int)recipe_next(2), 3, &o);
    }
    }
}

static nn_model *random_graph(uint64_t seed)
{
    recipe_state = seed;
    nn_model *m = nn_model_create(seed);
    nn_layer *made[24];
    made[0] = nn_conv2d(m, image_input(m, 5, 5, 2), 4, 1, 1, NULL);
    int n = 1;
    for (; n < 20; n++) made[n] = random_layer(m, made, n);
    /* A frozen prefix (a backbone), and a few frozen layers after it. */
    int cut = (int)recipe_next((uint32_t)m->n_layers);
    for (int i = 1; i < m->n_layers; i++)
        if (i <= cut || recipe_next(4) == 0)
            nn_layer_set_trainable(m->layers[i], 0);
    nn_dense_opts d = NN_DENSE_OPTS_INIT;
    d.activation = NN_ACT_SOFTMAX;
    nn_dense(m, nn_flatten(m, made[n - 1], NULL), 3, &d);
    nn_model_compile(m, nn_sgd(NULL), NN_LOSS_CATEGORICAL_CROSSENTROPY, NULL);
    return m;
}

static void expect_params_close(const nn_model *a, const nn_model *b)
{
    for (int i = 0; i < a->n_layers; i++)
        for (int j = 0; j < a->layers[i]->n_params; j++) {
            const nn_tensor *p = &a->layers[i]->params[j].value;
            const nn_tensor *q = &b->layers[i]->params[j].value;
            for (int64_t e = 0; e < p->size; e++)
                assert_true(fabsf(p->data[e] - q->data[e]) <=
                            1e-4f * (1 + fabsf(q->data[e])));
        }
}

static void test_random_graph_plans(void **state)
{
    (void)state;
    nn_tensor *x = tensor4(4, 5, 5, 2), *y = one_hot(4, 3);
    nn_tensor *dx = tensor4(4, 5, 5, 2);
    int64_t s[2] = {4, 3};
    nn_tensor *p1 = nn_tensor_create(2, s), *p2 = nn_tensor_create(2, s);
    gc_fill(x->data, x->size, 1.0);
    int fused = 0, shared = 0;
    for (uint64_t g = 1; g <= 40; g++) {
        nn_model *lean = random_graph(g), *full = random_graph(g);
        assert_non_null(lean);
        assert_int_equal(lean->n_layers, full->n_layers);
        predict_ctx(lean, x, p1, true);
        predict_ctx(lean, x, p2, false);
        expect_close(p1, p2, 1e-5);
        float loss;
        for (int step = 0; step < 2; step++) {
            assert_int_equal(nn_model_train_batch(lean, x, y, &loss, NULL),
                             NN_OK);
            assert_int_equal(nn_model_backward(full, x, y, 1, &loss, dx),
                             NN_OK);
            assert_int_equal(nn_model_apply_gradients(full), NN_OK);
        }
        expect_params_close(lean, full);
        for (int i = 0; i < lean->n_layers; i++) {
            fused += lean->ctx->fused_into[i] >= 0;
            shared += lean->ctx->in_shared[i];
        }
        nn_model_free(lean);
        nn_model_free(full);
    }
    /* The graphs did exercise the lean plan. */
    assert_true(fused > 0 && shared > 0);
    nn_tensor_free(x);
    nn_tensor_free(y);
    nn_tensor_free(dx);
    nn_tensor_free(p1);
    nn_tensor_free(p2);
}

/* ------------------------------------------------------------------ */
/* checkpoints                                                         */
/* ------------------------------------------------------------------ */

static void test_checkpoint_round_trip(void **state)
{
    (void)state;
    nn_model *m = nn_model_create(33);
    nn_layer *x = image_input(m, 6, 5, 1);
    nn_layer *r = nn_repeat_channels(m, x, 3, NULL);
    nn_layer *z = nn_zeropad2d(m, r, 1, 1, 0, 2, NULL);
    nn_layer *rs = nn_resizing(m, z, 7, 6, NULL);
    nn_layer *lc = nn_locally_connected2d(m, rs, 4, 3, 3, NULL);
    nn_layer *bn = nn_batchnorm(m, lc, NULL);
    randomize(&bn->params[2], -1, 1);
    nn_layer *br[2] = {bn, nn_relu(m, bn, NULL)};
    nn_layer *a = nn_add(m, 2, br, NULL);
    nn_layer *k[2] = {a, bn};
    nn_layer *cat = nn_concatenate(m, 2, k, NULL);
    assert_non_null(nn_global_avgpool2d(m, cat, NULL));
    nn_layer_set_trainable(lc, 0);
    char path[] = "/tmp/test_graph_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(nn_model_save(m, path, NN_SAVE_DEFAULT), NN_OK);
    nn_model *back = nn_model_load(path);
    remove(path);
    assert_non_null(back);
    assert_int_equal(nn_model_num_params(back), nn_model_num_params(m));
    assert_int_equal(nn_model_num_trainable_params(back),
                     nn_model_num_trainable_params(m));
    nn_tensor *in = tensor4(2, 6, 5, 1);
    gc_fill(in->data, in->size, 1.0);
    int64_t s[2] = {2, 8};
    nn_tensor *y1 = nn_tensor_create(2, s), *y2 = nn_tensor_create(2, s);
    predict(m, in, y1);
    predict(back, in, y2);
    assert_memory_equal(y1->data, y2->data, 16 * sizeof(float));
    nn_tensor_free(in);
    nn_tensor_free(y1);
    nn_tensor_free(y2);
    nn_model_free(back);
    nn_model_free(m);
}

/* ------------------------------------------------------------------ */
/* allocation failures                                                 */
/* ------------------------------------------------------------------ */

static nn_status build_train_freeze(void)
{
    nn_status s = NN_ERR_NOMEM;
    nn_model *m = nn_model_create(37);
    if (!m) return NN_ERR_NOMEM;
    nn_layer *x = image_input(m, 6, 6, 1);
    nn_layer *r = nn_repeat_channels(m, x, 2, NULL);
    nn_layer *lc = nn_locally_connected2d(m, r, 3, 3, 3, NULL);
    nn_layer *bn = nn_batchnorm(m, lc, NULL);
    nn_layer *two[2] = {bn, lc};
    nn_layer *a = nn_add(m, 2, two, NULL);
    nn_layer *k2[2] = {a, lc};
    nn_layer *cat = nn_concatenate(m, 2, k2, NULL);
    nn_layer *z = nn_zeropad2d(m, cat, 1, 1, 1, 1, NULL);
    nn_layer *rs = nn_resizing(m, z, 3, 3, NULL);
    nn_layer *g = nn_global_avgpool2d(m, rs, NULL);
    nn_dense_opts d = NN_DENSE_OPTS_INIT;
    d.activation = NN_ACT_SOFTMAX;
    nn_layer *out = g ? nn_dense(m, g, 3, &d) : NULL;
    nn_optimizer *opt = out ? nn_adam(NULL) : NULL;
    nn_tensor *xs = tensor4(4, 6, 6, 1), *ys = one_hot(4, 3);
    int rf;
    if (!out || !opt || !xs || !ys) {
        nn_optimizer_free(opt);
        goto done;
    }
    if ((s = nn_model_compile(m, opt, NN_LOSS_CATEGORICAL_CROSSENTROPY,
                              NULL)) != NN_OK) {
        nn_optimizer_free(opt);
        goto done;
    }
    if ((s = nn_model_train_batch(m, xs, ys, NULL, NULL)) != NN_OK) goto done;
    if ((s = nn_layer_set_trainable(lc, 0)) != NN_OK) goto done;
    if ((s = nn_model_train_batch(m, xs, ys, NULL, NULL)) != NN_OK) goto done;
    if ((s = nn_model_set_trainable(m, 1)) != NN_OK) goto done;
    if ((s = nn_model_train_batch(m, xs, ys, NULL, NULL)) != NN_OK) goto done;
    s = nn_layer_receptive_field(out, &rf, NULL, NULL, NULL);
done:
    nn_tensor_free(xs);
    nn_tensor_free(ys);
    nn_model_free(m);
    return s;
}

static void test_allocation_failures(void **state)
{
    (void)state;
    int k;
    for (k = 1; k < 20000; k++) {
        nn__debug_fail_alloc_after(k);
        nn_status s = build_train_freeze();
        int64_t made = nn__debug_fail_alloc_after(0);
        if (s == NN_OK) break;
        assert_int_equal(s, NN_ERR_NOMEM);
        assert_true(made >= k);
    }
    assert_true(k > 20);
    assert_true(k < 20000);
}

static void test_summary_q3a(void **state)
{
    (void)state;
    nn_model *m = q3a(32, 32, 3, 1);
    assert_non_null(m);
    assert_int_equal(nn_model_num_params(m), 42442);
    assert_int_equal(nn_model_num_trainable_params(m), 42442);
    size_t need = 0;
    assert_int_equal(nn_model_summary(m, NULL, 0, &need), NN_OK);
    char *buf = malloc(need);
    assert_int_equal(nn_model_summary(m, buf, need, NULL), NN_OK);
    assert_int_equal(strlen(buf) + 1, need);
    assert_non_null(strstr(buf, "conv2d (Conv2D)"));
    assert_non_null(strstr(buf, "(None, 30, 30, 32)"));
    assert_non_null(strstr(buf, "896"));
    assert_non_null(strstr(buf, "conv2d_1 (Conv2D)"));
    assert_non_null(strstr(buf, "(None, 13, 13, 64)"));
    assert_non_null(strstr(buf, "18,496"));
    assert_non_null(strstr(buf, "(None, 6, 6, 64)"));
    assert_non_null(strstr(buf, "(None, 2304)"));
    assert_non_null(strstr(buf, "23,050"));
    assert_non_null(strstr(buf, "Total params: 42,442"));
    assert_non_null(strstr(buf, "Trainable params: 42,442"));
    assert_non_null(strstr(buf, "Non-trainable params: 0"));
    /* A short buffer is filled and terminated, not overrun. */
    char small[16];
    memset(small, 'x', sizeof small);
    assert_int_equal(nn_model_summary(m, small, sizeof small, NULL), NN_OK);
    assert_int_equal(strlen(small), sizeof small - 1);
    free(buf);
    nn_model_free(m);
}

static void test_names_and_lookup(void **state)
{
    (void)state;
    nn_model *m = q3a(28, 28, 1, 1);
    assert_non_null(nn_model_find_layer(m, "max_pooling2d_1"));
    assert_string_equal(nn_layer_type(nn_model_find_layer(m, "dense")), "Dense");
    assert_null(nn_model_find_layer(m, "nope"));
    assert_non_null(strstr(nn_last_error(), "nope"));
    nn_layer_opts o = NN_LAYER_OPTS_INIT;
    o.name = "dense";
    assert_null(nn_flatten(m, nn_model_layer(m, 1), &o)); /* name taken */
    nn_model_free(m);
}

static void test_invalid_calls(void **state)
{
    (void)state;
    nn_model *m = q3a(10, 10, 1, 1);
    int64_t xs[4] = {4, 10, 10, 1}, bad[4] = {4, 10, 9, 1};
    nn_tensor *x = random_tensor(4, xs, 1), *xb = random_tensor(4, bad, 2);
    nn_tensor *y = random_one_hot(4, 10, 3), *y3 = random_one_hot(3, 10, 3);
    float loss;
    /* Before compile. */
    assert_int_equal(nn_model_train_batch(m, x, y, &loss, NULL), NN_ERR_STATE);
    assert_int_equal(nn_model_compile(m, NULL, NN_LOSS_CATEGORICAL_CROSSENTROPY,
                                      NULL),
                     NN_ERR_INVALID);
    nn_optimizer *o = nn_adam(NULL);
    assert_int_equal(nn_model_compile(m, o, (nn_loss)99, NULL), NN_ERR_INVALID);
    assert_int_equal(
        nn_model_compile(m, o, NN_LOSS_CATEGORICAL_CROSSENTROPY, NULL), NN_OK);
    assert_int_equal(nn_model_train_batch(NULL, x, y, &loss, NULL),
                     NN_ERR_INVALID);
    assert_int_equal(nn_model_train_batch(m, NULL, y, &loss, NULL),
                     NN_ERR_INVALID);
    assert_int_equal(nn_model_train_batch(m, xb, y, &loss, NULL), NN_ERR_SHAPE);
    assert_int_equal(nn_model_train_batch(m, x, y3, &loss, NULL), NN_ERR_SHAPE);
    assert_non_null(strstr(nn_last_error(), "give one label per sample"));
    nn_fit_opts f = NN_FIT_OPTS_INIT;
    f.epochs = 0;
    assert_int_equal(nn_model_fit(m, x, y, &f, NULL), NN_ERR_INVALID);
    f.epochs = 1;
    f.batch_size = -1;
    assert_int_equal(nn_model_fit(m, x, y, &f, NULL), NN_ERR_INVALID);
    int64_t os[2] = {3, 10};
    nn_tensor *out = nn_tensor_create(2, os);
    assert_int_equal(nn_model_predict(m, x, out, 2), NN_ERR_SHAPE);
    assert_int_equal(nn_model_predict(m, x, out, 0), NN_ERR_INVALID);
    assert_null(nn_input(NULL, 3, NULL, NULL));
    assert_int_equal(nn_last_status(), NN_ERR_INVALID);
    nn_clear_error();
    assert_int_equal(nn_last_status(), NN_OK);
    assert_ptr_equal(nn_model_output(m), nn_model_find_layer(m, "dense"));
    assert_ptr_equal(nn_model_input(m), nn_model_layer(m, 0));
    assert_null(nn_model_output(NULL));
    assert_null(nn_tensor_create(0, xs));
    int64_t neg[2] = {2, -1};
    assert_null(nn_tensor_create(2, neg));
    nn_model_free(NULL);
    nn_tensor_free(NULL);
    nn_context_free(NULL);
    nn_history_free(NULL);
    nn_optimizer_free(NULL);
    nn_tensor_free(out);
    nn_tensor_free(x);
    nn_tensor_free(xb);
    nn_tensor_free(y);
    nn_tensor_free(y3);
    nn_model_free(m);
}

/* Two models from one seed train to the same bits; another seed differs. */

typedef struct job {
    nn_model *m;
    const nn_tensor *x;
    nn_tensor *out;
    nn_status status;
} job;

static void *predict_job(void *arg)
{
    job *j = arg;
    nn_context *c = nn_context_create(j->m);
    j->status = c ? NN_OK : NN_ERR_NOMEM;
    for (int rep = 0; rep < 5 && j->status == NN_OK; rep++)
        j->status = nn_context_predict(c, j->x, j->out, 16);
    nn_context_free(c);
    return NULL;
}

static void test_concurrent_inference(void **state)
{
    (void)state;
    nn_model *m = q3a(32, 32, 3, 5);
    nn_model_compile(m, nn_adam(NULL), NN_LOSS_CATEGORICAL_CROSSENTROPY, NULL);
    int64_t xs[4] = {40, 32, 32, 3}, os[2] = {40, 10};
    nn_tensor *x = random_tensor(4, xs, 9);
    nn_tensor *y = random_one_hot(40, 10, 10);
    assert_int_equal(nn_model_train_batch(m, x, y, NULL, NULL), NN_OK);
    nn_tensor *ref = nn_tensor_create(2, os);
    assert_int_equal(nn_model_predict(m, x, ref, 16), NN_OK);
    job jobs[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        jobs[i] = (job){m, x, nn_tensor_create(2, os), NN_ERR_STATE};
        pthread_create(&th[i], NULL, predict_job, &jobs[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(jobs[i].status, NN_OK);
        assert_memory_equal(jobs[i].out->data, ref->data,
                            (size_t)ref->size * sizeof(float));
        nn_tensor_free(jobs[i].out);
    }
    nn_tensor_free(ref);
    nn_tensor_free(x);
    nn_tensor_free(y);
    nn_model_free(m);
}

/* Per-thread messages: an error on one thread is not seen on another. */
static void *fail_on_thread(void *arg)
{
    (void)arg;
    nn_clear_error();
    nn_model_find_layer(NULL, "x");
    return strstr(nn_last_error(), "NULL") ? (void *)1 : NULL;
}

static void test_thread_local_errors(void **state)
{
    (void)state;
    nn_clear_error();
    pthread_t t;
    void *ok;
    pthread_create(&t, NULL, fail_on_thread, NULL);
    pthread_join(t, &ok);
    assert_non_null(ok);
    assert_string_equal(nn_last_error(), "");
}

/* inner: Input 8x8x1 -> conv2d (3x3, 4) -> conv2d_1 (3x3, 4) -> flatten */
static nn_model *small_backbone(void)
{
    nn_model *m = nn_model_create(21);
    int shape[3] = {8, 8, 1};
    nn_layer *x = nn_input(m, 3, shape, NULL);
    x = nn_conv2d(m, x, 4, 3, 3, NULL);
    x = nn_conv2d(m, x, 4, 3, 3, NULL);
    x = nn_flatten(m, x, NULL);
    assert_non_null(x);
    assert_int_equal(nn_model_set_name(m, "backbone"), NN_OK);
    return m;
}

static void test_model_apply(void **state)
{
    (void)state;
    nn_model *inner = small_backbone();
    nn_model *outer = nn_model_create(22);
    int shape[3] = {8, 8, 1};
    nn_layer *x = nn_input(outer, 3, shape, NULL);
    x = nn_model_apply(outer, x, inner, NULL, NULL);
    assert_non_null(x);
    assert_string_equal(nn_layer_name(x), "flatten");
    nn_layer *y = nn_dense(outer, x, 3, NULL); /* outer "dense" */
    assert_non_null(y);
    /* Names already used get the block's prefix. */
    nn_layer *f = nn_flatten(outer, y, NULL);
    assert_string_equal(nn_layer_name(f), "flatten_1");
    assert_int_equal(nn_model_num_params(outer), 40 + 148 + 64 * 3 + 3);
    size_t need;
    nn_model_summary(outer, NULL, 0, &need);
    char *buf = malloc(need);
    nn_model_summary(outer, buf, need, NULL);
    assert_non_null(strstr(buf, "backbone (Functional)"));
    assert_non_null(strstr(buf, "(None, 64)"));
    assert_non_null(strstr(buf, "188"));
    assert_null(strstr(buf, "conv2d_1 (Conv2D)"));
    free(buf);
    /* Weights are shared both ways. */
    nn_tensor *wi = nn_layer_weight(nn_model_find_layer(inner, "conv2d"), 0);
    nn_tensor *wo = nn_layer_weight(nn_model_find_layer(outer, "conv2d"), 0);
    assert_ptr_equal(wi->data, wo->data);
    /* Applying the same block twice prefixes the second copy. */
    nn_layer *in2 = nn_model_layer(outer, 0);
    nn_layer *z = nn_model_apply(outer, in2, inner,
                                 nn_model_find_layer(inner, "conv2d"), NULL);
    assert_non_null(z);
    assert_string_equal(nn_layer_name(z), "backbone/conv2d");
    /* Shape mismatch and foreign layers are refused. */
    assert_null(nn_model_apply(outer, y, inner, NULL, NULL));
    assert_int_equal(nn_last_status(), NN_ERR_SHAPE);
    assert_null(nn_model_apply(outer, in2, inner, y, NULL));
    assert_null(nn_model_apply(outer, in2, outer, NULL, NULL));
    /* Either model may go first; the other keeps working. */
    nn_model_free(inner);
    assert_int_equal(nn_model_set_output(outer, f), NN_OK);
    int64_t xs[4] = {2, 8, 8, 1}, os[2] = {2, 3};
    nn_tensor *xt = random_tensor(4, xs, 3), *out = nn_tensor_create(2, os);
    assert_int_equal(nn_model_predict(outer, xt, out, 2), NN_OK);
    nn_tensor_free(xt);
    nn_tensor_free(out);
    nn_model_free(outer);
}

/* Training the outer model moves shared weights; a frozen block does not. */
static void test_apply_trains_shared_weights(void **state)
{
    (void)state;
    for (int frozen = 0; frozen <= 1; frozen++) {
        nn_model *inner = small_backbone();
        if (frozen) nn_model_set_trainable(inner, 0);
        nn_model *outer = nn_model_create(23);
        int shape[3] = {8, 8, 1};
        nn_layer *x = nn_input(outer, 3, shape, NULL);
        x = nn_model_apply(outer, x, inner, NULL, NULL);
        nn_dense_opts d = NN_DENSE_OPTS_INIT;
        d.activation = NN_ACT_SOFTMAX;
        x = nn_dense(outer, x, 10, &d);
        assert_non_null(x);
        assert_int_equal(nn_model_num_trainable_params(outer),
                         frozen ? 650 : 650 + 188);
        nn_model_compile(outer, nn_adam(NULL),
                         NN_LOSS_CATEGORICAL_CROSSENTROPY, NULL);
        nn_tensor *w = nn_layer_weight(nn_model_find_layer(inner, "conv2d"), 0);
        float before[36];
        memcpy(before, w->data, sizeof before);
        int64_t xs[4] = {8, 8, 8, 1};
        nn_tensor *xt = random_tensor(4, xs, 5), *y = random_one_hot(8, 10, 6);
        assert_int_equal(nn_model_train_batch(outer, xt, y, NULL, NULL), NN_OK);
        bool same = memcmp(before, w->data, sizeof before) == 0;
        assert_int_equal(same, frozen);
        nn_tensor_free(xt);
        nn_tensor_free(y);
        nn_model_free(outer);
        nn_model_free(inner);
    }
}

/* ---- one parameter walk: every user agrees on what trains ---- */

/* A dense block 4 -> 5 -> 4, applied twice below (shared weights). */
static nn_model *dense_block(void)
{
    nn_model *b = nn_model_create(41);
    int shape[1] = {4};
    nn_dense_opts relu = NN_DENSE_OPTS_INIT;
    relu.activation = NN_ACT_RELU;
    nn_layer *x = nn_input(b, 1, shape, NULL);
    x = nn_dense(b, x, 5, &relu);
    x = nn_dense(b, x, 4, NULL);
    nn_model_set_name(b, "block");
    return x ? b : (nn_model_free(b), NULL);
}

/* input, block (dense, dense_1), mid, batch_normalization, the block again
 * (block/dense, block/dense_1), out. */
static nn_model *walk_model(nn_model *block)
{
    nn_model *m = nn_model_create(42);
    int shape[1] = {4};
    nn_dense_opts soft = NN_DENSE_OPTS_INIT;
    soft.activation = NN_ACT_SOFTMAX;
    nn_dense_opts mid_d = NN_DENSE_OPTS_INIT, out_d = soft;
    mid_d.name = "mid";
    out_d.name = "out";
    nn_layer *x = nn_input(m, 1, shape, NULL);
    x = nn_model_apply(m, x, block, NULL, NULL);
    x = x ? nn_dense(m, x, 4, &mid_d) : NULL;
    x = x ? nn_batchnorm(m, x, NULL) : NULL;
    x = x ? nn_model_apply(m, x, block, NULL, NULL) : NULL;
    x = x ? nn_dense(m, x, 3, &out_d) : NULL;
    return x ? m : (nn_model_free(m), NULL);
}

/* The parameters that train, in the walk's order, as (layer, param). */
static int walk_slots(const nn_model *m, int *layer, int *param,
                      int64_t *values)
{
    nn_param_iter it;
    nn__param_iter_init(&it, m, NULL);
    int n = 0;
    *values = 0;
    while (nn__param_next(&it)) {
        assert_int_equal(it.trains, it.l->trainable && it.p->trainable);
        assert_int_equal(it.slot, it.trains ? n : -1);
        if (!it.trains) continue;
        layer[n] = it.layer;
        param[n] = it.param;
        *values += it.p->value.size;
        n++;
    }
    assert_int_equal(n, nn__param_slots(m));
    return n;
}

static double walk_grad_norm(const nn_model *m)
{
    nn_param_iter it;
    nn__param_iter_init(&it, m, NULL);
    double s = 0;
    while (nn__param_next_slot(&it))
        s += nn__sumsq(it.p->grad.data, it.p->grad.size);
    return sqrt(s);
}

/* The walk visits every parameter in layer then parameter order and
 * numbers the slots of those that train; assumed layer flags (what
 * freezing plans with) replace the layers' own. */
static void test_param_walk(void **state)
{
    (void)state;
    nn_model *block = dense_block();
    nn_model *m = walk_model(block);
    assert_non_null(m);
    bool on[16];
    assert_true(m->n_layers <= 16);
    for (int i = 0; i < m->n_layers; i++) on[i] = m->layers[i]->trainable;
    int mid = nn_model_find_layer(m, "mid")->index;
    on[mid] = false;
    for (int pass = 0; pass < 2; pass++) {
        nn_param_iter it;
        nn__param_iter_init(&it, m, pass ? on : NULL);
        int visited = 0, slots = 0, last_layer = 0, last_param = -1;
        while (nn__param_next(&it)) {
            assert_true(it.layer > last_layer ||
                        (it.layer == last_layer && it.param == last_param + 1));
            assert_ptr_equal(it.l, m->layers[it.layer]);
            assert_ptr_equal(it.p, &it.l->params[it.param]);
            bool layer_on = pass ? on[it.layer] : it.l->trainable;
            assert_int_equal(it.trains, layer_on && it.p->trainable);
            assert_int_equal(it.slot, it.trains ? slots++ : -1);
            last_layer = it.layer;
            last_param = it.param;
            visited++;
        }
        /* 6 dense layers' kernel and bias, batch normalization's four. */
        assert_int_equal(visited, 6 * 2 + 4);
        assert_int_equal(slots, pass ? 12 : 14);
        assert_false(nn__param_next(&it)); /* stays at the end */
        assert_null(it.p);
        nn__param_iter_init(&it, m, pass ? on : NULL);
        int k = 0;
        while (nn__param_next_slot(&it)) assert_int_equal(it.slot, k++);
        assert_int_equal(k, slots);
    }
    assert_int_equal(nn__param_slots(m), 14);
    nn_model_free(m);
    nn_model_free(block);
}

static void test_param_walk_agrees(void **state)
{
    (void)state;
    nn_model *block = dense_block();
    nn_model *m = walk_model(block);
    assert_non_null(m);
    nn_optimizer *opt = nn_adam(NULL);
    const float clip = 1e-3f; /* far below the gradients: always clips */
    assert_int_equal(nn_optimizer_set_global_clipnorm(opt, clip), NN_OK);
    assert_int_equal(nn_model_compile(m, opt,
                                      NN_LOSS_CATEGORICAL_CROSSENTROPY, NULL),
                     NN_OK);
    nn_diag_opts d = NN_DIAG_OPTS_INIT;
    assert_int_equal(nn_model_set_diagnostics(m, &d), NN_OK);
    int64_t xs[2] = {6, 4};
    nn_tensor *x = random_tensor(2, xs, 43), *y = random_one_hot(6, 3, 44);
    assert_int_equal(nn_model_train_batch(m, x, y, NULL, NULL), NN_OK);
    /* Freeze the middle layer: the optimizer's slots are re-keyed. */
    nn_layer *mid = nn_model_find_layer(m, "mid");
    assert_int_equal(nn_layer_set_trainable(mid, 0), NN_OK);
    /* A frozen layer keeps the gradients of its last step; make them
     * large so that any user walking it would show. */
    for (int j = 0; j < mid->n_params; j++)
        for (int64_t i = 0; i < mid->params[j].grad.size; i++)
            mid->params[j].grad.data[i] = 100.0f;
    assert_int_equal(nn_model_train_batch(m, x, y, NULL, NULL), NN_OK);

    /* Counts: the walk, the optimizer and the trainable count. Both
     * copies of the block hold a slot per weight; mid and the moving
     * statistics hold none. */
    int layer[32], param[32];
    int64_t values;
    int n = walk_slots(m, layer, param, &values);
    assert_int_equal(n, 12);
    assert_int_equal(opt->n_slots, n);
    assert_int_equal(nn_model_num_trainable_params(m), values);
    for (int k = 0; k < n; k++) {
        assert_int_not_equal(layer[k], mid->index);
        assert_int_equal(opt->slot_size[k],
                         m->layers[layer[k]]->params[param[k]].value.size);
    }

    /* Clipping scaled exactly the walk's gradients to the clip norm; the
     * diagnostics recorded the unclipped norm and measured an update for
     * every weight that trains, in the layers the walk names. */
    assert_float_equal(walk_grad_norm(m), clip, 1e-4 * clip);
    nn_grad_report *r;
    assert_int_equal(nn_model_grad_report(m, &r), NN_OK);
    assert_true(nn_grad_report_global_norm(r) > 10 * clip);
    int rows = 0;
    for (int k = 0; k < n; k++) {
        if (k > 0 && layer[k] == layer[k - 1]) continue;
        const nn_layer *l = m->layers[layer[k]];
        assert_string_equal(nn_grad_report_layer_name(r, rows), l->name);
        for (int j = 0; j < l->n_params; j++)
            assert_int_equal(isnan(nn_grad_report_update_ratio(r, rows, j)),
                             !l->params[j].trainable);
        rows++;
    }
    assert_int_equal(nn_grad_report_num_layers(r), rows);
    nn_grad_report_free(r);
    /* Without an update the gradients stay unclipped: the recorded global
     * norm is the walk's. */
    assert_int_equal(nn_model_backward(m, x, y, 1, NULL, NULL), NN_OK);
    assert_int_equal(nn_model_grad_report(m, &r), NN_OK);
    assert_float_equal(nn_grad_report_global_norm(r), walk_grad_norm(m),
                       1e-12 * walk_grad_norm(m));
    nn_grad_report_free(r);

    /* The checkpoint stores the slots in the walk's order and the loaded
     * model's walk finds them on the same parameters. */
    char path[] = "/tmp/test_model_walk_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(nn_model_save(m, path, NN_SAVE_OPTIMIZER), NN_OK);
    nn_model *back = nn_model_load(path);
    assert_non_null(back);
    remove(path);
    int layer2[32], param2[32];
    int64_t values2;
    assert_int_equal(walk_slots(back, layer2, param2, &values2), n);
    assert_int_equal(values2, values);
    assert_int_equal(nn_model_num_trainable_params(back), values);
    assert_int_equal(nn_layer_trainable(back->layers[mid->index]), 0);
    nn_optimizer *o2 = back->opt;
    assert_int_equal(o2->n_slots, n);
    for (int k = 0; k < n; k++) {
        assert_int_equal(layer2[k], layer[k]);
        assert_int_equal(param2[k], param[k]);
        size_t bytes = (size_t)opt->slot_size[k] * sizeof(float);
        assert_int_equal(o2->slot_size[k], opt->slot_size[k]);
        assert_memory_equal(o2->slot_m[k], opt->slot_m[k], bytes);
        assert_memory_equal(o2->slot_v[k], opt->slot_v[k], bytes);
    }
    assert_int_equal(nn_model_train_batch(back, x, y, NULL, NULL), NN_OK);
    nn_model_free(back);
    nn_tensor_free(x);
    nn_tensor_free(y);
    nn_model_free(m);
    nn_model_free(block);
}

static void test_apply_allocation_failures(void **state)
{
    (void)state;
    int k;
    for (k = 1; k < 1000; k++) {
        nn_model *inner = small_backbone();
        nn_model *outer = nn_model_create(1);
        int shape[3] = {8, 8, 1};
        nn_layer *x = nn_input(outer, 3, shape, NULL);
        nn__debug_fail_alloc_after(k);
        nn_layer *y = nn_model_apply(outer, x, inner, NULL, NULL);
        nn__debug_fail_alloc_after(0);
        if (!y) {
            assert_int_equal(nn_last_status(), NN_ERR_NOMEM);
            assert_int_equal(nn_model_num_layers(outer), 1);
        }
        nn_model_free(inner);
        nn_model_free(outer);
        if (y) break;
    }
    assert_true(k > 1 && k < 1000);
}

/* Inference contexts share activation buffers between layers whose
 * outputs are not live together; results must not change. */
static void test_inference_buffer_reuse(void **state)
{
    (void)state;
    nn_model *m = nn_model_create(9);
    int shape[3] = {8, 8, 3};
    nn_conv2d_opts same = NN_CONV2D_OPTS_INIT;
    same.padding = NN_PADDING_SAME;
    nn_layer *x = nn_input(m, 3, shape, NULL);
    nn_layer *a = nn_conv2d(m, x, 3, 3, 3, &same);
    for (int block = 0; block < 4; block++) { /* residual blocks */
        nn_layer *b = nn_relu(m, nn_conv2d(m, a, 3, 3, 3, &same), NULL);
        b = nn_conv2d(m, b, 3, 3, 3, &same);
        nn_layer *in[2] = {a, b};
        a = nn_relu(m, nn_add(m, 2, in, NULL), NULL);
    }
    nn_dense_opts d = NN_DENSE_OPTS_INIT;
    d.activation = NN_ACT_SOFTMAX;
    nn_layer *out = nn_dense(m, nn_flatten(m, a, NULL), 5, &d);
    assert_non_null(out);
    nn_model_compile(m, nn_sgd(NULL), NN_LOSS_CATEGORICAL_CROSSENTROPY, NULL);
    int64_t xs[4] = {6, 8, 8, 3}, os[2] = {6, 5};
    nn_tensor *xt = random_tensor(4, xs, 4), *y = random_one_hot(6, 5, 5);
    nn_tensor *pooled = nn_tensor_create(2, os), *full = nn_tensor_create(2, os);
    nn_context *c = nn_context_create(m);
    assert_int_equal(nn_context_predict(c, xt, pooled, 6), NN_OK);
    assert_non_null(c->shared);
    assert_true(c->n_shared >= 2 && c->n_shared <= 4);
    /* The model's training context keeps every buffer (a gradient reaches
     * every layer here); its predictions come from its inference plan. */
    float loss;
    assert_int_equal(nn_model_backward(m, xt, y, 0, &loss, NULL), NN_OK);
    assert_int_equal(nn_model_predict(m, xt, full, 6), NN_OK);
    assert_int_equal(m->ctx->n_shared, 0);
    assert_memory_equal(pooled->data, full->data, sizeof(float) * 30);
    nn_context_free(c);
    nn_tensor_free(xt);
    nn_tensor_free(y);
    nn_tensor_free(pooled);
    nn_tensor_free(full);
    nn_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_branch_graph_gradients),
        cmocka_unit_test(test_q2a_inception),
        cmocka_unit_test(test_q2b_conv_vs_local),
        cmocka_unit_test(test_receptive_fields),
        cmocka_unit_test(test_freeze_through_fit),
        cmocka_unit_test(test_freeze_rekeys_optimizer),
        cmocka_unit_test(test_inference_is_read_only),
        cmocka_unit_test(test_inference_fusion),
        cmocka_unit_test(test_seg_fusion),
        cmocka_unit_test(test_pad_fold),
        cmocka_unit_test(test_frozen_pad_fold),
        cmocka_unit_test(test_frozen_prefix_plan),
        cmocka_unit_test(test_activation_layers_fusion),
        cmocka_unit_test(test_random_graph_plans),
        cmocka_unit_test(test_checkpoint_round_trip),
        cmocka_unit_test(test_allocation_failures),
        cmocka_unit_test(test_summary_q3a),
        cmocka_unit_test(test_names_and_lookup),
        cmocka_unit_test(test_invalid_calls),
        cmocka_unit_test(test_concurrent_inference),
        cmocka_unit_test(test_thread_local_errors),
        cmocka_unit_test(test_model_apply),
        cmocka_unit_test(test_inference_buffer_reuse),
        cmocka_unit_test(test_apply_trains_shared_weights),
        cmocka_unit_test(test_apply_allocation_failures),
        cmocka_unit_test(test_param_walk),
        cmocka_unit_test(test_param_walk_agrees),
    };
    return cmocka_run_group_tests_name("graph", tests, NULL, NULL);
}

/* Training (src/train/): compile, fit and evaluate through a model -
 * seeded determinism, learning, segmentation models with their metrics
 * and checkpoints, class weights in fit, binary evaluation and decision
 * metrics in fit's history, the messages new users see, allocation
 * failures of a fit. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nn_internal.h"
#include "loss/loss.h"
#include "optim/optim.h"
#include "io/io.h"
#include "kernels/kernels.h"
#include "helpers.h"
#include "tmpdir.h"

static float train_some(uint64_t seed, float *w0)
{
    nn_model *m = q3a(12, 12, 1, seed);
    nn_model_compile(m, nn_adam(NULL), NN_LOSS_CATEGORICAL_CROSSENTROPY, NULL);
    int64_t xs[4] = {64, 12, 12, 1};
    nn_tensor *x = random_tensor(4, xs, 7);
    nn_tensor *y = random_one_hot(64, 10, 8);
    nn_fit_opts f = NN_FIT_OPTS_INIT;
    f.epochs = 2;
    f.batch_size = 16;
    nn_history *h = NULL;
    assert_int_equal(nn_model_fit(m, x, y, &f, &h), NN_OK);
    assert_int_equal(nn_history_epochs(h), 2);
    float loss = nn_history_get(h, NN_METRIC_LOSS, 1);
    assert_true(isnan(nn_history_get(h, NN_METRIC_VAL_LOSS, 1)));
    *w0 = nn_layer_weight(nn_model_find_layer(m, "dense"), 0)->data[5];
    nn_history_free(h);
    nn_tensor_free(x);
    nn_tensor_free(y);
    nn_model_free(m);
    return loss;
}

static void test_seeded_determinism(void **state)
{
    (void)state;
    float wa, wb, wc;
    float a = train_some(11, &wa), b = train_some(11, &wb);
    float c = train_some(12, &wc);
    assert_memory_equal(&a, &b, sizeof a);
    assert_memory_equal(&wa, &wb, sizeof wa);
    assert_true(wa != wc);
    (void)c;
}

/* A learnable problem: the class is which quadrant is brightest. */
static void make_quadrants(int64_t n, nn_tensor **x, nn_tensor **y,
                           uint64_t seed)
{
    int64_t xs[4] = {n, 8, 8, 1}, ys[2] = {n, 4};
    *x = nn_tensor_create(4, xs);
    *y = nn_tensor_create(2, ys);
    nn_rng r;
    nn__rng_seed(&r, seed);
    for (int64_t i = 0; i < n; i++) {
        int q = (int)nn__rng_below(&r, 4);
        (*y)->data[i * 4 + q] = 1;
        for (int p = 0; p < 64; p++) {
            int row = p / 8, col = p % 8;
            int pq = (row >= 4) * 2 + (col >= 4);
            (*x)->data[i * 64 + p] =
                0.5f * nn__rng_uniform(&r) + (pq == q ? 0.5f : 0.0f);
        }
    }
}

static void test_fit_learns(void **state)
{
    (void)state;
    nn_model *m = nn_model_create(3);
    int shape[3] = {8, 8, 1};
    nn_conv2d_opts conv = NN_CONV2D_OPTS_INIT;
    conv.activation = NN_ACT_RELU;
    conv.padding = NN_PADDING_SAME;
    nn_dense_opts dense = NN_DENSE_OPTS_INIT;
    dense.activation = NN_ACT_SOFTMAX;
    nn_layer *l = nn_input(m, 3, shape, NULL);
    l = nn_conv2d(m, l, 8, 3, 3, &conv);
    l = nn_avgpool2d(m, l, 2, 2, NULL);
    l = nn_flatten(m, l, NULL);
    l = nn_dense(m, l, 4, &dense);
    assert_non_null(l);
    assert_int_equal(
        nn_model_compile(m, nn_adam(NULL), NN_LOSS_CATEGORICAL_CROSSENTROPY,
                         NULL),
        NN_OK);
    nn_tensor *x, *y, *vx, *vy;
    make_quadrants(512, &x, &y, 1);
    make_quadrants(128, &vx, &vy, 2);
    float loss0, acc0;
    assert_int_equal(nn_model_evaluate(m, vx, vy, 64, &loss0, &acc0), NN_OK);
    nn_fit_opts f = NN_FIT_OPTS_INIT;
    f.epochs = 15;
    f.batch_size = 32;
    f.val_x = vx;
    f.val_y = vy;
    nn_history *h;
    assert_int_equal(nn_model_fit(m, x, y, &f, &h), NN_OK);
    float vl = nn_history_get(h, NN_METRIC_VAL_LOSS, 14);
    float va = nn_history_get(h, NN_METRIC_VAL_ACCURACY, 14);
    assert_true(vl < 0.5f * loss0);
    assert_true(va > 0.9f);
    float loss, acc;
    assert_int_equal(nn_model_evaluate(m, vx, vy, 50, &loss, &acc), NN_OK);
    assert_float_equal(loss, vl, 1e-5);
    assert_float_equal(acc, va, 1e-6);
    nn_history_free(h);
    nn_tensor_free(x);
    nn_tensor_free(y);
    nn_tensor_free(vx);
    nn_tensor_free(vy);
    nn_model_free(m);
}

/* Allocation k fails for every k: build, compile and fit fail cleanly. */
static nn_status build_and_fit_once(void)
{
    nn_model *m = q3a(10, 10, 2, 1);
    if (!m) return NN_ERR_NOMEM;
    nn_optimizer *o = nn_adam(NULL);
    nn_status s = o ? nn_model_compile(m, o, NN_LOSS_CATEGORICAL_CROSSENTROPY,
                                       NULL)
                    : NN_ERR_NOMEM;
    if (s != NN_OK) nn_optimizer_free(o);
    nn_tensor *x = NULL, *y = NULL;
    nn_history *h = NULL;
    if (s == NN_OK) {
        int64_t xs[4] = {6, 10, 10, 2}, ys[2] = {6, 10};
        x = nn_tensor_create(4, xs);
        y = nn_tensor_create(2, ys);
        if (!x || !y) s = NN_ERR_NOMEM;
    }
    if (s == NN_OK) {
        for (int i = 0; i < 6; i++) y->data[i * 10 + i] = 1;
        nn_fit_opts f = NN_FIT_OPTS_INIT;
        f.batch_size = 4;
        f.val_x = x;
        f.val_y = y;
        s = nn_model_fit(m, x, y, &f, &h);
    }
    nn_history_free(h);
    nn_tensor_free(x);
    nn_tensor_free(y);
    nn_model_free(m);
    return s;
}

static void test_allocation_failures(void **state)
{
    (void)state;
    int k;
    for (k = 1; k < 10000; k++) {
        nn__debug_fail_alloc_after(k);
        nn_status s = build_and_fit_once();
        int64_t made = nn__debug_fail_alloc_after(0);
        if (s == NN_OK) break;
        assert_int_equal(s, NN_ERR_NOMEM);
        assert_true(made >= k);
    }
    assert_true(k > 10);
    assert_true(k < 10000);
}

/* ------------------------------------------------------------------ */
/* What new users trip on                                              */
/* ------------------------------------------------------------------ */

/* Conv2D -> BatchNormalization -> ReLU, flattened into a softmax. */
static nn_model *conv_bn_relu(uint64_t seed)
{
    nn_model *m = nn_model_create(seed);
    int shape[3] = {8, 8, 1};
    nn_conv2d_opts same = NN_CONV2D_OPTS_INIT;
    same.padding = NN_PADDING_SAME;
    nn_dense_opts d = NN_DENSE_OPTS_INIT;
    d.activation = NN_ACT_SOFTMAX;
    nn_layer *l = nn_input(m, 3, shape, NULL);
    l = nn_relu(m, nn_batchnorm(m, nn_conv2d(m, l, 6, 3, 3, &same), NULL),
                NULL);
    l = nn_dense(m, nn_flatten(m, nn_maxpool2d(m, l, 2, 2, NULL), NULL), 4,
                 &d);
    assert_non_null(l);
    assert_int_equal(nn_model_compile(m, nn_adam(NULL),
                                      NN_LOSS_CATEGORICAL_CROSSENTROPY, NULL),
                     NN_OK);
    return m;
}

/* After training, the model's own predictions, a new context's and a
 * saved and loaded copy's are the same bits (the fused inference plan
 * for all three), and so are their evaluations. */
static void test_predict_after_training_bits(void **state)
{
    (void)state;
    nn_model *m = conv_bn_relu(21);
    nn_tensor *x, *y;
    make_quadrants(96, &x, &y, 5);
    nn_fit_opts f = NN_FIT_OPTS_INIT;
    f.epochs = 2;
    f.batch_size = 16;
    assert_int_equal(nn_model_fit(m, x, y, &f, NULL), NN_OK);
    int64_t os[2] = {96, 4};
    nn_tensor *own = nn_tensor_create(2, os), *ctx = nn_tensor_create(2, os);
    nn_tensor *loaded = nn_tensor_create(2, os);
    size_t bytes = (size_t)own->size * sizeof(float);
    assert_int_equal(nn_model_predict(m, x, own, 32), NN_OK);
    nn_context *c = nn_context_create(m);
    assert_int_equal(nn_context_predict(c, x, ctx, 32), NN_OK);
    nn_context_free(c);
    assert_int_equal(nn_model_save(m, tpath("cbr.nnm"), NN_SAVE_OPTIMIZER),
                     NN_OK);
    nn_model *l = nn_model_load(tpath("cbr.nnm"));
    assert_non_null(l);
    assert_int_equal(nn_model_predict(l, x, loaded, 32), NN_OK);
    assert_memory_equal(own->data, ctx->data, bytes);
    assert_memory_equal(own->data, loaded->data, bytes);
    float la, lb, aa, ab;
    assert_int_equal(nn_model_evaluate(m, x, y, 32, &la, &aa), NN_OK);
    assert_int_equal(nn_model_evaluate(l, x, y, 32, &lb, &ab), NN_OK);
    assert_memory_equal(&la, &lb, sizeof la);
    /* Training again and predicting again: still the same bits as a new
     * context, with no re-planning of either plan in between. */
    float loss;
    for (int rep = 0; rep < 3; rep++) {
        assert_int_equal(nn_model_train_batch(m, x, y, &loss, NULL), NN_OK);
        assert_int_equal(nn_model_predict(m, x, own, 32), NN_OK);
    }
    c = nn_context_create(m);
    assert_int_equal(nn_context_predict(c, x, ctx, 32), NN_OK);
    nn_context_free(c);
    assert_memory_equal(own->data, ctx->data, bytes);
    nn_model_free(l);
    nn_tensor_free(own);
    nn_tensor_free(ctx);
    nn_tensor_free(loaded);
    nn_tensor_free(x);
    nn_tensor_free(y);
    nn_model_free(m);
}

/* Shape messages of fit and evaluate name the argument and both shapes. */
static void test_fit_shape_messages(void **state)
{
    (void)state;
    nn_model *m = conv_bn_relu(22);
    nn_tensor *x, *y;
    make_quadrants(8, &x, &y, 6);
    int64_t s3[3] = {8, 8, 8}, s4[4] = {8, 8, 8, 2};
    nn_tensor *x3 = nn_tensor_create(3, s3), *x4 = nn_tensor_create(4, s4);
    nn_fit_opts f = NN_FIT_OPTS_INIT;
    assert_error(nn_model_fit(m, x3, y, &f, NULL), NN_ERR_SHAPE,
                 "nn_model_fit: x has shape (8, 8, 8), expected (None, 8, 8, "
                 "1): the batch axis (None), then the shape of layer "
                 "'input'");
    /* The same values per sample: the message says how to reshape. */
    assert_non_null(strstr(nn_last_error(), "nn_tensor_reshape"));
    assert_error(nn_model_evaluate(m, x4, y, 4, NULL, NULL), NN_ERR_SHAPE,
                 "nn_model_evaluate: x has shape (8, 8, 8, 2), expected "
                 "(None, 8, 8, 1)");
    assert_null(strstr(nn_last_error(), "nn_tensor_reshape"));
    f.val_x = x4;
    f.val_y = y;
    assert_error(nn_model_fit(m, x, y, &f, NULL), NN_ERR_SHAPE,
                 "nn_model_fit: val_x has shape (8, 8, 8, 2)");
    int64_t os[2] = {8, 4};
    nn_tensor *out = nn_tensor_create(2, os);
    assert_error(nn_model_predict(m, x3, out, 4), NN_ERR_SHAPE,
                 "nn_model_predict: x has shape (8, 8, 8), expected");
    nn_tensor_free(out);
    nn_tensor_free(x3);
    nn_tensor_free(x4);
    nn_tensor_free(x);
    nn_tensor_free(y);
    nn_model_free(m);
}

static nn_tensor *class_ids(int64_t n, int classes)
{
    int64_t s[1] = {n};
    nn_tensor *t = nn_tensor_create(1, s);
    for (int64_t i = 0; i < n; i++) t->data[i] = (float)(i % classes);
    return t;
}

/* Labels of the other cross-entropy, or of a forgotten Flatten. */
static void test_label_messages(void **state)
{
    (void)state;
    nn_model *m = conv_bn_relu(23);
    nn_tensor *x, *onehot;
    make_quadrants(8, &x, &onehot, 7);
    nn_tensor *ids = class_ids(8, 4);
    assert_error(nn_model_fit(m, x, ids, NULL, NULL), NN_ERR_SHAPE,
                 "categorical cross-entropy reads one-hot labels, 4 per "
                 "sample (the shape of output layer 'dense', (None, 4))");
    assert_non_null(strstr(nn_last_error(), "nn_one_hot(y, 4, ...)"));
    assert_non_null(
        strstr(nn_last_error(), "NN_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY"));
    assert_int_equal(nn_model_compile(m, nn_adam(NULL),
                                      NN_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY,
                                      NULL),
                     NN_OK);
    assert_error(nn_model_evaluate(m, x, onehot, 4, NULL, NULL),
                 NN_ERR_SHAPE, "one-hot rows it seems");
    assert_non_null(strstr(nn_last_error(), "sparse categorical"));
    assert_non_null(
        strstr(nn_last_error(), "NN_LOSS_CATEGORICAL_CROSSENTROPY"));
    assert_int_equal(nn_model_fit(m, x, ids, NULL, NULL), NN_OK);
    nn_model_free(m);
    /* A Dense on an image keeps its positions: 8 x 8 rows of 10. */
    m = nn_model_create(24);
    int shape[3] = {8, 8, 1};
    nn_dense_opts d = NN_DENSE_OPTS_INIT;
    d.name = "classes";
    d.activation = NN_ACT_SOFTMAX;
    nn_layer *l = nn_conv2d(m, nn_input(m, 3, shape, NULL), 3, 1, 1, NULL);
    assert_non_null(nn_dense(m, l, 10, &d));
    assert_int_equal(nn_model_compile(m, nn_adam(NULL),
                                      NN_LOSS_CATEGORICAL_CROSSENTROPY, NULL),
                     NN_OK);
    int64_t ys[2] = {8, 10};
    nn_tensor *y10 = nn_tensor_create(2, ys);
    for (int i = 0; i < 8; i++) y10->data[i * 10 + i] = 1;
    assert_error(nn_model_fit(m, x, y10, NULL, NULL), NN_ERR_SHAPE,
                 "y holds 10 values per sample, but the loss needs 640: one "
                 "per output value of output layer 'classes', (None, 8, 8, "
                 "10)");
    assert_non_null(strstr(nn_last_error(), "nn_flatten"));
    nn_tensor_free(y10);
    nn_tensor_free(ids);
    nn_tensor_free(x);
    nn_tensor_free(onehot);
    nn_model_free(m);
}

/* A bad label or a non-finite input is named by its index in the data
 * given to fit, before any step, however fit shuffles. */
static void test_data_value_messages(void **state)
{
    (void)state;
    nn_model *m = conv_bn_relu(25);
    assert_int_equal(nn_model_compile(m, nn_adam(NULL),
                                      NN_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY,
                                      NULL),
                     NN_OK);
    nn_tensor *x, *onehot;
    make_quadrants(64, &x, &onehot, 8);
    nn_tensor *ids = class_ids(64, 4);
    nn_fit_opts f = NN_FIT_OPTS_INIT;
    f.batch_size = 8;
    ids->data[37] = 4;
    assert_error(nn_model_fit(m, x, ids, &f, NULL), NN_ERR_INVALID,
                 "nn_model_fit: y: label of sample 37 is 4, not a class id in "
                 "[0, 4)");
    ids->data[37] = 1;
    nn_tensor *vids = class_ids(64, 4);
    vids->data[5] = -1;
    f.val_x = x;
    f.val_y = vids;
    assert_error(nn_model_fit(m, x, ids, &f, NULL), NN_ERR_INVALID,
                 "nn_model_fit: val_y: label of sample 5 is -1");
    vids->data[5] = 0;
    x->data[41 * 64 + 7] = NAN;
    assert_error(nn_model_fit(m, x, ids, &f, NULL), NN_ERR_NUMERIC,
                 "nn_model_fit: x holds NaN in sample 41 (value 7 of the "
                 "sample): the input data must be finite");
    assert_error(nn_model_evaluate(m, x, ids, 8, NULL, NULL), NN_ERR_NUMERIC,
                 "nn_model_evaluate: x holds NaN in sample 41");
    x->data[41 * 64 + 7] = 0.5f;
    nn_tensor *vx, *vy;
    make_quadrants(64, &vx, &vy, 9);
    vx->data[2 * 64] = INFINITY;
    f.val_x = vx;
    assert_error(nn_model_fit(m, x, ids, &f, NULL), NN_ERR_NUMERIC,
                 "nn_model_fit: val_x holds +Inf in sample 2 (value 0 of");
    assert_int_equal(nn_optimizer_iterations(m->opt), 0);
    nn_tensor_free(vx);
    nn_tensor_free(vy);
    nn_tensor_free(vids);
    nn_tensor_free(ids);
    nn_tensor_free(x);
    nn_tensor_free(onehot);
    nn_model_free(m);
}

/* Binary cross-entropy on a softmax of several classes is refused; on a
 * sigmoid it trains. */
static void test_bce_on_softmax_refused(void **state)
{
    (void)state;
    nn_model *m = conv_bn_relu(26);
    nn_tensor *x, *y;
    make_quadrants(16, &x, &y, 10);
    assert_int_equal(nn_model_compile(m, nn_adam(NULL),
                                      NN_LOSS_BINARY_CROSSENTROPY, NULL),
                     NN_OK);
    assert_error(nn_model_fit(m, x, y, NULL, NULL), NN_ERR_INVALID,
                 "binary cross-entropy on output layer 'dense', a softmax "
                 "over 4 classes");
    assert_non_null(
        strstr(nn_last_error(), "NN_LOSS_CATEGORICAL_CROSSENTROPY"));
    assert_error(nn_model_train_batch(m, x, y, NULL, NULL), NN_ERR_INVALID,
                 "a softmax over 4 classes");
    assert_error(nn_model_evaluate(m, x, y, 8, NULL, NULL), NN_ERR_INVALID,
                 "a softmax over 4 classes");
    assert_int_equal(nn_optimizer_iterations(m->opt), 0);
    /* Declared logits are taken as they are, whatever made them. */
    nn_loss_opts lo = NN_LOSS_OPTS_INIT;
    lo.from_logits = 1;
    assert_int_equal(nn_model_compile(m, nn_adam(NULL),
                                      NN_LOSS_BINARY_CROSSENTROPY, &lo),
                     NN_OK);
    assert_int_equal(nn_model_train_batch(m, x, y, NULL, NULL), NN_OK);
    nn_model_free(m);
    /* A sigmoid output: independent yes/no labels, as meant. */
    m = nn_model_create(27);
    int shape[3] = {8, 8, 1};
    nn_dense_opts d = NN_DENSE_OPTS_INIT;
    d.activation = NN_ACT_SIGMOID;
    nn_layer *l = nn_flatten(m, nn_input(m, 3, shape, NULL), NULL);
    assert_non_null(nn_dense(m, l, 4, &d));
    assert_int_equal(nn_model_compile(m, nn_adam(NULL),
                                      NN_LOSS_BINARY_CROSSENTROPY, NULL),
                     NN_OK);
    assert_int_equal(nn_model_fit(m, x, y, NULL, NULL), NN_OK);
    nn_tensor_free(x);
    nn_tensor_free(y);
    nn_model_free(m);
}

/* A loaded model's optimizer and loss are reachable. */
static void test_model_optimizer_and_loss(void **state)
{
    (void)state;
    nn_model *m = conv_bn_relu(28);
    assert_null(nn_model_optimizer(NULL));
    assert_int_equal(nn_last_status(), NN_ERR_INVALID);
    assert_true(isnan(nn_optimizer_learning_rate(NULL)));
    nn_loss_opts lo = NN_LOSS_OPTS_INIT;
    lo.from_logits = 0;
    lo.smooth = 3.0;
    nn_loss kinds[2] = {NN_LOSS_CATEGORICAL_CROSSENTROPY, NN_LOSS_DICE};
    float w[2] = {1.0f, 0.25f};
    nn_sgd_opts so = NN_SGD_OPTS_INIT;
    so.learning_rate = 0.05f;
    assert_int_equal(
        nn_model_compile_weighted(m, nn_sgd(&so), 2, kinds, w, &lo), NN_OK);
    nn_optimizer *o = nn_model_optimizer(m);
    assert_ptr_equal(o, m->opt);
    assert_true(nn_optimizer_learning_rate(o) == 0.05f);
    nn_tensor *x, *y;
    make_quadrants(16, &x, &y, 11);
    assert_int_equal(nn_model_train_batch(m, x, y, NULL, NULL), NN_OK);
    assert_int_equal(nn_model_save(m, tpath("opt.nnm"), NN_SAVE_OPTIMIZER),
                     NN_OK);
    assert_int_equal(nn_model_save(m, tpath("noopt.nnm"), NN_SAVE_DEFAULT),
                     NN_OK);
    nn_model *l = nn_model_load(tpath("opt.nnm"));
    assert_non_null(l);
    o = nn_model_optimizer(l);
    assert_non_null(o);
    assert_true(nn_optimizer_learning_rate(o) == 0.05f);
    assert_int_equal(nn_optimizer_iterations(o), 1);
    assert_int_equal(nn_optimizer_set_learning_rate(o, 0.01f), NN_OK);
    assert_true(nn_optimizer_learning_rate(nn_model_optimizer(l)) == 0.01f);
    nn_model_free(l);
    /* Without the optimizer: the loss is still known. */
    l = nn_model_load(tpath("noopt.nnm"));
    assert_non_null(l);
    assert_null(nn_model_optimizer(l));
    assert_int_equal(nn_last_status(), NN_ERR_STATE);
    nn_loss got[4] = {0};
    float gw[4] = {0};
    nn_loss_opts go = NN_LOSS_OPTS_INIT;
    assert_int_equal(nn_model_loss(l, got, gw, 4, &go), 2);
    assert_int_equal(got[0], NN_LOSS_CATEGORICAL_CROSSENTROPY);
    assert_int_equal(got[1], NN_LOSS_DICE);
    assert_true(gw[0] == 1.0f && gw[1] == 0.25f);
    assert_true(go.smooth == 3.0);
    /* cap 1 fills one term; an older caller's struct gets what it has. */
    got[1] = (nn_loss)0;
    assert_int_equal(nn_model_loss(l, got, gw, 1, NULL), 2);
    assert_int_equal(got[1], 0);
    nn_loss_opts old = NN_LOSS_OPTS_INIT;
    old.size = offsetof(nn_loss_opts, smooth);
    old.smooth = -1.0;
    assert_int_equal(nn_model_loss(l, NULL, NULL, 0, &old), 2);
    assert_true(old.smooth == -1.0);
    assert_int_equal(nn_model_loss(l, NULL, NULL, 2, NULL), NN_ERR_INVALID);
    nn_model_free(l);
    nn_model *fresh = nn_model_create(1);
    assert_int_equal(nn_model_loss(fresh, got, gw, 4, &go), 0);
    assert_null(nn_model_optimizer(fresh));
    assert_int_equal(nn_model_loss(NULL, got, gw, 4, NULL), NN_ERR_INVALID);
    nn_model_free(fresh);
    nn_tensor_free(x);
    nn_tensor_free(y);
    nn_model_free(m);
}

static int setup_dir(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_train.XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown_dir(void **state)
{
    (void)state;
    remove_tree(tmpdir);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Models: compile, fit with segmentation metrics, checkpoints          */
/* ------------------------------------------------------------------ */

enum { IMG = 8, NSEG = 64 };

/* Random images [n, 8, 8, 1] and their masks: pixels brighter than 0.5. */
static void seg_data(int n, uint64_t seed, nn_tensor **x, nn_tensor **y)
{
    int64_t sx[4] = {n, IMG, IMG, 1}, sy[3] = {n, IMG, IMG};
    *x = nn_tensor_create(4, sx);
    *y = nn_tensor_create(3, sy);
    fill_uniform((*x)->data, (int)(*x)->size, 0, 1, seed);
    for (int64_t k = 0; k < (*x)->size; k++)
        (*y)->data[k] = (*x)->data[k] > 0.5f;
}

/* Conv 3x3 (8, ReLU) - Conv 3x3 (1, sigmoid). */
static nn_model *seg_model(uint64_t seed)
{
    nn_model *m = nn_model_create(seed);
    int shape[3] = {IMG, IMG, 1};
    nn_layer *x = nn_input(m, 3, shape, NULL);
    nn_conv2d_opts o = NN_CONV2D_OPTS_INIT;
    o.padding = NN_PADDING_SAME;
    o.activation = NN_ACT_RELU;
    x = nn_conv2d(m, x, 8, 3, 3, &o);
    o.activation = NN_ACT_SIGMOID;
    assert_non_null(nn_conv2d(m, x, 1, 3, 3, &o));
    return m;
}

static nn_status compile_bce_iou(nn_model *m, float lr)
{
    nn_adam_opts a = NN_ADAM_OPTS_INIT;
    a.learning_rate = lr;
    nn_optimizer *opt = nn_adam(&a);
    nn_loss losses[2] = {BCE, IOU};
    float w[2] = {1, 1};
    nn_status s = nn_model_compile_weighted(m, opt, 2, losses, w, NULL);
    if (s != NN_OK) nn_optimizer_free(opt);
    return s;
}

static double val_iou(nn_model *m, const nn_tensor *x, const nn_tensor *y)
{
    nn_confusion *cm = nn_confusion_create(2);
    float loss;
    assert_int_equal(nn_model_evaluate_confusion(m, x, y, 16, cm, &loss),
                     NN_OK);
    double v = nn_confusion_iou(cm, 1);
    nn_confusion_free(cm);
    return v;
}

/* A real learning effect: a small conv model trained a few dozen steps
 * with BCE + IoU segments held-out images. */
static void test_seg_end_to_end(void **state)
{
    (void)state;
    nn_tensor *x, *y, *vx, *vy;
    seg_data(NSEG, 100, &x, &y);
    seg_data(32, 101, &vx, &vy);
    nn_model *m = seg_model(5);
    assert_int_equal(compile_bce_iou(m, 0.05f), NN_OK);
    double before = val_iou(m, vx, vy);
    nn_fit_opts fo = NN_FIT_OPTS_INIT;
    fo.epochs = 16; /* 64 steps */
    fo.batch_size = 16;
    fo.val_x = vx;
    fo.val_y = vy;
    fo.segmentation_metrics = 1;
    nn_history *h = NULL;
    assert_int_equal(nn_model_fit(m, x, y, &fo, &h), NN_OK);
    double after = val_iou(m, vx, vy);
    print_message("segmentation: validation IoU %.3f before, %.3f after "
                  "64 steps\n", before, after);
    assert_true(after > 0.9);
    assert_true(after > before + 0.2);
    /* The history's last validation IoU is this model's. */
    int last = nn_history_epochs(h) - 1;
    assert_true(fabs(nn_history_get(h, NN_METRIC_VAL_IOU, last) - after) <
                1e-6);
    assert_true(nn_history_get(h, NN_METRIC_IOU, last) >
                nn_history_get(h, NN_METRIC_IOU, 0));
    for (int k = NN_METRIC_IOU; k <= NN_METRIC_VAL_PIXEL_ACCURACY; k++)
        assert_true(isfinite(nn_history_get(h, (nn_metric)k, last)));
    /* One-channel masks: pixel accuracy is Keras' binary accuracy. */
    assert_true(fabs(nn_history_get(h, NN_METRIC_PIXEL_ACCURACY, last) -
                     nn_history_get(h, NN_METRIC_ACCURACY, last)) < 1e-6);
    char dir[] = "/tmp/nn_seg_XXXXXX", path[64], line[512];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/h.csv", dir);
    assert_int_equal(nn_history_write_csv(h, path), NN_OK);
    FILE *f = fopen(path, "r");
    assert_non_null(fgets(line, sizeof line, f));
    fclose(f);
    assert_string_equal(line, "epoch,loss,accuracy,val_loss,val_accuracy,"
                              "seconds,iou,mean_iou,dice,pixel_accuracy,"
                              "val_iou,val_mean_iou,val_dice,"
                              "val_pixel_accuracy\n");
    remove(path);
    rmdir(dir);
    nn_history_free(h);
    /* Without the option nothing is recorded. */
    fo.segmentation_metrics = 0;
    fo.epochs = 1;
    assert_int_equal(nn_model_fit(m, x, y, &fo, &h), NN_OK);
    assert_true(isnan(nn_history_get(h, NN_METRIC_IOU, 0)));
    nn_history_free(h);
    fo.segmentation_metrics = 2;
    assert_int_equal(nn_model_fit(m, x, y, &fo, NULL), NN_ERR_INVALID);
    nn_model_free(m);
    nn_tensor_free(x), nn_tensor_free(y), nn_tensor_free(vx);
    nn_tensor_free(vy);
}

static void test_seg_model_errors(void **state)
{
    (void)state;
    nn_tensor *x, *y;
    seg_data(4, 110, &x, &y);
    nn_model *m = seg_model(6);
    nn_optimizer *opt = nn_sgd(NULL);
    nn_loss two_ce[2] = {BCE, SCCE};
    float w[2] = {1, 1};
    assert_int_equal(nn_model_compile_weighted(m, opt, 2, two_ce, w, NULL),
                     NN_ERR_INVALID);
    assert_int_equal(nn_model_compile_weighted(m, opt, 5, two_ce, w, NULL),
                     NN_ERR_INVALID);
    assert_int_equal(nn_model_compile_weighted(m, opt, 1, NULL, w, NULL),
                     NN_ERR_INVALID);
    assert_false(m->compiled);
    nn_loss_opts lo = NN_LOSS_OPTS_INIT;
    lo.eps = -1;
    assert_int_equal(nn_model_compile(m, opt, IOU, &lo), NN_ERR_INVALID);
    assert_non_null(strstr(nn_last_error(), "nn_model_compile: eps"));
    assert_false(m->compiled);
    /* An older program's struct ends before smooth: the defaults hold. */
    lo.size = offsetof(nn_loss_opts, smooth);
    lo.smooth = NAN;
    assert_int_equal(nn_model_compile(m, opt, IOU, &lo), NN_OK);
    assert_true(m->loss_opts.smooth == 1.0 && m->loss_opts.eps == 1e-7);
    assert_int_equal(m->loss_terms.n, 1);
    assert_int_equal(m->loss_terms.kind[0], IOU);
    assert_int_equal(compile_bce_iou(m, 0.01f), NN_OK);
    assert_int_equal(m->loss, BCE);
    assert_int_equal(m->loss_terms.n, 2);
    /* Masks of the wrong shape. */
    int64_t sbad[3] = {4, IMG, IMG - 1};
    nn_tensor *ybad = nn_tensor_create(3, sbad);
    assert_int_equal(nn_model_train_batch(m, x, ybad, NULL, NULL),
                     NN_ERR_SHAPE);
    assert_non_null(strstr(nn_last_error(), "one per output value"));
    /* A mask value that is not in [0, 1] names the sample and pixel. */
    y->data[2 * IMG * IMG + 9] = 2;
    assert_int_equal(nn_model_train_batch(m, x, y, NULL, NULL),
                     NN_ERR_INVALID);
    assert_non_null(strstr(nn_last_error(), "sample 2, position 9"));
    y->data[2 * IMG * IMG + 9] = 1;
    /* NaN input: NaN output, refused before any update. */
    x->data[3] = NAN;
    assert_int_equal(nn_model_train_batch(m, x, y, NULL, NULL),
                     NN_ERR_NUMERIC);
    x->data[3] = 0.5f;
    nn_confusion *cm = nn_confusion_create(3);
    assert_int_equal(nn_model_evaluate_confusion(m, x, y, 2, cm, NULL),
                     NN_ERR_SHAPE);
    nn_confusion_free(cm);
    assert_int_equal(nn_model_evaluate_confusion(m, x, y, 2, NULL, NULL),
                     NN_ERR_INVALID);
    nn_model_free(m);
    nn_tensor_free(x), nn_tensor_free(y), nn_tensor_free(ybad);
}

/* Sparse categorical CE over [N, H, W, 3] logits with masks [N, H, W]:
 * class ids per pixel, errors naming the sample and the pixel. */
static void test_seg_sparse_model(void **state)
{
    (void)state;
    nn_model *m = nn_model_create(7);
    int shape[3] = {4, 4, 2};
    nn_layer *in = nn_input(m, 3, shape, NULL);
    nn_conv2d_opts o = NN_CONV2D_OPTS_INIT;
    o.padding = NN_PADDING_SAME;
    assert_non_null(nn_conv2d(m, in, 3, 3, 3, &o));
    nn_loss_opts lo = NN_LOSS_OPTS_INIT;
    lo.from_logits = 1;
    nn_loss losses[2] = {SCCE, DICE};
    float w[2] = {1, 0.5f};
    assert_int_equal(nn_model_compile_weighted(m, nn_adam(NULL), 2, losses, w,
                                               &lo),
                     NN_OK);
    int64_t sx[4] = {3, 4, 4, 2}, sy[3] = {3, 4, 4}, sy1[4] = {3, 4, 4, 1};
    nn_tensor *x = nn_tensor_create(4, sx), *y = nn_tensor_create(3, sy);
    fill_uniform(x->data, (int)x->size, -1, 1, 120);
    for (int64_t k = 0; k < y->size; k++) y->data[k] = (float)(k % 3);
    float loss, acc;
    assert_int_equal(nn_model_train_batch(m, x, y, &loss, &acc), NN_OK);
    assert_true(isfinite(loss) && acc >= 0 && acc <= 1);
    nn_tensor *y1 = nn_tensor_create(4, sy1);
    memcpy(y1->data, y->data, (size_t)y->size * sizeof(float));
    assert_int_equal(nn_model_train_batch(m, x, y1, &loss, NULL), NN_OK);
    y->data[16 + 5] = 3;
    assert_int_equal(nn_model_train_batch(m, x, y, NULL, NULL),
                     NN_ERR_INVALID);
    assert_non_null(strstr(nn_last_error(), "sample 1, position 5"));
    y->data[16 + 5] = 2;
    /* Labels as one-hot masks do not fit class ids. */
    int64_t soh[4] = {3, 4, 4, 3};
    nn_tensor *yoh = nn_tensor_create(4, soh);
    assert_int_equal(nn_model_train_batch(m, x, yoh, NULL, NULL),
                     NN_ERR_SHAPE);
    assert_non_null(
        strstr(nn_last_error(), "one class id per output position"));
    /* Accuracy counts positions; the confusion matrix sees them all. */
    nn_confusion *cm = nn_confusion_create(3);
    float eloss;
    assert_int_equal(nn_model_evaluate_confusion(m, x, y, 2, cm, &eloss),
                     NN_OK);
    float el2, ea;
    assert_int_equal(nn_model_evaluate(m, x, y, 2, &el2, &ea), NN_OK);
    assert_true(eloss == el2);
    assert_true(fabs(nn_confusion_pixel_accuracy(cm) - ea) < 1e-6);
    int64_t total = 0;
    for (int t = 0; t < 3; t++)
        for (int p = 0; p < 3; p++) total += nn_confusion_count(cm, t, p);
    assert_int_equal(total, 3 * 16);
    nn_confusion_free(cm);
    nn_model_free(m);
    nn_tensor_free(x), nn_tensor_free(y), nn_tensor_free(y1);
    nn_tensor_free(yoh);
}

/* Reads a whole file. */
static uint8_t *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(*n);
    assert_int_equal(fread(b, 1, *n, f), *n);
    fclose(f);
    return b;
}

static void spit(const char *path, const uint8_t *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_int_equal(fwrite(b, 1, n, f), n);
    fclose(f);
}

/* Patches the u32 at `off` bytes into the LOSS payload and fixes the
 * CRC; returns what loading the result gives. */
static nn_status load_patched(const char *path, const uint8_t *orig, size_t n,
                              size_t payload, size_t off, uint32_t v)
{
    uint8_t *b = malloc(n);
    memcpy(b, orig, n);
    for (int i = 0; i < 4; i++) b[payload + off + i] = (uint8_t)(v >> 8 * i);
    uint32_t crc = nn__crc32(0, b, n - 4);
    for (int i = 0; i < 4; i++) b[n - 4 + i] = (uint8_t)(crc >> 8 * i);
    spit(path, b, n);
    free(b);
    nn_model *m = nn_model_load(path);
    nn_model_free(m);
    return m ? NN_OK : nn_last_status();
}

static void test_seg_checkpoint(void **state)
{
    (void)state;
    char dir[] = "/tmp/nn_segck_XXXXXX", path[64], bad[64];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/m.nnm", dir);
    snprintf(bad, sizeof bad, "%s/bad.nnm", dir);
    nn_model *m = seg_model(8);
    nn_loss_opts lo = NN_LOSS_OPTS_INIT;
    lo.smooth = 0.25;
    lo.eps = 1e-6;
    lo.reduction = NN_LOSS_REDUCE_IMAGE;
    nn_loss losses[2] = {BCE, IOU};
    float w[2] = {0.75f, 2};
    assert_int_equal(nn_model_compile_weighted(m, nn_adam(NULL), 2, losses, w,
                                               &lo),
                     NN_OK);
    nn_tensor *x, *y;
    seg_data(8, 130, &x, &y);
    assert_int_equal(nn_model_train_batch(m, x, y, NULL, NULL), NN_OK);
    assert_int_equal(nn_model_save(m, path, NN_SAVE_OPTIMIZER), NN_OK);
    size_t n;
    uint8_t *file = slurp(path, &n);
    /* Flag bit 3 announces the section: older readers refuse the file. */
    assert_int_equal(file[12], 1 | 8);
    nn_model *b = nn_model_load(path);
    assert_non_null(b);
    assert_true(b->compiled);
    assert_memory_equal(&b->loss_terms, &m->loss_terms, sizeof m->loss_terms);
    assert_true(b->loss_opts.smooth == 0.25 && b->loss_opts.eps == 1e-6 &&
                b->loss_opts.reduction == NN_LOSS_REDUCE_IMAGE);
    /* Training resumes identically. */
    float l1, l2;
    assert_int_equal(nn_model_train_batch(m, x, y, &l1, NULL), NN_OK);
    assert_int_equal(nn_model_train_batch(b, x, y, &l2, NULL), NN_OK);
    assert_true(l1 == l2);
    nn_model_free(b);
    /* Hostile LOSS sections: payload = n, then (kind, weight) pairs,
     * smooth, eps, reduction, sparse_labels. */
    uint8_t *tag = memmem(file, n, "LOSS", 4);
    assert_non_null(tag);
    size_t payload = (size_t)(tag - file) + 12;
    assert_int_equal(load_patched(bad, file, n, payload, 0, 0),
                     NN_ERR_FORMAT);
    assert_int_equal(load_patched(bad, file, n, payload, 0, 5),
                     NN_ERR_FORMAT);
    assert_int_equal(load_patched(bad, file, n, payload, 4, 9),
                     NN_ERR_FORMAT);
    assert_non_null(strstr(nn_last_error(), "unknown loss 9"));
    assert_int_equal(load_patched(bad, file, n, payload, 4, IOU),
                     NN_ERR_FORMAT); /* IoU twice, or MODL disagrees */
    assert_int_equal(load_patched(bad, file, n, payload, 8, 0xbf800000u),
                     NN_ERR_FORMAT); /* weight -1 */
    assert_int_equal(load_patched(bad, file, n, payload, 24, 0xfff00000u),
                     NN_ERR_FORMAT); /* smooth -inf (its high word) */
    assert_int_equal(load_patched(bad, file, n, payload, 32, 0xbff00000u),
                     NN_ERR_FORMAT); /* eps < 0 */
    assert_int_equal(load_patched(bad, file, n, payload, 36, 2),
                     NN_ERR_FORMAT);
    assert_int_equal(load_patched(bad, file, n, payload, 40, 2),
                     NN_ERR_FORMAT);
    assert_int_equal(load_patched(bad, file, n, payload, 8, 0x3f800000u),
                     NN_OK); /* weight 1: still valid */
    free(file);
    /* A plain loss writes no section: the file old readers read. */
    nn_model *p = seg_model(9);
    assert_int_equal(nn_model_compile(p, nn_sgd(NULL), BCE, NULL), NN_OK);
    assert_int_equal(nn_model_save(p, path, NN_SAVE_OPTIMIZER), NN_OK);
    file = slurp(path, &n);
    assert_int_equal(file[12], 1);
    assert_null(memmem(file, n, "LOSS", 4));
    free(file);
    /* IoU alone, saved without the optimizer: remembered, uncompiled. */
    assert_int_equal(nn_model_compile(p, nn_sgd(NULL), DICE, NULL), NN_OK);
    assert_int_equal(nn_model_save(p, path, 0), NN_OK);
    b = nn_model_load(path);
    assert_non_null(b);
    assert_false(b->compiled);
    assert_int_equal(b->loss, DICE);
    assert_int_equal(b->loss_terms.kind[0], DICE);
    nn_model_free(b);
    nn_model_free(p);
    nn_model_free(m);
    nn_tensor_free(x), nn_tensor_free(y);
    remove(path);
    remove(bad);
    rmdir(dir);
}

static void cls_data(int n, int classes, uint64_t seed, nn_tensor **x,
                     nn_tensor **y)
{
    int64_t sx[2] = {n, 4}, sy[1] = {n};
    *x = nn_tensor_create(2, sx);
    *y = nn_tensor_create(1, sy);
    fill_uniform((*x)->data, n * 4, -1, 1, seed);
    for (int i = 0; i < n; i++) {
        const float *r = (*x)->data + i * 4;
        float v = r[0] + 0.5f * r[1] - 0.25f * r[2];
        (*y)->data[i] = classes == 1 ? (float)(v > 0.3f)
                                     : (float)(v > 0.3f) + (float)(v > 0.8f);
    }
}

static nn_status compile_sgd(nn_model *m, nn_loss kind, float lr,
                             const nn_loss_opts *lo)
{
    nn_sgd_opts so = NN_SGD_OPTS_INIT;
    so.learning_rate = lr;
    nn_optimizer *opt = nn_sgd(&so);
    nn_status s = nn_model_compile(m, opt, kind, lo);
    if (s != NN_OK) nn_optimizer_free(opt);
    return s;
}

/* Runs fit on a fresh model and returns its history and kernel. */
static nn_history *fit_weighted(const nn_tensor *x, const nn_tensor *y,
                                const nn_fit_opts *fo, int norm, float lr,
                                float *kernel)
{
    nn_model *m = dense_model(3, 3, NN_ACT_SOFTMAX);
    nn_loss_opts lo = NN_LOSS_OPTS_INIT;
    lo.weight_norm = norm;
    assert_int_equal(compile_sgd(m, SCCE, lr, &lo), NN_OK);
    nn_history *h = NULL;
    assert_int_equal(nn_model_fit(m, x, y, fo, &h), NN_OK);
    nn_tensor *k = nn_layer_weight(nn_model_output(m), 0);
    memcpy(kernel, k->data, 12 * sizeof(float));
    nn_model_free(m);
    return h;
}

/* fit's class_weight is a per-sample weight from the label (Keras), the
 * Keras mean divides by the samples, the weighted mean by the weights. */
static void test_fit_class_weight(void **state)
{
    (void)state;
    nn_tensor *x, *y;
    cls_data(48, 3, 220, &x, &y);
    float cw[3] = {0.5f, 2, 4}, k1[12], k2[12], k0[12];
    int64_t sn[1] = {48};
    nn_tensor *sw = nn_tensor_create(1, sn);
    for (int i = 0; i < 48; i++) sw->data[i] = cw[(int)y->data[i]];
    nn_fit_opts fo = NN_FIT_OPTS_INIT;
    fo.epochs = 3;
    fo.batch_size = 16;
    fo.class_weight = cw;
    fo.num_class_weight = 3;
    nn_history *h1 = fit_weighted(x, y, &fo, 0, 0.1f, k1);
    fo.class_weight = NULL;
    fo.num_class_weight = 0;
    fo.sample_weight = sw;
    nn_history *h2 = fit_weighted(x, y, &fo, 0, 0.1f, k2);
    assert_memory_equal(k1, k2, sizeof k1);
    assert_true(nn_history_get(h1, NN_METRIC_LOSS, 2) ==
                nn_history_get(h2, NN_METRIC_LOSS, 2));
    fo.sample_weight = NULL;
    nn_history *h0 = fit_weighted(x, y, &fo, 0, 0.1f, k0);
    assert_memory_not_equal(k0, k1, sizeof k0);
    nn_history_free(h0), nn_history_free(h1), nn_history_free(h2);
    /* Weights 2 everywhere, one batch (its loss is taken before the
     * update): the Keras loss doubles, the weighted mean does not move;
     * accuracy is not weighted. */
    for (int i = 0; i < 48; i++) sw->data[i] = 2;
    fo.epochs = 1;
    fo.batch_size = 48;
    h0 = fit_weighted(x, y, &fo, 0, 0.1f, k0);
    fo.sample_weight = sw;
    h1 = fit_weighted(x, y, &fo, 0, 0.1f, k1);
    h2 = fit_weighted(x, y, &fo, NN_WEIGHT_NORM_SUM, 0.1f, k2);
    float l0 = nn_history_get(h0, NN_METRIC_LOSS, 0);
    assert_true(fabs(nn_history_get(h1, NN_METRIC_LOSS, 0) - 2 * l0) <
                1e-6 * l0);
    assert_true(fabs(nn_history_get(h2, NN_METRIC_LOSS, 0) - l0) < 1e-6 * l0);
    assert_true(nn_history_get(h1, NN_METRIC_ACCURACY, 0) ==
                nn_history_get(h0, NN_METRIC_ACCURACY, 0));
    nn_history_free(h0), nn_history_free(h1), nn_history_free(h2);
    /* Every weight 0: no loss and no update. */
    memset(sw->data, 0, 48 * sizeof(float));
    fo.epochs = 2;
    h1 = fit_weighted(x, y, &fo, 0, 0.5f, k1);
    nn_model *fresh = dense_model(3, 3, NN_ACT_SOFTMAX);
    assert_memory_equal(nn_layer_weight(nn_model_output(fresh), 0)->data, k1,
                        sizeof k1);
    assert_true(nn_history_get(h1, NN_METRIC_LOSS, 1) == 0);
    nn_model_free(fresh);
    nn_history_free(h1);
    nn_tensor_free(x), nn_tensor_free(y), nn_tensor_free(sw);
}

static void test_fit_weight_errors(void **state)
{
    (void)state;
    nn_tensor *x, *y;
    cls_data(8, 3, 230, &x, &y);
    nn_model *m = dense_model(4, 3, NN_ACT_SOFTMAX);
    assert_int_equal(compile_sgd(m, SCCE, 0.1f, NULL), NN_OK);
    float cw[3] = {1, 1, 1};
    nn_fit_opts fo = NN_FIT_OPTS_INIT;
    fo.class_weight = cw;
    fo.num_class_weight = 2;
    assert_int_equal(nn_model_fit(m, x, y, &fo, NULL), NN_ERR_INVALID);
    assert_non_null(strstr(nn_last_error(), "2 class weights"));
    fo.num_class_weight = 3;
    cw[2] = -0.5f;
    assert_int_equal(nn_model_fit(m, x, y, &fo, NULL), NN_ERR_INVALID);
    assert_non_null(strstr(nn_last_error(), "class weight 2 is -0.5"));
    cw[2] = 1;
    y->data[5] = 7;
    assert_int_equal(nn_model_fit(m, x, y, &fo, NULL), NN_ERR_INVALID);
    assert_non_null(strstr(nn_last_error(), "sample 5"));
    y->data[5] = 1;
    fo.class_weight = NULL;
    assert_int_equal(nn_model_fit(m, x, y, &fo, NULL), NN_ERR_INVALID);
    fo.num_class_weight = 0;
    int64_t s7[1] = {7}, s8[1] = {8};
    nn_tensor *sw7 = nn_tensor_create(1, s7), *sw8 = nn_tensor_create(1, s8);
    fo.sample_weight = sw7;
    assert_int_equal(nn_model_fit(m, x, y, &fo, NULL), NN_ERR_SHAPE);
    fo.sample_weight = sw8;
    sw8->data[3] = INFINITY;
    assert_int_equal(nn_model_fit(m, x, y, &fo, NULL), NN_ERR_INVALID);
    assert_non_null(strstr(nn_last_error(), "sample weight 3 is inf"));
    sw8->data[3] = 1;
    nn_history *h = NULL;
    assert_int_equal(nn_model_fit(m, x, y, &fo, &h), NN_OK);
    nn_history_free(h);
    nn_model_free(m);
    /* Whole-sample class weights do not fit a segmentation output. */
    nn_tensor *sx, *sy;
    seg_data(4, 231, &sx, &sy);
    nn_model *s = seg_model(5);
    assert_int_equal(compile_sgd(s, BCE, 0.1f, NULL), NN_OK);
    float cw2[2] = {1, 3};
    fo = (nn_fit_opts)NN_FIT_OPTS_INIT;
    fo.class_weight = cw2;
    fo.num_class_weight = 2;
    assert_int_equal(nn_model_fit(s, sx, sy, &fo, NULL), NN_ERR_INVALID);
    assert_non_null(strstr(nn_last_error(), "nn_loss_opts.class_weights"));
    /* Sample weights do: each image's loss is weighed. */
    fo.class_weight = NULL;
    fo.num_class_weight = 0;
    int64_t s4[1] = {4};
    nn_tensor *sw4 = nn_tensor_create(1, s4);
    for (int i = 0; i < 4; i++) sw4->data[i] = (float)i;
    fo.sample_weight = sw4;
    assert_int_equal(nn_model_fit(s, sx, sy, &fo, NULL), NN_OK);
    nn_model_free(s);
    nn_tensor_free(x), nn_tensor_free(y), nn_tensor_free(sw7);
    nn_tensor_free(sw8), nn_tensor_free(sx), nn_tensor_free(sy);
    nn_tensor_free(sw4);
}

/* The LOSS section carries the weights; without them it keeps its first
 * layout (older files), and damaged values are refused. */
static void test_weighted_checkpoint(void **state)
{
    (void)state;
    char dir[] = "/tmp/nn_wck_XXXXXX", path[64], bad[64];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/m.nnm", dir);
    snprintf(bad, sizeof bad, "%s/bad.nnm", dir);
    nn_tensor *x, *y;
    cls_data(16, 3, 240, &x, &y);
    nn_model *m = dense_model(6, 3, NN_ACT_SOFTMAX);
    float cw[3] = {0.25f, 1, 3};
    nn_loss_opts lo = NN_LOSS_OPTS_INIT;
    lo.class_weights = cw;
    lo.num_class_weights = 3;
    lo.weight_norm = NN_WEIGHT_NORM_SUM;
    assert_int_equal(compile_sgd(m, SCCE, 0.1f, &lo), NN_OK);
    assert_int_equal(nn_model_train_batch(m, x, y, NULL, NULL), NN_OK);
    assert_int_equal(nn_model_save(m, path, NN_SAVE_OPTIMIZER), NN_OK);
    size_t n;
    uint8_t *file = slurp(path, &n);
    assert_int_equal(file[12], 1 | 8);
    nn_model *b = nn_model_load(path);
    assert_non_null(b);
    assert_int_equal(b->loss_opts.num_class_weights, 3);
    assert_memory_equal(b->loss_opts.class_weights, cw, sizeof cw);
    assert_int_equal(b->loss_opts.weight_norm, NN_WEIGHT_NORM_SUM);
    float l1, l2;
    assert_int_equal(nn_model_train_batch(m, x, y, &l1, NULL), NN_OK);
    assert_int_equal(nn_model_train_batch(b, x, y, &l2, NULL), NN_OK);
    assert_true(l1 == l2);
    nn_model_free(b);
    /* Payload: n, (kind, weight), smooth, eps, reduction, sparse_labels
     * (36 bytes), then pos_weight, weight_norm, K, K weights. */
    uint8_t *tag = memmem(file, n, "LOSS", 4);
    size_t payload = (size_t)(tag - file) + 12;
    assert_int_equal(load_patched(bad, file, n, payload, 40, 2),
                     NN_ERR_FORMAT); /* weight_norm */
    assert_int_equal(load_patched(bad, file, n, payload, 44, 2),
                     NN_ERR_FORMAT); /* 2 weights for 3 classes */
    assert_int_equal(load_patched(bad, file, n, payload, 44, 1000),
                     NN_ERR_FORMAT); /* more than the section holds */
    assert_non_null(strstr(nn_last_error(), "truncated"));
    assert_int_equal(load_patched(bad, file, n, payload, 52, 0xbf800000u),
                     NN_ERR_FORMAT); /* a class weight of -1 */
    assert_int_equal(load_patched(bad, file, n, payload, 36, 0x40000000u),
                     NN_ERR_FORMAT); /* pos_weight 2 without BCE */
    free(file);
    /* Saved without the optimizer: remembered by the uncompiled model. */
    assert_int_equal(nn_model_save(m, path, 0), NN_OK);
    b = nn_model_load(path);
    assert_non_null(b);
    assert_false(b->compiled);
    assert_memory_equal(b->loss_opts.class_weights, cw, sizeof cw);
    nn_model_free(b);
    /* pos_weight alone makes the section too; unweighted BCE does not. */
    nn_model *p = dense_model(7, 1, NN_ACT_SIGMOID);
    nn_loss_opts lb = NN_LOSS_OPTS_INIT;
    lb.pos_weight = 9;
    assert_int_equal(compile_sgd(p, BCE, 0.1f, &lb), NN_OK);
    assert_int_equal(nn_model_save(p, path, NN_SAVE_OPTIMIZER), NN_OK);
    b = nn_model_load(path);
    assert_non_null(b);
    assert_true(b->loss_opts.pos_weight == 9);
    nn_model_free(b);
    assert_int_equal(compile_sgd(p, BCE, 0.1f, NULL), NN_OK);
    assert_int_equal(nn_model_save(p, path, NN_SAVE_OPTIMIZER), NN_OK);
    file = slurp(path, &n);
    assert_null(memmem(file, n, "LOSS", 4));
    free(file);
    nn_model_free(p);
    nn_model_free(m);
    nn_tensor_free(x), nn_tensor_free(y);
    remove(path);
    remove(bad);
    rmdir(dir);
}

/* The scores nn_model_evaluate_binary uses, computed here from predict's
 * output: p_k, or the sum of the others for NN_ALL_BUT(k). */
static void expected_scores(const nn_tensor *out, const nn_tensor *y,
                            int positive, float *s, float *lab)
{
    int64_t n = out->shape[0], c = out->shape[1];
    for (int64_t i = 0; i < n; i++) {
        const float *o = out->data + i * c;
        int k = positive < 0 ? -1 - positive : positive;
        double sum = 0;
        for (int64_t j = 0; j < c; j++) sum += j == k ? 0 : (double)o[j];
        s[i] = positive < 0 ? (float)sum : o[k];
        int cls = (int)y->data[i];
        lab[i] = (float)(positive < 0 ? cls != k : cls == k);
    }
}

static void same_report(const nn_binary_report *a, const nn_binary_report *b)
{
    assert_true(a->threshold == b->threshold && a->tp == b->tp &&
                a->fp == b->fp && a->tn == b->tn && a->fn == b->fn);
    assert_true(a->precision == b->precision && a->recall == b->recall &&
                a->f1 == b->f1 && a->accuracy == b->accuracy);
    assert_true(a->roc_auc == b->roc_auc &&
                a->average_precision == b->average_precision);
}

static void same_curves(const nn_curve *a, const nn_curve *b)
{
    int64_t k = nn_curve_size(a);
    assert_int_equal(nn_curve_size(b), k);
    double *v = malloc((size_t)(4 * (k + 1)) * sizeof *v);
    assert_int_equal(nn_curve_roc(a, v, v + k + 1, NULL, k + 1), NN_OK);
    assert_int_equal(nn_curve_roc(b, v + 2 * (k + 1), v + 3 * (k + 1), NULL,
                                  k + 1), NN_OK);
    assert_memory_equal(v, v + 2 * (k + 1), 2 * (size_t)(k + 1) * sizeof *v);
    free(v);
}

static void test_evaluate_binary(void **state)
{
    (void)state;
    nn_tensor *x, *y;
    cls_data(40, 3, 310, &x, &y);
    nn_model *m = dense_model(8, 3, NN_ACT_SOFTMAX);
    assert_int_equal(compile_sgd(m, SCCE, 0.5f, NULL), NN_OK);
    nn_fit_opts fo = NN_FIT_OPTS_INIT;
    fo.epochs = 5;
    fo.batch_size = 8;
    assert_int_equal(nn_model_fit(m, x, y, &fo, NULL), NN_OK);
    int64_t so[2] = {40, 3};
    nn_tensor *out = nn_tensor_create(2, so);
    assert_int_equal(nn_model_predict(m, x, out, 16), NN_OK);
    float s[40], lab[40];
    const int views[3] = {2, 0, NN_ALL_BUT(0)};
    for (int v = 0; v < 3; v++) {
        expected_scores(out, y, views[v], s, lab);
        nn_curve *want = nn_curve_create(s, lab, 40), *got = NULL;
        nn_binary_opts bo = NN_BINARY_OPTS_INIT;
        bo.positive_class = views[v];
        bo.threshold = 0.3f;
        nn_binary_report r = report_init(), rw = report_init();
        assert_int_equal(nn_model_evaluate_binary(m, x, y, 7, &bo, &r, &got),
                         NN_OK);
        same_curves(want, got);
        assert_int_equal(nn_curve_report(want, 0.3f, &rw), NN_OK);
        same_report(&r, &rw);
        assert_true(r.roc_auc > 0.8); /* it learned something */
        nn_curve_free(want);
        nn_curve_free(got);
    }
    /* The report alone, defaults (class 1 at 0.5). */
    nn_binary_report r = report_init();
    assert_int_equal(nn_model_evaluate_binary(m, x, y, 40, NULL, &r, NULL),
                     NN_OK);
    assert_true(r.threshold == 0.5f && r.tp + r.fn + r.fp + r.tn == 40);
    /* Errors. */
    nn_binary_opts bo = NN_BINARY_OPTS_INIT;
    bo.positive_class = 3;
    assert_int_equal(nn_model_evaluate_binary(m, x, y, 8, &bo, &r, NULL),
                     NN_ERR_INVALID);
    assert_non_null(strstr(nn_last_error(), "positive_class 3"));
    bo.positive_class = NN_ALL_BUT(3);
    assert_int_equal(nn_model_evaluate_binary(m, x, y, 8, &bo, &r, NULL),
                     NN_ERR_INVALID);
    bo.positive_class = 1;
    bo.threshold = NAN;
    assert_int_equal(nn_model_evaluate_binary(m, x, y, 8, &bo, &r, NULL),
                     NN_ERR_INVALID);
    assert_int_equal(nn_model_evaluate_binary(m, x, y, 8, NULL, NULL, NULL),
                     NN_ERR_INVALID);
    assert_int_equal(nn_model_evaluate_binary(m, x, y, 0, NULL, &r, NULL),
                     NN_ERR_INVALID);
    r.size = 0;
    assert_int_equal(nn_model_evaluate_binary(m, x, y, 8, NULL, &r, NULL),
                     NN_ERR_INVALID);
    y->data[3] = 5;
    nn_curve *cv = (nn_curve *)1;
    assert_int_equal(nn_model_evaluate_binary(m, x, y, 8, NULL, NULL, &cv),
                     NN_ERR_INVALID);
    assert_null(cv);
    nn_model_free(m);
    nn_tensor_free(out), nn_tensor_free(x), nn_tensor_free(y);
}

/* One sigmoid channel compiled from logits: the scores are sigmoid(z),
 * and class 0 as the positive one scores 1 - p. */
static void test_evaluate_binary_logits(void **state)
{
    (void)state;
    nn_tensor *x, *y;
    cls_data(30, 1, 320, &x, &y);
    nn_model *m = dense_model(9, 1, NN_ACT_NONE);
    nn_loss_opts lo = NN_LOSS_OPTS_INIT;
    lo.from_logits = 1;
    assert_int_equal(compile_sgd(m, BCE, 0.5f, &lo), NN_OK);
    int64_t sy[2] = {30, 1};
    nn_tensor_reshape(y, 2, sy);
    int64_t so[2] = {30, 1};
    nn_tensor *z = nn_tensor_create(2, so);
    assert_int_equal(nn_model_predict(m, x, z, 30), NN_OK);
    float s[30], lab[30];
    for (int pos = 0; pos < 2; pos++) {
        for (int i = 0; i < 30; i++) {
            double p = 1 / (1 + exp(-(double)z->data[i]));
            s[i] = (float)(pos ? p : 1 - p);
            lab[i] = (float)(pos ? y->data[i] : 1 - y->data[i]);
        }
        nn_curve *want = nn_curve_create(s, lab, 30), *got = NULL;
        nn_binary_opts bo = NN_BINARY_OPTS_INIT;
        bo.positive_class = pos;
        assert_int_equal(nn_model_evaluate_binary(m, x, y, 30, &bo, NULL,
                                                  &got),
                         NN_OK);
        same_curves(want, got);
        nn_curve_free(want);
        nn_curve_free(got);
    }
    nn_model_free(m);
    nn_tensor_free(z), nn_tensor_free(x), nn_tensor_free(y);
}

static void test_fit_decision_metrics(void **state)
{
    (void)state;
    nn_tensor *x, *y, *vx, *vy;
    cls_data(64, 3, 330, &x, &y);
    cls_data(32, 3, 331, &vx, &vy);
    nn_model *m = dense_model(10, 3, NN_ACT_SOFTMAX);
    assert_int_equal(compile_sgd(m, SCCE, 0.5f, NULL), NN_OK);
    nn_binary_opts bo = NN_BINARY_OPTS_INIT;
    bo.positive_class = NN_ALL_BUT(0);
    bo.threshold = 0.4f;
    nn_fit_opts fo = NN_FIT_OPTS_INIT;
    fo.epochs = 4;
    fo.batch_size = 16;
    fo.val_x = vx;
    fo.val_y = vy;
    fo.decision_metrics = &bo;
    nn_history *h = NULL;
    assert_int_equal(nn_model_fit(m, x, y, &fo, &h), NN_OK);
    nn_binary_report r = report_init();
    assert_int_equal(nn_model_evaluate_binary(m, vx, vy, 16, &bo, &r, NULL),
                     NN_OK);
    assert_true(nn_history_get(h, NN_METRIC_VAL_PRECISION, 3) ==
                (float)r.precision);
    assert_true(nn_history_get(h, NN_METRIC_VAL_RECALL, 3) == (float)r.recall);
    assert_true(nn_history_get(h, NN_METRIC_VAL_F1, 3) == (float)r.f1);
    assert_true(nn_history_get(h, NN_METRIC_VAL_ROC_AUC, 3) ==
                (float)r.roc_auc);
    for (int k = NN_METRIC_PRECISION; k <= NN_METRIC_VAL_ROC_AUC; k++) {
        float v = nn_history_get(h, (nn_metric)k, 3);
        assert_true(v >= 0 && v <= 1);
    }
    assert_true(nn_history_get(h, NN_METRIC_ROC_AUC, 3) > 0.8);
    char dir[] = "/tmp/nn_dec_XXXXXX", path[64], line[512];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/h.csv", dir);
    assert_int_equal(nn_history_write_csv(h, path), NN_OK);
    FILE *f = fopen(path, "r");
    assert_non_null(fgets(line, sizeof line, f));
    fclose(f);
    assert_string_equal(line, "epoch,loss,accuracy,val_loss,val_accuracy,"
                              "seconds,precision,recall,f1,roc_auc,"
                              "val_precision,val_recall,val_f1,"
                              "val_roc_auc\n");
    remove(path);
    rmdir(dir);
    nn_history_free(h);
    /* Without validation data the val_ values are NaN; without the option
     * nothing is recorded; a bad view is refused before training. */
    fo.val_x = fo.val_y = NULL;
    fo.epochs = 1;
    assert_int_equal(nn_model_fit(m, x, y, &fo, &h), NN_OK);
    assert_true(isnan(nn_history_get(h, NN_METRIC_VAL_F1, 0)));
    assert_true(isfinite(nn_history_get(h, NN_METRIC_F1, 0)));
    nn_history_free(h);
    fo.decision_metrics = NULL;
    assert_int_equal(nn_model_fit(m, x, y, &fo, &h), NN_OK);
    assert_true(isnan(nn_history_get(h, NN_METRIC_ROC_AUC, 0)));
    nn_history_free(h);
    bo.positive_class = 7;
    fo.decision_metrics = &bo;
    int64_t before = nn_optimizer_iterations(m->opt);
    assert_int_equal(nn_model_fit(m, x, y, &fo, NULL), NN_ERR_INVALID);
    assert_int_equal(nn_optimizer_iterations(m->opt), before);
    nn_model_free(m);
    nn_tensor_free(x), nn_tensor_free(y), nn_tensor_free(vx);
    nn_tensor_free(vy);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seeded_determinism),
        cmocka_unit_test(test_fit_learns),
        cmocka_unit_test(test_allocation_failures),
        cmocka_unit_test(test_predict_after_training_bits),
        cmocka_unit_test(test_fit_shape_messages),
        cmocka_unit_test(test_label_messages),
        cmocka_unit_test(test_data_value_messages),
        cmocka_unit_test(test_bce_on_softmax_refused),
        cmocka_unit_test(test_model_optimizer_and_loss),
        cmocka_unit_test(test_seg_end_to_end),
        cmocka_unit_test(test_seg_model_errors),
        cmocka_unit_test(test_seg_sparse_model),
        cmocka_unit_test(test_seg_checkpoint),
        cmocka_unit_test(test_fit_class_weight),
        cmocka_unit_test(test_fit_weight_errors),
        cmocka_unit_test(test_weighted_checkpoint),
        cmocka_unit_test(test_evaluate_binary),
        cmocka_unit_test(test_evaluate_binary_logits),
        cmocka_unit_test(test_fit_decision_metrics),
    };
    return cmocka_run_group_tests_name("train", tests, setup_dir, teardown_dir);
}

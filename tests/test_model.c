/* Model-level behaviour: building, summary, training, determinism,
 * concurrent inference, invalid calls, allocation failures. */
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
#include "tmpdir.h"

static nn_model *q3a(int h, int w, int c, uint64_t seed)
{
    nn_model *m = nn_model_create(seed);
    int shape[3] = {h, w, c};
    nn_conv2d_opts conv = NN_CONV2D_OPTS_INIT;
    conv.activation = NN_ACT_RELU;
    nn_dense_opts dense = NN_DENSE_OPTS_INIT;
    dense.activation = NN_ACT_SOFTMAX;
    nn_layer *x = nn_input(m, 3, shape, NULL);
    x = nn_conv2d(m, x, 32, 3, 3, &conv);
    x = nn_maxpool2d(m, x, 2, 2, NULL);
    x = nn_conv2d(m, x, 64, 3, 3, &conv);
    x = nn_maxpool2d(m, x, 2, 2, NULL);
    x = nn_flatten(m, x, NULL);
    x = nn_dropout(m, x, 0.5f, NULL);
    x = nn_dense(m, x, 10, &dense);
    return x ? m : (nn_model_free(m), NULL);
}

static nn_tensor *random_tensor(int rank, const int64_t *shape, uint64_t seed)
{
    nn_tensor *t = nn_tensor_create(rank, shape);
    nn_rng r;
    nn__rng_seed(&r, seed);
    for (int64_t i = 0; i < t->size; i++) t->data[i] = nn__rng_uniform(&r);
    return t;
}

static nn_tensor *random_one_hot(int64_t n, int classes, uint64_t seed)
{
    int64_t shape[2] = {n, classes};
    nn_tensor *t = nn_tensor_create(2, shape);
    nn_rng r;
    nn__rng_seed(&r, seed);
    for (int64_t i = 0; i < n; i++)
        t->data[i * classes + (int64_t)nn__rng_below(&r, (uint64_t)classes)] = 1;
    return t;
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
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_model.XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown_dir(void **state)
{
    (void)state;
    remove_tree(tmpdir);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_summary_q3a),
        cmocka_unit_test(test_names_and_lookup),
        cmocka_unit_test(test_invalid_calls),
        cmocka_unit_test(test_seeded_determinism),
        cmocka_unit_test(test_fit_learns),
        cmocka_unit_test(test_concurrent_inference),
        cmocka_unit_test(test_thread_local_errors),
        cmocka_unit_test(test_allocation_failures),
        cmocka_unit_test(test_model_apply),
        cmocka_unit_test(test_inference_buffer_reuse),
        cmocka_unit_test(test_apply_trains_shared_weights),
        cmocka_unit_test(test_apply_allocation_failures),
        cmocka_unit_test(test_param_walk),
        cmocka_unit_test(test_param_walk_agrees),
        cmocka_unit_test(test_predict_after_training_bits),
        cmocka_unit_test(test_fit_shape_messages),
        cmocka_unit_test(test_label_messages),
        cmocka_unit_test(test_data_value_messages),
        cmocka_unit_test(test_bce_on_softmax_refused),
        cmocka_unit_test(test_model_optimizer_and_loss),
    };
    return cmocka_run_group_tests_name("model", tests, setup_dir,
                                       teardown_dir);
}

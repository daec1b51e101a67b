/* Model-level behaviour: building, summary, training, determinism,
 * concurrent inference, invalid calls, allocation failures. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "nn_internal.h"

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
    assert_non_null(strstr(nn_last_error(), "labels"));
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
    /* The model's own context, once it has trained, keeps every buffer:
     * a gradient reaches every layer here. */
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
    };
    return cmocka_run_group_tests_name("model", tests, NULL, NULL);
}

/* Helpers shared by several test files: the loss kinds' short names, a
 * seeded uniform fill, small models and random inputs, shape and
 * prediction checks.
 *
 * Include after cmocka.h and nn_internal.h. */
#ifndef NN_TEST_HELPERS_H
#define NN_TEST_HELPERS_H

#include <stdint.h>
#include <string.h>

#define CCE NN_LOSS_CATEGORICAL_CROSSENTROPY
#define SCCE NN_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY
#define BCE NN_LOSS_BINARY_CROSSENTROPY
#define IOU NN_LOSS_IOU
#define DICE NN_LOSS_DICE

static inline void fill_uniform(float *v, int n, float lo, float hi, uint64_t seed)
{
    nn_rng r;
    nn__rng_seed(&r, seed);
    for (int k = 0; k < n; k++) v[k] = lo + (hi - lo) * nn__rng_uniform(&r);
}

static inline nn_binary_report report_init(void)
{
    nn_binary_report r;
    memset(&r, 0xff, sizeof r);
    r.size = sizeof r;
    return r;
}

/* A one-layer classifier: Dense(classes) on 4 inputs, softmax or
 * sigmoid. */
static inline nn_model *dense_model(uint64_t seed, int classes, nn_activation act)
{
    nn_model *m = nn_model_create(seed);
    int shape[1] = {4};
    nn_layer *x = nn_input(m, 1, shape, NULL);
    nn_dense_opts o = NN_DENSE_OPTS_INIT;
    o.activation = act;
    assert_non_null(nn_dense(m, x, classes, &o));
    return m;
}

static inline nn_model *q3a(int h, int w, int c, uint64_t seed)
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

static inline nn_tensor *random_tensor(int rank, const int64_t *shape, uint64_t seed)
{
    nn_tensor *t = nn_tensor_create(rank, shape);
    nn_rng r;
    nn__rng_seed(&r, seed);
    for (int64_t i = 0; i < t->size; i++) t->data[i] = nn__rng_uniform(&r);
    return t;
}

static inline nn_tensor *random_one_hot(int64_t n, int classes, uint64_t seed)
{
    int64_t shape[2] = {n, classes};
    nn_tensor *t = nn_tensor_create(2, shape);
    nn_rng r;
    nn__rng_seed(&r, seed);
    for (int64_t i = 0; i < n; i++)
        t->data[i * classes + (int64_t)nn__rng_below(&r, (uint64_t)classes)] = 1;
    return t;
}

static inline void predict(nn_model *m, nn_tensor *x, nn_tensor *out)
{
    assert_int_equal(nn_model_predict(m, x, out, 64), NN_OK);
}

static inline void expect_shape(const nn_layer *l, int rank, int d0, int d1, int d2)
{
    int s[NN_MAX_RANK];
    assert_int_equal(nn_layer_output_shape(l, s, NN_MAX_RANK), rank);
    int want[3] = {d0, d1, d2};
    for (int i = 0; i < rank; i++) assert_int_equal(s[i], want[i]);
}

static inline nn_layer *image_input(nn_model *m, int h, int w, int c)
{
    int shape[3] = {h, w, c};
    return nn_input(m, 3, shape, NULL);
}

static inline nn_tensor *tensor4(int n, int h, int w, int c)
{
    int64_t s[4] = {n, h, w, c};
    return nn_tensor_create(4, s);
}

#endif

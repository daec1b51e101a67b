/* The small model and data set of the data-parallel tests, through the
 * public API only: tests/test_parallel.c (threads as processes) and
 * tests/mpi/test_mpi.c (processes under mpirun) train the same thing. */
#ifndef NN_TESTS_DATA_PARALLEL_H
#define NN_TESTS_DATA_PARALLEL_H

#include <nn.h>

#include <stdbool.h>

/* Input 8x8x2 - Conv2D(6, 3x3, relu) - [BatchNormalization] -
 * MaxPooling2D(2) - Flatten - [Dropout(0.25)] - Dense(4, softmax),
 * compiled with Adam; NULL (the message set) on failure. */
static inline nn_model *dp_model(uint64_t seed, bool bn, bool dropout)
{
    nn_model *m = nn_model_create(seed);
    int shape[3] = {8, 8, 2};
    nn_conv2d_opts conv = NN_CONV2D_OPTS_INIT;
    conv.activation = NN_ACT_RELU;
    nn_dense_opts dense = NN_DENSE_OPTS_INIT;
    dense.activation = NN_ACT_SOFTMAX;
    nn_layer *x = nn_input(m, 3, shape, NULL);
    x = nn_conv2d(m, x, 6, 3, 3, &conv);
    if (bn) x = nn_batchnorm(m, x, NULL);
    x = nn_maxpool2d(m, x, 2, 2, NULL);
    x = nn_flatten(m, x, NULL);
    if (dropout) x = nn_dropout(m, x, 0.25f, NULL);
    x = nn_dense(m, x, 4, &dense);
    if (!x || nn_model_compile(m, nn_adam(NULL),
                               NN_LOSS_CATEGORICAL_CROSSENTROPY,
                               NULL) != NN_OK) {
        nn_model_free(m);
        return NULL;
    }
    return m;
}

#define DP_SAMPLE 128 /* floats per sample: 8 x 8 x 2 */
#define DP_CLASSES 4

/* n samples in [0, 1) with one-hot labels, the same for the same seed on
 * every process. */
static inline void dp_data(int64_t n, uint64_t seed, nn_tensor **x,
                           nn_tensor **y)
{
    int64_t xs[4] = {n, 8, 8, 2}, ys[2] = {n, DP_CLASSES};
    *x = nn_tensor_create(4, xs);
    *y = nn_tensor_create(2, ys);
    float *xd = nn_tensor_data(*x), *yd = nn_tensor_data(*y);
    uint64_t s = seed;
    for (int64_t i = 0; i < nn_tensor_size(*x); i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        xd[i] = (float)(s >> 40) / (float)(1 << 24);
    }
    for (int64_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        yd[i * DP_CLASSES + (int64_t)((s >> 33) % DP_CLASSES)] = 1;
    }
}

#endif

/* The two models fuzz_safetensors.c imports into, shared with make_seeds.c
 * so the seeds fit them. NULL when building fails. */
#ifndef NN_FUZZ_ST_MODELS_H
#define NN_FUZZ_ST_MODELS_H

#include "nn.h"

/* libnn names: Conv2D -> BatchNormalization -> Flatten -> Dense. */
static nn_model *st_libnn_model(void)
{
    nn_model *m = nn_model_create(1);
    int shape[3] = {6, 6, 2};
    nn_layer *x = nn_input(m, 3, shape, NULL);
    if (x) x = nn_conv2d(m, x, 3, 3, 3, NULL);
    if (x) x = nn_batchnorm(m, x, NULL);
    if (x) x = nn_flatten(m, x, NULL);
    if (x) x = nn_dense(m, x, 2, NULL);
    if (!x) nn_model_free(m);
    return x ? m : NULL;
}

/* Layers named as the torchvision ResNet map expects: conv1 -> bn1 ->
 * layer1.0.downsample.{0,1} -> fc, without conv biases (torchvision's
 * convolutions have none). */
static nn_model *st_torch_model(void)
{
    nn_model *m = nn_model_create(2);
    int shape[3] = {6, 6, 2};
    nn_conv2d_opts c = NN_CONV2D_OPTS_INIT;
    c.use_bias = 0;
    nn_batchnorm_opts b = NN_BATCHNORM_OPTS_INIT;
    nn_dense_opts d = NN_DENSE_OPTS_INIT;
    d.name = "predictions";
    nn_layer *x = nn_input(m, 3, shape, NULL);
    c.name = "conv1_conv";
    if (x) x = nn_conv2d(m, x, 3, 3, 3, &c);
    b.name = "conv1_bn";
    if (x) x = nn_batchnorm(m, x, &b);
    c.name = "conv2_block1_0_conv";
    if (x) x = nn_conv2d(m, x, 4, 1, 1, &c);
    b.name = "conv2_block1_0_bn";
    if (x) x = nn_batchnorm(m, x, &b);
    if (x) x = nn_flatten(m, x, NULL);
    if (x) x = nn_dense(m, x, 2, &d);
    if (!x) nn_model_free(m);
    return x ? m : NULL;
}

#endif

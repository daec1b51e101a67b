/* Parameter initializers with Keras's definitions (VarianceScaling):
 * glorot = fan_avg with scale 1, he = fan_in with scale 2; the uniform
 * kind draws from [-sqrt(3 var), sqrt(3 var)], the normal kind from a
 * normal truncated at two standard deviations, rescaled so the variance
 * is still `var`. RandomNormal is an untruncated N(0, stddev). */
#include "nn_internal.h"

#include <math.h>
#include <string.h>

/* Standard deviation of N(0,1) truncated to [-2, 2]. */
#define TRUNC_STDDEV 0.87962566103423978

static void fill_uniform(float *d, int64_t n, double var, nn_rng *rng)
{
    float limit = (float)sqrt(3.0 * var);
    for (int64_t i = 0; i < n; i++)
        d[i] = limit * (2.0f * nn__rng_uniform(rng) - 1.0f);
}

static void fill_truncated_normal(float *d, int64_t n, double var, nn_rng *rng)
{
    float sd = (float)(sqrt(var) / TRUNC_STDDEV);
    for (int64_t i = 0; i < n; i++) {
        float z;
        do z = nn__rng_normal(rng);
        while (z < -2.0f || z > 2.0f);
        d[i] = sd * z;
    }
}

static void fill_normal(float *d, int64_t n, double stddev, nn_rng *rng)
{
    float sd = (float)stddev;
    for (int64_t i = 0; i < n; i++) d[i] = sd * nn__rng_normal(rng);
}

void nn__init_param(nn_param *p, nn_initializer init, int64_t fan_in,
                    int64_t fan_out, nn_rng *rng)
{
    nn__init_param_sd(p, init, 0.0f, fan_in, fan_out, rng);
}

void nn__init_param_sd(nn_param *p, nn_initializer init, float stddev,
                       int64_t fan_in, int64_t fan_out, nn_rng *rng)
{
    float *d = p->value.data;
    int64_t n = p->value.size;
    double fi = fan_in > 0 ? (double)fan_in : 1.0;
    double fo = fan_out > 0 ? (double)fan_out : 1.0;
    switch (init) {
    case NN_INIT_ZEROS:
        memset(d, 0, (size_t)n * sizeof(float));
        break;
    case NN_INIT_ONES:
        for (int64_t i = 0; i < n; i++) d[i] = 1.0f;
        break;
    case NN_INIT_GLOROT_NORMAL:
        fill_truncated_normal(d, n, 2.0 / (fi + fo), rng);
        break;
    case NN_INIT_HE_UNIFORM:
        fill_uniform(d, n, 2.0 / fi, rng);
        break;
    case NN_INIT_HE_NORMAL:
        fill_truncated_normal(d, n, 2.0 / fi, rng);
        break;
    case NN_INIT_RANDOM_NORMAL:
        fill_normal(d, n, stddev > 0.0f ? stddev : NN_INIT_STDDEV_DEFAULT,
                    rng);
        break;
    case NN_INIT_DEFAULT: /* layers resolve DEFAULT; kernels' default */
    case NN_INIT_GLOROT_UNIFORM:
    default:
        fill_uniform(d, n, 2.0 / (fi + fo), rng);
        break;
    }
}

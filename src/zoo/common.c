/* Building blocks that the zoo's models share. */
#include "zoo/zoo.h"
#include "layers/layers.h"

#include <stdio.h>

nn_layer *nn__zoo_conv(nn_model *m, nn_layer *x, int filters, int k,
                       int stride, nn_padding pad, const nn_zoo_style *st,
                       const char *name)
{
    if (!x) return NULL;
    nn_conv2d_opts o = NN_CONV2D_OPTS_INIT;
    o.name = name;
    o.stride_h = o.stride_w = stride;
    o.padding = pad;
    o.use_bias = st->conv_bias;
    return nn_conv2d(m, x, filters, k, k, &o);
}

nn_layer *nn__zoo_bn(nn_model *m, nn_layer *x, const nn_zoo_style *st,
                     const char *name)
{
    if (!x) return NULL;
    nn_batchnorm_opts o = NN_BATCHNORM_OPTS_INIT;
    o.name = name;
    o.epsilon = st->bn_eps;
    o.momentum = st->bn_momentum;
    return nn_batchnorm(m, x, &o);
}

nn_layer *nn__zoo_relu(nn_model *m, nn_layer *x, const char *name)
{
    if (!x) return NULL;
    nn_layer_opts o = NN_LAYER_OPTS_INIT;
    o.name = name;
    return nn_relu(m, x, &o);
}

nn_layer *nn__zoo_relu6(nn_model *m, nn_layer *x, const char *name)
{
    if (!x) return NULL;
    nn_layer_opts o = NN_LAYER_OPTS_INIT;
    o.name = name;
    return nn_relu6(m, x, &o);
}

nn_layer *nn__zoo_zeropad(nn_model *m, nn_layer *x, int top, int bottom,
                          int left, int right, const char *name)
{
    if (!x) return NULL;
    nn_layer_opts o = NN_LAYER_OPTS_INIT;
    o.name = name;
    return nn_zeropad2d(m, x, top, bottom, left, right, &o);
}

const char *nn__zoo_name(char *buf, const char *prefix, const char *suffix)
{
    snprintf(buf, NN_NAME_MAX, "%s%s", prefix, suffix);
    return buf;
}

nn_status nn__zoo_check_input(const char *who, int height, int width,
                              int channels, int include_top, int classes,
                              nn_activation classifier_activation)
{
    NN_CHECK(height >= 32 && width >= 32 && channels >= 1 &&
                 height <= (1 << 16) && width <= (1 << 16) &&
                 channels <= (1 << 16),
             NN_ERR_INVALID,
             "%s: input %dx%dx%d; height and width must be at least 32 "
             "(and at most 65536)",
             who, height, width, channels);
    NN_CHECK(!include_top ||
                 (classes >= 1 && classes <= (1 << 24) &&
                  nn__activation_ok(classifier_activation)),
             NN_ERR_INVALID, "%s: %d classes, activation %d", who, classes,
             (int)classifier_activation);
    return NN_OK;
}

nn_layer *nn__zoo_top(nn_model *m, nn_layer *x, const char *pool_name,
                      float dropout, int classes, nn_activation activation)
{
    if (!x) return NULL;
    nn_layer_opts o = NN_LAYER_OPTS_INIT;
    o.name = pool_name;
    x = nn_global_avgpool2d(m, x, &o);
    if (x && dropout > 0.0f) x = nn_dropout(m, x, dropout, NULL);
    if (!x) return NULL;
    nn_dense_opts d = NN_DENSE_OPTS_INIT;
    d.name = "predictions";
    d.activation = activation;
    return nn_dense(m, x, classes, &d);
}

bool nn__zoo_number(const char **s, int *out)
{
    int v = 0, digits = 0;
    while (**s >= '0' && **s <= '9' && digits < 4) {
        v = v * 10 + (**s - '0');
        (*s)++;
        digits++;
    }
    *out = v;
    return digits > 0;
}

/* Conv2D: NHWC input, kernel [kh, kw, cin, filters], optional bias and a
 * fused activation. With a softmax or sigmoid activation the layer keeps
 * its pre-activation output (logits) in its state for the loss. */
#include "kernels/kernels.h"
#include "layers/layers.h"

#include <math.h>
#include <string.h>

static nn_status conv_check(const nn_layer *l, nn_status err, const char *who)
{
    return nn__conv_config_check(l, false, err, who);
}

static nn_status conv_build(nn_layer *l)
{
    NN_TRY(conv_check(l, NN_ERR_INVALID, "Conv2D"));
    NN_TRY(nn__conv_build_window(l));
    nn_conv_cfg c = nn__conv_cfg(l);
    int cin = l->inputs[0]->out.d[2];
    NN_CHECK((int64_t)c.kh * c.kw * cin <= INT32_MAX, NN_ERR_SHAPE,
             "Conv2D '%s': kernel window of more than %d values", l->name,
             INT32_MAX);
    int kshape[4] = {c.kh, c.kw, cin, c.filters};
    NN_TRY(nn__layer_add_param(l, "kernel", 4, kshape, true));
    if (c.use_bias) NN_TRY(nn__layer_add_param(l, "bias", 1, &c.filters, true));
    return NN_OK;
}

static void conv_init(nn_layer *l, nn_rng *rng)
{
    nn_conv_cfg c = nn__conv_cfg(l);
    int64_t window = (int64_t)c.kh * c.kw;
    int64_t cin = l->params[0].value.shape[2];
    nn__init_param(&l->params[0], c.kinit, window * cin, window * c.filters,
                   rng);
    if (c.use_bias)
        nn__init_param(&l->params[1], c.binit, window * cin,
                       window * c.filters, rng);
}

nn_conv_geom nn__conv2d_geom(const nn_layer *l, int batch)
{
    nn_conv_cfg c = nn__conv_cfg(l);
    const nn_shape *in = &l->inputs[0]->out;
    return (nn_conv_geom){
        .n = batch, .h = in->d[0], .w = in->d[1], .c = in->d[2],
        .kh = c.kh, .kw = c.kw, .sh = c.sh, .sw = c.sw,
        .pad_top = c.pad_top, .pad_left = c.pad_left,
        .oh = l->out.d[0], .ow = l->out.d[1], .f = c.filters,
    };
}

static size_t conv_scratch(const nn_layer *l, int batch, bool training)
{
    nn_conv_geom g = nn__conv2d_geom(l, batch);
    /* + a fused epilogue's scale and shift per filter. */
    size_t f = nn__conv2d_forward_scratch(&g) + 2 * (size_t)g.f;
    if (!training) return f;
    size_t b = nn__conv2d_backward_scratch(&g, true);
    return f > b ? f : b;
}

static int64_t out_rows(const nn_layer *l, int batch)
{
    return (int64_t)batch * l->out.d[0] * l->out.d[1];
}

static size_t conv_state_bytes(const nn_layer *l, int batch)
{
    if (!nn__act_keeps_logits(l->activation)) return 0;
    return (size_t)out_rows(l, batch) * (size_t)l->out.d[2] * sizeof(float);
}

static const float *conv_logits(const nn_layer *l, const void *state)
{
    return nn__act_keeps_logits(l->activation) ? state : NULL;
}

/* The convolution and the layers fused into it (nn_fuse): the
 * normalization of (x + bias) becomes x * scale + (bias * scale + shift). */
static nn_status fused_forward(const nn_layer *l, const nn_fwd *a,
                               const nn_conv_geom *g, const float *bias)
{
    const nn_fuse *fu = a->fuse;
    float *scale = a->scratch + nn__conv2d_forward_scratch(g);
    float *shift = scale + g->f;
    nn__bn_fold(fu->bn, scale, shift);
    if (bias)
        for (int j = 0; j < g->f; j++)
            shift[j] = fmaf(bias[j], scale[j], shift[j]);
    nn_epilogue e = {.scale = scale, .shift = shift, .residual = a->residual,
                     .ldr = g->f, .relu = fu->relu, .relu6 = fu->relu6};
    nn__conv2d_forward_epi(g, a->in[0], l->params[0].value.data, &e, a->out,
                           a->scratch);
    return NN_OK;
}

static nn_status conv_forward(const nn_layer *l, const nn_fwd *a)
{
    nn_conv_geom g = nn__conv2d_geom(l, a->batch);
    const float *bias =
        nn__conv_cfg(l).use_bias ? l->params[1].value.data : NULL;
    if (a->fuse) return fused_forward(l, a, &g, bias);
    float *logits = nn__act_keeps_logits(l->activation) ? a->state : NULL;
    nn__conv2d_forward_act(&g, a->in[0], l->params[0].value.data, bias,
                           l->activation, logits, a->out, a->scratch);
    return NN_OK;
}

static nn_status conv_backward(nn_layer *l, const nn_bwd *a)
{
    nn_conv_geom g = nn__conv2d_geom(l, a->batch);
    nn_activation act = a->dout_is_preact ? NN_ACT_NONE : l->activation;
    nn__conv2d_backward_act(&g, act, a->out, a->in[0], l->params[0].value.data,
                            a->dout, a->din[0], a->accum[0],
                            nn__param_grad(l, 0),
                            nn__conv_cfg(l).use_bias ? nn__param_grad(l, 1)
                                                     : NULL,
                            a->scratch);
    return NN_OK;
}

static nn_status conv_load(nn_layer *l, const uint8_t *buf, size_t len)
{
    NN_TRY(nn__conv_config_load(l, buf, len, "Conv2D"));
    return conv_check(l, NN_ERR_FORMAT, "Conv2D config");
}

const nn_layer_ops nn__conv2d_ops = {
    .type_name = "Conv2D",
    .stem = "conv2d",
    .build = conv_build,
    .init = conv_init,
    .scratch_floats = conv_scratch,
    .state_bytes = conv_state_bytes,
    .forward = conv_forward,
    .backward = conv_backward,
    .logits = conv_logits,
    .save_config = nn__conv_config_save,
    .load_config = conv_load,
    .receptive = nn__conv_receptive,
};

nn_layer *nn_conv2d(nn_model *m, nn_layer *input, int filters, int kh, int kw,
                    const nn_conv2d_opts *opts)
{
    nn_conv2d_opts o = NN_CONV2D_OPTS_INIT;
    if (nn__read_opts(&o, opts, "nn_conv2d") != NN_OK) return NULL;
    if (!m || !input) {
        nn__fail(NN_ERR_INVALID, "nn_conv2d: %s is NULL",
                 m ? "input" : "model");
        return NULL;
    }
    nn_layer proto = {0};
    nn_conv_cfg c = {.filters = filters, .kh = kh, .kw = kw,
                     .sh = o.stride_h, .sw = o.stride_w,
                     .use_bias = o.use_bias != 0, .padding = o.padding,
                     .kinit = o.kernel_init, .binit = o.bias_init};
    nn__set_conv_cfg(&proto, &c);
    proto.activation = o.activation;
    if (conv_check(&proto, NN_ERR_INVALID, "nn_conv2d") != NN_OK) return NULL;
    return nn__add_layer(m, NN_KIND_CONV2D, 1, &input, o.name, &proto);
}

/* DepthwiseConv2D: each input channel convolved with its own
 * depth_multiplier kernels (Keras' depthwise_kernel [kh, kw, in, mult]),
 * output channel c * mult + k; optional bias and a fused activation. The
 * numeric work is src/kernels/depthwise.c's. In an inference pass the
 * layer may also compute a BatchNormalization and a ReLU/ReLU6 that follow
 * it (src/graph/fuse.c), in the kernel's epilogue. */
#include "kernels/seg_kernels.h"
#include "layers/layers.h"

#include <math.h>

typedef struct dw_cfg {
    nn_window win;
    int mult, use_bias;
    nn_initializer kinit, binit;
    float std[2]; /* kernel, bias initializer stddev */
} dw_cfg;
NN_LAYER_CONFIG(dw_cfg, cfg_of, set_cfg)

static nn_status dw_check(const nn_layer *l, nn_status err, const char *who)
{
    dw_cfg c = cfg_of(l);
    NN_TRY(nn__window_check(&c.win, c.use_bias, err, who));
    NN_CHECK(c.mult > 0 && c.mult <= NN_LAYER_DIM_MAX, err,
             "%s: depth_multiplier %d; it must be at least 1", who, c.mult);
    NN_TRY(nn__stddev_check(c.std, 2, err, who));
    return nn__check_act_inits(l, c.kinit, c.binit, err, who);
}

static nn_status dw_build(nn_layer *l)
{
    NN_TRY(dw_check(l, NN_ERR_INVALID, "DepthwiseConv2D"));
    dw_cfg c = cfg_of(l);
    if (c.kinit == NN_INIT_DEFAULT) c.kinit = NN_INIT_GLOROT_UNIFORM;
    if (c.binit == NN_INIT_DEFAULT) c.binit = NN_INIT_ZEROS;
    NN_TRY(nn__one_input(l, 3));
    int cin = l->out.d[2];
    int64_t f = (int64_t)cin * c.mult;
    NN_CHECK(f <= NN_LAYER_DIM_MAX, NN_ERR_SHAPE,
             "DepthwiseConv2D '%s': %d channels x depth_multiplier %d is too "
             "many output channels",
             l->name, cin, c.mult);
    int oh = 0, ow = 0;
    NN_TRY(nn__window_build(l, &c.win, &oh, &ow));
    set_cfg(l, &c);
    l->out = (nn_shape){3, {oh, ow, (int)f}};
    NN_TRY(nn__check_out_size(l));
    int kshape[4] = {c.win.kh, c.win.kw, cin, c.mult};
    NN_TRY(nn__layer_add_param(l, "depthwise_kernel", 4, kshape, true));
    int nf = (int)f;
    if (c.use_bias) NN_TRY(nn__layer_add_param(l, "bias", 1, &nf, true));
    return NN_OK;
}

/* Keras' fans of a [kh, kw, in, mult] kernel: the window times its last
 * two axes; of a bias [f]: f both ways. */
static void dw_init(nn_layer *l, nn_rng *rng)
{
    dw_cfg c = cfg_of(l);
    int64_t window = (int64_t)c.win.kh * c.win.kw;
    int64_t cin = l->params[0].value.shape[2];
    int64_t fan_in = window * cin, fan_out = window * c.mult;
    nn__init_param_sd(&l->params[0], c.kinit, c.std[0], fan_in, fan_out, rng);
    if (c.use_bias) nn__init_bias(&l->params[1], c.binit, c.std[1], rng);
}

static nn_conv_geom dw_geom(const nn_layer *l, int batch)
{
    dw_cfg c = cfg_of(l);
    return nn__window_geom(&c.win, l, batch, l->out.d[2]);
}

static const float *dw_bias(const nn_layer *l)
{
    return cfg_of(l).use_bias ? l->params[1].value.data : NULL;
}

/* Forward: a fused epilogue's scale and shift per channel; training: the
 * backward pass's. */
static size_t dw_scratch(const nn_layer *l, int batch, bool training)
{
    nn_conv_geom g = dw_geom(l, batch);
    size_t f = 2 * (size_t)g.f;
    if (!training) return f;
    size_t b = nn__depthwise_backward_scratch(&g);
    return f > b ? f : b;
}

/* The layers fused into the convolution (nn_fuse): the normalization of
 * (x + bias) becomes x * scale + (bias * scale + shift). */
static void dw_fused_forward(const nn_layer *l, const nn_fwd *a,
                             const nn_conv_geom *g)
{
    const nn_fuse *fu = a->fuse;
    const float *bias = dw_bias(l);
    float *scale = a->scratch, *shift = scale + g->f;
    nn__bn_fold(fu->bn, scale, shift);
    if (bias)
        for (int j = 0; j < g->f; j++)
            shift[j] = fmaf(bias[j], scale[j], shift[j]);
    nn_epilogue e = {.scale = scale, .shift = shift, .residual = a->residual,
                     .ldr = g->f, .relu = fu->relu, .relu6 = fu->relu6};
    nn__depthwise_forward_epi(g, a->in[0], l->params[0].value.data, &e,
                              a->out);
}

static nn_status dw_forward(const nn_layer *l, const nn_fwd *a)
{
    nn_conv_geom g = dw_geom(l, a->batch);
    nn__geom_fold_pad(&g, a->pad);
    if (a->fuse) {
        dw_fused_forward(l, a, &g);
        return NN_OK;
    }
    /* Bias and ReLU or ReLU6 applied as the sums leave the registers. */
    nn_activation act = l->activation;
    if (act == NN_ACT_NONE || act == NN_ACT_RELU || act == NN_ACT_RELU6) {
        nn_epilogue e = {.shift = dw_bias(l), .relu = act == NN_ACT_RELU,
                         .relu6 = act == NN_ACT_RELU6};
        nn__depthwise_forward_epi(&g, a->in[0], l->params[0].value.data, &e,
                                  a->out);
        return NN_OK;
    }
    nn__depthwise_forward(&g, a->in[0], l->params[0].value.data, dw_bias(l),
                          a->out);
    nn__act_layer_forward(l, a);
    return NN_OK;
}

static nn_status dw_backward(nn_layer *l, const nn_bwd *a)
{
    nn_conv_geom g = dw_geom(l, a->batch);
    nn__act_layer_backward(l, a);
    nn__depthwise_backward(&g, a->in[0], l->params[0].value.data, a->dout,
                           a->din[0], a->accum[0], nn__param_grad(l, 0),
                           cfg_of(l).use_bias ? nn__param_grad(l, 1) : NULL,
                           a->scratch);
    return NN_OK;
}

/* kh, kw, sh, sw, padding, depth_multiplier, use_bias, activation, kernel
 * initializer, bias initializer (i32), kernel and bias stddev (f32) */
static size_t dw_save(const nn_layer *l, uint8_t *buf, size_t cap)
{
    dw_cfg c = cfg_of(l);
    nn_cfg_writer w = {buf, cap, 0};
    nn__window_save(&w, &c.win);
    int32_t v[] = {c.mult, c.use_bias, (int32_t)l->activation,
                   (int32_t)c.kinit, (int32_t)c.binit};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        nn__cfg_put_i32(&w, v[i]);
    for (int i = 0; i < 2; i++) nn__cfg_put_f32(&w, c.std[i]);
    return w.len;
}

static nn_status dw_load(nn_layer *l, const uint8_t *buf, size_t len)
{
    nn_cfg_reader r = {buf, len, 0, false};
    dw_cfg c = {0};
    nn__window_load(&r, &c.win);
    c.mult = nn__cfg_get_i32(&r);
    c.use_bias = nn__cfg_get_i32(&r);
    l->activation = (nn_activation)nn__cfg_get_i32(&r);
    c.kinit = (nn_initializer)nn__cfg_get_i32(&r);
    c.binit = (nn_initializer)nn__cfg_get_i32(&r);
    for (int i = 0; i < 2; i++) c.std[i] = nn__cfg_get_f32(&r);
    set_cfg(l, &c);
    NN_TRY(nn__cfg_end(&r, "DepthwiseConv2D"));
    return dw_check(l, NN_ERR_FORMAT, "DepthwiseConv2D config");
}

static void dw_receptive(const nn_layer *l, nn_receptive *r)
{
    dw_cfg c = cfg_of(l);
    nn__window_receptive(&c.win, r);
}

/* The kernel reads only inside its input; a forward's scratch is two
 * floats per channel, whatever the input. */
static bool dw_reads_padded(const nn_layer *l, const int pad[4])
{
    (void)l;
    (void)pad;
    return true;
}

const nn_layer_ops nn__depthwise_conv2d_ops = {
    .type_name = "DepthwiseConv2D",
    .stem = "depthwise_conv2d",
    .build = dw_build,
    .init = dw_init,
    .scratch_floats = dw_scratch,
    .state_bytes = nn__act_state_bytes,
    .forward = dw_forward,
    .backward = dw_backward,
    .logits = nn__act_logits,
    .save_config = dw_save,
    .load_config = dw_load,
    .receptive = dw_receptive,
    .reads_padded = dw_reads_padded,
};

nn_layer *nn_depthwise_conv2d(nn_model *m, nn_layer *input, int kh, int kw,
                              const nn_depthwise_conv2d_opts *opts)
{
    nn_depthwise_conv2d_opts o = NN_DEPTHWISE_CONV2D_OPTS_INIT;
    if (nn__read_opts(&o, opts, "nn_depthwise_conv2d") != NN_OK) return NULL;
    if (!m || !input) {
        nn__fail(NN_ERR_INVALID, "nn_depthwise_conv2d: %s is NULL",
                 m ? "input" : "model");
        return NULL;
    }
    nn_layer proto = {0};
    dw_cfg c = {.win = {kh, kw, o.stride_h, o.stride_w, o.padding, 0, 0},
                .mult = o.depth_multiplier, .use_bias = o.use_bias != 0,
                .kinit = o.kernel_init, .binit = o.bias_init,
                .std = {o.kernel_init_stddev, o.bias_init_stddev}};
    set_cfg(&proto, &c);
    proto.activation = o.activation;
    if (dw_check(&proto, NN_ERR_INVALID, "nn_depthwise_conv2d") != NN_OK)
        return NULL;
    return nn__add_layer(m, NN_KIND_DEPTHWISE_CONV2D, 1, &input, o.name,
                         &proto);
}

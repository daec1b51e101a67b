/* Conv2DTranspose: the gradient of a convolution with respect to its
 * input, as Keras computes it (tf.nn.conv2d_transpose): kernel [kh, kw,
 * filters, in] as Keras stores it, optional bias and a fused activation.
 * Output sizes follow Keras' deconv_output_length and the leading pad
 * TensorFlow derives from them (nn__conv_transpose_axis); the numeric
 * work is src/kernels/conv_transpose.c's, on the geometry of that
 * convolution (from this layer's output space to its input space). */
#include "kernels/seg_kernels.h"
#include "layers/layers.h"

/* The window's pads are the convolution's (nn__conv_transpose_axis). */
typedef struct ct_cfg {
    nn_window win;
    int filters, use_bias;
    /* Keras' output_padding: none (has_op 0, both 0) or a pair. */
    int has_op, op_h, op_w;
    nn_initializer kinit, binit;
    float std[2]; /* kernel, bias initializer stddev */
} ct_cfg;
NN_LAYER_CONFIG(ct_cfg, cfg_of, set_cfg)

static nn_status ct_check_op(const ct_cfg *c, nn_status err, const char *who)
{
    NN_CHECK(c->has_op == 0 || c->has_op == 1, err,
             "%s: output_padding flag %d", who, c->has_op);
    if (!c->has_op) {
        NN_CHECK(c->op_h == 0 && c->op_w == 0, err,
                 "%s: output_padding %d, %d without its flag", who, c->op_h,
                 c->op_w);
        return NN_OK;
    }
    NN_CHECK(c->op_h >= 0 && c->op_w >= 0 && c->op_h < c->win.sh &&
                 c->op_w < c->win.sw,
             err,
             "%s: output_padding %d, %d with strides %d, %d; each must be "
             "at least 0 and less than its stride (as in Keras)",
             who, c->op_h, c->op_w, c->win.sh, c->win.sw);
    return NN_OK;
}

static nn_status ct_check(const nn_layer *l, nn_status err, const char *who)
{
    ct_cfg c = cfg_of(l);
    NN_CHECK(c.filters > 0 && c.filters <= NN_LAYER_DIM_MAX, err,
             "%s: %d filters", who, c.filters);
    NN_TRY(nn__window_check(&c.win, c.use_bias, err, who));
    NN_TRY(ct_check_op(&c, err, who));
    NN_TRY(nn__stddev_check(c.std, 2, err, who));
    return nn__check_act_inits(l, c.kinit, c.binit, err, who);
}

/* One axis' output length and leading pad, or the reason there is none. */
static nn_status ct_axis(const nn_layer *l, const char *axis, int in, int k,
                         int s, int op, int *out, int *pad)
{
    bool same = cfg_of(l).win.padding == NN_PADDING_SAME;
    NN_CHECK(nn__conv_transpose_axis(in, k, s, same, op, out, pad),
             NN_ERR_SHAPE,
             "Conv2DTranspose '%s': input %s %d, kernel %d, stride %d, "
             "padding '%s' and output_padding %d give no output size that "
             "the convolution maps back to %d (TensorFlow refuses it too); "
             "use another output_padding",
             l->name, axis, in, k, s, same ? "same" : "valid", op, in);
    return NN_OK;
}

static nn_status ct_build(nn_layer *l)
{
    NN_TRY(ct_check(l, NN_ERR_INVALID, "Conv2DTranspose"));
    ct_cfg c = cfg_of(l);
    if (c.kinit == NN_INIT_DEFAULT) c.kinit = NN_INIT_GLOROT_UNIFORM;
    if (c.binit == NN_INIT_DEFAULT) c.binit = NN_INIT_ZEROS;
    NN_TRY(nn__one_input(l, 3));
    int cin = l->out.d[2], oh = 0, ow = 0;
    nn_window *w = &c.win;
    NN_TRY(ct_axis(l, "height", l->out.d[0], w->kh, w->sh,
                   c.has_op ? c.op_h : -1, &oh, &w->pad_top));
    NN_TRY(ct_axis(l, "width", l->out.d[1], w->kw, w->sw,
                   c.has_op ? c.op_w : -1, &ow, &w->pad_left));
    set_cfg(l, &c);
    l->out = (nn_shape){3, {oh, ow, c.filters}};
    NN_TRY(nn__check_out_size(l));
    NN_CHECK((int64_t)w->kh * w->kw * c.filters <= INT32_MAX, NN_ERR_SHAPE,
             "Conv2DTranspose '%s': kernel window of more than %d values",
             l->name, INT32_MAX);
    int kshape[4] = {w->kh, w->kw, c.filters, cin};
    NN_TRY(nn__layer_add_param(l, "kernel", 4, kshape, true));
    if (c.use_bias) NN_TRY(nn__layer_add_param(l, "bias", 1, &c.filters, true));
    return NN_OK;
}

/* Keras' fans of a [kh, kw, filters, in] kernel: the window times its
 * last two axes, so fan_in counts the filters; of a bias [filters]:
 * filters both ways. */
static void ct_init(nn_layer *l, nn_rng *rng)
{
    ct_cfg c = cfg_of(l);
    int64_t window = (int64_t)c.win.kh * c.win.kw;
    int64_t cin = l->params[0].value.shape[3];
    int64_t fan_in = window * c.filters, fan_out = window * cin;
    nn__init_param_sd(&l->params[0], c.kinit, c.std[0], fan_in, fan_out, rng);
    if (c.use_bias) nn__init_bias(&l->params[1], c.binit, c.std[1], rng);
}

/* The convolution this layer is the input gradient of: from the output
 * [H, W, filters] to the input [h, w, in]. */
static nn_conv_geom ct_geom(const nn_layer *l, int batch)
{
    nn_window w = cfg_of(l).win;
    const nn_shape *in = &l->inputs[0]->out;
    return (nn_conv_geom){
        .n = batch, .h = l->out.d[0], .w = l->out.d[1], .c = l->out.d[2],
        .kh = w.kh, .kw = w.kw, .sh = w.sh, .sw = w.sw,
        .pad_top = w.pad_top, .pad_left = w.pad_left,
        .oh = in->d[0], .ow = in->d[1], .f = in->d[2],
    };
}

static size_t ct_scratch(const nn_layer *l, int batch, bool training)
{
    nn_conv_geom g = ct_geom(l, batch);
    size_t f = nn__conv_transpose_forward_scratch(&g);
    if (!training) return f;
    size_t b = nn__conv_transpose_backward_scratch(&g, true);
    return f > b ? f : b;
}

static nn_status ct_forward(const nn_layer *l, const nn_fwd *a)
{
    nn_conv_geom g = ct_geom(l, a->batch);
    const float *bias =
        cfg_of(l).use_bias ? l->params[1].value.data : NULL;
    nn__conv_transpose_forward(&g, a->in[0], l->params[0].value.data, bias,
                               a->out, a->scratch);
    nn__act_layer_forward(l, a);
    return NN_OK;
}

static nn_status ct_backward(nn_layer *l, const nn_bwd *a)
{
    nn_conv_geom g = ct_geom(l, a->batch);
    nn__act_layer_backward(l, a);
    nn__conv_transpose_backward(&g, a->in[0], l->params[0].value.data,
                                a->dout, a->din[0], a->accum[0],
                                nn__param_grad(l, 0),
                                cfg_of(l).use_bias ? nn__param_grad(l, 1)
                                                   : NULL,
                                a->scratch);
    return NN_OK;
}

/* filters, kh, kw, sh, sw, padding, use_bias, output_padding flag,
 * output_padding h, w, activation, kernel initializer, bias initializer
 * (i32), kernel and bias stddev (f32) */
static size_t ct_save(const nn_layer *l, uint8_t *buf, size_t cap)
{
    ct_cfg c = cfg_of(l);
    nn_cfg_writer w = {buf, cap, 0};
    nn__cfg_put_i32(&w, c.filters);
    nn__window_save(&w, &c.win);
    int32_t v[] = {c.use_bias, c.has_op, c.op_h, c.op_w,
                   (int32_t)l->activation, (int32_t)c.kinit,
                   (int32_t)c.binit};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        nn__cfg_put_i32(&w, v[i]);
    for (int i = 0; i < 2; i++) nn__cfg_put_f32(&w, c.std[i]);
    return w.len;
}

static nn_status ct_load(nn_layer *l, const uint8_t *buf, size_t len)
{
    nn_cfg_reader r = {buf, len, 0, false};
    ct_cfg c = {0};
    c.filters = nn__cfg_get_i32(&r);
    nn__window_load(&r, &c.win);
    c.use_bias = nn__cfg_get_i32(&r);
    c.has_op = nn__cfg_get_i32(&r);
    c.op_h = nn__cfg_get_i32(&r);
    c.op_w = nn__cfg_get_i32(&r);
    l->activation = (nn_activation)nn__cfg_get_i32(&r);
    c.kinit = (nn_initializer)nn__cfg_get_i32(&r);
    c.binit = (nn_initializer)nn__cfg_get_i32(&r);
    for (int i = 0; i < 2; i++) c.std[i] = nn__cfg_get_f32(&r);
    set_cfg(l, &c);
    NN_TRY(nn__cfg_end(&r, "Conv2DTranspose"));
    return ct_check(l, NN_ERR_FORMAT, "Conv2DTranspose config");
}

/* An output position gets contributions from ceil(k / s) input positions
 * per axis; neighbouring outputs lie 1 / s input positions apart. */
static void ct_receptive(const nn_layer *l, nn_receptive *r)
{
    nn_window w = cfg_of(l).win;
    *r = (nn_receptive){false,
                        {(w.kh + w.sh - 1) / w.sh, (w.kw + w.sw - 1) / w.sw},
                        {1, 1},
                        {w.sh, w.sw}};
}

const nn_layer_ops nn__conv2d_transpose_ops = {
    .type_name = "Conv2DTranspose",
    .stem = "conv2d_transpose",
    .build = ct_build,
    .init = ct_init,
    .scratch_floats = ct_scratch,
    .state_bytes = nn__act_state_bytes,
    .forward = ct_forward,
    .backward = ct_backward,
    .logits = nn__act_logits,
    .save_config = ct_save,
    .load_config = ct_load,
    .receptive = ct_receptive,
};

/* Keras' output_padding is None or a pair: both -1, or both set. */
static nn_status ct_opts_op(const nn_conv2d_transpose_opts *o, ct_cfg *c)
{
    const char *who = "nn_conv2d_transpose";
    NN_CHECK(o->reserved == 0, NN_ERR_INVALID,
             "%s: opts->reserved is %d; it must be 0 (initialise the "
             "options with NN_CONV2D_TRANSPOSE_OPTS_INIT)",
             who, o->reserved);
    bool none_h = o->output_padding_h == -1, none_w = o->output_padding_w == -1;
    NN_CHECK(none_h == none_w, NN_ERR_INVALID,
             "%s: output_padding %d, %d: both must be -1 (None) or both "
             "set, as Keras' output_padding is None or a pair",
             who, o->output_padding_h, o->output_padding_w);
    c->has_op = !none_h;
    c->op_h = none_h ? 0 : o->output_padding_h;
    c->op_w = none_w ? 0 : o->output_padding_w;
    return NN_OK;
}

nn_layer *nn_conv2d_transpose(nn_model *m, nn_layer *input, int filters,
                              int kh, int kw,
                              const nn_conv2d_transpose_opts *opts)
{
    nn_conv2d_transpose_opts o = NN_CONV2D_TRANSPOSE_OPTS_INIT;
    if (nn__read_opts(&o, opts, "nn_conv2d_transpose") != NN_OK) return NULL;
    if (!m || !input) {
        nn__fail(NN_ERR_INVALID, "nn_conv2d_transpose: %s is NULL",
                 m ? "input" : "model");
        return NULL;
    }
    ct_cfg c = {.win = {kh, kw, o.stride_h, o.stride_w, o.padding, 0, 0},
                .filters = filters, .use_bias = o.use_bias != 0,
                .kinit = o.kernel_init, .binit = o.bias_init,
                .std = {o.kernel_init_stddev, o.bias_init_stddev}};
    if (ct_opts_op(&o, &c) != NN_OK) return NULL;
    nn_layer proto = {0};
    set_cfg(&proto, &c);
    proto.activation = o.activation;
    if (ct_check(&proto, NN_ERR_INVALID, "nn_conv2d_transpose") != NN_OK)
        return NULL;
    return nn__add_layer(m, NN_KIND_CONV2D_TRANSPOSE, 1, &input, o.name,
                         &proto);
}

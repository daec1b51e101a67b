/* SeparableConv2D: a depthwise convolution (src/kernels/depthwise.c, no
 * bias) into an intermediate [rows, in * mult], then a pointwise product
 * with the [in * mult, filters] kernel, the bias and a fused activation.
 * The intermediate lives in scratch: the backward pass computes it again
 * (one depthwise pass, memory-bound and cheap) rather than keeping it from
 * forward to backward in every context, inference ones included. */
#include "kernels/seg_kernels.h"
#include "layers/layers.h"

typedef struct sep_cfg {
    nn_window win;
    int filters, mult, use_bias;
    nn_initializer dinit, pinit, binit;
    float std[3]; /* depthwise, pointwise, bias initializer stddev */
} sep_cfg;
NN_LAYER_CONFIG(sep_cfg, cfg_of, set_cfg)

static bool dim_ok(int v) { return v > 0 && v <= NN_LAYER_DIM_MAX; }

static nn_status sep_check(const nn_layer *l, nn_status err, const char *who)
{
    sep_cfg c = cfg_of(l);
    NN_CHECK(dim_ok(c.filters), err, "%s: %d filters", who, c.filters);
    NN_TRY(nn__window_check(&c.win, c.use_bias, err, who));
    NN_CHECK(dim_ok(c.mult), err, "%s: depth_multiplier %d; it must be at "
             "least 1", who, c.mult);
    NN_CHECK(nn__initializer_ok(c.pinit), err,
             "%s: unknown pointwise initializer %d", who, (int)c.pinit);
    NN_TRY(nn__stddev_check(c.std, 3, err, who));
    return nn__check_act_inits(l, c.dinit, c.binit, err, who);
}

static nn_status sep_build(nn_layer *l)
{
    NN_TRY(sep_check(l, NN_ERR_INVALID, "SeparableConv2D"));
    sep_cfg c = cfg_of(l);
    if (c.dinit == NN_INIT_DEFAULT) c.dinit = NN_INIT_GLOROT_UNIFORM;
    if (c.pinit == NN_INIT_DEFAULT) c.pinit = NN_INIT_GLOROT_UNIFORM;
    if (c.binit == NN_INIT_DEFAULT) c.binit = NN_INIT_ZEROS;
    NN_TRY(nn__one_input(l, 3));
    int cin = l->out.d[2];
    int64_t cm = (int64_t)cin * c.mult;
    NN_CHECK(cm <= NN_LAYER_DIM_MAX, NN_ERR_SHAPE,
             "SeparableConv2D '%s': %d channels x depth_multiplier %d is too "
             "many intermediate channels",
             l->name, cin, c.mult);
    int oh = 0, ow = 0;
    NN_TRY(nn__window_build(l, &c.win, &oh, &ow));
    set_cfg(l, &c);
    NN_CHECK((int64_t)oh * ow * cm <= NN_SAMPLE_MAX, NN_ERR_SHAPE,
             "SeparableConv2D '%s': intermediate of more than %d values per "
             "sample",
             l->name, NN_SAMPLE_MAX);
    l->out = (nn_shape){3, {oh, ow, c.filters}};
    NN_TRY(nn__check_out_size(l));
    int dshape[4] = {c.win.kh, c.win.kw, cin, c.mult};
    int pshape[4] = {1, 1, (int)cm, c.filters};
    NN_TRY(nn__layer_add_param(l, "depthwise_kernel", 4, dshape, true));
    NN_TRY(nn__layer_add_param(l, "pointwise_kernel", 4, pshape, true));
    if (c.use_bias) NN_TRY(nn__layer_add_param(l, "bias", 1, &c.filters, true));
    return NN_OK;
}

/* Keras' fans for each shape: [kh, kw, in, mult] the window times its
 * last two axes, [1, 1, in * mult, filters] its last two axes, a bias
 * its length. */
static void sep_init(nn_layer *l, nn_rng *rng)
{
    sep_cfg c = cfg_of(l);
    int64_t window = (int64_t)c.win.kh * c.win.kw;
    int64_t cin = l->params[0].value.shape[2], cm = cin * c.mult;
    nn__init_param_sd(&l->params[0], c.dinit, c.std[0], window * cin,
                      window * c.mult, rng);
    nn__init_param_sd(&l->params[1], c.pinit, c.std[1], cm, c.filters, rng);
    if (c.use_bias) nn__init_bias(&l->params[2], c.binit, c.std[2], rng);
}

/* The depthwise step's geometry: to [oh, ow, in * mult]. */
static nn_conv_geom sep_geom(const nn_layer *l, int batch)
{
    sep_cfg c = cfg_of(l);
    return nn__window_geom(&c.win, l, batch,
                           l->inputs[0]->out.d[2] * c.mult);
}

static size_t round16(size_t n) { return (n + 15) & ~(size_t)15; }

/* Floats of the intermediate (and of its gradient) over a batch. */
static size_t mid_floats(const nn_conv_geom *g)
{
    return round16((size_t)g->n * (size_t)g->oh * (size_t)g->ow *
                   (size_t)g->f);
}

/* Forward: the intermediate. Training: the intermediate, its gradient,
 * then the depthwise backward pass's scratch. */
static size_t sep_scratch(const nn_layer *l, int batch, bool training)
{
    nn_conv_geom g = sep_geom(l, batch);
    if (!training) return mid_floats(&g);
    return 2 * mid_floats(&g) + nn__depthwise_backward_scratch(&g);
}

static int64_t sep_rows(const nn_conv_geom *g)
{
    return (int64_t)g->n * g->oh * g->ow;
}

static nn_status sep_forward(const nn_layer *l, const nn_fwd *a)
{
    sep_cfg c = cfg_of(l);
    nn_conv_geom g = sep_geom(l, a->batch);
    int64_t rows = sep_rows(&g);
    float *mid = a->scratch;
    nn__depthwise_forward(&g, a->in[0], l->params[0].value.data, NULL, mid);
    nn__gemm(false, false, rows, c.filters, g.f, mid, g.f,
             l->params[1].value.data, c.filters, 0.0f, a->out, c.filters);
    if (c.use_bias)
        nn__bias_add(a->out, l->params[2].value.data, rows, c.filters);
    nn__act_layer_forward(l, a);
    return NN_OK;
}

static nn_status sep_backward(nn_layer *l, const nn_bwd *a)
{
    sep_cfg c = cfg_of(l);
    nn_conv_geom g = sep_geom(l, a->batch);
    int64_t rows = sep_rows(&g);
    float *mid = a->scratch, *dmid = mid + mid_floats(&g);
    float *ddw = nn__param_grad(l, 0), *dpw = nn__param_grad(l, 1);
    float *db = c.use_bias ? nn__param_grad(l, 2) : NULL;
    const float *wd = l->params[0].value.data, *wp = l->params[1].value.data;
    nn__act_layer_backward(l, a);
    if (dpw) {
        nn__depthwise_forward(&g, a->in[0], wd, NULL, mid);
        nn__gemm(true, false, g.f, c.filters, rows, mid, g.f, a->dout,
                 c.filters, 0.0f, dpw, c.filters);
    }
    if (db) nn__colsum(a->dout, rows, c.filters, db);
    if (!a->din[0] && !ddw) return NN_OK;
    nn__gemm(false, true, rows, g.f, c.filters, a->dout, c.filters, wp,
             c.filters, 0.0f, dmid, g.f);
    nn__depthwise_backward(&g, a->in[0], wd, dmid, a->din[0], a->accum[0],
                           ddw, NULL, dmid + mid_floats(&g));
    return NN_OK;
}

/* filters, kh, kw, sh, sw, padding, depth_multiplier, use_bias,
 * activation, depthwise, pointwise and bias initializer (i32), their
 * stddevs (f32) */
static size_t sep_save(const nn_layer *l, uint8_t *buf, size_t cap)
{
    sep_cfg c = cfg_of(l);
    nn_cfg_writer w = {buf, cap, 0};
    nn__cfg_put_i32(&w, c.filters);
    nn__window_save(&w, &c.win);
    int32_t v[] = {c.mult, c.use_bias, (int32_t)l->activation,
                   (int32_t)c.dinit, (int32_t)c.pinit, (int32_t)c.binit};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        nn__cfg_put_i32(&w, v[i]);
    for (int i = 0; i < 3; i++) nn__cfg_put_f32(&w, c.std[i]);
    return w.len;
}

static nn_status sep_load(nn_layer *l, const uint8_t *buf, size_t len)
{
    nn_cfg_reader r = {buf, len, 0, false};
    sep_cfg c = {0};
    c.filters = nn__cfg_get_i32(&r);
    nn__window_load(&r, &c.win);
    c.mult = nn__cfg_get_i32(&r);
    c.use_bias = nn__cfg_get_i32(&r);
    l->activation = (nn_activation)nn__cfg_get_i32(&r);
    c.dinit = (nn_initializer)nn__cfg_get_i32(&r);
    c.pinit = (nn_initializer)nn__cfg_get_i32(&r);
    c.binit = (nn_initializer)nn__cfg_get_i32(&r);
    for (int i = 0; i < 3; i++) c.std[i] = nn__cfg_get_f32(&r);
    set_cfg(l, &c);
    NN_TRY(nn__cfg_end(&r, "SeparableConv2D"));
    return sep_check(l, NN_ERR_FORMAT, "SeparableConv2D config");
}

static void sep_receptive(const nn_layer *l, nn_receptive *r)
{
    sep_cfg c = cfg_of(l);
    nn__window_receptive(&c.win, r);
}

const nn_layer_ops nn__separable_conv2d_ops = {
    .type_name = "SeparableConv2D",
    .stem = "separable_conv2d",
    .build = sep_build,
    .init = sep_init,
    .scratch_floats = sep_scratch,
    .state_bytes = nn__act_state_bytes,
    .forward = sep_forward,
    .backward = sep_backward,
    .logits = nn__act_logits,
    .save_config = sep_save,
    .load_config = sep_load,
    .receptive = sep_receptive,
};

nn_layer *nn_separable_conv2d(nn_model *m, nn_layer *input, int filters,
                              int kh, int kw,
                              const nn_separable_conv2d_opts *opts)
{
    nn_separable_conv2d_opts o = NN_SEPARABLE_CONV2D_OPTS_INIT;
    if (nn__read_opts(&o, opts, "nn_separable_conv2d") != NN_OK) return NULL;
    if (!m || !input) {
        nn__fail(NN_ERR_INVALID, "nn_separable_conv2d: %s is NULL",
                 m ? "input" : "model");
        return NULL;
    }
    nn_layer proto = {0};
    sep_cfg c = {.win = {kh, kw, o.stride_h, o.stride_w, o.padding, 0, 0},
                 .filters = filters, .mult = o.depth_multiplier,
                 .use_bias = o.use_bias != 0, .dinit = o.depthwise_init,
                 .pinit = o.pointwise_init, .binit = o.bias_init,
                 .std = {o.depthwise_init_stddev, o.pointwise_init_stddev,
                         o.bias_init_stddev}};
    set_cfg(&proto, &c);
    proto.activation = o.activation;
    if (sep_check(&proto, NN_ERR_INVALID, "nn_separable_conv2d") != NN_OK)
        return NULL;
    return nn__add_layer(m, NN_KIND_SEPARABLE_CONV2D, 1, &input, o.name,
                         &proto);
}

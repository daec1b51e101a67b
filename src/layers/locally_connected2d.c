/* LocallyConnected2D: like a VALID Conv2D, but every output position has
 * its own kernel and bias (Keras, implementation 1): kernel
 * [oh*ow, kh*kw*cin, filters], bias [oh, ow, filters]. The config is
 * Conv2D's; padding must be VALID. Keras initializes the 3-D kernel with
 * fans scaled by the number of positions (fan_in = oh*ow*kh*kw*cin,
 * fan_out = oh*ow*filters); so does this layer. */
#include "kernels/graph_kernels.h"
#include "layers/layers.h"

#include <string.h>

static nn_status lc_check(const nn_layer *l, nn_status err, const char *who)
{
    return nn__conv_config_check(l, true, err, who);
}

static nn_status lc_build(nn_layer *l)
{
    NN_TRY(lc_check(l, NN_ERR_INVALID, "LocallyConnected2D"));
    NN_TRY(nn__conv_build_window(l));
    nn_conv_cfg c = nn__conv_cfg(l);
    int oh = l->out.d[0], ow = l->out.d[1], cin = l->inputs[0]->out.d[2];
    int64_t k = (int64_t)c.kh * c.kw * cin;
    NN_CHECK(k <= INT32_MAX, NN_ERR_SHAPE,
             "LocallyConnected2D '%s': kernel window of more than %d values",
             l->name, INT32_MAX);
    int kshape[3] = {oh * ow, (int)k, c.filters};
    NN_TRY(nn__layer_add_param(l, "kernel", 3, kshape, true));
    int bshape[3] = {oh, ow, c.filters};
    if (c.use_bias) NN_TRY(nn__layer_add_param(l, "bias", 3, bshape, true));
    return NN_OK;
}

static void lc_init(nn_layer *l, nn_rng *rng)
{
    nn_conv_cfg c = nn__conv_cfg(l);
    const nn_tensor *k = &l->params[0].value;
    int64_t fan_in = k->shape[0] * k->shape[1];
    int64_t fan_out = k->shape[0] * k->shape[2];
    nn__init_param(&l->params[0], c.kinit, fan_in, fan_out, rng);
    if (c.use_bias)
        nn__init_param(&l->params[1], c.binit, fan_in, fan_out, rng);
}

static nn_conv_geom lc_geom(const nn_layer *l, int batch)
{
    nn_conv_cfg c = nn__conv_cfg(l);
    const nn_shape *in = &l->inputs[0]->out;
    return (nn_conv_geom){
        .n = batch, .h = in->d[0], .w = in->d[1], .c = in->d[2],
        .kh = c.kh, .kw = c.kw, .sh = c.sh, .sw = c.sw,
        .pad_top = 0, .pad_left = 0,
        .oh = l->out.d[0], .ow = l->out.d[1], .f = c.filters,
    };
}

static size_t lc_scratch(const nn_layer *l, int batch, bool training)
{
    nn_conv_geom g = lc_geom(l, batch);
    return nn__local_scratch(&g);
}

static int64_t out_rows(const nn_layer *l, int batch)
{
    return (int64_t)batch * l->out.d[0] * l->out.d[1];
}

static size_t lc_state_bytes(const nn_layer *l, int batch)
{
    if (!nn__act_keeps_logits(l->activation)) return 0;
    return (size_t)out_rows(l, batch) * (size_t)l->out.d[2] * sizeof(float);
}

static const float *lc_logits(const nn_layer *l, const void *state)
{
    return nn__act_keeps_logits(l->activation) ? state : NULL;
}

static nn_status lc_forward(const nn_layer *l, const nn_fwd *a)
{
    nn_conv_geom g = lc_geom(l, a->batch);
    const float *bias =
        nn__conv_cfg(l).use_bias ? l->params[1].value.data : NULL;
    nn__local_forward(&g, a->in[0], l->params[0].value.data, bias, a->out,
                      a->scratch);
    int64_t rows = out_rows(l, a->batch), f = g.f;
    if (a->state && nn__act_keeps_logits(l->activation))
        memcpy(a->state, a->out, (size_t)(rows * f) * sizeof(float));
    nn__act_forward(l->activation, a->out, rows, f);
    return NN_OK;
}

static nn_status lc_backward(nn_layer *l, const nn_bwd *a)
{
    nn_conv_geom g = lc_geom(l, a->batch);
    if (!a->dout_is_preact)
        nn__act_backward(l->activation, a->out, a->dout, out_rows(l, a->batch),
                         g.f);
    nn__local_backward(&g, a->in[0], l->params[0].value.data, a->dout,
                       a->din[0], a->accum[0], nn__param_grad(l, 0),
                       nn__conv_cfg(l).use_bias ? nn__param_grad(l, 1) : NULL,
                       a->scratch);
    return NN_OK;
}

/* Same config layout as Conv2D. */
static nn_status lc_load(nn_layer *l, const uint8_t *buf, size_t len)
{
    NN_TRY(nn__conv_config_load(l, buf, len, "LocallyConnected2D"));
    return lc_check(l, NN_ERR_FORMAT, "LocallyConnected2D config");
}

const nn_layer_ops nn__locally_connected2d_ops = {
    .type_name = "LocallyConnected2D",
    .stem = "locally_connected2d",
    .build = lc_build,
    .init = lc_init,
    .scratch_floats = lc_scratch,
    .state_bytes = lc_state_bytes,
    .forward = lc_forward,
    .backward = lc_backward,
    .logits = lc_logits,
    .save_config = nn__conv_config_save,
    .load_config = lc_load,
    .receptive = nn__conv_receptive,
};

nn_layer *nn_locally_connected2d(nn_model *m, nn_layer *input, int filters,
                                 int kh, int kw, const nn_conv2d_opts *opts)
{
    nn_conv2d_opts o = NN_CONV2D_OPTS_INIT;
    if (nn__read_opts(&o, opts, "nn_locally_connected2d") != NN_OK)
        return NULL;
    if (!m || !input) {
        nn__fail(NN_ERR_INVALID, "nn_locally_connected2d: %s is NULL",
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
    if (lc_check(&proto, NN_ERR_INVALID, "nn_locally_connected2d") != NN_OK)
        return NULL;
    return nn__add_layer(m, NN_KIND_LOCALLY_CONNECTED2D, 1, &input, o.name,
                         &proto);
}

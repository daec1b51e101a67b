/* Dense over the last axis: y = act(x W + b), W [in, units]. With a
 * softmax or sigmoid activation the layer keeps its logits in its state. */
#include "kernels/kernels.h"
#include "layers/layers.h"

#include <string.h>

typedef struct dense_cfg {
    int units, use_bias;
    nn_initializer kinit, binit;
} dense_cfg;
NN_LAYER_CONFIG(dense_cfg, cfg_of, set_cfg)

static nn_status dense_check(const nn_layer *l, nn_status err, const char *who)
{
    dense_cfg c = cfg_of(l);
    NN_CHECK(c.units > 0 && c.units <= NN_LAYER_DIM_MAX, err, "%s: %d units",
             who, c.units);
    NN_CHECK(c.use_bias == 0 || c.use_bias == 1, err, "%s: use_bias %d",
             who, c.use_bias);
    return nn__check_act_inits(l, c.kinit, c.binit, err, who);
}

static int in_dim(const nn_layer *l)
{
    const nn_shape *in = &l->inputs[0]->out;
    return in->d[in->rank - 1];
}

static nn_status dense_build(nn_layer *l)
{
    NN_TRY(dense_check(l, NN_ERR_INVALID, "Dense"));
    dense_cfg c = cfg_of(l);
    if (c.kinit == NN_INIT_DEFAULT) c.kinit = NN_INIT_GLOROT_UNIFORM;
    if (c.binit == NN_INIT_DEFAULT) c.binit = NN_INIT_ZEROS;
    set_cfg(l, &c);
    NN_TRY(nn__one_input(l, 0));
    l->out.d[l->out.rank - 1] = c.units;
    NN_TRY(nn__check_out_size(l));
    int kshape[2] = {in_dim(l), c.units};
    NN_TRY(nn__layer_add_param(l, "kernel", 2, kshape, true));
    if (c.use_bias) NN_TRY(nn__layer_add_param(l, "bias", 1, &c.units, true));
    return NN_OK;
}

static void dense_init(nn_layer *l, nn_rng *rng)
{
    dense_cfg c = cfg_of(l);
    nn__init_param(&l->params[0], c.kinit, in_dim(l), c.units, rng);
    if (c.use_bias)
        nn__init_param(&l->params[1], c.binit, in_dim(l), c.units, rng);
}

/* Rows of the products: every axis but the last is a row. */
static int64_t rows_of(const nn_layer *l, int batch)
{
    return (int64_t)batch * (nn__shape_size(&l->out) / cfg_of(l).units);
}

static size_t dense_state_bytes(const nn_layer *l, int batch)
{
    if (!nn__act_keeps_logits(l->activation)) return 0;
    return (size_t)batch * (size_t)nn__shape_size(&l->out) * sizeof(float);
}

static const float *dense_logits(const nn_layer *l, const void *state)
{
    return nn__act_keeps_logits(l->activation) ? state : NULL;
}

static nn_status dense_forward(const nn_layer *l, const nn_fwd *a)
{
    int64_t rows = rows_of(l, a->batch), k = in_dim(l);
    dense_cfg c = cfg_of(l);
    int64_t u = c.units;
    nn__gemm(false, false, rows, u, k, a->in[0], k, l->params[0].value.data,
             u, 0.0f, a->out, u);
    if (c.use_bias)
        nn__bias_add(a->out, l->params[1].value.data, rows, u);
    if (a->state && nn__act_keeps_logits(l->activation))
        memcpy(a->state, a->out, (size_t)(rows * u) * sizeof(float));
    nn__act_forward(l->activation, a->out, rows, u);
    return NN_OK;
}

static nn_status dense_backward(nn_layer *l, const nn_bwd *a)
{
    int64_t rows = rows_of(l, a->batch), k = in_dim(l);
    dense_cfg c = cfg_of(l);
    int64_t u = c.units;
    if (!a->dout_is_preact)
        nn__act_backward(l->activation, a->out, a->dout, rows, u);
    float *dw = nn__param_grad(l, 0);
    float *db = c.use_bias ? nn__param_grad(l, 1) : NULL;
    if (dw) nn__gemm(true, false, k, u, rows, a->in[0], k, a->dout, u, 0.0f, dw, u);
    if (db) nn__colsum(a->dout, rows, u, db);
    if (a->din[0])
        nn__gemm(false, true, rows, k, u, a->dout, u, l->params[0].value.data,
                 u, a->accum[0] ? 1.0f : 0.0f, a->din[0], k);
    return NN_OK;
}

/* units, use_bias, activation, kinit, binit */
static size_t dense_save(const nn_layer *l, uint8_t *buf, size_t cap)
{
    dense_cfg c = cfg_of(l);
    nn_cfg_writer w = {buf, cap, 0};
    nn__cfg_put_i32(&w, c.units);
    nn__cfg_put_i32(&w, c.use_bias);
    nn__cfg_put_i32(&w, (int32_t)l->activation);
    nn__cfg_put_i32(&w, (int32_t)c.kinit);
    nn__cfg_put_i32(&w, (int32_t)c.binit);
    return w.len;
}

static nn_status dense_load(nn_layer *l, const uint8_t *buf, size_t len)
{
    nn_cfg_reader r = {buf, len, 0, false};
    dense_cfg c = {0};
    c.units = nn__cfg_get_i32(&r);
    c.use_bias = nn__cfg_get_i32(&r);
    l->activation = (nn_activation)nn__cfg_get_i32(&r);
    c.kinit = (nn_initializer)nn__cfg_get_i32(&r);
    c.binit = (nn_initializer)nn__cfg_get_i32(&r);
    set_cfg(l, &c);
    NN_TRY(nn__cfg_end(&r, "Dense"));
    return dense_check(l, NN_ERR_FORMAT, "Dense config");
}

/* Dense on a vector mixes every position; on a tensor of rank >= 2 it
 * works position by position. */
static void dense_receptive(const nn_layer *l, nn_receptive *r)
{
    r->whole = l->inputs[0]->out.rank < 2;
}

const nn_layer_ops nn__dense_ops = {
    .type_name = "Dense",
    .stem = "dense",
    .build = dense_build,
    .init = dense_init,
    .state_bytes = dense_state_bytes,
    .forward = dense_forward,
    .backward = dense_backward,
    .logits = dense_logits,
    .save_config = dense_save,
    .load_config = dense_load,
    .receptive = dense_receptive,
};

nn_layer *nn_dense(nn_model *m, nn_layer *input, int units,
                   const nn_dense_opts *opts)
{
    nn_dense_opts o = NN_DENSE_OPTS_INIT;
    if (nn__read_opts(&o, opts, "nn_dense") != NN_OK) return NULL;
    if (!m || !input) {
        nn__fail(NN_ERR_INVALID, "nn_dense: %s is NULL", m ? "input" : "model");
        return NULL;
    }
    nn_layer proto = {0};
    dense_cfg c = {units, o.use_bias != 0, o.kernel_init, o.bias_init};
    set_cfg(&proto, &c);
    proto.activation = o.activation;
    if (dense_check(&proto, NN_ERR_INVALID, "nn_dense") != NN_OK) return NULL;
    return nn__add_layer(m, NN_KIND_DENSE, 1, &input, o.name, &proto);
}

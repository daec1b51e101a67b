/* PReLU: x > 0 ? x : alpha * x with a learned alpha, one per position of
 * a sample except along the shared axes (Keras' shared_axes), where one
 * value serves the whole axis. The weight "alpha" has Keras' shape: the
 * input's per-sample shape with 1 on the shared axes. */
#include "kernels/kernels.h"
#include "layers/layers.h"

#include <math.h>

typedef struct prelu_cfg {
    unsigned shared_axes; /* bit k: input axis k (1-based, as Keras) */
    nn_initializer alpha_init;
    float alpha_init_value; /* with NN_INIT_DEFAULT */
} prelu_cfg;
NN_LAYER_CONFIG(prelu_cfg, cfg_of, set_cfg)

/* Axis bits a layer of any rank could have: 1 .. NN_MAX_RANK. */
#define AXES_MAX_MASK (((1u << NN_MAX_RANK) - 1u) << 1)

/* The checks that do not need the input's rank, for the builder (err
 * NN_ERR_INVALID) and a checkpoint's config (NN_ERR_FORMAT). */
static nn_status cfg_check(const prelu_cfg *c, nn_status err, const char *who)
{
    NN_CHECK(!(c->shared_axes & ~AXES_MAX_MASK), err,
             "%s: shared_axes 0x%x; set bit k for input axis k, 1 .. %d "
             "(bit 0, the batch axis, cannot be shared)",
             who, c->shared_axes, NN_MAX_RANK);
    NN_CHECK(nn__initializer_ok(c->alpha_init), err,
             "%s: unknown alpha initializer %d", who, (int)c->alpha_init);
    NN_CHECK(isfinite(c->alpha_init_value), err,
             "%s: alpha_init_value %g is not finite", who,
             (double)c->alpha_init_value);
    NN_CHECK(c->alpha_init == NN_INIT_DEFAULT || c->alpha_init_value == 0.0f,
             err,
             "%s: alpha_init_value %g is for NN_INIT_DEFAULT (a constant); "
             "leave it 0 with another initializer",
             who, (double)c->alpha_init_value);
    return NN_OK;
}

static bool shared(const prelu_cfg *c, int axis) /* axis 0: the first */
{
    return (c->shared_axes >> (axis + 1)) & 1u;
}

static nn_status prelu_build(nn_layer *l)
{
    prelu_cfg c = cfg_of(l);
    NN_TRY(cfg_check(&c, NN_ERR_INVALID, "PReLU"));
    NN_TRY(nn__one_input(l, 0));
    NN_TRY(nn__check_out_size(l));
    int rank = l->out.rank;
    NN_CHECK(!(c.shared_axes >> (rank + 1)), NN_ERR_SHAPE,
             "PReLU '%s': shared_axes 0x%x names an axis beyond the input's "
             "%d (input '%s')",
             l->name, c.shared_axes, rank, l->inputs[0]->name);
    int shape[NN_MAX_RANK];
    for (int k = 0; k < rank; k++) shape[k] = shared(&c, k) ? 1 : l->out.d[k];
    return nn__layer_add_param(l, "alpha", rank, shape, true);
}

/* Keras' fans of a weight shape (initializers' _compute_fans): a vector's
 * length both ways; otherwise the last two axes times the others. */
static void keras_fans(const nn_tensor *t, int64_t *fan_in, int64_t *fan_out)
{
    int r = t->rank;
    if (r == 1) {
        *fan_in = *fan_out = t->shape[0];
        return;
    }
    int64_t field = 1;
    for (int k = 0; k < r - 2; k++) field *= t->shape[k];
    *fan_in = t->shape[r - 2] * field;
    *fan_out = t->shape[r - 1] * field;
}

static void prelu_init(nn_layer *l, nn_rng *rng)
{
    prelu_cfg c = cfg_of(l);
    nn_param *p = &l->params[0];
    if (c.alpha_init == NN_INIT_DEFAULT) {
        for (int64_t i = 0; i < p->value.size; i++)
            p->value.data[i] = c.alpha_init_value;
        return;
    }
    int64_t fi, fo;
    keras_fans(&p->value, &fi, &fo);
    nn__init_param(p, c.alpha_init, fi, fo, rng);
}

static nn_bcast geometry(const nn_layer *l)
{
    prelu_cfg c = cfg_of(l);
    nn_bcast g = {.rank = l->out.rank};
    int64_t stride = 1;
    for (int k = g.rank - 1; k >= 0; k--) {
        g.d[k] = l->out.d[k];
        g.as[k] = shared(&c, k) ? 0 : stride;
        if (!shared(&c, k)) stride *= g.d[k];
    }
    return g;
}

/* Backward: one double per alpha for its gradient's sums. */
static size_t prelu_scratch(const nn_layer *l, int batch, bool training)
{
    if (!training) return 0;
    return (size_t)l->params[0].value.size * (sizeof(double) / sizeof(float));
}

static nn_status prelu_forward(const nn_layer *l, const nn_fwd *a)
{
    nn_bcast g = geometry(l);
    nn__prelu(&g, a->batch, l->params[0].value.data, a->in[0], a->out);
    return NN_OK;
}

static nn_status prelu_backward(nn_layer *l, const nn_bwd *a)
{
    float *dalpha = nn__param_grad(l, 0);
    if (!a->din[0] && !dalpha) return NN_OK;
    NN_CHECK(!dalpha || a->scratch, NN_ERR_STATE,
             "PReLU '%s': no scratch buffer for alpha's gradient", l->name);
    nn_bcast g = geometry(l);
    nn__prelu_backward(&g, a->batch, l->params[0].value.data, a->in[0],
                       a->dout, a->din[0], a->din[0] && a->accum[0], dalpha,
                       (double *)(void *)a->scratch);
    return NN_OK;
}

/* shared_axes, alpha_init (i32 each), alpha_init_value (f32). */
static size_t prelu_save(const nn_layer *l, uint8_t *buf, size_t cap)
{
    prelu_cfg c = cfg_of(l);
    nn_cfg_writer w = {buf, cap, 0};
    nn__cfg_put_i32(&w, (int32_t)c.shared_axes);
    nn__cfg_put_i32(&w, (int32_t)c.alpha_init);
    nn__cfg_put_f32(&w, c.alpha_init_value);
    return w.len;
}

static nn_status prelu_load(nn_layer *l, const uint8_t *buf, size_t len)
{
    nn_cfg_reader r = {buf, len, 0, false};
    prelu_cfg c;
    c.shared_axes = (unsigned)nn__cfg_get_i32(&r);
    c.alpha_init = (nn_initializer)nn__cfg_get_i32(&r);
    c.alpha_init_value = nn__cfg_get_f32(&r);
    NN_TRY(nn__cfg_end(&r, "PReLU"));
    NN_TRY(cfg_check(&c, NN_ERR_FORMAT, "PReLU config"));
    set_cfg(l, &c);
    return NN_OK;
}

const nn_layer_ops nn__prelu_ops = {
    .type_name = "PReLU",
    .stem = "p_re_lu",
    .build = prelu_build,
    .init = prelu_init,
    .scratch_floats = prelu_scratch,
    .forward = prelu_forward,
    .backward = prelu_backward,
    .save_config = prelu_save,
    .load_config = prelu_load,
};

nn_layer *nn_prelu(nn_model *m, nn_layer *input, const nn_prelu_opts *opts)
{
    nn_prelu_opts o = NN_PRELU_OPTS_INIT;
    if (nn__read_opts(&o, opts, "nn_prelu") != NN_OK) return NULL;
    if (!m || !input) {
        nn__fail(NN_ERR_INVALID, "nn_prelu: %s is NULL", m ? "input" : "model");
        return NULL;
    }
    if (o.reserved != 0) {
        nn__fail(NN_ERR_INVALID, "nn_prelu: reserved is %d; it must be 0",
                 o.reserved);
        return NULL;
    }
    prelu_cfg c = {o.shared_axes, o.alpha_init, o.alpha_init_value};
    if (cfg_check(&c, NN_ERR_INVALID, "nn_prelu") != NN_OK) return NULL;
    nn_layer proto = {0};
    set_cfg(&proto, &c);
    return nn__add_layer(m, NN_KIND_PRELU, 1, &input, o.name, &proto);
}

/* Activation layers (ReLU, ReLU6, sigmoid, softmax, tanh, LeakyReLU, ELU;
 * PReLU, which learns its slopes, is prelu.c); the fused activations of
 * Conv2D and Dense are nn__act_forward/backward (src/kernels/eltwise.c).
 * Sigmoid and softmax keep a pointer to their input (the logits) in their
 * state so that cross-entropy can use the logits, as Keras does; the
 * input's buffer outlives the loss computation. */
#include "kernels/kernels.h"
#include "layers/layers.h"

#include <math.h>
#include <string.h>

static int64_t samples(const nn_layer *l, int batch)
{
    return (int64_t)batch * nn__shape_size(&l->out);
}

static int64_t last_axis(const nn_layer *l) { return l->out.d[l->out.rank - 1]; }

static nn_status act_build(nn_layer *l)
{
    NN_TRY(nn__one_input(l, 0));
    return nn__check_out_size(l);
}

/* ---- ReLU ---- */

static nn_status relu_forward(const nn_layer *l, const nn_fwd *a)
{
    nn__relu(a->in[0], a->out, samples(l, a->batch));
    return NN_OK;
}

static nn_status relu_backward(nn_layer *l, const nn_bwd *a)
{
    if (!a->din[0]) return NN_OK;
    int64_t n = samples(l, a->batch);
    if (a->dout_is_preact)
        nn__copy_or_add(a->dout, a->din[0], n, a->accum[0]);
    else
        nn__relu_backward(a->out, a->dout, a->din[0], n, a->accum[0]);
    return NN_OK;
}

/* ---- ReLU6 (Keras' ReLU(max_value=6)) ---- */

static nn_status relu6_forward(const nn_layer *l, const nn_fwd *a)
{
    nn__relu6(a->in[0], a->out, samples(l, a->batch));
    return NN_OK;
}

static nn_status relu6_backward(nn_layer *l, const nn_bwd *a)
{
    if (!a->din[0]) return NN_OK;
    int64_t n = samples(l, a->batch);
    if (a->dout_is_preact)
        nn__copy_or_add(a->dout, a->din[0], n, a->accum[0]);
    else
        nn__relu6_backward(a->out, a->dout, a->din[0], n, a->accum[0]);
    return NN_OK;
}

/* ---- tanh (Keras' Activation("tanh")) ---- */

static nn_status tanh_forward(const nn_layer *l, const nn_fwd *a)
{
    nn__tanh(a->in[0], a->out, samples(l, a->batch));
    return NN_OK;
}

static nn_status tanh_backward(nn_layer *l, const nn_bwd *a)
{
    if (!a->din[0]) return NN_OK;
    nn__tanh_backward(a->out, a->dout, a->din[0], samples(l, a->batch),
                      a->accum[0]);
    return NN_OK;
}

/* ---- LeakyReLU and ELU: one slope, alpha, in the config ---- */

typedef struct alpha_cfg {
    float alpha;
} alpha_cfg;
NN_LAYER_CONFIG(alpha_cfg, alpha_of, set_alpha)

/* Keras 3 refuses a negative LeakyReLU slope; the backward pass relies on
 * it too (it reads the sign of x from the output). */
static bool leaky_alpha_ok(float alpha)
{
    return isfinite(alpha) && alpha >= 0.0f;
}

static bool elu_alpha_ok(float alpha) { return isfinite(alpha); }

static bool alpha_ok(nn_layer_kind kind, float alpha)
{
    return kind == NN_KIND_LEAKY_RELU ? leaky_alpha_ok(alpha)
                                      : elu_alpha_ok(alpha);
}

static const char *alpha_rule(nn_layer_kind kind)
{
    return kind == NN_KIND_LEAKY_RELU ? "a finite number >= 0"
                                      : "a finite number";
}

static nn_status alpha_build(nn_layer *l)
{
    float alpha = alpha_of(l).alpha;
    NN_CHECK(alpha_ok(l->kind, alpha), NN_ERR_INVALID,
             "%s '%s': alpha %g; it must be %s", l->ops->type_name, l->name,
             (double)alpha, alpha_rule(l->kind));
    return act_build(l);
}

static size_t alpha_save(const nn_layer *l, uint8_t *buf, size_t cap)
{
    nn_cfg_writer w = {buf, cap, 0};
    nn__cfg_put_f32(&w, alpha_of(l).alpha);
    return w.len;
}

static nn_status alpha_load(nn_layer *l, nn_layer_kind kind,
                            const uint8_t *buf, size_t len)
{
    const char *type = nn__layer_registry[kind]->type_name;
    nn_cfg_reader r = {buf, len, 0, false};
    float alpha = nn__cfg_get_f32(&r);
    NN_TRY(nn__cfg_end(&r, type));
    NN_CHECK(alpha_ok(kind, alpha), NN_ERR_FORMAT,
             "%s config: alpha %g is not %s", type, (double)alpha,
             alpha_rule(kind));
    set_alpha(l, &(alpha_cfg){alpha});
    return NN_OK;
}

static nn_status leaky_relu_load(nn_layer *l, const uint8_t *buf, size_t len)
{
    return alpha_load(l, NN_KIND_LEAKY_RELU, buf, len);
}

static nn_status elu_load(nn_layer *l, const uint8_t *buf, size_t len)
{
    return alpha_load(l, NN_KIND_ELU, buf, len);
}

static nn_status leaky_relu_forward(const nn_layer *l, const nn_fwd *a)
{
    nn__leaky_relu(a->in[0], a->out, samples(l, a->batch), alpha_of(l).alpha);
    return NN_OK;
}

static nn_status leaky_relu_backward(nn_layer *l, const nn_bwd *a)
{
    if (!a->din[0]) return NN_OK;
    nn__leaky_relu_backward(a->out, a->dout, a->din[0], samples(l, a->batch),
                            alpha_of(l).alpha, a->accum[0]);
    return NN_OK;
}

static nn_status elu_forward(const nn_layer *l, const nn_fwd *a)
{
    nn__elu(a->in[0], a->out, samples(l, a->batch), alpha_of(l).alpha);
    return NN_OK;
}

/* The branch from the input: with a negative alpha the output's sign is
 * not the input's. */
static nn_status elu_backward(nn_layer *l, const nn_bwd *a)
{
    if (!a->din[0]) return NN_OK;
    nn__elu_backward(a->in[0], a->out, a->dout, a->din[0],
                     samples(l, a->batch), alpha_of(l).alpha, a->accum[0]);
    return NN_OK;
}

/* ---- sigmoid and softmax: the state holds the logits' address ---- */

static size_t logits_state_bytes(const nn_layer *l, int batch)
{
    return sizeof(const float *);
}

static const float *logits_from_state(const nn_layer *l, const void *state)
{
    const float *p;
    if (!state) return NULL;
    memcpy(&p, state, sizeof p);
    return p;
}

static void keep_logits(const nn_fwd *a)
{
    if (a->state) memcpy(a->state, &a->in[0], sizeof(const float *));
}

static nn_status sigmoid_forward(const nn_layer *l, const nn_fwd *a)
{
    keep_logits(a);
    nn__sigmoid(a->in[0], a->out, samples(l, a->batch));
    return NN_OK;
}

static nn_status sigmoid_backward(nn_layer *l, const nn_bwd *a)
{
    if (!a->din[0]) return NN_OK;
    int64_t n = samples(l, a->batch);
    if (a->dout_is_preact)
        nn__copy_or_add(a->dout, a->din[0], n, a->accum[0]);
    else
        nn__sigmoid_backward(a->out, a->dout, a->din[0], n, a->accum[0]);
    return NN_OK;
}

static nn_status softmax_forward(const nn_layer *l, const nn_fwd *a)
{
    keep_logits(a);
    int64_t cols = last_axis(l);
    nn__softmax(a->in[0], a->out, samples(l, a->batch) / cols, cols);
    return NN_OK;
}

static nn_status softmax_backward(nn_layer *l, const nn_bwd *a)
{
    if (!a->din[0]) return NN_OK;
    int64_t n = samples(l, a->batch), cols = last_axis(l);
    if (a->dout_is_preact)
        nn__copy_or_add(a->dout, a->din[0], n, a->accum[0]);
    else
        nn__softmax_backward(a->out, a->dout, a->din[0], n / cols, cols,
                             a->accum[0]);
    return NN_OK;
}

const nn_layer_ops nn__relu_ops = {
    .type_name = "ReLU",
    .stem = "re_lu",
    .build = act_build,
    .forward = relu_forward,
    .backward = relu_backward,
    .save_config = nn__save_no_config,
    .load_config = nn__load_no_config,
};

/* Keras' ReLU(6.0) is its ReLU class with max_value set: same type name
 * and name stem as ReLU. */
const nn_layer_ops nn__relu6_ops = {
    .type_name = "ReLU",
    .stem = "re_lu",
    .build = act_build,
    .forward = relu6_forward,
    .backward = relu6_backward,
    .save_config = nn__save_no_config,
    .load_config = nn__load_no_config,
};

/* Keras has no Sigmoid layer class: Activation("sigmoid") is its
 * equivalent, hence the type name and the "activation" stem. */
const nn_layer_ops nn__sigmoid_ops = {
    .type_name = "Activation",
    .stem = "activation",
    .build = act_build,
    .state_bytes = logits_state_bytes,
    .forward = sigmoid_forward,
    .backward = sigmoid_backward,
    .logits = logits_from_state,
    .logits_act = NN_ACT_SIGMOID,
    .save_config = nn__save_no_config,
    .load_config = nn__load_no_config,
};

const nn_layer_ops nn__softmax_ops = {
    .type_name = "Softmax",
    .stem = "softmax",
    .build = act_build,
    .state_bytes = logits_state_bytes,
    .forward = softmax_forward,
    .backward = softmax_backward,
    .logits = logits_from_state,
    .logits_act = NN_ACT_SOFTMAX,
    .save_config = nn__save_no_config,
    .load_config = nn__load_no_config,
};

/* Keras has no Tanh layer class either. */
const nn_layer_ops nn__tanh_ops = {
    .type_name = "Activation",
    .stem = "activation",
    .build = act_build,
    .forward = tanh_forward,
    .backward = tanh_backward,
    .save_config = nn__save_no_config,
    .load_config = nn__load_no_config,
};

const nn_layer_ops nn__leaky_relu_ops = {
    .type_name = "LeakyReLU",
    .stem = "leaky_re_lu",
    .build = alpha_build,
    .forward = leaky_relu_forward,
    .backward = leaky_relu_backward,
    .save_config = alpha_save,
    .load_config = leaky_relu_load,
};

const nn_layer_ops nn__elu_ops = {
    .type_name = "ELU",
    .stem = "elu",
    .build = alpha_build,
    .forward = elu_forward,
    .backward = elu_backward,
    .save_config = alpha_save,
    .load_config = elu_load,
};

/* ---- public constructors ---- */

/* proto holds the kind's config. */
static nn_layer *add_configured(nn_model *m, nn_layer_kind kind,
                                nn_layer *input, const nn_layer_opts *opts,
                                const char *who, const nn_layer *proto)
{
    nn_layer_opts o = NN_LAYER_OPTS_INIT;
    if (nn__read_opts(&o, opts, who) != NN_OK) return NULL;
    if (!m || !input) {
        nn__fail(NN_ERR_INVALID, "%s: %s is NULL", who, m ? "input" : "model");
        return NULL;
    }
    return nn__add_layer(m, kind, 1, &input, o.name, proto);
}

static nn_layer *add_activation(nn_model *m, nn_layer_kind kind,
                                nn_layer *input, const nn_layer_opts *opts,
                                const char *who)
{
    nn_layer proto = {0};
    return add_configured(m, kind, input, opts, who, &proto);
}

static nn_layer *add_alpha(nn_model *m, nn_layer_kind kind, nn_layer *input,
                           float alpha, const nn_layer_opts *opts,
                           const char *who)
{
    if (!alpha_ok(kind, alpha)) {
        nn__fail(NN_ERR_INVALID, "%s: alpha %g; it must be %s", who,
                 (double)alpha, alpha_rule(kind));
        return NULL;
    }
    nn_layer proto = {0};
    set_alpha(&proto, &(alpha_cfg){alpha});
    return add_configured(m, kind, input, opts, who, &proto);
}

nn_layer *nn_relu(nn_model *m, nn_layer *input, const nn_layer_opts *opts)
{
    return add_activation(m, NN_KIND_RELU, input, opts, "nn_relu");
}

nn_layer *nn_relu6(nn_model *m, nn_layer *input, const nn_layer_opts *opts)
{
    return add_activation(m, NN_KIND_RELU6, input, opts, "nn_relu6");
}

nn_layer *nn_sigmoid(nn_model *m, nn_layer *input, const nn_layer_opts *opts)
{
    return add_activation(m, NN_KIND_SIGMOID, input, opts, "nn_sigmoid");
}

nn_layer *nn_softmax(nn_model *m, nn_layer *input, const nn_layer_opts *opts)
{
    return add_activation(m, NN_KIND_SOFTMAX, input, opts, "nn_softmax");
}

nn_layer *nn_tanh(nn_model *m, nn_layer *input, const nn_layer_opts *opts)
{
    return add_activation(m, NN_KIND_TANH, input, opts, "nn_tanh");
}

nn_layer *nn_leaky_relu(nn_model *m, nn_layer *input, float alpha,
                        const nn_layer_opts *opts)
{
    return add_alpha(m, NN_KIND_LEAKY_RELU, input, alpha, opts,
                     "nn_leaky_relu");
}

nn_layer *nn_elu(nn_model *m, nn_layer *input, float alpha,
                 const nn_layer_opts *opts)
{
    return add_alpha(m, NN_KIND_ELU, input, alpha, opts, "nn_elu");
}

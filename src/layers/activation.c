/* Activation layers (ReLU, ReLU6, sigmoid, softmax); the fused activations of
 * Conv2D and Dense are nn__act_forward/backward (src/kernels/eltwise.c).
 * Sigmoid and softmax keep a pointer to their input (the logits) in their
 * state so that cross-entropy can use the logits, as Keras does; the
 * input's buffer outlives the loss computation. */
#include "kernels/kernels.h"
#include "layers/layers.h"

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

/* ---- public constructors ---- */

static nn_layer *add_activation(nn_model *m, nn_layer_kind kind,
                                nn_layer *input, const nn_layer_opts *opts,
                                const char *who)
{
    nn_layer_opts o = NN_LAYER_OPTS_INIT;
    if (nn__read_opts(&o, opts, who) != NN_OK) return NULL;
    if (!m || !input) {
        nn__fail(NN_ERR_INVALID, "%s: %s is NULL", who, m ? "input" : "model");
        return NULL;
    }
    nn_layer proto = {0};
    return nn__add_layer(m, kind, 1, &input, o.name, &proto);
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

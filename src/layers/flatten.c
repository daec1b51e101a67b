/* Flatten: [batch, d1, ..., dk] -> [batch, d1 * ... * dk]. The data are
 * already in that order, so both passes are plain copies. */
#include "kernels/kernels.h"
#include "layers/layers.h"

#include <string.h>

static nn_status flatten_build(nn_layer *l)
{
    NN_TRY(nn__one_input(l, 0));
    NN_TRY(nn__check_out_size(l));
    int64_t n = nn__shape_size(&l->out);
    l->out = (nn_shape){1, {(int)n}};
    return NN_OK;
}

static int64_t values(const nn_layer *l, int batch)
{
    return (int64_t)batch * l->out.d[0];
}

static nn_status flatten_forward(const nn_layer *l, const nn_fwd *a)
{
    nn__copy_or_add(a->in[0], a->out, values(l, a->batch), false);
    return NN_OK;
}

static nn_status flatten_backward(nn_layer *l, const nn_bwd *a)
{
    if (a->din[0])
        nn__copy_or_add(a->dout, a->din[0], values(l, a->batch), a->accum[0]);
    return NN_OK;
}

const nn_layer_ops nn__flatten_ops = {
    .type_name = "Flatten",
    .stem = "flatten",
    .build = flatten_build,
    .forward = flatten_forward,
    .backward = flatten_backward,
    .save_config = nn__save_no_config,
    .load_config = nn__load_no_config,
    .receptive = nn__receptive_whole,
};

nn_layer *nn_flatten(nn_model *m, nn_layer *input, const nn_layer_opts *opts)
{
    nn_layer_opts o = NN_LAYER_OPTS_INIT;
    if (nn__read_opts(&o, opts, "nn_flatten") != NN_OK) return NULL;
    if (!m || !input) {
        nn__fail(NN_ERR_INVALID, "nn_flatten: %s is NULL",
                 m ? "input" : "model");
        return NULL;
    }
    nn_layer proto = {0};
    return nn__add_layer(m, NN_KIND_FLATTEN, 1, &input, o.name, &proto);
}

/* Input layer: only a shape. The forward driver points its activation at
 * the caller's batch, so forward and backward have nothing to do. */
#include "layers/layers.h"

static nn_status input_build(nn_layer *l)
{
    NN_CHECK(l->n_inputs == 0, NN_ERR_INVALID, "InputLayer takes no input");
    NN_CHECK(l->out.rank >= 1 && l->out.rank < NN_MAX_RANK, NN_ERR_SHAPE,
             "InputLayer '%s': rank %d (1 to %d allowed)", l->name, l->out.rank,
             NN_MAX_RANK - 1);
    return nn__check_out_size(l);
}

static nn_status input_forward(const nn_layer *l, const nn_fwd *a)
{
    return NN_OK;
}

static nn_status input_backward(nn_layer *l, const nn_bwd *a)
{
    return NN_OK;
}

/* rank, then each dimension. */
static size_t input_save(const nn_layer *l, uint8_t *buf, size_t cap)
{
    nn_cfg_writer w = {buf, cap, 0};
    nn__cfg_put_i32(&w, l->out.rank);
    for (int i = 0; i < l->out.rank; i++) nn__cfg_put_i32(&w, l->out.d[i]);
    return w.len;
}

static nn_status input_load(nn_layer *l, const uint8_t *buf, size_t len)
{
    nn_cfg_reader r = {buf, len, 0, false};
    int32_t rank = nn__cfg_get_i32(&r);
    NN_CHECK(!r.short_read && rank >= 1 && rank < NN_MAX_RANK, NN_ERR_FORMAT,
             "InputLayer config: rank %d", (int)rank);
    nn_shape s = {.rank = rank};
    int64_t size = 1;
    for (int i = 0; i < rank; i++) {
        s.d[i] = nn__cfg_get_i32(&r);
        NN_CHECK(r.short_read || s.d[i] > 0, NN_ERR_FORMAT,
                 "InputLayer config: dimension %d is %d", i, s.d[i]);
        size *= r.short_read ? 1 : s.d[i];
        NN_CHECK(size <= NN_SAMPLE_MAX, NN_ERR_FORMAT,
                 "InputLayer config: more than %d values per sample",
                 NN_SAMPLE_MAX);
    }
    NN_TRY(nn__cfg_end(&r, "InputLayer"));
    l->out = s;
    return NN_OK;
}

const nn_layer_ops nn__input_ops = {
    .type_name = "InputLayer",
    .stem = "input",
    .build = input_build,
    .forward = input_forward,
    .backward = input_backward,
    .save_config = input_save,
    .load_config = input_load,
};

nn_layer *nn_input(nn_model *m, int rank, const int *shape,
                   const nn_layer_opts *opts)
{
    nn_layer_opts o = NN_LAYER_OPTS_INIT;
    if (nn__read_opts(&o, opts, "nn_input") != NN_OK) return NULL;
    if (!m || !shape) {
        nn__fail(NN_ERR_INVALID, "nn_input: %s is NULL", m ? "shape" : "model");
        return NULL;
    }
    if (rank < 1 || rank >= NN_MAX_RANK) {
        nn__fail(NN_ERR_INVALID, "nn_input: rank %d (1 to %d allowed)", rank,
                 NN_MAX_RANK - 1);
        return NULL;
    }
    nn_layer proto = {0};
    proto.out.rank = rank;
    for (int i = 0; i < rank; i++) {
        if (shape[i] <= 0) {
            nn__fail(NN_ERR_INVALID, "nn_input: dimension %d is %d", i,
                     shape[i]);
            return NULL;
        }
        proto.out.d[i] = shape[i];
    }
    return nn__add_layer(m, NN_KIND_INPUT, 0, NULL, o.name, &proto);
}

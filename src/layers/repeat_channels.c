/* RepeatChannels: every value of the last axis repeated `times` times in
 * place, as np.repeat / tf.repeat(x, times, axis=-1): [..., C] ->
 * [..., C * times] with channel j going to j*times .. j*times+times-1. A
 * grayscale image becomes three equal RGB channels. */
#include "layers/layers.h"

typedef struct repeat_cfg {
    int times;
} repeat_cfg;
NN_LAYER_CONFIG(repeat_cfg, cfg_of, set_cfg)

static nn_status repeat_check(int times, nn_status err, const char *who)
{
    NN_CHECK(times >= 1 && times <= NN_LAYER_DIM_MAX, err, "%s: times %d", who,
             times);
    return NN_OK;
}

static nn_status repeat_build(nn_layer *l)
{
    int t = cfg_of(l).times;
    NN_TRY(repeat_check(t, NN_ERR_INVALID, "RepeatChannels"));
    NN_TRY(nn__one_input(l, 0));
    int64_t c = (int64_t)l->out.d[l->out.rank - 1] * t;
    NN_CHECK(c <= NN_SAMPLE_MAX, NN_ERR_SHAPE,
             "RepeatChannels '%s': %lld channels", l->name, (long long)c);
    l->out.d[l->out.rank - 1] = (int)c;
    return nn__check_out_size(l);
}

static int64_t in_channels(const nn_layer *l)
{
    const nn_shape *s = &l->inputs[0]->out;
    return s->d[s->rank - 1];
}

static int64_t rows_of(const nn_layer *l, int batch)
{
    int64_t last = l->out.d[l->out.rank - 1];
    return (int64_t)batch * (nn__shape_size(&l->out) / last);
}

static nn_status repeat_forward(const nn_layer *l, const nn_fwd *a)
{
    int64_t rows = rows_of(l, a->batch), c = in_channels(l);
    int t = cfg_of(l).times;
    for (int64_t r = 0; r < rows; r++) {
        const float *x = a->in[0] + r * c;
        float *y = a->out + r * c * t;
        for (int64_t j = 0; j < c; j++)
            for (int k = 0; k < t; k++) y[j * t + k] = x[j];
    }
    return NN_OK;
}

static nn_status repeat_backward(nn_layer *l, const nn_bwd *a)
{
    if (!a->din[0]) return NN_OK;
    int64_t rows = rows_of(l, a->batch), c = in_channels(l);
    int t = cfg_of(l).times;
    for (int64_t r = 0; r < rows; r++) {
        const float *g = a->dout + r * c * t;
        float *d = a->din[0] + r * c;
        for (int64_t j = 0; j < c; j++) {
            float s = 0.0f;
            for (int k = 0; k < t; k++) s += g[j * t + k];
            d[j] = a->accum[0] ? d[j] + s : s;
        }
    }
    return NN_OK;
}

/* times */
static size_t repeat_save(const nn_layer *l, uint8_t *buf, size_t cap)
{
    nn_cfg_writer w = {buf, cap, 0};
    nn__cfg_put_i32(&w, cfg_of(l).times);
    return w.len;
}

static nn_status repeat_load(nn_layer *l, const uint8_t *buf, size_t len)
{
    nn_cfg_reader r = {buf, len, 0, false};
    int32_t t = nn__cfg_get_i32(&r);
    NN_TRY(nn__cfg_end(&r, "RepeatChannels"));
    NN_TRY(repeat_check(t, NN_ERR_FORMAT, "RepeatChannels config"));
    set_cfg(l, &(repeat_cfg){t});
    return NN_OK;
}

const nn_layer_ops nn__repeat_channels_ops = {
    .type_name = "RepeatChannels",
    .stem = "repeat_channels",
    .build = repeat_build,
    .forward = repeat_forward,
    .backward = repeat_backward,
    .save_config = repeat_save,
    .load_config = repeat_load,
};

nn_layer *nn_repeat_channels(nn_model *m, nn_layer *input, int times,
                             const nn_layer_opts *opts)
{
    nn_layer_opts o = NN_LAYER_OPTS_INIT;
    if (nn__read_opts(&o, opts, "nn_repeat_channels") != NN_OK)
        return NULL;
    if (!m || !input) {
        nn__fail(NN_ERR_INVALID, "nn_repeat_channels: %s is NULL",
                 m ? "input" : "model");
        return NULL;
    }
    if (repeat_check(times, NN_ERR_INVALID, "nn_repeat_channels") != NN_OK)
        return NULL;
    nn_layer proto = {0};
    set_cfg(&proto, &(repeat_cfg){times});
    return nn__add_layer(m, NN_KIND_REPEAT_CHANNELS, 1, &input, o.name, &proto);
}

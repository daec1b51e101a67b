/* GlobalAveragePooling2D: [H, W, C] -> [C], the mean over all positions. */
#include "layers/layers.h"

static nn_status gap_build(nn_layer *l)
{
    NN_TRY(nn__one_input(l, 3));
    l->out = (nn_shape){1, {l->out.d[2]}};
    return nn__check_out_size(l);
}

static int64_t area(const nn_layer *l)
{
    return (int64_t)l->inputs[0]->out.d[0] * l->inputs[0]->out.d[1];
}

static nn_status gap_forward(const nn_layer *l, const nn_fwd *a)
{
    int64_t hw = area(l), c = l->out.d[0];
    for (int n = 0; n < a->batch; n++) {
        const float *x = a->in[0] + n * hw * c;
        float *y = a->out + n * c;
        /* double sums: a 7x7 or 56x56 mean keeps float's precision */
        enum { BLK = 256 };
        double acc[BLK];
        for (int64_t c0 = 0; c0 < c; c0 += BLK) {
            int64_t cb = c - c0 < BLK ? c - c0 : BLK;
            for (int64_t j = 0; j < cb; j++) acc[j] = 0.0;
            for (int64_t p = 0; p < hw; p++)
                for (int64_t j = 0; j < cb; j++) acc[j] += x[p * c + c0 + j];
            for (int64_t j = 0; j < cb; j++)
                y[c0 + j] = (float)(acc[j] / (double)hw);
        }
    }
    return NN_OK;
}

static nn_status gap_backward(nn_layer *l, const nn_bwd *a)
{
    if (!a->din[0]) return NN_OK;
    int64_t hw = area(l), c = l->out.d[0];
    float inv = (float)(1.0 / (double)hw);
    for (int n = 0; n < a->batch; n++) {
        const float *g = a->dout + n * c;
        float *d = a->din[0] + n * hw * c;
        for (int64_t p = 0; p < hw; p++)
            for (int64_t j = 0; j < c; j++) {
                float v = g[j] * inv;
                d[p * c + j] = a->accum[0] ? d[p * c + j] + v : v;
            }
    }
    return NN_OK;
}

const nn_layer_ops nn__global_avgpool2d_ops = {
    .type_name = "GlobalAveragePooling2D",
    .stem = "global_average_pooling2d",
    .build = gap_build,
    .forward = gap_forward,
    .backward = gap_backward,
    .save_config = nn__save_no_config,
    .load_config = nn__load_no_config,
    .receptive = nn__receptive_whole,
};

nn_layer *nn_global_avgpool2d(nn_model *m, nn_layer *input,
                              const nn_layer_opts *opts)
{
    nn_layer_opts o = NN_LAYER_OPTS_INIT;
    if (nn__read_opts(&o, opts, "nn_global_avgpool2d") != NN_OK)
        return NULL;
    if (!m || !input) {
        nn__fail(NN_ERR_INVALID, "nn_global_avgpool2d: %s is NULL",
                 m ? "input" : "model");
        return NULL;
    }
    nn_layer proto = {0};
    return nn__add_layer(m, NN_KIND_GLOBAL_AVGPOOL2D, 1, &input, o.name,
                         &proto);
}

/* Cropping2D: drops rows at the top/bottom and columns at the left/right
 * of an NHWC image. Backward puts the gradient back in place and zeroes
 * the cropped border. */
#include "kernels/kernels.h"
#include "layers/layers.h"

#include <string.h>

typedef struct crop_cfg {
    int top, bottom, left, right;
} crop_cfg;
NN_LAYER_CONFIG(crop_cfg, cfg_of, set_cfg)

static nn_status crop_check(const crop_cfg *c, nn_status err, const char *who)
{
    int v[4] = {c->top, c->bottom, c->left, c->right};
    for (int i = 0; i < 4; i++)
        NN_CHECK(v[i] >= 0 && v[i] <= NN_LAYER_DIM_MAX, err,
                 "%s: cropping %d, %d, %d, %d (top, bottom, left, right); "
                 "each must be at least 0",
                 who, c->top, c->bottom, c->left, c->right);
    return NN_OK;
}

static nn_status crop_build(nn_layer *l)
{
    crop_cfg c = cfg_of(l);
    NN_TRY(crop_check(&c, NN_ERR_INVALID, "Cropping2D"));
    NN_TRY(nn__one_input(l, 3));
    int64_t h = (int64_t)l->out.d[0] - c.top - c.bottom;
    int64_t w = (int64_t)l->out.d[1] - c.left - c.right;
    NN_CHECK(h >= 1 && w >= 1, NN_ERR_SHAPE,
             "Cropping2D '%s': cropping %d + %d rows and %d + %d columns of "
             "a %d x %d input leaves nothing; crop less",
             l->name, c.top, c.bottom, c.left, c.right, l->out.d[0],
             l->out.d[1]);
    l->out.d[0] = (int)h;
    l->out.d[1] = (int)w;
    return nn__check_out_size(l);
}

/* Each output row is a contiguous run of an input row. */
static nn_status crop_forward(const nn_layer *l, const nn_fwd *a)
{
    crop_cfg c = cfg_of(l);
    const nn_shape *in = &l->inputs[0]->out;
    int64_t ch = in->d[2], iw = (int64_t)in->d[1] * ch, ih = in->d[0];
    int64_t ow = (int64_t)l->out.d[1] * ch, oh = l->out.d[0];
    for (int64_t n = 0; n < a->batch; n++)
        for (int64_t y = 0; y < oh; y++)
            memcpy(a->out + (n * oh + y) * ow,
                   a->in[0] + (n * ih + c.top + y) * iw + c.left * ch,
                   (size_t)ow * sizeof(float));
    return NN_OK;
}

static nn_status crop_backward(nn_layer *l, const nn_bwd *a)
{
    if (!a->din[0]) return NN_OK;
    crop_cfg c = cfg_of(l);
    const nn_shape *in = &l->inputs[0]->out;
    int64_t ch = in->d[2], iw = (int64_t)in->d[1] * ch, ih = in->d[0];
    int64_t ow = (int64_t)l->out.d[1] * ch, oh = l->out.d[0];
    if (!a->accum[0])
        memset(a->din[0], 0, (size_t)(a->batch * ih * iw) * sizeof(float));
    for (int64_t n = 0; n < a->batch; n++)
        for (int64_t y = 0; y < oh; y++)
            nn__copy_or_add(a->dout + (n * oh + y) * ow,
                            a->din[0] + (n * ih + c.top + y) * iw +
                                c.left * ch,
                            ow, true);
    return NN_OK;
}

/* top, bottom, left, right */
static size_t crop_save(const nn_layer *l, uint8_t *buf, size_t cap)
{
    crop_cfg c = cfg_of(l);
    nn_cfg_writer w = {buf, cap, 0};
    nn__cfg_put_i32(&w, c.top);
    nn__cfg_put_i32(&w, c.bottom);
    nn__cfg_put_i32(&w, c.left);
    nn__cfg_put_i32(&w, c.right);
    return w.len;
}

static nn_status crop_load(nn_layer *l, const uint8_t *buf, size_t len)
{
    nn_cfg_reader r = {buf, len, 0, false};
    crop_cfg c;
    c.top = nn__cfg_get_i32(&r);
    c.bottom = nn__cfg_get_i32(&r);
    c.left = nn__cfg_get_i32(&r);
    c.right = nn__cfg_get_i32(&r);
    set_cfg(l, &c);
    NN_TRY(nn__cfg_end(&r, "Cropping2D"));
    return crop_check(&c, NN_ERR_FORMAT, "Cropping2D config");
}

const nn_layer_ops nn__cropping2d_ops = {
    .type_name = "Cropping2D",
    .stem = "cropping2d",
    .build = crop_build,
    .forward = crop_forward,
    .backward = crop_backward,
    .save_config = crop_save,
    .load_config = crop_load,
};

nn_layer *nn_cropping2d(nn_model *m, nn_layer *input, int top, int bottom,
                        int left, int right, const nn_layer_opts *opts)
{
    nn_layer_opts o = NN_LAYER_OPTS_INIT;
    if (nn__read_opts(&o, opts, "nn_cropping2d") != NN_OK) return NULL;
    if (!m || !input) {
        nn__fail(NN_ERR_INVALID, "nn_cropping2d: %s is NULL",
                 m ? "input" : "model");
        return NULL;
    }
    crop_cfg c = {top, bottom, left, right};
    if (crop_check(&c, NN_ERR_INVALID, "nn_cropping2d") != NN_OK) return NULL;
    nn_layer proto = {0};
    set_cfg(&proto, &c);
    return nn__add_layer(m, NN_KIND_CROPPING2D, 1, &input, o.name, &proto);
}

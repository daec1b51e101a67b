/* ZeroPadding2D: zero rows above/below and zero columns left/right of an
 * NHWC image. Backward keeps the gradient of the interior. */
#include "kernels/kernels.h"
#include "layers/layers.h"

#include <string.h>

typedef struct pad_cfg {
    int top, bottom, left, right;
} pad_cfg;
NN_LAYER_CONFIG(pad_cfg, cfg_of, set_cfg)

static nn_status pad_check(const pad_cfg *p, nn_status err, const char *who)
{
    int v[4] = {p->top, p->bottom, p->left, p->right};
    for (int i = 0; i < 4; i++)
        NN_CHECK(v[i] >= 0 && v[i] <= NN_LAYER_DIM_MAX, err,
                 "%s: padding %d, %d, %d, %d (top, bottom, left, right)", who,
                 p->top, p->bottom, p->left, p->right);
    return NN_OK;
}

static nn_status pad_build(nn_layer *l)
{
    pad_cfg p = cfg_of(l);
    NN_TRY(pad_check(&p, NN_ERR_INVALID, "ZeroPadding2D"));
    NN_TRY(nn__one_input(l, 3));
    int64_t h = (int64_t)l->out.d[0] + p.top + p.bottom;
    int64_t w = (int64_t)l->out.d[1] + p.left + p.right;
    NN_CHECK(h <= NN_SAMPLE_MAX && w <= NN_SAMPLE_MAX, NN_ERR_SHAPE,
             "ZeroPadding2D '%s': padded image of %lld x %lld", l->name,
             (long long)h, (long long)w);
    l->out.d[0] = (int)h;
    l->out.d[1] = (int)w;
    return nn__check_out_size(l);
}

/* Zeroes the whole output, then copies every input row to its place. */
static nn_status pad_forward(const nn_layer *l, const nn_fwd *a)
{
    pad_cfg p = cfg_of(l);
    const nn_shape *in = &l->inputs[0]->out;
    int64_t c = in->d[2], iw = (int64_t)in->d[1] * c;
    int64_t ow = (int64_t)l->out.d[1] * c, oh = l->out.d[0];
    memset(a->out, 0, (size_t)(a->batch * oh * ow) * sizeof(float));
    for (int n = 0; n < a->batch; n++)
        for (int y = 0; y < in->d[0]; y++)
            memcpy(a->out + ((n * oh + p.top + y) * ow + p.left * c),
                   a->in[0] + ((int64_t)n * in->d[0] + y) * iw,
                   (size_t)iw * sizeof(float));
    return NN_OK;
}

static nn_status pad_backward(nn_layer *l, const nn_bwd *a)
{
    if (!a->din[0]) return NN_OK;
    pad_cfg p = cfg_of(l);
    const nn_shape *in = &l->inputs[0]->out;
    int64_t c = in->d[2], iw = (int64_t)in->d[1] * c;
    int64_t ow = (int64_t)l->out.d[1] * c, oh = l->out.d[0];
    for (int n = 0; n < a->batch; n++)
        for (int y = 0; y < in->d[0]; y++) {
            const float *g =
                a->dout + ((n * oh + p.top + y) * ow + p.left * c);
            nn__copy_or_add(g, a->din[0] + ((int64_t)n * in->d[0] + y) * iw,
                            iw, a->accum[0]);
        }
    return NN_OK;
}

/* top, bottom, left, right */
static size_t pad_save(const nn_layer *l, uint8_t *buf, size_t cap)
{
    pad_cfg p = cfg_of(l);
    nn_cfg_writer w = {buf, cap, 0};
    nn__cfg_put_i32(&w, p.top);
    nn__cfg_put_i32(&w, p.bottom);
    nn__cfg_put_i32(&w, p.left);
    nn__cfg_put_i32(&w, p.right);
    return w.len;
}

static nn_status pad_load(nn_layer *l, const uint8_t *buf, size_t len)
{
    nn_cfg_reader r = {buf, len, 0, false};
    pad_cfg p;
    p.top = nn__cfg_get_i32(&r);
    p.bottom = nn__cfg_get_i32(&r);
    p.left = nn__cfg_get_i32(&r);
    p.right = nn__cfg_get_i32(&r);
    set_cfg(l, &p);
    NN_TRY(nn__cfg_end(&r, "ZeroPadding2D"));
    return pad_check(&p, NN_ERR_FORMAT, "ZeroPadding2D config");
}

static bool pad_zero_pad(const nn_layer *l, int pad[4])
{
    pad_cfg p = cfg_of(l);
    pad[0] = p.top;
    pad[1] = p.bottom;
    pad[2] = p.left;
    pad[3] = p.right;
    return true;
}

const nn_layer_ops nn__zeropad2d_ops = {
    .type_name = "ZeroPadding2D",
    .stem = "zero_padding2d",
    .build = pad_build,
    .forward = pad_forward,
    .backward = pad_backward,
    .save_config = pad_save,
    .load_config = pad_load,
    .zero_pad = pad_zero_pad,
};

nn_layer *nn_zeropad2d(nn_model *m, nn_layer *input, int top, int bottom,
                       int left, int right, const nn_layer_opts *opts)
{
    nn_layer_opts o = NN_LAYER_OPTS_INIT;
    if (nn__read_opts(&o, opts, "nn_zeropad2d") != NN_OK) return NULL;
    if (!m || !input) {
        nn__fail(NN_ERR_INVALID, "nn_zeropad2d: %s is NULL",
                 m ? "input" : "model");
        return NULL;
    }
    pad_cfg p = {top, bottom, left, right};
    if (pad_check(&p, NN_ERR_INVALID, "nn_zeropad2d") != NN_OK) return NULL;
    nn_layer proto = {0};
    set_cfg(&proto, &p);
    return nn__add_layer(m, NN_KIND_ZEROPAD2D, 1, &input, o.name, &proto);
}

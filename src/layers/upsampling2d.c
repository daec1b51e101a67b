/* UpSampling2D: images to size_h x size_w times their size, nearest
 * (Keras' default) or bilinear. Keras computes both with tf.image.resize,
 * half-pixel centers, which is the Resizing layer's kernel
 * (src/kernels/resize.c); at an integer factor its nearest sample is the
 * repeat of each pixel. */
#include "kernels/graph_kernels.h"
#include "layers/layers.h"

typedef struct upsample_cfg {
    int size_h, size_w;
    nn_interpolation interpolation;
} upsample_cfg;
NN_LAYER_CONFIG(upsample_cfg, cfg_of, set_cfg)

static nn_status upsample_check(const upsample_cfg *c, nn_status err,
                                const char *who)
{
    NN_CHECK(c->size_h > 0 && c->size_w > 0 &&
                 c->size_h <= NN_LAYER_DIM_MAX &&
                 c->size_w <= NN_LAYER_DIM_MAX,
             err, "%s: size %d x %d; both must be at least 1", who,
             c->size_h, c->size_w);
    NN_CHECK(c->interpolation == NN_INTERP_BILINEAR ||
                 c->interpolation == NN_INTERP_NEAREST,
             err, "%s: unknown interpolation %d", who, (int)c->interpolation);
    return NN_OK;
}

static nn_status upsample_build(nn_layer *l)
{
    upsample_cfg c = cfg_of(l);
    NN_TRY(upsample_check(&c, NN_ERR_INVALID, "UpSampling2D"));
    NN_TRY(nn__one_input(l, 3));
    int64_t h = (int64_t)l->out.d[0] * c.size_h;
    int64_t w = (int64_t)l->out.d[1] * c.size_w;
    NN_CHECK(h <= NN_SAMPLE_MAX && w <= NN_SAMPLE_MAX, NN_ERR_SHAPE,
             "UpSampling2D '%s': upsampled image of %lld x %lld", l->name,
             (long long)h, (long long)w);
    l->out.d[0] = (int)h;
    l->out.d[1] = (int)w;
    return nn__check_out_size(l);
}

static nn_resize_geom upsample_geom(const nn_layer *l, int batch)
{
    const nn_shape *in = &l->inputs[0]->out;
    return (nn_resize_geom){batch,       in->d[0],
                            in->d[1],    in->d[2],
                            l->out.d[0], l->out.d[1],
                            cfg_of(l).interpolation};
}

static nn_status upsample_forward(const nn_layer *l, const nn_fwd *a)
{
    nn_resize_geom g = upsample_geom(l, a->batch);
    nn__resize_forward(&g, a->in[0], a->out);
    return NN_OK;
}

static nn_status upsample_backward(nn_layer *l, const nn_bwd *a)
{
    if (!a->din[0]) return NN_OK;
    nn_resize_geom g = upsample_geom(l, a->batch);
    nn__resize_backward(&g, a->dout, a->din[0], a->accum[0]);
    return NN_OK;
}

/* size_h, size_w, interpolation */
static size_t upsample_save(const nn_layer *l, uint8_t *buf, size_t cap)
{
    upsample_cfg c = cfg_of(l);
    nn_cfg_writer w = {buf, cap, 0};
    nn__cfg_put_i32(&w, c.size_h);
    nn__cfg_put_i32(&w, c.size_w);
    nn__cfg_put_i32(&w, (int32_t)c.interpolation);
    return w.len;
}

static nn_status upsample_load(nn_layer *l, const uint8_t *buf, size_t len)
{
    nn_cfg_reader r = {buf, len, 0, false};
    upsample_cfg c = {0};
    c.size_h = nn__cfg_get_i32(&r);
    c.size_w = nn__cfg_get_i32(&r);
    c.interpolation = (nn_interpolation)nn__cfg_get_i32(&r);
    set_cfg(l, &c);
    NN_TRY(nn__cfg_end(&r, "UpSampling2D"));
    return upsample_check(&c, NN_ERR_FORMAT, "UpSampling2D config");
}

/* Output pixels lie 1/size input pixels apart; a bilinear one reads two
 * input pixels per enlarged axis, a nearest one reads one. */
static void upsample_receptive(const nn_layer *l, nn_receptive *r)
{
    upsample_cfg c = cfg_of(l);
    int size[2] = {c.size_h, c.size_w};
    bool bilinear = c.interpolation == NN_INTERP_BILINEAR;
    for (int i = 0; i < 2; i++) {
        r->taps[i] = bilinear && size[i] > 1 ? 2 : 1;
        r->stride_num[i] = 1;
        r->stride_den[i] = size[i];
    }
}

const nn_layer_ops nn__upsampling2d_ops = {
    .type_name = "UpSampling2D",
    .stem = "up_sampling2d",
    .build = upsample_build,
    .forward = upsample_forward,
    .backward = upsample_backward,
    .save_config = upsample_save,
    .load_config = upsample_load,
    .receptive = upsample_receptive,
};

nn_layer *nn_upsampling2d(nn_model *m, nn_layer *input, int size_h,
                          int size_w, const nn_upsampling2d_opts *opts)
{
    nn_upsampling2d_opts o = NN_UPSAMPLING2D_OPTS_INIT;
    if (nn__read_opts(&o, opts, "nn_upsampling2d") != NN_OK) return NULL;
    if (!m || !input) {
        nn__fail(NN_ERR_INVALID, "nn_upsampling2d: %s is NULL",
                 m ? "input" : "model");
        return NULL;
    }
    if (o.reserved != 0) {
        nn__fail(NN_ERR_INVALID,
                 "nn_upsampling2d: opts->reserved is %d; it must be 0 "
                 "(initialise the options with NN_UPSAMPLING2D_OPTS_INIT)",
                 o.reserved);
        return NULL;
    }
    upsample_cfg c = {size_h, size_w, o.interpolation};
    if (upsample_check(&c, NN_ERR_INVALID, "nn_upsampling2d") != NN_OK)
        return NULL;
    nn_layer proto = {0};
    set_cfg(&proto, &c);
    return nn__add_layer(m, NN_KIND_UPSAMPLING2D, 1, &input, o.name, &proto);
}

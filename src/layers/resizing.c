/* Resizing (Keras preprocessing layer): images to height x width,
 * bilinear or nearest with half-pixel centers (src/kernels/resize.c). */
#include "kernels/graph_kernels.h"
#include "layers/layers.h"

#include <string.h>

typedef struct resize_cfg {
    int height, width;
    nn_interpolation interpolation;
} resize_cfg;
NN_LAYER_CONFIG(resize_cfg, cfg_of, set_cfg)

static nn_status resize_check(const resize_cfg *c, nn_status err,
                              const char *who)
{
    NN_CHECK(c->height > 0 && c->width > 0 && c->height <= NN_LAYER_DIM_MAX &&
                 c->width <= NN_LAYER_DIM_MAX,
             err, "%s: size %d x %d", who, c->height, c->width);
    NN_CHECK(c->interpolation == NN_INTERP_BILINEAR ||
                 c->interpolation == NN_INTERP_NEAREST,
             err, "%s: unknown interpolation %d", who, (int)c->interpolation);
    return NN_OK;
}

static nn_status resize_build(nn_layer *l)
{
    resize_cfg c = cfg_of(l);
    NN_TRY(resize_check(&c, NN_ERR_INVALID, "Resizing"));
    NN_TRY(nn__one_input(l, 3));
    l->out.d[0] = c.height;
    l->out.d[1] = c.width;
    return nn__check_out_size(l);
}

static nn_resize_geom resize_geom(const nn_layer *l, int batch)
{
    const nn_shape *in = &l->inputs[0]->out;
    return (nn_resize_geom){batch,        in->d[0],
                            in->d[1],     in->d[2],
                            l->out.d[0],  l->out.d[1],
                            cfg_of(l).interpolation};
}

static nn_status resize_forward(const nn_layer *l, const nn_fwd *a)
{
    nn_resize_geom g = resize_geom(l, a->batch);
    nn__resize_forward(&g, a->in[0], a->out);
    return NN_OK;
}

static nn_status resize_backward(nn_layer *l, const nn_bwd *a)
{
    if (!a->din[0]) return NN_OK;
    nn_resize_geom g = resize_geom(l, a->batch);
    nn__resize_backward(&g, a->dout, a->din[0], a->accum[0]);
    return NN_OK;
}

/* height, width, interpolation */
static size_t resize_save(const nn_layer *l, uint8_t *buf, size_t cap)
{
    resize_cfg c = cfg_of(l);
    nn_cfg_writer w = {buf, cap, 0};
    nn__cfg_put_i32(&w, c.height);
    nn__cfg_put_i32(&w, c.width);
    nn__cfg_put_i32(&w, (int32_t)c.interpolation);
    return w.len;
}

static nn_status resize_load(nn_layer *l, const uint8_t *buf, size_t len)
{
    nn_cfg_reader r = {buf, len, 0, false};
    resize_cfg c = {0};
    c.height = nn__cfg_get_i32(&r);
    c.width = nn__cfg_get_i32(&r);
    c.interpolation = (nn_interpolation)nn__cfg_get_i32(&r);
    set_cfg(l, &c);
    NN_TRY(nn__cfg_end(&r, "Resizing"));
    return resize_check(&c, NN_ERR_FORMAT, "Resizing config");
}

/* An output pixel reads 2 input pixels per axis (bilinear) or 1 (nearest,
 * or an axis that keeps its size); outputs lie in / out inputs apart. */
static void resize_receptive(const nn_layer *l, nn_receptive *r)
{
    const nn_shape *s = &l->inputs[0]->out;
    bool bilinear = cfg_of(l).interpolation == NN_INTERP_BILINEAR;
    for (int i = 0; i < 2; i++) {
        r->taps[i] = bilinear && s->d[i] != l->out.d[i] ? 2 : 1;
        r->stride_num[i] = s->d[i];
        r->stride_den[i] = l->out.d[i];
    }
}

const nn_layer_ops nn__resizing_ops = {
    .type_name = "Resizing",
    .stem = "resizing",
    .build = resize_build,
    .forward = resize_forward,
    .backward = resize_backward,
    .save_config = resize_save,
    .load_config = resize_load,
    .receptive = resize_receptive,
};

nn_layer *nn_resizing(nn_model *m, nn_layer *input, int height, int width,
                      const nn_resizing_opts *opts)
{
    nn_resizing_opts o = NN_RESIZING_OPTS_INIT;
    if (nn__read_opts(&o, opts, "nn_resizing") != NN_OK) return NULL;
    if (!m || !input) {
        nn__fail(NN_ERR_INVALID, "nn_resizing: %s is NULL",
                 m ? "input" : "model");
        return NULL;
    }
    resize_cfg c = {height, width, o.interpolation};
    if (resize_check(&c, NN_ERR_INVALID, "nn_resizing") != NN_OK) return NULL;
    nn_layer proto = {0};
    set_cfg(&proto, &c);
    return nn__add_layer(m, NN_KIND_RESIZING, 1, &input, o.name, &proto);
}

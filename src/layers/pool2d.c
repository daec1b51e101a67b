/* MaxPooling2D and AveragePooling2D, NHWC. Max pooling with 2x2 windows
 * at stride 2 (VALID) keeps, in training, the chosen cell of each window
 * as one byte; other pools, and passes that did not train, keep nothing:
 * their backward finds each chosen cell again from the input and output. */
#include "kernels/kernels.h"
#include "layers/layers.h"

#include <string.h>

typedef struct pool_cfg {
    int ph, pw, sh, sw;
    nn_padding padding;
    int pad_top, pad_left; /* derived by build */
} pool_cfg;
NN_LAYER_CONFIG(pool_cfg, cfg_of, set_cfg)

static nn_status pool_check(const pool_cfg *c, nn_status err, const char *who)
{
    NN_CHECK(c->ph > 0 && c->pw > 0 && c->ph <= NN_LAYER_DIM_MAX &&
                 c->pw <= NN_LAYER_DIM_MAX,
             err, "%s: pool size %dx%d", who, c->ph, c->pw);
    NN_CHECK(c->sh > 0 && c->sw > 0 && c->sh <= NN_LAYER_DIM_MAX &&
                 c->sw <= NN_LAYER_DIM_MAX,
             err, "%s: strides %dx%d", who, c->sh, c->sw);
    NN_CHECK(nn__padding_ok(c->padding), err, "%s: unknown padding %d", who,
             (int)c->padding);
    return NN_OK;
}

static nn_status pool_build(nn_layer *l)
{
    pool_cfg c = cfg_of(l);
    NN_TRY(pool_check(&c, NN_ERR_INVALID, l->ops->type_name));
    NN_TRY(nn__one_input(l, 3));
    int oh, ow;
    NN_TRY(nn__window_axis(l, "height", l->out.d[0], c.ph, c.sh, c.padding,
                           &oh, &c.pad_top));
    NN_TRY(nn__window_axis(l, "width", l->out.d[1], c.pw, c.sw, c.padding,
                           &ow, &c.pad_left));
    set_cfg(l, &c);
    l->out = (nn_shape){3, {oh, ow, l->out.d[2]}};
    return nn__check_out_size(l);
}

static nn_conv_geom pool_geom(const nn_layer *l, int batch)
{
    pool_cfg c = cfg_of(l);
    const nn_shape *in = &l->inputs[0]->out;
    return (nn_conv_geom){
        .n = batch, .h = in->d[0], .w = in->d[1], .c = in->d[2],
        .kh = c.ph, .kw = c.pw, .sh = c.sh, .sw = c.sw,
        .pad_top = c.pad_top, .pad_left = c.pad_left,
        .oh = l->out.d[0], .ow = l->out.d[1], .f = in->d[2],
    };
}

/* The state of a 2x2 pool: a header, then the window cells. */
typedef struct maxpool_state {
    int32_t has_win; /* the last forward trained and wrote the cells */
} maxpool_state;
#define WIN_OFFSET 64 /* keeps the cells 64-byte aligned */

static size_t maxpool_state_bytes(const nn_layer *l, int batch)
{
    nn_conv_geom g = pool_geom(l, batch);
    if (!nn__maxpool_tiles_2x2(&g)) return 0;
    return WIN_OFFSET + (size_t)batch * (size_t)nn__shape_size(&l->out);
}

static nn_status maxpool_forward(const nn_layer *l, const nn_fwd *a)
{
    nn_conv_geom g = pool_geom(l, a->batch);
    maxpool_state st = {a->training && a->state && nn__maxpool_tiles_2x2(&g)};
    if (a->state) memcpy(a->state, &st, sizeof st);
    if (st.has_win)
        nn__maxpool_forward_win(&g, a->in[0], a->out,
                                (uint8_t *)a->state + WIN_OFFSET);
    else
        nn__maxpool_forward(&g, a->in[0], a->out, NULL);
    return NN_OK;
}

static nn_status maxpool_backward(nn_layer *l, const nn_bwd *a)
{
    if (!a->din[0]) return NN_OK;
    nn_conv_geom g = pool_geom(l, a->batch);
    maxpool_state st = {0};
    if (a->state) memcpy(&st, a->state, sizeof st);
    if (st.has_win)
        nn__maxpool_backward_win(&g, (const uint8_t *)a->state + WIN_OFFSET,
                                 a->dout, a->din[0], a->accum[0]);
    else
        nn__maxpool_backward_x(&g, a->in[0], a->out, a->dout, a->din[0],
                               a->accum[0]);
    return NN_OK;
}

static nn_status avgpool_forward(const nn_layer *l, const nn_fwd *a)
{
    nn_conv_geom g = pool_geom(l, a->batch);
    nn__avgpool_forward(&g, a->in[0], a->out);
    return NN_OK;
}

static nn_status avgpool_backward(nn_layer *l, const nn_bwd *a)
{
    if (!a->din[0]) return NN_OK;
    nn_conv_geom g = pool_geom(l, a->batch);
    nn__avgpool_backward(&g, a->dout, a->din[0], a->accum[0]);
    return NN_OK;
}

/* ph, pw, sh, sw, padding */
static size_t pool_save(const nn_layer *l, uint8_t *buf, size_t cap)
{
    pool_cfg c = cfg_of(l);
    nn_cfg_writer w = {buf, cap, 0};
    nn__cfg_put_i32(&w, c.ph);
    nn__cfg_put_i32(&w, c.pw);
    nn__cfg_put_i32(&w, c.sh);
    nn__cfg_put_i32(&w, c.sw);
    nn__cfg_put_i32(&w, (int32_t)c.padding);
    return w.len;
}

static nn_status pool_load(nn_layer *l, const uint8_t *buf, size_t len)
{
    nn_cfg_reader r = {buf, len, 0, false};
    pool_cfg c = {0};
    c.ph = nn__cfg_get_i32(&r);
    c.pw = nn__cfg_get_i32(&r);
    c.sh = nn__cfg_get_i32(&r);
    c.sw = nn__cfg_get_i32(&r);
    c.padding = (nn_padding)nn__cfg_get_i32(&r);
    set_cfg(l, &c);
    NN_TRY(nn__cfg_end(&r, "pooling"));
    return pool_check(&c, NN_ERR_FORMAT, "pooling config");
}

static void pool_receptive(const nn_layer *l, nn_receptive *r)
{
    pool_cfg c = cfg_of(l);
    *r = (nn_receptive){false, {c.ph, c.pw}, {c.sh, c.sw}, {1, 1}};
}

const nn_layer_ops nn__maxpool2d_ops = {
    .type_name = "MaxPooling2D",
    .stem = "max_pooling2d",
    .build = pool_build,
    .state_bytes = maxpool_state_bytes,
    .forward = maxpool_forward,
    .backward = maxpool_backward,
    .save_config = pool_save,
    .load_config = pool_load,
    .receptive = pool_receptive,
};

const nn_layer_ops nn__avgpool2d_ops = {
    .type_name = "AveragePooling2D",
    .stem = "average_pooling2d",
    .build = pool_build,
    .forward = avgpool_forward,
    .backward = avgpool_backward,
    .save_config = pool_save,
    .load_config = pool_load,
    .receptive = pool_receptive,
};

static nn_layer *add_pool(nn_model *m, nn_layer_kind kind, nn_layer *input,
                          int ph, int pw, const nn_pool2d_opts *opts,
                          const char *who)
{
    nn_pool2d_opts o = NN_POOL2D_OPTS_INIT;
    if (nn__read_opts(&o, opts, who) != NN_OK) return NULL;
    if (!m || !input) {
        nn__fail(NN_ERR_INVALID, "%s: %s is NULL", who, m ? "input" : "model");
        return NULL;
    }
    /* Keras: strides default to the pool size. */
    pool_cfg c = {.ph = ph, .pw = pw, .sh = o.stride_h == 0 ? ph : o.stride_h,
                  .sw = o.stride_w == 0 ? pw : o.stride_w,
                  .padding = o.padding};
    if (pool_check(&c, NN_ERR_INVALID, who) != NN_OK) return NULL;
    nn_layer proto = {0};
    set_cfg(&proto, &c);
    return nn__add_layer(m, kind, 1, &input, o.name, &proto);
}

nn_layer *nn_maxpool2d(nn_model *m, nn_layer *input, int ph, int pw,
                       const nn_pool2d_opts *opts)
{
    return add_pool(m, NN_KIND_MAXPOOL2D, input, ph, pw, opts, "nn_maxpool2d");
}

nn_layer *nn_avgpool2d(nn_model *m, nn_layer *input, int ph, int pw,
                       const nn_pool2d_opts *opts)
{
    return add_pool(m, NN_KIND_AVGPOOL2D, input, ph, pw, opts, "nn_avgpool2d");
}

/* Helpers shared by the layer kinds: enums, window geometry and config
 * serialization. */
#include "kernels/kernels.h"
#include "layers/layers.h"

#include <math.h>
#include <string.h>

bool nn__activation_ok(nn_activation a)
{
    return a == NN_ACT_NONE || a == NN_ACT_RELU || a == NN_ACT_SIGMOID ||
           a == NN_ACT_SOFTMAX || a == NN_ACT_RELU6 || a == NN_ACT_TANH ||
           a == NN_ACT_ELU || a == NN_ACT_LEAKY_RELU;
}

bool nn__padding_ok(nn_padding p)
{
    return p == NN_PADDING_VALID || p == NN_PADDING_SAME;
}

bool nn__initializer_ok(nn_initializer i)
{
    return i >= NN_INIT_DEFAULT && i <= NN_INIT_RANDOM_NORMAL;
}

nn_status nn__check_act_inits(const nn_layer *l, nn_initializer kinit,
                              nn_initializer binit, nn_status err,
                              const char *who)
{
    NN_CHECK(nn__activation_ok(l->activation), err,
             "%s: unknown activation %d", who, (int)l->activation);
    NN_CHECK(nn__initializer_ok(kinit) && nn__initializer_ok(binit), err,
             "%s: unknown initializer %d/%d", who, (int)kinit, (int)binit);
    return NN_OK;
}

bool nn__act_keeps_logits(nn_activation a)
{
    return a == NN_ACT_SOFTMAX || a == NN_ACT_SIGMOID;
}

static int64_t act_rows(const nn_layer *l, int batch)
{
    return (int64_t)batch * (nn__shape_size(&l->out) /
                             l->out.d[l->out.rank - 1]);
}

size_t nn__act_state_bytes(const nn_layer *l, int batch)
{
    if (!nn__act_keeps_logits(l->activation)) return 0;
    return (size_t)batch * (size_t)nn__shape_size(&l->out) * sizeof(float);
}

const float *nn__act_logits(const nn_layer *l, const void *state)
{
    return nn__act_keeps_logits(l->activation) ? state : NULL;
}

void nn__act_layer_forward(const nn_layer *l, const nn_fwd *a)
{
    int64_t rows = act_rows(l, a->batch), cols = l->out.d[l->out.rank - 1];
    if (a->state && nn__act_keeps_logits(l->activation))
        memcpy(a->state, a->out, (size_t)(rows * cols) * sizeof(float));
    nn__act_forward(l->activation, a->out, rows, cols);
}

void nn__act_layer_backward(const nn_layer *l, const nn_bwd *a)
{
    if (a->dout_is_preact) return;
    nn__act_backward(l->activation, a->out, a->dout, act_rows(l, a->batch),
                     l->out.d[l->out.rank - 1]);
}

nn_status nn__stddev_check(const float *sd, int n, nn_status err,
                           const char *who)
{
    for (int i = 0; i < n; i++)
        NN_CHECK(isfinite(sd[i]) && !signbit(sd[i]), err,
                 "%s: initializer stddev %g; it must be finite and not "
                 "negative (0: the default 0.05)",
                 who, (double)sd[i]);
    return NN_OK;
}

/* ---- the segmentation convolutions' window ---- */

static bool dim_ok(int v) { return v > 0 && v <= NN_LAYER_DIM_MAX; }

nn_status nn__window_check(const nn_window *w, int use_bias, nn_status err,
                           const char *who)
{
    NN_CHECK(dim_ok(w->kh) && dim_ok(w->kw), err, "%s: kernel size %dx%d",
             who, w->kh, w->kw);
    NN_CHECK(dim_ok(w->sh) && dim_ok(w->sw), err, "%s: strides %dx%d", who,
             w->sh, w->sw);
    NN_CHECK(nn__padding_ok(w->padding), err, "%s: unknown padding %d", who,
             (int)w->padding);
    NN_CHECK(use_bias == 0 || use_bias == 1, err, "%s: use_bias %d", who,
             use_bias);
    return NN_OK;
}

nn_status nn__window_build(const nn_layer *l, nn_window *w, int *oh, int *ow)
{
    const nn_shape *in = &l->inputs[0]->out;
    NN_TRY(nn__window_axis(l, "height", in->d[0], w->kh, w->sh, w->padding,
                           oh, &w->pad_top));
    return nn__window_axis(l, "width", in->d[1], w->kw, w->sw, w->padding,
                           ow, &w->pad_left);
}

nn_conv_geom nn__window_geom(const nn_window *w, const nn_layer *l, int batch,
                             int f)
{
    const nn_shape *in = &l->inputs[0]->out;
    return (nn_conv_geom){
        .n = batch, .h = in->d[0], .w = in->d[1], .c = in->d[2],
        .kh = w->kh, .kw = w->kw, .sh = w->sh, .sw = w->sw,
        .pad_top = w->pad_top, .pad_left = w->pad_left,
        .oh = l->out.d[0], .ow = l->out.d[1], .f = f,
    };
}

void nn__geom_fold_pad(nn_conv_geom *g, const int *pad)
{
    if (!pad) return;
    g->h -= pad[0] + pad[1];
    g->w -= pad[2] + pad[3];
    g->pad_top += pad[0];
    g->pad_left += pad[2];
}

void nn__window_receptive(const nn_window *w, nn_receptive *r)
{
    *r = (nn_receptive){false, {w->kh, w->kw}, {w->sh, w->sw}, {1, 1}};
}

void nn__window_save(nn_cfg_writer *wr, const nn_window *w)
{
    int32_t v[] = {w->kh, w->kw, w->sh, w->sw, (int32_t)w->padding};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        nn__cfg_put_i32(wr, v[i]);
}

void nn__window_load(nn_cfg_reader *r, nn_window *w)
{
    w->kh = nn__cfg_get_i32(r);
    w->kw = nn__cfg_get_i32(r);
    w->sh = nn__cfg_get_i32(r);
    w->sw = nn__cfg_get_i32(r);
    w->padding = (nn_padding)nn__cfg_get_i32(r);
}

void nn__init_bias(nn_param *p, nn_initializer init, float stddev,
                   nn_rng *rng)
{
    nn__init_param_sd(p, init, stddev, p->value.size, p->value.size, rng);
}

bool nn__param_trains(bool layer_trainable, const nn_param *p)
{
    return layer_trainable && p->trainable;
}

float *nn__param_grad(nn_layer *l, int i)
{
    if (i >= l->n_params || !nn__param_trains(l->trainable, &l->params[i]))
        return NULL;
    return l->params[i].grad.data;
}

nn_status nn__window_axis(const nn_layer *l, const char *axis, int in, int k,
                          int s, nn_padding pad, int *out, int *pad_before)
{
    if (pad == NN_PADDING_SAME) {
        int64_t o = ((int64_t)in + s - 1) / s;
        int64_t total = (o - 1) * s + k - in;
        *out = (int)o;
        *pad_before = total > 0 ? (int)(total / 2) : 0;
        return NN_OK;
    }
    NN_CHECK(k <= in, NN_ERR_SHAPE,
             "%s '%s': window of %d does not fit the input %s of %d with "
             "padding 'valid'",
             l->ops->type_name, l->name, k, axis, in);
    *out = (in - k) / s + 1;
    *pad_before = 0;
    return NN_OK;
}

nn_status nn__one_input(nn_layer *l, int rank)
{
    NN_CHECK(l->n_inputs == 1, NN_ERR_INVALID, "%s '%s': takes one input, "
             "got %d", l->ops->type_name, l->name, l->n_inputs);
    const nn_shape *in = &l->inputs[0]->out;
    NN_CHECK(rank == 0 || in->rank == rank, NN_ERR_SHAPE,
             "%s '%s': input '%s' has rank %d per sample, expected %d",
             l->ops->type_name, l->name, l->inputs[0]->name, in->rank, rank);
    NN_CHECK(in->rank >= 1, NN_ERR_SHAPE, "%s '%s': input '%s' has rank 0",
             l->ops->type_name, l->name, l->inputs[0]->name);
    l->out = *in;
    return NN_OK;
}

nn_status nn__check_out_size(const nn_layer *l)
{
    int64_t n = 1;
    for (int i = 0; i < l->out.rank; i++) {
        NN_CHECK(l->out.d[i] > 0, NN_ERR_SHAPE,
                 "%s '%s': output axis %d has size %d", l->ops->type_name,
                 l->name, i, l->out.d[i]);
        n *= l->out.d[i];
        NN_CHECK(n <= NN_SAMPLE_MAX, NN_ERR_SHAPE,
                 "%s '%s': output of more than %d values per sample",
                 l->ops->type_name, l->name, NN_SAMPLE_MAX);
    }
    return NN_OK;
}

/* ---- config bytes ---- */

static void put_u32(nn_cfg_writer *w, uint32_t v)
{
    if (w->buf && w->len + 4 <= w->cap)
        for (int i = 0; i < 4; i++) w->buf[w->len + i] = (uint8_t)(v >> (8 * i));
    w->len += 4;
}

void nn__cfg_put_i32(nn_cfg_writer *w, int32_t v) { put_u32(w, (uint32_t)v); }

void nn__cfg_put_f32(nn_cfg_writer *w, float v)
{
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    put_u32(w, u);
}

static uint32_t get_u32(nn_cfg_reader *r)
{
    if (!r->buf || r->pos > r->len || r->len - r->pos < 4) {
        r->short_read = true;
        return 0;
    }
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v |= (uint32_t)r->buf[r->pos + i] << (8 * i);
    r->pos += 4;
    return v;
}

int32_t nn__cfg_get_i32(nn_cfg_reader *r)
{
    uint32_t u = get_u32(r);
    int32_t v;
    memcpy(&v, &u, sizeof v);
    return v;
}

float nn__cfg_get_f32(nn_cfg_reader *r)
{
    uint32_t u = get_u32(r);
    float v;
    memcpy(&v, &u, sizeof v);
    return v;
}

nn_status nn__cfg_end(const nn_cfg_reader *r, const char *type)
{
    NN_CHECK(!r->short_read, NN_ERR_FORMAT, "%s config is truncated", type);
    NN_CHECK(r->pos == r->len, NN_ERR_FORMAT,
             "%s config has %zu bytes, expected %zu", type, r->len, r->pos);
    return NN_OK;
}

size_t nn__save_no_config(const nn_layer *l, uint8_t *buf, size_t cap)
{
    return 0;
}

nn_status nn__load_no_config(nn_layer *l, const uint8_t *buf, size_t len)
{
    NN_CHECK(len == 0, NN_ERR_FORMAT,
             "layer config has %zu bytes where none are expected", len);
    return NN_OK;
}

/* Conv2D and LocallyConnected2D configs: filters, kh, kw, sh, sw, use_bias,
 * padding, activation, kinit, binit (i32 each). */
size_t nn__conv_config_save(const nn_layer *l, uint8_t *buf, size_t cap)
{
    nn_conv_cfg c = nn__conv_cfg(l);
    nn_cfg_writer w = {buf, cap, 0};
    int32_t v[] = {c.filters, c.kh, c.kw, c.sh, c.sw, c.use_bias,
                   (int32_t)c.padding, (int32_t)l->activation,
                   (int32_t)c.kinit, (int32_t)c.binit};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        nn__cfg_put_i32(&w, v[i]);
    return w.len;
}

nn_status nn__conv_config_check(const nn_layer *l, bool valid_only,
                                nn_status err, const char *who)
{
    nn_conv_cfg c = nn__conv_cfg(l);
    NN_CHECK(c.filters > 0 && c.filters <= NN_LAYER_DIM_MAX, err,
             "%s: %d filters", who, c.filters);
    NN_CHECK(c.kh > 0 && c.kw > 0 && c.kh <= NN_LAYER_DIM_MAX &&
                 c.kw <= NN_LAYER_DIM_MAX,
             err, "%s: kernel size %dx%d", who, c.kh, c.kw);
    NN_CHECK(c.sh > 0 && c.sw > 0 && c.sh <= NN_LAYER_DIM_MAX &&
                 c.sw <= NN_LAYER_DIM_MAX,
             err, "%s: strides %dx%d", who, c.sh, c.sw);
    NN_CHECK(c.use_bias == 0 || c.use_bias == 1, err, "%s: use_bias %d",
             who, c.use_bias);
    if (valid_only)
        NN_CHECK(c.padding == NN_PADDING_VALID, err,
                 "%s: padding must be 'valid' (as in Keras), got %d", who,
                 (int)c.padding);
    else
        NN_CHECK(nn__padding_ok(c.padding), err, "%s: unknown padding %d",
                 who, (int)c.padding);
    return nn__check_act_inits(l, c.kinit, c.binit, err, who);
}

nn_status nn__conv_build_window(nn_layer *l)
{
    nn_conv_cfg c = nn__conv_cfg(l);
    if (c.kinit == NN_INIT_DEFAULT) c.kinit = NN_INIT_GLOROT_UNIFORM;
    if (c.binit == NN_INIT_DEFAULT) c.binit = NN_INIT_ZEROS;
    NN_TRY(nn__one_input(l, 3));
    int oh = 0, ow = 0; /* GCC cannot tell nn__window_axis sets them */
    NN_TRY(nn__window_axis(l, "height", l->out.d[0], c.kh, c.sh, c.padding,
                           &oh, &c.pad_top));
    NN_TRY(nn__window_axis(l, "width", l->out.d[1], c.kw, c.sw, c.padding,
                           &ow, &c.pad_left));
    nn__set_conv_cfg(l, &c);
    l->out = (nn_shape){3, {oh, ow, c.filters}};
    return nn__check_out_size(l);
}

/* Reads the fields only; the caller validates them. */
nn_status nn__conv_config_load(nn_layer *l, const uint8_t *buf, size_t len,
                               const char *kind)
{
    nn_cfg_reader r = {buf, len, 0, false};
    nn_conv_cfg c = {0};
    c.filters = nn__cfg_get_i32(&r);
    c.kh = nn__cfg_get_i32(&r);
    c.kw = nn__cfg_get_i32(&r);
    c.sh = nn__cfg_get_i32(&r);
    c.sw = nn__cfg_get_i32(&r);
    c.use_bias = nn__cfg_get_i32(&r);
    c.padding = (nn_padding)nn__cfg_get_i32(&r);
    l->activation = (nn_activation)nn__cfg_get_i32(&r);
    c.kinit = (nn_initializer)nn__cfg_get_i32(&r);
    c.binit = (nn_initializer)nn__cfg_get_i32(&r);
    nn__set_conv_cfg(l, &c);
    return nn__cfg_end(&r, kind);
}

/* ---- receptive fields ---- */

void nn__conv_receptive(const nn_layer *l, nn_receptive *r)
{
    nn_conv_cfg c = nn__conv_cfg(l);
    *r = (nn_receptive){false, {c.kh, c.kw}, {c.sh, c.sw}, {1, 1}};
}

void nn__receptive_whole(const nn_layer *l, nn_receptive *r)
{
    r->whole = true;
}

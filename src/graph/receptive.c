/* Receptive fields: how many rows and columns of the model input can
 * affect one output position of a layer, and the jump (the distance, in
 * input pixels, between neighbouring output positions).
 *
 * Walking the graph in order: a window layer (Conv2D, pooling,
 * LocallyConnected2D) grows the field by (k - 1) * jump and multiplies the
 * jump by its stride; padding changes neither. A merge (Add, Concatenate)
 * takes the largest field of its inputs. Position-wise layers (BN,
 * activations, Dropout, ZeroPadding2D, RepeatChannels, augmentation, Dense
 * on a tensor of rank >= 2) pass it through. A layer with no positions
 * left (Flatten, GlobalAveragePooling2D, Dense on a vector) sees the whole
 * model input. A Resizing reads 2 samples per axis (bilinear) or 1
 * (nearest) and scales the jump by in / out; fields are kept as fractions
 * of input pixels and reported rounded up, jumps rounded to the nearest
 * integer (at least 1). */
#include "nn_internal.h"

#include <limits.h>
#include <math.h>

typedef struct field {
    double h, w, jh, jw;
} field;

static field whole(const nn_model *m)
{
    const nn_shape *s = &m->input->out;
    double h = s->rank >= 2 ? s->d[0] : 1, w = s->rank >= 3 ? s->d[1] : 1;
    return (field){h, w, h, w};
}

static field window(field in, int kh, int kw, int sh, int sw)
{
    return (field){in.h + (kh - 1) * in.jh, in.w + (kw - 1) * in.jw,
                   in.jh * sh, in.jw * sw};
}

static field resize(const nn_layer *l, field in)
{
    const nn_shape *s = &l->inputs[0]->out;
    bool bilinear = l->cfg.resize.interpolation == NN_INTERP_BILINEAR;
    int th = bilinear && s->d[0] != l->out.d[0] ? 2 : 1;
    int tw = bilinear && s->d[1] != l->out.d[1] ? 2 : 1;
    return (field){in.h + (th - 1) * in.jh, in.w + (tw - 1) * in.jw,
                   in.jh * s->d[0] / l->out.d[0],
                   in.jw * s->d[1] / l->out.d[1]};
}

static field merged(const nn_layer *l, const field *f)
{
    field r = f[l->inputs[0]->index];
    for (int i = 1; i < l->n_inputs; i++) {
        field g = f[l->inputs[i]->index];
        r = (field){fmax(r.h, g.h), fmax(r.w, g.w), fmax(r.jh, g.jh),
                    fmax(r.jw, g.jw)};
    }
    return r;
}

static field layer_field(const nn_layer *l, const field *f)
{
    const nn_model *m = l->model;
    if (l->kind == NN_KIND_INPUT || l->n_inputs == 0)
        return (field){1, 1, 1, 1};
    field in = f[l->inputs[0]->index];
    switch (l->kind) {
    case NN_KIND_CONV2D:
    case NN_KIND_LOCALLY_CONNECTED2D:
        return window(in, l->cfg.conv.kh, l->cfg.conv.kw, l->cfg.conv.sh,
                      l->cfg.conv.sw);
    case NN_KIND_MAXPOOL2D:
    case NN_KIND_AVGPOOL2D:
        return window(in, l->cfg.pool.ph, l->cfg.pool.pw, l->cfg.pool.sh,
                      l->cfg.pool.sw);
    case NN_KIND_RESIZING: return resize(l, in);
    case NN_KIND_FLATTEN:
    case NN_KIND_GLOBAL_AVGPOOL2D: return whole(m);
    case NN_KIND_DENSE:
        return l->inputs[0]->out.rank >= 2 ? in : whole(m);
    default: return merged(l, f);
    }
}

static int round_up(double v)
{
    double r = ceil(v - 1e-9);
    return r >= (double)INT_MAX ? INT_MAX : r < 1 ? 1 : (int)r;
}

static int round_jump(double v)
{
    double r = floor(v + 0.5);
    return r >= (double)INT_MAX ? INT_MAX : r < 1 ? 1 : (int)r;
}

nn_status nn_layer_receptive_field(const nn_layer *l, int *rf_h, int *rf_w,
                                   int *jump_h, int *jump_w)
{
    NN_CHECK(l, NN_ERR_INVALID, "nn_layer_receptive_field: layer is NULL");
    const nn_model *m = l->model;
    NN_CHECK(m->input, NN_ERR_STATE,
             "nn_layer_receptive_field: the model has no input layer");
    field *f = nn__calloc((size_t)l->index + 1, sizeof *f);
    if (!f) return NN_ERR_NOMEM;
    /* Inputs precede their users, so one pass in order suffices. */
    for (int i = 0; i <= l->index; i++) f[i] = layer_field(m->layers[i], f);
    field r = f[l->index];
    nn__free(f);
    if (rf_h) *rf_h = round_up(r.h);
    if (rf_w) *rf_w = round_up(r.w);
    if (jump_h) *jump_h = round_jump(r.jh);
    if (jump_w) *jump_w = round_jump(r.jw);
    return NN_OK;
}

/* Receptive fields: how many rows and columns of the model input can
 * affect one output position of a layer, and the jump (the distance, in
 * input pixels, between neighbouring output positions).
 *
 * Walking the graph in order, each layer says through its ops' receptive
 * hook what it does per axis: an output reads `taps` neighbouring input
 * positions (a window layer's kernel size; a Resizing's 2 or 1 samples),
 * which grows the field by (taps - 1) * jump, and neighbouring outputs lie
 * `stride` input positions apart, which multiplies the jump (a Resizing's
 * stride is in / out); padding changes neither. A layer that leaves no
 * positions (Flatten) sees the whole model input. Layers without the hook
 * work position by position, or merge their inputs (Add, Concatenate)
 * and take the largest of their fields. Fields are kept as fractions of
 * input pixels and reported rounded up, jumps rounded to the nearest
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
    if (l->n_inputs == 0) return (field){1, 1, 1, 1}; /* the input */
    field in = merged(l, f);
    if (!l->ops->receptive) return in;
    nn_receptive r = {false, {1, 1}, {1, 1}, {1, 1}};
    l->ops->receptive(l, &r);
    if (r.whole) return whole(l->model);
    return (field){in.h + (r.taps[0] - 1) * in.jh,
                   in.w + (r.taps[1] - 1) * in.jw,
                   in.jh * r.stride_num[0] / r.stride_den[0],
                   in.jw * r.stride_num[1] / r.stride_den[1]};
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

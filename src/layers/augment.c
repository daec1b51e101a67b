/* Augmentation layers (Keras 2.x preprocessing semantics): RandomFlip,
 * RandomRotation, RandomTranslation, RandomZoom, RandomContrast.
 *
 * In training each image gets its own random transform; otherwise the
 * layer copies its input, bit for bit. Draw j of image b is
 * nn__hash_uniform(key, b * AUG_DRAWS + j) with the call's rng_key, so a
 * seeded model repeats exactly and the draws do not depend on threads.
 * Forward keeps the per-image transforms (flip flags, affine coefficients
 * or contrast factors) in the layer state; backward applies the exact
 * adjoint of what forward did, so these layers may sit anywhere.
 *
 * The config holds the factors as Keras takes them: RandomRotation and
 * RandomContrast use factor_lo/hi; RandomTranslation and RandomZoom use
 * h_lo/hi and w_lo/hi. RandomFlip keeps its nn_flip_mode in `mode`;
 * RandomZoom uses `mode` = 1 for Keras' width_factor=None (the width zoom
 * is the height zoom, w_lo = w_hi = 0), 0 for independent axes. */
#include "kernels/affine.h"
#include "kernels/kernels.h"
#include "layers/layers.h"

#include <math.h>
#include <string.h>

#define AUG_DRAWS 4 /* uniforms reserved per image */

/* Layer state: this header, then per image an int32 flip mask, a float
 * contrast factor or NN_AFFINE_COEFS floats. 16 bytes keep the payload
 * aligned. */
typedef struct aug_state {
    int32_t active; /* forward transformed (training) */
    int32_t batch;
    int32_t pad_[2];
} aug_state;

typedef struct aug_cfg {
    int mode; /* nn_flip_mode */
    float h_lo, h_hi, w_lo, w_hi; /* ranges (zoom, translation) */
    float factor_lo, factor_hi;   /* rotation, contrast */
    nn_fill_mode fill;
    nn_interpolation interpolation;
    float fill_value;
} aug_cfg;
NN_LAYER_CONFIG(aug_cfg, cfg_of, set_cfg)

/* ------------------------------------------------------------------ */
/* validation                                                          */
/* ------------------------------------------------------------------ */

static bool finite2(float a, float b) { return isfinite(a) && isfinite(b); }

static nn_status check_range(float lo, float hi, float min, float max,
                             nn_status err, const char *who, const char *what)
{
    NN_CHECK(finite2(lo, hi) && lo <= hi, err,
             "%s: %s range [%g, %g] must be finite with lower <= upper", who,
             what, (double)lo, (double)hi);
    NN_CHECK(lo >= min && hi <= max, err,
             "%s: %s range [%g, %g] outside [%g, %g]", who, what, (double)lo,
             (double)hi, (double)min, (double)max);
    return NN_OK;
}

static nn_status check_sampling(const aug_cfg *c, nn_status err,
                                const char *who)
{
    NN_CHECK(c->fill >= NN_FILL_REFLECT && c->fill <= NN_FILL_NEAREST, err,
             "%s: unknown fill mode %d", who, (int)c->fill);
    NN_CHECK(c->interpolation == NN_INTERP_BILINEAR ||
                 c->interpolation == NN_INTERP_NEAREST,
             err, "%s: unknown interpolation %d", who, (int)c->interpolation);
    NN_CHECK(isfinite(c->fill_value), err, "%s: fill value %g is not finite",
             who, (double)c->fill_value);
    return NN_OK;
}

/* Keras' limits: rotation and translation factors within [-1, 1] (a full
 * turn, a whole image), zoom factors >= -1 (a zoom of 1 + factor >= 0),
 * contrast lower in [0, 1] and upper >= 0. Infinite upper bounds are
 * refused everywhere. */
static nn_status aug_check(nn_layer_kind kind, const aug_cfg *c, nn_status err,
                           const char *who)
{
    const float big = INFINITY;
    switch (kind) {
    case NN_KIND_RANDOM_FLIP:
        NN_CHECK(c->mode >= NN_FLIP_HORIZONTAL &&
                     c->mode <= NN_FLIP_HORIZONTAL_AND_VERTICAL,
                 err, "%s: unknown flip mode %d", who, c->mode);
        return NN_OK;
    case NN_KIND_RANDOM_ROTATION:
        NN_TRY(check_range(c->factor_lo, c->factor_hi, -1, 1, err, who,
                           "factor"));
        return check_sampling(c, err, who);
    case NN_KIND_RANDOM_TRANSLATION:
        NN_TRY(check_range(c->h_lo, c->h_hi, -1, 1, err, who, "height"));
        NN_TRY(check_range(c->w_lo, c->w_hi, -1, 1, err, who, "width"));
        return check_sampling(c, err, who);
    case NN_KIND_RANDOM_ZOOM:
        NN_TRY(check_range(c->h_lo, c->h_hi, -1, big, err, who, "height"));
        NN_CHECK(c->mode == 0 || c->mode == 1, err,
                 "%s: keep-aspect flag %d", who, c->mode);
        if (c->mode == 1)
            NN_CHECK(c->w_lo == 0.0f && c->w_hi == 0.0f, err,
                     "%s: width range set while the width follows the "
                     "height", who);
        else
            NN_TRY(check_range(c->w_lo, c->w_hi, -1, big, err, who, "width"));
        return check_sampling(c, err, who);
    case NN_KIND_RANDOM_CONTRAST:
        NN_CHECK(finite2(c->factor_lo, c->factor_hi) && c->factor_lo >= 0 &&
                     c->factor_lo <= 1 && c->factor_hi >= 0,
                 err,
                 "%s: contrast factors lower %g, upper %g (need 0 <= lower "
                 "<= 1, 0 <= upper, finite)",
                 who, (double)c->factor_lo, (double)c->factor_hi);
        return NN_OK;
    default:
        return nn__fail(err, "%s: not an augmentation layer", who);
    }
}

static nn_status aug_build(nn_layer *l)
{
    aug_cfg c = cfg_of(l);
    NN_TRY(aug_check(l->kind, &c, NN_ERR_INVALID, l->ops->type_name));
    NN_TRY(nn__one_input(l, 3));
    return nn__check_out_size(l);
}

/* ------------------------------------------------------------------ */
/* draws                                                               */
/* ------------------------------------------------------------------ */

static size_t payload_bytes(nn_layer_kind kind)
{
    switch (kind) {
    case NN_KIND_RANDOM_FLIP: return sizeof(int32_t);
    case NN_KIND_RANDOM_CONTRAST: return sizeof(float);
    default: return NN_AFFINE_COEFS * sizeof(float);
    }
}

static size_t aug_state_bytes(const nn_layer *l, int batch)
{
    return sizeof(aug_state) + (size_t)batch * payload_bytes(l->kind);
}

static void *payload(aug_state *st) { return st + 1; }

static float draw(uint64_t key, int b, int j, float lo, float hi)
{
    float u = nn__hash_uniform(key, (uint64_t)b * AUG_DRAWS + (uint64_t)j);
    return lo + (hi - lo) * u;
}

static void draw_flips(const aug_cfg *c, uint64_t key, int batch,
                       int32_t *flags)
{
    for (int b = 0; b < batch; b++) {
        int32_t f = 0;
        if ((c->mode & NN_FLIP_HORIZONTAL) && draw(key, b, 0, 0, 1) < 0.5f)
            f |= NN_FLIP_HORIZONTAL;
        if ((c->mode & NN_FLIP_VERTICAL) && draw(key, b, 1, 0, 1) < 0.5f)
            f |= NN_FLIP_VERTICAL;
        flags[b] = f;
    }
}

/* Keras' matrices (output pixel -> input coordinate), computed in double
 * and stored as float as TensorFlow stores them. */
static void rotation_matrix(double angle, int h, int w, float *m)
{
    const double cs = cos(angle), sn = sin(angle);
    const double wl = w - 1, hl = h - 1;
    m[0] = (float)cs;
    m[1] = (float)-sn;
    m[2] = (float)((wl - (cs * wl - sn * hl)) / 2.0);
    m[3] = (float)sn;
    m[4] = (float)cs;
    m[5] = (float)((hl - (sn * wl + cs * hl)) / 2.0);
}

static void translation_matrix(double dy, double dx, float *m)
{
    m[0] = 1.0f; m[1] = 0.0f; m[2] = (float)-dx;
    m[3] = 0.0f; m[4] = 1.0f; m[5] = (float)-dy;
}

static void zoom_matrix(double zy, double zx, int h, int w, float *m)
{
    m[0] = (float)zx; m[1] = 0.0f; m[2] = (float)((w - 1) / 2.0 * (1.0 - zx));
    m[3] = 0.0f; m[4] = (float)zy; m[5] = (float)((h - 1) / 2.0 * (1.0 - zy));
}

static void draw_affine(const nn_layer *l, uint64_t key, int batch, float *mats)
{
    const aug_cfg cfg = cfg_of(l), *c = &cfg;
    const int h = l->out.d[0], w = l->out.d[1];
    const double two_pi = 6.283185307179586;
    for (int b = 0; b < batch; b++) {
        float *m = mats + (size_t)b * NN_AFFINE_COEFS;
        if (l->kind == NN_KIND_RANDOM_ROTATION) {
            float turns = draw(key, b, 0, c->factor_lo, c->factor_hi);
            rotation_matrix(two_pi * turns, h, w, m);
        } else if (l->kind == NN_KIND_RANDOM_TRANSLATION) {
            translation_matrix((double)draw(key, b, 0, c->h_lo, c->h_hi) * h,
                               (double)draw(key, b, 1, c->w_lo, c->w_hi) * w,
                               m);
        } else {
            double zy = 1.0 + draw(key, b, 0, c->h_lo, c->h_hi);
            double zx = c->mode == 1
                            ? zy
                            : 1.0 + draw(key, b, 1, c->w_lo, c->w_hi);
            zoom_matrix(zy, zx, h, w, m);
        }
    }
}

static void draw_contrast(const aug_cfg *c, uint64_t key, int batch,
                          float *factors)
{
    for (int b = 0; b < batch; b++)
        factors[b] = draw(key, b, 0, 1.0f - c->factor_lo, 1.0f + c->factor_hi);
}

/* ------------------------------------------------------------------ */
/* forward and backward                                                */
/* ------------------------------------------------------------------ */

static nn_affine_geom affine_geom(const nn_layer *l, int batch)
{
    aug_cfg c = cfg_of(l);
    return (nn_affine_geom){
        .n = batch, .h = l->out.d[0], .w = l->out.d[1], .c = l->out.d[2],
        .fill = c.fill, .interp = c.interpolation,
        .fill_value = c.fill_value,
    };
}

static int64_t values(const nn_layer *l, int batch)
{
    return (int64_t)batch * nn__shape_size(&l->out);
}

static nn_status aug_forward(const nn_layer *l, const nn_fwd *a)
{
    aug_state *st = a->state;
    if (!a->training) {
        if (st) *st = (aug_state){0, a->batch, {0, 0}};
        nn__copy_or_add(a->in[0], a->out, values(l, a->batch), false);
        return NN_OK;
    }
    NN_CHECK(st, NN_ERR_STATE, "%s '%s': no state buffer", l->ops->type_name,
             l->name);
    *st = (aug_state){1, a->batch, {0, 0}};
    const int h = l->out.d[0], w = l->out.d[1], c = l->out.d[2];
    const aug_cfg cfg = cfg_of(l);
    switch (l->kind) {
    case NN_KIND_RANDOM_FLIP:
        draw_flips(&cfg, a->rng_key, a->batch, payload(st));
        nn__flip_images(a->batch, h, w, c, payload(st), a->in[0], a->out,
                        false);
        break;
    case NN_KIND_RANDOM_CONTRAST:
        draw_contrast(&cfg, a->rng_key, a->batch, payload(st));
        nn__contrast_forward(a->batch, (int64_t)h * w, c, payload(st),
                             a->in[0], a->out);
        break;
    default: {
        nn_affine_geom g = affine_geom(l, a->batch);
        draw_affine(l, a->rng_key, a->batch, payload(st));
        nn__affine_forward(&g, payload(st), a->in[0], a->out);
    }
    }
    return NN_OK;
}

static nn_status aug_backward(nn_layer *l, const nn_bwd *a)
{
    if (!a->din[0]) return NN_OK;
    aug_state *st = a->state;
    NN_CHECK(st, NN_ERR_STATE, "%s '%s': no state buffer", l->ops->type_name,
             l->name);
    NN_CHECK(st->batch == a->batch, NN_ERR_STATE,
             "%s '%s': backward of a batch of %d after a forward of %d",
             l->ops->type_name, l->name, a->batch, st->batch);
    float *dx = a->din[0];
    bool accum = a->accum[0];
    if (!st->active) {
        nn__copy_or_add(a->dout, dx, values(l, a->batch), accum);
        return NN_OK;
    }
    const int h = l->out.d[0], w = l->out.d[1], c = l->out.d[2];
    switch (l->kind) {
    case NN_KIND_RANDOM_FLIP:
        nn__flip_images(a->batch, h, w, c, payload(st), a->dout, dx, accum);
        break;
    case NN_KIND_RANDOM_CONTRAST:
        nn__contrast_backward(a->batch, (int64_t)h * w, c, payload(st),
                              a->dout, dx, accum);
        break;
    default: {
        nn_affine_geom g = affine_geom(l, a->batch);
        nn__affine_backward(&g, payload(st), a->dout, dx, accum);
    }
    }
    return NN_OK;
}

/* ------------------------------------------------------------------ */
/* configs                                                             */
/* ------------------------------------------------------------------ */
/* RandomFlip: mode. RandomRotation: lower, upper, fill, interpolation,
 * fill_value. RandomTranslation: h_lo, h_hi, w_lo, w_hi, fill,
 * interpolation, fill_value. RandomZoom: h_lo, h_hi, w_lo, w_hi,
 * keep_aspect, fill, interpolation, fill_value. RandomContrast: lower,
 * upper. Factors are f32, the rest i32. */

static void put_sampling(nn_cfg_writer *w, const aug_cfg *c)
{
    nn__cfg_put_i32(w, (int32_t)c->fill);
    nn__cfg_put_i32(w, (int32_t)c->interpolation);
    nn__cfg_put_f32(w, c->fill_value);
}

static size_t aug_save(const nn_layer *l, uint8_t *buf, size_t cap)
{
    const aug_cfg cfg = cfg_of(l), *c = &cfg;
    nn_cfg_writer w = {buf, cap, 0};
    switch (l->kind) {
    case NN_KIND_RANDOM_FLIP:
        nn__cfg_put_i32(&w, c->mode);
        break;
    case NN_KIND_RANDOM_ROTATION:
        nn__cfg_put_f32(&w, c->factor_lo);
        nn__cfg_put_f32(&w, c->factor_hi);
        put_sampling(&w, c);
        break;
    case NN_KIND_RANDOM_TRANSLATION:
    case NN_KIND_RANDOM_ZOOM:
        nn__cfg_put_f32(&w, c->h_lo);
        nn__cfg_put_f32(&w, c->h_hi);
        nn__cfg_put_f32(&w, c->w_lo);
        nn__cfg_put_f32(&w, c->w_hi);
        if (l->kind == NN_KIND_RANDOM_ZOOM) nn__cfg_put_i32(&w, c->mode);
        put_sampling(&w, c);
        break;
    default: /* contrast */
        nn__cfg_put_f32(&w, c->factor_lo);
        nn__cfg_put_f32(&w, c->factor_hi);
    }
    return w.len;
}

static void get_sampling(nn_cfg_reader *r, aug_cfg *c)
{
    c->fill = (nn_fill_mode)nn__cfg_get_i32(r);
    c->interpolation = (nn_interpolation)nn__cfg_get_i32(r);
    c->fill_value = nn__cfg_get_f32(r);
}

/* The layer's kind is set (the loader knows it) before its config loads. */
static nn_status aug_load_kind(nn_layer *l, nn_layer_kind kind,
                               const uint8_t *buf, size_t len)
{
    nn_cfg_reader r = {buf, len, 0, false};
    aug_cfg cfg = {0}, *c = &cfg;
    switch (kind) {
    case NN_KIND_RANDOM_FLIP:
        c->mode = nn__cfg_get_i32(&r);
        break;
    case NN_KIND_RANDOM_ROTATION:
        c->factor_lo = nn__cfg_get_f32(&r);
        c->factor_hi = nn__cfg_get_f32(&r);
        get_sampling(&r, c);
        break;
    case NN_KIND_RANDOM_TRANSLATION:
    case NN_KIND_RANDOM_ZOOM:
        c->h_lo = nn__cfg_get_f32(&r);
        c->h_hi = nn__cfg_get_f32(&r);
        c->w_lo = nn__cfg_get_f32(&r);
        c->w_hi = nn__cfg_get_f32(&r);
        if (kind == NN_KIND_RANDOM_ZOOM) c->mode = nn__cfg_get_i32(&r);
        get_sampling(&r, c);
        break;
    default:
        c->factor_lo = nn__cfg_get_f32(&r);
        c->factor_hi = nn__cfg_get_f32(&r);
    }
    set_cfg(l, c);
    const char *type = nn__layer_registry[kind]->type_name;
    NN_TRY(nn__cfg_end(&r, type));
    return aug_check(kind, c, NN_ERR_FORMAT, type);
}

/* load_config has no kind argument: one loader per kind. */
#define AUG_LOADER(fn, kind)                                                   \
    static nn_status fn(nn_layer *l, const uint8_t *buf, size_t len)           \
    {                                                                          \
        return aug_load_kind(l, kind, buf, len);                               \
    }
AUG_LOADER(flip_load, NN_KIND_RANDOM_FLIP)
AUG_LOADER(rotation_load, NN_KIND_RANDOM_ROTATION)
AUG_LOADER(translation_load, NN_KIND_RANDOM_TRANSLATION)
AUG_LOADER(zoom_load, NN_KIND_RANDOM_ZOOM)
AUG_LOADER(contrast_load, NN_KIND_RANDOM_CONTRAST)

#define AUG_OPS(type, stem_, loader)                                           \
    {                                                                          \
        .type_name = type, .stem = stem_, .build = aug_build,                  \
        .state_bytes = aug_state_bytes, .forward = aug_forward,                \
        .backward = aug_backward, .save_config = aug_save,                     \
        .load_config = loader,                                                 \
    }

const nn_layer_ops nn__random_flip_ops =
    AUG_OPS("RandomFlip", "random_flip", flip_load);
const nn_layer_ops nn__random_rotation_ops =
    AUG_OPS("RandomRotation", "random_rotation", rotation_load);
const nn_layer_ops nn__random_translation_ops =
    AUG_OPS("RandomTranslation", "random_translation", translation_load);
const nn_layer_ops nn__random_zoom_ops =
    AUG_OPS("RandomZoom", "random_zoom", zoom_load);
const nn_layer_ops nn__random_contrast_ops =
    AUG_OPS("RandomContrast", "random_contrast", contrast_load);

/* ------------------------------------------------------------------ */
/* constructors                                                        */
/* ------------------------------------------------------------------ */

/* Validates and adds a layer of `kind` with config *c. */
static nn_layer *add_aug(nn_model *m, nn_layer *input, nn_layer_kind kind,
                         const char *name, const aug_cfg *c, const char *who)
{
    if (!m || !input) {
        nn__fail(NN_ERR_INVALID, "%s: %s is NULL", who, m ? "input" : "model");
        return NULL;
    }
    if (aug_check(kind, c, NN_ERR_INVALID, who) != NN_OK) return NULL;
    nn_layer proto = {0};
    set_cfg(&proto, c);
    return nn__add_layer(m, kind, 1, &input, name, &proto);
}

/* Reads nn_augment_opts into the sampling fields of *c. */
static bool read_augment_opts(const nn_augment_opts *opts, aug_cfg *c,
                              const char **name, const char *who)
{
    nn_augment_opts o = NN_AUGMENT_OPTS_INIT;
    if (nn__read_opts(&o, opts, who) != NN_OK) return false;
    c->fill = o.fill_mode;
    c->interpolation = o.interpolation;
    c->fill_value = o.fill_value;
    *name = o.name;
    return true;
}

nn_layer *nn_random_flip(nn_model *m, nn_layer *input, nn_flip_mode mode,
                         const nn_layer_opts *opts)
{
    nn_layer_opts o = NN_LAYER_OPTS_INIT;
    if (nn__read_opts(&o, opts, "nn_random_flip") != NN_OK)
        return NULL;
    aug_cfg c = {.mode = (int)mode};
    return add_aug(m, input, NN_KIND_RANDOM_FLIP, o.name, &c,
                   "nn_random_flip");
}

nn_layer *nn_random_rotation(nn_model *m, nn_layer *input, float lower,
                             float upper, const nn_augment_opts *opts)
{
    aug_cfg c = {0};
    const char *name;
    if (!read_augment_opts(opts, &c, &name, "nn_random_rotation"))
        return NULL;
    c.factor_lo = lower;
    c.factor_hi = upper;
    return add_aug(m, input, NN_KIND_RANDOM_ROTATION, name, &c,
                   "nn_random_rotation");
}

nn_layer *nn_random_translation(nn_model *m, nn_layer *input, float h_lo,
                                float h_hi, float w_lo, float w_hi,
                                const nn_augment_opts *opts)
{
    aug_cfg c = {0};
    const char *name;
    if (!read_augment_opts(opts, &c, &name, "nn_random_translation"))
        return NULL;
    c.h_lo = h_lo;
    c.h_hi = h_hi;
    c.w_lo = w_lo;
    c.w_hi = w_hi;
    return add_aug(m, input, NN_KIND_RANDOM_TRANSLATION, name, &c,
                   "nn_random_translation");
}

nn_layer *nn_random_zoom(nn_model *m, nn_layer *input, float h_lo, float h_hi,
                         float w_lo, float w_hi, const nn_augment_opts *opts)
{
    aug_cfg c = {0};
    const char *name;
    if (!read_augment_opts(opts, &c, &name, "nn_random_zoom"))
        return NULL;
    c.h_lo = h_lo;
    c.h_hi = h_hi;
    /* NaN, NaN: Keras' width_factor=None, one zoom for both axes. */
    if (isnan(w_lo) && isnan(w_hi)) {
        c.mode = 1;
    } else {
        c.w_lo = w_lo;
        c.w_hi = w_hi;
    }
    return add_aug(m, input, NN_KIND_RANDOM_ZOOM, name, &c,
                   "nn_random_zoom");
}

nn_layer *nn_random_contrast(nn_model *m, nn_layer *input, float lower,
                             float upper, const nn_layer_opts *opts)
{
    nn_layer_opts o = NN_LAYER_OPTS_INIT;
    if (nn__read_opts(&o, opts, "nn_random_contrast") != NN_OK)
        return NULL;
    aug_cfg c = {.factor_lo = lower, .factor_hi = upper};
    return add_aug(m, input, NN_KIND_RANDOM_CONTRAST, o.name, &c,
                   "nn_random_contrast");
}

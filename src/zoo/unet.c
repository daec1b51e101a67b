/* A U-Net on a given encoder, as the TensorFlow segmentation tutorial
 * builds it: the encoder (a MobileNetV2) enters through nn_model_apply, so
 * its weights are shared with the caller's model and the summary shows it
 * as one row; the decoder is pix2pix's upsample block, each followed by a
 * concatenation with the matching skip. */
#include "zoo/zoo.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define UNET_MAX_SKIPS 16

static nn_status check_skips(const nn_model *enc, int n,
                             const char *const *names, nn_layer **skips)
{
    const char *who = "nn_unet";
    const nn_shape *in = &enc->input->out;
    for (int i = 0; i < n; i++) {
        NN_CHECK(names[i], NN_ERR_INVALID, "%s: skip_names[%d] is NULL", who,
                 i);
        skips[i] = nn_model_find_layer(enc, names[i]);
        NN_CHECK(skips[i], NN_ERR_INVALID,
                 "%s: skip %d '%s' is not a layer of the encoder '%s'", who,
                 i, names[i], enc->name);
        const nn_shape *s = &skips[i]->out;
        const nn_shape *up = i ? &skips[i - 1]->out : in;
        NN_CHECK(s->rank == 3, NN_ERR_SHAPE,
                 "%s: skip '%s' is not an image (rank %d per sample)", who,
                 names[i], s->rank);
        NN_CHECK(2 * s->d[0] == up->d[0] && 2 * s->d[1] == up->d[1],
                 NN_ERR_SHAPE,
                 "%s: skip '%s' is %dx%d, but it must have half the height "
                 "and width of %s '%s' (%dx%d): each upsample block doubles "
                 "them; list the skips from the shallowest to the deepest",
                 who, names[i], s->d[0], s->d[1], i ? "the skip before" :
                 "the input", i ? names[i - 1] : enc->input->name, up->d[0],
                 up->d[1]);
    }
    return NN_OK;
}

static nn_status check_args(nn_model *enc, int n_skips,
                            const char *const *names, int n_filters,
                            const int *filters, int classes,
                            const nn_unet_opts *o, nn_layer **skips)
{
    const char *who = "nn_unet";
    NN_CHECK(enc && names && (filters || n_filters == 0), NN_ERR_INVALID,
             "%s: NULL argument", who);
    NN_CHECK(enc->input && enc->input->out.rank == 3, NN_ERR_INVALID,
             "%s: the encoder '%s' must take images (an input of rank 3)",
             who, enc->name);
    NN_CHECK(n_skips >= 1 && n_skips <= UNET_MAX_SKIPS, NN_ERR_INVALID,
             "%s: %d skips; give 1 to %d", who, n_skips, UNET_MAX_SKIPS);
    NN_CHECK(n_filters == n_skips - 1, NN_ERR_INVALID,
             "%s: %d filter counts for %d skips; the decoder has one "
             "upsample block per skip but the deepest, so give %d",
             who, n_filters, n_skips, n_skips - 1);
    for (int i = 0; i < n_filters; i++)
        NN_CHECK(filters[i] >= 1 && filters[i] <= (1 << 16), NN_ERR_INVALID,
                 "%s: filters[%d] = %d; each must be 1 to 65536", who, i,
                 filters[i]);
    NN_CHECK(classes >= 1 && classes <= (1 << 16), NN_ERR_INVALID,
             "%s: %d classes; give 1 to 65536", who, classes);
    NN_CHECK(o->activation == NN_ACT_NONE || o->activation == NN_ACT_SIGMOID ||
                 o->activation == NN_ACT_SOFTMAX,
             NN_ERR_INVALID,
             "%s: output activation %d; use NN_ACT_NONE (logits), "
             "NN_ACT_SIGMOID or NN_ACT_SOFTMAX",
             who, (int)o->activation);
    NN_CHECK(o->dropout >= 0.0 && o->dropout < 1.0, NN_ERR_INVALID,
             "%s: dropout %g must lie in [0, 1)", who, o->dropout);
    NN_CHECK(o->bn_momentum >= 0.0 && o->bn_momentum < 1.0, NN_ERR_INVALID,
             "%s: bn_momentum %g must lie in [0, 1)", who, o->bn_momentum);
    return check_skips(enc, n_skips, names, skips);
}

/* The layer of `m` that nn_model_apply made from the encoder's layer
 * `orig`: it keeps orig's name, or "<block>/<name>" when that was taken. */
static nn_layer *copy_of(const nn_model *m, const char *block,
                         const nn_layer *orig)
{
    char prefixed[2 * NN_NAME_MAX + 2];
    nn_layer *l = nn_model_find_layer(m, orig->name);
    if (l && !strcmp(l->group, block)) return l;
    snprintf(prefixed, sizeof prefixed, "%s/%s", block, orig->name);
    return nn_model_find_layer(m, prefixed);
}

/* pix2pix's upsample: Conv2DTranspose(f, 3, 2, same, no bias, N(0, 0.02))
 * - BatchNormalization - [Dropout] - ReLU. */
static nn_layer *upsample(nn_model *m, nn_layer *x, int filters,
                          const nn_unet_opts *o)
{
    if (!x) return NULL;
    nn_conv2d_transpose_opts t = NN_CONV2D_TRANSPOSE_OPTS_INIT;
    t.stride_h = t.stride_w = 2;
    t.padding = NN_PADDING_SAME;
    t.use_bias = 0;
    t.kernel_init = NN_INIT_RANDOM_NORMAL;
    t.kernel_init_stddev = 0.02f;
    x = nn_conv2d_transpose(m, x, filters, 3, 3, &t);
    nn_batchnorm_opts bn = NN_BATCHNORM_OPTS_INIT;
    bn.momentum = (float)o->bn_momentum;
    if (x) x = nn_batchnorm(m, x, &bn);
    if (x && o->dropout > 0.0) x = nn_dropout(m, x, (float)o->dropout, NULL);
    return x ? nn_relu(m, x, NULL) : NULL;
}

static nn_layer *unet_layers(nn_model *m, nn_model *enc, int n_skips,
                             nn_layer **skips, const int *filters,
                             int classes, const nn_unet_opts *o)
{
    const char *block = o->encoder_name ? o->encoder_name
                        : enc->name[0]   ? enc->name
                                         : "model";
    const nn_shape *s = &enc->input->out;
    int shape[3] = {s->d[0], s->d[1], s->d[2]};
    nn_layer_opts bo = NN_LAYER_OPTS_INIT;
    bo.name = block;
    nn_layer *x = nn_input(m, 3, shape, NULL);
    if (x) x = nn_model_apply(m, x, enc, skips[n_skips - 1], &bo);
    if (!x) return NULL;
    for (int i = 0; o->freeze_encoder && i < m->n_layers; i++)
        if (!strcmp(m->layers[i]->group, block) &&
            nn_layer_set_trainable(m->layers[i], 0) != NN_OK)
            return NULL;
    for (int i = n_skips - 2; i >= 0 && x; i--) {
        nn_layer *skip = copy_of(m, block, skips[i]);
        if (!skip) {
            nn__fail(NN_ERR_INVALID, "nn_unet: skip '%s' does not feed the "
                     "deepest skip '%s', so the encoder up to it does not "
                     "contain it", skips[i]->name, skips[n_skips - 1]->name);
            return NULL;
        }
        x = upsample(m, x, filters[n_skips - 2 - i], o);
        nn_layer *both[2] = {x, skip};
        if (x) x = nn_concatenate(m, 2, both, NULL);
    }
    if (!x) return NULL;
    nn_conv2d_transpose_opts t = NN_CONV2D_TRANSPOSE_OPTS_INIT;
    t.stride_h = t.stride_w = 2;
    t.padding = NN_PADDING_SAME;
    t.activation = o->activation;
    return nn_conv2d_transpose(m, x, classes, 3, 3, &t);
}

nn_model *nn_unet(nn_model *encoder, int n_skips,
                  const char *const *skip_names, int n_filters,
                  const int *filters, int classes, uint64_t seed,
                  const nn_unet_opts *opts)
{
    nn_unet_opts o = NN_UNET_OPTS_INIT;
    nn_layer *skips[UNET_MAX_SKIPS];
    if (nn__read_opts(&o, opts, "nn_unet") != NN_OK ||
        check_args(encoder, n_skips, skip_names, n_filters, filters, classes,
                   &o, skips) != NN_OK)
        return NULL;
    nn_model *m = nn_model_create(seed);
    if (!m) return NULL;
    if (nn_model_set_name(m, o.name ? o.name : "unet") != NN_OK ||
        !unet_layers(m, encoder, n_skips, skips, filters, classes, &o)) {
        nn_model_free(m);
        return NULL;
    }
    return m;
}

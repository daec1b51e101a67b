/* The defect classifier of Q4, shared by examples/defect_classifier.c,
 * examples/stride_vs_pool.c and bench/classifier_bench.c (whose PyTorch
 * twin, bench/classifier_bench_torch.py, builds the same network by hand:
 * change both together).
 *
 *   input 128x128x3 (a crop of the surface, normalised as the model's
 *   stored preprocessing says: (pixel / 255 - 0.5) / 0.25)
 *   3 x [Conv2D(f, 3x3, same) - activation - downsample by 2], f = 8, 16, 32
 *   Conv2D(32, 3x3, same) - activation
 *   MaxPooling2D over the whole 16x16 map - Flatten - Dense(head)
 *
 * The downsampling is MaxPooling2D(2) after a stride-1 convolution (the
 * default) or the convolution itself at stride 2 (stride_vs_pool). The
 * last pooling takes the maximum over the whole map rather than the
 * average: a defect covers a few percent of the crop, and an average
 * would dilute its evidence with the healthy surface around it.
 *
 * Header-only; uses the public API only. */
#ifndef NN_EXAMPLES_DEFECT_MODEL_H
#define NN_EXAMPLES_DEFECT_MODEL_H

#include <nn.h>

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define DM_SIZE 128   /* crop height and width */
#define DM_CHANNELS 3 /* RGB */

/* Hidden activations. ReLU runs inside the convolution (Keras'
 * activation="relu"); the others are layers of their own. */
typedef enum dm_act { DM_RELU = 0, DM_LEAKY_RELU = 1, DM_PRELU = 2 } dm_act;

/* Output and loss. */
typedef enum dm_head {
    DM_SOFTMAX2 = 0, /* Dense(2, softmax), categorical cross-entropy */
    DM_SIGMOID = 1,  /* Dense(1, sigmoid), binary cross-entropy */
    DM_TYPES = 2     /* Dense(5, softmax) over none + the 4 defect kinds */
} dm_head;

typedef enum dm_down { DM_MAXPOOL = 0, DM_STRIDE2 = 1 } dm_down;

typedef struct dm_arch {
    dm_act act;
    dm_head head;
    dm_down down;
} dm_arch;
#define DM_ARCH_DEFAULT {DM_RELU, DM_SOFTMAX2, DM_MAXPOOL}

/* The classes of a head's output (2 for one sigmoid channel, as
 * nn_confusion and nn_binary_opts count them). */
static inline int dm_classes(dm_head h) { return h == DM_TYPES ? 5 : 2; }

/* The defective classes, as nn_binary_opts.positive_class takes them:
 * class 1, or for the typed head every class but "none". */
static inline int dm_positive_class(dm_head h)
{
    return h == DM_TYPES ? NN_ALL_BUT(0) : 1;
}

static inline const char *dm_act_name(dm_act a)
{
    static const char *const names[] = {"ReLU", "LeakyReLU", "PReLU"};
    return names[a];
}

/* The activation after a convolution that was built without one. */
static inline nn_layer *dm_activation(nn_model *m, nn_layer *x, dm_act a)
{
    switch (a) {
    case DM_RELU:
        break; /* inside the convolution */
    case DM_LEAKY_RELU:
        return nn_leaky_relu(m, x, 0.3f, NULL); /* Keras' default slope */
    case DM_PRELU: {
        /* one learned slope per channel, shared over height and width
         * (Keras shared_axes=[1, 2], PyTorch's PReLU(C)); Keras starts
         * them at 0 */
        nn_prelu_opts p = NN_PRELU_OPTS_INIT;
        p.shared_axes = (1u << 1) | (1u << 2);
        return nn_prelu(m, x, &p);
    }
    }
    return x;
}

static inline nn_layer *dm_conv_block(nn_model *m, nn_layer *x, int filters,
                                      const dm_arch *a, int downsample)
{
    nn_conv2d_opts c = NN_CONV2D_OPTS_INIT;
    c.padding = NN_PADDING_SAME;
    c.activation = a->act == DM_RELU ? NN_ACT_RELU : NN_ACT_NONE;
    if (downsample && a->down == DM_STRIDE2) c.stride_h = c.stride_w = 2;
    x = dm_activation(m, nn_conv2d(m, x, filters, 3, 3, &c), a->act);
    if (downsample && a->down == DM_MAXPOOL) x = nn_maxpool2d(m, x, 2, 2, NULL);
    return x;
}

/* The classifier, not compiled; NULL (nn_last_error) on failure. */
static inline nn_model *dm_build(const dm_arch *a, unsigned long long seed)
{
    nn_model *m = nn_model_create(seed);
    int shape[3] = {DM_SIZE, DM_SIZE, DM_CHANNELS};
    nn_layer *x = m ? nn_input(m, 3, shape, NULL) : NULL;
    x = dm_conv_block(m, x, 8, a, 1);
    x = dm_conv_block(m, x, 16, a, 1);
    x = dm_conv_block(m, x, 32, a, 1);
    x = dm_conv_block(m, x, 32, a, 0);
    x = nn_maxpool2d(m, x, DM_SIZE / 8, DM_SIZE / 8, NULL);
    x = nn_flatten(m, x, NULL);
    nn_dense_opts d = NN_DENSE_OPTS_INIT;
    d.activation = a->head == DM_SIGMOID ? NN_ACT_SIGMOID : NN_ACT_SOFTMAX;
    x = nn_dense(m, x, a->head == DM_SIGMOID ? 1 : dm_classes(a->head), &d);
    if (!x) {
        nn_model_free(m);
        return NULL;
    }
    return m;
}

/* The loss that goes with the head: categorical cross-entropy on class
 * ids for the softmax heads, binary cross-entropy for the sigmoid. */
static inline nn_loss dm_loss(dm_head h)
{
    return h == DM_SIGMOID ? NN_LOSS_BINARY_CROSSENTROPY
                           : NN_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY;
}

/* The normalisation the model stores and training applies, and the
 * decision: defective where the defective classes' probability reaches
 * the threshold. */
static inline nn_preprocess_opts dm_preprocess(dm_head h, float threshold)
{
    nn_preprocess_opts p = NN_PREPROCESS_OPTS_INIT;
    for (int c = 0; c < 4; c++) {
        p.mean[c] = 0.5f;
        p.std[c] = 0.25f;
    }
    p.positive_class = dm_positive_class(h);
    p.threshold = threshold;
    return p;
}

/* 8-bit frames from images in [0, 1], as a camera would give them;
 * NULL when out of memory. */
static inline uint8_t *dm_to_u8(const nn_tensor *images)
{
    int64_t n = nn_tensor_size(images);
    const float *v = nn_tensor_data_const(images);
    uint8_t *px = malloc((size_t)n);
    if (!px) return NULL;
    for (int64_t i = 0; i < n; i++)
        px[i] = (uint8_t)lrintf(fminf(fmaxf(v[i], 0.0f), 1.0f) * 255.0f);
    return px;
}

/* Rewrites images [N, H, W, C] in [0, 1] as the product will see them:
 * quantised to 8 bits, then normalised by nn_image_from_u8 with the
 * preprocessing p, so training sees exactly what the classify calls
 * compute from a camera frame. */
static inline nn_status dm_normalise(nn_tensor *images,
                                     const nn_preprocess_opts *p)
{
    int64_t n = nn_tensor_dim(images, 0), h = nn_tensor_dim(images, 1),
            w = nn_tensor_dim(images, 2), c = nn_tensor_dim(images, 3);
    nn_pixels_opts po = NN_PIXELS_OPTS_INIT;
    po.scale = p->scale;
    memcpy(po.mean, p->mean, sizeof po.mean);
    memcpy(po.std, p->std, sizeof po.std);
    uint8_t *px = dm_to_u8(images);
    if (!px) return NN_ERR_NOMEM;
    nn_status s = NN_OK;
    for (int64_t i = 0; i < n && s == NN_OK; i++)
        s = nn_image_from_u8(px + i * h * w * c, (int)h, (int)w, (int)c, &po,
                             images, i);
    free(px);
    return s;
}

/* Multiply-adds of one image's forward pass, counted from the layers'
 * shapes: a convolution does out_h x out_w x kh x kw x in x filters (its
 * kernel's size over its filters, per output value), a Dense layer in x
 * units. Max pooling does comparisons, not multiply-adds: *cmp (may be
 * NULL) receives one per window element. Biases and activations (one
 * operation per value) are left out. FLOPs are twice the multiply-adds. */
static inline int64_t dm_macs(const nn_model *m, int64_t *comparisons)
{
    int64_t macs = 0, cmp = 0;
    for (int i = 0; i < nn_model_num_layers(m); i++) {
        nn_layer *l = nn_model_layer(m, i);
        const char *type = nn_layer_type(l);
        int out[NN_MAX_RANK], in[NN_MAX_RANK];
        int rank = nn_layer_output_shape(l, out, NN_MAX_RANK);
        int64_t size = 1;
        for (int k = 0; k < rank; k++) size *= out[k];
        if (!strcmp(type, "Conv2D") || !strcmp(type, "Dense")) {
            nn_tensor *kernel = nn_layer_weight(l, 0);
            int64_t per_out = nn_tensor_size(kernel) /
                              nn_tensor_dim(kernel, nn_tensor_rank(kernel) - 1);
            macs += size * per_out;
        } else if (!strcmp(type, "MaxPooling2D")) {
            nn_layer_output_shape(nn_layer_input(l, 0), in, NN_MAX_RANK);
            cmp += size * (in[0] / out[0]) * (in[1] / out[1]);
        }
    }
    if (comparisons) *comparisons = cmp;
    return macs;
}

/* ---- the data: crops of the synthetic surface-defect data ---- */

typedef struct dm_split {
    nn_tensor *x;    /* [N, 128, 128, 3], normalised as dm_preprocess */
    nn_tensor *kind; /* [N] nn_defect_kind: the typed head's labels */
    nn_tensor *ids;  /* [N] 1 defective, 0 good: the softmax2 head's */
    nn_tensor *col;  /* [N, 1] the same: binary cross-entropy's */
    int64_t n, defective;
} dm_split;

static inline void dm_split_free(dm_split *s)
{
    nn_tensor_free(s->x);
    nn_tensor_free(s->kind);
    nn_tensor_free(s->ids);
    nn_tensor_free(s->col);
    memset(s, 0, sizeof *s);
}

/* n crops, a share `fraction` of them defective, from `seed`; on failure
 * (nn_last_error) *s holds nothing. */
static inline nn_status dm_split_make(dm_split *s, int n, float fraction,
                                      unsigned long long seed)
{
    memset(s, 0, sizeof *s);
    nn_defects_opts d = NN_DEFECTS_OPTS_INIT;
    d.count = n;
    d.height = d.width = DM_SIZE;
    d.channels = DM_CHANNELS;
    d.defect_fraction = fraction;
    d.seed = seed;
    nn_tensor *mask = NULL;
    nn_status st = nn_synthetic_defects(&d, &s->x, &mask, &s->kind);
    nn_tensor_free(mask);
    nn_preprocess_opts p = dm_preprocess(DM_SOFTMAX2, 0.5f);
    if (st == NN_OK) st = dm_normalise(s->x, &p);
    int64_t ns[1] = {n}, cs[2] = {n, 1};
    if (st == NN_OK) {
        s->ids = nn_tensor_create(1, ns);
        s->col = nn_tensor_create(2, cs);
        if (!s->ids || !s->col) st = NN_ERR_NOMEM;
    }
    if (st != NN_OK) {
        dm_split_free(s);
        return st;
    }
    const float *k = nn_tensor_data_const(s->kind);
    float *a = nn_tensor_data(s->ids), *b = nn_tensor_data(s->col);
    s->n = n;
    for (int i = 0; i < n; i++) {
        a[i] = b[i] = k[i] != 0;
        s->defective += k[i] != 0;
    }
    return NN_OK;
}

/* The labels a head's loss reads. */
static inline const nn_tensor *dm_labels(const dm_split *s, dm_head h)
{
    return h == DM_TYPES ? s->kind : h == DM_SIGMOID ? s->col : s->ids;
}

/* Keras' "balanced" class weights n / (classes x n_c) of the training
 * labels, into w[dm_classes(h)]; a class without samples keeps 1. */
static inline void dm_balanced_weights(const dm_split *s, dm_head h, float *w)
{
    int classes = dm_classes(h);
    int64_t count[NN_DEFECT_KINDS] = {0};
    const float *k = nn_tensor_data_const(s->kind);
    for (int64_t i = 0; i < s->n; i++)
        count[h == DM_TYPES ? (int)k[i] : k[i] != 0]++;
    for (int c = 0; c < classes; c++)
        w[c] = count[c] ? (float)s->n / (float)(classes * count[c]) : 1.0f;
}

#endif

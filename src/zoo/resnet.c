/* ResNet50 (He et al. 2016) in the two flavours whose weights exist in the
 * wild: Keras' keras.applications.ResNet50 (v1) and torchvision's resnet50
 * (v1.5). Both use Keras' layer names, so one name scheme serves summaries,
 * lookups and the torchvision weight map (nn__resnet_torch_key below). */
#include "zoo/zoo.h"
#include "layers/layers.h"

#include <stdio.h>
#include <string.h>

/* The longest suffix a block appends to its prefix ("_1_relu"). */
#define SUFFIX_MAX 8

static nn_zoo_style flavor_of(nn_resnet_flavor f)
{
    if (f == NN_RESNET_TORCHVISION) return (nn_zoo_style){0, 1e-5f, 0.9f};
    return (nn_zoo_style){1, 1.001e-5f, 0.99f};
}

static nn_status check_block(const char *who, nn_model *m, nn_layer *x,
                             int kernel, int f1, int f2, int f3, int stride,
                             nn_resnet_flavor flavor, const char *prefix)
{
    NN_CHECK(m && x && prefix, NN_ERR_INVALID, "%s: NULL argument", who);
    NN_CHECK(flavor == NN_RESNET_KERAS || flavor == NN_RESNET_TORCHVISION,
             NN_ERR_INVALID, "%s: unknown flavour %d", who, (int)flavor);
    NN_CHECK(kernel >= 1 && f1 >= 1 && f2 >= 1 && f3 >= 1 && stride >= 1,
             NN_ERR_INVALID,
             "%s: kernel %d, filters %d/%d/%d and stride %d must be >= 1",
             who, kernel, f1, f2, f3, stride);
    NN_CHECK(prefix[0] && strlen(prefix) + SUFFIX_MAX < NN_NAME_MAX,
             NN_ERR_INVALID, "%s: prefix must have 1 to %d characters", who,
             NN_NAME_MAX - 1 - SUFFIX_MAX);
    NN_CHECK(x->out.rank == 3, NN_ERR_SHAPE,
             "%s '%s': input '%s' is not an image (rank %d per sample)", who,
             prefix, x->name, x->out.rank);
    return NN_OK;
}

/* The residual branch: 1x1 f1 - kxk f2 - 1x1 f3, each with BN, ReLU after
 * the first two. The stride sits on the first 1x1 (Keras) or on the kxk
 * conv (torchvision, which pads k/2 on every side). */
static nn_layer *branch(nn_model *m, nn_layer *x, int k, int f1, int f2,
                        int f3, int stride, nn_resnet_flavor flavor,
                        const char *p)
{
    nn_zoo_style f = flavor_of(flavor);
    char n[NN_NAME_MAX];
    bool torch = flavor == NN_RESNET_TORCHVISION;
    x = nn__zoo_conv(m, x, f1, 1, torch ? 1 : stride, NN_PADDING_VALID, &f,
                     nn__zoo_name(n, p, "_1_conv"));
    x = nn__zoo_bn(m, x, &f, nn__zoo_name(n, p, "_1_bn"));
    x = nn__zoo_relu(m, x, nn__zoo_name(n, p, "_1_relu"));
    if (torch && (stride > 1 || k % 2 == 0)) {
        x = nn__zoo_zeropad(m, x, k / 2, k / 2, k / 2, k / 2,
                            nn__zoo_name(n, p, "_2_pad"));
        x = nn__zoo_conv(m, x, f2, k, stride, NN_PADDING_VALID, &f,
                         nn__zoo_name(n, p, "_2_conv"));
    } else {
        x = nn__zoo_conv(m, x, f2, k, 1, NN_PADDING_SAME, &f,
                         nn__zoo_name(n, p, "_2_conv"));
    }
    x = nn__zoo_bn(m, x, &f, nn__zoo_name(n, p, "_2_bn"));
    x = nn__zoo_relu(m, x, nn__zoo_name(n, p, "_2_relu"));
    x = nn__zoo_conv(m, x, f3, 1, 1, NN_PADDING_VALID, &f,
                     nn__zoo_name(n, p, "_3_conv"));
    return nn__zoo_bn(m, x, &f, nn__zoo_name(n, p, "_3_bn"));
}

/* shortcut + branch, then ReLU. */
static nn_layer *merge(nn_model *m, nn_layer *shortcut, nn_layer *x,
                       const char *p)
{
    if (!shortcut || !x) return NULL;
    char n[NN_NAME_MAX];
    nn_layer_opts o = NN_LAYER_OPTS_INIT;
    o.name = nn__zoo_name(n, p, "_add");
    nn_layer *in[2] = {shortcut, x};
    nn_layer *sum = nn_add(m, 2, in, &o);
    return nn__zoo_relu(m, sum, nn__zoo_name(n, p, "_out"));
}

nn_layer *nn_resnet_identity_block(nn_model *m, nn_layer *x, int kernel,
                                   int f1, int f2, int f3,
                                   nn_resnet_flavor flavor, const char *prefix)
{
    const char *who = "nn_resnet_identity_block";
    if (check_block(who, m, x, kernel, f1, f2, f3, 1, flavor, prefix) != NN_OK)
        return NULL;
    int c = x->out.d[2];
    if (c != f3) {
        nn__fail(NN_ERR_SHAPE,
                 "%s '%s': input '%s' has %d channels but the block outputs "
                 "f3 = %d; an identity block keeps the shape (use a "
                 "convolutional block)",
                 who, prefix, x->name, c, f3);
        return NULL;
    }
    nn_layer *y = branch(m, x, kernel, f1, f2, f3, 1, flavor, prefix);
    return merge(m, x, y, prefix);
}

nn_layer *nn_resnet_conv_block(nn_model *m, nn_layer *x, int kernel, int f1,
                               int f2, int f3, int stride,
                               nn_resnet_flavor flavor, const char *prefix)
{
    const char *who = "nn_resnet_conv_block";
    if (check_block(who, m, x, kernel, f1, f2, f3, stride, flavor, prefix) !=
        NN_OK)
        return NULL;
    nn_zoo_style f = flavor_of(flavor);
    char n[NN_NAME_MAX];
    /* Keras creates the shortcut first: its layers come first in order. */
    nn_layer *s = nn__zoo_conv(m, x, f3, 1, stride, NN_PADDING_VALID, &f,
                               nn__zoo_name(n, prefix, "_0_conv"));
    s = nn__zoo_bn(m, s, &f, nn__zoo_name(n, prefix, "_0_bn"));
    if (!s) return NULL;
    nn_layer *y = branch(m, x, kernel, f1, f2, f3, stride, flavor, prefix);
    return merge(m, s, y, prefix);
}

/* Keras' stack1: a convolutional block, then blocks - 1 identity blocks. */
static nn_layer *stack(nn_model *m, nn_layer *x, int filters, int blocks,
                       int stride, nn_resnet_flavor flavor, int stage)
{
    char p[NN_NAME_MAX];
    snprintf(p, sizeof p, "conv%d_block1", stage);
    if (x)
        x = nn_resnet_conv_block(m, x, 3, filters, filters, 4 * filters,
                                 stride, flavor, p);
    for (int b = 2; b <= blocks && x; b++) {
        snprintf(p, sizeof p, "conv%d_block%d", stage, b);
        x = nn_resnet_identity_block(m, x, 3, filters, filters, 4 * filters,
                                     flavor, p);
    }
    return x;
}

static nn_layer *resnet50_layers(nn_model *m, int h, int w, int c,
                                 const nn_resnet_opts *o)
{
    nn_zoo_style f = flavor_of(o->flavor);
    int shape[3] = {h, w, c};
    nn_layer_opts io = NN_LAYER_OPTS_INIT;
    io.name = "input_1";
    nn_layer *x = nn_input(m, 3, shape, &io);
    x = nn__zoo_zeropad(m, x, 3, 3, 3, 3, "conv1_pad");
    x = nn__zoo_conv(m, x, 64, 7, 2, NN_PADDING_VALID, &f, "conv1_conv");
    x = nn__zoo_bn(m, x, &f, "conv1_bn");
    x = nn__zoo_relu(m, x, "conv1_relu");
    x = nn__zoo_zeropad(m, x, 1, 1, 1, 1, "pool1_pad");
    if (x) {
        nn_pool2d_opts po = NN_POOL2D_OPTS_INIT;
        po.name = "pool1_pool";
        po.stride_h = po.stride_w = 2;
        x = nn_maxpool2d(m, x, 3, 3, &po);
    }
    x = stack(m, x, 64, 3, 1, o->flavor, 2);
    x = stack(m, x, 128, 4, 2, o->flavor, 3);
    x = stack(m, x, 256, 6, 2, o->flavor, 4);
    x = stack(m, x, 512, 3, 2, o->flavor, 5);
    if (!o->include_top) return x;
    return nn__zoo_top(m, x, "avg_pool", 0.0f, o->classes,
                       o->classifier_activation);
}

nn_model *nn_resnet50(int height, int width, int channels, uint64_t seed,
                      const nn_resnet_opts *opts)
{
    nn_resnet_opts o = NN_RESNET_OPTS_INIT;
    if (nn__read_opts(&o, opts, "nn_resnet50") != NN_OK)
        return NULL;
    if (o.flavor != NN_RESNET_KERAS && o.flavor != NN_RESNET_TORCHVISION) {
        nn__fail(NN_ERR_INVALID, "nn_resnet50: unknown flavour %d",
                 (int)o.flavor);
        return NULL;
    }
    if (nn__zoo_check_input("nn_resnet50", height, width, channels,
                            o.include_top, o.classes,
                            o.classifier_activation) != NN_OK)
        return NULL;
    nn_model *m = nn_model_create(seed);
    if (!m) return NULL;
    if (nn_model_set_name(m, o.name ? o.name : "resnet50") != NN_OK ||
        !resnet50_layers(m, height, width, channels, &o)) {
        nn_model_free(m);
        return NULL;
    }
    return m;
}

/* ---------------- torchvision names ---------------- */

/* "conv1_conv" -> "conv1"; "conv1_bn" -> "bn1"; "convS_blockB_I_conv" ->
 * "layer<S-1>.<B-1>.conv<I>" (I = 0: "downsample.0"), "_bn" likewise with
 * "bn<I>" / "downsample.1"; "predictions" -> "fc". */
static bool torch_module(const char *name, char *out, size_t cap)
{
    if (!strcmp(name, "predictions")) return snprintf(out, cap, "fc") > 0;
    if (!strcmp(name, "conv1_conv")) return snprintf(out, cap, "conv1") > 0;
    if (!strcmp(name, "conv1_bn")) return snprintf(out, cap, "bn1") > 0;
    const char *s = name;
    int stage, block;
    if (strncmp(s, "conv", 4)) return false;
    s += 4;
    if (!nn__zoo_number(&s, &stage) || stage < 2 || stage > 5) return false;
    if (strncmp(s, "_block", 6)) return false;
    s += 6;
    if (!nn__zoo_number(&s, &block) || block < 1 || *s++ != '_')
        return false;
    int i = *s++ - '0';
    if (i < 0 || i > 3) return false;
    bool is_bn = !strcmp(s, "_bn");
    if (!is_bn && strcmp(s, "_conv")) return false;
    int n;
    if (i == 0)
        n = snprintf(out, cap, "layer%d.%d.downsample.%d", stage - 1,
                     block - 1, is_bn ? 1 : 0);
    else
        n = snprintf(out, cap, "layer%d.%d.%s%d", stage - 1, block - 1,
                     is_bn ? "bn" : "conv", i);
    return n > 0 && (size_t)n < cap;
}

bool nn__resnet_torch_key(const nn_layer *layer, const nn_param *param,
                          char *key, size_t cap, nn_torch_layout *layout)
{
    char module[NN_NAME_MAX];
    const char *p = nn__torch_param(layer, param->name, layout);
    if (!p || !torch_module(layer->name, module, sizeof module)) return false;
    int n = snprintf(key, cap, "%s.%s", module, p);
    return n > 0 && (size_t)n < cap;
}

/* ---------------- preprocessing ---------------- */

nn_status nn_preprocess_input(nn_tensor *images, nn_preprocess_mode mode)
{
    NN_CHECK(images, NN_ERR_INVALID, "nn_preprocess_input: images is NULL");
    NN_CHECK(images->rank == 4 && images->shape[3] == 3, NN_ERR_SHAPE,
             "nn_preprocess_input: images must be [N, H, W, 3] (RGB)");
    NN_CHECK(mode >= NN_PREPROCESS_CAFFE && mode <= NN_PREPROCESS_TORCH,
             NN_ERR_INVALID, "nn_preprocess_input: unknown mode %d",
             (int)mode);
    static const float caffe_mean[3] = {103.939f, 116.779f, 123.68f}; /* BGR */
    static const float torch_mean[3] = {0.485f, 0.456f, 0.406f};
    static const float torch_std[3] = {0.229f, 0.224f, 0.225f};
    float *px = images->data;
    for (int64_t i = 0; i < images->size / 3; i++, px += 3) {
        if (mode == NN_PREPROCESS_CAFFE) {
            float r = px[0];
            px[0] = px[2] - caffe_mean[0];
            px[1] = px[1] - caffe_mean[1];
            px[2] = r - caffe_mean[2];
        } else if (mode == NN_PREPROCESS_TF) {
            for (int c = 0; c < 3; c++) px[c] = px[c] / 127.5f - 1.0f;
        } else {
            for (int c = 0; c < 3; c++)
                px[c] = (px[c] / 255.0f - torch_mean[c]) / torch_std[c];
        }
    }
    return NN_OK;
}

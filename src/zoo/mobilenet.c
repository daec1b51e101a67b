/* MobileNetV2 (Sandler et al. 2018) in the two flavours whose weights
 * exist in the wild: keras.applications.MobileNetV2 and torchvision's
 * mobilenet_v2. Both use Keras' layer names, so one name scheme serves
 * summaries, skip lookups (the U-Net takes its skips by name) and the
 * torchvision weight map (nn__mobilenet_v2_torch_key below). */
#include "zoo/zoo.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* The inverted residual blocks: expansion t, output channels c, repeats
 * n, stride of the first repeat s (the paper's Table 2). */
static const struct {
    int t, c, n, s;
} stages[] = {{1, 16, 1, 1},  {6, 24, 2, 2},  {6, 32, 3, 2}, {6, 64, 4, 2},
              {6, 96, 3, 1},  {6, 160, 3, 2}, {6, 320, 1, 1}};

typedef struct mb_cfg {
    nn_zoo_style st;
    bool torch;
    double alpha;
} mb_cfg;

/* Keras' and torchvision's _make_divisible(v, 8): the nearest multiple of
 * 8, at least 8, never more than 10% below v. */
static int make_divisible(double v)
{
    int n = (int)(v + 4.0) / 8 * 8;
    if (n < 8) n = 8;
    if (n < 0.9 * v) n += 8;
    return n;
}

/* A block's output channels: Keras truncates c * alpha to an integer
 * first, torchvision rounds the product itself. */
static int block_filters(const mb_cfg *f, int c)
{
    double v = c * f->alpha;
    return make_divisible(f->torch ? v : (double)(int)v);
}

/* The padding before a stride-2 3x3 convolution of an n-pixel axis:
 * torchvision pads 1 on each side; Keras' correct_pad pads (1, 1) for odd
 * n and (0, 1) for even n, which is what TensorFlow's SAME does there. */
static void stride2_pad(const mb_cfg *f, int n, int *before, int *after)
{
    *after = 1;
    *before = f->torch ? 1 : n % 2;
}

static nn_layer *pad_for_stride2(nn_model *m, nn_layer *x, const mb_cfg *f,
                                 const char *name)
{
    if (!x) return NULL;
    int t, b, l, r;
    stride2_pad(f, x->out.d[0], &t, &b);
    stride2_pad(f, x->out.d[1], &l, &r);
    return nn__zoo_zeropad(m, x, t, b, l, r, name);
}

static nn_layer *depthwise(nn_model *m, nn_layer *x, int stride,
                           const char *name)
{
    if (!x) return NULL;
    nn_depthwise_conv2d_opts o = NN_DEPTHWISE_CONV2D_OPTS_INIT;
    o.name = name;
    o.stride_h = o.stride_w = stride;
    o.padding = stride == 1 ? NN_PADDING_SAME : NN_PADDING_VALID;
    o.use_bias = 0;
    return nn_depthwise_conv2d(m, x, 3, 3, &o);
}

/* Keras' _inverted_res_block: [1x1 expand - BN - ReLU6] - [pad] - 3x3
 * depthwise - BN - ReLU6 - 1x1 project - BN [+ input]. Block 0 has no
 * expansion and the prefix "expanded_conv_". */
static nn_layer *inverted_res_block(nn_model *m, nn_layer *in, int expansion,
                                    int stride, int filters, int id,
                                    const mb_cfg *f)
{
    if (!in) return NULL;
    char p[NN_NAME_MAX], n[NN_NAME_MAX];
    int in_ch = in->out.d[2], out_ch = block_filters(f, filters);
    nn_layer *x = in;
    if (id) {
        snprintf(p, sizeof p, "block_%d_", id);
        x = nn__zoo_conv(m, x, expansion * in_ch, 1, 1, NN_PADDING_SAME,
                         &f->st, nn__zoo_name(n, p, "expand"));
        x = nn__zoo_bn(m, x, &f->st, nn__zoo_name(n, p, "expand_BN"));
        x = nn__zoo_relu6(m, x, nn__zoo_name(n, p, "expand_relu"));
    } else {
        snprintf(p, sizeof p, "expanded_conv_");
    }
    if (stride == 2) x = pad_for_stride2(m, x, f, nn__zoo_name(n, p, "pad"));
    x = depthwise(m, x, stride, nn__zoo_name(n, p, "depthwise"));
    x = nn__zoo_bn(m, x, &f->st, nn__zoo_name(n, p, "depthwise_BN"));
    x = nn__zoo_relu6(m, x, nn__zoo_name(n, p, "depthwise_relu"));
    x = nn__zoo_conv(m, x, out_ch, 1, 1, NN_PADDING_SAME, &f->st,
                     nn__zoo_name(n, p, "project"));
    x = nn__zoo_bn(m, x, &f->st, nn__zoo_name(n, p, "project_BN"));
    if (!x || in_ch != out_ch || stride != 1) return x;
    nn_layer_opts o = NN_LAYER_OPTS_INIT;
    o.name = nn__zoo_name(n, p, "add");
    nn_layer *both[2] = {in, x};
    return nn_add(m, 2, both, &o);
}

static nn_layer *stem(nn_model *m, nn_layer *x, const mb_cfg *f)
{
    int filters = make_divisible(32 * f->alpha);
    if (f->torch) {
        x = pad_for_stride2(m, x, f, "Conv1_pad");
        x = nn__zoo_conv(m, x, filters, 3, 2, NN_PADDING_VALID, &f->st,
                         "Conv1");
    } else {
        x = nn__zoo_conv(m, x, filters, 3, 2, NN_PADDING_SAME, &f->st,
                         "Conv1");
    }
    x = nn__zoo_bn(m, x, &f->st, "bn_Conv1");
    return nn__zoo_relu6(m, x, "Conv1_relu");
}

static nn_layer *mobilenet_v2_layers(nn_model *m, int h, int w, int c,
                                     const nn_mobilenet_v2_opts *o)
{
    mb_cfg f = {{0, 1e-3f, 0.999f}, o->flavor == NN_MOBILENET_TORCHVISION,
                o->alpha};
    if (f.torch) f.st = (nn_zoo_style){0, 1e-5f, 0.9f};
    int shape[3] = {h, w, c};
    nn_layer_opts io = NN_LAYER_OPTS_INIT;
    io.name = "input_1";
    nn_layer *x = stem(m, nn_input(m, 3, shape, &io), &f);
    int id = 0;
    for (size_t s = 0; s < sizeof stages / sizeof stages[0]; s++)
        for (int r = 0; r < stages[s].n; r++, id++)
            x = inverted_res_block(m, x, stages[s].t, r ? 1 : stages[s].s,
                                   stages[s].c, id, &f);
    int last = f.alpha > 1.0 ? make_divisible(1280 * f.alpha) : 1280;
    x = nn__zoo_conv(m, x, last, 1, 1, NN_PADDING_VALID, &f.st, "Conv_1");
    x = nn__zoo_bn(m, x, &f.st, "Conv_1_bn");
    x = nn__zoo_relu6(m, x, "out_relu");
    if (!o->include_top) return x;
    return nn__zoo_top(m, x, "global_average_pooling2d",
                       f.torch ? 0.2f : 0.0f, o->classes,
                       o->classifier_activation);
}

nn_model *nn_mobilenet_v2(int height, int width, int channels, uint64_t seed,
                          const nn_mobilenet_v2_opts *opts)
{
    const char *who = "nn_mobilenet_v2";
    nn_mobilenet_v2_opts o = NN_MOBILENET_V2_OPTS_INIT;
    if (nn__read_opts(&o, opts, who) != NN_OK) return NULL;
    if (o.flavor != NN_MOBILENET_KERAS &&
        o.flavor != NN_MOBILENET_TORCHVISION) {
        nn__fail(NN_ERR_INVALID, "%s: unknown flavour %d", who,
                 (int)o.flavor);
        return NULL;
    }
    if (!(o.alpha > 0.0 && o.alpha <= 4.0)) {
        nn__fail(NN_ERR_INVALID,
                 "%s: alpha %g; the width multiplier must lie in (0, 4] "
                 "(1.0 is the paper's network)",
                 who, o.alpha);
        return NULL;
    }
    if (nn__zoo_check_input(who, height, width, channels, o.include_top,
                            o.classes, o.classifier_activation) != NN_OK)
        return NULL;
    char name[NN_NAME_MAX];
    snprintf(name, sizeof name, "mobilenetv2_%.2f_%d", o.alpha, height);
    nn_model *m = nn_model_create(seed);
    if (!m) return NULL;
    if (nn_model_set_name(m, o.name ? o.name : name) != NN_OK ||
        !mobilenet_v2_layers(m, height, width, channels, &o)) {
        nn_model_free(m);
        return NULL;
    }
    return m;
}

/* ---------------- torchvision names ---------------- */

/* The torchvision module of a block's layer: "<block>" + suffix ->
 * features.<block + 1>.conv.<i>; block 0 has no expansion, so its
 * indices start one step later. */
static bool block_module(int block, const char *suffix, char *out, size_t cap)
{
    static const char *const parts[][2] = {
        {"expand", "0.0"},    {"expand_BN", "0.1"}, {"depthwise", "1.0"},
        {"depthwise_BN", "1.1"}, {"project", "2"},  {"project_BN", "3"}};
    static const char *const first[] = {NULL, NULL, "0.0", "0.1", "1", "2"};
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        if (strcmp(suffix, parts[i][0])) continue;
        const char *at = block ? parts[i][1] : first[i];
        if (!at) return false;
        int n = snprintf(out, cap, "features.%d.conv.%s", block + 1, at);
        return n > 0 && (size_t)n < cap;
    }
    return false;
}

static bool torch_module(const char *name, char *out, size_t cap)
{
    static const char *const fixed[][2] = {
        {"Conv1", "features.0.0"},  {"bn_Conv1", "features.0.1"},
        {"Conv_1", "features.18.0"}, {"Conv_1_bn", "features.18.1"},
        {"predictions", "classifier.1"}};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        if (!strcmp(name, fixed[i][0]))
            return snprintf(out, cap, "%s", fixed[i][1]) > 0;
    if (!strncmp(name, "expanded_conv_", 14))
        return block_module(0, name + 14, out, cap);
    const char *s = name;
    int block;
    if (strncmp(s, "block_", 6)) return false;
    s += 6;
    if (!nn__zoo_number(&s, &block) || block < 1 || block > 16 || *s++ != '_')
        return false;
    return block_module(block, s, out, cap);
}

bool nn__mobilenet_v2_torch_key(const nn_layer *layer, const nn_param *param,
                                char *key, size_t cap,
                                nn_torch_layout *layout)
{
    char module[NN_NAME_MAX];
    const char *p = nn__torch_param(layer, param->name, layout);
    if (!p || !torch_module(layer->name, module, sizeof module)) return false;
    int n = snprintf(key, cap, "%s.%s", module, p);
    return n > 0 && (size_t)n < cap;
}

/* Internal interface of the model zoo (src/zoo/). Not API. */
#ifndef NN_ZOO_H
#define NN_ZOO_H

#include "nn_internal.h"

/* ---------------- building blocks (common.c) ---------------- */

/* How a flavour builds its convolutions and normalizations. */
typedef struct nn_zoo_style {
    int conv_bias;
    float bn_eps, bn_momentum; /* momentum in Keras' convention */
} nn_zoo_style;

/* Each builder passes a NULL input through, so the first failure's
 * message is the one the caller sees. */
nn_layer *nn__zoo_conv(nn_model *m, nn_layer *x, int filters, int k,
                       int stride, nn_padding pad, const nn_zoo_style *st,
                       const char *name);
nn_layer *nn__zoo_bn(nn_model *m, nn_layer *x, const nn_zoo_style *st,
                     const char *name);
nn_layer *nn__zoo_relu(nn_model *m, nn_layer *x, const char *name);
nn_layer *nn__zoo_relu6(nn_model *m, nn_layer *x, const char *name);
nn_layer *nn__zoo_zeropad(nn_model *m, nn_layer *x, int top, int bottom,
                          int left, int right, const char *name);
/* "<prefix><suffix>" into buf (NN_NAME_MAX bytes); returns buf. */
const char *nn__zoo_name(char *buf, const char *prefix, const char *suffix);
/* The classifier: GlobalAveragePooling2D `pool_name`, Dropout(dropout)
 * when dropout > 0, Dense(classes, activation) "predictions". */
nn_layer *nn__zoo_top(nn_model *m, nn_layer *x, const char *pool_name,
                      float dropout, int classes, nn_activation activation);
/* Reads a decimal number of 1 to 4 digits at *s, advancing past it. */
bool nn__zoo_number(const char **s, int *out);
/* Checks a builder's input size and classifier options; `who` names the
 * builder in the message. */
nn_status nn__zoo_check_input(const char *who, int height, int width,
                              int channels, int include_top, int classes,
                              nn_activation classifier_activation);

/* ---------------- torchvision names (torch_names.c) ---------------- */

/* How a torchvision tensor is laid out relative to libnn's parameter. */
typedef enum nn_torch_layout {
    NN_TORCH_SAME = 0,      /* vectors: biases, batch-norm statistics */
    NN_TORCH_CONV = 1,      /* [out, in, kh, kw] -> [kh, kw, in, out] */
    NN_TORCH_LINEAR = 2,    /* [out, in] -> [in, out] */
    NN_TORCH_DEPTHWISE = 3  /* [in * mult, 1, kh, kw] -> [kh, kw, in, mult] */
} nn_torch_layout;

/* A state_dict key function: the key of parameter `param` of `layer` and
 * its layout; false when the layer has no key in that model's scheme or
 * the key does not fit in cap bytes. */
typedef bool (*nn_torch_key_fn)(const nn_layer *layer, const nn_param *param,
                                char *key, size_t cap,
                                nn_torch_layout *layout);

/* One torchvision model's weight map. */
typedef struct nn_torch_map {
    nn_weight_map map;
    nn_torch_key_fn key;
    const char *model;      /* "ResNet", for messages */
    const char *builder;    /* what to build to load it, for messages */
    const char *top_prefix; /* the classifier's keys, skipped without top */
} nn_torch_map;

/* The map of a torchvision nn_weight_map value; NULL for any other. */
const nn_torch_map *nn__torch_map(nn_weight_map map);

/* The torchvision name of a libnn parameter ("gamma" -> "weight", a
 * Conv2D "kernel" -> "weight" in the conv layout, ...) and its layout;
 * NULL when the layer kind has no torchvision counterpart. */
const char *nn__torch_param(const nn_layer *layer, const char *param,
                            nn_torch_layout *layout);

/* The torchvision ResNet state_dict key of parameter `param` of the layer
 * `layer` of a model built by nn_resnet50 ("conv2_block1_1_conv" "kernel"
 * -> "layer1.0.conv1.weight") and its layout. */
bool nn__resnet_torch_key(const nn_layer *layer, const nn_param *param,
                          char *key, size_t cap, nn_torch_layout *layout);
/* The torchvision MobileNetV2 key of a model built by nn_mobilenet_v2
 * ("block_1_expand" "kernel" -> "features.2.conv.0.0.weight"). */
bool nn__mobilenet_v2_torch_key(const nn_layer *layer, const nn_param *param,
                                char *key, size_t cap,
                                nn_torch_layout *layout);

#endif

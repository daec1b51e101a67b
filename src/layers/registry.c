/* One row per layer kind. The list below is the single place a new kind
 * is registered; the static assertion catches a kind left out. */
#include "layers/layers.h"

#define NN_LAYER_KINDS(X)                                                      \
    X(NN_KIND_INPUT, nn__input_ops, "input")                                   \
    X(NN_KIND_CONV2D, nn__conv2d_ops, "conv2d")                                \
    X(NN_KIND_MAXPOOL2D, nn__maxpool2d_ops, "max_pooling2d")                   \
    X(NN_KIND_AVGPOOL2D, nn__avgpool2d_ops, "average_pooling2d")               \
    X(NN_KIND_FLATTEN, nn__flatten_ops, "flatten")                             \
    X(NN_KIND_DROPOUT, nn__dropout_ops, "dropout")                             \
    X(NN_KIND_DENSE, nn__dense_ops, "dense")                                   \
    X(NN_KIND_RELU, nn__relu_ops, "re_lu")                                     \
    X(NN_KIND_SIGMOID, nn__sigmoid_ops, "activation")                          \
    X(NN_KIND_SOFTMAX, nn__softmax_ops, "softmax")                             \
    X(NN_KIND_BATCHNORM, nn__batchnorm_ops, "batch_normalization")             \
    X(NN_KIND_ZEROPAD2D, nn__zeropad2d_ops, "zero_padding2d")                  \
    X(NN_KIND_ADD, nn__add_ops, "add")                                         \
    X(NN_KIND_CONCATENATE, nn__concatenate_ops, "concatenate")                 \
    X(NN_KIND_GLOBAL_AVGPOOL2D, nn__global_avgpool2d_ops,                      \
      "global_average_pooling2d")                                              \
    X(NN_KIND_RESIZING, nn__resizing_ops, "resizing")                          \
    X(NN_KIND_LOCALLY_CONNECTED2D, nn__locally_connected2d_ops,                \
      "locally_connected2d")                                                   \
    X(NN_KIND_REPEAT_CHANNELS, nn__repeat_channels_ops, "repeat_channels")     \
    X(NN_KIND_RANDOM_FLIP, nn__random_flip_ops, "random_flip")                 \
    X(NN_KIND_RANDOM_ROTATION, nn__random_rotation_ops, "random_rotation")     \
    X(NN_KIND_RANDOM_TRANSLATION, nn__random_translation_ops,                  \
      "random_translation")                                                    \
    X(NN_KIND_RANDOM_ZOOM, nn__random_zoom_ops, "random_zoom")                 \
    X(NN_KIND_RANDOM_CONTRAST, nn__random_contrast_ops, "random_contrast")

#define AS_OPS(kind, ops, stem) [kind] = &ops,
#define AS_STEM(kind, ops, stem) [kind] = stem,
#define AS_ONE(kind, ops, stem) +1

/* Completeness (every kind has a row) is checked by test_layers.c, which
 * walks the registry; here, at least no row too many. */
_Static_assert(0 NN_LAYER_KINDS(AS_ONE) <= NN_KIND_COUNT,
               "more rows in NN_LAYER_KINDS than layer kinds");

const nn_layer_ops *const nn__layer_registry[NN_KIND_COUNT] = {
    NN_LAYER_KINDS(AS_OPS)};

const char *const nn__layer_stem[NN_KIND_COUNT] = {NN_LAYER_KINDS(AS_STEM)};

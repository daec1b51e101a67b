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
    X(NN_KIND_SOFTMAX, nn__softmax_ops, "softmax")

#define AS_OPS(kind, ops, stem) [kind] = &ops,
#define AS_STEM(kind, ops, stem) [kind] = stem,
#define AS_ONE(kind, ops, stem) +1

_Static_assert(0 NN_LAYER_KINDS(AS_ONE) == NN_KIND_COUNT,
               "every layer kind needs a row in NN_LAYER_KINDS");

const nn_layer_ops *const nn__layer_registry[NN_KIND_COUNT] = {
    NN_LAYER_KINDS(AS_OPS)};

const char *const nn__layer_stem[NN_KIND_COUNT] = {NN_LAYER_KINDS(AS_STEM)};

/* Internal interface of the model zoo (src/zoo/). Not API. */
#ifndef NN_ZOO_H
#define NN_ZOO_H

#include "nn_internal.h"

/* How a torchvision tensor is laid out relative to libnn's parameter. */
typedef enum nn_torch_layout {
    NN_TORCH_SAME = 0,   /* vectors: biases, batch-norm statistics */
    NN_TORCH_CONV = 1,   /* [out, in, kh, kw] -> [kh, kw, in, out] */
    NN_TORCH_LINEAR = 2  /* [out, in] -> [in, out] */
} nn_torch_layout;

/* The torchvision ResNet state_dict key of parameter `param` of the layer
 * `layer` of a model built by nn_resnet50 ("conv2_block1_1_conv" "kernel"
 * -> "layer1.0.conv1.weight") and its layout. False when the layer is not
 * one of ResNet's or the key does not fit in cap bytes. */
bool nn__resnet_torch_key(const nn_layer *layer, const nn_param *param,
                          char *key, size_t cap, nn_torch_layout *layout);

#endif

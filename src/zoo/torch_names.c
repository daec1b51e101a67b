/* torchvision's state_dict names: what a libnn parameter is called there
 * and how it is laid out, and the table of the models whose torchvision
 * weights load (nn_weight_map values). The key schemes themselves live
 * beside each model (resnet.c, mobilenet.c), which own the layer names. */
#include "zoo/zoo.h"

#include <string.h>

static const nn_torch_map maps[] = {
    {NN_WEIGHTS_TORCHVISION_RESNET, nn__resnet_torch_key, "ResNet",
     "nn_resnet50 with the torchvision flavour (NN_RESNET_TORCHVISION)",
     "fc."},
    {NN_WEIGHTS_TORCHVISION_MOBILENET_V2, nn__mobilenet_v2_torch_key,
     "MobileNetV2",
     "nn_mobilenet_v2 with the torchvision flavour "
     "(NN_MOBILENET_TORCHVISION)",
     "classifier."},
};

const nn_torch_map *nn__torch_map(nn_weight_map map)
{
    for (size_t i = 0; i < sizeof maps / sizeof maps[0]; i++)
        if (maps[i].map == map) return &maps[i];
    return NULL;
}

const char *nn__torch_param(const nn_layer *layer, const char *param,
                            nn_torch_layout *layout)
{
    static const char *const bn[][2] = {{"gamma", "weight"},
                                        {"beta", "bias"},
                                        {"moving_mean", "running_mean"},
                                        {"moving_variance", "running_var"}};
    nn_layer_kind kind = layer->kind;
    *layout = NN_TORCH_SAME;
    if (kind == NN_KIND_BATCHNORM) {
        for (size_t i = 0; i < sizeof bn / sizeof bn[0]; i++)
            if (!strcmp(param, bn[i][0])) return bn[i][1];
        return NULL;
    }
    /* conv2d(groups = channels): [in * mult, 1, kh, kw] */
    if (kind == NN_KIND_DEPTHWISE_CONV2D) {
        if (!strcmp(param, "bias")) return "bias";
        if (strcmp(param, "depthwise_kernel")) return NULL;
        *layout = NN_TORCH_DEPTHWISE;
        return "weight";
    }
    if (kind != NN_KIND_CONV2D && kind != NN_KIND_DENSE) return NULL;
    if (!strcmp(param, "bias")) return "bias";
    if (strcmp(param, "kernel")) return NULL;
    *layout = kind == NN_KIND_CONV2D ? NN_TORCH_CONV : NN_TORCH_LINEAR;
    return "weight";
}

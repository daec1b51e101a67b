/* Q3e: a truncated ResNet50 backbone at 32x32, no resize.
 *
 * Keras builds ResNet50(include_top=False, input_shape=(32, 32, 3)), keeps
 * Model(base.input, base.layers[3].output) - input_1, conv1_pad (38x38x3),
 * conv1_conv (7x7/2, 16x16x64, 9,472 params), conv1_bn (256) - frozen,
 * and trains a small head on it:
 *
 *   input - RandomFlip - RandomRotation(0.2) - [input_1 .. conv1_bn] -
 *   Conv2D(64, 3x3, relu) - MaxPooling2D(2) - Flatten - Dropout(0.5) -
 *   Dense(10, softmax)
 *   Total 78,026 - Trainable 68,298 - Non-trainable 9,728
 *
 * The backbone layers are shared with the ResNet50 model (nn_model_apply
 * with inner_output = its 4th layer), not copied. Data: CIFAR-10 with
 * --data DIR, else Fashion-MNIST (the CNN example's default), which is
 * 28x28x1: the model then starts with Resizing(32, 32) and RepeatChannels(3)
 * so the backbone sees the 32x32x3 images it was built for; the parameter
 * totals are the same. The backbone's weights are random unless --weights
 * gives torchvision ResNet50 weights (see docs/zoo.md).
 * `truncated_backbone --help` lists the options. */
#include "common.h"

static const ex_program PROGRAM = {
    "truncated_backbone",
    "Q3e: the first layers of ResNet50 at 32x32 (input_1, conv1_pad,\n"
    "conv1_conv, conv1_bn: Keras' base.layers[3]), shared with the ResNet50\n"
    "model and frozen, behind RandomFlip and RandomRotation(0.2), under a\n"
    "trained head: Conv2D(64, 3x3, relu) - MaxPooling2D(2) - Flatten -\n"
    "Dropout(0.5) - Dense(10, softmax); Adam, validation on the test images.\n"
    "Prints the summary (78,026 parameters, 68,298 trainable), one line per\n"
    "epoch and the test accuracy. The backbone has random weights unless\n"
    "--weights gives torchvision's. Defaults: the first 10000 training and\n"
    "2000 test images, 10 epochs, batch 128 (a few minutes on two cores).\n"
    "Nothing is written unless --history is given.\n"};

static nn_model *build(nn_model *base, int h, int w, int c,
                       unsigned long long seed)
{
    nn_model *m = nn_model_create(seed);
    int shape[3] = {h, w, c};
    nn_layer *x = m ? nn_input(m, 3, shape, NULL) : NULL;
    if (h != 32 || w != 32) x = nn_resizing(m, x, 32, 32, NULL);
    if (c == 1) x = nn_repeat_channels(m, x, 3, NULL);
    x = nn_random_flip(m, x, NN_FLIP_HORIZONTAL_AND_VERTICAL, NULL);
    x = nn_random_rotation(m, x, -0.2f, 0.2f, NULL);
    /* Keras' base.layers[3]: input_1, conv1_pad, conv1_conv, conv1_bn */
    nn_layer *cut = nn_model_layer(base, 3);
    if (!cut || strcmp(nn_layer_name(cut), "conv1_bn")) die("conv1_bn");
    x = nn_model_apply(m, x, base, cut, NULL);
    q3_head(m, x);
    return m;
}

int main(int argc, char **argv)
{
    const train_args defaults = TRAIN_ARGS(10000, 2000, 10, 128, 42);
    backbone_args a = backbone_parse(argc, argv, &PROGRAM, defaults);
    dataset d;
    load_training_data(&d, &a.t);
    int h = (int)nn_tensor_dim(d.x_train, 1);
    int w = (int)nn_tensor_dim(d.x_train, 2);
    int c = (int)nn_tensor_dim(d.x_train, 3);
    printf("libnn %s - %s: %lld training and %lld test images of %dx%dx%d\n",
           nn_version(), d.name, (long long)nn_tensor_dim(d.x_train, 0),
           (long long)nn_tensor_dim(d.x_test, 0), h, w, c);
    if (a.weights)
        printf("Backbone: torchvision ResNet50 weights from %s (torchvision "
               "flavour: conv1_conv has no bias,\nso the totals are 64 below "
               "the assignment's).\n", a.weights);
    else
        printf("Backbone: RANDOM weights (no --weights given). The frozen "
               "conv1 is an untrained filter bank;\nthe parameter counts are "
               "the assignment's.\n");

    nn_model *base = frozen_resnet50(32, a.weights, a.t.seed);
    nn_model *m = build(base, h, w, c, a.t.seed);
    print_summary(m);
    fflush(stdout); /* before minutes of training, even into a pipe */
    nn_history *hist = fit_adam_validated(m, &d, &a.t);

    float loss, acc;
    double t0 = seconds_now();
    if (nn_model_evaluate(m, d.x_test, d.y_test, 256, &loss, &acc) != NN_OK)
        die("evaluate");
    double dt = seconds_now() - t0;
    printf("Test loss: %.4f - test accuracy: %.4f - inference %.0f img/s\n",
           loss, acc, (double)nn_tensor_dim(d.x_test, 0) / dt);
    write_history(hist, a.history);
    nn_history_free(hist);
    nn_model_free(m);
    nn_model_free(base);
    dataset_free(&d);
    return 0;
}

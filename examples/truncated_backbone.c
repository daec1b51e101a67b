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
 * gives torchvision ResNet50 weights (see docs/zoo.md). */
#include "common.h"

#include <time.h>

typedef struct args {
    const char *data, *history, *weights;
    int epochs, batch;
    long train_n, test_n;
    unsigned long long seed;
} args;

static void usage(void)
{
    printf("usage: truncated_backbone [--data CIFAR_DIR] [--epochs N] "
           "[--batch N]\n"
           "                          [--train N] [--test N] [--seed S]\n"
           "                          [--weights RESNET50.safetensors] "
           "[--history FILE.csv]\n");
    exit(2);
}

static args parse(int argc, char **argv)
{
    args a = {NULL, "truncated_backbone_history.csv", NULL, 10, 128, 10000,
              2000, 42};
    for (int i = 1; i < argc; i++) {
        const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) usage();
        if (!strcmp(k, "--data")) a.data = v;
        else if (!strcmp(k, "--history")) a.history = v;
        else if (!strcmp(k, "--weights")) a.weights = v;
        else if (!strcmp(k, "--epochs")) a.epochs = atoi(v);
        else if (!strcmp(k, "--batch")) a.batch = atoi(v);
        else if (!strcmp(k, "--train")) a.train_n = atol(v);
        else if (!strcmp(k, "--test")) a.test_n = atol(v);
        else if (!strcmp(k, "--seed")) a.seed = strtoull(v, NULL, 10);
        else usage();
        i++;
    }
    return a;
}

/* ResNet50 at 32x32x3, frozen: Keras' flavour with random weights, or
 * torchvision's with the weights of `path`. */
static nn_model *backbone(const char *path, unsigned long long seed)
{
    nn_resnet_opts o = NN_RESNET_OPTS_INIT;
    o.include_top = 0;
    o.flavor = path ? NN_RESNET_TORCHVISION : NN_RESNET_KERAS;
    nn_model *base = nn_resnet50(32, 32, 3, seed, &o);
    if (!base) die("ResNet50");
    if (path && nn_model_load_safetensors(base, path,
                                          NN_WEIGHTS_TORCHVISION_RESNET) !=
                    NN_OK)
        die(path);
    if (nn_model_set_trainable(base, 0) != NN_OK) die("freezing");
    return base;
}

static nn_model *build(nn_model *base, int h, int w, int c,
                       unsigned long long seed)
{
    nn_model *m = nn_model_create(seed);
    int shape[3] = {h, w, c};
    nn_conv2d_opts conv = NN_CONV2D_OPTS_INIT;
    conv.activation = NN_ACT_RELU;
    nn_dense_opts dense = NN_DENSE_OPTS_INIT;
    dense.activation = NN_ACT_SOFTMAX;

    nn_layer *x = nn_input(m, 3, shape, NULL);
    if (h != 32 || w != 32) x = nn_resizing(m, x, 32, 32, NULL);
    if (c == 1) x = nn_repeat_channels(m, x, 3, NULL);
    x = nn_random_flip(m, x, NN_FLIP_HORIZONTAL_AND_VERTICAL, NULL);
    x = nn_random_rotation(m, x, -0.2f, 0.2f, NULL);
    /* Keras' base.layers[3]: input_1, conv1_pad, conv1_conv, conv1_bn */
    nn_layer *cut = nn_model_layer(base, 3);
    if (!cut || strcmp(nn_layer_name(cut), "conv1_bn")) die("conv1_bn");
    x = nn_model_apply(m, x, base, cut, NULL);
    x = nn_conv2d(m, x, 64, 3, 3, &conv);
    x = nn_maxpool2d(m, x, 2, 2, NULL);
    x = nn_flatten(m, x, NULL);
    x = nn_dropout(m, x, 0.5f, NULL);
    x = nn_dense(m, x, 10, &dense);
    if (!x) die("building the model");
    return m;
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(int argc, char **argv)
{
    args a = parse(argc, argv);
    dataset d;
    load_dataset(&d, a.data, a.train_n, a.test_n);
    int h = (int)nn_tensor_dim(d.x_train, 1);
    int w = (int)nn_tensor_dim(d.x_train, 2);
    int c = (int)nn_tensor_dim(d.x_train, 3);
    printf("libnn %s - %s: %lld training and %lld test images of %dx%dx%d\n",
           nn_version(), d.name, (long long)nn_tensor_dim(d.x_train, 0),
           (long long)nn_tensor_dim(d.x_test, 0), h, w, c);
    if (a.weights)
        printf("Backbone: torchvision ResNet50 weights from %s (torchvision "
               "flavour: conv1_conv has no bias, so the totals are 64 below "
               "the assignment's).\n", a.weights);
    else
        printf("Backbone: RANDOM weights (no --weights given). The frozen "
               "conv1 is an untrained filter bank; the parameter counts are "
               "the assignment's.\n");

    nn_model *base = backbone(a.weights, a.seed);
    nn_model *m = build(base, h, w, c, a.seed);
    print_summary(m);
    fflush(stdout); /* before minutes of training, even into a pipe */
    if (nn_model_compile(m, nn_adam(NULL), NN_LOSS_CATEGORICAL_CROSSENTROPY,
                         NULL) != NN_OK)
        die("compile");

    nn_fit_opts fit = NN_FIT_OPTS_INIT;
    fit.epochs = a.epochs;
    fit.batch_size = a.batch;
    fit.val_x = d.x_test;
    fit.val_y = d.y_test;
    fit.progress = show_progress;
    nn_history *hist = NULL;
    if (nn_model_fit(m, d.x_train, d.y_train, &fit, &hist) != NN_OK) die("fit");

    float loss, acc;
    double t0 = now();
    if (nn_model_evaluate(m, d.x_test, d.y_test, 256, &loss, &acc) != NN_OK)
        die("evaluate");
    double dt = now() - t0;
    printf("Test loss: %.4f - test accuracy: %.4f - inference %.0f img/s\n",
           loss, acc, (double)nn_tensor_dim(d.x_test, 0) / dt);
    if (a.history && nn_history_write_csv(hist, a.history) == NN_OK)
        printf("History written to %s\n", a.history);
    nn_history_free(hist);
    nn_model_free(m);
    nn_model_free(base);
    dataset_free(&d);
    return 0;
}

/* Q3d: transfer learning with a frozen ResNet50.
 *
 *   images in [0, 255] -> preprocess_input ("caffe": RGB->BGR, minus the
 *   ImageNet mean) -> model:
 *   input 32x32x3 - Resizing(224, 224) - RandomFlip - RandomRotation(0.2) -
 *   resnet50 (frozen, 7x7x2048, 23,587,712) - Conv2D(64, 3x3, relu)
 *   (5x5x64, 1,179,712) - MaxPooling2D(2) - Flatten (256) - Dropout(0.5) -
 *   Dense(10, softmax) (2,570)
 *   Total 24,769,994 - Trainable 1,182,282 - Non-trainable 23,587,712
 *
 * The backbone is Keras' ResNet50 (v1) with RANDOM weights unless
 * --weights FILE gives torchvision's ImageNet weights exported by
 * scripts/export_torchvision_resnet50.py; the backbone is then the
 * torchvision flavour (v1.5, no conv biases: 26,560 parameters fewer) and
 * the images are preprocessed as torchvision expects ("torch" mode).
 *
 * Data: CIFAR-10 with --data DIR, else Fashion-MNIST, whose 28x28 gray
 * images are repeated into three channels (Resizing takes any size to 224).
 * The assignment's recipe (50,000 images, 10 epochs) takes hours on two
 * cores, so the default is a subset: --train 256 --test 256 --epochs 1. */
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
    printf("usage: transfer_resnet50 [--data CIFAR_DIR] [--weights "
           "RESNET50.safetensors]\n"
           "                         [--epochs N] [--batch N] [--train N] "
           "[--test N]\n"
           "                         [--seed S] [--history FILE.csv]\n");
    exit(2);
}

static args parse(int argc, char **argv)
{
    args a = {NULL, NULL, NULL, 1, 16, 256, 256, 42};
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

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* [N, H, W, 1 or 3] in [0, 1] -> [N, H, W, 3] in [0, 255], preprocessed;
 * frees t. */
static nn_tensor *to_model_input(nn_tensor *t, nn_preprocess_mode mode)
{
    int64_t s[4];
    nn_tensor_shape(t, s, 4);
    int64_t c = s[3], pixels = s[0] * s[1] * s[2];
    s[3] = 3;
    nn_tensor *rgb = nn_tensor_create(4, s);
    if (!rgb) die("images");
    const float *src = nn_tensor_data(t);
    float *dst = nn_tensor_data(rgb);
    for (int64_t p = 0; p < pixels; p++)
        for (int k = 0; k < 3; k++)
            dst[3 * p + k] = 255.0f * src[c * p + (c == 3 ? k : 0)];
    nn_tensor_free(t);
    if (nn_preprocess_input(rgb, mode) != NN_OK) die("preprocess_input");
    return rgb;
}

static nn_model *backbone(const char *path, unsigned long long seed)
{
    nn_resnet_opts o = NN_RESNET_OPTS_INIT;
    o.include_top = 0;
    o.flavor = path ? NN_RESNET_TORCHVISION : NN_RESNET_KERAS;
    nn_model *base = nn_resnet50(224, 224, 3, seed, &o);
    if (!base) die("ResNet50");
    if (path && nn_model_load_safetensors(base, path,
                                          NN_WEIGHTS_TORCHVISION_RESNET) !=
                    NN_OK)
        die(path);
    if (nn_model_set_trainable(base, 0) != NN_OK) die("freezing");
    return base;
}

static nn_model *build(nn_model *base, int h, int w, unsigned long long seed)
{
    nn_model *m = nn_model_create(seed);
    int shape[3] = {h, w, 3};
    nn_conv2d_opts conv = NN_CONV2D_OPTS_INIT;
    conv.activation = NN_ACT_RELU;
    nn_dense_opts dense = NN_DENSE_OPTS_INIT;
    dense.activation = NN_ACT_SOFTMAX;

    nn_layer *x = nn_input(m, 3, shape, NULL);
    x = nn_resizing(m, x, 224, 224, NULL);
    x = nn_random_flip(m, x, NN_FLIP_HORIZONTAL_AND_VERTICAL, NULL);
    x = nn_random_rotation(m, x, -0.2f, 0.2f, NULL);
    x = nn_model_apply(m, x, base, NULL, NULL);
    x = nn_conv2d(m, x, 64, 3, 3, &conv);
    x = nn_maxpool2d(m, x, 2, 2, NULL);
    x = nn_flatten(m, x, NULL);
    x = nn_dropout(m, x, 0.5f, NULL);
    x = nn_dense(m, x, 10, &dense);
    if (!x) die("building the model");
    return m;
}

int main(int argc, char **argv)
{
    args a = parse(argc, argv);
    nn_preprocess_mode mode = a.weights ? NN_PREPROCESS_TORCH
                                        : NN_PREPROCESS_CAFFE;
    dataset d;
    load_dataset(&d, a.data, a.train_n, a.test_n);
    d.x_train = to_model_input(d.x_train, mode);
    d.x_test = to_model_input(d.x_test, mode);
    int h = (int)nn_tensor_dim(d.x_train, 1);
    int w = (int)nn_tensor_dim(d.x_train, 2);
    printf("libnn %s - %s: %lld training and %lld test images of %dx%dx3, "
           "%s preprocessing\n",
           nn_version(), d.name, (long long)nn_tensor_dim(d.x_train, 0),
           (long long)nn_tensor_dim(d.x_test, 0), h, w,
           a.weights ? "\"torch\"" : "\"caffe\"");
    if (a.weights)
        printf("Backbone: torchvision ResNet50 (v1.5) with the weights of %s. "
               "It has no conv biases, so the totals are 26,560 below the "
               "assignment's.\n", a.weights);
    else
        printf("Backbone: Keras ResNet50 with RANDOM weights - no --weights "
               "given, and libnn downloads nothing. Accuracy will stay near "
               "chance; the model, its parameter counts and the speed are "
               "what this run shows. Export real weights with "
               "scripts/export_torchvision_resnet50.py.\n");

    nn_model *base = backbone(a.weights, a.seed);
    nn_model *m = build(base, h, w, a.seed);
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
    double t0 = now();
    if (nn_model_fit(m, d.x_train, d.y_train, &fit, &hist) != NN_OK) die("fit");
    double train_s = now() - t0;

    float loss, acc;
    t0 = now();
    if (nn_model_evaluate(m, d.x_test, d.y_test, a.batch, &loss, &acc) != NN_OK)
        die("evaluate");
    double test_s = now() - t0;
    printf("Test loss: %.4f - test accuracy: %.4f\n", loss, acc);
    printf("Throughput: training %.1f img/s (with validation), inference "
           "%.1f img/s\n",
           (double)a.epochs * (double)nn_tensor_dim(d.x_train, 0) / train_s,
           (double)nn_tensor_dim(d.x_test, 0) / test_s);
    if (a.history && nn_history_write_csv(hist, a.history) == NN_OK)
        printf("History written to %s\n", a.history);
    nn_history_free(hist);
    nn_model_free(m);
    nn_model_free(base);
    dataset_free(&d);
    return 0;
}

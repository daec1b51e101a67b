/* Q3a: the simple CNN of the assignment, trained end to end.
 *
 *   Conv2D(32, 3x3, relu) - MaxPooling2D(2) - Conv2D(64, 3x3, relu) -
 *   MaxPooling2D(2) - Flatten - Dropout(0.5) - Dense(10, softmax)
 *
 * Categorical cross-entropy, Adam, 10 epochs, batch 128, validation on the
 * test split. CIFAR-10 with --data DIR, Fashion-MNIST otherwise. */
#include "common.h"

typedef struct args {
    const char *data, *history, *save;
    int epochs, batch;
    long train_n, test_n;
    unsigned long long seed;
} args;

static void usage(void)
{
    printf("usage: cifar_cnn [--data CIFAR_DIR] [--epochs N] [--batch N]\n"
           "                 [--train N] [--test N] [--seed S]\n"
           "                 [--history FILE.csv] [--save FILE.nnm]\n");
    exit(2);
}

static args parse(int argc, char **argv)
{
    args a = {NULL, "cifar_cnn_history.csv", NULL, 10, 128, 0, 0, 42};
    for (int i = 1; i < argc; i++) {
        const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) usage();
        if (!strcmp(k, "--data")) a.data = v;
        else if (!strcmp(k, "--history")) a.history = v;
        else if (!strcmp(k, "--save")) a.save = v;
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

/* The Q3a model on an input of h x w x c. */
static nn_model *build_cnn(int h, int w, int c, unsigned long long seed)
{
    nn_model *m = nn_model_create(seed);
    int shape[3] = {h, w, c};
    nn_conv2d_opts conv = NN_CONV2D_OPTS_INIT;
    conv.activation = NN_ACT_RELU;
    nn_dense_opts dense = NN_DENSE_OPTS_INIT;
    dense.activation = NN_ACT_SOFTMAX;

    nn_layer *x = nn_input(m, 3, shape, NULL);
    x = nn_conv2d(m, x, 32, 3, 3, &conv);
    x = nn_maxpool2d(m, x, 2, 2, NULL);
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
    dataset d;
    load_dataset(&d, a.data, a.train_n, a.test_n);
    printf("libnn %s - %s: %lld training and %lld test images of %lldx%lldx%lld\n",
           nn_version(), d.name, (long long)nn_tensor_dim(d.x_train, 0),
           (long long)nn_tensor_dim(d.x_test, 0),
           (long long)nn_tensor_dim(d.x_train, 1),
           (long long)nn_tensor_dim(d.x_train, 2),
           (long long)nn_tensor_dim(d.x_train, 3));

    nn_model *m = build_cnn((int)nn_tensor_dim(d.x_train, 1),
                            (int)nn_tensor_dim(d.x_train, 2),
                            (int)nn_tensor_dim(d.x_train, 3), a.seed);
    print_summary(m);
    if (nn_model_compile(m, nn_adam(NULL), NN_LOSS_CATEGORICAL_CROSSENTROPY,
                         NULL) != NN_OK)
        die("compile");

    nn_fit_opts fit = NN_FIT_OPTS_INIT;
    fit.epochs = a.epochs;
    fit.batch_size = a.batch;
    fit.val_x = d.x_test;
    fit.val_y = d.y_test;
    fit.progress = show_progress;
    nn_history *h = NULL;
    if (nn_model_fit(m, d.x_train, d.y_train, &fit, &h) != NN_OK) die("fit");

    float loss, acc;
    if (nn_model_evaluate(m, d.x_test, d.y_test, 256, &loss, &acc) != NN_OK)
        die("evaluate");
    printf("Test loss: %.4f - test accuracy: %.4f\n", loss, acc);
    if (a.history && nn_history_write_csv(h, a.history) == NN_OK)
        printf("History written to %s\n", a.history);
    if (a.save) {
        if (nn_model_save(m, a.save, NN_SAVE_DEFAULT) != NN_OK) die("save");
        printf("Model saved to %s\n", a.save);
    }
    nn_history_free(h);
    nn_model_free(m);
    dataset_free(&d);
    return 0;
}

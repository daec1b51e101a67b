/* Helpers shared by the example programs: data loading and progress
 * output. Header-only so every example stays one short file. */
#ifndef NN_EXAMPLES_COMMON_H
#define NN_EXAMPLES_COMMON_H

#include <nn.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FASHION_DIR "/usr/share/datasets/fashion-mnist"

typedef struct dataset {
    nn_tensor *x_train, *y_train, *x_test, *y_test; /* y: one-hot */
    const char *name;
} dataset;

static inline void die(const char *what)
{
    fprintf(stderr, "error: %s: %s\n", what, nn_last_error());
    exit(1);
}

static inline nn_tensor *one_hot_or_die(nn_tensor *labels, int classes)
{
    nn_tensor *y;
    if (nn_one_hot(labels, classes, &y) != NN_OK) die("one-hot labels");
    nn_tensor_free(labels);
    return y;
}

/* A copy of the first n rows of t (all rows when n <= 0); frees t. */
static inline nn_tensor *head_rows(nn_tensor *t, int64_t n)
{
    int64_t shape[NN_MAX_RANK];
    int rank = nn_tensor_rank(t);
    nn_tensor_shape(t, shape, NN_MAX_RANK);
    if (n <= 0 || n >= shape[0]) return t;
    shape[0] = n;
    nn_tensor *h = nn_tensor_create(rank, shape);
    if (!h) die("subset");
    memcpy(nn_tensor_data(h), nn_tensor_data(t),
           (size_t)nn_tensor_size(h) * sizeof(float));
    nn_tensor_free(t);
    return h;
}

static inline nn_tensor *load_idx_or_die(const char *dir, const char *file,
                                         int scale)
{
    char path[1024];
    nn_tensor *t;
    snprintf(path, sizeof path, "%s/%s", dir, file);
    if (nn_load_idx(path, scale, &t) != NN_OK) die(path);
    return t;
}

static inline void load_fashion(dataset *d, const char *dir)
{
    d->x_train = load_idx_or_die(dir, "train-images-idx3-ubyte.gz", 1);
    d->y_train = one_hot_or_die(
        load_idx_or_die(dir, "train-labels-idx1-ubyte.gz", 0), 10);
    d->x_test = load_idx_or_die(dir, "t10k-images-idx3-ubyte.gz", 1);
    d->y_test = one_hot_or_die(
        load_idx_or_die(dir, "t10k-labels-idx1-ubyte.gz", 0), 10);
    d->name = "Fashion-MNIST";
}

static inline void load_cifar(dataset *d, const char *dir)
{
    char train[5][1024], test[1024];
    const char *train_p[5], *test_p[1];
    nn_tensor *lab;
    for (int i = 0; i < 5; i++) {
        snprintf(train[i], sizeof train[i], "%s/data_batch_%d.bin", dir, i + 1);
        train_p[i] = train[i];
    }
    snprintf(test, sizeof test, "%s/test_batch.bin", dir);
    test_p[0] = test;
    if (nn_load_cifar10(train_p, 5, &d->x_train, &lab) != NN_OK)
        die("CIFAR-10 training batches");
    d->y_train = one_hot_or_die(lab, 10);
    if (nn_load_cifar10(test_p, 1, &d->x_test, &lab) != NN_OK)
        die("CIFAR-10 test batch");
    d->y_test = one_hot_or_die(lab, 10);
    d->name = "CIFAR-10";
}

/* CIFAR-10 from dir when given, else Fashion-MNIST; optional subsets. */
static inline void load_dataset(dataset *d, const char *cifar_dir,
                                int64_t n_train, int64_t n_test)
{
    if (cifar_dir)
        load_cifar(d, cifar_dir);
    else
        load_fashion(d, FASHION_DIR);
    d->x_train = head_rows(d->x_train, n_train);
    d->y_train = head_rows(d->y_train, n_train);
    d->x_test = head_rows(d->x_test, n_test);
    d->y_test = head_rows(d->y_test, n_test);
}

static inline void dataset_free(dataset *d)
{
    nn_tensor_free(d->x_train);
    nn_tensor_free(d->y_train);
    nn_tensor_free(d->x_test);
    nn_tensor_free(d->y_test);
}

static inline void print_summary(const nn_model *m)
{
    size_t need;
    nn_model_summary(m, NULL, 0, &need);
    char *buf = malloc(need);
    if (!buf || nn_model_summary(m, buf, need, NULL) != NN_OK) die("summary");
    fputs(buf, stdout);
    free(buf);
}

/* Progress: a bar with ETA on a terminal, one line per epoch otherwise. */
static inline int show_progress(const nn_progress *p, void *user)
{
    int tty = isatty(STDOUT_FILENO);
    (void)user;
    if (p->event == NN_PROGRESS_BATCH_END) {
        if (!tty) return 0;
        int width = 30, done = p->batch * width / p->batches;
        double eta = p->images_per_s > 0 && p->batch < p->batches
                         ? p->elapsed_s * (p->batches - p->batch) / p->batch
                         : 0;
        printf("\rEpoch %d/%d [", p->epoch + 1, p->epochs);
        for (int i = 0; i < width; i++) putchar(i < done ? '=' : '.');
        printf("] %d/%d  ETA %3.0fs  %6.0f img/s  loss %.4f acc %.4f ",
               p->batch, p->batches, eta, p->images_per_s, p->loss,
               p->accuracy);
        fflush(stdout);
        return 0;
    }
    if (tty) printf("\n");
    printf("Epoch %d/%d - %.1fs - %.0f img/s - loss: %.4f - accuracy: %.4f",
           p->epoch + 1, p->epochs, p->elapsed_s, p->images_per_s, p->loss,
           p->accuracy);
    if (!isnan(p->val_loss))
        printf(" - val_loss: %.4f - val_accuracy: %.4f", p->val_loss,
               p->val_accuracy);
    printf("\n");
    fflush(stdout);
    return 0;
}

/* ---- the Q3a CNN, shared by cifar_cnn (Q3a) and cifar_augment (Q3b) ----
 *
 *   [augmentation] - Conv2D(32, 3x3, relu) - MaxPooling2D(2) -
 *   Conv2D(64, 3x3, relu) - MaxPooling2D(2) - Flatten - Dropout(0.5) -
 *   Dense(10, softmax)
 *
 * Categorical cross-entropy, Adam, batch 128, validation on the test
 * split; CIFAR-10 with --data DIR, Fashion-MNIST otherwise. */

typedef struct q3_args {
    const char *data, *history, *save;
    int epochs, batch;
    long train_n, test_n;
    unsigned long long seed;
} q3_args;

static inline void q3_usage(const char *prog)
{
    printf("usage: %s [--data CIFAR_DIR] [--epochs N] [--batch N]\n"
           "       [--train N] [--test N] [--seed S]\n"
           "       [--history FILE.csv] [--save FILE.nnm]\n", prog);
    exit(2);
}

static inline q3_args q3_parse(int argc, char **argv, const char *prog,
                               const char *history)
{
    q3_args a = {NULL, history, NULL, 10, 128, 0, 0, 42};
    for (int i = 1; i < argc; i++) {
        const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) q3_usage(prog);
        if (!strcmp(k, "--data")) a.data = v;
        else if (!strcmp(k, "--history")) a.history = v;
        else if (!strcmp(k, "--save")) a.save = v;
        else if (!strcmp(k, "--epochs")) a.epochs = atoi(v);
        else if (!strcmp(k, "--batch")) a.batch = atoi(v);
        else if (!strcmp(k, "--train")) a.train_n = atol(v);
        else if (!strcmp(k, "--test")) a.test_n = atol(v);
        else if (!strcmp(k, "--seed")) a.seed = strtoull(v, NULL, 10);
        else q3_usage(prog);
        i++;
    }
    return a;
}

/* Adds layers right after the input (NULL: none); returns the last. */
typedef nn_layer *(*q3_front_fn)(nn_model *m, nn_layer *x);

/* The Q3a model on an input of h x w x c. */
static inline nn_model *q3_build_cnn(int h, int w, int c,
                                     unsigned long long seed,
                                     q3_front_fn front)
{
    nn_model *m = nn_model_create(seed);
    int shape[3] = {h, w, c};
    nn_conv2d_opts conv = NN_CONV2D_OPTS_INIT;
    conv.activation = NN_ACT_RELU;
    nn_dense_opts dense = NN_DENSE_OPTS_INIT;
    dense.activation = NN_ACT_SOFTMAX;

    nn_layer *x = nn_input(m, 3, shape, NULL);
    if (front && x) x = front(m, x);
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

/* Loads the data, trains, evaluates and writes the history. */
static inline int q3_main(int argc, char **argv, const char *prog,
                          const char *history, q3_front_fn front)
{
    q3_args a = q3_parse(argc, argv, prog, history);
    dataset d;
    load_dataset(&d, a.data, a.train_n, a.test_n);
    printf("libnn %s - %s: %lld training and %lld test images of "
           "%lldx%lldx%lld\n",
           nn_version(), d.name, (long long)nn_tensor_dim(d.x_train, 0),
           (long long)nn_tensor_dim(d.x_test, 0),
           (long long)nn_tensor_dim(d.x_train, 1),
           (long long)nn_tensor_dim(d.x_train, 2),
           (long long)nn_tensor_dim(d.x_train, 3));

    nn_model *m = q3_build_cnn((int)nn_tensor_dim(d.x_train, 1),
                               (int)nn_tensor_dim(d.x_train, 2),
                               (int)nn_tensor_dim(d.x_train, 3), a.seed,
                               front);
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

#endif

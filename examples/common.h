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

#endif

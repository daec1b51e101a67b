/* Throughput and memory of the assignment's Q3a CNN, through the public API
 * only. bench/cnn_bench_torch.py is its PyTorch twin; scripts/run-bench.sh
 * runs both and prints them side by side.
 *
 *   Conv2D(32, 3x3, relu) - MaxPooling2D(2) - Conv2D(64, 3x3, relu) -
 *   MaxPooling2D(2) - Flatten - Dropout(0.5) - Dense(10, softmax)
 *   categorical cross-entropy, Adam(1e-3), batch 128, random 32x32x3 data
 *
 * After a warm-up, R blocks of K steps are timed and the median block's
 * images/s is reported, which shrugs off a noisy neighbour better than a
 * mean. Output, one figure per line (base_rss_mb: the peak before the model
 * exists, i.e. the runtime's own share):
 *
 *   libnn train_img_per_s 2650.1
 *   libnn infer_img_per_s 8123.4
 *   libnn base_rss_mb 3.1
 *   libnn peak_rss_mb 120.3
 */
#include "bench.h"

#define IMAGES 1280
#define BATCH 128
#define BATCHES (IMAGES / BATCH)
#define CLASSES 10

typedef struct data {
    nn_tensor *x, *y;             /* [IMAGES, 32, 32, 3], one-hot [IMAGES, 10] */
    nn_tensor *xb[BATCHES], *yb[BATCHES]; /* views of one batch each */
    nn_tensor *out;               /* [BATCH, 10] predictions */
} data;

/* augment: Q3b's RandomFlip + RandomRotation(0.2) after the input. */
static nn_model *build_cnn(int augment)
{
    nn_model *m = nn_model_create(42);
    int shape[3] = {32, 32, 3};
    nn_conv2d_opts conv = NN_CONV2D_OPTS_INIT;
    conv.activation = NN_ACT_RELU;
    nn_dense_opts dense = NN_DENSE_OPTS_INIT;
    dense.activation = NN_ACT_SOFTMAX;

    nn_layer *x = nn_input(m, 3, shape, NULL);
    if (augment) {
        x = nn_random_flip(m, x, NN_FLIP_HORIZONTAL_AND_VERTICAL, NULL);
        x = nn_random_rotation(m, x, -0.2f, 0.2f, NULL);
    }
    x = nn_conv2d(m, x, 32, 3, 3, &conv);
    x = nn_maxpool2d(m, x, 2, 2, NULL);
    x = nn_conv2d(m, x, 64, 3, 3, &conv);
    x = nn_maxpool2d(m, x, 2, 2, NULL);
    x = nn_flatten(m, x, NULL);
    x = nn_dropout(m, x, 0.5f, NULL);
    x = nn_dense(m, x, 10, &dense);
    if (!x) bench_die("building the model");
    if (nn_model_compile(m, nn_adam(NULL), NN_LOSS_CATEGORICAL_CROSSENTROPY,
                         NULL) != NN_OK)
        bench_die("compile");
    return m;
}

/* Uniform [0,1) images and random one-hot labels from a fixed xorshift, so
 * every run sees the same data without touching the model's generator. */
static void make_data(data *d)
{
    int64_t xs[4] = {IMAGES, 32, 32, 3}, ys[2] = {IMAGES, CLASSES};
    int64_t bx[4] = {BATCH, 32, 32, 3}, by[2] = {BATCH, CLASSES};
    uint64_t s = 0x9e3779b97f4a7c15ull;
    d->x = nn_tensor_create(4, xs);
    d->y = nn_tensor_create(2, ys);
    d->out = nn_tensor_create(2, by);
    if (!d->x || !d->y || !d->out) bench_die("allocating data");
    float *x = nn_tensor_data(d->x), *y = nn_tensor_data(d->y);
    for (int64_t i = 0; i < nn_tensor_size(d->x); i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        x[i] = (float)(s >> 40) / (float)(1u << 24);
    }
    for (int i = 0; i < IMAGES; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        y[i * CLASSES + (int)(s % CLASSES)] = 1.0f;
    }
    for (int b = 0; b < BATCHES; b++) {
        d->xb[b] = nn_tensor_wrap(4, bx, x + (int64_t)b * BATCH * 32 * 32 * 3);
        d->yb[b] = nn_tensor_wrap(2, by, y + (int64_t)b * BATCH * CLASSES);
        if (!d->xb[b] || !d->yb[b]) bench_die("batch views");
    }
}

static void free_data(data *d)
{
    for (int b = 0; b < BATCHES; b++) {
        nn_tensor_free(d->xb[b]);
        nn_tensor_free(d->yb[b]);
    }
    nn_tensor_free(d->x);
    nn_tensor_free(d->y);
    nn_tensor_free(d->out);
}

typedef struct run {
    nn_model *m;
    data *d;
    int i, train; /* i: steps taken, which picks the batch */
} run;

static void step(void *ctx)
{
    run *r = ctx;
    int b = r->i++ % BATCHES;
    if (r->train) {
        if (nn_model_train_batch(r->m, r->d->xb[b], r->d->yb[b], NULL,
                                 NULL) != NN_OK)
            bench_die("train_batch");
    } else if (nn_model_predict(r->m, r->d->xb[b], r->d->out, BATCH) !=
               NN_OK) {
        bench_die("predict");
    }
}

/* Images/s of the median timed block. */
static double median_rate(nn_model *m, data *d, const bench_args *a,
                          int train)
{
    run r = {m, d, 0, train};
    return BATCH / bench_time(step, &r, a);
}

int main(int argc, char **argv)
{
    bench_name = "cnn_bench";
    bench_usage_text =
        "usage: cnn_bench [--threads N] [--reps R] [--steps K]\n"
        "                 [--warmup W] [--mode train|infer|both]\n";
    bench_args a = bench_parse(
        argc, argv,
        (bench_args){2, 5, 5, 3, BATCH, "both", NULL,
                     BENCH_STEPS | BENCH_MODE});
    if (nn_set_num_threads(a.threads) != NN_OK) bench_die("threads");
    double base = bench_peak_rss_mb();
    data d;
    memset(&d, 0, sizeof d);
    make_data(&d);
    nn_model *m = build_cnn(0);
    if (bench_wants(&a, "train"))
        printf("libnn train_img_per_s %.1f\n", median_rate(m, &d, &a, 1));
    if (bench_wants(&a, "infer"))
        printf("libnn infer_img_per_s %.1f\n", median_rate(m, &d, &a, 0));
    printf("libnn base_rss_mb %.1f\n", base);
    printf("libnn peak_rss_mb %.1f\n", bench_peak_rss_mb());
    nn_model_free(m);
    if (bench_wants(&a, "train")) {
        /* Q3b's augmentation must not dominate a training step. Measured
         * after the peak above, so that figure is one model's. */
        m = build_cnn(1);
        printf("libnn train_aug_img_per_s %.1f\n", median_rate(m, &d, &a, 1));
        nn_model_free(m);
        /* Per-step gradient norms must cost little (issue: <= 5%). */
        m = build_cnn(0);
        nn_diag_opts diag = NN_DIAG_OPTS_INIT;
        if (nn_model_set_diagnostics(m, &diag) != NN_OK) bench_die("diagnostics");
        printf("libnn train_diag_img_per_s %.1f\n", median_rate(m, &d, &a, 1));
        nn_model_free(m);
    }
    free_data(&d);
    return 0;
}

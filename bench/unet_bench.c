/* Training and inference speed of the TensorFlow segmentation tutorial's
 * U-Net (issue 11), through the public API only: MobileNetV2 alpha 1.0,
 * Keras flavour, 128x128x3, frozen encoder (skips block_1/3/6/13
 * _expand_relu and block_16_project), decoder 512/256/128/64 (pix2pix
 * upsample blocks), 3 classes as logits; sparse categorical
 * cross-entropy from logits and Adam, as the tutorial compiles it.
 * 6,504,227 parameters (4,660,323 trainable). Random weights and data:
 * speed does not depend on them. bench/unet_bench_torch.py is its PyTorch
 * twin; `BENCH_BIN=build/bench/unet_bench BENCH_TORCH=bench/unet_bench_torch.py
 * scripts/run-bench.sh` prints both side by side (make bench does it after
 * MobileNetV2).
 *
 * After a warm-up, R repetitions of K steps are timed; the figure is the
 * median repetition. Output, one figure per line:
 *
 *   libnn train_ms <ms>         one training step on a batch (16)
 *   libnn train_img_per_s <batch / train_ms>
 *   libnn infer_ms <ms>         one prediction of a batch (logits out)
 *   libnn infer_img_per_s <batch / infer_ms>
 *   libnn base_rss_mb <MB>      peak before the model exists
 *   libnn peak_rss_mb <MB>      after both
 *
 *   unet_bench [--threads N] [--reps R] [--steps K] [--warmup W]
 *              [--batch B] [--mode train|infer|both] */
#include "bench.h"

#define SIZE 128
#define CLASSES 3

static const char *const skips[5] = {
    "block_1_expand_relu", "block_3_expand_relu", "block_6_expand_relu",
    "block_13_expand_relu", "block_16_project"};

/* The tutorial's model, compiled as the tutorial compiles it. */
static nn_model *build(void)
{
    nn_mobilenet_v2_opts mo = NN_MOBILENET_V2_OPTS_INIT;
    mo.include_top = 0;
    mo.flavor = NN_MOBILENET_KERAS;
    nn_model *enc = nn_mobilenet_v2(SIZE, SIZE, 3, 42, &mo);
    if (!enc) bench_die("nn_mobilenet_v2");
    nn_unet_opts uo = NN_UNET_OPTS_INIT;
    uo.freeze_encoder = 1;
    static const int filters[4] = {512, 256, 128, 64};
    nn_model *m = nn_unet(enc, 5, skips, 4, filters, CLASSES, 43, &uo);
    nn_model_free(enc); /* the U-Net holds the weights it shares */
    if (!m) bench_die("nn_unet");
    nn_loss_opts lo = NN_LOSS_OPTS_INIT;
    lo.from_logits = 1;
    if (nn_model_compile(m, nn_adam(NULL),
                         NN_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY,
                         &lo) != NN_OK)
        bench_die("compile");
    return m;
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t next(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return rng;
}

/* Images in [0, 1) and class ids in [0, CLASSES). */
static void fill(nn_tensor *x, nn_tensor *y)
{
    float *px = nn_tensor_data(x), *py = nn_tensor_data(y);
    for (int64_t i = 0; i < nn_tensor_size(x); i++)
        px[i] = (float)(next() >> 40) / (float)(1u << 24);
    for (int64_t i = 0; i < nn_tensor_size(y); i++)
        py[i] = (float)(next() % CLASSES);
}

typedef struct work {
    nn_model *m;
    nn_tensor *x, *y, *out;
    int batch;
} work;

static void train_step(void *ctx)
{
    work *w = ctx;
    if (nn_model_train_batch(w->m, w->x, w->y, NULL, NULL) != NN_OK)
        bench_die("train_batch");
}

static void infer_step(void *ctx)
{
    work *w = ctx;
    if (nn_model_predict(w->m, w->x, w->out, w->batch) != NN_OK)
        bench_die("predict");
}

static void report(const char *what, double t, int batch)
{
    printf("libnn %s_ms %.1f\n", what, 1e3 * t);
    printf("libnn %s_img_per_s %.2f\n", what, batch / t);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    bench_name = "unet_bench";
    bench_usage_text = "usage: unet_bench [--threads N] [--reps R] [--steps K]\n"
                       "                  [--warmup W] [--batch B]\n"
                       "                  [--mode train|infer|both]\n";
    bench_args a = bench_parse(
        argc, argv,
        (bench_args){2, 5, 1, 2, 16, "both", NULL,
                     BENCH_STEPS | BENCH_BATCH | BENCH_MODE});
    if (nn_set_num_threads(a.threads) != NN_OK) bench_die("threads");
    double base = bench_peak_rss_mb();
    work w = {build(), NULL, NULL, NULL, a.batch};
    int64_t xs[4] = {a.batch, SIZE, SIZE, 3}, ys[3] = {a.batch, SIZE, SIZE},
            os[4] = {a.batch, SIZE, SIZE, CLASSES};
    w.x = nn_tensor_create(4, xs);
    w.y = nn_tensor_create(3, ys);
    w.out = nn_tensor_create(4, os);
    if (!w.x || !w.y || !w.out) bench_die("allocating data");
    fill(w.x, w.y);
    if (bench_wants(&a, "train"))
        report("train", bench_time(train_step, &w, &a), a.batch);
    if (bench_wants(&a, "infer"))
        report("infer", bench_time(infer_step, &w, &a), a.batch);
    printf("libnn base_rss_mb %.1f\n", base);
    printf("libnn peak_rss_mb %.1f\n", bench_peak_rss_mb());
    nn_tensor_free(w.x);
    nn_tensor_free(w.y);
    nn_tensor_free(w.out);
    nn_model_free(w.m);
    return 0;
}

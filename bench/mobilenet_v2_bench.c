/* Inference latency and throughput of MobileNetV2 (alpha 1.0, with its
 * classifier, torchvision flavour: the one whose weights libnn imports),
 * 224x224x3, eval mode, at batch 1 and batch 8, through the public API
 * only. bench/mobilenet_v2_bench_torch.py is its PyTorch twin;
 * `BENCH_BIN=build/bench/mobilenet_v2_bench
 * BENCH_TORCH=bench/mobilenet_v2_bench_torch.py scripts/run-bench.sh`
 * prints both side by side (make bench does it after ResNet50).
 *
 * After a warm-up, R repetitions of K forward passes are timed at each
 * batch size; the figure is the median repetition. Output, one figure per
 * line:
 *
 *   libnn b1_ms <ms>            median latency of one batch-1 forward
 *   libnn b1_img_per_s <1000 / b1_ms>
 *   libnn b8_ms <ms>            of one batch-8 forward
 *   libnn b8_img_per_s <8000 / b8_ms>
 *   libnn base_rss_mb <MB>      peak before the model exists
 *   libnn peak_rss_mb <MB>
 *
 * Weights are random (seeded) unless --weights FILE gives a torchvision
 * safetensors export; speed does not depend on them. */
#include <nn.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

typedef struct args {
    int threads, reps, steps, warmup;
    const char *weights;
} args;

static void die(const char *what)
{
    fprintf(stderr, "mobilenet_v2_bench: %s: %s\n", what, nn_last_error());
    exit(1);
}

static void usage(void)
{
    fprintf(stderr,
            "usage: mobilenet_v2_bench [--threads N] [--reps R] [--steps K]\n"
            "                          [--warmup W] [--weights FILE]\n"
            "(--mode is accepted and ignored: this benchmark is inference)\n");
    exit(2);
}

static int positive(const char *v, int min)
{
    char *end;
    long n = strtol(v, &end, 10);
    if (*end || n < min || n > 1000000) usage();
    return (int)n;
}

static args parse(int argc, char **argv)
{
    args a = {2, 7, 3, 3, NULL};
    for (int i = 1; i < argc; i += 2) {
        const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) usage();
        if (!strcmp(k, "--threads")) a.threads = positive(v, 1);
        else if (!strcmp(k, "--reps")) a.reps = positive(v, 1);
        else if (!strcmp(k, "--steps")) a.steps = positive(v, 1);
        else if (!strcmp(k, "--warmup")) a.warmup = positive(v, 0);
        else if (!strcmp(k, "--weights")) a.weights = v;
        else if (strcmp(k, "--mode")) usage();
    }
    return a;
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static double peak_rss_mb(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return -1.0;
    return (double)ru.ru_maxrss / 1024.0; /* Linux: KiB */
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median seconds of one forward pass at this batch size. */
static double median_latency(nn_model *m, int batch, const args *a)
{
    int64_t xs[4] = {batch, 224, 224, 3}, ys[2] = {batch, 1000};
    nn_tensor *x = nn_tensor_create(4, xs), *y = nn_tensor_create(2, ys);
    double *t = malloc((size_t)a->reps * sizeof *t);
    if (!x || !y || !t) die("allocating data");
    uint64_t s = 0x9e3779b97f4a7c15ull;
    float *px = nn_tensor_data(x);
    for (int64_t i = 0; i < nn_tensor_size(x); i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        px[i] = (float)(s >> 40) / (float)(1u << 24) * 4.0f - 2.0f;
    }
    for (int i = 0; i < a->warmup; i++)
        if (nn_model_predict(m, x, y, batch) != NN_OK) die("predict");
    for (int r = 0; r < a->reps; r++) {
        double t0 = now_s();
        for (int k = 0; k < a->steps; k++)
            if (nn_model_predict(m, x, y, batch) != NN_OK) die("predict");
        t[r] = (now_s() - t0) / a->steps;
    }
    qsort(t, (size_t)a->reps, sizeof *t, cmp_double);
    double med = a->reps % 2 ? t[a->reps / 2]
                             : 0.5 * (t[a->reps / 2 - 1] + t[a->reps / 2]);
    free(t);
    nn_tensor_free(x);
    nn_tensor_free(y);
    return med;
}

int main(int argc, char **argv)
{
    args a = parse(argc, argv);
    if (nn_set_num_threads(a.threads) != NN_OK) die("threads");
    double base = peak_rss_mb();
    nn_mobilenet_v2_opts o = NN_MOBILENET_V2_OPTS_INIT;
    o.flavor = NN_MOBILENET_TORCHVISION;
    nn_model *m = nn_mobilenet_v2(224, 224, 3, 42, &o);
    if (!m) die("nn_mobilenet_v2");
    if (a.weights &&
        nn_model_load_safetensors(m, a.weights,
                                  NN_WEIGHTS_TORCHVISION_MOBILENET_V2) != NN_OK)
        die(a.weights);
    static const int batches[2] = {1, 8};
    for (int i = 0; i < 2; i++) {
        double t = median_latency(m, batches[i], &a);
        printf("libnn b%d_ms %.1f\n", batches[i], 1e3 * t);
        printf("libnn b%d_img_per_s %.2f\n", batches[i], batches[i] / t);
        fflush(stdout);
    }
    printf("libnn base_rss_mb %.1f\n", base);
    printf("libnn peak_rss_mb %.1f\n", peak_rss_mb());
    nn_model_free(m);
    return 0;
}

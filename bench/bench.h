/* What every benchmark program of bench/ shares: one command line (each
 * program says which options it takes), the clock, peak memory, medians,
 * and the ImageNet-style inference measurement of ResNet50 and
 * MobileNetV2. Header-only, like examples/common.h: each program is one
 * file. A program sets bench_name and bench_usage_text before parsing. */
#ifndef BENCH_H
#define BENCH_H

#include <nn.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

/* Options beyond --threads, --reps and --warmup, which every program
 * takes. */
enum {
    BENCH_STEPS = 1,   /* --steps K: timed calls per repetition */
    BENCH_BATCH = 2,   /* --batch B */
    BENCH_MODE = 4,    /* --mode train|infer|both */
    BENCH_WEIGHTS = 8  /* --weights FILE */
};

typedef struct bench_args {
    int threads, reps, steps, warmup, batch;
    const char *mode, *weights;
    unsigned takes; /* BENCH_* bits */
} bench_args;

static const char *bench_name = "bench";
static const char *bench_usage_text = "";

static inline void bench_die(const char *what)
{
    fprintf(stderr, "%s: %s: %s\n", bench_name, what, nn_last_error());
    exit(1);
}

static inline void bench_usage(void)
{
    fprintf(stderr, "%s", bench_usage_text);
    exit(2);
}

static inline int bench_number(const char *v, int min)
{
    char *end;
    long n = strtol(v, &end, 10);
    if (end == v || *end || n < min || n > 1000000) bench_usage();
    return (int)n;
}

/* Parses over the defaults in `a`; an option the program does not take
 * (a.takes) is a usage error, as is an unknown one. */
static inline bench_args bench_parse(int argc, char **argv, bench_args a)
{
    for (int i = 1; i < argc; i += 2) {
        const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) bench_usage();
        if (!strcmp(k, "--threads")) a.threads = bench_number(v, 1);
        else if (!strcmp(k, "--reps")) a.reps = bench_number(v, 1);
        else if (!strcmp(k, "--warmup")) a.warmup = bench_number(v, 0);
        else if (!strcmp(k, "--steps") && (a.takes & BENCH_STEPS))
            a.steps = bench_number(v, 1);
        else if (!strcmp(k, "--batch") && (a.takes & BENCH_BATCH))
            a.batch = bench_number(v, 1);
        else if (!strcmp(k, "--mode") && (a.takes & BENCH_MODE))
            a.mode = v;
        else if (!strcmp(k, "--weights") && (a.takes & BENCH_WEIGHTS))
            a.weights = v;
        else bench_usage();
    }
    if ((a.takes & BENCH_MODE) && strcmp(a.mode, "train") &&
        strcmp(a.mode, "infer") && strcmp(a.mode, "both"))
        bench_usage();
    return a;
}

/* Does --mode ask for this part ("train" or "infer")? */
static inline int bench_wants(const bench_args *a, const char *part)
{
    return !strcmp(a->mode, "both") || !strcmp(a->mode, part);
}

static inline double bench_now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static inline double bench_peak_rss_mb(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return -1.0;
    return (double)ru.ru_maxrss / 1024.0; /* Linux: KiB */
}

static inline int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Sorts t[0..n) and returns its median. */
static inline double bench_median(double *t, int n)
{
    qsort(t, (size_t)n, sizeof *t, bench_cmp_double);
    return n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

/* Median seconds of one call of step(ctx): a.warmup calls, then a.reps
 * repetitions of a.steps calls. */
static inline double bench_time(void (*step)(void *), void *ctx,
                         const bench_args *a)
{
    double *t = malloc((size_t)a->reps * sizeof *t);
    if (!t) bench_die("allocating timings");
    for (int i = 0; i < a->warmup; i++) step(ctx);
    for (int r = 0; r < a->reps; r++) {
        double t0 = bench_now_s();
        for (int k = 0; k < a->steps; k++) step(ctx);
        t[r] = (bench_now_s() - t0) / a->steps;
    }
    double med = bench_median(t, a->reps);
    free(t);
    return med;
}

/* Seeded uniform values in [lo, lo + span). */
static inline void bench_fill(nn_tensor *x, uint64_t seed, float lo, float span)
{
    float *p = nn_tensor_data(x);
    for (int64_t i = 0; i < nn_tensor_size(x); i++) {
        seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
        p[i] = lo + (float)(seed >> 40) / (float)(1u << 24) * span;
    }
}

typedef struct bench_predict {
    nn_model *m;
    nn_tensor *x, *y;
    int batch;
} bench_predict;

static inline void bench_predict_step(void *ctx)
{
    bench_predict *p = ctx;
    if (nn_model_predict(p->m, p->x, p->y, p->batch) != NN_OK)
        bench_die("predict");
}

/* ResNet50 and MobileNetV2: 224x224x3 inputs in [-2, 2), 1000 classes,
 * at batch 1 and 8; prints the lines of bench/README.md. */
static inline void bench_imagenet(nn_model *m, double base_rss, const bench_args *a)
{
    static const int batches[2] = {1, 8};
    for (int i = 0; i < 2; i++) {
        int b = batches[i];
        int64_t xs[4] = {b, 224, 224, 3}, ys[2] = {b, 1000};
        bench_predict p = {m, nn_tensor_create(4, xs),
                           nn_tensor_create(2, ys), b};
        if (!p.x || !p.y) bench_die("allocating data");
        bench_fill(p.x, 0x9e3779b97f4a7c15ull, -2.0f, 4.0f);
        double t = bench_time(bench_predict_step, &p, a);
        printf("libnn b%d_ms %.1f\n", b, 1e3 * t);
        printf("libnn b%d_img_per_s %.2f\n", b, b / t);
        fflush(stdout);
        nn_tensor_free(p.x);
        nn_tensor_free(p.y);
    }
    printf("libnn base_rss_mb %.1f\n", base_rss);
    printf("libnn peak_rss_mb %.1f\n", bench_peak_rss_mb());
}

#endif

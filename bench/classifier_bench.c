/* Latency of the Q4 defect classifier on the product path: one 128x128x3
 * 8-bit camera frame at a time through nn_context_classify_u8, with the
 * preprocessing (scale, mean, std) and the threshold the model carries.
 * The network is examples/defect_classifier's default
 * (examples/defect_model.h); bench/classifier_bench_torch.py is its
 * PyTorch twin, and scripts/run-bench.sh runs both side by side.
 *
 * One context, warmed up with a few frames (the first call plans its
 * memory); then --reps rounds of 100 calls, each call timed alone, over
 * 16 distinct frames of the synthetic surface-defect data. Latency is
 * reported at 1 thread and at --threads (median and 99th percentile of
 * every timed call), and the library's allocations per steady-state
 * call, counted through its allocator's test hook (the count that
 * tests/test_infer.c asserts is 0): this is why the program links
 * libnn.a. Output, one figure per line:
 *
 *   libnn p50_ms_t1 1.234
 *   libnn p99_ms_t1 1.876
 *   libnn allocs_per_call_t1 0
 *   libnn p50_ms_t2 0.812
 *   libnn p99_ms_t2 1.402
 *   libnn allocs_per_call_t2 0
 *   libnn base_rss_mb 3.1
 *   libnn peak_rss_mb 20.3
 */
#include "../examples/defect_model.h"
#include "nn_internal.h" /* nn__debug_fail_alloc_after: allocation count */

#include "bench.h"

#define FRAMES 16
#define ROUND 100 /* calls per --reps round */

/* Nearest-rank quantile of sorted values. */
static double quantile(const double *v, int n, double q)
{
    int k = (int)ceil(q * n) - 1;
    return v[k < 0 ? 0 : k];
}

/* The default classifier (weights from its seed: latency does not depend
 * on their values) with its preprocessing and a threshold. */
static nn_model *classifier(void)
{
    dm_arch a = DM_ARCH_DEFAULT;
    nn_model *m = dm_build(&a, 42);
    if (!m) bench_die("building the model");
    nn_preprocess_opts p = dm_preprocess(a.head, 0.5f);
    if (nn_model_set_preprocess(m, &p) != NN_OK) bench_die("preprocessing");
    return m;
}

/* FRAMES 8-bit frames of the synthetic data, about 1 in 10 defective. */
static uint8_t *frames(void)
{
    nn_defects_opts d = NN_DEFECTS_OPTS_INIT;
    d.count = FRAMES;
    d.defect_fraction = 0.1f;
    d.seed = 7;
    nn_tensor *img, *mask, *kind;
    if (nn_synthetic_defects(&d, &img, &mask, &kind) != NN_OK)
        bench_die("frames");
    uint8_t *px = dm_to_u8(img);
    if (!px) bench_die("frames");
    nn_tensor_free(img);
    nn_tensor_free(mask);
    nn_tensor_free(kind);
    return px;
}

static void classify(nn_context *ctx, const uint8_t *px, int i)
{
    const size_t frame = (size_t)DM_SIZE * DM_SIZE * DM_CHANNELS;
    float probs[2];
    nn_verdict v = NN_VERDICT_INIT;
    v.probs = probs;
    v.num_probs = 2;
    if (nn_context_classify_u8(ctx, px + (size_t)(i % FRAMES) * frame,
                               DM_SIZE, DM_SIZE, DM_CHANNELS, 0,
                               &v) != NN_OK)
        bench_die("classify");
}

/* Times every call of a.reps rounds at `threads` threads; prints the
 * median and 99th percentile, and the allocations per call. */
static void measure(nn_model *m, const uint8_t *px, const bench_args *a,
                    int threads)
{
    if (nn_set_num_threads(threads) != NN_OK) bench_die("threads");
    nn_context *ctx = nn_context_create(m);
    int n = a->reps * ROUND;
    double *t = malloc((size_t)n * sizeof *t);
    if (!ctx || !t) bench_die("out of memory");
    for (int i = 0; i < a->warmup; i++) classify(ctx, px, i);
    nn__debug_fail_alloc_after(0); /* resets the count */
    for (int i = 0; i < n; i++) {
        double t0 = bench_now_s();
        classify(ctx, px, i);
        t[i] = bench_now_s() - t0;
    }
    int64_t allocs = nn__debug_fail_alloc_after(0);
    qsort(t, (size_t)n, sizeof *t, bench_cmp_double);
    printf("libnn p50_ms_t%d %.3f\n", threads, 1e3 * quantile(t, n, 0.50));
    printf("libnn p99_ms_t%d %.3f\n", threads, 1e3 * quantile(t, n, 0.99));
    printf("libnn allocs_per_call_t%d %g\n", threads, (double)allocs / n);
    free(t);
    nn_context_free(ctx);
}

int main(int argc, char **argv)
{
    bench_name = "classifier_bench";
    bench_usage_text = "usage: classifier_bench [--threads N] [--reps R] "
                       "[--warmup W]\n"
                       "  R rounds of 100 timed calls (default 10), at 1 "
                       "thread and at N (default 2)\n";
    bench_args a =
        bench_parse(argc, argv, (bench_args){2, 10, 1, 20, 1, NULL, NULL, 0});
    double base = bench_peak_rss_mb();
    uint8_t *px = frames();
    nn_model *m = classifier();
    measure(m, px, &a, 1);
    if (a.threads > 1) measure(m, px, &a, a.threads);
    printf("libnn base_rss_mb %.1f\n", base);
    printf("libnn peak_rss_mb %.1f\n", bench_peak_rss_mb());
    nn_model_free(m);
    free(px);
    return 0;
}

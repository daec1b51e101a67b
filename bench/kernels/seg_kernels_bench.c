/* Micro-benchmark of the segmentation kernels: the depthwise convolution's
 * forward on MobileNetV2's depthwise layers at batch 1 (224x224 input,
 * 3x3, Keras' SAME), in GB/s moved (input + output + kernel bytes over the
 * time), and the transposed convolution on the U-Net decoder of issue 11
 * (MobileNetV2 encoder at 128x128, pix2pix upsample blocks: 3x3, stride 2,
 * SAME) at batch 16, in GFLOP/s. For scale it first measures memcpy on a
 * buffer the size of the largest activation (caches) and on 256 MB
 * (memory).
 *
 * Internal kernels, so it links libnn.a; not part of `make bench` (`make
 * seg-kernels-bench` builds and runs it). The machine may be shared: each
 * figure is the median of R timed samples (each sample repeats the call
 * for at least 5 ms), indicative only.
 *
 *   seg_kernels_bench [--reps R] [--threads T] */
#include "kernels/seg_kernels.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct args {
    int reps, threads;
} args;

/* Wall-clock time, or with cpu_clock the calling thread's CPU time: on a
 * shared machine the single-thread figures are then the kernel's own,
 * whatever else runs (the calls stay on the calling thread at 1 thread). */
static bool cpu_clock;

static double now_s(void)
{
    struct timespec t;
    clock_gettime(cpu_clock ? CLOCK_THREAD_CPUTIME_ID : CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static float *buf(size_t n)
{
    float *p = aligned_alloc(64, ((n ? n : 1) * sizeof(float) + 63) & ~63ul);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++) p[i] = (float)((i * 7919u) % 1000) * 1e-3f;
    return p;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* What one timed call does. */
typedef struct job job;
typedef void (*job_fn)(const job *j);
struct job {
    job_fn run;
    nn_conv_geom g;
    const nn_epilogue *e;
    float *x, *w, *b, *y, *dx, *dw, *db, *scratch;
};

/* Seconds per call over reps samples of >= 5 ms each: the median, and
 * the best in *best (may be NULL). */
static double time_job(const job *j, int reps, double *best)
{
    j->run(j);
    int calls = 1;
    double t0 = now_s();
    j->run(j);
    double one = now_s() - t0;
    if (one < 5e-3) calls = (int)(5e-3 / (one > 1e-7 ? one : 1e-7)) + 1;
    double *s = malloc((size_t)reps * sizeof(double));
    for (int r = 0; r < reps; r++) {
        t0 = now_s();
        for (int c = 0; c < calls; c++) j->run(j);
        s[r] = (now_s() - t0) / calls;
    }
    qsort(s, (size_t)reps, sizeof(double), cmp_double);
    double med = s[reps / 2];
    if (best) *best = s[0];
    free(s);
    return med;
}

static void run_memcpy(const job *j)
{
    memcpy(j->y, j->x, (size_t)j->g.n * sizeof(float));
}

static void run_dw(const job *j)
{
    if (j->e)
        nn__depthwise_forward_epi(&j->g, j->x, j->w, j->e, j->y);
    else
        nn__depthwise_forward(&j->g, j->x, j->w, NULL, j->y);
}

static void run_dw_backward(const job *j)
{
    nn__depthwise_backward(&j->g, j->x, j->w, j->y, j->dx, false, j->dw,
                           NULL, j->scratch);
}

static void run_ct(const job *j)
{
    nn__conv_transpose_forward(&j->g, j->x, j->w, j->b, j->y, j->scratch);
}

static void run_ct_backward(const job *j)
{
    nn__conv_transpose_backward(&j->g, j->x, j->w, j->y, j->dx, false, j->dw,
                                j->b ? j->db : NULL, j->scratch);
}

static void bandwidth(const args *a, size_t floats, const char *what)
{
    job j = {.run = run_memcpy, .g = {.n = (int)floats}};
    j.x = buf(floats);
    j.y = buf(floats);
    double t = time_job(&j, a->reps, NULL);
    printf("memcpy %-28s %8.1f us  %6.1f GB/s (read + write)\n", what,
           t * 1e6, 2.0 * (double)floats * sizeof(float) / t * 1e-9);
    free(j.x);
    free(j.y);
}

/* Keras' SAME along one axis. */
static void same_axis(int in, int k, int s, int *out, int *pad)
{
    *out = (in + s - 1) / s;
    int total = (*out - 1) * s + k - in;
    *pad = total > 0 ? total / 2 : 0;
}

typedef struct dw_shape {
    int hw, c, s, count; /* count: layers of this shape in MobileNetV2 */
} dw_shape;

static const dw_shape dw_shapes[] = {
    {112, 32, 1, 1}, {112, 96, 2, 1}, {56, 144, 1, 1}, {56, 144, 2, 1},
    {28, 192, 1, 2}, {28, 192, 2, 1}, {14, 384, 1, 4}, {14, 576, 1, 2},
    {14, 576, 2, 1}, {7, 960, 1, 3},
};

/* Seconds per call at the given thread count (1: in CPU time), with or
 * without the AVX-512 kernels: the median, and the best in *best. */
static double timed(const args *a, job *j, int threads, bool avx512,
                    double *best)
{
    nn_set_num_threads(threads);
    nn__gemm512_disable(!avx512);
    cpu_clock = threads == 1;
    double t = time_job(j, a->reps, best);
    cpu_clock = false;
    nn__gemm512_disable(false);
    return t;
}

static void depthwise(const args *a)
{
    printf("\nDepthwise 3x3 forward, batch 1 (MobileNetV2 224x224): us per "
           "call and GB/s moved.\n1 thread in CPU time (median): plain, with "
           "the BN + ReLU6 epilogue, on the portable path;\nT = %d threads in "
           "wall-clock time: median and best sample.\n", a->threads);
    printf("%-14s %2s %5s | %7s %5s | %7s %5s | %7s %5s | %7s %5s | %7s %5s\n",
           "input", "s", "MB", "1 thr", "GB/s", "+epi", "GB/s", "portab",
           "GB/s", "T med", "GB/s", "T best", "GB/s");
    double total[5] = {0};
    for (size_t i = 0; i < sizeof dw_shapes / sizeof dw_shapes[0]; i++) {
        const dw_shape *d = &dw_shapes[i];
        nn_conv_geom g = {.n = 1, .h = d->hw, .w = d->hw, .c = d->c,
                          .kh = 3, .kw = 3, .sh = d->s, .sw = d->s,
                          .f = d->c};
        same_axis(d->hw, 3, d->s, &g.oh, &g.pad_top);
        same_axis(d->hw, 3, d->s, &g.ow, &g.pad_left);
        size_t nx = (size_t)d->hw * d->hw * d->c;
        size_t ny = (size_t)g.oh * g.ow * d->c, nw = 9 * (size_t)d->c;
        float *scale = buf((size_t)d->c), *shift = buf((size_t)d->c);
        nn_epilogue e = {.scale = scale, .shift = shift, .relu6 = true};
        job j = {.run = run_dw, .g = g, .x = buf(nx), .w = buf(nw),
                 .y = buf(ny)};
        double mb = (double)(nx + ny + nw) * sizeof(float) * 1e-6;
        double t[5];
        t[0] = timed(a, &j, 1, true, NULL);
        j.e = &e;
        t[1] = timed(a, &j, 1, true, NULL);
        j.e = NULL;
        t[2] = timed(a, &j, 1, false, NULL);
        t[3] = timed(a, &j, a->threads, true, &t[4]);
        char name[32];
        snprintf(name, sizeof name, "%dx%dx%d", d->hw, d->hw, d->c);
        printf("%-14s %2d %5.2f", name, d->s, mb);
        for (int k = 0; k < 5; k++) {
            printf(" | %7.1f %5.1f", t[k] * 1e6, mb * 1e-3 / t[k]);
            total[k] += d->count * t[k];
        }
        printf("\n");
        free(j.x);
        free(j.w);
        free(j.y);
        free(scale);
        free(shift);
    }
    printf("%-23s", "all 17 layers (ms)");
    for (int k = 0; k < 5; k++) printf(" | %7.3f %5s", total[k] * 1e3, "");
    printf("\n");
}

static void depthwise_backward(const args *a)
{
    printf("\nDepthwise 3x3 backward (dx + dkernel), batch 16: ms per call, "
           "1 thread in CPU time,\n%d threads in wall-clock time (median, "
           "best)\n", a->threads);
    for (size_t i = 0; i < sizeof dw_shapes / sizeof dw_shapes[0]; i++) {
        const dw_shape *d = &dw_shapes[i];
        if (d->hw < 28) continue;
        nn_conv_geom g = {.n = 16, .h = d->hw, .w = d->hw, .c = d->c,
                          .kh = 3, .kw = 3, .sh = d->s, .sw = d->s,
                          .f = d->c};
        same_axis(d->hw, 3, d->s, &g.oh, &g.pad_top);
        same_axis(d->hw, 3, d->s, &g.ow, &g.pad_left);
        size_t nx = (size_t)16 * d->hw * d->hw * d->c;
        size_t ny = (size_t)16 * g.oh * g.ow * d->c, nw = 9 * (size_t)d->c;
        job j = {.run = run_dw_backward, .g = g, .x = buf(nx), .w = buf(nw),
                 .y = buf(ny), .dx = buf(nx), .dw = buf(nw),
                 .scratch = buf(nn__depthwise_backward_scratch(&g))};
        double best, t1 = timed(a, &j, 1, true, NULL);
        double tn = timed(a, &j, a->threads, true, &best);
        printf("%3dx%3dx%-4d s%d  %8.2f ms  %8.2f ms  %8.2f ms\n", d->hw,
               d->hw, d->c, d->s, t1 * 1e3, tn * 1e3, best * 1e3);
        free(j.x);
        free(j.w);
        free(j.y);
        free(j.dx);
        free(j.dw);
        free(j.scratch);
    }
}

typedef struct ct_shape {
    int hw, cin, cout;
    bool bias;
} ct_shape;

/* MobileNetV2 128x128 skips 4x4x320 ... 64x64x96, decoder 512..64, 3
 * classes: each input is the previous output concatenated with a skip. */
static const ct_shape ct_shapes[] = {
    {4, 320, 512, false}, {8, 1088, 256, false}, {16, 448, 128, false},
    {32, 272, 64, false}, {64, 160, 3, true},
};

static void conv_transpose(const args *a)
{
    printf("\nConv2DTranspose 3x3 stride 2 SAME, batch 16: ms per call and "
           "GFLOP/s; 1 thread in CPU time,\nT = %d threads in wall-clock "
           "time (median, best)\n", a->threads);
    printf("%-22s | %13s | %13s | %13s | %13s | %13s | %13s\n",
           "input -> output", "fwd 1 thr", "fwd T med", "fwd T best",
           "bwd 1 thr", "bwd T med", "bwd T best");
    double total[6] = {0};
    for (size_t i = 0; i < sizeof ct_shapes / sizeof ct_shapes[0]; i++) {
        const ct_shape *c = &ct_shapes[i];
        nn_conv_geom g = {.n = 16, .oh = c->hw, .ow = c->hw, .f = c->cin,
                          .c = c->cout, .kh = 3, .kw = 3, .sh = 2, .sw = 2};
        if (!nn__conv_transpose_axis(c->hw, 3, 2, true, -1, &g.h, &g.pad_top) ||
            !nn__conv_transpose_axis(c->hw, 3, 2, true, -1, &g.w, &g.pad_left))
            exit(1);
        size_t nx = (size_t)16 * c->hw * c->hw * c->cin;
        size_t ny = (size_t)16 * g.h * g.w * c->cout;
        size_t nw = 9 * (size_t)c->cin * c->cout;
        size_t fs = nn__conv_transpose_forward_scratch(&g);
        size_t bs = nn__conv_transpose_backward_scratch(&g, true);
        job j = {.run = run_ct, .g = g, .x = buf(nx), .w = buf(nw),
                 .b = c->bias ? buf((size_t)c->cout) : NULL, .y = buf(ny),
                 .dx = buf(nx), .dw = buf(nw), .db = buf((size_t)c->cout),
                 .scratch = buf(fs > bs ? fs : bs)};
        /* The backward pass is two products of the forward's size. */
        double flop = 2.0 * (double)nx * 9 * c->cout, t[6];
        t[0] = timed(a, &j, 1, true, NULL);
        t[1] = timed(a, &j, a->threads, true, &t[2]);
        j.run = run_ct_backward;
        t[3] = timed(a, &j, 1, true, NULL);
        t[4] = timed(a, &j, a->threads, true, &t[5]);
        char name[40];
        snprintf(name, sizeof name, "%dx%dx%d -> %dx%dx%d", c->hw, c->hw,
                 c->cin, g.h, g.w, c->cout);
        printf("%-22s", name);
        for (int k = 0; k < 6; k++) {
            printf(" | %6.1f %6.1f", t[k] * 1e3,
                   (k < 3 ? flop : 2 * flop) / t[k] * 1e-9);
            total[k] += t[k];
        }
        printf("\n");
        free(j.x);
        free(j.w);
        free(j.b);
        free(j.y);
        free(j.dx);
        free(j.dw);
        free(j.db);
        free(j.scratch);
    }
    printf("%-22s", "decoder total (ms)");
    for (int k = 0; k < 6; k++) printf(" | %6.1f %6s", total[k] * 1e3, "");
    printf("\n");
}

static args parse(int argc, char **argv)
{
    args a = {15, 2};
    for (int i = 1; i < argc; i++) {
        const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : "";
        if (!strcmp(k, "--reps") && ++i) a.reps = atoi(v);
        else if (!strcmp(k, "--threads") && ++i) a.threads = atoi(v);
        else a.reps = 0;
    }
    if (a.reps < 1 || a.threads < 1) {
        fprintf(stderr, "usage: seg_kernels_bench [--reps R] [--threads T]\n");
        exit(2);
    }
    return a;
}

int main(int argc, char **argv)
{
    args a = parse(argc, argv);
    printf("seg_kernels_bench: median of %d samples; AVX-512 kernels %s\n",
           a.reps, nn__gemm512_ok() ? "on" : "off (not on this CPU)");
    bandwidth(&a, (size_t)112 * 112 * 96, "4.8 MB (caches)");
    bandwidth(&a, (size_t)64 << 20, "256 MB (memory)");
    depthwise(&a);
    depthwise_backward(&a);
    conv_transpose(&a);
    return 0;
}

/* Per-layer time of a model: wraps each layer's forward (and, for a
 * training step, backward) with a wall-clock timer and prints the time per
 * layer kind (and with --layers, per layer, with the convolutions'
 * GFLOP/s and the depthwise convolutions' GB/s moved). Links libnn.a and
 * its internal header, since the timers go between the library's layers;
 * not a benchmark (the programs in bench/ are), a tool for finding where the time
 * goes. `make profile` builds it. Models (--model):
 *
 *   resnet50      ResNet50 inference, 224x224x3 (torchvision flavour, or
 *                 --flavor keras), batch 1 by default
 *   mobilenet_v2  MobileNetV2 1.0 inference with its top, 224x224x3
 *                 (same flavours), batch 1; also measures the memory
 *                 bandwidth (a STREAM-style triad) and the share of it the
 *                 depthwise convolutions reach
 *   unet          the segmentation tutorial's U-Net (bench/unet_bench.c's:
 *                 MobileNetV2 keras encoder frozen, 128x128x3,
 *                 512/256/128/64, 3 classes, sparse cross-entropy, Adam),
 *                 batch 16, a training step (--mode train, the default)
 *                 or inference (--mode infer)
 *
 *   layer_profile [--model resnet50|mobilenet_v2|unet] [--mode train|infer]
 *                 [--batch N] [--reps R] [--threads T] [--flavor keras]
 *                 [--no-fuse] [--layers]
 *
 * At --threads 1 every time is the thread's CPU time (the profile of a
 * loaded machine is then still the code's); at more, wall-clock time. */
#include "nn_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct args {
    int batch, reps, threads;
    bool keras, no_fuse, layers, train;
    const char *model;
} args;

static const nn_layer_ops **orig;
static nn_layer_ops *wrapped;
static double *spent, *spent_back; /* seconds per layer index */

/* Wall-clock time; at 1 thread the thread's CPU time instead, so that on
 * a shared machine the profile is the layers' own, whatever else runs
 * (every call stays on the calling thread then). */
static bool cpu_clock;

static double now_s(void)
{
    struct timespec t;
    clock_gettime(cpu_clock ? CLOCK_THREAD_CPUTIME_ID : CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static nn_status timed_forward(const nn_layer *l, const nn_fwd *a)
{
    double t0 = now_s();
    nn_status s = orig[l->index]->forward(l, a);
    spent[l->index] += now_s() - t0;
    return s;
}

static nn_status timed_backward(nn_layer *l, const nn_bwd *a)
{
    double t0 = now_s();
    nn_status s = orig[l->index]->backward(l, a);
    spent_back[l->index] += now_s() - t0;
    return s;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: layer_profile [--model resnet50|mobilenet_v2|unet]\n"
            "                     [--mode train|infer] [--batch N] [--reps R]\n"
            "                     [--threads T] [--flavor keras] [--no-fuse]\n"
            "                     [--layers]\n");
    exit(2);
}

static args parse(int argc, char **argv)
{
    args a = {0, 10, 2, false, false, false, false, "resnet50"};
    const char *mode = NULL;
    for (int i = 1; i < argc; i++) {
        const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : "";
        if (!strcmp(k, "--no-fuse")) a.no_fuse = true;
        else if (!strcmp(k, "--layers")) a.layers = true;
        else if (!strcmp(k, "--flavor") && ++i) a.keras = !strcmp(v, "keras");
        else if (!strcmp(k, "--batch") && ++i) a.batch = atoi(v);
        else if (!strcmp(k, "--reps") && ++i) a.reps = atoi(v);
        else if (!strcmp(k, "--threads") && ++i) a.threads = atoi(v);
        else if (!strcmp(k, "--model") && ++i) a.model = v;
        else if (!strcmp(k, "--mode") && ++i) mode = v;
        else usage();
    }
    bool unet = !strcmp(a.model, "unet");
    if (!unet && strcmp(a.model, "resnet50") && strcmp(a.model, "mobilenet_v2"))
        usage();
    if (mode && strcmp(mode, "train") && strcmp(mode, "infer")) usage();
    a.train = mode ? !strcmp(mode, "train") : unet;
    if (a.train && !unet) usage(); /* the classifiers: inference only */
    if (!a.batch) a.batch = unet ? 16 : 1;
    if (a.batch < 1 || a.reps < 1 || a.threads < 1) usage();
    return a;
}

static void wrap_layers(nn_model *m)
{
    orig = calloc((size_t)m->n_layers, sizeof *orig);
    wrapped = calloc((size_t)m->n_layers, sizeof *wrapped);
    spent = calloc((size_t)m->n_layers, sizeof *spent);
    spent_back = calloc((size_t)m->n_layers, sizeof *spent_back);
    if (!orig || !wrapped || !spent || !spent_back) exit(1);
    for (int i = 0; i < m->n_layers; i++) {
        nn_layer *l = m->layers[i];
        orig[i] = l->ops;
        wrapped[i] = *l->ops;
        wrapped[i].forward = timed_forward;
        if (l->ops->backward) wrapped[i].backward = timed_backward;
        l->ops = &wrapped[i];
    }
}

/* Multiply-adds x 2 of a convolution over the batch, else 0: every
 * output value of a convolution takes the kernel's kh x kw x in_channels
 * window; every input value of a transposed convolution is spread over
 * its kh x kw x out_channels window. */
static double conv_flops(const nn_layer *l, int batch)
{
    const int64_t *k = l->params[0].value.shape;
    if (l->kind == NN_KIND_CONV2D) /* [kh, kw, in, filters] */
        return 2.0 * batch * l->out.d[0] * l->out.d[1] * l->out.d[2] * k[0] *
               k[1] * k[2];
    if (l->kind == NN_KIND_CONV2D_TRANSPOSE) { /* [kh, kw, filters, in] */
        const nn_shape *in = &l->inputs[0]->out;
        return 2.0 * batch * in->d[0] * in->d[1] * in->d[2] * k[0] * k[1] *
               k[2];
    }
    return 0;
}

/* Bytes a depthwise convolution's forward must move at least (input and
 * output once, and the kernel), else 0: it is memory-bound. */
static double depthwise_bytes(const nn_layer *l, int batch)
{
    if (l->kind != NN_KIND_DEPTHWISE_CONV2D) return 0;
    return 4.0 * ((double)batch * (nn__shape_size(&l->inputs[0]->out) +
                                   nn__shape_size(&l->out)) +
                  (double)l->params[0].value.size);
}

/* GB/s of a STREAM-style triad a = b + s c over 3 x 64 MB (far beyond
 * the caches) on the profile's threads, counted as STREAM counts it
 * (12 bytes per element; the write-allocate read of `a` is not counted):
 * the best of a few passes. */
static double triad_gb_s(void)
{
    const size_t n = (size_t)16 << 20;
    float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b),
          *c = malloc(n * sizeof *c);
    if (!a || !b || !c) exit(1);
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) a[i] = 0, b[i] = 1, c[i] = 2;
    double best = 1e30;
    for (int r = 0; r < 5; r++) {
        double t0 = now_s();
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < n; i++) a[i] = b[i] + 0.5f * c[i];
        double t = now_s() - t0;
        if (t < best) best = t;
    }
    volatile float keep = a[n / 2]; /* the loop's result is used */
    (void)keep;
    free(a), free(b), free(c);
    return 12.0 * (double)n / best * 1e-9;
}

static void print_kinds(const nn_model *m, const args *a, const double *t,
                        const char *what)
{
    double kind[NN_KIND_COUNT] = {0};
    for (int i = 0; i < m->n_layers; i++)
        kind[m->layers[i]->kind] += t[i] / a->reps;
    printf(" %s per kind:\n", what);
    for (int k = 0; k < NN_KIND_COUNT; k++)
        if (kind[k] > 0)
            printf("  %-26s %8.2f ms\n", nn__layer_registry[k]->type_name,
                   1e3 * kind[k]);
}

static double sum_ms(const nn_model *m, const args *a, const double *t)
{
    double sum = 0;
    for (int i = 0; i < m->n_layers; i++) sum += t[i];
    return 1e3 * sum / a->reps;
}

/* The depthwise convolutions' forward GB/s, and that as a share of the
 * triad's. */
static void print_bandwidth(const nn_model *m, const args *a)
{
    double bytes = 0, t = 0;
    for (int i = 0; i < m->n_layers; i++) {
        double b = depthwise_bytes(m->layers[i], a->batch);
        if (b > 0) bytes += b, t += spent[i] / a->reps;
    }
    if (t <= 0) return;
    double triad = triad_gb_s(), dw = bytes / t * 1e-9;
    printf("memory bandwidth (triad, %d threads) %.1f GB/s; the depthwise "
           "convolutions move %.1f MB in %.2f ms: %.1f GB/s, %.0f%% of it\n",
           a->threads, triad, bytes * 1e-6, 1e3 * t, dw, 100 * dw / triad);
}

static void report(const nn_model *m, const args *a, double total)
{
    double fwd = sum_ms(m, a, spent), bwd = sum_ms(m, a, spent_back);
    printf("%s %s %.2f ms (layers: forward %.2f ms", a->model,
           a->train ? "training step" : "forward", 1e3 * total, fwd);
    if (a->train)
        printf(", backward %.2f ms; loss and optimizer %.2f ms", bwd,
               1e3 * total - fwd - bwd);
    printf("), batch %d, %d threads%s, %s\n", a->batch, a->threads,
           a->no_fuse ? ", no fusion" : "",
           cpu_clock ? "CPU time" : "wall-clock time");
    print_kinds(m, a, spent, "forward");
    if (a->train) print_kinds(m, a, spent_back, "backward");
    for (int i = 0; a->layers && i < m->n_layers; i++) {
        const nn_layer *l = m->layers[i];
        double t = spent[i] / a->reps, tb = spent_back[i] / a->reps;
        double f = conv_flops(l, a->batch), b = depthwise_bytes(l, a->batch);
        if (t <= 0 && tb <= 0) continue; /* fused into another, or input */
        printf("%-28s %8.3f ms", l->name, 1e3 * t);
        if (f > 0 && t > 0) printf(" %7.1f GFLOP/s", f / t * 1e-9);
        if (b > 0 && t > 0) printf(" %7.1f GB/s", b / t * 1e-9);
        if (tb > 0) printf("  backward %8.3f ms", 1e3 * tb);
        printf("\n");
    }
    if (!strcmp(a->model, "mobilenet_v2")) print_bandwidth(m, a);
}

static const char *const unet_skips[5] = {
    "block_1_expand_relu", "block_3_expand_relu", "block_6_expand_relu",
    "block_13_expand_relu", "block_16_project"};

/* bench/unet_bench.c's model, compiled as there. */
static nn_model *build_unet(void)
{
    nn_mobilenet_v2_opts mo = NN_MOBILENET_V2_OPTS_INIT;
    mo.include_top = 0;
    nn_model *enc = nn_mobilenet_v2(128, 128, 3, 42, &mo);
    if (!enc) return NULL;
    nn_unet_opts uo = NN_UNET_OPTS_INIT;
    uo.freeze_encoder = 1;
    static const int filters[4] = {512, 256, 128, 64};
    nn_model *m = nn_unet(enc, 5, unet_skips, 4, filters, 3, 43, &uo);
    nn_model_free(enc);
    nn_loss_opts lo = NN_LOSS_OPTS_INIT;
    lo.from_logits = 1;
    if (m && nn_model_compile(m, nn_adam(NULL),
                              NN_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY,
                              &lo) != NN_OK) {
        nn_model_free(m);
        return NULL;
    }
    return m;
}

static nn_model *build(const args *a)
{
    if (!strcmp(a->model, "unet")) return build_unet();
    if (!strcmp(a->model, "mobilenet_v2")) {
        nn_mobilenet_v2_opts o = NN_MOBILENET_V2_OPTS_INIT;
        o.flavor = a->keras ? NN_MOBILENET_KERAS : NN_MOBILENET_TORCHVISION;
        return nn_mobilenet_v2(224, 224, 3, 42, &o);
    }
    nn_resnet_opts o = NN_RESNET_OPTS_INIT;
    o.flavor = a->keras ? NN_RESNET_KERAS : NN_RESNET_TORCHVISION;
    return nn_resnet50(224, 224, 3, 42, &o);
}

/* One pass: a training step on (x, y), or a prediction into out. */
static bool step(nn_model *m, const args *a, const nn_tensor *x,
                 const nn_tensor *y, nn_tensor *out)
{
    if (a->train) return nn_model_train_batch(m, x, y, NULL, NULL) == NN_OK;
    return nn_model_predict(m, x, out, a->batch) == NN_OK;
}

int main(int argc, char **argv)
{
    args a = parse(argc, argv);
    if (nn_set_num_threads(a.threads) != NN_OK) return 1;
    nn__fusion_disable(a.no_fuse);
    cpu_clock = a.threads == 1;
    nn_model *m = build(&a);
    int side = strcmp(a.model, "unet") ? 224 : 128;
    int64_t xs[4] = {a.batch, side, side, 3};
    nn_tensor *x = nn_tensor_create(4, xs), *y = NULL, *out = NULL;
    if (m) {
        int64_t os[NN_MAX_RANK] = {a.batch};
        const nn_shape *o = &m->output->out;
        for (int i = 0; i < o->rank; i++) os[i + 1] = o->d[i];
        out = nn_tensor_create(o->rank + 1, os);
        int64_t ys[3] = {a.batch, side, side}; /* class ids (U-Net) */
        y = nn_tensor_create(3, ys);
    }
    if (!m || !x || !y || !out) {
        fprintf(stderr, "layer_profile: %s\n", nn_last_error());
        return 1;
    }
    for (int64_t i = 0; i < x->size; i++)
        x->data[i] = (float)((i * 7919) % 1000) / 500.0f - 1.0f;
    for (int64_t i = 0; i < y->size; i++) y->data[i] = (float)(i * 31 % 3);
    wrap_layers(m);
    for (int i = 0; i < 2; i++) /* warm-up: plans the context */
        if (!step(m, &a, x, y, out)) return 1;
    memset(spent, 0, (size_t)m->n_layers * sizeof *spent);
    memset(spent_back, 0, (size_t)m->n_layers * sizeof *spent_back);
    double t0 = now_s();
    for (int r = 0; r < a.reps; r++)
        if (!step(m, &a, x, y, out)) {
            fprintf(stderr, "layer_profile: %s\n", nn_last_error());
            return 1;
        }
    report(m, &a, (now_s() - t0) / a.reps);
    nn_tensor_free(x);
    nn_tensor_free(y);
    nn_tensor_free(out);
    nn_model_free(m);
    free(orig);
    free(wrapped);
    free(spent);
    free(spent_back);
    return 0;
}

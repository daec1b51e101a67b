/* Per-layer forward time of ResNet50 inference: wraps each layer's forward
 * with a wall-clock timer and prints the time per layer kind (and with
 * --layers, per layer with the convolutions' GFLOP/s). Links libnn.a and
 * its internal header, since the timers go between the library's layers;
 * not a benchmark (bench/resnet50_bench.c is), a tool for finding where
 * the time goes. `make profile` builds it.
 *
 *   layer_profile [--batch N] [--reps R] [--threads T] [--flavor keras]
 *                 [--no-fuse] [--layers] */
#include "nn_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct args {
    int batch, reps, threads;
    bool keras, no_fuse, layers;
} args;

static const nn_layer_ops **orig;
static nn_layer_ops *wrapped;
static double *spent; /* seconds per layer index */

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static nn_status timed_forward(const nn_layer *l, const nn_fwd *a)
{
    double t0 = now_s();
    nn_status s = orig[l->index]->forward(l, a);
    spent[l->index] += now_s() - t0;
    return s;
}

static void usage(void)
{
    fprintf(stderr, "usage: layer_profile [--batch N] [--reps R] [--threads T]"
                    " [--flavor keras] [--no-fuse] [--layers]\n");
    exit(2);
}

static args parse(int argc, char **argv)
{
    args a = {1, 10, 2, false, false, false};
    for (int i = 1; i < argc; i++) {
        const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : "";
        if (!strcmp(k, "--no-fuse")) a.no_fuse = true;
        else if (!strcmp(k, "--layers")) a.layers = true;
        else if (!strcmp(k, "--flavor") && ++i) a.keras = !strcmp(v, "keras");
        else if (!strcmp(k, "--batch") && ++i) a.batch = atoi(v);
        else if (!strcmp(k, "--reps") && ++i) a.reps = atoi(v);
        else if (!strcmp(k, "--threads") && ++i) a.threads = atoi(v);
        else usage();
    }
    if (a.batch < 1 || a.reps < 1 || a.threads < 1) usage();
    return a;
}

static void wrap_layers(nn_model *m)
{
    orig = calloc((size_t)m->n_layers, sizeof *orig);
    wrapped = calloc((size_t)m->n_layers, sizeof *wrapped);
    spent = calloc((size_t)m->n_layers, sizeof *spent);
    if (!orig || !wrapped || !spent) exit(1);
    for (int i = 0; i < m->n_layers; i++) {
        nn_layer *l = m->layers[i];
        orig[i] = l->ops;
        wrapped[i] = *l->ops;
        wrapped[i].forward = timed_forward;
        l->ops = &wrapped[i];
    }
}

/* Multiply-adds x 2 of a convolution over the batch, else 0: every
 * output value takes the kernel's kh x kw x in_channels window. */
static double conv_flops(const nn_layer *l, int batch)
{
    if (l->kind != NN_KIND_CONV2D) return 0;
    const int64_t *k = l->params[0].value.shape; /* [kh, kw, in, filters] */
    return 2.0 * batch * l->out.d[0] * l->out.d[1] * l->out.d[2] * k[0] *
           k[1] * k[2];
}

static void report(const nn_model *m, const args *a, double total)
{
    double kind[NN_KIND_COUNT] = {0}, sum = 0;
    for (int i = 0; i < m->n_layers; i++) {
        kind[m->layers[i]->kind] += spent[i] / a->reps;
        sum += spent[i] / a->reps;
    }
    printf("forward %.2f ms (layers %.2f ms), batch %d, %d threads%s\n",
           1e3 * total, 1e3 * sum, a->batch, a->threads,
           a->no_fuse ? ", no fusion" : "");
    for (int k = 0; k < NN_KIND_COUNT; k++)
        if (kind[k] > 0)
            printf("  %-26s %8.2f ms\n", nn__layer_registry[k]->type_name,
                   1e3 * kind[k]);
    for (int i = 0; a->layers && i < m->n_layers; i++) {
        const nn_layer *l = m->layers[i];
        double t = spent[i] / a->reps, f = conv_flops(l, a->batch);
        printf("%-28s %8.3f ms", l->name, 1e3 * t);
        if (f > 0 && t > 0) printf(" %7.1f GFLOP/s", f / t * 1e-9);
        printf("\n");
    }
}

int main(int argc, char **argv)
{
    args a = parse(argc, argv);
    if (nn_set_num_threads(a.threads) != NN_OK) return 1;
    nn__fusion_disable(a.no_fuse);
    nn_resnet_opts o = NN_RESNET_OPTS_INIT;
    o.flavor = a.keras ? NN_RESNET_KERAS : NN_RESNET_TORCHVISION;
    nn_model *m = nn_resnet50(224, 224, 3, 42, &o);
    int64_t xs[4] = {a.batch, 224, 224, 3}, ys[2] = {a.batch, 1000};
    nn_tensor *x = nn_tensor_create(4, xs), *y = nn_tensor_create(2, ys);
    if (!m || !x || !y) {
        fprintf(stderr, "layer_profile: %s\n", nn_last_error());
        return 1;
    }
    for (int64_t i = 0; i < x->size; i++)
        x->data[i] = (float)((i * 7919) % 1000) / 500.0f - 1.0f;
    wrap_layers(m);
    for (int i = 0; i < 2; i++) /* warm-up: plans the context */
        if (nn_model_predict(m, x, y, a.batch) != NN_OK) return 1;
    memset(spent, 0, (size_t)m->n_layers * sizeof *spent);
    double t0 = now_s();
    for (int r = 0; r < a.reps; r++)
        if (nn_model_predict(m, x, y, a.batch) != NN_OK) return 1;
    report(m, &a, (now_s() - t0) / a.reps);
    nn_tensor_free(x);
    nn_tensor_free(y);
    nn_model_free(m);
    free(orig);
    free(wrapped);
    free(spent);
    return 0;
}

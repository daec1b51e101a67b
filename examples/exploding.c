/* Q1: exploding gradients, caught by the diagnostics and cured by
 * clipping.
 *
 * A deep plain network without normalisation (Flatten - 12 x Dense(256,
 * ReLU) - Dense(10, softmax)), He-normal weights scaled up by --scale
 * (1.5: a too-large initialisation), trained on Fashion-MNIST with SGD
 * (lr 0.02, momentum 0.9), twice from the same weights:
 *
 *   1. as is: the diagnostics record every step; the first steps are
 *      reported EXPLODING (the global gradient norm is above the ceiling,
 *      naming the layer with the largest gradient), and once the weights
 *      overflow the finite check (fit's stop_on_nonfinite) stops training
 *      with NN_ERR_NUMERIC naming the first layer whose output or gradient
 *      holds a NaN/Inf;
 *   2. with the optimizer's global_clipnorm (--clipnorm, 1.0): the same
 *      run trains.
 *
 * Per-step values of both runs go to --csv FILE (default
 * exploding_steps.csv): run,step,loss,grad_norm,health. */
#include "common.h"

typedef struct args {
    const char *data, *csv;
    long train_n;
    int depth, width, epochs, batch;
    float scale, lr, clipnorm;
    unsigned long long seed;
} args;

static void usage(void)
{
    printf("usage: exploding [--data CIFAR_DIR] [--train N] [--epochs N]\n"
           "         [--batch N] [--depth N] [--width N] [--scale S]\n"
           "         [--lr LR] [--clipnorm C] [--seed S] [--csv FILE]\n");
    exit(2);
}

static args parse(int argc, char **argv)
{
    args a = {NULL, "exploding_steps.csv", 5000, 12, 256, 3, 64,
              1.5f, 0.02f, 1.0f, 3};
    for (int i = 1; i < argc; i += 2) {
        const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) usage();
        if (!strcmp(k, "--data")) a.data = v;
        else if (!strcmp(k, "--csv")) a.csv = v;
        else if (!strcmp(k, "--train")) a.train_n = atol(v);
        else if (!strcmp(k, "--epochs")) a.epochs = atoi(v);
        else if (!strcmp(k, "--batch")) a.batch = atoi(v);
        else if (!strcmp(k, "--depth")) a.depth = atoi(v);
        else if (!strcmp(k, "--width")) a.width = atoi(v);
        else if (!strcmp(k, "--scale")) a.scale = (float)atof(v);
        else if (!strcmp(k, "--lr")) a.lr = (float)atof(v);
        else if (!strcmp(k, "--clipnorm")) a.clipnorm = (float)atof(v);
        else if (!strcmp(k, "--seed")) a.seed = strtoull(v, NULL, 10);
        else usage();
    }
    if (a.depth < 1 || a.width < 1 || a.epochs < 1 || a.batch < 1 ||
        !(a.scale > 0) || !(a.lr > 0) || !(a.clipnorm > 0))
        usage();
    return a;
}

static nn_model *build(const args *a, const dataset *d, float clipnorm)
{
    int64_t shape[4];
    int rank = nn_tensor_rank(d->x_train);
    nn_tensor_shape(d->x_train, shape, 4);
    int in[3] = {(int)shape[1], (int)shape[2], rank > 3 ? (int)shape[3] : 1};
    nn_model *m = nn_model_create(a->seed);
    nn_layer *x = m ? nn_input(m, rank - 1, in, NULL) : NULL;
    if (x) x = nn_flatten(m, x, NULL);
    for (int i = 0; x && i <= a->depth; i++) {
        nn_dense_opts o = NN_DENSE_OPTS_INIT;
        o.kernel_init = NN_INIT_HE_NORMAL;
        o.activation = i < a->depth ? NN_ACT_RELU : NN_ACT_SOFTMAX;
        x = nn_dense(m, x, i < a->depth ? a->width : 10, &o);
        if (!x) break;
        nn_tensor *k = nn_layer_weight(x, 0);
        float *w = nn_tensor_data(k);
        for (int64_t j = 0; j < nn_tensor_size(k); j++) w[j] *= a->scale;
    }
    if (!x) die("build");
    nn_sgd_opts so = NN_SGD_OPTS_INIT;
    so.learning_rate = a->lr;
    so.momentum = 0.9f;
    nn_optimizer *opt = nn_sgd(&so);
    if (!opt || nn_optimizer_set_global_clipnorm(opt, clipnorm) != NN_OK ||
        nn_model_compile(m, opt, NN_LOSS_CATEGORICAL_CROSSENTROPY, NULL) !=
            NN_OK)
        die("compile");
    return m;
}

static const char *const HEALTH[4] = {"OK", "VANISHING", "EXPLODING",
                                      "NONFINITE"};

typedef struct watch {
    nn_model *m;
    const char *run;
    FILE *csv;
    int64_t step;
    int last;     /* verdict printed last */
    int count[4]; /* steps per verdict */
    double max_norm;
} watch;

/* Prints a line whenever the step verdict changes, and logs every step. */
static int on_progress(const nn_progress *p, void *user)
{
    watch *w = user;
    if (p->event == NN_PROGRESS_EPOCH_END) {
        printf("  epoch %d: loss %.4f accuracy %.4f\n", p->epoch + 1, p->loss,
               p->accuracy);
        return 0;
    }
    nn_grad_report *r;
    if (nn_model_grad_report(w->m, &r) != NN_OK) die("report");
    nn_health h;
    const char *why;
    nn_grad_report_health(r, 0, &h, &why);
    double g = nn_grad_report_global_norm(r);
    w->step++;
    w->count[h]++;
    if (g > w->max_norm) w->max_norm = g;
    fprintf(w->csv, "%s,%lld,%.6g,%.6g,%d\n", w->run, (long long)w->step,
            p->loss, g, (int)h);
    if ((int)h != w->last || w->step <= 3) {
        printf("  step %3lld: loss %-10.4g %s - %s\n", (long long)w->step,
               p->loss, HEALTH[h], why);
        w->last = (int)h;
    }
    nn_grad_report_free(r);
    return 0;
}

static void run(const args *a, const dataset *d, FILE *csv, const char *name,
                float clipnorm)
{
    nn_model *m = build(a, d, clipnorm);
    watch w = {m, name, csv, 0, -1, {0}, 0};
    nn_fit_opts fo = NN_FIT_OPTS_INIT;
    fo.epochs = a->epochs;
    fo.batch_size = a->batch;
    fo.progress = on_progress;
    fo.user = &w;
    fo.record_grad_norm = 1;
    fo.stop_on_nonfinite = 1;
    printf("\n== %s ==\n", name);
    nn_status s = nn_model_fit(m, d->x_train, d->y_train, &fo, NULL);
    if (s == NN_ERR_NUMERIC) {
        w.count[NN_HEALTH_NONFINITE]++; /* the step the check stopped */
        printf("  fit stopped after %lld steps: %s\n", (long long)w.step,
               nn_last_error());
        nn_grad_report *r;
        const char *why;
        nn_health h;
        if (nn_model_grad_report(m, &r) == NN_OK &&
            nn_grad_report_health(r, 1, &h, &why) == NN_OK)
            printf("  window verdict: %s - %s\n", HEALTH[h], why);
        nn_grad_report_free(r);
    } else if (s != NN_OK) {
        die("fit");
    } else {
        float loss, acc;
        if (nn_model_evaluate(m, d->x_test, d->y_test, 256, &loss, &acc) !=
            NN_OK)
            die("evaluate");
        printf("  trained: test loss %.4f, test accuracy %.4f\n", loss, acc);
    }
    printf("  steps: %d OK, %d vanishing, %d exploding, %d non-finite; "
           "largest global gradient norm %.3g (before clipping)\n",
           w.count[0], w.count[1], w.count[2], w.count[3], w.max_norm);
    nn_model_free(m);
}

int main(int argc, char **argv)
{
    args a = parse(argc, argv);
    dataset d;
    load_dataset(&d, a.data, a.train_n, 2000);
    printf("%s: %lld training images; %d x Dense(%d, relu), He-normal x %g, "
           "SGD lr %g momentum 0.9, batch %d\n",
           d.name, (long long)nn_tensor_dim(d.x_train, 0), a.depth, a.width,
           (double)a.scale, (double)a.lr, a.batch);
    FILE *csv = fopen(a.csv, "w");
    if (!csv) {
        fprintf(stderr, "error: cannot write %s\n", a.csv);
        return 1;
    }
    fprintf(csv, "run,step,loss,grad_norm,health\n");
    run(&a, &d, csv, "no clipping", 0.0f);
    char name[64];
    snprintf(name, sizeof name, "global_clipnorm %g", (double)a.clipnorm);
    run(&a, &d, csv, name, a.clipnorm);
    fclose(csv);
    dataset_free(&d);
    printf("\nper-step values: %s\n", a.csv);
    return 0;
}

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
 * With --csv FILE, the values of every step of both runs go to FILE:
 * run,step,loss,grad_norm,health. `exploding --help` lists the options. */
#include "common.h"

static const ex_program PROGRAM = {
    "exploding",
    "Q1: exploding gradients, caught by the diagnostics and cured by\n"
    "clipping. A deep plain network (Flatten - --depth x Dense(--width,\n"
    "relu) - Dense(10, softmax)) whose He-normal weights are multiplied by\n"
    "--scale trains twice from the same weights with SGD (momentum 0.9):\n"
    "as is, where the diagnostics report EXPLODING steps and the finite\n"
    "check stops fit naming the first layer with an Inf/NaN, and with the\n"
    "optimizer's global_clipnorm, where the same run trains. Defaults: the\n"
    "first 5000 training and 2000 test images, 3 epochs, batch 64, seed 3\n"
    "(the run described in docs/diagnostics.md); a few seconds.\n"
    "Nothing is written unless --csv is given.\n"};

typedef struct args {
    train_args t;
    const char *csv;
    int depth, width;
    float scale, lr, clipnorm;
} args;

static args parse(int argc, char **argv)
{
    args a = {TRAIN_ARGS(5000, 2000, 3, 64, 3), NULL, 12, 256, 1.5f, 0.02f,
              1.0f};
    const ex_option opts[] = {
        EX_OPTS_TRAINING(&a.t),
        EX_INT("depth", &a.depth, 1, 1000, "N", "hidden Dense layers"),
        EX_INT("width", &a.width, 1, 100000, "N", "units per hidden layer"),
        EX_FLOAT_ABOVE("scale", &a.scale, 0, 1000, "S",
                       "factor on the He-normal initial weights"),
        EX_FLOAT_ABOVE("lr", &a.lr, 0, 10, "LR", "SGD learning rate"),
        EX_FLOAT_ABOVE("clipnorm", &a.clipnorm, 0, 1e6, "C",
                       "global_clipnorm of the second run"),
        EX_OUTPUT("csv", &a.csv, "FILE",
                  "write every step of both runs to FILE (CSV: "
                  "run,step,loss,grad_norm,health)",
                  "not written"),
    };
    ex_parse(argc, argv, &PROGRAM, opts, EX_COUNT(opts));
    return a;
}

static nn_model *build(const args *a, const dataset *d, float clipnorm)
{
    int64_t shape[4];
    int rank = nn_tensor_rank(d->x_train);
    nn_tensor_shape(d->x_train, shape, 4);
    int in[3] = {(int)shape[1], (int)shape[2], rank > 3 ? (int)shape[3] : 1};
    nn_model *m = nn_model_create(a->t.seed);
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
    if (w->csv)
        fprintf(w->csv, "%s,%lld,%.6g,%.6g,%d\n", w->run,
                (long long)w->step, p->loss, g, (int)h);
    if ((int)h != w->last || w->step <= 3) {
        printf("  step %3lld: loss %-10.4g %s - %s\n", (long long)w->step,
               p->loss, health_name(h), why);
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
    fo.epochs = a->t.epochs;
    fo.batch_size = a->t.batch_size;
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
           "largest global gradient norm %.3g%s\n",
           w.count[0], w.count[1], w.count[2], w.count[3], w.max_norm,
           clipnorm > 0 ? " (before clipping)" : "");
    nn_model_free(m);
}

int main(int argc, char **argv)
{
    args a = parse(argc, argv);
    dataset d;
    load_training_data(&d, &a.t);
    printf("%s: %lld training images; %d x Dense(%d, relu), He-normal x %g, "
           "SGD lr %g momentum 0.9, batch %d\n",
           d.name, (long long)nn_tensor_dim(d.x_train, 0), a.depth, a.width,
           (double)a.scale, (double)a.lr, a.t.batch_size);
    FILE *csv = NULL;
    if (a.csv) {
        if (!(csv = fopen(a.csv, "w"))) {
            fprintf(stderr, "error: cannot write %s: %s\n", a.csv,
                    strerror(errno));
            return 1;
        }
        fprintf(csv, "run,step,loss,grad_norm,health\n");
    }
    run(&a, &d, csv, "no clipping", 0.0f);
    char name[64];
    snprintf(name, sizeof name, "global_clipnorm %g", (double)a.clipnorm);
    run(&a, &d, csv, name, a.clipnorm);
    dataset_free(&d);
    if (csv) {
        if (fclose(csv) != 0) {
            fprintf(stderr, "error: writing %s: %s\n", a.csv,
                    strerror(errno));
            return 1;
        }
        printf("\nPer-step values written to %s\n", a.csv);
    }
    return 0;
}

/* Q1: the degradation problem and residual learning (He et al. 2016,
 * "Deep Residual Learning", section 4.2 and Fig. 6).
 *
 * Four CIFAR-style networks of 6n+2 weighted layers, n = 3 and n = 9:
 *
 *   conv3x3(16) - BN - ReLU
 *   3 stages of n blocks, 16 / 32 / 64 filters, 32x32 / 16x16 / 8x8 maps
 *     block: conv3x3 - BN - ReLU - conv3x3 - BN [+ shortcut] - ReLU
 *     (the first conv of stages 2 and 3 has stride 2)
 *   GlobalAveragePooling - Dense(10, softmax)
 *
 * plain-20 / plain-56 have no shortcuts; ResNet-20 / ResNet-56 add x to
 * every block: the identity block when shapes match, the convolutional
 * block (1x1 stride-2 conv + BN on the shortcut, the paper's option B)
 * where the stage changes. All four train with the same recipe, He et
 * al.'s scaled to this budget: SGD with momentum 0.9, batch 64, He-normal
 * initialisation, convolutions without bias (BN follows them); learning
 * rate 0.05 (their 0.1 at batch 128, per image), divided by 10 at 50% and
 * at 75% of the steps (their 32k and 48k of 64k iterations). plain-56
 * warms up as He et al. warm up ResNet-110: at a tenth of the rate until
 * its training error (the mean of the last 20 batches) is below 80%.
 *
 * A short training run is chaotic: a different rounding (another BLAS
 * kernel path, another thread count) moves where one seed ends by several
 * points. So every model trains from several seeds (--seeds, 3 by
 * default: --seed, --seed + 1, ...) and the summary gives per model the
 * mean and the range of the errors, and per seed whether plain-56 trains
 * worse than plain-20 (degradation) and ResNet-56 at least as well as
 * ResNet-20 (the residual fix, which He et al. show after 64k steps).
 *
 * The default budget fits about half an hour on two quiet cores: the
 * first 3000 Fashion-MNIST training images, zero-padded from 28x28 to
 * 32x32 by the model's first layer, 10 epochs (470 steps) per model and
 * seed, 1000 test images. --data DIR trains on CIFAR-10 instead; --quick 1
 * makes a run of seconds (the code paths, not the result).
 *
 * With --out DIR it writes into DIR (nothing without it):
 *   curves.csv   model,seed,step,epoch,lr,loss,train_error,grad_norm,health
 *                (per training step: the rate used, the batch's loss and
 *                error)
 *   epochs.csv   model,seed,epoch,loss,train_error,grad_norm,
 *                grad_norm_max,health,seconds (fit's history per epoch)
 *   profiles.csv model,seed,phase,step,depth,layer,type,grad_norm,
 *                weight_norm,update_ratio (per layer with weights: at
 *                initialisation, then after the last step of every epoch)
 *   summary.csv  model,seed,layers,params,final_train_error,
 *                last20_train_error,train_error_eval,test_error,
 *                warmup_steps,seconds
 * tools/plot_residual.py turns them into PNGs; `make residual-experiment`
 * builds, runs and plots. */
#include "common.h"

#include <stddef.h>
#include <sys/stat.h>

static const ex_program PROGRAM = {
    "residual_vs_plain",
    "Q1: the degradation problem and residual learning (He et al. 2016,\n"
    "Fig. 6). Trains plain-20, ResNet-20, plain-56 and ResNet-56 (6n+2\n"
    "weighted layers, BatchNorm, 16/32/64 filters) with one recipe, He et\n"
    "al.'s scaled to the budget: SGD momentum 0.9, batch 64, He-normal\n"
    "weights, learning rate 0.05 divided by 10 at 50% and 75% of the\n"
    "steps, plain-56 warmed up at a tenth of it until its training error\n"
    "is below 80%. Every model trains from --seeds seeds; the summary gives\n"
    "the mean and range of the training error (evaluated in inference mode\n"
    "after the run) and of the test error, and per seed whether plain-56\n"
    "trains worse than plain-20 and ResNet-56 at least as well as\n"
    "ResNet-20. Defaults: the first 3000 Fashion-MNIST images padded to\n"
    "32x32, 1000 test images, 10 epochs, 3 seeds from 1 (the run in\n"
    "README.md; about half an hour on two quiet cores). With --out DIR it\n"
    "writes curves.csv, epochs.csv, profiles.csv and summary.csv into DIR\n"
    "for tools/plot_residual.py (`make residual-experiment` does both);\n"
    "without it nothing is written.\n"};

#define ALL_MODELS "plain20,resnet20,plain56,resnet56"
#define MAX_SEEDS 10
/* batches in the moving mean of the training error: the warm-up's test
 * and the summary's "last 20 steps" */
#define WINDOW 20

typedef struct args {
    train_args t;
    const char *out, *models, *warmup, *schedule;
    float lr;
    int seeds, quick;
} args;

static const char *const MODELS[4] = {"plain20", "resnet20", "plain56",
                                      "resnet56"};
static const char *const LABELS[4] = {"plain-20", "ResNet-20", "plain-56",
                                      "ResNet-56"};

static int model_index(const char *name)
{
    int k = 0;
    while (k < 4 && strcmp(name, MODELS[k])) k++;
    return k;
}

/* 1 if the comma-separated list names at least one model, and only these. */
static int known_models(const char *list)
{
    char copy[256];
    int n = 0;
    if (snprintf(copy, sizeof copy, "%s", list) >= (int)sizeof copy) return 0;
    for (char *save = NULL, *name = strtok_r(copy, ",", &save); name;
         name = strtok_r(NULL, ",", &save), n++)
        if (model_index(name) == 4) return 0;
    return n > 0;
}

/* 1 if the comma-separated list names the model. */
static int listed(const char *list, const char *model)
{
    size_t len = strlen(model);
    for (const char *p = list; (p = strstr(p, model)); p += len)
        if ((p == list || p[-1] == ',') && (p[len] == ',' || !p[len]))
            return 1;
    return 0;
}

/* --quick 1: a run of seconds that goes through every code path (both
 * schedule steps, two seeds, the summary); options given on the command
 * line still win. */
static void quick_budget(args *a)
{
    a->t.train = 64;
    a->t.test = 32;
    a->t.epochs = 1;
    a->t.batch_size = 16;
    a->seeds = 2;
}

static args parse(int argc, char **argv)
{
    args a = {TRAIN_ARGS(3000, 1000, 10, 64, 1), NULL, ALL_MODELS, "plain56",
              "step", 0.05f, 3, 0};
    const ex_option opts[] = {
        EX_OPTS_TRAINING(&a.t),
        EX_INT("seeds", &a.seeds, 1, MAX_SEEDS, "K",
               "train every model from K seeds: --seed, --seed + 1, ..."),
        EX_FLOAT_ABOVE("lr", &a.lr, 0, 10, "LR", "SGD learning rate"),
        EX_STRING("schedule", &a.schedule, "NAME",
                  "step: the rate / 10 at 50% and 75% of the steps; "
                  "constant", NULL),
        EX_STRING("warmup", &a.warmup, "LIST",
                  "models that start at LR / 10 until below 80% error "
                  "(none: no warm-up)", NULL),
        EX_STRING("models", &a.models, "LIST",
                  "comma-separated models to train, from " ALL_MODELS, NULL),
        EX_INT("quick", &a.quick, 0, 1, "0|1",
               "1: a run of seconds (64 images, 1 epoch, batch 16, 2 "
               "seeds)"),
        EX_OUTPUT("out", &a.out, "DIR",
                  "write the CSV files into DIR (created if missing)",
                  "nothing written"),
    };
    ex_parse(argc, argv, &PROGRAM, opts, EX_COUNT(opts));
    if (a.quick) { /* again over the quick budget: given options win */
        quick_budget(&a);
        optind = 0;
        ex_parse(argc, argv, &PROGRAM, opts, EX_COUNT(opts));
    }
    if (!known_models(a.models))
        ex_usage_error(&PROGRAM, "invalid --models '%s': expected names from "
                       ALL_MODELS ", separated by commas", a.models);
    if (strcmp(a.warmup, "none") && !known_models(a.warmup))
        ex_usage_error(&PROGRAM, "invalid --warmup '%s': expected none or "
                       "names from " ALL_MODELS ", separated by commas",
                       a.warmup);
    if (strcmp(a.schedule, "step") && strcmp(a.schedule, "constant"))
        ex_usage_error(&PROGRAM, "invalid --schedule '%s': expected step or "
                       "constant", a.schedule);
    if (a.t.train != 0 && a.t.train < a.t.batch_size)
        ex_usage_error(&PROGRAM, "--train %d is smaller than --batch-size %d",
                       a.t.train, a.t.batch_size);
    return a;
}

/* ---------------- the networks ---------------- */

static nn_layer *check(nn_layer *l, const char *what)
{
    if (!l) die(what);
    return l;
}

/* conv (no bias, He normal, "same") - BN [- ReLU] */
static nn_layer *conv_bn(nn_model *m, nn_layer *x, int filters, int k,
                         int stride, int relu, const char *prefix)
{
    char name[64];
    nn_conv2d_opts co = NN_CONV2D_OPTS_INIT;
    co.stride_h = co.stride_w = stride;
    co.padding = NN_PADDING_SAME;
    co.use_bias = 0;
    co.kernel_init = NN_INIT_HE_NORMAL;
    snprintf(name, sizeof name, "%s_conv", prefix);
    co.name = name;
    x = check(nn_conv2d(m, x, filters, k, k, &co), name);
    nn_batchnorm_opts bo = NN_BATCHNORM_OPTS_INIT;
    bo.momentum = 0.9f; /* moving statistics that settle in a short run */
    snprintf(name, sizeof name, "%s_bn", prefix);
    bo.name = name;
    x = check(nn_batchnorm(m, x, &bo), name);
    if (!relu) return x;
    nn_layer_opts ro = NN_LAYER_OPTS_INIT;
    snprintf(name, sizeof name, "%s_relu", prefix);
    ro.name = name;
    return check(nn_relu(m, x, &ro), name);
}

/* One block of two 3x3 convolutions; residual: plus the shortcut (the
 * identity, or 1x1 conv + BN when the shape changes). */
static nn_layer *block(nn_model *m, nn_layer *x, int filters, int stride,
                       int residual, const char *prefix)
{
    char p[64], name[64];
    snprintf(p, sizeof p, "%s_1", prefix);
    nn_layer *y = conv_bn(m, x, filters, 3, stride, 1, p);
    snprintf(p, sizeof p, "%s_2", prefix);
    y = conv_bn(m, y, filters, 3, 1, 0, p);
    if (residual) {
        nn_layer *shortcut = x;
        int in_shape[3];
        nn_layer_output_shape(x, in_shape, 3);
        if (stride != 1 || in_shape[2] != filters) {
            snprintf(p, sizeof p, "%s_0", prefix); /* Keras' naming */
            shortcut = conv_bn(m, x, filters, 1, stride, 0, p);
        }
        nn_layer *both[2] = {shortcut, y};
        nn_layer_opts ao = NN_LAYER_OPTS_INIT;
        snprintf(name, sizeof name, "%s_add", prefix);
        ao.name = name;
        y = check(nn_add(m, 2, both, &ao), name);
    }
    nn_layer_opts ro = NN_LAYER_OPTS_INIT;
    snprintf(name, sizeof name, "%s_out", prefix);
    ro.name = name;
    return check(nn_relu(m, y, &ro), name);
}

static nn_model *build(int n, int residual, const int *in_shape, int classes,
                       uint64_t seed)
{
    nn_model *m = nn_model_create(seed);
    if (!m) die("model");
    nn_layer *x = check(nn_input(m, 3, in_shape, NULL), "input");
    if (in_shape[0] == 28) /* Fashion-MNIST: pad to the paper's 32x32 */
        x = check(nn_zeropad2d(m, x, 2, 2, 2, 2, NULL), "pad");
    x = conv_bn(m, x, 16, 3, 1, 1, "conv1");
    const int filters[3] = {16, 32, 64};
    char prefix[32];
    for (int s = 0; s < 3; s++)
        for (int b = 0; b < n; b++) {
            snprintf(prefix, sizeof prefix, "stage%d_block%d", s + 1, b + 1);
            x = block(m, x, filters[s], s > 0 && b == 0 ? 2 : 1, residual,
                      prefix);
        }
    x = check(nn_global_avgpool2d(m, x, NULL), "pool");
    nn_dense_opts d = NN_DENSE_OPTS_INIT;
    d.activation = NN_ACT_SOFTMAX;
    d.kernel_init = NN_INIT_HE_NORMAL;
    d.name = "fc";
    check(nn_dense(m, x, classes, &d), "fc");
    return m;
}

/* ---------------- training and recording ---------------- */

typedef struct run {
    const args *a;
    const char *name;
    unsigned long long seed;
    nn_model *m;
    nn_optimizer *opt;
    FILE *curves, *profiles;
    int warming;      /* 1 until the warm-up ends */
    int warmup_steps; /* steps at the warm-up rate; -1: no warm-up */
    float lr;         /* the rate of the coming step */
    float prev_acc;
    double prev_loss_sum;
    int64_t prev_seen, step;
    float errors[WINDOW]; /* the last WINDOW batch errors, a ring */
} run;

/* One row per layer with weights of the model's current gradient report;
 * depth counts the Conv2D/Dense layers (the 6n+2 of the paper). */
static void write_profile(run *r, const char *phase)
{
    if (!r->profiles) return; /* no --out */
    nn_grad_report *g;
    if (nn_model_grad_report(r->m, &g) != NN_OK) die("gradient report");
    int depth = 0;
    for (int k = 0; k < nn_grad_report_num_layers(g); k++) {
        const char *name = nn_grad_report_layer_name(g, k);
        const char *type = nn_layer_type(nn_model_find_layer(r->m, name));
        int weighted = !strcmp(type, "Conv2D") || !strcmp(type, "Dense");
        if (weighted && !strstr(name, "_0_")) depth++; /* not shortcuts */
        fprintf(r->profiles, "%s,%llu,%s,%lld,%d,%s,%s,%.6g,%.6g,%.6g\n",
                r->name, r->seed, phase, (long long)nn_grad_report_step(g),
                depth, name, type, nn_grad_report_grad_norm(g, k, -1),
                nn_grad_report_weight_norm(g, k, -1),
                nn_grad_report_update_ratio(g, k, -1));
    }
    nn_grad_report_free(g);
}

/* Mean of the last WINDOW batch errors (of all of them, early on). */
static double recent_error(const run *r)
{
    int n = r->step < WINDOW ? (int)r->step : WINDOW;
    double sum = 0;
    for (int i = 0; i < n; i++) sum += r->errors[i];
    return n ? sum / n : 1.0;
}

/* He et al.'s step schedule scaled to the run: the rate of step s (from
 * 0) of total is lr, lr / 10 from the half, lr / 100 from three quarters. */
static float scheduled_lr(const args *a, int64_t s, int64_t total)
{
    float lr = a->lr;
    if (strcmp(a->schedule, "step")) return lr;
    if (2 * s >= total) lr *= 0.1f;
    if (4 * s >= 3 * total) lr *= 0.1f;
    return lr;
}

/* After each step: the warm-up ends once the last WINDOW batches average
 * below 80% error (He et al.: "until the training error is below 80%");
 * then the rate of the next step. */
static void next_rate(run *r, int64_t total)
{
    if (r->warming && r->step >= WINDOW && recent_error(r) < 0.8) {
        r->warming = 0;
        r->warmup_steps = (int)r->step;
    }
    float lr = scheduled_lr(r->a, r->step, total);
    if (r->warming && lr > 0.1f * r->a->lr) lr = 0.1f * r->a->lr;
    if (lr != r->lr && nn_optimizer_set_learning_rate(r->opt, lr) != NN_OK)
        die("learning rate");
    r->lr = lr;
}

/* Per step: the batch's loss and error (recovered from the running
 * means), the rate for the next step and, with --out, the step's row;
 * per epoch: the profile after its last step. */
static int on_progress(const nn_progress *p, void *user)
{
    run *r = user;
    show_progress(p, NULL);
    if (p->event == NN_PROGRESS_EPOCH_END) {
        char phase[32];
        snprintf(phase, sizeof phase, "epoch%d", p->epoch + 1);
        write_profile(r, phase);
        r->prev_acc = 0;
        r->prev_seen = 0;
        return 0;
    }
    int64_t n = p->samples_seen - r->prev_seen;
    double correct = (double)p->accuracy * (double)p->samples_seen -
                     (double)r->prev_acc * (double)r->prev_seen;
    /* p->loss is a running mean too: the batch's own loss */
    if (r->prev_seen == 0) r->prev_loss_sum = 0;
    double loss_sum = (double)p->loss * (double)p->samples_seen;
    double loss = (loss_sum - r->prev_loss_sum) / (double)n;
    double error = 1.0 - correct / (double)n;
    float used = r->lr;
    r->errors[r->step % WINDOW] = (float)error;
    r->step++;
    r->prev_loss_sum = loss_sum;
    r->prev_acc = p->accuracy;
    r->prev_seen = p->samples_seen;
    next_rate(r, (int64_t)p->epochs * p->batches);
    if (!r->curves) return 0; /* no --out: nothing to record */
    nn_grad_report *g;
    if (nn_model_grad_report(r->m, &g) != NN_OK) die("gradient report");
    nn_health h;
    nn_grad_report_health(g, 0, &h, NULL);
    fprintf(r->curves, "%s,%llu,%lld,%d,%g,%.6g,%.6g,%.6g,%d\n", r->name,
            r->seed, (long long)r->step, p->epoch + 1, (double)used, loss,
            error, nn_grad_report_global_norm(g), (int)h);
    nn_grad_report_free(g);
    return 0;
}

static FILE *open_csv(const char *dir, const char *file, const char *header)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "error: cannot write %s: %s\n", path,
                strerror(errno));
        exit(1);
    }
    fprintf(f, "%s\n", header);
    return f;
}

typedef struct files {
    FILE *curves, *epochs, *profiles, *summary;
} files;

/* What one model from one seed reached. */
typedef struct result {
    int done;
    float last_epoch, tail, eval, test; /* training errors, test error */
    int warmup_steps;                   /* -1: no warm-up */
    double secs;
} result;

/* The gradient profile at initialisation: one batch, training mode, no
 * step; prints its verdict. */
static void initial_profile(run *r, const args *a, const dataset *d)
{
    int64_t shape[4];
    nn_tensor_shape(d->x_train, shape, 4);
    int64_t bshape[4] = {a->t.batch_size, shape[1], shape[2], shape[3]};
    int64_t yshape[2] = {a->t.batch_size, 10};
    nn_tensor *xb = nn_tensor_wrap(4, bshape, nn_tensor_data(d->x_train));
    nn_tensor *yb = nn_tensor_wrap(2, yshape, nn_tensor_data(d->y_train));
    if (!xb || !yb || nn_model_backward(r->m, xb, yb, 1, NULL, NULL) != NN_OK)
        die("backward at initialisation");
    write_profile(r, "init");
    nn_grad_report *g;
    const char *why;
    nn_health h;
    if (nn_model_grad_report(r->m, &g) != NN_OK) die("gradient report");
    nn_grad_report_health(g, 0, &h, &why);
    printf("gradients at initialisation: %s - %s\n", health_name(h), why);
    nn_grad_report_free(g);
    nn_tensor_free(xb);
    nn_tensor_free(yb);
}

/* The verdicts after the run only: the gradient table is long for 56
 * layers. */
static void final_verdicts(nn_model *m)
{
    nn_grad_report *g;
    const char *why;
    nn_health h;
    if (nn_model_grad_report(m, &g) != NN_OK) die("gradient report");
    nn_grad_report_health(g, 0, &h, &why);
    printf("gradients at the last step: %s - %s\n", health_name(h), why);
    nn_grad_report_health(g, 1, &h, &why);
    printf("gradient window: %s\n", why);
    nn_grad_report_free(g);
}

static void write_epochs(FILE *f, const run *r, const nn_history *hist)
{
    for (int e = 0; f && e < nn_history_epochs(hist); e++)
        fprintf(f, "%s,%llu,%d,%.6g,%.6g,%.6g,%.6g,%.0f,%.2f\n", r->name,
                r->seed, e + 1, nn_history_get(hist, NN_METRIC_LOSS, e),
                1 - nn_history_get(hist, NN_METRIC_ACCURACY, e),
                nn_history_get(hist, NN_METRIC_GRAD_NORM, e),
                nn_history_get(hist, NN_METRIC_GRAD_NORM_MAX, e),
                nn_history_get(hist, NN_METRIC_HEALTH, e),
                nn_history_get(hist, NN_METRIC_EPOCH_SECONDS, e));
}

static result train_one(const args *a, const dataset *d, const char *name,
                        unsigned long long seed, files *f)
{
    int n = strstr(name, "56") ? 9 : 3;
    int residual = !strncmp(name, "resnet", 6);
    int64_t shape[4];
    nn_tensor_shape(d->x_train, shape, 4);
    int in_shape[3] = {(int)shape[1], (int)shape[2], (int)shape[3]};
    nn_model *m = build(n, residual, in_shape, 10, seed);
    int warm = listed(a->warmup, name);
    nn_sgd_opts so = NN_SGD_OPTS_INIT;
    so.learning_rate = warm ? 0.1f * a->lr : a->lr;
    so.momentum = 0.9f;
    nn_optimizer *opt = nn_sgd(&so);
    if (!opt || nn_model_compile(m, opt, NN_LOSS_CATEGORICAL_CROSSENTROPY,
                                 NULL) != NN_OK)
        die("compile");
    nn_diag_opts dopt = NN_DIAG_OPTS_INIT;
    if (nn_model_set_diagnostics(m, &dopt) != NN_OK) die("diagnostics");
    printf("\n== %s, seed %llu: %d weighted layers, %lld parameters ==\n",
           name, seed, 6 * n + 2, (long long)nn_model_num_params(m));

    run r = {.a = a, .name = name, .seed = seed, .m = m, .opt = opt,
             .curves = f->curves, .profiles = f->profiles, .warming = warm,
             .warmup_steps = -1, .lr = so.learning_rate};
    initial_profile(&r, a, d);

    nn_fit_opts fo = NN_FIT_OPTS_INIT;
    fo.epochs = a->t.epochs;
    fo.batch_size = a->t.batch_size;
    fo.progress = on_progress;
    fo.user = &r;
    fo.record_grad_norm = 1;
    nn_history *hist;
    double t0 = seconds_now();
    if (nn_model_fit(m, d->x_train, d->y_train, &fo, &hist) != NN_OK)
        die("fit");
    result res = {1, 0, (float)recent_error(&r), 0, 0, -1,
                  seconds_now() - t0};
    if (warm) /* never below 80%: warm all along */
        res.warmup_steps = r.warming ? (int)r.step : r.warmup_steps;
    write_epochs(f->epochs, &r, hist);
    res.last_epoch = 1 - nn_history_get(hist, NN_METRIC_ACCURACY,
                                        nn_history_epochs(hist) - 1);
    nn_history_free(hist);
    float tl, ta, vl, va;
    if (nn_model_evaluate(m, d->x_train, d->y_train, 256, &tl, &ta) != NN_OK ||
        nn_model_evaluate(m, d->x_test, d->y_test, 256, &vl, &va) != NN_OK)
        die("evaluate");
    res.eval = 1 - ta;
    res.test = 1 - va;
    if (warm)
        printf("warm-up: lr %g for %d steps%s\n", (double)(0.1f * a->lr),
               res.warmup_steps,
               r.warming ? " (the whole run: the error never fell below 80%)"
                         : "");
    printf("%s, seed %llu: training error %.4f during the last epoch, %.4f "
           "over the last %d steps, %.4f evaluated after it; test error "
           "%.4f; %.1f s\n",
           name, seed, res.last_epoch, res.tail, WINDOW, res.eval, res.test,
           res.secs);
    final_verdicts(m);
    if (f->summary)
        fprintf(f->summary, "%s,%llu,%d,%lld,%.6g,%.6g,%.6g,%.6g,%d,%.2f\n",
                name, seed, 6 * n + 2, (long long)nn_model_num_params(m),
                res.last_epoch, res.tail, res.eval, res.test,
                res.warmup_steps, res.secs);
    fflush(NULL);
    nn_model_free(m);
    return res;
}

/* ---------------- the summary over seeds ---------------- */

/* "12.3 [10.1, 14.8]": mean and range, in percent, of one member of the
 * model's results (at offset off) over the seeds that ran. */
static void print_spread(const result *res, int seeds, size_t off)
{
    double v[MAX_SEEDS];
    for (int s = 0; s < seeds; s++)
        v[s] = res[s].done
                   ? 100.0 * *(const float *)((const char *)&res[s] + off)
                   : NAN;
    ex_spread sp = ex_spread_of(v, seeds);
    printf("  %5.1f [%5.1f, %5.1f]", sp.mean, sp.min, sp.max);
}

/* For how many seeds the deeper model's training error (at off) is above
 * (worse) or at most (at_most) the shallower one's; lists the others. */
static void print_ordering(result res[4][MAX_SEEDS], const args *a, int deep,
                           int shallow, int at_most, size_t off,
                           const char *what)
{
    char others[256] = "";
    int held = 0;
    for (int s = 0; s < a->seeds; s++) {
        float d = *(const float *)((const char *)&res[deep][s] + off);
        float h = *(const float *)((const char *)&res[shallow][s] + off);
        if (at_most ? d <= h : d > h)
            held++;
        else
            snprintf(others + strlen(others), sizeof others - strlen(others),
                     "%s%llu", *others ? ", " : "; not seed ",
                     a->t.seed + (unsigned long long)s);
    }
    printf("  %-20s %d of %d seeds%s\n", what, held, a->seeds, others);
}

static void print_summary_table(result res[4][MAX_SEEDS], const args *a)
{
    printf("\n== %d seed%s from %llu; mean [min, max] in %% ==\n", a->seeds,
           a->seeds == 1 ? "" : "s", a->t.seed);
    printf("%-10s  %-20s  %-20s  %-20s\n", "model", "train error (eval)",
           "last 20 steps", "test error");
    for (int k = 0; k < 4; k++) {
        if (!res[k][0].done) continue;
        printf("%-10s", LABELS[k]);
        print_spread(res[k], a->seeds, offsetof(result, eval));
        print_spread(res[k], a->seeds, offsetof(result, tail));
        print_spread(res[k], a->seeds, offsetof(result, test));
        printf("\n");
    }
    printf("\nper seed, train error (eval) / test error in %%:\nseed");
    for (int k = 0; k < 4; k++)
        if (res[k][0].done) printf("  %13s", LABELS[k]);
    printf("\n");
    for (int s = 0; s < a->seeds; s++) {
        printf("%4llu", a->t.seed + (unsigned long long)s);
        for (int k = 0; k < 4; k++)
            if (res[k][0].done)
                printf("  %6.1f / %4.1f", 100.0 * res[k][s].eval,
                       100.0 * res[k][s].test);
        printf("\n");
    }
}

/* The table, and the two orderings of the paper per seed. */
static void report(result res[4][MAX_SEEDS], const args *a)
{
    print_summary_table(res, a);
    const struct { int deep, shallow, at_most; const char *what; } pairs[] = {
        {2, 0, 0, "plain-56 trains worse than plain-20 (degradation)"},
        {3, 1, 1, "ResNet-56 trains at least as well as ResNet-20 "
                  "(residual learning)"},
    };
    for (int i = 0; i < 2; i++) {
        if (!res[pairs[i].deep][0].done || !res[pairs[i].shallow][0].done)
            continue;
        printf("\n%s:\n", pairs[i].what);
        print_ordering(res, a, pairs[i].deep, pairs[i].shallow,
                       pairs[i].at_most, offsetof(result, eval),
                       "evaluated:");
        print_ordering(res, a, pairs[i].deep, pairs[i].shallow,
                       pairs[i].at_most, offsetof(result, tail),
                       "last 20 steps:");
    }
}

static void close_csv(FILE *f, const char *dir)
{
    if (f && fclose(f) != 0) {
        fprintf(stderr, "error: writing into %s: %s\n", dir, strerror(errno));
        exit(1);
    }
}

static files open_files(const char *dir)
{
    if (!dir) return (files){NULL, NULL, NULL, NULL};
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "error: cannot create %s: %s\n", dir,
                strerror(errno));
        exit(1);
    }
    return (files){
        open_csv(dir, "curves.csv",
                 "model,seed,step,epoch,lr,loss,train_error,grad_norm,"
                 "health"),
        open_csv(dir, "epochs.csv",
                 "model,seed,epoch,loss,train_error,grad_norm,grad_norm_max,"
                 "health,seconds"),
        open_csv(dir, "profiles.csv",
                 "model,seed,phase,step,depth,layer,type,grad_norm,"
                 "weight_norm,update_ratio"),
        open_csv(dir, "summary.csv",
                 "model,seed,layers,params,final_train_error,"
                 "last20_train_error,train_error_eval,test_error,"
                 "warmup_steps,seconds"),
    };
}

int main(int argc, char **argv)
{
    args a = parse(argc, argv);
    dataset d;
    load_training_data(&d, &a.t);
    files f = open_files(a.out);
    int64_t n = nn_tensor_dim(d.x_train, 0);
    int64_t steps = a.t.epochs * ((n + a.t.batch_size - 1) / a.t.batch_size);
    printf("%s: %lld training images, %lld test images; %d epoch%s of batch "
           "%d = %lld steps; SGD momentum 0.9, lr %g%s; warm-up: %s; "
           "seeds %llu to %llu\n",
           d.name, (long long)n, (long long)nn_tensor_dim(d.x_test, 0),
           a.t.epochs, a.t.epochs == 1 ? "" : "s", a.t.batch_size,
           (long long)steps, (double)a.lr,
           strcmp(a.schedule, "step") ? " constant"
                                      : ", / 10 at 50% and 75% of the steps",
           a.warmup, a.t.seed, a.t.seed + (unsigned long long)a.seeds - 1);
    static result res[4][MAX_SEEDS];
    double t0 = seconds_now();
    for (int s = 0; s < a.seeds; s++) {
        char list[256];
        snprintf(list, sizeof list, "%s", a.models);
        for (char *save = NULL, *name = strtok_r(list, ",", &save); name;
             name = strtok_r(NULL, ",", &save))
            res[model_index(name)][s] =
                train_one(&a, &d, name, a.t.seed + (unsigned long long)s, &f);
    }
    report(res, &a);
    printf("\nwall time %.0f s\n", seconds_now() - t0);
    close_csv(f.curves, a.out);
    close_csv(f.epochs, a.out);
    close_csv(f.profiles, a.out);
    close_csv(f.summary, a.out);
    dataset_free(&d);
    if (a.out)
        printf("\nWrote %s/{curves,epochs,profiles,summary}.csv; plot them "
               "with\n  tools/plot_residual.py %s\n", a.out, a.out);
    return 0;
}

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
 * where the stage changes. All four train with the same recipe: SGD with
 * momentum 0.9, learning rate 0.1, batch 64, He-normal initialisation,
 * convolutions without bias (BN follows them).
 *
 * The default budget is small so the four runs fit in a few minutes on two
 * cores: the first 6000 Fashion-MNIST training images, zero-padded from
 * 28x28 to 32x32 by the model's first layer, 4 epochs (376 steps). --data DIR
 * trains on CIFAR-10 instead; --train/--epochs give longer runs.
 *
 * With --out DIR it writes into DIR (nothing without it):
 *   curves.csv   model,step,epoch,loss,train_error,grad_norm,health
 *                (per training step: the batch's loss and error)
 *   epochs.csv   model,epoch,loss,train_error,grad_norm,grad_norm_max,
 *                health,seconds (fit's history per epoch)
 *   profiles.csv model,phase,step,depth,layer,type,grad_norm,weight_norm,
 *                update_ratio (per layer with weights: at initialisation,
 *                then after the last step of every epoch)
 *   summary.csv  model,layers,params,final_train_error,train_error_eval,
 *                test_error,seconds
 * tools/plot_residual.py turns them into PNGs; `make residual-experiment`
 * builds, runs and plots. */
#include "common.h"

#include <sys/stat.h>

static const ex_program PROGRAM = {
    "residual_vs_plain",
    "Q1: the degradation problem and residual learning (He et al. 2016,\n"
    "Fig. 6). Trains plain-20, ResNet-20, plain-56 and ResNet-56 (6n+2\n"
    "weighted layers, BatchNorm, 16/32/64 filters) with one recipe: SGD\n"
    "lr 0.1, momentum 0.9, batch 64, He-normal weights. Prints, per model,\n"
    "the gradient verdict at initialisation, one line per epoch, and the\n"
    "training and test errors. Defaults: the first 6000 Fashion-MNIST\n"
    "images padded to 32x32, 1000 test images, 4 epochs, seed 1 (the run\n"
    "in README.md): a few minutes on two cores. With --out DIR it writes\n"
    "curves.csv, epochs.csv, profiles.csv and summary.csv into DIR for\n"
    "tools/plot_residual.py (`make residual-experiment` does both);\n"
    "without it nothing is written.\n"};

#define ALL_MODELS "plain20,resnet20,plain56,resnet56"

typedef struct args {
    train_args t;
    const char *out, *models;
    float lr;
} args;

static const char *const MODELS[4] = {"plain20", "resnet20", "plain56",
                                      "resnet56"};

/* 1 if the comma-separated list names at least one model, and only these. */
static int known_models(const char *list)
{
    char copy[256];
    int n = 0;
    if (snprintf(copy, sizeof copy, "%s", list) >= (int)sizeof copy) return 0;
    for (char *save = NULL, *name = strtok_r(copy, ",", &save); name;
         name = strtok_r(NULL, ",", &save), n++) {
        int k = 0;
        while (k < 4 && strcmp(name, MODELS[k])) k++;
        if (k == 4) return 0;
    }
    return n > 0;
}

static args parse(int argc, char **argv)
{
    args a = {TRAIN_ARGS(6000, 1000, 4, 64, 1), NULL, ALL_MODELS, 0.1f};
    const ex_option opts[] = {
        EX_OPTS_TRAINING(&a.t),
        EX_FLOAT_ABOVE("lr", &a.lr, 0, 10, "LR", "SGD learning rate"),
        EX_STRING("models", &a.models, "LIST",
                  "comma-separated models to train, from " ALL_MODELS, NULL),
        EX_OUTPUT("out", &a.out, "DIR",
                  "write the CSV files into DIR (created if missing)",
                  "nothing written"),
    };
    ex_parse(argc, argv, &PROGRAM, opts, EX_COUNT(opts));
    if (!known_models(a.models))
        ex_usage_error(&PROGRAM, "invalid --models '%s': expected names from "
                       ALL_MODELS ", separated by commas", a.models);
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

/* ---------------- recording ---------------- */

typedef struct run {
    const char *name;
    nn_model *m;
    FILE *curves, *profiles;
    int prev_batch;
    float prev_acc;
    double prev_loss_sum;
    int64_t prev_seen, step;
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
        fprintf(r->profiles, "%s,%s,%lld,%d,%s,%s,%.6g,%.6g,%.6g\n", r->name,
                phase, (long long)nn_grad_report_step(g), depth, name, type,
                nn_grad_report_grad_norm(g, k, -1),
                nn_grad_report_weight_norm(g, k, -1),
                nn_grad_report_update_ratio(g, k, -1));
    }
    nn_grad_report_free(g);
}

/* Per step: the batch's loss and error (recovered from the running
 * means), the global gradient norm and the verdict; per epoch: the
 * profile after its last step. */
static int on_progress(const nn_progress *p, void *user)
{
    run *r = user;
    show_progress(p, NULL);
    if (!r->curves) return 0; /* no --out: nothing to record */
    if (p->event == NN_PROGRESS_EPOCH_END) {
        char phase[32];
        snprintf(phase, sizeof phase, "epoch%d", p->epoch + 1);
        write_profile(r, phase);
        r->prev_batch = 0;
        r->prev_acc = 0;
        r->prev_seen = 0;
        return 0;
    }
    int64_t n = p->samples_seen - r->prev_seen;
    double correct = (double)p->accuracy * (double)p->samples_seen -
                     (double)r->prev_acc * (double)r->prev_seen;
    nn_grad_report *g;
    if (nn_model_grad_report(r->m, &g) != NN_OK) die("gradient report");
    nn_health h;
    nn_grad_report_health(g, 0, &h, NULL);
    /* p->loss is a running mean too: the batch's own loss */
    if (r->prev_seen == 0) r->prev_loss_sum = 0;
    double loss_sum = (double)p->loss * (double)p->samples_seen;
    fprintf(r->curves, "%s,%lld,%d,%.6g,%.6g,%.6g,%d\n", r->name,
            (long long)++r->step, p->epoch + 1,
            (loss_sum - r->prev_loss_sum) / (double)n, 1.0 - correct / (double)n,
            nn_grad_report_global_norm(g), (int)h);
    nn_grad_report_free(g);
    r->prev_loss_sum = loss_sum;
    r->prev_acc = p->accuracy;
    r->prev_seen = p->samples_seen;
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

static void train_one(const args *a, const dataset *d, const char *name,
                      files *f)
{
    int n = strstr(name, "56") ? 9 : 3;
    int residual = !strncmp(name, "resnet", 6);
    int64_t shape[4];
    nn_tensor_shape(d->x_train, shape, 4);
    int in_shape[3] = {(int)shape[1], (int)shape[2], (int)shape[3]};
    nn_model *m = build(n, residual, in_shape, 10, a->t.seed);
    nn_sgd_opts so = NN_SGD_OPTS_INIT;
    so.learning_rate = a->lr;
    so.momentum = 0.9f;
    nn_optimizer *opt = nn_sgd(&so);
    if (!opt || nn_model_compile(m, opt, NN_LOSS_CATEGORICAL_CROSSENTROPY,
                                 NULL) != NN_OK)
        die("compile");
    nn_diag_opts dopt = NN_DIAG_OPTS_INIT;
    if (nn_model_set_diagnostics(m, &dopt) != NN_OK) die("diagnostics");
    printf("\n== %s: %d weighted layers, %lld parameters ==\n", name,
           6 * n + 2, (long long)nn_model_num_params(m));

    /* the profile at initialisation: one batch, training mode, no step */
    run r = {name, m, f->curves, f->profiles, 0, 0, 0, 0, 0};
    int64_t bshape[4] = {a->t.batch_size, shape[1], shape[2], shape[3]};
    int64_t yshape[2] = {a->t.batch_size, 10};
    nn_tensor *xb = nn_tensor_wrap(4, bshape, nn_tensor_data(d->x_train));
    nn_tensor *yb = nn_tensor_wrap(2, yshape, nn_tensor_data(d->y_train));
    if (!xb || !yb || nn_model_backward(m, xb, yb, 1, NULL, NULL) != NN_OK)
        die("backward at initialisation");
    write_profile(&r, "init");
    nn_grad_report *g;
    const char *why;
    nn_health h;
    nn_model_grad_report(m, &g);
    nn_grad_report_health(g, 0, &h, &why);
    printf("gradients at initialisation: %s - %s\n", health_name(h), why);
    nn_grad_report_free(g);
    nn_tensor_free(xb);
    nn_tensor_free(yb);

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
    double secs = seconds_now() - t0;
    for (int e = 0; f->epochs && e < nn_history_epochs(hist); e++)
        fprintf(f->epochs, "%s,%d,%.6g,%.6g,%.6g,%.6g,%.0f,%.2f\n", name, e + 1,
                nn_history_get(hist, NN_METRIC_LOSS, e),
                1 - nn_history_get(hist, NN_METRIC_ACCURACY, e),
                nn_history_get(hist, NN_METRIC_GRAD_NORM, e),
                nn_history_get(hist, NN_METRIC_GRAD_NORM_MAX, e),
                nn_history_get(hist, NN_METRIC_HEALTH, e),
                nn_history_get(hist, NN_METRIC_EPOCH_SECONDS, e));
    float last = 1 - nn_history_get(hist, NN_METRIC_ACCURACY,
                                    nn_history_epochs(hist) - 1);
    nn_history_free(hist);
    float tl, ta, vl, va;
    if (nn_model_evaluate(m, d->x_train, d->y_train, 256, &tl, &ta) != NN_OK ||
        nn_model_evaluate(m, d->x_test, d->y_test, 256, &vl, &va) != NN_OK)
        die("evaluate");
    printf("%s: training error %.4f during the last epoch, %.4f evaluated "
           "after it; test error %.4f; %.1f s\n",
           name, last, 1 - ta, 1 - va, secs);
    /* the verdicts only: the gradient table is long for 56 layers */
    if (nn_model_grad_report(m, &g) != NN_OK) die("gradient report");
    nn_grad_report_health(g, 0, &h, &why);
    printf("gradients at the last step: %s - %s\n", health_name(h), why);
    nn_grad_report_health(g, 1, &h, &why);
    printf("gradient window: %s\n", why);
    nn_grad_report_free(g);
    if (f->summary)
        fprintf(f->summary, "%s,%d,%lld,%.6g,%.6g,%.6g,%.2f\n", name, 6 * n + 2,
                (long long)nn_model_num_params(m), last, 1 - ta, 1 - va,
                secs);
    fflush(NULL);
    nn_model_free(m);
}

static void close_csv(FILE *f, const char *dir)
{
    if (f && fclose(f) != 0) {
        fprintf(stderr, "error: writing into %s: %s\n", dir, strerror(errno));
        exit(1);
    }
}

int main(int argc, char **argv)
{
    args a = parse(argc, argv);
    dataset d;
    load_training_data(&d, &a.t);
    if (a.out && mkdir(a.out, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "error: cannot create %s: %s\n", a.out,
                strerror(errno));
        return 1;
    }
    printf("%s: %lld training images, %lld test images; %d epoch%s of batch "
           "%d, SGD lr %g momentum 0.9\n",
           d.name, (long long)nn_tensor_dim(d.x_train, 0),
           (long long)nn_tensor_dim(d.x_test, 0), a.t.epochs,
           a.t.epochs == 1 ? "" : "s", a.t.batch_size, (double)a.lr);
    files f = {NULL, NULL, NULL, NULL};
    if (a.out) f = (files){
        open_csv(a.out, "curves.csv",
                 "model,step,epoch,loss,train_error,grad_norm,health"),
        open_csv(a.out, "epochs.csv",
                 "model,epoch,loss,train_error,grad_norm,grad_norm_max,"
                 "health,seconds"),
        open_csv(a.out, "profiles.csv",
                 "model,phase,step,depth,layer,type,grad_norm,weight_norm,"
                 "update_ratio"),
        open_csv(a.out, "summary.csv",
                 "model,layers,params,final_train_error,train_error_eval,"
                 "test_error,seconds"),
    };
    char list[256];
    snprintf(list, sizeof list, "%s", a.models);
    for (char *save = NULL, *name = strtok_r(list, ",", &save); name;
         name = strtok_r(NULL, ",", &save))
        train_one(&a, &d, name, &f);
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

/* Q5, the U-Net with a MobileNetV2 encoder: its options, data, model,
 * training and outputs, shared by segment_unet (one process) and mpi_fit
 * --model unet (several, data-parallel over MPI). A program parses with
 * seg_parse() and runs the whole recipe with seg_run(); mpi_fit passes
 * seg_hooks to join the processes. Guide: docs/segmentation.md. */
#ifndef NN_EXAMPLES_SEGMENT_H
#define NN_EXAMPLES_SEGMENT_H

#include "common.h"

#include <sys/stat.h>

#define SEG_SIZE 128 /* the tutorial's input */
/* The synthetic test images are made and evaluated this many at a time,
 * so that memory does not grow with --test. */
#define SEG_TEST_CHUNK 480
/* The default --test-seed. The test images do not depend on --seed: the
 * spread of the seeds' figures is then the spread of training alone. */
#define SEG_TEST_SEED 1000000ull

typedef struct seg_args {
    const char *manifest, *weights, *loss, *save, *save_encoder, *overlays,
        *history;
    const char *flavor, *filters;
    int fresh, freeze, classes, epochs, batch, train, val, test, threads;
    int head;
    float alpha, lr, defect_fraction, pos_weight;
    unsigned long long seed, test_seed;
    const char *program; /* for messages: "segment_unet" */
} seg_args;

/* segment_unet's command line (--help lists the defaults;
 * docs/segmentation.md says why they are); extra: one more option row
 * (mpi_fit's --model), or NULL. */
static inline seg_args seg_parse(int argc, char **argv, const ex_program *prog,
                                 const ex_option *extra)
{
    seg_args a = {NULL, NULL, "bce+iou", NULL, NULL, NULL, NULL,
                  "torchvision", "128,64,32,16", 1, 0, 1, 150, 8, 320, 48,
                  4800, 0, 0, 0.35f, 0.006f, 1.0f, 1.0f, 1, SEG_TEST_SEED,
                  prog->name};
    ex_option opts[] = {
        EX_STRING("manifest", &a.manifest, "FILE",
                  "train on the images and masks of a manifest CSV "
                  "(docs/data.md)",
                  "synthetic surface defects"),
        EX_STRING("weights", &a.weights, "FILE",
                  "encoder weights (safetensors, libnn names, e.g. from "
                  "--save-encoder); the encoder is then frozen",
                  "the encoder trains from scratch"),
        EX_STRING("filters", &a.filters, "F1,F2,F3,F4",
                  "the decoder's filters, deepest first (the tutorial's: "
                  "512,256,128,64)",
                  "128,64,32,16"),
        EX_INT("head", &a.head, 0, 4096, "N",
               "N > 0: a full-resolution head of N filters that also sees "
               "the input; 0: the tutorial's last Conv2DTranspose"),
        EX_INT("fresh", &a.fresh, 0, 1, "0|1",
               "1: new synthetic training images every epoch"),
        EX_INT("freeze-encoder", &a.freeze, 0, 1, "0|1",
               "1: freeze the encoder even without --weights (for the "
               "tutorial's summary)"),
        EX_INT("classes", &a.classes, 1, 255, "N",
               "output channels: 1 (binary masks, BCE) or the classes "
               "(sparse CE)"),
        EX_STRING("loss", &a.loss, "bce|iou|bce+iou",
                  "the loss (the cross-entropy is sparse categorical with "
                  "several classes)",
                  "bce+iou"),
        EX_FLOAT_ABOVE("alpha", &a.alpha, 0, 4, "A",
                       "MobileNetV2 width multiplier"),
        EX_STRING("flavor", &a.flavor, "keras|torchvision",
                  "MobileNetV2 flavour (docs/zoo.md); torchvision's BN "
                  "momentum suits training from scratch",
                  "torchvision"),
        EX_OPT_EPOCHS(&a.epochs),
        EX_OPT_BATCH_SIZE(&a.batch),
        EX_FLOAT_ABOVE("lr", &a.lr, 0, 10, "LR", "Adam's learning rate"),
        EX_FLOAT("pos-weight", &a.pos_weight, 0, 1000, "W",
                 "weight of the defect pixels in binary cross-entropy "
                 "(BCEWithLogitsLoss' pos_weight)"),
        EX_OPT_SEED(&a.seed),
        EX_INT("train", &a.train, 1, 1000000, "N",
               "synthetic training images"),
        EX_FLOAT("defect-fraction", &a.defect_fraction, 0, 1, "F",
                 "share of the synthetic training images with a defect"),
        EX_INT("val", &a.val, 0, 1000000, "N",
               "synthetic validation images (0: no validation)"),
        EX_INT("test", &a.test, 1, 1000000, "N",
               "synthetic held-out test images (made and evaluated 480 at "
               "a time)"),
        EX_SEED("test-seed", &a.test_seed,
                "seed of the synthetic test images, the same for every "
                "--seed"),
        EX_OPT_THREADS(&a.threads),
        EX_OUTPUT("save", &a.save, "FILE", "save the trained model (.nnm)",
                  "not saved"),
        EX_OUTPUT("save-encoder", &a.save_encoder, "FILE",
                  "save the encoder's weights (safetensors) for --weights",
                  "not saved"),
        EX_OUTPUT("overlays", &a.overlays, "DIR",
                  "write input | true mask | predicted mask PNGs of 6 test "
                  "images into DIR (created)",
                  "not written"),
        EX_OPT_HISTORY(&a.history),
        {0},
    };
    int n = EX_COUNT(opts) - 1;
    if (extra) opts[n++] = *extra;
    ex_parse(argc, argv, prog, opts, n);
    int f[4];
    char tail;
    if (sscanf(a.filters, "%d,%d,%d,%d%c", &f[0], &f[1], &f[2], &f[3],
               &tail) != 4 ||
        f[0] < 1 || f[1] < 1 || f[2] < 1 || f[3] < 1 || f[0] > 4096 ||
        f[1] > 4096 || f[2] > 4096 || f[3] > 4096)
        ex_usage_error(prog,
                       "invalid --filters '%s': expected four counts in "
                       "[1, 4096], e.g. 512,256,128,64",
                       a.filters);
    if (strcmp(a.flavor, "keras") && strcmp(a.flavor, "torchvision"))
        ex_usage_error(prog,
                       "invalid --flavor '%s': expected keras or torchvision",
                       a.flavor);
    if (strcmp(a.loss, "bce") && strcmp(a.loss, "iou") &&
        strcmp(a.loss, "bce+iou"))
        ex_usage_error(prog,
                       "invalid --loss '%s': expected bce, iou or bce+iou",
                       a.loss);
    return a;
}

/* ---------------- data ---------------- */

typedef struct seg_split {
    nn_tensor *x, *y;
    nn_tensor *kinds; /* each image's nn_defect_kind (synthetic test) */
} seg_split;

/* Rows idx[0..n) of t, copied. */
static inline nn_tensor *seg_gather(const nn_tensor *t, const int64_t *idx,
                                    int64_t n)
{
    int64_t shape[NN_MAX_RANK];
    int rank = nn_tensor_rank(t);
    nn_tensor_shape(t, shape, NN_MAX_RANK);
    size_t per = (size_t)(nn_tensor_size(t) / shape[0]);
    shape[0] = n;
    nn_tensor *r = nn_tensor_create(rank, shape);
    if (!r) die("copying images");
    for (int64_t j = 0; j < n; j++)
        memcpy(nn_tensor_data(r) + (size_t)j * per,
               nn_tensor_data_const(t) + (size_t)idx[j] * per,
               per * sizeof(float));
    return r;
}

/* Rows [start, start + n) of t, copied. */
static inline nn_tensor *seg_rows(const nn_tensor *t, int64_t start,
                                  int64_t n)
{
    int64_t *idx = malloc((size_t)(n ? n : 1) * sizeof *idx);
    if (!idx) die("splitting the data");
    for (int64_t j = 0; j < n; j++) idx[j] = start + j;
    nn_tensor *r = seg_gather(t, idx, n);
    free(idx);
    return r;
}

/* Splits rows of (x, y): the first n_train, the next n_val, the rest. */
static inline void seg_split_rows(nn_tensor *x, nn_tensor *y,
                                  int64_t n_train, int64_t n_val,
                                  seg_split *tr, seg_split *va, seg_split *te)
{
    int64_t n = nn_tensor_dim(x, 0), n_test = n - n_train - n_val;
    tr->x = seg_rows(x, 0, n_train);
    tr->y = seg_rows(y, 0, n_train);
    tr->kinds = NULL;
    va->kinds = te->kinds = NULL;
    va->x = n_val ? seg_rows(x, n_train, n_val) : NULL;
    va->y = n_val ? seg_rows(y, n_train, n_val) : NULL;
    te->x = seg_rows(x, n_train + n_val, n_test);
    te->y = seg_rows(y, n_train + n_val, n_test);
    nn_tensor_free(x);
    nn_tensor_free(y);
}

/* The manifest's rows in order: the last 15% test, the 15% before them
 * validation, the rest training. */
static inline void seg_load_manifest(const seg_args *a, seg_split *tr,
                                     seg_split *va, seg_split *te)
{
    nn_tensor *x, *y;
    nn_image_opts o = NN_IMAGE_OPTS_INIT;
    o.height = o.width = SEG_SIZE;
    o.num_classes = a->classes < 2 ? 2 : a->classes;
    if (nn_seg_load_manifest(a->manifest, 3, &o, &x, &y) != NN_OK)
        die(a->manifest);
    int64_t n = nn_tensor_dim(x, 0), n_held = n * 15 / 100;
    if (n_held < 1 || n - 2 * n_held < 1) {
        fprintf(stderr, "%s: %s: %lld rows are too few; give at least 7\n",
                a->program, a->manifest, (long long)n);
        exit(1);
    }
    printf("Data: %s, %lld images resized to %dx%d: %lld training, %lld "
           "validation, %lld test\n", a->manifest, (long long)n, SEG_SIZE,
           SEG_SIZE, (long long)(n - 2 * n_held), (long long)n_held,
           (long long)n_held);
    seg_split_rows(x, y, n - 2 * n_held, n_held, tr, va, te);
}

/* Synthetic defects: training images come from even seeds, held-out ones
 * from odd seeds, so no image is in both; --defect-fraction applies to the
 * training images only, the held-out ones have a defect in half of them. */
static inline void seg_training_images(const seg_args *a,
                                       unsigned long long seed, seg_split *tr)
{
    nn_tensor *labels;
    nn_defects_opts o = NN_DEFECTS_OPTS_INIT;
    o.count = a->train;
    o.seed = seed;
    o.defect_fraction = a->defect_fraction;
    if (nn_synthetic_defects(&o, &tr->x, &tr->y, &labels) != NN_OK)
        die("synthetic defects");
    nn_tensor_free(labels);
}

/* Chunk j of the synthetic test images (up to SEG_TEST_CHUNK of them),
 * from the odd seed 2 (test_seed + j) + 1. */
static inline void seg_test_chunk(const seg_args *a, int j, seg_split *te)
{
    nn_defects_opts h = NN_DEFECTS_OPTS_INIT;
    int left = a->test - j * SEG_TEST_CHUNK;
    h.count = left < SEG_TEST_CHUNK ? left : SEG_TEST_CHUNK;
    h.seed = 2 * (a->test_seed + (unsigned)j) + 1;
    if (nn_synthetic_defects(&h, &te->x, &te->y, &te->kinds) != NN_OK)
        die("synthetic test images");
}

/* The training and validation images; the test images are made when the
 * model is tested (seg_test), a chunk at a time. */
static inline void seg_make_synthetic(const seg_args *a, seg_split *tr,
                                      seg_split *va, seg_split *te)
{
    seg_training_images(a, 2 * a->seed, tr);
    *va = *te = (seg_split){NULL, NULL, NULL};
    if (a->val) {
        nn_tensor *labels;
        nn_defects_opts h = NN_DEFECTS_OPTS_INIT;
        h.count = a->val;
        h.seed = 2 * a->seed + 1;
        if (nn_synthetic_defects(&h, &va->x, &va->y, &labels) != NN_OK)
            die("synthetic validation images");
        nn_tensor_free(labels);
    }
    printf("Data: synthetic surface defects, %dx%d: %d training images "
           "(%s, %.0f%% with a defect), %d validation (seed %llu) and %d "
           "test (seeds from %llu, the same for every --seed), half of "
           "them with a defect\n", SEG_SIZE, SEG_SIZE, a->train,
           a->fresh ? "new ones every epoch" : "the same every epoch",
           100.0 * a->defect_fraction, a->val, 2 * a->seed + 1, a->test,
           2 * a->test_seed + 1);
}

/* ---------------- model ---------------- */

static const char *const seg_skips[5] = {
    "block_1_expand_relu",  /* 64x64 */
    "block_3_expand_relu",  /* 32x32 */
    "block_6_expand_relu",  /* 16x16 */
    "block_13_expand_relu", /* 8x8 */
    "block_16_project"};    /* 4x4 */
/* The tutorial's last Conv2DTranspose brings 64x64 features to 128x128
 * in one step, and nothing at full resolution sees the input again: the
 * edges of a stain and a scratch one or two pixels wide are then drawn at
 * half resolution. This head gives that Conv2DTranspose `head` filters
 * (BatchNorm, ReLU), concatenates the input, and adds a 3x3 convolution
 * (BatchNorm, ReLU) and a 1x1 one to the classes' logits. */
static inline void seg_full_res_head(nn_model *m, const seg_args *a)
{
    nn_batchnorm_opts bn = NN_BATCHNORM_OPTS_INIT;
    bn.momentum = 0.9f;
    nn_layer *x = nn_relu(m, nn_batchnorm(m, nn_model_output(m), &bn), NULL);
    nn_layer *both[2] = {x, nn_model_input(m)};
    x = nn_concatenate(m, 2, both, NULL);
    nn_conv2d_opts c = NN_CONV2D_OPTS_INIT;
    c.padding = NN_PADDING_SAME;
    c.use_bias = 0;
    x = nn_relu(m, nn_batchnorm(m, nn_conv2d(m, x, a->head, 3, 3, &c), &bn),
                NULL);
    x = nn_conv2d(m, x, a->classes, 1, 1, NULL);
    if (!x || nn_model_set_output(m, x) != NN_OK) die("full-resolution head");
}

static inline nn_model *seg_build(const seg_args *a, nn_model **encoder)
{
    nn_mobilenet_v2_opts mo = NN_MOBILENET_V2_OPTS_INIT;
    mo.include_top = 0;
    mo.alpha = a->alpha;
    mo.flavor = strcmp(a->flavor, "keras") ? NN_MOBILENET_TORCHVISION
                                           : NN_MOBILENET_KERAS;
    nn_model *enc = nn_mobilenet_v2(SEG_SIZE, SEG_SIZE, 3, a->seed, &mo);
    if (!enc) die("MobileNetV2");
    if (a->weights) {
        if (nn_model_load_safetensors(enc, a->weights, NN_WEIGHTS_LIBNN) !=
            NN_OK)
            die(a->weights);
        printf("Encoder: weights from %s, frozen\n", a->weights);
    } else if (a->freeze) {
        printf("Encoder: random weights, frozen (--freeze-encoder without "
               "--weights: only the decoder learns, on random features)\n");
    } else {
        printf("Encoder: trains from scratch (no --weights: a frozen random "
               "encoder would be pointless)\n");
    }
    nn_unet_opts uo = NN_UNET_OPTS_INIT;
    uo.freeze_encoder = a->weights || a->freeze;
    /* PyTorch's BN momentum: with Keras' 0.99 the moving statistics that
     * inference uses trail a short training by a few hundred steps */
    uo.bn_momentum = 0.9;
    int filters[4];
    sscanf(a->filters, "%d,%d,%d,%d", &filters[0], &filters[1], &filters[2],
           &filters[3]); /* checked by parse() */
    nn_model *m = nn_unet(enc, 5, seg_skips, 4, filters,
                          a->head ? a->head : a->classes, a->seed + 1, &uo);
    if (!m) die("U-Net");
    if (a->head) seg_full_res_head(m, a);
    *encoder = enc;
    return m;
}

/* The output's bias starts at the logit of the share of defect pixels in
 * the training masks (one channel), as detectors initialise theirs for a
 * rare class: the first steps then do not spend themselves pushing every
 * pixel towards "no defect". */
static inline void seg_prior_bias(nn_model *m, const seg_args *a,
                                  const nn_tensor *masks)
{
    if (a->classes != 1) return;
    double pos = 0;
    const float *y = nn_tensor_data_const(masks);
    for (int64_t i = 0; i < nn_tensor_size(masks); i++) pos += y[i] > 0.5f;
    double share = (pos + 1) / ((double)nn_tensor_size(masks) + 2);
    nn_tensor *bias = nn_layer_weight(nn_model_output(m), 1);
    if (!bias) die("output bias");
    nn_tensor_data(bias)[0] = (float)log(share / (1 - share));
    printf("Output bias: %.2f, the logit of the training masks' %.2f%% "
           "defect pixels\n", log(share / (1 - share)), 100 * share);
}

static inline nn_optimizer *seg_compile(nn_model *m, const seg_args *a)
{
    nn_adam_opts ao = NN_ADAM_OPTS_INIT;
    ao.learning_rate = (float)a->lr;
    nn_loss_opts lo = NN_LOSS_OPTS_INIT;
    lo.from_logits = 1;
    lo.sparse_labels = a->classes > 1;
    lo.pos_weight = a->pos_weight;
    nn_loss ce = a->classes > 1 ? NN_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY
                                : NN_LOSS_BINARY_CROSSENTROPY;
    nn_loss losses[2];
    float weights[2] = {1.0f, 1.0f};
    int n = 0;
    if (strcmp(a->loss, "iou")) losses[n++] = ce;
    if (strcmp(a->loss, "bce")) losses[n++] = NN_LOSS_IOU;
    nn_optimizer *opt = nn_adam(&ao);
    if (!opt || nn_model_compile_weighted(m, opt, n, losses, weights, &lo) !=
                    NN_OK)
        die("compile");
    printf("Loss: %s%s, Adam (learning rate %g, cosine decay over the "
           "epochs)\n", a->loss,
           a->classes > 1 && strcmp(a->loss, "iou")
               ? " (the cross-entropy is sparse categorical: several classes)"
               : "",
           (double)a->lr);
    return opt; /* owned by the model */
}

/* ---------------- training ---------------- */

typedef struct seg_progress_state {
    int epoch, epochs;
} seg_progress_state;

/* A bar on a terminal, then one line per epoch with loss and IoU. */
static inline int seg_progress(const nn_progress *p, void *user)
{
    const seg_progress_state *s = user;
    int tty = isatty(STDOUT_FILENO);
    if (p->event == NN_PROGRESS_BATCH_END) {
        if (!tty) return 0;
        int width = 30, done = p->batch * width / p->batches;
        printf("\rEpoch %d/%d [", s->epoch + 1, s->epochs);
        for (int i = 0; i < width; i++) putchar(i < done ? '=' : '.');
        printf("] %d/%d  %5.1f img/s  loss %.4f  iou %.4f ", p->batch,
               p->batches, p->images_per_s, p->loss, p->iou);
        fflush(stdout);
        return 0;
    }
    if (tty) printf("\n");
    printf("Epoch %d/%d - %.1fs - %.1f img/s - loss: %.4f - iou: %.4f",
           s->epoch + 1, s->epochs, p->elapsed_s, p->images_per_s, p->loss,
           p->iou);
    if (!isnan(p->val_loss))
        printf(" - val_loss: %.4f - val_iou: %.4f", p->val_loss, p->val_iou);
    printf("\n");
    fflush(stdout);
    return 0;
}

/* The metrics of every epoch, for --history. */
enum { SEG_COLS = 6 };
static const nn_metric seg_columns[SEG_COLS] = {
    NN_METRIC_LOSS, NN_METRIC_IOU, NN_METRIC_VAL_LOSS, NN_METRIC_VAL_IOU,
    NN_METRIC_MEAN_IOU, NN_METRIC_EPOCH_SECONDS};

static inline void seg_write_history(const seg_args *a, const float *h)
{
    const char *path = a->history;
    int epochs = a->epochs;
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "%s: cannot write %s: %s\n", a->program, path,
                strerror(errno));
        exit(1);
    }
    fprintf(f, "epoch,loss,iou,val_loss,val_iou,mean_iou,seconds\n");
    for (int e = 0; e < epochs; e++) {
        fprintf(f, "%d", e + 1);
        for (int c = 0; c < SEG_COLS; c++)
            fprintf(f, ",%.6g", h[e * SEG_COLS + c]);
        fprintf(f, "\n");
    }
    if (fclose(f) != 0) {
        fprintf(stderr, "%s: writing %s failed\n", a->program, path);
        exit(1);
    }
    printf("History written to %s\n", path);
}

/* What a data-parallel program (mpi_fit --model unet) adds to seg_run;
 * each member may be NULL or 0. Every process runs the same recipe on
 * the same data: the synthetic images come from the same seeds on every
 * process (and so does each epoch's flip), and fit takes each process's
 * shard of every batch. */
typedef struct seg_hooks {
    /* after compiling, before the first step (the initial broadcast) */
    void (*start)(nn_model *m, void *user);
    /* each epoch's fit options, before the call (the sharding) */
    void (*fit_opts)(nn_fit_opts *fit, void *user);
    /* after training and the test evaluation, before any file is
     * written; the last call made with the model still training */
    void (*finish)(nn_model *m, void *user);
    void *user;
    int no_files; /* 1: write no file (every rank but 0) */
} seg_hooks;

/* One fit call per epoch, so that every epoch sees its own paired flip
 * of the training images and masks. */
static inline void seg_train(nn_model *m, nn_optimizer *opt,
                             const seg_args *a, seg_split *tr,
                             const seg_split *va, const seg_hooks *hk)
{
    seg_progress_state ps = {0, a->epochs};
    float *hist = calloc((size_t)(a->epochs ? a->epochs : 1) * SEG_COLS,
                         sizeof *hist);
    if (!hist) die("history");
    for (ps.epoch = 0; ps.epoch < a->epochs; ps.epoch++) {
        /* cosine decay: small steps at the end also let the moving
         * statistics of the normalizations settle on the final weights */
        double lr = 0.5 * a->lr * (1 + cos(M_PI * ps.epoch / a->epochs));
        if (nn_optimizer_set_learning_rate(opt, (float)lr) != NN_OK)
            die("learning rate");
        if (a->fresh && !a->manifest && ps.epoch > 0) {
            nn_tensor_free(tr->x);
            nn_tensor_free(tr->y);
            seg_training_images(a, 2 * a->seed + 2 * (unsigned)ps.epoch, tr);
        }
        if (nn_seg_random_flip(tr->x, tr->y, NN_FLIP_HORIZONTAL,
                               a->seed * 1000003ull + (unsigned)ps.epoch) !=
            NN_OK)
            die("flip");
        nn_fit_opts fit = NN_FIT_OPTS_INIT;
        fit.epochs = 1;
        fit.batch_size = a->batch;
        fit.val_x = va->x;
        fit.val_y = va->y;
        fit.progress = seg_progress;
        fit.user = &ps;
        fit.segmentation_metrics = 1;
        if (hk->fit_opts) hk->fit_opts(&fit, hk->user);
        nn_history *h = NULL;
        if (nn_model_fit(m, tr->x, tr->y, &fit, &h) != NN_OK) die("fit");
        for (int c = 0; c < SEG_COLS; c++)
            hist[ps.epoch * SEG_COLS + c] =
                nn_history_get(h, seg_columns[c], 0);
        nn_history_free(h);
    }
    if (a->history && !hk->no_files)
        seg_write_history(a, hist);
    free(hist);
}

/* ---------------- evaluation and pictures ---------------- */

/* The test images of one defect kind, copied: x and y, or NULLs when
 * none has it. */
static inline int64_t seg_rows_of_kind(const seg_split *te, int kind,
                                       nn_tensor **x, nn_tensor **y)
{
    const float *k = nn_tensor_data_const(te->kinds);
    int64_t n = nn_tensor_dim(te->x, 0), count = 0;
    int64_t *idx = malloc((size_t)n * sizeof *idx);
    if (!idx) die("test images by kind");
    for (int64_t i = 0; i < n; i++)
        if ((int)k[i] == kind) idx[count++] = i;
    *x = count ? seg_gather(te->x, idx, count) : NULL;
    *y = count ? seg_gather(te->y, idx, count) : NULL;
    free(idx);
    return count;
}

/* The test figures, added up over the chunks of test images: the whole
 * set and, for synthetic images, each defect kind (its own images'
 * pixels only: which kinds the model misses). */
typedef struct seg_tally {
    nn_confusion *all, *kind[NN_DEFECT_KINDS];
    int64_t images, kind_images[NN_DEFECT_KINDS];
    double loss_sum; /* mean loss of each chunk times its images */
} seg_tally;

static inline seg_tally seg_tally_create(const seg_args *a)
{
    int classes = a->classes < 2 ? 2 : a->classes;
    seg_tally t = {nn_confusion_create(classes), {NULL}, 0, {0}, 0.0};
    if (!t.all) die("confusion matrix");
    for (int k = 0; k < NN_DEFECT_KINDS; k++)
        if (!(t.kind[k] = nn_confusion_create(classes))) die("confusion matrix");
    return t;
}

static inline void seg_tally_add(nn_model *m, seg_tally *t,
                                 const seg_split *te)
{
    float loss;
    if (nn_model_evaluate_confusion(m, te->x, te->y, 16, t->all, &loss) !=
        NN_OK)
        die("evaluate");
    int64_t n = nn_tensor_dim(te->x, 0);
    t->images += n;
    t->loss_sum += (double)loss * (double)n;
    for (int k = 0; te->kinds && k < NN_DEFECT_KINDS; k++) {
        nn_tensor *x, *y;
        int64_t count = seg_rows_of_kind(te, k, &x, &y);
        if (!count) continue;
        if (nn_model_evaluate_confusion(m, x, y, 16, t->kind[k], NULL) !=
            NN_OK)
            die("evaluate by kind");
        t->kind_images[k] += count;
        nn_tensor_free(x);
        nn_tensor_free(y);
    }
}

static inline void seg_print_kind(const seg_tally *t, int k)
{
    const nn_confusion *cm = t->kind[k];
    int64_t truth = 0, fp = 0;
    for (int c = 1; c < nn_confusion_classes(cm); c++) {
        for (int p = 0; p < nn_confusion_classes(cm); p++)
            truth += nn_confusion_count(cm, c, p);
        fp += nn_confusion_count(cm, 0, c);
    }
    long long count = (long long)t->kind_images[k];
    if (k == NN_DEFECT_NONE)
        printf("  %-8s %4lld images: %lld pixels called defects (%.1f per "
               "image)\n", nn_defect_name(k), count, (long long)fp,
               (double)fp / (double)count);
    else
        printf("  %-8s %4lld images, %7lld defect pixels: IoU %.4f - "
               "precision %.4f, recall %.4f\n", nn_defect_name(k), count,
               (long long)truth, nn_confusion_iou(cm, 1),
               nn_confusion_precision(cm, 1), nn_confusion_recall(cm, 1));
}

/* Prints the figures; returns the IoU of the defect class. */
static inline double seg_tally_print(const seg_tally *t)
{
    const nn_confusion *cm = t->all;
    double iou = nn_confusion_iou(cm, 1);
    printf("Test (%lld held-out images): loss %.4f - IoU of the defect "
           "class %.4f - mean IoU %.4f - pixel accuracy %.4f - defect "
           "precision %.4f, recall %.4f\n",
           (long long)t->images, t->loss_sum / (double)t->images, iou,
           nn_confusion_mean_iou(cm, 0), nn_confusion_pixel_accuracy(cm),
           nn_confusion_precision(cm, 1), nn_confusion_recall(cm, 1));
    int any = 0;
    for (int k = 0; k < NN_DEFECT_KINDS; k++) any |= t->kind_images[k] > 0;
    if (any) printf("By defect kind (test images):\n");
    for (int kind = 1; any && kind <= NN_DEFECT_KINDS; kind++) {
        int k = kind % NN_DEFECT_KINDS; /* "none" last */
        if (t->kind_images[k]) seg_print_kind(t, k);
    }
    return iou;
}

static inline void seg_tally_free(seg_tally *t)
{
    nn_confusion_free(t->all);
    for (int k = 0; k < NN_DEFECT_KINDS; k++) nn_confusion_free(t->kind[k]);
}

/* Whether pixel p of a model output (logits) is predicted as a defect:
 * logit > 0 (probability > 0.5) for one channel, else argmax != 0. */
static inline int seg_predicted(const float *out, int p, int classes)
{
    if (classes == 1) return out[p] > 0.0f;
    int best = 0;
    for (int k = 1; k < classes; k++)
        if (out[p * classes + k] > out[p * classes + best]) best = k;
    return best != 0;
}

/* Panel `panel` of an overlay row: the image, tinted with c where on. */
static inline void seg_panel(float *pic, int panel, const float *img, int p,
                             int on, const float c[3])
{
    int r = p / SEG_SIZE, col = p % SEG_SIZE;
    float *d = pic + ((size_t)r * 3 * SEG_SIZE + (size_t)panel * SEG_SIZE +
                      col) * 3;
    for (int ch = 0; ch < 3; ch++)
        d[ch] = on ? 0.4f * img[p * 3 + ch] + 0.6f * c[ch] : img[p * 3 + ch];
}

/* Indices of up to `count` test images, those with a defect first (they
 * show more), in order. */
static inline int seg_pick_overlays(const seg_split *te, int count,
                                    int64_t *idx)
{
    int64_t n = nn_tensor_dim(te->x, 0), px = SEG_SIZE * SEG_SIZE;
    const float *y = nn_tensor_data_const(te->y);
    int k = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int64_t i = 0; i < n && k < count; i++) {
            int any = 0;
            for (int64_t p = 0; p < px && !any; p++) any = y[i * px + p] > 0.5f;
            if (any == !pass) idx[k++] = i;
        }
    return k;
}

/* DIR/overlay_K.png for each image of ov (seg_test picks them): the
 * input, the true mask (green) and the predicted mask (red), side by
 * side. */
static inline void seg_write_overlays(nn_model *m, const seg_args *a,
                                      const seg_split *ov)
{
    if (mkdir(a->overlays, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "%s: cannot create %s: %s\n", a->program,
                a->overlays, strerror(errno));
        exit(1);
    }
    int count = (int)nn_tensor_dim(ov->x, 0);
    int64_t xs[4] = {1, SEG_SIZE, SEG_SIZE, 3},
            os[4] = {1, SEG_SIZE, SEG_SIZE, a->classes};
    int64_t ps[3] = {SEG_SIZE, 3 * SEG_SIZE, 3};
    nn_tensor *x = nn_tensor_create(4, xs), *out = nn_tensor_create(4, os),
              *pic = nn_tensor_create(3, ps);
    if (!x || !out || !pic) die("overlays");
    static const float none[3] = {0, 0, 0}, green[3] = {0.1f, 0.9f, 0.1f},
                       red[3] = {1.0f, 0.1f, 0.1f};
    size_t px = SEG_SIZE * SEG_SIZE;
    for (int k = 0; k < count; k++) {
        const float *img = nn_tensor_data_const(ov->x) + k * px * 3;
        const float *truth = nn_tensor_data_const(ov->y) + k * px;
        memcpy(nn_tensor_data(x), img, px * 3 * sizeof(float));
        if (nn_model_predict(m, x, out, 1) != NN_OK) die("predict");
        const float *pred = nn_tensor_data_const(out);
        float *d = nn_tensor_data(pic);
        for (int p = 0; p < (int)px; p++) {
            seg_panel(d, 0, img, p, 0, none);
            seg_panel(d, 1, img, p, truth[p] > 0.5f, green);
            seg_panel(d, 2, img, p, seg_predicted(pred, p, a->classes), red);
        }
        char path[1024];
        snprintf(path, sizeof path, "%s/overlay_%d.png", a->overlays, k);
        if (nn_image_save_png(path, pic, 0) != NN_OK) die(path);
    }
    printf("Overlays (input | true mask, green | prediction, red) of %d test "
           "images, those with a defect first, written to %s/\n", count,
           a->overlays);
    nn_tensor_free(x);
    nn_tensor_free(out);
    nn_tensor_free(pic);
}

#define SEG_OVERLAYS 6

/* Tests the model on the held-out images: the manifest's test rows, or
 * the synthetic test images a chunk at a time. With --overlays, ov gets a
 * copy of the first chunk's SEG_OVERLAYS images to draw. Returns the IoU
 * of the defect class. */
static inline double seg_test(nn_model *m, const seg_args *a,
                              const seg_split *te, seg_split *ov)
{
    seg_tally t = seg_tally_create(a);
    int chunks = a->manifest ? 1
                             : (a->test + SEG_TEST_CHUNK - 1) / SEG_TEST_CHUNK;
    for (int j = 0; j < chunks; j++) {
        seg_split c = *te;
        if (!a->manifest) seg_test_chunk(a, j, &c);
        seg_tally_add(m, &t, &c);
        if (j == 0 && a->overlays) {
            int64_t idx[SEG_OVERLAYS];
            int n = seg_pick_overlays(&c, SEG_OVERLAYS, idx);
            ov->x = seg_gather(c.x, idx, n);
            ov->y = seg_gather(c.y, idx, n);
        }
        if (!a->manifest) {
            nn_tensor_free(c.x);
            nn_tensor_free(c.y);
            nn_tensor_free(c.kinds);
        }
    }
    double iou = seg_tally_print(&t);
    seg_tally_free(&t);
    return iou;
}

/* The whole recipe: data, model, training, test evaluation and the files
 * asked for; hooks may be NULL (one process). */
static inline int seg_run(const seg_args *args, const seg_hooks *hooks)
{
    static const seg_hooks none = {NULL, NULL, NULL, NULL, 0};
    const seg_hooks *hk = hooks ? hooks : &none;
    seg_args a = *args;
    double t0 = seconds_now();
    if (a.threads && nn_set_num_threads(a.threads) != NN_OK) die("threads");
    printf("libnn %s - Q5 U-Net with a MobileNetV2 encoder (%s flavour, "
           "alpha %.2f), %d thread(s), seed %llu\n",
           nn_version(), a.flavor, a.alpha, nn_get_num_threads(), a.seed);
    seg_split tr, va, te;
    if (a.manifest)
        seg_load_manifest(&a, &tr, &va, &te);
    else
        seg_make_synthetic(&a, &tr, &va, &te);
    nn_model *enc;
    nn_model *m = seg_build(&a, &enc);
    print_summary(m);
    seg_prior_bias(m, &a, tr.y);
    nn_optimizer *opt = seg_compile(m, &a);
    if (hk->start) hk->start(m, hk->user);
    seg_train(m, opt, &a, &tr, &va, hk);
    seg_split ov = {NULL, NULL, NULL};
    seg_test(m, &a, &te, &ov);
    if (hk->finish) hk->finish(m, hk->user);
    if (a.overlays && !hk->no_files) seg_write_overlays(m, &a, &ov);
    if (a.save && !hk->no_files) {
        if (nn_model_save(m, a.save, NN_SAVE_DEFAULT) != NN_OK) die(a.save);
        printf("Model saved to %s\n", a.save);
    }
    if (a.save_encoder && !hk->no_files) {
        if (nn_model_save_safetensors(enc, a.save_encoder) != NN_OK)
            die(a.save_encoder);
        printf("Encoder weights saved to %s (load them with --weights)\n",
               a.save_encoder);
    }
    printf("Total time: %.1f s\n", seconds_now() - t0);
    nn_model_free(m);
    nn_model_free(enc);
    nn_tensor_free(tr.x);
    nn_tensor_free(tr.y);
    nn_tensor_free(va.x);
    nn_tensor_free(va.y);
    nn_tensor_free(te.x);
    nn_tensor_free(te.y);
    nn_tensor_free(te.kinds);
    nn_tensor_free(ov.x);
    nn_tensor_free(ov.y);
    return 0;
}

#endif

/* Q5: semantic segmentation with a MobileNetV2 U-Net (the TensorFlow
 * segmentation tutorial's model), trained and predicting.
 *
 *   input 128x128x3 - MobileNetV2 encoder (one summary row, skips at
 *   64x64, 32x32, 16x16, 8x8 and 4x4) - four upsample blocks
 *   (Conv2DTranspose - BatchNorm - ReLU, each concatenated with a skip) -
 *   Conv2DTranspose(classes) to 128x128: logits per pixel
 *
 * Data: the synthetic surface defects (binary masks, made in memory) or
 * a manifest CSV (id,image_path,mask_path; see docs/data.md). Training
 * images and masks are flipped left-right together, anew every epoch.
 * Loss: binary cross-entropy + soft IoU by default (--loss), Adam.
 * Reported: per-epoch loss, IoU and validation IoU (fit's segmentation
 * metrics), then the IoU of the defect class on held-out test images.
 * Guide and measured figures: docs/segmentation.md.
 *
 *   segment_unet [--manifest FILE] [--weights FILE] [--freeze-encoder 0|1]
 *                [--classes N] [--loss bce|iou|bce+iou] [--alpha A]
 *                [--flavor keras|torchvision] [--filters F1,F2,F3,F4]
 *                [--head N]
 *                [--epochs N] [--batch-size N] [--lr LR] [--seed S]
 *                [--train N] [--val N] [--test N] [--fresh 0|1]
 *                [--defect-fraction F] [--pos-weight W] [--threads N]
 *                [--save FILE] [--save-encoder FILE] [--overlays DIR]
 *                [--history FILE.csv]
 * (--help lists the defaults; docs/segmentation.md says why they are.) */
#include "common.h"

#include <sys/stat.h>

#define SIZE 128 /* the tutorial's input */

static const ex_program PROGRAM = {
    "segment_unet",
    "Q5: a U-Net with a MobileNetV2 encoder (the TensorFlow segmentation\n"
    "tutorial's model, 128x128x3) trained with Adam on BCE + IoU and\n"
    "evaluated by the IoU of the defect class on held-out images. Data: the\n"
    "synthetic surface defects made in memory, or --manifest. Without\n"
    "--weights the encoder trains from scratch; the defaults (alpha 0.35, a\n"
    "narrower decoder, 100 epochs of 320 new images) take a few minutes\n"
    "on two cores.\n"
    "Figures and recipes: docs/segmentation.md.\n"};

typedef struct args {
    const char *manifest, *weights, *loss, *save, *save_encoder, *overlays,
        *history;
    const char *flavor, *filters;
    int fresh, freeze, classes, epochs, batch, train, val, test, threads;
    int head;
    float alpha, lr, defect_fraction, pos_weight;
    unsigned long long seed;
} args;

static args parse(int argc, char **argv)
{
    args a = {NULL, NULL, "bce+iou", NULL, NULL, NULL, NULL, "torchvision",
              "128,64,32,16", 1, 0, 1, 100, 8, 320, 48, 96, 0, 0, 0.35f,
              0.003f, 1.0f, 1.0f, 1};
    const ex_option opts[] = {
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
               "synthetic held-out test images"),
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
    };
    ex_parse(argc, argv, &PROGRAM, opts, EX_COUNT(opts));
    int f[4];
    char tail;
    if (sscanf(a.filters, "%d,%d,%d,%d%c", &f[0], &f[1], &f[2], &f[3],
               &tail) != 4 ||
        f[0] < 1 || f[1] < 1 || f[2] < 1 || f[3] < 1 || f[0] > 4096 ||
        f[1] > 4096 || f[2] > 4096 || f[3] > 4096)
        ex_usage_error(&PROGRAM,
                       "invalid --filters '%s': expected four counts in "
                       "[1, 4096], e.g. 512,256,128,64",
                       a.filters);
    if (strcmp(a.flavor, "keras") && strcmp(a.flavor, "torchvision"))
        ex_usage_error(&PROGRAM,
                       "invalid --flavor '%s': expected keras or torchvision",
                       a.flavor);
    if (strcmp(a.loss, "bce") && strcmp(a.loss, "iou") &&
        strcmp(a.loss, "bce+iou"))
        ex_usage_error(&PROGRAM,
                       "invalid --loss '%s': expected bce, iou or bce+iou",
                       a.loss);
    return a;
}

/* ---------------- data ---------------- */

typedef struct split {
    nn_tensor *x, *y;
} split;

/* Rows [start, start + n) of t, copied. */
static nn_tensor *rows(const nn_tensor *t, int64_t start, int64_t n)
{
    int64_t shape[NN_MAX_RANK];
    int rank = nn_tensor_rank(t);
    nn_tensor_shape(t, shape, NN_MAX_RANK);
    int64_t per = nn_tensor_size(t) / shape[0];
    shape[0] = n;
    nn_tensor *r = nn_tensor_create(rank, shape);
    if (!r) die("splitting the data");
    memcpy(nn_tensor_data(r), nn_tensor_data_const(t) + start * per,
           (size_t)(n * per) * sizeof(float));
    return r;
}

/* Splits rows of (x, y): the first n_train, the next n_val, the rest. */
static void split_rows(nn_tensor *x, nn_tensor *y, int64_t n_train,
                       int64_t n_val, split *tr, split *va, split *te)
{
    int64_t n = nn_tensor_dim(x, 0), n_test = n - n_train - n_val;
    if (tr) {
        tr->x = rows(x, 0, n_train);
        tr->y = rows(y, 0, n_train);
    }
    va->x = n_val ? rows(x, n_train, n_val) : NULL;
    va->y = n_val ? rows(y, n_train, n_val) : NULL;
    te->x = rows(x, n_train + n_val, n_test);
    te->y = rows(y, n_train + n_val, n_test);
    nn_tensor_free(x);
    nn_tensor_free(y);
}

/* The manifest's rows in order: the last 15% test, the 15% before them
 * validation, the rest training. */
static void load_manifest(const args *a, split *tr, split *va, split *te)
{
    nn_tensor *x, *y;
    nn_image_opts o = NN_IMAGE_OPTS_INIT;
    o.height = o.width = SIZE;
    o.num_classes = a->classes < 2 ? 2 : a->classes;
    if (nn_seg_load_manifest(a->manifest, 3, &o, &x, &y) != NN_OK)
        die(a->manifest);
    int64_t n = nn_tensor_dim(x, 0), n_held = n * 15 / 100;
    if (n_held < 1 || n - 2 * n_held < 1) {
        fprintf(stderr, "segment_unet: %s: %lld rows are too few; give at "
                "least 7\n", a->manifest, (long long)n);
        exit(1);
    }
    printf("Data: %s, %lld images resized to %dx%d: %lld training, %lld "
           "validation, %lld test\n", a->manifest, (long long)n, SIZE, SIZE,
           (long long)(n - 2 * n_held), (long long)n_held, (long long)n_held);
    split_rows(x, y, n - 2 * n_held, n_held, tr, va, te);
}

/* Synthetic defects: the training images and the held-out ones come from
 * two seeds, so no image is in both; --defect-fraction applies to the
 * training images only, the held-out ones have a defect in half of them. */
static void training_images(const args *a, unsigned long long seed,
                            split *tr)
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

static void make_synthetic(const args *a, split *tr, split *va, split *te)
{
    nn_tensor *x, *y, *labels;
    training_images(a, 2 * a->seed, tr);
    nn_defects_opts h = NN_DEFECTS_OPTS_INIT;
    h.count = a->val + a->test;
    h.seed = 2 * a->seed + 1;
    if (nn_synthetic_defects(&h, &x, &y, &labels) != NN_OK)
        die("synthetic defects");
    nn_tensor_free(labels);
    printf("Data: synthetic surface defects, %dx%d: %d training images "
           "(%s, %.0f%% with a defect), %d validation and %d test (seed "
           "%llu, 50%%)\n", SIZE, SIZE, a->train,
           a->fresh ? "new ones every epoch" : "the same every epoch",
           100.0 * a->defect_fraction, a->val, a->test,
           (unsigned long long)h.seed);
    split_rows(x, y, 0, a->val, NULL, va, te);
}

/* ---------------- model ---------------- */

static const char *const skips[5] = {
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
static void full_res_head(nn_model *m, const args *a)
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

static nn_model *build(const args *a, nn_model **encoder)
{
    nn_mobilenet_v2_opts mo = NN_MOBILENET_V2_OPTS_INIT;
    mo.include_top = 0;
    mo.alpha = a->alpha;
    mo.flavor = strcmp(a->flavor, "keras") ? NN_MOBILENET_TORCHVISION
                                           : NN_MOBILENET_KERAS;
    nn_model *enc = nn_mobilenet_v2(SIZE, SIZE, 3, a->seed, &mo);
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
    nn_model *m = nn_unet(enc, 5, skips, 4, filters,
                          a->head ? a->head : a->classes, a->seed + 1, &uo);
    if (!m) die("U-Net");
    if (a->head) full_res_head(m, a);
    *encoder = enc;
    return m;
}

/* The output's bias starts at the logit of the share of defect pixels in
 * the training masks (one channel), as detectors initialise theirs for a
 * rare class: the first steps then do not spend themselves pushing every
 * pixel towards "no defect". */
static void prior_bias(nn_model *m, const args *a, const nn_tensor *masks)
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

static nn_optimizer *compile(nn_model *m, const args *a)
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

typedef struct progress_state {
    int epoch, epochs;
} progress_state;

/* A bar on a terminal, then one line per epoch with loss and IoU. */
static int progress(const nn_progress *p, void *user)
{
    const progress_state *s = user;
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
enum { COLS = 6 };
static const nn_metric columns[COLS] = {
    NN_METRIC_LOSS, NN_METRIC_IOU, NN_METRIC_VAL_LOSS, NN_METRIC_VAL_IOU,
    NN_METRIC_MEAN_IOU, NN_METRIC_EPOCH_SECONDS};

static void write_epochs_csv(const char *path, const float *h, int epochs)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "segment_unet: cannot write %s: %s\n", path,
                strerror(errno));
        exit(1);
    }
    fprintf(f, "epoch,loss,iou,val_loss,val_iou,mean_iou,seconds\n");
    for (int e = 0; e < epochs; e++) {
        fprintf(f, "%d", e + 1);
        for (int c = 0; c < COLS; c++) fprintf(f, ",%.6g", h[e * COLS + c]);
        fprintf(f, "\n");
    }
    if (fclose(f) != 0) {
        fprintf(stderr, "segment_unet: writing %s failed\n", path);
        exit(1);
    }
    printf("History written to %s\n", path);
}

/* One fit call per epoch, so that every epoch sees its own paired flip
 * of the training images and masks. */
static void train(nn_model *m, nn_optimizer *opt, const args *a, split *tr,
                  const split *va)
{
    progress_state ps = {0, a->epochs};
    float *hist = calloc((size_t)(a->epochs ? a->epochs : 1) * COLS,
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
            training_images(a, 2 * a->seed + 2 * (unsigned)ps.epoch, tr);
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
        fit.progress = progress;
        fit.user = &ps;
        fit.segmentation_metrics = 1;
        nn_history *h = NULL;
        if (nn_model_fit(m, tr->x, tr->y, &fit, &h) != NN_OK) die("fit");
        for (int c = 0; c < COLS; c++)
            hist[ps.epoch * COLS + c] = nn_history_get(h, columns[c], 0);
        nn_history_free(h);
    }
    if (a->history) write_epochs_csv(a->history, hist, a->epochs);
    free(hist);
}

/* ---------------- evaluation and pictures ---------------- */

static double evaluate(nn_model *m, const args *a, const split *te)
{
    nn_confusion *cm = nn_confusion_create(a->classes < 2 ? 2 : a->classes);
    float loss;
    if (!cm ||
        nn_model_evaluate_confusion(m, te->x, te->y, 16, cm, &loss) != NN_OK)
        die("evaluate");
    double iou = nn_confusion_iou(cm, 1);
    printf("Test (%lld held-out images): loss %.4f - IoU of the defect "
           "class %.4f - mean IoU %.4f - pixel accuracy %.4f - defect "
           "precision %.4f, recall %.4f\n",
           (long long)nn_tensor_dim(te->x, 0), loss, iou,
           nn_confusion_mean_iou(cm, 0), nn_confusion_pixel_accuracy(cm),
           nn_confusion_precision(cm, 1), nn_confusion_recall(cm, 1));
    nn_confusion_free(cm);
    return iou;
}

/* Whether pixel p of a model output (logits) is predicted as a defect:
 * logit > 0 (probability > 0.5) for one channel, else argmax != 0. */
static int predicted(const float *out, int p, int classes)
{
    if (classes == 1) return out[p] > 0.0f;
    int best = 0;
    for (int k = 1; k < classes; k++)
        if (out[p * classes + k] > out[p * classes + best]) best = k;
    return best != 0;
}

/* Panel `panel` of an overlay row: the image, tinted with c where on. */
static void panel(float *pic, int panel, const float *img, int p, int on,
                  const float c[3])
{
    int r = p / SIZE, col = p % SIZE;
    float *d = pic + ((size_t)r * 3 * SIZE + (size_t)panel * SIZE + col) * 3;
    for (int ch = 0; ch < 3; ch++)
        d[ch] = on ? 0.4f * img[p * 3 + ch] + 0.6f * c[ch] : img[p * 3 + ch];
}

/* Indices of up to `count` test images, those with a defect first (they
 * show more), in order. */
static int pick_overlays(const split *te, int count, int64_t *idx)
{
    int64_t n = nn_tensor_dim(te->x, 0), px = SIZE * SIZE;
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

/* DIR/overlay_K.png for a few test images: the input, the true mask
 * (green) and the predicted mask (red), side by side. */
static void write_overlays(nn_model *m, const args *a, const split *te,
                           int count)
{
    if (mkdir(a->overlays, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "segment_unet: cannot create %s: %s\n", a->overlays,
                strerror(errno));
        exit(1);
    }
    int64_t idx[16];
    count = pick_overlays(te, count < 16 ? count : 16, idx);
    int64_t xs[4] = {1, SIZE, SIZE, 3}, os[4] = {1, SIZE, SIZE, a->classes};
    int64_t ps[3] = {SIZE, 3 * SIZE, 3};
    nn_tensor *x = nn_tensor_create(4, xs), *out = nn_tensor_create(4, os),
              *pic = nn_tensor_create(3, ps);
    if (!x || !out || !pic) die("overlays");
    static const float none[3] = {0, 0, 0}, green[3] = {0.1f, 0.9f, 0.1f},
                       red[3] = {1.0f, 0.1f, 0.1f};
    size_t px = SIZE * SIZE;
    for (int k = 0; k < count; k++) {
        const float *img = nn_tensor_data_const(te->x) + idx[k] * px * 3;
        const float *truth = nn_tensor_data_const(te->y) + idx[k] * px;
        memcpy(nn_tensor_data(x), img, px * 3 * sizeof(float));
        if (nn_model_predict(m, x, out, 1) != NN_OK) die("predict");
        const float *pred = nn_tensor_data_const(out);
        float *d = nn_tensor_data(pic);
        for (int p = 0; p < (int)px; p++) {
            panel(d, 0, img, p, 0, none);
            panel(d, 1, img, p, truth[p] > 0.5f, green);
            panel(d, 2, img, p, predicted(pred, p, a->classes), red);
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

int main(int argc, char **argv)
{
    args a = parse(argc, argv);
    double t0 = seconds_now();
    if (a.threads && nn_set_num_threads(a.threads) != NN_OK) die("threads");
    printf("libnn %s - Q5 U-Net with a MobileNetV2 encoder (%s flavour, "
           "alpha %.2f), %d thread(s), seed %llu\n",
           nn_version(), a.flavor, a.alpha, nn_get_num_threads(), a.seed);
    split tr, va, te;
    if (a.manifest)
        load_manifest(&a, &tr, &va, &te);
    else
        make_synthetic(&a, &tr, &va, &te);
    nn_model *enc;
    nn_model *m = build(&a, &enc);
    print_summary(m);
    prior_bias(m, &a, tr.y);
    nn_optimizer *opt = compile(m, &a);
    train(m, opt, &a, &tr, &va);
    evaluate(m, &a, &te);
    if (a.overlays) write_overlays(m, &a, &te, 6);
    if (a.save) {
        if (nn_model_save(m, a.save, NN_SAVE_DEFAULT) != NN_OK) die(a.save);
        printf("Model saved to %s\n", a.save);
    }
    if (a.save_encoder) {
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
    return 0;
}

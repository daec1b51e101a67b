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
 *   segment_unet [--manifest FILE] [--weights FILE] [--freeze-encoder]
 *                [--classes N] [--loss bce|iou|bce+iou] [--alpha A]
 *                [--epochs N] [--batch-size N] [--lr LR] [--seed S]
 *                [--train N] [--val N] [--test N] [--threads N]
 *                [--save FILE] [--save-encoder FILE] [--overlays DIR]
 *                [--history FILE.csv] */
#include "common.h"

#include <errno.h>
#include <getopt.h>
#include <sys/stat.h>
#include <time.h>

#define SIZE 128 /* the tutorial's input */

typedef struct args {
    const char *manifest, *weights, *loss, *save, *save_encoder, *overlays,
        *history;
    int freeze, classes, epochs, batch, train, val, test, threads;
    double alpha, lr;
    unsigned long long seed;
} args;

static void usage(int status)
{
    fprintf(status ? stderr : stdout,
            "usage: segment_unet [--manifest FILE] [--weights FILE] "
            "[--freeze-encoder]\n"
            "         [--classes N] [--loss bce|iou|bce+iou] [--alpha A]\n"
            "         [--epochs N] [--batch-size N] [--lr LR] [--seed S]\n"
            "         [--train N] [--val N] [--test N] [--threads N]\n"
            "         [--save FILE] [--save-encoder FILE] [--overlays DIR]\n"
            "         [--history FILE.csv]\n"
            "Defaults: synthetic defects, --train 320 --val 48 --test 96,\n"
            "--epochs 12 --batch-size 16 --lr 0.002 --alpha 0.35 "
            "--classes 1\n"
            "--loss bce+iou --seed 1. docs/segmentation.md explains each.\n");
    exit(status);
}

static void usage_error(const char *fmt, const char *value)
{
    fprintf(stderr, "segment_unet: ");
    fprintf(stderr, fmt, value);
    fprintf(stderr, " (--help lists the options)\n");
    exit(2);
}

static long int_arg(const char *name, const char *v, long lo, long hi)
{
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (!*v || *end || errno || x < lo || x > hi) {
        char msg[160];
        snprintf(msg, sizeof msg, "invalid --%s '%%s': expected an integer "
                 "in [%ld, %ld]", name, lo, hi);
        usage_error(msg, v);
    }
    return x;
}

static double real_arg(const char *name, const char *v, double lo, double hi)
{
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (!*v || *end || errno || !(x > lo && x <= hi)) {
        char msg[160];
        snprintf(msg, sizeof msg, "invalid --%s '%%s': expected a number "
                 "in (%g, %g]", name, lo, hi);
        usage_error(msg, v);
    }
    return x;
}

static args parse(int argc, char **argv)
{
    args a = {NULL, NULL, "bce+iou", NULL, NULL, NULL, NULL,
              0, 1, 12, 16, 320, 48, 96, 0, 0.35, 0.002, 1};
    enum { MANIFEST = 256, WEIGHTS, FREEZE, CLASSES, LOSS, ALPHA, EPOCHS,
           BATCH, LR, SEED, TRAIN, VAL, TEST, THREADS, SAVE, SAVE_ENC,
           OVERLAYS, HISTORY };
    static const struct option opts[] = {
        {"manifest", required_argument, NULL, MANIFEST},
        {"weights", required_argument, NULL, WEIGHTS},
        {"freeze-encoder", no_argument, NULL, FREEZE},
        {"classes", required_argument, NULL, CLASSES},
        {"loss", required_argument, NULL, LOSS},
        {"alpha", required_argument, NULL, ALPHA},
        {"epochs", required_argument, NULL, EPOCHS},
        {"batch-size", required_argument, NULL, BATCH},
        {"lr", required_argument, NULL, LR},
        {"seed", required_argument, NULL, SEED},
        {"train", required_argument, NULL, TRAIN},
        {"val", required_argument, NULL, VAL},
        {"test", required_argument, NULL, TEST},
        {"threads", required_argument, NULL, THREADS},
        {"save", required_argument, NULL, SAVE},
        {"save-encoder", required_argument, NULL, SAVE_ENC},
        {"overlays", required_argument, NULL, OVERLAYS},
        {"history", required_argument, NULL, HISTORY},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case MANIFEST: a.manifest = optarg; break;
        case WEIGHTS: a.weights = optarg; break;
        case FREEZE: a.freeze = 1; break;
        case CLASSES: a.classes = (int)int_arg("classes", optarg, 1, 255); break;
        case LOSS: a.loss = optarg; break;
        case ALPHA: a.alpha = real_arg("alpha", optarg, 0, 4); break;
        case EPOCHS: a.epochs = (int)int_arg("epochs", optarg, 0, 100000); break;
        case BATCH: a.batch = (int)int_arg("batch-size", optarg, 1, 4096); break;
        case LR: a.lr = real_arg("lr", optarg, 0, 10); break;
        case SEED:
            a.seed = (unsigned long long)int_arg("seed", optarg, 0, 1L << 62);
            break;
        case TRAIN: a.train = (int)int_arg("train", optarg, 1, 1000000); break;
        case VAL: a.val = (int)int_arg("val", optarg, 0, 1000000); break;
        case TEST: a.test = (int)int_arg("test", optarg, 1, 1000000); break;
        case THREADS: a.threads = (int)int_arg("threads", optarg, 0, 1024); break;
        case SAVE: a.save = optarg; break;
        case SAVE_ENC: a.save_encoder = optarg; break;
        case OVERLAYS: a.overlays = optarg; break;
        case HISTORY: a.history = optarg; break;
        case 'h': usage(0); break;
        default:
            usage_error(optopt ? "unknown or incomplete option '%s'"
                               : "unknown option '%s'",
                        argv[optind - 1]);
        }
    }
    if (optind < argc) usage_error("unexpected argument '%s'", argv[optind]);
    if (strcmp(a.loss, "bce") && strcmp(a.loss, "iou") &&
        strcmp(a.loss, "bce+iou"))
        usage_error("invalid --loss '%s': expected bce, iou or bce+iou",
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

/* Training, validation and test images: the manifest's rows in that order
 * (the last 15% test, the 15% before them validation), or synthetic
 * defects, each image from its own seeded generator. */
static void load_data(const args *a, split *tr, split *va, split *te)
{
    nn_tensor *x, *y, *labels = NULL;
    int64_t n_val, n_test;
    if (a->manifest) {
        nn_image_opts o = NN_IMAGE_OPTS_INIT;
        o.height = o.width = SIZE;
        o.num_classes = a->classes < 2 ? 2 : a->classes;
        if (nn_seg_load_manifest(a->manifest, 3, &o, &x, &y) != NN_OK)
            die(a->manifest);
        int64_t n = nn_tensor_dim(x, 0);
        n_test = n * 15 / 100;
        n_val = n * 15 / 100;
        if (n_test < 1 || n - n_test - n_val < 1) {
            fprintf(stderr, "segment_unet: %s: %lld rows are too few; give "
                    "at least 7\n", a->manifest, (long long)n);
            exit(1);
        }
        printf("Data: %s, %lld images resized to %dx%d\n", a->manifest,
               (long long)n, SIZE, SIZE);
    } else {
        nn_defects_opts o = NN_DEFECTS_OPTS_INIT;
        o.count = a->train + a->val + a->test;
        o.seed = 1000 + a->seed;
        if (nn_synthetic_defects(&o, &x, &y, &labels) != NN_OK)
            die("synthetic defects");
        n_val = a->val;
        n_test = a->test;
        printf("Data: synthetic surface defects (seed %llu), %d images "
               "of %dx%d, half of them with a defect\n",
               (unsigned long long)o.seed, o.count, SIZE, SIZE);
    }
    int64_t n = nn_tensor_dim(x, 0), n_train = n - n_val - n_test;
    tr->x = rows(x, 0, n_train);
    tr->y = rows(y, 0, n_train);
    va->x = n_val ? rows(x, n_train, n_val) : NULL;
    va->y = n_val ? rows(y, n_train, n_val) : NULL;
    te->x = rows(x, n_train + n_val, n_test);
    te->y = rows(y, n_train + n_val, n_test);
    printf("      %lld training, %lld validation, %lld test images\n",
           (long long)n_train, (long long)n_val, (long long)n_test);
    nn_tensor_free(x);
    nn_tensor_free(y);
    nn_tensor_free(labels);
}

/* ---------------- model ---------------- */

static const char *const skips[5] = {
    "block_1_expand_relu",  /* 64x64 */
    "block_3_expand_relu",  /* 32x32 */
    "block_6_expand_relu",  /* 16x16 */
    "block_13_expand_relu", /* 8x8 */
    "block_16_project"};    /* 4x4 */
static const int filters[4] = {512, 256, 128, 64};

static nn_model *build(const args *a, nn_model **encoder)
{
    nn_mobilenet_v2_opts mo = NN_MOBILENET_V2_OPTS_INIT;
    mo.include_top = 0;
    mo.alpha = a->alpha;
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
    nn_model *m = nn_unet(enc, 5, skips, 4, filters, a->classes,
                          a->seed + 1, &uo);
    if (!m) die("U-Net");
    *encoder = enc;
    return m;
}

static void compile(nn_model *m, const args *a)
{
    nn_adam_opts ao = NN_ADAM_OPTS_INIT;
    ao.learning_rate = (float)a->lr;
    nn_loss_opts lo = NN_LOSS_OPTS_INIT;
    lo.from_logits = 1;
    lo.sparse_labels = a->classes > 1;
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
    printf("Loss: %s%s, Adam (learning rate %g)\n", a->loss,
           a->classes > 1 && strcmp(a->loss, "iou")
               ? " (the cross-entropy is sparse categorical: several classes)"
               : "",
           a->lr);
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

static void write_history(const char *path, const float *h, int epochs)
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
static void train(nn_model *m, const args *a, split *tr, const split *va)
{
    progress_state ps = {0, a->epochs};
    float *hist = calloc((size_t)(a->epochs ? a->epochs : 1) * COLS,
                         sizeof *hist);
    if (!hist) die("history");
    for (ps.epoch = 0; ps.epoch < a->epochs; ps.epoch++) {
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
    if (a->history) write_history(a->history, hist, a->epochs);
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
           "class %.4f - mean IoU %.4f - pixel accuracy %.4f\n",
           (long long)nn_tensor_dim(te->x, 0), loss, iou,
           nn_confusion_mean_iou(cm, 0), nn_confusion_pixel_accuracy(cm));
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

/* For the first `count` test images, DIR/overlay_K.png: the input, the
 * true mask (green) and the predicted mask (red), side by side. */
static void write_overlays(nn_model *m, const args *a, const split *te,
                           int count)
{
    if (mkdir(a->overlays, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "segment_unet: cannot create %s: %s\n", a->overlays,
                strerror(errno));
        exit(1);
    }
    int64_t n = nn_tensor_dim(te->x, 0);
    if (count > n) count = (int)n;
    nn_tensor *x = rows(te->x, 0, count);
    int64_t os[4] = {count, SIZE, SIZE, a->classes};
    int64_t ps[3] = {SIZE, 3 * SIZE, 3};
    nn_tensor *out = nn_tensor_create(4, os), *pic = nn_tensor_create(3, ps);
    if (!out || !pic || nn_model_predict(m, x, out, 16) != NN_OK)
        die("predict");
    static const float none[3] = {0, 0, 0}, green[3] = {0.1f, 0.9f, 0.1f},
                       red[3] = {1.0f, 0.1f, 0.1f};
    size_t px = SIZE * SIZE;
    for (int i = 0; i < count; i++) {
        const float *img = nn_tensor_data_const(x) + i * px * 3;
        const float *truth = nn_tensor_data_const(te->y) + i * px;
        const float *pred = nn_tensor_data_const(out) + i * px * a->classes;
        float *d = nn_tensor_data(pic);
        for (int p = 0; p < (int)px; p++) {
            panel(d, 0, img, p, 0, none);
            panel(d, 1, img, p, truth[p] > 0.5f, green);
            panel(d, 2, img, p, predicted(pred, p, a->classes), red);
        }
        char path[1024];
        snprintf(path, sizeof path, "%s/overlay_%d.png", a->overlays, i);
        if (nn_image_save_png(path, pic, 0) != NN_OK) die(path);
    }
    printf("Overlays (input | true mask, green | prediction, red) of %d test "
           "images written to %s/\n", count, a->overlays);
    nn_tensor_free(x);
    nn_tensor_free(out);
    nn_tensor_free(pic);
}

static double seconds_since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) +
           (double)(t.tv_nsec - t0->tv_nsec) * 1e-9;
}

int main(int argc, char **argv)
{
    args a = parse(argc, argv);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (a.threads && nn_set_num_threads(a.threads) != NN_OK) die("threads");
    printf("libnn %s - Q5 U-Net with a MobileNetV2 encoder (alpha %.2f), "
           "%d thread(s), seed %llu\n",
           nn_version(), a.alpha, nn_get_num_threads(), a.seed);
    split tr, va, te;
    load_data(&a, &tr, &va, &te);
    nn_model *enc;
    nn_model *m = build(&a, &enc);
    print_summary(m);
    compile(m, &a);
    train(m, &a, &tr, &va);
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
    printf("Total time: %.1f s\n", seconds_since(&t0));
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

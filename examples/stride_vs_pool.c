/* Q4(a): stride vs pooling. The defect classifier of
 * examples/defect_classifier.c (examples/defect_model.h: ReLU, softmax +
 * class-weighted categorical cross-entropy) built twice, downsampling
 * either with MaxPooling2D(2) after each stride-1 convolution or with the
 * convolution itself at stride 2, and compared side by side:
 *   - parameters (the same: a stride changes no kernel);
 *   - multiply-adds and FLOPs of one 128x128 image's forward pass,
 *     counted from the layers' shapes (defect_model.h, dm_macs: a
 *     convolution does out_h x out_w x kh x kw x in x filters
 *     multiply-adds, a FLOP is half of one), and max pooling's
 *     comparisons;
 *   - measured training and inference speed, images/s, the median of
 *     --reps timed blocks (training: nn_model_train_batch on batches of
 *     --batch-size; inference: nn_context_predict on batches of 32);
 *   - accuracy, precision, recall, F1 and ROC AUC on test crops after
 *     the same training.
 * `stride_vs_pool --help` lists the options. */
#include "common.h"
#include "defect_model.h"

#include <stddef.h>

static const ex_program PROGRAM = {
    "stride_vs_pool",
    "Q4(a): the defect classifier (examples/defect_model.h) downsampling with\n"
    "MaxPooling2D(2) after stride-1 convolutions vs with stride-2\n"
    "convolutions: parameters, multiply-adds and FLOPs per image (counted\n"
    "from the layers' shapes), measured training and inference images/s\n"
    "(median of --reps blocks), and test accuracy, precision, recall, F1\n"
    "and ROC AUC after the same training on the synthetic surface-defect\n"
    "crops (about 1 defective in 10, class-weighted loss). --quick 1 is a\n"
    "run of seconds that checks the program. Writes no file.\n"};

typedef struct measure {
    int64_t params, macs, comparisons;
    double train_img_s, infer_img_s, seconds;
    nn_binary_report rep;
} measure;

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, by_value);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* A view of rows [first, first + n) of t. */
static nn_tensor *rows_view(const nn_tensor *t, int64_t first, int64_t n)
{
    int64_t shape[NN_MAX_RANK], row = 1;
    int rank = nn_tensor_rank(t);
    nn_tensor_shape(t, shape, NN_MAX_RANK);
    for (int k = 1; k < rank; k++) row *= shape[k];
    shape[0] = n;
    nn_tensor *v = nn_tensor_wrap(rank, shape,
                                  (float *)nn_tensor_data_const(t) +
                                      first * row);
    if (!v) die("batch view");
    return v;
}

/* Images/s of `reps` blocks of `steps` training steps on one batch, after
 * one untimed step (it plans the context). Changes the weights: run it
 * after the evaluation. */
static double train_speed(nn_model *m, const dm_split *tr, int batch,
                          int reps, int steps)
{
    nn_tensor *x = rows_view(tr->x, 0, batch),
              *y = rows_view(tr->ids, 0, batch);
    double *v = malloc((size_t)reps * sizeof *v);
    if (!v) die("timing");
    if (nn_model_train_batch(m, x, y, NULL, NULL) != NN_OK) die("training");
    for (int r = 0; r < reps; r++) {
        double t = seconds_now();
        for (int s = 0; s < steps; s++)
            if (nn_model_train_batch(m, x, y, NULL, NULL) != NN_OK)
                die("training");
        v[r] = (double)batch * steps / (seconds_now() - t);
    }
    double med = median(v, reps);
    free(v);
    nn_tensor_free(x);
    nn_tensor_free(y);
    return med;
}

static double infer_speed(nn_model *m, const dm_split *te, int reps,
                          int steps)
{
    int batch = te->n < 32 ? (int)te->n : 32;
    nn_tensor *x = rows_view(te->x, 0, batch);
    int64_t os[2] = {batch, 2};
    nn_tensor *out = nn_tensor_create(2, os);
    nn_context *ctx = nn_context_create(m);
    double *v = malloc((size_t)reps * sizeof *v);
    if (!out || !ctx || !v) die("timing");
    if (nn_context_predict(ctx, x, out, batch) != NN_OK) die("predict");
    for (int r = 0; r < reps; r++) {
        double t = seconds_now();
        for (int s = 0; s < steps; s++)
            if (nn_context_predict(ctx, x, out, batch) != NN_OK)
                die("predict");
        v[r] = (double)batch * steps / (seconds_now() - t);
    }
    double med = median(v, reps);
    free(v);
    nn_context_free(ctx);
    nn_tensor_free(out);
    nn_tensor_free(x);
    return med;
}

static measure run(dm_down down, const dm_train_data *d, const dm_split *tr,
                   const dm_split *te, const train_args *t, int reps)
{
    dm_arch a = {DM_RELU, DM_SOFTMAX2, down, 0, 1};
    measure r = {.rep = {.size = sizeof(nn_binary_report)}};
    double start = seconds_now();
    nn_model *m = dm_build(&a, t->seed);
    if (!m) die("building the model");
    r.params = nn_model_num_params(m);
    r.macs = dm_macs(m, &r.comparisons);
    if (nn_model_compile(m, nn_adam(NULL),
                         dm_loss(a.head), NULL) != NN_OK)
        die("compile");
    if (dm_fit(m, a.head, d, t->epochs, t->batch_size, 1) != NN_OK)
        die("fit");
    nn_binary_opts bo = NN_BINARY_OPTS_INIT;
    if (nn_model_evaluate_binary(m, te->x, te->ids, 64, &bo, &r.rep, NULL) !=
        NN_OK)
        die("evaluate");
    r.seconds = seconds_now() - start;
    int batch = t->batch_size < tr->n ? t->batch_size : (int)tr->n;
    r.train_img_s = train_speed(m, tr, batch, reps, 3);
    r.infer_img_s = infer_speed(m, te, reps, 3);
    nn_model_free(m);
    return r;
}

static void print_table(const measure *p, const measure *s)
{
    printf("\n%-34s %16s %16s %8s\n", "", "max pooling", "stride 2",
           "ratio");
    printf("%-34s %16lld %16lld %8.2f\n", "parameters", (long long)p->params,
           (long long)s->params, (double)s->params / (double)p->params);
    printf("%-34s %16lld %16lld %8.2f\n", "multiply-adds per image",
           (long long)p->macs, (long long)s->macs,
           (double)s->macs / (double)p->macs);
    printf("%-34s %16.1f %16.1f %8.2f\n", "MFLOPs per image (2 per MAC)",
           2e-6 * (double)p->macs, 2e-6 * (double)s->macs,
           (double)s->macs / (double)p->macs);
    printf("%-34s %16lld %16lld\n", "max-pool comparisons per image",
           (long long)p->comparisons, (long long)s->comparisons);
    printf("%-34s %16.1f %16.1f %8.2f\n", "training images/s (median)",
           p->train_img_s, s->train_img_s, s->train_img_s / p->train_img_s);
    printf("%-34s %16.1f %16.1f %8.2f\n", "inference images/s (median)",
           p->infer_img_s, s->infer_img_s, s->infer_img_s / p->infer_img_s);
    printf("%-34s %16.3f %16.3f\n", "test accuracy (threshold 0.5)",
           p->rep.accuracy, s->rep.accuracy);
    printf("%-34s %16.3f %16.3f\n", "test precision", p->rep.precision,
           s->rep.precision);
    printf("%-34s %16.3f %16.3f\n", "test recall", p->rep.recall,
           s->rep.recall);
    printf("%-34s %16.3f %16.3f\n", "test F1", p->rep.f1, s->rep.f1);
    printf("%-34s %16.3f %16.3f\n", "test ROC AUC", p->rep.roc_auc,
           s->rep.roc_auc);
    printf("%-34s %16.0f %16.0f\n", "seconds to train and evaluate",
           p->seconds, s->seconds);
}

/* "0.877 [0.602, 0.879]": mean and range over the seeds. */
static void print_spread(const char *name, const measure *m, int seeds,
                         size_t offset, const char *fmt)
{
    double v[EX_MAX_SEEDS];
    printf("%-34s", name);
    for (int k = 0; k < 2; k++) {
        for (int i = 0; i < seeds; i++)
            v[i] = *(const double *)((const char *)&m[2 * i + k] + offset);
        ex_spread sp = ex_spread_of(v, seeds);
        printf("  ");
        printf(fmt, sp.mean);
        printf(" [");
        printf(fmt, sp.min);
        printf(", ");
        printf(fmt, sp.max);
        printf("]");
    }
    printf("\n");
}

/* The table over the seeds: max pooling, then stride 2; m holds both
 * runs of every seed. */
static void print_seeds_table(const measure *m, const unsigned long long *seed,
                              int seeds)
{
    printf("\n== over %d seeds (", seeds);
    for (int i = 0; i < seeds; i++)
        printf("%s%llu", i ? ", " : "", seed[i]);
    printf("): mean [min, max], max pooling then stride 2\n");
    print_spread("training images/s (median)", m, seeds,
                 offsetof(measure, train_img_s), "%.1f");
    print_spread("inference images/s (median)", m, seeds,
                 offsetof(measure, infer_img_s), "%.1f");
    print_spread("test accuracy (threshold 0.5)", m, seeds,
                 offsetof(measure, rep.accuracy), "%.3f");
    print_spread("test precision", m, seeds,
                 offsetof(measure, rep.precision), "%.3f");
    print_spread("test recall", m, seeds, offsetof(measure, rep.recall),
                 "%.3f");
    print_spread("test F1", m, seeds, offsetof(measure, rep.f1), "%.3f");
    print_spread("test ROC AUC", m, seeds, offsetof(measure, rep.roc_auc),
                 "%.3f");
}

/* Both networks from one seed: that seed's crops and initial weights. */
static void run_seed(train_args t, unsigned long long seed, float fraction,
                     int fresh, int reps, measure *pool, measure *stride)
{
    t.seed = seed;
    dm_split tr, te;
    dm_train_data td = {t.train, fraction, t.seed, fresh};
    if (dm_train_split(&td, 0, &tr) != NN_OK ||
        dm_split_make(&te, t.test, fraction, t.seed + 2000003) != NN_OK)
        die("synthetic defects");
    printf("libnn %s - stride vs pooling on %dx%dx%d defect crops: %lld "
           "train%s (%lld defective), %lld test (%lld); %d epochs, batch %d, "
           "seed %llu, %d threads\n",
           nn_version(), DM_SIZE, DM_SIZE, DM_CHANNELS, (long long)tr.n,
           fresh ? " per epoch, fresh each epoch," : "",
           (long long)tr.defective, (long long)te.n, (long long)te.defective,
           t.epochs, t.batch_size, t.seed, nn_get_num_threads());
    fflush(stdout);
    *pool = run(DM_MAXPOOL, &td, &tr, &te, &t, reps);
    *stride = run(DM_STRIDE2, &td, &tr, &te, &t, reps);
    print_table(pool, stride);
    dm_split_free(&tr);
    dm_split_free(&te);
}

int main(int argc, char **argv)
{
    train_args t = TRAIN_ARGS(3000, 1000, 3, 32, 42);
    int reps = 5, quick = 0, fresh = 1;
    float fraction = 0.1f;
    const char *seeds_arg = NULL;
    const ex_option opts[] = {
        EX_INT("train", &t.train, 16, 1000000, "N", "training crops"),
        EX_INT("test", &t.test, 16, 1000000, "N", "test crops"),
        EX_FLOAT_ABOVE("defective", &fraction, 0, 1, "F",
                       "share of crops with a defect"),
        EX_INT("fresh", &fresh, 0, 1, "0|1",
               "1: new training crops every epoch; 0: the same crops"),
        EX_OPT_EPOCHS(&t.epochs),
        EX_OPT_BATCH_SIZE(&t.batch_size),
        EX_OPT_SEED(&t.seed),
        EX_STRING("seeds", &seeds_arg, "LIST",
                  "both networks from each seed (42,1,2), then mean [min, "
                  "max]",
                  "--seed's one seed"),
        EX_OPT_THREADS(&t.threads),
        EX_INT("reps", &reps, 1, 1000, "N",
               "timed blocks per speed figure (the median is printed)"),
        EX_INT("quick", &quick, 0, 1, "0|1",
               "1: 64/32 crops, 1 epoch, 3 reps (checks the program)"),
    };
    ex_parse(argc, argv, &PROGRAM, opts, EX_COUNT(opts));
    unsigned long long seed[EX_MAX_SEEDS] = {t.seed};
    int seeds = 1;
    if (seeds_arg) {
        if (ex_given(argc, argv, "--seed"))
            ex_usage_error(&PROGRAM, "--seed and --seeds: give one (--seeds "
                           "S is the same as --seed S)");
        seeds = ex_seed_list(&PROGRAM, "seeds", seeds_arg, seed);
    }
    if (quick) {
        t.train = 64;
        t.test = 32;
        t.epochs = 1;
        reps = 3;
    }
    if (t.threads > 0 && nn_set_num_threads(t.threads) != NN_OK)
        die("--threads");
    measure m[2 * EX_MAX_SEEDS];
    for (int i = 0; i < seeds; i++) {
        if (i) printf("\n");
        run_seed(t, seed[i], fraction, fresh, reps, &m[2 * i], &m[2 * i + 1]);
    }
    if (seeds > 1) print_seeds_table(m, seed, seeds);
    return 0;
}

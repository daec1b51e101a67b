/* Q4(b): a defect classifier, healthy vs defective, on 128x128 crops of
 * the synthetic surface-defect data with the imbalance of a real line
 * (about 1 defective part in 10), and the choices the assignment asks
 * about compared side by side in one table:
 *   - hidden activations ReLU, LeakyReLU, PReLU;
 *   - softmax + categorical cross-entropy vs sigmoid + binary
 *     cross-entropy for the binary decision, and a softmax over the
 *     defect types (none, scratch, pit, crack, stain) whose decision is
 *     "any defect" (NN_ALL_BUT(0)): the defect type comes with it;
 *   - unweighted vs class-weighted loss (fit's class_weight, Keras'
 *     "balanced" weights n / (classes x n_class) from the training
 *     labels).
 * Every row trains the same network (examples/defect_model.h) from the
 * same seed on the same images, and reports on held-out test images the
 * accuracy, precision, recall and F1 at the threshold 0.5, the ROC AUC,
 * and the threshold a product would ship with: the largest that catches
 * 99% of the defective *validation* images, with the recall and the
 * precision it gives on the test images.
 *
 * `--save FILE` keeps the row with the best validation precision at that
 * threshold, with its preprocessing and threshold stored in the file
 * (nn_model_set_preprocess), ready for nn-inspect and inspection_line.
 *
 * `defect_classifier --help` lists the options. */
#include "common.h"
#include "defect_model.h"

static const ex_program PROGRAM = {
    "defect_classifier",
    "Q4(b): healthy vs defective on 128x128 crops of the synthetic surface-\n"
    "defect data (about 1 defective in 10). Trains one small CNN per row and\n"
    "prints one table: ReLU vs LeakyReLU vs PReLU hidden activations;\n"
    "softmax + categorical cross-entropy vs sigmoid + binary cross-entropy\n"
    "(and a softmax over the defect types, defective = any type); unweighted\n"
    "vs class-weighted (Keras' balanced class_weight). Columns on the test\n"
    "images: accuracy, precision, recall, F1 at threshold 0.5, ROC AUC, and\n"
    "the threshold that reaches 99% recall on the validation images with\n"
    "the recall and precision it leaves on the test images. --save FILE\n"
    "writes the row with the best validation precision at that threshold,\n"
    "with its preprocessing and threshold (for nn-inspect). --seeds LIST\n"
    "(instead of --seed) trains every row from each seed, with the data\n"
    "drawn from that seed, and ends with one table of mean [min, max] over\n"
    "the seeds and ROC AUC per seed; --save takes one seed and refuses a\n"
    "list. README.md's figures: --threads 1 --seeds 42,1,2. --row N trains\n"
    "one row only; --quick 1 is a run of seconds that checks the program.\n"
    "Writes no file unless --save is given.\n"};

#define TARGET_RECALL 0.99

/* ---------------- rows ---------------- */

typedef struct row {
    dm_arch arch;
    int weighted;
} row;

static const row ROWS[] = {
    {{DM_RELU, DM_SOFTMAX2, DM_MAXPOOL, 0, 1}, 0},
    {{DM_RELU, DM_SOFTMAX2, DM_MAXPOOL, 0, 1}, 1},
    {{DM_RELU, DM_SIGMOID, DM_MAXPOOL, 0, 1}, 0},
    {{DM_RELU, DM_SIGMOID, DM_MAXPOOL, 0, 1}, 1},
    {{DM_LEAKY_RELU, DM_SOFTMAX2, DM_MAXPOOL, 0, 1}, 1},
    {{DM_LEAKY_RELU, DM_SIGMOID, DM_MAXPOOL, 0, 1}, 1},
    {{DM_PRELU, DM_SOFTMAX2, DM_MAXPOOL, 0, 1}, 1},
    {{DM_PRELU, DM_SIGMOID, DM_MAXPOOL, 0, 1}, 1},
    {{DM_RELU, DM_TYPES, DM_MAXPOOL, 0, 1}, 0},
    {{DM_RELU, DM_TYPES, DM_MAXPOOL, 0, 1}, 1},
};
#define NUM_ROWS EX_COUNT(ROWS)

static const char *head_name(dm_head h)
{
    static const char *const names[] = {"softmax2 + CE", "sigmoid + BCE",
                                        "softmax5 types + CE"};
    return names[h];
}

/* ---------------- one row ---------------- */

typedef struct result {
    nn_binary_report at_half; /* test, threshold 0.5 */
    nn_binary_report at_thr;  /* test, at the validation threshold */
    float threshold;          /* 99% recall on validation */
    double val_precision;     /* validation precision there */
    int reached;              /* a threshold exists (validation positives) */
    double seconds;
} result;

static nn_model *train_row(const row *r, const dm_train_data *d, int bn,
                           int width, int epochs, int batch, float lr,
                           unsigned long long seed)
{
    dm_arch arch = r->arch;
    arch.bn = bn;
    arch.width = width;
    nn_model *m = dm_build(&arch, seed);
    if (!m) die("building the model");
    nn_adam_opts a = NN_ADAM_OPTS_INIT;
    a.learning_rate = lr;
    if (nn_model_compile(m, nn_adam(&a), dm_loss(r->arch.head), NULL) !=
        NN_OK)
        die("compile");
    if (dm_fit(m, r->arch.head, d, epochs, batch, r->weighted) != NN_OK)
        die("fit");
    return m;
}

static result evaluate_row(nn_model *m, dm_head h, const dm_split *val,
                           const dm_split *test)
{
    result res = {.at_half = {.size = sizeof(nn_binary_report)},
                  .at_thr = {.size = sizeof(nn_binary_report)}};
    nn_binary_opts bo = NN_BINARY_OPTS_INIT;
    bo.positive_class = dm_positive_class(h);
    nn_curve *vc = NULL, *tc = NULL;
    if (nn_model_evaluate_binary(m, val->x, dm_labels(val, h), 64, &bo, NULL,
                                 &vc) != NN_OK ||
        nn_model_evaluate_binary(m, test->x, dm_labels(test, h), 64, &bo,
                                 &res.at_half, &tc) != NN_OK)
        die("evaluate");
    nn_binary_report v = {.size = sizeof v};
    res.reached =
        nn_curve_threshold_for_recall(vc, TARGET_RECALL, &v) == NN_OK;
    res.threshold = res.reached ? v.threshold : NAN;
    res.val_precision = res.reached ? v.precision : NAN;
    if (res.reached && nn_curve_report(tc, v.threshold, &res.at_thr) != NN_OK)
        die("report");
    nn_curve_free(vc);
    nn_curve_free(tc);
    return res;
}

/* ---------------- the table ---------------- */

static void print_header(void)
{
    printf("\n%-10s %-20s %-8s %6s %6s %6s %6s %6s | %8s %6s %6s\n",
           "hidden", "output + loss", "weights", "acc", "prec", "recall",
           "F1", "AUC", "thr@99%", "recall", "prec");
}

static void print_row(const row *r, const result *res)
{
    const nn_binary_report *a = &res->at_half, *t = &res->at_thr;
    printf("%-10s %-20s %-8s %6.3f %6.3f %6.3f %6.3f %6.3f | ",
           dm_act_name(r->arch.act), head_name(r->arch.head),
           r->weighted ? "balanced" : "none", a->accuracy, a->precision,
           a->recall, a->f1, a->roc_auc);
    if (res->reached)
        printf("%8.4f %6.3f %6.3f", (double)res->threshold, t->recall,
               t->precision);
    else
        printf("%8s %6s %6s", "-", "-", "-");
    printf("   (%.0f s)\n", res->seconds);
    fflush(stdout);
}

/* ---------------- the saved model ---------------- */

typedef struct best {
    nn_model *m;
    int row;
    double val_precision;
    float threshold;
} best;

/* Keeps m when it beats the best so far (validation precision at the
 * 99%-recall threshold); frees whichever loses. */
static void keep_best(best *b, nn_model *m, int i, const result *res)
{
    double p = res->reached ? res->val_precision : -1.0;
    if (!b->m || p > b->val_precision) {
        nn_model_free(b->m);
        *b = (best){m, i, p, res->threshold};
    } else {
        nn_model_free(m);
    }
}

static void save_best(const best *b, const char *path)
{
    const row *r = &ROWS[b->row];
    if (!b->m || !(b->val_precision >= 0)) {
        fprintf(stderr, "defect_classifier: no row reached %.0f%% recall on "
                        "the validation images; nothing saved\n",
                100 * TARGET_RECALL);
        exit(1);
    }
    nn_preprocess_opts p = dm_preprocess(r->arch.head, b->threshold);
    if (nn_model_set_preprocess(b->m, &p) != NN_OK ||
        nn_model_save(b->m, path, NN_SAVE_DEFAULT) != NN_OK)
        die("--save");
    printf("\nSaved %s (%s, %s, %s weights; threshold %.4f for %.0f%% "
           "validation recall) to %s: nn-inspect %s IMAGE.png\n",
           "the row with the best validation precision",
           dm_act_name(r->arch.act), head_name(r->arch.head),
           r->weighted ? "balanced" : "no", (double)b->threshold,
           100 * TARGET_RECALL, path, path);
}

/* ---------------- several seeds ---------------- */

/* "0.877 [0.602, 0.879]": a column's mean and range over the seeds; a
 * star when some seeds lack the figure (no 99%-recall threshold). */
static void print_cell(const double *v, int seeds, int *partial)
{
    ex_spread s = ex_spread_of(v, seeds);
    if (!s.n) {
        printf(" %-21s", "-");
        return;
    }
    printf(" %.3f [%.3f, %.3f]%s", s.mean, s.min, s.max,
           s.n < seeds ? "*" : " ");
    *partial |= s.n < seeds;
}

/* One row of the summary: every column over the seeds, then ROC AUC per
 * seed. res[s] is seed s's result for the row. */
static void print_spread_row(const row *r, const result *res, int seeds,
                             int *partial)
{
    double v[6][EX_MAX_SEEDS];
    for (int s = 0; s < seeds; s++) {
        const nn_binary_report *a = &res[s].at_half;
        v[0][s] = a->accuracy;
        v[1][s] = a->precision;
        v[2][s] = a->recall;
        v[3][s] = a->f1;
        v[4][s] = a->roc_auc;
        v[5][s] = res[s].reached ? res[s].at_thr.precision : NAN;
    }
    printf("%-10s %-20s %-8s", dm_act_name(r->arch.act),
           head_name(r->arch.head), r->weighted ? "balanced" : "none");
    for (int c = 0; c < 6; c++) print_cell(v[c], seeds, partial);
    for (int s = 0; s < seeds; s++)
        printf("%s%.3f", s ? "/" : " ", res[s].at_half.roc_auc);
    printf("\n");
}

/* The test recall at the 99%-recall threshold, lowest and highest over
 * every row and seed: does the validation threshold hold on the test? */
static void print_recall_range(result res[][NUM_ROWS], int seeds, int only)
{
    double lo = INFINITY, hi = -INFINITY;
    for (int s = 0; s < seeds; s++)
        for (int i = 0; i < (int)NUM_ROWS; i++) {
            if ((only && only != i + 1) || !res[s][i].reached) continue;
            lo = fmin(lo, res[s][i].at_thr.recall);
            hi = fmax(hi, res[s][i].at_thr.recall);
        }
    if (lo <= hi)
        printf("Test recall at the 99%%-recall threshold: %.3f to %.3f over "
               "every row and seed.\n", lo, hi);
}

/* The one table over the seeds: mean [min, max] of every column. */
static void print_seed_table(result res[][NUM_ROWS], const unsigned long long *seed,
                          int seeds, int only)
{
    printf("\n== over %d seeds (", seeds);
    for (int s = 0; s < seeds; s++) printf("%s%llu", s ? ", " : "", seed[s]);
    printf("): mean [min, max] on the test crops ==\n");
    static const char *const columns[] = {"acc", "prec", "recall", "F1",
                                          "AUC", "prec@thr99%"};
    printf("%-10s %-20s %-8s", "hidden", "output + loss", "weights");
    for (int c = 0; c < 6; c++) printf(" %-21s", columns[c]);
    printf(" AUC per seed\n");
    int partial = 0;
    for (int i = 0; i < (int)NUM_ROWS; i++) {
        if (only && only != i + 1) continue;
        result per_seed[EX_MAX_SEEDS];
        for (int s = 0; s < seeds; s++) per_seed[s] = res[s][i];
        print_spread_row(&ROWS[i], per_seed, seeds, &partial);
    }
    if (partial)
        printf("* over the seeds whose validation crops reached %.0f%% "
               "recall at some threshold\n", 100 * TARGET_RECALL);
    print_recall_range(res, seeds, only);
}

/* ---------------- main ---------------- */

typedef struct setup {
    int train_n, val_n, test_n, epochs, batch, threads, quick, only, bn,
        fresh, width;
    float fraction, train_fraction, lr;
    unsigned long long seed[EX_MAX_SEEDS];
    int seeds;
    const char *save;
} setup;

static setup parse(int argc, char **argv)
{
    setup a = {3000, 600, 1000, 3, 32, 0, 0, 0, 0, 1, 1, 0.1f, 0, 0.003f,
               {42}, 1, NULL};
    const char *seeds = NULL;
    const ex_option opts[] = {
        EX_INT("train", &a.train_n, 16, 1000000, "N", "training crops"),
        EX_INT("val", &a.val_n, 16, 1000000, "N",
               "validation crops (they choose the threshold and the saved "
               "row)"),
        EX_INT("test", &a.test_n, 16, 1000000, "N",
               "test crops (the table's figures)"),
        EX_FLOAT_ABOVE("defective", &a.fraction, 0, 1, "F",
                       "share of crops with a defect"),
        EX_FLOAT_ABOVE("train-defective", &a.train_fraction, 0, 1, "F",
                       "share of training crops with a defect (default: "
                       "--defective's)"),
        EX_OPT_EPOCHS(&a.epochs),
        EX_OPT_BATCH_SIZE(&a.batch),
        EX_FLOAT_ABOVE("lr", &a.lr, 0, 1, "R", "Adam's learning rate"),
        EX_INT("bn", &a.bn, 0, 1, "0|1",
               "1: BatchNormalization after every convolution"),
        EX_INT("width", &a.width, 1, 8, "K",
               "convolutions of 8K, 16K, 32K, 32K filters"),
        EX_INT("fresh", &a.fresh, 0, 1, "0|1",
               "1: new training crops every epoch; 0: the same crops"),
        EX_OPT_SEED(&a.seed[0]),
        EX_STRING("seeds", &seeds, "LIST",
                  "every row from each seed (42,1,2), then mean [min, max]",
                  "--seed's one seed"),
        EX_OPT_THREADS(&a.threads),
        EX_INT("quick", &a.quick, 0, 1, "0|1",
               "1: 64/32/32 crops, 1 epoch (checks the program in "
               "seconds)"),
        EX_INT("row", &a.only, 0, NUM_ROWS, "N",
               "train only row N of the table (0: every row)"),
        EX_OUTPUT("save", &a.save, "FILE",
                  "save the chosen model with its preprocessing and "
                  "threshold (one seed only)",
                  "not saved"),
    };
    ex_parse(argc, argv, &PROGRAM, opts, EX_COUNT(opts));
    if (seeds) {
        if (ex_given(argc, argv, "--seed"))
            ex_usage_error(&PROGRAM, "--seed and --seeds: give one (--seeds "
                           "S is the same as --seed S)");
        a.seeds = ex_seed_list(&PROGRAM, "seeds", seeds, a.seed);
    }
    if (a.save && a.seeds > 1)
        ex_usage_error(&PROGRAM, "--save keeps the best row of one run: give "
                       "one seed (--seed S) with --save, not --seeds '%s'",
                       seeds);
    if (a.quick) {
        a.train_n = 64;
        a.val_n = a.test_n = 32;
        a.epochs = 1;
    }
    return a;
}

/* Trains and evaluates every row (or --row's) from one seed, printing
 * each as it ends; res[i] receives row i's result, *b the best model
 * when b is not NULL. */
static void run_seed(const setup *a, unsigned long long seed, result *res,
                     best *b)
{
    dm_split tr, val, test;
    dm_train_data td = {a->train_n,
                        a->train_fraction > 0 ? a->train_fraction
                                              : a->fraction,
                        seed, a->fresh};
    double t0 = seconds_now();
    if (dm_train_split(&td, 0, &tr) != NN_OK ||
        dm_split_make(&val, a->val_n, a->fraction, seed + 1000003) != NN_OK ||
        dm_split_make(&test, a->test_n, a->fraction, seed + 2000003) != NN_OK)
        die("synthetic defects");
    printf("libnn %s - synthetic surface defects, %dx%dx%d crops: %lld "
           "train%s (%lld defective), %lld validation (%lld), %lld test (%lld)"
           " - generated in %.1f s\n",
           nn_version(), DM_SIZE, DM_SIZE, DM_CHANNELS, (long long)tr.n,
           a->fresh ? " per epoch, fresh each epoch," : "",
           (long long)tr.defective, (long long)val.n,
           (long long)val.defective, (long long)test.n,
           (long long)test.defective, seconds_now() - t0);
    dm_split_free(&tr);
    printf("Each row: %s%d epochs, batch %d, Adam(%g), seed %llu, %d "
           "threads. Columns: test accuracy, precision, recall, F1 at "
           "threshold 0.5, ROC AUC; then the largest threshold with %.0f%% "
           "recall on the validation crops, and the test recall and "
           "precision at it.\n",
           a->bn ? "BatchNormalization after each convolution, " : "",
           a->epochs, a->batch, (double)a->lr, seed, nn_get_num_threads(),
           100 * TARGET_RECALL);
    print_header();
    for (int i = 0; i < (int)NUM_ROWS; i++) {
        const row *r = &ROWS[i];
        if (a->only && a->only != i + 1) continue;
        double start = seconds_now();
        nn_model *m = train_row(r, &td, a->bn, a->width, a->epochs, a->batch,
                                a->lr, seed);
        res[i] = evaluate_row(m, r->arch.head, &val, &test);
        res[i].seconds = seconds_now() - start;
        print_row(r, &res[i]);
        if (b) keep_best(b, m, i, &res[i]);
        else nn_model_free(m);
    }
    dm_split_free(&val);
    dm_split_free(&test);
}

int main(int argc, char **argv)
{
    setup a = parse(argc, argv);
    if (a.threads > 0 && nn_set_num_threads(a.threads) != NN_OK)
        die("--threads");
    static result res[EX_MAX_SEEDS][NUM_ROWS];
    best b = {NULL, -1, -1.0, NAN};
    for (int s = 0; s < a.seeds; s++) {
        if (s) printf("\n");
        run_seed(&a, a.seed[s], res[s], a.save ? &b : NULL);
    }
    if (a.seeds > 1) print_seed_table(res, a.seed, a.seeds, a.only);
    if (a.save) save_best(&b, a.save);
    nn_model_free(b.m);
    return 0;
}

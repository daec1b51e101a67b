/* Helpers shared by the example programs: the command line, data loading,
 * progress output and the pieces several examples build on. Header-only so
 * every example stays one short file. */
#ifndef NN_EXAMPLES_COMMON_H
#define NN_EXAMPLES_COMMON_H

#include <nn.h>

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define FASHION_DIR "/usr/share/datasets/fashion-mnist"

/* A runtime failure: the library's message, exit status 1. */
_Noreturn static inline void die(const char *what)
{
    fprintf(stderr, "error: %s: %s\n", what, nn_last_error());
    exit(1);
}

static inline double seconds_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* ---- command lines: one parser for every example ----
 *
 * An example lists its options in a table of ex_option rows and calls
 * ex_parse() first thing in main(), so every program behaves alike:
 *   - long options only, `--name VALUE` or `--name=VALUE`, and -h/--help;
 *   - a number is read whole (`3x`, `abc`, `1e99` for an int: rejected)
 *     and checked against its range before anything else runs, so a typo
 *     never costs a data load or a training run;
 *   - --help prints what the program does and every option with its range
 *     and default, and exits 0;
 *   - an unknown or ambiguous option, a missing value, a value out of
 *     range or a stray argument stops the program with a message naming
 *     the option, the value and the valid range ("cifar_cnn: invalid
 *     --epochs '3x': expected an integer in [1, 100000]") and exit status
 *     2 (EX_EXIT_USAGE); runtime failures exit 1 (die());
 *   - an output path (EX_OUTPUT) whose directory is missing is refused
 *     the same way, before training rather than after.
 * The default of an option is the value its variable holds when ex_parse()
 * is called. Use the EX_OPT_* rows for the options the examples share, so
 * the same thing has the same name and the same range everywhere; write
 * an EX_INT/EX_FLOAT/EX_SEED/EX_STRING/EX_OUTPUT row for the others. Files
 * are written only when an option names them. A new example:
 *
 *   static const ex_program PROGRAM = {"my_example",
 *       "What it does, in a few lines, and why its defaults are what they\n"
 *       "are.\n"};
 *   ...
 *   train_args t = TRAIN_ARGS(5000, 1000, 3, 64, 42);  (its defaults)
 *   int classes = 10;
 *   const char *history = NULL;
 *   const ex_option opts[] = {
 *       EX_OPTS_TRAINING(&t),
 *       EX_OPT_HISTORY(&history),
 *       EX_INT("classes", &classes, 2, 1000, "N", "number of classes"),
 *   };
 *   ex_parse(argc, argv, &PROGRAM, opts, EX_COUNT(opts));
 *   ... checks between options: ex_usage_error(&PROGRAM, "...") ...
 *   dataset d;
 *   load_training_data(&d, &t);         (also applies --threads)
 *
 * scripts/check-examples.sh (make check) runs every program in
 * build/examples with --help, an unknown option and bad numbers, so a new
 * example is checked as soon as it builds. */

#define EX_EXIT_USAGE 2
#define EX_MAX_OPTIONS 40
#define EX_COUNT(table) ((int)(sizeof(table) / sizeof((table)[0])))

typedef struct ex_program {
    const char *name;  /* as in messages: "cifar_cnn" */
    const char *about; /* what it does; printed by --help */
} ex_program;

typedef enum ex_kind { EX_KIND_INT, EX_KIND_SEED, EX_KIND_FLOAT,
                       EX_KIND_STRING, EX_KIND_OUTPUT } ex_kind;

typedef struct ex_option {
    const char *name; /* without the dashes: "epochs" */
    const char *arg;  /* the value's placeholder in --help: "N", "DIR" */
    const char *help; /* one line */
    ex_kind kind;
    union {
        int *i;
        unsigned long long *u;
        float *f;
        const char **s;
    } to;             /* the variable: holds the default, receives the value */
    double min, max;  /* numbers: the valid range */
    int open_min;     /* floats: min itself is excluded, as in (0, 10] */
    const char *unset; /* strings: what the default NULL means */
} ex_option;

/* Rows; the typed union member makes the compiler check each pointer. */
#define EX_INT(name, p, lo, hi, arg, help) \
    {(name), (arg), (help), EX_KIND_INT, {.i = (p)}, (lo), (hi), 0, NULL}
/* A float in [lo, hi], or in (lo, hi] with EX_FLOAT_ABOVE. */
#define EX_FLOAT(name, p, lo, hi, arg, help) \
    {(name), (arg), (help), EX_KIND_FLOAT, {.f = (p)}, (lo), (hi), 0, NULL}
#define EX_FLOAT_ABOVE(name, p, lo, hi, arg, help) \
    {(name), (arg), (help), EX_KIND_FLOAT, {.f = (p)}, (lo), (hi), 1, NULL}
#define EX_SEED(name, p, help) \
    {(name), "S", (help), EX_KIND_SEED, {.u = (p)}, 0, 0, 0, NULL}
/* unset: what the program does when the option is not given. */
#define EX_STRING(name, p, arg, help, unset) \
    {(name), (arg), (help), EX_KIND_STRING, {.s = (p)}, 0, 0, 0, (unset)}
/* A file or directory the program will create: its parent directory must
 * exist and be writable, checked at once rather than after training. */
#define EX_OUTPUT(name, p, arg, help, unset) \
    {(name), (arg), (help), EX_KIND_OUTPUT, {.s = (p)}, 0, 0, 0, (unset)}

/* ---- the options the examples share ---- */

#define EX_OPT_DATA(p)                                                       \
    EX_STRING("data", (p), "DIR",                                            \
              "read CIFAR-10 from DIR (data_batch_1..5.bin, "                \
              "test_batch.bin)",                                             \
              "Fashion-MNIST from " FASHION_DIR)
#define EX_OPT_TRAIN(p)                                                      \
    EX_INT("train", (p), 0, 1000000000, "N",                                 \
           "train on the first N training images (0: all)")
#define EX_OPT_TEST(p)                                                       \
    EX_INT("test", (p), 0, 1000000000, "N",                                  \
           "evaluate on the first N test images (0: all)")
#define EX_OPT_EPOCHS(p)                                                     \
    EX_INT("epochs", (p), 1, 100000, "N", "passes over the training images")
#define EX_OPT_BATCH_SIZE(p)                                                 \
    EX_INT("batch-size", (p), 1, 65536, "N", "images per training step")
#define EX_OPT_SEED(p)                                                       \
    EX_SEED("seed", (p), "seed of the initial weights, dropout and shuffling")
#define EX_OPT_THREADS(p)                                                    \
    EX_INT("threads", (p), 0, 1024, "N",                                     \
           "threads; 0 keeps libnn's default (docs/api.md, Threads)")
#define EX_OPT_HISTORY(p)                                                    \
    EX_OUTPUT("history", (p), "FILE",                                        \
              "write the per-epoch history to FILE (CSV, see "               \
              "tools/plot_history.py)",                                      \
              "not written")
#define EX_OPT_WEIGHTS(p)                                                    \
    EX_STRING("weights", (p), "FILE",                                        \
              "torchvision ResNet50 weights (scripts/export_torchvision_"    \
              "resnet50.py)",                                                \
              "random weights")

/* The data and training options of every training example. */
typedef struct train_args {
    const char *data;
    int train, test, epochs, batch_size, threads;
    unsigned long long seed;
} train_args;
/* An example's defaults: --train, --test, --epochs, --batch-size, --seed
 * (no --data: Fashion-MNIST; --threads 0: libnn's default). */
#define TRAIN_ARGS(train_n, test_n, epochs_n, batch, seed_v) \
    {NULL, (train_n), (test_n), (epochs_n), (batch), 0, (seed_v)}
/* The assignment's Q3 recipe: every image, 10 epochs, batch 128, seed 42. */
#define TRAIN_ARGS_INIT TRAIN_ARGS(0, 0, 10, 128, 42)
#define EX_OPTS_TRAINING(t)                                                  \
    EX_OPT_DATA(&(t)->data), EX_OPT_TRAIN(&(t)->train),                      \
        EX_OPT_TEST(&(t)->test), EX_OPT_EPOCHS(&(t)->epochs),                \
        EX_OPT_BATCH_SIZE(&(t)->batch_size), EX_OPT_SEED(&(t)->seed),       \
        EX_OPT_THREADS(&(t)->threads)

/* Prints "<program>: <message>" and a pointer to --help; exits 2. For
 * checks that involve several options, after ex_parse(). */
__attribute__((format(printf, 2, 3))) _Noreturn static inline void
ex_usage_error(const ex_program *p, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: ", p->name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry '%s --help' for the options.\n", p->name);
    exit(EX_EXIT_USAGE);
}

/* "[1, 100000]", "(0, 10]": the valid values of a number option. */
static inline const char *ex_range(const ex_option *o, char *buf, size_t cap)
{
    if (o->kind == EX_KIND_SEED)
        snprintf(buf, cap, "[0, %llu]", ULLONG_MAX);
    else if (o->kind == EX_KIND_INT)
        snprintf(buf, cap, "[%.0f, %.0f]", o->min, o->max);
    else
        snprintf(buf, cap, "%c%g, %g]", o->open_min ? '(' : '[', o->min,
                 o->max);
    return buf;
}

/* Stores v into o's variable; 0 if v is a valid value, -1 if not. */
static inline int ex_store(const ex_option *o, const char *v)
{
    char *end;
    errno = 0;
    if (o->kind == EX_KIND_STRING || o->kind == EX_KIND_OUTPUT) {
        *o->to.s = v;
        return *v ? 0 : -1;
    }
    if (isspace((unsigned char)*v)) return -1; /* strto* would skip it */
    if (o->kind == EX_KIND_SEED) {
        unsigned long long u = strtoull(v, &end, 10);
        if (!isdigit((unsigned char)*v) || *end || errno) return -1;
        *o->to.u = u;
        return 0;
    }
    if (o->kind == EX_KIND_INT) {
        long long i = strtoll(v, &end, 10);
        if (end == v || *end || errno || i < o->min || i > o->max) return -1;
        *o->to.i = (int)i;
        return 0;
    }
    double d = strtod(v, &end);
    if (end == v || *end || !(d <= o->max) ||
        !(o->open_min ? d > o->min : d >= o->min))
        return -1;
    float f = (float)d; /* 1e-50 is above 0, its float is not */
    if (o->open_min && !(f > o->min)) return -1;
    *o->to.f = f;
    return 0;
}

static inline void ex_bad_value(const ex_program *p, const ex_option *o,
                                const char *v)
{
    char range[80];
    if (o->kind == EX_KIND_STRING || o->kind == EX_KIND_OUTPUT)
        ex_usage_error(p, "invalid --%s '%s': expected a non-empty %s",
                       o->name, v, o->arg);
    ex_usage_error(p, "invalid --%s '%s': expected %s in %s", o->name, v,
                   o->kind == EX_KIND_FLOAT ? "a number" : "an integer",
                   ex_range(o, range, sizeof range));
}

/* The second line of an option's help: its range and its default. */
static inline void ex_print_default(const ex_option *o)
{
    char range[80];
    printf("%23s", "");
    switch (o->kind) {
    case EX_KIND_INT:
        printf("%s in %s; default %d\n", o->arg,
               ex_range(o, range, sizeof range), *o->to.i);
        break;
    case EX_KIND_FLOAT:
        printf("%s in %s; default %g\n", o->arg,
               ex_range(o, range, sizeof range), (double)*o->to.f);
        break;
    case EX_KIND_SEED:
        printf("default %llu\n", *o->to.u);
        break;
    case EX_KIND_STRING:
    case EX_KIND_OUTPUT:
        printf("default: %s\n", *o->to.s ? *o->to.s : o->unset);
        break;
    }
}

static inline void ex_help(const ex_program *p, const ex_option *opts, int n)
{
    printf("Usage: %s [OPTION]...\n\n%s\nOptions:\n", p->name, p->about);
    for (int i = 0; i < n; i++) {
        char left[64];
        snprintf(left, sizeof left, "--%s %s", opts[i].name, opts[i].arg);
        printf("  %-20s %s\n", left, opts[i].help);
        ex_print_default(&opts[i]);
    }
    printf("  %-20s %s\n\n", "-h, --help", "print this help and exit");
    printf("Exit status: 0 done, 1 runtime error, 2 usage error (unknown "
           "option, bad value).\n");
}

/* Refuses an output path whose directory is missing or read-only. */
static inline void ex_check_output(const ex_program *p, const ex_option *o,
                                   const char *path)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    size_t len = strlen(dir);
    while (len > 1 && dir[len - 1] == '/') dir[--len] = 0; /* "out/" */
    char *slash = strrchr(dir, '/');
    if (!slash) snprintf(dir, sizeof dir, ".");
    else slash[slash == dir] = 0; /* "/x" -> "/", "a/b" -> "a" */
    if (access(dir, W_OK) != 0)
        ex_usage_error(p, "invalid --%s '%s': cannot write into directory "
                       "'%s': %s", o->name, path, dir, strerror(errno));
}

/* How many options begin with what follows the dashes of arg ("--t"
 * begins --train, --test and --threads: getopt_long refuses it). */
static inline int ex_prefix_count(const ex_option *opts, int n,
                                  const char *arg)
{
    size_t len = strcspn(arg + 2, "=");
    int count = 0;
    for (int i = 0; i < n; i++)
        count += strncmp(opts[i].name, arg + 2, len) == 0;
    return count;
}

/* Parses the command line into the table's variables (see the top of this
 * section); returns only when every option given is valid. */
static inline void ex_parse(int argc, char **argv, const ex_program *p,
                            const ex_option *opts, int n)
{
    struct option lo[EX_MAX_OPTIONS + 2];
    if (n > EX_MAX_OPTIONS) {
        fprintf(stderr, "%s: %d options, EX_MAX_OPTIONS is %d\n", p->name, n,
                EX_MAX_OPTIONS);
        exit(1);
    }
    for (int i = 0; i < n; i++)
        lo[i] = (struct option){opts[i].name, required_argument, NULL,
                                256 + i};
    lo[n] = (struct option){"help", no_argument, NULL, 'h'};
    lo[n + 1] = (struct option){NULL, 0, NULL, 0};
    opterr = 0; /* our messages, not getopt's */
    for (;;) {
        int c = getopt_long(argc, argv, ":h", lo, NULL);
        if (c == -1) break;
        if (c == 'h') {
            ex_help(p, opts, n);
            exit(0);
        }
        if (c == ':')
            ex_usage_error(p, "option '%s' needs a value", argv[optind - 1]);
        if (c == '?') {
            if (optopt)
                ex_usage_error(p, "unknown option '-%c'", optopt);
            const char *arg = argv[optind - 1];
            ex_usage_error(p, "%s option '%s'",
                           ex_prefix_count(opts, n, arg) > 1 ? "ambiguous"
                                                             : "unknown",
                           arg);
        }
        const ex_option *o = &opts[c - 256];
        if (ex_store(o, optarg) != 0) ex_bad_value(p, o, optarg);
        if (o->kind == EX_KIND_OUTPUT) ex_check_output(p, o, optarg);
    }
    if (optind < argc)
        ex_usage_error(p, "unexpected argument '%s' (options are --name VALUE)",
                       argv[optind]);
}

/* ---- several seeds: a list on the command line, a spread of results ---- */

/* Whether option `name` ("--seed") is on the command line, as "--seed V"
 * or "--seed=V": for options that exclude each other. */
static inline int ex_given(int argc, char **argv, const char *name)
{
    size_t len = strlen(name);
    for (int i = 1; i < argc && strcmp(argv[i], "--"); i++)
        if (!strncmp(argv[i], name, len) &&
            (!argv[i][len] || argv[i][len] == '='))
            return 1;
    return 0;
}


#define EX_MAX_SEEDS 16

/* Reads `list`, the value of --name: seeds separated by commas ("42,1,2"),
 * into seeds[EX_MAX_SEEDS]; returns how many. An empty item, a seed that
 * is not a whole number or too many seeds is a usage error (exit 2). */
static inline int ex_seed_list(const ex_program *p, const char *name,
                               const char *list, unsigned long long *seeds)
{
    int n = 0;
    for (const char *s = list;; s++) {
        char *end;
        errno = 0;
        unsigned long long u = strtoull(s, &end, 10);
        if (!isdigit((unsigned char)*s) || errno || (*end && *end != ',') ||
            n == EX_MAX_SEEDS)
            ex_usage_error(p, "invalid --%s '%s': expected 1 to %d seeds in "
                           "[0, %llu], separated by commas (42,1,2)",
                           name, list, EX_MAX_SEEDS, ULLONG_MAX);
        seeds[n++] = u;
        s = end;
        if (!*s) return n;
    }
}

/* The mean and range of a result over seeds; NaN values (a seed without
 * the result) are left out and n counts the others. */
typedef struct ex_spread {
    double mean, min, max;
    int n;
} ex_spread;

static inline ex_spread ex_spread_of(const double *v, int count)
{
    ex_spread s = {NAN, INFINITY, -INFINITY, 0};
    double sum = 0;
    for (int i = 0; i < count; i++) {
        if (isnan(v[i])) continue;
        sum += v[i];
        s.min = v[i] < s.min ? v[i] : s.min;
        s.max = v[i] > s.max ? v[i] : s.max;
        s.n++;
    }
    if (s.n) s.mean = sum / s.n;
    return s;
}

typedef struct dataset {
    nn_tensor *x_train, *y_train, *x_test, *y_test; /* y: one-hot */
    const char *name;
} dataset;

static inline nn_tensor *one_hot_or_die(nn_tensor *labels, int classes)
{
    nn_tensor *y;
    if (nn_one_hot(labels, classes, &y) != NN_OK) die("one-hot labels");
    nn_tensor_free(labels);
    return y;
}

/* A copy of the first n rows of t (all rows when n <= 0); frees t. */
static inline nn_tensor *head_rows(nn_tensor *t, int64_t n)
{
    int64_t shape[NN_MAX_RANK];
    int rank = nn_tensor_rank(t);
    nn_tensor_shape(t, shape, NN_MAX_RANK);
    if (n <= 0 || n >= shape[0]) return t;
    shape[0] = n;
    nn_tensor *h = nn_tensor_create(rank, shape);
    if (!h) die("subset");
    memcpy(nn_tensor_data(h), nn_tensor_data(t),
           (size_t)nn_tensor_size(h) * sizeof(float));
    nn_tensor_free(t);
    return h;
}

static inline nn_tensor *load_idx_or_die(const char *dir, const char *file,
                                         int scale)
{
    char path[1024];
    nn_tensor *t;
    snprintf(path, sizeof path, "%s/%s", dir, file);
    /* the library's message names the file */
    if (nn_load_idx(path, scale, &t) != NN_OK)
        die("Fashion-MNIST (Debian's dataset-fashion-mnist)");
    return t;
}

static inline void load_fashion(dataset *d, const char *dir)
{
    d->x_train = load_idx_or_die(dir, "train-images-idx3-ubyte.gz", 1);
    d->y_train = one_hot_or_die(
        load_idx_or_die(dir, "train-labels-idx1-ubyte.gz", 0), 10);
    d->x_test = load_idx_or_die(dir, "t10k-images-idx3-ubyte.gz", 1);
    d->y_test = one_hot_or_die(
        load_idx_or_die(dir, "t10k-labels-idx1-ubyte.gz", 0), 10);
    d->name = "Fashion-MNIST";
}

static inline void load_cifar(dataset *d, const char *dir)
{
    char train[5][1024], test[1024];
    const char *train_p[5], *test_p[1];
    nn_tensor *lab;
    for (int i = 0; i < 5; i++) {
        snprintf(train[i], sizeof train[i], "%s/data_batch_%d.bin", dir, i + 1);
        train_p[i] = train[i];
    }
    snprintf(test, sizeof test, "%s/test_batch.bin", dir);
    test_p[0] = test;
    if (nn_load_cifar10(train_p, 5, &d->x_train, &lab) != NN_OK)
        die("--data");
    d->y_train = one_hot_or_die(lab, 10);
    if (nn_load_cifar10(test_p, 1, &d->x_test, &lab) != NN_OK)
        die("--data");
    d->y_test = one_hot_or_die(lab, 10);
    d->name = "CIFAR-10";
}

/* CIFAR-10 from dir when given, else Fashion-MNIST; optional subsets. */
static inline void load_dataset(dataset *d, const char *cifar_dir,
                                int64_t n_train, int64_t n_test)
{
    if (cifar_dir)
        load_cifar(d, cifar_dir);
    else
        load_fashion(d, FASHION_DIR);
    d->x_train = head_rows(d->x_train, n_train);
    d->y_train = head_rows(d->y_train, n_train);
    d->x_test = head_rows(d->x_test, n_test);
    d->y_test = head_rows(d->y_test, n_test);
}

static inline void dataset_free(dataset *d)
{
    nn_tensor_free(d->x_train);
    nn_tensor_free(d->y_train);
    nn_tensor_free(d->x_test);
    nn_tensor_free(d->y_test);
}

/* Applies --threads, then loads --data (or Fashion-MNIST) cut to --train
 * and --test images. */
static inline void load_training_data(dataset *d, const train_args *t)
{
    if (t->threads > 0 && nn_set_num_threads(t->threads) != NN_OK)
        die("--threads");
    load_dataset(d, t->data, t->train, t->test);
}

static inline void print_summary(const nn_model *m)
{
    size_t need;
    if (nn_model_summary(m, NULL, 0, &need) != NN_OK) die("summary");
    char *buf = malloc(need);
    if (!buf || nn_model_summary(m, buf, need, NULL) != NN_OK) die("summary");
    fputs(buf, stdout);
    free(buf);
}

/* Progress: a bar with ETA on a terminal, one line per epoch otherwise. */
static inline int show_progress(const nn_progress *p, void *user)
{
    int tty = isatty(STDOUT_FILENO);
    (void)user;
    if (p->event == NN_PROGRESS_BATCH_END) {
        if (!tty) return 0;
        int width = 30, done = p->batch * width / p->batches;
        double eta = p->images_per_s > 0 && p->batch < p->batches
                         ? p->elapsed_s * (p->batches - p->batch) / p->batch
                         : 0;
        printf("\rEpoch %d/%d [", p->epoch + 1, p->epochs);
        for (int i = 0; i < width; i++) putchar(i < done ? '=' : '.');
        printf("] %d/%d  ETA %3.0fs  %6.0f img/s  loss %.4f acc %.4f ",
               p->batch, p->batches, eta, p->images_per_s, p->loss,
               p->accuracy);
        fflush(stdout);
        return 0;
    }
    if (tty) printf("\n");
    printf("Epoch %d/%d - %.1fs - %.0f img/s - loss: %.4f - accuracy: %.4f",
           p->epoch + 1, p->epochs, p->elapsed_s, p->images_per_s, p->loss,
           p->accuracy);
    if (!isnan(p->val_loss))
        printf(" - val_loss: %.4f - val_accuracy: %.4f", p->val_loss,
               p->val_accuracy);
    printf("\n");
    fflush(stdout);
    return 0;
}

/* The verdict of a gradient report in capitals, as the summary prints it. */
static inline const char *health_name(nn_health h)
{
    static const char *const names[4] = {"OK", "VANISHING", "EXPLODING",
                                         "NONFINITE"};
    return h >= 0 && h < 4 ? names[h] : "?";
}

/* The recipe of the Q3 examples: Adam, categorical cross-entropy, --epochs
 * and --batch-size, validation on the test images, progress per epoch.
 * Returns fit's history. */
static inline nn_history *fit_adam_validated(nn_model *m, const dataset *d,
                                             const train_args *t)
{
    if (nn_model_compile(m, nn_adam(NULL), NN_LOSS_CATEGORICAL_CROSSENTROPY,
                         NULL) != NN_OK)
        die("compile");
    nn_fit_opts fit = NN_FIT_OPTS_INIT;
    fit.epochs = t->epochs;
    fit.batch_size = t->batch_size;
    fit.val_x = d->x_test;
    fit.val_y = d->y_test;
    fit.progress = show_progress;
    nn_history *h = NULL;
    if (nn_model_fit(m, d->x_train, d->y_train, &fit, &h) != NN_OK)
        die("fit");
    return h;
}

/* Writes the history when --history was given. */
static inline void write_history(const nn_history *h, const char *path)
{
    if (!path) return;
    if (nn_history_write_csv(h, path) != NN_OK) die("--history");
    printf("History written to %s\n", path);
}

/* ResNet50 without its top at size x size x 3, frozen: Keras' flavour with
 * random weights, or torchvision's with the weights in `path`. */
static inline nn_model *frozen_resnet50(int size, const char *path,
                                        unsigned long long seed)
{
    nn_resnet_opts o = NN_RESNET_OPTS_INIT;
    o.include_top = 0;
    o.flavor = path ? NN_RESNET_TORCHVISION : NN_RESNET_KERAS;
    nn_model *base = nn_resnet50(size, size, 3, seed, &o);
    if (!base) die("ResNet50");
    if (path && nn_model_load_safetensors(base, path,
                                          NN_WEIGHTS_TORCHVISION_RESNET) !=
                    NN_OK)
        die("--weights");
    if (nn_model_set_trainable(base, 0) != NN_OK) die("freezing");
    return base;
}

/* The command line of the ResNet50 examples (Q3d, Q3e): the training
 * options with the given defaults, --weights and --history. */
typedef struct backbone_args {
    train_args t;
    const char *weights, *history;
} backbone_args;

/* extra: one more option row (mpi_fit's --model), or NULL. */
static inline backbone_args backbone_parse_with(int argc, char **argv,
                                                const ex_program *prog,
                                                train_args defaults,
                                                const ex_option *extra)
{
    backbone_args a = {defaults, NULL, NULL};
    ex_option opts[] = {
        EX_OPTS_TRAINING(&a.t),
        EX_OPT_WEIGHTS(&a.weights),
        EX_OPT_HISTORY(&a.history),
        {0},
    };
    int n = EX_COUNT(opts) - 1;
    if (extra) opts[n++] = *extra;
    ex_parse(argc, argv, prog, opts, n);
    return a;
}

static inline backbone_args backbone_parse(int argc, char **argv,
                                           const ex_program *prog,
                                           train_args defaults)
{
    return backbone_parse_with(argc, argv, prog, defaults, NULL);
}

/* Conv2D(64, 3x3, relu) - MaxPooling2D(2) - Flatten - Dropout(0.5) -
 * Dense(10, softmax) on x: the head of the Q3 models. */
static inline nn_layer *q3_head(nn_model *m, nn_layer *x)
{
    nn_conv2d_opts conv = NN_CONV2D_OPTS_INIT;
    conv.activation = NN_ACT_RELU;
    nn_dense_opts dense = NN_DENSE_OPTS_INIT;
    dense.activation = NN_ACT_SOFTMAX;
    x = nn_conv2d(m, x, 64, 3, 3, &conv);
    x = nn_maxpool2d(m, x, 2, 2, NULL);
    x = nn_flatten(m, x, NULL);
    x = nn_dropout(m, x, 0.5f, NULL);
    x = nn_dense(m, x, 10, &dense);
    if (!x) die("building the model");
    return x;
}

/* ---- Q3d: transfer learning on a frozen ResNet50, shared by
 * transfer_resnet50 and mpi_fit --model resnet-transfer ----
 *
 *   input h x w x 3 in [0, 255], preprocessed - Resizing(224, 224) -
 *   RandomFlip - RandomRotation(0.2) - resnet50 (frozen) - q3_head */

/* Q3d's defaults (--train, --test, --epochs, --batch-size, --seed): the
 * full recipe takes hours on two cores. */
#define Q3D_TRAIN_ARGS TRAIN_ARGS(256, 256, 1, 16, 42)

/* torchvision's weights expect its "torch" preprocessing, the random
 * Keras backbone Keras' "caffe". */
static inline nn_preprocess_mode q3d_mode(const char *weights)
{
    return weights ? NN_PREPROCESS_TORCH : NN_PREPROCESS_CAFFE;
}

/* [N, H, W, 1 or 3] in [0, 1] -> [N, H, W, 3] in [0, 255], preprocessed;
 * frees t. */
static inline nn_tensor *q3d_input(nn_tensor *t, nn_preprocess_mode mode)
{
    int64_t s[4];
    nn_tensor_shape(t, s, 4);
    int64_t c = s[3], pixels = s[0] * s[1] * s[2];
    s[3] = 3;
    nn_tensor *rgb = nn_tensor_create(4, s);
    if (!rgb) die("images");
    const float *src = nn_tensor_data(t);
    float *dst = nn_tensor_data(rgb);
    for (int64_t p = 0; p < pixels; p++)
        for (int k = 0; k < 3; k++)
            dst[3 * p + k] = 255.0f * src[c * p + (c == 3 ? k : 0)];
    nn_tensor_free(t);
    if (nn_preprocess_input(rgb, mode) != NN_OK) die("preprocess_input");
    return rgb;
}

/* Loads the training and test images (load_training_data) and makes them
 * the model's input for the backbone of `weights`. */
static inline void q3d_load(dataset *d, const train_args *t,
                            const char *weights)
{
    load_training_data(d, t);
    d->x_train = q3d_input(d->x_train, q3d_mode(weights));
    d->x_test = q3d_input(d->x_test, q3d_mode(weights));
}

/* The Q3d model on h x w x 3 images around the frozen backbone `base`
 * (frozen_resnet50(224, ...)), whose weights it shares. */
static inline nn_model *q3d_build(nn_model *base, int h, int w,
                                  unsigned long long seed)
{
    nn_model *m = nn_model_create(seed);
    int shape[3] = {h, w, 3};
    nn_layer *x = m ? nn_input(m, 3, shape, NULL) : NULL;
    x = nn_resizing(m, x, 224, 224, NULL);
    x = nn_random_flip(m, x, NN_FLIP_HORIZONTAL_AND_VERTICAL, NULL);
    x = nn_random_rotation(m, x, -0.2f, 0.2f, NULL);
    x = nn_model_apply(m, x, base, NULL, NULL);
    q3_head(m, x);
    return m;
}

/* ---- the Q3a CNN, shared by cifar_cnn (Q3a) and cifar_augment (Q3b) ----
 *
 *   [augmentation] - Conv2D(32, 3x3, relu) - MaxPooling2D(2) -
 *   Conv2D(64, 3x3, relu) - MaxPooling2D(2) - Flatten - Dropout(0.5) -
 *   Dense(10, softmax)
 *
 * Categorical cross-entropy, Adam, batch 128, validation on the test
 * split; CIFAR-10 with --data DIR, Fashion-MNIST otherwise. */

#define Q3_ABOUT_DATA                                                         \
    "Data: Fashion-MNIST (Debian's dataset-fashion-mnist) by default,\n"      \
    "CIFAR-10 with --data DIR; all training images, validation on the\n"      \
    "test images, Adam, categorical cross-entropy, batch 128, 10 epochs\n"    \
    "(the assignment's recipe; README.md's figures: `make curves-docs`,\n"    \
    "seeds 42, 1 and 2).\n"                                                   \
    "Nothing is written unless --history or --save is given.\n"

/* Adds layers right after the input (NULL: none); returns the last. */
typedef nn_layer *(*q3_front_fn)(nn_model *m, nn_layer *x);

/* The Q3a model on an input of h x w x c. */
static inline nn_model *q3_build_cnn(int h, int w, int c,
                                     unsigned long long seed,
                                     q3_front_fn front)
{
    nn_model *m = nn_model_create(seed);
    int shape[3] = {h, w, c};
    nn_conv2d_opts conv = NN_CONV2D_OPTS_INIT;
    conv.activation = NN_ACT_RELU;

    nn_layer *x = m ? nn_input(m, 3, shape, NULL) : NULL;
    if (front && x) x = front(m, x);
    x = nn_conv2d(m, x, 32, 3, 3, &conv);
    x = nn_maxpool2d(m, x, 2, 2, NULL);
    q3_head(m, x);
    return m;
}

/* The command line of the Q3 programs (cifar_cnn, cifar_augment,
 * mpi_fit): the training options, --history and --save. */
typedef struct q3_args {
    train_args t;
    const char *history, *save;
} q3_args;

/* extra: one more option row (mpi_fit's --model), or NULL. */
static inline q3_args q3_parse_with(int argc, char **argv,
                                    const ex_program *prog,
                                    const ex_option *extra)
{
    q3_args a = {TRAIN_ARGS_INIT, NULL, NULL};
    ex_option opts[] = {
        EX_OPTS_TRAINING(&a.t),
        EX_OPT_HISTORY(&a.history),
        EX_OUTPUT("save", &a.save, "FILE",
                  "save the trained model (nn_model_save) to FILE",
                  "not saved"),
        {0},
    };
    int n = EX_COUNT(opts) - 1;
    if (extra) opts[n++] = *extra;
    ex_parse(argc, argv, prog, opts, n);
    return a;
}

static inline q3_args q3_parse(int argc, char **argv, const ex_program *prog)
{
    return q3_parse_with(argc, argv, prog, NULL);
}

/* Parses the command line, loads the data, trains, evaluates and writes
 * what was asked for. */
static inline int q3_main(int argc, char **argv, const ex_program *prog,
                          q3_front_fn front)
{
    q3_args a = q3_parse(argc, argv, prog);
    train_args t = a.t;
    const char *history = a.history, *save = a.save;

    dataset d;
    load_training_data(&d, &t);
    printf("libnn %s - %s: %lld training and %lld test images of "
           "%lldx%lldx%lld\n",
           nn_version(), d.name, (long long)nn_tensor_dim(d.x_train, 0),
           (long long)nn_tensor_dim(d.x_test, 0),
           (long long)nn_tensor_dim(d.x_train, 1),
           (long long)nn_tensor_dim(d.x_train, 2),
           (long long)nn_tensor_dim(d.x_train, 3));

    nn_model *m = q3_build_cnn((int)nn_tensor_dim(d.x_train, 1),
                               (int)nn_tensor_dim(d.x_train, 2),
                               (int)nn_tensor_dim(d.x_train, 3), t.seed,
                               front);
    print_summary(m);
    nn_history *h = fit_adam_validated(m, &d, &t);

    float loss, acc;
    if (nn_model_evaluate(m, d.x_test, d.y_test, 256, &loss, &acc) != NN_OK)
        die("evaluate");
    printf("Test loss: %.4f - test accuracy: %.4f (%lld images)\n", loss, acc,
           (long long)nn_tensor_dim(d.x_test, 0));
    write_history(h, history);
    if (save) {
        if (nn_model_save(m, save, NN_SAVE_DEFAULT) != NN_OK) die("--save");
        printf("Model saved to %s\n", save);
    }
    nn_history_free(h);
    nn_model_free(m);
    dataset_free(&d);
    return 0;
}

#endif

/* nn-inspect: classifies PNG images with a libnn model file that carries
 * its preprocessing and decision (nn_model_set_preprocess), one JSON line
 * per image. Built from the public API alone (include/nn.h), as a product
 * would be, and installed with the library.
 *
 *   nn-inspect [--threads N] MODEL (FILE.png | DIR)...
 *
 * Each image goes through the call a product's inspection line makes,
 * nn_context_classify_u8: the PNG becomes the 8-bit frame a camera would
 * deliver, and the model file's own normalisation, resizing and threshold
 * apply. A bad image is reported on its own line and the rest go on; a
 * bad model stops everything before any image is read. Exit status:
 * 0 every image classified, 1 some image failed, 2 usage error, 3 the
 * model is unusable (docs/inference.md). */
#include <nn.h>

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

enum { EXIT_ALL_GOOD = 0, EXIT_SOME_FAILED = 1, EXIT_USAGE = 2,
       EXIT_BAD_MODEL = 3 };

#define THREADS_MAX 256

static const char USAGE[] =
    "Usage: nn-inspect [--threads N] MODEL (FILE.png | DIR)...\n"
    "\n"
    "Classifies PNG images with MODEL, a libnn model file that carries its\n"
    "preprocessing and decision threshold (nn_model_set_preprocess), and\n"
    "prints one JSON line per image, in the order given:\n"
    "  {\"file\":\"a.png\",\"class\":2,\"probability\":0.91,\"score\":0.93,"
    "\"verdict\":\"defective\",\"ms\":0.41}\n"
    "  {\"file\":\"b.png\",\"error\":\"png: 'b.png' is truncated\"}\n"
    "class is the predicted class and probability its probability; score\n"
    "is the probability of the positive classes, verdict \"defective\" where\n"
    "score >= the model's threshold, else \"good\"; ms is the time of the\n"
    "classification after a warm-up (decoding excluded). A DIR contributes\n"
    "its *.png files (not its subdirectories), sorted by name. Images are\n"
    "decoded as 8-bit frames (16-bit PNGs are rounded to 8 bits), gray or\n"
    "RGB as the model's input, in the channel order its preprocessing\n"
    "declares.\n"
    "\n"
    "Options:\n"
    "  --threads N   N worker threads (1..256), each with its own context;\n"
    "                default 1. With more than one, libnn's own kernels run\n"
    "                on one thread each.\n"
    "  -h, --help    print this help and exit\n"
    "  --version     print libnn's version and exit\n"
    "\n"
    "Exit status: 0 every image classified, 1 some image failed (its line\n"
    "says why), 2 usage error, 3 the model is unusable.\n";

__attribute__((format(printf, 1, 2))) _Noreturn static void
usage_error(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "nn-inspect: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'nn-inspect --help' for more information.\n");
    exit(EXIT_USAGE);
}

/* ---------------- the model ---------------- */

typedef struct model_info {
    nn_model *m;
    nn_preprocess_opts prep;
    int channels; /* of the input: 1 (gray) or 3 (RGB) */
    int classes;  /* probabilities a verdict holds */
} model_info;

static void bad_model(const char *path, const char *why)
{
    fprintf(stderr, "nn-inspect: cannot use model '%s': %s\n", path, why);
    exit(EXIT_BAD_MODEL);
}

static model_info load_model(const char *path)
{
    model_info mi = {.m = nn_model_load(path)};
    if (!mi.m) bad_model(path, nn_last_error());
    mi.prep = (nn_preprocess_opts)NN_PREPROCESS_OPTS_INIT;
    if (nn_model_get_preprocess(mi.m, &mi.prep) != NN_OK)
        bad_model(path, "it carries no preprocessing and threshold; set "
                        "them with nn_model_set_preprocess before saving it");
    int in[NN_MAX_RANK], out[NN_MAX_RANK];
    int rin = nn_layer_output_shape(nn_model_input(mi.m), in, NN_MAX_RANK);
    int rout = nn_layer_output_shape(nn_model_output(mi.m), out, NN_MAX_RANK);
    if (rin != 3 || (in[2] != 1 && in[2] != 3))
        bad_model(path, "its input is not a gray or RGB image "
                        "[height, width, 1 or 3], which PNG files give");
    if (rout != 1) bad_model(path, "its output is not a vector of classes");
    mi.channels = in[2];
    mi.classes = out[0] == 1 ? 2 : out[0];
    return mi;
}

/* ---------------- the images ---------------- */

typedef struct item {
    char *file;
    char *error;   /* NULL: classified */
    nn_verdict v;  /* probs points into the item's own buffer */
    float *probs;
    double ms;
    int done;
} item;

typedef struct job {
    item *items;
    size_t n, cap;
} job;

_Noreturn static void out_of_memory(void)
{
    fprintf(stderr, "nn-inspect: out of memory\n");
    exit(EXIT_SOME_FAILED);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) out_of_memory();
    return p;
}

static char *xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    return memcpy(xmalloc(n), s, n);
}

static item *add_item(job *j, const char *file)
{
    if (j->n == j->cap) {
        j->cap = j->cap ? 2 * j->cap : 64;
        item *p = realloc(j->items, j->cap * sizeof *p);
        if (!p) out_of_memory();
        j->items = p;
    }
    item *it = &j->items[j->n++];
    memset(it, 0, sizeof *it);
    it->file = xstrdup(file);
    return it;
}

static void set_error(item *it, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void set_error(item *it, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    it->error = xstrdup(msg);
}

static int has_png_suffix(const char *name)
{
    size_t n = strlen(name);
    return n > 4 && strcasecmp(name + n - 4, ".png") == 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The *.png files of a directory, sorted; subdirectories are skipped. */
static void add_directory(job *j, const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) {
        set_error(add_item(j, dir), "cannot read directory '%s': %s", dir,
                  strerror(errno));
        return;
    }
    size_t n = 0, cap = 16;
    char **names = xmalloc(cap * sizeof *names);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!has_png_suffix(e->d_name)) continue;
        size_t len = strlen(dir) + strlen(e->d_name) + 2;
        char *path = xmalloc(len);
        snprintf(path, len, "%s%s%s", dir,
                 dir[strlen(dir) - 1] == '/' ? "" : "/", e->d_name);
        struct stat st;
        if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
            free(path);
            continue;
        }
        if (n == cap) {
            cap *= 2;
            char **p = realloc(names, cap * sizeof *names);
            if (!p) out_of_memory();
            names = p;
        }
        names[n++] = path;
    }
    closedir(d);
    qsort(names, n, sizeof *names, by_name);
    for (size_t i = 0; i < n; i++) {
        add_item(j, names[i]);
        free(names[i]);
    }
    free(names);
}

static void add_argument(job *j, const char *arg)
{
    struct stat st;
    if (stat(arg, &st) == 0 && S_ISDIR(st.st_mode))
        add_directory(j, arg);
    else
        add_item(j, arg); /* a missing file is reported on its line */
}

/* ---------------- classifying ---------------- */

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return 1e3 * (double)t.tv_sec + 1e-6 * (double)t.tv_nsec;
}

/* The PNG as the camera frame the model expects: 8-bit samples in the
 * channel order its preprocessing declares (PNG files hold RGB). */
static uint8_t *png_frame(const char *path, const model_info *mi, int *h,
                          int *w)
{
    nn_tensor *t = NULL;
    if (nn_image_load(path, mi->channels, NULL, &t) != NN_OK) return NULL;
    *h = (int)nn_tensor_dim(t, 0);
    *w = (int)nn_tensor_dim(t, 1);
    int c = mi->channels;
    int64_t n = nn_tensor_size(t);
    const float *v = nn_tensor_data_const(t);
    uint8_t *px = xmalloc((size_t)n);
    for (int64_t i = 0; i < n; i++) px[i] = (uint8_t)lrintf(v[i] * 255.0f);
    if (c == 3 && mi->prep.channel_order == NN_CHANNELS_REVERSED)
        for (int64_t i = 0; i < n; i += 3) {
            uint8_t r = px[i];
            px[i] = px[i + 2];
            px[i + 2] = r;
        }
    nn_tensor_free(t);
    return px;
}

static void classify_item(nn_context *ctx, const model_info *mi, item *it)
{
    if (it->error) return; /* e.g. an unreadable directory */
    int h = 0, w = 0;
    uint8_t *px = png_frame(it->file, mi, &h, &w);
    if (!px) {
        set_error(it, "%s", nn_last_error());
        return;
    }
    it->probs = xmalloc((size_t)mi->classes * sizeof *it->probs);
    it->v = (nn_verdict)NN_VERDICT_INIT;
    it->v.probs = it->probs;
    it->v.num_probs = mi->classes;
    double t0 = now_ms();
    nn_status s =
        nn_context_classify_u8(ctx, px, h, w, mi->channels, 0, &it->v);
    it->ms = now_ms() - t0;
    if (s != NN_OK) set_error(it, "%s", nn_last_error());
    free(px);
}

/* One blank frame of the model's input size: the first call plans the
 * context's memory, so the times printed are those of the steady state. */
static nn_status warm_up(nn_context *ctx, const model_info *mi)
{
    int in[NN_MAX_RANK];
    nn_layer_output_shape(nn_model_input(mi->m), in, NN_MAX_RANK);
    size_t n = (size_t)in[0] * in[1] * in[2];
    uint8_t *px = xmalloc(n);
    memset(px, 0, n);
    nn_verdict v = NN_VERDICT_INIT;
    nn_status s = nn_context_classify_u8(ctx, px, in[0], in[1], in[2], 0, &v);
    free(px);
    return s;
}

/* Workers take the next image; the main thread prints in order. */
typedef struct shared {
    job *j;
    const model_info *mi;
    size_t next;
    pthread_mutex_t lock;
    pthread_cond_t done;
} shared;

typedef struct worker {
    shared *sh;
    nn_context *ctx;
} worker;

static void *work(void *arg)
{
    worker *w = arg;
    shared *sh = w->sh;
    for (;;) {
        pthread_mutex_lock(&sh->lock);
        size_t i = sh->next++;
        pthread_mutex_unlock(&sh->lock);
        if (i >= sh->j->n) return NULL;
        classify_item(w->ctx, sh->mi, &sh->j->items[i]);
        pthread_mutex_lock(&sh->lock);
        sh->j->items[i].done = 1;
        pthread_cond_broadcast(&sh->done);
        pthread_mutex_unlock(&sh->lock);
    }
}

/* ---------------- JSON ---------------- */

/* Length of the valid UTF-8 sequence at s, or 0. */
static int utf8_len(const unsigned char *s)
{
    int n = s[0] < 0x80 ? 1 : s[0] >= 0xc2 && s[0] < 0xe0 ? 2
                           : s[0] >= 0xe0 && s[0] < 0xf0 ? 3
                           : s[0] >= 0xf0 && s[0] < 0xf5 ? 4 : 0;
    for (int k = 1; k < n; k++)
        if ((s[k] & 0xc0) != 0x80) return 0;
    return n;
}

/* A JSON string: quotes, backslashes and control characters escaped;
 * bytes that are not UTF-8 (a file name can hold any) become U+FFFD. */
static void put_json_string(const char *text)
{
    const unsigned char *s = (const unsigned char *)text;
    putchar('"');
    while (*s) {
        int n = utf8_len(s);
        if (n == 0) {
            fputs("\\ufffd", stdout);
            s++;
        } else if (*s == '"' || *s == '\\') {
            printf("\\%c", *s++);
        } else if (*s < 0x20) {
            printf("\\u%04x", *s++);
        } else {
            fwrite(s, 1, (size_t)n, stdout);
            s += n;
        }
    }
    putchar('"');
}

/* A number, or null where JSON has none (NaN, infinities). */
static void put_json_number(const char *fmt, double v)
{
    if (isfinite(v))
        printf(fmt, v);
    else
        fputs("null", stdout);
}

static void print_item(const item *it, const model_info *mi)
{
    fputs("{\"file\":", stdout);
    put_json_string(it->file);
    if (it->error) {
        fputs(",\"error\":", stdout);
        put_json_string(it->error);
        fputs("}\n", stdout);
        return;
    }
    int k = it->v.predicted_class;
    printf(",\"class\":%d,\"probability\":", k);
    put_json_number("%.6g", k >= 0 && k < mi->classes ? it->probs[k] : NAN);
    fputs(",\"score\":", stdout);
    put_json_number("%.6g", it->v.score);
    printf(",\"verdict\":\"%s\",\"ms\":", it->v.defective ? "defective"
                                                           : "good");
    put_json_number("%.3f", it->ms);
    fputs("}\n", stdout);
}

/* ---------------- main ---------------- */

static int parse_threads(const char *v)
{
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (end == v || *end || errno || n < 1 || n > THREADS_MAX)
        usage_error("invalid --threads '%s': expected an integer in [1, %d]",
                    v, THREADS_MAX);
    return (int)n;
}

static int parse(int argc, char **argv)
{
    static const struct option lo[] = {{"threads", required_argument, 0, 't'},
                                       {"help", no_argument, 0, 'h'},
                                       {"version", no_argument, 0, 'V'},
                                       {0, 0, 0, 0}};
    int threads = 1;
    opterr = 0;
    for (;;) {
        int c = getopt_long(argc, argv, ":h", lo, NULL);
        if (c == -1) break;
        switch (c) {
        case 't': threads = parse_threads(optarg); break;
        case 'h': fputs(USAGE, stdout); exit(EXIT_ALL_GOOD);
        case 'V': printf("nn-inspect (libnn %s)\n", nn_version()); exit(0);
        case ':': usage_error("option '%s' needs a value", argv[optind - 1]);
        default: usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (argc - optind < 2)
        usage_error("give a model file and at least one image or directory");
    return threads;
}

int main(int argc, char **argv)
{
    int threads = parse(argc, argv);
    model_info mi = load_model(argv[optind]);
    job j = {0};
    for (int i = optind + 1; i < argc; i++) add_argument(&j, argv[i]);
    if ((size_t)threads > j.n) threads = j.n ? (int)j.n : 1;
    if (threads > 1) nn_set_num_threads(1); /* the workers share the cores */
    shared sh = {&j, &mi, 0, PTHREAD_MUTEX_INITIALIZER,
                 PTHREAD_COND_INITIALIZER};
    worker w[THREADS_MAX];
    pthread_t tid[THREADS_MAX];
    for (int t = 0; t < threads; t++) {
        w[t] = (worker){&sh, nn_context_create(mi.m)};
        if (!w[t].ctx || warm_up(w[t].ctx, &mi) != NN_OK)
            bad_model(argv[optind], nn_last_error());
        if (pthread_create(&tid[t], NULL, work, &w[t]) != 0) {
            fprintf(stderr, "nn-inspect: cannot start a thread\n");
            return EXIT_SOME_FAILED;
        }
    }
    int failed = 0;
    for (size_t i = 0; i < j.n; i++) {
        pthread_mutex_lock(&sh.lock);
        while (!j.items[i].done) pthread_cond_wait(&sh.done, &sh.lock);
        pthread_mutex_unlock(&sh.lock);
        print_item(&j.items[i], &mi);
        fflush(stdout);
        failed |= j.items[i].error != NULL;
        free(j.items[i].file);
        free(j.items[i].error);
        free(j.items[i].probs);
    }
    for (int t = 0; t < threads; t++) {
        pthread_join(tid[t], NULL);
        nn_context_free(w[t].ctx);
    }
    free(j.items);
    nn_model_free(mi.m);
    return failed ? EXIT_SOME_FAILED : EXIT_ALL_GOOD;
}

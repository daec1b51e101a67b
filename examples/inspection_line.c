/* A simulated inspection line: the shape of a product that embeds libnn.
 *
 *   cameras (threads) --frames--> bounded queue --> workers (threads) --> verdicts
 *
 * Each camera delivers 8-bit RGB frames at a fixed rate (pre-generated
 * surfaces of the synthetic defect data, so that the line measures
 * inspection, not image synthesis). A camera never waits: when the queue
 * is full, its frame is dropped and counted, as a real line would flag
 * that part as uninspected. Each worker owns one nn_context and calls
 * nn_context_classify_u8 on the frames it takes; the model's file carries
 * the normalisation and the threshold, so the worker passes raw camera
 * bytes. A few frames are corrupt on purpose (no pixels, the wrong size):
 * each is reported as an error and the line goes on.
 *
 * At the end it prints the throughput, the latency from capture to
 * verdict (median, 99th percentile, maximum), dropped and corrupt frames,
 * and the verdicts against the frames' true labels.
 *
 * What a product copies from here (docs/inference.md):
 *   - load the model once; create one context per worker thread, never
 *     share one between threads;
 *   - warm each context up with one frame before the line starts: the
 *     first call at a batch size plans the context's memory, later calls
 *     allocate nothing;
 *   - treat a failed call as a verdict on that frame only: the message
 *     (nn_last_error) is per thread and the context stays usable;
 *   - with several workers, run libnn's own kernels on one thread each
 *     (nn_set_num_threads(1), --threads) so the workers share the cores
 *     instead of fighting over them.
 *
 * `inspection_line --help` lists the options. Without --model it trains
 * a small classifier in memory first (a few seconds). */
#include "common.h"
#include "defect_model.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

static const ex_program PROGRAM = {
    "inspection_line",
    "A simulated inspection line: camera threads deliver 8-bit frames of\n"
    "the synthetic surface-defect data at --fps each into a bounded queue\n"
    "(--queue; a frame that finds it full is dropped), and --workers threads,\n"
    "each with its own nn_context, classify them with the model's stored\n"
    "preprocessing and threshold (nn_context_classify_u8). Every --corrupt\n"
    "th frame of a camera is corrupt (no pixels, or the wrong size) and is\n"
    "reported as an error without stopping the line. Prints throughput,\n"
    "capture-to-verdict latency (p50, p99, max), dropped and corrupt frames\n"
    "and the verdicts against the true labels. --model FILE uses a saved\n"
    "model that carries its preprocessing (nn_model_set_preprocess);\n"
    "without it a small classifier is trained in memory first. Writes no\n"
    "file.\n"};

#define POOL 64 /* distinct frames the cameras cycle through */

/* ---------------- the model ---------------- */

typedef struct line_model {
    nn_model *m;
    int h, w, c;
    float threshold;
    bool trained_here; /* no --model: the in-memory stand-in */
} line_model;

/* A small classifier of 64 x 64 surfaces, good or defective, trained on
 * `n` generated images (half of them defective) normalised through
 * nn_image_from_u8 with the preprocessing it will carry. Its last pooling
 * takes the maximum over the whole image: a defect is small, and an
 * average would dilute it. The threshold is the largest that catches 95%
 * of the defective training images; a product chooses it on validation
 * data instead (docs/metrics.md). */
static nn_model *train_default(unsigned long long seed, int n, int epochs)
{
    enum { S = 64 };
    printf("Training a small classifier in memory (%d surfaces, %dx%d)...\n",
           n, S, S);
    fflush(stdout);
    nn_defects_opts d = NN_DEFECTS_OPTS_INIT;
    d.count = n;
    d.height = d.width = S;
    d.seed = seed;
    nn_tensor *img, *mask, *kind;
    if (nn_synthetic_defects(&d, &img, &mask, &kind) != NN_OK)
        die("synthetic data");
    /* stored with the model: training sees exactly what the line feeds */
    nn_preprocess_opts p = dm_preprocess(DM_SOFTMAX2, 0.5f);
    if (dm_normalise(img, &p) != NN_OK) die("normalising");
    float *label = nn_tensor_data(kind); /* kind of defect -> defective */
    for (int i = 0; i < n; i++) label[i] = label[i] != 0;

    nn_model *m = nn_model_create(seed);
    int shape[3] = {S, S, 3};
    nn_layer *x = nn_input(m, 3, shape, NULL);
    nn_conv2d_opts c = NN_CONV2D_OPTS_INIT;
    c.padding = NN_PADDING_SAME;
    c.activation = NN_ACT_RELU;
    x = nn_conv2d(m, x, 8, 3, 3, &c);
    x = nn_maxpool2d(m, x, 2, 2, NULL);
    x = nn_conv2d(m, x, 16, 3, 3, &c);
    x = nn_maxpool2d(m, x, 2, 2, NULL);
    x = nn_conv2d(m, x, 32, 3, 3, &c);
    x = nn_maxpool2d(m, x, S / 4, S / 4, NULL);
    x = nn_flatten(m, x, NULL);
    nn_dense_opts dense = NN_DENSE_OPTS_INIT;
    dense.activation = NN_ACT_SOFTMAX;
    if (!nn_dense(m, x, 2, &dense)) die("building the model");
    nn_adam_opts a = NN_ADAM_OPTS_INIT;
    a.learning_rate = 0.003f;
    if (nn_model_compile(m, nn_adam(&a),
                         NN_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY,
                         NULL) != NN_OK)
        die("compile");
    nn_fit_opts f = NN_FIT_OPTS_INIT;
    f.epochs = epochs;
    f.batch_size = 8;
    f.progress = show_progress;
    if (nn_model_fit(m, img, kind, &f, NULL) != NN_OK) die("fit");

    nn_binary_opts bo = NN_BINARY_OPTS_INIT;
    bo.positive_class = p.positive_class;
    nn_curve *curve = NULL;
    nn_binary_report r = {.size = sizeof r};
    if (nn_model_evaluate_binary(m, img, kind, 32, &bo, NULL, &curve) !=
            NN_OK ||
        nn_curve_threshold_for_recall(curve, 0.95, &r) != NN_OK)
        die("choosing the threshold");
    p.threshold = r.threshold;
    if (nn_model_set_preprocess(m, &p) != NN_OK) die("preprocessing");
    nn_curve_free(curve);
    nn_tensor_free(img);
    nn_tensor_free(mask);
    nn_tensor_free(kind);
    return m;
}

static line_model open_model(const char *path, unsigned long long seed,
                             int train_n, int epochs)
{
    line_model lm = {0};
    lm.m = path ? nn_model_load(path) : train_default(seed, train_n, epochs);
    if (!lm.m) die("--model");
    nn_preprocess_opts p = NN_PREPROCESS_OPTS_INIT;
    if (nn_model_get_preprocess(lm.m, &p) != NN_OK) die("--model");
    int in[NN_MAX_RANK];
    if (nn_layer_output_shape(nn_model_input(lm.m), in, NN_MAX_RANK) != 3 ||
        (in[2] != 1 && in[2] != 3)) {
        fprintf(stderr, "inspection_line: the model's input is not a gray "
                        "or RGB image, which the camera simulation makes\n");
        exit(1);
    }
    lm.h = in[0];
    lm.w = in[1];
    lm.c = in[2];
    lm.threshold = p.threshold;
    lm.trained_here = !path;
    return lm;
}

/* ---------------- frames and the queue ---------------- */

typedef struct frame {
    const uint8_t *pixels; /* NULL: a corrupt frame without pixels */
    int h, w;              /* may differ from the model's: corrupt */
    int camera;
    int64_t seq;
    double captured; /* seconds_now() at capture */
    bool defective;  /* the truth, to score the verdicts */
} frame;

/* A bounded FIFO of frames. Cameras push without waiting; workers pop and
 * wait while it is empty and the line runs. */
typedef struct queue {
    frame *slot;
    int cap, head, count;
    bool closed; /* the cameras have stopped: workers drain, then leave */
    pthread_mutex_t lock;
    pthread_cond_t not_empty;
} queue;

static bool queue_push(queue *q, const frame *f)
{
    pthread_mutex_lock(&q->lock);
    bool room = q->count < q->cap;
    if (room) {
        q->slot[(q->head + q->count) % q->cap] = *f;
        q->count++;
        pthread_cond_signal(&q->not_empty);
    }
    pthread_mutex_unlock(&q->lock);
    return room;
}

/* false once the queue is closed and empty */
static bool queue_pop(queue *q, frame *f)
{
    pthread_mutex_lock(&q->lock);
    while (q->count == 0 && !q->closed)
        pthread_cond_wait(&q->not_empty, &q->lock);
    bool got = q->count > 0;
    if (got) {
        *f = q->slot[q->head];
        q->head = (q->head + 1) % q->cap;
        q->count--;
    }
    pthread_mutex_unlock(&q->lock);
    return got;
}

static void queue_close(queue *q)
{
    pthread_mutex_lock(&q->lock);
    q->closed = true;
    pthread_cond_broadcast(&q->not_empty);
    pthread_mutex_unlock(&q->lock);
}

/* ---------------- the line ---------------- */

typedef struct line {
    line_model model;
    const uint8_t *pool; /* POOL frames of h x w x c */
    const bool *pool_defective;
    int fps, corrupt_every;
    double seconds;
    queue q;
    /* counters and the latencies of classified frames */
    atomic_llong captured, dropped, corrupt, classified;
    atomic_llong judged_defective, caught, false_rejects, true_defective;
    double *latency;
    atomic_llong n_latency;
    long long latency_cap;
    pthread_mutex_t print_lock;
} line;

typedef struct camera_arg {
    line *ln;
    int id;
} camera_arg;

static void sleep_until(double t)
{
    struct timespec ts = {(time_t)t, (long)((t - floor(t)) * 1e9)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) ==
           EINTR) {
    }
}

/* Frame k of a camera: the pool frame it cycles to, or a corrupt one. */
static frame make_frame(const line *ln, int camera, int64_t k)
{
    const line_model *lm = &ln->model;
    int64_t i = (k + (int64_t)camera * 17) % POOL; /* cameras see other parts */
    frame f = {ln->pool + (size_t)i * lm->h * lm->w * lm->c, lm->h, lm->w,
               camera, k, seconds_now(), ln->pool_defective[i]};
    if (ln->corrupt_every > 0 && (k + 1) % ln->corrupt_every == 0) {
        /* alternately a frame without pixels and one of the wrong size */
        if (((k + 1) / ln->corrupt_every) % 2)
            f.pixels = NULL;
        else
            f.h = lm->h - 7;
    }
    return f;
}

static void *camera(void *arg)
{
    camera_arg *ca = arg;
    line *ln = ca->ln;
    double period = 1.0 / ln->fps, start = seconds_now();
    int64_t frames = (int64_t)(ln->seconds * ln->fps);
    for (int64_t k = 0; k < frames; k++) {
        sleep_until(start + (double)k * period);
        frame f = make_frame(ln, ca->id, k);
        atomic_fetch_add(&ln->captured, 1);
        if (!queue_push(&ln->q, &f)) atomic_fetch_add(&ln->dropped, 1);
    }
    return NULL;
}

typedef struct worker_arg {
    line *ln;
    nn_context *ctx;
} worker_arg;

/* The worker's side of a failed call: the message belongs to this thread
 * (nn_last_error), the frame is rejected, the context carries on. */
static void report_error(line *ln, const frame *f, nn_status s)
{
    atomic_fetch_add(&ln->corrupt, 1);
    pthread_mutex_lock(&ln->print_lock);
    printf("camera %d frame %lld: not inspected (%s): %s\n", f->camera,
           (long long)f->seq, nn_status_name(s), nn_last_error());
    pthread_mutex_unlock(&ln->print_lock);
}

static void record(line *ln, const frame *f, const nn_verdict *v)
{
    long long i = atomic_fetch_add(&ln->n_latency, 1);
    if (i < ln->latency_cap) ln->latency[i] = seconds_now() - f->captured;
    atomic_fetch_add(&ln->classified, 1);
    atomic_fetch_add(&ln->judged_defective, v->defective);
    atomic_fetch_add(&ln->true_defective, f->defective);
    atomic_fetch_add(&ln->caught, v->defective && f->defective);
    atomic_fetch_add(&ln->false_rejects, v->defective && !f->defective);
}

static void *worker(void *arg)
{
    worker_arg *wa = arg;
    line *ln = wa->ln;
    frame f;
    while (queue_pop(&ln->q, &f)) {
        nn_verdict v = NN_VERDICT_INIT;
        nn_status s = nn_context_classify_u8(wa->ctx, f.pixels, f.h, f.w,
                                             ln->model.c, 0, &v);
        if (s != NN_OK)
            report_error(ln, &f, s);
        else
            record(ln, &f, &v);
    }
    return NULL;
}

/* ---------------- set-up and report ---------------- */

/* The frames the cameras cycle through, at the model's input size, about
 * one in ten defective as on a real line. */
static void make_pool(line *ln, unsigned long long seed, bool **defective)
{
    const line_model *lm = &ln->model;
    nn_defects_opts d = NN_DEFECTS_OPTS_INIT;
    d.count = POOL;
    d.height = lm->h;
    d.width = lm->w;
    d.channels = lm->c;
    d.defect_fraction = 0.1f;
    d.seed = seed + 1000;
    nn_tensor *img, *mask, *labels;
    if (nn_synthetic_defects(&d, &img, &mask, &labels) != NN_OK)
        die("camera frames");
    ln->pool = dm_to_u8(img);
    if (!ln->pool) die("frames");
    *defective = malloc(POOL * sizeof **defective);
    if (!*defective) die("frames");
    for (int i = 0; i < POOL; i++)
        (*defective)[i] = nn_tensor_data_const(labels)[i] != 0;
    ln->pool_defective = *defective;
    nn_tensor_free(img);
    nn_tensor_free(mask);
    nn_tensor_free(labels);
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The q-quantile of sorted values (nearest rank). */
static double quantile(const double *v, long long n, double q)
{
    long long k = (long long)ceil(q * (double)n) - 1;
    return v[k < 0 ? 0 : k];
}

static void report(line *ln, int cameras, int workers, double elapsed)
{
    long long n = atomic_load(&ln->n_latency);
    if (n > ln->latency_cap) n = ln->latency_cap;
    qsort(ln->latency, (size_t)n, sizeof *ln->latency, by_value);
    long long classified = atomic_load(&ln->classified);
    printf("\nframes: %lld captured, %lld classified, %lld dropped (queue "
           "full), %lld not inspected (errors above)\n",
           (long long)atomic_load(&ln->captured), classified,
           (long long)atomic_load(&ln->dropped),
           (long long)atomic_load(&ln->corrupt));
    printf("throughput: %.1f frames/s with %d worker%s (%d camera%s x %d "
           "fps offered)\n",
           (double)classified / elapsed, workers, workers > 1 ? "s" : "",
           cameras, cameras > 1 ? "s" : "", ln->fps);
    if (n > 0)
        printf("latency, capture to verdict: p50 %.3f ms, p99 %.3f ms, max "
               "%.3f ms\n",
               1e3 * quantile(ln->latency, n, 0.50),
               1e3 * quantile(ln->latency, n, 0.99), 1e3 * ln->latency[n - 1]);
    long long truth = atomic_load(&ln->true_defective);
    printf("verdicts at threshold %.4g: %lld defective, %lld good; %lld of "
           "%lld defective parts caught, %lld good parts rejected\n",
           (double)ln->model.threshold,
           (long long)atomic_load(&ln->judged_defective),
           classified - (long long)atomic_load(&ln->judged_defective),
           (long long)atomic_load(&ln->caught), truth,
           (long long)atomic_load(&ln->false_rejects));
    if (ln->model.trained_here)
        printf("(the model is a stand-in trained for seconds, its threshold "
               "set for 95%% recall on its own training images: the good "
               "parts it rejects are the price; --model FILE runs a real "
               "one)\n");
}

int main(int argc, char **argv)
{
    const char *model_path = NULL;
    int fps = 30, cameras = 2, workers = 2, queue_cap = 8, corrupt = 25;
    int threads = 1, train_n = 320, epochs = 12;
    float seconds = 5.0f;
    unsigned long long seed = 42;
    const ex_option opts[] = {
        EX_STRING("model", &model_path, "FILE",
                  "a saved model that carries its preprocessing and threshold",
                  "train a small classifier in memory"),
        EX_INT("fps", &fps, 1, 10000, "N", "frames per second of each camera"),
        EX_INT("cameras", &cameras, 1, 64, "N", "camera threads"),
        EX_INT("workers", &workers, 1, 256, "N",
               "worker threads, each with its own context"),
        EX_FLOAT_ABOVE("seconds", &seconds, 0, 86400, "S",
                       "how long the cameras run"),
        EX_INT("queue", &queue_cap, 1, 1 << 20, "N",
               "frames the queue holds; a camera drops a frame that finds "
               "it full"),
        EX_INT("corrupt", &corrupt, 0, 1 << 30, "N",
               "every N-th frame of a camera is corrupt (0: none)"),
        EX_INT("train", &train_n, 16, 1000000, "N",
               "surfaces the in-memory model trains on (without --model)"),
        EX_OPT_EPOCHS(&epochs),
        EX_OPT_THREADS(&threads),
        EX_OPT_SEED(&seed),
    };
    ex_parse(argc, argv, &PROGRAM, opts, EX_COUNT(opts));
    if (threads > 0 && nn_set_num_threads(threads) != NN_OK) die("--threads");

    line ln = {.fps = fps, .corrupt_every = corrupt, .seconds = seconds};
    ln.model = open_model(model_path, seed, train_n, epochs);
    bool *defective = NULL;
    make_pool(&ln, seed, &defective);
    ln.q = (queue){.cap = queue_cap};
    ln.q.slot = malloc((size_t)queue_cap * sizeof *ln.q.slot);
    ln.latency_cap = (long long)cameras * (long long)(seconds * fps) + 1;
    ln.latency = malloc((size_t)ln.latency_cap * sizeof *ln.latency);
    if (!ln.q.slot || !ln.latency) die("buffers");
    pthread_mutex_init(&ln.q.lock, NULL);
    pthread_cond_init(&ln.q.not_empty, NULL);
    pthread_mutex_init(&ln.print_lock, NULL);

    /* One context per worker, warmed up with one frame: the first call
     * plans its memory, so the line itself allocates nothing. */
    worker_arg *wa = calloc((size_t)workers, sizeof *wa);
    camera_arg *ca = calloc((size_t)cameras, sizeof *ca);
    pthread_t *wt = calloc((size_t)workers, sizeof *wt);
    pthread_t *ct = calloc((size_t)cameras, sizeof *ct);
    if (!wa || !ca || !wt || !ct) die("threads");
    for (int i = 0; i < workers; i++) {
        wa[i] = (worker_arg){&ln, nn_context_create(ln.model.m)};
        nn_verdict v = NN_VERDICT_INIT;
        if (!wa[i].ctx ||
            nn_context_classify_u8(wa[i].ctx, ln.pool, ln.model.h,
                                   ln.model.w, ln.model.c, 0, &v) != NN_OK)
            die("warming up a context");
    }
    printf("Line: %d camera%s x %d fps for %g s, %dx%dx%d frames, queue %d, "
           "%d worker%s, libnn threads %d\n",
           cameras, cameras > 1 ? "s" : "", fps, (double)seconds, ln.model.h,
           ln.model.w, ln.model.c, queue_cap, workers, workers > 1 ? "s" : "",
           nn_get_num_threads());
    fflush(stdout);

    double start = seconds_now();
    for (int i = 0; i < workers; i++)
        if (pthread_create(&wt[i], NULL, worker, &wa[i]) != 0) die("workers");
    for (int i = 0; i < cameras; i++) {
        ca[i] = (camera_arg){&ln, i};
        if (pthread_create(&ct[i], NULL, camera, &ca[i]) != 0) die("cameras");
    }
    for (int i = 0; i < cameras; i++) pthread_join(ct[i], NULL);
    queue_close(&ln.q); /* the workers drain what is left, then stop */
    for (int i = 0; i < workers; i++) pthread_join(wt[i], NULL);
    report(&ln, cameras, workers, seconds_now() - start);

    for (int i = 0; i < workers; i++) nn_context_free(wa[i].ctx);
    nn_model_free(ln.model.m);
    free((void *)ln.pool);
    free(defective);
    free(ln.q.slot);
    free(ln.latency);
    free(wa);
    free(ca);
    free(wt);
    free(ct);
    return 0;
}

/* libnn_mpi under mpirun (scripts/run-mpi-tests.sh runs it with 2 and 3
 * processes): broadcast, bit-identical weights after data-parallel
 * training, equivalence with one process at the global batch size (with
 * and without BatchNorm, under the documented statistics rule), the
 * segmentation metrics summed as confusion counts, processes
 * that disagree, rank-0-only files, argument errors.
 *
 * Every case is collective. A check that fails only marks the case
 * failed on that process (no early return past a collective); the
 * processes then agree on the verdict, which rank 0 prints. */
#include <nn_mpi.h>

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../data_parallel.h"

static int rank, world;
static bool case_ok;

#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "rank %d: %s:%d: CHECK(%s) failed (%s)\n", rank,   \
                    __FILE__, __LINE__, #cond, nn_last_error());               \
            case_ok = false;                                                   \
        }                                                                      \
    } while (0)

/* ---------------- models and data ---------------- */

static nn_model *model(uint64_t seed, bool bn, bool dropout)
{
    nn_model *m = dp_model(seed, bn, dropout);
    if (!m) {
        fprintf(stderr, "rank %d: model: %s\n", rank, nn_last_error());
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    return m;
}

/* n samples, the same on every process. */
static void data(int64_t n, nn_tensor **x, nn_tensor **y)
{
    dp_data(n, 12345, x, y);
}

static float *state_of(const nn_model *m, nn_state_part part, int64_t *n)
{
    *n = nn_model_state_size(m, part);
    float *b = malloc((size_t)(*n > 0 ? *n : 1) * sizeof(float));
    if (nn_model_get_state(m, part, b, *n) != NN_OK) case_ok = false;
    return b;
}

static float max_diff(const float *a, const float *b, int64_t n)
{
    float d = 0;
    for (int64_t i = 0; i < n; i++) {
        float e = fabsf(a[i] - b[i]);
        if (!(e <= d)) d = e; /* NaN too */
    }
    return d;
}

/* Whether every process's buffer is bit-identical to rank 0's. */
static bool same_everywhere(const float *b, int64_t n)
{
    float *r0 = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    memcpy(r0, b, (size_t)n * sizeof(float));
    MPI_Bcast(r0, (int)n, MPI_FLOAT, 0, MPI_COMM_WORLD);
    int same = memcmp(r0, b, (size_t)n * sizeof(float)) == 0, all;
    MPI_Allreduce(&same, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    free(r0);
    return all != 0;
}

static nn_mpi *session(nn_model *m)
{
    nn_mpi *s = nn_mpi_create(MPI_COMM_WORLD, m);
    CHECK(s != NULL);
    if (!s) MPI_Abort(MPI_COMM_WORLD, 2);
    return s;
}

static nn_status mpi_fit(nn_mpi *s, nn_model *m, nn_tensor *x, nn_tensor *y,
                         int batch, int epochs, int shuffle, nn_history **h)
{
    nn_fit_opts f = NN_FIT_OPTS_INIT;
    f.batch_size = batch;
    f.epochs = epochs;
    f.shuffle = shuffle;
    CHECK(nn_mpi_fit_opts(s, &f) == NN_OK);
    return nn_model_fit(m, x, y, &f, h);
}

/* ---------------- cases ---------------- */

/* Models built from different seeds hold rank root's weights afterwards. */
static void case_broadcast(void)
{
    for (int root = 0; root < world && root < 2; root++) {
        nn_model *m = model(100 + (uint64_t)rank, true, false);
        int64_t n;
        float *mine = state_of(m, NN_STATE_ALL, &n);
        CHECK(world == 1 || !same_everywhere(mine, n));
        float *want = malloc((size_t)n * sizeof(float));
        memcpy(want, mine, (size_t)n * sizeof(float));
        MPI_Bcast(want, (int)n, MPI_FLOAT, root, MPI_COMM_WORLD);
        nn_mpi *s = session(m);
        CHECK(nn_mpi_broadcast(s, root) == NN_OK);
        float *got = state_of(m, NN_STATE_ALL, &n);
        CHECK(memcmp(got, want, (size_t)n * sizeof(float)) == 0);
        nn_mpi_free(s);
        nn_model_free(m);
        free(mine);
        free(want);
        free(got);
    }
}

/* After data-parallel training (BatchNorm, dropout, shuffling, a short
 * last step, the gradients reduced in pieces) every process holds the
 * same weights and statistics, bit for bit, and the same history. */
static void case_identical(void)
{
    nn_tensor *x, *y;
    data(101, &x, &y);
    nn_model *m = model(7, true, true);
    nn_mpi *s = session(m);
    CHECK(nn_mpi_fit_opts(s, NULL) == NN_ERR_INVALID);
    CHECK(nn_mpi_set_fusion_bytes(s, 1024) == NN_OK); /* 256 floats */
    nn_history *h = NULL;
    CHECK(mpi_fit(s, m, x, y, 16, 2, 1, &h) == NN_OK);
    int64_t n, steps, calls, bytes;
    float *st = state_of(m, NN_STATE_ALL, &n);
    CHECK(same_everywhere(st, n));
    float hist[4] = {nn_history_get(h, NN_METRIC_LOSS, 0),
                     nn_history_get(h, NN_METRIC_LOSS, 1),
                     nn_history_get(h, NN_METRIC_ACCURACY, 0),
                     nn_history_get(h, NN_METRIC_ACCURACY, 1)};
    CHECK(same_everywhere(hist, 4));
    /* One step per global batch, each in ceil(gradients / 256) pieces. */
    double seconds;
    CHECK(nn_mpi_stats(s, &steps, &calls, &bytes, &seconds) == NN_OK);
    int64_t per_epoch = (101 + 16 * world - 1) / (16 * world);
    int64_t grads = nn_model_state_size(m, NN_STATE_TRAINABLE);
    CHECK(steps == 2 * per_epoch);
    CHECK(calls == steps * ((grads + 255) / 256));
    CHECK(bytes == steps * grads * 4);
    CHECK(seconds >= 0);
    nn_history_free(h);
    nn_mpi_free(s);
    nn_model_free(m);
    free(st);
    nn_tensor_free(x);
    nn_tensor_free(y);
}

/* NN_MPI_STATISTICS_LOCAL: the weights agree, each process keeps the
 * moving statistics of its own shards. */
static void case_local_statistics(void)
{
    nn_tensor *x, *y;
    data(96, &x, &y);
    nn_model *m = model(7, true, false);
    nn_mpi *s = session(m);
    CHECK(nn_mpi_set_statistics(s, NN_MPI_STATISTICS_LOCAL) == NN_OK);
    CHECK(nn_mpi_set_statistics(s, (nn_mpi_statistics)5) == NN_ERR_INVALID);
    CHECK(mpi_fit(s, m, x, y, 16, 1, 1, NULL) == NN_OK);
    int64_t nt, ns;
    float *w = state_of(m, NN_STATE_TRAINABLE, &nt);
    float *st = state_of(m, NN_STATE_STATISTICS, &ns);
    CHECK(same_everywhere(w, nt));
    CHECK(world == 1 || !same_everywhere(st, ns));
    /* Averaged on demand, they agree. */
    CHECK(nn_mpi_average_statistics(s) == NN_OK);
    free(st);
    st = state_of(m, NN_STATE_STATISTICS, &ns);
    CHECK(same_everywhere(st, ns));
    nn_mpi_free(s);
    nn_model_free(m);
    free(w);
    free(st);
    nn_tensor_free(x);
    nn_tensor_free(y);
}

/* world processes x batch 64 equal one process at batch world x 64 on the
 * same (shuffled) order within 1e-5, history included. */
static void case_equivalence(void)
{
    nn_tensor *x, *y;
    data(200, &x, &y);
    nn_model *m = model(11, false, false);
    nn_mpi *s = session(m);
    nn_history *h = NULL;
    CHECK(mpi_fit(s, m, x, y, 64, 2, 1, &h) == NN_OK);
    if (rank == 0) {
        nn_model *ref = model(11, false, false);
        nn_fit_opts f = NN_FIT_OPTS_INIT;
        f.batch_size = 64 * world;
        f.epochs = 2;
        nn_history *rh = NULL;
        CHECK(nn_model_fit(ref, x, y, &f, &rh) == NN_OK);
        int64_t n;
        float *a = state_of(m, NN_STATE_ALL, &n);
        float *b = state_of(ref, NN_STATE_ALL, &n);
        float d = max_diff(a, b, n);
        printf("  equivalence: %d x 64 against 1 x %d: max weight "
               "difference %.2g\n",
               world, 64 * world, (double)d);
        CHECK(d <= 1e-5f);
        for (int e = 0; e < 2; e++) {
            CHECK(fabsf(nn_history_get(h, NN_METRIC_LOSS, e) -
                        nn_history_get(rh, NN_METRIC_LOSS, e)) <= 1e-5f);
            CHECK(nn_history_get(h, NN_METRIC_ACCURACY, e) ==
                  nn_history_get(rh, NN_METRIC_ACCURACY, e));
        }
        free(a);
        free(b);
        nn_history_free(rh);
        nn_model_free(ref);
    }
    nn_history_free(h);
    nn_mpi_free(s);
    nn_model_free(m);
    nn_tensor_free(x);
    nn_tensor_free(y);
}

/* Input 8x8x2 - Conv2D(1, 3x3, same): one logit per pixel, binary
 * cross-entropy from logits; the masks mark where the first channel
 * exceeds 0.6, with a pixel in 8 flipped, so every shard's predictions
 * are partly wrong, differently. */
static nn_model *seg_model(uint64_t seed)
{
    nn_model *m = nn_model_create(seed);
    int shape[3] = {8, 8, 2};
    nn_conv2d_opts conv = NN_CONV2D_OPTS_INIT;
    conv.padding = NN_PADDING_SAME;
    nn_loss_opts lo = NN_LOSS_OPTS_INIT;
    lo.from_logits = 1;
    nn_layer *x = nn_input(m, 3, shape, NULL);
    x = nn_conv2d(m, x, 1, 3, 3, &conv);
    if (!x || nn_model_compile(m, nn_adam(NULL), NN_LOSS_BINARY_CROSSENTROPY,
                               &lo) != NN_OK) {
        fprintf(stderr, "rank %d: seg_model: %s\n", rank, nn_last_error());
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    return m;
}

static nn_tensor *masks_of(const nn_tensor *x)
{
    int64_t n = nn_tensor_dim(x, 0), shape[4] = {n, 8, 8, 1};
    nn_tensor *y = nn_tensor_create(4, shape);
    const float *xd = nn_tensor_data_const(x);
    float *yd = nn_tensor_data(y);
    for (int64_t p = 0; p < n * 64; p++)
        yd[p] = (float)((xd[2 * p] > 0.6f) != (p % 8 == 3));
    return y;
}

/* With segmentation_metrics, the IoU, mean IoU, Dice and pixel accuracy
 * of P processes at batch 16 are those of one process at batch 16P on
 * the same order: the processes sum their confusion counts (a mean of
 * each process's IoU would differ), and the validation figures agree
 * everywhere. */
static void case_segmentation_metrics(void)
{
    static const nn_metric metrics[] = {
        NN_METRIC_IOU, NN_METRIC_MEAN_IOU, NN_METRIC_DICE,
        NN_METRIC_PIXEL_ACCURACY, NN_METRIC_VAL_IOU,
        NN_METRIC_VAL_MEAN_IOU};
    enum { N_METRICS = sizeof metrics / sizeof *metrics, EPOCHS = 2 };
    nn_tensor *x, *onehot;
    data(150, &x, &onehot);
    nn_tensor *y = masks_of(x);
    nn_model *m = seg_model(21);
    nn_mpi *s = session(m);
    nn_fit_opts f = NN_FIT_OPTS_INIT;
    f.batch_size = 16;
    f.epochs = EPOCHS;
    f.segmentation_metrics = 1;
    f.val_x = x;
    f.val_y = y;
    CHECK(nn_mpi_fit_opts(s, &f) == NN_OK);
    nn_history *h = NULL;
    CHECK(nn_model_fit(m, x, y, &f, &h) == NN_OK);
    float got[EPOCHS * N_METRICS];
    for (int e = 0; e < EPOCHS; e++)
        for (int k = 0; k < N_METRICS; k++)
            got[e * N_METRICS + k] = nn_history_get(h, metrics[k], e);
    CHECK(same_everywhere(got, EPOCHS * N_METRICS));
    if (rank == 0) {
        nn_model *ref = seg_model(21);
        nn_fit_opts r = NN_FIT_OPTS_INIT;
        r.batch_size = 16 * world;
        r.epochs = EPOCHS;
        r.segmentation_metrics = 1;
        r.val_x = x;
        r.val_y = y;
        nn_history *rh = NULL;
        CHECK(nn_model_fit(ref, x, y, &r, &rh) == NN_OK);
        float d = 0;
        for (int e = 0; e < EPOCHS; e++)
            for (int k = 0; k < N_METRICS; k++) {
                float want = nn_history_get(rh, metrics[k], e);
                float e_k = fabsf(got[e * N_METRICS + k] - want);
                CHECK(want > 0 && want < 1);
                if (!(e_k <= d)) d = e_k;
            }
        printf("  segmentation metrics: %d x 16 against 1 x %d: IoU %.4f "
               "and %.4f, max difference %.2g\n",
               world, 16 * world, (double)got[0],
               (double)nn_history_get(rh, NN_METRIC_IOU, 0), (double)d);
        CHECK(d <= 1e-6f);
        nn_history_free(rh);
        nn_model_free(ref);
    }
    nn_history_free(h);
    nn_mpi_free(s);
    nn_model_free(m);
    nn_tensor_free(x);
    nn_tensor_free(y);
    nn_tensor_free(onehot);
}

/* The single-process picture of the statistics rule: per step, each
 * shard's forward pass from the same state (its own batch statistics),
 * the gradients weighted by shard and summed, the moving statistics of
 * the shards averaged (averaging at the epoch's end instead is the same,
 * the moving averages being linear). A gradient hook captures each
 * shard's gradients, refusing the step, and then injects their mean. */
typedef struct ghost {
    float *grads; /* capture: the last shard's; inject: the mean */
    bool inject;
} ghost;

static nn_status ghost_hook(float *g, int64_t n, const nn_grad_info *info,
                            void *user)
{
    ghost *k = user;
    (void)info;
    if (k->inject) {
        memcpy(g, k->grads, (size_t)n * sizeof(float));
        return NN_OK;
    }
    memcpy(k->grads, g, (size_t)n * sizeof(float));
    return nn_set_error(NN_ERR_CANCELLED, "captured");
}

static void ghost_step(nn_model *r, ghost *k, const float *xd, const float *yd,
                       int64_t at, int batch)
{
    int64_t na = nn_model_state_size(r, NN_STATE_ALL);
    int64_t ng = nn_model_state_size(r, NN_STATE_TRAINABLE);
    float *s0 = state_of(r, NN_STATE_ALL, &na);
    float *acc = calloc((size_t)na, sizeof(float));
    float *gsum = calloc((size_t)ng, sizeof(float));
    int64_t xs[4] = {batch, 8, 8, 2}, ys[2] = {batch, 4};
    for (int q = 0; q < world; q++) {
        int64_t first = at + (int64_t)q * batch;
        nn_tensor *xb = nn_tensor_wrap(4, xs, (float *)xd + first * DP_SAMPLE);
        nn_tensor *yb = nn_tensor_wrap(2, ys, (float *)yd + first * DP_CLASSES);
        CHECK(nn_model_set_state(r, NN_STATE_ALL, s0, na) == NN_OK);
        k->inject = false;
        CHECK(nn_model_train_batch(r, xb, yb, NULL, NULL) ==
              NN_ERR_CANCELLED);
        float *after = state_of(r, NN_STATE_ALL, &na);
        for (int64_t i = 0; i < na; i++) acc[i] += after[i] / (float)world;
        for (int64_t i = 0; i < ng; i++)
            gsum[i] += k->grads[i] / (float)world;
        free(after);
        nn_tensor_free(xb);
        nn_tensor_free(yb);
    }
    /* The weights are the same in every shard's state: keep them exact. */
    int64_t nt;
    float *w = state_of(r, NN_STATE_TRAINABLE, &nt);
    CHECK(nn_model_set_state(r, NN_STATE_ALL, acc, na) == NN_OK);
    CHECK(nn_model_set_state(r, NN_STATE_TRAINABLE, w, nt) == NN_OK);
    memcpy(k->grads, gsum, (size_t)ng * sizeof(float));
    k->inject = true;
    CHECK(nn_model_apply_gradients(r) == NN_OK);
    free(w);
    free(s0);
    free(acc);
    free(gsum);
}

static void case_batchnorm_rule(void)
{
    int64_t n = 2 * 32 * (int64_t)world; /* whole shards of 32 */
    nn_tensor *x, *y;
    data(n, &x, &y);
    nn_model *m = model(13, true, false);
    nn_mpi *s = session(m);
    CHECK(mpi_fit(s, m, x, y, 32, 2, 0, NULL) == NN_OK);
    if (rank == 0) {
        nn_model *r = model(13, true, false);
        ghost k = {malloc((size_t)nn_model_state_size(r, NN_STATE_TRAINABLE) *
                          sizeof(float)),
                   false};
        CHECK(nn_model_set_grad_hook(r, ghost_hook, &k) == NN_OK);
        for (int e = 0; e < 2; e++)
            for (int64_t at = 0; at < n; at += 32 * world)
                ghost_step(r, &k, nn_tensor_data(x), nn_tensor_data(y), at, 32);
        int64_t na, ns;
        float *a = state_of(m, NN_STATE_ALL, &na);
        float *b = state_of(r, NN_STATE_ALL, &na);
        float *sa = state_of(m, NN_STATE_STATISTICS, &ns);
        float *sb = state_of(r, NN_STATE_STATISTICS, &ns);
        float d = max_diff(a, b, na);
        printf("  batchnorm: %d x 32 against the shard-by-shard reference: "
               "max difference %.2g (statistics %.2g)\n",
               world, (double)d, (double)max_diff(sa, sb, ns));
        CHECK(d <= 1e-5f);
        /* The statistics moved: the comparison is not of initial values. */
        CHECK(sa[0] != 0.0f);
        free(a);
        free(b);
        free(sa);
        free(sb);
        free(k.grads);
        nn_model_free(r);
    }
    nn_mpi_free(s);
    nn_model_free(m);
    nn_tensor_free(x);
    nn_tensor_free(y);
}

/* The last rank has one sample fewer: every process stops before the
 * first step with a message naming what differs, none waits. */
static void case_disagreement(void)
{
    if (world < 2) return;
    nn_tensor *x, *y;
    data(rank == world - 1 ? 63 : 64, &x, &y);
    nn_model *m = model(7, false, false);
    nn_mpi *s = session(m);
    CHECK(mpi_fit(s, m, x, y, 8, 1, 1, NULL) == NN_ERR_INVALID);
    CHECK(strstr(nn_last_error(), "number of training samples") != NULL);
    /* Models of different sizes: the broadcast refuses on every rank. */
    nn_model *other = model(7, rank == 0, false);
    nn_mpi *t = session(other);
    CHECK(nn_mpi_broadcast(t, 0) == NN_ERR_SHAPE);
    CHECK(strstr(nn_last_error(), "models differ") != NULL);
    nn_mpi_free(t);
    nn_model_free(other);
    nn_mpi_free(s);
    nn_model_free(m);
    nn_tensor_free(x);
    nn_tensor_free(y);
}

/* Rank 0 alone writes the checkpoint and the history. */
static void case_rank0_files(void)
{
    char dir[256] = "";
    if (rank == 0 && !mkdtemp(strcpy(dir, "/tmp/nn_mpi_test_XXXXXX")))
        dir[0] = '\0';
    MPI_Bcast(dir, sizeof dir, MPI_CHAR, 0, MPI_COMM_WORLD);
    CHECK(dir[0] != '\0');
    nn_tensor *x, *y;
    data(32, &x, &y);
    nn_model *m = model(7, false, false);
    nn_mpi *s = session(m);
    nn_history *h = NULL;
    CHECK(mpi_fit(s, m, x, y, 8, 1, 1, &h) == NN_OK);
    char model_path[320], hist_path[320];
    snprintf(model_path, sizeof model_path, "%s/model_%d.nnm", dir, rank);
    snprintf(hist_path, sizeof hist_path, "%s/history_%d.csv", dir, rank);
    CHECK(nn_mpi_save(s, model_path, NN_SAVE_DEFAULT) == NN_OK);
    CHECK(nn_mpi_write_history(s, h, hist_path) == NN_OK);
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 0) {
        for (int r = 0; r < world; r++) {
            char p[320];
            snprintf(p, sizeof p, "%s/model_%d.nnm", dir, r);
            CHECK((access(p, F_OK) == 0) == (r == 0));
            if (r == 0) unlink(p);
            snprintf(p, sizeof p, "%s/history_%d.csv", dir, r);
            CHECK((access(p, F_OK) == 0) == (r == 0));
            if (r == 0) unlink(p);
        }
        rmdir(dir);
    }
    nn_history_free(h);
    nn_mpi_free(s);
    nn_model_free(m);
    nn_tensor_free(x);
    nn_tensor_free(y);
}

static void case_arguments(void)
{
    nn_model *m = model(7, false, false);
    CHECK(nn_mpi_create(MPI_COMM_NULL, m) == NULL);
    CHECK(nn_last_status() == NN_ERR_INVALID);
    CHECK(nn_mpi_create(MPI_COMM_WORLD, NULL) == NULL);
    nn_mpi *s = session(m);
    CHECK(nn_mpi_rank(s) == rank && nn_mpi_size(s) == world);
    CHECK(nn_mpi_rank(NULL) == -1);
    CHECK(nn_mpi_broadcast(s, world) == NN_ERR_INVALID);
    CHECK(nn_mpi_broadcast(NULL, 0) == NN_ERR_INVALID);
    CHECK(nn_mpi_set_fusion_bytes(s, -1) == NN_ERR_INVALID);
    CHECK(nn_mpi_set_fusion_bytes(s, 2) == NN_ERR_INVALID);
    CHECK(nn_mpi_set_fusion_bytes(s, 0) == NN_OK);
    nn_fit_opts old = NN_FIT_OPTS_INIT;
    old.size = offsetof(nn_fit_opts, sync);
    CHECK(nn_mpi_fit_opts(s, &old) == NN_ERR_INVALID);
    CHECK(strstr(nn_last_error(), "NN_FIT_OPTS_INIT") != NULL);
    /* Fit options made for one model do not serve another (with a
     * session of its own, or without). */
    nn_model *other = model(7, false, false);
    nn_tensor *x, *y;
    data(16, &x, &y);
    nn_fit_opts f = NN_FIT_OPTS_INIT;
    CHECK(nn_mpi_fit_opts(s, &f) == NN_OK);
    nn_mpi *t = session(other);
    if (world > 1) {
        CHECK(nn_model_fit(other, x, y, &f, NULL) == NN_ERR_INVALID);
        CHECK(strstr(nn_last_error(), "another model") != NULL);
    }
    nn_mpi_free(t);
    if (world > 1) {
        CHECK(nn_model_fit(other, x, y, &f, NULL) == NN_ERR_STATE);
        CHECK(strstr(nn_last_error(), "gradient hook") != NULL);
    }
    nn_model_free(other);
    nn_tensor_free(x);
    nn_tensor_free(y);
    nn_mpi_free(s);
    nn_model_free(m);
}

typedef struct test_case {
    const char *name;
    void (*fn)(void);
} test_case;

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    nn_set_num_threads(1);
    static const test_case cases[] = {
        {"broadcast", case_broadcast},
        {"identical", case_identical},
        {"local_statistics", case_local_statistics},
        {"equivalence", case_equivalence},
        {"segmentation_metrics", case_segmentation_metrics},
        {"batchnorm_rule", case_batchnorm_rule},
        {"disagreement", case_disagreement},
        {"rank0_files", case_rank0_files},
        {"arguments", case_arguments},
    };
    int passed = 0, failed = 0;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        if (argc > 1 && strcmp(argv[1], cases[i].name) != 0) continue;
        case_ok = true;
        cases[i].fn();
        int ok = case_ok, all;
        MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
        if (rank == 0)
            printf("[ %s ] %s (%d processes)\n", all ? "  OK  " : "FAILED",
                   cases[i].name, world);
        fflush(stdout);
        all ? passed++ : failed++;
    }
    if (rank == 0)
        printf("mpi (%d processes): %d passed, %d failed\n", world, passed,
               failed);
    MPI_Finalize();
    return failed ? 1 : 0;
}

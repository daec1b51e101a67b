/* Data-parallel training support in the core library, without MPI: the
 * state buffer, the gradient hook, and sharded fits of several "processes"
 * played by threads that sum through shared memory (the MPI version of the
 * same checks is tests/mpi/test_mpi.c). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn_internal.h"
#include "train/train.h"
#include "data_parallel.h"

static nn_model *small_model(uint64_t seed, bool bn)
{
    nn_model *m = dp_model(seed, bn, false);
    assert_non_null(m);
    return m;
}

static void make_data(int64_t n, uint64_t seed, nn_tensor **x, nn_tensor **y)
{
    dp_data(n, seed, x, y);
}

static float *get_state(const nn_model *m, nn_state_part part, int64_t *n)
{
    *n = nn_model_state_size(m, part);
    assert_true(*n >= 0);
    float *b = malloc((size_t)(*n ? *n : 1) * sizeof(float));
    assert_int_equal(nn_model_get_state(m, part, b, *n), NN_OK);
    return b;
}

static float max_abs_diff(const float *a, const float *b, int64_t n)
{
    float d = 0;
    for (int64_t i = 0; i < n; i++)
        if (fabsf(a[i] - b[i]) > d || isnan(a[i] - b[i])) d = fabsf(a[i] - b[i]);
    return d;
}

/* ---------------- the state buffer ---------------- */

static void test_state_parts_and_order(void **state)
{
    (void)state;
    nn_model *m = small_model(1, true);
    int64_t all = nn_model_state_size(m, NN_STATE_ALL);
    assert_int_equal(all, nn_model_num_params(m));
    assert_int_equal(nn_model_state_size(m, NN_STATE_TRAINABLE),
                     nn_model_num_trainable_params(m));
    assert_int_equal(nn_model_state_size(m, NN_STATE_STATISTICS), 12);
    /* The documented order: layers, then each layer's weights. */
    int64_t n;
    float *b = get_state(m, NN_STATE_ALL, &n);
    int64_t at = 0;
    for (int i = 0; i < nn_model_num_layers(m); i++) {
        nn_layer *l = nn_model_layer(m, i);
        for (int k = 0; k < nn_layer_num_weights(l); k++) {
            nn_tensor *w = nn_layer_weight(l, k);
            assert_memory_equal(b + at, nn_tensor_data(w),
                                (size_t)nn_tensor_size(w) * sizeof(float));
            at += nn_tensor_size(w);
        }
    }
    assert_int_equal(at, n);
    /* The statistics are BatchNormalization's moving mean (zeros) and
     * variance (ones). */
    int64_t ns;
    float *st = get_state(m, NN_STATE_STATISTICS, &ns);
    for (int c = 0; c < 6; c++) {
        assert_true(st[c] == 0.0f);
        assert_true(st[6 + c] == 1.0f);
    }
    /* Freezing a layer takes its weights out of the trainable part. */
    int64_t before = nn_model_state_size(m, NN_STATE_TRAINABLE);
    assert_int_equal(nn_layer_set_trainable(nn_model_layer(m, 1), 0), NN_OK);
    assert_int_equal(nn_model_state_size(m, NN_STATE_TRAINABLE),
                     before - nn_layer_num_params(nn_model_layer(m, 1)));
    assert_int_equal(nn_model_state_size(m, NN_STATE_STATISTICS), 12);
    free(st);
    free(b);
    nn_model_free(m);
}

static void test_state_round_trip_and_errors(void **state)
{
    (void)state;
    nn_model *a = small_model(1, true), *b = small_model(2, true);
    int64_t n;
    float *sa = get_state(a, NN_STATE_ALL, &n);
    float *sb = get_state(b, NN_STATE_ALL, &n);
    assert_true(max_abs_diff(sa, sb, n) > 0);
    assert_int_equal(nn_model_set_state(b, NN_STATE_ALL, sa, n), NN_OK);
    float *again = get_state(b, NN_STATE_ALL, &n);
    assert_memory_equal(again, sa, (size_t)n * sizeof(float));
    /* Only the statistics part. */
    int64_t ns = nn_model_state_size(a, NN_STATE_STATISTICS);
    float stats[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    assert_int_equal(ns, 12);
    assert_int_equal(nn_model_set_state(a, NN_STATE_STATISTICS, stats, 12),
                     NN_OK);
    nn_tensor *mv = nn_layer_weight(nn_model_layer(a, 2), 3);
    assert_true(nn_tensor_data(mv)[5] == 12.0f);
    /* Wrong size, part or handle: refused, nothing written. */
    assert_int_equal(nn_model_set_state(b, NN_STATE_ALL, sb, n - 1),
                     NN_ERR_SHAPE);
    assert_non_null(strstr(nn_last_error(), "nn_model_state_size"));
    float *still = get_state(b, NN_STATE_ALL, &n);
    assert_memory_equal(still, sa, (size_t)n * sizeof(float));
    assert_int_equal(nn_model_get_state(b, (nn_state_part)7, sb, n),
                     NN_ERR_INVALID);
    assert_int_equal(nn_model_state_size(b, (nn_state_part)-1), -1);
    assert_int_equal(nn_model_state_size(NULL, NN_STATE_ALL), -1);
    assert_int_equal(nn_model_get_state(NULL, NN_STATE_ALL, sb, n),
                     NN_ERR_INVALID);
    assert_int_equal(nn_model_set_state(b, NN_STATE_ALL, NULL, n),
                     NN_ERR_INVALID);
    free(sa);
    free(sb);
    free(again);
    free(still);
    nn_model_free(a);
    nn_model_free(b);
}

/* ---------------- the gradient hook ---------------- */

typedef struct capture {
    float *grads;
    int64_t n;
    nn_grad_info info;
    int calls;
    nn_status result; /* what the hook returns */
    const char *message; /* with nn_set_error, when not NULL */
    float scale;         /* the gradients are multiplied by it */
} capture;

static nn_status capture_hook(float *g, int64_t n, const nn_grad_info *info,
                              void *user)
{
    capture *c = user;
    c->calls++;
    c->info = *info;
    free(c->grads);
    c->grads = malloc((size_t)n * sizeof(float));
    memcpy(c->grads, g, (size_t)n * sizeof(float));
    c->n = n;
    for (int64_t i = 0; i < n; i++) g[i] *= c->scale;
    if (c->message) return nn_set_error(c->result, c->message);
    return c->result;
}

static void test_grad_hook_sees_every_gradient(void **state)
{
    (void)state;
    nn_model *m = small_model(3, true);
    nn_tensor *x, *y;
    make_data(5, 4, &x, &y);
    capture c = {.scale = 1};
    assert_int_equal(nn_model_set_grad_hook(m, capture_hook, &c), NN_OK);
    assert_int_equal(nn_model_train_batch(m, x, y, NULL, NULL), NN_OK);
    assert_int_equal(c.calls, 1);
    assert_int_equal(c.n, nn_model_state_size(m, NN_STATE_TRAINABLE));
    assert_int_equal(c.info.size, sizeof(nn_grad_info));
    assert_int_equal(c.info.step, 0);
    assert_int_equal(c.info.samples, 5);
    assert_int_equal(c.info.total_samples, 0);
    /* The trainable weights' gradients in the walk's order. */
    int64_t at = 0;
    for (int i = 0; i < nn_model_num_layers(m); i++) {
        nn_layer *l = nn_model_layer(m, i);
        for (int k = 0; k < nn_layer_num_weights(l); k++) {
            if (!l->params[k].trainable) continue;
            nn_tensor *g = nn_layer_weight_grad(l, k);
            assert_memory_equal(c.grads + at, nn_tensor_data(g),
                                (size_t)nn_tensor_size(g) * sizeof(float));
            at += nn_tensor_size(g);
        }
    }
    assert_int_equal(at, c.n);
    /* nn_model_apply_gradients calls it too: the second step. */
    assert_int_equal(nn_model_backward(m, x, y, 1, NULL, NULL), NN_OK);
    assert_int_equal(nn_model_apply_gradients(m), NN_OK);
    assert_int_equal(c.calls, 2);
    assert_int_equal(c.info.step, 1);
    assert_int_equal(nn_model_set_grad_hook(NULL, capture_hook, &c),
                     NN_ERR_INVALID);
    free(c.grads);
    nn_tensor_free(x);
    nn_tensor_free(y);
    nn_model_free(m);
}

/* What the hook leaves is what the optimizer applies: gradients scaled by
 * 0 leave SGD's weights where they were; scaled by 2 they move as twice
 * the learning rate would move them. */
static void test_grad_hook_changes_what_is_applied(void **state)
{
    (void)state;
    nn_tensor *x, *y;
    make_data(6, 5, &x, &y);
    nn_sgd_opts so = NN_SGD_OPTS_INIT;
    nn_model *m = small_model(3, false), *twice = small_model(3, false);
    assert_int_equal(nn_model_compile(m, nn_sgd(&so),
                                      NN_LOSS_CATEGORICAL_CROSSENTROPY, NULL),
                     NN_OK);
    so.learning_rate *= 2;
    assert_int_equal(nn_model_compile(twice, nn_sgd(&so),
                                      NN_LOSS_CATEGORICAL_CROSSENTROPY, NULL),
                     NN_OK);
    int64_t n;
    float *w0 = get_state(m, NN_STATE_ALL, &n);
    capture c = {.scale = 0};
    nn_model_set_grad_hook(m, capture_hook, &c);
    assert_int_equal(nn_model_train_batch(m, x, y, NULL, NULL), NN_OK);
    float *w1 = get_state(m, NN_STATE_ALL, &n);
    assert_memory_equal(w0, w1, (size_t)n * sizeof(float));
    c.scale = 2;
    assert_int_equal(nn_model_train_batch(m, x, y, NULL, NULL), NN_OK);
    assert_int_equal(nn_model_train_batch(twice, x, y, NULL, NULL), NN_OK);
    float *a = get_state(m, NN_STATE_ALL, &n);
    float *b = get_state(twice, NN_STATE_ALL, &n);
    assert_true(max_abs_diff(a, w0, n) > 1e-4f);
    assert_true(max_abs_diff(a, b, n) < 1e-6f);
    free(c.grads);
    free(w0);
    free(w1);
    free(a);
    free(b);
    nn_tensor_free(x);
    nn_tensor_free(y);
    nn_model_free(m);
    nn_model_free(twice);
}

static void test_grad_hook_failure_stops_the_step(void **state)
{
    (void)state;
    nn_model *m = small_model(3, true);
    nn_tensor *x, *y;
    make_data(5, 4, &x, &y);
    assert_int_equal(nn_model_train_batch(m, x, y, NULL, NULL), NN_OK);
    int64_t n;
    float *w0 = get_state(m, NN_STATE_TRAINABLE, &n);
    capture c = {.scale = 7, .result = NN_ERR_IO, .message = "link down"};
    nn_model_set_grad_hook(m, capture_hook, &c);
    assert_int_equal(nn_model_train_batch(m, x, y, NULL, NULL), NN_ERR_IO);
    assert_string_equal(nn_last_error(), "link down");
    /* Weights and the optimizer's count unchanged, though the hook wrote
     * into its buffer. */
    float *w1 = get_state(m, NN_STATE_TRAINABLE, &n);
    assert_memory_equal(w0, w1, (size_t)n * sizeof(float));
    assert_int_equal(nn_optimizer_iterations(m->opt), 1);
    /* A hook without a message of its own still yields one. */
    c.message = NULL;
    assert_int_equal(nn_model_train_batch(m, x, y, NULL, NULL), NN_ERR_IO);
    assert_non_null(strstr(nn_last_error(), "gradient hook"));
    assert_non_null(strstr(nn_last_error(), "NN_ERR_IO"));
    c.result = (nn_status)3;
    assert_int_equal(nn_model_train_batch(m, x, y, NULL, NULL),
                     NN_ERR_INVALID);
    assert_non_null(strstr(nn_last_error(), "returned 3"));
    free(w1);
    w1 = get_state(m, NN_STATE_TRAINABLE, &n);
    assert_memory_equal(w0, w1, (size_t)n * sizeof(float));
    /* Removed: training goes on. */
    nn_model_set_grad_hook(m, NULL, NULL);
    assert_int_equal(nn_model_train_batch(m, x, y, NULL, NULL), NN_OK);
    assert_int_equal(nn_optimizer_iterations(m->opt), 2);
    free(c.grads);
    free(w0);
    free(w1);
    nn_tensor_free(x);
    nn_tensor_free(y);
    nn_model_free(m);
}

/* Single-process users pay nothing: no hook, no buffer, no copy. */
static void test_no_hook_no_copy(void **state)
{
    (void)state;
    nn_model *m = small_model(3, false);
    nn_tensor *x, *y;
    make_data(5, 4, &x, &y);
    nn_fit_opts f = NN_FIT_OPTS_INIT;
    assert_int_equal(nn_model_fit(m, x, y, &f, NULL), NN_OK);
    assert_null(m->grad_fused);
    capture c = {.scale = 1};
    nn_model_set_grad_hook(m, capture_hook, &c);
    assert_int_equal(nn_model_fit(m, x, y, &f, NULL), NN_OK);
    assert_non_null(m->grad_fused);
    free(c.grads);
    nn_tensor_free(x);
    nn_tensor_free(y);
    nn_model_free(m);
}

static void test_set_error(void **state)
{
    (void)state;
    assert_int_equal(nn_set_error(NN_ERR_IO, "MPI_Bcast: broken"), NN_ERR_IO);
    assert_string_equal(nn_last_error(), "MPI_Bcast: broken");
    assert_int_equal(nn_last_status(), NN_ERR_IO);
    assert_int_equal(nn_set_error(NN_ERR_STATE, NULL), NN_ERR_STATE);
    assert_string_equal(nn_last_error(), "NN_ERR_STATE");
    assert_int_equal(nn_set_error(NN_OK, "ignored"), NN_OK);
    assert_string_equal(nn_last_error(), "");
    assert_int_equal(nn_last_status(), NN_OK);
}

/* ---------------- sharded fits, processes played by threads ---------------- */

#define MAX_WORLD 4

/* An in-memory "allreduce": every thread publishes its buffer, then each
 * sums all of them in rank order (so every thread gets the same bits). */
typedef struct comm {
    int world;
    pthread_barrier_t barrier;
    void *bufs[MAX_WORLD];
} comm;

typedef struct proc {
    comm *c;
    int rank;
    nn_model *m;
    nn_tensor *x, *y;
    int batch, epochs, shuffle;
    nn_status status;
    char error[512];
    nn_history *h;
    int sync_calls[2];
} proc;

static void sum_floats(proc *p, float *v, int64_t n)
{
    comm *c = p->c;
    float *sum = calloc(n > 0 ? (size_t)n : 1, sizeof(float));
    c->bufs[p->rank] = v;
    pthread_barrier_wait(&c->barrier);
    for (int r = 0; r < c->world; r++)
        for (int64_t i = 0; i < n; i++) sum[i] += ((float *)c->bufs[r])[i];
    pthread_barrier_wait(&c->barrier);
    memcpy(v, sum, (size_t)n * sizeof(float));
    free(sum);
}

static void sum_doubles(proc *p, double *v, int n)
{
    comm *c = p->c;
    double *sum = calloc(n > 0 ? (size_t)n : 1, sizeof(double));
    c->bufs[p->rank] = v;
    pthread_barrier_wait(&c->barrier);
    for (int r = 0; r < c->world; r++)
        for (int i = 0; i < n; i++) sum[i] += ((double *)c->bufs[r])[i];
    pthread_barrier_wait(&c->barrier);
    memcpy(v, sum, (size_t)n * sizeof(double));
    free(sum);
}

/* The mean gradient over every sample of the step (nn_grad_info). */
static nn_status average_hook(float *g, int64_t n, const nn_grad_info *info,
                              void *user)
{
    proc *p = user;
    float w = (float)info->samples / (float)info->total_samples;
    for (int64_t i = 0; i < n; i++) g[i] *= w;
    sum_floats(p, g, n);
    return NN_OK;
}

static nn_status sum_sync(nn_model *m, double *v, int n, int point,
                          void *user)
{
    proc *p = user;
    (void)m;
    p->sync_calls[point]++;
    sum_doubles(p, v, n);
    return NN_OK;
}

static void *run_proc(void *arg)
{
    proc *p = arg;
    nn_fit_opts f = NN_FIT_OPTS_INIT;
    f.epochs = p->epochs;
    f.batch_size = p->batch;
    f.shuffle = p->shuffle;
    f.sync = sum_sync;
    f.sync_user = p;
    f.rank = p->rank;
    f.world_size = p->c->world;
    nn_model_set_grad_hook(p->m, average_hook, p);
    p->status = nn_model_fit(p->m, p->x, p->y, &f, &p->h);
    snprintf(p->error, sizeof p->error, "%s", nn_last_error());
    return NULL;
}

/* Runs `world` threads, each fitting its own copy of the model (seed 5)
 * on the data it is given. */
static void run_world(proc *ps, int world, nn_tensor **xs, nn_tensor **ys,
                      int batch, int epochs)
{
    comm c = {.world = world};
    pthread_barrier_init(&c.barrier, NULL, (unsigned)world);
    pthread_t t[MAX_WORLD];
    for (int r = 0; r < world; r++) {
        ps[r] = (proc){.c = &c, .rank = r, .m = small_model(5, false),
                       .x = xs[r], .y = ys[r], .batch = batch,
                       .epochs = epochs, .shuffle = 1};
        pthread_create(&t[r], NULL, run_proc, &ps[r]);
    }
    for (int r = 0; r < world; r++) pthread_join(t[r], NULL);
    pthread_barrier_destroy(&c.barrier);
}

static void free_world(proc *ps, int world)
{
    for (int r = 0; r < world; r++) {
        nn_history_free(ps[r].h);
        nn_model_free(ps[r].m);
    }
}

/* world processes x batch B against one process at batch world x B on the
 * same data: the same batches, so the same weights within float rounding,
 * bit-identical weights on every process, one history. n leaves a short
 * last step (with world 3, one in which two processes have no sample). */
static void check_equivalence(int world, int batch, int64_t n)
{
    nn_tensor *x, *y;
    make_data(n, 9, &x, &y);
    nn_model *ref = small_model(5, false);
    nn_fit_opts f = NN_FIT_OPTS_INIT;
    f.epochs = 2;
    f.batch_size = world * batch;
    nn_history *rh = NULL;
    assert_int_equal(nn_model_fit(ref, x, y, &f, &rh), NN_OK);

    proc ps[MAX_WORLD];
    nn_tensor *xs[MAX_WORLD] = {x, x, x, x}, *ys[MAX_WORLD] = {y, y, y, y};
    run_world(ps, world, xs, ys, batch, 2);
    int64_t n0;
    float *want = get_state(ref, NN_STATE_ALL, &n0);
    float *w0 = NULL;
    for (int r = 0; r < world; r++) {
        assert_int_equal(ps[r].status, NN_OK);
        assert_int_equal(ps[r].sync_calls[NN_SYNC_START], 1);
        assert_int_equal(ps[r].sync_calls[NN_SYNC_EPOCH_END], 2);
        int64_t k;
        float *w = get_state(ps[r].m, NN_STATE_ALL, &k);
        assert_true(max_abs_diff(w, want, k) < 1e-5f);
        if (r == 0) w0 = w;
        else {
            assert_memory_equal(w, w0, (size_t)k * sizeof(float));
            free(w);
        }
        assert_int_equal(nn_optimizer_iterations(ps[r].m->opt),
                         nn_optimizer_iterations(ref->opt));
        for (int e = 0; e < 2; e++) {
            float l = nn_history_get(ps[r].h, NN_METRIC_LOSS, e);
            float a = nn_history_get(ps[r].h, NN_METRIC_ACCURACY, e);
            assert_true(l == nn_history_get(ps[0].h, NN_METRIC_LOSS, e));
            assert_true(fabsf(l - nn_history_get(rh, NN_METRIC_LOSS, e)) <
                        1e-5f);
            assert_true(a == nn_history_get(rh, NN_METRIC_ACCURACY, e));
        }
    }
    free(w0);
    free(want);
    free_world(ps, world);
    nn_history_free(rh);
    nn_model_free(ref);
    nn_tensor_free(x);
    nn_tensor_free(y);
}

static void test_sharded_fit_equals_one_big_batch(void **state)
{
    (void)state;
    check_equivalence(2, 8, 37);
    check_equivalence(3, 6, 37);
}

/* A process whose data differs stops every process before the first step
 * (they would otherwise run different numbers of steps and wait). */
static void test_sharded_fit_disagreement(void **state)
{
    (void)state;
    nn_tensor *x, *y, *x2, *y2;
    make_data(20, 9, &x, &y);
    make_data(20, 9, &x2, &y2);
    int64_t xs[4] = {19, 8, 8, 2};
    nn_tensor *short_x = nn_tensor_wrap(4, xs, nn_tensor_data(x2));
    int64_t ys[2] = {19, DP_CLASSES};
    nn_tensor *short_y = nn_tensor_wrap(2, ys, nn_tensor_data(y2));
    /* Rank 1 with 19 samples (and labels) against rank 0's 20. */
    proc ps[2];
    nn_tensor *data_x[2] = {x, short_x}, *data_y[2] = {y, short_y};
    run_world(ps, 2, data_x, data_y, 4, 1);
    for (int r = 0; r < 2; r++) {
        assert_int_equal(ps[r].status, NN_ERR_INVALID);
        assert_non_null(strstr(ps[r].error, "number of training samples"));
        assert_int_equal(nn_optimizer_iterations(ps[r].m->opt), 0);
        assert_null(ps[r].h);
    }
    free_world(ps, 2);
    nn_tensor_free(short_x);
    nn_tensor_free(short_y);
    nn_tensor_free(x);
    nn_tensor_free(y);
    nn_tensor_free(x2);
    nn_tensor_free(y2);
}

static void test_sharded_fit_needs_hooks(void **state)
{
    (void)state;
    nn_model *m = small_model(5, false);
    nn_tensor *x, *y;
    make_data(8, 9, &x, &y);
    nn_fit_opts f = NN_FIT_OPTS_INIT;
    f.world_size = 2;
    assert_int_equal(nn_model_fit(m, x, y, &f, NULL), NN_ERR_INVALID);
    assert_non_null(strstr(nn_last_error(), "sync"));
    f.sync = sum_sync;
    assert_int_equal(nn_model_fit(m, x, y, &f, NULL), NN_ERR_STATE);
    assert_non_null(strstr(nn_last_error(), "gradient hook"));
    f.rank = 2;
    assert_int_equal(nn_model_fit(m, x, y, &f, NULL), NN_ERR_INVALID);
    assert_non_null(strstr(nn_last_error(), "rank 2"));
    f.rank = 0;
    nn_binary_opts bo = NN_BINARY_OPTS_INIT;
    f.decision_metrics = &bo;
    nn_model_set_grad_hook(m, average_hook, NULL);
    assert_int_equal(nn_model_fit(m, x, y, &f, NULL), NN_ERR_UNSUPPORTED);
    assert_non_null(strstr(nn_last_error(), "decision_metrics"));
    nn_model_set_grad_hook(m, NULL, NULL);
    f.decision_metrics = NULL;
    f.world_size = -1;
    assert_int_equal(nn_model_fit(m, x, y, &f, NULL), NN_ERR_INVALID);
    /* world_size 0 or 1 is one process: rank must be 0, no hooks needed. */
    f.world_size = 0;
    f.sync = NULL;
    assert_int_equal(nn_model_fit(m, x, y, &f, NULL), NN_OK);
    f.rank = 1;
    assert_int_equal(nn_model_fit(m, x, y, &f, NULL), NN_ERR_INVALID);
    /* A caller built before these members gets one process. */
    nn_fit_opts old = NN_FIT_OPTS_INIT;
    old.size = offsetof(nn_fit_opts, sync);
    assert_int_equal(nn_model_fit(m, x, y, &old, NULL), NN_OK);
    assert_int_equal(nn_optimizer_iterations(m->opt), 2);
    nn_tensor_free(x);
    nn_tensor_free(y);
    nn_model_free(m);
}

/* The shard rule (include/nn.h): contiguous, in rank order, covering the
 * step once, sizes differing by at most one. */
static void test_shard_rule(void **state)
{
    (void)state;
    for (int world = 1; world <= 5; world++)
        for (int64_t total = 0; total <= 13; total++) {
            int64_t next = 0, lo = total, hi = 0;
            for (int r = 0; r < world; r++) {
                int64_t at, cnt;
                nn__shard(total, r, world, &at, &cnt);
                assert_int_equal(at, next);
                next = at + cnt;
                lo = cnt < lo ? cnt : lo;
                hi = cnt > hi ? cnt : hi;
            }
            assert_int_equal(next, total);
            assert_true(hi - lo <= 1);
        }
    int64_t at, cnt;
    nn__shard(128, 1, 2, &at, &cnt);
    assert_int_equal(at, 64);
    assert_int_equal(cnt, 64);
}

int main(void)
{
    nn_set_num_threads(1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_state_parts_and_order),
        cmocka_unit_test(test_state_round_trip_and_errors),
        cmocka_unit_test(test_grad_hook_sees_every_gradient),
        cmocka_unit_test(test_grad_hook_changes_what_is_applied),
        cmocka_unit_test(test_grad_hook_failure_stops_the_step),
        cmocka_unit_test(test_no_hook_no_copy),
        cmocka_unit_test(test_set_error),
        cmocka_unit_test(test_shard_rule),
        cmocka_unit_test(test_sharded_fit_equals_one_big_batch),
        cmocka_unit_test(test_sharded_fit_disagreement),
        cmocka_unit_test(test_sharded_fit_needs_hooks),
    };
    return cmocka_run_group_tests_name("parallel", tests, NULL, NULL);
}

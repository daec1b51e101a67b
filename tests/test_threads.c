/* The thread-safety promises of nn.h, exercised concurrently: many threads
 * predicting from one model through their own contexts, models trained at
 * once in separate threads, and models sharing weights (nn_model_apply)
 * applied, used and freed from different threads. `make tsan` runs this
 * file under ThreadSanitizer, which reports any data race these runs
 * contain; the normal and ASan builds check the results and leaks. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "nn_internal.h"

enum { THREADS = 8 };

typedef void *(*thread_fn)(void *);

/* Runs fn(args + i * size) in n threads that start together. */
static pthread_barrier_t start;

static void run_threads(int n, thread_fn fn, void *args, size_t size)
{
    pthread_t th[THREADS + 1];
    assert_true(n <= THREADS + 1);
    assert_int_equal(pthread_barrier_init(&start, NULL, (unsigned)n), 0);
    for (int i = 0; i < n; i++)
        assert_int_equal(
            pthread_create(&th[i], NULL, fn, (char *)args + (size_t)i * size),
            0);
    for (int i = 0; i < n; i++) assert_int_equal(pthread_join(th[i], NULL), 0);
    pthread_barrier_destroy(&start);
}

static void wait_start(void) { pthread_barrier_wait(&start); }

/* A small network with the kinds whose inference has state or fuses:
 * Conv2D -> BatchNormalization -> ReLU, pooling, Dense. */
static nn_model *cnn(uint64_t seed)
{
    nn_model *m = nn_model_create(seed);
    int shape[3] = {10, 10, 2};
    nn_layer *x = nn_input(m, 3, shape, NULL);
    x = nn_conv2d(m, x, 6, 3, 3, NULL);
    x = nn_batchnorm(m, x, NULL);
    x = nn_relu(m, x, NULL);
    x = nn_maxpool2d(m, x, 2, 2, NULL);
    x = nn_flatten(m, x, NULL);
    nn_dense_opts d = NN_DENSE_OPTS_INIT;
    d.activation = NN_ACT_SOFTMAX;
    assert_non_null(nn_dense(m, x, 3, &d));
    return m;
}

static nn_tensor *filled(int rank, const int64_t *shape, uint64_t seed)
{
    nn_tensor *t = nn_tensor_create(rank, shape);
    nn_rng r;
    nn__rng_seed(&r, seed);
    for (int64_t i = 0; i < t->size; i++) t->data[i] = nn__rng_uniform(&r);
    return t;
}

static nn_tensor *images(int n, uint64_t seed)
{
    int64_t shape[4] = {n, 10, 10, 2};
    return filled(4, shape, seed);
}

static nn_tensor *outputs(const nn_model *m, int n)
{
    int64_t shape[2] = {n, nn__shape_size(&m->output->out)};
    return nn_tensor_create(2, shape);
}

/* ------------------------------------------------------------------ */
/* inference: one model, a context per thread                          */
/* ------------------------------------------------------------------ */

/* Batch sizes the predictions cycle through; results are reproducible
 * for a given batch size (the products' blocking depends on it). */
enum { BATCHES = 4 };

typedef struct predict_job {
    const nn_model *m;
    const nn_tensor *x;
    nn_tensor *const *want; /* per batch size 1..BATCHES */
    int rounds;
    bool ok;
} predict_job;

static void expected(nn_model *m, const nn_tensor *x, nn_tensor **want)
{
    for (int b = 1; b <= BATCHES; b++) {
        want[b - 1] = outputs(m, (int)x->shape[0]);
        assert_int_equal(nn_model_predict(m, x, want[b - 1], b), NN_OK);
    }
}

static void free_expected(nn_tensor **want)
{
    for (int b = 0; b < BATCHES; b++) nn_tensor_free(want[b]);
}

static void *predict_rounds(void *arg)
{
    predict_job *j = arg;
    nn_context *ctx = nn_context_create(j->m);
    nn_tensor *out = outputs(j->m, (int)j->x->shape[0]);
    wait_start();
    j->ok = ctx != NULL;
    for (int r = 0; j->ok && r < j->rounds; r++) {
        /* Varying batch sizes re-plan the context between rounds. */
        int b = 1 + r % BATCHES;
        j->ok = nn_context_predict(ctx, j->x, out, b) == NN_OK &&
                memcmp(out->data, j->want[b - 1]->data,
                       (size_t)out->size * sizeof(float)) == 0;
    }
    nn_tensor_free(out);
    nn_context_free(ctx);
    return NULL;
}

static void test_predict_from_many_threads(void **state)
{
    nn_model *m = cnn(1);
    nn_tensor *x = images(7, 2), *want[BATCHES];
    expected(m, x, want);
    predict_job jobs[THREADS];
    for (int i = 0; i < THREADS; i++)
        jobs[i] = (predict_job){.m = m, .x = x, .want = want, .rounds = 10};
    run_threads(THREADS, predict_rounds, jobs, sizeof jobs[0]);
    for (int i = 0; i < THREADS; i++) assert_true(jobs[i].ok);
    nn_tensor_free(x);
    free_expected(want);
    nn_model_free(m);
}

/* ------------------------------------------------------------------ */
/* training: separate models in separate threads                       */
/* ------------------------------------------------------------------ */

typedef struct train_job {
    nn_model *m;
    const nn_tensor *x, *y;
    nn_status status;
} train_job;

static nn_model *compiled_cnn(void)
{
    nn_model *m = cnn(5);
    nn_adam_opts a = NN_ADAM_OPTS_INIT;
    assert_int_equal(nn_model_compile(m, nn_adam(&a),
                                      NN_LOSS_CATEGORICAL_CROSSENTROPY, NULL),
                     NN_OK);
    return m;
}

static void *train(void *arg)
{
    train_job *j = arg;
    nn_fit_opts o = NN_FIT_OPTS_INIT;
    o.epochs = 2;
    o.batch_size = 4;
    wait_start();
    j->status = nn_model_fit(j->m, j->x, j->y, &o, NULL);
    return NULL;
}

static void assert_same_weights(const nn_model *a, const nn_model *b)
{
    assert_int_equal(a->n_layers, b->n_layers);
    for (int i = 0; i < a->n_layers; i++)
        for (int p = 0; p < a->layers[i]->n_params; p++) {
            const nn_tensor *u = &a->layers[i]->params[p].value;
            const nn_tensor *v = &b->layers[i]->params[p].value;
            assert_memory_equal(u->data, v->data,
                                (size_t)u->size * sizeof(float));
        }
}

static void test_train_models_in_parallel(void **state)
{
    nn_tensor *x = images(12, 3);
    int64_t ys[2] = {12, 3};
    nn_tensor *y = nn_tensor_create(2, ys);
    for (int i = 0; i < 12; i++) y->data[3 * i + i % 3] = 1;
    /* The same training alone gives the reference weights. */
    train_job ref = {.m = compiled_cnn(), .x = x, .y = y};
    run_threads(1, train, &ref, sizeof ref);
    assert_int_equal(ref.status, NN_OK);
    enum { N = 4 };
    train_job jobs[N];
    for (int i = 0; i < N; i++)
        jobs[i] = (train_job){.m = compiled_cnn(), .x = x, .y = y};
    run_threads(N, train, jobs, sizeof jobs[0]);
    for (int i = 0; i < N; i++) {
        assert_int_equal(jobs[i].status, NN_OK);
        assert_same_weights(ref.m, jobs[i].m);
        nn_model_free(jobs[i].m);
    }
    nn_model_free(ref.m);
    nn_tensor_free(x);
    nn_tensor_free(y);
}

/* ------------------------------------------------------------------ */
/* shared weights                                                      */
/* ------------------------------------------------------------------ */

/* Input -> inner (shared) -> Dense. */
static nn_model *outer_of(nn_model *inner, uint64_t seed)
{
    nn_model *o = nn_model_create(seed);
    int shape[3] = {10, 10, 2};
    nn_layer *x = nn_input(o, 3, shape, NULL);
    x = nn_model_apply(o, x, inner, NULL, NULL);
    if (!x || !nn_dense(o, x, 2, NULL)) {
        nn_model_free(o);
        return NULL;
    }
    return o;
}

static int64_t refs_of(const nn_model *m)
{
    return atomic_load(m->layers[1]->params[0].refs);
}

typedef struct free_job {
    nn_model *m;
} free_job;

static void *free_model(void *arg)
{
    free_job *j = arg;
    wait_start();
    nn_model_free(j->m);
    return NULL;
}

/* Models sharing weights, each freed by its own thread (each thread has
 * exclusive access to its model, as nn.h allows): the count must see every
 * release, or weights leak (LeakSanitizer) or are freed twice. */
static void test_shared_weights_freed_from_threads(void **state)
{
    for (int round = 0; round < 20; round++) {
        nn_model *inner = cnn(7);
        free_job jobs[THREADS + 1];
        for (int i = 0; i < THREADS; i++) {
            jobs[i].m = outer_of(inner, (uint64_t)i);
            assert_non_null(jobs[i].m);
        }
        assert_int_equal(refs_of(inner), THREADS + 1);
        /* Half of them first, and check the count lost nothing. */
        run_threads(THREADS / 2, free_model, jobs, sizeof jobs[0]);
        assert_int_equal(refs_of(inner), THREADS / 2 + 1);
        jobs[THREADS].m = inner;
        run_threads(THREADS / 2 + 1, free_model, jobs + THREADS / 2,
                    sizeof jobs[0]);
    }
}

typedef struct apply_job {
    nn_model *inner, *outer;
    const nn_tensor *x, *want;
    bool ok;
} apply_job;

static void *apply_and_predict(void *arg)
{
    apply_job *j = arg;
    wait_start();
    j->outer = outer_of(j->inner, 11);
    j->ok = j->outer != NULL;
    if (!j->ok) return NULL;
    /* Inner's part of the outer model computes what inner computes. */
    nn_context *ctx = nn_context_create(j->inner);
    nn_tensor *out = outputs(j->inner, (int)j->x->shape[0]);
    j->ok = nn_context_predict(ctx, j->x, out, 5) == NN_OK &&
            memcmp(out->data, j->want->data,
                   (size_t)out->size * sizeof(float)) == 0;
    nn_tensor_free(out);
    nn_context_free(ctx);
    return NULL;
}

/* Threads apply one inner model into their own outer models at once: the
 * inner model is only read (nn.h). */
static void test_apply_one_inner_from_threads(void **state)
{
    nn_model *inner = cnn(9);
    nn_tensor *x = images(5, 4), *want = outputs(inner, 5);
    assert_int_equal(nn_model_predict(inner, x, want, 5), NN_OK);
    apply_job jobs[THREADS];
    for (int i = 0; i < THREADS; i++)
        jobs[i] = (apply_job){.inner = inner, .x = x, .want = want};
    run_threads(THREADS, apply_and_predict, jobs, sizeof jobs[0]);
    for (int i = 0; i < THREADS; i++) assert_true(jobs[i].ok);
    assert_int_equal(refs_of(inner), THREADS + 1);
    /* Inner first this time; the outer models keep the weights alive. */
    nn_model_free(inner);
    free_job frees[THREADS];
    for (int i = 0; i < THREADS; i++) frees[i].m = jobs[i].outer;
    assert_int_equal(refs_of(frees[0].m), THREADS);
    run_threads(THREADS, free_model, frees, sizeof frees[0]);
    nn_tensor_free(x);
    nn_tensor_free(want);
}

/* While threads predict from the inner model, others free the outer
 * models that share its weights. */
static void test_free_while_sharer_predicts(void **state)
{
    nn_model *inner = cnn(13);
    nn_tensor *x = images(6, 5), *want[BATCHES];
    expected(inner, x, want);
    enum { HALF = THREADS / 2 };
    struct {
        predict_job p;
        free_job f;
    } jobs[HALF];
    free_job *frees = malloc(HALF * sizeof *frees);
    for (int i = 0; i < HALF; i++) {
        jobs[i].p = (predict_job){.m = inner, .x = x, .want = want,
                                  .rounds = 5};
        frees[i].m = outer_of(inner, (uint64_t)i);
    }
    /* One barrier for all: predictors and freers interleave. */
    pthread_t th[THREADS];
    assert_int_equal(pthread_barrier_init(&start, NULL, THREADS), 0);
    for (int i = 0; i < HALF; i++) {
        pthread_create(&th[i], NULL, predict_rounds, &jobs[i].p);
        pthread_create(&th[HALF + i], NULL, free_model, &frees[i]);
    }
    for (int i = 0; i < THREADS; i++) pthread_join(th[i], NULL);
    pthread_barrier_destroy(&start);
    for (int i = 0; i < HALF; i++) assert_true(jobs[i].p.ok);
    assert_int_equal(refs_of(inner), 1);
    free(frees);
    nn_tensor_free(x);
    free_expected(want);
    nn_model_free(inner);
}

/* Process-wide settings change from any thread while others fail calls;
 * each thread's message stays its own. */
typedef struct error_job {
    int id;
    bool ok;
} error_job;

static void *fail_and_check(void *arg)
{
    error_job *j = arg;
    wait_start();
    j->ok = true;
    for (int r = 0; r < 50; r++) {
        nn_set_num_threads(1 + (j->id + r) % 2);
        nn_limits l = NN_LIMITS_INIT;
        l.data_bytes = j->id % 2 ? 1 + j->id : -1;
        nn_status s = nn_set_limits(&l);
        bool mine = j->id % 2 ? s == NN_OK && nn_flatten(NULL, NULL, NULL) ==
                                                  NULL &&
                                    strstr(nn_last_error(), "model is NULL")
                              : s == NN_ERR_INVALID &&
                                    strstr(nn_last_error(), "must be >= 0");
        j->ok = j->ok && mine;
    }
    return NULL;
}

static void test_process_settings_from_threads(void **state)
{
    error_job jobs[THREADS];
    for (int i = 0; i < THREADS; i++) jobs[i] = (error_job){.id = i};
    run_threads(THREADS, fail_and_check, jobs, sizeof jobs[0]);
    for (int i = 0; i < THREADS; i++) assert_true(jobs[i].ok);
    assert_int_equal(nn_set_limits(NULL), NN_OK);
    assert_int_equal(nn_set_num_threads(0), NN_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_predict_from_many_threads),
        cmocka_unit_test(test_train_models_in_parallel),
        cmocka_unit_test(test_shared_weights_freed_from_threads),
        cmocka_unit_test(test_apply_one_inner_from_threads),
        cmocka_unit_test(test_free_while_sharer_predicts),
        cmocka_unit_test(test_process_settings_from_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Faults: the allocator failing at every allocation of building, compiling,
 * loading, a training step and a prediction; saves killed with SIGKILL at
 * random points; saves into a directory the process may not write and onto
 * a full file system. Each failure must be reported (NN_ERR_NOMEM,
 * NN_ERR_IO), leave the model usable or freeable and, under ASan's leak
 * checker, leak nothing; a save must leave the old file or the new one,
 * never a mix, and nothing beside it when it fails. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "nn_internal.h"
#include "io/io.h"
#include "tmpdir.h"

#include <dirent.h>
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define assert_status(expr, want) assert_error(expr, want, NULL)

/* ------------------------------------------------------------------ */
/* models and data                                                     */
/* ------------------------------------------------------------------ */

/* A block applied below: Conv2D -> BatchNormalization -> ReLU. */
static nn_model *block(void)
{
    nn_model *b = nn_model_create(2);
    if (!b) return NULL;
    int shape[3] = {8, 8, 4};
    nn_conv2d_opts c = NN_CONV2D_OPTS_INIT;
    c.padding = NN_PADDING_SAME;
    nn_layer *x = nn_input(b, 3, shape, NULL);
    if (x) x = nn_conv2d(b, x, 4, 3, 3, &c);
    if (x) x = nn_batchnorm(b, x, NULL);
    if (x) x = nn_relu(b, x, NULL);
    if (!x || nn_model_set_name(b, "blk") != NN_OK) {
        nn_model_free(b);
        return NULL;
    }
    return b;
}

/* Every builder the network below uses, stopping at the first failure;
 * *m receives the model built so far either way. */
static nn_status build(nn_model **out)
{
    nn_model *m = *out = nn_model_create(1);
    if (!m) return nn_last_status();
    nn_model *inner = block();
    if (!inner) return nn_last_status();
    int shape[3] = {8, 8, 3};
    nn_conv2d_opts c = NN_CONV2D_OPTS_INIT;
    c.activation = NN_ACT_RELU;
    c.padding = NN_PADDING_SAME;
    nn_dense_opts d = NN_DENSE_OPTS_INIT;
    d.activation = NN_ACT_SOFTMAX;
    nn_layer *x = nn_input(m, 3, shape, NULL), *two[2];
    if (x) x = two[0] = nn_conv2d(m, x, 4, 3, 3, &c);
    if (x) x = two[1] = nn_model_apply(m, x, inner, NULL, NULL);
    if (x) x = nn_add(m, 2, two, NULL);
    if (x) x = nn_maxpool2d(m, x, 2, 2, NULL);
    if (x) x = nn_flatten(m, x, NULL);
    if (x) x = nn_dropout(m, x, 0.25f, NULL);
    if (x) x = nn_dense(m, x, 3, &d);
    nn_model_free(inner); /* the applied copy keeps the weights */
    return x ? NN_OK : nn_last_status();
}

static nn_status compile(nn_model *m)
{
    nn_adam_opts a = NN_ADAM_OPTS_INIT;
    a.learning_rate = 0.01f;
    nn_optimizer *o = nn_adam(&a);
    if (!o) return nn_last_status();
    nn_status s = nn_model_compile(m, o, NN_LOSS_CATEGORICAL_CROSSENTROPY,
                                   NULL);
    if (s != NN_OK) nn_optimizer_free(o);
    return s;
}

static nn_model *compiled(void)
{
    nn_model *m = NULL;
    assert_status(build(&m), NN_OK);
    assert_status(compile(m), NN_OK);
    return m;
}

typedef struct data {
    nn_tensor *x, *y;
} data;

static data make_data(int n)
{
    int64_t xs[4] = {n, 8, 8, 3}, ys[2] = {n, 3};
    data d = {nn_tensor_create(4, xs), nn_tensor_create(2, ys)};
    nn_rng r;
    nn__rng_seed(&r, 9);
    for (int64_t i = 0; i < d.x->size; i++) d.x->data[i] = nn__rng_uniform(&r);
    for (int i = 0; i < n; i++) d.y->data[3 * i + i % 3] = 1;
    return d;
}

static void free_data(data *d)
{
    nn_tensor_free(d->x);
    nn_tensor_free(d->y);
}

static nn_status fit_step(nn_model *m, const data *d)
{
    nn_fit_opts o = NN_FIT_OPTS_INIT;
    o.batch_size = (int)d->x->shape[0]; /* one step */
    o.shuffle = 0;
    nn_history *h = NULL;
    nn_status s = nn_model_fit(m, d->x, d->y, &o, &h);
    nn_history_free(h);
    return s;
}

/* A copy of every weight of m, in order. */
static float *weights(const nn_model *m, size_t *count)
{
    size_t n = 0;
    for (int i = 0; i < m->n_layers; i++)
        for (int j = 0; j < m->layers[i]->n_params; j++)
            n += (size_t)m->layers[i]->params[j].value.size;
    float *w = malloc(n * sizeof *w), *p = w;
    for (int i = 0; i < m->n_layers; i++)
        for (int j = 0; j < m->layers[i]->n_params; j++) {
            const nn_tensor *t = &m->layers[i]->params[j].value;
            memcpy(p, t->data, (size_t)t->size * sizeof *p);
            p += t->size;
        }
    *count = n;
    return w;
}

static void assert_weights(const nn_model *m, const float *want, size_t n)
{
    size_t k = 0;
    float *w = weights(m, &k);
    assert_int_equal(k, n);
    assert_memory_equal(w, want, n * sizeof *w);
    free(w);
}

static nn_tensor *predict(nn_model *m, const data *d, nn_status *s)
{
    int64_t shape[2] = {d->x->shape[0], 3};
    nn_tensor *out = nn_tensor_create(2, shape);
    *s = out ? nn_model_predict(m, d->x, out, 4) : nn_last_status();
    return out;
}

/* ------------------------------------------------------------------ */
/* allocation failures at every point                                  */
/* ------------------------------------------------------------------ */

/* Allocations a successful run of the path makes: the points to fail. */
static int64_t count_allocs(void)
{
    return nn__debug_fail_alloc_after(0);
}

typedef struct tally {
    int nomem, survived; /* runs that failed / succeeded anyway */
} tally;

/* Each failure must be NN_ERR_NOMEM; an allocation with a fallback may
 * fail and the run still succeed. */
static void record(tally *t, nn_status s, int64_t k, const char *path)
{
    if (s == NN_OK) {
        t->survived++;
        return;
    }
    if (s != NN_ERR_NOMEM)
        fail_msg("%s, allocation %lld failing: %s '%s'", path, (long long)k,
                 nn_status_name(s), nn_last_error());
    t->nomem++;
}

static void report(const char *path, const tally *t, int64_t allocs)
{
    print_message("alloc failures, %s: %lld allocations, %d failure points "
                  "(NN_ERR_NOMEM), %d with a fallback\n",
                  path, (long long)allocs, t->nomem, t->survived);
    assert_true(t->nomem > 0);
}

static void test_alloc_failures_build(void **state)
{
    nn_model *ref = NULL;
    count_allocs();
    assert_status(build(&ref), NN_OK);
    int64_t n = count_allocs();
    tally t = {0};
    for (int64_t k = 1; k <= n; k++) {
        nn_model *m = NULL;
        nn__debug_fail_alloc_after(k);
        nn_status s = build(&m);
        nn__debug_fail_alloc_after(0);
        record(&t, s, k, "build");
        if (!m) continue;
        /* What was built so far is a consistent model. */
        size_t need = 0;
        assert_status(nn_model_summary(m, NULL, 0, &need), NN_OK);
        assert_true(nn_model_num_layers(m) <= ref->n_layers);
        if (s == NN_OK) assert_int_equal(m->n_layers, ref->n_layers);
        nn_model_free(m);
    }
    report("build", &t, n);
    nn_model_free(ref);
}

static void test_alloc_failures_compile(void **state)
{
    nn_model *m = NULL;
    assert_status(build(&m), NN_OK);
    count_allocs();
    assert_status(compile(m), NN_OK);
    int64_t n = count_allocs();
    nn_model_free(m);
    tally t = {0};
    data d = make_data(4);
    for (int64_t k = 1; k <= n; k++) {
        m = NULL;
        assert_status(build(&m), NN_OK);
        nn__debug_fail_alloc_after(k);
        nn_status s = compile(m);
        nn__debug_fail_alloc_after(0);
        record(&t, s, k, "compile");
        /* Still usable: compiles and trains. */
        if (s != NN_OK) assert_status(compile(m), NN_OK);
        assert_status(fit_step(m, &d), NN_OK);
        nn_model_free(m);
    }
    report("compile", &t, n);
    free_data(&d);
}

static void test_alloc_failures_load(void **state)
{
    const char *path = tpath("load.nnm");
    nn_model *m = compiled();
    data d = make_data(4);
    assert_status(fit_step(m, &d), NN_OK);
    assert_status(nn_model_save(m, path, NN_SAVE_OPTIMIZER), NN_OK);
    size_t nw = 0;
    float *want = weights(m, &nw);
    nn_model_free(m);
    count_allocs();
    nn_model *back = nn_model_load(path);
    int64_t n = count_allocs();
    assert_non_null(back);
    nn_model_free(back);
    tally t = {0};
    for (int64_t k = 1; k <= n; k++) {
        nn__debug_fail_alloc_after(k);
        nn_status s = nn__model_load(path, &back);
        nn__debug_fail_alloc_after(0);
        record(&t, s, k, "load");
        if (s != NN_OK) {
            assert_null(back);
            continue;
        }
        assert_weights(back, want, nw);
        nn_model_free(back);
    }
    report("load", &t, n);
    free(want);
    free_data(&d);
}

/* A failed step leaves the weights as they were, and the next step gives
 * what an undisturbed one gives. */
static void test_alloc_failures_fit_step(void **state)
{
    data d = make_data(6);
    nn_model *m = compiled();
    size_t nw = 0;
    float *before = weights(m, &nw);
    count_allocs();
    assert_status(fit_step(m, &d), NN_OK);
    int64_t n = count_allocs();
    float *after = weights(m, &nw);
    nn_model_free(m);
    tally t = {0};
    for (int64_t k = 1; k <= n; k++) {
        m = compiled();
        nn__debug_fail_alloc_after(k);
        nn_status s = fit_step(m, &d);
        nn__debug_fail_alloc_after(0);
        record(&t, s, k, "fit step");
        if (s != NN_OK) {
            assert_weights(m, before, nw);
            assert_status(fit_step(m, &d), NN_OK);
        }
        assert_weights(m, after, nw);
        nn_model_free(m);
    }
    report("fit step", &t, n);
    free(before);
    free(after);
    free_data(&d);
}

static void test_alloc_failures_predict(void **state)
{
    data d = make_data(10);
    nn_model *m = compiled();
    nn_status s = NN_OK;
    count_allocs();
    nn_tensor *want = predict(m, &d, &s);
    int64_t n = count_allocs();
    assert_status(s, NN_OK);
    nn_model_free(m);
    tally t = {0};
    for (int64_t k = 1; k <= n; k++) {
        m = compiled();
        nn__debug_fail_alloc_after(k);
        nn_tensor *out = predict(m, &d, &s);
        nn__debug_fail_alloc_after(0);
        record(&t, s, k, "predict");
        nn_tensor_free(out);
        out = predict(m, &d, &s);
        assert_status(s, NN_OK);
        assert_memory_equal(out->data, want->data,
                            (size_t)want->size * sizeof(float));
        nn_tensor_free(out);
        nn_model_free(m);
    }
    report("predict", &t, n);
    nn_tensor_free(want);
    free_data(&d);
}

/* ------------------------------------------------------------------ */
/* saves under faults                                                  */
/* ------------------------------------------------------------------ */

/* Two models of one architecture with different weights; about 1 MB
 * each, so a save takes long enough to be killed in the middle. */
static nn_model *big(uint64_t seed)
{
    nn_model *m = nn_model_create(seed);
    int shape[1] = {512};
    nn_layer *x = nn_input(m, 1, shape, NULL);
    x = nn_dense(m, x, 512, NULL);
    assert_non_null(nn_dense(m, x, 8, NULL));
    return m;
}

/* 0: equal to a, 1: to b, -1: neither. */
static int which(const nn_model *m, const nn_model *a, const nn_model *b)
{
    const nn_tensor *w = &m->layers[1]->params[0].value;
    size_t bytes = (size_t)w->size * sizeof(float);
    if (!memcmp(w->data, a->layers[1]->params[0].value.data, bytes)) return 0;
    if (!memcmp(w->data, b->layers[1]->params[0].value.data, bytes)) return 1;
    return -1;
}

/* The names in dir other than `keep`, counted. */
static int others_in(const char *dir, const char *keep)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") &&
            strcmp(e->d_name, keep))
            n++;
    closedir(d);
    return n;
}

static void make_dir(const char *path)
{
    assert_int_equal(mkdir(path, 0755), 0);
}

/* A directory of its own holding model.nnm, saved from a; b is what a
 * test then tries to save over it. */
typedef struct save_case {
    char dir[256], path[300];
    nn_model *a, *b;
} save_case;

static void case_open(save_case *c, const char *name)
{
    snprintf(c->dir, sizeof c->dir, "%s", tpath(name));
    snprintf(c->path, sizeof c->path, "%s/model.nnm", c->dir);
    make_dir(c->dir);
    c->a = big(1);
    c->b = big(2);
    assert_status(nn_model_save(c->a, c->path, 0), NN_OK);
}

/* After a failed save: a, whole, and nothing beside it. */
static void assert_old_file_alone(const save_case *c)
{
    nn_model *m = NULL;
    assert_status(nn__model_load(c->path, &m), NN_OK);
    assert_int_equal(which(m, c->a, c->b), 0);
    assert_int_equal(others_in(c->dir, "model.nnm"), 0);
    nn_model_free(m);
}

static void case_close(save_case *c)
{
    nn_model_free(c->a);
    nn_model_free(c->b);
    remove_tree(c->dir);
}

/* A child saves a and b in turn, forever; it is killed after a random
 * delay. What is at the path must then be a or b, whole. */
static void test_save_killed_at_random_points(void **state)
{
    save_case c;
    case_open(&c, "kill");
    srand(12345);
    int seen[2] = {0, 0};
    for (int round = 0; round < 40; round++) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            for (int i = 0;; i++)
                nn_model_save(i % 2 ? c.a : c.b, c.path, 0);
        }
        struct timespec ts = {0, (long)(rand() % 20000) * 1000};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        int st = 0;
        assert_int_equal(waitpid(pid, &st, 0), pid);
        assert_true(WIFSIGNALED(st));
        nn_model *m = NULL;
        nn_status s = nn__model_load(c.path, &m);
        if (s != NN_OK)
            fail_msg("round %d: the file does not load: %s", round,
                     nn_last_error());
        int w = which(m, c.a, c.b);
        assert_true(w >= 0);
        seen[w]++;
        nn_model_free(m);
    }
    print_message("kills during saves: the old or new file every time "
                  "(%d a, %d b)\n",
                  seen[0], seen[1]);
    case_close(&c);
}

/* Runs fn in a child (as another user when root, since root writes
 * anywhere; with a file size limit; in its own mount namespace) and
 * returns its exit status. */
typedef int (*child_fn)(const char *path, const void *arg);

static int in_child(child_fn fn, const char *path, const void *arg)
{
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) _exit(fn(path, arg));
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    return WEXITSTATUS(st);
}

/* Exit status: 0 when the save failed with NN_ERR_IO, else 1. */
static int save_fails_with_io(const char *path, const nn_model *m)
{
    return nn_model_save(m, path, 0) == NN_ERR_IO ? 0 : 1;
}

static int save_without_write_permission(const char *path, const void *m)
{
    if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0))
        return 2;
    return save_fails_with_io(path, m);
}

static void test_save_into_read_only_directory(void **state)
{
    save_case c;
    case_open(&c, "ro");
    /* Root ignores permissions: its child drops to nobody, for whom the
     * directory (root's, 0555) is read-only too. */
    assert_int_equal(chmod(tmpdir, 0755), 0);
    assert_int_equal(chmod(c.dir, 0555), 0);
    assert_int_equal(in_child(save_without_write_permission, c.path, c.b), 0);
    assert_int_equal(chmod(c.dir, 0755), 0);
    assert_old_file_alone(&c);
    case_close(&c);
}

/* A file size limit: writes past it fail (EFBIG) as on a full disk. */
static int save_past_file_size_limit(const char *path, const void *m)
{
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit r = {64 << 10, 64 << 10};
    if (setrlimit(RLIMIT_FSIZE, &r) != 0) return 2;
    return save_fails_with_io(path, m);
}

/* A real full file system: a 256 KiB tmpfs in a mount namespace of the
 * child's own, where mounting is allowed. Exit 77: not allowed here. */
static int save_onto_full_tmpfs(const char *path, const void *arg)
{
    const nn_model *const *ab = arg;
    if (unshare(CLONE_NEWNS) != 0 ||
        mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
        mount("tmpfs", path, "tmpfs", 0, "size=256k") != 0)
        return 77;
    char file[320];
    snprintf(file, sizeof file, "%s/model.nnm", path);
    /* a (small) fits; b (1 MB) does not. */
    if (nn_model_save(ab[0], file, 0) != NN_OK) return 3;
    if (save_fails_with_io(file, ab[1]) != 0) return 4;
    nn_model *m = NULL;
    if (nn__model_load(file, &m) != NN_OK) return 5;
    bool same = m->n_layers == ab[0]->n_layers;
    nn_model_free(m);
    if (!same) return 6;
    return others_in(path, "model.nnm") == 0 ? 0 : 7;
}

static void test_save_onto_full_file_system(void **state)
{
    save_case c;
    case_open(&c, "full");
    assert_int_equal(in_child(save_past_file_size_limit, c.path, c.b), 0);
    assert_old_file_alone(&c);

    nn_model *small = nn_model_create(3);
    int shape[1] = {4};
    assert_non_null(nn_dense(small, nn_input(small, 1, shape, NULL), 2, NULL));
    const nn_model *ab[2] = {small, c.b};
    char mnt[320];
    snprintf(mnt, sizeof mnt, "%s/mnt", c.dir);
    make_dir(mnt);
    int st = in_child(save_onto_full_tmpfs, mnt, ab);
    if (st == 77)
        print_message("full tmpfs: mounting is not allowed here; the file "
                      "size limit stood in for it\n");
    else
        assert_int_equal(st, 0);
    nn_model_free(small);
    case_close(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_save_killed_at_random_points),
        cmocka_unit_test(test_save_into_read_only_directory),
        cmocka_unit_test(test_save_onto_full_file_system),
        cmocka_unit_test(test_alloc_failures_build),
        cmocka_unit_test(test_alloc_failures_compile),
        cmocka_unit_test(test_alloc_failures_load),
        cmocka_unit_test(test_alloc_failures_fit_step),
        cmocka_unit_test(test_alloc_failures_predict),
    };
    return cmocka_run_group_tests(tests, make_tmpdir, remove_tmpdir);
}

/* core/file.c and its users: atomic replacement (checkpoint, safetensors,
 * history CSV), its temporary names and stale temporaries, what may be
 * replaced, and the loaders' refusal of anything but a regular file and
 * of a bad envelope before reading the whole file.
 *
 * Special files are made here (mkfifo, mkdir, symlink in the test's own
 * directory); no test touches /dev. A FIFO test arms alarm() so that a
 * loader that blocks on it kills the test instead of hanging it. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "nn_internal.h"
#include "tmpdir.h"

/* ---------------- helpers ---------------- */

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    static char buf[4096];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* Temporaries in the test directory, by any naming scheme. */
static int temps(void) { return count_in(tmpdir, ".tmp."); }

/* The name of the one temporary in the test directory. */
static void temp_name(char *out, size_t cap)
{
    DIR *d = opendir(tmpdir);
    assert_non_null(d);
    struct dirent *e;
    out[0] = '\0';
    while ((e = readdir(d)) != NULL)
        if (strstr(e->d_name, ".tmp.")) snprintf(out, cap, "%s", e->d_name);
    closedir(d);
    assert_true(out[0] != '\0');
}

static int setup_dir(void **state)
{
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/test_files.XXXXXX",
             base && base[0] && strlen(base) < 40 ? base : "/tmp");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown_dir(void **state)
{
    remove_tree(tmpdir);
    return 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Input(in) -> Dense(units, softmax), compiled. */
static nn_model *model(int in, int units, uint64_t seed)
{
    nn_model *m = nn_model_create(seed);
    int shape[1] = {in};
    nn_layer *x = nn_input(m, 1, shape, NULL);
    nn_dense_opts d = NN_DENSE_OPTS_INIT;
    d.activation = NN_ACT_SOFTMAX;
    assert_non_null(nn_dense(m, x, units, &d));
    assert_int_equal(nn_model_compile(m, nn_sgd(NULL),
                                      NN_LOSS_CATEGORICAL_CROSSENTROPY, NULL),
                     NN_OK);
    return m;
}

static float first_kernel_value(nn_model *m)
{
    return nn_tensor_data(nn_layer_weight(nn_model_layer(m, 1), 0))[0];
}

static nn_history *history(nn_model *m)
{
    int64_t xs[2] = {4, 4}, ys[2] = {4, 2};
    nn_tensor *x = nn_tensor_create(2, xs), *y = nn_tensor_create(2, ys);
    for (int i = 0; i < 4; i++) nn_tensor_data(y)[2 * i + i % 2] = 1;
    nn_fit_opts f = NN_FIT_OPTS_INIT;
    f.epochs = 2;
    nn_history *h = NULL;
    assert_int_equal(nn_model_fit(m, x, y, &f, &h), NN_OK);
    nn_tensor_free(x);
    nn_tensor_free(y);
    return h;
}

/* ---------------- nn__file_replace ---------------- */

static nn_status write_text(FILE *f, void *ctx)
{
    fputs(ctx, f);
    return NN_OK;
}

static nn_status write_then_fail(FILE *f, void *ctx)
{
    fputs("half of it", f);
    return nn__fail(NN_ERR_STATE, "the writer gave up");
}

/* The old bytes stay until the new ones are complete; a failing writer
 * leaves them and no temporary (test_io fills the disk under
 * nn_model_save). */
static void test_replace_keeps_old_on_failure(void **state)
{
    const char *p = tpath("r.txt");
    assert_int_equal(nn__file_replace(p, "t", write_text, "old"), NN_OK);
    assert_string_equal(read_text(p), "old");
    assert_error(nn__file_replace(p, "t", write_then_fail, NULL),
                 NN_ERR_STATE, "gave up");
    assert_string_equal(read_text(p), "old");
    assert_int_equal(temps(), 0);

    assert_int_equal(nn__file_replace(p, "t", write_text, "new"), NN_OK);
    assert_string_equal(read_text(p), "new");
    assert_int_equal(temps(), 0);
}

/* a. A target whose name has the longest length a name may have. */
static void test_long_names(void **state)
{
    char name[256];
    memset(name, 'n', 251);
    strcpy(name + 251, ".nnm");
    assert_int_equal(strlen(name), 255);
    const char *p = tpath(name);
    nn_model *m = model(4, 2, 1);
    assert_int_equal(nn_model_save(m, p, NN_SAVE_OPTIMIZER), NN_OK);
    nn_model *back = nn_model_load(p);
    assert_non_null(back);
    assert_true(first_kernel_value(back) == first_kernel_value(m));
    nn_model_free(back);
    assert_int_equal(nn_model_save_safetensors(m, p), NN_OK);
    assert_int_equal(nn_model_load_safetensors(m, p, NN_WEIGHTS_LIBNN), NN_OK);
    nn_history *h = history(m);
    assert_int_equal(nn_history_write_csv(h, p), NN_OK);
    assert_non_null(strstr(read_text(p), "epoch,loss"));
    assert_int_equal(temps(), 0);
    unlink(p);
    nn_history_free(h);
    nn_model_free(m);
}

/* c. Only a regular file, or a link to one, is replaced. */
static void test_refuses_special_files(void **state)
{
    nn_model *m = model(4, 2, 1);
    nn_history *h = history(m);
    const char *fifo = tpath("fifo");
    assert_int_equal(mkfifo(fifo, 0600), 0);
    assert_error(nn_model_save(m, fifo, 0), NN_ERR_IO, "cannot replace");
    assert_non_null(strstr(nn_last_error(), "FIFO"));
    assert_error(nn_model_save_safetensors(m, fifo), NN_ERR_IO,
                 "cannot replace");
    assert_error(nn_history_write_csv(h, fifo), NN_ERR_IO, "cannot replace");
    struct stat st;
    assert_int_equal(lstat(fifo, &st), 0);
    assert_true(S_ISFIFO(st.st_mode));

    const char *dir = tpath("adir");
    assert_int_equal(mkdir(dir, 0700), 0);
    assert_error(nn_history_write_csv(h, dir), NN_ERR_IO, "a directory");

    assert_int_equal(symlink("fifo", tpath("to_fifo")), 0);
    assert_error(nn_model_save(m, tpath("to_fifo"), 0), NN_ERR_IO,
                 "symbolic link to a FIFO");
    assert_int_equal(symlink("nothing-here", tpath("dangling")), 0);
    assert_error(nn_model_save(m, tpath("dangling"), 0), NN_ERR_IO,
                 "leads nowhere");
    assert_int_equal(lstat(tpath("dangling"), &st), 0);
    assert_true(S_ISLNK(st.st_mode));
    assert_int_equal(temps(), 0);
    nn_history_free(h);
    nn_model_free(m);
}

/* c. Saving through a link replaces the file it leads to; the link
 * stays. */
static void test_saves_through_symlink(void **state)
{
    assert_int_equal(mkdir(tpath("sub"), 0700), 0);
    write_file(tpath("sub/real.nnm"), "old", 3);
    assert_int_equal(symlink("sub/real.nnm", tpath("link.nnm")), 0);
    nn_model *m = model(4, 2, 5);
    assert_int_equal(nn_model_save(m, tpath("link.nnm"), 0), NN_OK);
    struct stat st;
    assert_int_equal(lstat(tpath("link.nnm"), &st), 0);
    assert_true(S_ISLNK(st.st_mode));
    nn_model *back = nn_model_load(tpath("sub/real.nnm"));
    assert_non_null(back);
    assert_true(first_kernel_value(back) == first_kernel_value(m));
    nn_model_free(back);
    nn_history *h = history(m);
    assert_int_equal(nn_history_write_csv(h, tpath("link.nnm")), NN_OK);
    assert_non_null(strstr(read_text(tpath("sub/real.nnm")), "epoch,loss"));
    assert_int_equal(lstat(tpath("link.nnm"), &st), 0);
    assert_true(S_ISLNK(st.st_mode));
    assert_int_equal(count_in(tpath("sub"), ".tmp."), 0);
    assert_int_equal(temps(), 0);
    nn_history_free(h);
    nn_model_free(m);
}

/* d. A missing directory is reported with the caller's path. */
static void test_missing_directory_message(void **state)
{
    nn_model *m = model(4, 2, 1);
    nn_history *h = history(m);
    const char *p = tpath("no/such/dir/x.nnm");
    assert_error(nn_model_save(m, p, 0), NN_ERR_IO, p);
    assert_null(strstr(nn_last_error(), ".tmp."));
    assert_non_null(strstr(nn_last_error(), "No such file"));
    assert_error(nn_model_save_safetensors(m, p), NN_ERR_IO, p);
    assert_null(strstr(nn_last_error(), ".tmp."));
    assert_error(nn_history_write_csv(h, p), NN_ERR_IO, p);
    assert_null(strstr(nn_last_error(), ".tmp."));
    nn_history_free(h);
    nn_model_free(m);
}

/* ---------------- stale temporaries ---------------- */

/* Forks a child that dies with the test, even when an assertion ends the
 * test before it kills the child. */
static pid_t fork_child(void)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(1);
        alarm(120);
    }
    return pid;
}

static pid_t dead_pid(void)
{
    pid_t pid = fork_child();
    if (pid == 0) _exit(0);
    assert_int_equal(waitpid(pid, NULL, 0), pid);
    return pid;
}

static void kill_and_reap(pid_t pid)
{
    kill(pid, SIGKILL);
    assert_int_equal(waitpid(pid, NULL, 0), pid);
}

/* b. A writer killed mid-save (a child saving in a loop, killed once a
 * temporary shows) leaves one; a save of another target keeps it, the
 * next save of the same target removes it. */
static void test_killed_save_is_cleaned(void **state)
{
    const char *p = tpath("big.nnm"), *other = tpath("other.nnm");
    nn_model *big = model(1000, 1000, 2), *small = model(4, 2, 3);
    for (int attempt = 0; attempt < 50 && temps() == 0; attempt++) {
        pid_t pid = fork_child();
        if (pid == 0)
            for (;;) nn_model_save(big, p, 0);
        double t0 = now_s();
        while (temps() == 0 && now_s() - t0 < 10) usleep(200);
        kill_and_reap(pid);
    }
    assert_int_equal(temps(), 1);
    assert_int_equal(nn_model_save(small, other, 0), NN_OK);
    assert_int_equal(temps(), 1);
    assert_int_equal(nn_model_save(small, p, 0), NN_OK);
    assert_int_equal(temps(), 0);
    nn_model_free(big);
    nn_model_free(small);
}

static void signal_ready(int fd)
{
    char c = 'x';
    if (write(fd, &c, 1) != 1) _exit(1);
}

/* Writes a little, tells the parent, then waits to be killed. */
static nn_status write_and_stall(FILE *f, void *ctx)
{
    fputs("partial", f);
    fflush(f);
    signal_ready(*(int *)ctx);
    for (;;) pause();
    return NN_OK; /* not reached: the parent kills this process */
}

/* Child bodies: they signal `ready` once in place, then wait. */
static void stall_in_replace(const char *path, int ready)
{
    nn__file_replace(path, "child", write_and_stall, &ready);
}

/* Holds an exclusive flock on `path`, as a writer in another pid
 * namespace or on another machine would. */
static void hold_lock(const char *path, int ready)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0 || flock(fd, LOCK_EX) != 0) _exit(1);
    signal_ready(ready);
    for (;;) pause();
}

/* Runs `body` in a child and returns once the child is in place. */
static pid_t start_child(void (*body)(const char *, int), const char *path)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork_child();
    if (pid == 0) {
        body(path, fds[1]);
        _exit(1);
    }
    close(fds[1]);
    char c;
    alarm(20);
    assert_int_equal(read(fds[0], &c, 1), 1);
    alarm(0);
    close(fds[0]);
    return pid;
}

static bool exists(const char *name)
{
    struct stat st;
    return lstat(tpath(name), &st) == 0;
}

/* b. The rule: a temporary is removed only when the process it names is
 * gone and nobody holds its lock. */
static void test_live_writers_are_kept(void **state)
{
    char p[512], live[300], prefix[300], pid_part[32];
    snprintf(p, sizeof p, "%s", tpath("shared.txt"));
    assert_int_equal(nn__file_replace(p, "t", write_text, "v1"), NN_OK);
    pid_t writer = start_child(stall_in_replace, p);
    temp_name(live, sizeof live);
    /* ".nn.tmp.<tag>.<pid>.<n>": what precedes the pid names the target */
    snprintf(prefix, sizeof prefix, "%s", live);
    *strrchr(prefix, '.') = '\0';
    *(strrchr(prefix, '.') + 1) = '\0';
    snprintf(pid_part, sizeof pid_part, "%ld.", (long)writer);
    assert_int_equal(strncmp(live + strlen(prefix), pid_part,
                             strlen(pid_part)),
                     0);
    assert_int_equal(strncmp(live, ".nn.tmp.", 8), 0);

    /* our own pid, unlocked: as a file between creation and lock */
    char mine[400], dead[400], locked[400], foreign[400];
    snprintf(mine, sizeof mine, "%s%ld.77", prefix, (long)getpid());
    snprintf(dead, sizeof dead, "%s%ld.78", prefix, (long)dead_pid());
    snprintf(locked, sizeof locked, "%s%ld.79", prefix, (long)dead_pid());
    snprintf(foreign, sizeof foreign, ".nn.tmp.0123456789abcdef.%ld.80",
             (long)dead_pid());
    const char *fakes[4] = {mine, dead, locked, foreign};
    for (int i = 0; i < 4; i++) write_file(tpath(fakes[i]), "x", 1);
    pid_t holder = start_child(hold_lock, tpath(locked));

    assert_int_equal(nn__file_replace(p, "t", write_text, "v2"), NN_OK);
    assert_string_equal(read_text(p), "v2");
    assert_true(exists(live));    /* a live writer */
    assert_true(exists(mine));    /* a live pid */
    assert_false(exists(dead));   /* stale */
    assert_true(exists(locked));  /* a dead pid, but locked */
    assert_true(exists(foreign)); /* another target's */

    kill_and_reap(writer);
    assert_int_equal(nn__file_replace(p, "t", write_text, "v3"), NN_OK);
    assert_false(exists(live));
    assert_true(exists(locked));
    kill_and_reap(holder);
    assert_int_equal(nn__file_replace(p, "t", write_text, "v4"), NN_OK);
    assert_false(exists(locked));
    assert_true(exists(mine));
    assert_true(exists(foreign));
    assert_string_equal(read_text(p), "v4");
    unlink(tpath(mine));
    unlink(tpath(foreign));
}

/* ---------------- reading ---------------- */

/* Every loader refuses a FIFO at once (it used to wait forever for a
 * writer: the alarm turns that into a failure). */
static void test_loaders_refuse_fifo(void **state)
{
    const char *fifo = tpath("in.fifo");
    assert_int_equal(mkfifo(fifo, 0600), 0);
    alarm(20);
    nn_model *m = nn_model_load(fifo);
    assert_null(m);
    assert_int_equal(nn_last_status(), NN_ERR_IO);
    assert_non_null(strstr(nn_last_error(), "is a FIFO, not a regular file"));
    nn_model *w = model(4, 2, 1);
    assert_error(nn_model_load_safetensors(w, fifo, NN_WEIGHTS_LIBNN),
                 NN_ERR_IO, "is a FIFO, not a regular file");
    nn_tensor *t = NULL, *y = NULL;
    assert_error(nn_load_idx(fifo, 1, &t), NN_ERR_IO,
                 "is a FIFO, not a regular file");
    const char *paths[1] = {fifo};
    assert_error(nn_load_cifar10(paths, 1, &t, &y), NN_ERR_IO,
                 "is a FIFO, not a regular file");
    assert_error(nn_load_idx(tmpdir, 1, &t), NN_ERR_IO, "is a directory");
    alarm(0);
    nn_model_free(w);
}

/* A sparse file of `size` bytes that starts with `head`. */
static void sparse_file(const char *path, const void *head, size_t n,
                        uint64_t size)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, head, n), (ssize_t)n);
    assert_int_equal(ftruncate(fd, (off_t)size), 0);
    close(fd);
}

/* The envelope is checked from the first bytes: a 4 GiB file with a bad
 * version (or size, or header length) fails at once, allocating
 * nothing. */
static void test_envelope_before_reading(void **state)
{
    const uint64_t four_gib = (uint64_t)1 << 32;
    uint8_t h[24] = "NNMODEL";
    h[8] = 2; /* version 2 */
    for (int i = 0; i < 8; i++) h[16 + i] = (uint8_t)(four_gib >> (8 * i));
    const char *p = tpath("sparse.nnm");
    sparse_file(p, h, sizeof h, four_gib);
    nn__debug_fail_alloc_after(0);
    double t0 = now_s();
    assert_null(nn_model_load(p));
    int64_t allocs = nn__debug_fail_alloc_after(0);
    assert_int_equal(nn_last_status(), NN_ERR_UNSUPPORTED);
    assert_non_null(strstr(nn_last_error(), "format version 2"));
    assert_int_equal(allocs, 0);
    assert_true(now_s() - t0 < 1.0);

    h[8] = 1; /* right version, wrong declared size */
    h[16 + 4] = 0;
    h[16] = 100;
    sparse_file(p, h, sizeof h, four_gib);
    nn__debug_fail_alloc_after(0);
    assert_null(nn_model_load(p));
    assert_int_equal(nn__debug_fail_alloc_after(0), 0);
    assert_non_null(strstr(nn_last_error(), "trailing bytes"));
    unlink(p);

    const char *st = tpath("sparse.safetensors");
    uint8_t len[8] = {0, 0, 0, 0, 0, 1, 0, 0}; /* 2^40 header bytes */
    sparse_file(st, len, sizeof len, four_gib);
    nn_model *m = model(4, 2, 1);
    nn__debug_fail_alloc_after(0);
    t0 = now_s();
    assert_error(nn_model_load_safetensors(m, st, NN_WEIGHTS_LIBNN),
                 NN_ERR_FORMAT, "does not fit the file");
    assert_int_equal(nn__debug_fail_alloc_after(0), 0);
    assert_true(now_s() - t0 < 1.0);
    unlink(st);
    nn_model_free(m);
}

static nn_status head_is_abc(const uint8_t *head, size_t n, uint64_t size,
                             void *ctx)
{
    *(size_t *)ctx = n;
    NN_CHECK(n >= 3 && !memcmp(head, "abc", 3), NN_ERR_FORMAT, "not abc");
    return NN_OK;
}

/* The reader's own rules: the size cap before anything is read, the head
 * check on min(head, size) bytes, then the whole file. */
static void test_read_all(void **state)
{
    const char *p = tpath("r.bin");
    write_file(p, "abcdefghij", 10);
    size_t seen = 0, size = 0;
    uint8_t *buf = NULL;
    nn_file_head head = {4, head_is_abc, &seen};
    assert_int_equal(nn__file_read_all(p, "t", 10, &head, &buf, &size),
                     NN_OK);
    assert_int_equal(seen, 4);
    assert_int_equal(size, 10);
    assert_memory_equal(buf, "abcdefghij", 10);
    nn__free(buf);
    nn__debug_fail_alloc_after(0);
    assert_error(nn__file_read_all(p, "t", 9, &head, &buf, &size),
                 NN_ERR_FORMAT, "more than the limit of 9 bytes");
    assert_int_equal(nn__debug_fail_alloc_after(0), 0);
    write_file(p, "ab", 2);
    assert_error(nn__file_read_all(p, "t", 10, &head, &buf, &size),
                 NN_ERR_FORMAT, "not abc");
    assert_int_equal(seen, 2);
    write_file(p, "", 0);
    assert_int_equal(nn__file_read_all(p, "t", 10, NULL, &buf, &size), NN_OK);
    assert_int_equal(size, 0);
    nn__free(buf);
    assert_error(nn__file_read_all(tpath("none"), "who", 10, NULL, &buf,
                                   &size),
                 NN_ERR_IO, "who: cannot open");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_killed_save_is_cleaned),
        cmocka_unit_test(test_live_writers_are_kept),
        cmocka_unit_test(test_replace_keeps_old_on_failure),
        cmocka_unit_test(test_long_names),
        cmocka_unit_test(test_refuses_special_files),
        cmocka_unit_test(test_saves_through_symlink),
        cmocka_unit_test(test_missing_directory_message),
        cmocka_unit_test(test_loaders_refuse_fifo),
        cmocka_unit_test(test_envelope_before_reading),
        cmocka_unit_test(test_read_all),
    };
    return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}

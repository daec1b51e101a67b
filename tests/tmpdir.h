/* Helpers for tests that write files: a directory of the test's own,
 * paths in it, writing a file, counting and removing entries, and
 * assert_error on a status and its message.
 *
 * Include after cmocka.h and nn.h (or nn_internal.h); the test creates
 * `tmpdir` in its setup (make_tmpdir as a group setup does it, and
 * remove_tmpdir as the teardown removes it with everything in it). */
#ifndef NN_TEST_TMPDIR_H
#define NN_TEST_TMPDIR_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[64];

/* A path inside the test's directory; four rotating buffers. */
static inline const char *tpath(const char *name)
{
    static char bufs[4][512];
    static int k;
    char *b = bufs[k++ & 3];
    snprintf(b, sizeof bufs[0], "%s/%s", tmpdir, name);
    return b;
}

#define assert_error(expr, want, sub)                                          \
    do {                                                                       \
        nn_status s_ = (expr);                                                 \
        if (s_ != (want))                                                      \
            fail_msg("%s: got %s, want %s (message: %s)", #expr,              \
                     nn_status_name(s_), nn_status_name(want),                 \
                     nn_last_error());                                         \
        const char *sub_ = (sub);                                              \
        if (sub_ && !strstr(nn_last_error(), sub_))                            \
            fail_msg("%s: message '%s' lacks '%s'", #expr, nn_last_error(),   \
                     sub_);                                                    \
    } while (0)

static inline void write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (n) assert_int_equal(fwrite(data, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

/* Entries of directory `dir` whose name contains `part`. */
static inline int count_in(const char *dir, const char *part)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) n += strstr(e->d_name, part) != NULL;
    closedir(d);
    return n;
}

static inline void remove_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char p[1024];
        if (snprintf(p, sizeof p, "%s/%s", dir, e->d_name) >= (int)sizeof p)
            continue;
        struct stat st;
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode)) {
            chmod(p, 0755);
            remove_tree(p);
        } else {
            unlink(p);
        }
    }
    closedir(d);
    rmdir(dir);
}

static inline int make_tmpdir(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/nn_test_XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static inline int remove_tmpdir(void **state)
{
    (void)state;
    remove_tree(tmpdir);
    return 0;
}

#endif

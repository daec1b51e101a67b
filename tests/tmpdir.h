/* What the test programs that write files share: a temporary directory of
 * the program's own (created by the group setup, removed with everything
 * in it by the teardown), paths inside it, and a status assertion that
 * shows the library's message. Include after cmocka.h and nn.h. */
#ifndef NN_TEST_TMPDIR_H
#define NN_TEST_TMPDIR_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char tmpdir[64];

/* A path inside the test's directory; four rotating buffers. */
static const char *tpath(const char *name)
{
    static char bufs[4][256];
    static int k;
    char *b = bufs[k++ & 3];
    snprintf(b, sizeof bufs[0], "%s/%s", tmpdir, name);
    return b;
}

/* expr must return `want`, and the message contain `sub` (NULL: any). */
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

static void remove_tree(const char *path)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    assert_int_equal(system(cmd), 0);
}

static int make_tmpdir(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/nn_test_XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int remove_tmpdir(void **state)
{
    (void)state;
    remove_tree(tmpdir);
    return 0;
}

#endif

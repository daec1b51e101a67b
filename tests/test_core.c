/* core/: the versioned options reader (opts.c) on real options structs,
 * byte by byte and through one public entry point of each user (layers,
 * optimizers, diagnostics, fit), the counting text buffer, and the
 * default thread count (threads.c), in child processes of this program. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "nn_internal.h"

#define assert_message_has(sub)                                                \
    do {                                                                       \
        if (!strstr(nn_last_error(), (sub)))                                   \
            fail_msg("message '%s' lacks '%s'", nn_last_error(), (sub));       \
    } while (0)

/* ---------------- the reader, byte by byte ---------------- */

/* A member of an options struct, as the test sees it (offsetof), apart
 * from the library's own table. */
typedef struct member {
    size_t off, len;
} member;
#define MEMBER(T, m) {offsetof(T, m), sizeof(((T *)0)->m)}

typedef struct opts_case {
    nn_opts_kind kind;
    const char *fn, *init;
    size_t size;
    const void *defaults; /* the INIT macro's values */
    const member *members;
    int n_members;
} opts_case;

static const nn_conv2d_opts conv2d_defaults = NN_CONV2D_OPTS_INIT;
static const member conv2d_members[] = {
    MEMBER(nn_conv2d_opts, name),        MEMBER(nn_conv2d_opts, stride_h),
    MEMBER(nn_conv2d_opts, stride_w),    MEMBER(nn_conv2d_opts, padding),
    MEMBER(nn_conv2d_opts, use_bias),    MEMBER(nn_conv2d_opts, activation),
    MEMBER(nn_conv2d_opts, kernel_init), MEMBER(nn_conv2d_opts, bias_init)};

/* 4-byte members, then pointers after 4 bytes of padding. */
static const nn_fit_opts fit_defaults = NN_FIT_OPTS_INIT;
static const member fit_members[] = {
    MEMBER(nn_fit_opts, epochs),   MEMBER(nn_fit_opts, batch_size),
    MEMBER(nn_fit_opts, shuffle),  MEMBER(nn_fit_opts, val_x),
    MEMBER(nn_fit_opts, val_y),    MEMBER(nn_fit_opts, progress),
    MEMBER(nn_fit_opts, user),     MEMBER(nn_fit_opts, record_grad_norm),
    MEMBER(nn_fit_opts, stop_on_nonfinite), MEMBER(nn_fit_opts, sync),
    MEMBER(nn_fit_opts, sync_user), MEMBER(nn_fit_opts, rank),
    MEMBER(nn_fit_opts, world_size)};

static const nn_adam_opts adam_defaults = NN_ADAM_OPTS_INIT;
static const member adam_members[] = {
    MEMBER(nn_adam_opts, learning_rate), MEMBER(nn_adam_opts, beta1),
    MEMBER(nn_adam_opts, beta2), MEMBER(nn_adam_opts, epsilon),
    MEMBER(nn_adam_opts, eps_mode)};

#define N(a) (int)(sizeof a / sizeof a[0])
static const opts_case cases[] = {
    {NN_OPTS_CONV2D, "nn_conv2d", "NN_CONV2D_OPTS_INIT", sizeof(nn_conv2d_opts),
     &conv2d_defaults, conv2d_members, N(conv2d_members)},
    {NN_OPTS_FIT, "nn_model_fit", "NN_FIT_OPTS_INIT", sizeof(nn_fit_opts),
     &fit_defaults, fit_members, N(fit_members)},
    {NN_OPTS_ADAM, "nn_adam", "NN_ADAM_OPTS_INIT", sizeof(nn_adam_opts),
     &adam_defaults, adam_members, N(adam_members)},
};

#define BUF 512

/* A caller's struct of `size` bytes: every byte distinct from the
 * defaults' (the pattern is not a valid option; the reader never looks
 * at values), then `size` itself, then a zero tail. */
static void caller_bytes(uint8_t *buf, size_t known, size_t size)
{
    memset(buf, 0, BUF);
    for (size_t i = 0; i < known; i++) buf[i] = (uint8_t)(0xA0 + i % 37);
    memcpy(buf, &size, sizeof size);
}

/* Each member is the caller's when it lies wholly within `size`, else the
 * default; size is this library's. */
static void expect_cut(const opts_case *c, const uint8_t *dst,
                       const uint8_t *src, size_t size)
{
    size_t got;
    memcpy(&got, dst, sizeof got);
    assert_int_equal(got, c->size);
    const uint8_t *def = c->defaults;
    for (int i = 0; i < c->n_members; i++) {
        const member *m = &c->members[i];
        bool whole = m->off + m->len <= size;
        const uint8_t *want = whole ? src + m->off : def + m->off;
        if (memcmp(dst + m->off, want, m->len) != 0)
            fail_msg("%s, size %zu: member at %zu should be the %s", c->fn,
                     size, m->off, whole ? "caller's" : "default");
    }
}

static void read_with_size(const opts_case *c, size_t size)
{
    uint8_t src[BUF], dst[BUF];
    caller_bytes(src, c->size, size);
    memcpy(dst, c->defaults, c->size);
    assert_int_equal(nn__read_opts_as(dst, src, c->kind, c->fn), NN_OK);
    expect_cut(c, dst, src, size);
}

/* Shorter (every size from the size member up), exact, and longer with a
 * zero tail: what both sides know is taken, never part of a member. */
static void test_opts_sizes_accepted(void **state)
{
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++)
        for (size_t size = sizeof(size_t); size <= cases[k].size + 64; size++)
            read_with_size(&cases[k], size);
}

/* A newer caller's option this library lacks is refused, whichever byte
 * of the tail it sets; dst keeps its defaults. */
static void test_opts_nonzero_tail(void **state)
{
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        const opts_case *c = &cases[k];
        size_t size = c->size + 24;
        for (size_t at = c->size; at < size; at++) {
            uint8_t src[BUF], dst[BUF];
            caller_bytes(src, c->size, size);
            src[at] = 1;
            memcpy(dst, c->defaults, c->size);
            nn_clear_error();
            assert_int_equal(nn__read_opts_as(dst, src, c->kind, c->fn),
                             NN_ERR_INVALID);
            assert_message_has(c->fn);
            assert_message_has("newer libnn");
            assert_memory_equal(dst + sizeof(size_t),
                                (const uint8_t *)c->defaults + sizeof(size_t),
                                c->size - sizeof(size_t));
        }
    }
}

/* Sizes that are no struct: smaller than the size member, or absurd. The
 * absurd ones must fail without reading past the caller's 16 bytes (ASan
 * watches). */
static void test_opts_nonsense_sizes(void **state)
{
    const size_t bad[] = {0, 1, 7, NN_OPTS_MAX_SIZE + 1, (size_t)1 << 32,
                          SIZE_MAX};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        const opts_case *c = &cases[k];
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            uint8_t *src = malloc(sizeof(size_t) * 2);
            uint8_t dst[BUF];
            assert_non_null(src);
            memset(src, 0, 2 * sizeof(size_t));
            memcpy(src, &bad[i], sizeof bad[i]);
            memcpy(dst, c->defaults, c->size);
            assert_int_equal(nn__read_opts_as(dst, src, c->kind, c->fn),
                             NN_ERR_INVALID);
            assert_message_has(c->fn);
            assert_message_has(c->init);
            free(src);
        }
    }
}

/* The largest plausible size, all zero beyond the struct, is a newer
 * caller leaving every new option at its default. */
static void test_opts_largest_size(void **state)
{
    uint8_t *src = calloc(1, NN_OPTS_MAX_SIZE);
    assert_non_null(src);
    nn_conv2d_opts o = NN_CONV2D_OPTS_INIT, in = NN_CONV2D_OPTS_INIT;
    in.size = NN_OPTS_MAX_SIZE;
    in.stride_h = 3;
    memcpy(src, &in, sizeof in);
    assert_int_equal(nn__read_opts(&o, (const nn_conv2d_opts *)src, "t"),
                     NN_OK);
    assert_int_equal(o.stride_h, 3);
    assert_int_equal(o.size, sizeof o);
    src[NN_OPTS_MAX_SIZE - 1] = 9;
    assert_int_equal(nn__read_opts(&o, (const nn_conv2d_opts *)src, "t"),
                     NN_ERR_INVALID);
    free(src);
}

/* Every options struct: NULL keeps the defaults, its exact size and a
 * zero tail read, a non-zero tail or a tiny size fail. */
static void test_opts_every_struct(void **state)
{
    static const size_t sizes[NN_OPTS_KIND_COUNT] = {
        [NN_OPTS_LAYER] = sizeof(nn_layer_opts),
        [NN_OPTS_CONV2D] = sizeof(nn_conv2d_opts),
        [NN_OPTS_POOL2D] = sizeof(nn_pool2d_opts),
        [NN_OPTS_DENSE] = sizeof(nn_dense_opts),
        [NN_OPTS_BATCHNORM] = sizeof(nn_batchnorm_opts),
        [NN_OPTS_RESIZING] = sizeof(nn_resizing_opts),
        [NN_OPTS_AUGMENT] = sizeof(nn_augment_opts),
        [NN_OPTS_LOSS] = sizeof(nn_loss_opts),
        [NN_OPTS_ADAM] = sizeof(nn_adam_opts),
        [NN_OPTS_SGD] = sizeof(nn_sgd_opts),
        [NN_OPTS_FIT] = sizeof(nn_fit_opts),
        [NN_OPTS_DIAG] = sizeof(nn_diag_opts),
        [NN_OPTS_RESNET] = sizeof(nn_resnet_opts),
        [NN_OPTS_IMAGE] = sizeof(nn_image_opts),
        [NN_OPTS_PIXELS] = sizeof(nn_pixels_opts),
        [NN_OPTS_DEFECTS] = sizeof(nn_defects_opts),
        [NN_OPTS_BINARY] = sizeof(nn_binary_opts),
        [NN_OPTS_LIMITS] = sizeof(nn_limits),
        [NN_OPTS_BINARY_REPORT] = sizeof(nn_binary_report),
        [NN_OPTS_DEPTHWISE_CONV2D] = sizeof(nn_depthwise_conv2d_opts),
        [NN_OPTS_CONV2D_TRANSPOSE] = sizeof(nn_conv2d_transpose_opts),
        [NN_OPTS_UPSAMPLING2D] = sizeof(nn_upsampling2d_opts),
        [NN_OPTS_SEPARABLE_CONV2D] = sizeof(nn_separable_conv2d_opts),
        [NN_OPTS_PREPROCESS] = sizeof(nn_preprocess_opts),
        [NN_OPTS_MOBILENET_V2] = sizeof(nn_mobilenet_v2_opts),
        [NN_OPTS_UNET] = sizeof(nn_unet_opts),
        [NN_OPTS_PRELU] = sizeof(nn_prelu_opts)};
    for (int k = 0; k < NN_OPTS_KIND_COUNT; k++) {
        uint8_t src[BUF], dst[BUF];
        size_t n = sizes[k], got;
        assert_true(n + 8 <= BUF);
        memset(dst, 0xEE, sizeof dst);
        assert_int_equal(nn__read_opts_as(dst, NULL, (nn_opts_kind)k, "t"),
                         NN_OK);
        memcpy(&got, dst, sizeof got);
        assert_int_equal(got, n);
        assert_int_equal(dst[sizeof(size_t)], 0xEE);
        caller_bytes(src, n, n);
        assert_int_equal(nn__read_opts_as(dst, src, (nn_opts_kind)k, "t"),
                         NN_OK);
        /* the first member is 4 or 8 bytes and always whole here */
        assert_memory_equal(dst + sizeof(size_t), src + sizeof(size_t), 4);
        caller_bytes(src, n, n + 8);
        assert_int_equal(nn__read_opts_as(dst, src, (nn_opts_kind)k, "t"),
                         NN_OK);
        src[n + 7] = 0x80;
        assert_int_equal(nn__read_opts_as(dst, src, (nn_opts_kind)k, "t"),
                         NN_ERR_INVALID);
        caller_bytes(src, n, 4);
        assert_int_equal(nn__read_opts_as(dst, src, (nn_opts_kind)k, "t"),
                         NN_ERR_INVALID);
    }
}

/* ---------------- through the public entry points ---------------- */

/* A newer header's options in `buf`: `opts` (n bytes, the options this
 * library knows), then `extra` zero bytes; size covers both. The whole
 * buffer is zeroed first, as padding is part of the tail that is checked. */
static const void *newer(max_align_t *buf, const void *opts, size_t n,
                         size_t extra)
{
    size_t size = n + extra;
    memset(buf, 0, size);
    memcpy(buf, opts, n);
    memcpy(buf, &size, sizeof size);
    return buf;
}

/* Layers: Conv2D's output shape shows which strides were read. */
static void test_opts_layer_entry(void **state)
{
    nn_model *m = nn_model_create(1);
    int shape[3] = {8, 8, 1}, out[3];
    nn_layer *in = nn_input(m, 3, shape, NULL);
    struct {
        nn_conv2d_opts o;
        int newer[4];
    } c = {NN_CONV2D_OPTS_INIT, {0}};
    c.o.stride_h = 2;
    c.o.stride_w = 2;
    /* an older header that ends after stride_h: stride_w is the default */
    c.o.size = offsetof(nn_conv2d_opts, stride_w);
    nn_layer *l = nn_conv2d(m, in, 1, 3, 3, &c.o);
    assert_non_null(l);
    assert_int_equal(nn_layer_output_shape(l, out, 3), 3);
    assert_int_equal(out[0], 3);
    assert_int_equal(out[1], 6);
    /* ending two bytes into stride_w: still the default */
    c.o.size = offsetof(nn_conv2d_opts, stride_w) + 2;
    l = nn_conv2d(m, in, 1, 3, 3, &c.o);
    assert_int_equal(nn_layer_output_shape(l, out, 3), 3);
    assert_int_equal(out[1], 6);
    /* a newer header, its options at their defaults */
    c.o.size = sizeof c;
    l = nn_conv2d(m, in, 1, 3, 3, &c.o);
    assert_int_equal(nn_layer_output_shape(l, out, 3), 3);
    assert_int_equal(out[1], 3);
    /* ... or one of them set */
    c.newer[2] = 1;
    assert_null(nn_conv2d(m, in, 1, 3, 3, &c.o));
    assert_int_equal(nn_last_status(), NN_ERR_INVALID);
    assert_message_has("nn_conv2d: ");
    c.o.size = 3;
    assert_null(nn_conv2d(m, in, 1, 3, 3, &c.o));
    assert_message_has("NN_CONV2D_OPTS_INIT");
    /* nn_model_apply reads nn_layer_opts by the same rule; a size beyond
     * any struct is refused before a byte past it is read */
    nn_model *inner = nn_model_create(2);
    nn_layer *x = nn_input(inner, 3, shape, NULL);
    assert_non_null(nn_relu(inner, x, NULL));
    nn_layer_opts lo = NN_LAYER_OPTS_INIT;
    lo.size = 1 << 20;
    assert_null(nn_model_apply(m, in, inner, NULL, &lo));
    assert_message_has("nn_model_apply: ");
    lo.size = sizeof lo;
    lo.name = "block";
    assert_non_null(nn_model_apply(m, in, inner, NULL, &lo));
    nn_model_free(inner);
    nn_model_free(m);
}

static void test_opts_optimizer_entry(void **state)
{
    nn_adam_opts a = NN_ADAM_OPTS_INIT;
    a.learning_rate = 0.5f;
    a.beta1 = 0.5f;
    a.epsilon = -1; /* invalid, but not read */
    a.size = offsetof(nn_adam_opts, beta1) + 3;
    nn_optimizer *o = nn_adam(&a);
    assert_non_null(o);
    assert_true(o->adam.learning_rate == 0.5f);
    assert_true(o->adam.beta1 == 0.9f);
    assert_int_equal(o->adam.size, sizeof a);
    nn_optimizer_free(o);
    max_align_t buf[8];
    nn_sgd_opts sgd = NN_SGD_OPTS_INIT;
    const nn_sgd_opts *s = newer(buf, &sgd, sizeof sgd, 8);
    o = nn_sgd(s);
    assert_non_null(o);
    nn_optimizer_free(o);
    ((uint8_t *)buf)[sizeof sgd + 7] = 1;
    assert_null(nn_sgd(s));
    assert_message_has("nn_sgd: ");
    assert_message_has("newer libnn");
    sgd.size = SIZE_MAX;
    assert_null(nn_sgd(&sgd));
    assert_message_has("NN_SGD_OPTS_INIT");
}

static nn_model *tiny_model(void)
{
    nn_model *m = nn_model_create(3);
    int shape[1] = {4};
    nn_layer *x = nn_input(m, 1, shape, NULL);
    nn_dense_opts d = NN_DENSE_OPTS_INIT;
    d.activation = NN_ACT_SOFTMAX;
    assert_non_null(nn_dense(m, x, 2, &d));
    assert_int_equal(nn_model_compile(m, nn_sgd(NULL),
                                      NN_LOSS_CATEGORICAL_CROSSENTROPY, NULL),
                     NN_OK);
    return m;
}

static void test_opts_diag_entry(void **state)
{
    nn_model *m = tiny_model();
    max_align_t buf[8];
    nn_diag_opts d = NN_DIAG_OPTS_INIT;
    const nn_diag_opts *big = newer(buf, &d, sizeof d, 4);
    assert_int_equal(nn_model_set_diagnostics(m, big), NN_OK);
    ((uint8_t *)buf)[sizeof d] = 0xff;
    assert_int_equal(nn_model_set_diagnostics(m, big), NN_ERR_INVALID);
    assert_message_has("nn_model_set_diagnostics: ");
    d.size = NN_OPTS_MAX_SIZE * 2;
    assert_int_equal(nn_model_set_diagnostics(m, &d), NN_ERR_INVALID);
    assert_message_has("NN_DIAG_OPTS_INIT");
    /* shorter: the window (and what follows) keeps its default; a zero
     * window would be refused if it were read */
    d.window = 0;
    d.size = offsetof(nn_diag_opts, window) + 2;
    assert_int_equal(nn_model_set_diagnostics(m, &d), NN_OK);
    d.size = sizeof d;
    assert_int_equal(nn_model_set_diagnostics(m, &d), NN_ERR_INVALID);
    nn_model_free(m);
}

/* fit: a size that ends inside val_x must not take half a pointer (it
 * would then demand val_y too). */
static void test_opts_fit_entry(void **state)
{
    nn_model *m = tiny_model();
    int64_t xs[2] = {4, 4}, ys[2] = {4, 2};
    nn_tensor *x = nn_tensor_create(2, xs), *y = nn_tensor_create(2, ys);
    for (int i = 0; i < 4; i++) nn_tensor_data(y)[2 * i + i % 2] = 1;
    struct {
        nn_fit_opts f;
        int newer[2];
    } f = {NN_FIT_OPTS_INIT, {0, 0}};
    f.f.val_x = x;
    f.f.size = offsetof(nn_fit_opts, val_x) + 4;
    assert_int_equal(nn_model_fit(m, x, y, &f.f, NULL), NN_OK);
    f.f.size = offsetof(nn_fit_opts, val_y);
    assert_int_equal(nn_model_fit(m, x, y, &f.f, NULL), NN_ERR_INVALID);
    assert_message_has("val_y");
    f.f.val_x = NULL;
    f.f.size = sizeof f;
    assert_int_equal(nn_model_fit(m, x, y, &f.f, NULL), NN_OK);
    f.newer[1] = 7;
    nn_history *h = (nn_history *)&f;
    assert_int_equal(nn_model_fit(m, x, y, &f.f, &h), NN_ERR_INVALID);
    assert_null(h);
    assert_message_has("nn_model_fit: ");
    nn_tensor_free(x);
    nn_tensor_free(y);
    nn_model_free(m);
}

/* ---------------- the text buffer ---------------- */

/* Pieces of any length are counted and copied whole; what does not fit
 * is cut, and a call with cap 0 measures. */
static void test_sbuf(void **state)
{
    static char big[3000];
    memset(big, 'x', sizeof big - 1);
    char *out = malloc(4000);
    nn_sbuf s = {out, 4000, 0};
    nn__sbuf_put(&s, "<%s>", big);
    nn__sbuf_put(&s, "%d", 42);
    size_t needed = 0;
    nn__sbuf_finish(&s, &needed);
    assert_int_equal(needed, sizeof big - 1 + 2 + 2 + 1);
    assert_int_equal(strlen(out), needed - 1);
    assert_int_equal(out[sizeof big], '>');
    assert_string_equal(out + sizeof big + 1, "42");
    nn_sbuf m = {NULL, 0, 0};
    nn__sbuf_put(&m, "<%s>", big);
    nn__sbuf_put(&m, "%d", 42);
    nn__sbuf_finish(&m, &needed);
    assert_int_equal(needed, sizeof big - 1 + 2 + 2 + 1);
    char small[8];
    nn_sbuf t = {small, sizeof small, 0};
    nn__sbuf_put(&t, "abc");
    nn__sbuf_put(&t, "defgh");
    nn__sbuf_put(&t, "ij");
    nn__sbuf_finish(&t, &needed);
    assert_string_equal(small, "abcdefg");
    assert_int_equal(needed, 11);
    free(out);
}

/* ---------------- the default thread count ---------------- */

/* What a fresh process sees: the default, then after setting 2, then
 * after restoring the default. Run as this program with --threads-child. */
static int threads_child(void)
{
    int a = nn_get_num_threads();
    if (nn_set_num_threads(2) != NN_OK) return 1;
    int b = nn_get_num_threads();
    if (nn_set_num_threads(0) != NN_OK) return 1;
    printf("%d %d %d\n", a, b, nn_get_num_threads());
    return 0;
}

/* Runs this program as a child with OMP_NUM_THREADS set to `env` (NULL:
 * unset) from its start, and reads its three counts. */
static void child_threads(const char *env, int got[3])
{
    int fd[2];
    assert_int_equal(pipe(fd), 0);
    fflush(stdout);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fd[1], STDOUT_FILENO);
        close(fd[0]);
        if (env)
            setenv("OMP_NUM_THREADS", env, 1);
        else
            unsetenv("OMP_NUM_THREADS");
        execl("/proc/self/exe", "test_core", "--threads-child", (char *)NULL);
        _exit(127);
    }
    close(fd[1]);
    char buf[64] = {0};
    ssize_t n = read(fd[0], buf, sizeof buf - 1);
    close(fd[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_true(n > 0);
    assert_int_equal(sscanf(buf, "%d %d %d", &got[0], &got[1], &got[2]), 3);
}

static void test_threads_default_from_env(void **state)
{
    (void)state;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    struct {
        const char *env;
        long want; /* the default; 0: every core */
    } envs[] = {
        {"3", 3},   {" 5 ", 5},  {"2,1", 2},  {"1", 1},    {"5000", 1024},
        {NULL, 0},  {"", 0},     {"0", 0},    {"-4", 0},   {"abc", 0},
        {"3x", 0},
    };
    for (size_t i = 0; i < sizeof envs / sizeof envs[0]; i++) {
        int got[3];
        child_threads(envs[i].env, got);
        long want = envs[i].want ? envs[i].want : cores;
        if (got[0] != want || got[1] != 2 || got[2] != want)
            fail_msg("OMP_NUM_THREADS=%s: got %d %d %d, want %ld 2 %ld",
                     envs[i].env ? envs[i].env : "(unset)", got[0], got[1],
                     got[2], want, want);
    }
    /* Out of range stays an error naming the range. */
    assert_int_equal(nn_set_num_threads(1025), NN_ERR_INVALID);
    assert_message_has("give 1 to 1024, or 0 for the default");
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--threads-child") == 0)
        return threads_child();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_opts_sizes_accepted),
        cmocka_unit_test(test_opts_nonzero_tail),
        cmocka_unit_test(test_opts_nonsense_sizes),
        cmocka_unit_test(test_opts_largest_size),
        cmocka_unit_test(test_opts_every_struct),
        cmocka_unit_test(test_opts_layer_entry),
        cmocka_unit_test(test_opts_optimizer_entry),
        cmocka_unit_test(test_opts_diag_entry),
        cmocka_unit_test(test_opts_fit_entry),
        cmocka_unit_test(test_sbuf),
        cmocka_unit_test(test_threads_default_from_env),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* File formats and data loaders: IDX, CIFAR-10, one-hot, checkpoints. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "io/io.h"
#include "nn_internal.h"
#include "tmpdir.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

/* ------------------------------------------------------------------ */
/* helpers                                                             */
/* ------------------------------------------------------------------ */

typedef struct bytes {
    uint8_t *p;
    size_t n, cap;
} bytes;

static void b_put(bytes *b, const void *p, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        assert_non_null(b->p);
    }
    if (n) memcpy(b->p + b->n, p, n);
    b->n += n;
}

static void b_u8(bytes *b, uint8_t v) { b_put(b, &v, 1); }

static void b_be32(bytes *b, uint32_t v)
{
    uint8_t x[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8),
                    (uint8_t)v};
    b_put(b, x, 4);
}

static void b_u32(bytes *b, uint32_t v)
{
    uint8_t x[4];
    nn__put_le32(x, v);
    b_put(b, x, 4);
}

static void b_u64(bytes *b, uint64_t v)
{
    b_u32(b, (uint32_t)v);
    b_u32(b, (uint32_t)(v >> 32));
}

static void b_f32(bytes *b, float v)
{
    uint32_t u;
    memcpy(&u, &v, 4);
    b_u32(b, u);
}

static void b_str(bytes *b, const char *s)
{
    b_u32(b, (uint32_t)strlen(s));
    b_put(b, s, strlen(s));
}

static void b_free(bytes *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

static void write_gz(const char *path, const void *data, size_t n)
{
    gzFile g = gzopen(path, "wb");
    assert_non_null(g);
    if (n) assert_int_equal(gzwrite(g, data, (unsigned)n), (int)n);
    assert_int_equal(gzclose(g), Z_OK);
}

static uint8_t *read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    long len = ftell(f);
    assert_true(len >= 0);
    rewind(f);
    uint8_t *p = malloc((size_t)len + 1);
    assert_non_null(p);
    assert_int_equal(fread(p, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    *n = (size_t)len;
    return p;
}

/* Entries of the test directory whose name contains `part`. */
static int count_files(const char *part) { return count_in(tmpdir, part); }

static uint32_t lcg_state = 12345;
static uint32_t lcg(void)
{
    lcg_state = lcg_state * 1664525u + 1013904223u;
    return lcg_state >> 8;
}

static int setup_dir(void **state)
{
    /* tmpfs when there is one: thousands of small files are written. */
    snprintf(tmpdir, sizeof tmpdir, "%s/test_io.XXXXXX",
             access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown_dir(void **state)
{
    remove_tree(tmpdir);
    return 0;
}

/* ------------------------------------------------------------------ */
/* IDX                                                                 */
/* ------------------------------------------------------------------ */

static void idx_bytes(bytes *b, int type, int rank, const uint32_t *dims,
                      const uint8_t *data, size_t n)
{
    b_u8(b, 0);
    b_u8(b, 0);
    b_u8(b, (uint8_t)type);
    b_u8(b, (uint8_t)rank);
    for (int i = 0; i < rank; i++) b_be32(b, dims[i]);
    b_put(b, data, n);
}

static void write_maybe_gz(const char *path, bool gz, const bytes *b)
{
    if (gz)
        write_gz(path, b->p, b->n);
    else
        write_file(path, b->p, b->n);
}

static void test_idx_images(void **state)
{
    uint8_t data[18];
    for (int i = 0; i < 18; i++) data[i] = (uint8_t)(i * 14);
    uint32_t dims[3] = {3, 2, 3};
    for (int gz = 0; gz < 2; gz++) {
        bytes b = {0};
        idx_bytes(&b, 0x08, 3, dims, data, sizeof data);
        const char *path = tpath(gz ? "img.idx.gz" : "img.idx");
        write_maybe_gz(path, gz, &b);
        b_free(&b);
        nn_tensor *t = NULL;
        assert_int_equal(nn_load_idx(path, 1, &t), NN_OK);
        int64_t shape[4];
        assert_int_equal(nn_tensor_rank(t), 4);
        assert_int_equal(nn_tensor_shape(t, shape, 4), NN_OK);
        assert_int_equal(shape[0], 3);
        assert_int_equal(shape[1], 2);
        assert_int_equal(shape[2], 3);
        assert_int_equal(shape[3], 1);
        for (int i = 0; i < 18; i++)
            assert_true(nn_tensor_data(t)[i] == (float)data[i] / 255.0f);
        nn_tensor_free(t);
        assert_int_equal(nn_load_idx(path, 0, &t), NN_OK);
        for (int i = 0; i < 18; i++)
            assert_true(nn_tensor_data(t)[i] == (float)data[i]);
        nn_tensor_free(t);
    }
}

static void test_idx_labels_and_ranks(void **state)
{
    uint8_t labels[5] = {0, 9, 3, 3, 7};
    uint32_t n = 5;
    bytes b = {0};
    idx_bytes(&b, 0x08, 1, &n, labels, 5);
    write_gz(tpath("lab.gz"), b.p, b.n);
    b_free(&b);
    nn_tensor *t = NULL;
    assert_int_equal(nn_load_idx(tpath("lab.gz"), 1, &t), NN_OK);
    assert_int_equal(nn_tensor_rank(t), 1);
    assert_int_equal(nn_tensor_dim(t, 0), 5);
    for (int i = 0; i < 5; i++)
        assert_true(nn_tensor_data(t)[i] == (float)labels[i]); /* unscaled */
    nn_tensor_free(t);

    /* Rank 2 and 4 keep their shape. */
    uint8_t data[6] = {0, 51, 102, 153, 204, 255};
    uint32_t d2[2] = {2, 3}, d4[4] = {1, 3, 2, 1};
    idx_bytes(&b, 0x08, 2, d2, data, 6);
    write_file(tpath("r2.idx"), b.p, b.n);
    b_free(&b);
    assert_int_equal(nn_load_idx(tpath("r2.idx"), 1, &t), NN_OK);
    assert_int_equal(nn_tensor_rank(t), 2);
    assert_int_equal(nn_tensor_dim(t, 1), 3);
    assert_true(nn_tensor_data(t)[5] == 1.0f);
    assert_true(nn_tensor_data(t)[1] == 0.2f);
    nn_tensor_free(t);
    idx_bytes(&b, 0x08, 4, d4, data, 6);
    write_file(tpath("r4.idx"), b.p, b.n);
    b_free(&b);
    assert_int_equal(nn_load_idx(tpath("r4.idx"), 0, &t), NN_OK);
    assert_int_equal(nn_tensor_rank(t), 4);
    assert_int_equal(nn_tensor_dim(t, 1), 3);
    assert_int_equal(nn_tensor_dim(t, 2), 2);
    assert_true(nn_tensor_data(t)[3] == 153.0f);
    nn_tensor_free(t);
}

typedef struct idx_case {
    const char *what;
    uint8_t head[12];
    size_t head_len;
    size_t data_len;
    nn_status want;
    const char *sub;
} idx_case;

static void test_idx_malformed(void **state)
{
    static const idx_case cases[] = {
        {"empty", {0}, 0, 0, NN_ERR_FORMAT, "is empty"},
        {"3-byte header", {0, 0, 8}, 3, 0, NN_ERR_FORMAT, "truncated header"},
        {"bad magic", {1, 0, 8, 1, 0, 0, 0, 4}, 8, 4, NN_ERR_FORMAT, "magic"},
        {"bad magic 2", {0, 7, 8, 1, 0, 0, 0, 4}, 8, 4, NN_ERR_FORMAT,
         "magic"},
        {"unknown type", {0, 0, 7, 1, 0, 0, 0, 4}, 8, 4, NN_ERR_FORMAT,
         "unknown element type 0x07"},
        {"float type", {0, 0, 0x0D, 1, 0, 0, 0, 4}, 8, 16, NN_ERR_UNSUPPORTED,
         "float32"},
        {"rank 0", {0, 0, 8, 0}, 4, 0, NN_ERR_FORMAT, "rank 0"},
        {"rank 5", {0, 0, 8, 5, 0, 0, 0, 1}, 8, 0, NN_ERR_FORMAT, "rank 5"},
        {"missing dims", {0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2}, 12, 0,
         NN_ERR_FORMAT, "truncated header"},
        {"half a dim", {0, 0, 8, 1, 0, 0}, 6, 0, NN_ERR_FORMAT,
         "truncated header"},
        {"zero dim", {0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 0}, 12, 0,
         NN_ERR_FORMAT, "dimension 1 is 0"},
        {"truncated data", {0, 0, 8, 1, 0, 0, 0, 10}, 8, 7, NN_ERR_FORMAT,
         "truncated: expected 10 bytes of data"},
        {"no data", {0, 0, 8, 1, 0, 0, 0, 10}, 8, 0, NN_ERR_FORMAT,
         "truncated: expected 10 bytes of data"},
        {"trailing garbage", {0, 0, 8, 1, 0, 0, 0, 4}, 8, 6, NN_ERR_FORMAT,
         "trailing garbage"},
    };
    uint8_t data[64];
    memset(data, 3, sizeof data);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        for (int gz = 0; gz < 2; gz++) {
            bytes b = {0};
            b_put(&b, cases[i].head, cases[i].head_len);
            b_put(&b, data, cases[i].data_len);
            const char *path = tpath("bad.idx");
            write_maybe_gz(path, gz, &b);
            b_free(&b);
            nn_tensor *t = (nn_tensor *)&b; /* must be reset to NULL */
            nn_status s = nn_load_idx(path, 1, &t);
            if (s != cases[i].want || !strstr(nn_last_error(), cases[i].sub))
                fail_msg("case '%s' (%s): %s '%s'", cases[i].what,
                         gz ? "gzip" : "plain", nn_status_name(s),
                         nn_last_error());
            assert_null(t);
        }
    }
}

/* A claim beyond the cap fails on the header, before any allocation. */
static void test_idx_huge_claims(void **state)
{
    uint32_t huge[2] = {0x80000000u, 0x80000000u};
    uint32_t max1 = 0xFFFFFFFFu, cap1 = 0x80000000u;
    uint8_t data[5] = {1, 2, 3, 4, 5};
    for (int gz = 0; gz < 2; gz++) {
        bytes b = {0};
        idx_bytes(&b, 8, 2, huge, data, 5);
        write_maybe_gz(tpath("huge.idx"), gz, &b);
        b_free(&b);
        nn_tensor *t = NULL;
        nn__debug_fail_alloc_after(0);
        assert_error(nn_load_idx(tpath("huge.idx"), 1, &t), NN_ERR_FORMAT,
                     "more than 2147483648 elements");
        assert_int_equal(nn__debug_fail_alloc_after(0), 0);
        idx_bytes(&b, 8, 1, &max1, data, 5);
        write_maybe_gz(tpath("huge.idx"), gz, &b);
        b_free(&b);
        assert_error(nn_load_idx(tpath("huge.idx"), 1, &t), NN_ERR_FORMAT,
                     "more than");
        assert_int_equal(nn__debug_fail_alloc_after(0), 0);
        /* At the cap: the plain file's size gives it away up front; the
         * gzip stream promises 8 GiB of floats, more than the default data
         * limit, and with a limit that allows it is read into a buffer
         * that only grows with data. */
        idx_bytes(&b, 8, 1, &cap1, data, 5);
        write_maybe_gz(tpath("huge.idx"), gz, &b);
        b_free(&b);
        if (gz) {
            assert_error(nn_load_idx(tpath("huge.idx"), 1, &t), NN_ERR_NOMEM,
                         "data limit");
            assert_int_equal(nn__debug_fail_alloc_after(0), 0);
            nn_limits l = NN_LIMITS_INIT;
            l.data_bytes = (int64_t)16 << 30;
            assert_int_equal(nn_set_limits(&l), NN_OK);
        }
        assert_error(nn_load_idx(tpath("huge.idx"), 1, &t), NN_ERR_FORMAT,
                     "truncated: expected 2147483648 bytes");
        int64_t allocs = nn__debug_fail_alloc_after(0);
        assert_true(gz ? allocs <= 1 : allocs == 0);
        assert_null(t);
        assert_int_equal(nn_set_limits(NULL), NN_OK);
    }
}

static void test_idx_corrupt_gzip(void **state)
{
    uint8_t data[4000];
    for (int i = 0; i < 4000; i++) data[i] = (uint8_t)(lcg() & 0xff);
    uint32_t n = 4000;
    bytes b = {0};
    idx_bytes(&b, 8, 1, &n, data, 4000);
    write_gz(tpath("c.gz"), b.p, b.n);
    b_free(&b);
    size_t len;
    uint8_t *gz = read_file(tpath("c.gz"), &len);
    nn_tensor *t = NULL;
    /* Cut in the middle of the deflate stream. */
    write_file(tpath("cut.gz"), gz, len / 2);
    assert_error(nn_load_idx(tpath("cut.gz"), 1, &t), NN_ERR_FORMAT, NULL);
    assert_null(t);
    /* Garbage in the deflate stream or a wrong gzip trailer. */
    for (size_t pos = 20; pos < len; pos += len / 7) {
        uint8_t *c = malloc(len);
        memcpy(c, gz, len);
        c[pos] ^= 0x5a;
        write_file(tpath("bad.gz"), c, len);
        free(c);
        nn_status s = nn_load_idx(tpath("bad.gz"), 1, &t);
        assert_int_equal(s, NN_ERR_FORMAT);
        assert_null(t);
    }
    /* Only the CRC/length trailer damaged. */
    gz[len - 1] ^= 0xff;
    write_file(tpath("bad.gz"), gz, len);
    assert_error(nn_load_idx(tpath("bad.gz"), 1, &t), NN_ERR_FORMAT, NULL);
    free(gz);
}

static void test_idx_args_and_missing(void **state)
{
    nn_tensor *t = NULL;
    assert_error(nn_load_idx(tpath("missing.idx"), 1, &t), NN_ERR_IO,
                 "missing.idx");
    assert_null(t);
    assert_error(nn_load_idx(tmpdir, 1, &t), NN_ERR_IO, NULL);
    assert_error(nn_load_idx(NULL, 1, &t), NN_ERR_INVALID, NULL);
    assert_error(nn_load_idx(tpath("x"), 1, NULL), NN_ERR_INVALID, NULL);
}

static void test_idx_alloc_failures(void **state)
{
    uint8_t data[3000];
    for (int i = 0; i < 3000; i++) data[i] = (uint8_t)i;
    uint32_t dims[3] = {30, 10, 10};
    bytes b = {0};
    idx_bytes(&b, 8, 3, dims, data, 3000);
    write_gz(tpath("a.gz"), b.p, b.n);
    b_free(&b);
    int k;
    for (k = 1; k < 100; k++) {
        nn_tensor *t = NULL;
        nn__debug_fail_alloc_after(k);
        nn_status s = nn_load_idx(tpath("a.gz"), 1, &t);
        nn__debug_fail_alloc_after(0);
        if (s == NN_OK) {
            assert_true(nn_tensor_data(t)[2999] == (float)(2999 & 255) / 255);
            nn_tensor_free(t);
            break;
        }
        assert_int_equal(s, NN_ERR_NOMEM);
        assert_null(t);
    }
    assert_true(k > 1 && k < 100);
}

/* The real data set, when installed. */
static void test_idx_fashion_mnist(void **state)
{
    const char *dir = "/usr/share/datasets/fashion-mnist/";
    char x_path[256], y_path[256];
    snprintf(x_path, sizeof x_path, "%strain-images-idx3-ubyte.gz", dir);
    snprintf(y_path, sizeof y_path, "%strain-labels-idx1-ubyte.gz", dir);
    if (access(x_path, R_OK) != 0 || access(y_path, R_OK) != 0) skip();
    nn_tensor *x = NULL, *y = NULL;
    assert_int_equal(nn_load_idx(x_path, 1, &x), NN_OK);
    assert_int_equal(nn_load_idx(y_path, 1, &y), NN_OK);
    int64_t shape[4];
    assert_int_equal(nn_tensor_rank(x), 4);
    nn_tensor_shape(x, shape, 4);
    assert_int_equal(shape[0], 60000);
    assert_int_equal(shape[1], 28);
    assert_int_equal(shape[2], 28);
    assert_int_equal(shape[3], 1);
    assert_int_equal(nn_tensor_rank(y), 1);
    assert_int_equal(nn_tensor_dim(y, 0), 60000);
    int counts[10] = {0};
    for (int64_t i = 0; i < 60000; i++) {
        float v = nn_tensor_data(y)[i];
        assert_true(v >= 0 && v <= 9 && v == floorf(v));
        counts[(int)v]++;
    }
    for (int c = 0; c < 10; c++) assert_int_equal(counts[c], 6000);
    float lo = 1, hi = 0;
    for (int64_t i = 0; i < nn_tensor_size(x); i++) {
        float v = nn_tensor_data(x)[i];
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
    }
    assert_true(lo == 0.0f && hi == 1.0f);
    nn_tensor_free(x);
    nn_tensor_free(y);
    snprintf(x_path, sizeof x_path, "%st10k-images-idx3-ubyte.gz", dir);
    snprintf(y_path, sizeof y_path, "%st10k-labels-idx1-ubyte.gz", dir);
    assert_int_equal(nn_load_idx(x_path, 1, &x), NN_OK);
    assert_int_equal(nn_load_idx(y_path, 1, &y), NN_OK);
    assert_int_equal(nn_tensor_dim(x, 0), 10000);
    assert_int_equal(nn_tensor_dim(y, 0), 10000);
    nn_tensor_free(x);
    nn_tensor_free(y);
}

/* ------------------------------------------------------------------ */
/* CIFAR-10                                                            */
/* ------------------------------------------------------------------ */

#define REC 3073

static uint8_t cifar_px(int file, int rec, int c, int p)
{
    return (uint8_t)(file * 31 + rec * 7 + c * 85 + p * 13);
}

static void write_cifar(const char *path, int file, int records, int bad_rec)
{
    bytes b = {0};
    for (int r = 0; r < records; r++) {
        b_u8(&b, r == bad_rec ? 10 : (uint8_t)((file * 3 + r) % 10));
        for (int c = 0; c < 3; c++)
            for (int p = 0; p < 1024; p++) b_u8(&b, cifar_px(file, r, c, p));
    }
    write_file(path, b.p, b.n);
    b_free(&b);
}

static void test_cifar_deinterleave(void **state)
{
    write_cifar(tpath("c0.bin"), 0, 3, -1);
    write_cifar(tpath("c1.bin"), 1, 2, -1);
    char p0[256], p1[256];
    snprintf(p0, sizeof p0, "%s", tpath("c0.bin"));
    snprintf(p1, sizeof p1, "%s", tpath("c1.bin"));
    const char *paths[2] = {p0, p1};
    nn_tensor *x = NULL, *y = NULL;
    assert_int_equal(nn_load_cifar10(paths, 2, &x, &y), NN_OK);
    int64_t shape[4];
    nn_tensor_shape(x, shape, 4);
    assert_int_equal(shape[0], 5);
    assert_int_equal(shape[1], 32);
    assert_int_equal(shape[2], 32);
    assert_int_equal(shape[3], 3);
    assert_int_equal(nn_tensor_rank(y), 1);
    assert_int_equal(nn_tensor_dim(y, 0), 5);
    const float *px = nn_tensor_data(x);
    for (int n = 0; n < 5; n++) {
        int file = n < 3 ? 0 : 1, rec = n < 3 ? n : n - 3;
        assert_true(nn_tensor_data(y)[n] == (float)((file * 3 + rec) % 10));
        for (int row = 0; row < 32; row++)
            for (int col = 0; col < 32; col++)
                for (int c = 0; c < 3; c++) {
                    float want =
                        (float)cifar_px(file, rec, c, row * 32 + col) / 255.0f;
                    size_t at = (((size_t)n * 32 + row) * 32 + col) * 3 + c;
                    if (px[at] != want)
                        fail_msg("image %d pixel (%d,%d) channel %d: %g != %g",
                                 n, row, col, c, (double)px[at], (double)want);
                }
    }
    nn_tensor_free(x);
    nn_tensor_free(y);
}

static void test_cifar_errors(void **state)
{
    nn_tensor *x = (nn_tensor *)state, *y = (nn_tensor *)state;
    char good[256], bad[256];
    snprintf(good, sizeof good, "%s", tpath("good.bin"));
    snprintf(bad, sizeof bad, "%s", tpath("bad.bin"));
    write_cifar(good, 0, 2, -1);
    const char *paths[2] = {good, bad};

    uint8_t junk[REC + 1] = {0};
    write_file(bad, junk, REC - 1);
    assert_error(nn_load_cifar10(paths, 2, &x, &y), NN_ERR_FORMAT,
                 "bad.bin' has 3072 bytes, not a positive multiple");
    assert_null(x);
    assert_null(y);
    write_file(bad, junk, REC + 1);
    assert_error(nn_load_cifar10(paths, 2, &x, &y), NN_ERR_FORMAT, "bad.bin");
    write_file(bad, junk, 0);
    assert_error(nn_load_cifar10(paths, 2, &x, &y), NN_ERR_FORMAT,
                 "has 0 bytes");
    write_cifar(bad, 1, 3, 1);
    assert_error(nn_load_cifar10(paths, 2, &x, &y), NN_ERR_FORMAT,
                 "bad.bin': record 1 has label 10");
    assert_null(x);
    assert_null(y);
    unlink(bad);
    assert_error(nn_load_cifar10(paths, 2, &x, &y), NN_ERR_IO, "bad.bin");
    assert_error(nn_load_cifar10(paths, 0, &x, &y), NN_ERR_INVALID, NULL);
    assert_error(nn_load_cifar10(NULL, 1, &x, &y), NN_ERR_INVALID, NULL);
    assert_error(nn_load_cifar10(paths, 1, NULL, &y), NN_ERR_INVALID, NULL);
    const char *nullpath[2] = {good, NULL};
    assert_error(nn_load_cifar10(nullpath, 2, &x, &y), NN_ERR_INVALID,
                 "paths[1]");
    const char *dir[1] = {tmpdir};
    assert_error(nn_load_cifar10(dir, 1, &x, &y), NN_ERR_IO, NULL);

    x = y = NULL;
    int k;
    for (k = 1; k < 50; k++) {
        nn__debug_fail_alloc_after(k);
        nn_status s = nn_load_cifar10(paths, 1, &x, &y);
        nn__debug_fail_alloc_after(0);
        if (s == NN_OK) break;
        assert_int_equal(s, NN_ERR_NOMEM);
        assert_null(x);
        assert_null(y);
    }
    assert_true(k > 1 && k < 50);
    nn_tensor_free(x);
    nn_tensor_free(y);
}

/* ------------------------------------------------------------------ */
/* one-hot                                                             */
/* ------------------------------------------------------------------ */

static void test_one_hot(void **state)
{
    float v[4] = {0, 2, 1, 2};
    int64_t n = 4;
    nn_tensor *l = nn_tensor_wrap(1, &n, v), *out = NULL;
    assert_int_equal(nn_one_hot(l, 3, &out), NN_OK);
    assert_int_equal(nn_tensor_dim(out, 0), 4);
    assert_int_equal(nn_tensor_dim(out, 1), 3);
    for (int i = 0; i < 4; i++)
        for (int c = 0; c < 3; c++)
            assert_true(nn_tensor_data(out)[i * 3 + c] ==
                        (c == (int)v[i] ? 1.0f : 0.0f));
    nn_tensor_free(out);

    int64_t col[2] = {4, 1};
    nn_tensor *l2 = nn_tensor_wrap(2, col, v);
    assert_int_equal(nn_one_hot(l2, 5, &out), NN_OK);
    assert_int_equal(nn_tensor_dim(out, 1), 5);
    nn_tensor_free(out);
    nn_tensor_free(l2);

    float bad[5] = {1.5f, -1.0f, 3.0f, NAN, INFINITY};
    for (int i = 0; i < 5; i++) {
        v[1] = bad[i];
        out = (nn_tensor *)state;
        assert_error(nn_one_hot(l, 3, &out), NN_ERR_INVALID, "label 1");
        assert_null(out);
    }
    v[1] = 2;
    assert_error(nn_one_hot(l, 0, &out), NN_ERR_INVALID, "num_classes");
    assert_error(nn_one_hot(NULL, 3, &out), NN_ERR_INVALID, NULL);
    assert_error(nn_one_hot(l, 3, NULL), NN_ERR_INVALID, NULL);
    int64_t wide[2] = {2, 2};
    nn_tensor *l3 = nn_tensor_wrap(2, wide, v);
    assert_error(nn_one_hot(l3, 3, &out), NN_ERR_SHAPE, NULL);
    nn_tensor_free(l3);
    nn_tensor_free(l);
}

/* ------------------------------------------------------------------ */
/* checkpoints: models                                                 */
/* ------------------------------------------------------------------ */

#define BATCH 6

static nn_model *build_cnn(uint64_t seed, bool dropout)
{
    nn_model *m = nn_model_create(seed);
    assert_non_null(m);
    int shape[3] = {8, 8, 1};
    nn_layer *x = nn_input(m, 3, shape, NULL);
    nn_conv2d_opts co = NN_CONV2D_OPTS_INIT;
    co.activation = NN_ACT_RELU;
    x = nn_conv2d(m, x, 4, 3, 3, &co);
    x = nn_maxpool2d(m, x, 2, 2, NULL);
    x = nn_flatten(m, x, NULL);
    if (dropout) x = nn_dropout(m, x, 0.25f, NULL);
    nn_dense_opts d = NN_DENSE_OPTS_INIT;
    d.activation = NN_ACT_SOFTMAX;
    x = nn_dense(m, x, 3, &d);
    if (!x) fail_msg("building the model: %s", nn_last_error());
    return m;
}

static nn_tensor *batch_x(uint32_t seed)
{
    int64_t shape[4] = {BATCH, 8, 8, 1};
    nn_tensor *t = nn_tensor_create(4, shape);
    lcg_state = seed;
    for (int64_t i = 0; i < nn_tensor_size(t); i++)
        nn_tensor_data(t)[i] = (float)(lcg() % 1000) / 1000.0f;
    return t;
}

static nn_tensor *batch_y(bool one_hot)
{
    int64_t shape[2] = {BATCH, 3};
    nn_tensor *t = nn_tensor_create(one_hot ? 2 : 1, shape);
    for (int i = 0; i < BATCH; i++) {
        if (one_hot)
            nn_tensor_data(t)[i * 3 + i % 3] = 1.0f;
        else
            nn_tensor_data(t)[i] = (float)(i % 3);
    }
    return t;
}

static void train_once(nn_model *m, const nn_tensor *x, const nn_tensor *y)
{
    float loss = NAN;
    nn_status s = nn_model_train_batch(m, x, y, &loss, NULL);
    if (s != NN_OK) fail_msg("train_batch: %s", nn_last_error());
    assert_true(isfinite(loss));
}

static void assert_same_layers(const nn_model *a, const nn_model *b)
{
    assert_int_equal(a->n_layers, b->n_layers);
    for (int i = 0; i < a->n_layers; i++) {
        const nn_layer *la = a->layers[i], *lb = b->layers[i];
        assert_int_equal(la->kind, lb->kind);
        assert_string_equal(la->name, lb->name);
        assert_int_equal(la->activation, lb->activation);
        assert_int_equal(la->trainable, lb->trainable);
        assert_int_equal(la->n_inputs, lb->n_inputs);
        for (int j = 0; j < la->n_inputs; j++)
            assert_int_equal(la->inputs[j]->index, lb->inputs[j]->index);
        assert_memory_equal(&la->out, &lb->out, sizeof la->out);
        assert_memory_equal(&la->cfg, &lb->cfg, sizeof la->cfg);
        assert_int_equal(la->n_params, lb->n_params);
        for (int j = 0; j < la->n_params; j++) {
            const nn_param *pa = &la->params[j], *pb = &lb->params[j];
            assert_string_equal(pa->name, pb->name);
            assert_int_equal(pa->trainable, pb->trainable);
            assert_int_equal(pa->value.rank, pb->value.rank);
            assert_memory_equal(pa->value.shape, pb->value.shape,
                                sizeof pa->value.shape);
            assert_memory_equal(pa->value.data, pb->value.data,
                                (size_t)pa->value.size * sizeof(float));
        }
    }
    assert_int_equal(a->output->index, b->output->index);
    assert_int_equal(a->input->index, b->input->index);
    assert_int_equal(a->seed, b->seed);
    assert_memory_equal(&a->rng, &b->rng, sizeof a->rng);
    assert_int_equal(a->step_counter, b->step_counter);
    assert_memory_equal(a->name_counts, b->name_counts,
                        sizeof a->name_counts);
}

static void assert_same_optimizer(const nn_model *a, const nn_model *b)
{
    assert_int_equal(a->compiled, b->compiled);
    assert_int_equal(a->loss, b->loss);
    assert_int_equal(a->loss_opts.from_logits, b->loss_opts.from_logits);
    const nn_optimizer *oa = a->opt, *ob = b->opt;
    assert_non_null(oa);
    assert_non_null(ob);
    assert_true(ob->owned_by_model);
    assert_int_equal(oa->kind, ob->kind);
    if (oa->kind == NN_OPTIM_ADAM) {
        assert_true(oa->adam.learning_rate == ob->adam.learning_rate);
        assert_true(oa->adam.beta1 == ob->adam.beta1);
        assert_true(oa->adam.beta2 == ob->adam.beta2);
        assert_true(oa->adam.epsilon == ob->adam.epsilon);
        assert_int_equal(oa->adam.eps_mode, ob->adam.eps_mode);
    } else {
        assert_true(oa->sgd.learning_rate == ob->sgd.learning_rate);
        assert_true(oa->sgd.momentum == ob->sgd.momentum);
        assert_int_equal(oa->sgd.nesterov, ob->sgd.nesterov);
    }
    assert_int_equal(oa->iterations, ob->iterations);
    assert_int_equal(oa->n_slots, ob->n_slots);
    for (int i = 0; i < oa->n_slots; i++) {
        assert_int_equal(oa->slot_size[i], ob->slot_size[i]);
        size_t bytes_ = (size_t)oa->slot_size[i] * sizeof(float);
        assert_memory_equal(oa->slot_m[i], ob->slot_m[i], bytes_);
        if (oa->kind == NN_OPTIM_ADAM)
            assert_memory_equal(oa->slot_v[i], ob->slot_v[i], bytes_);
        else
            assert_null(ob->slot_v);
    }
}

static void assert_same_predictions(nn_model *a, nn_model *b,
                                    const nn_tensor *x)
{
    int64_t shape[2] = {BATCH, 3};
    nn_tensor *pa = nn_tensor_create(2, shape);
    nn_tensor *pb = nn_tensor_create(2, shape);
    assert_int_equal(nn_model_predict(a, x, pa, 4), NN_OK);
    assert_int_equal(nn_model_predict(b, x, pb, 4), NN_OK);
    assert_memory_equal(nn_tensor_data(pa), nn_tensor_data(pb),
                        BATCH * 3 * sizeof(float));
    nn_tensor_free(pa);
    nn_tensor_free(pb);
}

static nn_model *load_ok(const char *path)
{
    nn_model *m = NULL;
    nn_status s = nn__model_load(path, &m);
    if (s != NN_OK) fail_msg("loading %s: %s", path, nn_last_error());
    assert_non_null(m);
    return m;
}

/* A trained CNN with Adam, saved with its optimizer to `path`. */
static nn_model *saved_cnn(const char *path)
{
    nn_model *m = build_cnn(42, false);
    assert_int_equal(nn_model_compile(m, nn_adam(NULL),
                                      NN_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY,
                                      NULL),
                     NN_OK);
    nn_tensor *x = batch_x(1), *y = batch_y(false);
    train_once(m, x, y);
    nn_tensor_free(x);
    nn_tensor_free(y);
    assert_int_equal(nn_model_save(m, path, NN_SAVE_OPTIMIZER), NN_OK);
    return m;
}

static void test_ckpt_roundtrip_adam(void **state)
{
    const char *path = tpath("cnn.nnm");
    nn_model *a = saved_cnn(path);
    nn_model *b = load_ok(path);
    assert_same_layers(a, b);
    assert_same_optimizer(a, b);
    assert_int_equal(a->opt->iterations, 1);
    assert_int_equal(b->opt->n_slots, 4);
    nn_tensor *x = batch_x(2), *y = batch_y(false);
    assert_same_predictions(a, b, x);
    /* Training on resumes identically: same weights and state after. */
    train_once(a, x, y);
    train_once(b, x, y);
    assert_same_layers(a, b);
    assert_same_optimizer(a, b);
    assert_int_equal(b->opt->iterations, 2);
    /* Saving the loaded model again gives the same bytes. */
    const char *p2 = tpath("cnn2.nnm"), *p3 = tpath("cnn3.nnm");
    assert_int_equal(nn_model_save(a, p2, NN_SAVE_OPTIMIZER), NN_OK);
    assert_int_equal(nn_model_save(b, p3, NN_SAVE_OPTIMIZER), NN_OK);
    size_t n2, n3;
    uint8_t *f2 = read_file(p2, &n2), *f3 = read_file(p3, &n3);
    assert_int_equal(n2, n3);
    assert_memory_equal(f2, f3, n2);
    free(f2);
    free(f3);
    assert_int_equal(count_files(".tmp."), 0);
    nn_tensor_free(x);
    nn_tensor_free(y);
    nn_model_free(a);
    nn_model_free(b);
}

/* Ends model a with a softmax Dense of 3 on x, compiles it with Adam,
 * trains it one step on batch `seed` (*xb, *y), saves it with its
 * optimizer as `file` and loads it back: the loaded model, checked to
 * have a's layers, optimizer and predictions. */
static nn_model *adam_round_trip(nn_model *a, nn_layer *x, uint32_t seed,
                                 const char *file, nn_tensor **xb,
                                 nn_tensor **y)
{
    nn_dense_opts d = NN_DENSE_OPTS_INIT;
    d.activation = NN_ACT_SOFTMAX;
    if (!nn_dense(a, x, 3, &d)) fail_msg("building: %s", nn_last_error());
    assert_int_equal(nn_model_compile(a, nn_adam(NULL),
                                      NN_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY,
                                      NULL),
                     NN_OK);
    *xb = batch_x(seed);
    *y = batch_y(false);
    train_once(a, *xb, *y);
    const char *path = tpath(file);
    assert_int_equal(nn_model_save(a, path, NN_SAVE_OPTIMIZER), NN_OK);
    nn_model *b = load_ok(path);
    assert_same_layers(a, b);
    assert_same_optimizer(a, b);
    assert_same_predictions(a, b, *xb);
    return b;
}

/* Training a and b (equal) one more step leaves them equal. */
static void expect_resume_alike(nn_model *a, nn_model *b, const nn_tensor *x,
                                const nn_tensor *y)
{
    train_once(a, x, y);
    train_once(b, x, y);
    assert_same_layers(a, b);
}

/* The segmentation layers (their configs, the 16-byte parameter name
 * "depthwise_kernel", ReLU6 as a fused activation) through a checkpoint:
 * same layers, weights and predictions, and training resumes alike. */
static void test_ckpt_roundtrip_seg_layers(void **state)
{
    nn_model *a = nn_model_create(11);
    int shape[3] = {8, 8, 1};
    nn_layer *x = nn_input(a, 3, shape, NULL);
    nn_depthwise_conv2d_opts dw = NN_DEPTHWISE_CONV2D_OPTS_INIT;
    dw.depth_multiplier = 3;
    dw.padding = NN_PADDING_SAME;
    dw.stride_h = dw.stride_w = 2;
    dw.activation = NN_ACT_RELU6;
    x = nn_depthwise_conv2d(a, x, 3, 3, &dw);
    nn_conv2d_transpose_opts ct = NN_CONV2D_TRANSPOSE_OPTS_INIT;
    ct.stride_h = ct.stride_w = 2;
    ct.padding = NN_PADDING_SAME;
    ct.output_padding_h = ct.output_padding_w = 1;
    ct.kernel_init = NN_INIT_RANDOM_NORMAL;
    ct.kernel_init_stddev = 0.02f;
    x = nn_conv2d_transpose(a, x, 2, 3, 3, &ct);
    nn_upsampling2d_opts up = NN_UPSAMPLING2D_OPTS_INIT;
    up.interpolation = NN_INTERP_BILINEAR;
    x = nn_relu6(a, nn_upsampling2d(a, x, 2, 2, &up), NULL);
    x = nn_cropping2d(a, x, 2, 2, 1, 3, NULL);
    x = nn_flatten(a, x, NULL);
    nn_tensor *xb, *y;
    nn_model *b = adam_round_trip(a, x, 3, "seg.nnm", &xb, &y);
    assert_string_equal(b->layers[1]->params[0].name, "depthwise_kernel");
    expect_resume_alike(a, b, xb, y);
    nn_tensor_free(xb);
    nn_tensor_free(y);
    nn_model_free(a);
    nn_model_free(b);
}

/* The activation layers (LeakyReLU, PReLU, ELU, tanh) and the fused
 * tanh, elu and leaky_relu through a checkpoint and a safetensors file:
 * PReLU's alpha learns under Adam, keeps its optimizer slot, and comes
 * back with the same values and predictions; training resumes alike. */
static void test_ckpt_roundtrip_activations(void **state)
{
    nn_model *a = nn_model_create(12);
    int shape[3] = {8, 8, 1};
    nn_layer *x = nn_input(a, 3, shape, NULL);
    nn_conv2d_opts co = NN_CONV2D_OPTS_INIT;
    co.activation = NN_ACT_TANH;
    co.padding = NN_PADDING_SAME;
    x = nn_conv2d(a, x, 3, 3, 3, &co);
    nn_prelu_opts po = NN_PRELU_OPTS_INIT;
    po.shared_axes = (1u << 1) | (1u << 2);
    po.alpha_init_value = 0.25f;
    nn_layer *prelu = nn_prelu(a, x, &po);
    x = nn_elu(a, nn_leaky_relu(a, prelu, 0.1f, NULL), 0.5f, NULL);
    x = nn_flatten(a, nn_tanh(a, x, NULL), NULL);
    nn_dense_opts d = NN_DENSE_OPTS_INIT;
    d.activation = NN_ACT_ELU;
    x = nn_dense(a, x, 6, &d);
    d.activation = NN_ACT_LEAKY_RELU;
    x = nn_dense(a, x, 5, &d);
    nn_tensor *xb, *y;
    nn_model *b = adam_round_trip(a, x, 4, "acts.nnm", &xb, &y);
    const float *alpha = nn_tensor_data(nn_layer_weight(prelu, 0));
    assert_true(alpha[0] != 0.25f && alpha[2] != 0.25f); /* it learned */
    assert_int_equal(a->opt->n_slots, 2 + 1 + 2 + 2 + 2);
    assert_string_equal(b->layers[2]->params[0].name, "alpha");
    assert_string_equal(nn_layer_type(b->layers[2]), "PReLU");
    assert_string_equal(nn_layer_type(b->layers[5]), "Activation");
    expect_resume_alike(a, b, xb, y);
    /* safetensors: alpha is exported and read back under its name. */
    const char *st = tpath("acts.safetensors");
    assert_int_equal(nn_model_save_safetensors(a, st), NN_OK);
    size_t n;
    uint8_t *f = read_file(st, &n);
    assert_non_null(memmem(f, n, "p_re_lu/alpha", 13));
    free(f);
    nn_tensor_data(nn_layer_weight(b->layers[2], 0))[1] = 7.0f;
    assert_int_equal(nn_model_load_safetensors(b, st, NN_WEIGHTS_LIBNN),
                     NN_OK);
    assert_same_predictions(a, b, xb);
    nn_tensor_free(xb);
    nn_tensor_free(y);
    nn_model_free(a);
    nn_model_free(b);
}

/* SGD with momentum and a dropout layer: resuming must reproduce the
 * dropout masks (step counter, generator) and the velocity. */
static void test_ckpt_roundtrip_sgd_dropout(void **state)
{
    const char *path = tpath("sgd.nnm");
    nn_model *a = build_cnn(7, true);
    nn_sgd_opts so = NN_SGD_OPTS_INIT;
    so.momentum = 0.9f;
    so.nesterov = 1;
    nn_loss_opts lo = NN_LOSS_OPTS_INIT;
    assert_int_equal(nn_model_compile(a, nn_sgd(&so),
                                      NN_LOSS_CATEGORICAL_CROSSENTROPY, &lo),
                     NN_OK);
    /* Clipping is part of the optimizer: resumed steps clip alike. */
    assert_int_equal(nn_optimizer_set_global_clipnorm(a->opt, 0.5f), NN_OK);
    assert_int_equal(nn_optimizer_set_clipvalue(a->opt, 0.02f), NN_OK);
    nn_tensor *x = batch_x(3), *y = batch_y(true);
    train_once(a, x, y);
    train_once(a, x, y);
    assert_int_equal(nn_model_save(a, path, NN_SAVE_OPTIMIZER), NN_OK);
    nn_model *b = load_ok(path);
    assert_true(b->opt->global_clipnorm == 0.5f);
    assert_true(b->opt->clipvalue == 0.02f);
    assert_same_layers(a, b);
    assert_same_optimizer(a, b);
    assert_same_predictions(a, b, x);
    train_once(a, x, y);
    train_once(b, x, y);
    assert_same_layers(a, b);
    assert_same_optimizer(a, b);
    /* Default names continue where they left off. */
    nn_layer *na = nn_dense(a, a->layers[3], 2, NULL);
    nn_layer *nb = nn_dense(b, b->layers[3], 2, NULL);
    assert_non_null(na);
    assert_non_null(nb);
    assert_string_equal(nn_layer_name(na), "dense_1");
    assert_string_equal(nn_layer_name(nb), "dense_1");
    nn_tensor_free(x);
    nn_tensor_free(y);
    nn_model_free(a);
    nn_model_free(b);
}

static void test_ckpt_without_optimizer(void **state)
{
    const char *path = tpath("noopt.nnm");
    nn_model *a = build_cnn(3, false);
    /* An uncompiled model saves and loads. */
    assert_int_equal(nn_model_save(a, path, NN_SAVE_DEFAULT), NN_OK);
    nn_model *b = load_ok(path);
    assert_same_layers(a, b);
    assert_false(b->compiled);
    nn_model_free(b);
    assert_int_equal(nn_model_compile(a, nn_adam(NULL),
                                      NN_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY,
                                      NULL),
                     NN_OK);
    nn_tensor *x = batch_x(4), *y = batch_y(false);
    train_once(a, x, y);
    assert_int_equal(nn_model_save(a, path, NN_SAVE_DEFAULT), NN_OK);
    b = load_ok(path);
    assert_same_layers(a, b);
    assert_false(b->compiled);
    assert_null(b->opt);
    assert_int_equal(b->loss, NN_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY);
    assert_same_predictions(a, b, x);
    assert_error(nn_model_train_batch(b, x, y, NULL, NULL), NN_ERR_STATE,
                 NULL);
    assert_int_equal(nn_model_compile(b, nn_adam(NULL),
                                      NN_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY,
                                      NULL),
                     NN_OK);
    train_once(b, x, y);
    nn_tensor_free(x);
    nn_tensor_free(y);
    nn_model_free(a);
    nn_model_free(b);
}

static void assert_file_is(const char *path, const uint8_t *want, size_t n)
{
    size_t got_n;
    uint8_t *got = read_file(path, &got_n);
    assert_int_equal(got_n, n);
    assert_memory_equal(got, want, n);
    free(got);
}

/* Summaries of a model with a named block (nn_model_apply) and a name of
 * its own are the same after a save and a load; a model without names
 * writes no NAME section (flag bit 1 clear), which version-1 readers that
 * know no such flag still read. */
static void test_ckpt_names(void **state)
{
    (void)state;
    int shape[3] = {6, 6, 2};
    nn_model *inner = nn_model_create(3), *outer = nn_model_create(4);
    nn_layer *x = nn_input(inner, 3, shape, NULL);
    nn_layer *r = nn_relu(inner, nn_conv2d(inner, x, 4, 3, 3, NULL), NULL);
    assert_int_equal(nn_model_set_name(inner, "backbone"), NN_OK);
    nn_layer *y = nn_input(outer, 3, shape, NULL);
    y = nn_model_apply(outer, y, inner, r, NULL);
    nn_dense(outer, nn_flatten(outer, y, NULL), 3, NULL);
    assert_int_equal(nn_model_set_name(outer, "classifier"), NN_OK);
    char before[4096], after[4096];
    assert_int_equal(nn_model_summary(outer, before, sizeof before, NULL),
                     NN_OK);
    assert_non_null(strstr(before, "backbone (Functional)"));
    assert_int_equal(nn_model_save(outer, tpath("names.nnm"), 0), NN_OK);
    nn_model *back = load_ok(tpath("names.nnm"));
    assert_int_equal(nn_model_summary(back, after, sizeof after, NULL), NN_OK);
    assert_string_equal(before, after);
    size_t n = 0;
    uint8_t *file = read_file(tpath("names.nnm"), &n);
    assert_int_equal(file[12], 2); /* flags: names, no optimizer */
    free(file);
    /* Without names: flags 0, as before. */
    nn_model *plain = nn_model_create(5);
    nn_dense(plain, nn_input(plain, 3, shape, NULL), 2, NULL);
    assert_int_equal(nn_model_save(plain, tpath("plain.nnm"), 0), NN_OK);
    file = read_file(tpath("plain.nnm"), &n);
    assert_int_equal(file[12], 0);
    free(file);
    nn_model_free(plain);
    nn_model_free(back);
    nn_model_free(outer);
    nn_model_free(inner);
}

static void test_ckpt_save_errors(void **state)
{
    const char *path = tpath("keep.nnm");
    nn_model *good = saved_cnn(path);
    size_t n;
    uint8_t *orig = read_file(path, &n);
    nn_model *other = build_cnn(99, false);

    assert_error(nn_model_save(NULL, path, 0), NN_ERR_INVALID, NULL);
    assert_error(nn_model_save(other, NULL, 0), NN_ERR_INVALID, NULL);
    assert_error(nn_model_save(other, "", 0), NN_ERR_INVALID, NULL);
    assert_error(nn_model_save(other, path, 4), NN_ERR_INVALID, "flags");
    assert_error(nn_model_save(other, path, NN_SAVE_OPTIMIZER), NN_ERR_STATE,
                 "compiled");
    nn_model *empty = nn_model_create(1);
    assert_error(nn_model_save(empty, path, 0), NN_ERR_STATE, "empty");
    nn_model_free(empty);
    assert_file_is(path, orig, n);

    /* A bad path or a directory in the way. */
    assert_error(nn_model_save(other, tpath("no/such/dir.nnm"), 0), NN_ERR_IO,
                 "cannot create");
    assert_int_equal(mkdir(tpath("adir"), 0755), 0);
    assert_error(nn_model_save(other, tpath("adir"), 0), NN_ERR_IO,
                 "cannot replace");
    assert_int_equal(count_files(".tmp."), 0);

    /* The disk "fills up" in the middle of the write: the old file stays. */
    struct rlimit old_lim, lim;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old_lim), 0);
    void (*old_sig)(int) = signal(SIGXFSZ, SIG_IGN);
    lim = old_lim;
    lim.rlim_cur = 100;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    nn_status s = nn_model_save(other, path, 0);
    setrlimit(RLIMIT_FSIZE, &old_lim);
    signal(SIGXFSZ, old_sig);
    assert_error(s, NN_ERR_IO, "cannot write");
    assert_file_is(path, orig, n);
    assert_int_equal(count_files(".tmp."), 0);

    /* A read-only directory (permissions do not stop root). */
    if (geteuid() != 0) {
        const char *ro = tpath("ro");
        assert_int_equal(mkdir(ro, 0755), 0);
        char ro_path[300];
        snprintf(ro_path, sizeof ro_path, "%s/m.nnm", ro);
        assert_int_equal(nn_model_save(good, ro_path, 0), NN_OK);
        size_t rn;
        uint8_t *rorig = read_file(ro_path, &rn);
        assert_int_equal(chmod(ro, 0555), 0);
        assert_error(nn_model_save(other, ro_path, 0), NN_ERR_IO, NULL);
        assert_file_is(ro_path, rorig, rn);
        chmod(ro, 0755);
        free(rorig);
    }

    /* Allocation failures while saving leave the old file too. */
    int k;
    for (k = 1; k < 100; k++) {
        nn__debug_fail_alloc_after(k);
        s = nn_model_save(other, path, 0);
        nn__debug_fail_alloc_after(0);
        if (s == NN_OK) break;
        assert_int_equal(s, NN_ERR_NOMEM);
        assert_file_is(path, orig, n);
    }
    assert_true(k > 1 && k < 100);
    assert_int_equal(count_files(".tmp."), 0);
    /* And the successful save replaced it. */
    nn_model *back = load_ok(path);
    assert_same_layers(other, back);
    nn_model_free(back);
    free(orig);
    nn_model_free(good);
    nn_model_free(other);
}

static void test_ckpt_load_errors(void **state)
{
    nn_model *m = (nn_model *)state;
    assert_error(nn__model_load(tpath("missing.nnm"), &m), NN_ERR_IO,
                 "missing.nnm");
    assert_null(m);
    assert_null(nn_model_load(tpath("missing.nnm")));
    assert_error(nn__model_load(tmpdir, &m), NN_ERR_IO, "not a regular file");
    assert_error(nn__model_load(NULL, &m), NN_ERR_INVALID, NULL);
    assert_null(nn_model_load(NULL));
    const char *text = "hello, this is not a model at all\n";
    write_file(tpath("text.nnm"), text, strlen(text));
    assert_error(nn__model_load(tpath("text.nnm"), &m), NN_ERR_FORMAT,
                 "not a libnn model file");
    write_file(tpath("empty.nnm"), "", 0);
    assert_error(nn__model_load(tpath("empty.nnm"), &m), NN_ERR_FORMAT,
                 "truncated");
}

/* Every proper prefix of a valid file is rejected as malformed. */
static void test_ckpt_truncations(void **state)
{
    const char *path = tpath("full.nnm"), *cut = tpath("cut.nnm");
    nn_model_free(saved_cnn(path));
    size_t n;
    uint8_t *full = read_file(path, &n);
    for (size_t len = 0; len < n; len++) {
        write_file(cut, full, len);
        nn_model *m = (nn_model *)full;
        nn_status s = nn__model_load(cut, &m);
        if (s != NN_ERR_FORMAT || m)
            fail_msg("prefix of %zu/%zu bytes: %s '%s'", len, n,
                     nn_status_name(s), nn_last_error());
    }
    free(full);
}

static void test_ckpt_byte_flips(void **state)
{
    const char *path = tpath("flip.nnm"), *bad = tpath("flipped.nnm");
    nn_model_free(saved_cnn(path));
    size_t n;
    uint8_t *full = read_file(path, &n);
    uint8_t *copy = malloc(n);
    lcg_state = 99;
    for (int i = 0; i < 400; i++) {
        memcpy(copy, full, n);
        size_t pos = i < 32 ? (size_t)i : lcg() % n;
        copy[pos] ^= (uint8_t)(1 + lcg() % 255);
        write_file(bad, copy, n);
        nn_model *m = NULL;
        nn_status s = nn__model_load(bad, &m);
        assert_null(m);
        nn_status want = pos >= 8 && pos < 12 ? NN_ERR_UNSUPPORTED
                                              : NN_ERR_FORMAT;
        if (s != want || (pos >= 24 && !strstr(nn_last_error(), "CRC")))
            fail_msg("flip at %zu: %s '%s'", pos, nn_status_name(s),
                     nn_last_error());
    }
    free(copy);
    free(full);
}

/* Random damage behind a recomputed CRC reaches the parser itself: every
 * outcome must be a clean load or NN_ERR_FORMAT (ASan checks the rest). */
static void test_ckpt_fuzz_valid_crc(void **state)
{
    const char *path = tpath("fuzz.nnm"), *bad = tpath("fuzzed.nnm");
    nn_model_free(saved_cnn(path));
    size_t n;
    uint8_t *full = read_file(path, &n);
    uint8_t *copy = malloc(n);
    lcg_state = 2024;
    int loaded = 0;
    for (int i = 0; i < 3000; i++) {
        memcpy(copy, full, n);
        int flips = 1 + (int)(lcg() % 4);
        for (int f = 0; f < flips; f++) {
            size_t pos = 24 + lcg() % (n - 28);
            /* Small integers are where counts and enums live. */
            copy[pos] = lcg() % 3 ? (uint8_t)(lcg() % 256)
                                  : (uint8_t)(copy[pos] + 1);
        }
        nn__put_le32(copy + n - 4, (uint32_t)crc32(0, copy, (uInt)(n - 4)));
        write_file(bad, copy, n);
        nn_model *m = NULL;
        nn_status s = nn__model_load(bad, &m);
        if (s == NN_OK) {
            assert_non_null(m);
            loaded++;
            nn_model_free(m);
            continue;
        }
        assert_null(m);
        if (s != NN_ERR_FORMAT)
            fail_msg("iteration %d: %s '%s'", i, nn_status_name(s),
                     nn_last_error());
    }
    /* Most damage lands in weights, which load fine; some must not. */
    assert_true(loaded > 100 && loaded < 3000);
    free(copy);
    free(full);
}

static void test_ckpt_load_alloc_failures(void **state)
{
    const char *path = tpath("alloc.nnm");
    nn_model *a = saved_cnn(path);
    int k;
    for (k = 1; k < 10000; k++) {
        nn_model *m = NULL;
        nn__debug_fail_alloc_after(k);
        nn_status s = nn__model_load(path, &m);
        nn__debug_fail_alloc_after(0);
        if (s == NN_OK) {
            assert_same_layers(a, m);
            assert_same_optimizer(a, m);
            nn_model_free(m);
            break;
        }
        if (s != NN_ERR_NOMEM)
            fail_msg("failing allocation %d: %s '%s'", k, nn_status_name(s),
                     nn_last_error());
        assert_null(m);
    }
    assert_true(k > 10 && k < 10000);
    nn_model_free(a);
}

/* ------------------------------------------------------------------ */
/* checkpoints: hand-crafted files                                     */
/* ------------------------------------------------------------------ */

/* Writes tag and a length placeholder; returns where the length goes. */
static size_t b_begin(bytes *b, const char *tag)
{
    b_put(b, tag, 4);
    size_t at = b->n;
    b_u64(b, 0);
    return at;
}

static void b_end(bytes *b, size_t at)
{
    uint64_t len = b->n - at - 8;
    for (int i = 0; i < 8; i++) b->p[at + i] = (uint8_t)(len >> (8 * i));
}

/* Fills in the file size and appends the CRC. */
static void b_finish(bytes *b)
{
    uint64_t total = b->n + 4;
    for (int i = 0; i < 8; i++) b->p[16 + i] = (uint8_t)(total >> (8 * i));
    b_u32(b, (uint32_t)crc32(0, b->p, (uInt)b->n));
}

typedef struct blob {
    uint8_t p[256];
    size_t n;
} blob;

/* Config blobs in the layouts of docs/checkpoint-format.md: i32 words. */
static blob config_words(int n, const int32_t *v)
{
    blob b = {.n = 0};
    for (int i = 0; i < n; i++)
        for (int j = 0; j < 4; j++)
            b.p[b.n++] = (uint8_t)((uint32_t)v[i] >> (8 * j));
    return b;
}

/* rank, then each dimension */
static blob input_config(int rank, const int *dims)
{
    int32_t v[1 + NN_MAX_RANK] = {rank};
    for (int i = 0; i < rank; i++) v[1 + i] = dims[i];
    return config_words(1 + rank, v);
}

/* units, use_bias, activation, kernel and bias initializers */
static blob dense_config(int units, int kinit)
{
    int32_t v[] = {units, 1, NN_ACT_NONE, kinit, NN_INIT_ZEROS};
    return config_words(5, v);
}

/* filters, kh, kw, sh, sw, use_bias, padding, activation, initializers */
static blob conv_config(int filters)
{
    int32_t v[] = {filters, 3, 3, 1, 1, 1, NN_PADDING_SAME, NN_ACT_NONE,
                   NN_INIT_GLOROT_UNIFORM, NN_INIT_ZEROS};
    return config_words(10, v);
}

/* Knobs of a hand-made file: Input "in" -> layer 1 (a Dense(3) on [4] by
 * default), optionally an optimizer section. */
typedef struct craft {
    uint32_t version, flags, output, loss, n_counters, layer_count;
    bool zero_rng, name_nul;
    blob cfg0, cfg1;
    uint32_t kind1, n_in1, in1, act1, trainable1, n_params1;
    const char *name1;
    uint32_t krank, kdims[9];
    uint64_t kernel_floats;
    uint32_t graph_extra;
    const char *tag2;
    uint64_t len2;
    bool names; /* a NAME section: model_name, then group1 for layer 1 */
    const char *model_name, *group1;
    int name_entries; /* layer entries written (2 when not set) */
    bool clip; /* a CLIP section with clip_norm, clip_value */
    float clip_norm, clip_value;
    uint32_t opt_kind, n_slots, slot0_param;
    float beta1;
    uint64_t slot0_count;
    /* a PREP section of n_prep words (the 13 fields, or fewer or more) */
    bool has_prep;
    uint32_t prep[14];
    int n_prep;
} craft;

static craft craft_default(void)
{
    craft c = {0};
    int four = 4;
    c.version = 1;
    c.output = 1;
    c.layer_count = 2;
    c.cfg0 = input_config(1, &four);
    c.cfg1 = dense_config(3, NN_INIT_GLOROT_UNIFORM);
    c.kind1 = NN_KIND_DENSE;
    c.name1 = "dense";
    c.n_in1 = 1;
    c.trainable1 = 1;
    c.n_params1 = 2;
    c.krank = 2;
    c.kdims[0] = 4;
    c.kdims[1] = 3;
    c.kernel_floats = 12;
    c.tag2 = "GRPH";
    c.beta1 = 0.9f;
    c.n_slots = 2;
    c.slot0_count = 12;
    return c;
}

static void craft_params(bytes *b, const craft *c)
{
    for (uint32_t p = 0; p < c->n_params1 && p < 6; p++) {
        if (p == 0) {
            b_str(b, "kernel");
            b_u32(b, c->krank);
            for (uint32_t i = 0; i < c->krank && i < 9; i++)
                b_u32(b, c->kdims[i]);
            b_u32(b, 1);
            for (uint64_t i = 0; i < c->kernel_floats; i++)
                b_f32(b, 0.5f * (float)i);
        } else {
            b_str(b, p == 1 ? "bias" : "extra");
            b_u32(b, 1);
            b_u32(b, 3);
            b_u32(b, 1);
            for (int i = 0; i < 3; i++) b_f32(b, -1.0f - (float)i);
        }
    }
}

static void craft_layers(bytes *b, const craft *c)
{
    b_u32(b, NN_KIND_INPUT);
    b_str(b, "in");
    b_u32(b, 0);
    b_u32(b, 0);
    b_u32(b, 1);
    b_u32(b, (uint32_t)c->cfg0.n);
    b_put(b, c->cfg0.p, c->cfg0.n);
    b_u32(b, 0);

    b_u32(b, c->kind1);
    if (c->name_nul) {
        b_u32(b, 3);
        b_put(b, "a\0b", 3);
    } else {
        b_str(b, c->name1);
    }
    b_u32(b, c->n_in1);
    for (uint32_t i = 0; i < c->n_in1 && i < 20; i++) b_u32(b, c->in1);
    b_u32(b, c->act1);
    b_u32(b, c->trainable1);
    b_u32(b, (uint32_t)c->cfg1.n);
    b_put(b, c->cfg1.p, c->cfg1.n);
    b_u32(b, c->n_params1);
    craft_params(b, c);
}

static void craft_optimizer(bytes *b, const craft *c)
{
    size_t s = b_begin(b, "OPTM");
    b_u32(b, c->opt_kind);
    if (c->opt_kind == NN_OPTIM_SGD) {
        b_f32(b, 0.1f);
        b_f32(b, 0.9f);
        b_u32(b, 0);
    } else {
        b_f32(b, 1e-3f);
        b_f32(b, c->beta1);
        b_f32(b, 0.999f);
        b_f32(b, 1e-7f);
        b_u32(b, 0);
    }
    b_u64(b, 3);
    b_u32(b, c->n_slots);
    for (uint32_t i = 0; i < c->n_slots && i < 4; i++) {
        uint64_t count = i == 0 ? c->slot0_count : 3;
        b_u32(b, 1);
        b_u32(b, i == 0 ? c->slot0_param : i);
        b_u64(b, count);
        int arrays = c->opt_kind == NN_OPTIM_SGD ? 1 : 2;
        for (uint64_t k = 0; k < count * (uint64_t)arrays && k < 64; k++)
            b_f32(b, 0.125f * (float)(k + i));
    }
    b_end(b, s);
}

static void craft_file(bytes *b, const craft *c)
{
    b_put(b, "NNMODEL", 8);
    b_u32(b, c->version);
    b_u32(b, c->flags);
    b_u64(b, 0);
    size_t s = b_begin(b, "MODL");
    b_u64(b, 5);
    for (int i = 0; i < 4; i++) b_u64(b, c->zero_rng ? 0 : (uint64_t)i + 1);
    b_u64(b, 0);
    b_u32(b, c->output);
    b_u32(b, c->loss);
    b_u32(b, 0);
    b_u32(b, c->n_counters);
    for (uint32_t i = 0; i < c->n_counters && i < 300; i++) b_u32(b, 0);
    b_end(b, s);
    s = b_begin(b, c->tag2);
    b_u32(b, c->layer_count);
    craft_layers(b, c);
    for (uint32_t i = 0; i < c->graph_extra; i++) b_u8(b, 0);
    b_end(b, s);
    if (c->len2)
        for (int i = 0; i < 8; i++) b->p[s + i] = (uint8_t)(c->len2 >> (8 * i));
    if (c->names) {
        s = b_begin(b, "NAME");
        b_str(b, c->model_name ? c->model_name : "");
        int entries = c->name_entries ? c->name_entries : 2;
        for (int i = 0; i < entries; i++)
            b_str(b, i == 1 && c->group1 ? c->group1 : "");
        b_end(b, s);
    }
    if (c->opt_kind) craft_optimizer(b, c);
    if (c->clip) {
        s = b_begin(b, "CLIP");
        b_f32(b, c->clip_norm);
        b_f32(b, c->clip_value);
        b_end(b, s);
    }
    if (c->has_prep) {
        s = b_begin(b, "PREP");
        for (int i = 0; i < c->n_prep && i < 14; i++) b_u32(b, c->prep[i]);
        b_end(b, s);
    }
    b_finish(b);
}

static uint32_t f32_bits(float v)
{
    uint32_t u;
    memcpy(&u, &v, 4);
    return u;
}

/* An image classifier: Input [2, 2, 3] -> Flatten, 12 classes, with a
 * PREP section (flag bit 4): scale, mean x 4, std x 4, channel order,
 * resize, positive class, threshold. */
static craft craft_classifier(void)
{
    craft c = craft_default();
    int img[3] = {2, 2, 3};
    c.cfg0 = input_config(3, img);
    c.kind1 = NN_KIND_FLATTEN;
    c.name1 = "flatten";
    c.cfg1.n = 0;
    c.n_params1 = 0;
    c.flags = 16;
    c.has_prep = true;
    c.n_prep = 13;
    const float mean[4] = {0.5f, 0.25f, 0.125f, 0}, sd[4] = {2, 4, 8, 1};
    c.prep[0] = f32_bits(1.0f / 255);
    for (int i = 0; i < 4; i++) {
        c.prep[1 + i] = f32_bits(mean[i]);
        c.prep[5 + i] = f32_bits(sd[i]);
    }
    c.prep[9] = NN_CHANNELS_REVERSED;
    c.prep[10] = 1;
    c.prep[11] = (uint32_t)NN_ALL_BUT(0);
    c.prep[12] = f32_bits(0.25f);
    return c;
}

static nn_status load_crafted(const craft *c, nn_model **m)
{
    bytes b = {0};
    craft_file(&b, c);
    write_file(tpath("craft.nnm"), b.p, b.n);
    b_free(&b);
    return nn__model_load(tpath("craft.nnm"), m);
}

static void test_ckpt_crafted_valid(void **state)
{
    craft c = craft_default();
    nn_model *m = NULL;
    assert_error(load_crafted(&c, &m), NN_OK, NULL);
    assert_int_equal(m->n_layers, 2);
    assert_string_equal(m->layers[1]->name, "dense");
    const float *k = m->layers[1]->params[0].value.data;
    for (int i = 0; i < 12; i++) assert_true(k[i] == 0.5f * (float)i);
    assert_true(m->layers[1]->params[1].value.data[2] == -3.0f);
    assert_false(m->compiled);
    nn_model_free(m);

    c.flags = 1;
    c.loss = NN_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY;
    c.opt_kind = NN_OPTIM_ADAM;
    assert_error(load_crafted(&c, &m), NN_OK, NULL);
    assert_true(m->compiled);
    assert_int_equal(m->opt->iterations, 3);
    assert_int_equal(m->opt->n_slots, 2);
    assert_true(m->opt->slot_v[1][2] == 0.125f * 6);
    nn_model_free(m);

    c.opt_kind = NN_OPTIM_SGD;
    c.n_slots = 0; /* state not created yet */
    assert_error(load_crafted(&c, &m), NN_OK, NULL);
    assert_int_equal(m->opt->kind, NN_OPTIM_SGD);
    assert_int_equal(m->opt->n_slots, 0);
    nn_model_free(m);

    c.flags |= 4; /* clipping */
    c.clip = true;
    c.clip_norm = 1.5f;
    c.clip_value = 0.25f;
    assert_error(load_crafted(&c, &m), NN_OK, NULL);
    assert_true(m->opt->global_clipnorm == 1.5f);
    assert_true(m->opt->clipvalue == 0.25f);
    nn_model_free(m);

    c.flags |= 2; /* names: the model's, a block's */
    c.names = true;
    c.model_name = "net";
    c.group1 = "blk";
    assert_error(load_crafted(&c, &m), NN_OK, NULL);
    assert_string_equal(m->name, "net");
    assert_string_equal(m->layers[0]->group, "");
    assert_string_equal(m->layers[1]->group, "blk");
    assert_false(m->has_preprocess);
    nn_model_free(m);

    c = craft_classifier(); /* preprocessing and decision */
    assert_error(load_crafted(&c, &m), NN_OK, NULL);
    assert_true(m->has_preprocess);
    nn_preprocess_opts p = m->preprocess;
    assert_true(p.scale == 1.0f / 255 && p.mean[2] == 0.125f &&
                p.std[1] == 4 && p.std[3] == 1 && p.threshold == 0.25f);
    assert_int_equal(p.channel_order, NN_CHANNELS_REVERSED);
    assert_int_equal(p.resize, 1);
    assert_int_equal(p.positive_class, NN_ALL_BUT(0));
    nn_model_free(m);
}

typedef struct hostile {
    int id;
    nn_status want;
    const char *sub;
} hostile;

static void make_hostile(int id, craft *c)
{
    int big = 65536, img[3] = {8, 8, 1};
    switch (id) {
    case 0: c->layer_count = 0xFFFFFFFFu; break;
    case 1: c->layer_count = 16000; break;
    case 2: c->layer_count = 3; break;
    case 3: c->kind1 = 99; break;
    case 4: c->kind1 = NN_KIND_COUNT; break;
    case 5: c->in1 = 1; break;
    case 6: c->in1 = 1000; break;
    case 7: c->n_in1 = 17; break;
    case 8: c->n_in1 = 0; break;
    case 9: c->act1 = 9; break;
    case 10: c->act1 = NN_ACT_RELU; break;
    case 11: c->kdims[0] = c->kdims[1] = 65536; break;
    case 12:
        c->kdims[0] = c->kdims[1] = 1024;
        c->kernel_floats = 16;
        break;
    case 13:
        c->kdims[0] = 5;
        c->kernel_floats = 15;
        break;
    case 14: c->krank = 0; break;
    case 15: c->krank = 9; break;
    case 16: c->kdims[0] = 0; break;
    case 17: c->n_params1 = 5; break;
    case 18: c->n_params1 = 1; break;
    case 19: c->cfg1 = dense_config(3, 99); break;
    case 20: c->cfg1.n = 3; break;
    case 21: c->cfg1.n = 0; break;
    case 22: /* 2^32 kernel values from a 40-byte config */
        c->cfg0 = input_config(1, &big);
        c->cfg1 = dense_config(big, NN_INIT_GLOROT_UNIFORM);
        break;
    case 23: /* 9 * 2^24 kernel values */
        c->cfg0 = input_config(3, img);
        c->kind1 = NN_KIND_CONV2D;
        c->cfg1 = conv_config(1 << 24);
        break;
    case 24: c->name1 = ""; break;
    case 25:
        c->name1 = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                   "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"; /* 64 */
        break;
    case 26: c->name1 = "in"; break;
    case 27: c->name_nul = true; break;
    case 28: c->trainable1 = 2; break;
    case 29: c->output = 2; break;
    case 30: c->zero_rng = true; break;
    case 31: c->version = 2; break;
    case 32: c->flags = 32; break; /* bit 3 is LOSS, bit 4 PREP */
    case 33: c->flags = 1; break;
    case 34: c->opt_kind = NN_OPTIM_ADAM; break; /* flag not set */
    case 35: c->flags = 1, c->opt_kind = NN_OPTIM_ADAM; break; /* no loss */
    case 36: c->opt_kind = 7; break;
    case 37: c->opt_kind = NN_OPTIM_ADAM, c->beta1 = 2.0f; break;
    case 38: c->opt_kind = NN_OPTIM_ADAM, c->n_slots = 5; break;
    case 39: c->opt_kind = NN_OPTIM_ADAM, c->slot0_param = 1; break;
    case 40: c->opt_kind = NN_OPTIM_ADAM, c->slot0_count = 11; break;
    case 41: c->opt_kind = NN_OPTIM_ADAM, c->slot0_count = 1ull << 40; break;
    case 42: c->graph_extra = 4; break;
    case 43: c->tag2 = "GRPX"; break;
    case 44: c->len2 = 0xFFFFFFFFFFFFull; break;
    case 45: c->n_counters = 1000; break;
    case 46: c->loss = 9; break;
    case 47: /* a second Input */
        c->kind1 = NN_KIND_INPUT;
        c->n_in1 = 0;
        c->cfg1 = c->cfg0;
        c->n_params1 = 0;
        break;
    case 48: c->kind1 = NN_KIND_FLATTEN; break; /* config where none goes */
    case 49: c->flags = 2; break; /* names announced, none there */
    case 50:
        c->flags = 2, c->names = true;
        c->group1 = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"; /* 64 */
        break;
    case 51: c->flags = 2, c->names = true, c->name_entries = 1; break;
    case 52: c->flags = 2, c->names = true, c->name_entries = 3; break;
    case 53: c->names = true; break; /* a section the flags do not announce */
    case 54: c->flags = 4; break; /* clipping without an optimizer */
    case 55: c->clip_norm = NAN; break;
    case 56: c->clip_value = -1.0f; break;
    case 57: c->clip = false; break; /* announced, missing */
    }
    if (id >= 58) *c = craft_classifier(); /* a PREP section */
    uint32_t *w = c->prep;
    switch (id) {
    case 58: c->has_prep = false; break; /* announced, missing */
    case 59: c->flags = 0; break;        /* there, not announced */
    case 60: w[0] = f32_bits(NAN); break;
    case 61: w[0] = 0; break;
    case 62: w[0] = f32_bits(-1.0f / 255); break;
    case 63: w[3] = f32_bits(INFINITY); break;
    case 64: w[8] = 0; break; /* std of the unused fourth channel */
    case 65: w[5] = f32_bits(-2); break;
    case 66: w[9] = 2; break;
    case 67: /* channels reversed on a gray input */
        c->cfg0 = input_config(3, (int[]){2, 2, 1});
        break;
    case 68: w[10] = 2; break;
    case 69: w[11] = 12; break;
    case 70: w[11] = (uint32_t)NN_ALL_BUT(12); break;
    case 71: w[12] = f32_bits(1.5f); break;
    case 72: w[12] = f32_bits(NAN); break;
    case 73: w[12] = f32_bits(-0.25f); break;
    case 74: c->n_prep = 12; break;
    case 75: c->n_prep = 14; break;
    case 76: /* not an image classifier: Dense(3) on [4] */
        {
            craft d = craft_default();
            d.flags = 16, d.has_prep = true, d.n_prep = 13;
            memcpy(d.prep, c->prep, sizeof d.prep);
            *c = d;
        }
        break;
    }
    if (id >= 35 && id <= 41) {
        c->flags = 1;
        c->loss = id == 35 ? 0 : NN_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY;
    }
    if (id >= 55 && id <= 57) { /* an optimizer that clips */
        c->flags = 1 | 4;
        c->loss = NN_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY;
        c->opt_kind = NN_OPTIM_ADAM;
        c->clip = id != 57;
    }
}

static void test_ckpt_hostile(void **state)
{
    static const hostile cases[] = {
        {0, NN_ERR_FORMAT, "layer count 4294967295"},
        {1, NN_ERR_FORMAT, "cannot fit"},
        {2, NN_ERR_FORMAT, "truncated in layer 2"},
        {3, NN_ERR_FORMAT, "layer 1: unknown layer kind 99"},
        {4, NN_ERR_FORMAT, "unknown layer kind"},
        {5, NN_ERR_FORMAT, "layer 1 'dense': input 0 refers to layer 1"},
        {6, NN_ERR_FORMAT, "not an earlier one"},
        {7, NN_ERR_FORMAT, "17 inputs"},
        {8, NN_ERR_FORMAT, "layer 1 'dense'"},
        {9, NN_ERR_FORMAT, "unknown activation 9"},
        {10, NN_ERR_FORMAT, "activation 1"},
        {11, NN_ERR_FORMAT, "parameter 'kernel': more than 1073741824"},
        {12, NN_ERR_FORMAT,
         "truncated in layer 1 'dense' parameter 'kernel'"},
        {13, NN_ERR_FORMAT, "does not match"},
        {14, NN_ERR_FORMAT, "rank 0"},
        {15, NN_ERR_FORMAT, "rank 9"},
        {16, NN_ERR_FORMAT, "dimension 0 is 0"},
        {17, NN_ERR_FORMAT, "5 parameters"},
        {18, NN_ERR_FORMAT, "more than stored"},
        {19, NN_ERR_FORMAT, "layer 1 'dense': Dense config"},
        {20, NN_ERR_FORMAT, "layer 1 'dense'"},
        {21, NN_ERR_FORMAT, "layer 1 'dense'"},
        {22, NN_ERR_FORMAT, "more than stored"},
        {23, NN_ERR_FORMAT, "more than stored"},
        {24, NN_ERR_FORMAT, "name length 0"},
        {25, NN_ERR_FORMAT, "name length 64"},
        {26, NN_ERR_FORMAT, "already used"},
        {27, NN_ERR_FORMAT, "NUL"},
        {28, NN_ERR_FORMAT, "trainable flag is 2"},
        {29, NN_ERR_FORMAT, "output layer 2"},
        {30, NN_ERR_FORMAT, "all zero"},
        {31, NN_ERR_UNSUPPORTED, "format version 2"},
        {32, NN_ERR_FORMAT, "unknown flags"},
        {49, NN_ERR_FORMAT, "section NAME header"},
        {50, NN_ERR_FORMAT, "section NAME, layer 1: block name length 64"},
        {51, NN_ERR_FORMAT, "section NAME, layer 1"},
        {52, NN_ERR_FORMAT, "section NAME"},
        {53, NN_ERR_FORMAT, "unexpected bytes"},
        {54, NN_ERR_FORMAT, "clipping (flag bit 2) without an optimizer"},
        {55, NN_ERR_FORMAT, "section CLIP: global_clipnorm nan"},
        {56, NN_ERR_FORMAT, "section CLIP: clipvalue -1"},
        {57, NN_ERR_FORMAT, "section CLIP header"},
        {33, NN_ERR_FORMAT, "OPTM"},
        {34, NN_ERR_FORMAT, "unexpected bytes after the last section"},
        {35, NN_ERR_FORMAT, "without a loss"},
        {36, NN_ERR_FORMAT, "unknown optimizer kind 7"},
        {37, NN_ERR_FORMAT, "beta1"},
        {38, NN_ERR_FORMAT, "5 slots for 2"},
        {39, NN_ERR_FORMAT, "expected layer 1 parameter 0"},
        {40, NN_ERR_FORMAT, "has 11 values"},
        {41, NN_ERR_FORMAT, "optimizer slot 0"},
        {42, NN_ERR_FORMAT, "unexpected bytes at its end"},
        {43, NN_ERR_FORMAT, "expected section GRPH"},
        {44, NN_ERR_FORMAT, "exceeds"},
        {45, NN_ERR_FORMAT, "name counters"},
        {46, NN_ERR_FORMAT, "unknown loss 9"},
        {47, NN_ERR_FORMAT, "layer 1 'dense'"},
        {48, NN_ERR_FORMAT, "layer 1 'dense'"},
        {58, NN_ERR_FORMAT, "section PREP header"},
        {59, NN_ERR_FORMAT, "unexpected bytes after the last section"},
        {60, NN_ERR_FORMAT, "section PREP: preprocessing: scale nan"},
        {61, NN_ERR_FORMAT, "scale 0 must be finite and positive"},
        {62, NN_ERR_FORMAT, "scale -0.00392157"},
        {63, NN_ERR_FORMAT, "channel 2: mean inf"},
        {64, NN_ERR_FORMAT, "channel 3: mean 0 must be finite and std 0"},
        {65, NN_ERR_FORMAT, "channel 0: mean 0.5 must be finite and std -2"},
        {66, NN_ERR_FORMAT, "section PREP: unknown channel order 2"},
        {67, NN_ERR_FORMAT, "the model's input has 1"},
        {68, NN_ERR_FORMAT, "section PREP: resize flag is 2"},
        {69, NN_ERR_FORMAT, "positive_class 12; the output has 12 classes"},
        {70, NN_ERR_FORMAT, "positive_class -13"},
        {71, NN_ERR_FORMAT, "threshold 1.5 must lie in [0, 1]"},
        {72, NN_ERR_FORMAT, "threshold nan"},
        {73, NN_ERR_FORMAT, "threshold -0.25"},
        {74, NN_ERR_FORMAT, "truncated in section PREP"},
        {75, NN_ERR_FORMAT, "section PREP: 4 unexpected bytes at its end"},
        {76, NN_ERR_FORMAT, "the model's input is [4]"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        craft c = craft_default();
        make_hostile(cases[i].id, &c);
        nn_model *m = (nn_model *)&c;
        nn__debug_fail_alloc_after(0);
        nn_status s = load_crafted(&c, &m);
        int64_t allocs = nn__debug_fail_alloc_after(0);
        if (s != cases[i].want || !strstr(nn_last_error(), cases[i].sub))
            fail_msg("hostile case %d: %s '%s' (want %s '%s')", cases[i].id,
                     nn_status_name(s), nn_last_error(),
                     nn_status_name(cases[i].want), cases[i].sub);
        assert_null(m);
        assert_true(allocs < 100);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_idx_images),
        cmocka_unit_test(test_idx_labels_and_ranks),
        cmocka_unit_test(test_idx_malformed),
        cmocka_unit_test(test_idx_huge_claims),
        cmocka_unit_test(test_idx_corrupt_gzip),
        cmocka_unit_test(test_idx_args_and_missing),
        cmocka_unit_test(test_idx_alloc_failures),
        cmocka_unit_test(test_idx_fashion_mnist),
        cmocka_unit_test(test_cifar_deinterleave),
        cmocka_unit_test(test_cifar_errors),
        cmocka_unit_test(test_one_hot),
        cmocka_unit_test(test_ckpt_roundtrip_adam),
        cmocka_unit_test(test_ckpt_roundtrip_sgd_dropout),
        cmocka_unit_test(test_ckpt_roundtrip_seg_layers),
        cmocka_unit_test(test_ckpt_roundtrip_activations),
        cmocka_unit_test(test_ckpt_without_optimizer),
        cmocka_unit_test(test_ckpt_names),
        cmocka_unit_test(test_ckpt_save_errors),
        cmocka_unit_test(test_ckpt_load_errors),
        cmocka_unit_test(test_ckpt_truncations),
        cmocka_unit_test(test_ckpt_byte_flips),
        cmocka_unit_test(test_ckpt_fuzz_valid_crc),
        cmocka_unit_test(test_ckpt_load_alloc_failures),
        cmocka_unit_test(test_ckpt_crafted_valid),
        cmocka_unit_test(test_ckpt_hostile),
    };
    return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}

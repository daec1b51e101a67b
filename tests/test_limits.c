/* Bounds a file or an argument cannot push the library past: default-name
 * counters, the memory one sample's inference may plan for a loaded model,
 * the tensors a data file may decode to (nn_set_limits), and messages that
 * state the real limits. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "io/io.h"
#include "nn_internal.h"
#include "tmpdir.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

static uint8_t *read_all(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(*n);
    assert_int_equal(fread(b, 1, *n, f), *n);
    fclose(f);
    return b;
}

static void write_all(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

static void set_limits(int64_t model_bytes, int64_t data_bytes)
{
    nn_limits l = NN_LIMITS_INIT;
    l.model_bytes = model_bytes;
    l.data_bytes = data_bytes;
    assert_error(nn_set_limits(&l), NN_OK, NULL);
}

/* ------------------------------------------------------------------ */
/* default-name counters                                               */
/* ------------------------------------------------------------------ */

/* MODL's counters start after the header (24), the section's tag and
 * length (12), seed, generator and steps (48), output, loss, from_logits
 * and the counter count (16). */
#define COUNTERS_AT 100

/* Rewrites the saved default-name counter of `kind` and the CRC. */
static void patch_counter(const char *path, nn_layer_kind kind, uint32_t v)
{
    size_t n = 0;
    uint8_t *b = read_all(path, &n);
    assert_memory_equal(b + 24, "MODL", 4);
    assert_int_equal(nn__get_le32(b + COUNTERS_AT - 4), NN_KIND_COUNT);
    nn__put_le32(b + COUNTERS_AT + 4 * kind, v);
    nn__put_le32(b + n - 4, (uint32_t)crc32(0, b, (uInt)(n - 4)));
    write_all(path, b, n);
    free(b);
}

static nn_model *relu_model(void)
{
    nn_model *m = nn_model_create(1);
    int shape[1] = {4};
    nn_layer *x = nn_input(m, 1, shape, NULL);
    assert_non_null(nn_relu(m, x, NULL));
    return m;
}

static void test_counter_beyond_bound_refused(void **state)
{
    const char *path = tpath("counter.nnm");
    nn_model *m = relu_model();
    assert_error(nn_model_save(m, path, 0), NN_OK, NULL);
    nn_model_free(m);
    /* Adding a layer to such a model overflowed an int, and the model it
     * saved could not be loaded. */
    patch_counter(path, NN_KIND_RELU, INT32_MAX);
    nn_model *back = NULL;
    assert_error(nn__model_load(path, &back), NN_ERR_FORMAT,
                 "name counter 7 is 2147483647, more than 1073741824");
    assert_null(back);
    patch_counter(path, NN_KIND_RELU, NN_NAME_COUNTER_MAX + 1u);
    assert_error(nn__model_load(path, &back), NN_ERR_FORMAT, "name counter");
}

static void test_counter_at_bound_stops_default_names(void **state)
{
    const char *path = tpath("bound.nnm");
    nn_model *m = relu_model();
    assert_error(nn_model_save(m, path, 0), NN_OK, NULL);
    nn_model_free(m);
    patch_counter(path, NN_KIND_RELU, NN_NAME_COUNTER_MAX - 1);
    m = NULL;
    assert_error(nn__model_load(path, &m), NN_OK, NULL);
    nn_layer *last = nn_relu(m, nn_model_output(m), NULL);
    assert_non_null(last);
    assert_string_equal(nn_layer_name(last), "re_lu_1073741823");
    /* The counter is spent: a default name fails cleanly, a given one
     * still works, and other kinds are unaffected. */
    assert_null(nn_relu(m, last, NULL));
    assert_int_equal(nn_last_status(), NN_ERR_UNSUPPORTED);
    assert_non_null(strstr(nn_last_error(), "give the layer a name"));
    assert_int_equal(nn_model_num_layers(m), 3);
    nn_layer_opts named = NN_LAYER_OPTS_INIT;
    named.name = "last_relu";
    assert_non_null(last = nn_relu(m, last, &named));
    assert_non_null(nn_sigmoid(m, last, NULL));
    /* What it saves loads, counter included. */
    assert_error(nn_model_save(m, path, 0), NN_OK, NULL);
    nn_model *back = NULL;
    assert_error(nn__model_load(path, &back), NN_OK, NULL);
    assert_int_equal(back->name_counts[NN_KIND_RELU], NN_NAME_COUNTER_MAX);
    assert_int_equal(nn_model_num_layers(back), 5);
    assert_null(nn_relu(back, nn_model_output(back), NULL));
    nn_model_free(back);
    nn_model_free(m);
}

/* ------------------------------------------------------------------ */
/* the limits themselves                                               */
/* ------------------------------------------------------------------ */

static void test_limits_api(void **state)
{
    nn_limits l = NN_LIMITS_INIT;
    assert_error(nn_set_limits(NULL), NN_OK, NULL);
    assert_error(nn_get_limits(&l), NN_OK, NULL);
    assert_true(l.model_bytes == NN_DEFAULT_MODEL_BYTES);
    assert_true(l.data_bytes == NN_DEFAULT_DATA_BYTES);
    assert_true(l.model_bytes == (int64_t)1 << 31);

    set_limits(1000, 2000);
    l.model_bytes = -1;
    assert_error(nn_set_limits(&l), NN_ERR_INVALID, "must be >= 0");
    assert_error(nn_get_limits(&l), NN_OK, NULL);
    assert_true(l.model_bytes == 1000 && l.data_bytes == 2000);

    /* A caller's struct that ends before data_bytes: the rest defaults. */
    nn_limits older = NN_LIMITS_INIT;
    older.size = offsetof(nn_limits, data_bytes);
    older.model_bytes = 4096;
    older.data_bytes = 77; /* beyond its size: not read */
    assert_error(nn_set_limits(&older), NN_OK, NULL);
    older.model_bytes = older.data_bytes = 0;
    assert_error(nn_get_limits(&older), NN_OK, NULL);
    assert_true(older.model_bytes == 4096 && older.data_bytes == 0);
    assert_error(nn_get_limits(&l), NN_OK, NULL);
    assert_true(l.model_bytes == 4096 &&
                l.data_bytes == NN_DEFAULT_DATA_BYTES);

    l.size = 0;
    assert_error(nn_set_limits(&l), NN_ERR_INVALID, "NN_LIMITS_INIT");
    assert_error(nn_get_limits(&l), NN_ERR_INVALID, "NN_LIMITS_INIT");
    assert_error(nn_get_limits(NULL), NN_ERR_INVALID, NULL);
    assert_error(nn_set_limits(NULL), NN_OK, NULL);
    l = (nn_limits)NN_LIMITS_INIT;
    assert_error(nn_get_limits(&l), NN_OK, NULL);
    assert_true(l.model_bytes == NN_DEFAULT_MODEL_BYTES);
}

/* ------------------------------------------------------------------ */
/* the model limit                                                     */
/* ------------------------------------------------------------------ */

static nn_model *resizing_model(int side)
{
    nn_model *m = nn_model_create(1);
    int shape[3] = {4, 4, 3};
    nn_layer *x = nn_input(m, 3, shape, NULL);
    x = nn_resizing(m, x, side, side, NULL);
    assert_non_null(nn_global_avgpool2d(m, x, NULL));
    return m;
}

static void test_tiny_file_huge_plan_refused(void **state)
{
    const char *path = tpath("resize.nnm");
    nn_model *m = resizing_model(26000);
    assert_error(nn_model_save(m, path, 0), NN_OK, NULL);
    nn_model_free(m);
    size_t n = 0;
    free(read_all(path, &n));
    /* a few hundred bytes (plus one u32 name counter per layer kind),
     * 8.1 GB per sample */
    assert_true(n < 384 + 4 * NN_KIND_COUNT);
    nn_model *back = NULL;
    assert_error(nn__model_load(path, &back), NN_ERR_NOMEM,
                 "model limit of 2147483648 bytes by layer 1 'resizing' "
                 "(Resizing, output 26000x26000x3); raise it with "
                 "nn_set_limits");
    assert_null(back);
    assert_null(nn_model_load(path));
    /* The caller decides: with room for it, the model loads. */
    set_limits((int64_t)16 << 30, 0);
    assert_error(nn__model_load(path, &back), NN_OK, NULL);
    nn_model_free(back);
    assert_error(nn_set_limits(NULL), NN_OK, NULL);
}

/* The plan of Input(8) -> Dense(16) -> Dense(4): the output and the
 * output's input stay live, 16 + 4 floats. */
static void test_plan_bytes_counts_the_plan(void **state)
{
    nn_model *m = nn_model_create(1);
    int shape[1] = {8};
    nn_layer *x = nn_input(m, 1, shape, NULL);
    nn_layer *d1 = nn_dense(m, x, 16, NULL);
    nn_layer *d2 = nn_dense(m, d1, 4, NULL);
    int64_t bytes = 0;
    const nn_layer *over = NULL;
    assert_error(nn__plan_bytes(m, 1, -1, &bytes, &over), NN_OK, NULL);
    assert_int_equal(bytes, 20 * 4);
    assert_null(over);
    assert_error(nn__plan_bytes(m, 3, 60 * 4, &bytes, &over), NN_OK, NULL);
    assert_int_equal(bytes, 60 * 4);
    assert_null(over);
    assert_error(nn__plan_bytes(m, 3, 60 * 4 - 1, &bytes, &over), NN_OK,
                 NULL);
    assert_ptr_equal(over, d2);
    assert_error(nn__plan_bytes(m, 3, 47, &bytes, &over), NN_OK, NULL);
    assert_ptr_equal(over, d1);
    nn_model_free(m);
}

/* A real model loads with a limit equal to its plan, not one byte less. */
static void test_limit_is_exact_for_a_cnn(void **state)
{
    const char *path = tpath("cnn.nnm");
    nn_model *m = nn_model_create(3);
    int shape[3] = {12, 12, 2};
    nn_conv2d_opts conv = NN_CONV2D_OPTS_INIT;
    conv.padding = NN_PADDING_SAME;
    nn_layer *x = nn_input(m, 3, shape, NULL);
    x = nn_conv2d(m, x, 8, 3, 3, &conv);
    x = nn_batchnorm(m, x, NULL);
    x = nn_relu(m, x, NULL);
    x = nn_maxpool2d(m, x, 2, 2, NULL);
    x = nn_flatten(m, x, NULL);
    assert_non_null(nn_dense(m, x, 5, NULL));
    int64_t need = 0;
    const nn_layer *over = NULL;
    assert_error(nn__plan_bytes(m, 1, -1, &need, &over), NN_OK, NULL);
    assert_true(need > 12 * 12 * 8 * 4);
    assert_error(nn_model_save(m, path, 0), NN_OK, NULL);
    nn_model_free(m);
    set_limits(need, 0);
    nn_model *back = NULL;
    assert_error(nn__model_load(path, &back), NN_OK, NULL);
    nn_model_free(back);
    set_limits(need - 1, 0);
    assert_error(nn__model_load(path, &back), NN_ERR_NOMEM, "model limit");
    assert_error(nn_set_limits(NULL), NN_OK, NULL);
}

/* ------------------------------------------------------------------ */
/* the data limit                                                      */
/* ------------------------------------------------------------------ */

static void idx_header(uint8_t *h, int rank, const uint32_t *dims)
{
    h[0] = h[1] = 0;
    h[2] = 0x08;
    h[3] = (uint8_t)rank;
    for (int i = 0; i < rank; i++)
        for (int j = 0; j < 4; j++)
            h[4 + 4 * i + j] = (uint8_t)(dims[i] >> (24 - 8 * j));
}

/* A gzip IDX whose header promises 2^31 values (8 GiB of floats): refused
 * from the header, before anything is decompressed. */
static void test_gzip_idx_cannot_inflate_past_limit(void **state)
{
    const char *path = tpath("big.idx.gz");
    uint8_t h[16];
    uint32_t dims[3] = {32768, 256, 256};
    idx_header(h, 3, dims);
    gzFile g = gzopen(path, "wb9");
    assert_non_null(g);
    assert_int_equal(gzwrite(g, h, sizeof h), (int)sizeof h);
    static uint8_t zeros[1 << 16];
    for (int i = 0; i < 32; i++) /* 2 MiB of data that compresses to ~2 KB */
        assert_int_equal(gzwrite(g, zeros, sizeof zeros), (int)sizeof zeros);
    assert_int_equal(gzclose(g), Z_OK);
    nn_tensor *t = NULL;
    assert_error(nn_load_idx(path, 1, &t), NN_ERR_NOMEM,
                 "would decode to 8589934592 bytes of tensors, more than "
                 "the data limit of 2147483648 bytes");
    assert_null(t);
}

static void test_idx_limit_is_exact(void **state)
{
    const char *path = tpath("small.idx.gz");
    uint8_t file[8 + 1000];
    uint32_t dims[1] = {1000};
    idx_header(file, 1, dims);
    for (int i = 0; i < 1000; i++) file[8 + i] = (uint8_t)(i % 10);
    gzFile g = gzopen(path, "wb");
    assert_int_equal(gzwrite(g, file, sizeof file), (int)sizeof file);
    assert_int_equal(gzclose(g), Z_OK);
    nn_tensor *t = NULL;
    set_limits(0, 4000);
    assert_error(nn_load_idx(path, 0, &t), NN_OK, NULL);
    assert_true(t->data[999] == 9.0f);
    nn_tensor_free(t);
    t = NULL;
    set_limits(0, 3999);
    assert_error(nn_load_idx(path, 0, &t), NN_ERR_NOMEM, "data limit");
    assert_null(t);
    /* Plain files too. */
    const char *plain = tpath("small.idx");
    write_all(plain, file, sizeof file);
    assert_error(nn_load_idx(plain, 0, &t), NN_ERR_NOMEM, "data limit");
    assert_error(nn_set_limits(NULL), NN_OK, NULL);
    assert_error(nn_load_idx(plain, 0, &t), NN_OK, NULL);
    nn_tensor_free(t);
}

static void test_cifar_limit(void **state)
{
    const char *path = tpath("batch.bin");
    static uint8_t rec[2][3073];
    rec[1][0] = 7;
    write_all(path, rec, sizeof rec);
    const char *paths[1] = {path};
    nn_tensor *x = NULL, *y = NULL;
    set_limits(0, 2 * 3073 * 4 - 1);
    assert_error(nn_load_cifar10(paths, 1, &x, &y), NN_ERR_NOMEM,
                 "cifar10: the files would decode to 24584 bytes");
    assert_null(x);
    set_limits(0, 2 * 3073 * 4);
    assert_error(nn_load_cifar10(paths, 1, &x, &y), NN_OK, NULL);
    assert_true(y->data[1] == 7.0f);
    nn_tensor_free(x);
    nn_tensor_free(y);
    assert_error(nn_set_limits(NULL), NN_OK, NULL);
}

/* ------------------------------------------------------------------ */
/* messages state the real limits                                      */
/* ------------------------------------------------------------------ */

static void test_fit_messages_state_limits(void **state)
{
    nn_model *m = nn_model_create(1);
    int shape[1] = {3};
    nn_layer *x = nn_input(m, 1, shape, NULL);
    nn_dense_opts d = NN_DENSE_OPTS_INIT;
    d.activation = NN_ACT_SOFTMAX;
    assert_non_null(nn_dense(m, x, 2, &d));
    assert_error(nn_model_compile(m, nn_sgd(NULL),
                                  NN_LOSS_CATEGORICAL_CROSSENTROPY, NULL),
                 NN_OK, NULL);
    int64_t xs[2] = {4, 3}, ys[2] = {4, 2};
    nn_tensor *xt = nn_tensor_create(2, xs), *yt = nn_tensor_create(2, ys);
    for (int i = 0; i < 4; i++) yt->data[2 * i] = 1;
    nn_fit_opts o = NN_FIT_OPTS_INIT;
    o.batch_size = INT_MAX;
    assert_error(nn_model_fit(m, xt, yt, &o, NULL), NN_ERR_INVALID,
                 "batch size must lie in 1..1048576 (2^20), got 2147483647");
    o.batch_size = 0;
    assert_error(nn_model_fit(m, xt, yt, &o, NULL), NN_ERR_INVALID,
                 "1..1048576");
    o.batch_size = 2;
    o.epochs = 1000000000;
    assert_error(nn_model_fit(m, xt, yt, &o, NULL), NN_ERR_INVALID,
                 "epochs must lie in 1..1000000, got 1000000000");
    o.epochs = 1;
    assert_error(nn_model_fit(m, xt, yt, &o, NULL), NN_OK, NULL);
    float loss, acc;
    assert_error(nn_model_evaluate(m, xt, yt, 0, &loss, &acc),
                 NN_ERR_INVALID, "batch size must be positive, got 0");
    assert_error(nn_model_predict(m, xt, yt, -1), NN_ERR_INVALID,
                 "batch size -1; it must be positive");
    nn_tensor_free(xt);
    nn_tensor_free(yt);
    nn_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counter_beyond_bound_refused),
        cmocka_unit_test(test_counter_at_bound_stops_default_names),
        cmocka_unit_test(test_limits_api),
        cmocka_unit_test(test_tiny_file_huge_plan_refused),
        cmocka_unit_test(test_plan_bytes_counts_the_plan),
        cmocka_unit_test(test_limit_is_exact_for_a_cnn),
        cmocka_unit_test(test_gzip_idx_cannot_inflate_past_limit),
        cmocka_unit_test(test_idx_limit_is_exact),
        cmocka_unit_test(test_cifar_limit),
        cmocka_unit_test(test_fit_messages_state_limits),
    };
    return cmocka_run_group_tests(tests, make_tmpdir, remove_tmpdir);
}

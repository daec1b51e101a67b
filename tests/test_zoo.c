/* Model zoo and weight import: ResNet50 in both flavours and its blocks,
 * MobileNetV2 in both flavours, the U-Net builder,
 * the Q3d / Q3e transfer models, safetensors import (every error names
 * its tensor; hostile files never crash) and export, preprocessing. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "nn_internal.h"
#include "stored_config.h"
#include "zoo/zoo.h"
#include "tmpdir.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------------ */
/* helpers                                                             */
/* ------------------------------------------------------------------ */

#define assert_ok(expr)                                                        \
    do {                                                                       \
        nn_status s_ = (expr);                                                 \
        if (s_ != NN_OK)                                                       \
            fail_msg("%s: %s: %s", #expr, nn_status_name(s_),                 \
                     nn_last_error());                                         \
    } while (0)

static uint32_t lcg_state = 4242;
static uint32_t lcg(void)
{
    lcg_state = lcg_state * 1664525u + 1013904223u;
    return lcg_state >> 8;
}

static int setup_dir(void **state)
{
    snprintf(tmpdir, sizeof tmpdir, "%s/test_zoo.XXXXXX",
             access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown_dir(void **state)
{
    DIR *d = opendir(tmpdir);
    if (!d) return 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char p[512];
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", tmpdir, e->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(tmpdir);
    return 0;
}

static uint8_t *read_bytes(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(*n ? *n : 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, *n, f), *n);
    fclose(f);
    return b;
}

static void write_bytes(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    fclose(f);
}

/* A safetensors file: u64 LE length, `json`, then `data`. */
static void write_st(const char *path, const char *json, const void *data,
                     size_t n)
{
    size_t h = strlen(json);
    uint8_t len[8];
    for (int i = 0; i < 8; i++) len[i] = (uint8_t)((uint64_t)h >> (8 * i));
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fwrite(len, 1, 8, f);
    fwrite(json, 1, h, f);
    if (n) fwrite(data, 1, n, f);
    fclose(f);
}

/* input 4x4x2 - Conv2D(3, 3x3) "conv" - Flatten - Dense(5) "fc":
 * conv/kernel [3,3,2,3], conv/bias [3], fc/kernel [12,5], fc/bias [5]. */
static nn_model *small_model(uint64_t seed)
{
    nn_model *m = nn_model_create(seed);
    int shape[3] = {4, 4, 2};
    nn_conv2d_opts c = NN_CONV2D_OPTS_INIT;
    c.name = "conv";
    nn_dense_opts d = NN_DENSE_OPTS_INIT;
    d.name = "fc";
    d.bias_init = NN_INIT_ONES;
    nn_layer *x = nn_input(m, 3, shape, NULL);
    x = nn_conv2d(m, x, 3, 3, 3, &c);
    x = nn_flatten(m, x, NULL);
    x = nn_dense(m, x, 5, &d);
    assert_non_null(x);
    return m;
}

typedef struct ent {
    const char *name, *dtype, *shape;
    long begin, end;
} ent;

/* The small model's tensors, back to back: 488 bytes of data. */
static const ent good[4] = {{"conv/kernel", "F32", "[3,3,2,3]", 0, 216},
                            {"conv/bias", "F32", "[3]", 216, 228},
                            {"fc/kernel", "F32", "[12,5]", 228, 468},
                            {"fc/bias", "F32", "[5]", 468, 488}};
#define GOOD_BYTES 488

static void header_of(char *out, size_t cap, const ent *e, int n)
{
    size_t j = (size_t)snprintf(out, cap, "{\"__metadata__\":{\"k\":\"v\"}");
    for (int i = 0; i < n; i++)
        j += (size_t)snprintf(out + j, cap - j,
                              ",\"%s\":{\"dtype\":\"%s\",\"shape\":%s,"
                              "\"data_offsets\":[%ld,%ld]}",
                              e[i].name, e[i].dtype, e[i].shape, e[i].begin,
                              e[i].end);
    snprintf(out + j, cap - j, "}");
}

/* Data whose float i is i / 100 (NaN at index nan_at when >= 0). */
static void file_of(const char *path, const ent *e, int n, size_t bytes,
                    long nan_at)
{
    char json[4096];
    header_of(json, sizeof json, e, n);
    uint8_t *data = calloc(bytes ? bytes : 1, 1);
    for (size_t i = 0; i + 4 <= bytes; i += 4) {
        float v = (long)(i / 4) == nan_at ? NAN : (float)(i / 4) / 100.0f;
        memcpy(data + i, &v, 4);
    }
    write_st(path, json, data, bytes);
    free(data);
}

/* Every weight of m, concatenated, for before/after comparisons. */
static float *snapshot(nn_model *m, size_t *n)
{
    size_t total = (size_t)nn_model_num_params(m), k = 0;
    float *s = malloc(total * sizeof *s);
    for (int i = 0; i < nn_model_num_layers(m); i++) {
        nn_layer *l = nn_model_layer(m, i);
        for (int j = 0; j < nn_layer_num_weights(l); j++) {
            nn_tensor *t = nn_layer_weight(l, j);
            memcpy(s + k, nn_tensor_data(t),
                   (size_t)nn_tensor_size(t) * sizeof(float));
            k += (size_t)nn_tensor_size(t);
        }
    }
    *n = total;
    return s;
}

static void assert_unchanged(nn_model *m, const float *before, size_t n)
{
    size_t k;
    float *now = snapshot(m, &k);
    assert_int_equal(k, n);
    assert_memory_equal(now, before, n * sizeof *now);
    free(now);
}

static const float *weight(nn_model *m, const char *layer, int i)
{
    nn_layer *l = nn_model_find_layer(m, layer);
    assert_non_null(l);
    return nn_tensor_data(nn_layer_weight(l, i));
}

/* ------------------------------------------------------------------ */
/* ResNet50 and its blocks                                             */
/* ------------------------------------------------------------------ */

static nn_model *resnet(int hw, nn_resnet_flavor flavor, int top)
{
    nn_resnet_opts o = NN_RESNET_OPTS_INIT;
    o.flavor = flavor;
    o.include_top = top;
    nn_model *m = nn_resnet50(hw, hw, 3, 1, &o);
    if (!m) fail_msg("nn_resnet50: %s", nn_last_error());
    return m;
}

static void assert_shape(nn_layer *l, int a, int b, int c)
{
    int s[3] = {0, 0, 0};
    assert_int_equal(nn_layer_output_shape(l, s, 3), 3);
    assert_int_equal(s[0], a);
    assert_int_equal(s[1], b);
    assert_int_equal(s[2], c);
}

/* Fields of the stored Conv2D and BatchNormalization configs. */
enum { CONV_SH = 3, CONV_PADDING = 6, BN_MOMENTUM = 0, BN_EPSILON = 1 };

static int stride_h(nn_model *m, const char *conv)
{
    nn_layer *l = nn_model_find_layer(m, conv);
    assert_non_null(l);
    return stored_config_i32(l, CONV_SH);
}

static void test_resnet50_keras_counts(void **state)
{
    nn_model *m = resnet(224, NN_RESNET_KERAS, 0);
    assert_int_equal(nn_model_num_params(m), 23587712);
    assert_int_equal(nn_model_num_trainable_params(m), 23534592);
    assert_int_equal(nn_model_num_layers(m), 175); /* as Keras' model */
    assert_string_equal(nn_model_name(m), "resnet50");
    assert_string_equal(nn_layer_name(nn_model_input(m)), "input_1");
    assert_string_equal(nn_layer_name(nn_model_output(m)),
                        "conv5_block3_out");
    assert_shape(nn_model_output(m), 7, 7, 2048);
    static const char *const names[] = {
        "conv1_pad",  "conv1_conv", "conv1_bn",
        "conv1_relu", "pool1_pad",  "pool1_pool",
        "conv2_block1_0_conv", "conv2_block1_0_bn", "conv2_block1_add",
        "conv4_block6_out"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        assert_non_null(nn_model_find_layer(m, names[i]));
    assert_string_equal(nn_layer_name(nn_model_layer(m, 3)), "conv1_bn");
    assert_shape(nn_model_find_layer(m, "conv1_pad"), 230, 230, 3);
    assert_shape(nn_model_find_layer(m, "pool1_pool"), 56, 56, 64);
    nn_layer *bn = nn_model_find_layer(m, "conv3_block2_1_bn");
    assert_float_equal(stored_config_f32(bn, BN_EPSILON), 1.001e-5f, 1e-12);
    assert_float_equal(stored_config_f32(bn, BN_MOMENTUM), 0.99f, 1e-7);
    /* v1: the stride sits on the first 1x1 conv of a block */
    assert_int_equal(stride_h(m, "conv3_block1_1_conv"), 2);
    assert_int_equal(stride_h(m, "conv3_block1_2_conv"), 1);
    assert_int_equal(nn_layer_num_weights(
                         nn_model_find_layer(m, "conv1_conv")), 2);
    nn_model_free(m);

    m = resnet(224, NN_RESNET_KERAS, 1);
    assert_int_equal(nn_model_num_params(m), 25636712);
    assert_string_equal(nn_layer_name(nn_model_output(m)), "predictions");
    assert_int_equal(nn_model_output(m)->activation, NN_ACT_SOFTMAX);
    assert_string_equal(nn_layer_type(nn_model_find_layer(m, "avg_pool")),
                        "GlobalAveragePooling2D");
    nn_model_free(m);
}

static void test_resnet50_torchvision_counts(void **state)
{
    nn_model *m = resnet(224, NN_RESNET_TORCHVISION, 1);
    /* torchvision's 25,557,032 plus the BN running statistics */
    assert_int_equal(nn_model_num_trainable_params(m), 25557032);
    assert_int_equal(nn_model_num_params(m), 25557032 + 53120);
    assert_int_equal(nn_layer_num_weights(
                         nn_model_find_layer(m, "conv1_conv")), 1);
    /* v1.5: the stride on the 3x3 conv, after a symmetric padding */
    nn_layer *pad = nn_model_find_layer(m, "conv3_block1_2_pad");
    assert_non_null(pad);
    assert_shape(pad, 58, 58, 128);
    assert_int_equal(stride_h(m, "conv3_block1_1_conv"), 1);
    nn_layer *c = nn_model_find_layer(m, "conv3_block1_2_conv");
    assert_int_equal(stride_h(m, "conv3_block1_2_conv"), 2);
    assert_int_equal(stored_config_i32(c, CONV_PADDING), NN_PADDING_VALID);
    assert_shape(c, 28, 28, 128);
    assert_null(nn_model_find_layer(m, "conv2_block1_2_pad")); /* stride 1 */
    nn_layer *bn = nn_model_find_layer(m, "conv1_bn");
    assert_float_equal(stored_config_f32(bn, BN_EPSILON), 1e-5f, 1e-12);
    assert_float_equal(stored_config_f32(bn, BN_MOMENTUM), 0.9f, 1e-7);
    nn_model_free(m);
}

static void test_resnet50_small_input_and_errors(void **state)
{
    nn_model *m = resnet(32, NN_RESNET_KERAS, 0);
    assert_shape(nn_model_output(m), 1, 1, 2048);
    assert_shape(nn_model_find_layer(m, "conv1_conv"), 16, 16, 64);
    assert_int_equal(nn_model_num_params(m), 23587712);
    nn_model_free(m);

    nn_resnet_opts o = NN_RESNET_OPTS_INIT;
    assert_null(nn_resnet50(31, 32, 3, 1, &o));
    assert_int_equal(nn_last_status(), NN_ERR_INVALID);
    assert_null(nn_resnet50(32, 32, 0, 1, &o));
    o.flavor = (nn_resnet_flavor)7;
    assert_null(nn_resnet50(32, 32, 3, 1, &o));
    assert_non_null(strstr(nn_last_error(), "flavour"));
    o = (nn_resnet_opts)NN_RESNET_OPTS_INIT;
    o.classes = 0;
    assert_null(nn_resnet50(32, 32, 3, 1, &o));
    o.size = 0;
    assert_null(nn_resnet50(32, 32, 3, 1, &o));
    /* a short (older) options struct: the rest keeps its defaults */
    o = (nn_resnet_opts)NN_RESNET_OPTS_INIT;
    o.size = offsetof(nn_resnet_opts, include_top);
    o.name = "short";
    o.flavor = NN_RESNET_TORCHVISION;
    m = nn_resnet50(32, 32, 3, 1, &o);
    assert_non_null(m);
    assert_string_equal(nn_model_name(m), "short");
    assert_string_equal(nn_layer_name(nn_model_output(m)), "predictions");
    nn_model_free(m);
    /* logits on request */
    o = (nn_resnet_opts)NN_RESNET_OPTS_INIT;
    o.classifier_activation = NN_ACT_NONE;
    o.classes = 7;
    m = nn_resnet50(32, 32, 3, 1, &o);
    assert_int_equal(nn_model_output(m)->activation, NN_ACT_NONE);
    assert_int_equal(nn_model_output(m)->out.d[0], 7);
    nn_model_free(m);
}

static void test_resnet_blocks(void **state)
{
    nn_model *m = nn_model_create(3);
    int shape[3] = {8, 8, 16};
    nn_layer *in = nn_input(m, 3, shape, NULL);
    /* identity block: the channels must match f3 */
    assert_null(nn_resnet_identity_block(m, in, 3, 4, 4, 8, NN_RESNET_KERAS,
                                         "bad"));
    assert_int_equal(nn_last_status(), NN_ERR_SHAPE);
    assert_non_null(strstr(nn_last_error(), "16 channels"));
    nn_layer *x = nn_resnet_identity_block(m, in, 3, 4, 4, 16,
                                           NN_RESNET_KERAS, "id");
    assert_non_null(x);
    assert_string_equal(nn_layer_name(x), "id_out");
    assert_shape(x, 8, 8, 16);
    nn_layer *add = nn_model_find_layer(m, "id_add");
    assert_ptr_equal(nn_layer_input(add, 0), in); /* shortcut = x itself */
    /* conv block, both flavours: 8x8 -> 4x4 */
    nn_layer *k = nn_resnet_conv_block(m, x, 3, 4, 4, 32, 2, NN_RESNET_KERAS,
                                       "kb");
    assert_shape(k, 4, 4, 32);
    nn_layer *t = nn_resnet_conv_block(m, x, 3, 4, 4, 32, 2,
                                       NN_RESNET_TORCHVISION, "tb");
    assert_shape(t, 4, 4, 32);
    assert_non_null(nn_model_find_layer(m, "tb_2_pad"));
    assert_ptr_equal(nn_layer_input(nn_model_find_layer(m, "kb_add"), 0),
                     nn_model_find_layer(m, "kb_0_bn"));
    /* the first failure's message survives the rest of the block */
    assert_null(nn_resnet_conv_block(m, x, 3, 4, 4, 32, 2, NN_RESNET_KERAS,
                                     "kb"));
    assert_non_null(strstr(nn_last_error(), "kb_0_conv"));
    assert_null(nn_resnet_conv_block(m, x, 3, 4, 4, 32, 0, NN_RESNET_KERAS,
                                     "z"));
    assert_int_equal(nn_last_status(), NN_ERR_INVALID);
    assert_null(nn_resnet_identity_block(m, x, 3, 4, 4, 16, NN_RESNET_KERAS,
                                         NULL));
    assert_null(nn_resnet_identity_block(NULL, x, 3, 4, 4, 16,
                                         NN_RESNET_KERAS, "n"));
    char longp[NN_NAME_MAX];
    memset(longp, 'p', sizeof longp - 1);
    longp[sizeof longp - 1] = '\0';
    assert_null(nn_resnet_identity_block(m, x, 3, 4, 4, 16, NN_RESNET_KERAS,
                                         longp));
    assert_non_null(strstr(nn_last_error(), "prefix"));
    assert_null(nn_resnet_identity_block(m, x, 3, 4, 4, 16,
                                         (nn_resnet_flavor)5, "f"));
    nn_model_free(m);
}

/* The allocator failing at every step of a block, and at a few steps of a
 * whole ResNet50: NULL, NN_ERR_NOMEM, no leak (ASan checks that). */
static void test_resnet_alloc_failures(void **state)
{
    int k;
    for (k = 1; k < 500; k++) {
        nn_model *m = nn_model_create(1);
        int shape[3] = {8, 8, 16};
        nn_layer *in = nn_input(m, 3, shape, NULL);
        assert_non_null(in);
        nn__debug_fail_alloc_after(k);
        nn_layer *x = nn_resnet_conv_block(m, in, 3, 4, 4, 32, 2,
                                           NN_RESNET_TORCHVISION, "b");
        nn__debug_fail_alloc_after(0);
        nn_model_free(m);
        if (x) break;
        assert_int_equal(nn_last_status(), NN_ERR_NOMEM);
    }
    assert_true(k > 1 && k < 500);
    static const int at[] = {1, 2, 3, 7, 100, 400};
    nn_resnet_opts o = NN_RESNET_OPTS_INIT;
    for (size_t i = 0; i < sizeof at / sizeof at[0]; i++) {
        nn__debug_fail_alloc_after(at[i]);
        nn_model *m = nn_resnet50(32, 32, 3, 1, &o);
        nn__debug_fail_alloc_after(0);
        assert_null(m);
        assert_int_equal(nn_last_status(), NN_ERR_NOMEM);
    }
}

/* ------------------------------------------------------------------ */
/* Q3d and Q3e                                                         */
/* ------------------------------------------------------------------ */

/* conv (64, 3x3, relu) - maxpool 2 - flatten - dropout 0.5 - dense 10 */
static nn_layer *head(nn_model *m, nn_layer *x)
{
    nn_conv2d_opts c = NN_CONV2D_OPTS_INIT;
    c.activation = NN_ACT_RELU;
    nn_dense_opts d = NN_DENSE_OPTS_INIT;
    d.activation = NN_ACT_SOFTMAX;
    x = nn_conv2d(m, x, 64, 3, 3, &c);
    x = nn_maxpool2d(m, x, 2, 2, NULL);
    x = nn_flatten(m, x, NULL);
    x = nn_dropout(m, x, 0.5f, NULL);
    return nn_dense(m, x, 10, &d);
}

static nn_layer *augment(nn_model *m, nn_layer *x)
{
    x = nn_random_flip(m, x, NN_FLIP_HORIZONTAL_AND_VERTICAL, NULL);
    return nn_random_rotation(m, x, -0.2f, 0.2f, NULL);
}

static char *summary_of(const nn_model *m)
{
    size_t need = 0;
    assert_ok(nn_model_summary(m, NULL, 0, &need));
    char *buf = malloc(need);
    assert_ok(nn_model_summary(m, buf, need, NULL));
    return buf;
}

static void test_q3d_transfer_model(void **state)
{
    nn_model *base = resnet(224, NN_RESNET_KERAS, 0);
    assert_ok(nn_model_set_trainable(base, 0));
    nn_model *m = nn_model_create(5);
    int shape[3] = {32, 32, 3};
    nn_layer *x = nn_input(m, 3, shape, NULL);
    x = nn_resizing(m, x, 224, 224, NULL);
    x = augment(m, x);
    x = nn_model_apply(m, x, base, NULL, NULL);
    assert_non_null(x);
    assert_shape(x, 7, 7, 2048);
    nn_layer *c = nn_conv2d(m, x, 64, 3, 3, NULL);
    assert_shape(c, 5, 5, 64);
    assert_int_equal(nn_layer_num_params(c), 1179712);
    nn_model_free(m);

    m = nn_model_create(5);
    x = nn_input(m, 3, shape, NULL);
    x = nn_resizing(m, x, 224, 224, NULL);
    x = augment(m, x);
    x = nn_model_apply(m, x, base, NULL, NULL);
    x = head(m, x);
    assert_non_null(x);
    assert_int_equal(nn_model_num_params(m), 24769994);
    assert_int_equal(nn_model_num_trainable_params(m), 1182282);
    assert_int_equal(nn_model_num_params(m) -
                         nn_model_num_trainable_params(m), 23587712);
    char *s = summary_of(m);
    assert_non_null(strstr(s, "resnet50"));
    assert_non_null(strstr(s, "23,587,712"));
    assert_non_null(strstr(s, "Total params: 24,769,994"));
    assert_non_null(strstr(s, "Trainable params: 1,182,282"));
    assert_non_null(strstr(s, "Non-trainable params: 23,587,712"));
    free(s);
    nn_model_free(m);
    nn_model_free(base);
}

static nn_model *q3e_model(nn_model *base)
{
    nn_model *m = nn_model_create(6);
    int shape[3] = {32, 32, 3};
    nn_layer *x = nn_input(m, 3, shape, NULL);
    x = augment(m, x);
    x = nn_model_apply(m, x, base, nn_model_find_layer(base, "conv1_bn"),
                       NULL);
    assert_non_null(x);
    assert_shape(x, 16, 16, 64);
    x = head(m, x);
    assert_non_null(x);
    return m;
}

static void test_q3e_truncated_backbone(void **state)
{
    nn_model *base = resnet(32, NN_RESNET_KERAS, 0);
    assert_ok(nn_model_set_trainable(base, 0));
    nn_model *m = q3e_model(base);
    assert_int_equal(nn_model_num_params(m), 78026);
    assert_int_equal(nn_model_num_trainable_params(m), 68298);
    assert_int_equal(nn_model_num_params(m) -
                         nn_model_num_trainable_params(m), 9728);
    /* shared: the outer conv1_conv reads the backbone's kernel */
    nn_layer *oc = NULL;
    for (int i = 0; i < nn_model_num_layers(m); i++)
        if (strstr(nn_layer_name(nn_model_layer(m, i)), "conv1_conv"))
            oc = nn_model_layer(m, i);
    assert_non_null(oc);
    const float *k = weight(base, "conv1_conv", 0);
    assert_ptr_equal(nn_tensor_data(nn_layer_weight(oc, 0)), k);

    /* a training step changes the head, never the frozen backbone */
    size_t nb;
    float *before = snapshot(base, &nb);
    int64_t xs[4] = {4, 32, 32, 3}, ys[2] = {4, 10};
    nn_tensor *xt = nn_tensor_create(4, xs), *yt = nn_tensor_create(2, ys);
    for (int64_t i = 0; i < nn_tensor_size(xt); i++)
        nn_tensor_data(xt)[i] = (float)(lcg() % 1000) / 1000.0f;
    for (int i = 0; i < 4; i++) nn_tensor_data(yt)[i * 10 + i] = 1.0f;
    assert_ok(nn_model_compile(m, nn_adam(NULL),
                               NN_LOSS_CATEGORICAL_CROSSENTROPY, NULL));
    nn_tensor *dense_k = nn_layer_weight(nn_model_output(m), 0);
    size_t dn = (size_t)nn_tensor_size(dense_k) * sizeof(float);
    float *d0 = malloc(dn);
    memcpy(d0, nn_tensor_data(dense_k), dn);
    float loss = 0;
    assert_ok(nn_model_train_batch(m, xt, yt, &loss, NULL));
    assert_true(isfinite(loss));
    assert_true(memcmp(d0, nn_tensor_data(dense_k), dn) != 0);
    free(d0);
    assert_unchanged(base, before, nb);
    free(before);
    nn_tensor_free(xt);
    nn_tensor_free(yt);
    nn_model_free(m);
    nn_model_free(base);
}

/* ------------------------------------------------------------------ */
/* safetensors: round trip and a valid hand-made file                  */
/* ------------------------------------------------------------------ */

static void test_st_round_trip(void **state)
{
    nn_model *a = small_model(1), *b = small_model(2);
    assert_ok(nn_model_save_safetensors(a, tpath("rt.safetensors")));
    size_t n;
    uint8_t *f = read_bytes(tpath("rt.safetensors"), &n);
    uint64_t h = 0;
    for (int i = 0; i < 8; i++) h |= (uint64_t)f[i] << (8 * i);
    assert_int_equal(h % 8, 0); /* data 8-byte aligned */
    assert_int_equal(n, 8 + h + GOOD_BYTES);
    assert_int_equal(f[8], '{');
    free(f);
    assert_true(memcmp(weight(a, "conv", 0), weight(b, "conv", 0), 16) != 0);
    assert_ok(nn_model_load_safetensors(b, tpath("rt.safetensors"),
                                        NN_WEIGHTS_LIBNN));
    size_t na, nb;
    float *sa = snapshot(a, &na);
    assert_unchanged(b, sa, na);
    free(sa);
    (void)nb;
    /* save replaces atomically and leaves no temporary behind */
    assert_ok(nn_model_save_safetensors(b, tpath("rt.safetensors")));
    DIR *d = opendir(tmpdir);
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        assert_null(strstr(e->d_name, ".tmp."));
    closedir(d);
    assert_error(nn_model_save_safetensors(a, "/nonexistent-dir/x.st"),
                 NN_ERR_IO, "/nonexistent-dir/x.st");
    assert_error(nn_model_save_safetensors(NULL, "x"), NN_ERR_INVALID, NULL);
    assert_error(nn_model_save_safetensors(a, ""), NN_ERR_INVALID, NULL);
    nn_model_free(a);
    nn_model_free(b);
}

static void test_st_hand_made(void **state)
{
    nn_model *m = small_model(1);
    file_of(tpath("good.st"), good, 4, GOOD_BYTES, -1);
    assert_ok(nn_model_load_safetensors(m, tpath("good.st"), NN_WEIGHTS_LIBNN));
    assert_float_equal(weight(m, "conv", 0)[5], 0.05f, 0);
    assert_float_equal(weight(m, "conv", 1)[0], 0.54f, 0);
    assert_float_equal(weight(m, "fc", 0)[59], 1.16f, 0);
    assert_float_equal(weight(m, "fc", 1)[4], 1.21f, 0);
    /* order in the header does not matter, only the offsets */
    ent shuffled[4] = {good[3], good[1], good[0], good[2]};
    file_of(tpath("shuf.st"), shuffled, 4, GOOD_BYTES, -1);
    assert_ok(nn_model_load_safetensors(m, tpath("shuf.st"), NN_WEIGHTS_LIBNN));
    /* escapes decode: "\u0063onv/kernel" is "conv/kernel" */
    ent esc[4] = {good[0], good[1], good[2], good[3]};
    esc[0].name = "\\u0063onv\\/kernel";
    file_of(tpath("esc.st"), esc, 4, GOOD_BYTES, -1);
    assert_ok(nn_model_load_safetensors(m, tpath("esc.st"), NN_WEIGHTS_LIBNN));
    nn_model_free(m);
}

/* ------------------------------------------------------------------ */
/* safetensors: every error names the tensor, the model stays intact   */
/* ------------------------------------------------------------------ */

typedef struct bad_case {
    const char *what;
    ent e[5];
    int n;
    size_t bytes;
    nn_status want;
    const char *sub1, *sub2;
} bad_case;

static const bad_case bad_cases[] = {
    {"missing", {good[0], good[1], good[2]}, 3, 468, NN_ERR_FORMAT,
     "'fc/bias'", "missing"},
    {"extra",
     {good[0], good[1], good[2], good[3], {"extra/w", "F32", "[2]", 488, 496}},
     5, 496, NN_ERR_FORMAT, "'extra/w'", "extra"},
    {"shape",
     {{"conv/kernel", "F32", "[3,3,3,2]", 0, 216}, good[1], good[2], good[3]},
     4, GOOD_BYTES, NN_ERR_SHAPE, "'conv/kernel'", "[3, 3, 2, 3]"},
    {"rank",
     {good[0], good[1], {"fc/kernel", "F32", "[60]", 228, 468}, good[3]},
     4, GOOD_BYTES, NN_ERR_SHAPE, "'fc/kernel'", "[60]"},
    {"F16",
     {good[0], good[1], good[2], {"fc/bias", "F16", "[5]", 468, 478}},
     4, 478, NN_ERR_UNSUPPORTED, "'fc/bias'", "F16"},
    {"BF16",
     {good[0], good[1], good[2], {"fc/bias", "BF16", "[5]", 468, 478}},
     4, 478, NN_ERR_UNSUPPORTED, "'fc/bias'", "BF16"},
    {"F64",
     {good[0], good[1], good[2], {"fc/bias", "F64", "[5]", 468, 508}},
     4, 508, NN_ERR_UNSUPPORTED, "'fc/bias'", "F64"},
    {"unknown dtype",
     {good[0], good[1], good[2], {"fc/bias", "F33", "[5]", 468, 488}},
     4, GOOD_BYTES, NN_ERR_FORMAT, "'fc/bias'", "unknown dtype 'F33'"},
    {"size vs shape",
     {good[0], good[1], good[2], {"fc/bias", "F32", "[4]", 468, 488}},
     4, GOOD_BYTES, NN_ERR_FORMAT, "'fc/bias'", "need 16"},
    {"truncated", {good[0], good[1], good[2], good[3]}, 4, 484,
     NN_ERR_FORMAT, "'fc/bias'", "truncated"},
    {"out of range",
     {good[0], good[1], good[2], {"fc/bias", "F32", "[5]", 4000, 4020}},
     4, GOOD_BYTES, NN_ERR_FORMAT, "'fc/bias'", "past the data"},
    {"backwards",
     {good[0], good[1], good[2], {"fc/bias", "F32", "[5]", 488, 468}},
     4, GOOD_BYTES, NN_ERR_FORMAT, "'fc/bias'", "backwards"},
    {"overlap",
     {good[0], {"conv/bias", "F32", "[3]", 204, 216},
      {"fc/kernel", "F32", "[12,5]", 216, 456},
      {"fc/bias", "F32", "[5]", 456, 476}},
     4, 476, NN_ERR_FORMAT, "'conv/bias'", "overlaps tensor 'conv/kernel'"},
    {"gap",
     {good[0], {"conv/bias", "F32", "[3]", 220, 232},
      {"fc/kernel", "F32", "[12,5]", 232, 472},
      {"fc/bias", "F32", "[5]", 472, 492}},
     4, 492, NN_ERR_FORMAT, "'conv/bias'", "gap of 4"},
    {"trailing", {good[0], good[1], good[2], good[3]}, 4, 496,
     NN_ERR_FORMAT, "'fc/bias'", "8 unused bytes"},
    {"duplicate",
     {good[0], good[1], good[2], good[3],
      {"conv/bias", "F32", "[3]", 488, 500}},
     5, 500, NN_ERR_FORMAT, "'conv/bias'", "twice"},
    {"too many dims",
     {good[0], good[1], good[2],
      {"fc/bias", "F32", "[1,1,1,1,1,1,1,1,5]", 468, 488}},
     4, GOOD_BYTES, NN_ERR_FORMAT, "'fc/bias'", "more than 8"},
    {"huge dims",
     {good[0], good[1], good[2],
      {"fc/bias", "F32", "[1099511627776,1099511627776]", 468, 488}},
     4, GOOD_BYTES, NN_ERR_FORMAT, "'fc/bias'", "too large"},
    {"negative",
     {good[0], good[1], good[2], {"fc/bias", "F32", "[-5]", 468, 488}},
     4, GOOD_BYTES, NN_ERR_FORMAT, "'fc/bias'", "non-negative integer"},
    {"fraction",
     {good[0], good[1], good[2], {"fc/bias", "F32", "[5.0]", 468, 488}},
     4, GOOD_BYTES, NN_ERR_FORMAT, "'fc/bias'", "integer"},
    {"leading zero",
     {good[0], good[1], good[2], {"fc/bias", "F32", "[05]", 468, 488}},
     4, GOOD_BYTES, NN_ERR_FORMAT, "'fc/bias'", "leading zero"},
    {"shape not array",
     {good[0], good[1], good[2], {"fc/bias", "F32", "5", 468, 488}},
     4, GOOD_BYTES, NN_ERR_FORMAT, "'fc/bias'", "expected '['"},
};

static void test_st_errors_name_the_tensor(void **state)
{
    nn_model *m = small_model(1);
    size_t n;
    float *before = snapshot(m, &n);
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        const bad_case *c = &bad_cases[i];
        file_of(tpath("bad.st"), c->e, c->n, c->bytes, -1);
        nn_status s = nn_model_load_safetensors(m, tpath("bad.st"),
                                                NN_WEIGHTS_LIBNN);
        if (s != c->want || !strstr(nn_last_error(), c->sub1) ||
            !strstr(nn_last_error(), c->sub2))
            fail_msg("case '%s': %s: %s", c->what, nn_status_name(s),
                     nn_last_error());
        assert_non_null(strstr(nn_last_error(), "bad.st")); /* the file */
        assert_unchanged(m, before, n);
    }
    /* a non-finite value, found before anything is written */
    file_of(tpath("nan.st"), good, 4, GOOD_BYTES, 120);
    assert_error(nn_model_load_safetensors(m, tpath("nan.st"),
                                           NN_WEIGHTS_LIBNN),
                 NN_ERR_NUMERIC, "'fc/bias'");
    assert_unchanged(m, before, n);
    free(before);
    nn_model_free(m);
}

/* Malformed JSON: the message names the entry it is in or after. */
static void test_st_bad_json(void **state)
{
    static const struct {
        const char *json, *sub;
    } cases[] = {
        {"{\"conv/kernel\":{\"dtype\":\"F32\" \"shape\":[1]}}",
         "'conv/kernel'"},
        {"{\"conv/kernel\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":"
         "[0,4]},}", "after its entry"},
        {"{\"conv/kernel\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":"
         "[0,4]}", "expected '}'"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],"
         "\"extra\":1}}", "unknown field 'extra'"},
        {"{\"w\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[1],"
         "\"data_offsets\":[0,4]}}", "given twice"},
        {"{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}",
         "field 'shape' is missing"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}",
         "expected ','"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}",
         "expected ']'"},
        {"{\"w\":[1]}", "in its entry"},
        {"{\"w\":{\"dtype\":F32}}", "'w'"},
        {"{\"w\\ud800x\":{}}", "surrogate"},
        {"{\"w\\u0000\":{}}", "\\u0000"},
        {"{\"w\\q\":{}}", "bad escape"},
        {"{\"w\x01\":{}}", "control byte"},
        {"{\"w", "unterminated"},
        {"[]", "expected '{'"},
        {"{} x", "bytes after the header"},
        {"{\"__metadata__\":{\"a\":1}}", "expected '\"'"},
        {"{\"__metadata__\":{},\"__metadata__\":{}}", "given twice"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":"
         "[0,99999999999999999999]}}", "larger than 2^53"},
    };
    nn_model *m = small_model(1);
    uint8_t data[16] = {0};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_st(tpath("json.st"), cases[i].json, data, sizeof data);
        nn_status s = nn_model_load_safetensors(m, tpath("json.st"),
                                                NN_WEIGHTS_LIBNN);
        if (s != NN_ERR_FORMAT || !strstr(nn_last_error(), cases[i].sub))
            fail_msg("json case %zu: %s: %s", i, nn_status_name(s),
                     nn_last_error());
    }
    /* a long name is refused, not overflowed */
    char json[1024];
    memset(json, 0, sizeof json);
    strcpy(json, "{\"");
    memset(json + 2, 'n', 400);
    strcat(json, "\":{}}");
    write_st(tpath("json.st"), json, data, sizeof data);
    assert_error(nn_model_load_safetensors(m, tpath("json.st"),
                                           NN_WEIGHTS_LIBNN),
                 NN_ERR_FORMAT, "longer than 256");
    nn_model_free(m);
}

static void test_st_envelope(void **state)
{
    nn_model *m = small_model(1);
    const char *p = tpath("env.st");
    assert_error(nn_model_load_safetensors(m, tpath("none.st"),
                                           NN_WEIGHTS_LIBNN),
                 NN_ERR_IO, "none.st");
    assert_error(nn_model_load_safetensors(m, tmpdir, NN_WEIGHTS_LIBNN),
                 NN_ERR_IO, "not a regular file");
    write_bytes(p, "", 0);
    assert_error(nn_model_load_safetensors(m, p, NN_WEIGHTS_LIBNN),
                 NN_ERR_FORMAT, "too short");
    write_bytes(p, "\x02\0\0\0", 4);
    assert_error(nn_model_load_safetensors(m, p, NN_WEIGHTS_LIBNN),
                 NN_ERR_FORMAT, "too short");
    uint8_t buf[16] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
                       '{', '}'};
    write_bytes(p, buf, 10);
    assert_error(nn_model_load_safetensors(m, p, NN_WEIGHTS_LIBNN),
                 NN_ERR_FORMAT, "does not fit the file");
    buf[0] = 0;
    memset(buf + 1, 0, 7);
    write_bytes(p, buf, 10);
    assert_error(nn_model_load_safetensors(m, p, NN_WEIGHTS_LIBNN),
                 NN_ERR_FORMAT, "header length 0");
    /* an empty header with data: bytes that no tensor claims */
    buf[0] = 2;
    write_bytes(p, buf, 14);
    assert_error(nn_model_load_safetensors(m, p, NN_WEIGHTS_LIBNN),
                 NN_ERR_FORMAT, "4 data bytes but no tensor");
    /* an empty file of tensors: every weight is missing */
    write_bytes(p, buf, 10);
    assert_error(nn_model_load_safetensors(m, p, NN_WEIGHTS_LIBNN),
                 NN_ERR_FORMAT, "'conv/kernel': missing");
    assert_error(nn_model_load_safetensors(NULL, p, NN_WEIGHTS_LIBNN),
                 NN_ERR_INVALID, NULL);
    assert_error(nn_model_load_safetensors(m, NULL, NN_WEIGHTS_LIBNN),
                 NN_ERR_INVALID, NULL);
    assert_error(nn_model_load_safetensors(m, p, (nn_weight_map)9),
                 NN_ERR_INVALID, NULL);
    nn_model_free(m);
}

/* Every truncation and thousands of random corruptions of a valid file:
 * an error or a load, never a crash (run under ASan by `make asan`). */
static void test_st_hostile_fuzz(void **state)
{
    nn_model *m = small_model(1);
    assert_ok(nn_model_save_safetensors(m, tpath("fz.st")));
    size_t n;
    uint8_t *orig = read_bytes(tpath("fz.st"), &n);
    uint8_t *b = malloc(n);
    for (size_t cut = 0; cut < n; cut++) {
        write_bytes(tpath("cut.st"), orig, cut);
        assert_int_not_equal(nn_model_load_safetensors(m, tpath("cut.st"),
                                                       NN_WEIGHTS_LIBNN),
                             NN_OK);
    }
    uint64_t h = 0;
    for (int i = 0; i < 8; i++) h |= (uint64_t)orig[i] << (8 * i);
    static const char junk[] = "{}[]\":,0123456789-.eE\\u \x01\xff";
    int ok = 0;
    for (int iter = 0; iter < 3000; iter++) {
        memcpy(b, orig, n);
        int edits = 1 + (int)(lcg() % 4);
        for (int e = 0; e < edits; e++) {
            size_t at = lcg() % (8 + h); /* the envelope and the header */
            b[at] = lcg() % 2 ? (uint8_t)junk[lcg() % (sizeof junk - 1)]
                              : (uint8_t)lcg();
        }
        write_bytes(tpath("fz2.st"), b, n);
        if (nn_model_load_safetensors(m, tpath("fz2.st"), NN_WEIGHTS_LIBNN) ==
            NN_OK)
            ok++;
        else
            assert_true(strlen(nn_last_error()) > 0);
    }
    assert_true(ok < 3000);
    free(b);
    free(orig);
    nn_model_free(m);
}

static void test_st_alloc_failures(void **state)
{
    nn_model *a = small_model(1), *b = small_model(2);
    assert_ok(nn_model_save_safetensors(a, tpath("al.st")));
    size_t n;
    float *before = snapshot(b, &n);
    int k;
    for (k = 1; k < 100; k++) {
        nn__debug_fail_alloc_after(k);
        nn_status s = nn_model_load_safetensors(b, tpath("al.st"),
                                                NN_WEIGHTS_LIBNN);
        nn__debug_fail_alloc_after(0);
        if (s == NN_OK) break;
        assert_int_equal(s, NN_ERR_NOMEM);
        assert_unchanged(b, before, n);
    }
    assert_true(k > 1 && k < 100);
    for (k = 1; k < 100; k++) {
        nn__debug_fail_alloc_after(k);
        nn_status s = nn_model_save_safetensors(a, tpath("al2.st"));
        nn__debug_fail_alloc_after(0);
        if (s == NN_OK) break;
        assert_int_equal(s, NN_ERR_NOMEM);
    }
    assert_true(k > 1 && k < 100);
    free(before);
    nn_model_free(a);
    nn_model_free(b);
}

/* ------------------------------------------------------------------ */
/* torchvision names and layouts                                       */
/* ------------------------------------------------------------------ */

/* The key `fn` gives a parameter of a layer of that kind and name: want,
 * in want_layout, or none when want is NULL. */
static void expect_key_of(nn_torch_key_fn fn, nn_layer_kind kind,
                          const char *layer, const char *param,
                          const char *want, nn_torch_layout want_layout)
{
    nn_layer l;
    nn_param p;
    memset(&l, 0, sizeof l);
    memset(&p, 0, sizeof p);
    l.kind = kind;
    snprintf(l.name, sizeof l.name, "%s", layer);
    snprintf(p.name, sizeof p.name, "%s", param);
    char key[128];
    nn_torch_layout layout = NN_TORCH_SAME;
    bool ok = fn(&l, &p, key, sizeof key, &layout);
    if (!want) {
        if (ok) fail_msg("%s/%s mapped to '%s'", layer, param, key);
        return;
    }
    if (!ok) fail_msg("%s/%s has no key", layer, param);
    assert_string_equal(key, want);
    assert_int_equal(layout, want_layout);
}

static void expect_key(nn_layer_kind kind, const char *layer,
                       const char *param, const char *want,
                       nn_torch_layout want_layout)
{
    expect_key_of(nn__resnet_torch_key, kind, layer, param, want,
                  want_layout);
}

static void test_torchvision_key_map(void **state)
{
    const nn_layer_kind C = NN_KIND_CONV2D, B = NN_KIND_BATCHNORM,
                        D = NN_KIND_DENSE;
    expect_key(C, "conv1_conv", "kernel", "conv1.weight", NN_TORCH_CONV);
    expect_key(C, "conv1_conv", "bias", "conv1.bias", NN_TORCH_SAME);
    expect_key(B, "conv1_bn", "gamma", "bn1.weight", NN_TORCH_SAME);
    expect_key(B, "conv1_bn", "beta", "bn1.bias", NN_TORCH_SAME);
    expect_key(B, "conv1_bn", "moving_mean", "bn1.running_mean",
               NN_TORCH_SAME);
    expect_key(B, "conv1_bn", "moving_variance", "bn1.running_var",
               NN_TORCH_SAME);
    expect_key(C, "conv2_block1_1_conv", "kernel", "layer1.0.conv1.weight",
               NN_TORCH_CONV);
    expect_key(C, "conv2_block1_0_conv", "kernel",
               "layer1.0.downsample.0.weight", NN_TORCH_CONV);
    expect_key(B, "conv3_block1_0_bn", "moving_mean",
               "layer2.0.downsample.1.running_mean", NN_TORCH_SAME);
    expect_key(B, "conv4_block6_3_bn", "gamma", "layer3.5.bn3.weight",
               NN_TORCH_SAME);
    expect_key(C, "conv5_block3_2_conv", "kernel", "layer4.2.conv2.weight",
               NN_TORCH_CONV);
    expect_key(D, "predictions", "kernel", "fc.weight", NN_TORCH_LINEAR);
    expect_key(D, "predictions", "bias", "fc.bias", NN_TORCH_SAME);
    expect_key(C, "conv6_block1_1_conv", "kernel", NULL, 0);
    expect_key(C, "conv1_block1_1_conv", "kernel", NULL, 0);
    expect_key(C, "conv2_block0_1_conv", "kernel", NULL, 0);
    expect_key(C, "conv2_block1_4_conv", "kernel", NULL, 0);
    expect_key(C, "conv2_block1_1_convx", "kernel", NULL, 0);
    expect_key(C, "conv2_block1_1_relu", "kernel", NULL, 0);
    expect_key(B, "conv2_block1_1_bn", "kernel", NULL, 0);
    expect_key(C, "dense", "kernel", NULL, 0);
}

/* A miniature "ResNet": conv1_conv (4 filters 3x3, no bias) and
 * predictions (Dense 2), fed torch-layout tensors with known values. */
static nn_model *mini_torch_model(int conv_bias)
{
    nn_model *m = nn_model_create(1);
    int shape[3] = {5, 5, 3};
    nn_conv2d_opts c = NN_CONV2D_OPTS_INIT;
    c.name = "conv1_conv";
    c.use_bias = conv_bias;
    nn_dense_opts d = NN_DENSE_OPTS_INIT;
    d.name = "predictions";
    nn_layer *x = nn_input(m, 3, shape, NULL);
    x = nn_conv2d(m, x, 4, 3, 3, &c);
    x = nn_flatten(m, x, NULL);
    x = nn_dense(m, x, 2, &d);
    assert_non_null(x);
    return m;
}

static void test_torchvision_layouts(void **state)
{
    /* conv1.weight [4,3,3,3] = 108 floats, fc.weight [2,36] = 72 floats,
     * fc.bias [2]; values = position in the tensor, and torch's int64
     * BatchNorm counter, which is skipped. */
    const char *json =
        "{\"conv1.weight\":{\"dtype\":\"F32\",\"shape\":[4,3,3,3],"
        "\"data_offsets\":[0,432]},"
        "\"bn1.num_batches_tracked\":{\"dtype\":\"I64\",\"shape\":[],"
        "\"data_offsets\":[432,440]},"
        "\"fc.weight\":{\"dtype\":\"F32\",\"shape\":[2,36],"
        "\"data_offsets\":[440,728]},"
        "\"fc.bias\":{\"dtype\":\"F32\",\"shape\":[2],"
        "\"data_offsets\":[728,736]}}";
    uint8_t data[736];
    for (int i = 0; i < 108; i++) {
        float v = (float)i;
        memcpy(data + 4 * i, &v, 4);
    }
    memset(data + 432, 7, 8);
    for (int i = 0; i < 74; i++) {
        float v = 1000.0f + (float)i;
        memcpy(data + 440 + 4 * i, &v, 4);
    }
    write_st(tpath("tv.st"), json, data, sizeof data);
    nn_model *m = mini_torch_model(0);
    assert_ok(nn_model_load_safetensors(m, tpath("tv.st"),
                                        NN_WEIGHTS_TORCHVISION_RESNET));
    const float *k = weight(m, "conv1_conv", 0); /* [kh, kw, in, out] */
    for (int y = 0; y < 3; y++)
        for (int x = 0; x < 3; x++)
            for (int i = 0; i < 3; i++)
                for (int o = 0; o < 4; o++)
                    assert_float_equal(k[((y * 3 + x) * 3 + i) * 4 + o],
                                       (float)(((o * 3 + i) * 3 + y) * 3 + x),
                                       0);
    const float *w = weight(m, "predictions", 0); /* [in, out] */
    for (int i = 0; i < 36; i++)
        for (int o = 0; o < 2; o++)
            assert_float_equal(w[i * 2 + o], 1000.0f + (float)(o * 36 + i), 0);
    assert_float_equal(weight(m, "predictions", 1)[1], 1073.0f, 0);
    /* the same file under libnn names: every name is foreign */
    assert_error(nn_model_load_safetensors(m, tpath("tv.st"),
                                           NN_WEIGHTS_LIBNN),
                 NN_ERR_FORMAT, "'conv1_conv/kernel': missing");
    nn_model_free(m);

    /* a Keras-flavour conv (with bias) asks for conv1.bias, with a hint */
    m = mini_torch_model(1);
    assert_error(nn_model_load_safetensors(m, tpath("tv.st"),
                                           NN_WEIGHTS_TORCHVISION_RESNET),
                 NN_ERR_FORMAT, "'conv1.bias': missing");
    assert_non_null(strstr(nn_last_error(), "NN_RESNET_TORCHVISION"));
    nn_model_free(m);

    /* without a top, the file's classifier is skipped (Keras' notop) */
    m = nn_model_create(1);
    int shape[3] = {5, 5, 3};
    nn_conv2d_opts c = NN_CONV2D_OPTS_INIT;
    c.name = "conv1_conv";
    c.use_bias = 0;
    assert_non_null(nn_conv2d(m, nn_input(m, 3, shape, NULL), 4, 3, 3, &c));
    assert_ok(nn_model_load_safetensors(m, tpath("tv.st"),
                                        NN_WEIGHTS_TORCHVISION_RESNET));
    assert_float_equal(weight(m, "conv1_conv", 0)[1], 27.0f, 0);
    nn_model_free(m);

    /* a layer that is not ResNet's cannot take torchvision names */
    nn_model *s = small_model(1);
    assert_error(nn_model_load_safetensors(s, tpath("tv.st"),
                                           NN_WEIGHTS_TORCHVISION_RESNET),
                 NN_ERR_UNSUPPORTED, "'conv'");
    nn_model_free(s);
}

/* ------------------------------------------------------------------ */
/* preprocessing                                                       */
/* ------------------------------------------------------------------ */

static void test_preprocess_input(void **state)
{
    int64_t shape[4] = {1, 1, 2, 3};
    float px[6] = {10, 20, 30, 255, 0, 127.5f};
    nn_tensor *t = nn_tensor_create(4, shape);
    memcpy(nn_tensor_data(t), px, sizeof px);
    assert_ok(nn_preprocess_input(t, NN_PREPROCESS_CAFFE));
    const float *d = nn_tensor_data(t);
    /* RGB -> BGR, minus the BGR means */
    assert_float_equal(d[0], 30 - 103.939f, 1e-4);
    assert_float_equal(d[1], 20 - 116.779f, 1e-4);
    assert_float_equal(d[2], 10 - 123.68f, 1e-4);
    assert_float_equal(d[3], 127.5f - 103.939f, 1e-4);
    assert_float_equal(d[5], 255 - 123.68f, 1e-4);
    memcpy(nn_tensor_data(t), px, sizeof px);
    assert_ok(nn_preprocess_input(t, NN_PREPROCESS_TF));
    assert_float_equal(d[3], 1.0f, 1e-6);
    assert_float_equal(d[4], -1.0f, 1e-6);
    assert_float_equal(d[5], 0.0f, 1e-6);
    memcpy(nn_tensor_data(t), px, sizeof px);
    assert_ok(nn_preprocess_input(t, NN_PREPROCESS_TORCH));
    assert_float_equal(d[3], (1.0f - 0.485f) / 0.229f, 1e-5);
    assert_float_equal(d[4], (0.0f - 0.456f) / 0.224f, 1e-5);
    assert_error(nn_preprocess_input(t, (nn_preprocess_mode)3),
                 NN_ERR_INVALID, "mode");
    assert_error(nn_preprocess_input(NULL, NN_PREPROCESS_CAFFE),
                 NN_ERR_INVALID, NULL);
    nn_tensor_free(t);
    int64_t gray[4] = {1, 2, 2, 1};
    t = nn_tensor_create(4, gray);
    assert_error(nn_preprocess_input(t, NN_PREPROCESS_CAFFE), NN_ERR_SHAPE,
                 "RGB");
    nn_tensor_free(t);
}

/* ------------------------------------------------------------------ */
/* MobileNetV2                                                         */
/* ------------------------------------------------------------------ */

static nn_model *mobilenet(int hw, nn_mobilenet_flavor flavor, int top,
                           double alpha)
{
    nn_mobilenet_v2_opts o = NN_MOBILENET_V2_OPTS_INIT;
    o.flavor = flavor;
    o.include_top = top;
    o.alpha = alpha;
    nn_model *m = nn_mobilenet_v2(hw, hw, 3, 1, &o);
    if (!m) fail_msg("nn_mobilenet_v2: %s", nn_last_error());
    return m;
}

/* Keras' layer list of MobileNetV2 (include_top=False): 154 layers. */
static void expect_keras_layers(nn_model *m)
{
    static const char *const head[] = {
        "input_1", "Conv1", "bn_Conv1", "Conv1_relu",
        "expanded_conv_depthwise", "expanded_conv_depthwise_BN",
        "expanded_conv_depthwise_relu", "expanded_conv_project",
        "expanded_conv_project_BN", "block_1_expand", "block_1_expand_BN",
        "block_1_expand_relu", "block_1_pad", "block_1_depthwise",
        "block_1_depthwise_BN", "block_1_depthwise_relu", "block_1_project",
        "block_1_project_BN", "block_2_expand"};
    for (size_t i = 0; i < sizeof head / sizeof head[0]; i++)
        assert_string_equal(nn_layer_name(nn_model_layer(m, (int)i)),
                            head[i]);
    static const char *const some[] = {
        "block_2_add",  "block_3_pad",  "block_5_add",  "block_6_pad",
        "block_9_add",  "block_12_add", "block_13_pad", "block_15_add",
        "block_16_project_BN", "Conv_1", "Conv_1_bn", "out_relu"};
    for (size_t i = 0; i < sizeof some / sizeof some[0]; i++)
        assert_non_null(nn_model_find_layer(m, some[i]));
    static const char *const absent[] = {"block_0_expand", "block_1_add",
                                         "block_3_add", "block_16_add",
                                         "block_10_add", "block_2_pad"};
    for (size_t i = 0; i < sizeof absent / sizeof absent[0]; i++)
        assert_null(nn_model_find_layer(m, absent[i]));
    assert_string_equal(
        nn_layer_type(nn_model_find_layer(m, "block_1_depthwise")),
        "DepthwiseConv2D");
    assert_string_equal(nn_layer_type(nn_model_find_layer(m, "out_relu")),
                        "ReLU");
    assert_string_equal(nn_layer_type(nn_model_find_layer(m, "block_1_pad")),
                        "ZeroPadding2D");
}

static void test_mobilenet_v2_keras_counts(void **state)
{
    static const int sizes[] = {224, 128, 96};
    for (size_t i = 0; i < 3; i++) {
        int hw = sizes[i];
        nn_model *m = mobilenet(hw, NN_MOBILENET_KERAS, 0, 1.0);
        assert_int_equal(nn_model_num_params(m), 2257984);
        assert_int_equal(nn_model_num_params(m) -
                             nn_model_num_trainable_params(m),
                         34112);
        assert_int_equal(nn_model_num_layers(m), 154); /* as Keras' */
        expect_keras_layers(m);
        assert_string_equal(nn_layer_name(nn_model_output(m)), "out_relu");
        assert_shape(nn_model_output(m), hw / 32, hw / 32, 1280);
        char name[32];
        snprintf(name, sizeof name, "mobilenetv2_1.00_%d", hw);
        assert_string_equal(nn_model_name(m), name);
        /* correct_pad on an even size: one row and column, bottom/right */
        assert_shape(nn_model_find_layer(m, "Conv1"), hw / 2, hw / 2, 32);
        assert_shape(nn_model_find_layer(m, "block_1_pad"), hw / 2 + 1,
                     hw / 2 + 1, 96);
        assert_shape(nn_model_find_layer(m, "block_1_depthwise"), hw / 4,
                     hw / 4, 96);
        assert_shape(nn_model_find_layer(m, "block_13_expand_relu"),
                     hw / 16, hw / 16, 576);
        assert_shape(nn_model_find_layer(m, "block_16_project"), hw / 32,
                     hw / 32, 320);
        nn_layer *bn = nn_model_find_layer(m, "block_5_depthwise_BN");
        assert_float_equal(stored_config_f32(bn, BN_EPSILON), 1e-3f, 1e-12);
        assert_float_equal(stored_config_f32(bn, BN_MOMENTUM), 0.999f, 1e-7);
        assert_int_equal(stride_h(m, "Conv1"), 2);
        assert_int_equal(stored_config_i32(nn_model_find_layer(m, "Conv1"),
                                           CONV_PADDING),
                         NN_PADDING_SAME);
        assert_int_equal(nn_layer_num_weights(
                             nn_model_find_layer(m, "block_3_depthwise")),
                         1); /* no bias */
        nn_model_free(m);
    }
    nn_model *m = mobilenet(224, NN_MOBILENET_KERAS, 1, 1.0);
    assert_int_equal(nn_model_num_params(m), 3538984);
    assert_int_equal(nn_model_num_layers(m), 156);
    assert_string_equal(nn_layer_name(nn_model_output(m)), "predictions");
    assert_string_equal(
        nn_layer_type(nn_model_find_layer(m, "global_average_pooling2d")),
        "GlobalAveragePooling2D");
    assert_int_equal(nn_model_output(m)->activation, NN_ACT_SOFTMAX);
    nn_model_free(m);
}

/* MobileNetV2 predicts the same bits with its ZeroPadding2D layers folded
 * into the stride-2 depthwise convolutions that read them as without:
 * Keras' correct_pad (bottom/right on an even feature map, a row on each
 * side on an odd one) and torchvision's row on each side (whose
 * Conv1_pad, read by a Conv2D, stays). */
static void test_mobilenet_v2_pad_fold(void **state)
{
    (void)state;
    const struct {
        int size;
        nn_mobilenet_flavor flavor;
        int odd_maps; /* of the folded paddings' inputs */
    } cases[] = {{64, NN_MOBILENET_KERAS, 0},
                 {67, NN_MOBILENET_KERAS, 3}, /* 34, 17, 9, 5 */
                 {64, NN_MOBILENET_TORCHVISION, 0}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        int hw = cases[k].size;
        bool torch = cases[k].flavor == NN_MOBILENET_TORCHVISION;
        nn_model *m = mobilenet(hw, cases[k].flavor, 0, 0.35);
        int64_t xs[4] = {2, hw, hw, 3};
        nn_tensor *x = nn_tensor_create(4, xs);
        for (int64_t i = 0; i < x->size; i++)
            x->data[i] = (float)((i * 7919 % 2001) - 1000) / 500.0f;
        const nn_shape *o = &nn_model_output(m)->out;
        int64_t ys[4] = {2, o->d[0], o->d[1], o->d[2]};
        nn_tensor *y = nn_tensor_create(4, ys), *plain = nn_tensor_create(4, ys);
        nn__pad_fold_disable(true);
        nn_context *c = nn_context_create(m);
        assert_int_equal(nn_context_predict(c, x, plain, 2), NN_OK);
        nn_context_free(c);
        nn__pad_fold_disable(false);
        c = nn_context_create(m);
        assert_int_equal(nn_context_predict(c, x, y, 2), NN_OK);
        assert_memory_equal(y->data, plain->data,
                            (size_t)y->size * sizeof(float));
        int pads = 0, odds = 0;
        for (int i = 0; i < m->n_layers; i++) {
            const nn_layer *l = m->layers[i];
            if (l->kind != NN_KIND_ZEROPAD2D) continue;
            int r = c->fused_into[i];
            if (torch && !strcmp(l->name, "Conv1_pad")) {
                assert_int_equal(r, -1);
                continue;
            }
            pads++;
            assert_true(r >= 0);
            assert_int_equal(m->layers[r]->kind, NN_KIND_DEPTHWISE_CONV2D);
            int odd = l->inputs[0]->out.d[0] % 2;
            assert_int_equal(c->fuse[r].pad[1], 1); /* bottom */
            assert_int_equal(c->fuse[r].pad[0], torch ? 1 : odd); /* top */
            odds += odd;
        }
        assert_int_equal(pads, 4); /* blocks 1, 3, 6 and 13 */
        assert_int_equal(odds, cases[k].odd_maps);
        nn_context_free(c);
        nn_tensor_free(x);
        nn_tensor_free(y);
        nn_tensor_free(plain);
        nn_model_free(m);
    }
}

/* correct_pad on odd sizes pads one row on each side, as SAME does. */
static void test_mobilenet_v2_odd_sizes_and_alpha(void **state)
{
    nn_model *m = mobilenet(99, NN_MOBILENET_KERAS, 0, 1.0);
    assert_shape(nn_model_find_layer(m, "Conv1"), 50, 50, 32);
    assert_shape(nn_model_find_layer(m, "block_1_pad"), 51, 51, 96);
    assert_shape(nn_model_find_layer(m, "block_1_depthwise"), 25, 25, 96);
    assert_shape(nn_model_find_layer(m, "block_3_pad"), 27, 27, 144);
    assert_shape(nn_model_output(m), 4, 4, 1280);
    assert_int_equal(nn_model_num_params(m), 2257984);
    nn_model_free(m);
    /* Keras' counts for the other ImageNet widths (include_top=False) */
    static const struct {
        double alpha;
        int64_t total, non_trainable;
    } widths[] = {{0.35, 410208, 14080},
                  {0.5, 706224, 18544},
                  {0.75, 1382064, 26640}};
    for (size_t i = 0; i < sizeof widths / sizeof widths[0]; i++) {
        m = mobilenet(96, NN_MOBILENET_KERAS, 0, widths[i].alpha);
        if (nn_model_num_params(m) != widths[i].total ||
            nn_model_num_params(m) - nn_model_num_trainable_params(m) !=
                widths[i].non_trainable)
            fail_msg("alpha %.2f: %lld params, %lld non-trainable",
                     widths[i].alpha, (long long)nn_model_num_params(m),
                     (long long)(nn_model_num_params(m) -
                                 nn_model_num_trainable_params(m)));
        nn_model_free(m);
    }
    m = mobilenet(96, NN_MOBILENET_KERAS, 0, 0.35);
    assert_string_equal(nn_model_name(m), "mobilenetv2_0.35_96");
    assert_shape(nn_model_find_layer(m, "Conv1"), 48, 48, 16);
    assert_shape(nn_model_find_layer(m, "block_16_project"), 3, 3, 112);
    assert_shape(nn_model_output(m), 3, 3, 1280);
    nn_model_free(m);
    /* above 1, the last 1x1 conv widens too */
    m = mobilenet(64, NN_MOBILENET_KERAS, 0, 1.4);
    assert_shape(nn_model_output(m), 2, 2, 1792);
    assert_shape(nn_model_find_layer(m, "Conv1"), 32, 32, 48);
    nn_model_free(m);
}

static void test_mobilenet_v2_torchvision(void **state)
{
    nn_model *m = mobilenet(224, NN_MOBILENET_TORCHVISION, 1, 1.0);
    /* torchvision's 3,504,872 plus the BN running statistics */
    assert_int_equal(nn_model_num_trainable_params(m), 3504872);
    assert_int_equal(nn_model_num_params(m), 3504872 + 34112);
    assert_int_equal(nn_model_num_layers(m), 158); /* + Conv1_pad, dropout */
    assert_shape(nn_model_find_layer(m, "Conv1_pad"), 226, 226, 3);
    nn_layer *c = nn_model_find_layer(m, "Conv1");
    assert_int_equal(stored_config_i32(c, CONV_PADDING), NN_PADDING_VALID);
    assert_shape(c, 112, 112, 32);
    assert_shape(nn_model_find_layer(m, "block_1_pad"), 114, 114, 96);
    assert_shape(nn_model_find_layer(m, "block_1_depthwise"), 56, 56, 96);
    assert_string_equal(nn_layer_type(nn_model_find_layer(m, "dropout")),
                        "Dropout");
    nn_layer *bn = nn_model_find_layer(m, "Conv_1_bn");
    assert_float_equal(stored_config_f32(bn, BN_EPSILON), 1e-5f, 1e-12);
    assert_float_equal(stored_config_f32(bn, BN_MOMENTUM), 0.9f, 1e-7);
    nn_model_free(m);
    m = mobilenet(64, NN_MOBILENET_TORCHVISION, 0, 1.0);
    assert_int_equal(nn_model_num_params(m), 2257984);
    assert_shape(nn_model_output(m), 2, 2, 1280);
    nn_model_free(m);
}

static void test_mobilenet_v2_errors(void **state)
{
    nn_mobilenet_v2_opts o = NN_MOBILENET_V2_OPTS_INIT;
    assert_null(nn_mobilenet_v2(31, 32, 3, 1, &o));
    assert_int_equal(nn_last_status(), NN_ERR_INVALID);
    assert_non_null(strstr(nn_last_error(), "at least 32"));
    assert_null(nn_mobilenet_v2(32, 32, 0, 1, &o));
    static const double bad_alpha[] = {0.0, -1.0, 4.5, NAN};
    for (size_t i = 0; i < 4; i++) {
        o.alpha = bad_alpha[i];
        assert_null(nn_mobilenet_v2(32, 32, 3, 1, &o));
        assert_non_null(strstr(nn_last_error(), "alpha"));
    }
    o = (nn_mobilenet_v2_opts)NN_MOBILENET_V2_OPTS_INIT;
    o.flavor = (nn_mobilenet_flavor)2;
    assert_null(nn_mobilenet_v2(32, 32, 3, 1, &o));
    assert_non_null(strstr(nn_last_error(), "flavour"));
    o = (nn_mobilenet_v2_opts)NN_MOBILENET_V2_OPTS_INIT;
    o.classes = 0;
    assert_null(nn_mobilenet_v2(32, 32, 3, 1, &o));
    o.include_top = 0; /* classes do not matter without a top */
    nn_model *m = nn_mobilenet_v2(32, 32, 3, 1, &o);
    assert_non_null(m);
    nn_model_free(m);
    /* an older options struct: the members it lacks keep their defaults */
    o = (nn_mobilenet_v2_opts)NN_MOBILENET_V2_OPTS_INIT;
    o.size = offsetof(nn_mobilenet_v2_opts, alpha);
    o.alpha = 0.5;
    o.name = "short";
    o.classifier_activation = NN_ACT_NONE;
    o.classes = 3;
    m = nn_mobilenet_v2(32, 32, 3, 1, &o);
    assert_string_equal(nn_model_name(m), "short");
    assert_int_equal(nn_model_output(m)->out.d[0], 3);
    assert_int_equal(nn_model_output(m)->activation, NN_ACT_NONE);
    assert_int_equal(nn_model_num_params(m), 2257984 + 1280 * 3 + 3);
    nn_model_free(m);
    static const int at[] = {1, 2, 5, 50, 300};
    o = (nn_mobilenet_v2_opts)NN_MOBILENET_V2_OPTS_INIT;
    for (size_t i = 0; i < sizeof at / sizeof at[0]; i++) {
        nn__debug_fail_alloc_after(at[i]);
        m = nn_mobilenet_v2(32, 32, 3, 1, &o);
        nn__debug_fail_alloc_after(0);
        assert_null(m);
        assert_int_equal(nn_last_status(), NN_ERR_NOMEM);
    }
}

static void expect_mb_key(nn_layer_kind kind, const char *layer,
                          const char *param, const char *want,
                          nn_torch_layout want_layout)
{
    expect_key_of(nn__mobilenet_v2_torch_key, kind, layer, param, want,
                  want_layout);
}

static void test_mobilenet_v2_key_map(void **state)
{
    const nn_layer_kind C = NN_KIND_CONV2D, B = NN_KIND_BATCHNORM,
                        D = NN_KIND_DENSE, W = NN_KIND_DEPTHWISE_CONV2D;
    const nn_torch_layout S = NN_TORCH_SAME;
    expect_mb_key(C, "Conv1", "kernel", "features.0.0.weight", NN_TORCH_CONV);
    expect_mb_key(B, "bn_Conv1", "moving_variance",
                  "features.0.1.running_var", S);
    expect_mb_key(W, "expanded_conv_depthwise", "depthwise_kernel",
                  "features.1.conv.0.0.weight", NN_TORCH_DEPTHWISE);
    expect_mb_key(B, "expanded_conv_depthwise_BN", "gamma",
                  "features.1.conv.0.1.weight", S);
    expect_mb_key(C, "expanded_conv_project", "kernel",
                  "features.1.conv.1.weight", NN_TORCH_CONV);
    expect_mb_key(B, "expanded_conv_project_BN", "beta",
                  "features.1.conv.2.bias", S);
    expect_mb_key(C, "block_1_expand", "kernel",
                  "features.2.conv.0.0.weight", NN_TORCH_CONV);
    expect_mb_key(B, "block_1_expand_BN", "moving_mean",
                  "features.2.conv.0.1.running_mean", S);
    expect_mb_key(W, "block_7_depthwise", "depthwise_kernel",
                  "features.8.conv.1.0.weight", NN_TORCH_DEPTHWISE);
    expect_mb_key(B, "block_7_depthwise_BN", "gamma",
                  "features.8.conv.1.1.weight", S);
    expect_mb_key(C, "block_16_project", "kernel",
                  "features.17.conv.2.weight", NN_TORCH_CONV);
    expect_mb_key(B, "block_16_project_BN", "beta",
                  "features.17.conv.3.bias", S);
    expect_mb_key(C, "Conv_1", "kernel", "features.18.0.weight",
                  NN_TORCH_CONV);
    expect_mb_key(B, "Conv_1_bn", "gamma", "features.18.1.weight", S);
    expect_mb_key(D, "predictions", "kernel", "classifier.1.weight",
                  NN_TORCH_LINEAR);
    expect_mb_key(D, "predictions", "bias", "classifier.1.bias", S);
    expect_mb_key(C, "expanded_conv_expand", "kernel", NULL, S);
    expect_mb_key(C, "block_0_expand", "kernel", NULL, S);
    expect_mb_key(C, "block_17_expand", "kernel", NULL, S);
    expect_mb_key(C, "block_1_expandx", "kernel", NULL, S);
    expect_mb_key(C, "block_1", "kernel", NULL, S);
    expect_mb_key(C, "block_x_expand", "kernel", NULL, S);
    expect_mb_key(C, "conv1_conv", "kernel", NULL, S);
    expect_mb_key(W, "block_1_depthwise", "kernel", NULL, S);
}

/* Depthwise kernels: torch [C * mult, 1, kh, kw] -> [kh, kw, C, mult]. */
static void test_mobilenet_v2_depthwise_layout(void **state)
{
    const char *json =
        "{\"features.1.conv.0.0.weight\":{\"dtype\":\"F32\","
        "\"shape\":[6,1,3,2],\"data_offsets\":[0,144]},"
        "\"features.1.conv.0.0.bias\":{\"dtype\":\"F32\","
        "\"shape\":[6],\"data_offsets\":[144,168]}}";
    uint8_t data[168];
    for (int i = 0; i < 42; i++) {
        float v = (float)i;
        memcpy(data + 4 * i, &v, 4);
    }
    write_st(tpath("dw.st"), json, data, sizeof data);
    nn_model *m = nn_model_create(1);
    int shape[3] = {5, 5, 3};
    nn_depthwise_conv2d_opts o = NN_DEPTHWISE_CONV2D_OPTS_INIT;
    o.name = "expanded_conv_depthwise";
    o.depth_multiplier = 2;
    assert_non_null(
        nn_depthwise_conv2d(m, nn_input(m, 3, shape, NULL), 3, 2, &o));
    assert_ok(nn_model_load_safetensors(m, tpath("dw.st"),
                                        NN_WEIGHTS_TORCHVISION_MOBILENET_V2));
    const float *k = weight(m, "expanded_conv_depthwise", 0);
    for (int y = 0; y < 3; y++)
        for (int x = 0; x < 2; x++)
            for (int c = 0; c < 3; c++)
                for (int j = 0; j < 2; j++)
                    assert_float_equal(
                        k[((y * 2 + x) * 3 + c) * 2 + j],
                        (float)(((c * 2 + j) * 3 + y) * 2 + x), 0);
    assert_float_equal(weight(m, "expanded_conv_depthwise", 1)[5], 41.0f, 0);
    /* under the ResNet map the layer has no name */
    assert_error(nn_model_load_safetensors(m, tpath("dw.st"),
                                           NN_WEIGHTS_TORCHVISION_RESNET),
                 NN_ERR_UNSUPPORTED, "nn_resnet50");
    assert_error(nn_model_load_safetensors(m, tpath("dw.st"),
                                           (nn_weight_map)3),
                 NN_ERR_INVALID, "map");
    nn_model_free(m);
}

/* ------------------------------------------------------------------ */
/* U-Net                                                               */
/* ------------------------------------------------------------------ */

static const char *const tutorial_skips[5] = {
    "block_1_expand_relu", "block_3_expand_relu", "block_6_expand_relu",
    "block_13_expand_relu", "block_16_project"};
static const int tutorial_filters[4] = {512, 256, 128, 64};

static nn_model *tutorial_unet(nn_model *enc, int classes, int freeze)
{
    nn_unet_opts o = NN_UNET_OPTS_INIT;
    o.freeze_encoder = freeze;
    nn_model *u = nn_unet(enc, 5, tutorial_skips, 4, tutorial_filters,
                          classes, 7, &o);
    if (!u) fail_msg("nn_unet: %s", nn_last_error());
    return u;
}

/* The TensorFlow segmentation tutorial's model and its summary figures. */
static void test_unet_tutorial_counts(void **state)
{
    nn_model *enc = mobilenet(128, NN_MOBILENET_KERAS, 0, 1.0);
    nn_model *u = tutorial_unet(enc, 3, 1);
    char *s = summary_of(u);
    assert_non_null(strstr(s, "Total params: 6,504,227\n"));
    assert_non_null(strstr(s, "Trainable params: 4,660,323\n"));
    assert_non_null(strstr(s, "Non-trainable params: 1,843,904\n"));
    /* the encoder is one row, cut after block_16_project */
    const char *row = strstr(s, "mobilenetv2_1.00_128 (Functional)");
    assert_non_null(row);
    assert_null(strstr(row + 1, "mobilenetv2_1.00_128 (Functional)"));
    assert_non_null(strstr(row, "(None, 4, 4, 320)"));
    assert_non_null(strstr(row, "1,841,984"));
    assert_null(strstr(s, "Conv_1"));
    free(s);
    assert_shape(nn_model_output(u), 128, 128, 3);
    assert_string_equal(nn_layer_type(nn_model_output(u)), "Conv2DTranspose");
    assert_string_equal(nn_model_name(u), "unet");
    nn_layer *dbn = nn_model_find_layer(u, "batch_normalization");
    assert_float_equal(stored_config_f32(dbn, BN_MOMENTUM), 0.99f, 1e-7);
    /* concatenations in the tutorial's order: upsampled first, then skip */
    static const int concat_ch[4][2] = {
        {8, 1088}, {16, 448}, {32, 272}, {64, 160}};
    int k = 0;
    for (int i = 0; i < nn_model_num_layers(u); i++) {
        nn_layer *l = nn_model_layer(u, i);
        if (strcmp(nn_layer_type(l), "Concatenate")) continue;
        assert_true(k < 4);
        assert_shape(l, concat_ch[k][0], concat_ch[k][0], concat_ch[k][1]);
        assert_string_equal(nn_layer_type(nn_layer_input(l, 0)), "ReLU");
        assert_string_equal(nn_layer_name(nn_layer_input(l, 1)),
                            tutorial_skips[3 - k]);
        k++;
    }
    assert_int_equal(k, 4);
    /* the weights are the encoder's own */
    nn_layer *a = nn_model_find_layer(enc, "block_3_depthwise");
    nn_layer *b = nn_model_find_layer(u, "block_3_depthwise");
    assert_ptr_equal(nn_tensor_data(nn_layer_weight(a, 0)),
                     nn_tensor_data(nn_layer_weight(b, 0)));
    assert_false(nn_layer_trainable(b));
    assert_true(nn_layer_trainable(a)); /* only the U-Net's copy froze */
    nn_model_free(enc); /* either may be freed first */
    assert_int_equal(nn_model_num_params(u), 6504227);
    nn_model_free(u);

    /* one output channel: only the last layer differs (9 * 160 + 1) */
    enc = mobilenet(128, NN_MOBILENET_KERAS, 0, 1.0);
    u = tutorial_unet(enc, 1, 1);
    assert_int_equal(nn_model_num_params(u), 6504227 - 4323 + 1441);
    assert_int_equal(nn_model_num_trainable_params(u), 4660323 - 4323 + 1441);
    nn_model_free(u);
    /* not frozen: only the BN statistics stay non-trainable */
    u = tutorial_unet(enc, 1, 0);
    assert_true(nn_layer_trainable(nn_model_find_layer(u, "Conv1")));
    assert_int_equal(nn_model_num_params(u) - nn_model_num_trainable_params(u),
                     1920 + 34112 - 2 * 320 - 2 * 1280);
    nn_model_free(u);
    nn_model_free(enc);
}

/* The decoder's transposed convolutions start from N(0, 0.02). */
static void test_unet_decoder_init(void **state)
{
    nn_model *enc = mobilenet(64, NN_MOBILENET_KERAS, 0, 0.35);
    static const char *const skips[3] = {
        "block_1_expand_relu", "block_3_expand_relu", "block_6_expand_relu"};
    static const int filters[2] = {64, 32};
    nn_unet_opts o = NN_UNET_OPTS_INIT;
    o.dropout = 0.5;
    o.activation = NN_ACT_SIGMOID;
    o.name = "small";
    o.encoder_name = "down_stack";
    o.bn_momentum = 0.9;
    nn_model *u = nn_unet(enc, 3, skips, 2, filters, 2, 3, &o);
    assert_non_null(u);
    assert_shape(nn_model_output(u), 64, 64, 2);
    assert_int_equal(nn_model_output(u)->activation, NN_ACT_SIGMOID);
    char *s = summary_of(u);
    assert_non_null(strstr(s, "down_stack (Functional)"));
    assert_non_null(strstr(s, "Model: \"small\""));
    free(s);
    int dropouts = 0, checked = 0, bns = 0;
    for (int i = 0; i < nn_model_num_layers(u); i++) {
        nn_layer *l = nn_model_layer(u, i);
        dropouts += !strcmp(nn_layer_type(l), "Dropout");
        if (!strcmp(nn_layer_type(l), "BatchNormalization") && !l->group[0]) {
            assert_float_equal(stored_config_f32(l, BN_MOMENTUM), 0.9f, 1e-7);
            bns++;
        }
        if (strcmp(nn_layer_type(l), "Conv2DTranspose") ||
            l == nn_model_output(u))
            continue;
        assert_int_equal(nn_layer_num_weights(l), 1); /* no bias */
        nn_tensor *w = nn_layer_weight(l, 0);
        const float *d = nn_tensor_data(w);
        double sum = 0, sq = 0;
        int64_t n = nn_tensor_size(w);
        for (int64_t j = 0; j < n; j++) {
            sum += d[j];
            sq += (double)d[j] * d[j];
        }
        double mean = sum / n, sd = sqrt(sq / n - mean * mean);
        assert_true(fabs(mean) < 0.002);
        assert_true(sd > 0.0185 && sd < 0.0215);
        checked++;
    }
    assert_int_equal(checked, 2);
    assert_int_equal(dropouts, 2);
    assert_int_equal(bns, 2);
    assert_int_equal(nn_layer_num_weights(nn_model_output(u)), 2);
    nn_model_free(u);
    nn_model_free(enc);
}

static void test_unet_errors(void **state)
{
    nn_model *enc = mobilenet(64, NN_MOBILENET_KERAS, 0, 0.35);
    const int f[4] = {8, 8, 8, 8};
    assert_null(nn_unet(NULL, 5, tutorial_skips, 4, f, 1, 1, NULL));
    assert_int_equal(nn_last_status(), NN_ERR_INVALID);
    assert_null(nn_unet(enc, 5, NULL, 4, f, 1, 1, NULL));
    assert_null(nn_unet(enc, 5, tutorial_skips, 3, f, 1, 1, NULL));
    assert_non_null(strstr(nn_last_error(), "give 4"));
    assert_null(nn_unet(enc, 0, tutorial_skips, 0, f, 1, 1, NULL));
    assert_null(nn_unet(enc, 5, tutorial_skips, 4, f, 0, 1, NULL));
    const int f0[4] = {8, 0, 8, 8};
    assert_null(nn_unet(enc, 5, tutorial_skips, 4, f0, 1, 1, NULL));
    assert_non_null(strstr(nn_last_error(), "filters[1]"));
    const char *missing[2] = {"block_1_expand_relu", "block_99"};
    assert_null(nn_unet(enc, 2, missing, 1, f, 1, 1, NULL));
    assert_non_null(strstr(nn_last_error(), "'block_99'"));
    const char *reversed[2] = {"block_3_expand_relu", "block_1_expand_relu"};
    assert_null(nn_unet(enc, 2, reversed, 1, f, 1, 1, NULL));
    assert_int_equal(nn_last_status(), NN_ERR_SHAPE);
    assert_non_null(strstr(nn_last_error(), "shallowest"));
    const char *same[2] = {"block_1_expand_relu", "block_1_expand"};
    assert_null(nn_unet(enc, 2, same, 1, f, 1, 1, NULL));
    nn_unet_opts o = NN_UNET_OPTS_INIT;
    o.dropout = 1.0;
    assert_null(nn_unet(enc, 5, tutorial_skips, 4, f, 1, 1, &o));
    o = (nn_unet_opts)NN_UNET_OPTS_INIT;
    o.activation = NN_ACT_RELU;
    assert_null(nn_unet(enc, 5, tutorial_skips, 4, f, 1, 1, &o));
    o = (nn_unet_opts)NN_UNET_OPTS_INIT;
    o.bn_momentum = 1.0;
    assert_null(nn_unet(enc, 5, tutorial_skips, 4, f, 1, 1, &o));
    assert_non_null(strstr(nn_last_error(), "bn_momentum"));
    nn_model *empty = nn_model_create(1);
    assert_null(nn_unet(empty, 5, tutorial_skips, 4, f, 1, 1, NULL));
    nn_model_free(empty);
    /* allocation failures at every step: NULL, NN_ERR_NOMEM, no leak */
    int k;
    const char *two[2] = {"block_1_expand_relu", "block_3_expand_relu"};
    for (k = 1; k < 400; k++) {
        nn__debug_fail_alloc_after(k);
        nn_model *u = nn_unet(enc, 2, two, 1, f, 1, 1, NULL);
        nn__debug_fail_alloc_after(0);
        if (u) {
            nn_model_free(u);
            break;
        }
        assert_int_equal(nn_last_status(), NN_ERR_NOMEM);
    }
    assert_true(k > 1 && k < 400);
    nn_model_free(enc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resnet50_keras_counts),
        cmocka_unit_test(test_resnet50_torchvision_counts),
        cmocka_unit_test(test_resnet50_small_input_and_errors),
        cmocka_unit_test(test_resnet_blocks),
        cmocka_unit_test(test_resnet_alloc_failures),
        cmocka_unit_test(test_q3d_transfer_model),
        cmocka_unit_test(test_q3e_truncated_backbone),
        cmocka_unit_test(test_st_round_trip),
        cmocka_unit_test(test_st_hand_made),
        cmocka_unit_test(test_st_errors_name_the_tensor),
        cmocka_unit_test(test_st_bad_json),
        cmocka_unit_test(test_st_envelope),
        cmocka_unit_test(test_st_hostile_fuzz),
        cmocka_unit_test(test_st_alloc_failures),
        cmocka_unit_test(test_torchvision_key_map),
        cmocka_unit_test(test_torchvision_layouts),
        cmocka_unit_test(test_preprocess_input),
        cmocka_unit_test(test_mobilenet_v2_keras_counts),
        cmocka_unit_test(test_mobilenet_v2_odd_sizes_and_alpha),
        cmocka_unit_test(test_mobilenet_v2_pad_fold),
        cmocka_unit_test(test_mobilenet_v2_torchvision),
        cmocka_unit_test(test_mobilenet_v2_errors),
        cmocka_unit_test(test_mobilenet_v2_key_map),
        cmocka_unit_test(test_mobilenet_v2_depthwise_layout),
        cmocka_unit_test(test_unet_tutorial_counts),
        cmocka_unit_test(test_unet_decoder_init),
        cmocka_unit_test(test_unet_errors),
    };
    return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}

/* Layers (src/layers/), the building blocks of graph models:
 * BatchNormalization, ZeroPadding2D, Add, Concatenate,
 * GlobalAveragePooling2D, Resizing, RepeatChannels and LocallyConnected2D.
 * Gradient checks, shapes and names, forward values, batch norm semantics,
 * invalid arguments. (Every kind's registry row and sample gradient check:
 * tests/test_layers.c.) */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "nn_internal.h"

#include "gradcheck.h"
#include "helpers.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* helpers                                                             */
/* ------------------------------------------------------------------ */

static void expect_gradients_o(nn_layer *l, int batch, const gc_opts *o)
{
    assert_non_null(l);
    gc_result r = gc_check_layer(l, batch, o);
    if (getenv("GC_VERBOSE") || r.failed || r.kinky * 5 > r.checked)
        fprintf(stderr,
                "%s %s: %lld checked, %lld failed, %lld kinky, worst %.2g\n",
                l->ops->type_name, l->name, (long long)r.checked,
                (long long)r.failed, (long long)r.kinky, r.worst);
    assert_true(r.checked > 0);
    assert_int_equal(r.failed, 0);
    assert_true(r.kinky * 5 <= r.checked);
}

static void expect_gradients(nn_layer *l, int batch, bool training)
{
    gc_opts o = GC_OPTS_INIT;
    o.training = training;
    expect_gradients_o(l, batch, &o);
}

#define EXPECT_NULL_WITH_MESSAGE(call)                                         \
    do {                                                                       \
        nn_clear_error();                                                      \
        assert_null(call);                                                     \
        assert_true(nn_last_error()[0] != '\0');                               \
    } while (0)

/* ------------------------------------------------------------------ */
/* gradient checks                                                     */
/* ------------------------------------------------------------------ */

static void test_gradients_batchnorm(void **state)
{
    (void)state;
    static const struct {
        int rank, d0, d1, d2, center, scale;
    } cases[] = {
        {3, 4, 3, 5, 1, 1}, {3, 2, 5, 3, 0, 1}, {3, 3, 3, 2, 1, 0},
        {3, 2, 2, 3, 0, 0}, {1, 6, 0, 0, 1, 1}, {2, 3, 4, 0, 1, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (int training = 0; training <= 1; training++) {
            nn_model *m = nn_model_create(40 + i);
            int shape[3] = {cases[i].d0, cases[i].d1, cases[i].d2};
            nn_layer *in = nn_input(m, cases[i].rank, shape, NULL);
            nn_batchnorm_opts o = NN_BATCHNORM_OPTS_INIT;
            o.center = cases[i].center;
            o.scale = cases[i].scale;
            o.epsilon = 0.01f;
            nn_layer *l = nn_batchnorm(m, in, &o);
            assert_non_null(l);
            assert_int_equal(l->n_params, 2 + o.center + o.scale);
            /* Non-trivial gammas, betas and statistics. */
            for (int j = 0; j < l->n_params; j++)
                randomize(&l->params[j], 0.5, 1.5);
            expect_gradients(l, 3, training);
            nn_model_free(m);
        }
}

static void test_gradients_shape_layers(void **state)
{
    (void)state;
    nn_model *m = nn_model_create(50);
    nn_layer *in = image_input(m, 4, 5, 3);
    expect_gradients(nn_zeropad2d(m, in, 1, 2, 3, 0, NULL), 2, true);
    expect_gradients(nn_zeropad2d(m, in, 0, 0, 0, 0, NULL), 2, true);
    expect_gradients(nn_global_avgpool2d(m, in, NULL), 3, true);
    expect_gradients(nn_repeat_channels(m, in, 3, NULL), 2, true);
    int v[1] = {4};
    nn_layer *vec = nn_input(nn_model_create(51), 1, v, NULL);
    expect_gradients(nn_repeat_channels(vec->model, vec, 2, NULL), 2, true);
    nn_model_free(vec->model);
    nn_model_free(m);
}

static void test_gradients_merge(void **state)
{
    (void)state;
    nn_model *m = nn_model_create(52);
    nn_layer *in = image_input(m, 3, 4, 2);
    nn_layer *a = nn_relu(m, in, NULL), *b = nn_sigmoid(m, in, NULL);
    nn_layer *c = nn_conv2d(m, in, 5, 1, 1, NULL);
    nn_layer *two[2] = {a, b}, *three[3] = {a, b, in};
    expect_gradients(nn_add(m, 2, two, NULL), 2, true);
    expect_gradients(nn_add(m, 3, three, NULL), 2, true);
    nn_layer *mixed[3] = {a, c, b};
    expect_gradients(nn_concatenate(m, 3, mixed, NULL), 2, true);
    int v1[2] = {3, 2}, v2[2] = {3, 4};
    nn_model *m2 = nn_model_create(53);
    nn_layer *p = nn_input(m2, 2, v1, NULL);
    nn_layer *q = nn_dense(m2, p, v2[1], NULL);
    nn_layer *pq[2] = {q, p};
    expect_gradients(nn_concatenate(m2, 2, pq, NULL), 3, true);
    nn_model_free(m2);
    nn_model_free(m);
}

static void test_gradients_resizing(void **state)
{
    (void)state;
    static const struct {
        int h, w, oh, ow;
        nn_interpolation interp;
    } cases[] = {
        {3, 4, 7, 9, NN_INTERP_BILINEAR}, {8, 7, 3, 4, NN_INTERP_BILINEAR},
        {5, 5, 5, 5, NN_INTERP_BILINEAR}, {4, 6, 8, 3, NN_INTERP_BILINEAR},
        {3, 4, 7, 9, NN_INTERP_NEAREST},  {8, 7, 3, 4, NN_INTERP_NEAREST},
        {1, 1, 3, 2, NN_INTERP_BILINEAR},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        nn_model *m = nn_model_create(60 + i);
        nn_resizing_opts o = NN_RESIZING_OPTS_INIT;
        o.interpolation = cases[i].interp;
        nn_layer *l = nn_resizing(m, image_input(m, cases[i].h, cases[i].w, 2),
                                  cases[i].oh, cases[i].ow, &o);
        expect_gradients(l, 2, true);
        nn_model_free(m);
    }
}

static void test_gradients_locally_connected(void **state)
{
    (void)state;
    static const struct {
        int h, w, c, f, kh, kw, sh, sw, bias;
        nn_activation act;
    } cases[] = {
        {5, 6, 3, 4, 3, 3, 1, 1, 1, NN_ACT_NONE},
        {7, 6, 2, 3, 3, 2, 2, 2, 0, NN_ACT_NONE},
        {6, 6, 2, 3, 2, 3, 2, 1, 1, NN_ACT_RELU},
        {4, 4, 3, 2, 1, 1, 1, 1, 1, NN_ACT_SIGMOID},
        {5, 5, 2, 4, 3, 3, 1, 2, 1, NN_ACT_SOFTMAX},
        {3, 3, 1, 2, 3, 3, 1, 1, 1, NN_ACT_NONE},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        nn_model *m = nn_model_create(70 + i);
        nn_conv2d_opts o = NN_CONV2D_OPTS_INIT;
        o.stride_h = cases[i].sh;
        o.stride_w = cases[i].sw;
        o.use_bias = cases[i].bias;
        o.activation = cases[i].act;
        o.kernel_init = NN_INIT_HE_UNIFORM; /* Keras' fans give tiny weights */
        o.bias_init = NN_INIT_GLOROT_UNIFORM;
        nn_layer *l = nn_locally_connected2d(
            m, image_input(m, cases[i].h, cases[i].w, cases[i].c), cases[i].f,
            cases[i].kh, cases[i].kw, &o);
        expect_gradients(l, 3, true);
        if (cases[i].act == NN_ACT_SIGMOID || cases[i].act == NN_ACT_SOFTMAX) {
            gc_opts go = GC_OPTS_INIT;
            go.use_logits = true;
            expect_gradients_o(l, 3, &go);
        }
        nn_model_free(m);
    }
    /* Several threads split positions and images differently. */
    nn_set_num_threads(3);
    nn_model *m = nn_model_create(79);
    nn_layer *l = nn_locally_connected2d(m, image_input(m, 6, 7, 2), 3, 2, 2,
                                         NULL);
    randomize(&l->params[0], -1, 1);
    expect_gradients(l, 5, true);
    nn_set_num_threads(0);
    nn_model_free(m);
}

/* Add and Concatenate overwrite or add into each input gradient as its
 * accum flag says, and skip inputs without a gradient buffer. */
static void test_merge_accum_flags(void **state)
{
    (void)state;
    nn_model *m = nn_model_create(80);
    nn_layer *in = image_input(m, 2, 3, 2);
    nn_layer *c3 = nn_conv2d(m, in, 3, 1, 1, NULL);
    nn_layer *ins[2] = {in, c3};
    nn_layer *same[2] = {in, nn_relu(m, in, NULL)};
    nn_layer *layers[2] = {nn_concatenate(m, 2, ins, NULL),
                           nn_add(m, 2, same, NULL)};
    for (int t = 0; t < 2; t++) {
        nn_layer *l = layers[t];
        gc_opts o = GC_OPTS_INIT;
        gc_run *r = gc_setup(l, 2, &o);
        float *d0[2], *d1[2];
        for (int i = 0; i < 2; i++) {
            d0[i] = malloc((size_t)r->in_n[i] * sizeof(float));
            d1[i] = malloc((size_t)r->in_n[i] * sizeof(float));
            for (int64_t k = 0; k < r->in_n[i]; k++) {
                d0[i][k] = NAN;
                d1[i][k] = 0.25f * (float)(k % 5);
            }
        }
        bool no[2] = {false, false}, yes[2] = {true, false};
        assert_int_equal(gc_backward(r, d0, no), NN_OK);
        float *mixed[2] = {d1[0], NULL};
        assert_int_equal(gc_backward(r, mixed, yes), NN_OK);
        for (int64_t k = 0; k < r->in_n[0]; k++) {
            assert_true(isfinite(d0[0][k]));
            assert_float_equal(d1[0][k], d0[0][k] + 0.25f * (float)(k % 5),
                               1e-6);
        }
        for (int64_t k = 0; k < r->in_n[1]; k++)
            assert_float_equal(d1[1][k], 0.25f * (float)(k % 5), 0);
        for (int i = 0; i < 2; i++) {
            free(d0[i]);
            free(d1[i]);
        }
        gc_free(r);
    }
    nn_model_free(m);
}

/* ------------------------------------------------------------------ */
/* shapes and names                                                   */
/* ------------------------------------------------------------------ */

static void test_shapes_and_names(void **state)
{
    (void)state;
    nn_model *m = nn_model_create(11);
    nn_layer *x = image_input(m, 5, 6, 3);
    nn_layer *z = nn_zeropad2d(m, x, 3, 3, 1, 0, NULL);
    expect_shape(z, 3, 11, 7, 3);
    nn_layer *bn = nn_batchnorm(m, z, NULL);
    expect_shape(bn, 3, 11, 7, 3);
    assert_int_equal(nn_layer_num_params(bn), 12);
    assert_int_equal(nn_layer_num_weights(bn), 4);
    assert_string_equal(nn_layer_weight_name(bn, 0), "gamma");
    assert_string_equal(nn_layer_weight_name(bn, 1), "beta");
    assert_string_equal(nn_layer_weight_name(bn, 2), "moving_mean");
    assert_string_equal(nn_layer_weight_name(bn, 3), "moving_variance");
    assert_float_equal(nn_layer_weight(bn, 0)->data[2], 1.0f, 0);
    assert_float_equal(nn_layer_weight(bn, 3)->data[1], 1.0f, 0);
    assert_int_equal(nn_model_num_trainable_params(m), 6);
    nn_batchnorm_opts bo = NN_BATCHNORM_OPTS_INIT;
    bo.scale = 0;
    nn_layer *bn2 = nn_batchnorm(m, z, &bo);
    assert_string_equal(nn_layer_name(bn2), "batch_normalization_1");
    assert_string_equal(nn_layer_weight_name(bn2, 0), "beta");
    assert_int_equal(nn_layer_num_params(bn2), 9);
    nn_layer *g = nn_global_avgpool2d(m, bn, NULL);
    expect_shape(g, 1, 3, 0, 0);
    assert_string_equal(nn_layer_name(g), "global_average_pooling2d");
    nn_layer *rs = nn_resizing(m, x, 224, 100, NULL);
    expect_shape(rs, 3, 224, 100, 3);
    assert_string_equal(nn_layer_type(rs), "Resizing");
    nn_layer *rep = nn_repeat_channels(m, x, 4, NULL);
    expect_shape(rep, 3, 5, 6, 12);
    assert_string_equal(nn_layer_name(rep), "repeat_channels");
    nn_layer *two[2] = {x, rep};
    nn_layer *cat = nn_concatenate(m, 2, two, NULL);
    expect_shape(cat, 3, 5, 6, 15);
    nn_layer *same[2] = {x, x};
    nn_layer *add = nn_add(m, 2, same, NULL);
    expect_shape(add, 3, 5, 6, 3);
    assert_string_equal(nn_layer_name(add), "add");
    assert_int_equal(nn_layer_num_inputs(add), 2);
    assert_ptr_equal(nn_layer_input(cat, 1), rep);
    nn_conv2d_opts o = NN_CONV2D_OPTS_INIT;
    o.stride_h = 2;
    nn_layer *lc = nn_locally_connected2d(m, x, 4, 3, 2, &o);
    expect_shape(lc, 3, 2, 5, 4);
    assert_int_equal(nn_layer_num_params(lc), 10 * 18 * 4 + 10 * 4);
    nn_model_free(m);
}

/* ------------------------------------------------------------------ */
/* forward values                                                      */
/* ------------------------------------------------------------------ */

static void test_resizing_values(void **state)
{
    (void)state;
    nn_model *m = nn_model_create(12);
    nn_layer *in = image_input(m, 2, 2, 1);
    nn_resizing(m, in, 4, 4, NULL);
    nn_tensor *x = tensor4(1, 2, 2, 1), *y = tensor4(1, 4, 4, 1);
    for (int i = 0; i < 4; i++) x->data[i] = (float)i; /* [[0,1],[2,3]] */
    predict(m, x, y);
    /* Half-pixel sources -0.25, 0.25, 0.75, 1.25 clamp to weights
     * 0, .25, .75, 1 of the second sample: y = 2 wy + wx. */
    const float w[4] = {0, 0.25f, 0.75f, 1};
    for (int r = 0; r < 4; r++)
        for (int c = 0; c < 4; c++)
            assert_float_equal(y->data[r * 4 + c], 2 * w[r] + w[c], 1e-6);
    nn_model_free(m);
    nn_tensor_free(y);
    nn_tensor_free(x);

    /* 4 -> 2 averages pairs; nearest takes samples 1 and 3. */
    for (int near = 0; near <= 1; near++) {
        m = nn_model_create(13);
        nn_resizing_opts o = NN_RESIZING_OPTS_INIT;
        o.interpolation = near ? NN_INTERP_NEAREST : NN_INTERP_BILINEAR;
        nn_resizing(m, image_input(m, 4, 4, 2), 2, 2, &o);
        x = tensor4(1, 4, 4, 2);
        y = tensor4(1, 2, 2, 2);
        for (int i = 0; i < 32; i++) x->data[i] = (float)i;
        predict(m, x, y);
        const float *v = x->data;
#define AT(row, col, ch) v[((row) * 4 + (col)) * 2 + (ch)]
        for (int r = 0; r < 2; r++)
            for (int c = 0; c < 2; c++)
                for (int ch = 0; ch < 2; ch++) {
                    int r0 = 2 * r, c0 = 2 * c;
                    float want = near ? AT(r0 + 1, c0 + 1, ch)
                                      : 0.25f * (AT(r0, c0, ch) +
                                                 AT(r0, c0 + 1, ch) +
                                                 AT(r0 + 1, c0, ch) +
                                                 AT(r0 + 1, c0 + 1, ch));
                    assert_float_equal(y->data[(r * 2 + c) * 2 + ch], want,
                                       1e-5);
                }
#undef AT
        nn_model_free(m);
        nn_tensor_free(x);
        nn_tensor_free(y);
    }
}

static void test_small_layer_values(void **state)
{
    (void)state;
    nn_model *m = nn_model_create(14);
    nn_layer *in = image_input(m, 2, 2, 2);
    nn_layer *z = nn_zeropad2d(m, in, 1, 0, 0, 1, NULL);
    nn_tensor *x = tensor4(1, 2, 2, 2), *y = tensor4(1, 3, 3, 2);
    for (int i = 0; i < 8; i++) x->data[i] = (float)(i + 1);
    predict(m, x, y);
    const float want[18] = {0, 0, 0, 0, 0, 0, 1, 2, 3,
                            4, 0, 0, 5, 6, 7, 8, 0, 0};
    assert_memory_equal(y->data, want, sizeof want);
    nn_tensor_free(y);
    (void)z;
    nn_layer *g = nn_global_avgpool2d(m, in, NULL);
    nn_model_set_output(m, g);
    int64_t s2[2] = {1, 2};
    y = nn_tensor_create(2, s2);
    predict(m, x, y);
    assert_float_equal(y->data[0], 4.0f, 1e-6);
    assert_float_equal(y->data[1], 5.0f, 1e-6);
    nn_tensor_free(y);
    nn_layer *rep = nn_repeat_channels(m, in, 3, NULL);
    nn_model_set_output(m, rep);
    y = tensor4(1, 2, 2, 6);
    predict(m, x, y);
    const float r0[6] = {1, 1, 1, 2, 2, 2};
    assert_memory_equal(y->data, r0, sizeof r0);
    nn_tensor_free(y);
    nn_layer *two[2] = {in, rep};
    nn_model_set_output(m, nn_concatenate(m, 2, two, NULL));
    y = tensor4(1, 2, 2, 8);
    predict(m, x, y);
    const float c1[8] = {3, 4, 3, 3, 3, 4, 4, 4};
    assert_memory_equal(y->data + 8, c1, sizeof c1);
    nn_tensor_free(y);
    nn_layer *three[3] = {in, in, nn_relu(m, in, NULL)};
    nn_model_set_output(m, nn_add(m, 3, three, NULL));
    y = tensor4(1, 2, 2, 2);
    predict(m, x, y);
    for (int i = 0; i < 8; i++)
        assert_float_equal(y->data[i], 3 * x->data[i], 0);
    nn_tensor_free(y);
    nn_tensor_free(x);
    nn_model_free(m);
}

/* LocallyConnected2D equals a convolution when every position holds the
 * same kernel, and differs when one position's kernel changes. */
static void test_local_matches_conv(void **state)
{
    (void)state;
    nn_model *m = nn_model_create(15);
    nn_layer *in = image_input(m, 7, 6, 3);
    nn_conv2d_opts o = NN_CONV2D_OPTS_INIT;
    o.stride_h = 2;
    o.bias_init = NN_INIT_GLOROT_UNIFORM;
    nn_layer *c = nn_conv2d(m, in, 5, 3, 2, &o);
    nn_layer *lc = nn_locally_connected2d(m, in, 5, 3, 2, &o);
    int64_t np = lc->params[0].value.shape[0], kf = 3 * 2 * 3 * 5;
    for (int64_t p = 0; p < np; p++) {
        memcpy(lc->params[0].value.data + p * kf, c->params[0].value.data,
               (size_t)kf * sizeof(float));
        memcpy(lc->params[1].value.data + p * 5, c->params[1].value.data,
               5 * sizeof(float));
    }
    nn_tensor *x = tensor4(3, 7, 6, 3);
    gc_fill(x->data, x->size, 1.0);
    nn_tensor *yc = tensor4(3, 3, 5, 5), *yl = tensor4(3, 3, 5, 5);
    nn_model_set_output(m, c);
    predict(m, x, yc);
    nn_model_set_output(m, lc);
    predict(m, x, yl);
    for (int64_t i = 0; i < yc->size; i++)
        assert_float_equal(yl->data[i], yc->data[i], 1e-5);
    lc->params[0].value.data[4 * kf + 7] += 1.0f; /* position 4 only */
    predict(m, x, yl);
    int differ = 0;
    for (int64_t i = 0; i < yl->size; i++)
        differ += fabsf(yl->data[i] - yc->data[i]) > 1e-6f;
    assert_true(differ > 0 && differ <= 3);
    nn_tensor_free(x);
    nn_tensor_free(yc);
    nn_tensor_free(yl);
    nn_model_free(m);
}

/* ------------------------------------------------------------------ */
/* batch normalization semantics                                       */
/* ------------------------------------------------------------------ */

static void run_bn(nn_layer *l, const float *x, float *y, int batch,
                   bool training)
{
    size_t sb = l->ops->state_bytes(l, batch);
    size_t sf = l->ops->scratch_floats(l, batch, training);
    void *st = malloc(sb);
    float *scratch = malloc(sf * sizeof(float));
    const float *ins[1] = {x};
    nn_fwd a = {.batch = batch, .training = training, .in = ins, .out = y,
                .state = st, .scratch = scratch};
    assert_int_equal(l->ops->forward(l, &a), NN_OK);
    free(st);
    free(scratch);
}

static void test_batchnorm_semantics(void **state)
{
    (void)state;
    nn_model *m = nn_model_create(16);
    nn_batchnorm_opts o = NN_BATCHNORM_OPTS_INIT;
    o.momentum = 0.75f;
    nn_layer *bn = nn_batchnorm(m, image_input(m, 3, 2, 2), &o);
    float *gamma = bn->params[0].value.data, *beta = bn->params[1].value.data;
    float *mm = bn->params[2].value.data, *mv = bn->params[3].value.data;
    gamma[0] = 2.0f;
    gamma[1] = 0.5f;
    beta[0] = 1.0f;
    beta[1] = -1.0f;
    enum { B = 4, N = B * 6 };
    float x[N * 2], y[N * 2];
    for (int i = 0; i < N; i++) {
        x[2 * i] = 10.0f + (float)(i % 5);       /* channel 0 */
        x[2 * i + 1] = -3.0f * (float)(i % 3); /* channel 1 */
    }
    run_bn(bn, x, y, B, true);
    for (int ch = 0; ch < 2; ch++) {
        double s = 0, s2 = 0, ys = 0, ys2 = 0;
        for (int i = 0; i < N; i++) {
            s += x[2 * i + ch];
            s2 += (double)x[2 * i + ch] * x[2 * i + ch];
            ys += y[2 * i + ch];
            ys2 += (double)y[2 * i + ch] * y[2 * i + ch];
        }
        double mean = s / N, var = s2 / N - mean * mean;
        double ymean = ys / N, yvar = ys2 / N - ymean * ymean;
        double g = gamma[ch], b = beta[ch];
        /* Batch statistics: normalized to beta, gamma^2 var / (var+eps). */
        assert_float_equal(ymean, b, 1e-5);
        assert_float_equal(yvar, g * g * var / (var + 1e-3), 1e-4);
        /* Moving averages, the variance unbiased. */
        assert_float_equal(mm[ch], 0.25 * mean, 1e-5);
        assert_float_equal(mv[ch], 0.75 + 0.25 * var * N / (N - 1), 1e-5);
    }
    /* Inference uses the moving statistics and writes nothing. */
    float keep_m[2] = {mm[0], mm[1]}, keep_v[2] = {mv[0], mv[1]};
    run_bn(bn, x, y, B, false);
    for (int i = 0; i < N; i++)
        for (int ch = 0; ch < 2; ch++) {
            double want = (x[2 * i + ch] - mm[ch]) / sqrt(mv[ch] + 1e-3) *
                              gamma[ch] + beta[ch];
            assert_float_equal(y[2 * i + ch], want, 1e-4 * fmax(1, fabs(want)));
        }
    assert_memory_equal(mm, keep_m, sizeof keep_m);
    assert_memory_equal(mv, keep_v, sizeof keep_v);
    /* A frozen layer in a training pass: inference mode, no update. */
    float yi[N * 2];
    memcpy(yi, y, sizeof y);
    assert_int_equal(nn_layer_set_trainable(bn, 0), NN_OK);
    run_bn(bn, x, y, B, true);
    assert_memory_equal(y, yi, sizeof y);
    assert_memory_equal(mm, keep_m, sizeof keep_m);
    assert_memory_equal(mv, keep_v, sizeof keep_v);
    assert_int_equal(nn_model_num_trainable_params(m), 0);
    nn_model_free(m);
}

/* Batch statistics do not depend on the thread count, bit for bit. */
static void test_batchnorm_threads(void **state)
{
    (void)state;
    nn_model *m = nn_model_create(17);
    nn_layer *bn = nn_batchnorm(m, image_input(m, 32, 32, 8), NULL);
    int batch = 8;
    int64_t n = (int64_t)batch * 32 * 32 * 8;
    float *x = malloc((size_t)n * sizeof(float));
    float *y1 = malloc((size_t)n * sizeof(float));
    float *y2 = malloc((size_t)n * sizeof(float));
    gc_fill(x, n, 3.0);
    float m1[8], m2[8];
    nn_set_num_threads(1);
    run_bn(bn, x, y1, batch, true);
    memcpy(m1, bn->params[2].value.data, sizeof m1);
    memset(bn->params[2].value.data, 0, sizeof m1);
    nn_set_num_threads(3);
    run_bn(bn, x, y2, batch, true);
    memcpy(m2, bn->params[2].value.data, sizeof m2);
    nn_set_num_threads(0);
    assert_memory_equal(y1, y2, (size_t)n * sizeof(float));
    assert_memory_equal(m1, m2, sizeof m1);
    free(x);
    free(y1);
    free(y2);
    nn_model_free(m);
}

/* ------------------------------------------------------------------ */
/* invalid arguments                                                   */
/* ------------------------------------------------------------------ */

static void test_invalid_arguments(void **state)
{
    (void)state;
    nn_model *m = nn_model_create(34), *other = nn_model_create(35);
    nn_layer *in = image_input(m, 8, 8, 3);
    nn_layer *in2 = image_input(other, 8, 8, 3);
    nn_layer *small = nn_conv2d(m, in, 3, 3, 3, NULL); /* 6x6x3 */
    int v[1] = {5};
    nn_model *vm = nn_model_create(36);
    nn_layer *vec = nn_input(vm, 1, v, NULL);
    int before = nn_model_num_layers(m);

    nn_batchnorm_opts bo = NN_BATCHNORM_OPTS_INIT;
    EXPECT_NULL_WITH_MESSAGE(nn_batchnorm(NULL, in, NULL));
    EXPECT_NULL_WITH_MESSAGE(nn_batchnorm(m, NULL, NULL));
    bo.momentum = 1.5f;
    EXPECT_NULL_WITH_MESSAGE(nn_batchnorm(m, in, &bo));
    bo.momentum = NAN;
    EXPECT_NULL_WITH_MESSAGE(nn_batchnorm(m, in, &bo));
    bo = (nn_batchnorm_opts)NN_BATCHNORM_OPTS_INIT;
    bo.epsilon = 0.0f;
    EXPECT_NULL_WITH_MESSAGE(nn_batchnorm(m, in, &bo));
    bo.epsilon = INFINITY;
    EXPECT_NULL_WITH_MESSAGE(nn_batchnorm(m, in, &bo));
    bo = (nn_batchnorm_opts)NN_BATCHNORM_OPTS_INIT;
    bo.size = 2;
    EXPECT_NULL_WITH_MESSAGE(nn_batchnorm(m, in, &bo));

    EXPECT_NULL_WITH_MESSAGE(nn_zeropad2d(m, in, -1, 0, 0, 0, NULL));
    EXPECT_NULL_WITH_MESSAGE(nn_zeropad2d(m, in, 0, 0, 0, 1 << 30, NULL));
    EXPECT_NULL_WITH_MESSAGE(nn_zeropad2d(m, vec, 1, 1, 1, 1, NULL));
    EXPECT_NULL_WITH_MESSAGE(nn_zeropad2d(NULL, in, 1, 1, 1, 1, NULL));

    nn_layer *pair[2] = {in, small};
    nn_layer *cross[2] = {in, in2};
    nn_layer *holes[2] = {in, NULL};
    nn_layer *many[NN_LAYER_MAX_INPUTS + 1];
    for (int i = 0; i <= NN_LAYER_MAX_INPUTS; i++) many[i] = in;
    EXPECT_NULL_WITH_MESSAGE(nn_add(m, 2, pair, NULL)); /* shapes differ */
    EXPECT_NULL_WITH_MESSAGE(nn_add(m, 1, pair, NULL));
    EXPECT_NULL_WITH_MESSAGE(nn_add(m, NN_LAYER_MAX_INPUTS + 1, many, NULL));
    EXPECT_NULL_WITH_MESSAGE(nn_add(m, 2, NULL, NULL));
    EXPECT_NULL_WITH_MESSAGE(nn_add(m, 2, holes, NULL));
    EXPECT_NULL_WITH_MESSAGE(nn_add(m, 2, cross, NULL));
    EXPECT_NULL_WITH_MESSAGE(nn_add(NULL, 2, pair, NULL));
    EXPECT_NULL_WITH_MESSAGE(nn_concatenate(m, 2, pair, NULL)); /* 8 vs 6 */
    EXPECT_NULL_WITH_MESSAGE(nn_concatenate(m, 0, pair, NULL));
    EXPECT_NULL_WITH_MESSAGE(nn_concatenate(m, 2, cross, NULL));
    nn_layer *ranks[2] = {in, nn_flatten(m, in, NULL)};
    before++;
    EXPECT_NULL_WITH_MESSAGE(nn_concatenate(m, 2, ranks, NULL));

    EXPECT_NULL_WITH_MESSAGE(nn_global_avgpool2d(m, vec, NULL));
    EXPECT_NULL_WITH_MESSAGE(nn_global_avgpool2d(m, NULL, NULL));

    nn_resizing_opts ro = NN_RESIZING_OPTS_INIT;
    EXPECT_NULL_WITH_MESSAGE(nn_resizing(m, in, 0, 4, NULL));
    EXPECT_NULL_WITH_MESSAGE(nn_resizing(m, in, 4, -4, NULL));
    EXPECT_NULL_WITH_MESSAGE(nn_resizing(m, vec, 4, 4, NULL));
    EXPECT_NULL_WITH_MESSAGE(nn_resizing(m, in, 1 << 20, 1 << 20, NULL));
    ro.interpolation = (nn_interpolation)7;
    EXPECT_NULL_WITH_MESSAGE(nn_resizing(m, in, 4, 4, &ro));

    EXPECT_NULL_WITH_MESSAGE(nn_repeat_channels(m, in, 0, NULL));
    EXPECT_NULL_WITH_MESSAGE(nn_repeat_channels(m, in, 1 << 25, NULL));
    EXPECT_NULL_WITH_MESSAGE(nn_repeat_channels(NULL, in, 2, NULL));

    nn_conv2d_opts co = NN_CONV2D_OPTS_INIT;
    co.padding = NN_PADDING_SAME;
    nn_clear_error();
    assert_null(nn_locally_connected2d(m, in, 4, 3, 3, &co));
    assert_non_null(strstr(nn_last_error(), "valid"));
    co = (nn_conv2d_opts)NN_CONV2D_OPTS_INIT;
    EXPECT_NULL_WITH_MESSAGE(nn_locally_connected2d(m, in, 4, 9, 3, &co));
    EXPECT_NULL_WITH_MESSAGE(nn_locally_connected2d(m, in, 0, 3, 3, &co));
    EXPECT_NULL_WITH_MESSAGE(nn_locally_connected2d(m, vec, 2, 1, 1, &co));
    EXPECT_NULL_WITH_MESSAGE(nn_locally_connected2d(NULL, in, 2, 1, 1, &co));
    co.stride_w = 0;
    EXPECT_NULL_WITH_MESSAGE(nn_locally_connected2d(m, in, 4, 3, 3, &co));
    co = (nn_conv2d_opts)NN_CONV2D_OPTS_INIT;
    co.activation = (nn_activation)9;
    EXPECT_NULL_WITH_MESSAGE(nn_locally_connected2d(m, in, 4, 3, 3, &co));

    /* Failures leave the model as it was. */
    assert_int_equal(nn_model_num_layers(m), before);

    nn_clear_error();
    assert_int_equal(nn_layer_set_trainable(NULL, 0), NN_ERR_INVALID);
    assert_true(nn_last_error()[0] != '\0');
    assert_true(nn_layer_trainable(NULL) < 0);
    assert_int_equal(nn_model_set_trainable(NULL, 1), NN_ERR_INVALID);
    int rh;
    assert_int_equal(nn_layer_receptive_field(NULL, &rh, NULL, NULL, NULL),
                     NN_ERR_INVALID);
    /* Any nonzero value means trainable. */
    assert_int_equal(nn_layer_set_trainable(small, 5), NN_OK);
    assert_int_equal(nn_layer_trainable(small), 1);
    nn_model_free(vm);
    nn_model_free(other);
    nn_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gradients_batchnorm),
        cmocka_unit_test(test_gradients_shape_layers),
        cmocka_unit_test(test_gradients_merge),
        cmocka_unit_test(test_gradients_resizing),
        cmocka_unit_test(test_gradients_locally_connected),
        cmocka_unit_test(test_merge_accum_flags),
        cmocka_unit_test(test_shapes_and_names),
        cmocka_unit_test(test_resizing_values),
        cmocka_unit_test(test_small_layer_values),
        cmocka_unit_test(test_local_matches_conv),
        cmocka_unit_test(test_batchnorm_semantics),
        cmocka_unit_test(test_batchnorm_threads),
        cmocka_unit_test(test_invalid_arguments),
    };
    return cmocka_run_group_tests_name("layers_blocks", tests, NULL, NULL);
}

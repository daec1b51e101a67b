/* Layers: finite-difference gradient checks of every kind (each kind's
 * cases come from its row of kind_cases; a kind without a row does not
 * compile, and the tests that walk the registry fail), shape inference,
 * constructor validation, options of any size, config round trips and
 * rejection of damaged configs, initializers, dropout and activations. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "layers/layers.h"

#include "gradcheck.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* helpers                                                             */
/* ------------------------------------------------------------------ */

static nn_layer *image_input(nn_model *m, int h, int w, int c)
{
    int shape[3] = {h, w, c};
    return nn_input(m, 3, shape, NULL);
}

static nn_layer *vector_input(nn_model *m, int rank, const int *shape)
{
    return nn_input(m, rank, shape, NULL);
}

static nn_conv2d_opts conv_opts(int sh, int sw, nn_padding pad, int bias,
                                nn_activation act)
{
    nn_conv2d_opts o = NN_CONV2D_OPTS_INIT;
    o.stride_h = sh;
    o.stride_w = sw;
    o.padding = pad;
    o.use_bias = bias;
    o.activation = act;
    /* Non-zero biases so a wrong bias gradient shows. */
    o.bias_init = bias ? NN_INIT_GLOROT_UNIFORM : NN_INIT_DEFAULT;
    return o;
}

static nn_dense_opts dense_opts(int bias, nn_activation act)
{
    nn_dense_opts o = NN_DENSE_OPTS_INIT;
    o.use_bias = bias;
    o.activation = act;
    o.bias_init = bias ? NN_INIT_GLOROT_UNIFORM : NN_INIT_DEFAULT;
    return o;
}

/* One row per layer kind (the table is below the checks it names). */
typedef struct kind_case kind_case;
struct kind_case {
    nn_layer_kind kind;
    const char *type, *stem; /* Keras class name and default name stem */
    /* A representative, non-default layer on `in`, a 9x8x3 image input:
     * the config tests' sample, and the gradient check's. */
    nn_layer *(*sample)(nn_model *m, nn_layer *in);
    int sample_checks; /* gradient checks of the sample: GC_TRAIN|GC_INFER */
    /* Further gradient checks (options swept), or NULL; returns how many
     * it ran. */
    int (*sweep)(const kind_case *c);
    double atol, rtol; /* gradient-check tolerances; 0: GC_OPTS_INIT's */
    /* Float config fields, which the integer poison of
     * test_config_rejects_garbage may leave valid (tested where the kind
     * is tested in depth). */
    bool float_config;
};

enum { GC_TRAIN = 1, GC_INFER = 2 };

/* Runs the gradient check with the kind's tolerances and asserts it passed
 * on enough coordinates. Smooth layers may report a few curved coordinates
 * as kinks; every layer must have most of its coordinates checked at full
 * tolerance. */
static void expect_gradients(const kind_case *c, nn_layer *l, int batch,
                             bool use_logits, bool training)
{
    assert_non_null(l);
    gc_opts o = GC_OPTS_INIT;
    o.use_logits = use_logits;
    o.training = training;
    if (c->atol > 0) o.atol = c->atol;
    if (c->rtol > 0) o.rtol = c->rtol;
    gc_result r = gc_check_layer(l, batch, &o);
    if (getenv("GC_VERBOSE") || r.failed || r.kinky * 5 > r.checked)
        fprintf(stderr, "%s %s: %lld checked, %lld failed, %lld kinky, worst %.2g\n",
                l->ops->type_name, l->name, (long long)r.checked,
                (long long)r.failed, (long long)r.kinky, r.worst);
    assert_true(r.checked > 0);
    assert_int_equal(r.failed, 0);
    assert_true(r.kinky * 5 <= r.checked);
}

/* ------------------------------------------------------------------ */
/* gradient checks over options, per kind                              */
/* ------------------------------------------------------------------ */

static int gc_input(const kind_case *c)
{
    /* No gradient to check: forward and backward must be harmless
     * no-ops. */
    nn_model *m = nn_model_create(1);
    nn_layer *in = image_input(m, 2, 2, 1);
    assert_non_null(in);
    float x[4] = {1, 2, 3, 4};
    const float *ins[1] = {x};
    nn_fwd a = {.batch = 1, .in = ins, .out = x};
    assert_int_equal(in->ops->forward(in, &a), NN_OK);
    nn_bwd b = {.batch = 1, .in = ins, .out = x, .dout = x};
    assert_int_equal(in->ops->backward(in, &b), NN_OK);
    assert_float_equal(x[3], 4.0f, 0);
    nn_model_free(m);
    return 1;
}

static int gc_conv2d(const kind_case *kc)
{
    static const struct {
        int h, w, c, f, kh, kw, sh, sw;
        nn_padding pad;
        int bias;
        nn_activation act;
    } cases[] = {
        {5, 6, 3, 4, 3, 3, 1, 1, NN_PADDING_VALID, 1, NN_ACT_NONE},
        {5, 6, 3, 4, 3, 3, 1, 1, NN_PADDING_SAME, 1, NN_ACT_NONE},
        {7, 6, 2, 3, 3, 2, 2, 2, NN_PADDING_SAME, 0, NN_ACT_NONE},
        {7, 7, 2, 3, 3, 3, 2, 1, NN_PADDING_VALID, 1, NN_ACT_RELU},
        {6, 6, 2, 3, 3, 3, 1, 1, NN_PADDING_SAME, 1, NN_ACT_RELU},
        {5, 5, 3, 4, 1, 1, 1, 1, NN_PADDING_VALID, 1, NN_ACT_SIGMOID},
        {6, 5, 2, 5, 3, 3, 1, 1, NN_PADDING_SAME, 1, NN_ACT_SOFTMAX},
        {4, 4, 2, 3, 2, 2, 2, 2, NN_PADDING_VALID, 0, NN_ACT_SIGMOID},
        {4, 5, 1, 2, 5, 4, 1, 1, NN_PADDING_SAME, 1, NN_ACT_NONE},
        {6, 7, 3, 2, 1, 1, 2, 2, NN_PADDING_VALID, 1, NN_ACT_NONE},
        {6, 7, 3, 2, 1, 1, 1, 1, NN_PADDING_SAME, 0, NN_ACT_SOFTMAX},
    };
    int n = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        nn_model *m = nn_model_create(10 + i);
        nn_layer *in = image_input(m, cases[i].h, cases[i].w, cases[i].c);
        nn_conv2d_opts o = conv_opts(cases[i].sh, cases[i].sw, cases[i].pad,
                                     cases[i].bias, cases[i].act);
        nn_layer *l = nn_conv2d(m, in, cases[i].f, cases[i].kh, cases[i].kw,
                                &o);
        expect_gradients(kc, l, 2, false, true);
        n++;
        if (cases[i].act == NN_ACT_SOFTMAX || cases[i].act == NN_ACT_SIGMOID) {
            expect_gradients(kc, l, 2, true, true);
            n++;
        }
        nn_model_free(m);
    }
    return n;
}

static int gc_pool(const kind_case *c)
{
    static const struct {
        int h, w, c, ph, pw, sh, sw;
        nn_padding pad;
    } cases[] = {
        {6, 6, 2, 2, 2, 0, 0, NN_PADDING_VALID},
        {5, 5, 2, 2, 2, 0, 0, NN_PADDING_SAME},
        {6, 5, 3, 3, 3, 2, 2, NN_PADDING_VALID},
        {5, 7, 2, 3, 2, 1, 1, NN_PADDING_SAME},
        {5, 5, 1, 2, 2, 3, 3, NN_PADDING_VALID},
        {4, 6, 2, 3, 3, 2, 1, NN_PADDING_SAME},
    };
    bool max = c->kind == NN_KIND_MAXPOOL2D;
    int n = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        nn_model *m = nn_model_create(20 + i);
        nn_layer *in = image_input(m, cases[i].h, cases[i].w, cases[i].c);
        nn_pool2d_opts o = NN_POOL2D_OPTS_INIT;
        o.stride_h = cases[i].sh;
        o.stride_w = cases[i].sw;
        o.padding = cases[i].pad;
        nn_layer *l = max ? nn_maxpool2d(m, in, cases[i].ph, cases[i].pw, &o)
                          : nn_avgpool2d(m, in, cases[i].ph, cases[i].pw, &o);
        expect_gradients(c, l, 2, false, true);
        nn_model_free(m);
        n++;
    }
    return n;
}

static int gc_flatten(const kind_case *c)
{
    nn_model *m = nn_model_create(3);
    nn_layer *l = nn_flatten(m, image_input(m, 3, 4, 2), NULL);
    expect_gradients(c, l, 2, false, true);
    nn_model_free(m);
    return 1;
}

static int gc_dropout(const kind_case *c)
{
    int n = 0;
    const float rates[] = {0.3f, 0.0f, 0.75f};
    for (int i = 0; i < 3; i++)
        for (int training = 0; training <= 1; training++) {
            nn_model *m = nn_model_create(4);
            int shape[2] = {5, 6};
            nn_layer *l = nn_dropout(m, vector_input(m, 2, shape), rates[i],
                                     NULL);
            expect_gradients(c, l, 3, false, training);
            nn_model_free(m);
            n++;
        }
    return n;
}

static int gc_dense(const kind_case *c)
{
    const nn_activation acts[] = {NN_ACT_NONE, NN_ACT_RELU, NN_ACT_SIGMOID,
                                  NN_ACT_SOFTMAX};
    int n = 0;
    for (int a = 0; a < 4; a++)
        for (int bias = 0; bias <= 1; bias++)
            for (int rank = 1; rank <= 2; rank++) {
                nn_model *m = nn_model_create(30 + a);
                int shape[2] = {rank == 1 ? 7 : 3, 4};
                nn_dense_opts o = dense_opts(bias, acts[a]);
                nn_layer *l = nn_dense(m, vector_input(m, rank, shape), 5, &o);
                expect_gradients(c, l, 3, false, true);
                n++;
                if (acts[a] == NN_ACT_SIGMOID || acts[a] == NN_ACT_SOFTMAX) {
                    expect_gradients(c, l, 3, true, true);
                    n++;
                }
                nn_model_free(m);
            }
    return n;
}

/* The activation layers (their samples) on a rank-3 input; sigmoid and
 * softmax also through the logits they keep for the loss. */
static int gc_activation(const kind_case *c)
{
    nn_model *m = nn_model_create(5);
    int shape[3] = {2, 3, 4};
    nn_layer *l = c->sample(m, vector_input(m, 3, shape));
    bool has_logits = c->kind == NN_KIND_SIGMOID || c->kind == NN_KIND_SOFTMAX;
    expect_gradients(c, l, 2, false, true);
    if (has_logits) expect_gradients(c, l, 2, true, true);
    nn_model_free(m);
    return has_logits ? 2 : 1;
}

/* As expect_gradients, with inputs uniform in [-scale, scale). */
static void expect_gradients_scaled(const kind_case *c, nn_layer *l,
                                    double scale)
{
    assert_non_null(l);
    gc_opts o = GC_OPTS_INIT;
    o.in_scale = scale;
    gc_result r = gc_check_layer(l, 2, &o);
    if (r.failed || r.kinky * 5 > r.checked)
        fprintf(stderr, "%s %s: %lld checked, %lld failed, %lld kinky\n",
                l->ops->type_name, l->name, (long long)r.checked,
                (long long)r.failed, (long long)r.kinky);
    assert_true(r.checked > 0);
    assert_int_equal(r.failed, 0);
    assert_true(r.kinky * 5 <= r.checked);
}

/* ReLU6 as a layer and as the fused activation of Conv2D and Dense, on
 * inputs large enough that both clamps (0 and 6) are crossed. */
static int gc_relu6(const kind_case *c)
{
    int n = gc_activation(c);
    nn_model *m = nn_model_create(6);
    int shape[3] = {3, 4, 5};
    nn_layer *in = vector_input(m, 3, shape);
    expect_gradients_scaled(c, nn_relu6(m, in, NULL), 9.0);
    nn_dense_opts dop = dense_opts(1, NN_ACT_RELU6);
    dop.kernel_init = NN_INIT_HE_UNIFORM;
    expect_gradients_scaled(c, nn_dense(m, in, 6, &dop), 6.0);
    nn_conv2d_opts co = conv_opts(1, 1, NN_PADDING_SAME, 1, NN_ACT_RELU6);
    co.kernel_init = NN_INIT_HE_UNIFORM;
    expect_gradients_scaled(c, nn_conv2d(m, in, 4, 3, 3, &co), 6.0);
    nn_model_free(m);
    return n + 3;
}

/* The fused ReLU6 clamps at both ends: a Dense of ones sums its inputs. */
static void test_relu6_activation(void **state)
{
    (void)state;
    nn_model *m = nn_model_create(1);
    int shape[1] = {2};
    nn_dense_opts o = dense_opts(0, NN_ACT_RELU6);
    o.kernel_init = NN_INIT_ONES;
    assert_non_null(nn_dense(m, vector_input(m, 1, shape), 1, &o));
    nn_conv2d_opts co = NN_CONV2D_OPTS_INIT;
    co.activation = NN_ACT_RELU6;
    co.use_bias = 0;
    co.kernel_init = NN_INIT_ONES;
    int ishape[3] = {1, 1, 2};
    nn_model *mc = nn_model_create(1);
    assert_non_null(nn_conv2d(mc, vector_input(mc, 3, ishape), 1, 1, 1, &co));
    float x[10] = {-3, 1, 2, 1, 4, 3, 10, -1, NAN, 0};
    float want[5] = {0, 3, 6, 6, NAN};
    float y[5], yc[5];
    int64_t xs[2] = {5, 2}, ys[2] = {5, 1};
    int64_t xcs[4] = {5, 1, 1, 2}, ycs[4] = {5, 1, 1, 1};
    nn_tensor *xt = nn_tensor_wrap(2, xs, x), *yt = nn_tensor_wrap(2, ys, y);
    nn_tensor *xct = nn_tensor_wrap(4, xcs, x);
    nn_tensor *yct = nn_tensor_wrap(4, ycs, yc);
    assert_int_equal(nn_model_predict(m, xt, yt, 5), NN_OK);
    assert_int_equal(nn_model_predict(mc, xct, yct, 5), NN_OK);
    for (int i = 0; i < 4; i++) {
        assert_float_equal(y[i], want[i], 1e-6);
        assert_float_equal(yc[i], want[i], 1e-6);
    }
    assert_true(isnan(y[4]) && isnan(yc[4])); /* NaN passes, as ReLU's */
    nn_tensor_free(xt);
    nn_tensor_free(yt);
    nn_tensor_free(xct);
    nn_tensor_free(yct);
    nn_model_free(m);
    nn_model_free(mc);
}

/* Predicts y for x [5, 2] through a one-layer model on a [2] input. */
static void predict_5x2(nn_model *m, const float *x, float *y)
{
    int64_t s[2] = {5, 2};
    nn_tensor *xt = nn_tensor_wrap(2, s, (float *)x);
    nn_tensor *yt = nn_tensor_wrap(2, s, y);
    assert_int_equal(nn_model_predict(m, xt, yt, 5), NN_OK);
    nn_tensor_free(xt);
    nn_tensor_free(yt);
}

/* The new activations' values, as layers and fused into a Dense that
 * passes its input through (identity kernel): slopes, alpha placement,
 * the value at 0 and NaN. */
static void test_new_activations(void **state)
{
    (void)state;
    const float x[10] = {-2, 3, 0, -0.5f, 1, -1, NAN, -4, 0.25f, -3};
    float y[10];
    int shape[1] = {2};
    struct {
        int which;
        nn_activation act;
    } cases[] = {{0, NN_ACT_LEAKY_RELU}, {1, NN_ACT_ELU}, {2, NN_ACT_TANH},
                 {3, NN_ACT_NONE}};
    for (int c = 0; c < 4; c++) {
        nn_model *m = nn_model_create(1);
        nn_layer *in = vector_input(m, 1, shape);
        nn_prelu_opts po = NN_PRELU_OPTS_INIT;
        switch (cases[c].which) {
        case 0: assert_non_null(nn_leaky_relu(m, in, 0.3f, NULL)); break;
        case 1: assert_non_null(nn_elu(m, in, 0.5f, NULL)); break;
        case 2: assert_non_null(nn_tanh(m, in, NULL)); break;
        default:
            po.alpha_init_value = 0.25f;
            assert_non_null(nn_prelu(m, in, &po));
            nn_layer_weight(nn_model_output(m), 0)->data[1] = 2.0f;
        }
        predict_5x2(m, x, y);
        for (int i = 0; i < 10; i++) {
            float v = x[i], want;
            switch (cases[c].which) {
            case 0: want = v > 0 ? v : 0.3f * v; break;
            case 1: want = v > 0 ? v : 0.5f * expm1f(v); break;
            case 2: want = tanhf(v); break;
            default: want = v > 0 ? v : (i % 2 ? 2.0f : 0.25f) * v;
            }
            if (isnan(v))
                assert_true(isnan(y[i]));
            else
                assert_float_equal(y[i], want, 1e-6);
        }
        nn_model_free(m);
        if (cases[c].act == NN_ACT_NONE) continue;
        /* The fused activation: slope 0.2 for "leaky_relu", alpha 1 for
         * "elu". */
        m = nn_model_create(1);
        nn_dense_opts o = dense_opts(0, cases[c].act);
        o.kernel_init = NN_INIT_ZEROS;
        nn_layer *d = nn_dense(m, vector_input(m, 1, shape), 2, &o);
        nn_tensor *k = nn_layer_weight(d, 0);
        k->data[0] = k->data[3] = 1.0f;
        predict_5x2(m, x, y);
        for (int i = 0; i < 10; i++) {
            float v = x[i];
            float want = cases[c].act == NN_ACT_LEAKY_RELU ? (v > 0 ? v : 0.2f * v)
                         : cases[c].act == NN_ACT_ELU      ? (v > 0 ? v : expm1f(v))
                                                           : tanhf(v);
            if (isnan(v))
                assert_true(isnan(y[i]));
            else
                assert_float_equal(y[i], want, 1e-6);
        }
        nn_model_free(m);
    }
}

/* UpSampling2D over factors and both interpolations, odd and even sizes. */
static int gc_upsampling2d(const kind_case *c)
{
    static const struct {
        int h, w, ch, sh, sw;
        nn_interpolation interp;
    } cases[] = {
        {3, 4, 2, 2, 2, NN_INTERP_NEAREST}, {3, 4, 2, 2, 2, NN_INTERP_BILINEAR},
        {2, 3, 3, 3, 1, NN_INTERP_BILINEAR}, {4, 1, 2, 1, 3, NN_INTERP_BILINEAR},
        {1, 2, 2, 2, 3, NN_INTERP_NEAREST},
    };
    int n = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        nn_model *m = nn_model_create(40 + i);
        nn_upsampling2d_opts o = NN_UPSAMPLING2D_OPTS_INIT;
        o.interpolation = cases[i].interp;
        nn_layer *l = nn_upsampling2d(
            m, image_input(m, cases[i].h, cases[i].w, cases[i].ch),
            cases[i].sh, cases[i].sw, &o);
        expect_gradients(c, l, 2, false, true);
        nn_model_free(m);
        n++;
    }
    return n;
}

/* The gradient checks of a layer with a fused activation: ReLU6 on
 * inputs that cross its clamps, softmax and sigmoid also through their
 * logits. Returns how many ran. */
static int expect_act_gradients(const kind_case *kc, nn_layer *l,
                                nn_activation act)
{
    if (act == NN_ACT_RELU6) {
        expect_gradients_scaled(kc, l, 5.0);
        return 1;
    }
    expect_gradients(kc, l, 2, false, true);
    if (!nn__act_keeps_logits(act)) return 1;
    expect_gradients(kc, l, 2, true, true);
    return 2;
}

static nn_depthwise_conv2d_opts dw_opts(int sh, int sw, nn_padding pad,
                                        int mult, int bias, nn_activation act)
{
    nn_depthwise_conv2d_opts o = NN_DEPTHWISE_CONV2D_OPTS_INIT;
    o.stride_h = sh;
    o.stride_w = sw;
    o.padding = pad;
    o.depth_multiplier = mult;
    o.use_bias = bias;
    o.activation = act;
    o.bias_init = bias ? NN_INIT_GLOROT_UNIFORM : NN_INIT_DEFAULT;
    return o;
}

/* DepthwiseConv2D over strides, both paddings, multipliers, bias and the
 * fused activations (ReLU6 on inputs that cross its clamps). */
static int gc_depthwise_conv2d(const kind_case *kc)
{
    static const struct {
        int h, w, c, kh, kw, sh, sw;
        nn_padding pad;
        int mult, bias;
        nn_activation act;
    } cases[] = {
        {5, 6, 3, 3, 3, 1, 1, NN_PADDING_VALID, 1, 1, NN_ACT_NONE},
        {5, 6, 3, 3, 3, 1, 1, NN_PADDING_SAME, 2, 0, NN_ACT_NONE},
        {7, 6, 2, 3, 3, 2, 2, NN_PADDING_SAME, 1, 0, NN_ACT_RELU},
        {6, 7, 4, 3, 3, 2, 2, NN_PADDING_SAME, 1, 1, NN_ACT_NONE},
        {7, 7, 2, 3, 2, 3, 1, NN_PADDING_VALID, 3, 1, NN_ACT_SIGMOID},
        {4, 5, 1, 4, 4, 1, 1, NN_PADDING_SAME, 2, 1, NN_ACT_SOFTMAX},
        {6, 5, 17, 3, 3, 1, 2, NN_PADDING_SAME, 1, 1, NN_ACT_RELU6},
        {8, 8, 3, 5, 5, 2, 2, NN_PADDING_SAME, 1, 0, NN_ACT_NONE},
        {5, 5, 5, 1, 1, 1, 1, NN_PADDING_VALID, 2, 1, NN_ACT_NONE},
    };
    int n = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        nn_model *m = nn_model_create(50 + i);
        nn_layer *in = image_input(m, cases[i].h, cases[i].w, cases[i].c);
        nn_depthwise_conv2d_opts o =
            dw_opts(cases[i].sh, cases[i].sw, cases[i].pad, cases[i].mult,
                    cases[i].bias, cases[i].act);
        nn_layer *l = nn_depthwise_conv2d(m, in, cases[i].kh, cases[i].kw, &o);
        n += expect_act_gradients(kc, l, cases[i].act);
        nn_model_free(m);
    }
    return n;
}

static nn_conv2d_transpose_opts ct_opts(int sh, int sw, nn_padding pad,
                                        int op_h, int op_w, int bias,
                                        nn_activation act)
{
    nn_conv2d_transpose_opts o = NN_CONV2D_TRANSPOSE_OPTS_INIT;
    o.stride_h = sh;
    o.stride_w = sw;
    o.padding = pad;
    o.output_padding_h = op_h;
    o.output_padding_w = op_w;
    o.use_bias = bias;
    o.activation = act;
    o.bias_init = bias ? NN_INIT_GLOROT_UNIFORM : NN_INIT_DEFAULT;
    return o;
}

/* Conv2DTranspose over strides 1-3, both paddings, output_padding None
 * and set, odd and even kernels, bias and the fused activations. */
static int gc_conv2d_transpose(const kind_case *kc)
{
    static const struct {
        int h, w, c, f, kh, kw, sh, sw;
        nn_padding pad;
        int op_h, op_w, bias;
        nn_activation act;
    } cases[] = {
        {3, 4, 2, 3, 3, 3, 1, 1, NN_PADDING_VALID, -1, -1, 1, NN_ACT_NONE},
        {3, 4, 2, 3, 3, 3, 2, 2, NN_PADDING_SAME, -1, -1, 0, NN_ACT_NONE},
        {4, 3, 3, 2, 4, 4, 2, 2, NN_PADDING_SAME, -1, -1, 1, NN_ACT_RELU},
        {3, 3, 2, 2, 3, 2, 3, 2, NN_PADDING_VALID, 2, 1, 1, NN_ACT_NONE},
        {2, 3, 2, 3, 3, 3, 2, 3, NN_PADDING_SAME, 1, 2, 1, NN_ACT_SIGMOID},
        {3, 2, 1, 4, 2, 2, 3, 3, NN_PADDING_VALID, -1, -1, 1, NN_ACT_SOFTMAX},
        {4, 4, 3, 2, 1, 1, 2, 2, NN_PADDING_SAME, -1, -1, 1, NN_ACT_RELU6},
        {3, 5, 2, 2, 5, 3, 1, 2, NN_PADDING_SAME, 0, 1, 0, NN_ACT_NONE},
    };
    int n = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        nn_model *m = nn_model_create(60 + i);
        nn_layer *in = image_input(m, cases[i].h, cases[i].w, cases[i].c);
        nn_conv2d_transpose_opts o =
            ct_opts(cases[i].sh, cases[i].sw, cases[i].pad, cases[i].op_h,
                    cases[i].op_w, cases[i].bias, cases[i].act);
        nn_layer *l = nn_conv2d_transpose(m, in, cases[i].f, cases[i].kh,
                                          cases[i].kw, &o);
        n += expect_act_gradients(kc, l, cases[i].act);
        nn_model_free(m);
    }
    return n;
}

/* SeparableConv2D over strides, paddings, multipliers, bias and the fused
 * activations. */
static int gc_separable_conv2d(const kind_case *kc)
{
    static const struct {
        int h, w, c, f, kh, kw, sh, sw;
        nn_padding pad;
        int mult, bias;
        nn_activation act;
    } cases[] = {
        {5, 6, 3, 4, 3, 3, 1, 1, NN_PADDING_VALID, 1, 1, NN_ACT_NONE},
        {6, 5, 2, 3, 3, 3, 2, 2, NN_PADDING_SAME, 2, 0, NN_ACT_RELU},
        {5, 5, 3, 2, 2, 3, 1, 2, NN_PADDING_SAME, 1, 1, NN_ACT_SOFTMAX},
        {7, 6, 4, 5, 3, 3, 3, 1, NN_PADDING_VALID, 3, 1, NN_ACT_SIGMOID},
    };
    int n = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        nn_model *m = nn_model_create(70 + i);
        nn_layer *in = image_input(m, cases[i].h, cases[i].w, cases[i].c);
        nn_separable_conv2d_opts o = NN_SEPARABLE_CONV2D_OPTS_INIT;
        o.stride_h = cases[i].sh;
        o.stride_w = cases[i].sw;
        o.padding = cases[i].pad;
        o.depth_multiplier = cases[i].mult;
        o.use_bias = cases[i].bias;
        o.activation = cases[i].act;
        o.bias_init = cases[i].bias ? NN_INIT_GLOROT_UNIFORM : NN_INIT_DEFAULT;
        nn_layer *l = nn_separable_conv2d(m, in, cases[i].f, cases[i].kh,
                                          cases[i].kw, &o);
        n += expect_act_gradients(kc, l, cases[i].act);
        nn_model_free(m);
    }
    return n;
}

/* Every layer kind that takes a fused activation, with `act`, on inputs
 * in [-scale, scale): Dense, Conv2D, LocallyConnected2D, DepthwiseConv2D,
 * Conv2DTranspose and SeparableConv2D. Returns how many ran. */
static int gc_fused_everywhere(const kind_case *kc, nn_activation act,
                               double scale)
{
    nn_model *m = nn_model_create(80 + (int)act);
    nn_layer *in = image_input(m, 5, 4, 3);
    nn_dense_opts dop = dense_opts(1, act);
    expect_gradients_scaled(kc, nn_dense(m, in, 4, &dop), scale);
    nn_conv2d_opts co = conv_opts(1, 1, NN_PADDING_SAME, 1, act);
    expect_gradients_scaled(kc, nn_conv2d(m, in, 3, 3, 3, &co), scale);
    co = conv_opts(1, 1, NN_PADDING_VALID, 1, act);
    expect_gradients_scaled(kc, nn_locally_connected2d(m, in, 2, 2, 2, &co),
                            scale);
    nn_depthwise_conv2d_opts dwo =
        dw_opts(1, 1, NN_PADDING_SAME, 2, 1, act);
    expect_gradients_scaled(kc, nn_depthwise_conv2d(m, in, 3, 3, &dwo),
                            scale);
    nn_conv2d_transpose_opts cto =
        ct_opts(2, 2, NN_PADDING_SAME, -1, -1, 1, act);
    expect_gradients_scaled(kc, nn_conv2d_transpose(m, in, 2, 3, 3, &cto),
                            scale);
    nn_separable_conv2d_opts so = NN_SEPARABLE_CONV2D_OPTS_INIT;
    so.padding = NN_PADDING_SAME;
    so.activation = act;
    so.bias_init = NN_INIT_ONES;
    expect_gradients_scaled(kc, nn_separable_conv2d(m, in, 3, 3, 3, &so),
                            scale);
    nn_model_free(m);
    return 6;
}

/* LeakyReLU over slopes (0 is ReLU, above 1 steeper on the left) and
 * inputs of several scales; NN_ACT_LEAKY_RELU fused everywhere. */
static int gc_leaky_relu(const kind_case *c)
{
    const float alphas[] = {0.3f, 0.0f, 0.01f, 2.5f};
    int n = gc_activation(c);
    for (size_t i = 0; i < sizeof alphas / sizeof alphas[0]; i++) {
        nn_model *m = nn_model_create(9);
        int shape[2] = {6, 5};
        expect_gradients_scaled(
            c, nn_leaky_relu(m, vector_input(m, 2, shape), alphas[i], NULL),
            3.0);
        nn_model_free(m);
        n++;
    }
    return n + gc_fused_everywhere(c, NN_ACT_LEAKY_RELU, 2.0);
}

/* ELU over alphas, a negative one included (the branch then comes from
 * the input, not the output's sign); NN_ACT_ELU fused everywhere. */
static int gc_elu(const kind_case *c)
{
    const float alphas[] = {1.0f, 0.5f, 2.0f, -0.75f, 0.0f};
    int n = gc_activation(c);
    for (size_t i = 0; i < sizeof alphas / sizeof alphas[0]; i++) {
        nn_model *m = nn_model_create(9);
        int shape[3] = {3, 2, 5};
        expect_gradients_scaled(
            c, nn_elu(m, vector_input(m, 3, shape), alphas[i], NULL), 3.0);
        nn_model_free(m);
        n++;
    }
    return n + gc_fused_everywhere(c, NN_ACT_ELU, 2.0);
}

/* The tanh layer on inputs reaching its flat tails; NN_ACT_TANH fused
 * everywhere. */
static int gc_tanh(const kind_case *c)
{
    int n = gc_activation(c);
    nn_model *m = nn_model_create(9);
    int shape[1] = {40};
    expect_gradients_scaled(c, nn_tanh(m, vector_input(m, 1, shape), NULL),
                            3.0);
    nn_model_free(m);
    return n + 1 + gc_fused_everywhere(c, NN_ACT_TANH, 2.0);
}

#define AXIS(k) (1u << (k))

/* PReLU's input and alpha gradients over shared_axes patterns on images
 * and vectors, alpha random in [-0.5, 1.5) (so both slopes show), in
 * training and inference, and with the layer frozen (no alpha gradient,
 * the input's still right). */
static int gc_prelu(const kind_case *c)
{
    static const struct {
        int rank, d[3];
        unsigned shared;
    } cases[] = {
        {3, {4, 5, 3}, AXIS(1) | AXIS(2)}, /* one per channel */
        {3, {4, 5, 3}, 0},                 /* one per value */
        {3, {4, 5, 3}, AXIS(1)},
        {3, {4, 5, 3}, AXIS(3)},           /* shared over channels */
        {3, {4, 5, 3}, AXIS(1) | AXIS(2) | AXIS(3)}, /* a single alpha */
        {3, {3, 1, 17}, AXIS(2)},
        {1, {7}, 0},
        {1, {7}, AXIS(1)},
        {2, {3, 6}, AXIS(1)},
    };
    int n = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (int training = 0; training <= 1; training++) {
            nn_model *m = nn_model_create(90 + i);
            nn_prelu_opts o = NN_PRELU_OPTS_INIT;
            o.shared_axes = cases[i].shared;
            nn_layer *l = nn_prelu(
                m, vector_input(m, cases[i].rank, cases[i].d), &o);
            assert_non_null(l);
            randomize(&l->params[0], -0.5, 1.5);
            expect_gradients(c, l, 3, false, training);
            n++;
            nn_model_free(m);
        }
    nn_model *m = nn_model_create(99);
    nn_layer *l = nn_prelu(m, image_input(m, 3, 4, 2), NULL);
    randomize(&l->params[0], -0.5, 1.5);
    l->trainable = false;
    gc_opts go = GC_OPTS_INIT;
    gc_run *r = gc_setup(l, 2, &go);
    l->params[0].grad.data[0] = 42.0f;
    float din[48];
    float *dins[1] = {din};
    bool acc[1] = {false};
    assert_int_equal(gc_backward(r, dins, acc), NN_OK);
    assert_float_equal(l->params[0].grad.data[0], 42.0f, 0);
    gc_result res = {0, 0, 0, 0.0};
    gc_compare(r, r->in[0], r->in_n[0], din, "input", &res);
    assert_int_equal(res.checked, 48);
    assert_int_equal(res.failed, 0);
    gc_free(r);
    nn_model_free(m);
    return n + 1;
}

/* ------------------------------------------------------------------ */
/* samples: a representative, non-default layer of each kind           */
/* ------------------------------------------------------------------ */

static nn_layer *sample_input(nn_model *m, nn_layer *in) { return in; }

static nn_layer *sample_conv2d(nn_model *m, nn_layer *in)
{
    nn_conv2d_opts co = conv_opts(2, 1, NN_PADDING_SAME, 0, NN_ACT_SIGMOID);
    co.kernel_init = NN_INIT_HE_NORMAL;
    return nn_conv2d(m, in, 5, 3, 2, &co);
}

static nn_pool2d_opts sample_pool_opts(void)
{
    nn_pool2d_opts po = NN_POOL2D_OPTS_INIT;
    po.stride_h = 1;
    po.padding = NN_PADDING_SAME;
    return po;
}

static nn_layer *sample_maxpool2d(nn_model *m, nn_layer *in)
{
    nn_pool2d_opts po = sample_pool_opts();
    return nn_maxpool2d(m, in, 3, 2, &po);
}

static nn_layer *sample_avgpool2d(nn_model *m, nn_layer *in)
{
    nn_pool2d_opts po = sample_pool_opts();
    return nn_avgpool2d(m, in, 2, 3, &po);
}

static nn_layer *sample_flatten(nn_model *m, nn_layer *in)
{
    return nn_flatten(m, in, NULL);
}

static nn_layer *sample_dropout(nn_model *m, nn_layer *in)
{
    return nn_dropout(m, in, 0.375f, NULL);
}

static nn_layer *sample_dense(nn_model *m, nn_layer *in)
{
    nn_dense_opts dop = dense_opts(1, NN_ACT_RELU);
    dop.kernel_init = NN_INIT_HE_UNIFORM;
    return nn_dense(m, in, 6, &dop);
}

static nn_layer *sample_relu(nn_model *m, nn_layer *in)
{
    return nn_relu(m, in, NULL);
}

static nn_layer *sample_sigmoid(nn_model *m, nn_layer *in)
{
    return nn_sigmoid(m, in, NULL);
}

static nn_layer *sample_softmax(nn_model *m, nn_layer *in)
{
    return nn_softmax(m, in, NULL);
}

static nn_layer *sample_batchnorm(nn_model *m, nn_layer *in)
{
    nn_batchnorm_opts bno = NN_BATCHNORM_OPTS_INIT;
    bno.momentum = 0.875f;
    bno.epsilon = 0.0625f;
    bno.center = 0;
    return nn_batchnorm(m, in, &bno);
}

static nn_layer *sample_zeropad2d(nn_model *m, nn_layer *in)
{
    return nn_zeropad2d(m, in, 1, 2, 3, 0, NULL);
}

static nn_layer *sample_add(nn_model *m, nn_layer *in)
{
    return nn_add(m, 2, (nn_layer *[]){in, in}, NULL);
}

static nn_layer *sample_concatenate(nn_model *m, nn_layer *in)
{
    return nn_concatenate(m, 2, (nn_layer *[]){in, in}, NULL);
}

static nn_layer *sample_global_avgpool2d(nn_model *m, nn_layer *in)
{
    return nn_global_avgpool2d(m, in, NULL);
}

static nn_layer *sample_resizing(nn_model *m, nn_layer *in)
{
    return nn_resizing(m, in, 5, 11, NULL);
}

static nn_layer *sample_locally_connected2d(nn_model *m, nn_layer *in)
{
    nn_conv2d_opts lco = conv_opts(2, 1, NN_PADDING_VALID, 1, NN_ACT_SIGMOID);
    return nn_locally_connected2d(m, in, 4, 3, 2, &lco);
}

static nn_layer *sample_repeat_channels(nn_model *m, nn_layer *in)
{
    return nn_repeat_channels(m, in, 2, NULL);
}

/* Augmentation layers (in depth: tests/test_layers_augment.c). */
static nn_augment_opts sample_augment_opts(void)
{
    nn_augment_opts ao = NN_AUGMENT_OPTS_INIT;
    ao.fill_mode = NN_FILL_CONSTANT;
    ao.interpolation = NN_INTERP_NEAREST;
    ao.fill_value = 0.5f;
    return ao;
}

static nn_layer *sample_random_flip(nn_model *m, nn_layer *in)
{
    return nn_random_flip(m, in, NN_FLIP_VERTICAL, NULL);
}

static nn_layer *sample_random_rotation(nn_model *m, nn_layer *in)
{
    nn_augment_opts ao = sample_augment_opts();
    return nn_random_rotation(m, in, -0.25f, 0.125f, &ao);
}

static nn_layer *sample_random_translation(nn_model *m, nn_layer *in)
{
    nn_augment_opts ao = sample_augment_opts();
    return nn_random_translation(m, in, -0.25f, 0.5f, -0.125f, 0.25f, &ao);
}

static nn_layer *sample_random_zoom(nn_model *m, nn_layer *in)
{
    nn_augment_opts ao = sample_augment_opts();
    return nn_random_zoom(m, in, -0.5f, 0.25f, 0.125f, 0.75f, &ao);
}

static nn_layer *sample_random_contrast(nn_model *m, nn_layer *in)
{
    return nn_random_contrast(m, in, 0.25f, 0.5f, NULL);
}

static nn_layer *sample_relu6(nn_model *m, nn_layer *in)
{
    return nn_relu6(m, in, NULL);
}

static nn_layer *sample_upsampling2d(nn_model *m, nn_layer *in)
{
    nn_upsampling2d_opts uo = NN_UPSAMPLING2D_OPTS_INIT;
    uo.interpolation = NN_INTERP_BILINEAR;
    return nn_upsampling2d(m, in, 2, 3, &uo);
}

static nn_layer *sample_cropping2d(nn_model *m, nn_layer *in)
{
    return nn_cropping2d(m, in, 1, 3, 0, 2, NULL);
}

static nn_layer *sample_depthwise_conv2d(nn_model *m, nn_layer *in)
{
    nn_depthwise_conv2d_opts o =
        dw_opts(2, 1, NN_PADDING_SAME, 2, 1, NN_ACT_SIGMOID);
    o.kernel_init = NN_INIT_RANDOM_NORMAL;
    o.kernel_init_stddev = 0.25f;
    return nn_depthwise_conv2d(m, in, 3, 2, &o);
}

static nn_layer *sample_conv2d_transpose(nn_model *m, nn_layer *in)
{
    nn_conv2d_transpose_opts o =
        ct_opts(2, 3, NN_PADDING_SAME, 1, 2, 1, NN_ACT_RELU6);
    o.kernel_init = NN_INIT_RANDOM_NORMAL;
    o.kernel_init_stddev = 0.02f;
    o.bias_init_stddev = 0.5f;
    return nn_conv2d_transpose(m, in, 4, 3, 2, &o);
}

static nn_layer *sample_separable_conv2d(nn_model *m, nn_layer *in)
{
    nn_separable_conv2d_opts o = NN_SEPARABLE_CONV2D_OPTS_INIT;
    o.stride_h = 2;
    o.padding = NN_PADDING_SAME;
    o.depth_multiplier = 2;
    o.activation = NN_ACT_RELU6;
    o.pointwise_init = NN_INIT_RANDOM_NORMAL;
    o.pointwise_init_stddev = 0.125f;
    o.bias_init = NN_INIT_ONES;
    return nn_separable_conv2d(m, in, 5, 3, 2, &o);
}

static nn_layer *sample_leaky_relu(nn_model *m, nn_layer *in)
{
    return nn_leaky_relu(m, in, 0.125f, NULL);
}

/* One alpha per row and channel, from a normal initializer. */
static nn_layer *sample_prelu(nn_model *m, nn_layer *in)
{
    nn_prelu_opts o = NN_PRELU_OPTS_INIT;
    o.shared_axes = AXIS(2);
    o.alpha_init = NN_INIT_RANDOM_NORMAL;
    return nn_prelu(m, in, &o);
}

static nn_layer *sample_elu(nn_model *m, nn_layer *in)
{
    return nn_elu(m, in, 0.75f, NULL);
}

static nn_layer *sample_tanh(nn_model *m, nn_layer *in)
{
    return nn_tanh(m, in, NULL);
}

/* ------------------------------------------------------------------ */
/* the table                                                           */
/* ------------------------------------------------------------------ */

#define BOTH (GC_TRAIN | GC_INFER)
static const kind_case kind_cases[] = {
    {NN_KIND_INPUT, "InputLayer", "input", sample_input,
     .sweep = gc_input},
    {NN_KIND_CONV2D, "Conv2D", "conv2d", sample_conv2d,
     .sweep = gc_conv2d},
    {NN_KIND_MAXPOOL2D, "MaxPooling2D", "max_pooling2d", sample_maxpool2d,
     .sweep = gc_pool},
    {NN_KIND_AVGPOOL2D, "AveragePooling2D", "average_pooling2d",
     sample_avgpool2d, .sweep = gc_pool},
    {NN_KIND_FLATTEN, "Flatten", "flatten", sample_flatten,
     .sweep = gc_flatten},
    {NN_KIND_DROPOUT, "Dropout", "dropout", sample_dropout,
     .sweep = gc_dropout, .float_config = true},
    {NN_KIND_DENSE, "Dense", "dense", sample_dense,
     .sweep = gc_dense},
    {NN_KIND_RELU, "ReLU", "re_lu", sample_relu,
     .sweep = gc_activation},
    {NN_KIND_SIGMOID, "Activation", "activation", sample_sigmoid,
     .sweep = gc_activation},
    {NN_KIND_SOFTMAX, "Softmax", "softmax", sample_softmax,
     .sweep = gc_activation},
    {NN_KIND_BATCHNORM, "BatchNormalization", "batch_normalization",
     sample_batchnorm, .sample_checks = BOTH},
    {NN_KIND_ZEROPAD2D, "ZeroPadding2D", "zero_padding2d", sample_zeropad2d,
     .sample_checks = GC_TRAIN},
    {NN_KIND_ADD, "Add", "add", sample_add,
     .sample_checks = GC_TRAIN},
    {NN_KIND_CONCATENATE, "Concatenate", "concatenate", sample_concatenate,
     .sample_checks = GC_TRAIN},
    {NN_KIND_GLOBAL_AVGPOOL2D, "GlobalAveragePooling2D",
     "global_average_pooling2d", sample_global_avgpool2d,
     .sample_checks = GC_TRAIN},
    {NN_KIND_RESIZING, "Resizing", "resizing", sample_resizing,
     .sample_checks = GC_TRAIN},
    {NN_KIND_LOCALLY_CONNECTED2D, "LocallyConnected2D", "locally_connected2d",
     sample_locally_connected2d, .sample_checks = GC_TRAIN},
    {NN_KIND_REPEAT_CHANNELS, "RepeatChannels", "repeat_channels",
     sample_repeat_channels, .sample_checks = GC_TRAIN},
    {NN_KIND_RANDOM_FLIP, "RandomFlip", "random_flip", sample_random_flip,
     .sample_checks = BOTH},
    {NN_KIND_RANDOM_ROTATION, "RandomRotation", "random_rotation",
     sample_random_rotation, .sample_checks = BOTH, .float_config = true},
    {NN_KIND_RANDOM_TRANSLATION, "RandomTranslation", "random_translation",
     sample_random_translation, .sample_checks = BOTH, .float_config = true},
    {NN_KIND_RANDOM_ZOOM, "RandomZoom", "random_zoom", sample_random_zoom,
     .sample_checks = BOTH, .float_config = true},
    {NN_KIND_RANDOM_CONTRAST, "RandomContrast", "random_contrast",
     sample_random_contrast, .sample_checks = BOTH, .float_config = true},
    {NN_KIND_RELU6, "ReLU", "re_lu", sample_relu6,
     .sweep = gc_relu6},
    {NN_KIND_UPSAMPLING2D, "UpSampling2D", "up_sampling2d",
     sample_upsampling2d, .sweep = gc_upsampling2d},
    {NN_KIND_CROPPING2D, "Cropping2D", "cropping2d", sample_cropping2d,
     .sample_checks = BOTH},
    {NN_KIND_DEPTHWISE_CONV2D, "DepthwiseConv2D", "depthwise_conv2d",
     sample_depthwise_conv2d, .sweep = gc_depthwise_conv2d},
    {NN_KIND_CONV2D_TRANSPOSE, "Conv2DTranspose", "conv2d_transpose",
     sample_conv2d_transpose, .sweep = gc_conv2d_transpose},
    {NN_KIND_SEPARABLE_CONV2D, "SeparableConv2D", "separable_conv2d",
     sample_separable_conv2d, .sample_checks = GC_TRAIN,
     .sweep = gc_separable_conv2d},
    {NN_KIND_LEAKY_RELU, "LeakyReLU", "leaky_re_lu", sample_leaky_relu,
     .sweep = gc_leaky_relu, .float_config = true},
    {NN_KIND_PRELU, "PReLU", "p_re_lu", sample_prelu, .sample_checks = BOTH,
     .sweep = gc_prelu, .float_config = true},
    {NN_KIND_ELU, "ELU", "elu", sample_elu, .sweep = gc_elu,
     .float_config = true},
    {NN_KIND_TANH, "Activation", "activation", sample_tanh,
     .sweep = gc_tanh},
};
#undef BOTH

_Static_assert(sizeof kind_cases / sizeof kind_cases[0] == NN_KIND_COUNT,
               "every layer kind needs its row in kind_cases");

/* The row of kind k; fails the test when there is none. */
static const kind_case *case_of(int k)
{
    for (size_t i = 0; i < sizeof kind_cases / sizeof kind_cases[0]; i++)
        if ((int)kind_cases[i].kind == k) return &kind_cases[i];
    fail_msg("layer kind %d (%s) has no row in kind_cases", k,
             nn__layer_registry[k]->type_name);
    return NULL;
}

/* The sample layer of kind k in m (on m's input, made if m has none). */
static nn_layer *sample_layer(nn_model *m, nn_layer_kind k)
{
    int shape[3] = {9, 8, 3};
    nn_layer *in = m->input ? m->input : nn_input(m, 3, shape, NULL);
    return case_of(k)->sample(m, in);
}

static void test_gradients_every_kind(void **state)
{
    (void)state;
    for (int k = 0; k < NN_KIND_COUNT; k++) {
        const kind_case *c = case_of(k);
        int n = 0;
        for (int mode = GC_TRAIN; mode <= GC_INFER; mode <<= 1) {
            if (!(c->sample_checks & mode)) continue;
            nn_model *m = nn_model_create(7);
            expect_gradients(c, sample_layer(m, c->kind), 2, false,
                             mode == GC_TRAIN);
            nn_model_free(m);
            n++;
        }
        if (c->sweep) n += c->sweep(c);
        if (n == 0)
            fail_msg("layer kind %d (%s) has no gradient check", k, c->type);
    }
}

/* The same checks with several threads, where the kernels split work. */
static void test_gradients_threads(void **state)
{
    (void)state;
    for (int t = 2; t <= 3; t++) {
        nn_set_num_threads(t);
        gc_conv2d(case_of(NN_KIND_CONV2D));
        gc_dense(case_of(NN_KIND_DENSE));
    }
    nn_set_num_threads(0);
}

/* A check that cannot fail is worthless: corrupt one gradient value and
 * expect the checker to notice. */
static void test_gradcheck_detects_errors(void **state)
{
    (void)state;
    nn_model *m = nn_model_create(6);
    nn_dense_opts o = dense_opts(1, NN_ACT_NONE);
    int shape[1] = {4};
    nn_layer *l = nn_dense(m, vector_input(m, 1, shape), 3, &o);
    gc_opts go = GC_OPTS_INIT;
    gc_run *r = gc_setup(l, 2, &go);
    float din[8];
    float *dins[1] = {din};
    bool acc[1] = {false};
    assert_int_equal(gc_backward(r, dins, acc), NN_OK);
    din[5] += 0.05f;
    gc_result res = {0, 0, 0, 0.0};
    gc_compare(r, r->in[0], r->in_n[0], din, "input", &res);
    assert_int_equal(res.checked, 8);
    assert_int_equal(res.failed, 1);
    gc_free(r);
    nn_model_free(m);
}

/* ------------------------------------------------------------------ */
/* backward conventions: accumulation, skipped inputs                  */
/* ------------------------------------------------------------------ */

static void check_accum(nn_layer *l)
{
    assert_non_null(l);
    gc_opts o = GC_OPTS_INIT;
    gc_run *r = gc_setup(l, 2, &o);
    int64_t n = r->in_n[0];
    float *d0 = malloc((size_t)n * sizeof(float));
    float *d1 = malloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++) d0[i] = NAN; /* overwritten, not read */
    float *dins[1] = {d0};
    bool acc[1] = {false};
    assert_int_equal(gc_backward(r, dins, acc), NN_OK);
    float *g0[NN_LAYER_MAX_PARAMS];
    for (int j = 0; j < l->n_params; j++) {
        size_t bytes = (size_t)l->params[j].value.size * sizeof(float);
        g0[j] = malloc(bytes);
        memcpy(g0[j], l->params[j].grad.data, bytes);
    }
    for (int64_t i = 0; i < n; i++) d1[i] = 0.5f + (float)(i % 7);
    dins[0] = d1;
    acc[0] = true;
    assert_int_equal(gc_backward(r, dins, acc), NN_OK);
    for (int64_t i = 0; i < n; i++)
        assert_float_equal(d1[i], d0[i] + 0.5f + (float)(i % 7), 1e-5);
    /* Without an input gradient the parameter gradients are unchanged. */
    dins[0] = NULL;
    assert_int_equal(gc_backward(r, dins, acc), NN_OK);
    for (int j = 0; j < l->n_params; j++) {
        for (int64_t i = 0; i < l->params[j].value.size; i++)
            assert_float_equal(l->params[j].grad.data[i], g0[j][i], 1e-6);
        free(g0[j]);
    }
    free(d0);
    free(d1);
    gc_free(r);
}

static void test_backward_accum_and_null(void **state)
{
    (void)state;
    nn_model *m = nn_model_create(7);
    nn_layer *in = image_input(m, 6, 6, 3);
    nn_conv2d_opts co = conv_opts(1, 1, NN_PADDING_SAME, 1, NN_ACT_RELU);
    check_accum(nn_conv2d(m, in, 4, 3, 3, &co));
    co = conv_opts(1, 1, NN_PADDING_VALID, 1, NN_ACT_NONE);
    check_accum(nn_conv2d(m, in, 4, 1, 1, &co));
    check_accum(nn_maxpool2d(m, in, 2, 2, NULL));
    check_accum(nn_avgpool2d(m, in, 2, 2, NULL));
    check_accum(nn_flatten(m, in, NULL));
    check_accum(nn_dropout(m, in, 0.4f, NULL));
    nn_dense_opts dop = dense_opts(1, NN_ACT_SOFTMAX);
    check_accum(nn_dense(m, in, 5, &dop));
    check_accum(nn_relu(m, in, NULL));
    check_accum(nn_sigmoid(m, in, NULL));
    check_accum(nn_softmax(m, in, NULL));
    check_accum(nn_batchnorm(m, in, NULL));
    check_accum(nn_zeropad2d(m, in, 1, 0, 2, 1, NULL));
    check_accum(nn_global_avgpool2d(m, in, NULL));
    check_accum(nn_resizing(m, in, 9, 4, NULL));
    check_accum(nn_repeat_channels(m, in, 2, NULL));
    check_accum(nn_locally_connected2d(m, in, 2, 3, 3, NULL));
    check_accum(nn_relu6(m, in, NULL));
    check_accum(nn_upsampling2d(m, in, 2, 1, NULL));
    check_accum(nn_cropping2d(m, in, 1, 2, 0, 1, NULL));
    nn_depthwise_conv2d_opts dwo =
        dw_opts(2, 2, NN_PADDING_SAME, 2, 1, NN_ACT_RELU);
    check_accum(nn_depthwise_conv2d(m, in, 3, 3, &dwo));
    nn_conv2d_transpose_opts cto =
        ct_opts(2, 2, NN_PADDING_SAME, -1, -1, 1, NN_ACT_NONE);
    check_accum(nn_conv2d_transpose(m, in, 2, 3, 3, &cto));
    check_accum(nn_separable_conv2d(m, in, 3, 3, 3, NULL));
    check_accum(nn_leaky_relu(m, in, 0.3f, NULL));
    check_accum(nn_elu(m, in, 1.0f, NULL));
    check_accum(nn_tanh(m, in, NULL));
    nn_prelu_opts po = NN_PRELU_OPTS_INIT;
    po.shared_axes = AXIS(1) | AXIS(2);
    po.alpha_init_value = 0.25f;
    check_accum(nn_prelu(m, in, &po));
    nn_model_free(m);
}

/* A frozen layer still passes its input gradient back but computes no
 * parameter gradient. */
static void test_frozen_layer(void **state)
{
    (void)state;
    nn_model *m = nn_model_create(8);
    int shape[1] = {6};
    nn_layer *l = nn_dense(m, vector_input(m, 1, shape), 3, NULL);
    gc_opts o = GC_OPTS_INIT;
    gc_run *r = gc_setup(l, 2, &o);
    l->trainable = false;
    for (int j = 0; j < l->n_params; j++)
        for (int64_t i = 0; i < l->params[j].value.size; i++)
            l->params[j].grad.data[i] = 42.0f;
    float din[12];
    float *dins[1] = {din};
    bool acc[1] = {false};
    assert_int_equal(gc_backward(r, dins, acc), NN_OK);
    assert_float_equal(l->params[0].grad.data[0], 42.0f, 0);
    assert_float_equal(l->params[1].grad.data[2], 42.0f, 0);
    double s = 0;
    for (int i = 0; i < 12; i++) s += fabs(din[i]);
    assert_true(s > 0.0);
    gc_free(r);
    nn_model_free(m);
}

/* ------------------------------------------------------------------ */
/* shapes                                                              */
/* ------------------------------------------------------------------ */

static void expect_shape(const nn_layer *l, int rank, int d0, int d1, int d2)
{
    int s[NN_MAX_RANK];
    assert_int_equal(nn_layer_output_shape(l, s, NN_MAX_RANK), rank);
    int want[3] = {d0, d1, d2};
    for (int i = 0; i < rank; i++) assert_int_equal(s[i], want[i]);
}

static void test_q3a_shapes(void **state)
{
    (void)state;
    nn_model *m = nn_model_create(1);
    nn_conv2d_opts co = NN_CONV2D_OPTS_INIT;
    co.activation = NN_ACT_RELU;
    nn_dense_opts dop = NN_DENSE_OPTS_INIT;
    dop.activation = NN_ACT_SOFTMAX;
    nn_layer *x = image_input(m, 32, 32, 3);
    nn_layer *c1 = nn_conv2d(m, x, 32, 3, 3, &co);
    nn_layer *p1 = nn_maxpool2d(m, c1, 2, 2, NULL);
    nn_layer *c2 = nn_conv2d(m, p1, 64, 3, 3, &co);
    nn_layer *p2 = nn_maxpool2d(m, c2, 2, 2, NULL);
    nn_layer *f = nn_flatten(m, p2, NULL);
    nn_layer *d = nn_dense(m, f, 10, &dop);
    assert_non_null(d);
    expect_shape(c1, 3, 30, 30, 32);
    expect_shape(p1, 3, 15, 15, 32);
    expect_shape(c2, 3, 13, 13, 64);
    expect_shape(p2, 3, 6, 6, 64);
    expect_shape(f, 1, 2304, 0, 0);
    expect_shape(d, 1, 10, 0, 0);
    assert_int_equal(nn_layer_num_params(c1), 896);
    assert_int_equal(nn_layer_num_params(c2), 18496);
    assert_int_equal(nn_layer_num_params(d), 23050);
    assert_int_equal(nn_layer_num_params(p1), 0);
    assert_string_equal(nn_layer_name(c1), "conv2d");
    assert_string_equal(nn_layer_name(c2), "conv2d_1");
    assert_string_equal(nn_layer_name(p2), "max_pooling2d_1");
    assert_string_equal(nn_layer_type(p1), "MaxPooling2D");
    assert_string_equal(nn_layer_weight_name(c1, 0), "kernel");
    assert_string_equal(nn_layer_weight_name(c1, 1), "bias");
    nn_tensor *k = nn_layer_weight(c2, 0);
    assert_int_equal(k->rank, 4);
    assert_int_equal(k->shape[0], 3);
    assert_int_equal(k->shape[2], 32);
    assert_int_equal(k->shape[3], 64);
    nn_model_free(m);
}

static void test_same_padding_geometry(void **state)
{
    (void)state;
    nn_model *m = nn_model_create(1);
    nn_layer *in = image_input(m, 7, 6, 1);
    nn_conv2d_opts co = conv_opts(2, 2, NN_PADDING_SAME, 1, NN_ACT_NONE);
    nn_layer *c = nn_conv2d(m, in, 2, 3, 3, &co);
    /* h: out 4, total pad 3*2+3-7 = 2 -> top 1; w: out 3, pad 1 -> left 0
     * (TF puts the odd pixel at the bottom/right). */
    expect_shape(c, 3, 4, 3, 2);
    assert_int_equal(nn__conv2d_geom(c, 1).pad_top, 1);
    assert_int_equal(nn__conv2d_geom(c, 1).pad_left, 0);
    co = conv_opts(1, 1, NN_PADDING_SAME, 1, NN_ACT_NONE);
    c = nn_conv2d(m, in, 2, 5, 4, &co);
    expect_shape(c, 3, 7, 6, 2);
    assert_int_equal(nn__conv2d_geom(c, 1).pad_top, 2);
    assert_int_equal(nn__conv2d_geom(c, 1).pad_left, 1);
    /* A kernel bigger than the input is fine with SAME. */
    c = nn_conv2d(m, in, 2, 9, 9, &co);
    expect_shape(c, 3, 7, 6, 2);
    nn_pool2d_opts po = NN_POOL2D_OPTS_INIT;
    po.padding = NN_PADDING_SAME;
    expect_shape(nn_maxpool2d(m, in, 2, 2, &po), 3, 4, 3, 1);
    po.stride_h = 1;
    po.stride_w = 3;
    expect_shape(nn_avgpool2d(m, in, 3, 2, &po), 3, 7, 2, 1);
    po.padding = NN_PADDING_VALID;
    expect_shape(nn_avgpool2d(m, in, 3, 2, &po), 3, 5, 2, 1);
    int s3[3] = {2, 3, 4};
    nn_layer *v = vector_input(nn_model_create(2), 3, s3);
    expect_shape(nn_dense(v->model, v, 7, NULL), 3, 2, 3, 7);
    expect_shape(nn_flatten(v->model, v, NULL), 1, 24, 0, 0);
    nn_model_free(v->model);
    nn_model_free(m);
}

/* ------------------------------------------------------------------ */
/* forward values                                                      */
/* ------------------------------------------------------------------ */

static void run_forward(nn_layer *l, int batch, float *x, float *out,
                        bool training, void **state_out)
{
    size_t sb = l->ops->state_bytes ? l->ops->state_bytes(l, batch) : 0;
    size_t sf = l->ops->scratch_floats ? l->ops->scratch_floats(l, batch, false)
                                       : 0;
    void *st = sb ? malloc(sb) : NULL;
    float *scratch = sf ? malloc(sf * sizeof(float)) : NULL;
    const float *ins[1] = {x};
    nn_fwd a = {.batch = batch, .training = training, .in = ins, .out = out,
                .state = st, .scratch = scratch, .rng_key = 99};
    assert_int_equal(l->ops->forward(l, &a), NN_OK);
    free(scratch);
    if (state_out)
        *state_out = st;
    else
        free(st);
}

static void test_conv_layer_forward(void **state)
{
    (void)state;
    nn_model *m = nn_model_create(9);
    nn_layer *in = image_input(m, 6, 5, 3);
    nn_conv2d_opts co = conv_opts(2, 1, NN_PADDING_SAME, 1, NN_ACT_RELU);
    nn_layer *l = nn_conv2d(m, in, 4, 3, 2, &co);
    float x[2 * 6 * 5 * 3], out[2 * 3 * 5 * 4], ref[2 * 3 * 5 * 4];
    gc_fill(x, 180, 1.0);
    run_forward(l, 2, x, out, false, NULL);
    /* SAME: h 6 -> 3 at stride 2 pads 1 row, w 5 -> 5 pads 1 column, both
     * after the image (TF's rule): no leading pad. */
    nn_conv_geom g = {2, 6, 5, 3, 3, 2, 2, 1, 0, 0, 3, 5, 4};
    nn__conv2d_forward_ref(&g, x, l->params[0].value.data,
                           l->params[1].value.data, ref);
    int negatives = 0;
    for (int i = 0; i < 120; i++) {
        negatives += ref[i] < 0;
        assert_float_equal(out[i], ref[i] > 0 ? ref[i] : 0.0f, 1e-5);
    }
    assert_true(negatives > 0); /* the ReLU was exercised */
    nn_model_free(m);
}

static void test_logits_saved(void **state)
{
    (void)state;
    nn_model *m = nn_model_create(10);
    int shape[1] = {6};
    nn_layer *in = vector_input(m, 1, shape);
    nn_dense_opts soft = dense_opts(1, NN_ACT_SOFTMAX);
    nn_dense_opts lin = dense_opts(1, NN_ACT_NONE);
    nn_layer *ds = nn_dense(m, in, 4, &soft);
    nn_layer *dl = nn_dense(m, in, 4, &lin);
    for (int j = 0; j < 2; j++)
        memcpy(dl->params[j].value.data, ds->params[j].value.data,
               (size_t)ds->params[j].value.size * sizeof(float));
    float x[12], ys[8], yl[8];
    gc_fill(x, 12, 2.0);
    void *st;
    /* Saved in inference too: evaluation computes the loss from them. */
    run_forward(ds, 2, x, ys, false, &st);
    run_forward(dl, 2, x, yl, false, NULL);
    const float *lg = ds->ops->logits(ds, st);
    assert_non_null(lg);
    for (int i = 0; i < 8; i++) assert_float_equal(lg[i], yl[i], 1e-6);
    for (int r = 0; r < 2; r++) {
        double s = 0;
        for (int j = 0; j < 4; j++) s += ys[r * 4 + j];
        assert_float_equal(s, 1.0, 1e-6);
    }
    free(st);
    assert_null(dl->ops->logits(dl, NULL));
    /* Standalone softmax: its logits are its input. */
    nn_layer *sm = nn_softmax(m, in, NULL);
    float ysm[12];
    run_forward(sm, 2, x, ysm, true, &st);
    assert_ptr_equal(sm->ops->logits(sm, st), x);
    free(st);
    /* Huge logits stay finite. */
    float big[6] = {1000, 1001, 999, -1000, 1000, 3};
    float p[6];
    run_forward(sm, 1, big, p, false, NULL);
    for (int i = 0; i < 6; i++) assert_true(isfinite(p[i]));
    nn_model_free(m);
}

/* A model ending in a Softmax or Sigmoid layer gets its loss from that
 * layer's logits (Keras' _keras_logits): exact where the probability of
 * the labelled class underflows to 0, where clipped probabilities would
 * give -log(1e-7) = 16.1. */
static void test_loss_from_output_layer_logits(void **state)
{
    (void)state;
    for (int sigmoid = 0; sigmoid <= 1; sigmoid++) {
        nn_model *m = nn_model_create(1);
        int shape[1] = {2};
        nn_layer *in = vector_input(m, 1, shape);
        assert_non_null(sigmoid ? nn_sigmoid(m, in, NULL)
                                : nn_softmax(m, in, NULL));
        nn_loss loss = sigmoid ? NN_LOSS_BINARY_CROSSENTROPY
                               : NN_LOSS_CATEGORICAL_CROSSENTROPY;
        assert_int_equal(nn_model_compile(m, nn_sgd(NULL), loss, NULL), NN_OK);
        int64_t xs[2] = {1, 2};
        nn_tensor *x = nn_tensor_create(2, xs), *y = nn_tensor_create(2, xs);
        /* softmax: p(class 0) = e^-200; sigmoid: both labels 1, the first
         * at p = sigmoid(-400), the second at p = 1. */
        x->data[0] = sigmoid ? -400.0f : 0.0f;
        x->data[1] = 200.0f;
        y->data[0] = 1.0f;
        y->data[1] = sigmoid ? 1.0f : 0.0f;
        float l = 0;
        assert_int_equal(nn_model_evaluate(m, x, y, 1, &l, NULL), NN_OK);
        assert_float_equal(l, 200.0, 1e-3);
        nn_tensor_free(x);
        nn_tensor_free(y);
        nn_model_free(m);
    }
}

static void test_dropout_behaviour(void **state)
{
    (void)state;
    nn_model *m = nn_model_create(11);
    int shape[1] = {10000};
    nn_layer *l = nn_dropout(m, vector_input(m, 1, shape), 0.25f, NULL);
    float *x = malloc(20000 * sizeof(float));
    float *y = malloc(20000 * sizeof(float));
    float *y2 = malloc(20000 * sizeof(float));
    for (int i = 0; i < 20000; i++) x[i] = 1.0f + (float)(i % 3);
    run_forward(l, 2, x, y, false, NULL);
    assert_memory_equal(x, y, 20000 * sizeof(float));
    run_forward(l, 2, x, y, true, NULL);
    int zeros = 0;
    for (int i = 0; i < 20000; i++) {
        if (y[i] == 0.0f)
            zeros++;
        else
            assert_float_equal(y[i], x[i] / 0.75f, 1e-6);
    }
    assert_true(zeros > 4700 && zeros < 5300);
    run_forward(l, 2, x, y2, true, NULL); /* same key, same mask */
    assert_memory_equal(y, y2, 20000 * sizeof(float));
    nn_set_num_threads(1); /* the mask does not depend on threads */
    run_forward(l, 2, x, y2, true, NULL);
    nn_set_num_threads(0);
    assert_memory_equal(y, y2, 20000 * sizeof(float));
    free(x);
    free(y);
    free(y2);
    nn_model_free(m);
}

/* ------------------------------------------------------------------ */
/* constructors                                                        */
/* ------------------------------------------------------------------ */

#define EXPECT_NULL_WITH_MESSAGE(call)                                         \
    do {                                                                       \
        nn_clear_error();                                                      \
        assert_null(call);                                                     \
        assert_true(nn_last_error()[0] != '\0');                               \
    } while (0)

static void test_invalid_constructors(void **state)
{
    (void)state;
    nn_model *m = nn_model_create(1);
    nn_layer *in = image_input(m, 8, 8, 3);
    int shape[3] = {8, 8, 3};
    int bad[3] = {8, 0, 3};
    EXPECT_NULL_WITH_MESSAGE(nn_input(NULL, 3, shape, NULL));
    EXPECT_NULL_WITH_MESSAGE(nn_input(m, 3, NULL, NULL));
    EXPECT_NULL_WITH_MESSAGE(nn_input(m, 0, shape, NULL));
    EXPECT_NULL_WITH_MESSAGE(nn_input(m, NN_MAX_RANK, shape, NULL));
    nn_model *m0 = nn_model_create(0);
    EXPECT_NULL_WITH_MESSAGE(nn_input(m0, 3, bad, NULL));
    nn_model_free(m0);

    EXPECT_NULL_WITH_MESSAGE(nn_conv2d(NULL, in, 4, 3, 3, NULL));
    EXPECT_NULL_WITH_MESSAGE(nn_conv2d(m, NULL, 4, 3, 3, NULL));
    EXPECT_NULL_WITH_MESSAGE(nn_conv2d(m, in, 0, 3, 3, NULL));
    EXPECT_NULL_WITH_MESSAGE(nn_conv2d(m, in, -2, 3, 3, NULL));
    EXPECT_NULL_WITH_MESSAGE(nn_conv2d(m, in, 4, 0, 3, NULL));
    nn_clear_error();
    assert_null(nn_conv2d(m, in, 4, 9, 3, NULL)); /* VALID, 9 > 8 */
    assert_non_null(strstr(nn_last_error(), "does not fit"));
    nn_conv2d_opts co = NN_CONV2D_OPTS_INIT;
    co.stride_h = 0;
    EXPECT_NULL_WITH_MESSAGE(nn_conv2d(m, in, 4, 3, 3, &co));
    co = (nn_conv2d_opts)NN_CONV2D_OPTS_INIT;
    co.padding = (nn_padding)5;
    EXPECT_NULL_WITH_MESSAGE(nn_conv2d(m, in, 4, 3, 3, &co));
    co = (nn_conv2d_opts)NN_CONV2D_OPTS_INIT;
    co.activation = (nn_activation)17;
    EXPECT_NULL_WITH_MESSAGE(nn_conv2d(m, in, 4, 3, 3, &co));
    co = (nn_conv2d_opts)NN_CONV2D_OPTS_INIT;
    co.kernel_init = (nn_initializer)-1;
    EXPECT_NULL_WITH_MESSAGE(nn_conv2d(m, in, 4, 3, 3, &co));
    co = (nn_conv2d_opts)NN_CONV2D_OPTS_INIT;
    co.size = 0;
    EXPECT_NULL_WITH_MESSAGE(nn_conv2d(m, in, 4, 3, 3, &co));

    EXPECT_NULL_WITH_MESSAGE(nn_maxpool2d(m, in, 0, 2, NULL));
    EXPECT_NULL_WITH_MESSAGE(nn_maxpool2d(m, in, 9, 2, NULL));
    EXPECT_NULL_WITH_MESSAGE(nn_avgpool2d(NULL, in, 2, 2, NULL));
    nn_pool2d_opts po = NN_POOL2D_OPTS_INIT;
    po.stride_w = -1;
    EXPECT_NULL_WITH_MESSAGE(nn_avgpool2d(m, in, 2, 2, &po));

    EXPECT_NULL_WITH_MESSAGE(nn_flatten(m, NULL, NULL));
    EXPECT_NULL_WITH_MESSAGE(nn_dropout(m, in, 1.0f, NULL));
    EXPECT_NULL_WITH_MESSAGE(nn_dropout(m, in, -0.1f, NULL));
    EXPECT_NULL_WITH_MESSAGE(nn_dropout(m, in, NAN, NULL));
    EXPECT_NULL_WITH_MESSAGE(nn_dense(m, in, 0, NULL));
    EXPECT_NULL_WITH_MESSAGE(nn_dense(NULL, in, 3, NULL));
    nn_dense_opts dop = NN_DENSE_OPTS_INIT;
    dop.use_bias = 1;
    dop.bias_init = (nn_initializer)99;
    EXPECT_NULL_WITH_MESSAGE(nn_dense(m, in, 3, &dop));
    EXPECT_NULL_WITH_MESSAGE(nn_relu(m, NULL, NULL));
    EXPECT_NULL_WITH_MESSAGE(nn_sigmoid(NULL, in, NULL));
    EXPECT_NULL_WITH_MESSAGE(nn_softmax(m, NULL, NULL));
    nn_layer_opts lo = NN_LAYER_OPTS_INIT;
    lo.name = "";
    EXPECT_NULL_WITH_MESSAGE(nn_relu(m, in, &lo));
    /* A pooled image cannot feed a layer expecting rank 3 once flat. */
    nn_layer *flat = nn_flatten(m, in, NULL);
    EXPECT_NULL_WITH_MESSAGE(nn_conv2d(m, flat, 2, 1, 1, NULL));
    EXPECT_NULL_WITH_MESSAGE(nn_maxpool2d(m, flat, 2, 2, NULL));
    /* Failures leave the model as it was. */
    assert_int_equal(nn_model_num_layers(m), 2);
    nn_model_free(m);
}

/* Options structs of other sizes: an older caller's shorter struct gets
 * defaults for the rest; a newer caller's longer one is read up to what
 * this library knows when the rest is zero (options left at defaults). */
static void test_opts_sizes(void **state)
{
    (void)state;
    nn_model *m = nn_model_create(1);
    nn_layer *in = image_input(m, 8, 8, 3);
    nn_conv2d_opts co = NN_CONV2D_OPTS_INIT;
    co.size = offsetof(nn_conv2d_opts, stride_h); /* size and name only */
    co.name = "old";
    co.stride_h = 77; /* beyond size: must be ignored */
    co.padding = NN_PADDING_SAME;
    nn_layer *c = nn_conv2d(m, in, 2, 3, 3, &co);
    assert_non_null(c);
    assert_string_equal(nn_layer_name(c), "old");
    assert_int_equal(nn__conv_cfg(c).sh, 1);
    assert_int_equal(nn__conv_cfg(c).padding, NN_PADDING_VALID);
    struct {
        nn_dense_opts known;
        int future_field;
    } newer;
    /* Padding too: the library reads every byte past what it knows. */
    memset(&newer, 0, sizeof newer);
    newer.known = (nn_dense_opts)NN_DENSE_OPTS_INIT;
    newer.known.size = sizeof newer;
    newer.known.use_bias = 0;
    nn_layer *d = nn_dense(m, in, 3, &newer.known);
    assert_non_null(d);
    assert_int_equal(nn_layer_num_weights(d), 1);
    newer.future_field = 12345; /* an option this library lacks */
    assert_null(nn_dense(m, in, 3, &newer.known));
    assert_non_null(strstr(nn_last_error(), "newer libnn"));
    nn_pool2d_opts po = NN_POOL2D_OPTS_INIT;
    po.size = sizeof(size_t); /* no name even */
    po.stride_h = 1;
    nn_layer *p = nn_maxpool2d(m, in, 2, 2, &po);
    assert_non_null(p);
    expect_shape(p, 3, 4, 4, 3); /* strides: the pool size, not 1 */
    /* A size that ends inside the name pointer takes no part of it. */
    nn_layer_opts lo = NN_LAYER_OPTS_INIT;
    lo.size = sizeof(size_t) + 2;
    lo.name = "partial";
    nn_layer *r = nn_relu(m, in, &lo);
    assert_non_null(r);
    assert_string_equal(nn_layer_name(r), "re_lu");
    nn_model_free(m);
}

/* ------------------------------------------------------------------ */
/* configs                                                             */
/* ------------------------------------------------------------------ */

static size_t save_config(const nn_layer *l, uint8_t *buf, size_t cap)
{
    size_t need = l->ops->save_config(l, NULL, 0);
    assert_true(need <= cap);
    assert_int_equal(l->ops->save_config(l, buf, cap), need);
    return need;
}

static void test_config_round_trip(void **state)
{
    (void)state;
    for (int k = 0; k < NN_KIND_COUNT; k++) {
        nn_model *m = nn_model_create(1);
        nn_layer *l = sample_layer(m, (nn_layer_kind)k);
        if (!l) fail_msg("no sample layer for kind %d", k);
        uint8_t buf[256];
        size_t len = save_config(l, buf, sizeof buf);
        /* A short buffer is not overrun. */
        uint8_t small[4] = {0xAA, 0xAA, 0xAA, 0xAA};
        if (len > 2) {
            assert_int_equal(l->ops->save_config(l, small, 2), len);
            assert_int_equal(small[2], 0xAA);
        }
        nn_layer proto = {0};
        assert_int_equal(l->ops->load_config(&proto, buf, len), NN_OK);
        nn_model *m2 = nn_model_create(2);
        nn_layer *l2;
        if (k == NN_KIND_INPUT) {
            l2 = nn__add_layer(m2, NN_KIND_INPUT, 0, NULL, NULL, &proto);
        } else {
            nn_layer *in2 = nn_input(m2, l->inputs[0]->out.rank,
                                     l->inputs[0]->out.d, NULL);
            nn_layer *ins2[NN_LAYER_MAX_INPUTS]; /* samples repeat one input */
            for (int j = 0; j < l->n_inputs; j++) ins2[j] = in2;
            l2 = nn__add_layer(m2, (nn_layer_kind)k, l->n_inputs, ins2, NULL,
                               &proto);
        }
        assert_non_null(l2);
        assert_memory_equal(&l2->out, &l->out, sizeof l->out);
        assert_memory_equal(&l2->cfg, &l->cfg, sizeof l->cfg);
        assert_int_equal(l2->activation, l->activation);
        assert_int_equal(nn_layer_num_params(l2), nn_layer_num_params(l));
        uint8_t buf2[256];
        assert_int_equal(save_config(l2, buf2, sizeof buf2), len);
        assert_memory_equal(buf, buf2, len);
        nn_model_free(m);
        nn_model_free(m2);
    }
}

static void put_i32(uint8_t *p, int32_t v)
{
    uint32_t u = (uint32_t)v;
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(u >> (8 * i));
}

static void expect_format_error(const nn_layer *l, const uint8_t *buf,
                                size_t len)
{
    nn_layer proto = {0};
    nn_clear_error();
    assert_int_equal(l->ops->load_config(&proto, buf, len), NN_ERR_FORMAT);
    assert_true(nn_last_error()[0] != '\0');
}

static void test_config_rejects_garbage(void **state)
{
    (void)state;
    for (int k = 0; k < NN_KIND_COUNT; k++) {
        nn_model *m = nn_model_create(1);
        nn_layer *l = sample_layer(m, (nn_layer_kind)k);
        uint8_t buf[256];
        size_t len = save_config(l, buf, sizeof buf);
        for (size_t cut = 0; cut < len; cut++) expect_format_error(l, buf, cut);
        buf[len] = 0;
        expect_format_error(l, buf, len + 1);
        if (len) expect_format_error(l, NULL, len);
        /* Every 32-bit integer field set to values no layer accepts
         * (Dropout's float is tested below, the augmentation layers'
         * floats, where -0.0 is valid, in test_layers_augment.c). */
        const int32_t poison[] = {-1, 0x7fffffff, -2147483647 - 1, 1000};
        bool floats = case_of(k)->float_config;
        for (size_t f = 0; !floats && f + 4 <= len; f += 4)
            for (size_t p = 0; p < sizeof poison / sizeof poison[0]; p++) {
                uint8_t b2[256];
                memcpy(b2, buf, len);
                put_i32(b2 + f, poison[p]);
                nn_layer proto = {0};
                nn_status s = l->ops->load_config(&proto, b2, len);
                /* 1000 is a valid filter count or dimension; the rest of
                 * the poison is never valid. */
                if (poison[p] != 1000) assert_int_equal(s, NN_ERR_FORMAT);
            }
        /* Random bytes: any answer but a crash, and OK only for sane
         * values (checked by building a layer from them). */
        for (int t = 0; t < 200; t++) {
            uint8_t b3[256];
            for (size_t i = 0; i < len; i++)
                b3[i] = (uint8_t)(gc_uniform() * 128 + 128);
            nn_layer proto = {0};
            if (l->ops->load_config(&proto, b3, len) == NN_OK &&
                k != NN_KIND_INPUT) {
                nn_model *m3 = nn_model_create(3);
                nn_layer *in3 = image_input(m3, 9, 8, 3);
                nn_layer *l3 = nn__add_layer(m3, (nn_layer_kind)k, 1, &in3,
                                             NULL, &proto);
                (void)l3; /* may fail on size, never crash */
                nn_model_free(m3);
            }
        }
        nn_model_free(m);
    }
    /* Specific values. */
    nn_model *m = nn_model_create(1);
    nn_layer *d = sample_layer(m, NN_KIND_DROPOUT);
    uint8_t b[4];
    float bad_rates[] = {1.0f, -0.5f, NAN, INFINITY};
    for (int i = 0; i < 4; i++) {
        memcpy(b, &bad_rates[i], 4);
        expect_format_error(d, b, 4);
    }
    nn_layer *c = sample_layer(m, NN_KIND_CONV2D);
    uint8_t cb[64];
    size_t clen = save_config(c, cb, sizeof cb);
    put_i32(cb + 6 * 4, 2); /* padding */
    expect_format_error(c, cb, clen);
    save_config(c, cb, sizeof cb);
    put_i32(cb + 7 * 4, NN_ACT_LEAKY_RELU + 1); /* activation */
    expect_format_error(c, cb, clen);
    save_config(c, cb, sizeof cb);
    put_i32(cb + 5 * 4, 2); /* use_bias */
    expect_format_error(c, cb, clen);
    /* LeakyReLU refuses what Keras 3 refuses; ELU takes any finite alpha. */
    nn_layer *lr = sample_layer(m, NN_KIND_LEAKY_RELU);
    nn_layer *el = sample_layer(m, NN_KIND_ELU);
    float bad_alphas[] = {-0.5f, NAN, INFINITY, -INFINITY};
    for (int i = 0; i < 4; i++) {
        memcpy(b, &bad_alphas[i], 4);
        expect_format_error(lr, b, 4);
        if (i) expect_format_error(el, b, 4);
    }
    nn_layer proto = {0};
    assert_int_equal(el->ops->load_config(&proto, b, 0), NN_ERR_FORMAT);
    memcpy(b, &bad_alphas[0], 4);
    assert_int_equal(el->ops->load_config(&proto, b, 4), NN_OK);
    /* PReLU: shared_axes with the batch bit or past NN_MAX_RANK, an
     * unknown initializer, a value that is not finite or not with
     * DEFAULT. */
    nn_layer *pr = sample_layer(m, NN_KIND_PRELU);
    uint8_t pb[12];
    size_t plen = save_config(pr, pb, sizeof pb);
    assert_int_equal(plen, 12);
    const int32_t bad_axes[] = {1, 3, (int32_t)AXIS(NN_MAX_RANK + 1), -1};
    for (int i = 0; i < 4; i++) {
        save_config(pr, pb, sizeof pb);
        put_i32(pb, bad_axes[i]);
        expect_format_error(pr, pb, plen);
    }
    save_config(pr, pb, sizeof pb);
    put_i32(pb + 4, NN_INIT_RANDOM_NORMAL + 1);
    expect_format_error(pr, pb, plen);
    save_config(pr, pb, sizeof pb);
    float quarter = 0.25f; /* with RANDOM_NORMAL */
    memcpy(pb + 8, &quarter, 4);
    expect_format_error(pr, pb, plen);
    put_i32(pb + 4, NN_INIT_DEFAULT);
    assert_int_equal(pr->ops->load_config(&proto, pb, plen), NN_OK);
    memcpy(pb + 8, &bad_alphas[1], 4);
    expect_format_error(pr, pb, plen);
    nn_model_free(m);
}

/* ------------------------------------------------------------------ */
/* registry and initializers                                           */
/* ------------------------------------------------------------------ */

static void test_registry(void **state)
{
    (void)state;
    int rows[NN_KIND_COUNT] = {0};
    for (size_t i = 0; i < sizeof kind_cases / sizeof kind_cases[0]; i++) {
        int k = kind_cases[i].kind;
        assert_true(k >= 0 && k < NN_KIND_COUNT);
        if (rows[k]++) fail_msg("layer kind %d has two rows in kind_cases", k);
    }
    for (int k = 0; k < NN_KIND_COUNT; k++) {
        const kind_case *c = case_of(k);
        const nn_layer_ops *o = nn__layer_registry[k];
        assert_non_null(o);
        assert_string_equal(o->type_name, c->type);
        assert_string_equal(o->stem, c->stem);
        assert_non_null(o->build);
        assert_non_null(o->forward);
        assert_non_null(o->backward);
        assert_non_null(o->save_config);
        assert_non_null(o->load_config);
        nn_model *m = nn_model_create(1);
        nn_layer *l = sample_layer(m, (nn_layer_kind)k);
        assert_non_null(l);
        assert_int_equal(l->kind, k);
        assert_string_equal(nn_layer_type(l), c->type);
        assert_string_equal(nn_layer_name(l), c->stem); /* first of its kind */
        nn_model_free(m);
    }
}

static void moments(const float *p, int64_t n, double *mean, double *var,
                    double *maxabs)
{
    double s = 0, s2 = 0, mx = 0;
    for (int64_t i = 0; i < n; i++) {
        s += p[i];
        s2 += (double)p[i] * p[i];
        mx = fmax(mx, fabs(p[i]));
    }
    *mean = s / n;
    *var = s2 / n - *mean * *mean;
    *maxabs = mx;
}

static void test_initializers(void **state)
{
    (void)state;
    nn_model *m = nn_model_create(1);
    int shape[1] = {400};
    nn_layer *in = vector_input(m, 1, shape);
    struct {
        nn_initializer init;
        double var, limit; /* expected variance; bound on |w| */
    } cases[] = {
        {NN_INIT_GLOROT_UNIFORM, 2.0 / 700, sqrt(6.0 / 700)},
        {NN_INIT_GLOROT_NORMAL, 2.0 / 700, 2.0 * sqrt(2.0 / 700) / 0.8796},
        {NN_INIT_HE_UNIFORM, 2.0 / 400, sqrt(6.0 / 400)},
        {NN_INIT_HE_NORMAL, 2.0 / 400, 2.0 * sqrt(2.0 / 400) / 0.8796},
        {NN_INIT_DEFAULT, 2.0 / 700, sqrt(6.0 / 700)},
        /* Keras' RandomNormal() default, untruncated: values beyond two
         * standard deviations occur. */
        {NN_INIT_RANDOM_NORMAL, 0.05 * 0.05, 6 * 0.05},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        nn_dense_opts o = NN_DENSE_OPTS_INIT;
        o.kernel_init = cases[i].init;
        nn_layer *d = nn_dense(m, in, 300, &o);
        double mean, var, mx;
        moments(d->params[0].value.data, 120000, &mean, &var, &mx);
        assert_true(fabs(mean) < 0.01 * sqrt(cases[i].var) * 10);
        assert_true(fabs(var / cases[i].var - 1.0) < 0.03);
        assert_true(mx <= cases[i].limit * 1.0001);
        if (cases[i].init == NN_INIT_RANDOM_NORMAL)
            assert_true(mx > 3 * 0.05);
        moments(d->params[1].value.data, 300, &mean, &var, &mx);
        assert_true(mx == 0.0); /* bias default: zeros */
    }
    nn_dense_opts o = NN_DENSE_OPTS_INIT;
    o.kernel_init = NN_INIT_ONES;
    o.bias_init = NN_INIT_ONES;
    nn_layer *d = nn_dense(m, in, 2, &o);
    assert_float_equal(d->params[0].value.data[799], 1.0f, 0);
    assert_float_equal(d->params[1].value.data[1], 1.0f, 0);
    /* Same seed, same weights. */
    nn_model *a = nn_model_create(77), *b = nn_model_create(77);
    nn_layer *la = nn_conv2d(a, image_input(a, 5, 5, 2), 3, 3, 3, NULL);
    nn_layer *lb = nn_conv2d(b, image_input(b, 5, 5, 2), 3, 3, 3, NULL);
    assert_memory_equal(la->params[0].value.data, lb->params[0].value.data,
                        54 * sizeof(float));
    nn_model_free(a);
    nn_model_free(b);
    nn_model_free(m);
}

/* Keras' fans for its kernel layouts: DepthwiseConv2D [kh, kw, in, mult]
 * has fan_in kh * kw * in; Conv2DTranspose [kh, kw, filters, in] has
 * fan_in kh * kw * filters. RandomNormal takes the options' stddev. */
static void test_seg_initializers(void **state)
{
    (void)state;
    nn_model *m = nn_model_create(3);
    nn_layer *in = image_input(m, 6, 6, 100);
    nn_depthwise_conv2d_opts dwo = NN_DEPTHWISE_CONV2D_OPTS_INIT;
    dwo.depth_multiplier = 8;
    dwo.kernel_init = NN_INIT_HE_UNIFORM;
    nn_layer *dw = nn_depthwise_conv2d(m, in, 5, 5, &dwo);
    assert_non_null(dw);
    double mean, var, mx;
    moments(dw->params[0].value.data, 20000, &mean, &var, &mx);
    assert_true(fabs(var / (2.0 / 2500) - 1.0) < 0.05);
    assert_true(mx <= sqrt(6.0 / 2500) * 1.0001);
    nn_model *m8 = nn_model_create(4);
    nn_layer *in8 = image_input(m8, 4, 4, 8);
    nn_conv2d_transpose_opts cto = NN_CONV2D_TRANSPOSE_OPTS_INIT;
    cto.kernel_init = NN_INIT_HE_UNIFORM;
    nn_layer *ct = nn_conv2d_transpose(m8, in8, 100, 5, 5, &cto);
    assert_non_null(ct);
    assert_int_equal(ct->params[0].value.shape[2], 100);
    moments(ct->params[0].value.data, 20000, &mean, &var, &mx);
    assert_true(fabs(var / (2.0 / 2500) - 1.0) < 0.05);
    cto.kernel_init = NN_INIT_RANDOM_NORMAL;
    cto.kernel_init_stddev = 0.02f;
    cto.bias_init = NN_INIT_RANDOM_NORMAL;
    cto.bias_init_stddev = 0.5f;
    ct = nn_conv2d_transpose(m8, in8, 100, 5, 5, &cto);
    moments(ct->params[0].value.data, 20000, &mean, &var, &mx);
    assert_true(fabs(var / (0.02 * 0.02) - 1.0) < 0.05);
    assert_true(mx > 3 * 0.02); /* not truncated */
    moments(ct->params[1].value.data, 100, &mean, &var, &mx);
    assert_true(var > 0.5 * 0.25 && var < 1.5 * 0.25);
    dwo.kernel_init = NN_INIT_RANDOM_NORMAL; /* stddev 0: Keras' 0.05 */
    dw = nn_depthwise_conv2d(m, in, 5, 5, &dwo);
    moments(dw->params[0].value.data, 20000, &mean, &var, &mx);
    assert_true(fabs(var / (0.05 * 0.05) - 1.0) < 0.05);
    nn_model_free(m);
    nn_model_free(m8);
}

/* PReLU's weight: Keras' name and shape, its count in the summary and the
 * trainable count, its initializers; and what the builders refuse. */
static void test_prelu_weights_and_errors(void **state)
{
    (void)state;
    nn_model *m = nn_model_create(3);
    nn_layer *in = image_input(m, 4, 5, 6);
    nn_prelu_opts o = NN_PRELU_OPTS_INIT;
    o.shared_axes = AXIS(1) | AXIS(2);
    nn_layer *p = nn_prelu(m, in, &o);
    assert_non_null(p);
    expect_shape(p, 3, 4, 5, 6);
    assert_string_equal(nn_layer_name(p), "p_re_lu");
    assert_string_equal(nn_layer_type(p), "PReLU");
    assert_string_equal(nn_layer_weight_name(p, 0), "alpha");
    nn_tensor *a = nn_layer_weight(p, 0);
    assert_int_equal(a->rank, 3);
    assert_int_equal(a->shape[0], 1);
    assert_int_equal(a->shape[1], 1);
    assert_int_equal(a->shape[2], 6);
    for (int i = 0; i < 6; i++) assert_float_equal(a->data[i], 0.0f, 0);
    assert_int_equal(nn_layer_num_params(p), 6);
    o.shared_axes = 0;
    o.alpha_init = NN_INIT_ONES;
    nn_layer *p2 = nn_prelu(m, in, &o);
    assert_int_equal(nn_layer_num_params(p2), 4 * 5 * 6); /* Keras' count */
    assert_float_equal(nn_layer_weight(p2, 0)->data[119], 1.0f, 0);
    assert_string_equal(nn_layer_name(p2), "p_re_lu_1");
    o.shared_axes = AXIS(3);
    o.alpha_init = NN_INIT_DEFAULT;
    o.alpha_init_value = 0.25f; /* PyTorch's start */
    nn_layer *p3 = nn_prelu(m, in, &o);
    assert_int_equal(nn_layer_weight(p3, 0)->shape[2], 1);
    assert_float_equal(nn_layer_weight(p3, 0)->data[19], 0.25f, 0);
    assert_int_equal(nn_model_num_params(m), 6 + 120 + 20);
    assert_int_equal(nn_model_num_trainable_params(m), 146);
    char buf[4096];
    assert_int_equal(nn_model_summary(m, buf, sizeof buf, NULL), NN_OK);
    assert_non_null(strstr(buf, "p_re_lu_1 (PReLU)"));
    assert_non_null(strstr(buf, "Total params: 146"));
    int before = nn_model_num_layers(m);

    o = (nn_prelu_opts)NN_PRELU_OPTS_INIT;
    o.shared_axes = AXIS(0); /* the batch axis */
    EXPECT_NULL_WITH_MESSAGE(nn_prelu(m, in, &o));
    assert_non_null(strstr(nn_last_error(), "batch"));
    o.shared_axes = AXIS(4); /* past an image's 3 axes */
    EXPECT_NULL_WITH_MESSAGE(nn_prelu(m, in, &o));
    assert_non_null(strstr(nn_last_error(), "beyond"));
    o.shared_axes = AXIS(NN_MAX_RANK + 1);
    EXPECT_NULL_WITH_MESSAGE(nn_prelu(m, in, &o));
    o = (nn_prelu_opts)NN_PRELU_OPTS_INIT;
    o.alpha_init = (nn_initializer)42;
    EXPECT_NULL_WITH_MESSAGE(nn_prelu(m, in, &o));
    o = (nn_prelu_opts)NN_PRELU_OPTS_INIT;
    o.alpha_init_value = NAN;
    EXPECT_NULL_WITH_MESSAGE(nn_prelu(m, in, &o));
    o = (nn_prelu_opts)NN_PRELU_OPTS_INIT;
    o.alpha_init = NN_INIT_ZEROS;
    o.alpha_init_value = 0.25f;
    EXPECT_NULL_WITH_MESSAGE(nn_prelu(m, in, &o));
    o = (nn_prelu_opts)NN_PRELU_OPTS_INIT;
    o.reserved = 1;
    EXPECT_NULL_WITH_MESSAGE(nn_prelu(m, in, &o));
    o = (nn_prelu_opts)NN_PRELU_OPTS_INIT;
    o.size = 3;
    EXPECT_NULL_WITH_MESSAGE(nn_prelu(m, in, &o));
    EXPECT_NULL_WITH_MESSAGE(nn_prelu(NULL, in, NULL));
    EXPECT_NULL_WITH_MESSAGE(nn_prelu(m, NULL, NULL));
    EXPECT_NULL_WITH_MESSAGE(nn_leaky_relu(m, in, -0.1f, NULL));
    EXPECT_NULL_WITH_MESSAGE(nn_leaky_relu(m, in, NAN, NULL));
    EXPECT_NULL_WITH_MESSAGE(nn_leaky_relu(m, in, INFINITY, NULL));
    EXPECT_NULL_WITH_MESSAGE(nn_leaky_relu(NULL, in, 0.3f, NULL));
    EXPECT_NULL_WITH_MESSAGE(nn_elu(m, in, NAN, NULL));
    EXPECT_NULL_WITH_MESSAGE(nn_elu(m, in, -INFINITY, NULL));
    EXPECT_NULL_WITH_MESSAGE(nn_elu(m, NULL, 1.0f, NULL));
    EXPECT_NULL_WITH_MESSAGE(nn_tanh(NULL, in, NULL));
    nn_conv2d_opts co = NN_CONV2D_OPTS_INIT;
    co.activation = (nn_activation)(NN_ACT_LEAKY_RELU + 1);
    EXPECT_NULL_WITH_MESSAGE(nn_conv2d(m, in, 2, 1, 1, &co));
    assert_int_equal(nn_model_num_layers(m), before);
    /* Negative ELU alphas are Keras' and PyTorch's too. */
    assert_non_null(nn_elu(m, in, -0.5f, NULL));
    assert_non_null(nn_leaky_relu(m, in, 0.0f, NULL));
    nn_model_free(m);
}

/* Output sizes, parameters and the arguments each segmentation layer
 * refuses. */
static void test_seg_layer_shapes(void **state)
{
    (void)state;
    nn_model *m = nn_model_create(1);
    nn_layer *in = image_input(m, 4, 5, 8);
    static const struct {
        int k, s;
        nn_padding pad;
        int op, want; /* want 0: refused */
    } ct_cases[] = {
        {3, 2, NN_PADDING_SAME, -1, 8},  {3, 2, NN_PADDING_VALID, -1, 9},
        {2, 3, NN_PADDING_VALID, -1, 12}, {4, 2, NN_PADDING_SAME, 1, 7},
        {4, 2, NN_PADDING_SAME, 0, 0},   {3, 1, NN_PADDING_VALID, 0, 6},
        {3, 2, NN_PADDING_SAME, 2, 0},   {1, 3, NN_PADDING_SAME, -1, 12},
        {1, 3, NN_PADDING_VALID, 2, 12}, {5, 3, NN_PADDING_SAME, 1, 11},
    };
    for (size_t i = 0; i < sizeof ct_cases / sizeof ct_cases[0]; i++) {
        nn_conv2d_transpose_opts o =
            ct_opts(ct_cases[i].s, 1, ct_cases[i].pad, ct_cases[i].op,
                    ct_cases[i].op < 0 ? -1 : 0, 1, NN_ACT_NONE);
        nn_clear_error();
        nn_layer *l = nn_conv2d_transpose(m, in, 3, ct_cases[i].k, 1, &o);
        if (!ct_cases[i].want) {
            assert_null(l);
            assert_true(nn_last_error()[0] != '\0');
            continue;
        }
        assert_non_null(l);
        expect_shape(l, 3, ct_cases[i].want, 5, 3);
    }
    nn_layer *ct = nn_conv2d_transpose(m, in, 4, 3, 3, NULL);
    expect_shape(ct, 3, 6, 7, 4);
    assert_int_equal(nn_layer_num_params(ct), 3 * 3 * 4 * 8 + 4);
    assert_string_equal(nn_layer_weight_name(ct, 0), "kernel");
    assert_int_equal(nn_layer_weight(ct, 0)->shape[2], 4); /* [kh,kw,f,in] */
    assert_int_equal(nn_layer_weight(ct, 0)->shape[3], 8);
    nn_depthwise_conv2d_opts dwo =
        dw_opts(2, 2, NN_PADDING_SAME, 2, 1, NN_ACT_NONE);
    nn_layer *dw = nn_depthwise_conv2d(m, in, 3, 3, &dwo);
    expect_shape(dw, 3, 2, 3, 16);
    assert_int_equal(nn_layer_num_params(dw), 3 * 3 * 8 * 2 + 16);
    assert_string_equal(nn_layer_weight_name(dw, 0), "depthwise_kernel");
    assert_int_equal(nn_layer_weight(dw, 0)->shape[3], 2);
    expect_shape(nn_upsampling2d(m, in, 2, 3, NULL), 3, 8, 15, 8);
    expect_shape(nn_cropping2d(m, in, 1, 2, 0, 4, NULL), 3, 1, 1, 8);
    expect_shape(nn_relu6(m, in, NULL), 3, 4, 5, 8);
    nn_separable_conv2d_opts so = NN_SEPARABLE_CONV2D_OPTS_INIT;
    so.depth_multiplier = 3;
    so.padding = NN_PADDING_SAME;
    nn_layer *sep = nn_separable_conv2d(m, in, 6, 3, 3, &so);
    expect_shape(sep, 3, 4, 5, 6);
    assert_int_equal(nn_layer_num_params(sep), 3 * 3 * 8 * 3 + 24 * 6 + 6);
    assert_string_equal(nn_layer_weight_name(sep, 1), "pointwise_kernel");
    assert_int_equal(nn_layer_weight(sep, 1)->shape[2], 24);
    so.pointwise_init = (nn_initializer)-3;
    EXPECT_NULL_WITH_MESSAGE(nn_separable_conv2d(m, in, 6, 3, 3, &so));
    int before = nn_model_num_layers(m);

    EXPECT_NULL_WITH_MESSAGE(nn_relu6(m, NULL, NULL));
    EXPECT_NULL_WITH_MESSAGE(nn_cropping2d(m, in, 2, 2, 0, 0, NULL));
    EXPECT_NULL_WITH_MESSAGE(nn_cropping2d(m, in, -1, 0, 0, 0, NULL));
    EXPECT_NULL_WITH_MESSAGE(nn_cropping2d(NULL, in, 0, 0, 0, 0, NULL));
    EXPECT_NULL_WITH_MESSAGE(nn_upsampling2d(m, in, 0, 2, NULL));
    nn_upsampling2d_opts uo = NN_UPSAMPLING2D_OPTS_INIT;
    uo.interpolation = (nn_interpolation)7;
    EXPECT_NULL_WITH_MESSAGE(nn_upsampling2d(m, in, 2, 2, &uo));
    uo = (nn_upsampling2d_opts)NN_UPSAMPLING2D_OPTS_INIT;
    uo.reserved = 1;
    EXPECT_NULL_WITH_MESSAGE(nn_upsampling2d(m, in, 2, 2, &uo));
    EXPECT_NULL_WITH_MESSAGE(nn_depthwise_conv2d(m, in, 5, 3, NULL));
    EXPECT_NULL_WITH_MESSAGE(nn_depthwise_conv2d(NULL, in, 3, 3, NULL));
    dwo = (nn_depthwise_conv2d_opts)NN_DEPTHWISE_CONV2D_OPTS_INIT;
    dwo.depth_multiplier = 0;
    EXPECT_NULL_WITH_MESSAGE(nn_depthwise_conv2d(m, in, 3, 3, &dwo));
    dwo = (nn_depthwise_conv2d_opts)NN_DEPTHWISE_CONV2D_OPTS_INIT;
    dwo.kernel_init_stddev = -0.1f;
    EXPECT_NULL_WITH_MESSAGE(nn_depthwise_conv2d(m, in, 3, 3, &dwo));
    dwo.kernel_init_stddev = NAN;
    EXPECT_NULL_WITH_MESSAGE(nn_depthwise_conv2d(m, in, 3, 3, &dwo));
    dwo = (nn_depthwise_conv2d_opts)NN_DEPTHWISE_CONV2D_OPTS_INIT;
    dwo.activation = (nn_activation)(NN_ACT_LEAKY_RELU + 1);
    EXPECT_NULL_WITH_MESSAGE(nn_depthwise_conv2d(m, in, 3, 3, &dwo));
    EXPECT_NULL_WITH_MESSAGE(nn_conv2d_transpose(m, in, 0, 3, 3, NULL));
    nn_conv2d_transpose_opts cto = NN_CONV2D_TRANSPOSE_OPTS_INIT;
    cto.output_padding_h = 0; /* w stays None */
    EXPECT_NULL_WITH_MESSAGE(nn_conv2d_transpose(m, in, 2, 3, 3, &cto));
    cto = (nn_conv2d_transpose_opts)NN_CONV2D_TRANSPOSE_OPTS_INIT;
    cto.reserved = 3;
    EXPECT_NULL_WITH_MESSAGE(nn_conv2d_transpose(m, in, 2, 3, 3, &cto));
    cto = (nn_conv2d_transpose_opts)NN_CONV2D_TRANSPOSE_OPTS_INIT;
    cto.output_padding_h = cto.output_padding_w = -2;
    EXPECT_NULL_WITH_MESSAGE(nn_conv2d_transpose(m, in, 2, 3, 3, &cto));
    cto = (nn_conv2d_transpose_opts)NN_CONV2D_TRANSPOSE_OPTS_INIT;
    cto.bias_init_stddev = INFINITY;
    EXPECT_NULL_WITH_MESSAGE(nn_conv2d_transpose(m, in, 2, 3, 3, &cto));
    assert_int_equal(nn_model_num_layers(m), before);
    nn_model_free(m);
}

/* ------------------------------------------------------------------ */
/* through the model: the loss's fused logits and the layers agree     */
/* ------------------------------------------------------------------ */

static double model_loss(nn_model *m, const nn_tensor *x, const nn_tensor *y)
{
    float loss = NAN;
    assert_int_equal(nn_model_evaluate(m, x, y, 64, &loss, NULL), NN_OK);
    return loss;
}

/* d loss / d v for the value *v of the model, by central differences of
 * nn_model_evaluate, compared with `analytic` (kink-tolerant as above). */
static int check_model_coord(nn_model *m, const nn_tensor *x,
                             const nn_tensor *y, float *v, float analytic)
{
    const double eps = 1e-2;
    float keep = *v;
    double l0 = model_loss(m, x, y);
    *v = keep + (float)eps;
    double lp = model_loss(m, x, y);
    *v = keep - (float)eps;
    double lm = model_loss(m, x, y);
    *v = keep;
    double dp = (lp - l0) / eps, dm = (l0 - lm) / eps, num = (lp - lm) / (2 * eps);
    double tol = 1e-3 + 2e-2 * fmax(fabs(num), fabs(analytic));
    if (fabs(num - analytic) <= tol + 0.5 * fabs(dp - dm)) return 0;
    fprintf(stderr, "model gradient: numeric %.6g analytic %.6g\n", num,
            (double)analytic);
    return 1;
}

static void model_gradients(nn_activation out_act, nn_loss loss, bool layer)
{
    /* Data of its own, not whatever the tests before left in the shared
     * generator: with eps 1e-2, a perturbation can cross a ReLU and a
     * max-pool kink at once on some draws. */
    gc_rand_state = 88172645463325252ULL;
    nn_model *m = nn_model_create(21);
    nn_conv2d_opts co = conv_opts(1, 1, NN_PADDING_SAME, 1, NN_ACT_RELU);
    nn_layer *l = nn_conv2d(m, image_input(m, 6, 6, 2), 3, 3, 3, &co);
    l = nn_flatten(m, nn_maxpool2d(m, l, 2, 2, NULL), NULL);
    nn_dense_opts dop = dense_opts(1, layer ? NN_ACT_NONE : out_act);
    l = nn_dense(m, l, 4, &dop);
    if (layer) l = out_act == NN_ACT_SOFTMAX ? nn_softmax(m, l, NULL)
                                             : nn_sigmoid(m, l, NULL);
    assert_non_null(l);
    assert_int_equal(nn_model_compile(m, nn_sgd(NULL), loss, NULL), NN_OK);
    int64_t xs[4] = {3, 6, 6, 2}, ys[2] = {3, 4};
    nn_tensor *x = nn_tensor_create(4, xs), *y = nn_tensor_create(2, ys);
    nn_tensor *dx = nn_tensor_create(4, xs);
    gc_fill(x->data, x->size, 1.0);
    for (int i = 0; i < 3; i++) {
        if (loss == NN_LOSS_BINARY_CROSSENTROPY)
            for (int j = 0; j < 4; j++) y->data[i * 4 + j] = (i + j) % 2;
        else
            y->data[i * 4 + (i + 1) % 4] = 1.0f;
    }
    assert_int_equal(nn_model_backward(m, x, y, 0, NULL, dx), NN_OK);
    int bad = 0;
    for (int64_t i = 0; i < x->size; i += 5)
        bad += check_model_coord(m, x, y, &x->data[i], dx->data[i]);
    for (int li = 0; li < nn_model_num_layers(m); li++) {
        nn_layer *ly = nn_model_layer(m, li);
        for (int j = 0; j < nn_layer_num_weights(ly); j++) {
            nn_tensor *w = nn_layer_weight(ly, j);
            float *g = malloc((size_t)w->size * sizeof(float));
            memcpy(g, nn_layer_weight_grad(ly, j)->data,
                   (size_t)w->size * sizeof(float));
            for (int64_t i = 0; i < w->size; i += 7)
                bad += check_model_coord(m, x, y, &w->data[i], g[i]);
            free(g);
        }
    }
    assert_int_equal(bad, 0);
    nn_tensor_free(x);
    nn_tensor_free(y);
    nn_tensor_free(dx);
    nn_model_free(m);
}

static void test_model_gradients(void **state)
{
    (void)state;
    for (int layer = 0; layer <= 1; layer++) {
        model_gradients(NN_ACT_SOFTMAX, NN_LOSS_CATEGORICAL_CROSSENTROPY, layer);
        model_gradients(NN_ACT_SIGMOID, NN_LOSS_BINARY_CROSSENTROPY, layer);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_registry),
        cmocka_unit_test(test_gradients_every_kind),
        cmocka_unit_test(test_gradients_threads),
        cmocka_unit_test(test_gradcheck_detects_errors),
        cmocka_unit_test(test_backward_accum_and_null),
        cmocka_unit_test(test_frozen_layer),
        cmocka_unit_test(test_q3a_shapes),
        cmocka_unit_test(test_same_padding_geometry),
        cmocka_unit_test(test_conv_layer_forward),
        cmocka_unit_test(test_logits_saved),
        cmocka_unit_test(test_loss_from_output_layer_logits),
        cmocka_unit_test(test_dropout_behaviour),
        cmocka_unit_test(test_invalid_constructors),
        cmocka_unit_test(test_opts_sizes),
        cmocka_unit_test(test_config_round_trip),
        cmocka_unit_test(test_config_rejects_garbage),
        cmocka_unit_test(test_initializers),
        cmocka_unit_test(test_relu6_activation),
        cmocka_unit_test(test_new_activations),
        cmocka_unit_test(test_prelu_weights_and_errors),
        cmocka_unit_test(test_seg_initializers),
        cmocka_unit_test(test_seg_layer_shapes),
        cmocka_unit_test(test_model_gradients),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

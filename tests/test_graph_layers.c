/* Graph-model layers (BatchNormalization, ZeroPadding2D, Add, Concatenate,
 * GlobalAveragePooling2D, Resizing, RepeatChannels, LocallyConnected2D),
 * freezing and receptive fields: gradient checks, branch graphs, the
 * assignment's parameter counts and receptive fields (Q2), batch norm
 * semantics, freezing through fit and the optimizer's state, invalid
 * arguments and allocation failures. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "nn_internal.h"

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

static void randomize(nn_param *p, double lo, double hi)
{
    for (int64_t i = 0; i < p->value.size; i++)
        p->value.data[i] = (float)(lo + (hi - lo) * 0.5 * (gc_uniform() + 1));
}

static nn_tensor *tensor4(int n, int h, int w, int c)
{
    int64_t s[4] = {n, h, w, c};
    return nn_tensor_create(4, s);
}

static nn_tensor *one_hot(int n, int classes)
{
    int64_t s[2] = {n, classes};
    nn_tensor *t = nn_tensor_create(2, s);
    if (!t) return NULL;
    for (int i = 0; i < n; i++)
        t->data[i * classes + (i * 7 + 3) % classes] = 1;
    return t;
}

static float *copy_floats(const float *p, int64_t n)
{
    float *c = malloc((size_t)n * sizeof(float));
    memcpy(c, p, (size_t)n * sizeof(float));
    return c;
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
/* branch graphs through the model: accumulation of gradients          */
/* ------------------------------------------------------------------ */

static double model_loss(nn_model *m, const nn_tensor *x, const nn_tensor *y)
{
    float loss = NAN;
    assert_int_equal(nn_model_evaluate(m, x, y, 64, &loss, NULL), NN_OK);
    return loss;
}

static int check_coord(nn_model *m, const nn_tensor *x, const nn_tensor *y,
                       float *v, float analytic)
{
    const double eps = 1e-2;
    float keep = *v;
    double l0 = model_loss(m, x, y);
    *v = keep + (float)eps;
    double lp = model_loss(m, x, y);
    *v = keep - (float)eps;
    double lm = model_loss(m, x, y);
    *v = keep;
    double dp = (lp - l0) / eps, dm = (l0 - lm) / eps;
    double num = (lp - lm) / (2 * eps);
    double tol = 1e-3 + 2e-2 * fmax(fabs(num), fabs(analytic));
    if (fabs(num - analytic) <= tol + 0.5 * fabs(dp - dm)) return 0;
    fprintf(stderr, "model gradient: numeric %.6g analytic %.6g\n", num,
            (double)analytic);
    return 1;
}

/* Every input value and every 3rd weight of every layer against central
 * differences of nn_model_evaluate (inference mode). */
static void check_model_gradients(nn_model *m, int n, int classes)
{
    assert_int_equal(nn_model_compile(m, nn_sgd(NULL),
                                      NN_LOSS_CATEGORICAL_CROSSENTROPY, NULL),
                     NN_OK);
    const nn_shape *s = &m->input->out;
    nn_tensor *x = tensor4(n, s->d[0], s->d[1], s->d[2]);
    nn_tensor *dx = tensor4(n, s->d[0], s->d[1], s->d[2]);
    gc_fill(x->data, x->size, 1.0);
    nn_tensor *y = one_hot(n, classes);
    assert_int_equal(nn_model_backward(m, x, y, 0, NULL, dx), NN_OK);
    int bad = 0, checked = 0;
    for (int64_t i = 0; i < x->size; i++, checked++)
        bad += check_coord(m, x, y, &x->data[i], dx->data[i]);
    for (int li = 0; li < m->n_layers; li++) {
        nn_layer *l = m->layers[li];
        for (int j = 0; j < l->n_params; j++) {
            if (!l->params[j].trainable) continue;
            nn_tensor *w = nn_layer_weight(l, j);
            float *g = copy_floats(nn_layer_weight_grad(l, j)->data, w->size);
            for (int64_t i = 0; i < w->size; i += 3, checked++)
                bad += check_coord(m, x, y, &w->data[i], g[i]);
            free(g);
        }
    }
    assert_true(checked > 50);
    assert_int_equal(bad, 0);
    nn_tensor_free(x);
    nn_tensor_free(dx);
    nn_tensor_free(y);
}

static void test_branch_graph_gradients(void **state)
{
    (void)state;
    nn_model *m = nn_model_create(90);
    nn_conv2d_opts same = NN_CONV2D_OPTS_INIT;
    same.padding = NN_PADDING_SAME;
    same.activation = NN_ACT_RELU;
    same.bias_init = NN_INIT_GLOROT_UNIFORM;
    nn_layer *in = image_input(m, 5, 5, 2);
    /* The input feeds two convolutions; c1 feeds an Add and a
     * Concatenate; c2 appears twice in one Add. */
    nn_layer *c1 = nn_conv2d(m, in, 3, 3, 3, &same);
    nn_layer *c2 = nn_conv2d(m, in, 3, 1, 1, NULL);
    nn_layer *a_in[3] = {c1, c2, c2};
    nn_layer *a = nn_add(m, 3, a_in, NULL);
    nn_layer *k_in[3] = {c1, a, in};
    nn_layer *k = nn_concatenate(m, 3, k_in, NULL);
    nn_layer *bn = nn_batchnorm(m, k, NULL);
    for (int j = 0; j < bn->n_params; j++) randomize(&bn->params[j], 0.5, 1.5);
    nn_layer *p = nn_zeropad2d(m, bn, 1, 0, 0, 2, NULL);
    nn_layer *g = nn_global_avgpool2d(m, p, NULL);
    nn_dense_opts dop = NN_DENSE_OPTS_INIT;
    dop.activation = NN_ACT_SOFTMAX;
    assert_non_null(nn_dense(m, g, 4, &dop));
    check_model_gradients(m, 3, 4);
    nn_model_free(m);

    /* A chain of the remaining kinds. */
    m = nn_model_create(91);
    in = image_input(m, 6, 5, 1);
    nn_layer *r = nn_repeat_channels(m, in, 2, NULL);
    nn_layer *lc = nn_locally_connected2d(m, r, 3, 3, 2, NULL);
    randomize(&lc->params[0], -0.5, 0.5);
    nn_layer *rs = nn_resizing(m, lc, 5, 3, NULL);
    nn_layer *f = nn_flatten(m, rs, NULL);
    assert_non_null(nn_dense(m, f, 3, &dop));
    check_model_gradients(m, 2, 3);
    nn_model_free(m);
}

/* ------------------------------------------------------------------ */
/* shapes, parameter counts and receptive fields of Q2                 */
/* ------------------------------------------------------------------ */

static void expect_shape(const nn_layer *l, int rank, int d0, int d1, int d2)
{
    int s[NN_MAX_RANK];
    assert_int_equal(nn_layer_output_shape(l, s, NN_MAX_RANK), rank);
    int want[3] = {d0, d1, d2};
    for (int i = 0; i < rank; i++) assert_int_equal(s[i], want[i]);
}

static void expect_rf(const nn_layer *l, int rf, int jump)
{
    int rh = -1, rw = -1, jh = -1, jw = -1;
    assert_int_equal(nn_layer_receptive_field(l, &rh, &rw, &jh, &jw), NN_OK);
    assert_int_equal(rh, rf);
    assert_int_equal(rw, rf);
    assert_int_equal(jh, jump);
    assert_int_equal(jw, jump);
}

typedef struct inception {
    nn_model *m;
    nn_layer *a, *b, *c, *cat, *out;
} inception;

/* Q2a: 1x1 (A); 1x1 -> 3x3 (B); 1x1 -> 3x3 -> 3x3 (C); concatenate;
 * 1x1 conv to 256. 32 filters, same padding, biases. */
static inception q2a(int n)
{
    inception q;
    q.m = nn_model_create(7);
    nn_conv2d_opts o = NN_CONV2D_OPTS_INIT;
    o.padding = NN_PADDING_SAME;
    nn_layer *x = image_input(q.m, n, n, 3);
    q.a = nn_conv2d(q.m, x, 32, 1, 1, &o);
    q.b = nn_conv2d(q.m, nn_conv2d(q.m, x, 32, 1, 1, &o), 32, 3, 3, &o);
    nn_layer *c = nn_conv2d(q.m, nn_conv2d(q.m, x, 32, 1, 1, &o), 32, 3, 3, &o);
    q.c = nn_conv2d(q.m, c, 32, 3, 3, &o);
    nn_layer *br[3] = {q.a, q.b, q.c};
    q.cat = nn_concatenate(q.m, 3, br, NULL);
    q.out = nn_conv2d(q.m, q.cat, 256, 1, 1, &o);
    assert_non_null(q.out);
    return q;
}

static void test_q2a_inception(void **state)
{
    (void)state;
    const int sizes[] = {32, 7, 1};
    for (int i = 0; i < 3; i++) {
        int n = sizes[i];
        inception q = q2a(n);
        assert_int_equal(nn_model_num_params(q.m), 52960);
        assert_int_equal(nn_model_num_trainable_params(q.m), 52960);
        assert_int_equal(nn_layer_num_params(q.a), 128);
        assert_int_equal(nn_layer_num_params(q.b), 9248);
        assert_int_equal(nn_layer_num_params(q.out), 24832);
        expect_shape(q.cat, 3, n, n, 96);
        expect_shape(q.out, 3, n, n, 256);
        assert_string_equal(nn_layer_name(q.cat), "concatenate");
        assert_string_equal(nn_layer_type(q.cat), "Concatenate");
        expect_rf(q.a, 1, 1);
        expect_rf(q.b, 3, 1);
        expect_rf(q.c, 5, 1);
        expect_rf(q.cat, 5, 1);
        expect_rf(q.out, 5, 1);
        char buf[8192];
        assert_int_equal(nn_model_summary(q.m, buf, sizeof buf, NULL), NN_OK);
        assert_non_null(strstr(buf, "Total params: 52,960"));
        if (n == 32) assert_non_null(strstr(buf, "(None, 32, 32, 96)"));
        nn_model_free(q.m);
    }
}

static nn_model *q2b(int n, bool local, nn_layer **l1, nn_layer **l2)
{
    nn_model *m = nn_model_create(8);
    nn_layer *x = image_input(m, n, n, 3);
    if (local) {
        *l1 = nn_locally_connected2d(m, x, 16, 3, 3, NULL);
        *l2 = nn_locally_connected2d(m, *l1, 32, 3, 3, NULL);
    } else {
        *l1 = nn_conv2d(m, x, 16, 3, 3, NULL);
        *l2 = nn_conv2d(m, *l1, 32, 3, 3, NULL);
    }
    assert_non_null(*l2);
    return m;
}

static void test_q2b_conv_vs_local(void **state)
{
    (void)state;
    const int sizes[] = {32, 10, 5};
    for (int i = 0; i < 3; i++) {
        int n = sizes[i];
        nn_layer *l1, *l2;
        nn_model *m = q2b(n, false, &l1, &l2);
        assert_int_equal(nn_model_num_params(m), 5088);
        assert_int_equal(nn_layer_num_params(l1), 448);
        expect_shape(l2, 3, n - 4, n - 4, 32);
        expect_rf(l1, 3, 1);
        expect_rf(l2, 5, 1);
        nn_model_free(m);
        m = q2b(n, true, &l1, &l2);
        int64_t a = (int64_t)(n - 2) * (n - 2), b = (int64_t)(n - 4) * (n - 4);
        assert_int_equal(nn_layer_num_params(l1), 448 * a);
        assert_int_equal(nn_layer_num_params(l2), 4640 * b);
        assert_int_equal(nn_model_num_params(m), 448 * a + 4640 * b);
        assert_int_equal(nn_model_num_trainable_params(m), 448 * a + 4640 * b);
        expect_shape(l1, 3, n - 2, n - 2, 16);
        expect_shape(l2, 3, n - 4, n - 4, 32);
        nn_tensor *k = nn_layer_weight(l2, 0), *bias = nn_layer_weight(l2, 1);
        assert_int_equal(k->rank, 3);
        assert_int_equal(k->shape[0], b);
        assert_int_equal(k->shape[1], 3 * 3 * 16);
        assert_int_equal(k->shape[2], 32);
        assert_int_equal(bias->rank, 3);
        assert_int_equal(bias->shape[0], n - 4);
        assert_int_equal(bias->shape[2], 32);
        assert_string_equal(nn_layer_name(l2), "locally_connected2d_1");
        expect_rf(l1, 3, 1);
        expect_rf(l2, 5, 1);
        nn_model_free(m);
    }
}

static void test_receptive_fields(void **state)
{
    (void)state;
    nn_model *m = nn_model_create(9);
    nn_layer *x = image_input(m, 64, 48, 3);
    expect_rf(x, 1, 1);
    nn_conv2d_opts o = NN_CONV2D_OPTS_INIT;
    o.stride_h = o.stride_w = 2;
    o.padding = NN_PADDING_SAME;
    nn_layer *c = nn_conv2d(m, nn_zeropad2d(m, x, 3, 3, 3, 3, NULL), 8, 7, 7,
                            &o);
    expect_rf(c, 7, 2);
    nn_pool2d_opts po = NN_POOL2D_OPTS_INIT;
    po.stride_h = po.stride_w = 2;
    nn_layer *p = nn_maxpool2d(m, nn_batchnorm(m, c, NULL), 3, 3, &po);
    expect_rf(p, 7 + 2 * 2, 4); /* ResNet's stem: 11, jump 4 */
    nn_layer *r = nn_relu(m, p, NULL);
    expect_rf(r, 11, 4);
    nn_conv2d_opts k13 = NN_CONV2D_OPTS_INIT;
    nn_layer *c13 = nn_conv2d(m, r, 4, 1, 3, &k13);
    int rh, rw, jh, jw;
    assert_int_equal(nn_layer_receptive_field(c13, &rh, &rw, &jh, &jw), NN_OK);
    assert_int_equal(rh, 11);
    assert_int_equal(rw, 11 + 2 * 4);
    /* Positions are gone: the whole 64 x 48 input. */
    nn_layer *g = nn_global_avgpool2d(m, c13, NULL);
    assert_int_equal(nn_layer_receptive_field(g, &rh, &rw, &jh, &jw), NN_OK);
    assert_int_equal(rh, 64);
    assert_int_equal(rw, 48);
    nn_layer *d = nn_dense(m, g, 3, NULL);
    assert_int_equal(nn_layer_receptive_field(d, &rh, &rw, NULL, NULL), NN_OK);
    assert_int_equal(rh, 64);
    /* Dense on an image is position-wise. */
    nn_layer *dp = nn_dense(m, r, 3, NULL);
    expect_rf(dp, 11, 4);
    /* A merge takes the larger field. */
    nn_layer *r3 = nn_conv2d(m, r, 4, 3, 3, NULL);
    nn_layer *pad = nn_zeropad2d(m, r3, 1, 1, 1, 1, NULL);
    nn_layer *both[2] = {pad, nn_conv2d(m, r, 4, 1, 1, NULL)};
    expect_rf(nn_add(m, 2, both, NULL), 11 + 2 * 4, 4);
    nn_model_free(m);

    /* Resizing: 4 -> 8 halves the jump; bilinear reads 2 samples. */
    m = nn_model_create(10);
    x = image_input(m, 4, 4, 1);
    nn_layer *up = nn_resizing(m, x, 8, 8, NULL);
    assert_int_equal(nn_layer_receptive_field(up, &rh, &rw, &jh, &jw), NN_OK);
    assert_int_equal(rh, 2);
    assert_int_equal(jh, 1); /* 0.5 rounds to at least 1 */
    nn_layer *c3 = nn_conv2d(m, up, 1, 3, 3, NULL);
    assert_int_equal(nn_layer_receptive_field(c3, &rh, &rw, &jh, &jw), NN_OK);
    assert_int_equal(rh, 3); /* 2 + 2 * 0.5 */
    nn_resizing_opts ro = NN_RESIZING_OPTS_INIT;
    ro.interpolation = NN_INTERP_NEAREST;
    nn_layer *down = nn_resizing(m, x, 2, 2, &ro);
    expect_rf(down, 1, 2);
    nn_model_free(m);
}

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

static void predict(nn_model *m, nn_tensor *x, nn_tensor *out)
{
    assert_int_equal(nn_model_predict(m, x, out, 64), NN_OK);
}

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
/* freezing                                                            */
/* ------------------------------------------------------------------ */

/* conv2d - batch_normalization - relu - flatten - dense(softmax) */
static nn_model *small_cnn(uint64_t seed)
{
    nn_model *m = nn_model_create(seed);
    nn_layer *x = image_input(m, 6, 6, 2);
    x = nn_conv2d(m, x, 4, 3, 3, NULL);
    x = nn_batchnorm(m, x, NULL);
    x = nn_relu(m, x, NULL);
    x = nn_flatten(m, x, NULL);
    nn_dense_opts d = NN_DENSE_OPTS_INIT;
    d.activation = NN_ACT_SOFTMAX;
    assert_non_null(nn_dense(m, x, 3, &d));
    return m;
}

static int64_t total_floats(nn_model *m)
{
    int64_t n = 0;
    for (int i = 0; i < m->n_layers; i++)
        for (int j = 0; j < m->layers[i]->n_params; j++)
            n += m->layers[i]->params[j].value.size;
    return n;
}

/* All parameters of the model, concatenated. */
static float *snapshot(nn_model *m)
{
    float *s = malloc((size_t)total_floats(m) * sizeof(float)), *p = s;
    for (int i = 0; i < m->n_layers; i++)
        for (int j = 0; j < m->layers[i]->n_params; j++) {
            nn_tensor *t = &m->layers[i]->params[j].value;
            memcpy(p, t->data, (size_t)t->size * sizeof(float));
            p += t->size;
        }
    return s;
}

static bool layer_same(nn_layer *l, const float *snap_at)
{
    for (int j = 0; j < l->n_params; j++) {
        nn_tensor *t = &l->params[j].value;
        if (memcmp(t->data, snap_at, (size_t)t->size * sizeof(float)))
            return false;
        snap_at += t->size;
    }
    return true;
}

static int64_t offset_of(nn_model *m, int layer)
{
    int64_t n = 0;
    for (int i = 0; i < layer; i++)
        for (int j = 0; j < m->layers[i]->n_params; j++)
            n += m->layers[i]->params[j].value.size;
    return n;
}

static void fit_once(nn_model *m, int epochs)
{
    nn_tensor *x = tensor4(24, 6, 6, 2);
    gc_fill(x->data, x->size, 1.0);
    nn_tensor *y = one_hot(24, 3);
    nn_fit_opts fo = NN_FIT_OPTS_INIT;
    fo.epochs = epochs;
    fo.batch_size = 8;
    assert_int_equal(nn_model_fit(m, x, y, &fo, NULL), NN_OK);
    nn_tensor_free(x);
    nn_tensor_free(y);
}

static void test_freeze_through_fit(void **state)
{
    (void)state;
    nn_model *m = small_cnn(30);
    nn_layer *conv = m->layers[1], *bn = m->layers[2], *dense = m->layers[5];
    int64_t all = nn_model_num_params(m);
    assert_int_equal(all, 76 + 16 + 195);
    assert_int_equal(nn_model_num_trainable_params(m), 76 + 8 + 195);
    assert_int_equal(nn_layer_trainable(conv), 1);
    assert_int_equal(nn_layer_set_trainable(conv, 0), NN_OK);
    assert_int_equal(nn_layer_set_trainable(bn, 0), NN_OK);
    assert_int_equal(nn_layer_trainable(conv), 0);
    assert_int_equal(nn_model_num_trainable_params(m), 195);
    char buf[4096];
    assert_int_equal(nn_model_summary(m, buf, sizeof buf, NULL), NN_OK);
    assert_non_null(strstr(buf, "Trainable params: 195\n"));
    assert_non_null(strstr(buf, "Non-trainable params: 92\n"));
    assert_int_equal(nn_model_compile(m, nn_adam(NULL),
                                      NN_LOSS_CATEGORICAL_CROSSENTROPY, NULL),
                     NN_OK);
    float *before = snapshot(m);
    fit_once(m, 2);
    /* Frozen conv and BN (moving statistics included): bit-identical. */
    assert_true(layer_same(conv, before + offset_of(m, 1)));
    assert_true(layer_same(bn, before + offset_of(m, 2)));
    assert_false(layer_same(dense, before + offset_of(m, 5)));
    free(before);
    /* Unfreezing after training continues training (the optimizer's state
     * is re-keyed, not refused). */
    assert_int_equal(nn_model_set_trainable(m, 1), NN_OK);
    assert_int_equal(nn_model_num_trainable_params(m), 76 + 8 + 195);
    before = snapshot(m);
    fit_once(m, 1);
    assert_false(layer_same(conv, before + offset_of(m, 1)));
    assert_false(layer_same(bn, before + offset_of(m, 2)));
    free(before);
    /* Freeze everything: fit runs and changes nothing. */
    assert_int_equal(nn_model_set_trainable(m, 0), NN_OK);
    assert_int_equal(nn_model_num_trainable_params(m), 0);
    before = snapshot(m);
    fit_once(m, 1);
    float *after = snapshot(m);
    assert_memory_equal(before, after, (size_t)all * sizeof(float));
    free(before);
    free(after);
    nn_model_free(m);
}

/* Re-keying keeps the moments of the parameters that stay trainable and
 * gives zero moments to those that become trainable. */
static void test_freeze_rekeys_optimizer(void **state)
{
    (void)state;
    for (int adam = 0; adam <= 1; adam++) {
        nn_model *m = small_cnn(31);
        nn_sgd_opts so = NN_SGD_OPTS_INIT;
        so.momentum = 0.9f;
        nn_optimizer *opt = adam ? nn_adam(NULL) : nn_sgd(&so);
        assert_int_equal(nn_model_compile(m, opt,
                                          NN_LOSS_CATEGORICAL_CROSSENTROPY,
                                          NULL),
                         NN_OK);
        fit_once(m, 1);
        /* slots: conv k, b; bn gamma, beta; dense k, b */
        assert_int_equal(opt->n_slots, 6);
        float *dense_m = copy_floats(opt->slot_m[4], 192);
        float *dense_v = adam ? copy_floats(opt->slot_v[4], 192) : NULL;
        assert_int_equal(nn_layer_set_trainable(m->layers[1], 0), NN_OK);
        assert_int_equal(opt->n_slots, 4);
        assert_int_equal(opt->slot_size[2], 192);
        assert_memory_equal(opt->slot_m[2], dense_m, 192 * sizeof(float));
        if (adam)
            assert_memory_equal(opt->slot_v[2], dense_v, 192 * sizeof(float));
        fit_once(m, 1);
        assert_int_equal(nn_layer_set_trainable(m->layers[1], 1), NN_OK);
        assert_int_equal(opt->n_slots, 6);
        for (int i = 0; i < 72; i++)
            assert_float_equal(opt->slot_m[0][i], 0, 0);
        fit_once(m, 1);
        /* The state still lines up with the model for a checkpoint. */
        char path[] = "/tmp/test_graph_layers_XXXXXX";
        int fd = mkstemp(path);
        assert_true(fd >= 0);
        assert_int_equal(nn_layer_set_trainable(m->layers[2], 0), NN_OK);
        assert_int_equal(nn_model_save(m, path, NN_SAVE_OPTIMIZER), NN_OK);
        nn_model *back = nn_model_load(path);
        assert_non_null(back);
        assert_int_equal(nn_layer_trainable(back->layers[2]), 0);
        assert_int_equal(nn_model_num_trainable_params(back),
                         nn_model_num_trainable_params(m));
        fit_once(back, 1);
        nn_model_free(back);
        remove(path);
        free(dense_m);
        free(dense_v);
        nn_model_free(m);
    }
}

/* Inference through a context never writes batch norm's statistics. */
static void test_inference_is_read_only(void **state)
{
    (void)state;
    nn_model *m = small_cnn(32);
    float *before = snapshot(m);
    nn_tensor *x = tensor4(5, 6, 6, 2);
    gc_fill(x->data, x->size, 2.0);
    int64_t s[2] = {5, 3};
    nn_tensor *out = nn_tensor_create(2, s);
    nn_context *c = nn_context_create(m);
    assert_int_equal(nn_context_predict(c, x, out, 2), NN_OK);
    predict(m, x, out);
    float *after = snapshot(m);
    assert_memory_equal(before, after,
                        (size_t)total_floats(m) * sizeof(float));
    /* A training pass does move them. */
    assert_int_equal(nn_model_compile(m, nn_sgd(NULL),
                                      NN_LOSS_CATEGORICAL_CROSSENTROPY, NULL),
                     NN_OK);
    nn_tensor *y = one_hot(5, 3);
    assert_int_equal(nn_model_backward(m, x, y, 1, NULL, NULL), NN_OK);
    assert_false(layer_same(m->layers[2], before + offset_of(m, 2)));
    nn_context_free(c);
    nn_tensor_free(x);
    nn_tensor_free(y);
    nn_tensor_free(out);
    free(before);
    free(after);
    nn_model_free(m);
}

/* Inference contexts compute Conv2D -> BatchNormalization -> [Add] ->
 * [ReLU] in the convolution's epilogue. This graph has every case: a
 * conv-bn-relu chain, one with a residual Add, a normalization read twice
 * (the chain ends there), a convolution with its own activation (not
 * fused: the ReLU would come before the normalization) and an Add whose
 * other input is itself a fused chain's output. */
typedef struct fuse_net {
    nn_model *m;
    nn_layer *c[5], *bn[5], *add2, *add5, *relu1, *relu2;
} fuse_net;

static nn_layer *bn_random(nn_model *m, nn_layer *in)
{
    nn_layer *l = nn_batchnorm(m, in, NULL);
    randomize(&l->params[0], 0.5, 1.5);  /* gamma */
    randomize(&l->params[1], -0.5, 0.5); /* beta */
    randomize(&l->params[2], -0.3, 0.3); /* moving mean */
    randomize(&l->params[3], 0.5, 2.0);  /* moving variance */
    return l;
}

static fuse_net fuse_graph(void)
{
    fuse_net f = {.m = nn_model_create(5)};
    nn_model *m = f.m;
    nn_conv2d_opts same = NN_CONV2D_OPTS_INIT, s2 = NN_CONV2D_OPTS_INIT;
    nn_conv2d_opts relu = NN_CONV2D_OPTS_INIT;
    same.padding = s2.padding = NN_PADDING_SAME;
    same.use_bias = 0;
    s2.stride_h = s2.stride_w = 2;
    relu.activation = NN_ACT_RELU;
    nn_layer *x = image_input(m, 9, 9, 5);
    f.c[0] = nn_conv2d(m, x, 24, 3, 3, &same);
    f.relu1 = nn_relu(m, f.bn[0] = bn_random(m, f.c[0]), NULL);
    f.c[1] = nn_conv2d(m, f.relu1, 24, 1, 1, NULL);
    f.bn[1] = bn_random(m, f.c[1]);
    nn_layer *a2[2] = {f.bn[1], f.relu1};
    f.relu2 = nn_relu(m, f.add2 = nn_add(m, 2, a2, NULL), NULL);
    f.c[2] = nn_conv2d(m, f.relu2, 70, 3, 3, &s2);
    f.bn[2] = bn_random(m, f.c[2]);
    f.c[3] = nn_conv2d(m, f.bn[2], 70, 1, 1, &relu);
    f.bn[3] = bn_random(m, f.c[3]);
    same.use_bias = 1;
    f.c[4] = nn_conv2d(m, f.bn[2], 70, 1, 1, &same);
    f.bn[4] = bn_random(m, f.c[4]);
    nn_layer *a5[2] = {f.bn[3], f.bn[4]};
    f.add5 = nn_add(m, 2, a5, NULL);
    nn_dense(m, nn_global_avgpool2d(m, f.add5, NULL), 4, NULL);
    for (int i = 1; i < 5; i++) /* the biases */
        randomize(&f.c[i]->params[1], -0.2, 0.2);
    return f;
}

/* Predictions of a new context, fused or not. */
static void predict_ctx(nn_model *m, const nn_tensor *x, nn_tensor *out,
                        bool fuse)
{
    nn__fusion_disable(!fuse);
    nn_context *c = nn_context_create(m);
    assert_int_equal(nn_context_predict(c, x, out, 2), NN_OK);
    nn_context_free(c);
    nn__fusion_disable(false);
}

static void expect_close(const nn_tensor *a, const nn_tensor *b, double tol)
{
    for (int64_t i = 0; i < a->size; i++)
        assert_true(fabs(a->data[i] - b->data[i]) <=
                    tol * (1 + fabs(b->data[i])));
}

/* m's predictions (fused, in its own context) into `fused`: those of an
 * unfused context to float rounding, and the same bits at 1 and 3
 * threads. */
static void expect_fusion_exact(nn_model *m, const nn_tensor *x,
                                nn_tensor *fused)
{
    nn_tensor *plain = nn_tensor_create(fused->rank, fused->shape);
    nn_tensor *again = nn_tensor_create(fused->rank, fused->shape);
    predict_ctx(m, x, plain, false);
    assert_int_equal(nn_model_predict(m, x, fused, 2), NN_OK);
    expect_close(fused, plain, 1e-5);
    for (int t = 1; t <= 3; t += 2) {
        nn_set_num_threads(t);
        predict_ctx(m, x, again, true);
        assert_memory_equal(again->data, fused->data,
                            (size_t)fused->size * sizeof(float));
    }
    nn_set_num_threads(0);
    nn_tensor_free(plain);
    nn_tensor_free(again);
}

static void test_inference_fusion(void **state)
{
    (void)state;
    fuse_net f = fuse_graph();
    nn_tensor *x = tensor4(3, 9, 9, 5);
    gc_fill(x->data, x->size, 2.0);
    int64_t s[2] = {3, 4};
    nn_tensor *fused = nn_tensor_create(2, s), *plain = nn_tensor_create(2, s);
    nn_tensor *again = nn_tensor_create(2, s);
    expect_fusion_exact(f.m, x, fused);
    /* What fused into what. */
    const nn_context *c = f.m->ctx;
    assert_non_null(c->fused_into);
    const nn_layer *into[][2] = {
        {f.bn[0], f.c[0]}, {f.relu1, f.c[0]}, {f.bn[1], f.c[1]},
        {f.add2, f.c[1]},  {f.relu2, f.c[1]}, {f.bn[2], f.c[2]},
        {f.bn[4], f.c[4]}, {f.add5, f.c[4]},
    };
    for (size_t i = 0; i < sizeof into / sizeof into[0]; i++)
        assert_int_equal(c->fused_into[into[i][0]->index], into[i][1]->index);
    assert_int_equal(c->fused_into[f.bn[3]->index], -1); /* conv's own ReLU */
    assert_int_equal(c->fuse[f.c[3]->index].tail, -1);
    assert_int_equal(c->fuse[f.c[1]->index].residual, f.relu1->index);
    assert_int_equal(c->fuse[f.c[4]->index].residual, f.bn[3]->index);
    /* Nothing is cached: new statistics written through the weight's
     * tensor count at the next call. */
    float *var = nn_tensor_data(nn_layer_weight(f.bn[1], 3));
    for (int j = 0; j < 24; j++) var[j] *= 3.0f;
    assert_int_equal(nn_model_predict(f.m, x, again, 2), NN_OK);
    predict_ctx(f.m, x, plain, false);
    expect_close(again, plain, 1e-5);
    assert_true(memcmp(again->data, fused->data,
                       (size_t)fused->size * sizeof(float)) != 0);
    nn_tensor_free(x);
    nn_tensor_free(fused);
    nn_tensor_free(plain);
    nn_tensor_free(again);
    nn_model_free(f.m);
}

/* MobileNetV2's inverted residual block and the segmentation layers:
 * Conv2D -> BN -> ReLU6 and DepthwiseConv2D -> BN -> ReLU6 fuse (their
 * normalizations scaled up so that ReLU6 clamps at 6 too), so does the
 * projection's BN -> Add; a DepthwiseConv2D with its own activation, a
 * Conv2DTranspose, UpSampling2D and Cropping2D do not fuse, and the whole
 * predicts as it does unfused. */
typedef struct seg_net {
    nn_model *m;
    nn_layer *expand, *expand_bn, *expand_relu, *dw, *dw_bn, *dw_relu;
    nn_layer *project, *project_bn, *add, *dw2, *dw2_bn, *dw3, *dw3_bn;
    nn_layer *dw3_relu, *ct, *ct_bn, *ct_relu;
} seg_net;

static nn_layer *bn_wide(nn_model *m, nn_layer *in)
{
    nn_layer *l = bn_random(m, in);
    randomize(&l->params[0], 2.0, 8.0); /* gamma: outputs beyond 6 */
    return l;
}

static seg_net seg_graph(void)
{
    seg_net f = {.m = nn_model_create(9)};
    nn_model *m = f.m;
    nn_conv2d_opts pw = NN_CONV2D_OPTS_INIT;
    pw.use_bias = 0;
    nn_depthwise_conv2d_opts dwo = NN_DEPTHWISE_CONV2D_OPTS_INIT;
    dwo.padding = NN_PADDING_SAME;
    dwo.use_bias = 0;
    nn_layer *x = image_input(m, 9, 9, 6);
    f.expand = nn_conv2d(m, x, 36, 1, 1, &pw);
    f.expand_relu = nn_relu6(m, f.expand_bn = bn_wide(m, f.expand), NULL);
    f.dw = nn_depthwise_conv2d(m, f.expand_relu, 3, 3, &dwo);
    f.dw_relu = nn_relu6(m, f.dw_bn = bn_wide(m, f.dw), NULL);
    f.project = nn_conv2d(m, f.dw_relu, 6, 1, 1, &pw);
    f.project_bn = bn_random(m, f.project);
    nn_layer *a[2] = {x, f.project_bn};
    f.add = nn_add(m, 2, a, NULL);
    dwo.stride_h = dwo.stride_w = 2; /* the block's stride-2 form */
    dwo.depth_multiplier = 2;
    dwo.use_bias = 1;
    f.dw2 = nn_depthwise_conv2d(m, f.add, 3, 3, &dwo);
    f.dw2_bn = bn_random(m, f.dw2); /* fuses without an activation */
    dwo.stride_h = dwo.stride_w = 1;
    dwo.depth_multiplier = 1;
    dwo.activation = NN_ACT_RELU6; /* before the BN: cannot fuse */
    f.dw3 = nn_depthwise_conv2d(m, f.dw2_bn, 3, 3, &dwo);
    f.dw3_relu = nn_relu6(m, f.dw3_bn = bn_wide(m, f.dw3), NULL);
    nn_conv2d_transpose_opts cto = NN_CONV2D_TRANSPOSE_OPTS_INIT;
    cto.stride_h = cto.stride_w = 2;
    cto.padding = NN_PADDING_SAME;
    cto.use_bias = 0;
    f.ct = nn_conv2d_transpose(m, f.dw3_relu, 8, 3, 3, &cto);
    f.ct_relu = nn_relu(m, f.ct_bn = bn_random(m, f.ct), NULL);
    nn_layer *up = nn_upsampling2d(m, f.ct_relu, 2, 2, NULL);
    nn_layer *crop = nn_cropping2d(m, up, 1, 2, 2, 1, NULL);
    nn_dense(m, nn_global_avgpool2d(m, nn_relu6(m, crop, NULL), NULL), 4,
             NULL);
    randomize(&f.dw2->params[1], -0.2, 0.2); /* the bias */
    return f;
}

static void test_seg_fusion(void **state)
{
    (void)state;
    seg_net f = seg_graph();
    nn_tensor *x = tensor4(3, 9, 9, 6);
    gc_fill(x->data, x->size, 2.0);
    int64_t s[2] = {3, 4};
    nn_tensor *fused = nn_tensor_create(2, s);
    expect_fusion_exact(f.m, x, fused);
    const nn_context *c = f.m->ctx;
    assert_non_null(c->fused_into);
    const nn_layer *into[][2] = {
        {f.expand_bn, f.expand}, {f.expand_relu, f.expand},
        {f.dw_bn, f.dw},         {f.dw_relu, f.dw},
        {f.project_bn, f.project}, {f.add, f.project},
        {f.dw2_bn, f.dw2},
    };
    for (size_t i = 0; i < sizeof into / sizeof into[0]; i++)
        assert_int_equal(c->fused_into[into[i][0]->index], into[i][1]->index);
    assert_true(c->fuse[f.expand->index].relu6);
    assert_false(c->fuse[f.expand->index].relu);
    assert_true(c->fuse[f.dw->index].relu6);
    assert_false(c->fuse[f.dw2->index].relu6);
    const nn_layer *alone[] = {f.dw3, f.dw3_bn, f.dw3_relu, f.ct, f.ct_bn,
                               f.ct_relu};
    for (size_t i = 0; i < sizeof alone / sizeof alone[0]; i++) {
        assert_int_equal(c->fused_into[alone[i]->index], -1);
        assert_int_equal(c->fuse[alone[i]->index].tail, -1);
    }
    nn_tensor_free(x);
    nn_tensor_free(fused);
    nn_model_free(f.m);
}

/* A frozen backbone and a trainable head. */
typedef struct frozen_net {
    nn_model *m;
    nn_layer *conv0, *bn0, *relu2, *head;
} frozen_net;

static frozen_net frozen_graph(void)
{
    frozen_net f = {.m = nn_model_create(8)};
    nn_model *m = f.m;
    nn_conv2d_opts same = NN_CONV2D_OPTS_INIT;
    same.padding = NN_PADDING_SAME;
    same.use_bias = 0;
    nn_layer *x = image_input(m, 8, 8, 3);
    f.conv0 = nn_conv2d(m, x, 8, 3, 3, &same);
    nn_layer *r1 = nn_relu(m, f.bn0 = bn_random(m, f.conv0), NULL);
    nn_layer *b = bn_random(m, nn_conv2d(m, r1, 8, 1, 1, NULL));
    nn_layer *in[2] = {b, r1};
    f.relu2 = nn_relu(m, nn_add(m, 2, in, NULL), NULL);
    for (int i = 1; i <= f.relu2->index; i++)
        assert_int_equal(nn_layer_set_trainable(m->layers[i], 0), NN_OK);
    f.head = nn_conv2d(m, f.relu2, 6, 3, 3, NULL);
    nn_dense_opts d = NN_DENSE_OPTS_INIT;
    d.activation = NN_ACT_SOFTMAX;
    nn_dense(m, nn_flatten(m, f.head, NULL), 4, &d);
    assert_int_equal(nn_model_compile(m, nn_sgd(NULL),
                                      NN_LOSS_CATEGORICAL_CROSSENTROPY, NULL),
                     NN_OK);
    return f;
}

/* Training plans a frozen backbone as inference does (shared buffers,
 * fusion, no gradient buffers); the steps equal those of a full plan,
 * which a pass that wants the input gradient gets. */
static void test_frozen_prefix_plan(void **state)
{
    (void)state;
    frozen_net lean = frozen_graph(), full = frozen_graph();
    for (int i = 0; i < lean.m->n_layers; i++) /* bn_random drew anew */
        for (int j = 0; j < lean.m->layers[i]->n_params; j++)
            memcpy(full.m->layers[i]->params[j].value.data,
                   lean.m->layers[i]->params[j].value.data,
                   (size_t)lean.m->layers[i]->params[j].value.size *
                       sizeof(float));
    nn_tensor *x = tensor4(5, 8, 8, 3), *y = one_hot(5, 4);
    nn_tensor *dx = tensor4(5, 8, 8, 3);
    gc_fill(x->data, x->size, 2.0);
    float loss;
    for (int step = 0; step < 2; step++) {
        assert_int_equal(nn_model_train_batch(lean.m, x, y, &loss, NULL),
                         NN_OK);
        assert_int_equal(nn_model_backward(full.m, x, y, 1, &loss, dx), NN_OK);
        assert_int_equal(nn_model_apply_gradients(full.m), NN_OK);
    }
    const nn_context *c = lean.m->ctx, *cf = full.m->ctx;
    assert_true(c->lean);
    assert_false(cf->lean);
    assert_null(c->dact[lean.conv0->index]);
    assert_non_null(c->dact[lean.head->index]);
    assert_non_null(cf->dact[full.conv0->index]);
    assert_int_equal(c->fused_into[lean.bn0->index], lean.conv0->index);
    assert_int_equal(c->fused_into[lean.relu2->index], lean.conv0->index + 3);
    assert_int_equal(cf->fused_into[full.bn0->index], -1);
    for (int i = lean.head->index; i < lean.m->n_layers; i++)
        for (int j = 0; j < lean.m->layers[i]->n_params; j++) {
            const nn_tensor *a = &lean.m->layers[i]->params[j].value;
            const nn_tensor *b = &full.m->layers[i]->params[j].value;
            for (int64_t e = 0; e < a->size; e++)
                assert_true(fabsf(a->data[e] - b->data[e]) <=
                            1e-5f * (1 + fabsf(b->data[e])));
        }
    /* Unfreezing re-plans: the first convolution now learns. */
    float w0 = lean.conv0->params[0].value.data[0];
    assert_int_equal(nn_layer_set_trainable(lean.conv0, 1), NN_OK);
    assert_int_equal(nn_model_train_batch(lean.m, x, y, &loss, NULL), NN_OK);
    c = lean.m->ctx;
    assert_non_null(c->dact[lean.conv0->index]);
    assert_int_equal(c->fused_into[lean.bn0->index], -1);
    assert_true(lean.conv0->params[0].value.data[0] != w0);
    nn_tensor_free(x);
    nn_tensor_free(y);
    nn_tensor_free(dx);
    nn_model_free(lean.m);
    nn_model_free(full.m);
}

/* Random graphs of convolutions (with or without bias and ReLU),
 * normalizations (frozen or not), ReLUs and Adds, some layers frozen:
 * whatever the planner fuses and shares, predictions equal those of an
 * unfused plan, and training steps those of a full plan. Each graph is
 * built twice from the same recipe. */
static uint64_t recipe_state;

static uint32_t recipe_next(uint32_t n)
{
    recipe_state ^= recipe_state << 13;
    recipe_state ^= recipe_state >> 7;
    recipe_state ^= recipe_state << 17;
    return (uint32_t)((recipe_state >> 20) % n);
}

static void recipe_fill(nn_param *p, float lo, float hi)
{
    for (int64_t i = 0; i < p->value.size; i++)
        p->value.data[i] = lo + (hi - lo) * (float)recipe_next(1000) / 1000.0f;
}

static nn_layer *random_layer(nn_model *m, nn_layer **made, int n)
{
    /* Mostly chains (what fuses), sometimes branches. */
    nn_layer *a = made[recipe_next(3) ? n - 1 : (int)recipe_next((uint32_t)n)];
    switch (recipe_next(5)) {
    case 0: {
        nn_layer *in[2] = {a, made[recipe_next((uint32_t)n)]};
        return nn_add(m, 2, in, NULL);
    }
    case 1: return nn_relu(m, a, NULL);
    case 2: {
        nn_layer *b = nn_batchnorm(m, a, NULL);
        recipe_fill(&b->params[2], -0.3f, 0.3f);
        recipe_fill(&b->params[3], 0.5f, 2.0f);
        return b;
    }
    default: {
        nn_conv2d_opts o = NN_CONV2D_OPTS_INIT;
        o.padding = NN_PADDING_SAME;
        o.use_bias = (int)recipe_next(2);
        o.activation = recipe_next(3) ? NN_ACT_NONE : NN_ACT_RELU;
        return nn_conv2d(m, a, 4, 1 + 2 * (int)recipe_next(2), 3, &o);
    }
    }
}

static nn_model *random_graph(uint64_t seed)
{
    recipe_state = seed;
    nn_model *m = nn_model_create(seed);
    nn_layer *made[24];
    made[0] = nn_conv2d(m, image_input(m, 5, 5, 2), 4, 1, 1, NULL);
    int n = 1;
    for (; n < 20; n++) made[n] = random_layer(m, made, n);
    /* A frozen prefix (a backbone), and a few frozen layers after it. */
    int cut = (int)recipe_next((uint32_t)m->n_layers);
    for (int i = 1; i < m->n_layers; i++)
        if (i <= cut || recipe_next(4) == 0)
            nn_layer_set_trainable(m->layers[i], 0);
    nn_dense_opts d = NN_DENSE_OPTS_INIT;
    d.activation = NN_ACT_SOFTMAX;
    nn_dense(m, nn_flatten(m, made[n - 1], NULL), 3, &d);
    nn_model_compile(m, nn_sgd(NULL), NN_LOSS_CATEGORICAL_CROSSENTROPY, NULL);
    return m;
}

static void expect_params_close(const nn_model *a, const nn_model *b)
{
    for (int i = 0; i < a->n_layers; i++)
        for (int j = 0; j < a->layers[i]->n_params; j++) {
            const nn_tensor *p = &a->layers[i]->params[j].value;
            const nn_tensor *q = &b->layers[i]->params[j].value;
            for (int64_t e = 0; e < p->size; e++)
                assert_true(fabsf(p->data[e] - q->data[e]) <=
                            1e-4f * (1 + fabsf(q->data[e])));
        }
}

static void test_random_graph_plans(void **state)
{
    (void)state;
    nn_tensor *x = tensor4(4, 5, 5, 2), *y = one_hot(4, 3);
    nn_tensor *dx = tensor4(4, 5, 5, 2);
    int64_t s[2] = {4, 3};
    nn_tensor *p1 = nn_tensor_create(2, s), *p2 = nn_tensor_create(2, s);
    gc_fill(x->data, x->size, 1.0);
    int fused = 0, shared = 0;
    for (uint64_t g = 1; g <= 40; g++) {
        nn_model *lean = random_graph(g), *full = random_graph(g);
        assert_non_null(lean);
        assert_int_equal(lean->n_layers, full->n_layers);
        predict_ctx(lean, x, p1, true);
        predict_ctx(lean, x, p2, false);
        expect_close(p1, p2, 1e-5);
        float loss;
        for (int step = 0; step < 2; step++) {
            assert_int_equal(nn_model_train_batch(lean, x, y, &loss, NULL),
                             NN_OK);
            assert_int_equal(nn_model_backward(full, x, y, 1, &loss, dx),
                             NN_OK);
            assert_int_equal(nn_model_apply_gradients(full), NN_OK);
        }
        expect_params_close(lean, full);
        for (int i = 0; i < lean->n_layers; i++) {
            fused += lean->ctx->fused_into[i] >= 0;
            shared += lean->ctx->in_shared[i];
        }
        nn_model_free(lean);
        nn_model_free(full);
    }
    /* The graphs did exercise the lean plan. */
    assert_true(fused > 0 && shared > 0);
    nn_tensor_free(x);
    nn_tensor_free(y);
    nn_tensor_free(dx);
    nn_tensor_free(p1);
    nn_tensor_free(p2);
}

/* ------------------------------------------------------------------ */
/* checkpoints                                                         */
/* ------------------------------------------------------------------ */

static void test_checkpoint_round_trip(void **state)
{
    (void)state;
    nn_model *m = nn_model_create(33);
    nn_layer *x = image_input(m, 6, 5, 1);
    nn_layer *r = nn_repeat_channels(m, x, 3, NULL);
    nn_layer *z = nn_zeropad2d(m, r, 1, 1, 0, 2, NULL);
    nn_layer *rs = nn_resizing(m, z, 7, 6, NULL);
    nn_layer *lc = nn_locally_connected2d(m, rs, 4, 3, 3, NULL);
    nn_layer *bn = nn_batchnorm(m, lc, NULL);
    randomize(&bn->params[2], -1, 1);
    nn_layer *br[2] = {bn, nn_relu(m, bn, NULL)};
    nn_layer *a = nn_add(m, 2, br, NULL);
    nn_layer *k[2] = {a, bn};
    nn_layer *cat = nn_concatenate(m, 2, k, NULL);
    assert_non_null(nn_global_avgpool2d(m, cat, NULL));
    nn_layer_set_trainable(lc, 0);
    char path[] = "/tmp/test_graph_layers_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(nn_model_save(m, path, NN_SAVE_DEFAULT), NN_OK);
    nn_model *back = nn_model_load(path);
    remove(path);
    assert_non_null(back);
    assert_int_equal(nn_model_num_params(back), nn_model_num_params(m));
    assert_int_equal(nn_model_num_trainable_params(back),
                     nn_model_num_trainable_params(m));
    nn_tensor *in = tensor4(2, 6, 5, 1);
    gc_fill(in->data, in->size, 1.0);
    int64_t s[2] = {2, 8};
    nn_tensor *y1 = nn_tensor_create(2, s), *y2 = nn_tensor_create(2, s);
    predict(m, in, y1);
    predict(back, in, y2);
    assert_memory_equal(y1->data, y2->data, 16 * sizeof(float));
    nn_tensor_free(in);
    nn_tensor_free(y1);
    nn_tensor_free(y2);
    nn_model_free(back);
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

/* ------------------------------------------------------------------ */
/* allocation failures                                                 */
/* ------------------------------------------------------------------ */

static nn_status build_train_freeze(void)
{
    nn_status s = NN_ERR_NOMEM;
    nn_model *m = nn_model_create(37);
    if (!m) return NN_ERR_NOMEM;
    nn_layer *x = image_input(m, 6, 6, 1);
    nn_layer *r = nn_repeat_channels(m, x, 2, NULL);
    nn_layer *lc = nn_locally_connected2d(m, r, 3, 3, 3, NULL);
    nn_layer *bn = nn_batchnorm(m, lc, NULL);
    nn_layer *two[2] = {bn, lc};
    nn_layer *a = nn_add(m, 2, two, NULL);
    nn_layer *k2[2] = {a, lc};
    nn_layer *cat = nn_concatenate(m, 2, k2, NULL);
    nn_layer *z = nn_zeropad2d(m, cat, 1, 1, 1, 1, NULL);
    nn_layer *rs = nn_resizing(m, z, 3, 3, NULL);
    nn_layer *g = nn_global_avgpool2d(m, rs, NULL);
    nn_dense_opts d = NN_DENSE_OPTS_INIT;
    d.activation = NN_ACT_SOFTMAX;
    nn_layer *out = g ? nn_dense(m, g, 3, &d) : NULL;
    nn_optimizer *opt = out ? nn_adam(NULL) : NULL;
    nn_tensor *xs = tensor4(4, 6, 6, 1), *ys = one_hot(4, 3);
    int rf;
    if (!out || !opt || !xs || !ys) {
        nn_optimizer_free(opt);
        goto done;
    }
    if ((s = nn_model_compile(m, opt, NN_LOSS_CATEGORICAL_CROSSENTROPY,
                              NULL)) != NN_OK) {
        nn_optimizer_free(opt);
        goto done;
    }
    if ((s = nn_model_train_batch(m, xs, ys, NULL, NULL)) != NN_OK) goto done;
    if ((s = nn_layer_set_trainable(lc, 0)) != NN_OK) goto done;
    if ((s = nn_model_train_batch(m, xs, ys, NULL, NULL)) != NN_OK) goto done;
    if ((s = nn_model_set_trainable(m, 1)) != NN_OK) goto done;
    if ((s = nn_model_train_batch(m, xs, ys, NULL, NULL)) != NN_OK) goto done;
    s = nn_layer_receptive_field(out, &rf, NULL, NULL, NULL);
done:
    nn_tensor_free(xs);
    nn_tensor_free(ys);
    nn_model_free(m);
    return s;
}

static void test_allocation_failures(void **state)
{
    (void)state;
    int k;
    for (k = 1; k < 20000; k++) {
        nn__debug_fail_alloc_after(k);
        nn_status s = build_train_freeze();
        int64_t made = nn__debug_fail_alloc_after(0);
        if (s == NN_OK) break;
        assert_int_equal(s, NN_ERR_NOMEM);
        assert_true(made >= k);
    }
    assert_true(k > 20);
    assert_true(k < 20000);
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
        cmocka_unit_test(test_branch_graph_gradients),
        cmocka_unit_test(test_q2a_inception),
        cmocka_unit_test(test_q2b_conv_vs_local),
        cmocka_unit_test(test_receptive_fields),
        cmocka_unit_test(test_shapes_and_names),
        cmocka_unit_test(test_resizing_values),
        cmocka_unit_test(test_small_layer_values),
        cmocka_unit_test(test_local_matches_conv),
        cmocka_unit_test(test_batchnorm_semantics),
        cmocka_unit_test(test_batchnorm_threads),
        cmocka_unit_test(test_freeze_through_fit),
        cmocka_unit_test(test_freeze_rekeys_optimizer),
        cmocka_unit_test(test_inference_is_read_only),
        cmocka_unit_test(test_inference_fusion),
        cmocka_unit_test(test_seg_fusion),
        cmocka_unit_test(test_frozen_prefix_plan),
        cmocka_unit_test(test_random_graph_plans),
        cmocka_unit_test(test_checkpoint_round_trip),
        cmocka_unit_test(test_invalid_arguments),
        cmocka_unit_test(test_allocation_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

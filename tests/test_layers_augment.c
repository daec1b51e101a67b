/* Augmentation layers: identity in inference, flips as exact permutations,
 * rotation/translation/zoom against an independent double-precision
 * reference of the output -> input mapping with every fill mode and both
 * interpolations (borders included), TensorFlow's wrap rule pinned, the
 * distributions of the draws, seeded repeatability, exact adjoints and
 * finite-difference gradients, configs, invalid arguments. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "nn_internal.h"

#include "gradcheck.h"
#include "stored_config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The layer state is a 16-byte header followed by the per-image draws
 * (src/layers/augment.c): a flip mask, a contrast factor or 6 affine
 * coefficients (output pixel -> input coordinate). */
#define STATE_HEADER 16
#define PI 3.14159265358979323846

/* ------------------------------------------------------------------ */
/* helpers                                                             */
/* ------------------------------------------------------------------ */

static nn_layer *image_input(nn_model *m, int h, int w, int c)
{
    int shape[3] = {h, w, c};
    return nn_input(m, 3, shape, NULL);
}

static nn_augment_opts aug_opts(nn_fill_mode fill, nn_interpolation interp,
                                float fill_value)
{
    nn_augment_opts o = NN_AUGMENT_OPTS_INIT;
    o.fill_mode = fill;
    o.interpolation = interp;
    o.fill_value = fill_value;
    return o;
}

static float *random_floats(int64_t n, uint64_t seed)
{
    float *p = malloc((size_t)n * sizeof(float));
    nn_rng r;
    nn__rng_seed(&r, seed);
    for (int64_t i = 0; i < n; i++) p[i] = nn__rng_uniform(&r);
    return p;
}

/* Runs the layer's forward directly, as a context would. */
typedef struct run {
    nn_layer *l;
    int batch;
    int64_t n; /* values per batch */
    void *state;
    float *out;
} run;

static run run_new(nn_layer *l, int batch)
{
    assert_non_null(l);
    run r = {l, batch, (int64_t)batch * nn__shape_size(&l->out), NULL, NULL};
    size_t sb = l->ops->state_bytes(l, batch);
    r.state = malloc(sb);
    r.out = malloc((size_t)r.n * sizeof(float));
    return r;
}

static void run_free(run *r)
{
    free(r->state);
    free(r->out);
}

static void run_forward(run *r, const float *x, bool training, uint64_t key)
{
    const float *ins[1] = {x};
    nn_fwd a = {.batch = r->batch, .training = training, .in = ins,
                .out = r->out, .state = r->state, .rng_key = key};
    assert_int_equal(r->l->ops->forward(r->l, &a), NN_OK);
}

/* din (+)= backward of dout for the last forward. */
static void run_backward(run *r, const float *x, float *dout, float *din,
                         bool accum)
{
    const float *ins[1] = {x};
    float *dins[1] = {din};
    bool acc[1] = {accum};
    nn_bwd b = {.batch = r->batch, .in = ins, .out = r->out, .dout = dout,
                .din = dins, .accum = acc, .state = r->state};
    assert_int_equal(r->l->ops->backward(r->l, &b), NN_OK);
}

static const float *draws(const run *r)
{
    return (const float *)((const char *)r->state + STATE_HEADER);
}

static const int32_t *flip_flags(const run *r)
{
    return (const int32_t *)((const char *)r->state + STATE_HEADER);
}

/* ------------------------------------------------------------------ */
/* inference: identity                                                 */
/* ------------------------------------------------------------------ */

/* One layer of each kind with a strong setting. */
static nn_layer *strong_layer(nn_model *m, nn_layer *in, nn_layer_kind k)
{
    nn_augment_opts o = aug_opts(NN_FILL_CONSTANT, NN_INTERP_BILINEAR, 0.5f);
    switch (k) {
    case NN_KIND_RANDOM_FLIP:
        return nn_random_flip(m, in, NN_FLIP_HORIZONTAL_AND_VERTICAL, NULL);
    case NN_KIND_RANDOM_ROTATION:
        return nn_random_rotation(m, in, -0.4f, 0.4f, &o);
    case NN_KIND_RANDOM_TRANSLATION:
        return nn_random_translation(m, in, -0.5f, 0.5f, -0.5f, 0.5f, &o);
    case NN_KIND_RANDOM_ZOOM:
        return nn_random_zoom(m, in, -0.5f, 0.8f, -0.5f, 0.8f, &o);
    case NN_KIND_RANDOM_CONTRAST:
        return nn_random_contrast(m, in, 0.9f, 2.0f, NULL);
    default:
        return NULL;
    }
}

static void test_inference_is_identity(void **state)
{
    (void)state;
    for (int k = NN_KIND_RANDOM_FLIP; k <= NN_KIND_RANDOM_CONTRAST; k++) {
        nn_model *m = nn_model_create(3);
        nn_layer *l = strong_layer(m, image_input(m, 6, 5, 3), k);
        run r = run_new(l, 4);
        float *x = random_floats(r.n, 7);
        x[3] = NAN; /* copied as is, bit for bit */
        x[4] = -INFINITY;
        x[5] = -0.0f;
        run_forward(&r, x, false, 99);
        assert_memory_equal(r.out, x, (size_t)r.n * sizeof(float));
        /* Backward of an inference pass is the identity too. */
        float *g = random_floats(r.n, 8), *dx = malloc((size_t)r.n * 4);
        run_backward(&r, x, g, dx, false);
        assert_memory_equal(dx, g, (size_t)r.n * sizeof(float));
        /* The same through the public API. */
        int64_t shape[4] = {4, 6, 5, 3};
        nn_tensor *tx = nn_tensor_wrap(4, shape, x);
        nn_tensor *ty = nn_tensor_create(4, shape);
        assert_int_equal(nn_model_predict(m, tx, ty, 3), NN_OK);
        assert_memory_equal(nn_tensor_data(ty), x, (size_t)r.n * 4);
        /* And training does change the images. */
        x[3] = x[4] = x[5] = 0.25f;
        run_forward(&r, x, true, 99);
        assert_memory_not_equal(r.out, x, (size_t)r.n * sizeof(float));
        nn_tensor_free(tx);
        nn_tensor_free(ty);
        free(x);
        free(g);
        free(dx);
        run_free(&r);
        nn_model_free(m);
    }
}

/* ------------------------------------------------------------------ */
/* flips                                                               */
/* ------------------------------------------------------------------ */

static void test_flips_are_permutations(void **state)
{
    (void)state;
    const int h = 5, w = 4, c = 2, batch = 64;
    const nn_flip_mode modes[3] = {NN_FLIP_HORIZONTAL, NN_FLIP_VERTICAL,
                                   NN_FLIP_HORIZONTAL_AND_VERTICAL};
    for (int mi = 0; mi < 3; mi++) {
        nn_model *m = nn_model_create(1);
        nn_layer *l = nn_random_flip(m, image_input(m, h, w, c), modes[mi],
                                     NULL);
        run r = run_new(l, batch);
        float *x = malloc((size_t)r.n * 4);
        for (int64_t i = 0; i < r.n; i++) x[i] = (float)i; /* all distinct */
        run_forward(&r, x, true, 1234 + mi);
        int seen[4] = {0};
        for (int b = 0; b < batch; b++) {
            int32_t f = flip_flags(&r)[b];
            assert_int_equal(f & ~(int32_t)modes[mi], 0); /* only its axes */
            seen[f]++;
            for (int i = 0; i < h; i++)
                for (int j = 0; j < w; j++)
                    for (int ch = 0; ch < c; ch++) {
                        int si = (f & NN_FLIP_VERTICAL) ? h - 1 - i : i;
                        int sj = (f & NN_FLIP_HORIZONTAL) ? w - 1 - j : j;
                        int64_t o = (((int64_t)b * h + i) * w + j) * c + ch;
                        int64_t s = (((int64_t)b * h + si) * w + sj) * c + ch;
                        assert_true(r.out[o] == x[s]);
                    }
        }
        /* Each allowed combination occurs. */
        for (int f = 0; f < 4; f++)
            if ((f & ~(int)modes[mi]) == 0) assert_true(seen[f] > 0);
        /* Backward is the same permutation (a flip is its own adjoint);
         * with accumulation it adds. */
        float *g = random_floats(r.n, 5), *dx = malloc((size_t)r.n * 4);
        run_backward(&r, x, g, dx, false);
        float *back = malloc((size_t)r.n * 4);
        run_forward(&r, g, true, 1234 + mi);
        memcpy(back, r.out, (size_t)r.n * 4);
        assert_memory_equal(dx, back, (size_t)r.n * 4);
        for (int64_t i = 0; i < r.n; i++) dx[i] = 1.0f;
        run_backward(&r, x, g, dx, true);
        for (int64_t i = 0; i < r.n; i++) assert_true(dx[i] == back[i] + 1.0f);
        free(x);
        free(g);
        free(dx);
        free(back);
        run_free(&r);
        nn_model_free(m);
    }
}

static void test_flip_frequencies(void **state)
{
    (void)state;
    const int batch = 2000, rounds = 5;
    nn_model *m = nn_model_create(1);
    nn_layer *l = nn_random_flip(m, image_input(m, 1, 2, 1),
                                 NN_FLIP_HORIZONTAL_AND_VERTICAL, NULL);
    run r = run_new(l, batch);
    float *x = random_floats(r.n, 1);
    int64_t counts[4] = {0}, n = 0;
    for (int k = 0; k < rounds; k++) {
        run_forward(&r, x, true, 77 + (uint64_t)k);
        for (int b = 0; b < batch; b++, n++) counts[flip_flags(&r)[b]]++;
    }
    /* Independent fair coins per axis: each combination 1/4. Chi-square
     * with 3 degrees of freedom, p = 0.001: 16.27. */
    double chi2 = 0;
    for (int f = 0; f < 4; f++) {
        double e = n / 4.0;
        chi2 += (counts[f] - e) * (counts[f] - e) / e;
    }
    assert_true(chi2 < 16.27);
    /* Marginals within 4 standard deviations of 1/2. */
    double ph = (double)(counts[1] + counts[3]) / n;
    double pv = (double)(counts[2] + counts[3]) / n;
    double sd = sqrt(0.25 / n);
    assert_true(fabs(ph - 0.5) < 4 * sd);
    assert_true(fabs(pv - 0.5) < 4 * sd);
    free(x);
    run_free(&r);
    nn_model_free(m);
}

/* ------------------------------------------------------------------ */
/* independent reference of the resampling (double precision)          */
/* ------------------------------------------------------------------ */

/* Pixel index k on an axis of n pixels extended by the fill mode, as
 * Keras documents the modes: reflect (dcba|abcd|dcba), wrap
 * (abcd|abcd|abcd), nearest (aaaa|abcd|dddd); -1 for constant outside. */
static long extend(long k, long n, nn_fill_mode fill)
{
    switch (fill) {
    case NN_FILL_REFLECT: {
        long p = 2 * n, r = ((k % p) + p) % p;
        return r < n ? r : p - 1 - r;
    }
    case NN_FILL_WRAP: return ((k % n) + n) % n;
    case NN_FILL_NEAREST: return k < 0 ? 0 : (k > n - 1 ? n - 1 : k);
    default: return k < 0 || k > n - 1 ? -1 : k;
    }
}

#define AMBIGUOUS 1e-3

/* Resolves the sampling coordinate v on an axis of n pixels into up to two
 * (index, weight) taps. Returns 1, -1 for "the fill value", 0 where float
 * and double may honestly disagree (within AMBIGUOUS of a discontinuity:
 * a nearest-rounding tie, the edge in constant mode) or where TensorFlow's
 * wrap rule is not a period-n wrap (pinned by test_wrap_follows_tf). */
static int ref_axis(double v, long n, nn_fill_mode fill,
                    nn_interpolation interp, long idx[2], double wt[2])
{
    if (fill == NN_FILL_CONSTANT) {
        if (fabs(v) < AMBIGUOUS || fabs(v - (n - 1)) < AMBIGUOUS) return 0;
        if (v < 0 || v > n - 1) return -1;
    }
    if (n == 1) { /* everything folds onto the one pixel */
        idx[0] = idx[1] = 0;
        wt[0] = 1;
        wt[1] = 0;
        return 1;
    }
    if (fill == NN_FILL_WRAP) {
        if (!(v > -(n - 1) + AMBIGUOUS && v < 2 * (n - 1) - AMBIGUOUS))
            return 0;
        double u = v - n * floor(v / n);
        if (u > n - 1 - AMBIGUOUS) return 0;
    }
    if (interp == NN_INTERP_NEAREST) {
        if (fabs(v - floor(v) - 0.5) < AMBIGUOUS) return 0;
        idx[0] = idx[1] = extend(lround(v), n, fill);
        wt[0] = 1;
        wt[1] = 0;
        return 1;
    }
    double f = floor(v);
    idx[0] = extend((long)f, n, fill);
    idx[1] = extend((long)f + 1, n, fill);
    wt[0] = 1 - (v - f);
    wt[1] = v - f;
    return 1;
}

typedef struct ref_geom {
    int h, w, c;
    nn_fill_mode fill;
    nn_interpolation interp;
    double fill_value;
} ref_geom;

/* Output pixel (ox, oy) of image img under M (output -> input). Returns
 * false when the pixel is ambiguous (see ref_axis). */
static bool ref_pixel(const ref_geom *g, const double *M, const float *img,
                      int ox, int oy, double *out)
{
    double vx = M[0] * ox + M[1] * oy + M[2];
    double vy = M[3] * ox + M[4] * oy + M[5];
    long ix[2], iy[2];
    double wx[2], wy[2];
    int ax = ref_axis(vx, g->w, g->fill, g->interp, ix, wx);
    int ay = ref_axis(vy, g->h, g->fill, g->interp, iy, wy);
    if (ax == 0 || ay == 0) return false;
    for (int ch = 0; ch < g->c; ch++) {
        if (ax < 0 || ay < 0) {
            out[ch] = g->fill_value;
            continue;
        }
        double s = 0;
        for (int a = 0; a < 2; a++)
            for (int b = 0; b < 2; b++) {
                double wgt = wy[a] * wx[b];
                if (wgt == 0) continue;
                double p = iy[a] < 0 || ix[b] < 0
                               ? g->fill_value
                               : img[(iy[a] * g->w + ix[b]) * g->c + ch];
                s += wgt * p;
            }
        out[ch] = s;
    }
    return true;
}

/* Keras' matrices, in double. */
static void ref_rotation(double turns, int h, int w, double *M)
{
    double a = turns * 2 * PI, cs = cos(a), sn = sin(a);
    M[0] = cs;
    M[1] = -sn;
    M[2] = ((w - 1) - (cs * (w - 1) - sn * (h - 1))) / 2;
    M[3] = sn;
    M[4] = cs;
    M[5] = ((h - 1) - (sn * (w - 1) + cs * (h - 1))) / 2;
}

static void ref_translation(double fy, double fx, int h, int w, double *M)
{
    double m[6] = {1, 0, -fx * w, 0, 1, -fy * h};
    memcpy(M, m, sizeof m);
}

static void ref_zoom(double fy, double fx, int h, int w, double *M)
{
    double zx = 1 + fx, zy = 1 + fy;
    double m[6] = {zx, 0, (w - 1) / 2.0 * (1 - zx),
                   0, zy, (h - 1) / 2.0 * (1 - zy)};
    memcpy(M, m, sizeof m);
}

/* Compares a training forward of l (a fixed transform: lower == upper)
 * with the reference under M on every image; returns the fraction of
 * pixels compared. */
static double compare_with_reference(nn_layer *l, const ref_geom *g,
                                     const double *M, int batch)
{
    run r = run_new(l, batch);
    float *x = random_floats(r.n, 41);
    run_forward(&r, x, true, 5);
    int64_t compared = 0, total = 0;
    double worst = 0, ref[16];
    const int64_t isz = (int64_t)g->h * g->w * g->c;
    for (int b = 0; b < batch; b++)
        for (int oy = 0; oy < g->h; oy++)
            for (int ox = 0; ox < g->w; ox++) {
                total++;
                if (!ref_pixel(g, M, x + b * isz, ox, oy, ref)) continue;
                compared++;
                for (int ch = 0; ch < g->c; ch++) {
                    double got = r.out[b * isz + (oy * g->w + ox) * g->c + ch];
                    double e = fabs(got - ref[ch]);
                    if (e > worst) worst = e;
                    if (e > 1e-4)
                        fail_msg("%s fill %d interp %d image %d pixel (%d,%d) "
                                 "ch %d: got %.7f, reference %.7f",
                                 l->ops->type_name, g->fill, g->interp, b, oy,
                                 ox, ch, got, ref[ch]);
                }
            }
    free(x);
    run_free(&r);
    if (getenv("AUG_VERBOSE"))
        fprintf(stderr, "%s fill %d interp %d: %lld of %lld pixels compared, "
                "worst %.2g\n", l->ops->type_name, g->fill, g->interp,
                (long long)compared, (long long)total, worst);
    return (double)compared / (double)total;
}

static const nn_fill_mode FILLS[4] = {NN_FILL_REFLECT, NN_FILL_WRAP,
                                      NN_FILL_CONSTANT, NN_FILL_NEAREST};
static const nn_interpolation INTERPS[2] = {NN_INTERP_BILINEAR,
                                            NN_INTERP_NEAREST};

static void test_rotation_matches_reference(void **state)
{
    (void)state;
    const double turns[] = {30.0 / 360, -0.2, 0.37, 0.5, -0.013};
    const int sizes[][3] = {{7, 9, 2}, {8, 8, 3}, {1, 5, 1}, {11, 4, 1}};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
        for (size_t t = 0; t < sizeof turns / sizeof turns[0]; t++)
            for (int f = 0; f < 4; f++)
                for (int i = 0; i < 2; i++) {
                    const int h = sizes[s][0], w = sizes[s][1], c = sizes[s][2];
                    ref_geom g = {h, w, c, FILLS[f], INTERPS[i], -0.75};
                    nn_augment_opts o = aug_opts(FILLS[f], INTERPS[i], -0.75f);
                    nn_model *m = nn_model_create(1);
                    nn_layer *l = nn_random_rotation(
                        m, image_input(m, h, w, c), (float)turns[t],
                        (float)turns[t], &o);
                    double M[6];
                    ref_rotation((float)turns[t], h, w, M);
                    double frac = compare_with_reference(l, &g, M, 2);
                    /* Ambiguous pixels are rare except in TF's wrap zone
                     * and on the exact edges of a half turn. */
                    /* Few pixels are ambiguous, except with a half turn
                     * in constant mode: it maps the border onto the
                     * border, up to rounding, right on the edge. */
                    bool edge = turns[t] == 0.5 &&
                                FILLS[f] == NN_FILL_CONSTANT;
                    assert_true(frac > 0.5 || edge);
                    nn_model_free(m);
                }
}

static void test_translation_and_zoom_match_reference(void **state)
{
    (void)state;
    const float tr[][2] = {{0.3f, -0.45f}, {-0.62f, 0.17f}, {0.9f, 0.9f}};
    /* (Factors that put no coordinate on a rounding tie.) */
    const float zm[][2] = {{-0.3f, 0.45f}, {0.8f, -0.6f}, {-0.95f, -0.95f}};
    const int h = 6, w = 7, c = 2;
    for (int k = 0; k < 3; k++)
        for (int f = 0; f < 4; f++)
            for (int i = 0; i < 2; i++) {
                ref_geom g = {h, w, c, FILLS[f], INTERPS[i], 2.5};
                nn_augment_opts o = aug_opts(FILLS[f], INTERPS[i], 2.5f);
                nn_model *m = nn_model_create(1);
                nn_layer *in = image_input(m, h, w, c);
                double M[6];
                nn_layer *l = nn_random_translation(m, in, tr[k][0], tr[k][0],
                                                    tr[k][1], tr[k][1], &o);
                ref_translation(tr[k][0], tr[k][1], h, w, M);
                assert_true(compare_with_reference(l, &g, M, 2) > 0.3);
                l = nn_random_zoom(m, in, zm[k][0], zm[k][0], zm[k][1],
                                   zm[k][1], &o);
                ref_zoom(zm[k][0], zm[k][1], h, w, M);
                assert_true(compare_with_reference(l, &g, M, 2) > 0.3);
                nn_model_free(m);
            }
}

/* Keras: "width_factor=None" zooms both axes by the same draw. */
static void test_zoom_keeps_aspect(void **state)
{
    (void)state;
    nn_model *m = nn_model_create(1);
    nn_layer *l = nn_random_zoom(m, image_input(m, 8, 6, 1), -0.4f, 0.6f, NAN,
                                 NAN, NULL);
    run r = run_new(l, 200);
    float *x = random_floats(r.n, 2);
    run_forward(&r, x, true, 3);
    double lo = 10, hi = -10;
    for (int b = 0; b < 200; b++) {
        const float *mt = draws(&r) + b * 6;
        assert_true(mt[0] == mt[4]);
        lo = fmin(lo, mt[0]);
        hi = fmax(hi, mt[0]);
    }
    assert_true(lo >= 0.6 - 1e-6 && lo < 0.7);
    assert_true(hi <= 1.6 + 1e-6 && hi > 1.5);
    free(x);
    run_free(&r);
    nn_model_free(m);
}

/* Exact cases: a zero transform copies the image; a quarter turn of a
 * square image is a permutation (out(x, y) = in((w-1) - y, x)) with the
 * reflect and nearest fills. (cos(pi/2) is not exactly 0 in floating
 * point: some border coordinates land a hair outside the image, where
 * constant mode fills and TensorFlow's wrap jumps to the far edge.) */
static void test_exact_transforms(void **state)
{
    (void)state;
    const int n = 6, c = 2;
    for (int f = 0; f < 4; f++)
        for (int i = 0; i < 2; i++) {
            nn_augment_opts o = aug_opts(FILLS[f], INTERPS[i], 9.0f);
            nn_model *m = nn_model_create(1);
            nn_layer *in = image_input(m, n, n, c);
            nn_layer *zero[3] = {
                nn_random_rotation(m, in, 0, 0, &o),
                nn_random_translation(m, in, 0, 0, 0, 0, &o),
                nn_random_zoom(m, in, 0, 0, 0, 0, &o)};
            float *x = random_floats(2 * n * n * c, 4);
            for (int z = 0; z < 3; z++) {
                run r = run_new(zero[z], 2);
                run_forward(&r, x, true, 1);
                assert_memory_equal(r.out, x, (size_t)r.n * 4);
                run_free(&r);
            }
            if (FILLS[f] == NN_FILL_CONSTANT || FILLS[f] == NN_FILL_WRAP) {
                free(x);
                nn_model_free(m);
                continue;
            }
            run r = run_new(nn_random_rotation(m, in, 0.25f, 0.25f, &o), 2);
            run_forward(&r, x, true, 1);
            for (int b = 0; b < 2; b++)
                for (int y = 0; y < n; y++)
                    for (int xx = 0; xx < n; xx++)
                        for (int ch = 0; ch < c; ch++) {
                            float got = r.out[((b * n + y) * n + xx) * c + ch];
                            float want =
                                x[((b * n + xx) * n + (n - 1 - y)) * c + ch];
                            assert_true(got == want);
                        }
            run_free(&r);
            free(x);
            nn_model_free(m);
        }
}

/* TensorFlow's wrap (kept for parity, see docs/augmentation.md): a
 * coordinate in the seam cell between the last pixel and the next copy's
 * first is not blended: it takes the pixel across the seam. */
static void test_wrap_follows_tf(void **state)
{
    (void)state;
    const int w = 4;
    nn_augment_opts o = aug_opts(NN_FILL_WRAP, NN_INTERP_BILINEAR, 0);
    nn_model *m = nn_model_create(1);
    /* Shift right by half a pixel: output column j reads x = j - 0.5. */
    nn_layer *l = nn_random_translation(m, image_input(m, 1, w, 1), 0, 0,
                                        0.125f, 0.125f, &o);
    run r = run_new(l, 1);
    const float x[4] = {10, 20, 30, 40};
    run_forward(&r, x, true, 1);
    /* x = -0.5 -> -0.5 + 4 = 3.5, clamped to 3: pixel 3 (a true wrap
     * would give (40 + 10) / 2). */
    assert_float_equal(r.out[0], 40.0f, 0);
    assert_float_equal(r.out[1], 15.0f, 1e-6);
    assert_float_equal(r.out[2], 25.0f, 1e-6);
    assert_float_equal(r.out[3], 35.0f, 1e-6);
    run_free(&r);
    /* Shift left by half a pixel: column 3 reads 3.5 -> 3.5 - 4 = -0.5,
     * clamped to 0: pixel 0. */
    l = nn_random_translation(m, m->input, 0, 0, -0.125f, -0.125f, &o);
    r = run_new(l, 1);
    run_forward(&r, x, true, 1);
    assert_float_equal(r.out[0], 15.0f, 1e-6);
    assert_float_equal(r.out[3], 10.0f, 0);
    run_free(&r);
    /* A shift by a whole pixel wraps exactly. */
    l = nn_random_translation(m, m->input, 0, 0, 0.25f, 0.25f, &o);
    r = run_new(l, 1);
    run_forward(&r, x, true, 1);
    const float want[4] = {40, 10, 20, 30};
    assert_memory_equal(r.out, want, sizeof want);
    run_free(&r);
    /* Beyond len - 1 pixels TensorFlow's fold is off by a period: right
     * by 3 reads x = -3, -2, -1, 0; -3 + 4 * (trunc(3 / 3) + 1) = 5,
     * clamped to 3 (a period-4 wrap would read pixel 1). */
    l = nn_random_translation(m, m->input, 0, 0, 0.75f, 0.75f, &o);
    r = run_new(l, 1);
    run_forward(&r, x, true, 1);
    const float right3[4] = {40, 30, 40, 10};
    assert_memory_equal(r.out, right3, sizeof right3);
    run_free(&r);
    /* Left by 3 reads 3, 4, 5, 6: 6 - 4 * trunc(6 / 3) = -2, clamped to
     * 0 (a period-4 wrap would read pixel 2). */
    l = nn_random_translation(m, m->input, 0, 0, -0.75f, -0.75f, &o);
    r = run_new(l, 1);
    run_forward(&r, x, true, 1);
    const float left3[4] = {40, 10, 20, 10};
    assert_memory_equal(r.out, left3, sizeof left3);
    run_free(&r);
    nn_model_free(m);
}

/* Constant mode: a coordinate outside the image gives fill_value, with no
 * blend at the border (ImageProjectiveTransformV3 since the fix of
 * tensorflow/tensorflow#46637). */
static void test_constant_fill_borders(void **state)
{
    (void)state;
    nn_augment_opts o = aug_opts(NN_FILL_CONSTANT, NN_INTERP_BILINEAR, -3.0f);
    nn_model *m = nn_model_create(1);
    nn_layer *l = nn_random_translation(m, image_input(m, 1, 4, 1), 0, 0,
                                        0.125f, 0.125f, &o);
    run r = run_new(l, 1);
    const float x[4] = {10, 20, 30, 40};
    run_forward(&r, x, true, 1);
    assert_float_equal(r.out[0], -3.0f, 0); /* x = -0.5: outside */
    assert_float_equal(r.out[1], 15.0f, 1e-6);
    assert_float_equal(r.out[3], 35.0f, 1e-6);
    run_free(&r);
    nn_model_free(m);
}

/* ------------------------------------------------------------------ */
/* contrast                                                            */
/* ------------------------------------------------------------------ */

static void test_contrast_values(void **state)
{
    (void)state;
    const int h = 5, w = 4, c = 3, batch = 50;
    nn_model *m = nn_model_create(1);
    nn_layer *l = nn_random_contrast(m, image_input(m, h, w, c), 0.3f, 0.6f,
                                     NULL);
    run r = run_new(l, batch);
    float *x = random_floats(r.n, 9);
    run_forward(&r, x, true, 11);
    double lo = 10, hi = -10;
    for (int b = 0; b < batch; b++) {
        double f = draws(&r)[b];
        lo = fmin(lo, f);
        hi = fmax(hi, f);
        for (int ch = 0; ch < c; ch++) {
            double mean = 0;
            for (int p = 0; p < h * w; p++) mean += x[(b * h * w + p) * c + ch];
            mean /= h * w;
            for (int p = 0; p < h * w; p++) {
                int64_t at = ((int64_t)b * h * w + p) * c + ch;
                assert_float_equal(r.out[at], (x[at] - mean) * f + mean, 1e-5);
            }
        }
    }
    assert_true(lo >= 0.7 - 1e-6 && lo < 0.8);
    assert_true(hi <= 1.6 + 1e-6 && hi > 1.5);
    free(x);
    run_free(&r);
    nn_model_free(m);
}

/* ------------------------------------------------------------------ */
/* distributions of the draws                                          */
/* ------------------------------------------------------------------ */

/* Checks that values are within [lo, hi] and uniform there: mean within 4
 * standard errors, 10-bin chi-square below 27.88 (9 dof, p = 0.001). */
static void expect_uniform(const double *v, int n, double lo, double hi)
{
    int bins[10] = {0};
    double sum = 0;
    for (int i = 0; i < n; i++) {
        assert_true(v[i] >= lo - 1e-5 * (1 + fabs(lo)));
        assert_true(v[i] <= hi + 1e-5 * (1 + fabs(hi)));
        int k = (int)((v[i] - lo) / (hi - lo) * 10);
        bins[k < 0 ? 0 : (k > 9 ? 9 : k)]++;
        sum += v[i];
    }
    double mean = sum / n, sd = (hi - lo) / sqrt(12.0 * n);
    assert_true(fabs(mean - (lo + hi) / 2) < 4 * sd);
    double chi2 = 0;
    for (int k = 0; k < 10; k++)
        chi2 += (bins[k] - n / 10.0) * (bins[k] - n / 10.0) / (n / 10.0);
    assert_true(chi2 < 27.88);
}

static void test_draw_distributions(void **state)
{
    (void)state;
    const int batch = 1000, rounds = 4, n = batch * rounds;
    double *v = malloc(sizeof(double) * n), *u = malloc(sizeof(double) * n);
    const float ranges[][2] = {{-0.2f, 0.2f}, {0.1f, 0.3f}, {-0.45f, -0.05f}};
    for (int k = 0; k < 3; k++) {
        nn_model *m = nn_model_create(1);
        nn_layer *in = image_input(m, 4, 6, 1);
        nn_layer *rot = nn_random_rotation(m, in, ranges[k][0], ranges[k][1],
                                           NULL);
        nn_layer *tr = nn_random_translation(m, in, ranges[k][0],
                                             ranges[k][1], -ranges[k][1],
                                             -ranges[k][0], NULL);
        nn_layer *zo = nn_random_zoom(m, in, ranges[k][0], ranges[k][1],
                                      ranges[k][0] * 2, ranges[k][1] * 2,
                                      NULL);
        run rr = run_new(rot, batch), rt = run_new(tr, batch),
            rz = run_new(zo, batch);
        float *x = random_floats(rr.n, 1);
        for (int t = 0; t < rounds; t++) {
            run_forward(&rr, x, true, 500 + (uint64_t)t);
            for (int b = 0; b < batch; b++) {
                const float *mt = draws(&rr) + b * 6;
                v[t * batch + b] = atan2(mt[3], mt[0]);
            }
        }
        expect_uniform(v, n, ranges[k][0] * 2 * PI, ranges[k][1] * 2 * PI);
        for (int t = 0; t < rounds; t++) {
            run_forward(&rt, x, true, 600 + (uint64_t)t);
            for (int b = 0; b < batch; b++) {
                const float *mt = draws(&rt) + b * 6;
                u[t * batch + b] = -mt[2] / 6; /* width fraction */
                v[t * batch + b] = -mt[5] / 4; /* height fraction */
            }
        }
        expect_uniform(v, n, ranges[k][0], ranges[k][1]);
        expect_uniform(u, n, -ranges[k][1], -ranges[k][0]);
        for (int t = 0; t < rounds; t++) {
            run_forward(&rz, x, true, 700 + (uint64_t)t);
            for (int b = 0; b < batch; b++) {
                const float *mt = draws(&rz) + b * 6;
                v[t * batch + b] = mt[4] - 1;
                u[t * batch + b] = mt[0] - 1;
            }
        }
        expect_uniform(v, n, ranges[k][0], ranges[k][1]);
        expect_uniform(u, n, ranges[k][0] * 2, ranges[k][1] * 2);
        free(x);
        run_free(&rr);
        run_free(&rt);
        run_free(&rz);
        nn_model_free(m);
    }
    nn_model *m = nn_model_create(1);
    nn_layer *ct = nn_random_contrast(m, image_input(m, 2, 2, 1), 0.4f, 0.7f,
                                      NULL);
    run rc = run_new(ct, batch);
    float *x = random_floats(rc.n, 1);
    for (int t = 0; t < rounds; t++) {
        run_forward(&rc, x, true, 800 + (uint64_t)t);
        for (int b = 0; b < batch; b++) v[t * batch + b] = draws(&rc)[b];
    }
    expect_uniform(v, n, 0.6, 1.7);
    free(x);
    run_free(&rc);
    nn_model_free(m);
    free(v);
    free(u);
}

/* ------------------------------------------------------------------ */
/* repeatability                                                       */
/* ------------------------------------------------------------------ */

static void test_same_key_same_output(void **state)
{
    (void)state;
    for (int k = NN_KIND_RANDOM_FLIP; k <= NN_KIND_RANDOM_CONTRAST; k++) {
        nn_model *m = nn_model_create(3);
        nn_layer *l = strong_layer(m, image_input(m, 9, 7, 3), k);
        run r = run_new(l, 48);
        float *x = random_floats(r.n, 3);
        float *first = malloc((size_t)r.n * 4);
        nn_set_num_threads(1);
        run_forward(&r, x, true, 42);
        memcpy(first, r.out, (size_t)r.n * 4);
        /* Any thread count draws and computes the same, bit for bit. */
        nn_set_num_threads(3);
        run_forward(&r, x, true, 42);
        assert_memory_equal(first, r.out, (size_t)r.n * 4);
        nn_set_num_threads(0);
        run_forward(&r, x, true, 43);
        assert_memory_not_equal(first, r.out, (size_t)r.n * 4);
        free(x);
        free(first);
        run_free(&r);
        nn_model_free(m);
    }
}

static nn_model *aug_model(uint64_t seed)
{
    nn_model *m = nn_model_create(seed);
    nn_layer *x = image_input(m, 8, 8, 3);
    x = nn_random_flip(m, x, NN_FLIP_HORIZONTAL_AND_VERTICAL, NULL);
    x = nn_random_rotation(m, x, -0.2f, 0.2f, NULL);
    x = nn_flatten(m, x, NULL);
    nn_dense_opts d = NN_DENSE_OPTS_INIT;
    d.activation = NN_ACT_SOFTMAX;
    x = nn_dense(m, x, 4, &d);
    assert_non_null(x);
    assert_int_equal(nn_model_compile(m, nn_adam(NULL),
                                      NN_LOSS_CATEGORICAL_CROSSENTROPY, NULL),
                     NN_OK);
    return m;
}

/* Training draws come from the model's seeded generator: the same seed
 * repeats a run exactly, and each step draws anew. */
static void test_seeded_model_repeats(void **state)
{
    (void)state;
    int64_t xs[4] = {16, 8, 8, 3}, ys[2] = {16, 4};
    nn_tensor *x = nn_tensor_create(4, xs), *y = nn_tensor_create(2, ys);
    float *px = random_floats(x->size, 5);
    memcpy(x->data, px, (size_t)x->size * 4);
    for (int i = 0; i < 16; i++) y->data[i * 4 + i % 4] = 1;
    nn_tensor *dx[3];
    for (int i = 0; i < 3; i++) dx[i] = nn_tensor_create(4, xs);
    nn_model *a = aug_model(11), *b = aug_model(11);
    float la, lb;
    assert_int_equal(nn_model_backward(a, x, y, 1, &la, dx[0]), NN_OK);
    assert_int_equal(nn_model_backward(b, x, y, 1, &lb, dx[1]), NN_OK);
    assert_memory_equal(dx[0]->data, dx[1]->data, (size_t)x->size * 4);
    assert_true(la == lb);
    /* The next step draws other transforms, the same in both models. */
    assert_int_equal(nn_model_backward(a, x, y, 1, &la, dx[2]), NN_OK);
    assert_memory_not_equal(dx[0]->data, dx[2]->data, (size_t)x->size * 4);
    assert_int_equal(nn_model_backward(b, x, y, 1, &lb, dx[1]), NN_OK);
    assert_memory_equal(dx[2]->data, dx[1]->data, (size_t)x->size * 4);
    /* Training steps repeat too. */
    for (int s = 0; s < 3; s++) {
        float l1, l2, acc;
        assert_int_equal(nn_model_train_batch(a, x, y, &l1, &acc), NN_OK);
        assert_int_equal(nn_model_train_batch(b, x, y, &l2, &acc), NN_OK);
        assert_true(l1 == l2);
        assert_true(isfinite(l1));
    }
    nn_model_free(a);
    nn_model_free(b);
    for (int i = 0; i < 3; i++) nn_tensor_free(dx[i]);
    nn_tensor_free(x);
    nn_tensor_free(y);
    free(px);
}

/* ------------------------------------------------------------------ */
/* gradients                                                           */
/* ------------------------------------------------------------------ */

/* The stored configs of RandomRotation, RandomTranslation and RandomZoom
 * end in fill mode, interpolation, fill value: word `from_end` counted
 * back from the end (3: fill, 2: interpolation); -1 for other kinds. */
static int sampling_field(const nn_layer *l, int from_end)
{
    if (l->kind == NN_KIND_RANDOM_FLIP || l->kind == NN_KIND_RANDOM_CONTRAST)
        return -1;
    int words = (int)(l->ops->save_config(l, NULL, 0) / 4);
    return stored_config_i32(l, words - from_end);
}

/* <A x, g> == <x, A^T g> for random x, g, with the draws of one forward:
 * the backward pass is the exact adjoint of the forward pass. The forward
 * pass is affine (constant mode adds fill values): A x = f(x) - f(0). */
static void expect_adjoint(nn_layer *l, int batch, uint64_t key)
{
    run r = run_new(l, batch);
    float *x = random_floats(r.n, key + 1), *g = random_floats(r.n, key + 2);
    float *dx = malloc((size_t)r.n * 4), *f0 = calloc((size_t)r.n, 4);
    run_forward(&r, f0, true, key);
    memcpy(f0, r.out, (size_t)r.n * 4);
    run_forward(&r, x, true, key);
    run_backward(&r, x, g, dx, false);
    double lhs = 0, rhs = 0, scale = 0;
    for (int64_t i = 0; i < r.n; i++) {
        lhs += ((double)r.out[i] - f0[i]) * g[i];
        rhs += (double)x[i] * dx[i];
        scale += fabs((double)r.out[i] * g[i]);
    }
    if (!(fabs(lhs - rhs) <= 1e-5 * scale))
        fail_msg("%s fill %d interp %d: <Ax, g> = %.9g, <x, A'g> = %.9g",
                 l->ops->type_name, sampling_field(l, 3),
                 sampling_field(l, 2), lhs, rhs);
    free(x);
    free(g);
    free(dx);
    free(f0);
    run_free(&r);
}

static void test_backward_is_adjoint(void **state)
{
    (void)state;
    for (int f = 0; f < 4; f++)
        for (int i = 0; i < 2; i++) {
            nn_augment_opts o = aug_opts(FILLS[f], INTERPS[i], 0.3f);
            nn_model *m = nn_model_create(1);
            nn_layer *in = image_input(m, 13, 10, 3);
            expect_adjoint(nn_random_rotation(m, in, -0.5f, 0.5f, &o), 16, 3);
            expect_adjoint(nn_random_translation(m, in, -1, 1, -1, 1, &o), 16,
                           4);
            expect_adjoint(nn_random_zoom(m, in, -1, 2, -0.5f, 1.5f, &o), 16,
                           5);
            nn_model_free(m);
        }
    nn_model *m = nn_model_create(1);
    nn_layer *in = image_input(m, 13, 10, 3);
    expect_adjoint(nn_random_flip(m, in, NN_FLIP_HORIZONTAL_AND_VERTICAL,
                                  NULL), 16, 6);
    expect_adjoint(nn_random_contrast(m, in, 0.9f, 3.0f, NULL), 16, 7);
    nn_model_free(m);
}

static void expect_gradcheck(nn_layer *l, bool training)
{
    assert_non_null(l);
    gc_opts o = GC_OPTS_INIT;
    o.training = training;
    gc_result r = gc_check_layer(l, 2, &o);
    assert_true(r.checked > 0);
    assert_int_equal(r.failed, 0);
}

static void test_finite_differences(void **state)
{
    (void)state;
    for (int f = 0; f < 4; f++)
        for (int i = 0; i < 2; i++) {
            nn_augment_opts o = aug_opts(FILLS[f], INTERPS[i], 0.3f);
            nn_model *m = nn_model_create(1);
            nn_layer *in = image_input(m, 5, 6, 2);
            expect_gradcheck(nn_random_rotation(m, in, -0.3f, 0.3f, &o), true);
            expect_gradcheck(nn_random_translation(m, in, -0.4f, 0.4f, -0.4f,
                                                   0.4f, &o), true);
            expect_gradcheck(nn_random_zoom(m, in, -0.4f, 0.6f, -0.4f, 0.6f,
                                            &o), true);
            nn_model_free(m);
        }
    for (int training = 0; training <= 1; training++) {
        nn_model *m = nn_model_create(1);
        nn_layer *in = image_input(m, 5, 6, 2);
        expect_gradcheck(nn_random_flip(m, in, NN_FLIP_HORIZONTAL_AND_VERTICAL,
                                        NULL), training);
        expect_gradcheck(nn_random_contrast(m, in, 0.5f, 0.5f, NULL), training);
        expect_gradcheck(nn_random_rotation(m, in, -0.3f, 0.3f, NULL),
                         training);
        nn_model_free(m);
    }
}

/* An augmentation layer in the middle of a model passes gradients to the
 * layers before it; at the input (nothing to learn upstream) its backward
 * is skipped. */
static void test_inside_a_model(void **state)
{
    (void)state;
    nn_model *m = nn_model_create(2);
    nn_layer *x = image_input(m, 10, 10, 3);
    nn_conv2d_opts co = NN_CONV2D_OPTS_INIT;
    co.activation = NN_ACT_RELU;
    co.padding = NN_PADDING_SAME;
    x = nn_conv2d(m, x, 4, 3, 3, &co);
    x = nn_random_rotation(m, x, -0.1f, 0.1f, NULL);
    x = nn_random_contrast(m, x, 0.2f, 0.2f, NULL);
    x = nn_flatten(m, x, NULL);
    nn_dense_opts d = NN_DENSE_OPTS_INIT;
    d.activation = NN_ACT_SOFTMAX;
    x = nn_dense(m, x, 3, &d);
    assert_int_equal(nn_model_compile(m, nn_adam(NULL),
                                      NN_LOSS_CATEGORICAL_CROSSENTROPY, NULL),
                     NN_OK);
    int64_t xs[4] = {8, 10, 10, 3}, ys[2] = {8, 3};
    nn_tensor *tx = nn_tensor_create(4, xs), *ty = nn_tensor_create(2, ys);
    float *p = random_floats(tx->size, 3);
    memcpy(tx->data, p, (size_t)tx->size * 4);
    for (int i = 0; i < 8; i++) ty->data[i * 3 + i % 3] = 1;
    nn_fit_opts fo = NN_FIT_OPTS_INIT;
    fo.epochs = 3;
    fo.batch_size = 3; /* a short last batch */
    nn_history *h = NULL;
    assert_int_equal(nn_model_fit(m, tx, ty, &fo, &h), NN_OK);
    assert_true(isfinite(nn_history_get(h, NN_METRIC_LOSS, 2)));
    nn_layer *conv = nn_model_layer(m, 1);
    nn_tensor *g = nn_layer_weight_grad(conv, 0);
    assert_non_null(g);
    double s = 0;
    for (int64_t i = 0; i < g->size; i++) s += fabs(g->data[i]);
    assert_true(s > 0);
    nn_history_free(h);
    nn_tensor_free(tx);
    nn_tensor_free(ty);
    free(p);
    nn_model_free(m);
}

/* ------------------------------------------------------------------ */
/* construction, names, configs                                        */
/* ------------------------------------------------------------------ */

static void test_names_and_shapes(void **state)
{
    (void)state;
    nn_model *m = nn_model_create(1);
    nn_layer *in = image_input(m, 32, 30, 3);
    const char *types[5] = {"RandomFlip", "RandomRotation",
                            "RandomTranslation", "RandomZoom",
                            "RandomContrast"};
    const char *names[5] = {"random_flip", "random_rotation",
                            "random_translation", "random_zoom",
                            "random_contrast"};
    for (int k = 0; k < 5; k++) {
        nn_layer_kind kind = (nn_layer_kind)(NN_KIND_RANDOM_FLIP + k);
        nn_layer *l = strong_layer(m, in, kind);
        assert_non_null(l);
        assert_string_equal(nn_layer_type(l), types[k]);
        assert_string_equal(nn_layer_name(l), names[k]);
        int s[3];
        assert_int_equal(nn_layer_output_shape(l, s, 3), 3);
        assert_int_equal(s[0], 32);
        assert_int_equal(s[1], 30);
        assert_int_equal(s[2], 3);
        assert_int_equal(nn_layer_num_params(l), 0);
    }
    nn_layer *again = nn_random_flip(m, in, NN_FLIP_VERTICAL, NULL);
    assert_string_equal(nn_layer_name(again), "random_flip_1");
    nn_layer_opts lo = NN_LAYER_OPTS_INIT;
    lo.name = "flippy";
    assert_string_equal(nn_layer_name(nn_random_flip(m, in, NN_FLIP_VERTICAL,
                                                     &lo)),
                        "flippy");
    nn_augment_opts ao = NN_AUGMENT_OPTS_INIT;
    ao.name = "spin";
    nn_layer *spin = nn_random_rotation(m, in, -0.1f, 0.1f, &ao);
    assert_string_equal(nn_layer_name(spin), "spin");
    assert_int_equal(sampling_field(spin, 3), NN_FILL_REFLECT);
    assert_int_equal(sampling_field(spin, 2), NN_INTERP_BILINEAR);
    /* An older caller's options (only size and name) get the defaults. */
    ao.size = sizeof(size_t) + sizeof(const char *);
    ao.name = NULL;
    ao.fill_mode = NN_FILL_WRAP;
    nn_layer *old = nn_random_rotation(m, in, -0.1f, 0.1f, &ao);
    assert_non_null(old);
    assert_int_equal(sampling_field(old, 3), NN_FILL_REFLECT);
    nn_model_free(m);
}

static void expect_null(nn_layer *l, nn_status want)
{
    assert_null(l);
    assert_int_equal(nn_last_status(), want);
    assert_true(nn_last_error()[0] != '\0');
    nn_clear_error();
}

static void test_invalid_arguments(void **state)
{
    (void)state;
    nn_model *m = nn_model_create(1);
    nn_layer *in = image_input(m, 8, 8, 3);
    nn_augment_opts o = NN_AUGMENT_OPTS_INIT;
    /* NULL handles */
    expect_null(nn_random_flip(NULL, in, NN_FLIP_VERTICAL, NULL),
                NN_ERR_INVALID);
    expect_null(nn_random_rotation(m, NULL, 0, 0, NULL), NN_ERR_INVALID);
    expect_null(nn_random_contrast(m, NULL, 0, 0, NULL), NN_ERR_INVALID);
    /* flip modes */
    expect_null(nn_random_flip(m, in, (nn_flip_mode)0, NULL), NN_ERR_INVALID);
    expect_null(nn_random_flip(m, in, (nn_flip_mode)4, NULL), NN_ERR_INVALID);
    /* factor ranges */
    expect_null(nn_random_rotation(m, in, -1.5f, 0.2f, NULL), NN_ERR_INVALID);
    expect_null(nn_random_rotation(m, in, 0.3f, 0.2f, NULL), NN_ERR_INVALID);
    expect_null(nn_random_rotation(m, in, NAN, 0.2f, NULL), NN_ERR_INVALID);
    expect_null(nn_random_translation(m, in, -0.1f, 1.2f, 0, 0, NULL),
                NN_ERR_INVALID);
    expect_null(nn_random_translation(m, in, 0, 0, 0.5f, 0.4f, NULL),
                NN_ERR_INVALID);
    expect_null(nn_random_zoom(m, in, -1.5f, 0.2f, 0, 0, NULL),
                NN_ERR_INVALID);
    expect_null(nn_random_zoom(m, in, 0, INFINITY, 0, 0, NULL),
                NN_ERR_INVALID);
    expect_null(nn_random_zoom(m, in, 0, 0.2f, NAN, 0.1f, NULL),
                NN_ERR_INVALID);
    expect_null(nn_random_contrast(m, in, 1.5f, 0.2f, NULL), NN_ERR_INVALID);
    expect_null(nn_random_contrast(m, in, -0.1f, 0.2f, NULL), NN_ERR_INVALID);
    expect_null(nn_random_contrast(m, in, 0.1f, -0.2f, NULL), NN_ERR_INVALID);
    /* sampling options */
    o.fill_mode = (nn_fill_mode)4;
    expect_null(nn_random_rotation(m, in, -0.1f, 0.1f, &o), NN_ERR_INVALID);
    o = (nn_augment_opts)NN_AUGMENT_OPTS_INIT;
    o.interpolation = (nn_interpolation)2;
    expect_null(nn_random_zoom(m, in, -0.1f, 0.1f, 0, 0, &o), NN_ERR_INVALID);
    o = (nn_augment_opts)NN_AUGMENT_OPTS_INIT;
    o.fill_value = INFINITY;
    expect_null(nn_random_translation(m, in, 0, 0, 0, 0, &o), NN_ERR_INVALID);
    o.size = 3;
    expect_null(nn_random_rotation(m, in, -0.1f, 0.1f, &o), NN_ERR_INVALID);
    /* inputs that are not images */
    int vec[1] = {12}, mat[2] = {4, 3};
    nn_model *m2 = nn_model_create(1);
    nn_layer *v = nn_input(m2, 1, vec, NULL);
    expect_null(nn_random_flip(m2, v, NN_FLIP_HORIZONTAL, NULL), NN_ERR_SHAPE);
    nn_model *m3 = nn_model_create(1);
    nn_layer *mt = nn_input(m3, 2, mat, NULL);
    expect_null(nn_random_rotation(m3, mt, -0.1f, 0.1f, NULL), NN_ERR_SHAPE);
    expect_null(nn_random_contrast(m3, mt, 0.1f, 0.1f, NULL), NN_ERR_SHAPE);
    /* Nothing was added by the failures. */
    assert_int_equal(nn_model_num_layers(m), 1);
    nn_model_free(m);
    nn_model_free(m2);
    nn_model_free(m3);
}

/* One layer per kind and variant, for the config tests. */
static nn_layer *config_sample(nn_model *m, nn_layer *in, int i)
{
    nn_augment_opts o = aug_opts(NN_FILL_WRAP, NN_INTERP_NEAREST, 0.25f);
    switch (i) {
    case 0: return nn_random_flip(m, in, NN_FLIP_VERTICAL, NULL);
    case 1: return nn_random_rotation(m, in, -0.3f, 0.125f, &o);
    case 2: return nn_random_translation(m, in, -0.2f, 0.1f, -0.5f, 0.25f, &o);
    case 3: return nn_random_zoom(m, in, -0.25f, 0.5f, 0.0f, 1.5f, &o);
    case 4: return nn_random_zoom(m, in, -0.25f, 0.5f, NAN, NAN, NULL);
    case 5: return nn_random_contrast(m, in, 0.5f, 2.5f, NULL);
    default: return NULL;
    }
}

#define N_CONFIG_SAMPLES 6

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static void test_configs(void **state)
{
    (void)state;
    for (int i = 0; i < N_CONFIG_SAMPLES; i++) {
        nn_model *m = nn_model_create(1);
        nn_layer *l = config_sample(m, image_input(m, 6, 5, 2), i);
        assert_non_null(l);
        uint8_t buf[64];
        size_t len = l->ops->save_config(l, buf, sizeof buf);
        assert_true(len > 0 && len <= sizeof buf && len % 4 == 0);
        nn_layer proto = {0};
        assert_int_equal(l->ops->load_config(&proto, buf, len), NN_OK);
        assert_memory_equal(&proto.cfg, &l->cfg, sizeof l->cfg);
        /* Truncated or padded configs fail. */
        for (size_t cut = 0; cut < len; cut++)
            assert_int_equal(l->ops->load_config(&proto, buf, cut),
                             NN_ERR_FORMAT);
        buf[len] = 0;
        assert_int_equal(l->ops->load_config(&proto, buf, len + 1),
                         NN_ERR_FORMAT);
        /* Any field set to NaN, infinity, a huge or negative integer, or
         * a value outside its range fails: floats and enums alike. */
        const uint32_t bad[] = {0x7fc00000u, 0x7f800000u, 0xff800000u,
                                0x7fffffffu, 0xffffffffu, 0x80000000u + 7,
                                0x40400000u /* 3.0f */, 1000, 5};
        for (size_t f = 0; f + 4 <= len; f += 4) {
            int rejected = 0;
            for (size_t b = 0; b < sizeof bad / sizeof bad[0]; b++) {
                uint8_t b2[64];
                memcpy(b2, buf, len);
                put_u32(b2 + f, bad[b]);
                nn_layer p2 = {0};
                nn_status s = l->ops->load_config(&p2, b2, len);
                if (s != NN_OK) {
                    assert_int_equal(s, NN_ERR_FORMAT);
                    rejected++;
                }
            }
            /* NaN, +-inf and 0x7fffffff/0xffffffff (NaN or a bad enum)
             * always. */
            assert_true(rejected >= 5);
        }
        nn_model_free(m);
    }
}

static void test_save_and_load(void **state)
{
    (void)state;
    nn_model *m = nn_model_create(5);
    nn_layer *x = image_input(m, 6, 5, 2);
    for (int i = 0; i < N_CONFIG_SAMPLES; i++) x = config_sample(m, x, i);
    x = nn_flatten(m, x, NULL);
    x = nn_dense(m, x, 3, NULL);
    assert_non_null(x);
    char path[] = "/tmp/test_augment_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(nn_model_save(m, path, NN_SAVE_DEFAULT), NN_OK);
    nn_model *l = nn_model_load(path);
    unlink(path);
    assert_non_null(l);
    assert_int_equal(nn_model_num_layers(l), nn_model_num_layers(m));
    for (int i = 0; i < nn_model_num_layers(m); i++) {
        nn_layer *a = nn_model_layer(m, i), *b = nn_model_layer(l, i);
        assert_string_equal(nn_layer_type(a), nn_layer_type(b));
        assert_string_equal(nn_layer_name(a), nn_layer_name(b));
        assert_memory_equal(&a->cfg, &b->cfg, sizeof a->cfg);
    }
    int64_t xs[4] = {3, 6, 5, 2}, ys[2] = {3, 3};
    nn_tensor *tx = nn_tensor_create(4, xs);
    float *p = random_floats(tx->size, 1);
    memcpy(tx->data, p, (size_t)tx->size * 4);
    nn_tensor *y1 = nn_tensor_create(2, ys), *y2 = nn_tensor_create(2, ys);
    assert_int_equal(nn_model_predict(m, tx, y1, 3), NN_OK);
    assert_int_equal(nn_model_predict(l, tx, y2, 3), NN_OK);
    assert_memory_equal(y1->data, y2->data, 9 * sizeof(float));
    free(p);
    nn_tensor_free(tx);
    nn_tensor_free(y1);
    nn_tensor_free(y2);
    nn_model_free(m);
    nn_model_free(l);
}

/* Every allocation failure during construction is reported, never a
 * crash or a leak. */
static void test_allocation_failures(void **state)
{
    (void)state;
    for (int64_t k = 1; k < 20; k++) {
        nn_model *m = nn_model_create(1);
        nn_layer *in = image_input(m, 6, 6, 1);
        nn__debug_fail_alloc_after(k);
        nn_layer *l = nn_random_rotation(m, in, -0.1f, 0.1f, NULL);
        nn__debug_fail_alloc_after(0);
        if (!l) assert_int_equal(nn_last_status(), NN_ERR_NOMEM);
        nn_clear_error();
        nn_model_free(m);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_inference_is_identity),
        cmocka_unit_test(test_flips_are_permutations),
        cmocka_unit_test(test_flip_frequencies),
        cmocka_unit_test(test_rotation_matches_reference),
        cmocka_unit_test(test_translation_and_zoom_match_reference),
        cmocka_unit_test(test_zoom_keeps_aspect),
        cmocka_unit_test(test_exact_transforms),
        cmocka_unit_test(test_wrap_follows_tf),
        cmocka_unit_test(test_constant_fill_borders),
        cmocka_unit_test(test_contrast_values),
        cmocka_unit_test(test_draw_distributions),
        cmocka_unit_test(test_same_key_same_output),
        cmocka_unit_test(test_seeded_model_repeats),
        cmocka_unit_test(test_backward_is_adjoint),
        cmocka_unit_test(test_finite_differences),
        cmocka_unit_test(test_inside_a_model),
        cmocka_unit_test(test_names_and_shapes),
        cmocka_unit_test(test_invalid_arguments),
        cmocka_unit_test(test_configs),
        cmocka_unit_test(test_save_and_load),
        cmocka_unit_test(test_allocation_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

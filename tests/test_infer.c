/* Inference for a product: the preprocessing and decision a model
 * carries (set, get, checkpoint round trip), the classify calls on 8-bit
 * frames and on floats, their agreement with nn_model_evaluate_binary,
 * steady-state allocations, and threads with a context each. The hostile
 * checkpoint cases of the PREP section are in test_io.c. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "io/io.h"
#include "nn_internal.h"
#include "tmpdir.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define N_IMG 24 /* synthetic surface images */
#define FS 32    /* frames: FS x FS RGB */
#define MS 24    /* the models' input: MS x MS x 3 */
#define FRAME_BYTES (FS * FS * 3)

/* The synthetic defect images as the camera gives them (8-bit RGB), and
 * their defect kinds. */
static uint8_t frames[N_IMG][FRAME_BYTES];
static float kinds[N_IMG];

typedef enum head {
    HEAD_SOFTMAX, /* Dense(5, softmax), sparse categorical cross-entropy */
    HEAD_SIGMOID, /* Dense(1, sigmoid), binary cross-entropy */
    HEAD_LOGITS   /* Dense(5), from_logits */
} head;

static int setup(void **state)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_infer.XXXXXX");
    if (!mkdtemp(tmpdir)) return -1;
    nn_defects_opts o = NN_DEFECTS_OPTS_INIT;
    o.count = N_IMG;
    o.height = o.width = FS;
    o.seed = 11;
    nn_tensor *images = NULL, *masks = NULL, *labels = NULL;
    if (nn_synthetic_defects(&o, &images, &masks, &labels) != NN_OK)
        return -1;
    for (int i = 0; i < N_IMG; i++) {
        const float *v = images->data + (size_t)i * FRAME_BYTES;
        for (int j = 0; j < FRAME_BYTES; j++)
            frames[i][j] = (uint8_t)lrintf(v[j] * 255.0f);
        kinds[i] = labels->data[i];
    }
    nn_tensor_free(images);
    nn_tensor_free(masks);
    nn_tensor_free(labels);
    return 0;
}

static int teardown(void **state)
{
    remove_tree(tmpdir);
    return 0;
}

/* ---------------- models ---------------- */

static nn_model *build(head h, int side)
{
    nn_model *m = nn_model_create(7);
    int shape[3] = {side, side, 3};
    nn_layer *x = nn_input(m, 3, shape, NULL);
    nn_conv2d_opts c1 = NN_CONV2D_OPTS_INIT;
    c1.padding = NN_PADDING_SAME;
    c1.activation = NN_ACT_RELU;
    x = nn_conv2d(m, x, 4, 3, 3, &c1);
    x = nn_maxpool2d(m, x, 2, 2, NULL);
    nn_conv2d_opts c2 = NN_CONV2D_OPTS_INIT;
    c2.padding = NN_PADDING_SAME;
    x = nn_conv2d(m, x, 8, 3, 3, &c2); /* fuses with the next two */
    x = nn_batchnorm(m, x, NULL);
    x = nn_relu(m, x, NULL);
    x = nn_global_avgpool2d(m, x, NULL);
    nn_dense_opts d = NN_DENSE_OPTS_INIT;
    d.activation = h == HEAD_SOFTMAX   ? NN_ACT_SOFTMAX
                   : h == HEAD_SIGMOID ? NN_ACT_SIGMOID
                                       : NN_ACT_NONE;
    x = nn_dense(m, x, h == HEAD_SIGMOID ? 1 : 5, &d);
    assert_non_null(x);
    return m;
}

/* The frames at the model's size, [N, MS, MS, 3] in [0, 1]. */
static nn_tensor *training_images(void)
{
    int64_t shape[4] = {N_IMG, FS, FS, 3};
    nn_tensor *t = nn_tensor_create(4, shape), *r = NULL;
    assert_non_null(t);
    for (int i = 0; i < N_IMG; i++)
        for (int j = 0; j < FRAME_BYTES; j++)
            t->data[i * FRAME_BYTES + j] = frames[i][j] / 255.0f;
    assert_int_equal(nn_image_resize(t, MS, MS, NN_INTERP_BILINEAR, &r),
                     NN_OK);
    nn_tensor_free(t);
    return r;
}

/* Labels of images [from, from + n) as the head's loss reads them. */
static nn_tensor *labels_for(head h, int from, int n)
{
    int64_t shape[2] = {n, 1};
    nn_tensor *y = nn_tensor_create(h == HEAD_SIGMOID ? 2 : 1, shape);
    assert_non_null(y);
    for (int i = 0; i < n; i++)
        y->data[i] = h == HEAD_SIGMOID ? (kinds[from + i] > 0 ? 1.0f : 0.0f)
                                       : kinds[from + i];
    return y;
}

/* A few training steps, so that the outputs differ from image to image. */
static nn_model *trained(head h)
{
    nn_model *m = build(h, MS);
    nn_adam_opts a = NN_ADAM_OPTS_INIT;
    a.learning_rate = 0.02f;
    nn_loss_opts lo = NN_LOSS_OPTS_INIT;
    lo.from_logits = h == HEAD_LOGITS;
    nn_loss loss = h == HEAD_SIGMOID ? NN_LOSS_BINARY_CROSSENTROPY
                                     : NN_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY;
    assert_int_equal(nn_model_compile(m, nn_adam(&a), loss, &lo), NN_OK);
    nn_tensor *x = training_images(), *y = labels_for(h, 0, N_IMG);
    for (int i = 0; i < 4; i++)
        assert_int_equal(nn_model_train_batch(m, x, y, NULL, NULL), NN_OK);
    nn_tensor_free(x);
    nn_tensor_free(y);
    return m;
}

static nn_preprocess_opts test_prep(head h, int resize, int reversed)
{
    nn_preprocess_opts p = NN_PREPROCESS_OPTS_INIT;
    const float mean[4] = {0.485f, 0.456f, 0.406f, 0}, sd[4] = {0.229f, 0.224f,
                                                               0.225f, 1};
    memcpy(p.mean, mean, sizeof mean);
    memcpy(p.std, sd, sizeof sd);
    p.resize = resize;
    p.channel_order = reversed ? NN_CHANNELS_REVERSED : NN_CHANNELS_AS_MODEL;
    p.positive_class = h == HEAD_SIGMOID ? 1 : NN_ALL_BUT(0);
    p.threshold = 0.3f;
    return p;
}

/* Stores test_prep's preprocessing in m and returns it. */
static nn_preprocess_opts prepared(nn_model *m, head h, int resize,
                                   int reversed)
{
    nn_preprocess_opts p = test_prep(h, resize, reversed);
    assert_int_equal(nn_model_set_preprocess(m, &p), NN_OK);
    return p;
}

/* Saved with its optimizer and loaded: compiled (evaluate_binary needs
 * it), and its own context planned for inference as a product's is. */
static nn_model *reloaded(nn_model *m)
{
    assert_int_equal(nn_model_save(m, tpath("m.nnm"), NN_SAVE_OPTIMIZER),
                     NN_OK);
    nn_model *b = nn_model_load(tpath("m.nnm"));
    assert_non_null(b);
    nn_model_free(m);
    return b;
}

/* ---------------- the preprocessing a model carries ---------------- */

static void test_preprocess_set_get(void **state)
{
    nn_model *m = build(HEAD_SOFTMAX, MS);
    nn_preprocess_opts got = NN_PREPROCESS_OPTS_INIT;
    /* None yet: an error, and the defaults in *out. */
    assert_error(nn_model_get_preprocess(m, &got), NN_ERR_STATE,
                 "carries no preprocessing");
    assert_true(got.scale == 1.0f / 255.0f && got.positive_class == 1);
    assert_error(nn_model_set_preprocess(m, NULL), NN_OK, NULL);
    got.scale = 0;
    assert_error(nn_model_get_preprocess(m, &got), NN_OK, NULL);
    assert_true(got.scale == 1.0f / 255.0f && got.threshold == 0.5f &&
                got.std[3] == 1.0f && got.resize == 0);

    nn_preprocess_opts p = test_prep(HEAD_SOFTMAX, 1, 1);
    assert_error(nn_model_set_preprocess(m, &p), NN_OK, NULL);
    memset(&got, 0, sizeof got);
    got.size = sizeof got;
    assert_error(nn_model_get_preprocess(m, &got), NN_OK, NULL);
    assert_memory_equal(&got, &p, sizeof p);
    /* A caller with a shorter struct gets the members that fit. */
    nn_preprocess_opts old;
    memset(&old, 0x7f, sizeof old);
    old.size = offsetof(nn_preprocess_opts, channel_order);
    assert_error(nn_model_get_preprocess(m, &old), NN_OK, NULL);
    assert_true(old.std[2] == p.std[2]);
    assert_int_equal(old.channel_order, 0x7f7f7f7f);
    got.size = 2;
    assert_error(nn_model_get_preprocess(m, &got), NN_ERR_INVALID,
                 "out->size is 2");
    got.size = sizeof got;

    /* Every field is checked; a refused call leaves the stored ones. */
    nn_preprocess_opts b;
#define REFUSED(stmt, sub)                                                     \
    do {                                                                       \
        b = p;                                                                 \
        stmt;                                                                  \
        assert_error(nn_model_set_preprocess(m, &b), NN_ERR_INVALID, sub);     \
    } while (0)
    REFUSED(b.scale = 0, "scale 0");
    REFUSED(b.scale = NAN, "scale nan");
    REFUSED(b.scale = -1.0f / 255, "must be finite and positive");
    REFUSED(b.mean[1] = INFINITY, "channel 1");
    REFUSED(b.std[2] = 0, "channel 2");
    REFUSED(b.std[3] = -1, "channel 3"); /* unused by RGB, still checked */
    REFUSED(b.channel_order = 2, "unknown channel_order 2");
    REFUSED(b.resize = 2, "resize is 2");
    REFUSED(b.threshold = 1.5f, "threshold 1.5");
    REFUSED(b.threshold = -0.01f, "[0, 1]");
    REFUSED(b.threshold = NAN, "threshold nan");
    REFUSED(b.positive_class = 5, "positive_class 5; the output has 5");
    REFUSED(b.positive_class = NN_ALL_BUT(5), "positive_class -6");
    REFUSED(b.reserved = 1, "reserved is 1");
#undef REFUSED
    assert_error(nn_model_get_preprocess(m, &got), NN_OK, NULL);
    assert_memory_equal(&got, &p, sizeof p);
    /* A newer caller's option this library lacks. */
    struct {
        nn_preprocess_opts o;
        int extra;
    } newer = {p, 1};
    newer.o.size = sizeof newer;
    assert_error(nn_model_set_preprocess(m, &newer.o), NN_ERR_INVALID,
                 "needs a newer libnn");
    assert_error(nn_model_set_preprocess(NULL, &p), NN_ERR_INVALID, NULL);
    assert_error(nn_model_get_preprocess(m, NULL), NN_ERR_INVALID, NULL);
    nn_model_free(m);

    /* Only image classifiers carry one. */
    nn_model *flat = nn_model_create(1);
    int four = 4;
    nn_dense(flat, nn_input(flat, 1, &four, NULL), 2, NULL);
    assert_error(nn_model_set_preprocess(flat, NULL), NN_ERR_SHAPE,
                 "the model's input is [4]");
    nn_model_free(flat);
    nn_model *seg = nn_model_create(1);
    int img[3] = {8, 8, 3};
    nn_conv2d(seg, nn_input(seg, 3, img, NULL), 2, 1, 1, NULL);
    assert_error(nn_model_set_preprocess(seg, NULL), NN_ERR_SHAPE,
                 "the model's output is [8, 8, 2]");
    nn_model_free(seg);
    int g[3] = {MS, MS, 1};
    nn_model *one = nn_model_create(2);
    nn_dense_opts d = NN_DENSE_OPTS_INIT;
    d.activation = NN_ACT_SIGMOID;
    nn_dense(one, nn_flatten(one, nn_input(one, 3, g, NULL), NULL), 1, &d);
    b = test_prep(HEAD_SIGMOID, 0, 1);
    assert_error(nn_model_set_preprocess(one, &b), NN_ERR_INVALID,
                 "the model's input has 1");
    b.channel_order = NN_CHANNELS_AS_MODEL;
    b.positive_class = NN_ALL_BUT(1); /* one channel: classes 0 and 1 */
    assert_error(nn_model_set_preprocess(one, &b), NN_OK, NULL);
    b.positive_class = 2;
    assert_error(nn_model_set_preprocess(one, &b), NN_ERR_INVALID,
                 "has 2 classes");
    nn_model_free(one);
}

/* ---------------- classifying ---------------- */

/* Frame i as a BGR camera gives it. */
static void bgr_frame(int i, uint8_t *out)
{
    for (int p = 0; p < FS * FS; p++)
        for (int c = 0; c < 3; c++) out[p * 3 + c] = frames[i][p * 3 + 2 - c];
}

/* The model input of frame i, computed here from the formula of
 * docs/inference.md: model channel c = (pixel * scale - mean[c]) /
 * std[c], then resized to the input. [1, MS, MS, 3]. */
static nn_tensor *reference_input(int i, const nn_preprocess_opts *p)
{
    int64_t shape[4] = {1, FS, FS, 3};
    nn_tensor *t = nn_tensor_create(4, shape), *r = NULL;
    assert_non_null(t);
    for (int j = 0; j < FRAME_BYTES; j++) {
        int c = j % 3;
        t->data[j] =
            ((float)frames[i][j] * p->scale - p->mean[c]) / p->std[c];
    }
    assert_int_equal(nn_image_resize(t, MS, MS, NN_INTERP_BILINEAR, &r),
                     NN_OK);
    nn_tensor_free(t);
    return r;
}

typedef struct result {
    float probs[5];
    int cls, defective;
    float score;
} result;

static result classify_frame(nn_context *c, const uint8_t *px, int side,
                             size_t stride)
{
    result r;
    memset(&r, 0, sizeof r);
    nn_verdict v = NN_VERDICT_INIT;
    v.probs = r.probs;
    v.num_probs = 5;
    assert_error(nn_context_classify_u8(c, px, side, side, 3, stride, &v),
                 NN_OK, NULL);
    r.cls = v.predicted_class;
    r.score = v.score;
    r.defective = v.defective;
    return r;
}

static bool same_result(const result *a, const result *b)
{
    return memcmp(a->probs, b->probs, sizeof a->probs) == 0 &&
           a->cls == b->cls && a->defective == b->defective &&
           memcmp(&a->score, &b->score, sizeof a->score) == 0;
}

static int by_value(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* The threshold that splits the frames' scores at their median: one of
 * the scores, so one frame sits exactly on it. */
static float median_score(nn_context *c)
{
    float s[N_IMG];
    uint8_t bgr[FRAME_BYTES];
    for (int i = 0; i < N_IMG; i++) {
        bgr_frame(i, bgr);
        s[i] = classify_frame(c, bgr, FS, 0).score;
    }
    qsort(s, N_IMG, sizeof *s, by_value);
    assert_true(s[0] < s[N_IMG - 1]); /* not one constant output */
    return s[N_IMG / 2];
}

/* The verdict on each frame is the decision nn_model_evaluate_binary
 * measures on the same image at the stored threshold: the same score, bit
 * for bit, and the same side of the threshold. BGR frames through
 * NN_CHANNELS_REVERSED, resized from FS to MS. */
static void check_against_evaluate(head h)
{
    nn_model *m = reloaded(trained(h));
    nn_preprocess_opts p = prepared(m, h, 1, 1);
    nn_context *c = nn_context_create(m);
    p.threshold = median_score(c);
    assert_int_equal(nn_model_set_preprocess(m, &p), NN_OK);
    nn_binary_opts bo = {sizeof bo, p.positive_class, p.threshold};
    int positives = 0, on_threshold = 0;
    for (int i = 0; i < N_IMG; i++) {
        uint8_t bgr[FRAME_BYTES];
        bgr_frame(i, bgr);
        result r = classify_frame(c, bgr, FS, 0);
        nn_tensor *x = reference_input(i, &p), *y = labels_for(h, i, 1);
        nn_binary_report rep = {.size = sizeof rep};
        nn_curve *curve = NULL;
        assert_int_equal(
            nn_model_evaluate_binary(m, x, y, 1, &bo, &rep, &curve), NN_OK);
        float thr[2];
        assert_int_equal(nn_curve_roc(curve, NULL, NULL, thr, 2), NN_OK);
        if (memcmp(&thr[1], &r.score, sizeof r.score) != 0)
            fail_msg("head %d image %d: score %.9g, evaluate_binary %.9g",
                     (int)h, i, (double)r.score, (double)thr[1]);
        assert_int_equal(r.defective, rep.tp + rep.fp);
        positives += r.defective;
        if (r.score == p.threshold) {
            on_threshold++;
            assert_int_equal(r.defective, 1); /* score >= threshold */
        }
        /* The probabilities: the positive classes' sum is the score. */
        double first = r.probs[0], rest = 0;
        for (int k = 1; k < 5; k++) rest += r.probs[k];
        if (h == HEAD_SIGMOID)
            assert_true(fabsf(r.probs[1] - r.score) <= 1e-6f &&
                        fabsf(r.probs[0] + r.probs[1] - 1) <= 1e-6f);
        else
            assert_true(fabs(rest - r.score) <= 1e-5 &&
                        fabs(first + rest - 1) <= 1e-5);
        nn_curve_free(curve);
        nn_tensor_free(x);
        nn_tensor_free(y);
    }
    /* The threshold splits the frames, and one sits on it. */
    assert_true(positives > 0 && positives < N_IMG);
    assert_true(on_threshold >= 1);
    nn_context_free(c);
    nn_model_free(m);
}

static void test_verdict_softmax(void **state)
{
    check_against_evaluate(HEAD_SOFTMAX);
}
static void test_verdict_sigmoid(void **state)
{
    check_against_evaluate(HEAD_SIGMOID);
}
static void test_verdict_logits(void **state)
{
    check_against_evaluate(HEAD_LOGITS);
}

/* The float path, the batch path, strides and channel orders all give
 * the verdicts of the single-frame path. */
static void test_classify_paths_agree(void **state)
{
    nn_model *m = reloaded(trained(HEAD_SOFTMAX));
    nn_preprocess_opts p = prepared(m, HEAD_SOFTMAX, 1, 0);
    nn_context *c = nn_context_create(m);
    result single[N_IMG];
    for (int i = 0; i < N_IMG; i++) single[i] = classify_frame(c, frames[i], FS, 0);

    /* Rows padded to a stride of 100 bytes. */
    uint8_t padded[FS * 100];
    for (int y = 0; y < FS; y++)
        memcpy(padded + y * 100, frames[3] + y * FS * 3, FS * 3);
    result r = classify_frame(c, padded, FS, 100);
    assert_true(same_result(&r, &single[3]));

    /* BGR frames, declared reversed. */
    p.channel_order = NN_CHANNELS_REVERSED;
    assert_int_equal(nn_model_set_preprocess(m, &p), NN_OK);
    uint8_t bgr[FRAME_BYTES];
    bgr_frame(5, bgr);
    r = classify_frame(c, bgr, FS, 0);
    assert_true(same_result(&r, &single[5]));
    p.channel_order = NN_CHANNELS_AS_MODEL;
    assert_int_equal(nn_model_set_preprocess(m, &p), NN_OK);

    /* One batch of four frames. */
    const uint8_t *four[4] = {frames[0], frames[1], frames[2], frames[3]};
    nn_verdict v[4];
    result b[4];
    for (int i = 0; i < 4; i++) {
        v[i] = (nn_verdict)NN_VERDICT_INIT;
        v[i].probs = b[i].probs;
        v[i].num_probs = 5;
    }
    assert_error(nn_context_classify_u8_batch(c, four, 4, FS, FS, 3, 0, v),
                 NN_OK, NULL);
    for (int i = 0; i < 4; i++) {
        b[i].cls = v[i].predicted_class;
        b[i].score = v[i].score;
        b[i].defective = v[i].defective;
        assert_int_equal(b[i].cls, single[i].cls);
        assert_int_equal(b[i].defective, single[i].defective);
        assert_true(fabsf(b[i].score - single[i].score) <= 1e-5f);
    }

    /* Floats already preprocessed: the same verdicts. */
    nn_tensor *x = reference_input(7, &p);
    nn_verdict fv = NN_VERDICT_INIT;
    float probs[5];
    fv.probs = probs;
    fv.num_probs = 5;
    assert_error(nn_context_classify(c, x, &fv), NN_OK, NULL);
    assert_int_equal(fv.predicted_class, single[7].cls);
    assert_true(fv.score == single[7].score);
    assert_memory_equal(probs, single[7].probs, sizeof probs);
    nn_tensor_free(x);

    /* Frames of the model's size are not resized. */
    nn_tensor *small = training_images();
    uint8_t px[MS * MS * 3];
    for (int j = 0; j < MS * MS * 3; j++)
        px[j] = (uint8_t)lrintf(small->data[j] * 255.0f);
    nn_tensor_free(small);
    p.resize = 0;
    assert_int_equal(nn_model_set_preprocess(m, &p), NN_OK);
    r = classify_frame(c, px, MS, 0);
    nn_tensor *xs = nn_tensor_create(4, (int64_t[]){1, MS, MS, 3});
    for (int j = 0; j < MS * MS * 3; j++)
        xs->data[j] = ((float)px[j] * p.scale - p.mean[j % 3]) / p.std[j % 3];
    assert_error(nn_context_classify(c, xs, &fv), NN_OK, NULL);
    assert_true(fv.score == r.score && fv.predicted_class == r.cls);
    assert_memory_equal(probs, r.probs, sizeof probs);
    nn_tensor_free(xs);
    assert_error(nn_context_classify_u8(c, frames[0], FS, FS, 3, 0, &fv),
                 NN_ERR_SHAPE, "does not resize");
    nn_context_free(c);
    nn_model_free(m);
}

/* A verdict struct of an older, shorter layout gets only its members; an
 * array of them is walked with the caller's size. */
static void test_verdict_versions(void **state)
{
    nn_model *m = build(HEAD_SOFTMAX, MS);
    prepared(m, HEAD_SOFTMAX, 1, 0);
    nn_context *c = nn_context_create(m);
    nn_verdict full[2] = {NN_VERDICT_INIT, NN_VERDICT_INIT};
    const uint8_t *two[2] = {frames[0], frames[1]};
    assert_int_equal(nn_context_classify_u8_batch(c, two, 2, FS, FS, 3, 0,
                                                  full),
                     NN_OK);
    size_t old = offsetof(nn_verdict, score); /* up to predicted_class */
    unsigned char buf[2 * sizeof(nn_verdict)];
    memset(buf, 0xab, sizeof buf);
    for (int i = 0; i < 2; i++) {
        nn_verdict *v = (nn_verdict *)(void *)(buf + i * old);
        v->size = old;
        v->probs = NULL;
    }
    assert_int_equal(nn_context_classify_u8_batch(c, two, 2, FS, FS, 3, 0,
                                                  (nn_verdict *)(void *)buf),
                     NN_OK);
    for (int i = 0; i < 2; i++) {
        nn_verdict *v = (nn_verdict *)(void *)(buf + i * old);
        assert_int_equal(v->size, old);
        assert_int_equal(v->predicted_class, full[i].predicted_class);
    }
    for (size_t j = 2 * old; j < sizeof buf; j++) assert_int_equal(buf[j], 0xab);
    nn_context_free(c);
    nn_model_free(m);
}

static void test_classify_errors(void **state)
{
    nn_model *m = build(HEAD_SOFTMAX, MS);
    nn_context *c = nn_context_create(m);
    nn_verdict v = NN_VERDICT_INIT;
    float probs[5];
    /* A model without preprocessing cannot classify. */
    assert_error(nn_context_classify_u8(c, frames[0], FS, FS, 3, 0, &v),
                 NN_ERR_STATE, "carries no preprocessing");
    int64_t shape[4] = {1, MS, MS, 3};
    nn_tensor *x = nn_tensor_create(4, shape);
    assert_error(nn_context_classify(c, x, &v), NN_ERR_STATE,
                 "nn_model_set_preprocess");
    prepared(m, HEAD_SOFTMAX, 1, 0);
    assert_error(nn_context_classify_u8(NULL, frames[0], FS, FS, 3, 0, &v),
                 NN_ERR_INVALID, "context is NULL");
    assert_error(nn_context_classify_u8(c, NULL, FS, FS, 3, 0, &v),
                 NN_ERR_INVALID, "pixels is NULL");
    assert_error(nn_context_classify_u8(c, frames[0], FS, FS, 1, 0, &v),
                 NN_ERR_SHAPE, "1 channels, the model's input 3");
    assert_error(nn_context_classify_u8(c, frames[0], 0, FS, 3, 0, &v),
                 NN_ERR_INVALID, "0 x 32");
    assert_error(nn_context_classify_u8(c, frames[0], 70000, FS, 3, 0, &v),
                 NN_ERR_INVALID, "1..65535");
    assert_error(nn_context_classify_u8(c, frames[0], FS, FS, 3, 95, &v),
                 NN_ERR_INVALID, "stride 95 is shorter than a row (96");
    assert_error(nn_context_classify_u8(c, frames[0], 20000, 20000, 3, 0, &v),
                 NN_ERR_UNSUPPORTED, "more than");
    assert_error(nn_context_classify_u8(c, frames[0], FS, FS, 3, 0, NULL),
                 NN_ERR_INVALID, "out is NULL");
    v.size = 3;
    assert_error(nn_context_classify_u8(c, frames[0], FS, FS, 3, 0, &v),
                 NN_ERR_INVALID, "out->size is 3");
    v = (nn_verdict)NN_VERDICT_INIT;
    v.probs = probs;
    v.num_probs = 4;
    assert_error(nn_context_classify_u8(c, frames[0], FS, FS, 3, 0, &v),
                 NN_ERR_INVALID, "num_probs is 4; the model has 5 classes");
    /* A NULL frame in a batch: its index, and nothing classified. */
    nn_verdict vs[3] = {NN_VERDICT_INIT, NN_VERDICT_INIT, NN_VERDICT_INIT};
    vs[0].predicted_class = vs[2].predicted_class = -7;
    const uint8_t *three[3] = {frames[0], NULL, frames[2]};
    assert_error(nn_context_classify_u8_batch(c, three, 3, FS, FS, 3, 0, vs),
                 NN_ERR_INVALID, "frames[1] is NULL");
    assert_int_equal(vs[0].predicted_class, -7);
    assert_int_equal(vs[2].predicted_class, -7);
    vs[1].size = 0;
    three[1] = frames[1];
    assert_error(nn_context_classify_u8_batch(c, three, 3, FS, FS, 3, 0, vs),
                 NN_ERR_INVALID, "out[1].size is 0");
    assert_error(nn_context_classify_u8_batch(c, three, 0, FS, FS, 3, 0, vs),
                 NN_ERR_INVALID, "n is 0");
    assert_error(nn_context_classify_u8_batch(c, NULL, 3, FS, FS, 3, 0, vs),
                 NN_ERR_INVALID, "frames is NULL");
    /* Floats of the wrong shape. */
    nn_tensor *wrong = nn_tensor_create(4, (int64_t[]){1, FS, FS, 3});
    assert_error(nn_context_classify(c, wrong, &v), NN_ERR_SHAPE,
                 "nn_context_classify: x");
    assert_error(nn_context_classify(c, NULL, &v), NN_ERR_INVALID,
                 "x is NULL");
    nn_tensor_free(wrong);
    /* After all that the context classifies as before. */
    v = (nn_verdict)NN_VERDICT_INIT;
    assert_error(nn_context_classify_u8(c, frames[0], FS, FS, 3, 0, &v),
                 NN_OK, NULL);
    assert_error(nn_context_classify(c, x, &v), NN_OK, NULL);
    /* A graph changed under the stored decision is caught. */
    nn_layer *pool = nn_model_find_layer(m, "global_average_pooling2d");
    assert_non_null(pool);
    nn_context_free(c);
    nn_dense(m, pool, 3, NULL); /* a new output of 3 classes */
    c = nn_context_create(m);
    m->preprocess.positive_class = 4; /* set for the old output */
    assert_error(nn_context_classify(c, x, &v), NN_ERR_INVALID,
                 "positive_class 4; the output has 3");
    assert_error(nn_model_save(m, tpath("changed.nnm"), 0), NN_ERR_STATE,
                 "set the preprocessing again");
    nn_tensor_free(x);
    nn_context_free(c);
    nn_model_free(m);
}

/* ---------------- no allocation in the steady state ---------------- */

static int64_t allocs_since(void) { return nn__debug_fail_alloc_after(0); }

static void test_steady_state_allocations(void **state)
{
    nn_model *m = reloaded(trained(HEAD_SOFTMAX));
    nn_preprocess_opts p = prepared(m, HEAD_SOFTMAX, 1, 1);
    nn_context *c = nn_context_create(m);
    int64_t shape4[4] = {4, MS, MS, 3}, out4[2] = {4, 5};
    nn_tensor *x4 = nn_tensor_create(4, shape4), *y4 = nn_tensor_create(2, out4);
    nn_tensor *x1 = reference_input(0, &p);
    nn_tensor *small = training_images();
    uint8_t px[MS * MS * 3];
    for (int j = 0; j < MS * MS * 3; j++)
        px[j] = (uint8_t)lrintf(small->data[j] * 255.0f);
    for (int64_t j = 0; j < x4->size; j++) x4->data[j] = small->data[j];
    nn_tensor_free(small);
    const uint8_t *four[4] = {frames[0], frames[1], frames[2], frames[3]};
    float probs[4][5];
    nn_verdict v[4];
    for (int i = 0; i < 4; i++) {
        v[i] = (nn_verdict)NN_VERDICT_INIT;
        v[i].probs = probs[i];
        v[i].num_probs = 5;
    }
    /* Each call once to warm up: the first at a batch size plans. */
    allocs_since();
    assert_int_equal(nn_context_predict(c, x4, y4, 4), NN_OK);
    assert_true(allocs_since() > 0);
    assert_int_equal(nn_context_predict(c, x4, y4, 4), NN_OK);
    assert_int_equal(allocs_since(), 0);
    assert_int_equal(nn_context_classify(c, x1, v), NN_OK);
    assert_int_equal(allocs_since(), 0); /* batch 1 fits the plan of 4 */
    assert_int_equal(nn_context_classify_u8(c, px, MS, MS, 3, 0, v), NN_OK);
    assert_true(allocs_since() > 0); /* the input it builds */
    assert_int_equal(nn_context_classify_u8(c, px, MS, MS, 3, 0, v), NN_OK);
    assert_int_equal(allocs_since(), 0);
    assert_int_equal(nn_context_classify_u8(c, frames[0], FS, FS, 3, 0, v),
                     NN_OK);
    assert_true(allocs_since() > 0); /* the frame it resizes from */
    assert_int_equal(nn_context_classify_u8_batch(c, four, 4, FS, FS, 3, 0, v),
                     NN_OK);
    assert_true(allocs_since() > 0); /* four rows of input */
    /* The steady state: every call, every size seen, in any order. */
    for (int round = 0; round < 3; round++) {
        assert_int_equal(nn_context_predict(c, x4, y4, 4), NN_OK);
        assert_int_equal(nn_context_predict(c, x4, y4, 2), NN_OK);
        assert_int_equal(nn_context_classify(c, x1, v), NN_OK);
        assert_int_equal(nn_context_classify(c, x4, v), NN_OK);
        assert_int_equal(nn_context_classify_u8(c, px, MS, MS, 3, 0, v),
                         NN_OK);
        assert_int_equal(
            nn_context_classify_u8(c, frames[round], FS, FS, 3, 0, v), NN_OK);
        assert_int_equal(
            nn_context_classify_u8_batch(c, four, 4, FS, FS, 3, 0, v), NN_OK);
        assert_int_equal(
            nn_context_classify_u8_batch(c, four, 2, FS, FS, 3, 0, v), NN_OK);
        /* an error on the way costs nothing either */
        assert_int_equal(nn_context_classify_u8(c, NULL, FS, FS, 3, 0, v),
                         NN_ERR_INVALID);
        assert_int_equal(allocs_since(), 0);
    }
    /* The model's own predict, once warm, too. */
    assert_int_equal(nn_model_predict(m, x4, y4, 4), NN_OK);
    allocs_since();
    assert_int_equal(nn_model_predict(m, x4, y4, 4), NN_OK);
    assert_int_equal(allocs_since(), 0);
    nn_tensor_free(x4);
    nn_tensor_free(y4);
    nn_tensor_free(x1);
    nn_context_free(c);
    nn_model_free(m);
}

/* A failed allocation while a context grows is reported and leaves a
 * context that works once memory is back. */
static void test_classify_alloc_failures(void **state)
{
    nn_model *m = build(HEAD_SOFTMAX, MS);
    prepared(m, HEAD_SOFTMAX, 1, 0);
    nn_context *ref = nn_context_create(m);
    result want = classify_frame(ref, frames[2], FS, 0);
    nn_context_free(ref);
    int failures = 0;
    for (int k = 1; k < 200; k++) {
        nn_context *c = nn_context_create(m);
        assert_non_null(c);
        nn__debug_fail_alloc_after(k);
        nn_verdict v = NN_VERDICT_INIT;
        nn_status s = nn_context_classify_u8(c, frames[2], FS, FS, 3, 0, &v);
        nn__debug_fail_alloc_after(0);
        if (s == NN_OK) {
            nn_context_free(c);
            break;
        }
        assert_int_equal(s, NN_ERR_NOMEM);
        failures++;
        result r = classify_frame(c, frames[2], FS, 0);
        assert_true(same_result(&r, &want));
        nn_context_free(c);
    }
    assert_true(failures > 3);
    nn_model_free(m);
}

/* ---------------- files ---------------- */

static uint8_t *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    rewind(f);
    uint8_t *p = malloc((size_t)len);
    assert_non_null(p);
    assert_int_equal(fread(p, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    *n = (size_t)len;
    return p;
}

/* The preprocessing and threshold travel with the model; a file without
 * them is the file libnn wrote before the section existed. */
static void test_prep_roundtrip(void **state)
{
    nn_model *m = trained(HEAD_LOGITS);
    assert_int_equal(nn_model_save(m, tpath("plain.nnm"), 0), NN_OK);
    nn_preprocess_opts p = test_prep(HEAD_LOGITS, 1, 1);
    p.positive_class = 3;
    p.threshold = 0.125f;
    p.scale = 1.0f / 256;
    assert_int_equal(nn_model_set_preprocess(m, &p), NN_OK);
    assert_int_equal(nn_model_save(m, tpath("prep.nnm"), 0), NN_OK);
    size_t n0, n1;
    uint8_t *plain = slurp(tpath("plain.nnm"), &n0);
    uint8_t *prep = slurp(tpath("prep.nnm"), &n1);
    /* Flag bit 4 and a PREP section of 52 bytes at the end; everything
     * else byte for byte the same. */
    assert_int_equal(plain[12] & 16, 0);
    assert_int_equal(prep[12], plain[12] | 16);
    assert_int_equal(n1, n0 + 12 + 52);
    assert_memory_equal(prep + 24, plain + 24, n0 - 28);
    assert_memory_equal(prep + n0 - 4, "PREP", 4);
    assert_null(memmem(plain, n0, "PREP", 4));

    nn_model *b = nn_model_load(tpath("prep.nnm"));
    assert_non_null(b);
    nn_preprocess_opts got = NN_PREPROCESS_OPTS_INIT;
    assert_int_equal(nn_model_get_preprocess(b, &got), NN_OK);
    assert_memory_equal(&got, &p, sizeof p);
    /* Both classify alike. */
    nn_context *ca = nn_context_create(m), *cb = nn_context_create(b);
    uint8_t bgr[FRAME_BYTES];
    for (int i = 0; i < 6; i++) {
        bgr_frame(i, bgr);
        result ra = classify_frame(ca, bgr, FS, 0);
        result rb = classify_frame(cb, bgr, FS, 0);
        assert_true(same_result(&ra, &rb));
    }
    nn_context_free(ca);
    nn_context_free(cb);
    /* Saved again, the same bytes. */
    assert_int_equal(nn_model_save(b, tpath("again.nnm"), 0), NN_OK);
    size_t n2;
    uint8_t *again = slurp(tpath("again.nnm"), &n2);
    assert_int_equal(n2, n1);
    assert_memory_equal(again, prep, n1);
    free(again);
    nn_model_free(b);

    /* The file without the section loads and predicts as before, and
     * says why it cannot classify. */
    nn_model *old = nn_model_load(tpath("plain.nnm"));
    assert_non_null(old);
    assert_error(nn_model_get_preprocess(old, &got), NN_ERR_STATE, NULL);
    int64_t shape[4] = {2, MS, MS, 3}, oshape[2] = {2, 5};
    nn_tensor *x = nn_tensor_create(4, shape);
    nn_tensor *ya = nn_tensor_create(2, oshape), *yb = nn_tensor_create(2, oshape);
    for (int64_t j = 0; j < x->size; j++) x->data[j] = (float)(j % 17) / 17;
    nn_context *co = nn_context_create(old), *cm = nn_context_create(m);
    assert_int_equal(nn_context_predict(co, x, ya, 2), NN_OK);
    assert_int_equal(nn_context_predict(cm, x, yb, 2), NN_OK);
    assert_memory_equal(ya->data, yb->data, 10 * sizeof(float));
    nn_verdict v = NN_VERDICT_INIT;
    assert_error(nn_context_classify_u8(co, frames[0], FS, FS, 3, 0, &v),
                 NN_ERR_STATE, "carries no preprocessing");
    nn_context_free(co);
    nn_context_free(cm);
    nn_tensor_free(x);
    nn_tensor_free(ya);
    nn_tensor_free(yb);
    nn_model_free(old);

    /* A reader that does not know bit 4 refuses the file rather than drop
     * the preprocessing: this reader, shown a bit it does not know. */
    prep[12] |= 32;
    uint32_t crc = (uint32_t)nn__crc32(0, prep, n1 - 4);
    nn__put_le32(prep + n1 - 4, crc);
    write_file(tpath("future.nnm"), prep, n1);
    nn_model *f = NULL;
    assert_error(nn__model_load(tpath("future.nnm"), &f), NN_ERR_FORMAT,
                 "unknown flags 0x30");
    free(plain);
    free(prep);
    nn_model_free(m);
}

/* ---------------- threads ---------------- */

typedef struct worker {
    const nn_model *m;
    result r[2][N_IMG]; /* resized frames, then frames of the model size */
    nn_status status;
} worker;

static uint8_t small_frames[N_IMG][MS * MS * 3];

static void *work(void *arg)
{
    worker *w = arg;
    nn_context *c = nn_context_create(w->m);
    w->status = c ? NN_OK : NN_ERR_NOMEM;
    for (int round = 0; round < 3 && w->status == NN_OK; round++)
        for (int i = 0; i < N_IMG && w->status == NN_OK; i++)
            for (int k = 0; k < 2 && w->status == NN_OK; k++) {
                result *r = &w->r[k][i];
                nn_verdict v = NN_VERDICT_INIT;
                v.probs = r->probs;
                v.num_probs = 5;
                const uint8_t *px = k ? small_frames[i] : frames[i];
                int side = k ? MS : FS;
                w->status =
                    nn_context_classify_u8(c, px, side, side, 3, 0, &v);
                r->cls = v.predicted_class;
                r->score = v.score;
                r->defective = v.defective;
            }
    nn_context_free(c);
    return NULL;
}

static void test_threads_agree(void **state)
{
    nn_model *m = reloaded(trained(HEAD_SOFTMAX));
    prepared(m, HEAD_SOFTMAX, 1, 0);
    nn_tensor *small = training_images();
    for (int i = 0; i < N_IMG; i++)
        for (int j = 0; j < MS * MS * 3; j++)
            small_frames[i][j] =
                (uint8_t)lrintf(small->data[i * MS * MS * 3 + j] * 255.0f);
    nn_tensor_free(small);
    static worker one, many[8];
    one.m = m;
    work(&one);
    assert_int_equal(one.status, NN_OK);
    pthread_t t[8];
    for (int i = 0; i < 8; i++) {
        many[i].m = m;
        assert_int_equal(pthread_create(&t[i], NULL, work, &many[i]), 0);
    }
    for (int i = 0; i < 8; i++) assert_int_equal(pthread_join(t[i], NULL), 0);
    for (int i = 0; i < 8; i++) {
        assert_int_equal(many[i].status, NN_OK);
        for (int k = 0; k < 2; k++)
            for (int j = 0; j < N_IMG; j++)
                if (!same_result(&many[i].r[k][j], &one.r[k][j]))
                    fail_msg("thread %d, image %d (%s): score %.9g, one "
                             "thread %.9g",
                             i, j, k ? "model size" : "resized",
                             (double)many[i].r[k][j].score,
                             (double)one.r[k][j].score);
    }
    nn_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_preprocess_set_get),
        cmocka_unit_test(test_verdict_softmax),
        cmocka_unit_test(test_verdict_sigmoid),
        cmocka_unit_test(test_verdict_logits),
        cmocka_unit_test(test_classify_paths_agree),
        cmocka_unit_test(test_verdict_versions),
        cmocka_unit_test(test_classify_errors),
        cmocka_unit_test(test_steady_state_allocations),
        cmocka_unit_test(test_classify_alloc_failures),
        cmocka_unit_test(test_prep_roundtrip),
        cmocka_unit_test(test_threads_agree),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

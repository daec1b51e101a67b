/* Inference for a product (docs/inference.md): the preprocessing and
 * decision a model carries, and the calls that turn camera frames into
 * verdicts through a context.
 *
 * A product loads its model once and classifies millions of frames, so
 * the calls here allocate only while a context grows: the model input they
 * build and the frame they resize from live in the context
 * (nn_context.frames, .frame), next to the buffers its plan made. The
 * normalisation is nn_image_from_u8's, the resampling nn_resizing's, the
 * score nn_model_evaluate_binary's (nn__row_score), so a verdict here is
 * the decision the metrics measured. */
#include "io/io.h"
#include "io/image.h"
#include "kernels/kernels.h"
#include "loss/loss.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define SIDE_MAX 65535 /* a frame's height or width, as nn_image_resize */
#define BATCH_MAX (1 << 24)

/* ---------------- what a model carries ---------------- */

static void shape_text(const nn_shape *s, char *buf, size_t cap)
{
    size_t n = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < s->rank && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%d", i ? ", " : "",
                              s->d[i]);
    if (n < cap) snprintf(buf + n, cap - n, "]");
}

/* The model must take images and give one vector of class scores. */
static nn_status check_classifier(const nn_model *m, const char *what)
{
    char text[96];
    NN_CHECK(m->input && m->output, NN_ERR_STATE,
             "%s: the model has no layers yet", what);
    const nn_shape *in = &m->input->out, *out = &m->output->out;
    shape_text(in, text, sizeof text);
    NN_CHECK(in->rank == 3 && in->d[2] <= 4, NN_ERR_SHAPE,
             "%s: the model's input is %s; frames need an image input "
             "[height, width, channels] with 1 to 4 channels",
             what, text);
    shape_text(out, text, sizeof text);
    NN_CHECK(out->rank == 1, NN_ERR_SHAPE,
             "%s: the model's output is %s; a verdict needs one vector of "
             "class scores per image, [classes]",
             what, text);
    return NN_OK;
}

static nn_status check_normalisation(const nn_preprocess_opts *o,
                                     const char *what)
{
    NN_CHECK(isfinite(o->scale) && o->scale > 0.0f, NN_ERR_INVALID,
             "%s: scale %g must be finite and positive", what,
             (double)o->scale);
    for (int c = 0; c < 4; c++)
        NN_CHECK(isfinite(o->mean[c]) && isfinite(o->std[c]) &&
                     o->std[c] > 0.0f,
                 NN_ERR_INVALID,
                 "%s: channel %d: mean %g must be finite and std %g finite "
                 "and positive (all four entries, used or not)",
                 what, c, (double)o->mean[c], (double)o->std[c]);
    return NN_OK;
}

nn_status nn__preprocess_check(const nn_model *m, const nn_preprocess_opts *o,
                               const char *what)
{
    NN_TRY(check_classifier(m, what));
    NN_TRY(check_normalisation(o, what));
    int channels = m->input->out.d[2];
    NN_CHECK(o->channel_order == NN_CHANNELS_AS_MODEL ||
                 o->channel_order == NN_CHANNELS_REVERSED,
             NN_ERR_INVALID,
             "%s: unknown channel_order %d (NN_CHANNELS_AS_MODEL 0, "
             "NN_CHANNELS_REVERSED 1)",
             what, o->channel_order);
    NN_CHECK(o->channel_order == NN_CHANNELS_AS_MODEL || channels >= 3,
             NN_ERR_INVALID,
             "%s: NN_CHANNELS_REVERSED swaps the first three channels; the "
             "model's input has %d",
             what, channels);
    NN_CHECK(o->resize == 0 || o->resize == 1, NN_ERR_INVALID,
             "%s: resize is %d, not 0 or 1", what, o->resize);
    NN_CHECK(o->threshold >= 0.0f && o->threshold <= 1.0f, NN_ERR_INVALID,
             "%s: threshold %g must lie in [0, 1] (a probability)", what,
             (double)o->threshold);
    NN_CHECK(o->reserved == 0, NN_ERR_INVALID, "%s: reserved is %d, not 0",
             what, o->reserved);
    nn_binary_opts b = {sizeof b, o->positive_class, o->threshold};
    return nn__binary_check(&b, m->output->out.d[0], what);
}

nn_status nn_model_set_preprocess(nn_model *m, const nn_preprocess_opts *opts)
{
    const char *what = "nn_model_set_preprocess";
    NN_CHECK(m, NN_ERR_INVALID, "%s: model is NULL", what);
    nn_preprocess_opts o = NN_PREPROCESS_OPTS_INIT;
    NN_TRY(nn__read_opts(&o, opts, what));
    NN_TRY(nn__preprocess_check(m, &o, what));
    m->preprocess = o;
    m->has_preprocess = true;
    return NN_OK;
}

nn_status nn_model_get_preprocess(const nn_model *m, nn_preprocess_opts *out)
{
    const char *what = "nn_model_get_preprocess";
    NN_CHECK(m && out, NN_ERR_INVALID, "%s: %s is NULL", what,
             m ? "out" : "model");
    NN_CHECK(out->size >= sizeof(size_t), NN_ERR_INVALID,
             "%s: out->size is %zu; set it to sizeof(nn_preprocess_opts)",
             what, out->size);
    nn_preprocess_opts o = NN_PREPROCESS_OPTS_INIT;
    if (m->has_preprocess) o = m->preprocess;
    size_t n = out->size < sizeof o ? out->size : sizeof o;
    memcpy((char *)out + sizeof(size_t), (const char *)&o + sizeof(size_t),
           n - sizeof(size_t));
    NN_CHECK(m->has_preprocess, NN_ERR_STATE,
             "%s: the model carries no preprocessing and decision (set them "
             "with nn_model_set_preprocess before saving it); out holds the "
             "defaults",
             what);
    return NN_OK;
}

/* ---------------- verdicts ---------------- */

/* The classifier behind a context, checked for one call. */
typedef struct classifier {
    const nn_model *m;
    const nn_preprocess_opts *p;
    int h, w, c;     /* the model's input */
    int64_t outputs; /* the output's length */
    int classes;     /* its classes: outputs, or 2 for one channel */
    bool logits;     /* the output holds logits (compiled from_logits) */
} classifier;

static nn_status get_classifier(const nn_context *ctx, const char *what,
                                classifier *k)
{
    NN_CHECK(ctx, NN_ERR_INVALID, "%s: context is NULL", what);
    const nn_model *m = ctx->model;
    NN_CHECK(m->has_preprocess, NN_ERR_STATE,
             "%s: the model carries no preprocessing and decision; set them "
             "with nn_model_set_preprocess and save the model with them",
             what);
    /* The graph may have changed since they were set. */
    NN_TRY(nn__preprocess_check(m, &m->preprocess, what));
    const nn_shape *in = &m->input->out;
    int64_t outputs = m->output->out.d[0];
    *k = (classifier){.m = m,
                      .p = &m->preprocess,
                      .h = in->d[0],
                      .w = in->d[1],
                      .c = in->d[2],
                      .outputs = outputs,
                      .classes = outputs == 1 ? 2 : (int)outputs,
                      .logits = m->loss_opts.from_logits != 0};
    return NN_OK;
}

#define VERDICT_END(member)                                                    \
    (offsetof(nn_verdict, member) + sizeof(((nn_verdict *)0)->member))

/* Verdict i of an array whose entries have the caller's size. */
static nn_verdict *verdict_at(nn_verdict *out, size_t stride, int64_t i)
{
    return (nn_verdict *)((char *)out + (size_t)i * stride);
}

/* Every verdict is checked before anything runs: a bad one costs no pass
 * and leaves the others untouched. */
static nn_status check_verdicts(nn_verdict *out, int64_t n,
                                const classifier *k, const char *what)
{
    NN_CHECK(out, NN_ERR_INVALID, "%s: out is NULL", what);
    size_t stride = out->size;
    NN_CHECK(stride >= sizeof(size_t) && stride <= NN_OPTS_MAX_SIZE,
             NN_ERR_INVALID,
             "%s: out->size is %zu; set it to sizeof(nn_verdict) "
             "(NN_VERDICT_INIT)",
             what, stride);
    for (int64_t i = 0; i < n; i++) {
        const nn_verdict *v = verdict_at(out, stride, i);
        NN_CHECK(v->size == stride, NN_ERR_INVALID,
                 "%s: out[%lld].size is %zu, out[0].size %zu; set every "
                 "verdict's size to sizeof(nn_verdict)",
                 what, (long long)i, v->size, stride);
        if (stride < VERDICT_END(num_probs) || !v->probs) continue;
        NN_CHECK(v->num_probs >= k->classes, NN_ERR_INVALID,
                 "%s: out[%lld].num_probs is %d; the model has %d classes",
                 what, (long long)i, v->num_probs, k->classes);
    }
    return NN_OK;
}

static void fill_probs(const float *o, const classifier *k, float *p)
{
    if (k->outputs == 1) {
        p[0] = nn__row_score(o, 1, k->logits, 0);
        p[1] = nn__row_score(o, 1, k->logits, 1);
    } else if (k->logits) {
        nn__softmax(o, p, 1, k->outputs);
    } else {
        memcpy(p, o, (size_t)k->outputs * sizeof *p);
    }
}

/* The verdict on one output row, into the members that fit in v->size. */
static void put_verdict(const float *o, const classifier *k, nn_verdict *v)
{
    nn_verdict r = {0};
    if (v->size >= VERDICT_END(num_probs) && v->probs) {
        r.probs = v->probs;
        r.num_probs = v->num_probs;
        fill_probs(o, k, r.probs);
    }
    r.predicted_class = (int)nn__row_class(o, k->outputs, k->logits);
    r.score = nn__row_score(o, k->outputs, k->logits, k->p->positive_class);
    r.defective = r.score >= k->p->threshold;
    size_t n = v->size < sizeof r ? v->size : sizeof r;
    memcpy((char *)v + sizeof(size_t), (const char *)&r + sizeof(size_t),
           n - sizeof(size_t));
}

/* Runs the model on `n` rows of x with the context and writes the
 * verdicts. */
static nn_status classify_rows(nn_context *ctx, const classifier *k,
                               const float *x, int n, nn_verdict *out)
{
    NN_TRY(nn__forward(ctx, x, n, false, 0));
    const float *y = ctx->act[k->m->output->index];
    for (int i = 0; i < n; i++)
        put_verdict(y + (int64_t)i * k->outputs, k,
                    verdict_at(out, out->size, i));
    return NN_OK;
}

nn_status nn_context_classify(nn_context *ctx, const nn_tensor *x,
                              nn_verdict *out)
{
    const char *what = "nn_context_classify";
    classifier k;
    NN_TRY(get_classifier(ctx, what, &k));
    NN_CHECK(x, NN_ERR_INVALID, "%s: x is NULL", what);
    NN_TRY(nn__check_data(k.m->input, x, "nn_context_classify: x"));
    NN_CHECK(x->shape[0] >= 1 && x->shape[0] <= BATCH_MAX, NN_ERR_SHAPE,
             "%s: x has %lld rows; give 1 to %d", what,
             (long long)x->shape[0], BATCH_MAX);
    int n = (int)x->shape[0];
    NN_TRY(check_verdicts(out, n, &k, what));
    NN_TRY(nn__context_plan(ctx, n, false, false));
    return classify_rows(ctx, &k, x->data, n, out);
}

/* ---------------- 8-bit frames ---------------- */

typedef struct frame_geom {
    int h, w, c;
    size_t stride; /* bytes per row, 0 resolved */
} frame_geom;

static nn_status check_frame(const classifier *k, const frame_geom *g,
                             const char *what)
{
    NN_CHECK(g->h >= 1 && g->h <= SIDE_MAX && g->w >= 1 && g->w <= SIDE_MAX,
             NN_ERR_INVALID,
             "%s: a frame of %d x %d pixels; height and width lie in 1..%d",
             what, g->h, g->w, SIDE_MAX);
    NN_CHECK(g->c == k->c, NN_ERR_SHAPE,
             "%s: the frame has %d channels, the model's input %d", what,
             g->c, k->c);
    size_t row = (size_t)g->w * (size_t)g->c;
    NN_CHECK(g->stride == 0 || g->stride >= row, NN_ERR_INVALID,
             "%s: stride %zu is shorter than a row (%zu bytes)", what,
             g->stride, row);
    bool same = g->h == k->h && g->w == k->w;
    NN_CHECK(same || k->p->resize, NN_ERR_SHAPE,
             "%s: the frame is %d x %d (height x width), the model takes "
             "%d x %d, and its preprocessing does not resize (set "
             "nn_preprocess_opts.resize to 1 to resize frames)",
             what, g->h, g->w, k->h, k->w);
    NN_CHECK((int64_t)g->h * g->w * g->c <= NN_IMAGE_MAX_VALUES,
             NN_ERR_UNSUPPORTED,
             "%s: a %d x %d x %d frame has more than %lld values", what,
             g->h, g->w, g->c, (long long)NN_IMAGE_MAX_VALUES);
    return NN_OK;
}

/* A context buffer of at least `need` floats; grows only. */
static nn_status reserve(float **buf, size_t *have, size_t need)
{
    if (need <= *have) return NN_OK;
    float *p = nn__alloc(need * sizeof *p);
    if (!p) return NN_ERR_NOMEM;
    nn__free(*buf);
    *buf = p;
    *have = need;
    return NN_OK;
}

/* nn_image_from_u8's options for these frames. With reversed channels,
 * frame channel j holds model channel 2 - j (j < 3): it is normalised with
 * that channel's mean and std, then moved (swap_first_three). */
static nn_pixels_opts pixel_opts(const nn_preprocess_opts *p, size_t stride)
{
    nn_pixels_opts o = NN_PIXELS_OPTS_INIT;
    o.stride = stride;
    o.scale = p->scale;
    for (int j = 0; j < 4; j++) {
        int src = p->channel_order == NN_CHANNELS_REVERSED && j < 3 ? 2 - j
                                                                     : j;
        o.mean[j] = p->mean[src];
        o.std[j] = p->std[src];
    }
    return o;
}

static void swap_first_three(float *x, int64_t pixels, int c)
{
    for (int64_t i = 0; i < pixels; i++, x += c) {
        float t = x[0];
        x[0] = x[2];
        x[2] = t;
    }
}

/* One frame into one row of the model input (ctx->frames + row). */
static nn_status frame_into(nn_context *ctx, const classifier *k,
                            const uint8_t *px, const frame_geom *g,
                            float *row)
{
    bool resized = g->h != k->h || g->w != k->w;
    float *dst = resized ? ctx->frame : row;
    nn_pixels_opts po = pixel_opts(k->p, g->stride);
    int64_t shape[3] = {g->h, g->w, g->c};
    nn_tensor view;
    nn__tensor_view(&view, 3, shape, dst);
    NN_TRY(nn_image_from_u8(px, g->h, g->w, g->c, &po, &view, 0));
    if (k->p->channel_order == NN_CHANNELS_REVERSED)
        swap_first_three(dst, (int64_t)g->h * g->w, g->c);
    if (resized)
        nn__image_resample(dst, g->h, g->w, g->c, row, k->h, k->w,
                           NN_INTERP_BILINEAR);
    return NN_OK;
}

static nn_status classify_frames(nn_context *ctx, const uint8_t *const *frames,
                                 int n, const frame_geom *g, nn_verdict *out,
                                 const char *what)
{
    classifier k;
    NN_TRY(get_classifier(ctx, what, &k));
    NN_TRY(check_frame(&k, g, what));
    NN_TRY(check_verdicts(out, n, &k, what));
    size_t per = (size_t)k.h * k.w * k.c;
    NN_TRY(nn__context_plan(ctx, n, false, false));
    NN_TRY(reserve(&ctx->frames, &ctx->frames_floats, per * (size_t)n));
    if (g->h != k.h || g->w != k.w)
        NN_TRY(reserve(&ctx->frame, &ctx->frame_floats,
                       (size_t)g->h * g->w * g->c));
    for (int i = 0; i < n; i++)
        NN_TRY(frame_into(ctx, &k, frames[i], g, ctx->frames + per * i));
    return classify_rows(ctx, &k, ctx->frames, n, out);
}

nn_status nn_context_classify_u8(nn_context *ctx, const uint8_t *pixels,
                                 int height, int width, int channels,
                                 size_t stride, nn_verdict *out)
{
    const char *what = "nn_context_classify_u8";
    NN_CHECK(pixels, NN_ERR_INVALID, "%s: pixels is NULL", what);
    frame_geom g = {height, width, channels, stride};
    return classify_frames(ctx, &pixels, 1, &g, out, what);
}

nn_status nn_context_classify_u8_batch(nn_context *ctx,
                                       const uint8_t *const *frames, int n,
                                       int height, int width, int channels,
                                       size_t stride, nn_verdict *out)
{
    const char *what = "nn_context_classify_u8_batch";
    NN_CHECK(frames, NN_ERR_INVALID, "%s: frames is NULL", what);
    NN_CHECK(n >= 1 && n <= BATCH_MAX, NN_ERR_INVALID,
             "%s: n is %d; give 1 to %d frames", what, n, BATCH_MAX);
    for (int i = 0; i < n; i++)
        NN_CHECK(frames[i], NN_ERR_INVALID, "%s: frames[%d] is NULL", what,
                 i);
    frame_geom g = {height, width, channels, stride};
    return classify_frames(ctx, frames, n, &g, out, what);
}

/* Saving a model (format: docs/checkpoint-format.md). The file is streamed
 * through a writer that also computes the CRC; the same code run with no
 * file only counts bytes, which gives section lengths and the total size
 * before anything is written. The file is replaced atomically
 * (nn__file_replace). */
#include "io/io.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <zlib.h>

uint32_t nn__crc32(uint32_t crc, const uint8_t *p, size_t n)
{
    uLong c = crc;
    while (n > 0) {
        uInt k = n > (1u << 30) ? 1u << 30 : (uInt)n;
        c = crc32(c, p, k);
        p += k;
        n -= k;
    }
    return (uint32_t)c;
}

/* ---------------- byte writer ---------------- */

typedef struct writer {
    FILE *f; /* NULL: only count */
    uint64_t n;
    uint32_t crc;
    int err; /* errno of the first failed write, 0 if none */
} writer;

static void put(writer *w, const void *p, size_t n)
{
    if (w->f && !w->err) {
        if (fwrite(p, 1, n, w->f) != n) w->err = errno ? errno : EIO;
        w->crc = nn__crc32(w->crc, p, n);
    }
    w->n += n;
}

static void put_u32(writer *w, uint32_t v)
{
    uint8_t b[4];
    nn__put_le32(b, v);
    put(w, b, 4);
}

static void put_u64(writer *w, uint64_t v)
{
    put_u32(w, (uint32_t)v);
    put_u32(w, (uint32_t)(v >> 32));
}

static void put_f32(writer *w, float v)
{
    uint32_t u = 0;
    memcpy(&u, &v, 4);
    put_u32(w, u);
}

static void put_f32s(writer *w, const float *x, size_t n)
{
    if (!w->f) {
        w->n += 4 * (uint64_t)n;
        return;
    }
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    put(w, x, n * sizeof *x);
#else
    for (size_t i = 0; i < n; i++) put_f32(w, x[i]);
#endif
}

static void put_str(writer *w, const char *s)
{
    size_t n = strlen(s);
    put_u32(w, (uint32_t)n);
    put(w, s, n);
}

/* ---------------- sections ---------------- */

typedef nn_status (*section_fn)(writer *w, const nn_model *m);

/* Writes tag, payload length, payload; the length comes from a dry run. */
static nn_status put_section(writer *w, const char *tag, section_fn fn,
                             const nn_model *m)
{
    writer count = {0};
    NN_TRY(fn(&count, m));
    put(w, tag, 4);
    put_u64(w, count.n);
    uint64_t start = w->n;
    NN_TRY(fn(w, m));
    NN_CHECK(w->n - start == count.n, NN_ERR_STATE,
             "checkpoint: section %.4s changed size while saving", tag);
    return NN_OK;
}

static nn_status put_model(writer *w, const nn_model *m)
{
    put_u64(w, m->seed);
    for (int i = 0; i < 4; i++) put_u64(w, m->rng.s[i]);
    put_u64(w, m->step_counter);
    put_u32(w, (uint32_t)m->output->index);
    bool known = m->loss >= NN_LOSS_CATEGORICAL_CROSSENTROPY &&
                 m->loss <= NN_LOSS_DICE;
    put_u32(w, known ? (uint32_t)m->loss : 0);
    put_u32(w, known && m->loss_opts.from_logits ? 1 : 0);
    put_u32(w, NN_KIND_COUNT);
    for (int k = 0; k < NN_KIND_COUNT; k++)
        put_u32(w, (uint32_t)m->name_counts[k]);
    return NN_OK;
}

static nn_status put_config(writer *w, const nn_layer *l)
{
    uint8_t blob[NN_CKPT_MAX_CONFIG];
    size_t n = l->ops->save_config ? l->ops->save_config(l, blob, sizeof blob)
                                   : 0;
    NN_CHECK(n <= sizeof blob, NN_ERR_UNSUPPORTED,
             "checkpoint: layer '%s' has a %zu-byte config, more than %u",
             l->name, n, NN_CKPT_MAX_CONFIG);
    put_u32(w, (uint32_t)n);
    put(w, blob, n);
    return NN_OK;
}

static nn_status put_param(writer *w, const nn_layer *l, const nn_param *p)
{
    NN_CHECK((uint64_t)p->value.size <= NN_CKPT_MAX_ELEMS, NN_ERR_UNSUPPORTED,
             "checkpoint: parameter '%s' of layer '%s' has more than %llu "
             "values",
             p->name, l->name, (unsigned long long)NN_CKPT_MAX_ELEMS);
    put_str(w, p->name);
    put_u32(w, (uint32_t)p->value.rank);
    for (int i = 0; i < p->value.rank; i++)
        put_u32(w, (uint32_t)p->value.shape[i]);
    put_u32(w, p->trainable ? 1 : 0);
    put_f32s(w, p->value.data, (size_t)p->value.size);
    return NN_OK;
}

static nn_status put_layer(writer *w, const nn_layer *l)
{
    put_u32(w, (uint32_t)l->kind);
    put_str(w, l->name);
    put_u32(w, (uint32_t)l->n_inputs);
    for (int i = 0; i < l->n_inputs; i++)
        put_u32(w, (uint32_t)l->inputs[i]->index);
    put_u32(w, (uint32_t)l->activation);
    put_u32(w, l->trainable ? 1 : 0);
    NN_TRY(put_config(w, l));
    put_u32(w, (uint32_t)l->n_params);
    for (int i = 0; i < l->n_params; i++)
        NN_TRY(put_param(w, l, &l->params[i]));
    return NN_OK;
}

static nn_status put_graph(writer *w, const nn_model *m)
{
    NN_CHECK((uint32_t)m->n_layers <= NN_CKPT_MAX_LAYERS, NN_ERR_UNSUPPORTED,
             "checkpoint: %d layers, the format holds at most %u",
             m->n_layers, NN_CKPT_MAX_LAYERS);
    put_u32(w, (uint32_t)m->n_layers);
    for (int i = 0; i < m->n_layers; i++) NN_TRY(put_layer(w, m->layers[i]));
    return NN_OK;
}

/* The slots must line up with the parameters they belong to; if the graph
 * changed after the optimizer's first step they no longer do. */
static nn_status check_slots(const nn_model *m, const nn_optimizer *o)
{
    if (o->n_slots == 0) return NN_OK;
    int n = nn__param_slots(m);
    NN_CHECK(o->n_slots == n, NN_ERR_STATE,
             "checkpoint: the optimizer has %d slots for %d trainable "
             "parameters",
             o->n_slots, n);
    nn_param_iter it;
    nn__param_iter_init(&it, m, NULL);
    while (nn__param_next_slot(&it)) {
        int i = it.slot;
        NN_CHECK(o->slot_size[i] == it.p->value.size && o->slot_m[i] &&
                     (o->kind != NN_OPTIM_ADAM || o->slot_v[i]),
                 NN_ERR_STATE,
                 "checkpoint: optimizer slot %d does not fit parameter '%s' "
                 "of layer '%s'",
                 i, it.p->name, it.l->name);
    }
    return NN_OK;
}

static nn_status put_optimizer(writer *w, const nn_model *m)
{
    const nn_optimizer *o = m->opt;
    NN_TRY(check_slots(m, o));
    put_u32(w, (uint32_t)o->kind);
    if (o->kind == NN_OPTIM_SGD) {
        put_f32(w, o->sgd.learning_rate);
        put_f32(w, o->sgd.momentum);
        put_u32(w, o->sgd.nesterov ? 1 : 0);
    } else {
        put_f32(w, o->adam.learning_rate);
        put_f32(w, o->adam.beta1);
        put_f32(w, o->adam.beta2);
        put_f32(w, o->adam.epsilon);
        put_u32(w, (uint32_t)o->adam.eps_mode);
    }
    put_u64(w, (uint64_t)o->iterations);
    put_u32(w, (uint32_t)o->n_slots);
    if (o->n_slots == 0) return NN_OK; /* no step taken yet */
    nn_param_iter it;
    nn__param_iter_init(&it, m, NULL);
    while (nn__param_next_slot(&it)) {
        int i = it.slot;
        put_u32(w, (uint32_t)it.layer);
        put_u32(w, (uint32_t)it.param);
        put_u64(w, (uint64_t)o->slot_size[i]);
        put_f32s(w, o->slot_m[i], (size_t)o->slot_size[i]);
        if (o->kind == NN_OPTIM_ADAM)
            put_f32s(w, o->slot_v[i], (size_t)o->slot_size[i]);
    }
    return NN_OK;
}

/* Names the graph section does not carry: the model's own and, per layer,
 * the block it was applied from (nn_model_apply). Only written when one is
 * set, so a file without them still reads where flag bit 1 is unknown. */
static bool has_names(const nn_model *m)
{
    bool any = m->name[0] != '\0';
    for (int i = 0; i < m->n_layers; i++) any = any || m->layers[i]->group[0];
    return any;
}

static nn_status put_names(writer *w, const nn_model *m)
{
    put_str(w, m->name);
    for (int i = 0; i < m->n_layers; i++) put_str(w, m->layers[i]->group);
    return NN_OK;
}

/* A loss that MODL's single kind and from_logits do not describe: a
 * weighted sum, IoU or Dice, or options of theirs; a separate section for
 * the same reason as NAME. */
static bool has_loss(const nn_model *m)
{
    const nn_loss_terms *t = &m->loss_terms;
    nn_loss_opts d = NN_LOSS_OPTS_INIT;
    const nn_loss_opts *o = &m->loss_opts;
    if (!m->loss) return false;
    return t->n != 1 || t->weight[0] != 1.0f ||
           t->kind[0] > NN_LOSS_BINARY_CROSSENTROPY || o->smooth != d.smooth ||
           o->eps != d.eps || o->reduction != d.reduction ||
           o->sparse_labels != d.sparse_labels || o->class_weights ||
           o->pos_weight != d.pos_weight || o->weight_norm != d.weight_norm;
}

/* The weighted cross-entropy's options, appended to LOSS only when set:
 * files without them keep the section's first layout. */
static bool has_loss_weights(const nn_loss_opts *o)
{
    return o->class_weights || o->pos_weight != 1.0f ||
           o->weight_norm != NN_WEIGHT_NORM_SAMPLES;
}

static void put_f64(writer *w, double v)
{
    uint64_t u = 0;
    memcpy(&u, &v, 8);
    put_u64(w, u);
}

static nn_status put_loss(writer *w, const nn_model *m)
{
    const nn_loss_terms *t = &m->loss_terms;
    put_u32(w, (uint32_t)t->n);
    for (int k = 0; k < t->n; k++) {
        put_u32(w, (uint32_t)t->kind[k]);
        put_f32(w, t->weight[k]);
    }
    put_f64(w, m->loss_opts.smooth);
    put_f64(w, m->loss_opts.eps);
    put_u32(w, (uint32_t)m->loss_opts.reduction);
    put_u32(w, m->loss_opts.sparse_labels ? 1 : 0);
    const nn_loss_opts *o = &m->loss_opts;
    if (!has_loss_weights(o)) return NN_OK;
    put_f32(w, o->pos_weight);
    put_u32(w, (uint32_t)o->weight_norm);
    put_u32(w, o->class_weights ? (uint32_t)o->num_class_weights : 0);
    if (o->class_weights)
        put_f32s(w, o->class_weights, (size_t)o->num_class_weights);
    return NN_OK;
}

/* Gradient clipping, when the optimizer is saved and clips: a separate
 * section for the same reason as NAME. */
static bool has_clip(const nn_model *m, bool with_opt)
{
    return with_opt && (m->opt->global_clipnorm > 0 || m->opt->clipvalue > 0);
}

static nn_status put_clip(writer *w, const nn_model *m)
{
    put_f32(w, m->opt->global_clipnorm);
    put_f32(w, m->opt->clipvalue);
    return NN_OK;
}

/* The product's preprocessing and decision (nn_model_set_preprocess): a
 * separate section for the same reason as NAME. Checked again, since the
 * graph may have changed since they were set: a file that its own loader
 * would refuse is not written. */
static nn_status put_prep(writer *w, const nn_model *m)
{
    const nn_preprocess_opts *p = &m->preprocess;
    if (nn__preprocess_check(m, p, "nn_model_save") != NN_OK) {
        char msg[400]; /* the message is rewritten from itself */
        snprintf(msg, sizeof msg, "%s", nn_last_error());
        return nn__fail(NN_ERR_STATE, "%s; set the preprocessing again",
                        msg);
    }
    put_f32(w, p->scale);
    for (int c = 0; c < 4; c++) put_f32(w, p->mean[c]);
    for (int c = 0; c < 4; c++) put_f32(w, p->std[c]);
    put_u32(w, (uint32_t)p->channel_order);
    put_u32(w, (uint32_t)p->resize);
    put_u32(w, (uint32_t)p->positive_class);
    put_f32(w, p->threshold);
    return NN_OK;
}

/* The whole file; `total` is its size as measured by a counting run. */
static nn_status put_file(writer *w, const nn_model *m, bool with_opt,
                          uint64_t total)
{
    bool names = has_names(m), clip = has_clip(m, with_opt);
    bool loss = has_loss(m), prep = m->has_preprocess;
    put(w, NN_CKPT_MAGIC, 8);
    put_u32(w, NN_CKPT_VERSION);
    put_u32(w, (with_opt ? NN_CKPT_FLAG_OPTIMIZER : 0) |
                   (names ? NN_CKPT_FLAG_NAMES : 0) |
                   (clip ? NN_CKPT_FLAG_CLIP : 0) |
                   (loss ? NN_CKPT_FLAG_LOSS : 0) |
                   (prep ? NN_CKPT_FLAG_PREP : 0));
    put_u64(w, total);
    NN_TRY(put_section(w, "MODL", put_model, m));
    NN_TRY(put_section(w, "GRPH", put_graph, m));
    if (names) NN_TRY(put_section(w, "NAME", put_names, m));
    if (loss) NN_TRY(put_section(w, "LOSS", put_loss, m));
    if (with_opt) NN_TRY(put_section(w, "OPTM", put_optimizer, m));
    if (clip) NN_TRY(put_section(w, "CLIP", put_clip, m));
    if (prep) NN_TRY(put_section(w, "PREP", put_prep, m));
    put_u32(w, w->crc);
    return NN_OK;
}

/* ---------------- saving ---------------- */

typedef struct save_job {
    const nn_model *m;
    bool with_opt;
    uint64_t total;
} save_job;

static nn_status write_file(FILE *f, void *ctx)
{
    const save_job *job = ctx;
    writer w = {.f = f};
    NN_TRY(put_file(&w, job->m, job->with_opt, job->total));
    if (w.err) {
        errno = w.err; /* ferror(f) is set; the replacer reports errno */
        return NN_OK;
    }
    NN_CHECK(w.n == job->total, NN_ERR_STATE,
             "nn_model_save: wrote %llu bytes where %llu were measured",
             (unsigned long long)w.n, (unsigned long long)job->total);
    return NN_OK;
}

nn_status nn_model_save(const nn_model *m, const char *path, int flags)
{
    NN_CHECK(m && path, NN_ERR_INVALID, "nn_model_save: NULL argument");
    NN_CHECK(path[0], NN_ERR_INVALID, "nn_model_save: empty path");
    NN_CHECK((flags & ~NN_SAVE_OPTIMIZER) == 0, NN_ERR_INVALID,
             "nn_model_save: unknown flags 0x%x", (unsigned)flags);
    NN_CHECK(m->n_layers > 0 && m->output, NN_ERR_STATE,
             "nn_model_save: the model is empty");
    bool with_opt = (flags & NN_SAVE_OPTIMIZER) != 0;
    NN_CHECK(!with_opt || (m->compiled && m->opt), NN_ERR_STATE,
             "nn_model_save: NN_SAVE_OPTIMIZER needs a compiled model");
    writer count = {0};
    NN_TRY(put_file(&count, m, with_opt, 0));
    NN_CHECK(count.n <= NN_CKPT_MAX_FILE, NN_ERR_UNSUPPORTED,
             "nn_model_save: the model needs %llu bytes, the format's limit "
             "is 4 GiB",
             (unsigned long long)count.n);
    save_job job = {m, with_opt, count.n};
    return nn__file_replace(path, "nn_model_save", write_file, &job);
}

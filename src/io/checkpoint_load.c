/* Loading a model (format: docs/checkpoint-format.md). The file is hostile
 * until proven otherwise: its envelope (magic, version, size) is checked
 * from its first bytes, then it is read whole (size capped) and its CRC
 * checked before anything else, and then a cursor that knows how many
 * bytes remain in the current section reads every field, so no count or
 * length can reach past the data or make us allocate more than the file
 * itself holds. */
#include "io/io.h"
#include "loss/loss.h"

#include <stdarg.h>
#include <stdio.h>
#include <math.h>
#include <string.h>

/* ---------------- cursor ---------------- */

typedef struct cursor {
    const uint8_t *p;
    size_t left;
    char where[160]; /* what is being read, for messages */
} cursor;

static nn_status bad(const cursor *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static nn_status bad(const cursor *c, const char *fmt, ...)
{
    char msg[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return nn__fail(NN_ERR_FORMAT, "checkpoint: %s: %s", c->where, msg);
}

static nn_status take(cursor *c, size_t n, const uint8_t **out)
{
    NN_CHECK(n <= c->left, NN_ERR_FORMAT, "checkpoint: truncated in %s",
             c->where);
    *out = c->p;
    c->p += n;
    c->left -= n;
    return NN_OK;
}

static nn_status get_u32(cursor *c, uint32_t *v)
{
    const uint8_t *p = NULL;
    NN_TRY(take(c, 4, &p));
    *v = nn__get_le32(p);
    return NN_OK;
}

static nn_status get_u64(cursor *c, uint64_t *v)
{
    const uint8_t *p = NULL;
    NN_TRY(take(c, 8, &p));
    *v = nn__get_le64(p);
    return NN_OK;
}

static nn_status get_f32(cursor *c, float *v)
{
    uint32_t u = 0;
    NN_TRY(get_u32(c, &u));
    memcpy(v, &u, 4);
    return NN_OK;
}

static nn_status get_flag(cursor *c, bool *v, const char *what)
{
    uint32_t u = 0;
    NN_TRY(get_u32(c, &u));
    if (u > 1) return bad(c, "%s flag is %u, not 0 or 1", what, u);
    *v = u != 0;
    return NN_OK;
}

/* A u32-counted string of min..cap-1 bytes without NUL, copied
 * terminated. */
static nn_status get_text(cursor *c, char *out, size_t cap, uint32_t min,
                          const char *what)
{
    uint32_t n = 0;
    const uint8_t *p = NULL;
    NN_TRY(get_u32(c, &n));
    if (n < min || n >= cap)
        return bad(c, "%s length %u outside %u..%zu", what, n, min, cap - 1);
    NN_TRY(take(c, n, &p));
    if (memchr(p, 0, n)) return bad(c, "%s contains a NUL byte", what);
    memcpy(out, p, n);
    out[n] = '\0';
    return NN_OK;
}

/* A name: 1..cap-1 bytes. */
static nn_status get_name(cursor *c, char *out, size_t cap, const char *what)
{
    return get_text(c, out, cap, 1, what);
}

/* Reads `count` floats of little-endian data that lie at p. */
static void copy_f32s(float *dst, const uint8_t *p, size_t count)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(dst, p, count * sizeof *dst);
#else
    for (size_t i = 0; i < count; i++) {
        uint32_t u = nn__get_le32(p + 4 * i);
        memcpy(dst + i, &u, 4);
    }
#endif
}

/* Takes `count` floats' worth of bytes, checking size overflow first. */
static nn_status take_f32s(cursor *c, uint64_t count, const uint8_t **out)
{
    if (count > NN_CKPT_MAX_ELEMS)
        return bad(c, "%llu values, more than the limit of %llu",
                   (unsigned long long)count,
                   (unsigned long long)NN_CKPT_MAX_ELEMS);
    return take(c, (size_t)count * 4, out);
}

/* Opens section `tag`: *sub covers exactly its payload. */
static nn_status open_section(cursor *c, const char *tag, cursor *sub)
{
    const uint8_t *p = NULL;
    uint64_t len = 0;
    snprintf(c->where, sizeof c->where, "section %s header", tag);
    NN_TRY(take(c, 4, &p));
    if (memcmp(p, tag, 4) != 0)
        return bad(c, "expected section %s, found '%.4s'", tag,
                   (const char *)p);
    NN_TRY(get_u64(c, &len));
    if (len > c->left)
        return bad(c, "length %llu exceeds the %zu bytes left",
                   (unsigned long long)len, c->left);
    NN_TRY(take(c, (size_t)len, &p));
    sub->p = p;
    sub->left = (size_t)len;
    snprintf(sub->where, sizeof sub->where, "section %s", tag);
    return NN_OK;
}

static nn_status close_section(const cursor *sub)
{
    if (sub->left) return bad(sub, "%zu unexpected bytes at its end",
                              sub->left);
    return NN_OK;
}

/* nn__add_layer and friends return NULL; the status they recorded tells
 * an out-of-memory apart from a config the builder refused. */
static nn_status builder_status(void)
{
    return nn_last_status() == NN_ERR_NOMEM ? NN_ERR_NOMEM : NN_ERR_FORMAT;
}

/* Re-labels a failure reported by library code with where it happened. */
static nn_status wrap(const cursor *c, nn_status s)
{
    if (s == NN_ERR_NOMEM) return s;
    char msg[256];
    snprintf(msg, sizeof msg, "%s", nn_last_error());
    return bad(c, "%s", msg);
}

/* ---------------- MODL ---------------- */

typedef struct model_info {
    uint64_t seed, rng[4], steps;
    uint32_t output, loss;
    bool from_logits;
    /* the compiled loss: MODL's one kind, or the LOSS section's */
    nn_loss_terms terms;
    nn_loss_opts loss_opts;
    float *class_weights; /* loss_opts.class_weights' buffer, or NULL */
    uint32_t n_counts;
    uint32_t counts[NN_KIND_COUNT];
} model_info;

static nn_status read_counters(cursor *c, model_info *mi)
{
    uint32_t k = 0;
    NN_TRY(get_u32(c, &k));
    if (k > NN_CKPT_MAX_NAME_COUNTERS)
        return bad(c, "%u name counters, more than %u", k,
                   NN_CKPT_MAX_NAME_COUNTERS);
    for (uint32_t i = 0; i < k; i++) {
        uint32_t v = 0;
        NN_TRY(get_u32(c, &v));
        if (v > NN_NAME_COUNTER_MAX)
            return bad(c, "name counter %u is %u, more than %d", i, v,
                       NN_NAME_COUNTER_MAX);
        if (i < NN_KIND_COUNT) mi->counts[i] = v;
    }
    mi->n_counts = k;
    return NN_OK;
}

static nn_status read_model_info(cursor *c, model_info *mi)
{
    cursor s = {0};
    NN_TRY(open_section(c, "MODL", &s));
    memset(mi, 0, sizeof *mi);
    NN_TRY(get_u64(&s, &mi->seed));
    for (int i = 0; i < 4; i++) NN_TRY(get_u64(&s, &mi->rng[i]));
    if (!(mi->rng[0] | mi->rng[1] | mi->rng[2] | mi->rng[3]))
        return bad(&s, "the random generator state is all zero");
    NN_TRY(get_u64(&s, &mi->steps));
    NN_TRY(get_u32(&s, &mi->output));
    NN_TRY(get_u32(&s, &mi->loss));
    if (mi->loss > NN_LOSS_DICE) return bad(&s, "unknown loss %u", mi->loss);
    NN_TRY(get_flag(&s, &mi->from_logits, "from_logits"));
    mi->terms = (nn_loss_terms){1, {(nn_loss)mi->loss}, {1.0f}};
    mi->loss_opts = (nn_loss_opts)NN_LOSS_OPTS_INIT;
    mi->loss_opts.from_logits = mi->from_logits;
    NN_TRY(read_counters(&s, mi));
    return close_section(&s);
}

/* ---------------- GRPH ---------------- */

typedef struct stored_param {
    char name[sizeof(((nn_param *)0)->name)];
    int rank;
    int64_t dims[NN_MAX_RANK];
    uint64_t elems;
    bool trainable;
    const uint8_t *data;
} stored_param;

typedef struct stored_layer {
    uint32_t kind, activation;
    char name[NN_NAME_MAX];
    int n_inputs;
    nn_layer *inputs[NN_LAYER_MAX_INPUTS];
    bool trainable;
    const uint8_t *config;
    uint32_t config_len;
    int n_params;
    stored_param params[NN_LAYER_MAX_PARAMS];
    uint64_t total_elems;
} stored_layer;

static nn_status read_param(cursor *c, const char *layer_where, int index,
                            stored_param *p)
{
    snprintf(c->where, sizeof c->where, "%.100s parameter %d", layer_where,
             index);
    NN_TRY(get_name(c, p->name, sizeof p->name, "parameter name"));
    snprintf(c->where, sizeof c->where, "%.100s parameter '%.23s'", layer_where,
             p->name);
    uint32_t rank = 0;
    NN_TRY(get_u32(c, &rank));
    if (rank < 1 || rank > NN_MAX_RANK)
        return bad(c, "rank %u outside 1..%d", rank, NN_MAX_RANK);
    p->rank = (int)rank;
    p->elems = 1;
    for (int i = 0; i < p->rank; i++) {
        uint32_t d = 0;
        NN_TRY(get_u32(c, &d));
        if (d == 0) return bad(c, "dimension %d is 0", i);
        if (d > NN_CKPT_MAX_ELEMS / p->elems)
            return bad(c, "more than %llu values",
                       (unsigned long long)NN_CKPT_MAX_ELEMS);
        p->dims[i] = d;
        p->elems *= d;
    }
    NN_TRY(get_flag(c, &p->trainable, "trainable"));
    return take_f32s(c, p->elems, &p->data);
}

static nn_status read_inputs(cursor *c, const nn_model *m, stored_layer *sl)
{
    uint32_t n = 0;
    NN_TRY(get_u32(c, &n));
    if (n > NN_LAYER_MAX_INPUTS)
        return bad(c, "%u inputs, more than %d", n, NN_LAYER_MAX_INPUTS);
    sl->n_inputs = (int)n;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t k = 0;
        NN_TRY(get_u32(c, &k));
        if (k >= (uint32_t)m->n_layers)
            return bad(c, "input %u refers to layer %u, not an earlier one",
                       i, k);
        sl->inputs[i] = m->layers[k];
    }
    return NN_OK;
}

static nn_status read_layer_record(cursor *c, const nn_model *m,
                                   stored_layer *sl)
{
    char where[sizeof c->where];
    snprintf(c->where, sizeof c->where, "layer %d", m->n_layers);
    NN_TRY(get_u32(c, &sl->kind));
    if (sl->kind >= NN_KIND_COUNT || !nn__layer_registry[sl->kind])
        return bad(c, "unknown layer kind %u", sl->kind);
    NN_TRY(get_name(c, sl->name, sizeof sl->name, "name"));
    snprintf(c->where, sizeof c->where, "layer %d '%s'", m->n_layers,
             sl->name);
    memcpy(where, c->where, sizeof where);
    NN_TRY(read_inputs(c, m, sl));
    NN_TRY(get_u32(c, &sl->activation));
    if (sl->activation > NN_CKPT_MAX_ACTIVATION)
        return bad(c, "unknown activation %u", sl->activation);
    NN_TRY(get_flag(c, &sl->trainable, "trainable"));
    NN_TRY(get_u32(c, &sl->config_len));
    if (sl->config_len > NN_CKPT_MAX_CONFIG)
        return bad(c, "config of %u bytes, more than %u", sl->config_len,
                   NN_CKPT_MAX_CONFIG);
    NN_TRY(take(c, sl->config_len, &sl->config));
    uint32_t np = 0;
    NN_TRY(get_u32(c, &np));
    if (np > NN_LAYER_MAX_PARAMS)
        return bad(c, "%u parameters, more than %d", np, NN_LAYER_MAX_PARAMS);
    sl->n_params = (int)np;
    sl->total_elems = 0;
    for (int i = 0; i < sl->n_params; i++) {
        NN_TRY(read_param(c, where, i, &sl->params[i]));
        sl->total_elems += sl->params[i].elems;
    }
    memcpy(c->where, where, sizeof where);
    return NN_OK;
}

/* a * b, saturating instead of overflowing; factors below 1 give 0 (the
 * builder rejects those before allocating anything). */
static int64_t mul_sat(int64_t a, int64_t b)
{
    if (a <= 0 || b <= 0) return 0;
    return a > INT64_MAX / b ? INT64_MAX : a * b;
}

static nn_status make_proto(cursor *c, const stored_layer *sl, nn_layer *proto)
{
    memset(proto, 0, sizeof *proto);
    proto->kind = (nn_layer_kind)sl->kind;
    proto->ops = nn__layer_registry[sl->kind];
    proto->activation = (nn_activation)sl->activation;
    proto->trainable = sl->trainable;
    snprintf(proto->name, sizeof proto->name, "%s", sl->name);
    if (proto->ops->load_config) {
        nn_status s =
            proto->ops->load_config(proto, sl->config, sl->config_len);
        if (s != NN_OK) return wrap(c, s);
    } else if (sl->config_len) {
        return bad(c, "this kind takes no config");
    }
    return NN_OK;
}

static nn_status check_param(cursor *c, const nn_param *p,
                             const stored_param *sp)
{
    bool same = strcmp(p->name, sp->name) == 0 && p->value.rank == sp->rank &&
                p->trainable == sp->trainable;
    for (int i = 0; same && i < sp->rank; i++)
        same = p->value.shape[i] == sp->dims[i];
    if (!same)
        return bad(c, "stored parameter '%s' (rank %d, %llu values) does not "
                      "match the rebuilt '%s' (rank %d, %lld values)",
                   sp->name, sp->rank, (unsigned long long)sp->elems, p->name,
                   p->value.rank, (long long)p->value.size);
    return NN_OK;
}

/* Per-sample outputs must stay addressable, or inference would overflow. */
static nn_status check_output(cursor *c, const nn_layer *l)
{
    int64_t n = 1;
    for (int i = 0; i < l->out.rank; i++) {
        n = mul_sat(n, l->out.d[i]);
        if (n == 0 || n > NN_CKPT_MAX_OUT_ELEMS)
            return bad(c, "output of a sample would have %s values",
                       n == 0 ? "no" : "too many");
    }
    return NN_OK;
}

static nn_status fill_layer(cursor *c, nn_layer *l, const stored_layer *sl)
{
    l->trainable = sl->trainable;
    NN_TRY(check_output(c, l));
    if (l->activation != (nn_activation)sl->activation)
        return bad(c, "activation %u, but the config makes it %d",
                   sl->activation, (int)l->activation);
    if (l->n_params != sl->n_params)
        return bad(c, "the file stores %d parameters, the layer has %d",
                   sl->n_params, l->n_params);
    for (int i = 0; i < sl->n_params; i++) {
        NN_TRY(check_param(c, &l->params[i], &sl->params[i]));
        copy_f32s(l->params[i].value.data, sl->params[i].data,
                  (size_t)sl->params[i].elems);
    }
    return NN_OK;
}

static nn_status read_layer(cursor *c, nn_model *m)
{
    stored_layer sl = {0};
    nn_layer proto;
    NN_TRY(read_layer_record(c, m, &sl));
    NN_TRY(make_proto(c, &sl, &proto));
    /* A config may describe parameters far larger than the file holds;
     * the budget makes building fail before allocating them. */
    nn__param_budget = (int64_t)sl.total_elems;
    nn_layer *l = nn__add_layer(m, (nn_layer_kind)sl.kind, sl.n_inputs,
                                sl.inputs, sl.name, &proto);
    nn__param_budget = -1;
    if (!l) return wrap(c, builder_status());
    return fill_layer(c, l, &sl);
}

/* Smallest layer record: kind, name length + 1 byte, input count,
 * activation, trainable, config length, parameter count. */
#define MIN_LAYER_RECORD 29u

static nn_status read_graph(cursor *c, nn_model *m)
{
    cursor s = {0};
    uint32_t n = 0;
    NN_TRY(open_section(c, "GRPH", &s));
    NN_TRY(get_u32(&s, &n));
    if (n < 1 || n > NN_CKPT_MAX_LAYERS)
        return bad(&s, "layer count %u outside 1..%u", n, NN_CKPT_MAX_LAYERS);
    if (n > s.left / MIN_LAYER_RECORD)
        return bad(&s, "%u layers cannot fit in %zu bytes", n, s.left);
    for (uint32_t i = 0; i < n; i++) NN_TRY(read_layer(&s, m));
    snprintf(s.where, sizeof s.where, "section GRPH");
    return close_section(&s);
}

/* ---------------- OPTM ---------------- */

static nn_status read_opt_config(cursor *c, nn_optimizer **out)
{
    uint32_t kind = 0;
    NN_TRY(get_u32(c, &kind));
    if (kind == NN_OPTIM_SGD) {
        nn_sgd_opts o = NN_SGD_OPTS_INIT;
        bool nesterov = false;
        NN_TRY(get_f32(c, &o.learning_rate));
        NN_TRY(get_f32(c, &o.momentum));
        NN_TRY(get_flag(c, &nesterov, "nesterov"));
        o.nesterov = nesterov;
        *out = nn_sgd(&o);
    } else if (kind == NN_OPTIM_ADAM) {
        nn_adam_opts o = NN_ADAM_OPTS_INIT;
        uint32_t mode = 0;
        NN_TRY(get_f32(c, &o.learning_rate));
        NN_TRY(get_f32(c, &o.beta1));
        NN_TRY(get_f32(c, &o.beta2));
        NN_TRY(get_f32(c, &o.epsilon));
        NN_TRY(get_u32(c, &mode));
        if (mode > NN_ADAM_EPS_TORCH)
            return bad(c, "unknown Adam epsilon mode %u", mode);
        o.eps_mode = (nn_adam_eps_mode)mode;
        *out = nn_adam(&o);
    } else {
        return bad(c, "unknown optimizer kind %u", kind);
    }
    if (!*out) return wrap(c, builder_status());
    return NN_OK;
}

/* Allocates the slot arrays as the optimizer's first step would (see
 * src/optim/optim.h): slot_v only for Adam. Partly filled arrays are freed
 * by nn_optimizer_free. */
static nn_status alloc_slots(nn_optimizer *o, int n)
{
    bool adam = o->kind == NN_OPTIM_ADAM;
    o->slot_m = nn__calloc((size_t)n, sizeof *o->slot_m);
    o->slot_v = adam ? nn__calloc((size_t)n, sizeof *o->slot_v) : NULL;
    o->slot_size = nn__calloc((size_t)n, sizeof *o->slot_size);
    o->n_slots = n;
    if (!o->slot_m || (adam && !o->slot_v) || !o->slot_size)
        return NN_ERR_NOMEM;
    return NN_OK;
}

/* Slot i must belong to the parameter (want_l, want_p) that the parameter
 * walk reached, so state can never land on the wrong tensor. */
static nn_status read_slot(cursor *c, const nn_model *m, nn_optimizer *o,
                           int i, int want_l, int want_p)
{
    uint32_t li = 0, pi = 0;
    uint64_t count = 0;
    snprintf(c->where, sizeof c->where, "optimizer slot %d", i);
    NN_TRY(get_u32(c, &li));
    NN_TRY(get_u32(c, &pi));
    NN_TRY(get_u64(c, &count));
    if (li != (uint32_t)want_l || pi != (uint32_t)want_p)
        return bad(c, "belongs to layer %u parameter %u, expected layer %d "
                      "parameter %d",
                   li, pi, want_l, want_p);
    const nn_param *p = &m->layers[li]->params[pi];
    if (count != (uint64_t)p->value.size)
        return bad(c, "has %llu values, parameter '%s' of layer '%s' has %lld",
                   (unsigned long long)count, p->name, m->layers[li]->name,
                   (long long)p->value.size);
    const uint8_t *dm = NULL, *dv = NULL;
    NN_TRY(take_f32s(c, count, &dm));
    if (o->kind == NN_OPTIM_ADAM) NN_TRY(take_f32s(c, count, &dv));
    o->slot_size[i] = (int64_t)count;
    o->slot_m[i] = nn__alloc((size_t)count * sizeof(float));
    if (!o->slot_m[i]) return NN_ERR_NOMEM;
    copy_f32s(o->slot_m[i], dm, (size_t)count);
    if (!dv) return NN_OK;
    o->slot_v[i] = nn__alloc((size_t)count * sizeof(float));
    if (!o->slot_v[i]) return NN_ERR_NOMEM;
    copy_f32s(o->slot_v[i], dv, (size_t)count);
    return NN_OK;
}

static nn_status read_opt_state(cursor *c, const nn_model *m, nn_optimizer *o)
{
    uint64_t iters = 0;
    uint32_t n = 0;
    NN_TRY(get_u64(c, &iters));
    if (iters > INT64_MAX) return bad(c, "negative iteration count");
    o->iterations = (int64_t)iters;
    NN_TRY(get_u32(c, &n));
    int want = nn__param_slots(m);
    if (n != 0 && n != (uint32_t)want)
        return bad(c, "%u slots for %d trainable parameters", n, want);
    if (n == 0) return NN_OK;
    NN_TRY(alloc_slots(o, (int)n));
    nn_param_iter it;
    nn__param_iter_init(&it, m, NULL);
    while (nn__param_next_slot(&it))
        NN_TRY(read_slot(c, m, o, it.slot, it.layer, it.param));
    return NN_OK;
}

/* Builds the optimizer and compiles m with it; on failure m owns nothing
 * new. */
static nn_status read_optimizer(cursor *c, nn_model *m, const model_info *mi)
{
    cursor s = {0};
    nn_optimizer *o = NULL;
    NN_TRY(open_section(c, "OPTM", &s));
    if (mi->loss == 0) return bad(&s, "an optimizer without a loss");
    nn_status st = read_opt_config(&s, &o);
    if (st == NN_OK) st = read_opt_state(&s, m, o);
    if (st == NN_OK) st = close_section(&s);
    if (st == NN_OK) {
        st = nn_model_compile_weighted(m, o, mi->terms.n, mi->terms.kind,
                                       mi->terms.weight, &mi->loss_opts);
        if (st != NN_OK) st = wrap(&s, st);
    }
    if (st != NN_OK) nn_optimizer_free(o);
    return st;
}

/* ---------------- CLIP ---------------- */

static nn_status get_clip(cursor *c, float *v, const char *what)
{
    NN_TRY(get_f32(c, v));
    if (!(isfinite(*v) && *v >= 0.0f))
        return bad(c, "%s %g must be finite and >= 0", what, (double)*v);
    return NN_OK;
}

/* The optimizer's gradient clipping (after OPTM). */
static nn_status read_clip(cursor *c, nn_model *m)
{
    cursor s = {0};
    NN_TRY(open_section(c, "CLIP", &s));
    float norm = 0, value = 0;
    NN_TRY(get_clip(&s, &norm, "global_clipnorm"));
    NN_TRY(get_clip(&s, &value, "clipvalue"));
    m->opt->global_clipnorm = norm;
    m->opt->clipvalue = value;
    return close_section(&s);
}

/* ---------------- LOSS ---------------- */

static nn_status get_f64(cursor *c, double *v)
{
    uint64_t u = 0;
    NN_TRY(get_u64(c, &u));
    memcpy(v, &u, 8);
    return NN_OK;
}

static nn_status get_terms(cursor *c, nn_loss_terms *t)
{
    uint32_t n = 0;
    NN_TRY(get_u32(c, &n));
    if (n < 1 || n > NN_LOSS_MAX_TERMS)
        return bad(c, "%u losses, not 1 to %d", n, NN_LOSS_MAX_TERMS);
    t->n = (int)n;
    for (int k = 0; k < t->n; k++) {
        uint32_t kind = 0;
        NN_TRY(get_u32(c, &kind));
        if (kind < NN_LOSS_CATEGORICAL_CROSSENTROPY || kind > NN_LOSS_DICE)
            return bad(c, "unknown loss %u", kind);
        t->kind[k] = (nn_loss)kind;
        NN_TRY(get_f32(c, &t->weight[k]));
    }
    return NN_OK;
}

/* The weighted cross-entropy's options, after the first layout's fields
 * when present: pos_weight, weight_norm, class weight count and values.
 * The values are copied into *cw (aligned, the caller frees it). */
static nn_status get_loss_weights(cursor *c, nn_loss_opts *o, float **cw)
{
    uint32_t norm = 0, k = 0;
    const uint8_t *p = NULL;
    NN_TRY(get_f32(c, &o->pos_weight));
    NN_TRY(get_u32(c, &norm));
    if (norm > NN_WEIGHT_NORM_SUM) return bad(c, "unknown weight_norm %u", norm);
    o->weight_norm = (int)norm;
    NN_TRY(get_u32(c, &k));
    if (k > INT32_MAX) return bad(c, "%u class weights", k);
    NN_TRY(take_f32s(c, k, &p));
    if (k == 0) return NN_OK;
    *cw = nn__alloc((size_t)k * sizeof(float));
    if (!*cw) return NN_ERR_NOMEM;
    copy_f32s(*cw, p, k);
    o->class_weights = *cw;
    o->num_class_weights = (int)k;
    return NN_OK;
}

static nn_status read_loss_fields(cursor *s, nn_loss_terms *t, nn_loss_opts *o,
                                  float **cw)
{
    uint32_t reduction = 0;
    bool sparse = false;
    NN_TRY(get_terms(s, t));
    NN_TRY(get_f64(s, &o->smooth));
    NN_TRY(get_f64(s, &o->eps));
    NN_TRY(get_u32(s, &reduction));
    NN_TRY(get_flag(s, &sparse, "sparse_labels"));
    if (s->left) NN_TRY(get_loss_weights(s, o, cw));
    NN_TRY(close_section(s));
    if (reduction > NN_LOSS_REDUCE_IMAGE)
        return bad(s, "unknown reduction %u", reduction);
    o->reduction = (int)reduction;
    o->sparse_labels = sparse;
    return NN_OK;
}

/* Checked as nn_model_compile_weighted checks it, against the output. */
static nn_status check_loaded_loss(cursor *s, const nn_model *m,
                                   const model_info *mi,
                                   const nn_loss_terms *t,
                                   const nn_loss_opts *o)
{
    const nn_layer *out = m->output;
    if (nn__loss_check(t, o, "loss") != NN_OK ||
        nn__loss_check_output(t, o, out->out.d[out->out.rank - 1], "loss") !=
            NN_OK)
        return wrap(s, NN_ERR_FORMAT);
    if (mi->loss != (uint32_t)t->kind[0])
        return bad(s, "first loss %d, but section MODL says %u",
                   (int)t->kind[0], mi->loss);
    return NN_OK;
}

/* The compiled loss beyond MODL's one kind (before OPTM, which compiles
 * with it). mi keeps the class weights (mi->class_weights) until the end
 * of the parse; a model left uncompiled gets its own copy. */
static nn_status read_loss(cursor *c, nn_model *m, model_info *mi)
{
    cursor s = {0};
    NN_TRY(open_section(c, "LOSS", &s));
    nn_loss_terms t = {0};
    nn_loss_opts o = mi->loss_opts;
    NN_TRY(read_loss_fields(&s, &t, &o, &mi->class_weights));
    NN_TRY(check_loaded_loss(&s, m, mi, &t, &o));
    mi->terms = t;
    mi->loss_opts = o;
    if (!m->compiled) {
        nn_loss_opts own = o;
        NN_TRY(nn__loss_opts_own(&own));
        nn__loss_opts_release(&m->loss_opts);
        m->loss_terms = t;
        m->loss_opts = own;
    }
    return NN_OK;
}

/* ---------------- NAME ---------------- */

/* The model's name and each layer's block name, "" for none. */
static nn_status read_names(cursor *c, nn_model *m)
{
    cursor s = {0};
    NN_TRY(open_section(c, "NAME", &s));
    NN_TRY(get_text(&s, m->name, sizeof m->name, 0, "model name"));
    for (int i = 0; i < m->n_layers; i++) {
        snprintf(s.where, sizeof s.where, "section NAME, layer %d", i);
        NN_TRY(get_text(&s, m->layers[i]->group, sizeof m->layers[i]->group,
                        0, "block name"));
    }
    snprintf(s.where, sizeof s.where, "section NAME");
    return close_section(&s);
}

/* ---------------- resources ---------------- */

/* A few hundred bytes can describe a huge computation, so the model's
 * inference plan for one sample must fit the caller's limit
 * (nn_set_limits) before the model is handed out. */
static nn_status check_plan(const nn_model *m)
{
    int64_t limit = nn__model_bytes_limit(), need = 0;
    const nn_layer *at = NULL;
    NN_TRY(nn__plan_bytes(m, 1, limit, &need, &at));
    if (!at) return NN_OK;
    char shape[96] = "";
    for (int i = 0, n = 0; i < at->out.rank && n < (int)sizeof shape; i++)
        n += snprintf(shape + n, sizeof shape - (size_t)n, "%s%d",
                      i ? "x" : "", at->out.d[i]);
    return nn__fail(NN_ERR_NOMEM,
                    "checkpoint: inference on one sample needs more than the "
                    "model limit of %lld bytes by layer %d '%s' (%s, output "
                    "%s); raise it with nn_set_limits",
                    (long long)limit, at->index, at->name,
                    at->ops->type_name, shape);
}

/* ---------------- PREP ---------------- */

/* The product's preprocessing and decision (after CLIP): every field is
 * checked as nn_model_set_preprocess checks it, against the loaded graph,
 * so a model never classifies with a normalisation or a class it cannot
 * have had. */
static nn_status read_prep(cursor *c, nn_model *m)
{
    cursor s = {0};
    NN_TRY(open_section(c, "PREP", &s));
    nn_preprocess_opts o = NN_PREPROCESS_OPTS_INIT;
    uint32_t order = 0, resize = 0, positive = 0;
    NN_TRY(get_f32(&s, &o.scale));
    for (int i = 0; i < 4; i++) NN_TRY(get_f32(&s, &o.mean[i]));
    for (int i = 0; i < 4; i++) NN_TRY(get_f32(&s, &o.std[i]));
    NN_TRY(get_u32(&s, &order));
    NN_TRY(get_u32(&s, &resize));
    NN_TRY(get_u32(&s, &positive));
    NN_TRY(get_f32(&s, &o.threshold));
    NN_TRY(close_section(&s));
    if (order > NN_CHANNELS_REVERSED)
        return bad(&s, "unknown channel order %u", order);
    if (resize > 1) return bad(&s, "resize flag is %u, not 0 or 1", resize);
    o.channel_order = (int)order;
    o.resize = (int)resize;
    o.positive_class = (int)(int32_t)positive;
    nn_status st = nn__preprocess_check(m, &o, "preprocessing");
    if (st != NN_OK) return wrap(&s, st);
    m->preprocess = o;
    m->has_preprocess = true;
    return NN_OK;
}

/* ---------------- the whole file ---------------- */

static nn_status apply_model_info(cursor *c, nn_model *m, const model_info *mi)
{
    snprintf(c->where, sizeof c->where, "section MODL");
    if (mi->output >= (uint32_t)m->n_layers)
        return bad(c, "output layer %u of %d layers", mi->output,
                   m->n_layers);
    m->output = m->layers[mi->output];
    m->generation++;
    for (int i = 0; i < 4; i++) m->rng.s[i] = mi->rng[i];
    m->step_counter = mi->steps;
    for (uint32_t k = 0; k < NN_KIND_COUNT; k++)
        m->name_counts[k] = k < mi->n_counts ? (int)mi->counts[k] : 0;
    if (!m->compiled && mi->loss) {
        m->loss = (nn_loss)mi->loss;
        m->loss_opts = mi->loss_opts;
        m->loss_terms = mi->terms;
    }
    return NN_OK;
}

static nn_status parse(const uint8_t *buf, size_t size, nn_model **out)
{
    cursor c = {buf + NN_CKPT_HEADER, size - NN_CKPT_HEADER - 4, "header"};
    uint32_t flags = nn__get_le32(buf + 12);
    if (flags & ~(NN_CKPT_FLAG_OPTIMIZER | NN_CKPT_FLAG_NAMES |
                  NN_CKPT_FLAG_CLIP | NN_CKPT_FLAG_LOSS | NN_CKPT_FLAG_PREP))
        return bad(&c, "unknown flags 0x%x", flags);
    if ((flags & NN_CKPT_FLAG_CLIP) && !(flags & NN_CKPT_FLAG_OPTIMIZER))
        return bad(&c, "clipping (flag bit 2) without an optimizer");
    model_info mi = {0};
    NN_TRY(read_model_info(&c, &mi));
    nn_model *m = nn_model_create(mi.seed);
    if (!m) return NN_ERR_NOMEM;
    nn_status s = read_graph(&c, m);
    if (s == NN_OK) s = apply_model_info(&c, m, &mi);
    if (s == NN_OK) s = check_plan(m);
    if (s == NN_OK && (flags & NN_CKPT_FLAG_NAMES)) s = read_names(&c, m);
    if (s == NN_OK && (flags & NN_CKPT_FLAG_LOSS)) {
        s = mi.loss ? read_loss(&c, m, &mi)
                    : bad(&c, "a loss section (flag bit 3) without a loss");
    }
    if (s == NN_OK && (flags & NN_CKPT_FLAG_OPTIMIZER))
        s = read_optimizer(&c, m, &mi);
    if (s == NN_OK && (flags & NN_CKPT_FLAG_CLIP)) s = read_clip(&c, m);
    if (s == NN_OK && (flags & NN_CKPT_FLAG_PREP)) s = read_prep(&c, m);
    if (s == NN_OK && c.left)
        s = bad(&c, "%zu unexpected bytes after the last section", c.left);
    nn__free(mi.class_weights);
    if (s != NN_OK) {
        nn_model_free(m);
        return s;
    }
    *out = m;
    return NN_OK;
}

/* Magic, version and declared size, from the first bytes: a file that
 * fails them is refused before the rest of it is read. */
static nn_status check_header(const uint8_t *head, size_t n, uint64_t size,
                              void *ctx)
{
    const char *path = ctx;
    size_t lead = n < 8 ? n : 8;
    NN_CHECK(memcmp(head, NN_CKPT_MAGIC, lead) == 0, NN_ERR_FORMAT,
             "checkpoint: '%s' is not a libnn model file", path);
    NN_CHECK(size >= NN_CKPT_HEADER + 4, NN_ERR_FORMAT,
             "checkpoint: '%s' is truncated (%llu bytes)", path,
             (unsigned long long)size);
    uint32_t version = nn__get_le32(head + 8);
    NN_CHECK(version == NN_CKPT_VERSION, NN_ERR_UNSUPPORTED,
             "checkpoint: '%s' has format version %u, this library reads %u",
             path, version, NN_CKPT_VERSION);
    uint64_t declared = nn__get_le64(head + 16);
    NN_CHECK(declared <= size, NN_ERR_FORMAT,
             "checkpoint: '%s' is truncated: %llu of %llu bytes", path,
             (unsigned long long)size, (unsigned long long)declared);
    NN_CHECK(declared == size, NN_ERR_FORMAT,
             "checkpoint: '%s' has %llu trailing bytes", path,
             (unsigned long long)(size - declared));
    return NN_OK;
}

/* The CRC, once the whole file is in memory. */
static nn_status check_crc(const char *path, const uint8_t *buf, size_t size)
{
    uint32_t crc = nn__crc32(0, buf, size - 4);
    NN_CHECK(crc == nn__get_le32(buf + size - 4), NN_ERR_FORMAT,
             "checkpoint: CRC mismatch in '%s' (the file is corrupt)", path);
    return NN_OK;
}

nn_status nn__model_load(const char *path, nn_model **out)
{
    NN_CHECK(out, NN_ERR_INVALID, "nn_model_load: out is NULL");
    *out = NULL;
    NN_CHECK(path, NN_ERR_INVALID, "nn_model_load: path is NULL");
    uint8_t *buf = NULL;
    size_t size = 0;
    nn_file_head head = {NN_CKPT_HEADER, check_header, (void *)path};
    NN_TRY(nn__file_read_all(path, "checkpoint", NN_CKPT_MAX_FILE, &head,
                             &buf, &size));
    nn_status s = check_crc(path, buf, size);
    if (s == NN_OK) s = parse(buf, size, out);
    nn__free(buf);
    return s;
}

nn_model *nn_model_load(const char *path)
{
    nn_model *m = NULL;
    nn__model_load(path, &m);
    return m;
}

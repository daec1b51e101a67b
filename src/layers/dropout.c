/* Inverted dropout. Value i of a batch is dropped when
 * nn__hash_uniform(key, i) < rate, so any thread count draws the same
 * mask. Training forward passes keep the mask, one byte per value, in the
 * state, so that backward is a plain select. */
#include "kernels/kernels.h"
#include "layers/layers.h"

#include <math.h>
#include <string.h>

/* The loops stream memory; a thread team pays off only on large inputs. */
#define DROPOUT_PAR_MIN (1 << 20)
/* Values per call of the (vectorised) loop bodies. */
#define DROPOUT_CHUNK 16384
/* The mask starts this far into the state (keeps it 64-byte aligned). */
#define MASK_OFFSET 64

typedef struct dropout_state {
    uint64_t key;
    int32_t active; /* forward dropped values (training, rate > 0) */
} dropout_state;

typedef struct dropout_cfg {
    float rate;
} dropout_cfg;
NN_LAYER_CONFIG(dropout_cfg, cfg_of, set_cfg)

static bool rate_ok(float rate) { return rate >= 0.0f && rate < 1.0f; }

static nn_status dropout_build(nn_layer *l)
{
    float rate = cfg_of(l).rate;
    NN_CHECK(rate_ok(rate), NN_ERR_INVALID,
             "Dropout '%s': rate %g outside [0, 1)", l->name, (double)rate);
    NN_TRY(nn__one_input(l, 0));
    return nn__check_out_size(l);
}

static size_t dropout_state_bytes(const nn_layer *l, int batch)
{
    return MASK_OFFSET + (size_t)batch * (size_t)nn__shape_size(&l->out);
}

/* Values [i0, i1): draws the mask (1: kept) and y = x * mask / (1 - rate).
 * nn__hash_uniform is hash24 * 2^-24, and hash24 < 2^24 converts to float
 * exactly, as does rate * 2^24: the test below drops exactly the values
 * for which nn__hash_uniform(key, i) < rate. */
NN_TARGET_CLONES
static void draw_chunk(uint64_t key, float thr, float scale, const float *x,
                       float *y, uint8_t *mask, int64_t i0, int64_t i1)
{
    for (int64_t i = i0; i < i1; i++) {
        bool keep = !((float)nn__hash24(key, (uint64_t)i) < thr);
        float v = x[i] * scale; /* loaded unconditionally: no branch */
        mask[i] = keep;
        y[i] = keep ? v : 0.0f;
    }
}

/* v where m is 1, +0 where it is 0: a bit mask rather than a select,
 * which GCC does not vectorise here. */
static inline float keep_or_zero(float v, uint8_t m)
{
    uint32_t b;
    memcpy(&b, &v, sizeof b);
    b &= -(uint32_t)m;
    memcpy(&v, &b, sizeof v);
    return v;
}

/* dx[i] (+)= dy[i] / (1 - rate) where mask[i], else (+)= 0. */
NN_TARGET_CLONES
static void mask_chunk(const uint8_t *mask, float scale, const float *dy,
                       float *dx, int64_t i0, int64_t i1, bool accum)
{
    if (accum)
        for (int64_t i = i0; i < i1; i++)
            dx[i] += keep_or_zero(dy[i] * scale, mask[i]);
    else
        for (int64_t i = i0; i < i1; i++)
            dx[i] = keep_or_zero(dy[i] * scale, mask[i]);
}

/* Chunk c of n values: [*i0, *i1). */
static void chunk(int64_t c, int64_t n, int64_t *i0, int64_t *i1)
{
    *i0 = c * DROPOUT_CHUNK;
    *i1 = *i0 + DROPOUT_CHUNK < n ? *i0 + DROPOUT_CHUNK : n;
}

static void draw_mask(uint64_t key, float rate, const float *x, float *y,
                      uint8_t *mask, int64_t n)
{
    const float scale = 1.0f / (1.0f - rate), thr = rate * 16777216.0f;
    const int64_t nc = (n + DROPOUT_CHUNK - 1) / DROPOUT_CHUNK;
#pragma omp parallel for num_threads(nn__threads()) if (n >= DROPOUT_PAR_MIN) \
    schedule(static)
    for (int64_t c = 0; c < nc; c++) {
        int64_t i0, i1;
        chunk(c, n, &i0, &i1);
        draw_chunk(key, thr, scale, x, y, mask, i0, i1);
    }
}

static void apply_mask(const uint8_t *mask, float rate, const float *dy,
                       float *dx, int64_t n, bool accum)
{
    const float scale = 1.0f / (1.0f - rate);
    const int64_t nc = (n + DROPOUT_CHUNK - 1) / DROPOUT_CHUNK;
#pragma omp parallel for num_threads(nn__threads()) if (n >= DROPOUT_PAR_MIN) \
    schedule(static)
    for (int64_t c = 0; c < nc; c++) {
        int64_t i0, i1;
        chunk(c, n, &i0, &i1);
        mask_chunk(mask, scale, dy, dx, i0, i1, accum);
    }
}

static nn_status dropout_forward(const nn_layer *l, const nn_fwd *a)
{
    int64_t n = (int64_t)a->batch * nn__shape_size(&l->out);
    float rate = cfg_of(l).rate;
    dropout_state st = {a->rng_key, a->training && rate > 0.0f};
    if (st.active)
        NN_CHECK(a->state, NN_ERR_STATE, "Dropout '%s': no state buffer",
                 l->name);
    if (a->state) memcpy(a->state, &st, sizeof st);
    if (st.active)
        draw_mask(st.key, rate, a->in[0], a->out,
                  (uint8_t *)a->state + MASK_OFFSET, n);
    else
        nn__copy_or_add(a->in[0], a->out, n, false);
    return NN_OK;
}

static nn_status dropout_backward(nn_layer *l, const nn_bwd *a)
{
    if (!a->din[0]) return NN_OK;
    NN_CHECK(a->state, NN_ERR_STATE, "Dropout '%s': no state buffer", l->name);
    int64_t n = (int64_t)a->batch * nn__shape_size(&l->out);
    dropout_state st;
    memcpy(&st, a->state, sizeof st);
    if (st.active)
        apply_mask((const uint8_t *)a->state + MASK_OFFSET,
                   cfg_of(l).rate, a->dout, a->din[0], n, a->accum[0]);
    else
        nn__copy_or_add(a->dout, a->din[0], n, a->accum[0]);
    return NN_OK;
}

/* rate */
static size_t dropout_save(const nn_layer *l, uint8_t *buf, size_t cap)
{
    nn_cfg_writer w = {buf, cap, 0};
    nn__cfg_put_f32(&w, cfg_of(l).rate);
    return w.len;
}

static nn_status dropout_load(nn_layer *l, const uint8_t *buf, size_t len)
{
    nn_cfg_reader r = {buf, len, 0, false};
    float rate = nn__cfg_get_f32(&r);
    NN_TRY(nn__cfg_end(&r, "Dropout"));
    NN_CHECK(rate_ok(rate), NN_ERR_FORMAT, "Dropout config: rate %g",
             (double)rate);
    set_cfg(l, &(dropout_cfg){rate});
    return NN_OK;
}

const nn_layer_ops nn__dropout_ops = {
    .type_name = "Dropout",
    .stem = "dropout",
    .build = dropout_build,
    .state_bytes = dropout_state_bytes,
    .forward = dropout_forward,
    .backward = dropout_backward,
    .save_config = dropout_save,
    .load_config = dropout_load,
};

nn_layer *nn_dropout(nn_model *m, nn_layer *input, float rate,
                     const nn_layer_opts *opts)
{
    nn_layer_opts o = NN_LAYER_OPTS_INIT;
    if (nn__read_opts(&o, opts, "nn_dropout") != NN_OK) return NULL;
    if (!m || !input) {
        nn__fail(NN_ERR_INVALID, "nn_dropout: %s is NULL",
                 m ? "input" : "model");
        return NULL;
    }
    if (!rate_ok(rate)) {
        nn__fail(NN_ERR_INVALID, "nn_dropout: rate %g outside [0, 1)",
                 (double)rate);
        return NULL;
    }
    nn_layer proto = {0};
    set_cfg(&proto, &(dropout_cfg){rate});
    return nn__add_layer(m, NN_KIND_DROPOUT, 1, &input, o.name, &proto);
}

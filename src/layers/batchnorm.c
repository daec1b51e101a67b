/* BatchNormalization over the last axis, Keras semantics.
 *
 * Parameters in Keras order: gamma (if scale), beta (if center),
 * moving_mean, moving_variance; the last two are not trainable, so the
 * summary counts 4 per channel, 2 of them non-trainable.
 *
 * Training (a training pass on a trainable layer) normalizes with the batch
 * mean and biased variance over every axis but the last, and moves the
 * moving statistics: moving = momentum * moving + (1 - momentum) * batch.
 * Which batch variance the moving variance takes follows tf.keras per
 * input rank (keras/layers/normalization/batch_normalization.py):
 *  - images [N, H, W, C] and volumes [N, D, H, W, C] (per-sample rank 3
 *    or 4): the UNBIASED variance, n / (n - 1) times the biased one, n the
 *    values per channel. Keras builds these with fused=True, and its fused
 *    kernel, tf.compat.v1.nn.fused_batch_norm, returns the Bessel-corrected
 *    variance, which the moving average takes unchanged. PyTorch's
 *    BatchNorm does the same at every rank.
 *  - every other rank, features [N, C] after a Dense layer above all
 *    (per-sample rank 1, 2, 5...): the BIASED variance, which the unfused
 *    path's tf.nn.moments returns and feeds to the moving average.
 * Either way the batch itself is normalized with the biased variance.
 * Inference, and a frozen layer in any pass (Keras: a layer
 * with trainable=False runs in inference mode), use the moving statistics
 * and write nothing. Only the training forward writes the model, and
 * training has exclusive access to it.
 *
 * The state keeps, per channel, the mean and 1/sqrt(var + eps) the
 * forward used; backward recomputes x_hat from the input. */
#include "kernels/graph_kernels.h"
#include "layers/layers.h"

#include <math.h>
#include <string.h>

typedef struct bn_cfg {
    float momentum, epsilon;
    int center, scale;
} bn_cfg;
NN_LAYER_CONFIG(bn_cfg, cfg_of, set_cfg)

/* Header of the state; mean[c] and inv_std[c] follow. */
typedef struct bn_state {
    int32_t batch_stats; /* forward normalized with batch statistics */
    int32_t pad[3];      /* keeps the float arrays 16-byte aligned */
} bn_state;

static nn_status bn_check(const bn_cfg *c, nn_status err, const char *who)
{
    /* signbit rejects -0 so a config is either canonical or refused. */
    NN_CHECK(c->momentum >= 0.0f && c->momentum <= 1.0f &&
                 !signbit(c->momentum),
             err, "%s: momentum %g outside [0, 1]", who, (double)c->momentum);
    NN_CHECK(c->epsilon > 0.0f && isfinite(c->epsilon), err,
             "%s: epsilon %g must be positive and finite", who,
             (double)c->epsilon);
    NN_CHECK(c->center == 0 || c->center == 1, err, "%s: center %d", who,
             c->center);
    NN_CHECK(c->scale == 0 || c->scale == 1, err, "%s: scale %d", who,
             c->scale);
    return NN_OK;
}

static int channels(const nn_layer *l) { return l->out.d[l->out.rank - 1]; }

/* Parameter indices; -1 when the layer has no such parameter. */
static int gamma_index(const nn_layer *l) { return cfg_of(l).scale ? 0 : -1; }
static int beta_index(const nn_layer *l)
{
    bn_cfg c = cfg_of(l);
    return c.center ? c.scale : -1;
}
static int mean_index(const nn_layer *l)
{
    bn_cfg c = cfg_of(l);
    return c.scale + c.center;
}

static nn_status bn_build(nn_layer *l)
{
    bn_cfg cfg = cfg_of(l);
    NN_TRY(bn_check(&cfg, NN_ERR_INVALID, "BatchNormalization"));
    NN_TRY(nn__one_input(l, 0));
    NN_TRY(nn__check_out_size(l));
    int c = channels(l);
    if (cfg.scale) NN_TRY(nn__layer_add_param(l, "gamma", 1, &c, true));
    if (cfg.center) NN_TRY(nn__layer_add_param(l, "beta", 1, &c, true));
    NN_TRY(nn__layer_add_param(l, "moving_mean", 1, &c, false));
    return nn__layer_add_param(l, "moving_variance", 1, &c, false);
}

static void fill(nn_param *p, float v)
{
    for (int64_t i = 0; i < p->value.size; i++) p->value.data[i] = v;
}

static void bn_init(nn_layer *l, nn_rng *rng)
{
    int g = gamma_index(l), b = beta_index(l), m = mean_index(l);
    if (g >= 0) fill(&l->params[g], 1.0f);
    if (b >= 0) fill(&l->params[b], 0.0f);
    fill(&l->params[m], 0.0f);
    fill(&l->params[m + 1], 1.0f);
}

static int64_t rows_of(const nn_layer *l, int batch)
{
    return (int64_t)batch * (nn__shape_size(&l->out) / channels(l));
}

static size_t bn_state_bytes(const nn_layer *l, int batch)
{
    return sizeof(bn_state) + 2 * (size_t)channels(l) * sizeof(float);
}

static size_t bn_scratch(const nn_layer *l, int batch, bool training)
{
    /* Band partials, then two doubles per channel (forward: mean and
     * variance; backward: the two sums), then three floats per channel
     * (forward: scale, shift; backward: p, q, s of the input gradient). */
    int64_t c = channels(l);
    return nn__bn_scratch_floats(c) + 7 * (size_t)c;
}

static float *state_mean(void *state)
{
    return (float *)((bn_state *)state + 1);
}

static float param_or(const nn_layer *l, int i, int64_t j, float dflt)
{
    return i >= 0 ? l->params[i].value.data[j] : dflt;
}

static bool uses_batch_stats(const nn_layer *l, bool training)
{
    return training && l->trainable;
}

/* Keras' fused path, which moves the variance Bessel-corrected: inputs
 * [N, H, W, C] and [N, D, H, W, C] (the header comment). */
static bool bessel_corrected(const nn_layer *l)
{
    return l->out.rank == 3 || l->out.rank == 4;
}

/* Batch statistics into mean/inv_std, and the moving averages updated. */
static void batch_stats(const nn_layer *l, const float *x, int64_t rows,
                        float *mean, float *inv_std, float *scratch)
{
    int64_t c = channels(l);
    double *bm = (double *)(void *)(scratch + nn__bn_scratch_floats(c));
    double *bv = bm + c;
    nn__bn_moments(x, rows, c, bm, bv, scratch);
    bn_cfg cfg = cfg_of(l);
    float *mm = l->params[mean_index(l)].value.data;
    float *mv = l->params[mean_index(l) + 1].value.data;
    double unbias = bessel_corrected(l) && rows > 1
                        ? (double)rows / (double)(rows - 1)
                        : 1.0;
    double mo = cfg.momentum;
    for (int64_t j = 0; j < c; j++) {
        mean[j] = (float)bm[j];
        inv_std[j] = (float)(1.0 / sqrt(bv[j] + (double)cfg.epsilon));
        mm[j] = (float)(mo * mm[j] + (1.0 - mo) * bm[j]);
        mv[j] = (float)(mo * mv[j] + (1.0 - mo) * bv[j] * unbias);
    }
}

static void moving_stats(const nn_layer *l, float *mean, float *inv_std)
{
    int64_t c = channels(l);
    const float *mm = l->params[mean_index(l)].value.data;
    const float *mv = l->params[mean_index(l) + 1].value.data;
    float eps = cfg_of(l).epsilon;
    for (int64_t j = 0; j < c; j++) {
        mean[j] = mm[j];
        inv_std[j] = (float)(1.0 / sqrt((double)mv[j] + eps));
    }
}

void nn__bn_fold(const nn_layer *l, float *scale, float *shift)
{
    const float *mm = l->params[mean_index(l)].value.data;
    const float *mv = l->params[mean_index(l) + 1].value.data;
    float eps = cfg_of(l).epsilon;
    for (int64_t j = 0; j < channels(l); j++) {
        double s = param_or(l, gamma_index(l), j, 1.0f) /
                   sqrt((double)mv[j] + eps);
        scale[j] = (float)s;
        shift[j] = (float)(param_or(l, beta_index(l), j, 0.0f) - mm[j] * s);
    }
}

static nn_status bn_forward(const nn_layer *l, const nn_fwd *a)
{
    NN_CHECK(a->state && a->scratch, NN_ERR_STATE,
             "BatchNormalization '%s': no state buffer", l->name);
    int64_t c = channels(l), rows = rows_of(l, a->batch);
    bn_state *st = a->state;
    float *mean = state_mean(st), *inv_std = mean + c;
    st->batch_stats = uses_batch_stats(l, a->training);
    if (st->batch_stats)
        batch_stats(l, a->in[0], rows, mean, inv_std, a->scratch);
    else
        moving_stats(l, mean, inv_std);
    float *scale = a->scratch + nn__bn_scratch_floats(c) + 4 * c;
    float *shift = scale + c;
    for (int64_t j = 0; j < c; j++) {
        scale[j] = param_or(l, gamma_index(l), j, 1.0f) * inv_std[j];
        shift[j] = param_or(l, beta_index(l), j, 0.0f);
    }
    nn__bn_affine(a->in[0], a->out, rows, c, mean, scale, shift);
    return NN_OK;
}

/* Gradient buffer of a moving statistic: the statistics do not train, but
 * their gradient is reported like any other parameter's (zero when the
 * forward used batch statistics). */
static float *stat_grad(nn_layer *l, int i)
{
    return l->trainable ? l->params[i].grad.data : NULL;
}

/* dx = p dy + q (x - mean) + s per channel. With batch statistics,
 * dx = gamma inv_std (dy - mean(dy) - x_hat mean(dy x_hat)). */
static void input_grad(const nn_layer *l, const nn_bwd *a, int64_t rows,
                       const double *sdy, const double *sdyx, float *pqs)
{
    int64_t c = channels(l);
    const bn_state *st = a->state;
    const float *mean = state_mean(a->state), *inv_std = mean + c;
    float *p = pqs, *q = p + c, *s = q + c;
    for (int64_t j = 0; j < c; j++) {
        double g = param_or(l, gamma_index(l), j, 1.0f) * (double)inv_std[j];
        p[j] = (float)g;
        q[j] = s[j] = 0.0f;
        if (!st->batch_stats) continue;
        double is = inv_std[j];
        q[j] = (float)(-g * sdyx[j] * is * is / (double)rows);
        s[j] = (float)(-g * sdy[j] / (double)rows);
    }
    nn__bn_dx(a->dout, a->in[0], a->din[0], rows, c, mean, p, q, s,
              a->accum[0]);
}

/* Gradient buffers of the four parameters (NULL: none wanted). */
typedef struct bn_grads {
    float *gamma, *beta, *mean, *var;
} bn_grads;

static bn_grads grads_of(nn_layer *l)
{
    int g = gamma_index(l), b = beta_index(l), m = mean_index(l);
    return (bn_grads){g >= 0 ? nn__param_grad(l, g) : NULL,
                      b >= 0 ? nn__param_grad(l, b) : NULL, stat_grad(l, m),
                      stat_grad(l, m + 1)};
}

static void param_grads(const nn_layer *l, const bn_grads *gr,
                        const bn_state *st, const double *sdy,
                        const double *sdyx)
{
    int64_t c = channels(l);
    const float *mean = (const float *)(st + 1), *inv_std = mean + c;
    for (int64_t j = 0; j < c; j++) {
        double is = inv_std[j], g = param_or(l, gamma_index(l), j, 1.0f);
        if (gr->gamma) gr->gamma[j] = (float)(sdyx[j] * is);
        if (gr->beta) gr->beta[j] = (float)sdy[j];
        /* y = g (x - mm) / sqrt(mv + eps) + b */
        if (gr->mean)
            gr->mean[j] = st->batch_stats ? 0.0f : (float)(-g * is * sdy[j]);
        if (gr->var)
            gr->var[j] = st->batch_stats
                             ? 0.0f
                             : (float)(-0.5 * g * is * is * is * sdyx[j]);
    }
}

static nn_status bn_backward(nn_layer *l, const nn_bwd *a)
{
    NN_CHECK(a->state && a->scratch, NN_ERR_STATE,
             "BatchNormalization '%s': no state buffer", l->name);
    int64_t c = channels(l), rows = rows_of(l, a->batch);
    const bn_state *st = a->state;
    double *sdy = (double *)(void *)(a->scratch + nn__bn_scratch_floats(c));
    double *sdyx = sdy + c;
    bn_grads gr = grads_of(l);
    bool any_param = gr.gamma || gr.beta || gr.mean || gr.var;
    if (any_param || (a->din[0] && st->batch_stats))
        nn__bn_grad_sums(a->in[0], a->dout, (const float *)(st + 1), rows, c,
                         sdy, sdyx, a->scratch);
    if (any_param) param_grads(l, &gr, st, sdy, sdyx);
    if (a->din[0])
        input_grad(l, a, rows, sdy, sdyx,
                   a->scratch + nn__bn_scratch_floats(c) + 4 * c);
    return NN_OK;
}

/* momentum, epsilon, center, scale */
static size_t bn_save(const nn_layer *l, uint8_t *buf, size_t cap)
{
    bn_cfg c = cfg_of(l);
    nn_cfg_writer w = {buf, cap, 0};
    nn__cfg_put_f32(&w, c.momentum);
    nn__cfg_put_f32(&w, c.epsilon);
    nn__cfg_put_i32(&w, c.center);
    nn__cfg_put_i32(&w, c.scale);
    return w.len;
}

static nn_status bn_load(nn_layer *l, const uint8_t *buf, size_t len)
{
    nn_cfg_reader r = {buf, len, 0, false};
    bn_cfg c = {0};
    c.momentum = nn__cfg_get_f32(&r);
    c.epsilon = nn__cfg_get_f32(&r);
    c.center = nn__cfg_get_i32(&r);
    c.scale = nn__cfg_get_i32(&r);
    set_cfg(l, &c);
    NN_TRY(nn__cfg_end(&r, "BatchNormalization"));
    return bn_check(&c, NN_ERR_FORMAT, "BatchNormalization config");
}

const nn_layer_ops nn__batchnorm_ops = {
    .type_name = "BatchNormalization",
    .stem = "batch_normalization",
    .build = bn_build,
    .init = bn_init,
    .scratch_floats = bn_scratch,
    .state_bytes = bn_state_bytes,
    .forward = bn_forward,
    .backward = bn_backward,
    .save_config = bn_save,
    .load_config = bn_load,
};

nn_layer *nn_batchnorm(nn_model *m, nn_layer *input,
                       const nn_batchnorm_opts *opts)
{
    nn_batchnorm_opts o = NN_BATCHNORM_OPTS_INIT;
    if (nn__read_opts(&o, opts, "nn_batchnorm") != NN_OK) return NULL;
    if (!m || !input) {
        nn__fail(NN_ERR_INVALID, "nn_batchnorm: %s is NULL",
                 m ? "input" : "model");
        return NULL;
    }
    bn_cfg c = {o.momentum, o.epsilon, o.center != 0, o.scale != 0};
    if (bn_check(&c, NN_ERR_INVALID, "nn_batchnorm") != NN_OK) return NULL;
    nn_layer proto = {0};
    set_cfg(&proto, &c);
    return nn__add_layer(m, NN_KIND_BATCHNORM, 1, &input, o.name, &proto);
}

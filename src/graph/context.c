/* Execution contexts: the activations, gradients and scratch of one
 * thread's passes over a model. The model itself is only read here, apart
 * from parameter gradients during training (which has exclusive access). */
#include "nn_internal.h"

#include <stdio.h>
#include <string.h>

static void release_buffers(nn_context *c, int n_layers)
{
    for (int i = 0; i < c->n_shared; i++) nn__free(c->shared[i]);
    nn__free(c->shared);
    c->shared = NULL;
    for (int i = 0; i < n_layers; i++) {
        /* The input layer's activation is the caller's data; shared-buffer
         * activations were freed with the shared buffers. */
        bool borrowed = c->model->layers[i]->kind == NN_KIND_INPUT ||
                        (c->in_shared && c->in_shared[i]);
        if (c->act && !borrowed) nn__free(c->act[i]);
        if (c->dact) nn__free(c->dact[i]);
        if (c->state) nn__free(c->state[i]);
    }
    nn__free(c->act);
    nn__free(c->dact);
    nn__free(c->state);
    nn__free(c->scratch);
    nn__free(c->fuse);
    nn__free(c->fused_into);
    nn__free(c->in_shared);
    c->fuse = NULL;
    c->fused_into = NULL;
    c->in_shared = NULL;
    c->act = c->dact = NULL;
    c->state = NULL;
    c->scratch = NULL;
    c->n_shared = 0;
    c->batch_cap = 0;
    c->training_ready = false;
    c->lean = false;
}

nn_context *nn__context_new(const nn_model *m)
{
    nn_context *c = nn__calloc(1, sizeof *c);
    if (c) c->model = m;
    return c;
}

nn_context *nn_context_create(const nn_model *m)
{
    if (!m) {
        nn__fail(NN_ERR_INVALID, "nn_context_create: model is NULL");
        return NULL;
    }
    return nn__context_new(m);
}

void nn_context_free(nn_context *c)
{
    if (!c) return;
    release_buffers(c, c->n_planned);
    nn__free(c->frames);
    nn__free(c->frame);
    nn__free(c);
}

/* grad: the layer's output gradient is needed (training). */
static nn_status alloc_layer(nn_context *c, const nn_layer *l, int batch,
                             bool training, bool grad)
{
    int i = l->index;
    size_t n = (size_t)batch * (size_t)nn__shape_size(&l->out);
    /* The input layer's activation points at the caller's data; shared-buffer
     * activations are placed by plan_shared. */
    if (l->kind != NN_KIND_INPUT && !c->in_shared[i]) {
        c->act[i] = nn__alloc(n * sizeof(float));
        if (!c->act[i]) return NN_ERR_NOMEM;
    }
    if (l->kind != NN_KIND_INPUT && training && grad) {
        c->dact[i] = nn__alloc(n * sizeof(float));
        if (!c->dact[i]) return NN_ERR_NOMEM;
    }
    size_t sb = l->ops->state_bytes ? l->ops->state_bytes(l, batch) : 0;
    if (sb) {
        c->state[i] = nn__alloc(sb);
        if (!c->state[i]) return NN_ERR_NOMEM;
    }
    size_t sf = l->ops->scratch_floats
                    ? l->ops->scratch_floats(l, batch, training)
                    : 0;
    if (sf > c->scratch_floats) c->scratch_floats = sf;
    return NN_OK;
}

/* The smallest free slot that fits, else the largest free one (it will
 * grow), else -1. */
static int pick_slot(const int64_t *size, const bool *busy, int n_slots,
                     int64_t need)
{
    int fit = -1, largest = -1;
    for (int s = 0; s < n_slots; s++) {
        if (busy[s]) continue;
        if (size[s] >= need && (fit < 0 || size[s] < size[fit])) fit = s;
        if (largest < 0 || size[s] > size[largest]) largest = s;
    }
    return fit >= 0 ? fit : largest;
}

/* The fusion chain layer i belongs to (its head convolution's index), or
 * -1. */
static int chain_of(const nn_context *c, int i)
{
    if (!c->fuse) return -1;
    if (c->fused_into[i] >= 0) return c->fused_into[i];
    return c->fuse[i].tail >= 0 ? i : -1;
}

/* Whether layer i is a ZeroPadding2D folded into its reader: it has no
 * output, and its reader reads its input instead. */
static bool folded_pad(const nn_context *c, int i)
{
    return c->fuse && c->fused_into[i] >= 0 &&
           c->fuse[c->fused_into[i]].pad_of == i;
}

/* The layer whose output a reader of layer i reads. */
static int source_of(const nn_context *c, int i)
{
    return folded_pad(c, i) ? c->model->layers[i]->inputs[0]->index : i;
}

/* Inference needs a layer's output only until its last reader has run,
 * so activations in shared buffers share a few buffers ("slots"): each layer takes a
 * free slot (growing it if needed) and frees its inputs' slots after its
 * last use. The output layer and its inputs (which may hold the logits the
 * loss reads) stay live to the end, and so does an output that a layer
 * with its own buffers reads (its backward pass reads it again). A fusion
 * chain is one slot, taken by its head and written once, at the head's
 * turn. slot[i] receives layer i's slot or -1; grown[i] (grown may be
 * NULL) the floats of all slots once layer i has its own. */
static int assign_slots(const nn_context *c, int64_t cap, int *slot,
                        int *last_use, int64_t *size, bool *busy,
                        int64_t *grown)
{
    const nn_model *m = c->model;
    int n = m->n_layers, n_slots = 0;
    int64_t total = 0; /* floats of all slots */
    for (int i = 0; i < n; i++) last_use[i] = i;
    for (int j = 0; j < n; j++)
        for (int k = 0; k < m->layers[j]->n_inputs; k++) {
            int in = source_of(c, m->layers[j]->inputs[k]->index);
            int until = c->in_shared[j] ? j : n;
            if (until > last_use[in]) last_use[in] = until;
        }
    last_use[m->output->index] = n;
    for (int k = 0; k < m->output->n_inputs; k++)
        last_use[source_of(c, m->output->inputs[k]->index)] = n;
    for (int i = 0; i < n; i++) {
        const nn_layer *l = m->layers[i];
        slot[i] = -1;
        if (grown) grown[i] = total;
        if (!c->in_shared[i] || folded_pad(c, i)) continue;
        int ch = chain_of(c, i);
        if (ch >= 0 && ch != i) {
            slot[i] = slot[ch]; /* written by the head */
        } else {
            int64_t need = cap * nn__shape_size(&l->out);
            int best = pick_slot(size, busy, n_slots, need);
            if (best < 0) best = n_slots++, size[best] = 0;
            if (size[best] < need) {
                total += need - size[best];
                size[best] = need;
            }
            busy[best] = true;
            slot[i] = best;
        }
        if (grown) grown[i] = total;
        for (int k = 0; k < l->n_inputs; k++) {
            int in = source_of(c, l->inputs[k]->index);
            bool same_chain = ch >= 0 && chain_of(c, in) == ch;
            if (last_use[in] == i && slot[in] >= 0 && !same_chain)
                busy[slot[in]] = false;
        }
        if (last_use[i] == i) busy[slot[i]] = false;
    }
    return n_slots;
}

static nn_status plan_shared(nn_context *c, int64_t cap)
{
    const nn_model *m = c->model;
    int n = m->n_layers;
    int *slot = nn__calloc((size_t)n, sizeof *slot);
    int *last = nn__calloc((size_t)n, sizeof *last);
    int64_t *size = nn__calloc((size_t)n, sizeof *size);
    bool *busy = nn__calloc((size_t)n, sizeof *busy);
    nn_status s = slot && last && size && busy ? NN_OK : NN_ERR_NOMEM;
    if (s == NN_OK) {
        int n_slots = assign_slots(c, cap, slot, last, size, busy, NULL);
        c->shared = nn__calloc((size_t)n_slots + 1, sizeof *c->shared);
        s = c->shared ? NN_OK : NN_ERR_NOMEM;
        for (int k = 0; s == NN_OK && k < n_slots; k++, c->n_shared++) {
            c->shared[k] = nn__alloc((size_t)size[k] * sizeof(float));
            if (!c->shared[k]) s = NN_ERR_NOMEM;
        }
        for (int i = 0; s == NN_OK && i < n; i++)
            if (slot[i] >= 0) c->act[i] = c->shared[slot[i]];
    }
    nn__free(slot);
    nn__free(last);
    nn__free(size);
    nn__free(busy);
    return s;
}

/* a + b for sizes, stopping at INT64_MAX instead of overflowing. */
static int64_t add_sat(int64_t a, int64_t b)
{
    return a > INT64_MAX - b ? INT64_MAX : a + b;
}

static int64_t sat(size_t n) { return n > INT64_MAX ? INT64_MAX : (int64_t)n; }

static int64_t float_bytes(int64_t n)
{
    return n > INT64_MAX / (int64_t)sizeof(float) ? INT64_MAX
                                                  : n * (int64_t)sizeof(float);
}

/* Running totals of an inference plan, layer by layer, as plan_buffers
 * would allocate it: grown[i] floats of shared activations, then each
 * layer's state and the largest scratch so far. */
static void plan_totals(const nn_model *m, int batch, const int64_t *grown,
                        int64_t limit, int64_t *bytes, const nn_layer **over)
{
    int64_t state = 0, scratch = 0;
    for (int i = 0; i < m->n_layers; i++) {
        const nn_layer *l = m->layers[i];
        if (l->ops->state_bytes)
            state = add_sat(state, sat(l->ops->state_bytes(l, batch)));
        if (l->ops->scratch_floats) {
            int64_t sf = sat(l->ops->scratch_floats(l, batch, false));
            if (sf > scratch) scratch = sf;
        }
        *bytes = add_sat(add_sat(float_bytes(grown[i]), state),
                         float_bytes(scratch));
        if (limit >= 0 && *bytes > limit && !*over) *over = l;
    }
}

nn_status nn__plan_bytes(const nn_model *m, int batch, int64_t limit,
                         int64_t *bytes, const nn_layer **over)
{
    int n = m->n_layers;
    nn_context c = {.model = m};
    bool *needs = nn__calloc((size_t)n, sizeof *needs);
    bool *busy = nn__calloc((size_t)n, sizeof *busy);
    int *slot = nn__calloc((size_t)n, sizeof *slot);
    int *last = nn__calloc((size_t)n, sizeof *last);
    int64_t *size = nn__calloc((size_t)n, sizeof *size);
    int64_t *grown = nn__calloc((size_t)n, sizeof *grown);
    c.in_shared = nn__calloc((size_t)n, sizeof *c.in_shared);
    nn_status s = needs && busy && slot && last && size && grown &&
                          c.in_shared
                      ? NN_OK
                      : NN_ERR_NOMEM;
    *bytes = 0;
    *over = NULL;
    for (int i = 0; s == NN_OK && i < n; i++)
        c.in_shared[i] = m->layers[i]->kind != NN_KIND_INPUT;
    if (s == NN_OK) s = nn__plan_fusion(&c, needs, false);
    if (s == NN_OK) {
        assign_slots(&c, batch, slot, last, size, busy, grown);
        plan_totals(m, batch, grown, limit, bytes, over);
    }
    nn__free(c.fuse);
    nn__free(c.fused_into);
    nn__free(c.in_shared);
    nn__free(needs);
    nn__free(busy);
    nn__free(slot);
    nn__free(last);
    nn__free(size);
    nn__free(grown);
    return s;
}

void nn__mark_needs(const nn_model *m, bool want_dx, bool *needs)
{
    for (int i = 0; i < m->n_layers; i++) {
        const nn_layer *l = m->layers[i];
        bool n = l->kind == NN_KIND_INPUT ? want_dx : false;
        for (int j = 0; j < l->n_params; j++)
            n = n || nn__param_trains(l->trainable, &l->params[j]);
        for (int j = 0; j < l->n_inputs; j++) n = n || needs[l->inputs[j]->index];
        needs[i] = n;
    }
}

/* Which layers get buffers of their own (and, training, a gradient): none
 * for inference; in a lean training plan those a gradient reaches, plus
 * the output (the loss writes its gradient); all in a full one. */
static void plan_needs(const nn_context *c, bool train, bool lean,
                       bool *needs)
{
    const nn_model *m = c->model;
    for (int i = 0; i < m->n_layers; i++) needs[i] = train && !lean;
    if (!train || !lean) return;
    nn__mark_needs(m, false, needs);
    needs[m->output->index] = true;
}

static nn_status plan_buffers(nn_context *c, int cap, bool train, bool lean)
{
    const nn_model *m = c->model;
    int n = m->n_layers;
    bool *needs = nn__calloc((size_t)n, sizeof *needs);
    c->act = nn__calloc((size_t)n, sizeof *c->act);
    c->dact = nn__calloc((size_t)n, sizeof *c->dact);
    c->state = nn__calloc((size_t)n, sizeof *c->state);
    c->in_shared = nn__calloc((size_t)n, sizeof *c->in_shared);
    nn_status s = (needs && c->act && c->dact && c->state && c->in_shared)
                      ? NN_OK
                      : NN_ERR_NOMEM;
    if (s == NN_OK) {
        plan_needs(c, train, lean, needs);
        for (int i = 0; i < n; i++)
            c->in_shared[i] = !needs[i] && m->layers[i]->kind != NN_KIND_INPUT;
        s = nn__plan_fusion(c, needs, train);
    }
    if (s == NN_OK) s = plan_shared(c, cap);
    for (int i = 0; s == NN_OK && i < n; i++)
        s = alloc_layer(c, m->layers[i], cap, train, needs[i]);
    if (s == NN_OK && c->scratch_floats) {
        c->scratch = nn__alloc(c->scratch_floats * sizeof(float));
        if (!c->scratch) s = NN_ERR_NOMEM;
    }
    nn__free(needs);
    return s;
}

nn_status nn__context_plan(nn_context *c, int batch, bool training, bool full)
{
    const nn_model *m = c->model;
    NN_CHECK(m->n_layers > 0 && m->input, NN_ERR_STATE,
             "model has no input layer");
    bool fits = c->act && c->generation == m->generation &&
                batch <= c->batch_cap;
    if (fits && (!training || (c->training_ready && !(full && c->lean))))
        return NN_OK;
    /* Grow to the larger of the old and new needs so alternating calls
     * (train 128, evaluate 1000) do not reallocate every time; once a pass
     * wanted every gradient, later plans keep them all. */
    int cap = batch > c->batch_cap ? batch : c->batch_cap;
    bool train = training || c->training_ready;
    bool lean = training ? !full && (!c->training_ready || c->lean) : c->lean;
    release_buffers(c, c->n_planned);
    c->n_planned = m->n_layers;
    c->scratch_floats = 0;
    nn_status s = plan_buffers(c, cap, train, lean);
    if (s != NN_OK) {
        release_buffers(c, c->n_planned);
        return s;
    }
    c->batch_cap = cap;
    c->training_ready = train;
    c->lean = train && lean;
    c->generation = m->generation;
    return NN_OK;
}

static uint64_t mix(uint64_t a, uint64_t b)
{
    uint64_t z = a + 0x9e3779b97f4a7c15ULL * (b + 1);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

nn_status nn__forward(nn_context *c, const float *x, int batch, bool training,
                      uint64_t rng_key)
{
    const nn_model *m = c->model;
    for (int i = 0; i < m->n_layers; i++) {
        const nn_layer *l = m->layers[i];
        if (l->kind == NN_KIND_INPUT) {
            c->act[i] = (float *)x; /* borrowed for this pass only */
            continue;
        }
        if (c->fused_into && c->fused_into[i] >= 0) continue; /* done */
        const float *in[NN_LAYER_MAX_INPUTS];
        for (int j = 0; j < l->n_inputs; j++)
            in[j] = c->act[source_of(c, l->inputs[j]->index)];
        const nn_fuse *f = c->fuse && c->fuse[i].tail >= 0 ? &c->fuse[i] : NULL;
        bool pad = c->fuse && c->fuse[i].pad_of >= 0;
        nn_fwd a = {
            .batch = batch,
            .training = training,
            .in = in,
            .out = c->act[i],
            .state = c->state[i],
            .scratch = c->scratch,
            .rng_key = mix(rng_key, (uint64_t)i),
            .fuse = f,
            .residual = f && f->residual >= 0 ? c->act[f->residual] : NULL,
            .pad = pad ? c->fuse[i].pad : NULL,
        };
        NN_TRY(l->ops->forward(l, &a));
    }
    return NN_OK;
}

static nn_status backward_layer(nn_context *c, nn_layer *l, int batch,
                                bool preact, const bool *needs, bool *written)
{
    const float *in[NN_LAYER_MAX_INPUTS];
    float *din[NN_LAYER_MAX_INPUTS];
    bool accum[NN_LAYER_MAX_INPUTS];
    for (int j = 0; j < l->n_inputs; j++) {
        int k = l->inputs[j]->index;
        in[j] = c->act[k];
        din[j] = needs[k] ? c->dact[k] : NULL;
        accum[j] = written[k];
        if (din[j]) written[k] = true;
    }
    nn_bwd a = {
        .batch = batch,
        .in = in,
        .out = c->act[l->index],
        .dout = c->dact[l->index],
        .din = din,
        .accum = accum,
        .dout_is_preact = preact,
        .state = c->state[l->index],
        .scratch = c->scratch,
    };
    return l->ops->backward(l, &a);
}

nn_status nn__backward(nn_context *c, int batch, bool dout_is_preact,
                       float *dx)
{
    nn_model *m = (nn_model *)c->model;
    bool needs[m->n_layers], written[m->n_layers];
    nn__mark_needs(m, dx != NULL, needs);
    memset(written, 0, sizeof written);
    written[m->output->index] = true;
    c->dact[m->input->index] = dx;
    nn_status s = NN_OK;
    for (int i = m->output->index; s == NN_OK && i >= 0; i--) {
        nn_layer *l = m->layers[i];
        if (!written[i] || !needs[i] || l->kind == NN_KIND_INPUT) continue;
        s = backward_layer(c, l, batch, dout_is_preact && l == m->output,
                           needs, written);
    }
    if (s == NN_OK && dx && !written[m->input->index])
        memset(dx, 0, (size_t)batch * (size_t)nn__shape_size(&m->input->out) *
                          sizeof(float));
    c->dact[m->input->index] = NULL;
    return s;
}

/* Shared by nn_model_predict and nn_context_predict; messages start with
 * `what`, the public function. */
nn_status nn__predict(nn_context *c, const nn_tensor *x, nn_tensor *out,
                      int batch_size, const char *what)
{
    const nn_model *m = c->model;
    NN_CHECK(x && out, NN_ERR_INVALID, "%s: %s is NULL", what,
             x ? "out" : "x");
    NN_CHECK(m->input && m->output, NN_ERR_STATE, "%s: the model is empty",
             what);
    NN_CHECK(batch_size > 0, NN_ERR_INVALID,
             "%s: batch size %d; it must be positive", what, batch_size);
    char arg[96];
    snprintf(arg, sizeof arg, "%s: x", what);
    NN_TRY(nn__check_data(m->input, x, arg));
    snprintf(arg, sizeof arg, "%s: out", what);
    NN_TRY(nn__check_data(m->output, out, arg));
    NN_CHECK(out->shape[0] == x->shape[0], NN_ERR_SHAPE,
             "%s: out has %lld rows for %lld inputs; give it one row per "
             "sample of x",
             what, (long long)out->shape[0], (long long)x->shape[0]);
    int64_t n = x->shape[0];
    int64_t in_sz = nn__shape_size(&m->input->out);
    int64_t out_sz = nn__shape_size(&m->output->out);
    int b = (int)(n < batch_size ? n : batch_size);
    NN_TRY(nn__context_plan(c, b, false, false));
    for (int64_t i = 0; i < n; i += b) {
        int cur = (int)(n - i < b ? n - i : b);
        NN_TRY(nn__forward(c, x->data + i * in_sz, cur, false, 0));
        memcpy(out->data + i * out_sz, c->act[m->output->index],
               (size_t)cur * (size_t)out_sz * sizeof(float));
    }
    return NN_OK;
}

nn_status nn_context_predict(nn_context *c, const nn_tensor *x, nn_tensor *out,
                             int batch_size)
{
    NN_CHECK(c, NN_ERR_INVALID, "nn_context_predict: context is NULL");
    return nn__predict(c, x, out, batch_size, "nn_context_predict");
}

nn_status nn__check_data(const nn_layer *l, const nn_tensor *t,
                         const char *what)
{
    bool fits = t->rank == l->out.rank + 1;
    for (int i = 0; fits && i < l->out.rank; i++)
        fits = t->shape[i + 1] == l->out.d[i];
    if (fits) return NN_OK;
    char got[NN_SHAPE_STR_MAX], want[NN_SHAPE_STR_MAX];
    nn__tensor_shape_str(t, got, sizeof got);
    nn__shape_str(&l->out, want, sizeof want);
    bool same_size = t->size / t->shape[0] == nn__shape_size(&l->out);
    return nn__fail(NN_ERR_SHAPE,
                    "%s has shape %s, expected %s: the batch axis (None), "
                    "then the shape of layer '%s'%s",
                    what, got, want, l->name,
                    same_size ? "; it holds as many values per sample, so "
                                "if they are in that order (NHWC), "
                                "nn_tensor_reshape gives it that shape"
                              : "");
}

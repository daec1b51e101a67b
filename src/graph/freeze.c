/* Freezing: the trainable flag of layers and models.
 *
 * A frozen layer computes no parameter gradients (nn__param_grad), gets no
 * optimizer update (the optimizer walks trainable layers only), counts as
 * non-trainable, and a frozen BatchNormalization runs in inference mode.
 *
 * The optimizer keeps one slot per trainable parameter in the order of
 * the parameter walk (src/graph/params.c), made on its first step. When the set of trainable
 * parameters changes after that, the slots are re-keyed here so training
 * can go on: a parameter that stays trainable keeps its moments, one that
 * becomes trainable starts from zero moments (as a new Keras slot does),
 * one that is frozen loses its slots. Like building, this needs exclusive
 * access to the model. */
#include "nn_internal.h"

/* Slot owners: (layer, param) pairs in slot order, for layer flags `on`
 * (NULL: the current ones). */
typedef struct owner {
    int layer, param;
} owner;

static int list_owners(const nn_model *m, const bool *on, owner *out)
{
    nn_param_iter it;
    nn__param_iter_init(&it, m, on);
    while (nn__param_next_slot(&it))
        if (out) out[it.slot] = (owner){it.layer, it.param};
    return it.n_slots;
}

/* The owners of the slots before and after a change of flags. */
typedef struct plan {
    owner *old, *nw;
    int n_old, n_new;
} plan;

static void plan_free(plan *p)
{
    nn__free(p->old);
    nn__free(p->nw);
}

static nn_status plan_make(const nn_model *m, const bool *want, plan *p)
{
    p->n_old = list_owners(m, NULL, NULL);
    p->n_new = list_owners(m, want, NULL);
    p->old = nn__calloc((size_t)p->n_old + 1, sizeof *p->old);
    p->nw = nn__calloc((size_t)p->n_new + 1, sizeof *p->nw);
    if (!p->old || !p->nw) return NN_ERR_NOMEM;
    list_owners(m, NULL, p->old);
    list_owners(m, want, p->nw);
    return NN_OK;
}

/* Index of (layer, param) in list, or -1. */
static int find_owner(const owner *list, int n, owner o)
{
    for (int k = 0; k < n; k++)
        if (list[k].layer == o.layer && list[k].param == o.param) return k;
    return -1;
}

static bool slots_match(const nn_optimizer *o, const nn_model *m,
                        const plan *p)
{
    if (p->n_old != o->n_slots) return false;
    for (int k = 0; k < p->n_old; k++)
        if (o->slot_size[k] !=
            m->layers[p->old[k].layer]->params[p->old[k].param].value.size)
            return false;
    return true;
}

/* New slot arrays: kept slots are borrowed from o, new ones zeroed. */
typedef struct slots {
    float **m, **v;
    int64_t *size;
} slots;

static void slots_free_new(slots *s, const nn_optimizer *o, const plan *p)
{
    for (int k = 0; s->m && k < p->n_new; k++) {
        if (find_owner(p->old, p->n_old, p->nw[k]) >= 0) continue;
        nn__free(s->m[k]);
        if (s->v) nn__free(s->v[k]);
    }
    nn__free(s->m);
    nn__free(s->v);
    nn__free(s->size);
}

static nn_status slots_make(const nn_optimizer *o, const nn_model *m,
                            const plan *p, slots *s)
{
    size_t n = (size_t)p->n_new + 1;
    s->m = nn__calloc(n, sizeof *s->m);
    s->v = o->slot_v ? nn__calloc(n, sizeof *s->v) : NULL;
    s->size = nn__calloc(n, sizeof *s->size);
    if (!s->m || (o->slot_v && !s->v) || !s->size) return NN_ERR_NOMEM;
    for (int k = 0; k < p->n_new; k++) {
        const nn_param *q = &m->layers[p->nw[k].layer]->params[p->nw[k].param];
        int ko = find_owner(p->old, p->n_old, p->nw[k]);
        s->size[k] = q->value.size;
        if (ko >= 0) {
            s->m[k] = o->slot_m[ko];
            if (s->v) s->v[k] = o->slot_v[ko];
            continue;
        }
        s->m[k] = nn__calloc((size_t)q->value.size, sizeof(float));
        if (!s->m[k]) return NN_ERR_NOMEM;
        if (s->v && o->kind == NN_OPTIM_ADAM) {
            s->v[k] = nn__calloc((size_t)q->value.size, sizeof(float));
            if (!s->v[k]) return NN_ERR_NOMEM;
        }
    }
    return NN_OK;
}

/* Frees the slots of frozen parameters and installs the new arrays. */
static void slots_commit(nn_optimizer *o, const plan *p, slots *s)
{
    for (int k = 0; k < p->n_old; k++) {
        if (find_owner(p->nw, p->n_new, p->old[k]) >= 0) continue;
        nn__free(o->slot_m[k]);
        if (o->slot_v) nn__free(o->slot_v[k]);
    }
    nn__free(o->slot_m);
    nn__free(o->slot_v);
    nn__free(o->slot_size);
    o->slot_m = s->m;
    o->slot_v = s->v;
    o->slot_size = s->size;
    o->n_slots = p->n_new;
    if (p->n_new == 0) { /* no state: the next step starts afresh */
        nn__free(o->slot_m);
        nn__free(o->slot_v);
        nn__free(o->slot_size);
        o->slot_m = o->slot_v = NULL;
        o->slot_size = NULL;
    }
}

/* Re-keys the optimizer's slots from the current flags to `want`. */
static nn_status rekey(nn_model *m, const bool *want)
{
    nn_optimizer *o = m->opt;
    if (!o || !o->slot_size || o->n_slots == 0) return NN_OK;
    plan p = {NULL, NULL, 0, 0};
    slots s = {NULL, NULL, NULL};
    nn_status st = plan_make(m, want, &p);
    /* Slots that no longer fit the model are left for the optimizer to
     * report, as before. */
    if (st == NN_OK && slots_match(o, m, &p)) {
        st = slots_make(o, m, &p, &s);
        if (st == NN_OK)
            slots_commit(o, &p, &s);
        else
            slots_free_new(&s, o, &p);
    }
    plan_free(&p);
    if (st != NN_OK)
        return nn__fail(st, "set_trainable: out of memory re-keying the "
                            "optimizer's state");
    return NN_OK;
}

/* Sets the flags of the layers selected by `which` (NULL: all). */
static nn_status set_flags(nn_model *m, const nn_layer *which, bool trainable)
{
    bool *want = nn__calloc((size_t)m->n_layers + 1, sizeof *want);
    if (!want)
        return nn__fail(NN_ERR_NOMEM, "set_trainable: out of memory");
    for (int i = 0; i < m->n_layers; i++) {
        const nn_layer *l = m->layers[i];
        want[i] = (!which || l == which) ? trainable : l->trainable;
    }
    nn_status st = rekey(m, want);
    if (st == NN_OK) {
        for (int i = 0; i < m->n_layers; i++)
            m->layers[i]->trainable = want[i];
        m->generation++; /* contexts plan by what is trainable */
    }
    nn__free(want);
    return st;
}

nn_status nn_layer_set_trainable(nn_layer *l, int trainable)
{
    NN_CHECK(l, NN_ERR_INVALID, "nn_layer_set_trainable: layer is NULL");
    return set_flags(l->model, l, trainable != 0);
}

int nn_layer_trainable(const nn_layer *l)
{
    if (!l) return nn__fail(NN_ERR_INVALID, "nn_layer_trainable: NULL layer");
    return l->trainable ? 1 : 0;
}

nn_status nn_model_set_trainable(nn_model *m, int trainable)
{
    NN_CHECK(m, NN_ERR_INVALID, "nn_model_set_trainable: model is NULL");
    return set_flags(m, NULL, trainable != 0);
}

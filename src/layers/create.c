/* Creating a layer in a model: checks, Keras default names, parameters,
 * build and initialization, and appending it to the model's layers (which
 * keeps them in topological order); freeing one. Every layer constructor
 * ends here, so this sits with the layers, below the graph code that
 * walks what it builds. */
#include "nn_internal.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

/* Weights shared with other models are freed by their last owner. The
 * release ordering makes every owner's writes to the weights happen before
 * the free; acquire on the last decrement sees them. */
static void param_release(nn_param *p)
{
    nn__free(p->grad.data);
    if (!p->refs) return; /* not made by nn__layer_add_param */
    if (atomic_fetch_sub_explicit(p->refs, 1, memory_order_acq_rel) == 1)
        nn__free((void *)p->refs); /* the block that holds the data too */
}

void nn__layer_free(nn_layer *l)
{
    if (!l) return;
    for (int i = 0; i < l->n_params; i++) param_release(&l->params[i]);
    nn__free(l);
}

_Thread_local int64_t nn__param_budget = -1;

/* Bytes before a parameter's values in its block: the owner count, padded
 * to the allocator's alignment. */
#define PARAM_HEADER 64
_Static_assert(sizeof(_Atomic int64_t) <= PARAM_HEADER, "count fits");

nn_status nn__layer_add_param(nn_layer *l, const char *name, int rank,
                              const int *shape, bool trainable)
{
    NN_CHECK(l->n_params < NN_LAYER_MAX_PARAMS, NN_ERR_INVALID,
             "layer '%s': too many parameters", l->name);
    NN_CHECK(rank >= 1 && rank <= NN_MAX_RANK, NN_ERR_INVALID,
             "layer '%s': parameter rank %d", l->name, rank);
    int64_t dims[NN_MAX_RANK];
    int64_t size = 1;
    for (int i = 0; i < rank; i++) {
        NN_CHECK(shape[i] > 0 && shape[i] <= (1 << 30), NN_ERR_SHAPE,
                 "layer '%s': parameter '%s' has dimension %d", l->name, name,
                 shape[i]);
        dims[i] = shape[i];
        size *= shape[i];
        NN_CHECK(size <= ((int64_t)1 << 34), NN_ERR_SHAPE,
                 "layer '%s': parameter '%s' is too large", l->name, name);
    }
    if (nn__param_budget >= 0) {
        NN_CHECK(size <= nn__param_budget, NN_ERR_FORMAT,
                 "layer '%s': parameter '%s' needs %lld values, more than "
                 "stored",
                 l->name, name, (long long)size);
        nn__param_budget -= size;
    }
    /* One block: the owner count, then the values (still 64-byte
     * aligned). */
    uint8_t *block = nn__calloc(PARAM_HEADER + (size_t)size * sizeof(float),
                                1);
    if (!block) return NN_ERR_NOMEM;
    nn_param *p = &l->params[l->n_params++];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    nn__tensor_view(&p->value, rank, dims, (float *)(block + PARAM_HEADER));
    nn__tensor_view(&p->grad, rank, dims, NULL);
    p->trainable = trainable;
    p->refs = (_Atomic int64_t *)block;
    atomic_init(p->refs, 1);
    return NN_OK;
}

bool nn__name_taken(const nn_model *m, const char *name)
{
    for (int i = 0; i < m->n_layers; i++)
        if (strcmp(m->layers[i]->name, name) == 0) return true;
    return false;
}

/* Keras numbering: "conv2d", "conv2d_1", "conv2d_2", ... The counter is
 * bounded, so it never overflows and always saves as a loadable value. */
static nn_status default_name(nn_model *m, nn_layer_kind kind, char *out)
{
    const char *stem = nn__layer_registry[kind]->stem;
    do {
        int k = m->name_counts[kind];
        NN_CHECK(k < NN_NAME_COUNTER_MAX, NN_ERR_UNSUPPORTED,
                 "%s: this model has issued %d default names '%s_N', the "
                 "limit; give the layer a name",
                 nn__layer_registry[kind]->type_name, k, stem);
        m->name_counts[kind] = k + 1;
        if (k == 0)
            snprintf(out, NN_NAME_MAX, "%s", stem);
        else
            snprintf(out, NN_NAME_MAX, "%s_%d", stem, k);
    } while (nn__name_taken(m, out));
    return NN_OK;
}

static nn_status check_new_layer(nn_model *m, nn_layer_kind kind,
                                 int n_inputs, nn_layer *const *inputs,
                                 const char *name)
{
    NN_CHECK(m, NN_ERR_INVALID, "layer: model is NULL");
    NN_CHECK(kind >= 0 && kind < NN_KIND_COUNT && nn__layer_registry[kind],
             NN_ERR_INVALID, "layer: unknown kind %d", (int)kind);
    NN_CHECK(n_inputs >= 0 && n_inputs <= NN_LAYER_MAX_INPUTS, NN_ERR_INVALID,
             "layer: %d inputs", n_inputs);
    NN_CHECK((kind == NN_KIND_INPUT) == (n_inputs == 0), NN_ERR_INVALID,
             "layer: %s takes %s", nn__layer_registry[kind]->type_name,
             kind == NN_KIND_INPUT ? "no input" : "an input layer");
    for (int i = 0; i < n_inputs; i++) {
        NN_CHECK(inputs && inputs[i], NN_ERR_INVALID,
                 "%s: input %d is NULL", nn__layer_registry[kind]->type_name,
                 i);
        NN_CHECK(inputs[i]->model == m, NN_ERR_INVALID,
                 "%s: input '%s' belongs to another model",
                 nn__layer_registry[kind]->type_name, inputs[i]->name);
    }
    if (name) {
        NN_CHECK(name[0] && strlen(name) < NN_NAME_MAX, NN_ERR_INVALID,
                 "layer name must have 1 to %d characters", NN_NAME_MAX - 1);
        NN_CHECK(!nn__name_taken(m, name), NN_ERR_INVALID,
                 "layer name '%s' is already used in this model", name);
    }
    return NN_OK;
}

nn_status nn__append_layer(nn_model *m, nn_layer *l)
{
    if (m->n_layers == m->cap_layers) {
        int cap = m->cap_layers ? 2 * m->cap_layers : 16;
        nn_layer **p = nn__realloc(m->layers, (size_t)cap * sizeof *p);
        if (!p) return NN_ERR_NOMEM;
        m->layers = p;
        m->cap_layers = cap;
    }
    l->index = m->n_layers;
    m->layers[m->n_layers++] = l;
    if (l->kind == NN_KIND_INPUT && !m->input) m->input = l;
    m->output = l;
    m->generation++;
    return NN_OK;
}

nn_layer *nn__add_layer(nn_model *m, nn_layer_kind kind, int n_inputs,
                        nn_layer *const *inputs, const char *name,
                        const nn_layer *proto)
{
    if (check_new_layer(m, kind, n_inputs, inputs, name) != NN_OK) return NULL;
    if (kind == NN_KIND_INPUT && m->input) {
        nn__fail(NN_ERR_UNSUPPORTED, "Input: this model already has an input");
        return NULL;
    }
    nn_layer *l = nn__calloc(1, sizeof *l);
    if (!l) return NULL;
    if (proto) {
        memcpy(l->cfg, proto->cfg, sizeof l->cfg);
        l->activation = proto->activation;
        l->out = proto->out;
    }
    l->kind = kind;
    l->ops = nn__layer_registry[kind];
    l->model = m;
    l->trainable = true;
    l->n_inputs = n_inputs;
    for (int i = 0; i < n_inputs; i++) l->inputs[i] = inputs[i];
    nn_status s = NN_OK;
    if (name)
        snprintf(l->name, sizeof l->name, "%s", name);
    else
        s = default_name(m, kind, l->name);
    if (s != NN_OK || l->ops->build(l) != NN_OK ||
        nn__append_layer(m, l) != NN_OK) {
        nn__layer_free(l);
        return NULL;
    }
    if (l->ops->init) l->ops->init(l, &m->rng);
    return l;
}

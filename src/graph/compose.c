/* Composition: a model used as a block of another model, sharing weights.
 * The block's layers are instantiated in the outer graph (the graph stays
 * flat, so the drivers need nothing new); `group` lets the summary show
 * them as one row, as Keras shows a nested model. */
#include "nn_internal.h"

#include <stdio.h>
#include <string.h>

nn_status nn_model_set_name(nn_model *m, const char *name)
{
    NN_CHECK(m && name, NN_ERR_INVALID, "nn_model_set_name: NULL argument");
    NN_CHECK(name[0] && strlen(name) < NN_NAME_MAX, NN_ERR_INVALID,
             "model name must have 1 to %d characters", NN_NAME_MAX - 1);
    snprintf(m->name, sizeof m->name, "%s", name);
    return NN_OK;
}

const char *nn_model_name(const nn_model *m)
{
    if (!m) nn__fail(NN_ERR_INVALID, "nn_model_name: model is NULL");
    return m ? m->name : NULL;
}

/* needed[i]: inner layer i is inner_output or one of its ancestors. */
static void mark_ancestors(const nn_model *inner, const nn_layer *last,
                           bool *needed)
{
    memset(needed, 0, (size_t)inner->n_layers * sizeof *needed);
    needed[last->index] = true;
    for (int i = last->index; i >= 0; i--) {
        if (!needed[i]) continue;
        const nn_layer *l = inner->layers[i];
        for (int j = 0; j < l->n_inputs; j++) needed[l->inputs[j]->index] = true;
    }
}

static nn_status check_apply(const nn_model *outer, const nn_layer *input,
                             const nn_model *inner, const nn_layer *last)
{
    NN_CHECK(outer && input && inner, NN_ERR_INVALID,
             "nn_model_apply: NULL argument");
    NN_CHECK(outer != inner, NN_ERR_INVALID,
             "nn_model_apply: a model cannot contain itself");
    NN_CHECK(input->model == outer, NN_ERR_INVALID,
             "nn_model_apply: input '%s' belongs to another model",
             input->name);
    NN_CHECK(inner->input && last, NN_ERR_STATE,
             "nn_model_apply: the inner model is empty");
    NN_CHECK(last->model == inner, NN_ERR_INVALID,
             "nn_model_apply: layer '%s' is not in the inner model",
             last->name);
    const nn_shape *a = &input->out, *b = &inner->input->out;
    bool same = a->rank == b->rank;
    for (int i = 0; same && i < a->rank; i++) same = a->d[i] == b->d[i];
    NN_CHECK(same, NN_ERR_SHAPE,
             "nn_model_apply: input '%s' does not have the shape of the "
             "inner model's input '%s'",
             input->name, inner->input->name);
    return NN_OK;
}

/* Shares orig's parameters with copy. orig is only read: its counts are
 * atomic, so threads may apply one inner model into their own outer
 * models at once. */
static void share_params(nn_layer *copy, const nn_layer *orig)
{
    for (int i = 0; i < orig->n_params; i++) {
        const nn_param *p = &orig->params[i];
        atomic_fetch_add_explicit(p->refs, 1, memory_order_relaxed);
        copy->params[i] = *p;
        copy->params[i].grad.data = NULL;
    }
}

static nn_status copy_name(nn_model *outer, nn_layer *copy, const char *group)
{
    if (!nn__name_taken(outer, copy->name)) return NN_OK;
    char name[2 * NN_NAME_MAX + 2];
    snprintf(name, sizeof name, "%s/%s", group, copy->name);
    NN_CHECK(strlen(name) < NN_NAME_MAX && !nn__name_taken(outer, name),
             NN_ERR_INVALID,
             "nn_model_apply: layer name '%s' is already used in the outer "
             "model",
             copy->name);
    memcpy(copy->name, name, strlen(name) + 1); /* fits: checked above */
    return NN_OK;
}

static nn_status instantiate(nn_model *outer, const nn_layer *orig,
                             nn_layer **map, const char *group)
{
    nn_layer *copy = nn__alloc(sizeof *copy);
    if (!copy) return NN_ERR_NOMEM;
    *copy = *orig;
    copy->model = outer;
    snprintf(copy->group, sizeof copy->group, "%s", group);
    for (int j = 0; j < orig->n_inputs; j++)
        copy->inputs[j] = map[orig->inputs[j]->index];
    share_params(copy, orig);
    nn_status s = copy_name(outer, copy, group);
    if (s == NN_OK) s = nn__append_layer(outer, copy);
    if (s != NN_OK) {
        nn__layer_free(copy);
        return s;
    }
    map[orig->index] = copy;
    return NN_OK;
}

static void roll_back(nn_model *outer, int n_before, nn_layer *old_output)
{
    while (outer->n_layers > n_before)
        nn__layer_free(outer->layers[--outer->n_layers]);
    outer->output = old_output;
    outer->generation++;
}

nn_layer *nn_model_apply(nn_model *outer, nn_layer *input, nn_model *inner,
                         nn_layer *inner_output, const nn_layer_opts *opts)
{
    nn_layer *last = inner_output ? inner_output : inner ? inner->output : NULL;
    nn_layer_opts o = NN_LAYER_OPTS_INIT;
    if (check_apply(outer, input, inner, last) != NN_OK ||
        nn__read_opts(&o, opts, "nn_model_apply") != NN_OK)
        return NULL;
    const char *group = o.name           ? o.name
                        : inner->name[0] ? inner->name
                                         : "model";
    if (strlen(group) >= NN_NAME_MAX) {
        nn__fail(NN_ERR_INVALID, "nn_model_apply: block name too long");
        return NULL;
    }
    bool *needed = nn__calloc((size_t)inner->n_layers, sizeof *needed);
    nn_layer **map = nn__calloc((size_t)inner->n_layers, sizeof *map);
    int n_before = outer->n_layers;
    nn_layer *old_output = outer->output;
    nn_status s = needed && map ? NN_OK : NN_ERR_NOMEM;
    if (s == NN_OK) {
        mark_ancestors(inner, last, needed);
        map[inner->input->index] = input;
    }
    for (int i = 0; s == NN_OK && i <= last->index; i++)
        if (needed[i] && inner->layers[i]->kind != NN_KIND_INPUT)
            s = instantiate(outer, inner->layers[i], map, group);
    nn_layer *result = s == NN_OK ? map[last->index] : NULL;
    if (s != NN_OK) roll_back(outer, n_before, old_output);
    nn__free(needed);
    nn__free(map);
    return result;
}

/* Model graph: creation, output, introspection. Layers are kept in
 * topological order because a layer can only be created from layers that
 * already exist (src/layers/create.c appends them). */
#include "nn_internal.h"

#include <stdio.h>
#include <string.h>

nn_model *nn_model_create(uint64_t seed)
{
    nn_model *m = nn__calloc(1, sizeof *m);
    if (!m) return NULL;
    m->seed = seed;
    nn__rng_seed(&m->rng, seed);
    return m;
}

nn_status nn_model_set_output(nn_model *m, nn_layer *output)
{
    NN_CHECK(m && output, NN_ERR_INVALID, "nn_model_set_output: NULL argument");
    NN_CHECK(output->model == m, NN_ERR_INVALID,
             "nn_model_set_output: layer '%s' belongs to another model",
             output->name);
    m->output = output;
    m->generation++;
    return NN_OK;
}

nn_layer *nn_model_input(const nn_model *m)
{
    if (!m) nn__fail(NN_ERR_INVALID, "nn_model_input: model is NULL");
    return m ? m->input : NULL;
}

nn_layer *nn_model_output(const nn_model *m)
{
    if (!m) nn__fail(NN_ERR_INVALID, "nn_model_output: model is NULL");
    return m ? m->output : NULL;
}

int nn_model_num_layers(const nn_model *m)
{
    if (!m) return nn__fail(NN_ERR_INVALID, "nn_model_num_layers: NULL model");
    return m->n_layers;
}

nn_layer *nn_model_layer(const nn_model *m, int index)
{
    if (!m || index < 0 || index >= m->n_layers) {
        nn__fail(NN_ERR_INVALID, "nn_model_layer: no layer %d", index);
        return NULL;
    }
    return m->layers[index];
}

nn_layer *nn_model_find_layer(const nn_model *m, const char *name)
{
    if (!m || !name) {
        nn__fail(NN_ERR_INVALID, "nn_model_find_layer: NULL argument");
        return NULL;
    }
    for (int i = 0; i < m->n_layers; i++)
        if (strcmp(m->layers[i]->name, name) == 0) return m->layers[i];
    nn__fail(NN_ERR_INVALID, "no layer named '%s'", name);
    return NULL;
}

const char *nn_layer_name(const nn_layer *l) { return l ? l->name : NULL; }

const char *nn_layer_type(const nn_layer *l)
{
    return l ? l->ops->type_name : NULL;
}

int nn_layer_output_shape(const nn_layer *l, int *shape, int cap)
{
    if (!l) return nn__fail(NN_ERR_INVALID, "nn_layer_output_shape: NULL");
    for (int i = 0; i < l->out.rank && i < cap && shape; i++)
        shape[i] = l->out.d[i];
    return l->out.rank;
}

int64_t nn_layer_num_params(const nn_layer *l)
{
    if (!l) return nn__fail(NN_ERR_INVALID, "nn_layer_num_params: NULL");
    int64_t n = 0;
    for (int i = 0; i < l->n_params; i++) n += l->params[i].value.size;
    return n;
}

int nn_layer_num_inputs(const nn_layer *l)
{
    if (!l) return nn__fail(NN_ERR_INVALID, "nn_layer_num_inputs: NULL");
    return l->n_inputs;
}

nn_layer *nn_layer_input(const nn_layer *l, int index)
{
    if (!l || index < 0 || index >= l->n_inputs) {
        nn__fail(NN_ERR_INVALID, "nn_layer_input: no input %d", index);
        return NULL;
    }
    return l->inputs[index];
}

int nn_layer_num_weights(const nn_layer *l)
{
    if (!l) return nn__fail(NN_ERR_INVALID, "nn_layer_num_weights: NULL");
    return l->n_params;
}

nn_tensor *nn_layer_weight(nn_layer *l, int index)
{
    if (!l || index < 0 || index >= l->n_params) {
        nn__fail(NN_ERR_INVALID, "nn_layer_weight: no weight %d", index);
        return NULL;
    }
    return &l->params[index].value;
}

const char *nn_layer_weight_name(const nn_layer *l, int index)
{
    if (!l || index < 0 || index >= l->n_params) {
        nn__fail(NN_ERR_INVALID, "nn_layer_weight_name: no weight %d", index);
        return NULL;
    }
    return l->params[index].name;
}

nn_tensor *nn_layer_weight_grad(nn_layer *l, int index)
{
    if (!l || index < 0 || index >= l->n_params) {
        nn__fail(NN_ERR_INVALID, "nn_layer_weight_grad: no weight %d", index);
        return NULL;
    }
    if (!l->params[index].grad.data) {
        nn__fail(NN_ERR_STATE, "layer '%s': no gradient computed yet",
                 l->name);
        return NULL;
    }
    return &l->params[index].grad;
}

int64_t nn_model_num_params(const nn_model *m)
{
    if (!m) return nn__fail(NN_ERR_INVALID, "nn_model_num_params: NULL");
    int64_t n = 0;
    for (int i = 0; i < m->n_layers; i++)
        n += nn_layer_num_params(m->layers[i]);
    return n;
}

int64_t nn_model_num_trainable_params(const nn_model *m)
{
    if (!m)
        return nn__fail(NN_ERR_INVALID,
                        "nn_model_num_trainable_params: NULL");
    int64_t n = 0;
    nn_param_iter it;
    nn__param_iter_init(&it, m, NULL);
    while (nn__param_next_slot(&it)) n += it.p->value.size;
    return n;
}

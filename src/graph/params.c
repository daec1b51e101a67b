/* The canonical walk over a model's parameters and their optimizer slots
 * (nn_internal.h explains the order). Everything that must agree on which
 * parameters learn, and which slot each one has, walks it: a second
 * hand-written loop could drift from it, and saved optimizer state would
 * then be restored onto the wrong tensors. */
#include "nn_internal.h"

#include <string.h>

void nn__param_iter_init(nn_param_iter *it, const nn_model *m,
                         const bool *layer_trainable)
{
    memset(it, 0, sizeof *it);
    it->model = m;
    it->layer_trainable = layer_trainable;
    it->param = -1;
    it->slot = -1;
}

bool nn__param_next(nn_param_iter *it)
{
    const nn_model *m = it->model;
    int j = it->param + 1;
    for (int i = it->layer; i < m->n_layers; i++, j = 0) {
        nn_layer *l = m->layers[i];
        if (j >= l->n_params) continue;
        bool on = it->layer_trainable ? it->layer_trainable[i] : l->trainable;
        it->layer = i;
        it->param = j;
        it->l = l;
        it->p = &l->params[j];
        it->trains = nn__param_trains(on, it->p);
        it->slot = it->trains ? it->n_slots++ : -1;
        return true;
    }
    it->layer = m->n_layers;
    it->l = NULL;
    it->p = NULL;
    it->trains = false;
    it->slot = -1;
    return false;
}

bool nn__param_next_slot(nn_param_iter *it)
{
    while (nn__param_next(it))
        if (it->trains) return true;
    return false;
}

int nn__param_slots(const nn_model *m)
{
    nn_param_iter it;
    nn__param_iter_init(&it, m, NULL);
    while (nn__param_next_slot(&it)) continue;
    return it.n_slots;
}

/* Internal interface of the optimizers (src/optim/). */
#ifndef NN_OPTIM_H
#define NN_OPTIM_H

#include "nn_internal.h"

/* Slots: slot k belongs to the k-th parameter of the parameter walk
 * (nn__param_next_slot, src/graph/params.c), which the checkpoint code
 * saves and restores them in; slot_size[k] is its element count.
 * Adam: slot_m[k] = first moment, slot_v[k] = second moment.
 * SGD: slot_m[k] = velocity (always allocated; stays zero when momentum
 * is 0); slot_v is unused (NULL, or an array of NULLs after a checkpoint
 * load). The step also accepts slots restored by the checkpoint loader as
 * long as their count and sizes match. */

/* Allocates the slots (zeroed) if there are none yet; checks that existing
 * slots still match the model (NN_ERR_STATE otherwise). */
nn_status nn__optimizer_prepare(nn_optimizer *o, const nn_model *m);

/* Clips the gradients of every parameter of m that trains as o says
 * (clipvalue, then global_clipnorm; src/optim/clip.c). Called by the step
 * when one of them is set. */
void nn__clip_gradients(const nn_optimizer *o, nn_model *m);

/* Elementwise updates over n values (src/optim/adam.c, sgd.c); t is the
 * 1-based step number. */
void nn__adam_update(const nn_adam_opts *opts, int64_t t, float *w,
                     const float *g, float *m, float *v, int64_t n);
void nn__sgd_update(const nn_sgd_opts *opts, float *w, const float *g,
                    float *vel, int64_t n);

#endif

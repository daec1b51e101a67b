/* Loss helpers shared with the training loop (src/loss/crossentropy.c). */
#ifndef NN_LOSS_H
#define NN_LOSS_H

#include "nn_internal.h"

/* What nn__loss's `correct` count is out of, for `batch` samples whose
 * output has `classes` values each: batch for the categorical losses
 * (one prediction per sample), batch * classes for binary cross-entropy
 * (one prediction per output value, as Keras' binary_accuracy averages).
 * accuracy = sum of correct / sum of denominators. */
int64_t nn__loss_accuracy_denominator(nn_loss kind, int batch,
                                      int64_t classes);

#endif

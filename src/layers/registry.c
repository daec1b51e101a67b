/* The ops table, made from the registry rows (NN_LAYER_KINDS in
 * nn_internal.h), the single place a kind is registered. The enum comes
 * from the same rows, so every kind has its entry; the assertions below
 * keep the stored kind numbers what each row says they are. */
#include "layers/layers.h"

#define AS_ENTRY(kind, number, ops) [kind] = &ops,
#define AS_NUMBER_CHECK(kind, number, ops)                                     \
    _Static_assert(kind == number, #kind " is not kind number " #number        \
                   ": rows stay in number order and a new kind takes the "     \
                   "next number at the end (checkpoints store the numbers)");

NN_LAYER_KINDS(AS_NUMBER_CHECK)

const nn_layer_ops *const nn__layer_registry[NN_KIND_COUNT] = {
    NN_LAYER_KINDS(AS_ENTRY)};

/* A layer's options as a checkpoint stores them: word i (4 bytes,
 * little-endian) of the config its kind's save_config writes, in the
 * layout docs/checkpoint-format.md gives. Tests read a kind's options
 * this way, not through the struct private to the kind's file.
 *
 * Include after cmocka.h and nn_internal.h. */
#ifndef NN_TEST_STORED_CONFIG_H
#define NN_TEST_STORED_CONFIG_H

#include <string.h>

static inline uint32_t stored_config_word(const nn_layer *l, int i)
{
    uint8_t b[256];
    size_t n = l->ops->save_config(l, b, sizeof b);
    assert_true(n <= sizeof b && (size_t)i * 4 + 4 <= n);
    uint32_t v = 0;
    for (int j = 0; j < 4; j++) v |= (uint32_t)b[4 * i + j] << (8 * j);
    return v;
}

static inline int32_t stored_config_i32(const nn_layer *l, int i)
{
    uint32_t u = stored_config_word(l, i);
    int32_t v;
    memcpy(&v, &u, sizeof v);
    return v;
}

static inline float stored_config_f32(const nn_layer *l, int i)
{
    uint32_t u = stored_config_word(l, i);
    float v;
    memcpy(&v, &u, sizeof v);
    return v;
}

#endif

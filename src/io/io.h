/* Internal interface of the file-format code (src/io/). Not API. */
#ifndef NN_IO_H
#define NN_IO_H

#include "nn_internal.h"

/* Checkpoint format limits (docs/checkpoint-format.md). */
#define NN_CKPT_VERSION 1u
#define NN_CKPT_MAX_FILE ((uint64_t)1 << 32)
#define NN_CKPT_MAX_LAYERS 16384u
#define NN_CKPT_MAX_CONFIG 4096u
#define NN_CKPT_MAX_ELEMS ((uint64_t)1 << 30)
#define NN_CKPT_MAX_OUT_ELEMS ((int64_t)1 << 31)
#define NN_CKPT_MAX_NAME_COUNTERS 256u

#define NN_CKPT_MAGIC "NNMODEL"  /* 8 bytes with the terminating NUL */
#define NN_CKPT_HEADER 24u        /* magic, version, flags, file size */
#define NN_CKPT_FLAG_OPTIMIZER 1u
#define NN_CKPT_FLAG_NAMES 2u /* section NAME: model and block names */
#define NN_CKPT_FLAG_CLIP 4u  /* section CLIP: the optimizer's clipping */
#define NN_CKPT_FLAG_LOSS 8u  /* section LOSS: a weighted sum, IoU, Dice */
#define NN_CKPT_FLAG_PREP 16u /* section PREP: preprocessing and decision */
#define NN_CKPT_MAX_ACTIVATION NN_ACT_LEAKY_RELU

/* Little-endian codecs shared by the writer and the reader. */
static inline void nn__put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint32_t nn__get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}
static inline uint64_t nn__get_le64(const uint8_t *p)
{
    return (uint64_t)nn__get_le32(p) | (uint64_t)nn__get_le32(p + 4) << 32;
}
/* zlib's crc32 continued from `crc` (0 to start) over any length. */
uint32_t nn__crc32(uint32_t crc, const uint8_t *p, size_t n);

/* Checks a model's preprocessing and decision (nn_preprocess_opts, every
 * field) against the model, for nn_model_set_preprocess, the classify
 * calls and the checkpoint's PREP section (src/io/infer.c). */
nn_status nn__preprocess_check(const nn_model *m, const nn_preprocess_opts *o,
                               const char *what);

/* nn_model_load with the status code kept (tests check it exactly). */
nn_status nn__model_load(const char *path, nn_model **out);

/* Largest tensor nn_load_idx accepts, in elements. */
#define NN_IDX_MAX_ELEMS ((uint64_t)1 << 31)

#endif

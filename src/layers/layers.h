/* Internal interface between the layer files. */
#ifndef NN_LAYERS_H
#define NN_LAYERS_H

#include "nn_internal.h"

/* Largest kernel, stride, filter or unit count a config may hold, and the
 * largest per-sample tensor (int32 offsets index it). */
#define NN_LAYER_DIM_MAX (1 << 24)
#define NN_SAMPLE_MAX INT32_MAX

extern const nn_layer_ops nn__input_ops;
extern const nn_layer_ops nn__conv2d_ops;
extern const nn_layer_ops nn__maxpool2d_ops;
extern const nn_layer_ops nn__avgpool2d_ops;
extern const nn_layer_ops nn__flatten_ops;
extern const nn_layer_ops nn__dropout_ops;
extern const nn_layer_ops nn__dense_ops;
extern const nn_layer_ops nn__relu_ops;
extern const nn_layer_ops nn__sigmoid_ops;
extern const nn_layer_ops nn__softmax_ops;
extern const nn_layer_ops nn__batchnorm_ops;
extern const nn_layer_ops nn__zeropad2d_ops;
extern const nn_layer_ops nn__add_ops;
extern const nn_layer_ops nn__concatenate_ops;
extern const nn_layer_ops nn__global_avgpool2d_ops;
extern const nn_layer_ops nn__resizing_ops;
extern const nn_layer_ops nn__locally_connected2d_ops;
extern const nn_layer_ops nn__repeat_channels_ops;
extern const nn_layer_ops nn__random_flip_ops;
extern const nn_layer_ops nn__random_rotation_ops;
extern const nn_layer_ops nn__random_translation_ops;
extern const nn_layer_ops nn__random_zoom_ops;
extern const nn_layer_ops nn__random_contrast_ops;

bool nn__activation_ok(nn_activation a);
bool nn__padding_ok(nn_padding p);
bool nn__initializer_ok(nn_initializer i);

/* Output length and leading pad of one spatial axis, Keras/TF rules:
 * SAME: out = ceil(in / s), pad = max((out - 1) * s + k - in, 0) / 2;
 * VALID: out = (in - k) / s + 1, no pad. Fails when a VALID window does
 * not fit. */
nn_status nn__window_axis(const nn_layer *l, const char *axis, int in, int k,
                          int s, nn_padding pad, int *out, int *pad_before);

/* Checks that l has one input of rank `rank` (0: any rank) and sets l->out
 * to a copy of its shape. */
nn_status nn__one_input(nn_layer *l, int rank);
/* Rejects per-sample outputs too large to index. */
nn_status nn__check_out_size(const nn_layer *l);

/* ---- configs: little-endian fixed-width fields ---- */

typedef struct nn_cfg_writer {
    uint8_t *buf;
    size_t cap, len; /* len counts every byte, even past cap */
} nn_cfg_writer;

void nn__cfg_put_i32(nn_cfg_writer *w, int32_t v);
void nn__cfg_put_f32(nn_cfg_writer *w, float v);

typedef struct nn_cfg_reader {
    const uint8_t *buf;
    size_t len, pos;
    bool short_read;
} nn_cfg_reader;

int32_t nn__cfg_get_i32(nn_cfg_reader *r);
float nn__cfg_get_f32(nn_cfg_reader *r);
/* NN_ERR_FORMAT unless the reader consumed exactly the whole buffer. */
nn_status nn__cfg_end(const nn_cfg_reader *r, const char *type);

/* Shared by the layers whose config is empty. */
size_t nn__save_no_config(const nn_layer *l, uint8_t *buf, size_t cap);
nn_status nn__load_no_config(nn_layer *l, const uint8_t *buf, size_t len);

/* Gradient buffer of parameter i, or NULL when it has none or does not
 * train (the backward pass then skips computing it). */
float *nn__param_grad(nn_layer *l, int i);

/* Whether a fused activation keeps its logits for the loss. */
bool nn__act_keeps_logits(nn_activation a);

/* Config of Conv2D and LocallyConnected2D (same layout). */
size_t nn__conv_config_save(const nn_layer *l, uint8_t *buf, size_t cap);
nn_status nn__conv_config_load(nn_layer *l, const uint8_t *buf, size_t len,
                               const char *kind);

#endif

/* Internal interface between the layer files. */
#ifndef NN_LAYERS_H
#define NN_LAYERS_H

#include "nn_internal.h"

#include <string.h>

/* Largest kernel, stride, filter or unit count a config may hold, and the
 * largest per-sample tensor (int32 offsets index it). */
#define NN_LAYER_DIM_MAX (1 << 24)
#define NN_SAMPLE_MAX INT32_MAX

/* Every kind's ops, declared from the registry rows (nn_internal.h). */
#define NN__DECLARE_OPS(kind, number, ops) extern const nn_layer_ops ops;
NN_LAYER_KINDS(NN__DECLARE_OPS)
#undef NN__DECLARE_OPS

/* A kind's config lives in its layer's config block (nn_layer.cfg) as a
 * struct T of the kind's own, which only its file sees.
 * NN_LAYER_CONFIG(T, get, set) checks at compile time that T fits the
 * block and declares
 *     T get(const nn_layer *l)               a copy of l's config,
 *     void set(nn_layer *l, const T *c)      c stored as l's config, the
 *                                            rest of the block zeroed.
 * Copies (memcpy), not a pointer cast, so that reading the block as T is
 * defined C; configs are a few words, read once per call. */
#define NN_LAYER_CONFIG(T, get, set)                                           \
    _Static_assert(sizeof(T) <= NN_LAYER_CFG_BYTES,                            \
                   #T " does not fit a layer's config block "                  \
                   "(NN_LAYER_CFG_BYTES)");                                    \
    static inline T get(const nn_layer *l)                                     \
    {                                                                          \
        T c;                                                                   \
        memcpy(&c, l->cfg, sizeof c);                                          \
        return c;                                                              \
    }                                                                          \
    static inline void set(nn_layer *l, const T *c)                            \
    {                                                                          \
        memset(l->cfg, 0, sizeof l->cfg);                                      \
        memcpy(l->cfg, c, sizeof *c);                                          \
    }

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

/* Checks l's fused activation and a kernel and bias initializer. */
nn_status nn__check_act_inits(const nn_layer *l, nn_initializer kinit,
                              nn_initializer binit, nn_status err,
                              const char *who);

/* Whether a fused activation keeps its logits for the loss. */
bool nn__act_keeps_logits(nn_activation a);

/* The fused activation of a layer whose output's last axis is the one a
 * softmax runs over (DepthwiseConv2D, Conv2DTranspose): the state that
 * keeps its logits (softmax, sigmoid) for the loss, those logits, the
 * activation applied in place on a forward's output (after keeping the
 * logits), and its backward on a backward's dout (unless dout already is
 * the pre-activation gradient). */
size_t nn__act_state_bytes(const nn_layer *l, int batch);
const float *nn__act_logits(const nn_layer *l, const void *state);
void nn__act_layer_forward(const nn_layer *l, const nn_fwd *a);
void nn__act_layer_backward(const nn_layer *l, const nn_bwd *a);

/* A bias [n] initialized as Keras initializes a 1-D weight: fan_in =
 * fan_out = n (matters only for a glorot or he bias initializer). */
void nn__init_bias(nn_param *p, nn_initializer init, float stddev,
                   nn_rng *rng);

/* Initializer stddev options (NN_INIT_RANDOM_NORMAL): each finite and
 * not negative, -0 included (0 means the default). */
nn_status nn__stddev_check(const float *sd, int n, nn_status err,
                           const char *who);

/* The sliding window of the segmentation convolutions (DepthwiseConv2D,
 * SeparableConv2D, and Conv2DTranspose's kernel and strides). */
typedef struct nn_window {
    int kh, kw, sh, sw;
    nn_padding padding;
    int pad_top, pad_left; /* derived by nn__window_build */
} nn_window;
/* Kernel and strides in 1..NN_LAYER_DIM_MAX, a known padding, use_bias 0
 * or 1. */
nn_status nn__window_check(const nn_window *w, int use_bias, nn_status err,
                           const char *who);
/* The output size over l's image input and the leading pads, Conv2D's
 * rules (nn__window_axis); l->out is left to the caller. */
nn_status nn__window_build(const nn_layer *l, nn_window *w, int *oh,
                           int *ow);
/* The window from l's input [h, w, c] to l's output [oh, ow] with f
 * channels, over a batch. */
nn_conv_geom nn__window_geom(const nn_window *w, const nn_layer *l, int batch,
                             int f);
/* g, made for a padded input, over that input without its zeros pad (top,
 * bottom, left, right; nn_fwd.pad) instead: the kernels treat what lies
 * outside the input as zeros, so only the leading pads need saying.
 * pad NULL: g unchanged. */
void nn__geom_fold_pad(nn_conv_geom *g, const int *pad);
void nn__window_receptive(const nn_window *w, nn_receptive *r);
/* Writes the window's kh, kw, sh, sw, padding; reads them back. */
void nn__window_save(nn_cfg_writer *wr, const nn_window *w);
void nn__window_load(nn_cfg_reader *r, nn_window *w);

/* The config Conv2D and LocallyConnected2D share (same layout, same
 * serialization). */
typedef struct nn_conv_cfg {
    int filters, kh, kw, sh, sw, use_bias;
    nn_padding padding;
    nn_initializer kinit, binit;
    int pad_top, pad_left; /* derived by build */
} nn_conv_cfg;
NN_LAYER_CONFIG(nn_conv_cfg, nn__conv_cfg, nn__set_conv_cfg)

/* Geometry of a built Conv2D layer over a batch (its derived padding
 * included). */
nn_conv_geom nn__conv2d_geom(const nn_layer *l, int batch);
/* Checks l's conv config and activation; valid_only: the kind takes only
 * VALID padding (LocallyConnected2D). */
nn_status nn__conv_config_check(const nn_layer *l, bool valid_only,
                                nn_status err, const char *who);
/* The build steps both kinds share: default initializers resolved, the
 * output window and leading padding of the image input derived and kept
 * in the config, l->out = [oh, ow, filters], checked. */
nn_status nn__conv_build_window(nn_layer *l);
size_t nn__conv_config_save(const nn_layer *l, uint8_t *buf, size_t cap);
nn_status nn__conv_config_load(nn_layer *l, const uint8_t *buf, size_t len,
                               const char *kind);
/* Receptive hooks: a window of kh x kw at stride sh x sw (the conv
 * config's); and a layer that leaves no positions (Flatten). */
void nn__conv_receptive(const nn_layer *l, nn_receptive *r);
void nn__receptive_whole(const nn_layer *l, nn_receptive *r);

#endif

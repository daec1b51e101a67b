/* Internal declarations shared by the library's source files. Not API. */
#ifndef NN_INTERNAL_H
#define NN_INTERNAL_H

#include "nn.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define NN_NAME_MAX 64
#define NN_LAYER_MAX_PARAMS 4
#define NN_LAYER_MAX_INPUTS 16

/* ---------------- errors (src/core/error.c) ---------------- */

/* Records a message for nn_last_error() and returns `status`. */
nn_status nn__fail(nn_status status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define NN_CHECK(cond, status, ...)                                            \
    do {                                                                       \
        if (!(cond)) return nn__fail((status), __VA_ARGS__);                   \
    } while (0)
#define NN_TRY(expr)                                                           \
    do {                                                                       \
        nn_status nn__s = (expr);                                              \
        if (nn__s != NN_OK) return nn__s;                                      \
    } while (0)

/* ---------------- memory (src/core/alloc.c) ---------------- */

/* All library allocations go through these so tests can inject failures.
 * Buffers from nn__alloc are 64-byte aligned. Sizes are checked for
 * overflow; a failure records NN_ERR_NOMEM's message. */
void *nn__alloc(size_t bytes);
/* As nn__alloc, without the message: for allocations that have a fallback
 * (the call then succeeds, and the last error must not say otherwise). */
void *nn__try_alloc(size_t bytes);
void *nn__calloc(size_t count, size_t size);
void *nn__realloc(void *p, size_t bytes);
void nn__free(void *p);
/* count * size without overflow; false on overflow. */
bool nn__mul_ok(size_t a, size_t b, size_t *out);

/* Test hook: the k-th allocation from now on (1-based) fails; 0 disables.
 * Returns how many allocations have happened since the last call. */
int64_t nn__debug_fail_alloc_after(int64_t k);

/* ---------------- resource limits (src/core/limits.c) ---------------- */

/* nn_limits.model_bytes in force. */
int64_t nn__model_bytes_limit(void);
/* NN_ERR_NOMEM when a data file (`what`: "idx: 'train.gz'") would decode
 * to more than nn_limits.data_bytes of tensors. */
nn_status nn__check_data_bytes(const char *what, uint64_t bytes);

/* ---------------- threads (src/core/threads.c) ---------------- */

int nn__threads(void);

/* ---------------- text into a caller's buffer (src/core/textbuf.c) -- */

typedef struct nn_sbuf {
    char *buf;
    size_t cap, len; /* len counts everything, even what did not fit */
} nn_sbuf;

void nn__sbuf_put(nn_sbuf *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* NUL-terminates (when cap > 0) and reports the full length + 1. */
void nn__sbuf_finish(nn_sbuf *s, size_t *needed);

/* ---------------- versioned options structs (src/core/opts.c) ------- */

/* The public options structs; each has a layout in core/opts.c. */
typedef enum nn_opts_kind {
    NN_OPTS_LAYER,
    NN_OPTS_CONV2D,
    NN_OPTS_POOL2D,
    NN_OPTS_DENSE,
    NN_OPTS_BATCHNORM,
    NN_OPTS_RESIZING,
    NN_OPTS_AUGMENT,
    NN_OPTS_LOSS,
    NN_OPTS_ADAM,
    NN_OPTS_SGD,
    NN_OPTS_FIT,
    NN_OPTS_DIAG,
    NN_OPTS_RESNET,
    NN_OPTS_IMAGE,
    NN_OPTS_PIXELS,
    NN_OPTS_DEFECTS,
    NN_OPTS_BINARY,
    NN_OPTS_LIMITS,
    NN_OPTS_BINARY_REPORT,
    NN_OPTS_DEPTHWISE_CONV2D,
    NN_OPTS_CONV2D_TRANSPOSE,
    NN_OPTS_UPSAMPLING2D,
    NN_OPTS_SEPARABLE_CONV2D,
    NN_OPTS_PREPROCESS,
    NN_OPTS_MOBILENET_V2,
    NN_OPTS_UNET,
    NN_OPTS_PRELU,
    NN_OPTS_KIND_COUNT
} nn_opts_kind;

/* Largest `size` a caller may claim; anything above is not a struct. */
#define NN_OPTS_MAX_SIZE ((size_t)64 << 10)

/* Reads a caller's options struct `src` (NULL: none) over the defaults
 * that `dst` holds, and sets dst->size to this library's size:
 *  - size < sizeof(size_t) or > NN_OPTS_MAX_SIZE: NN_ERR_INVALID;
 *  - shorter than this library's struct (an older header): only the
 *    members that lie wholly within `size` are copied;
 *  - longer (a newer header): accepted when every byte this library does
 *    not know is zero, NN_ERR_INVALID otherwise.
 * Messages start with `fn`, the public function, and name the _INIT
 * macro. Use it through nn__read_opts, which picks the layout from dst's
 * type. */
nn_status nn__read_opts_as(void *dst, const void *src, nn_opts_kind kind,
                           const char *fn);

#define NN_OPTS_KIND_OF(p)                                                     \
    _Generic((p), nn_layer_opts *: NN_OPTS_LAYER,                              \
             nn_conv2d_opts *: NN_OPTS_CONV2D,                                 \
             nn_pool2d_opts *: NN_OPTS_POOL2D,                                 \
             nn_dense_opts *: NN_OPTS_DENSE,                                   \
             nn_batchnorm_opts *: NN_OPTS_BATCHNORM,                           \
             nn_resizing_opts *: NN_OPTS_RESIZING,                             \
             nn_augment_opts *: NN_OPTS_AUGMENT,                               \
             nn_loss_opts *: NN_OPTS_LOSS,                                     \
             nn_adam_opts *: NN_OPTS_ADAM,                                     \
             nn_sgd_opts *: NN_OPTS_SGD,                                       \
             nn_fit_opts *: NN_OPTS_FIT,                                       \
             nn_diag_opts *: NN_OPTS_DIAG,                                     \
             nn_resnet_opts *: NN_OPTS_RESNET,                                 \
             nn_image_opts *: NN_OPTS_IMAGE,                                   \
             nn_pixels_opts *: NN_OPTS_PIXELS,                                 \
             nn_defects_opts *: NN_OPTS_DEFECTS,                               \
             nn_binary_opts *: NN_OPTS_BINARY,                                 \
             nn_limits *: NN_OPTS_LIMITS,                                      \
             nn_binary_report *: NN_OPTS_BINARY_REPORT,                        \
             nn_depthwise_conv2d_opts *: NN_OPTS_DEPTHWISE_CONV2D,             \
             nn_conv2d_transpose_opts *: NN_OPTS_CONV2D_TRANSPOSE,             \
             nn_upsampling2d_opts *: NN_OPTS_UPSAMPLING2D,                     \
             nn_separable_conv2d_opts *: NN_OPTS_SEPARABLE_CONV2D,             \
             nn_preprocess_opts *: NN_OPTS_PREPROCESS,                         \
             nn_mobilenet_v2_opts *: NN_OPTS_MOBILENET_V2,                     \
             nn_unet_opts *: NN_OPTS_UNET,                                     \
             nn_prelu_opts *: NN_OPTS_PRELU)

/* nn__read_opts(&o, opts, "nn_conv2d"), o holding the defaults. The
 * conditional makes a src of another struct type a compile error. */
#define nn__read_opts(dst, src, fn)                                            \
    nn__read_opts_as((dst), 1 ? (src) : (dst), NN_OPTS_KIND_OF(dst), (fn))

/* The other direction, for versioned structs the library fills (reports,
 * getters): copies the members of src that lie wholly within the caller's
 * dst->size bytes and leaves the rest of dst alone; dst->size keeps the
 * caller's value. NN_ERR_INVALID for a NULL dst or a size below the size
 * member. Use it through nn__write_opts. */
nn_status nn__write_opts_as(void *dst, const void *src, nn_opts_kind kind,
                            const char *fn);
#define nn__write_opts(dst, src, fn)                                           \
    nn__write_opts_as((dst), 1 ? (src) : (dst), NN_OPTS_KIND_OF(dst), (fn))

/* ---------------- files (src/core/file.c) ---------------- */

/* Writes a new file's bytes to f. A failed write shows in ferror(f), with
 * errno from the failing call; any other failure is a returned status
 * with its message. */
typedef nn_status (*nn_file_writer)(FILE *f, void *ctx);

/* Replaces the regular file `path` (or creates it) atomically: its old
 * bytes stay until the new ones are complete and durable. A symbolic link
 * to a regular file is followed; anything else at `path` is refused.
 * Stale temporaries of the same target are removed first. The rules and
 * the temporary names are described in core/file.c. Messages start with
 * `who` and name `path`. */
nn_status nn__file_replace(const char *path, const char *who,
                           nn_file_writer write, void *ctx);

/* Opens a file for reading without blocking (a FIFO would wait for a
 * writer) and refuses anything but a regular file (NN_ERR_IO). *size
 * receives its size; the caller closes *fd. */
nn_status nn__file_open(const char *path, const char *who, int *fd,
                        uint64_t *size);
/* Reads up to n bytes; *got < n only at the end of the file. */
nn_status nn__file_read(int fd, const char *path, const char *who,
                        uint8_t *buf, size_t n, size_t *got);

#define NN_FILE_HEAD_MAX 64

/* A format's envelope check on the first `bytes` (<= NN_FILE_HEAD_MAX) of
 * a file: it sees min(bytes, size) of them and the whole size. */
typedef struct nn_file_head {
    size_t bytes;
    nn_status (*check)(const uint8_t *head, size_t n, uint64_t size,
                       void *ctx);
    void *ctx;
} nn_file_head;

/* Reads a whole regular file into a new buffer (freed with nn__free).
 * A file over `max` bytes is refused (NN_ERR_FORMAT), and `head` (may be
 * NULL) checked, before anything is allocated or read beyond the head. */
nn_status nn__file_read_all(const char *path, const char *who, uint64_t max,
                            const nn_file_head *head, uint8_t **out,
                            size_t *size);

/* ---------------- random numbers (src/core/rng.c) ---------------- */

typedef struct nn_rng {
    uint64_t s[4];
} nn_rng;

void nn__rng_seed(nn_rng *r, uint64_t seed);
uint64_t nn__rng_u64(nn_rng *r);
float nn__rng_uniform(nn_rng *r);           /* [0, 1) */
float nn__rng_normal(nn_rng *r);            /* N(0, 1) */
uint64_t nn__rng_below(nn_rng *r, uint64_t n); /* [0, n) unbiased */
/* Counter-based uniform in [0,1): the same (key, index) always gives the
 * same value, so parallel loops draw reproducibly. */
float nn__hash_uniform(uint64_t key, uint64_t index);
/* The 24 random bits behind nn__hash_uniform (which is this times 2^-24),
 * inline so that loops drawing one value per element vectorise. */
static inline uint32_t nn__hash24(uint64_t key, uint64_t index)
{
    uint64_t z = (key ^ (index * 0xd1b54a32d192ed03ULL)) +
                 0x9e3779b97f4a7c15ULL; /* one splitmix64 step */
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return (uint32_t)((z ^ (z >> 31)) >> 40);
}

/* ---------------- tensors (src/core/tensor.c) ---------------- */

struct nn_tensor {
    int rank;
    int64_t shape[NN_MAX_RANK];
    int64_t size;
    float *data;
    bool owned;
};

/* Fills a tensor struct that borrows `data` (no allocation). */
void nn__tensor_view(nn_tensor *t, int rank, const int64_t *shape,
                     float *data);

/* ---------------- shapes (src/core/tensor.c) ---------------- */

/* Per-sample shape: the batch axis excluded. */
typedef struct nn_shape {
    int rank;
    int d[NN_MAX_RANK];
} nn_shape;

int64_t nn__shape_size(const nn_shape *s);
/* Shapes for people, as Keras prints them: a layer's output with its batch
 * axis, "(None, 28, 28, 1)", and a tensor's, "(32, 28, 28)" or "(32,)". */
#define NN_SHAPE_STR_MAX 128
void nn__shape_str(const nn_shape *s, char *out, size_t cap);
void nn__tensor_shape_str(const nn_tensor *t, char *out, size_t cap);

/* ---------------- layers ---------------- */

/* The registry of layer kinds, one row each: the kind's enum name, its
 * number and the nn_layer_ops its file in src/layers/ defines. The rows
 * generate the nn_layer_kind enum, the ops declarations
 * (src/layers/layers.h) and the ops table (src/layers/registry.c), so a
 * kind cannot exist without its ops. Kind numbers are stored in
 * checkpoint files: never renumber them; a new kind takes the next number
 * in a new last row (registry.c checks every row's number). */
#define NN_LAYER_KINDS(X)                                                      \
    X(NN_KIND_INPUT, 0, nn__input_ops)                                         \
    X(NN_KIND_CONV2D, 1, nn__conv2d_ops)                                       \
    X(NN_KIND_MAXPOOL2D, 2, nn__maxpool2d_ops)                                 \
    X(NN_KIND_AVGPOOL2D, 3, nn__avgpool2d_ops)                                 \
    X(NN_KIND_FLATTEN, 4, nn__flatten_ops)                                     \
    X(NN_KIND_DROPOUT, 5, nn__dropout_ops)                                     \
    X(NN_KIND_DENSE, 6, nn__dense_ops)                                         \
    X(NN_KIND_RELU, 7, nn__relu_ops)                                           \
    X(NN_KIND_SIGMOID, 8, nn__sigmoid_ops)                                     \
    X(NN_KIND_SOFTMAX, 9, nn__softmax_ops)                                     \
    /* layers of graph models */                                               \
    X(NN_KIND_BATCHNORM, 10, nn__batchnorm_ops)                                \
    X(NN_KIND_ZEROPAD2D, 11, nn__zeropad2d_ops)                                \
    X(NN_KIND_ADD, 12, nn__add_ops)                                            \
    X(NN_KIND_CONCATENATE, 13, nn__concatenate_ops)                            \
    X(NN_KIND_GLOBAL_AVGPOOL2D, 14, nn__global_avgpool2d_ops)                  \
    X(NN_KIND_RESIZING, 15, nn__resizing_ops)                                  \
    X(NN_KIND_LOCALLY_CONNECTED2D, 16, nn__locally_connected2d_ops)            \
    X(NN_KIND_REPEAT_CHANNELS, 17, nn__repeat_channels_ops)                    \
    /* augmentation layers */                                                  \
    X(NN_KIND_RANDOM_FLIP, 18, nn__random_flip_ops)                            \
    X(NN_KIND_RANDOM_ROTATION, 19, nn__random_rotation_ops)                    \
    X(NN_KIND_RANDOM_TRANSLATION, 20, nn__random_translation_ops)              \
    X(NN_KIND_RANDOM_ZOOM, 21, nn__random_zoom_ops)                            \
    X(NN_KIND_RANDOM_CONTRAST, 22, nn__random_contrast_ops)                   \
    /* segmentation layers */                                                  \
    X(NN_KIND_RELU6, 23, nn__relu6_ops)                                        \
    X(NN_KIND_UPSAMPLING2D, 24, nn__upsampling2d_ops)                          \
    X(NN_KIND_CROPPING2D, 25, nn__cropping2d_ops)                             \
    X(NN_KIND_DEPTHWISE_CONV2D, 26, nn__depthwise_conv2d_ops)                  \
    X(NN_KIND_CONV2D_TRANSPOSE, 27, nn__conv2d_transpose_ops)                  \
    X(NN_KIND_SEPARABLE_CONV2D, 28, nn__separable_conv2d_ops)                 \
    /* activation layers (issue #12) */                                        \
    X(NN_KIND_LEAKY_RELU, 29, nn__leaky_relu_ops)                              \
    X(NN_KIND_PRELU, 30, nn__prelu_ops)                                        \
    X(NN_KIND_ELU, 31, nn__elu_ops)                                            \
    X(NN_KIND_TANH, 32, nn__tanh_ops)

#define NN__KIND_ENUMERATOR(kind, number, ops) kind,
typedef enum nn_layer_kind {
    NN_LAYER_KINDS(NN__KIND_ENUMERATOR)
    NN_KIND_COUNT
} nn_layer_kind;
#undef NN__KIND_ENUMERATOR

typedef struct nn_param {
    char name[24]; /* Keras' names: "kernel", "depthwise_kernel", ... */
    nn_tensor value; /* shape as Keras stores it, e.g. [kh, kw, cin, cout] */
    nn_tensor grad;  /* same shape; data NULL until training needs it */
    bool trainable;  /* false for statistics such as moving means */
    /* Owners of value.data: layers of other models share it through
     * nn_model_apply. The count lives in the same allocation, just before
     * the data (nn__layer_add_param), so sharing never allocates, and it is
     * atomic because two models sharing weights may be freed, or applied
     * from, in different threads. */
    _Atomic int64_t *refs;
} nn_param;

/* Layers an inference pass computes inside a convolution's epilogue
 * (src/graph/fuse.c): Conv2D or DepthwiseConv2D -> BatchNormalization ->
 * [Add] -> [ReLU or ReLU6]. The head convolution writes the last one's
 * output; the others are skipped. */
typedef struct nn_fuse {
    int tail;               /* last fused layer; -1: the layer fuses nothing */
    const struct nn_layer *bn; /* inference-mode BatchNormalization or NULL */
    int residual;           /* the fused Add's other input, or -1 */
    bool relu;
    bool relu6;
    /* A ZeroPadding2D whose zeros the layer adds itself, reading that
     * layer's input (nn_fwd.pad); -1: none. pad: its top, bottom, left,
     * right. */
    int pad_of;
    int pad[4];
} nn_fuse;

/* Arguments of a forward pass of one layer over a batch. */
typedef struct nn_fwd {
    int batch;
    bool training;
    const float *const *in; /* one per input layer, [batch, in_shape] */
    float *out;             /* [batch, out_shape] */
    void *state;  /* layer's saved state for backward (state_bytes) */
    float *scratch; /* scratch_floats, shared by all layers of a context */
    uint64_t rng_key; /* counter-based randomness key for this call */
    /* Inference only: successors this layer computes too (a Conv2D's), or
     * NULL; residual is the fused Add's other input. */
    const nn_fuse *fuse;
    const float *residual;
    /* Inference only: zeros around in[0] (top, bottom, left, right) that
     * the layer adds itself: in[0] is then a folded ZeroPadding2D's input
     * and l->inputs[0]'s shape is in[0]'s padded. NULL: none. */
    const int *pad;
} nn_fwd;

/* Arguments of a backward pass. dout may be overwritten by the layer. */
typedef struct nn_bwd {
    int batch;
    const float *const *in;
    const float *out;
    float *dout;
    /* din[i] is NULL when input i needs no gradient. When accum[i] is true
     * the layer adds into din[i], otherwise it overwrites it. */
    float *const *din;
    const bool *accum;
    /* true: dout already is the gradient w.r.t. the pre-activation (the loss
     * fused softmax/sigmoid with cross-entropy), skip the activation. */
    bool dout_is_preact;
    void *state;
    float *scratch;
} nn_bwd;

/* How one layer changes receptive fields (nn_layer_receptive_field), per
 * spatial axis (0: height, 1: width): an output position reads `taps`
 * neighbouring positions of the layer's input, and neighbouring output
 * positions lie stride_num / stride_den input positions apart (a fraction,
 * so that a resize or an upsampling is exact). `whole`: the layer leaves
 * no positions (Flatten); its field is the whole model input. */
typedef struct nn_receptive {
    bool whole;
    int taps[2];
    int stride_num[2], stride_den[2];
} nn_receptive;

typedef struct nn_layer_ops {
    const char *type_name; /* Keras class name */
    const char *stem;      /* Keras default name stem ("conv2d") */
    /* Checks inputs and config, sets l->out and creates parameter shapes. */
    nn_status (*build)(nn_layer *l);
    /* Initializes parameters (may be NULL if none). */
    void (*init)(nn_layer *l, nn_rng *rng);
    /* Scratch floats for a batch (NULL: none). */
    size_t (*scratch_floats)(const nn_layer *l, int batch, bool training);
    /* Bytes kept from forward to backward (NULL: none). */
    size_t (*state_bytes)(const nn_layer *l, int batch);
    nn_status (*forward)(const nn_layer *l, const nn_fwd *a);
    /* Writes parameter gradients into l->params[i].grad (overwrite). */
    nn_status (*backward)(nn_layer *l, const nn_bwd *a);
    /* Logits saved by forward in state (softmax/sigmoid outputs), or NULL. */
    const float *(*logits)(const nn_layer *l, const void *state);
    /* The activation those logits go through when it is the kind's own
     * (the Softmax and Sigmoid layers); NN_ACT_NONE: the layer's fused
     * activation, l->activation. The loss fuses with a matching one. */
    nn_activation logits_act;
    /* Serialized config: writes at most cap bytes, returns length. */
    size_t (*save_config)(const nn_layer *l, uint8_t *buf, size_t cap);
    /* Restores config from bytes (before build). */
    nn_status (*load_config)(nn_layer *l, const uint8_t *buf, size_t len);
    /* Fills *r, which comes as one tap at stride 1 on both axes, for a
     * layer built on its input. NULL: the layer works position by
     * position, or merges its inputs (the largest of their fields). */
    void (*receptive)(const nn_layer *l, nn_receptive *r);
    /* Fills pad (top, bottom, left, right) and returns true when the layer
     * only surrounds its input with zeros (ZeroPadding2D). NULL: never. */
    bool (*zero_pad)(const nn_layer *l, int pad[4]);
    /* Whether the layer's forward can add the zeros pad around its input
     * itself (nn_fwd.pad) within the scratch scratch_floats gives for
     * its padded input. NULL: never. */
    bool (*reads_padded)(const nn_layer *l, const int pad[4]);
} nn_layer_ops;

/* The ops of every kind, indexed by kind (src/layers/registry.c, made
 * from NN_LAYER_KINDS: no entry is NULL). */
extern const nn_layer_ops *const nn__layer_registry[NN_KIND_COUNT];

/* Bytes of a layer's config block (see struct nn_layer). */
#define NN_LAYER_CFG_BYTES 128

struct nn_layer {
    nn_layer_kind kind;
    const nn_layer_ops *ops;
    nn_model *model;
    int index; /* position in model->layers (topological order) */
    char name[NN_NAME_MAX];
    int n_inputs;
    nn_layer *inputs[NN_LAYER_MAX_INPUTS];
    nn_shape out;
    int n_params;
    nn_param params[NN_LAYER_MAX_PARAMS];
    bool trainable;
    nn_activation activation; /* fused activation, if the kind has one */
    /* Name of the model this layer was applied from (nn_model_apply), so
     * the summary can show the block as one row; "" otherwise. */
    char group[NN_NAME_MAX];
    /* Kind-specific configuration: bytes that only the kind's own file
     * reads and writes, through a struct of its own (NN_LAYER_CONFIG in
     * src/layers/layers.h, which also checks that the struct fits), so no
     * other file depends on a kind's options. Plain data: a layer and its
     * builder's prototype are copied whole (nn__add_layer, nn_model_apply);
     * checkpoints store it through the kind's save_config. */
    unsigned char cfg[NN_LAYER_CFG_BYTES];
};

/* Creates a layer of `kind` in m with the given inputs, name (NULL: stem
 * default) and config already in *proto's cfg, activation and out fields;
 * builds and initializes it. Returns NULL with the error recorded. */
nn_layer *nn__add_layer(nn_model *m, nn_layer_kind kind, int n_inputs,
                        nn_layer *const *inputs, const char *name,
                        const nn_layer *proto);

/* Bound of a model's default-name counters: a counter stays an int and
 * a model that saves one loads it back. */
#define NN_NAME_COUNTER_MAX (1 << 30)

/* Layer plumbing the graph code shares (src/layers/create.c). */
void nn__layer_free(nn_layer *l);
bool nn__name_taken(const nn_model *m, const char *name);
/* Appends a built layer, making it the output. */
nn_status nn__append_layer(nn_model *m, nn_layer *l);

/* Parameter values the next layers built on this thread may allocate in
 * all; -1: no limit. The checkpoint loader sets it to what the file holds,
 * so a hostile config cannot make a build allocate without bound. */
extern _Thread_local int64_t nn__param_budget;

/* Adds a parameter to a layer during build. */
nn_status nn__layer_add_param(nn_layer *l, const char *name, int rank,
                              const int *shape, bool trainable);

/* Fills a parameter by initializer; fan_in/fan_out for glorot/he. */
void nn__init_param(nn_param *p, nn_initializer init, int64_t fan_in,
                    int64_t fan_out, nn_rng *rng);
/* The same with NN_INIT_RANDOM_NORMAL's stddev (<= 0: Keras' default,
 * NN_INIT_STDDEV_DEFAULT), for options structs that carry one. */
#define NN_INIT_STDDEV_DEFAULT 0.05f
void nn__init_param_sd(nn_param *p, nn_initializer init, float stddev,
                       int64_t fan_in, int64_t fan_out, nn_rng *rng);

/* ---------------- parameters: what trains, which slot ----------------
 * One rule decides whether a parameter learns: it and its layer are both
 * trainable (src/layers/common.c). layer_trainable is the layer's flag, or
 * the flag it is about to get. */
bool nn__param_trains(bool layer_trainable, const nn_param *p);

/* The canonical walk over a model's parameters (src/graph/params.c): the
 * layers in model order, each layer's parameters in order. Optimizer slot
 * k belongs to the k-th parameter that trains; the optimizer, its
 * clipping, checkpoints, freezing, the trainable count and the gradient
 * diagnostics all walk this, so saved optimizer state always lands on the
 * parameter it was made for. Weights that nn_model_apply shares are a
 * parameter of every layer holding them (each with its own gradient and
 * slot). Use:
 *     nn_param_iter it;
 *     nn__param_iter_init(&it, m, NULL);
 *     while (nn__param_next_slot(&it)) ... it.layer, it.p, it.slot ... */
typedef struct nn_param_iter {
    const nn_model *model;
    /* NULL: the layers' own flags; else one flag per layer to assume
     * instead (freezing plans the slots of the flags it is about to set). */
    const bool *layer_trainable;
    /* The current parameter, valid after a call that returned true: */
    int layer, param; /* indices in model->layers and layer->params */
    nn_layer *l;
    nn_param *p;
    bool trains;
    int slot;    /* its optimizer slot; -1 when it does not train */
    int n_slots; /* slots walked so far */
} nn_param_iter;

void nn__param_iter_init(nn_param_iter *it, const nn_model *m,
                         const bool *layer_trainable);
/* Moves to the next parameter (every one); false after the last. */
bool nn__param_next(nn_param_iter *it);
/* Moves to the next parameter that trains, i.e. the next slot. */
bool nn__param_next_slot(nn_param_iter *it);
/* How many parameters of m train: its optimizer's slot count. */
int nn__param_slots(const nn_model *m);
/* Copies the parameters of a part of m's state (include/nn.h,
 * nn_state_part), in the walk's order, into out or from in (either may be
 * NULL); the values, or with grads their gradients (which must exist).
 * Returns the part's float count (src/graph/state.c). */
int64_t nn__state_copy(const nn_model *m, nn_state_part part, bool grads,
                       float *out, const float *in);

/* ---------------- optimizers (src/optim/) ---------------- */

typedef enum nn_optim_kind {
    NN_OPTIM_SGD = 1,
    NN_OPTIM_ADAM = 2
} nn_optim_kind;

struct nn_optimizer {
    nn_optim_kind kind;
    nn_adam_opts adam;
    nn_sgd_opts sgd;
    int64_t iterations;
    /* Slots per trainable parameter, allocated on the first step:
     * Adam: m then v; SGD: velocity. Indexed by slot_index. */
    int n_slots;
    float **slot_m;
    float **slot_v;
    int64_t *slot_size;
    bool owned_by_model;
    /* Gradient clipping (0: off), applied by the step (src/optim/clip.c). */
    float global_clipnorm, clipvalue;
};

/* Whoever listens to an optimizer step (the model's gradient diagnostics,
 * which the training step wires in): told before and after each
 * parameter's update, then once the step is counted. The optimizer knows
 * nothing of the listener. */
typedef enum nn_step_event {
    NN_STEP_BEFORE_UPDATE = 0, /* at: the parameter about to change */
    NN_STEP_AFTER_UPDATE = 1,  /* at: the parameter just changed */
    NN_STEP_DONE = 2           /* at: NULL; iterations includes this step */
} nn_step_event;

typedef struct nn_step_hook {
    void (*fn)(void *ctx, nn_step_event event, const nn_param_iter *at,
               int64_t iterations);
    void *ctx;
} nn_step_hook;

/* Clips the gradients as o says, then updates every parameter of m that
 * trains with its gradient (each must have one). hook may be NULL. */
nn_status nn__optimizer_step(nn_optimizer *o, nn_model *m,
                             const nn_step_hook *hook);

/* ---------------- losses (src/loss/) ---------------- */

/* Computes mean loss over the batch and its gradient w.r.t. the output
 * (or, when logits is not NULL, w.r.t. the logits of the fused
 * activation). Counts correct predictions into *correct (may be NULL).
 * y: labels as the loss expects. dout may be NULL (evaluation only). */
nn_status nn__loss(nn_loss kind, int batch, int64_t classes,
                   const float *out, const float *logits, const float *y,
                   float *dout, double *loss_sum, int64_t *correct);

/* A compiled loss: the sum of weight[k] * kind[k] over k < n (one term of
 * weight 1 for nn_model_compile). Checked by nn__loss_check. */
#define NN_LOSS_MAX_TERMS 4
typedef struct nn_loss_terms {
    int n;
    nn_loss kind[NN_LOSS_MAX_TERMS];
    float weight[NN_LOSS_MAX_TERMS];
} nn_loss_terms;

/* ---------------- model and contexts (src/graph/) ---------------- */

struct nn_context {
    const nn_model *model;
    int batch_cap;
    bool training_ready; /* buffers sized for training (gradients) */
    /* A training plan in which layers that no gradient reaches (a frozen
     * backbone) are planned as for inference: shared buffers, fusion, no
     * gradient buffer. A pass that wants every gradient (the input's, or
     * the diagnostics' scan) needs a full plan. */
    bool lean;
    float **act;   /* per layer: [batch_cap, out] */
    float **dact;  /* per layer: gradient of its output (training only) */
    void **state;  /* per layer: state for backward */
    float *scratch;
    size_t scratch_floats;
    int64_t generation; /* model->generation when planned */
    int n_planned;      /* layers the buffers were planned for */
    /* Activation buffers shared between layers whose outputs are not live
     * at the same time (in_shared[i]: act[i] points into them): every layer
     * of an inference plan, the layers no gradient reaches in a lean
     * training plan. */
    float **shared;
    int n_shared;
    bool *in_shared;
    /* fuse[i].tail >= 0 for a convolution that computes its successors,
     * fuse[i].pad_of >= 0 for one that adds a ZeroPadding2D's zeros;
     * fused_into[i] is that convolution's index for a skipped successor
     * or ZeroPadding2D, else -1. NULL when nothing is fused. */
    nn_fuse *fuse;
    int *fused_into;
    /* The classify calls (src/io/infer.c): the model input they build from
     * 8-bit frames, and one frame in floats before it is resized. Sized by
     * the largest call so far, apart from the plan, so that steady-state
     * calls allocate nothing; freed with the context. */
    float *frames;
    size_t frames_floats;
    float *frame;
    size_t frame_floats;
};

/* Plans the fusion of a context (src/graph/fuse.c): only layers with
 * needs[i] false (no gradient reaches them) take part; in a training
 * plan only frozen BatchNormalization layers (inference mode) fuse. */
nn_status nn__plan_fusion(nn_context *c, const bool *needs, bool training);
/* Testing and benchmarks: no fusion in contexts planned from now on. */
void nn__fusion_disable(bool off);
/* Testing: fusion without the folding of ZeroPadding2D layers. */
void nn__pad_fold_disable(bool off);
/* BatchNormalization in inference mode as y = x * scale + shift per
 * channel (moving statistics). */
void nn__bn_fold(const nn_layer *bn, float *scale, float *shift);

struct nn_model {
    char name[NN_NAME_MAX]; /* "" until nn_model_set_name */
    nn_rng rng;
    uint64_t seed;
    int n_layers, cap_layers;
    nn_layer **layers; /* topological order: inputs precede users */
    nn_layer *input;
    nn_layer *output;
    /* Default names issued per kind ("dense_3" was the 4th); never more
     * than NN_NAME_COUNTER_MAX, which checkpoints are checked against. */
    int name_counts[NN_KIND_COUNT];
    /* training */
    nn_optimizer *opt;
    /* Gradient diagnostics (src/diag/; NULL: off); they outlive a
     * replaced optimizer. */
    struct nn_diag *diag;
    nn_loss loss; /* loss_terms.kind[0] */
    nn_loss_opts loss_opts;
    nn_loss_terms loss_terms;
    bool compiled;
    uint64_t step_counter; /* feeds dropout keys */
    nn_context *ctx; /* the context of the simple calls' training passes */
    /* ... and of their inference passes (predict, evaluate): planned as
     * any inference context, so the model's own predictions equal a new
     * context's and a loaded copy's bit for bit, whatever trained before;
     * two plans, so alternating train and predict re-plans nothing. */
    nn_context *infer_ctx;
    int64_t generation; /* bumped when the graph changes */
    /* Data-parallel training (src/train/parallel.c): the gradient hook,
     * the buffer the gradients are gathered into for it (grown on
     * demand), the batch of the last backward pass, and what the step
     * keys are salted with (the rank in a data-parallel fit, so dropout
     * draws differently on each process; 0 otherwise). */
    nn_grad_hook_fn grad_hook;
    void *grad_hook_user;
    float *grad_fused;
    int64_t grad_fused_cap;
    int64_t grad_samples;
    uint64_t key_stream;
    /* The product's preprocessing and decision (nn_model_set_preprocess,
     * checkpoint section PREP); has_preprocess false: none. */
    bool has_preprocess;
    nn_preprocess_opts preprocess;
};

/* (Re)plans a context for a batch size; allocates only when it grows, the
 * graph changed, or a training pass wants every gradient (full) from a
 * lean plan. */
nn_status nn__context_plan(nn_context *ctx, int batch, bool training,
                           bool full);
/* needs[i]: layer i's output gradient leads to something that learns
 * (a trainable parameter upstream) or to the requested input gradient;
 * the backward pass runs exactly these layers. */
void nn__mark_needs(const nn_model *m, bool want_dx, bool *needs);
/* Forward pass on batch rows of x (already [batch, input]). */
nn_status nn__forward(nn_context *ctx, const float *x, int batch,
                      bool training, uint64_t rng_key);
/* Backward pass from the loss gradient already in ctx->dact[output];
 * dx (optional) receives the input gradient. */
nn_status nn__backward(nn_context *ctx, int batch, bool dout_is_preact,
                       float *dx);
nn_context *nn__context_new(const nn_model *m);
/* Bytes an inference plan for `batch` samples allocates (activations in
 * shared buffers, layer state, scratch), measured without allocating it;
 * *over receives the first layer by which the plan passes `limit` bytes
 * (limit < 0: none), else NULL. Fails only for want of memory. */
nn_status nn__plan_bytes(const nn_model *m, int batch, int64_t limit,
                         int64_t *bytes, const nn_layer **over);
/* Predictions of x into out; messages start with `what`. */
nn_status nn__predict(nn_context *ctx, const nn_tensor *x, nn_tensor *out,
                      int batch_size, const char *what);
/* Checks that data tensor t is [N, layer l's output shape]; the message
 * names the argument (`what`, "nn_model_fit: x"), both shapes and l. */
nn_status nn__check_data(const nn_layer *l, const nn_tensor *t,
                         const char *what);

/* ---------------- kernels (src/kernels/) ---------------- */
/* Pure numeric routines on raw NHWC buffers; know nothing of models. */

typedef struct nn_conv_geom {
    int n, h, w, c;       /* input */
    int kh, kw, sh, sw;   /* kernel, stride */
    int pad_top, pad_left;
    int oh, ow;           /* output spatial */
    int f;                /* filters */
} nn_conv_geom;

/* C[m,n] (+)= A[m,k] * B[k,n] with optional transposes, row-major, split
 * over the rows of C across the library's threads. */
void nn__gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k,
             const float *a, int64_t lda, const float *b, int64_t ldb,
             float beta, float *c, int64_t ldc);

/* out[n,oh,ow,f] = conv(x, w[kh,kw,c,f]) + bias (bias may be NULL). */
void nn__conv2d_forward(const nn_conv_geom *g, const float *x, const float *w,
                       const float *bias, float *out, float *scratch);
size_t nn__conv2d_forward_scratch(const nn_conv_geom *g);
/* dw, db (may be NULL) overwritten; dx (may be NULL) overwritten or added
 * (accum). */
void nn__conv2d_backward(const nn_conv_geom *g, const float *x, const float *w,
                        const float *dout, float *dx, bool accum, float *dw,
                        float *db, float *scratch);
size_t nn__conv2d_backward_scratch(const nn_conv_geom *g, bool need_dx);

/* Naive references used by tests. */
void nn__conv2d_forward_ref(const nn_conv_geom *g, const float *x,
                           const float *w, const float *bias, float *out);

#endif

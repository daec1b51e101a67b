/*
 * libnn - an embeddable neural-network library with a stable C ABI.
 *
 * This header is the whole public API: what is not declared here is not API.
 *
 * Conventions (see docs/api.md for the guide):
 *  - Handles are opaque. Every create has a free; every free accepts NULL.
 *  - Fallible calls return nn_status (NN_OK = 0, errors negative).
 *    Constructors return NULL on failure. nn_last_error() returns the
 *    message of the last failure on the calling thread.
 *  - Options that may grow live in structs whose first member is their own
 *    size, filled by an NN_*_INIT macro. A NULL options pointer means
 *    defaults. The library reads only the first `size` bytes, so a program
 *    built against an older header keeps working with a newer library.
 *    New members are only ever appended.
 *  - Enum values are explicit and never renumbered.
 *  - Tensors are float32, row-major, images NHWC (channels last).
 *  - Thread safety: a model may be used for inference from many threads at
 *    once through separate nn_context objects. Building, compiling,
 *    training, loading weights and freeing need exclusive access.
 *  - The library never prints, aborts or exits.
 */
#ifndef NN_H
#define NN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(NN_BUILDING) && defined(__GNUC__)
#define NN_API __attribute__((visibility("default")))
#else
#define NN_API
#endif

#define NN_VERSION_MAJOR 0
#define NN_VERSION_MINOR 1
#define NN_VERSION_PATCH 0
#define NN_VERSION_NUMBER                                                      \
    (NN_VERSION_MAJOR * 10000 + NN_VERSION_MINOR * 100 + NN_VERSION_PATCH)

/* "0.1.0"; the version of the library actually loaded. */
NN_API const char *nn_version(void);
/* NN_VERSION_NUMBER of the library actually loaded. */
NN_API int nn_version_number(void);

/* ------------------------------------------------------------------ */
/* Status codes and errors                                             */
/* ------------------------------------------------------------------ */

typedef enum nn_status {
    NN_OK = 0,
    NN_ERR_INVALID = -1,     /* bad argument: NULL handle, out-of-range value */
    NN_ERR_SHAPE = -2,       /* shapes do not fit together */
    NN_ERR_NOMEM = -3,       /* an allocation failed */
    NN_ERR_IO = -4,          /* open/read/write/rename failed */
    NN_ERR_FORMAT = -5,      /* a file is malformed, truncated or corrupt */
    NN_ERR_NUMERIC = -6,     /* NaN or Inf where a finite number is needed */
    NN_ERR_STATE = -7,       /* call not valid now (e.g. fit before compile) */
    NN_ERR_UNSUPPORTED = -8, /* valid request this build cannot do */
    NN_ERR_CANCELLED = -9    /* a callback asked to stop */
} nn_status;

/* Message of the last failure on the calling thread; "" if none.
 * The pointer stays valid until the next libnn call on this thread. */
NN_API const char *nn_last_error(void);
/* Static name of a status code ("NN_ERR_SHAPE"); never NULL. */
NN_API const char *nn_status_name(nn_status status);
/* Clears the calling thread's last error message and status. */
NN_API void nn_clear_error(void);
/* Status of the last failure on the calling thread (NN_OK if none): tells
 * why a constructor returned NULL. */
NN_API nn_status nn_last_status(void);

/* ------------------------------------------------------------------ */
/* Threads                                                             */
/* ------------------------------------------------------------------ */

/* Sets how many threads libnn's kernels use (default: all cores). The
 * setting is process-wide; n <= 0 restores the default. libnn runs its
 * matrix products single-threaded inside its own parallel loops so BLAS and
 * libnn never oversubscribe the cores: it sets OpenBLAS to one thread. */
NN_API nn_status nn_set_num_threads(int n);
NN_API int nn_get_num_threads(void);

/* ------------------------------------------------------------------ */
/* Tensors                                                             */
/* ------------------------------------------------------------------ */

#define NN_MAX_RANK 8

typedef struct nn_tensor nn_tensor;

/* New zero-filled float32 tensor; shape[0] is the batch axis for data. */
NN_API nn_tensor *nn_tensor_create(int rank, const int64_t *shape);
/* Wraps a caller's buffer without copying. The caller keeps ownership of
 * `data` and must keep it alive while the tensor is used. */
NN_API nn_tensor *nn_tensor_wrap(int rank, const int64_t *shape, float *data);
NN_API void nn_tensor_free(nn_tensor *t);
NN_API int nn_tensor_rank(const nn_tensor *t);
/* Size of one axis; -1 (and an error message) for a bad axis. Negative
 * axes count from the end. */
NN_API int64_t nn_tensor_dim(const nn_tensor *t, int axis);
/* Number of elements. */
NN_API int64_t nn_tensor_size(const nn_tensor *t);
/* Copies the shape into shape[0..rank-1]; cap is the array's length. */
NN_API nn_status nn_tensor_shape(const nn_tensor *t, int64_t *shape, int cap);
NN_API float *nn_tensor_data(nn_tensor *t);
NN_API const float *nn_tensor_data_const(const nn_tensor *t);
/* Reinterprets the shape without moving data (same element count). */
NN_API nn_status nn_tensor_reshape(nn_tensor *t, int rank, const int64_t *shape);

/* ------------------------------------------------------------------ */
/* Models and layers                                                   */
/* ------------------------------------------------------------------ */

typedef struct nn_model nn_model;
typedef struct nn_layer nn_layer; /* owned by its model; never freed alone */
typedef struct nn_optimizer nn_optimizer;
typedef struct nn_context nn_context;
typedef struct nn_history nn_history;

typedef enum nn_padding {
    NN_PADDING_VALID = 0,
    NN_PADDING_SAME = 1
} nn_padding;

typedef enum nn_activation {
    NN_ACT_NONE = 0, /* "linear" */
    NN_ACT_RELU = 1,
    NN_ACT_SIGMOID = 2,
    NN_ACT_SOFTMAX = 3 /* over the last axis */
} nn_activation;

typedef enum nn_initializer {
    NN_INIT_DEFAULT = 0, /* the layer's Keras default */
    NN_INIT_ZEROS = 1,
    NN_INIT_ONES = 2,
    NN_INIT_GLOROT_UNIFORM = 3,
    NN_INIT_GLOROT_NORMAL = 4,
    NN_INIT_HE_UNIFORM = 5,
    NN_INIT_HE_NORMAL = 6
} nn_initializer;

/* A new empty model. All its randomness (initial weights, dropout,
 * shuffling) comes from one generator seeded with `seed`. */
NN_API nn_model *nn_model_create(uint64_t seed);
/* Frees the model, its layers, weights, optimizer and contexts' model data.
 * Contexts created from it must be freed first. NULL is a no-op. */
NN_API void nn_model_free(nn_model *m);

/* Layer options that most layers share. */
typedef struct nn_layer_opts {
    size_t size;      /* sizeof(nn_layer_opts) */
    const char *name; /* NULL: Keras-style default ("dense", "dense_1", ...) */
} nn_layer_opts;
#define NN_LAYER_OPTS_INIT {sizeof(nn_layer_opts), NULL}

/* Input of `rank` dimensions per sample (the batch axis excluded):
 * an image is {height, width, channels}. */
NN_API nn_layer *nn_input(nn_model *m, int rank, const int *shape,
                          const nn_layer_opts *opts);

typedef struct nn_conv2d_opts {
    size_t size; /* sizeof(nn_conv2d_opts) */
    const char *name;
    int stride_h, stride_w;     /* default 1, 1 */
    nn_padding padding;         /* default VALID */
    int use_bias;               /* default 1 */
    nn_activation activation;   /* default NONE */
    nn_initializer kernel_init; /* default GLOROT_UNIFORM */
    nn_initializer bias_init;   /* default ZEROS */
} nn_conv2d_opts;
#define NN_CONV2D_OPTS_INIT                                                    \
    {sizeof(nn_conv2d_opts), NULL, 1, 1, NN_PADDING_VALID, 1, NN_ACT_NONE,    \
     NN_INIT_DEFAULT, NN_INIT_DEFAULT}

/* Conv2D(filters, (kh, kw)). Kernel layout [kh, kw, in_ch, filters]. */
NN_API nn_layer *nn_conv2d(nn_model *m, nn_layer *input, int filters, int kh,
                           int kw, const nn_conv2d_opts *opts);

typedef struct nn_pool2d_opts {
    size_t size; /* sizeof(nn_pool2d_opts) */
    const char *name;
    int stride_h, stride_w; /* 0: equal to the pool size (Keras default) */
    nn_padding padding;     /* default VALID */
} nn_pool2d_opts;
#define NN_POOL2D_OPTS_INIT {sizeof(nn_pool2d_opts), NULL, 0, 0, NN_PADDING_VALID}

NN_API nn_layer *nn_maxpool2d(nn_model *m, nn_layer *input, int ph, int pw,
                              const nn_pool2d_opts *opts);
/* Average pooling; with SAME padding the padded cells are not counted. */
NN_API nn_layer *nn_avgpool2d(nn_model *m, nn_layer *input, int ph, int pw,
                              const nn_pool2d_opts *opts);

NN_API nn_layer *nn_flatten(nn_model *m, nn_layer *input,
                            const nn_layer_opts *opts);

/* Inverted dropout: in training each value is zeroed with probability
 * `rate` and the rest scaled by 1/(1-rate); identity in inference. */
NN_API nn_layer *nn_dropout(nn_model *m, nn_layer *input, float rate,
                            const nn_layer_opts *opts);

typedef struct nn_dense_opts {
    size_t size; /* sizeof(nn_dense_opts) */
    const char *name;
    int use_bias;               /* default 1 */
    nn_activation activation;   /* default NONE */
    nn_initializer kernel_init; /* default GLOROT_UNIFORM */
    nn_initializer bias_init;   /* default ZEROS */
} nn_dense_opts;
#define NN_DENSE_OPTS_INIT                                                     \
    {sizeof(nn_dense_opts), NULL, 1, NN_ACT_NONE, NN_INIT_DEFAULT,             \
     NN_INIT_DEFAULT}

/* Dense(units) over the last axis. Kernel layout [in, units]. */
NN_API nn_layer *nn_dense(nn_model *m, nn_layer *input, int units,
                          const nn_dense_opts *opts);

NN_API nn_layer *nn_relu(nn_model *m, nn_layer *input,
                         const nn_layer_opts *opts);
NN_API nn_layer *nn_sigmoid(nn_model *m, nn_layer *input,
                            const nn_layer_opts *opts);
/* Softmax over the last axis. */
NN_API nn_layer *nn_softmax(nn_model *m, nn_layer *input,
                            const nn_layer_opts *opts);

/* --- graph-model layers --- */

typedef struct nn_batchnorm_opts {
    size_t size; /* sizeof(nn_batchnorm_opts) */
    const char *name;
    /* Keras convention: moving = momentum * moving + (1 - momentum) * batch.
     * PyTorch's momentum m corresponds to 1 - m here. */
    float momentum; /* 0.99 */
    float epsilon;  /* 1e-3 (Keras' ResNet50: 1.001e-5; PyTorch: 1e-5) */
    int center;     /* 1: learn beta */
    int scale;      /* 1: learn gamma */
} nn_batchnorm_opts;
#define NN_BATCHNORM_OPTS_INIT                                                 \
    {sizeof(nn_batchnorm_opts), NULL, 0.99f, 1e-3f, 1, 1}

/* BatchNormalization over the last (channel) axis. Weights in Keras order:
 * gamma, beta (trainable), moving_mean, moving_variance (not trainable).
 * Training uses batch statistics and updates the moving ones; inference
 * and a frozen layer use the moving statistics. */
NN_API nn_layer *nn_batchnorm(nn_model *m, nn_layer *input,
                              const nn_batchnorm_opts *opts);

/* ZeroPadding2D: adds zero rows/columns around an image. */
NN_API nn_layer *nn_zeropad2d(nn_model *m, nn_layer *input, int top,
                              int bottom, int left, int right,
                              const nn_layer_opts *opts);

/* Element-wise sum of n >= 2 inputs of equal shape. */
NN_API nn_layer *nn_add(nn_model *m, int n, nn_layer *const *inputs,
                        const nn_layer_opts *opts);

/* Concatenation of n >= 2 inputs along the last (channel) axis. */
NN_API nn_layer *nn_concatenate(nn_model *m, int n, nn_layer *const *inputs,
                                const nn_layer_opts *opts);

/* GlobalAveragePooling2D: [H, W, C] -> [C]. */
NN_API nn_layer *nn_global_avgpool2d(nn_model *m, nn_layer *input,
                                     const nn_layer_opts *opts);

typedef enum nn_interpolation {
    NN_INTERP_BILINEAR = 0,
    NN_INTERP_NEAREST = 1
} nn_interpolation;

typedef struct nn_resizing_opts {
    size_t size; /* sizeof(nn_resizing_opts) */
    const char *name;
    nn_interpolation interpolation; /* BILINEAR */
} nn_resizing_opts;
#define NN_RESIZING_OPTS_INIT                                                  \
    {sizeof(nn_resizing_opts), NULL, NN_INTERP_BILINEAR}

/* Resizing to height x width (bilinear: half-pixel centers, as
 * tf.image.resize and PyTorch's interpolate(align_corners=False)). */
NN_API nn_layer *nn_resizing(nn_model *m, nn_layer *input, int height,
                             int width, const nn_resizing_opts *opts);

/* Repeats the channels `times` times: [H, W, C] -> [H, W, C * times], so
 * grayscale data can feed an RGB backbone. */
NN_API nn_layer *nn_repeat_channels(nn_model *m, nn_layer *input, int times,
                                    const nn_layer_opts *opts);

/* LocallyConnected2D: a convolution whose weights are not shared: one
 * kernel [kh*kw*in, filters] and one bias per output position. Padding
 * must be VALID (as in Keras). Kernel [oh*ow, kh*kw*in, filters], bias
 * [oh, ow, filters]. */
NN_API nn_layer *nn_locally_connected2d(nn_model *m, nn_layer *input,
                                        int filters, int kh, int kw,
                                        const nn_conv2d_opts *opts);

/* --- augmentation layers: active in training only, identity otherwise --- */

typedef enum nn_flip_mode {
    NN_FLIP_HORIZONTAL = 1,
    NN_FLIP_VERTICAL = 2,
    NN_FLIP_HORIZONTAL_AND_VERTICAL = 3
} nn_flip_mode;

typedef enum nn_fill_mode {
    NN_FILL_REFLECT = 0, /* Keras' default */
    NN_FILL_WRAP = 1,
    NN_FILL_CONSTANT = 2,
    NN_FILL_NEAREST = 3
} nn_fill_mode;

typedef struct nn_augment_opts {
    size_t size; /* sizeof(nn_augment_opts) */
    const char *name;
    nn_fill_mode fill_mode;         /* REFLECT */
    nn_interpolation interpolation; /* BILINEAR */
    float fill_value;               /* 0, for CONSTANT */
} nn_augment_opts;
#define NN_AUGMENT_OPTS_INIT                                                   \
    {sizeof(nn_augment_opts), NULL, NN_FILL_REFLECT, NN_INTERP_BILINEAR, 0.0f}

NN_API nn_layer *nn_random_flip(nn_model *m, nn_layer *input,
                                nn_flip_mode mode, const nn_layer_opts *opts);
/* Angle uniform in [lower*2*pi, upper*2*pi] (Keras RandomRotation((lower,
 * upper))); RandomRotation(f) is lower = -f, upper = f. */
NN_API nn_layer *nn_random_rotation(nn_model *m, nn_layer *input, float lower,
                                    float upper, const nn_augment_opts *opts);
/* Shifts by a fraction of height/width drawn from [h_lo, h_hi] and
 * [w_lo, w_hi]. */
NN_API nn_layer *nn_random_translation(nn_model *m, nn_layer *input,
                                       float h_lo, float h_hi, float w_lo,
                                       float w_hi, const nn_augment_opts *opts);
/* Zoom by a factor drawn per axis from [lo, hi] (Keras RandomZoom:
 * negative values zoom in, positive values zoom out). */
NN_API nn_layer *nn_random_zoom(nn_model *m, nn_layer *input, float h_lo,
                                float h_hi, float w_lo, float w_hi,
                                const nn_augment_opts *opts);
/* Contrast factor drawn from [1 - lower, 1 + upper] per image. */
NN_API nn_layer *nn_random_contrast(nn_model *m, nn_layer *input, float lower,
                                    float upper, const nn_layer_opts *opts);

/* --- freezing and receptive fields --- */

/* A frozen layer (trainable 0) gets no optimizer updates and is counted as
 * non-trainable; a frozen BatchNormalization runs in inference mode. */
NN_API nn_status nn_layer_set_trainable(nn_layer *l, int trainable);
NN_API int nn_layer_trainable(const nn_layer *l);
/* Sets every layer of the model. */
NN_API nn_status nn_model_set_trainable(nn_model *m, int trainable);

/* Receptive field (rows, cols of model input that can affect one output
 * position) and jump (product of strides) of a layer's output, relative to
 * the model input. */
NN_API nn_status nn_layer_receptive_field(const nn_layer *l, int *rf_h,
                                          int *rf_w, int *jump_h, int *jump_w);

/* --- composition --- */

/* Names the model ("resnet50"); the name labels it when it is applied
 * inside another model. */
NN_API nn_status nn_model_set_name(nn_model *m, const char *name);
NN_API const char *nn_model_name(const nn_model *m);

/* Uses `inner` as a block of `outer`: instantiates inner's layers from its
 * input up to `inner_output` (NULL: inner's output) inside outer, fed by
 * `input`, whose shape must equal inner's input shape. The new layers
 * SHARE their weights with inner's (training either model changes both;
 * either model may be freed first) and keep their names and trainable
 * flags; a name already used in outer gets the prefix "<block>/". The
 * summary shows them as one row named opts->name, else inner's name, else
 * "model". Taking inner_output = the k-th layer keeps only the first
 * layers (Keras: Model(base.input, base.layers[k].output)). Returns the
 * layer of outer that corresponds to inner_output. */
NN_API nn_layer *nn_model_apply(nn_model *outer, nn_layer *input,
                                nn_model *inner, nn_layer *inner_output,
                                const nn_layer_opts *opts);

/* Marks the model's output layer (default: the last layer added). */
NN_API nn_status nn_model_set_output(nn_model *m, nn_layer *output);

/* --- introspection --- */
NN_API nn_layer *nn_model_input(const nn_model *m);  /* NULL if none yet */
NN_API nn_layer *nn_model_output(const nn_model *m); /* NULL if empty */
NN_API int nn_model_num_layers(const nn_model *m);
NN_API nn_layer *nn_model_layer(const nn_model *m, int index);
NN_API nn_layer *nn_model_find_layer(const nn_model *m, const char *name);
NN_API const char *nn_layer_name(const nn_layer *l);
/* Keras class name: "Conv2D", "MaxPooling2D", ... */
NN_API const char *nn_layer_type(const nn_layer *l);
/* Output shape per sample (batch axis excluded). Returns the rank. */
NN_API int nn_layer_output_shape(const nn_layer *l, int *shape, int cap);
NN_API int64_t nn_layer_num_params(const nn_layer *l);
NN_API int nn_layer_num_inputs(const nn_layer *l);
NN_API nn_layer *nn_layer_input(const nn_layer *l, int index);

/* Parameter tensors of a layer, in Keras order (kernel, bias, ...).
 * The returned tensors borrow the model's memory: do not free them; they
 * stay valid until the model is freed. Writing to them changes weights. */
NN_API int nn_layer_num_weights(const nn_layer *l);
NN_API nn_tensor *nn_layer_weight(nn_layer *l, int index);
/* Name of a parameter: "kernel", "bias". */
NN_API const char *nn_layer_weight_name(const nn_layer *l, int index);
/* Gradient of the loss w.r.t. a parameter after the last training step
 * (nn_model_train_batch or nn_model_backward). NULL before any. */
NN_API nn_tensor *nn_layer_weight_grad(nn_layer *l, int index);

/* Total / trainable / non-trainable parameter counts. */
NN_API int64_t nn_model_num_params(const nn_model *m);
NN_API int64_t nn_model_num_trainable_params(const nn_model *m);

/* Writes a Keras-style summary table into buf (always NUL-terminated when
 * cap > 0). *needed (if not NULL) receives the full length + 1, so a call
 * with cap = 0 measures. Returns NN_ERR_INVALID only for bad arguments;
 * truncation is not an error. */
NN_API nn_status nn_model_summary(const nn_model *m, char *buf, size_t cap,
                                  size_t *needed);

/* ------------------------------------------------------------------ */
/* Losses, optimizers, compile                                         */
/* ------------------------------------------------------------------ */

typedef enum nn_loss {
    NN_LOSS_CATEGORICAL_CROSSENTROPY = 1, /* labels one-hot [N, C] */
    NN_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY = 2, /* labels [N] class ids */
    NN_LOSS_BINARY_CROSSENTROPY = 3 /* labels in [0,1], output's shape */
} nn_loss;

typedef struct nn_loss_opts {
    size_t size; /* sizeof(nn_loss_opts) */
    /* 1: the model output is logits. 0 (default, Keras): the output is
     * probabilities. When the output layer ends in softmax (CCE) or sigmoid
     * (BCE), libnn computes the loss from that layer's logits, as Keras
     * does, so the loss is exact and stable either way. */
    int from_logits;
} nn_loss_opts;
#define NN_LOSS_OPTS_INIT {sizeof(nn_loss_opts), 0}

/* Where epsilon enters Adam's update. Keras: lr_t * m / (sqrt(v) + eps)
 * with lr_t = lr * sqrt(1-b2^t)/(1-b1^t). PyTorch:
 * lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps). */
typedef enum nn_adam_eps_mode {
    NN_ADAM_EPS_KERAS = 0,
    NN_ADAM_EPS_TORCH = 1
} nn_adam_eps_mode;

typedef struct nn_adam_opts {
    size_t size;         /* sizeof(nn_adam_opts) */
    float learning_rate; /* 1e-3 */
    float beta1;         /* 0.9 */
    float beta2;         /* 0.999 */
    float epsilon;       /* 1e-7 (Keras); PyTorch's default is 1e-8 */
    nn_adam_eps_mode eps_mode; /* KERAS */
} nn_adam_opts;
#define NN_ADAM_OPTS_INIT                                                      \
    {sizeof(nn_adam_opts), 1e-3f, 0.9f, 0.999f, 1e-7f, NN_ADAM_EPS_KERAS}

typedef struct nn_sgd_opts {
    size_t size;         /* sizeof(nn_sgd_opts) */
    float learning_rate; /* 0.01 */
    float momentum;      /* 0 */
    int nesterov;        /* 0 */
} nn_sgd_opts;
#define NN_SGD_OPTS_INIT {sizeof(nn_sgd_opts), 0.01f, 0.0f, 0}

NN_API nn_optimizer *nn_adam(const nn_adam_opts *opts);
NN_API nn_optimizer *nn_sgd(const nn_sgd_opts *opts);
/* Frees an optimizer that no model owns. NULL is a no-op. */
NN_API void nn_optimizer_free(nn_optimizer *opt);
NN_API nn_status nn_optimizer_set_learning_rate(nn_optimizer *opt, float lr);
/* Steps taken so far. */
NN_API int64_t nn_optimizer_iterations(const nn_optimizer *opt);

/* Attaches loss and optimizer. On success the model owns `opt` (and frees
 * a previously attached one); on failure the caller still owns it. */
NN_API nn_status nn_model_compile(nn_model *m, nn_optimizer *opt, nn_loss loss,
                                  const nn_loss_opts *opts);

/* ------------------------------------------------------------------ */
/* Training and inference                                              */
/* ------------------------------------------------------------------ */

/* One optimizer step on a batch: forward (training mode), loss, backward,
 * update. loss and accuracy may be NULL. */
NN_API nn_status nn_model_train_batch(nn_model *m, const nn_tensor *x,
                                      const nn_tensor *y, float *loss,
                                      float *accuracy);

/* Forward + loss + backward without an update: fills the gradients that
 * nn_layer_weight_grad returns. `training` selects dropout etc. If dx is
 * not NULL it receives the gradient w.r.t. the input (same shape as x). */
NN_API nn_status nn_model_backward(nn_model *m, const nn_tensor *x,
                                   const nn_tensor *y, int training,
                                   float *loss, nn_tensor *dx);

/* Applies one optimizer step with the current gradients. */
NN_API nn_status nn_model_apply_gradients(nn_model *m);

typedef enum nn_progress_event {
    NN_PROGRESS_BATCH_END = 0,
    NN_PROGRESS_EPOCH_END = 1
} nn_progress_event;

/* What a fit progress callback sees. Members are only ever appended. */
typedef struct nn_progress {
    size_t size; /* sizeof(nn_progress) of the library that filled it */
    nn_progress_event event;
    int epoch, epochs;   /* epoch is 0-based */
    int batch, batches;  /* batches done in this epoch / per epoch */
    int64_t samples_seen; /* in this epoch */
    float loss, accuracy; /* running means over this epoch */
    float val_loss, val_accuracy; /* at EPOCH_END when validating, else NaN */
    double elapsed_s;     /* since the epoch started */
    double images_per_s;  /* in this epoch so far */
} nn_progress;

/* Return nonzero to stop fit (it then returns NN_ERR_CANCELLED). */
typedef int (*nn_progress_fn)(const nn_progress *p, void *user);

typedef struct nn_fit_opts {
    size_t size;    /* sizeof(nn_fit_opts) */
    int epochs;     /* 1 */
    int batch_size; /* 32 */
    int shuffle;    /* 1: reshuffle every epoch from the model's generator */
    const nn_tensor *val_x; /* optional validation data */
    const nn_tensor *val_y;
    nn_progress_fn progress; /* optional */
    void *user;              /* passed to progress */
    /* Gradient diagnostics (docs/diagnostics.md). 0: off (default);
     * 1: the history records per epoch NN_METRIC_GRAD_NORM, _GRAD_NORM_MAX
     * and _HEALTH; 2: also per step (nn_history_step_get). */
    int record_grad_norm;
    /* 1: every step checks each layer's output and gradient before the
     * update; at the first NaN/Inf fit stops with NN_ERR_NUMERIC and a
     * message naming the layer. 0 (default): no check. */
    int stop_on_nonfinite;
} nn_fit_opts;
#define NN_FIT_OPTS_INIT                                                       \
    {sizeof(nn_fit_opts), 1, 32, 1, NULL, NULL, NULL, NULL, 0, 0}

/* Trains for opts->epochs over (x, y). x: [N, ...input shape], y: labels as
 * the compiled loss expects. *history (if not NULL) receives a new history
 * object that the caller frees with nn_history_free. */
NN_API nn_status nn_model_fit(nn_model *m, const nn_tensor *x,
                              const nn_tensor *y, const nn_fit_opts *opts,
                              nn_history **history);

/* Mean loss and accuracy over (x, y) in inference mode. */
NN_API nn_status nn_model_evaluate(nn_model *m, const nn_tensor *x,
                                   const nn_tensor *y, int batch_size,
                                   float *loss, float *accuracy);

/* Inference on x [N, ...]; writes into out, which must already have shape
 * [N, ...output shape]. Uses the model's own context: for concurrent
 * inference create one nn_context per thread. */
NN_API nn_status nn_model_predict(nn_model *m, const nn_tensor *x,
                                  nn_tensor *out, int batch_size);

/* An execution context: activations and scratch for inference on `m`.
 * Many contexts can run predictions on one model at the same time; the
 * model is only read. Free contexts before the model. */
NN_API nn_context *nn_context_create(const nn_model *m);
NN_API void nn_context_free(nn_context *ctx);
NN_API nn_status nn_context_predict(nn_context *ctx, const nn_tensor *x,
                                    nn_tensor *out, int batch_size);

typedef enum nn_metric {
    NN_METRIC_LOSS = 0,
    NN_METRIC_ACCURACY = 1,
    NN_METRIC_VAL_LOSS = 2,
    NN_METRIC_VAL_ACCURACY = 3,
    NN_METRIC_EPOCH_SECONDS = 4,
    /* with nn_fit_opts.record_grad_norm (docs/diagnostics.md): */
    NN_METRIC_GRAD_NORM = 5,     /* mean global gradient norm of the steps */
    NN_METRIC_GRAD_NORM_MAX = 6, /* largest global gradient norm */
    NN_METRIC_HEALTH = 7         /* most severe nn_health seen, as a number */
} nn_metric;

NN_API int nn_history_epochs(const nn_history *h);
/* Value of a metric at an epoch; NaN when not recorded. */
NN_API float nn_history_get(const nn_history *h, nn_metric metric, int epoch);
/* Writes "epoch,loss,accuracy,val_loss,val_accuracy,seconds" rows, plus
 * ",grad_norm,grad_norm_max,health" when fit recorded gradient norms. The
 * file is replaced atomically. */
NN_API nn_status nn_history_write_csv(const nn_history *h, const char *path);
NN_API void nn_history_free(nn_history *h);

/* --- model zoo and weight import --- (guide: docs/zoo.md) */

typedef enum nn_resnet_flavor {
    /* keras.applications ResNet50 (v1): convolutions with bias, the stride
     * on the first 1x1 conv of a block, BatchNormalization eps 1.001e-5. */
    NN_RESNET_KERAS = 0,
    /* torchvision resnet50 (v1.5): no conv bias, the stride on the 3x3
     * conv, eps 1e-5, momentum 0.9 (PyTorch's 0.1): loads its weights. */
    NN_RESNET_TORCHVISION = 1
} nn_resnet_flavor;

/* ResNet's identity block on x, whose channels must equal f3:
 * 1x1 conv f1 - BN - ReLU - kernel x kernel conv f2 ("same") - BN - ReLU -
 * 1x1 conv f3 - BN, plus x, then ReLU. Layers are named as Keras names
 * them: "<prefix>_1_conv", "<prefix>_1_bn", "<prefix>_1_relu", ...,
 * "<prefix>_add", "<prefix>_out" (prefix e.g. "conv2_block2"). Returns the
 * block's last layer, or NULL. */
NN_API nn_layer *nn_resnet_identity_block(nn_model *m, nn_layer *x,
                                          int kernel, int f1, int f2, int f3,
                                          nn_resnet_flavor flavor,
                                          const char *prefix);
/* The convolutional block: the identity block with a 1x1 conv f3 + BN
 * shortcut ("<prefix>_0_conv", "<prefix>_0_bn") and a stride: on the first
 * 1x1 conv (Keras), or on the kernel x kernel conv after a
 * "<prefix>_2_pad" ZeroPadding2D (torchvision pads both sides). */
NN_API nn_layer *nn_resnet_conv_block(nn_model *m, nn_layer *x, int kernel,
                                      int f1, int f2, int f3, int stride,
                                      nn_resnet_flavor flavor,
                                      const char *prefix);

typedef struct nn_resnet_opts {
    size_t size;             /* sizeof(nn_resnet_opts) */
    const char *name;        /* model name; NULL: "resnet50" */
    nn_resnet_flavor flavor; /* KERAS */
    /* 1: GlobalAveragePooling2D "avg_pool" + Dense(classes, softmax)
     * "predictions"; 0: ends at "conv5_block3_out". */
    int include_top; /* 1 */
    int classes;     /* 1000 */
    /* of "predictions": SOFTMAX; NONE gives logits (Keras'
     * classifier_activation=None) */
    nn_activation classifier_activation;
} nn_resnet_opts;
#define NN_RESNET_OPTS_INIT                                                    \
    {sizeof(nn_resnet_opts), NULL, NN_RESNET_KERAS, 1, 1000, NN_ACT_SOFTMAX}

/* ResNet50 on height x width x channels images (at least 32 x 32),
 * initialised from `seed`, with Keras' layer names ("input_1",
 * "conv1_pad", "conv1_conv", "conv1_bn", ..., "conv5_block3_out").
 * Keras flavour, no top, 224x224x3: 23,587,712 parameters. */
NN_API nn_model *nn_resnet50(int height, int width, int channels,
                             uint64_t seed, const nn_resnet_opts *opts);

typedef enum nn_weight_map {
    /* Tensors named "<layer>/<weight>" ("conv1_conv/kernel") in libnn's
     * layouts: what nn_model_save_safetensors writes. */
    NN_WEIGHTS_LIBNN = 0,
    /* torchvision ResNet state_dict keys ("layer1.0.conv1.weight") and
     * PyTorch layouts, into a model built by nn_resnet50 (torchvision
     * flavour); "num_batches_tracked" counters are skipped, and so is the
     * classifier ("fc.*") when the model has no top. */
    NN_WEIGHTS_TORCHVISION_RESNET = 1
} nn_weight_map;

/* Loads every weight of m from a safetensors file (float32 tensors).
 * Strict: a missing or extra tensor, a wrong shape or dtype, or a malformed
 * file is an error whose message names the tensor; m is unchanged then. */
NN_API nn_status nn_model_load_safetensors(nn_model *m, const char *path,
                                           nn_weight_map map);
/* Writes every weight of m to a safetensors file, NN_WEIGHTS_LIBNN names.
 * The file is replaced atomically. */
NN_API nn_status nn_model_save_safetensors(const nn_model *m,
                                           const char *path);

typedef enum nn_preprocess_mode {
    /* RGB -> BGR, then minus [103.939, 116.779, 123.68]; no scaling
     * (Keras' ResNet50 weights). */
    NN_PREPROCESS_CAFFE = 0,
    NN_PREPROCESS_TF = 1, /* x / 127.5 - 1 */
    /* x / 255, minus [0.485, 0.456, 0.406], over [0.229, 0.224, 0.225]
     * (torchvision's weights). */
    NN_PREPROCESS_TORCH = 2
} nn_preprocess_mode;

/* keras.applications' preprocess_input, in place, on RGB images
 * [N, H, W, 3] with values in [0, 255]. */
NN_API nn_status nn_preprocess_input(nn_tensor *images,
                                     nn_preprocess_mode mode);

/* --- gradient diagnostics --- (guide: docs/diagnostics.md) */

/* Health of the gradients, by increasing severity. */
typedef enum nn_health {
    NN_HEALTH_OK = 0,
    /* the layers nearest the input get gradients orders of magnitude below
     * those nearest the output, or every gradient is tiny */
    NN_HEALTH_VANISHING = 1,
    /* the global gradient norm is huge or grows fast, or the layers
     * nearest the input get orders of magnitude more than the output's */
    NN_HEALTH_EXPLODING = 2,
    NN_HEALTH_NONFINITE = 3 /* a NaN or Inf in an output or a gradient */
} nn_health;

typedef struct nn_diag_opts {
    size_t size; /* sizeof(nn_diag_opts) */
    /* 1: every training step measures the L2 norms of the gradients
     * (before clipping), of the weights and of the updates, and keeps the
     * global norm and verdict of the last `window` steps. */
    int record;
    /* 1: every training step scans each layer's output (forward order),
     * then its gradients (backward order), before the update; the first
     * NaN/Inf fails the step with NN_ERR_NUMERIC naming the layer and
     * leaves the weights unchanged. Default 0: it reads every activation. */
    int check_finite;
    int window; /* 20 steps, for the window verdict */
    /* Thresholds. "Input side" is the first layer with trainable weights,
     * "output side" the last; a ratio is of their gradient norms. */
    float vanishing_ratio;   /* 1e-3: input / output side below it */
    float vanishing_floor;   /* 1e-8: global norm below it */
    float exploding_ratio;   /* 1e3: input / output side above it */
    float exploding_ceiling; /* 1e3: global norm above it */
    /* 1e2: the mean global norm of the newest quarter of a full window
     * over that of the oldest quarter above it */
    float exploding_growth;
} nn_diag_opts;
#define NN_DIAG_OPTS_INIT                                                      \
    {sizeof(nn_diag_opts), 1, 0, 20, 1e-3f, 1e-8f, 1e3f, 1e3f, 1e2f}

/* Sets the model's diagnostics; NULL turns them off (the default). The
 * model must be compiled; the settings stay with the model when it is
 * compiled again. With diagnostics off training does no extra work. */
NN_API nn_status nn_model_set_diagnostics(nn_model *m,
                                          const nn_diag_opts *opts);

/* Gradient clipping, applied to the gradients before every update
 * (Keras' clipvalue and global_clipnorm; 0 turns each off, the default).
 * clipvalue clamps every gradient value into [-v, v]; then, when the
 * global L2 norm of all trainable gradients exceeds clipnorm, every
 * gradient is scaled by clipnorm / norm (torch.nn.utils.clip_grad_norm_).
 * The clipped gradients are what nn_layer_weight_grad shows afterwards. */
NN_API nn_status nn_optimizer_set_global_clipnorm(nn_optimizer *opt,
                                                  float clipnorm);
NN_API nn_status nn_optimizer_set_clipvalue(nn_optimizer *opt,
                                            float clipvalue);

/* A snapshot of the last training step's gradient norms, per layer with
 * trainable weights in execution order. Recorded by the step when
 * diagnostics record; otherwise measured now from the current gradients
 * (after any clipping) and weights, without update ratios. NN_ERR_STATE
 * before any gradient exists. Free it with nn_grad_report_free. */
typedef struct nn_grad_report nn_grad_report;
NN_API nn_status nn_model_grad_report(const nn_model *m,
                                      nn_grad_report **out);
NN_API void nn_grad_report_free(nn_grad_report *r);
NN_API int nn_grad_report_num_layers(const nn_grad_report *r);
NN_API const char *nn_grad_report_layer_name(const nn_grad_report *r,
                                             int layer);
/* Weights of the layer (as nn_layer_num_weights); non-trainable ones
 * read as NaN below. */
NN_API int nn_grad_report_num_weights(const nn_grad_report *r, int layer);
/* L2 norms of weight `weight` of report layer `layer`; weight -1: all the
 * layer's trainable weights together. NaN (and an error) for bad indices.
 * The gradient norm is taken before clipping, the weight norm after the
 * update; the update ratio is ||update|| / ||weights before the update||
 * (NaN when the step was not recorded or made no update). */
NN_API double nn_grad_report_grad_norm(const nn_grad_report *r, int layer,
                                       int weight);
NN_API double nn_grad_report_weight_norm(const nn_grad_report *r, int layer,
                                         int weight);
NN_API double nn_grad_report_update_ratio(const nn_grad_report *r,
                                          int layer, int weight);
/* L2 norm of all trainable gradients together (before clipping). */
NN_API double nn_grad_report_global_norm(const nn_grad_report *r);
/* Optimizer steps taken when the report was made. */
NN_API int64_t nn_grad_report_step(const nn_grad_report *r);
/* The verdict of the step (window 0) or of the recorded window (window
 * 1; the step's verdict when nothing was recorded). *why (may be NULL)
 * receives a sentence naming the layers involved, valid while r lives. */
NN_API nn_status nn_grad_report_health(const nn_grad_report *r, int window,
                                       nn_health *verdict, const char **why);
/* The last report as a table (layer, gradient norm, weight norm, update
 * ratio) with the global norm and the verdicts; buffer rules as
 * nn_model_summary. */
NN_API nn_status nn_model_grad_summary(const nn_model *m, char *buf,
                                       size_t cap, size_t *needed);

/* Per-step values of a fit run with record_grad_norm = 2: metric
 * NN_METRIC_LOSS (the batch's loss), NN_METRIC_GRAD_NORM or
 * NN_METRIC_HEALTH; NaN when not recorded. */
NN_API int64_t nn_history_num_steps(const nn_history *h);
NN_API float nn_history_step_get(const nn_history *h, nn_metric metric,
                                 int64_t step);

/* ------------------------------------------------------------------ */
/* Saving and loading (format: docs/checkpoint-format.md)              */
/* ------------------------------------------------------------------ */

typedef enum nn_save_flags {
    NN_SAVE_DEFAULT = 0,
    NN_SAVE_OPTIMIZER = 1 /* also store the optimizer and its state */
} nn_save_flags;

/* Writes graph + weights (+ optimizer state). The previous file at `path`
 * stays intact until the new one is complete: the file is written beside
 * it and renamed over it. */
NN_API nn_status nn_model_save(const nn_model *m, const char *path,
                               int flags);
/* Loads a model saved by nn_model_save. Returns NULL on failure with the
 * reason in nn_last_error(); a damaged file never crashes the caller. */
NN_API nn_model *nn_model_load(const char *path);

/* ------------------------------------------------------------------ */
/* Data sets                                                           */
/* ------------------------------------------------------------------ */

/* Reads an IDX file (MNIST, Fashion-MNIST), plain or gzip-compressed.
 * Images (ubyte, rank 3) become [N, rows, cols, 1] scaled to [0,1] when
 * `scale` is nonzero; labels (ubyte, rank 1) become [N] class ids. */
NN_API nn_status nn_load_idx(const char *path, int scale, nn_tensor **out);

/* Reads CIFAR-10 binary batches (data_batch_N.bin / test_batch.bin):
 * images [N, 32, 32, 3] in [0,1] and labels [N] class ids. `paths` holds
 * `count` files whose records are concatenated. */
NN_API nn_status nn_load_cifar10(const char *const *paths, int count,
                                 nn_tensor **images, nn_tensor **labels);

/* Labels [N] of class ids -> one-hot [N, num_classes]. */
NN_API nn_status nn_one_hot(const nn_tensor *labels, int num_classes,
                            nn_tensor **out);

#ifdef __cplusplus
}
#endif
#endif /* NN_H */

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
 *    defaults. The library reads only the members that lie wholly within
 *    the first `size` bytes, so a program built against an older header
 *    keeps working with a newer library; a program built against a newer
 *    header works with an older library as long as the options this one
 *    lacks are left zero (NN_ERR_INVALID otherwise). New members are only
 *    ever appended.
 *  - Enum values are explicit and never renumbered.
 *  - Tensors are float32, row-major, images NHWC (channels last).
 *  - Thread safety: calls that only read an object may run in many
 *    threads at once; a call that writes an object needs it to itself (no
 *    other thread reading or writing it meanwhile). What writes what:
 *     - nn_context_predict writes its context (one thread at a time per
 *       context) and only reads the model, so many threads can predict
 *       from one model through their own contexts. nn_context_create,
 *       the introspection calls (nn_model_layer, nn_layer_name, ...),
 *       nn_model_summary, nn_model_save, nn_model_save_safetensors and the
 *       gradient reports also only read the model.
 *     - Building, nn_model_set_name/_output/_trainable/_diagnostics,
 *       nn_layer_set_trainable, compiling, training, nn_model_predict and
 *       nn_model_evaluate (they use the model's own context),
 *       nn_model_load_safetensors and nn_model_free write the model, and
 *       the optimizer it owns once compiled (nn_optimizer_* write it).
 *     - Models that share weights (nn_model_apply) share the weight
 *       buffers: training either, loading weights into either, or writing
 *       through nn_layer_weight writes those buffers for both.
 *     - nn_model_apply(outer, .., inner, ..) writes outer and only reads
 *       inner: threads may apply one inner model into their own outer
 *       models at once. The count of owners of shared weights is atomic,
 *       and freeing a model writes no other model: models sharing weights
 *       may be freed from different threads, in any order, while the
 *       others are still used.
 *     - Loaders create new objects. nn_set_num_threads and nn_set_limits
 *       may be called from any thread; error messages are per thread.
 *  - The library never prints, aborts or exits.
 *
 * Sections, in order: version and errors, threads, tensors, building
 * models, layers, losses and optimizers, training, segmentation losses
 * and metrics, weighted losses and decision metrics, data-parallel
 * training, inference and contexts, inference for a product, gradient
 * diagnostics, resource limits, files (models, weights, data sets), images
 * and segmentation data, model zoo.
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
/* Status codes and errors                                            */
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
/* Threads                                                            */
/* ------------------------------------------------------------------ */

/* Sets how many threads libnn's kernels use, process-wide (1 to 1024).
 * The default is the environment variable OMP_NUM_THREADS when it holds a
 * positive count (its first entry for a list such as "4,2"; above 1024
 * counts as 1024), read when the default is taken, else every online core.
 * A call with n >= 1 overrides it; n <= 0 restores the default (so
 * OMP_NUM_THREADS again, when set). libnn runs its matrix products
 * single-threaded inside its own parallel loops so BLAS and libnn never
 * oversubscribe the cores: it sets OpenBLAS to one thread. */
NN_API nn_status nn_set_num_threads(int n);
NN_API int nn_get_num_threads(void);

/* ------------------------------------------------------------------ */
/* Tensors                                                            */
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
/* Building models (guide: docs/api.md)                               */
/* ------------------------------------------------------------------ */

typedef struct nn_model nn_model;
typedef struct nn_layer nn_layer; /* owned by its model; never freed alone */
typedef struct nn_optimizer nn_optimizer;
typedef struct nn_context nn_context;
typedef struct nn_history nn_history;

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

/* ------------------------------------------------------------------ */
/* Layers                                                             */
/* ------------------------------------------------------------------ */

typedef enum nn_padding {
    NN_PADDING_VALID = 0,
    NN_PADDING_SAME = 1
} nn_padding;

typedef enum nn_activation {
    NN_ACT_NONE = 0, /* "linear" */
    NN_ACT_RELU = 1,
    NN_ACT_SIGMOID = 2,
    NN_ACT_SOFTMAX = 3, /* over the last axis */
    NN_ACT_RELU6 = 4,   /* min(max(x, 0), 6): Keras' "relu6" */
    NN_ACT_TANH = 5,    /* Keras' "tanh" */
    NN_ACT_ELU = 6,     /* Keras' "elu": x > 0 ? x : exp(x) - 1 (alpha 1) */
    /* Keras 3's "leaky_relu" string: x > 0 ? x : 0.2 x. Its slope is
     * that function's default, 0.2 (as tf.nn.leaky_relu's), not the 0.3 of
     * the LeakyReLU layer (nn_leaky_relu), which takes any slope. */
    NN_ACT_LEAKY_RELU = 7
} nn_activation;

typedef enum nn_initializer {
    NN_INIT_DEFAULT = 0, /* the layer's Keras default */
    NN_INIT_ZEROS = 1,
    NN_INIT_ONES = 2,
    NN_INIT_GLOROT_UNIFORM = 3,
    NN_INIT_GLOROT_NORMAL = 4,
    NN_INIT_HE_UNIFORM = 5,
    NN_INIT_HE_NORMAL = 6,
    /* N(0, stddev), not truncated (Keras' RandomNormal(0.0, stddev)). The
     * stddev is the options' kernel_init_stddev or bias_init_stddev
     * member where the struct has one; 0 there, and every struct without
     * one, means Keras' default, 0.05. */
    NN_INIT_RANDOM_NORMAL = 7
} nn_initializer;

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

/* Keras' Activation("tanh"): tanh(x). Type name "Activation", as Keras
 * has no Tanh layer class. */
NN_API nn_layer *nn_tanh(nn_model *m, nn_layer *input,
                         const nn_layer_opts *opts);

/* LeakyReLU: x > 0 ? x : alpha * x. Keras' default alpha is 0.3: tf.keras
 * 2.x calls it alpha, Keras 3 negative_slope (same default; PyTorch's
 * LeakyReLU defaults to 0.01). alpha must be finite and >= 0, as Keras 3
 * requires. */
NN_API nn_layer *nn_leaky_relu(nn_model *m, nn_layer *input, float alpha,
                               const nn_layer_opts *opts);

/* ELU: x > 0 ? x : alpha * (exp(x) - 1); Keras' default alpha is 1.0.
 * alpha must be finite (Keras and PyTorch take any real alpha; the
 * gradient for x <= 0 is alpha * exp(x)). */
NN_API nn_layer *nn_elu(nn_model *m, nn_layer *input, float alpha,
                        const nn_layer_opts *opts);

typedef struct nn_prelu_opts {
    size_t size; /* sizeof(nn_prelu_opts) */
    const char *name;
    /* Keras' shared_axes as a bit mask: bit k set shares alpha along
     * input axis k, counted as Keras counts them (1 is the first axis
     * after the batch; bit 0, the batch axis, must be clear). For an image
     * [H, W, C], (1 << 1) | (1 << 2) gives one alpha per channel
     * (PyTorch's PReLU(num_parameters=C)); all of them, one alpha. Default
     * 0: an alpha per value of a sample. */
    unsigned shared_axes;
    /* NN_INIT_DEFAULT: every alpha = alpha_init_value, whose default 0 is
     * Keras' alpha_initializer "zeros" (PyTorch starts at 0.25). Any other
     * initializer is Keras' for the alpha's shape (RANDOM_NORMAL with
     * stddev 0.05), and alpha_init_value must then be 0. */
    nn_initializer alpha_init;
    float alpha_init_value;
    int reserved; /* must be 0 */
} nn_prelu_opts;
#define NN_PRELU_OPTS_INIT                                                     \
    {sizeof(nn_prelu_opts), NULL, 0u, NN_INIT_DEFAULT, 0.0f, 0}

/* PReLU: x > 0 ? x : alpha * x with a learned alpha. One trainable
 * weight, "alpha", of Keras' shape: the input's per-sample shape with 1 on
 * the shared axes ([1, 1, C] for an image shared over H and W). */
NN_API nn_layer *nn_prelu(nn_model *m, nn_layer *input,
                          const nn_prelu_opts *opts);

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
 * Training normalizes with the batch mean and biased variance and updates
 * the moving statistics; inference and a frozen layer use the moving ones.
 * The moving variance moves towards the batch variance as tf.keras moves
 * it: Bessel-corrected (n / (n - 1), n values per channel) for images
 * [N, H, W, C] and volumes [N, D, H, W, C], biased for other ranks, such as
 * features [N, C] after a Dense layer. */
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

/* --- segmentation layers --- */

/* ReLU(max_value=6) (Keras' ReLU(6.0), MobileNetV2's activation):
 * min(max(x, 0), 6). Its type name is "ReLU", as in Keras. */
NN_API nn_layer *nn_relu6(nn_model *m, nn_layer *input,
                          const nn_layer_opts *opts);

typedef struct nn_depthwise_conv2d_opts {
    size_t size; /* sizeof(nn_depthwise_conv2d_opts) */
    const char *name;
    int stride_h, stride_w;     /* default 1, 1 */
    nn_padding padding;         /* default VALID */
    int depth_multiplier;       /* default 1 */
    int use_bias;               /* default 1 (Keras; MobileNetV2 sets 0) */
    nn_activation activation;   /* default NONE */
    nn_initializer kernel_init; /* Keras' depthwise_initializer; default
                                   GLOROT_UNIFORM */
    nn_initializer bias_init;   /* default ZEROS */
    float kernel_init_stddev;   /* for NN_INIT_RANDOM_NORMAL; 0: 0.05 */
    float bias_init_stddev;     /* for NN_INIT_RANDOM_NORMAL; 0: 0.05 */
} nn_depthwise_conv2d_opts;
#define NN_DEPTHWISE_CONV2D_OPTS_INIT                                          \
    {sizeof(nn_depthwise_conv2d_opts), NULL, 1, 1, NN_PADDING_VALID, 1, 1,     \
     NN_ACT_NONE, NN_INIT_DEFAULT, NN_INIT_DEFAULT, 0.0f, 0.0f}

/* DepthwiseConv2D((kh, kw)): each input channel c is convolved with its
 * own depth_multiplier kernels; output channel c * depth_multiplier + k
 * comes from input channel c and kernel k, so the output has
 * in_channels * depth_multiplier channels. Padding, output size and SAME's
 * asymmetric split (the extra row/column at the bottom/right) are
 * Conv2D's. Weights in Keras order: "depthwise_kernel" [kh, kw, in_ch,
 * depth_multiplier] and "bias" [in_ch * depth_multiplier]. Initializer
 * fans as Keras computes them for that kernel shape: fan_in = kh * kw *
 * in_ch, fan_out = kh * kw * depth_multiplier. PyTorch's equivalent is
 * conv2d(groups = in_ch) with weight[c * depth_multiplier + k, 0, i, j] =
 * depthwise_kernel[i, j, c, k]. */
NN_API nn_layer *nn_depthwise_conv2d(nn_model *m, nn_layer *input, int kh,
                                     int kw,
                                     const nn_depthwise_conv2d_opts *opts);

typedef struct nn_conv2d_transpose_opts {
    size_t size; /* sizeof(nn_conv2d_transpose_opts) */
    const char *name;
    int stride_h, stride_w; /* default 1, 1 */
    nn_padding padding;     /* default VALID */
    /* Keras' output_padding per axis; -1 (the default): None. Both -1,
     * or both set, each in [0, stride) (Keras: None or a pair). */
    int output_padding_h, output_padding_w;
    int use_bias;               /* default 1 */
    nn_activation activation;   /* default NONE */
    nn_initializer kernel_init; /* default GLOROT_UNIFORM */
    nn_initializer bias_init;   /* default ZEROS */
    int reserved;               /* must be 0 */
    float kernel_init_stddev;   /* for NN_INIT_RANDOM_NORMAL; 0: 0.05 */
    float bias_init_stddev;     /* for NN_INIT_RANDOM_NORMAL; 0: 0.05 */
} nn_conv2d_transpose_opts;
#define NN_CONV2D_TRANSPOSE_OPTS_INIT                                          \
    {sizeof(nn_conv2d_transpose_opts), NULL, 1, 1, NN_PADDING_VALID, -1, -1,   \
     1, NN_ACT_NONE, NN_INIT_DEFAULT, NN_INIT_DEFAULT, 0, 0.0f, 0.0f}

/* Conv2DTranspose(filters, (kh, kw)), the gradient of a convolution with
 * respect to its input: input row i, kernel row t write output row
 * o = i * stride + t - pad (likewise for columns). Output length per axis
 * (Keras' conv_utils.deconv_output_length), for input length n:
 *   output_padding None: VALID  n * s + max(k - s, 0);  SAME  n * s;
 *   output_padding p:    (n - 1) * s + k - 2 * (SAME ? k / 2 : 0) + p.
 * pad (the leading padding) is as TensorFlow derives it from that length
 * L: VALID 0; SAME max((n - 1) * s + k - L, 0) / 2, the odd row, if any,
 * trailing. As TensorFlow, the layer refuses an output_padding whose L
 * does not give back n under the forward convolution (SAME with an even
 * k and an output_padding too small, e.g. k 4, stride 2, output_padding
 * 0). Weights in Keras order: "kernel" [kh, kw, filters, in_ch]
 * (output channels before input channels, as Keras stores it) and "bias"
 * [filters]. Initializer fans as Keras computes them for that shape:
 * fan_in = kh * kw * filters, fan_out = kh * kw * in_ch.
 * PyTorch: conv_transpose2d(x, weight, stride=s, padding=P,
 * output_padding=A) with weight[c, f, i, j] = kernel[i, j, f, c],
 * P = pad and A = L - ((n - 1) * s + k - 2 * P). A is -1 when SAME's
 * total padding (n - 1) * s + k - L is odd (k - s odd, e.g. k 3 and
 * stride 2): PyTorch cannot pad one side more, so take A = 0 and drop
 * PyTorch's last row/column. (PyTorch's usual padding=1,
 * output_padding=1 for k 3, stride 2 gives the same size but shifted by
 * one position.) */
NN_API nn_layer *nn_conv2d_transpose(nn_model *m, nn_layer *input,
                                     int filters, int kh, int kw,
                                     const nn_conv2d_transpose_opts *opts);

typedef struct nn_separable_conv2d_opts {
    size_t size; /* sizeof(nn_separable_conv2d_opts) */
    const char *name;
    int stride_h, stride_w;        /* default 1, 1 */
    nn_padding padding;            /* default VALID */
    int depth_multiplier;          /* default 1 */
    int use_bias;                  /* default 1 */
    nn_activation activation;      /* default NONE */
    nn_initializer depthwise_init; /* default GLOROT_UNIFORM */
    nn_initializer pointwise_init; /* default GLOROT_UNIFORM */
    nn_initializer bias_init;      /* default ZEROS */
    float depthwise_init_stddev;   /* for NN_INIT_RANDOM_NORMAL; 0: 0.05 */
    float pointwise_init_stddev;   /* for NN_INIT_RANDOM_NORMAL; 0: 0.05 */
    float bias_init_stddev;        /* for NN_INIT_RANDOM_NORMAL; 0: 0.05 */
} nn_separable_conv2d_opts;
#define NN_SEPARABLE_CONV2D_OPTS_INIT                                          \
    {sizeof(nn_separable_conv2d_opts), NULL, 1, 1, NN_PADDING_VALID, 1, 1,     \
     NN_ACT_NONE, NN_INIT_DEFAULT, NN_INIT_DEFAULT, NN_INIT_DEFAULT, 0.0f,     \
     0.0f, 0.0f}

/* SeparableConv2D(filters, (kh, kw)): a DepthwiseConv2D (strides,
 * padding and depth_multiplier as there, no bias) then a 1x1 convolution
 * to `filters` channels with the bias and the activation. Weights in
 * Keras order: "depthwise_kernel" [kh, kw, in_ch, depth_multiplier],
 * "pointwise_kernel" [1, 1, in_ch * depth_multiplier, filters], "bias"
 * [filters]; fans as Keras computes them for those shapes. */
NN_API nn_layer *nn_separable_conv2d(nn_model *m, nn_layer *input,
                                     int filters, int kh, int kw,
                                     const nn_separable_conv2d_opts *opts);

typedef struct nn_upsampling2d_opts {
    size_t size; /* sizeof(nn_upsampling2d_opts) */
    const char *name;
    nn_interpolation interpolation; /* default NEAREST (Keras' default) */
    int reserved;                   /* must be 0 */
} nn_upsampling2d_opts;
#define NN_UPSAMPLING2D_OPTS_INIT                                              \
    {sizeof(nn_upsampling2d_opts), NULL, NN_INTERP_NEAREST, 0}

/* UpSampling2D(size=(size_h, size_w)): [H, W, C] -> [H * size_h,
 * W * size_w, C]. NEAREST repeats each pixel; BILINEAR interpolates with
 * half-pixel centers, as Keras (tf.image.resize) and PyTorch's
 * interpolate(mode="bilinear", align_corners=False) do. */
NN_API nn_layer *nn_upsampling2d(nn_model *m, nn_layer *input, int size_h,
                                 int size_w, const nn_upsampling2d_opts *opts);

/* Cropping2D(((top, bottom), (left, right))): removes rows and columns
 * at the edges of an image; at least one row and column must remain. */
NN_API nn_layer *nn_cropping2d(nn_model *m, nn_layer *input, int top,
                               int bottom, int left, int right,
                               const nn_layer_opts *opts);

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

/* ------------------------------------------------------------------ */
/* Losses and optimizers                                              */
/* ------------------------------------------------------------------ */

/* Losses (exact definitions: docs/losses.md). The output's last axis is
 * the class axis; an output [N, H, W, C] is C values at each of H x W
 * positions, and the cross-entropies treat every position as a sample
 * (Keras: the last axis is reduced per position, then the mean is taken
 * over positions and batch). */
typedef enum nn_loss {
    /* labels one-hot, the output's shape ([N, C], [N, H, W, C]) */
    NN_LOSS_CATEGORICAL_CROSSENTROPY = 1,
    /* labels class ids, one per position: [N] for an output [N, C],
     * [N, H, W] (or [N, H, W, 1]) for [N, H, W, C] */
    NN_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY = 2,
    /* labels in [0,1], output's shape. Refused (NN_ERR_INVALID from fit,
     * evaluate and the training steps) on the probabilities of a softmax
     * output of two or more classes, which exclude each other: categorical
     * cross-entropy is the loss for those. (With from_logits the output's
     * values are taken as the logits they are declared to be.) */
    NN_LOSS_BINARY_CROSSENTROPY = 3,
    /* soft IoU (Jaccard) loss 1 - (I + smooth) / (U + smooth) per class,
     * averaged over the classes; labels the output's shape (masks or
     * one-hot), or class ids with nn_loss_opts.sparse_labels */
    NN_LOSS_IOU = 4,
    /* Dice loss 1 - (2I + smooth) / (sum p + sum y + smooth), as IoU */
    NN_LOSS_DICE = 5
} nn_loss;

typedef struct nn_loss_opts {
    size_t size; /* sizeof(nn_loss_opts) */
    /* 1: the model output is logits. 0 (default, Keras): the output is
     * probabilities. When the output layer ends in softmax (CCE) or sigmoid
     * (BCE), libnn computes the loss from that layer's logits, as Keras
     * does, so the loss is exact and stable either way. */
    int from_logits;
    /* IoU and Dice (docs/losses.md). Doubles, so that the first appended
     * member lies past the padding of the struct's first release. */
    double smooth; /* 1.0: added to numerator and denominator */
    double eps;    /* 1e-7: the denominator's lower bound */
    /* an nn_loss_reduction: NN_LOSS_REDUCE_BATCH (default) sums I and U
     * per class over the whole batch; NN_LOSS_REDUCE_IMAGE per image */
    int reduction;
    /* 1: IoU and Dice read class ids, one per position (as sparse
     * categorical cross-entropy does, which implies it), for outputs of
     * several classes. 0 (default): labels have the output's shape. */
    int sparse_labels;
    /* Weighted cross-entropy (docs/losses.md). NULL (default), or one
     * finite weight >= 0 per class of the output for (sparse) categorical
     * cross-entropy, as torch.nn.CrossEntropyLoss(weight=): the loss at a
     * position is -sum_c w_c y_c log q_c (w of its class for one-hot
     * labels). The model keeps its own copy. */
    const float *class_weights;
    int num_class_weights; /* the output's classes, with class_weights */
    /* Binary cross-entropy: -(pos_weight y log p + (1 - y) log(1 - p)),
     * as BCEWithLogitsLoss(pos_weight=); 1 (default): unweighted. */
    float pos_weight;
    /* an nn_weight_norm: what the weighted sum of a batch's losses is
     * divided by; NN_WEIGHT_NORM_SAMPLES (default, Keras) */
    int weight_norm;
} nn_loss_opts;
#define NN_LOSS_OPTS_INIT                                                      \
    {sizeof(nn_loss_opts), 0, 1.0, 1e-7, 0, 0, NULL, 0, 1.0f, 0}

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

/* A compiled or loaded model's optimizer and loss. */

/* The optimizer the model owns (compiled, or loaded from a file saved
 * with NN_SAVE_OPTIMIZER), to read or change its learning rate and read
 * its step count: a borrowed handle, valid until the model is freed or
 * compiled with another optimizer; do not free it. NULL, with NN_ERR_STATE,
 * when the model has none (NN_ERR_INVALID for a NULL model). */
NN_API nn_optimizer *nn_model_optimizer(nn_model *m);
/* The optimizer's learning rate; NaN with NN_ERR_INVALID for NULL. */
NN_API float nn_optimizer_learning_rate(const nn_optimizer *opt);
/* The model's loss, as nn_model_compile_weighted takes it (one term of
 * weight 1 after nn_model_compile): from its compile call, or from the
 * file it was loaded from (a file saved after compiling stores its loss,
 * with or without NN_SAVE_OPTIMIZER). Returns the number of terms n, 0
 * when the model has no loss, or a negative nn_status. losses[k] and
 * weights[k] receive term k for k < min(n, cap) (both may be NULL when
 * cap is 0). opts (may be NULL) receives the loss options when n > 0: set
 * its size first (NN_LOSS_OPTS_INIT); the members within that size are
 * written, the rest left as they are. */
NN_API int nn_model_loss(const nn_model *m, nn_loss *losses, float *weights,
                         int cap, nn_loss_opts *opts);

/* ------------------------------------------------------------------ */
/* Training                                                           */
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
    /* with nn_fit_opts.segmentation_metrics, else NaN: IoU and mean IoU
     * of this epoch so far (NN_METRIC_IOU, _MEAN_IOU), and of the
     * validation data at EPOCH_END */
    float iou, mean_iou, val_iou, val_mean_iou;
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
    /* 1: the history records NN_METRIC_IOU, _MEAN_IOU, _DICE and
     * _PIXEL_ACCURACY per epoch, from an nn_confusion accumulated over the
     * epoch's training steps and, with validation data, over the
     * validation set (the _VAL_ metrics); the progress callback sees IoU
     * and mean IoU. 0 (default): not computed. */
    int segmentation_metrics;
    /* Keras fit(class_weight=): NULL (default), or one finite weight >= 0
     * per class (the output's channels, 2 for one channel); each training
     * sample's loss is multiplied by the weight of its label's class
     * (the id, the argmax of a one-hot row, or mask > 0.5). Outputs of
     * one position only (Keras); per-pixel weights are
     * nn_loss_opts.class_weights. */
    const float *class_weight;
    int num_class_weight;
    /* Keras fit(sample_weight=): NULL (default), or [N] finite weights
     * >= 0 of the training samples; multiplied by class_weight's. The
     * loss is normalised as nn_loss_opts.weight_norm says; accuracy and
     * the validation loss are not weighted (Keras). */
    const nn_tensor *sample_weight;
    /* NULL (default), or the binary view whose precision, recall, F1
     * and ROC AUC the history records per epoch (NN_METRIC_PRECISION ..
     * NN_METRIC_VAL_ROC_AUC), from the training steps' outputs and the
     * validation data (struct defined under "Weighted losses and
     * decision metrics"). */
    const struct nn_binary_opts *decision_metrics;
    /* Data-parallel fit ("Data-parallel training" below, docs/mpi.md):
     * world_size processes each call fit on the same data with the same
     * options and models built from the same seed; process `rank` trains
     * on its shard of every global batch of world_size x batch_size
     * samples. sync (an nn_sync_fn: an nn_sync_point for `point`) sums
     * values across the processes; libnn_mpi's nn_mpi_fit_opts fills
     * these four members. world_size 0 or 1 (default): one process. */
    nn_status (*sync)(nn_model *m, double *values, int n, int point,
                      void *user);
    void *sync_user; /* passed to sync */
    int rank;        /* 0 .. world_size - 1; 0 */
    int world_size;  /* 1 */
} nn_fit_opts;
#define NN_FIT_OPTS_INIT                                                       \
    {sizeof(nn_fit_opts), 1, 32, 1, NULL, NULL, NULL, NULL, 0, 0, 0,         \
     NULL, 0, NULL, NULL, NULL, NULL, 0, 1}

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

typedef enum nn_metric {
    NN_METRIC_LOSS = 0,
    NN_METRIC_ACCURACY = 1,
    NN_METRIC_VAL_LOSS = 2,
    NN_METRIC_VAL_ACCURACY = 3,
    NN_METRIC_EPOCH_SECONDS = 4,
    /* with nn_fit_opts.record_grad_norm (docs/diagnostics.md): */
    NN_METRIC_GRAD_NORM = 5,     /* mean global gradient norm of the steps */
    NN_METRIC_GRAD_NORM_MAX = 6, /* largest global gradient norm */
    NN_METRIC_HEALTH = 7,        /* most severe nn_health seen, as a number */
    /* with nn_fit_opts.segmentation_metrics (docs/losses.md), from the
     * epoch's confusion matrix: */
    NN_METRIC_IOU = 8, /* nn_confusion_mean_iou(cm, 1): classes but 0 */
    NN_METRIC_VAL_IOU = 9,
    NN_METRIC_MEAN_IOU = 10, /* nn_confusion_mean_iou(cm, 0): Keras MeanIoU */
    NN_METRIC_VAL_MEAN_IOU = 11,
    NN_METRIC_DICE = 12, /* nn_confusion_mean_dice(cm, 1) */
    NN_METRIC_VAL_DICE = 13,
    NN_METRIC_PIXEL_ACCURACY = 14, /* nn_confusion_pixel_accuracy */
    NN_METRIC_VAL_PIXEL_ACCURACY = 15,
    /* with nn_fit_opts.decision_metrics (docs/metrics.md), from the
     * epoch's scores of the positive class: */
    NN_METRIC_PRECISION = 16, /* at the options' threshold */
    NN_METRIC_VAL_PRECISION = 17,
    NN_METRIC_RECALL = 18,
    NN_METRIC_VAL_RECALL = 19,
    NN_METRIC_F1 = 20,
    NN_METRIC_VAL_F1 = 21,
    NN_METRIC_ROC_AUC = 22, /* NaN while one class is missing */
    NN_METRIC_VAL_ROC_AUC = 23
} nn_metric;

NN_API int nn_history_epochs(const nn_history *h);
/* Value of a metric at an epoch; NaN when not recorded. */
NN_API float nn_history_get(const nn_history *h, nn_metric metric, int epoch);
/* Writes "epoch,loss,accuracy,val_loss,val_accuracy,seconds" rows, plus
 * ",grad_norm,grad_norm_max,health" when fit recorded gradient norms, plus
 * ",iou,mean_iou,dice,pixel_accuracy,val_iou,val_mean_iou,val_dice,
 * val_pixel_accuracy" when it recorded segmentation metrics, plus
 * ",precision,recall,f1,roc_auc,val_precision,val_recall,val_f1,
 * val_roc_auc" when it recorded decision metrics. The file is replaced
 * atomically, as nn_model_save replaces its file. */
NN_API nn_status nn_history_write_csv(const nn_history *h, const char *path);
NN_API void nn_history_free(nn_history *h);

/* Per-step values of a fit run with record_grad_norm = 2: metric
 * NN_METRIC_LOSS (the batch's loss), NN_METRIC_GRAD_NORM or
 * NN_METRIC_HEALTH; NaN when not recorded. */
NN_API int64_t nn_history_num_steps(const nn_history *h);
NN_API float nn_history_step_get(const nn_history *h, nn_metric metric,
                                 int64_t step);

/* ------------------------------------------------------------------ */
/* Segmentation losses and metrics (guide: docs/losses.md)            */
/* ------------------------------------------------------------------ */

/* nn_loss_opts.reduction of the IoU and Dice losses. */
typedef enum nn_loss_reduction {
    /* I, sum p and sum y of each class over every position of every image
     * of the batch; the loss is the mean over classes */
    NN_LOSS_REDUCE_BATCH = 0,
    /* per image and class; the loss is the mean over images and classes */
    NN_LOSS_REDUCE_IMAGE = 1
} nn_loss_reduction;

/* Attaches a weighted sum of losses, sum of weights[k] * losses[k] over
 * k < n (1 <= n <= 4; weights finite and > 0; each loss at most once, and
 * at most one cross-entropy), e.g. {BINARY_CROSSENTROPY, IOU} with {1, 1}.
 * The labels are those of the cross-entropy term (class ids with sparse
 * categorical cross-entropy), which the IoU and Dice terms read too; one
 * set of options applies to every term. Ownership of `opt` as
 * nn_model_compile; nn_model_compile(m, opt, loss, opts) equals n = 1 with
 * weight 1. */
NN_API nn_status nn_model_compile_weighted(nn_model *m, nn_optimizer *opt,
                                           int n, const nn_loss *losses,
                                           const float *weights,
                                           const nn_loss_opts *opts);

/* A confusion matrix accumulated over batches (Keras MeanIoU semantics):
 * counts[truth][predicted] over every position. For an output of C > 1
 * classes the prediction is the argmax over the last axis (ties to the
 * first); for one channel it is class 1 where the probability is > 0.5
 * (the logit > 0), and the matrix has 2 classes. */
typedef struct nn_confusion nn_confusion;

/* A zeroed matrix of `classes` classes (2 .. 1024): the output's channels,
 * or 2 for a one-channel output. */
NN_API nn_confusion *nn_confusion_create(int classes);
NN_API void nn_confusion_free(nn_confusion *cm);
NN_API nn_status nn_confusion_reset(nn_confusion *cm);
NN_API int nn_confusion_classes(const nn_confusion *cm);
/* Adds a batch: out [N, ..., C] model outputs (logits when from_logits),
 * labels [N, ...] with, per sample, one value per position (class ids;
 * for C = 1 mask values in [0, 1], class 1 where > 0.5) or the output's
 * shape (one-hot or probabilities: argmax). Bad shapes, labels or a
 * non-finite output are errors naming the sample; nothing is added then. */
NN_API nn_status nn_confusion_update(nn_confusion *cm, const nn_tensor *out,
                                     const nn_tensor *labels,
                                     int from_logits);
/* Positions of true class `truth` predicted as `predicted`; -1 (and an
 * error) for bad arguments. */
NN_API int64_t nn_confusion_count(const nn_confusion *cm, int truth,
                                  int predicted);
/* IoU TP / (TP + FP + FN) and Dice 2TP / (2TP + FP + FN) of one class;
 * NaN when the class is in neither truth nor prediction (0 / 0), and NaN
 * with an error for bad arguments. */
NN_API double nn_confusion_iou(const nn_confusion *cm, int cls);
NN_API double nn_confusion_dice(const nn_confusion *cm, int cls);
/* Mean over classes first_class .. classes - 1 that are in the truth or
 * the prediction (Keras MeanIoU skips the others; 0 when there is none).
 * first_class 0: every class (Keras MeanIoU); 1: all but class 0, the
 * background (for a one-channel output, the IoU of the positive class). */
NN_API double nn_confusion_mean_iou(const nn_confusion *cm, int first_class);
NN_API double nn_confusion_mean_dice(const nn_confusion *cm,
                                     int first_class);
/* Correct positions over all positions; 0 for an empty matrix. */
NN_API double nn_confusion_pixel_accuracy(const nn_confusion *cm);

/* Adds the model's predictions of x (inference mode, in batches of
 * batch_size) against the labels y, in the compiled loss's label format,
 * to cm; *loss (may be NULL) receives the mean loss, as
 * nn_model_evaluate. cm's classes must fit the output (C, or 2 for one
 * channel). */
NN_API nn_status nn_model_evaluate_confusion(nn_model *m, const nn_tensor *x,
                                             const nn_tensor *y,
                                             int batch_size, nn_confusion *cm,
                                             float *loss);

/* ------------------------------------------------------------------ */
/* Weighted losses and decision metrics (guides: docs/losses.md,       */
/* docs/metrics.md)                                                   */
/* ------------------------------------------------------------------ */

/* nn_loss_opts.weight_norm: what the weighted sum of a batch's losses
 * (class weights, fit's class_weight and sample_weight) is divided by. */
typedef enum nn_weight_norm {
    /* the number of samples, as Keras (sum_over_batch_size): weights
     * scale the loss and its gradient */
    NN_WEIGHT_NORM_SAMPLES = 0,
    /* the sum of the weights: a weighted mean, as
     * torch.nn.CrossEntropyLoss(weight=) with class ids and Keras 3's
     * mean_with_sample_weight (0 when every weight is 0) */
    NN_WEIGHT_NORM_SUM = 1
} nn_weight_norm;

/* --- precision, recall and F1 from a confusion matrix --- */

/* Of one class, as scikit-learn with zero_division=0: precision TP /
 * (TP + FP), recall TP / (TP + FN), F1 2TP / (2TP + FP + FN); 0 where the
 * denominator is 0. NaN with an error for bad arguments. */
NN_API double nn_confusion_precision(const nn_confusion *cm, int cls);
NN_API double nn_confusion_recall(const nn_confusion *cm, int cls);
NN_API double nn_confusion_f1(const nn_confusion *cm, int cls);

/* Averages over the classes (scikit-learn's average=, on the classes
 * that occur in the truth or the prediction, as its default labels). */
typedef enum nn_average {
    NN_AVERAGE_MACRO = 0,   /* the plain mean of the per-class values */
    NN_AVERAGE_MICRO = 1,   /* from the summed counts (= accuracy) */
    NN_AVERAGE_WEIGHTED = 2 /* the mean weighted by each class's truth */
} nn_average;

/* 0 for an empty matrix; NaN with an error for bad arguments. */
NN_API double nn_confusion_precision_avg(const nn_confusion *cm,
                                         nn_average average);
NN_API double nn_confusion_recall_avg(const nn_confusion *cm,
                                      nn_average average);
NN_API double nn_confusion_f1_avg(const nn_confusion *cm,
                                  nn_average average);

/* --- a binary decision: scores, curves, thresholds --- */

/* Every class but k is positive (e.g. any defect against class 0, the
 * good parts): a value of nn_binary_opts.positive_class. */
#define NN_ALL_BUT(k) (-1 - (k))

/* A binary view of a classifier's output. The classes are those of
 * nn_confusion (a one-channel output has 2: class 1 is the sigmoid's).
 * The score of a sample is the probability of the positive class: p_k;
 * for NN_ALL_BUT(k) the sum of the other classes' probabilities (1 - p
 * for one channel); softmax or sigmoid of the output when the loss was
 * compiled from_logits. A sample is positive where score >= threshold. */
typedef struct nn_binary_opts {
    size_t size;        /* sizeof(nn_binary_opts) */
    int positive_class; /* 1 */
    float threshold;    /* 0.5 */
} nn_binary_opts;
#define NN_BINARY_OPTS_INIT {sizeof(nn_binary_opts), 1, 0.5f}

/* Counts and metrics of a decision at one threshold. The caller sets
 * size (sizeof(nn_binary_report)); the library fills the members that
 * fit in it, so members are only ever appended. */
typedef struct nn_binary_report {
    size_t size;
    float threshold;            /* positive where score >= threshold */
    int64_t tp, fp, tn, fn;
    /* nn_confusion_precision, _recall, _f1 of the positive class and
     * the accuracy (zero_division 0) */
    double precision, recall, f1, accuracy;
    /* of all thresholds (nn_curve_roc_auc, _average_precision); NaN
     * where undefined */
    double roc_auc, average_precision;
} nn_binary_report;

/* The ROC and precision-recall curves of scores against binary labels
 * (scikit-learn's roc_curve and precision_recall_curve): one point per
 * distinct score, the thresholds in decreasing order; tied scores form
 * one point. */
typedef struct nn_curve nn_curve;

/* scores: n finite values; labels: n values 0 or 1 (1: positive).
 * Returns NULL with the reason (naming the index) on bad input. */
NN_API nn_curve *nn_curve_create(const float *scores, const float *labels,
                                 int64_t n);
NN_API void nn_curve_free(nn_curve *c);
/* Distinct thresholds K (>= 1); positives and negatives counted. -1 and
 * an error for NULL. */
NN_API int64_t nn_curve_size(const nn_curve *c);
NN_API int64_t nn_curve_positives(const nn_curve *c);
NN_API int64_t nn_curve_negatives(const nn_curve *c);
/* The ROC curve: K + 1 points, first (0, 0) at threshold +inf, then the
 * false and true positive rates with score >= thresholds[k]. A rate is
 * NaN when its class is absent (as scikit-learn). Any output may be
 * NULL; cap is the arrays' length, at least K + 1. */
NN_API nn_status nn_curve_roc(const nn_curve *c, double *fpr, double *tpr,
                              float *thresholds, int64_t cap);
/* The precision-recall curve: K points, precision TP / (TP + FP) and
 * recall TP / P with score >= thresholds[k] (recall NaN without
 * positives). scikit-learn returns them reversed and appends (precision
 * 1, recall 0) without a threshold. cap >= K. */
NN_API nn_status nn_curve_pr(const nn_curve *c, double *precision,
                             double *recall, float *thresholds,
                             int64_t cap);
/* ROC AUC by the trapezoid rule over the K + 1 points (roc_auc_score);
 * NaN with an error unless both classes are present. */
NN_API double nn_curve_roc_auc(const nn_curve *c);
/* Average precision, sum over k of (R_k - R_{k-1}) P_k with R_{-1} = 0
 * (average_precision_score: steps, not trapezoids); NaN with an error
 * without positives. */
NN_API double nn_curve_average_precision(const nn_curve *c);
/* The decision at `threshold`. */
NN_API nn_status nn_curve_report(const nn_curve *c, float threshold,
                                 nn_binary_report *report);
/* Choosing the threshold, always one of the scores. For a target recall
 * (no defective part shipped): the largest threshold whose recall >=
 * target. For a target precision (few good parts rejected): the
 * smallest threshold whose precision >= target. target in (0, 1].
 * report receives the decision there. An unreachable target (no
 * positives; no threshold precise enough) is NN_ERR_INVALID with a
 * message giving the best the scores reach. */
NN_API nn_status nn_curve_threshold_for_recall(const nn_curve *c,
                                               double target,
                                               nn_binary_report *report);
NN_API nn_status nn_curve_threshold_for_precision(const nn_curve *c,
                                                  double target,
                                                  nn_binary_report *report);

/* Evaluates the model on (x, y) (inference mode, in batches of
 * batch_size; labels as the compiled loss reads them) as the binary
 * decision opts describes (NULL: defaults): report (may be NULL)
 * receives the decision at opts->threshold with ROC AUC and average
 * precision (NaN where undefined, without an error); *curve (may be
 * NULL) a new curve of the scores, one per output position, that the
 * caller frees. */
NN_API nn_status nn_model_evaluate_binary(nn_model *m, const nn_tensor *x,
                                          const nn_tensor *y, int batch_size,
                                          const nn_binary_opts *opts,
                                          nn_binary_report *report,
                                          nn_curve **curve);

/* ------------------------------------------------------------------ */
/* Data-parallel training (guide: docs/mpi.md)                        */
/* ------------------------------------------------------------------ */

/* What libnn needs for training one model on several processes (or
 * machines) at once, as Horovod does: every process holds a copy of the
 * model, trains on its shard of each batch, and the processes average
 * their gradients before every optimizer step. libnn itself knows no
 * transport; libnn_mpi (include/nn_mpi.h) builds the MPI one on these
 * calls.
 *
 * The parameter order: every buffer below lists parameters in the order
 * of the model's layers (nn_model_layer 0, 1, ...) and, within a layer,
 * of its weights (nn_layer_weight 0, 1, ...), each parameter's values in
 * its tensor's row-major order. A weight shared by several layers of the
 * model (nn_model_apply) appears once per layer. */

/* Parts of a model's state. */
typedef enum nn_state_part {
    /* every parameter: weights (trainable or frozen) and statistics */
    NN_STATE_ALL = 0,
    /* the parameters that train now (the parameter and its layer
     * trainable): the layout of a gradient hook's buffer */
    NN_STATE_TRAINABLE = 1,
    /* statistics that no gradient trains: BatchNormalization's
     * moving_mean and moving_variance (frozen layers' too) */
    NN_STATE_STATISTICS = 2
} nn_state_part;

/* Number of floats in a part of the model's state; -1 (and an error) for
 * a NULL model or an unknown part. */
NN_API int64_t nn_model_state_size(const nn_model *m, nn_state_part part);
/* Copies a part of the state into buf[0..n), n = nn_model_state_size
 * (NN_ERR_SHAPE otherwise). */
NN_API nn_status nn_model_get_state(const nn_model *m, nn_state_part part,
                                    float *buf, int64_t n);
/* Overwrites a part of the state from buf[0..n), n = nn_model_state_size
 * (NN_ERR_SHAPE otherwise, and nothing changes). A shared weight takes
 * the values of its last appearance. The optimizer's state is not part
 * of it. */
NN_API nn_status nn_model_set_state(nn_model *m, nn_state_part part,
                                    const float *buf, int64_t n);

/* What a gradient hook is told about the step. */
typedef struct nn_grad_info {
    size_t size;  /* sizeof(nn_grad_info) of the library that filled it */
    int64_t step; /* the optimizer's iterations before this step */
    /* samples whose mean gradient the buffer holds: the batch of the last
     * backward pass; 0 when this process has no sample in a step of a
     * data-parallel fit (a short last batch), the buffer then holds
     * zeros */
    int64_t samples;
    /* in a data-parallel fit (nn_fit_opts.world_size > 1), the samples of
     * the step over all processes, so the mean over all of them is the
     * sum over the processes of grads * samples / total_samples; 0
     * otherwise */
    int64_t total_samples;
} nn_grad_info;

/* Called after each backward pass, right before the optimizer step
 * (nn_model_train_batch, nn_model_apply_gradients, nn_model_fit), with the
 * gradients of every parameter that trains gathered in one buffer
 * grads[0..n) (n = nn_model_state_size(m, NN_STATE_TRAINABLE)). What the
 * hook leaves in the buffer is what the optimizer applies (clipping
 * included). A hook reports a failure by returning an error status (with
 * nn_set_error for its message); the step then stops with the weights and
 * the optimizer unchanged and the call returns that status. */
typedef nn_status (*nn_grad_hook_fn)(float *grads, int64_t n,
                                     const nn_grad_info *info, void *user);
/* Sets the model's gradient hook; fn NULL removes it. Without a hook
 * nothing is gathered or copied. */
NN_API nn_status nn_model_set_grad_hook(nn_model *m, nn_grad_hook_fn fn,
                                        void *user);

/* Where a data-parallel fit calls nn_fit_opts.sync. */
typedef enum nn_sync_point {
    /* Before the first epoch, with values that must agree on every
     * process (sample counts, batch size, epochs, shuffling, the seed's
     * generator, the state's size) and the rank: fit checks the sums, so
     * that processes that disagree stop with NN_ERR_INVALID rather than
     * wait for each other. */
    NN_SYNC_START = 0,
    /* After each epoch's training steps, before validation, with the
     * epoch's sums (loss x samples, correct predictions, predictions,
     * samples, then with segmentation_metrics the confusion matrix's
     * counts): every process then reports the same loss and accuracy.
     * The hook may also make the model's statistics agree here (libnn_mpi
     * averages BatchNormalization's moving statistics). */
    NN_SYNC_EPOCH_END = 1
} nn_sync_point;

/* nn_fit_opts.sync: replaces values[0..n) by their sums over the
 * processes (every process gets the same sums). The rules of a
 * data-parallel fit (docs/mpi.md):
 *  - Sharding: each epoch's order is drawn from the model's generator, so
 *    it is the same on every process. Global step k covers positions
 *    [k G, k G + T) of it, G = world_size x batch_size, T = min(G,
 *    N - k G); process r takes positions [k G + floor(r T / world_size),
 *    k G + floor((r + 1) T / world_size)). With N samples, world_size
 *    processes at batch_size B therefore train on exactly the batches of
 *    one process at batch size world_size x B; a process without a
 *    sample in a step still reaches the gradient hook (samples 0).
 *  - The model must have a gradient hook that combines the processes'
 *    gradients (as nn_grad_info says) before every step.
 *  - The history's loss and accuracy are the sums over all processes;
 *    validation runs whole on every process; the progress callback sees
 *    this process's running loss and accuracy and the global batch
 *    count and samples. Gradient norms and seconds are this process's.
 *  - Losses that are means over samples combine exactly (the
 *    cross-entropies, with weights under NN_WEIGHT_NORM_SAMPLES; IoU and
 *    Dice per image); a batch-pooled IoU or Dice, or a weighted mean
 *    (NN_WEIGHT_NORM_SUM), is computed per shard. decision_metrics are
 *    not supported (NN_ERR_UNSUPPORTED).
 *  - Dropout and augmentation draw differently on each rank.
 *  - A process whose call fails returns; the others would wait for it
 *    in the next collective: the program must then stop them all (the
 *    MPI program calls MPI_Abort). */
typedef nn_status (*nn_sync_fn)(nn_model *m, double *values, int n,
                                int point, void *user);

/* Records status and message as the calling thread's last error (what
 * nn_last_error and nn_last_status return) and returns status: hooks and
 * libraries built on libnn (libnn_mpi) report failures this way. NULL
 * message: the status's name. */
NN_API nn_status nn_set_error(nn_status status, const char *message);

/* ------------------------------------------------------------------ */
/* Inference and contexts                                             */
/* ------------------------------------------------------------------ */

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

/* ------------------------------------------------------------------ */
/* Inference for a product (guide: docs/inference.md)                 */
/* ------------------------------------------------------------------ */

/* Load the model once (nn_model_load), give each worker thread its own
 * nn_context, and classify camera frames through it. After the first call
 * at a given batch size (and, for frames that are resized, a given frame
 * size) a call on a context allocates nothing: nn_context_predict and the
 * calls below. The model file carries the preprocessing and the decision
 * (nn_model_set_preprocess), so a model is never paired with another
 * model's normalisation or threshold. */

/* Where the colour channels of 8-bit frames sit, relative to the model's
 * input channels. */
typedef enum nn_channel_order {
    NN_CHANNELS_AS_MODEL = 0, /* frame channel k is model channel k */
    /* the first three channels come reversed: a BGR (or BGRA) camera
     * feeding a model trained on RGB, or the other way round */
    NN_CHANNELS_REVERSED = 1
} nn_channel_order;

/* What a classifier needs besides its weights: how an 8-bit frame becomes
 * its input, and the decision on its output. */
typedef struct nn_preprocess_opts {
    size_t size; /* sizeof(nn_preprocess_opts) */
    /* value = (pixel * scale - mean[c]) / std[c] for model channel c (as
     * nn_pixels_opts): scale finite and > 0; all four means finite, all
     * four stds finite and > 0 */
    float scale;       /* 1/255 */
    float mean[4];     /* 0 */
    float std[4];      /* 1 */
    int channel_order; /* an nn_channel_order: NN_CHANNELS_AS_MODEL */
    /* 1: a frame of another height x width is resized to the model's
     * input (bilinear, half-pixel centres, as nn_image_resize); 0: frames
     * must have the input's size */
    int resize; /* 0 */
    /* The decision, with nn_binary_opts' meaning: the positive classes
     * are class k, or every class but k (NN_ALL_BUT(k)); a part is
     * defective where their probability (the score) >= threshold, which
     * lies in [0, 1]. */
    int positive_class; /* 1 */
    float threshold;    /* 0.5 */
    int reserved;       /* 0 */
} nn_preprocess_opts;
#define NN_PREPROCESS_OPTS_INIT                                                \
    {sizeof(nn_preprocess_opts), 1.0f / 255.0f, {0, 0, 0, 0}, {1, 1, 1, 1},    \
     NN_CHANNELS_AS_MODEL, 0, 1, 0.5f, 0}

/* Stores the preprocessing and the decision in the model (NULL: the
 * defaults); nn_model_save writes them into the file and nn_model_load
 * restores them. The model must classify images: input [H, W, C] with 1
 * to 4 channels (NN_CHANNELS_REVERSED: at least 3), output [classes];
 * positive_class must name its classes (2 for one sigmoid channel). */
NN_API nn_status nn_model_set_preprocess(nn_model *m,
                                         const nn_preprocess_opts *opts);
/* Copies the model's preprocessing into *out: the members that fit in
 * out->size, which the caller sets. NN_ERR_STATE when the model carries
 * none (never set, or loaded from a file without it). */
NN_API nn_status nn_model_get_preprocess(const nn_model *m,
                                         nn_preprocess_opts *out);

/* The classification of one image. The caller sets size
 * (sizeof(nn_verdict)) and, if it wants them, probs and num_probs; the
 * library fills the members that fit in size, so members are only ever
 * appended. */
typedef struct nn_verdict {
    size_t size;
    /* NULL, or the caller's buffer of num_probs floats, at least the
     * model's classes (the output's length; 2 for one sigmoid channel:
     * 1 - p, p): receives the class probabilities (the output, through a
     * softmax or sigmoid when the loss was compiled from_logits) */
    float *probs;
    int num_probs;
    /* the argmax (first of ties); for one channel 1 where p > 0.5, as
     * nn_confusion counts it */
    int predicted_class;
    /* the positive classes' probability, computed as
     * nn_model_evaluate_binary computes its scores */
    float score;
    int defective; /* 1 where score >= the model's threshold, else 0 */
} nn_verdict;
#define NN_VERDICT_INIT {sizeof(nn_verdict), NULL, 0, 0, 0.0f, 0}

/* Classifies one 8-bit frame, height x width x channels (interleaved,
 * channels as the model's input; `stride` bytes from one row to the next,
 * 0: width * channels), with the model's preprocessing and decision
 * (NN_ERR_STATE when it carries none). A frame of another size is
 * NN_ERR_SHAPE unless the preprocessing resizes; a NULL frame is
 * NN_ERR_INVALID. Neither changes the context: the next frame is
 * classified as usual. */
NN_API nn_status nn_context_classify_u8(nn_context *ctx,
                                        const uint8_t *pixels, int height,
                                        int width, int channels,
                                        size_t stride, nn_verdict *out);
/* n frames of one size in one pass: frames[i] gives out[i]. A NULL frame
 * is an error naming its index, and then nothing is classified. */
NN_API nn_status nn_context_classify_u8_batch(nn_context *ctx,
                                              const uint8_t *const *frames,
                                              int n, int height, int width,
                                              int channels, size_t stride,
                                              nn_verdict *out);
/* Classifies x [N, ...input shape], already preprocessed (floats as the
 * model takes them), in one pass: row i gives out[i], with the model's
 * decision (NN_ERR_STATE when it carries none). */
NN_API nn_status nn_context_classify(nn_context *ctx, const nn_tensor *x,
                                     nn_verdict *out);

/* ------------------------------------------------------------------ */
/* Gradient diagnostics (guide: docs/diagnostics.md)                  */
/* ------------------------------------------------------------------ */

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

/* ------------------------------------------------------------------ */
/* Resource limits                                                    */
/* ------------------------------------------------------------------ */

/* How much memory a file may make libnn plan or allocate on its say-so. A
 * file is small but can describe something huge: a checkpoint of a few
 * hundred bytes can hold a Resizing layer to 26000 x 26000 (8 GB per
 * sample), a 2 MB gzip IDX file can inflate to 2 GB of bytes and 8 GB of
 * floats. The limits are process-wide, may be set from any thread at any
 * time, and apply to the loads that start afterwards. */
typedef struct nn_limits {
    size_t size; /* sizeof(nn_limits) */
    /* Bytes of activations, layer state and scratch that inference on one
     * sample of a loaded model may need, as nn_context_predict would plan
     * them for batch 1: nn_model_load refuses a model above it with
     * NN_ERR_NOMEM and a message naming the layer where the plan passes
     * the limit. Models built through the API are not checked.
     * 0: NN_DEFAULT_MODEL_BYTES. */
    int64_t model_bytes;
    /* Bytes of the float32 tensors a data-set loader returns: nn_load_idx
     * and nn_load_cifar10 refuse, with NN_ERR_NOMEM, files whose headers
     * or sizes promise more, before reading any data (so a compressed
     * file cannot inflate past it). 0: NN_DEFAULT_DATA_BYTES. */
    int64_t data_bytes;
} nn_limits;
#define NN_LIMITS_INIT {sizeof(nn_limits), 0, 0}
#define NN_DEFAULT_MODEL_BYTES ((int64_t)1 << 31) /* 2 GiB */
#define NN_DEFAULT_DATA_BYTES ((int64_t)1 << 31)  /* 2 GiB */

/* Sets the limits from the first limits->size bytes of *limits; members
 * it lacks, and members set to 0, take their defaults; NULL restores every
 * default. NN_ERR_INVALID for a negative member (nothing changes then). */
NN_API nn_status nn_set_limits(const nn_limits *limits);
/* Writes the limits in force, defaults resolved (never 0), into the first
 * limits->size bytes of *limits. */
NN_API nn_status nn_get_limits(nn_limits *limits);

/* ------------------------------------------------------------------ */
/* Files: models, weights, data sets                                  */
/* ------------------------------------------------------------------ */

/* Models (format: docs/checkpoint-format.md). */

typedef enum nn_save_flags {
    NN_SAVE_DEFAULT = 0,
    NN_SAVE_OPTIMIZER = 1 /* also store the optimizer and its state */
} nn_save_flags;

/* Writes graph + weights (+ optimizer state). The previous file at `path`
 * stays intact until the new one is complete: the file is written beside
 * it (a hidden ".nn.tmp.*" name in the same directory), synced, and
 * renamed over it. `path` must name a regular file or nothing; a symbolic
 * link to a regular file is followed, so the file it points to is replaced
 * and the link stays (as editors save). A directory, FIFO, device or
 * socket is refused (NN_ERR_IO). Temporaries left by a save that was
 * killed are removed by the next save of the same path. */
NN_API nn_status nn_model_save(const nn_model *m, const char *path,
                               int flags);
/* Loads a model saved by nn_model_save. Returns NULL on failure with the
 * reason in nn_last_error(); a damaged file never crashes the caller.
 * Only a regular file is read: a FIFO, a directory or a device is refused
 * at once (NN_ERR_IO), as by nn_model_load_safetensors, nn_load_idx and
 * nn_load_cifar10. */
NN_API nn_model *nn_model_load(const char *path);

typedef enum nn_weight_map {
    /* Tensors named "<layer>/<weight>" ("conv1_conv/kernel") in libnn's
     * layouts: what nn_model_save_safetensors writes. */
    NN_WEIGHTS_LIBNN = 0,
    /* torchvision ResNet state_dict keys ("layer1.0.conv1.weight") and
     * PyTorch layouts, into a model built by nn_resnet50 (torchvision
     * flavour); "num_batches_tracked" counters are skipped, and so is the
     * classifier ("fc.*") when the model has no top. */
    NN_WEIGHTS_TORCHVISION_RESNET = 1,
    /* torchvision MobileNetV2 state_dict keys ("features.2.conv.0.0.weight";
     * depthwise kernels [C, 1, 3, 3] -> [3, 3, C, 1]) into a model built
     * by nn_mobilenet_v2 (torchvision flavour); "num_batches_tracked" and,
     * without a top, the classifier ("classifier.*") are skipped. */
    NN_WEIGHTS_TORCHVISION_MOBILENET_V2 = 2
} nn_weight_map;

/* Loads every weight of m from a safetensors file (float32 tensors).
 * Strict: a missing or extra tensor, a wrong shape or dtype, or a malformed
 * file is an error whose message names the tensor; m is unchanged then. */
NN_API nn_status nn_model_load_safetensors(nn_model *m, const char *path,
                                           nn_weight_map map);
/* Writes every weight of m to a safetensors file, NN_WEIGHTS_LIBNN names.
 * The file is replaced atomically, as nn_model_save replaces its file. */
NN_API nn_status nn_model_save_safetensors(const nn_model *m,
                                           const char *path);

/* Data sets. */

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

/* ------------------------------------------------------------------ */
/* Images and segmentation data (guide: docs/data.md)                  */
/* ------------------------------------------------------------------ */

/* PNG files through libpng: every colour type (gray, gray+alpha, RGB,
 * RGBA, palette with or without transparency), bit depths 1 to 16,
 * interlaced or not. Only regular files are opened (a FIFO or a device is
 * refused, never waited on). A damaged or truncated file is an error
 * (NN_ERR_FORMAT) that names it; nothing is printed. */

/* Default of nn_image_opts.max_values: 2^27 values, a 512 MiB tensor. */
#define NN_IMAGE_MAX_VALUES ((int64_t)1 << 27)

/* How the samples of a mask file become class ids. */
typedef enum nn_mask_mode {
    /* A gray sample (any bit depth) or a palette index is the class id. */
    NN_MASK_CLASS_IDS = 0,
    /* Binary masks drawn as black and white: 0 is class 0, the largest
     * value of the bit depth (255 at 8 bits, 1 at 1 bit) is class 1; any
     * other value is an error. Palette masks: index 0 and 1. */
    NN_MASK_BINARY = 1
} nn_mask_mode;

typedef struct nn_image_opts {
    size_t size;       /* sizeof(nn_image_opts) */
    /* 0, 0: keep the stored size. Otherwise every image is resized to
     * height x width: bilinear for images, nearest for masks (half-pixel
     * centres, as nn_resizing), so a mask keeps only the ids it had. */
    int height, width;
    /* A file whose width x height x channels (the larger of the stored and
     * the requested channel count) exceeds this is refused from its header
     * (NN_ERR_UNSUPPORTED), before anything is allocated for it. */
    int64_t max_values;     /* NN_IMAGE_MAX_VALUES; 0 means the same */
    nn_mask_mode mask_mode; /* CLASS_IDS */
    int num_classes;        /* 2: mask class ids must lie in 0..num_classes-1 */
} nn_image_opts;
#define NN_IMAGE_OPTS_INIT                                                     \
    {sizeof(nn_image_opts), 0, 0, NN_IMAGE_MAX_VALUES, NN_MASK_CLASS_IDS, 2}

/* Reads a PNG into a new tensor [H, W, channels] of values in [0, 1]
 * (sample / 255, or / 65535 at 16 bits). channels is 1 or 3, converted as
 * Keras' load_img (PIL) does: gray -> RGB repeats the value; RGB -> gray is
 * ITU-R 601 luma (R 299 + G 587 + B 114) / 1000, rounded to 8 bits as PIL
 * rounds it for 8-bit files; alpha and palette transparency are dropped,
 * not composited. */
NN_API nn_status nn_image_load(const char *path, int channels,
                               const nn_image_opts *opts, nn_tensor **out);
/* Reads a mask PNG (gray or palette; see nn_mask_mode) into a new tensor
 * [H, W, 1] of class ids as floats. A value that is not a class id below
 * opts->num_classes is an error naming the pixel. RGB masks are refused:
 * save colour-coded masks as palette PNGs. */
NN_API nn_status nn_mask_load(const char *path, const nn_image_opts *opts,
                              nn_tensor **out);
/* Reads `count` PNGs into one new tensor [count, H, W, channels]: H x W is
 * opts->height x opts->width, or the first file's size when those are 0
 * (then every file must have that size). An error names the file and its
 * index. */
NN_API nn_status nn_image_load_batch(const char *const *paths, int count,
                                     int channels, const nn_image_opts *opts,
                                     nn_tensor **out);
/* Resizes images [H, W, C] or [N, H, W, C] into a new tensor of the same
 * rank with height x width (as nn_resizing: bilinear for images, nearest
 * for masks). */
NN_API nn_status nn_image_resize(const nn_tensor *images, int height,
                                 int width, nn_interpolation interpolation,
                                 nn_tensor **out);
/* Writes image `index` of [N, H, W, C] (or the image [H, W, C], index 0)
 * as an 8-bit PNG: C 1 gray, 3 RGB, 4 RGBA; values in [0, 1] are scaled
 * by 255 and rounded, values outside clamped, NaN written as 0. The file is
 * replaced atomically (written beside it, then renamed). */
NN_API nn_status nn_image_save_png(const char *path, const nn_tensor *images,
                                   int64_t index);
/* Writes mask `index` of [N, H, W, 1] (or [H, W, 1]) as an 8-bit palette
 * PNG whose indices are the class ids (0..255; anything else is an error)
 * and whose colours tell the classes apart: 0 black, 1 white, 2 red,
 * 3 green, 4 blue, 5 yellow, ... nn_mask_load reads it back exactly. */
NN_API nn_status nn_mask_save_png(const char *path, const nn_tensor *masks,
                                  int64_t index);

/* Normalisation of 8-bit pixels: value = (pixel * scale - mean[c]) / std[c]
 * for channel c. The defaults give pixel * (1/255), as Keras'
 * Rescaling(1/255);
 * torchvision's preprocessing is mean {0.485, 0.456, 0.406} and std
 * {0.229, 0.224, 0.225}. */
typedef struct nn_pixels_opts {
    size_t size;   /* sizeof(nn_pixels_opts) */
    size_t stride; /* bytes from one row to the next; 0: width * channels */
    float scale;   /* 1/255 */
    float mean[4]; /* 0 */
    float std[4];  /* 1; each must be positive */
} nn_pixels_opts;
#define NN_PIXELS_OPTS_INIT                                                    \
    {sizeof(nn_pixels_opts), 0, 1.0f / 255.0f, {0, 0, 0, 0}, {1, 1, 1, 1}}

/* Converts an 8-bit HWC frame (a camera buffer, channels 1..4) into image
 * `index` of `out`, an existing tensor [N, height, width, channels] (or
 * [height, width, channels] with index 0). Allocates nothing, so a
 * product's capture loop can call it for every frame. */
NN_API nn_status nn_image_from_u8(const uint8_t *pixels, int height,
                                  int width, int channels,
                                  const nn_pixels_opts *opts, nn_tensor *out,
                                  int64_t index);

/* Reads a segmentation data set listed in a CSV manifest:
 *   id,image_path,mask_path
 *   part-001,images/part-001.png,masks/part-001.png
 * The header line is required (further columns are ignored); relative
 * paths are relative to the manifest's directory; a field may be quoted
 * ("a,b.png", with "" for a quote inside) but cannot span lines. images
 * receives [N, H, W, channels] in [0, 1] and masks [N, H, W, 1] class ids
 * as floats, H x W as in nn_image_load_batch (set opts->height and width
 * to the model's input). A bad row (a missing or damaged file, an image and
 * a mask of different sizes, a mask value that is not a class id below
 * opts->num_classes) is an error naming the manifest line, the row's id and
 * the file; nothing is returned then. */
NN_API nn_status nn_seg_load_manifest(const char *path, int channels,
                                      const nn_image_opts *opts,
                                      nn_tensor **images, nn_tensor **masks);

/* Paired augmentation: flips image i of images [N, H, W, C] and mask i of
 * masks [N, H, W, Cm] (may be NULL) together, in place, left-right with
 * probability 1/2 when mode has NN_FLIP_HORIZONTAL and upside down with
 * probability 1/2 when it has NN_FLIP_VERTICAL. Each image's draws depend
 * only on (seed, i): pass a new seed every epoch. */
NN_API nn_status nn_seg_random_flip(nn_tensor *images, nn_tensor *masks,
                                    nn_flip_mode mode, uint64_t seed);

/* The synthetic surface-defect data set: textured surfaces (brushed metal,
 * woven fabric, cast or painted surfaces) under uneven lighting with
 * sensor noise, some carrying one kind of defect. */
typedef enum nn_defect_kind {
    NN_DEFECT_NONE = 0,
    NN_DEFECT_SCRATCH = 1, /* thin lines and curves */
    NN_DEFECT_PIT = 2,     /* small dark or bright blobs */
    NN_DEFECT_CRACK = 3,   /* branching jagged dark lines */
    NN_DEFECT_STAIN = 4    /* large soft-edged discolouration */
} nn_defect_kind;
#define NN_DEFECT_KINDS 5

typedef struct nn_defects_opts {
    size_t size;           /* sizeof(nn_defects_opts) */
    int count;             /* 256 images */
    int height, width;     /* 128 x 128 (each 16..4096) */
    int channels;          /* 3 (RGB) or 1 (gray) */
    float defect_fraction; /* 0.5: the share of images with a defect */
    /* 0: masks hold 1 on defect pixels; 1: the defect's nn_defect_kind */
    int typed_masks;
    uint64_t seed; /* 0 */
} nn_defects_opts;
#define NN_DEFECTS_OPTS_INIT                                                   \
    {sizeof(nn_defects_opts), 256, 128, 128, 3, 0.5f, 0, 0}

/* Generates the data set: images [count, height, width, channels] in
 * [0, 1], masks [count, height, width, 1] (a pixel belongs to the defect
 * where the defect covers at least half of it; all zero exactly for the
 * images without a defect) and labels [count] (the image's nn_defect_kind,
 * 0 for none). The same options give the same values on every machine and
 * at any thread count. */
NN_API nn_status nn_synthetic_defects(const nn_defects_opts *opts,
                                      nn_tensor **images, nn_tensor **masks,
                                      nn_tensor **labels);
/* "none", "scratch", "pit", "crack", "stain"; NULL for other values. */
NN_API const char *nn_defect_name(int kind);

/* ------------------------------------------------------------------ */
/* Model zoo (guide: docs/zoo.md)                                     */
/* ------------------------------------------------------------------ */

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

typedef enum nn_mobilenet_flavor {
    /* keras.applications.MobileNetV2: Conv1 3x3/2 "same" (bottom/right
     * padding on even sizes), ZeroPadding2D "block_N_pad" with Keras'
     * correct_pad before each stride-2 depthwise conv, BatchNormalization
     * eps 1e-3, momentum 0.999. */
    NN_MOBILENET_KERAS = 0,
    /* torchvision.models.mobilenet_v2: every 3x3 conv padded 1 on each
     * side ("Conv1_pad", "block_N_pad"), eps 1e-5, momentum 0.9 (PyTorch's
     * 0.1), the top's Dropout(0.2): loads torchvision's weights. */
    NN_MOBILENET_TORCHVISION = 1
} nn_mobilenet_flavor;

typedef struct nn_mobilenet_v2_opts {
    size_t size;      /* sizeof(nn_mobilenet_v2_opts) */
    const char *name; /* model name; NULL: Keras' "mobilenetv2_1.00_224"
                         (alpha, then the input height) */
    nn_mobilenet_flavor flavor; /* KERAS */
    /* 1: GlobalAveragePooling2D "global_average_pooling2d" (+ Dropout(0.2)
     * "dropout" in the torchvision flavour) + Dense(classes)
     * "predictions"; 0: ends at "out_relu". */
    int include_top; /* 1 */
    int classes;     /* 1000 */
    nn_activation classifier_activation; /* SOFTMAX; NONE gives logits */
    /* Width multiplier (torchvision's width_mult), in (0, 4]: every
     * layer's filters scaled and rounded to a multiple of 8 as Keras'
     * _make_divisible does; the last 1x1 conv keeps 1280 for alpha <= 1.
     * Keras' ImageNet weights exist for 0.35, 0.5, 0.75, 1.0, 1.3, 1.4. */
    double alpha; /* 1.0 */
} nn_mobilenet_v2_opts;
#define NN_MOBILENET_V2_OPTS_INIT                                              \
    {sizeof(nn_mobilenet_v2_opts), NULL, NN_MOBILENET_KERAS, 1, 1000,          \
     NN_ACT_SOFTMAX, 1.0}

/* MobileNetV2 (Sandler et al. 2018) on height x width x channels images
 * (at least 32 x 32), initialised from `seed` (Keras' defaults), with
 * Keras' layer names: "input_1", "Conv1", "bn_Conv1", "Conv1_relu",
 * "expanded_conv_depthwise", "..._BN", "..._relu",
 * "expanded_conv_project", "..._BN", then for N = 1..16 "block_N_expand",
 * "block_N_expand_BN", "block_N_expand_relu", ["block_N_pad"],
 * "block_N_depthwise", "block_N_depthwise_BN", "block_N_depthwise_relu",
 * "block_N_project", "block_N_project_BN", ["block_N_add"], then "Conv_1",
 * "Conv_1_bn", "out_relu". Activations are ReLU6, no conv has a bias.
 * alpha 1.0 without top: 2,257,984 parameters (34,112 non-trainable) at
 * any input size; with the top at 224x224x3: 3,538,984. */
NN_API nn_model *nn_mobilenet_v2(int height, int width, int channels,
                                 uint64_t seed,
                                 const nn_mobilenet_v2_opts *opts);

typedef struct nn_unet_opts {
    size_t size;      /* sizeof(nn_unet_opts) */
    const char *name; /* model name; NULL: "unet" */
    /* The encoder's row in the summary (nn_model_apply's block name);
     * NULL: the encoder's model name. */
    const char *encoder_name;
    /* 1: the encoder's layers in the U-Net are frozen (not trained, their
     * BatchNormalization in inference mode), as the TensorFlow tutorial
     * freezes its pretrained MobileNetV2. 0 (default): they keep the
     * encoder's trainable flags. */
    int freeze_encoder;
    /* of the last Conv2DTranspose: NONE (logits, for losses with
     * from_logits), SIGMOID, SOFTMAX */
    nn_activation activation;
    /* > 0: Dropout(rate) in every upsample block, after the normalization
     * (pix2pix's apply_dropout uses 0.5); 0 (default): none. */
    double dropout;
    /* Momentum of the decoder's BatchNormalization (Keras convention):
     * 0.99, Keras' default, as the tutorial. A short training from
     * scratch wants 0.9 (PyTorch's 0.1): with 0.99 the moving statistics
     * that inference uses lag a few hundred steps behind the weights. */
    double bn_momentum;
} nn_unet_opts;
#define NN_UNET_OPTS_INIT                                                      \
    {sizeof(nn_unet_opts), NULL, NULL, 0, NN_ACT_NONE, 0.0, 0.99}

/* A U-Net on an encoder model (e.g. nn_mobilenet_v2 without top), as the
 * TensorFlow segmentation tutorial builds it. skip_names lists n_skips
 * layers of the encoder from the shallowest to the deepest; each must
 * have half the height and width of the one before, the first half the
 * input's. The encoder enters through nn_model_apply (weights shared with
 * `encoder`, one summary row), up to the deepest skip. The decoder has
 * n_filters = n_skips - 1 upsample blocks (pix2pix's upsample):
 *   Conv2DTranspose(filters[i], 3, strides 2, "same", no bias, kernel
 *   N(0, 0.02)) - BatchNormalization - [Dropout] - ReLU,
 * filters[0] on the deepest skip, each followed by a Concatenate with the
 * next shallower skip; then Conv2DTranspose(classes, 3, strides 2,
 * "same", with bias) gives the output at the input's resolution. The
 * decoder's weights come from `seed`. The encoder may be freed first. */
NN_API nn_model *nn_unet(nn_model *encoder, int n_skips,
                         const char *const *skip_names, int n_filters,
                         const int *filters, int classes, uint64_t seed,
                         const nn_unet_opts *opts);

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

#ifdef __cplusplus
}
#endif
#endif /* NN_H */

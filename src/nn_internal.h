/* Internal declarations shared by the library's source files. Not API. */
#ifndef NN_INTERNAL_H
#define NN_INTERNAL_H

#include "nn.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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
char *nn__strdup(const char *s);
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

/* ---------------- shapes ---------------- */

/* Per-sample shape: the batch axis excluded. */
typedef struct nn_shape {
    int rank;
    int d[NN_MAX_RANK];
} nn_shape;

int64_t nn__shape_size(const nn_shape *s);

/* ---------------- layers ----------------
 * Kind numbers are stored in checkpoint files: never renumber them. */

typedef enum nn_layer_kind {
    NN_KIND_INPUT = 0,
    NN_KIND_CONV2D = 1,
    NN_KIND_MAXPOOL2D = 2,
    NN_KIND_AVGPOOL2D = 3,
    NN_KIND_FLATTEN = 4,
    NN_KIND_DROPOUT = 5,
    NN_KIND_DENSE = 6,
    NN_KIND_RELU = 7,
    NN_KIND_SIGMOID = 8,
    NN_KIND_SOFTMAX = 9,
    /* graph-model layers (Q2, Q3d, Q3e) */
    NN_KIND_BATCHNORM = 10,
    NN_KIND_ZEROPAD2D = 11,
    NN_KIND_ADD = 12,
    NN_KIND_CONCATENATE = 13,
    NN_KIND_GLOBAL_AVGPOOL2D = 14,
    NN_KIND_RESIZING = 15,
    NN_KIND_LOCALLY_CONNECTED2D = 16,
    NN_KIND_REPEAT_CHANNELS = 17,
    /* augmentation layers (Q3b) */
    NN_KIND_RANDOM_FLIP = 18,
    NN_KIND_RANDOM_ROTATION = 19,
    NN_KIND_RANDOM_TRANSLATION = 20,
    NN_KIND_RANDOM_ZOOM = 21,
    NN_KIND_RANDOM_CONTRAST = 22,
    NN_KIND_COUNT
} nn_layer_kind;

typedef struct nn_param {
    char name[16];
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
 * (src/graph/fuse.c): Conv2D -> BatchNormalization -> [Add] -> [ReLU].
 * The head convolution writes the last one's output; the others are
 * skipped. */
typedef struct nn_fuse {
    int tail;               /* last fused layer; -1: the layer fuses nothing */
    const struct nn_layer *bn; /* inference-mode BatchNormalization or NULL */
    int residual;           /* the fused Add's other input, or -1 */
    bool relu;
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

typedef struct nn_layer_ops {
    const char *type_name; /* Keras class name */
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
    /* Serialized config: writes at most cap bytes, returns length. */
    size_t (*save_config)(const nn_layer *l, uint8_t *buf, size_t cap);
    /* Restores config from bytes (before build). */
    nn_status (*load_config)(nn_layer *l, const uint8_t *buf, size_t len);
} nn_layer_ops;

/* Registry: one entry per kind (src/layers/registry.c). An entry is NULL
 * only while a kind is being added; tests/test_layers.c fails until every
 * kind is registered, and the builders and the loader refuse NULL kinds. */
extern const nn_layer_ops *const nn__layer_registry[NN_KIND_COUNT];
/* Keras default name stem per kind ("conv2d", "max_pooling2d", ...). */
extern const char *const nn__layer_stem[NN_KIND_COUNT];

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
    /* Kind-specific configuration; each layer file defines its struct.
     * Plain data only (copied and serialized as bytes). */
    union {
        struct {
            int filters, kh, kw, sh, sw, use_bias;
            nn_padding padding;
            nn_initializer kinit, binit;
            int pad_top, pad_left; /* derived by build */
        } conv;
        struct {
            int ph, pw, sh, sw;
            nn_padding padding;
            int pad_top, pad_left;
        } pool;
        struct {
            int units, use_bias;
            nn_initializer kinit, binit;
        } dense;
        struct {
            float rate;
        } dropout;
        struct {
            float momentum, epsilon;
            int center, scale;
        } bn;
        struct {
            int top, bottom, left, right;
        } pad;
        struct {
            int height, width;
            nn_interpolation interpolation;
        } resize;
        struct {
            int times;
        } repeat;
        /* augmentation: factors as Keras takes them */
        struct {
            int mode; /* nn_flip_mode */
            float h_lo, h_hi, w_lo, w_hi; /* ranges (zoom, translation) */
            float factor_lo, factor_hi;   /* rotation, contrast */
            nn_fill_mode fill;
            nn_interpolation interpolation;
            float fill_value;
        } aug;
    } cfg;
};

/* Creates a layer of `kind` in m with the given inputs, name (NULL: stem
 * default) and config already in *proto's cfg/activation fields; builds and
 * initializes it. Returns NULL with the error recorded. */
nn_layer *nn__add_layer(nn_model *m, nn_layer_kind kind, int n_inputs,
                        nn_layer *const *inputs, const char *name,
                        const nn_layer *proto);

/* Bound of a model's default-name counters: a counter stays an int and
 * a model that saves one loads it back. */
#define NN_NAME_COUNTER_MAX (1 << 30)

/* Graph plumbing shared by src/graph/ files. */
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

/* Fused activation helpers (src/layers/activation.c): in place on
 * [rows, cols]. Backward turns dy (grad w.r.t. output y) into the grad
 * w.r.t. the pre-activation, in place. */
void nn__act_forward(nn_activation act, float *y, int64_t rows, int64_t cols);
void nn__act_backward(nn_activation act, const float *y, float *dy,
                      int64_t rows, int64_t cols);

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
    /* Gradient clipping (0: off), and the gradient diagnostics of the
     * model that owns this optimizer (src/diag/diag.h; NULL: off). They
     * live here because every training step goes through the optimizer;
     * nn_model_compile moves `diag` to a replacing optimizer. */
    float global_clipnorm, clipvalue;
    struct nn_diag *diag;
};

/* Updates every trainable parameter of m with its gradient. */
nn_status nn__optimizer_step(nn_optimizer *o, nn_model *m);

/* ---------------- losses (src/loss/) ---------------- */

/* Computes mean loss over the batch and its gradient w.r.t. the output
 * (or, when logits is not NULL, w.r.t. the logits of the fused
 * activation). Counts correct predictions into *correct (may be NULL).
 * y: labels as the loss expects. dout may be NULL (evaluation only). */
nn_status nn__loss(nn_loss kind, int batch, int64_t classes,
                   const float *out, const float *logits, const float *y,
                   float *dout, double *loss_sum, int64_t *correct);

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
    /* fuse[i].tail >= 0 for a convolution that computes its successors;
     * fused_into[i] is that convolution's index for a skipped successor,
     * else -1. NULL when nothing is fused. */
    nn_fuse *fuse;
    int *fused_into;
};

/* Plans the fusion of a context (src/graph/fuse.c): only layers with
 * needs[i] false (no gradient reaches them) take part; in a training
 * plan only frozen BatchNormalization layers (inference mode) fuse. */
nn_status nn__plan_fusion(nn_context *c, const bool *needs, bool training);
/* Testing and benchmarks: no fusion in contexts planned from now on. */
void nn__fusion_disable(bool off);
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
    nn_loss loss;
    nn_loss_opts loss_opts;
    bool compiled;
    uint64_t step_counter; /* feeds dropout keys */
    nn_context *ctx; /* the context of the simple calls */
    int64_t generation; /* bumped when the graph changes */
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
nn_status nn__predict(nn_context *ctx, const nn_tensor *x, nn_tensor *out,
                      int batch_size);
/* Checks that data tensor t is [N, layer l's output shape]. */
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

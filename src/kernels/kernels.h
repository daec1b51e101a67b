/* Numeric kernels beyond the ones nn_internal.h declares: pooling,
 * element-wise maps, reductions. Raw NHWC float buffers, no models. */
#ifndef NN_KERNELS_H
#define NN_KERNELS_H

#include "nn_internal.h"

/* Single-threaded row-major GEMM for callers that already run inside their
 * own parallel loop: C[m,n] = op(A)*op(B) + beta*C. */
void nn__gemm1(bool ta, bool tb, int64_t m, int64_t n, int64_t k,
               const float *a, int64_t lda, const float *b, int64_t ldb,
               float beta, float *c, int64_t ldc);

/* Convolution with its epilogue fused per tile of output rows: bias, a
 * copy of the pre-activation into logits (when not NULL) and the
 * activation. Same scratch as nn__conv2d_forward. */
void nn__conv2d_forward_act(const nn_conv_geom *g, const float *x,
                            const float *w, const float *bias,
                            nn_activation act, float *logits, float *out,
                            float *scratch);
/* Backward that first turns dout (grad w.r.t. the activation's output y)
 * into the grad w.r.t. the pre-activation, image by image, in place. With
 * NN_ACT_NONE y may be NULL. Same scratch as nn__conv2d_backward. */
void nn__conv2d_backward_act(const nn_conv_geom *g, nn_activation act,
                             const float *y, const float *x, const float *w,
                             float *dout, float *dx, bool accum, float *dw,
                             float *db, float *scratch);

/* ---- pooling (src/kernels/pool.c) ----
 * The geometry is nn_conv_geom with kh/kw the pool size; f is unused.
 * argmax holds, per output value, the offset of the chosen input value
 * inside its sample ((iy * w + ix) * c + ch). */
void nn__maxpool_forward(const nn_conv_geom *g, const float *x, float *out,
                         int32_t *argmax);
void nn__maxpool_backward(const nn_conv_geom *g, const float *dout,
                          const int32_t *argmax, float *dx, bool accum);
/* Divides by the number of cells inside the input (padding not counted). */
void nn__avgpool_forward(const nn_conv_geom *g, const float *x, float *out);
void nn__avgpool_backward(const nn_conv_geom *g, const float *dout, float *dx,
                          bool accum);

/* ---- element-wise (src/kernels/eltwise.c) ----
 * x and y may be the same buffer; so may dy and dx when accum is false. */
void nn__relu(const float *x, float *y, int64_t n);
void nn__relu_backward(const float *y, const float *dy, float *dx, int64_t n,
                       bool accum);
void nn__sigmoid(const float *x, float *y, int64_t n);
void nn__sigmoid_backward(const float *y, const float *dy, float *dx,
                          int64_t n, bool accum);
/* Softmax over the last axis of [rows, cols]. */
void nn__softmax(const float *x, float *y, int64_t rows, int64_t cols);
void nn__softmax_backward(const float *y, const float *dy, float *dx,
                          int64_t rows, int64_t cols, bool accum);
/* y[r, :] += b for every row. */
void nn__bias_add(float *y, const float *b, int64_t rows, int64_t cols);
/* out[j] = sum over rows of x[r, j] (overwrites out). */
void nn__colsum(const float *x, int64_t rows, int64_t cols, float *out);
/* y = x, or y += x when accum. */
void nn__copy_or_add(const float *x, float *y, int64_t n, bool accum);

#endif

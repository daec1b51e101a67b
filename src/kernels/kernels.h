/* Numeric kernels beyond the ones nn_internal.h declares: pooling,
 * element-wise maps, reductions. Raw NHWC float buffers, no models. */
#ifndef NN_KERNELS_H
#define NN_KERNELS_H

#include "nn_internal.h"

/* Compiles a hot loop also for AVX2 and AVX-512 machines, picked at load
 * time (the library itself targets baseline x86-64). Not under
 * ThreadSanitizer: the picking runs before its runtime starts, and
 * instrumented it crashes the program at load. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) &&        \
    !defined(__SANITIZE_THREAD__)
#define NN_TARGET_CLONES                                                       \
    __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3",           \
                                 "default")))
#else
#define NN_TARGET_CLONES
#endif

/* Hand-written AVX-512 code is compiled in (and then used where the CPU
 * has it, see nn__gemm512_ok) on x86-64 by GCC and by clang (its target
 * attribute, intrinsics and "GCC unroll" pragma are GCC's), so the fuzzing
 * build runs it under the sanitizers; -DNN_NO_AVX512 builds without it (to
 * test the fallbacks, for one). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(NN_NO_AVX512)
#define NN_AVX512_CODE 1
#endif

/* Single-threaded row-major GEMM for callers that already run inside their
 * own parallel loop: C[m,n] = op(A)*op(B) + beta*C. */
void nn__gemm1(bool ta, bool tb, int64_t m, int64_t n, int64_t k,
               const float *a, int64_t lda, const float *b, int64_t ldb,
               float beta, float *c, int64_t ldc);

/* ---- AVX-512 products (src/kernels/gemm512.c) ----
 * C[m,n] = op(A)[m,k] * B[k,n] (+ C when beta is 1), one thread, B
 * row-major; meant for the narrow products of convolutions. Falls back to
 * nn__gemm1 where the CPU lacks AVX-512. nn__gemm512_ok tells which runs;
 * nn__gemm512_disable(true) forces the fallback (tests, benchmarks). The
 * other AVX-512 kernels (depthwise.c) follow the same switch. */
bool nn__gemm512_ok(void);
void nn__gemm512_disable(bool off);
void nn__gemm512(bool ta, int64_t m, int64_t n, int64_t k, const float *a,
                 int64_t lda, const float *b, int64_t ldb, float beta,
                 float *c, int64_t ldc);
/* What happens to each element of C = A * B before it is stored, in this
 * order: x * scale[j] + shift[j] (one fused multiply-add) when scale is
 * set, else x + shift[j] when shift is set; + residual[i * ldr + j] when
 * residual is set; max(0, x) when relu (NaN and -0 pass, as nn__relu);
 * min(max(0, x), 6) when relu6 (ReLU6, MobileNetV2's activation; NaN
 * passes), whether relu is set or not.
 * A convolution followed by an inference-mode BatchNormalization, an Add
 * and a ReLU is one product with this epilogue. */
typedef struct nn_epilogue {
    const float *scale, *shift, *residual;
    int64_t ldr;
    bool relu;
    bool relu6;
} nn_epilogue;
/* The epilogue on one row of n values in place, column j of the row being
 * column j of e's vectors; res is the row's residual or NULL (e->residual
 * and e->ldr are not read). The scalar form, for the remainders of
 * vectorised kernels and their fallbacks. */
void nn__epilogue_row(const nn_epilogue *e, int64_t n, const float *res,
                      float *row);
void nn__gemm512_epi(int64_t m, int64_t n, int64_t k, const float *a,
                     int64_t lda, const float *b, int64_t ldb,
                     const nn_epilogue *e, float *c, int64_t ldc);
/* C = A * B, then + bias[j] on every row (bias may be NULL), then ReLU
 * when relu: as nn__bias_add and nn__relu would, while C is in registers. */
void nn__gemm512_bias_relu(int64_t m, int64_t n, int64_t k, const float *a,
                           int64_t lda, const float *b, int64_t ldb,
                           const float *bias, bool relu, float *c, int64_t ldc);

/* Convolution with its epilogue fused per tile of output rows: bias, a
 * copy of the pre-activation into logits (when not NULL) and the
 * activation. Same scratch as nn__conv2d_forward. */
void nn__conv2d_forward_act(const nn_conv_geom *g, const float *x,
                            const float *w, const float *bias,
                            nn_activation act, float *logits, float *out,
                            float *scratch);
/* Convolution whose products end in the epilogue e (residual laid out as
 * out). Same scratch as nn__conv2d_forward. */
void nn__conv2d_forward_epi(const nn_conv_geom *g, const float *x,
                            const float *w, const nn_epilogue *e, float *out,
                            float *scratch);
/* Backward that first turns dout (grad w.r.t. the activation's output y)
 * into the grad w.r.t. the pre-activation, image by image, in place. With
 * NN_ACT_NONE y may be NULL. Same scratch as nn__conv2d_backward. */
void nn__conv2d_backward_act(const nn_conv_geom *g, nn_activation act,
                             const float *y, const float *x, const float *w,
                             float *dout, float *dx, bool accum, float *dw,
                             float *db, float *scratch);

/* The columns of the im2col matrix of output pixels [r0, r1) of one image
 * (x is that image): row r holds the window of output pixel r in (ky, kx,
 * c) order, zeros where it lies in the padding. */
void nn__im2col(const nn_conv_geom *g, const float *x, int64_t r0,
                int64_t r1, float *col);
/* The adjoint: adds every row of a whole image's col back onto the input
 * positions it was read from (padding dropped). */
void nn__col2im_add(const nn_conv_geom *g, const float *col, float *dx);

/* ---- pooling (src/kernels/pool.c) ----
 * The geometry is nn_conv_geom with kh/kw the pool size; f is unused.
 * argmax holds, per output value, the offset of the chosen input value
 * inside its sample ((iy * w + ix) * c + ch); argmax may be NULL. */
void nn__maxpool_forward(const nn_conv_geom *g, const float *x, float *out,
                         int32_t *argmax);
void nn__maxpool_backward(const nn_conv_geom *g, const float *dout,
                          const int32_t *argmax, float *dx, bool accum);
/* The same backward without an argmax: it finds the chosen cells again
 * from the input x and the forward's output y. */
void nn__maxpool_backward_x(const nn_conv_geom *g, const float *x,
                            const float *y, const float *dout, float *dx,
                            bool accum);
/* 2x2 windows at stride 2 without padding (the common pool): the windows
 * tile the input. For these, win holds per output the chosen cell of its
 * window (0..3, row-major), a quarter of an argmax's memory. */
bool nn__maxpool_tiles_2x2(const nn_conv_geom *g);
void nn__maxpool_forward_win(const nn_conv_geom *g, const float *x,
                             float *out, uint8_t *win);
void nn__maxpool_backward_win(const nn_conv_geom *g, const uint8_t *win,
                              const float *dout, float *dx, bool accum);
/* Divides by the number of cells inside the input (padding not counted). */
void nn__avgpool_forward(const nn_conv_geom *g, const float *x, float *out);
void nn__avgpool_backward(const nn_conv_geom *g, const float *dout, float *dx,
                          bool accum);

/* ---- element-wise (src/kernels/eltwise.c) ----
 * x and y may be the same buffer; so may dy and dx when accum is false. */
void nn__relu(const float *x, float *y, int64_t n);
void nn__relu_backward(const float *y, const float *dy, float *dx, int64_t n,
                       bool accum);
/* ReLU6: min(max(x, 0), 6); its backward reads the output y. */
void nn__relu6(const float *x, float *y, int64_t n);
void nn__relu6_backward(const float *y, const float *dy, float *dx, int64_t n,
                        bool accum);
void nn__sigmoid(const float *x, float *y, int64_t n);
void nn__sigmoid_backward(const float *y, const float *dy, float *dx,
                          int64_t n, bool accum);
void nn__tanh(const float *x, float *y, int64_t n);
void nn__tanh_backward(const float *y, const float *dy, float *dx, int64_t n,
                       bool accum);
/* LeakyReLU: x > 0 ? x : alpha * x. Its backward reads the output y (the
 * sign of y is the sign of x for alpha >= 0, which the callers ensure). */
void nn__leaky_relu(const float *x, float *y, int64_t n, float alpha);
void nn__leaky_relu_backward(const float *y, const float *dy, float *dx,
                             int64_t n, float alpha, bool accum);
/* ELU: x > 0 ? x : alpha * (exp(x) - 1). Its backward reads the output y
 * (alpha * exp(x) = y + alpha where x <= 0) and takes the branch from
 * `pos`: the input x, or y itself when alpha > 0 (the same signs). */
void nn__elu(const float *x, float *y, int64_t n, float alpha);
void nn__elu_backward(const float *pos, const float *y, const float *dy,
                      float *dx, int64_t n, float alpha, bool accum);
/* PReLU over `batch` samples of shape d[0 .. rank-1] (NHWC order): y =
 * x > 0 ? x : a * x, a the alpha at the same position with the shared
 * axes' indices taken as 0. as[k] is alpha's stride on axis k, 0 on a
 * shared axis. */
typedef struct nn_bcast {
    int rank;
    int64_t d[NN_MAX_RANK];
    int64_t as[NN_MAX_RANK];
} nn_bcast;
void nn__prelu(const nn_bcast *g, int64_t batch, const float *alpha,
               const float *x, float *y);
/* dx (NULL: none) = x > 0 ? dy : a * dy; dalpha (NULL: none), alpha's
 * gradient, = the sum of x * dy where x <= 0 over the batch and the shared
 * axes, in doubles (acc holds one per alpha) and a fixed order, so the
 * result does not depend on the thread count. */
void nn__prelu_backward(const nn_bcast *g, int64_t batch, const float *alpha,
                        const float *x, const float *dy, float *dx,
                        bool accum, float *dalpha, double *acc);
/* Softmax over the last axis of [rows, cols]. */
void nn__softmax(const float *x, float *y, int64_t rows, int64_t cols);
void nn__softmax_backward(const float *y, const float *dy, float *dx,
                          int64_t rows, int64_t cols, bool accum);
/* The fused activation of a layer (Conv2D, Dense, ...), in place on
 * [rows, cols]. Backward turns dy (grad w.r.t. output y) into the grad
 * w.r.t. the pre-activation, in place. */
void nn__act_forward(nn_activation act, float *y, int64_t rows, int64_t cols);
/* NN_ACT_LEAKY_RELU's slope: Keras 3's leaky_relu default (nn.h). */
#define NN__LEAKY_RELU_SLOPE 0.2f
void nn__act_backward(nn_activation act, const float *y, float *dy,
                      int64_t rows, int64_t cols);
/* y[r, :] += b for every row. */
void nn__bias_add(float *y, const float *b, int64_t rows, int64_t cols);
/* out[j] = sum over rows of x[r, j] (overwrites out). */
void nn__colsum(const float *x, int64_t rows, int64_t cols, float *out);
/* The same sums from a fixed number of row bands added in band order, so
 * the result does not depend on the thread count (bias gradients);
 * scratch holds nn__colsum_bands_scratch(cols) floats. */
size_t nn__colsum_bands_scratch(int64_t cols);
void nn__colsum_bands(const float *x, int64_t rows, int64_t cols, float *out,
                      float *scratch);
/* y = x, or y += x when accum. */
void nn__copy_or_add(const float *x, float *y, int64_t n, bool accum);

/* ---- norms (src/kernels/norms.c) ----
 * Sums are accumulated in double over fixed chunks whose partial sums are
 * added in chunk order, so a result does not depend on the thread count. */
double nn__sumsq(const float *x, int64_t n);
/* Sum of (a[i] - b[i])^2. */
double nn__sumsq_diff(const float *a, const float *b, int64_t n);
/* false when x holds a NaN or an Inf. */
bool nn__all_finite(const float *x, int64_t n);
/* Index of the first NaN or Inf of x (-1: none, a serial scan: call it
 * once nn__all_finite said no); *what (may be NULL) receives "NaN",
 * "+Inf" or "-Inf". */
int64_t nn__first_nonfinite(const float *x, int64_t n, const char **what);

#endif

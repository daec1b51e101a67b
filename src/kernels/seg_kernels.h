/* Kernels of the segmentation layers: depthwise and transposed 2-D
 * convolution. Raw NHWC float buffers, no models. */
#ifndef NN_SEG_KERNELS_H
#define NN_SEG_KERNELS_H

#include "kernels/kernels.h"

/* ---- depthwise convolution (src/kernels/depthwise.c) ----
 * The geometry is nn_conv_geom with f = c * m for a depth multiplier m
 * (f a multiple of c). Output channel o = ch * m + j reads input channel
 * ch; the kernel is Keras' depthwise_kernel [kh, kw, c, m], bias [f].
 * Results do not depend on the thread count. */

/* out[n, oh, ow, f] = the depthwise convolution of x, + bias (may be
 * NULL). */
void nn__depthwise_forward(const nn_conv_geom *g, const float *x,
                           const float *w, const float *bias, float *out);
/* The same, ending in the epilogue e instead of a bias (a folded
 * BatchNormalization as scale and shift, then ReLU or ReLU6: inference);
 * e->residual is laid out as out with e->ldr floats per pixel, and does
 * not overlap out. */
void nn__depthwise_forward_epi(const nn_conv_geom *g, const float *x,
                               const float *w, const nn_epilogue *e,
                               float *out);
size_t nn__depthwise_backward_scratch(const nn_conv_geom *g);
/* dx (may be NULL) overwritten, or added to when accum; dw and db (either
 * may be NULL) overwritten. */
void nn__depthwise_backward(const nn_conv_geom *g, const float *x,
                            const float *w, const float *dout, float *dx,
                            bool accum, float *dw, float *db, float *scratch);

/* ---- transposed convolution (src/kernels/conv_transpose.c) ----
 * Keras' Conv2DTranspose maps x [n, h, w, cin] to y [n, H, W, cout] with
 * a kernel [kh, kw, cout, cin]: it is the input gradient of the regular
 * convolution from y's space to x's. The geometry g is that convolution:
 * g.h, g.w, g.c are H, W, cout (the transposed convolution's OUTPUT),
 * g.oh, g.ow, g.f are h, w, cin (its input), the kernel [kh, kw, g.c,
 * g.f] is read exactly as Keras stores it, and the pads are that
 * convolution's (nn__conv_transpose_axis). */

/* Output length and leading pad of one axis for input length in, kernel
 * k, stride s, SAME or VALID padding and an output_padding (-1: none, as
 * Keras' None). False when Keras refuses the combination (output_padding
 * not below the stride, an empty output). */
bool nn__conv_transpose_axis(int in, int k, int s, bool same,
                             int output_padding, int *out, int *pad);
size_t nn__conv_transpose_forward_scratch(const nn_conv_geom *g);
/* y = the transposed convolution of x, + bias [g.c] (may be NULL). */
void nn__conv_transpose_forward(const nn_conv_geom *g, const float *x,
                                const float *w, const float *bias, float *y,
                                float *scratch);
size_t nn__conv_transpose_backward_scratch(const nn_conv_geom *g,
                                           bool need_dx);
/* From dy [n, H, W, cout]: dx [n, h, w, cin] (may be NULL) overwritten or
 * added to (accum); dw and db (either may be NULL) overwritten. */
void nn__conv_transpose_backward(const nn_conv_geom *g, const float *x,
                                 const float *w, const float *dy, float *dx,
                                 bool accum, float *dw, float *db,
                                 float *scratch);

#endif

/* Kernels of the graph-model layers: batch normalization, resizing and
 * locally connected convolution. Raw NHWC float buffers, no models. */
#ifndef NN_GRAPH_KERNELS_H
#define NN_GRAPH_KERNELS_H

#include "kernels/kernels.h"

/* ---- batch normalization (src/kernels/bn.c) ----
 * Buffers are [rows, c] with the channel axis last. Reductions run over a
 * fixed number of row bands whose double partials are added in band
 * order, so results never depend on the thread count. */

/* Scratch floats the reductions below need for c channels. */
size_t nn__bn_scratch_floats(int64_t c);
/* mean[j] and biased variance var[j] of column j (two passes). */
void nn__bn_moments(const float *x, int64_t rows, int64_t c, double *mean,
                    double *var, float *scratch);
/* sum_dy[j] = sum of dy[., j]; sum_dyx[j] = sum of dy * (x - mean[j]). */
void nn__bn_grad_sums(const float *x, const float *dy, const float *mean,
                      int64_t rows, int64_t c, double *sum_dy,
                      double *sum_dyx, float *scratch);
/* y = (x - mean[j]) * a[j] + b[j]; x and y may be the same buffer. */
void nn__bn_affine(const float *x, float *y, int64_t rows, int64_t c,
                   const float *mean, const float *a, const float *b);
/* dx (+)= p[j] * dy + q[j] * (x - mean[j]) + s[j]. */
void nn__bn_dx(const float *dy, const float *x, float *dx, int64_t rows,
               int64_t c, const float *mean, const float *p, const float *q,
               const float *s, bool accum);

/* ---- resizing (src/kernels/resize.c) ----
 * Half-pixel centers as tf.image.resize (antialias off) and PyTorch's
 * interpolate(align_corners=False): bilinear reads the two nearest
 * samples per axis, clamped at the borders; nearest takes
 * floor((o + 0.5) * in / out) (PyTorch's "nearest-exact"). */
typedef struct nn_resize_geom {
    int n, h, w, c, oh, ow;
    nn_interpolation interp;
} nn_resize_geom;

void nn__resize_forward(const nn_resize_geom *g, const float *x, float *y);
/* dx overwritten, or added to when accum. */
void nn__resize_backward(const nn_resize_geom *g, const float *dy, float *dx,
                         bool accum);

/* ---- locally connected 2-D (src/kernels/local.c) ----
 * VALID windows only (pad_top = pad_left = 0). Kernel [oh*ow, K, f] with
 * K = kh*kw*c in (ky, kx, c) order, bias [oh*ow, f] (may be NULL). */
size_t nn__local_scratch(const nn_conv_geom *g);
void nn__local_forward(const nn_conv_geom *g, const float *x, const float *w,
                       const float *bias, float *out, float *scratch);
/* dw, db (either may be NULL) overwritten; dx (may be NULL) overwritten
 * or added to (accum). */
void nn__local_backward(const nn_conv_geom *g, const float *x, const float *w,
                        const float *dout, float *dx, bool accum, float *dw,
                        float *db, float *scratch);

#endif

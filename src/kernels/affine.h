/* Image augmentation kernels (src/kernels/affine.c): affine resampling with
 * TensorFlow's fill modes, flips and contrast, each with its exact adjoint.
 * Raw NHWC float buffers, one transform per image; no models. */
#ifndef NN_KERNELS_AFFINE_H
#define NN_KERNELS_AFFINE_H

#include "nn_internal.h"

/* Coefficients of one image's transform, mapping an output pixel (x, y)
 * (column, row) to the input coordinate it samples:
 *   in_x = m[0] * x + m[1] * y + m[2],  in_y = m[3] * x + m[4] * y + m[5],
 * which is tf.raw_ops.ImageProjectiveTransformV3's transform
 * [a0 a1 a2 b0 b1 b2 c0 c1] with c0 = c1 = 0. */
#define NN_AFFINE_COEFS 6

typedef struct nn_affine_geom {
    int n, h, w, c;
    nn_fill_mode fill;
    nn_interpolation interp;
    float fill_value; /* CONSTANT only */
} nn_affine_geom;

/* y[b] = the resampling of x[b] by mats[b * NN_AFFINE_COEFS ...]. */
void nn__affine_forward(const nn_affine_geom *g, const float *mats,
                        const float *x, float *y);
/* dx (+)= the adjoint of the same resampling applied to dy: every output
 * gradient is scattered back with the weights that produced the output.
 * dx must not alias dy. */
void nn__affine_backward(const nn_affine_geom *g, const float *mats,
                         const float *dy, float *dx, bool accum);

/* Per-image flips: bit NN_FLIP_HORIZONTAL of flags[b] reverses the columns,
 * bit NN_FLIP_VERTICAL the rows. y (+)= flip(x). A flip is its own inverse
 * and its own adjoint, so backward is the same call. y must not alias x. */
void nn__flip_images(int n, int h, int w, int c, const int32_t *flags,
                     const float *x, float *y, bool accum);

/* Per image b and channel ch: y = (x - mean) * factors[b] + mean, the mean
 * taken over the image's h * w pixels of that channel. */
void nn__contrast_forward(int n, int64_t pixels, int c, const float *factors,
                          const float *x, float *y);
/* dx (+)= f * dy + (1 - f) * mean(dy), per image and channel. */
void nn__contrast_backward(int n, int64_t pixels, int c, const float *factors,
                           const float *dy, float *dx, bool accum);

#endif

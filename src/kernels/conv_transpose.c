/* Transposed 2-D convolution (Keras' Conv2DTranspose), NHWC.
 *
 * Keras computes it as tf.nn.conv2d_transpose, the gradient of a regular
 * convolution with respect to that convolution's input; g describes that
 * convolution, from the output space (g.h x g.w x g.c) to the input space
 * (g.oh x g.ow x g.f). So every pass is one of conv.c's passes:
 * - forward: dcol = x * W^T (a product), scattered onto y by col2im - the
 *   dx step of a convolution's backward pass;
 * - dx: the forward pass of that convolution applied to dy;
 * - dkernel: that convolution's weight gradient with dy as its input and
 *   x as its output gradient, im2col(dy)^T * x summed over the images;
 * - dbias: nn__colsum_bands over dy.
 * The forward and dkernel products take the images in chunks (one product
 * per chunk: the kernel is read, or dW updated, once per chunk, not once
 * per image - a U-Net's first decoder step has 4x4-pixel images). dkernel
 * runs on gemm512.c with the threads splitting the rows of dW, so each
 * element is one chain of fused multiply-adds over all pixels in order,
 * the chunks chained with beta 1: the same bits for any thread count on
 * the AVX-512 path (OpenBLAS, its fallback, may round differently for
 * each split). The forward product is OpenBLAS's, split by columns: as
 * conv.c's, deterministic for a given thread count. dx is conv.c's
 * forward pass, whose result does not depend on the thread count.
 *
 * Sizes (keras.utils.conv_utils.deconv_output_length, dilation 1): along
 * an axis of input length n, kernel k, stride s,
 *   output_padding None:  VALID  out = n * s + max(k - s, 0)
 *                         SAME   out = n * s
 *   output_padding p:     out = (n - 1) * s + k - 2 * pad0 + p,
 *                         pad0 = k / 2 (SAME) or 0 (VALID), p < s.
 * The pad then follows from out as TensorFlow's gradient of the
 * convolution of out into n computes it: VALID 0, SAME
 * pad = max(0, (n - 1) * s + k - out) / 2 (the odd pixel of an uneven
 * total at the end), and input pixel i, tap t lands on output
 * i * s - pad + t.
 *
 * PyTorch: ConvTranspose2d(stride s, padding P, output_padding q) lands
 * i, t on i * s - P + t too, with out = (n - 1) * s + k - 2 P + q. So
 * Keras is PyTorch with P = pad and q = out - ((n - 1) * s + k - 2 pad),
 * which is in [0, s) except when SAME pads an odd total: then q = -1,
 * i.e. PyTorch with output_padding 0 gives one extra row (column) at the
 * end, which Keras does not have - crop it. Examples: k 4, s 2, SAME is
 * PyTorch's padding 1; k 3, s 2, SAME (the pix2pix decoder's) is
 * padding 0 with the last row and column cropped; k 3, s 2, VALID is
 * padding 0. */
#include "kernels/seg_kernels.h"

#include <omp.h>
#include <string.h>

/* Most threads a pass uses. */
#define CT_SLOTS 32
/* Below this many multiply-adds a pass stays on one thread. */
#define CT_SERIAL_WORK (1 << 22)

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

static size_t round16(size_t n) { return (n + 15) & ~(size_t)15; }

static size_t max_size(size_t a, size_t b) { return a > b ? a : b; }

/* Pixels of an x image (the convolution's output). */
static int64_t x_pixels(const nn_conv_geom *g)
{
    return (int64_t)g->oh * g->ow;
}

static int64_t y_size(const nn_conv_geom *g)
{
    return (int64_t)g->h * g->w * g->c;
}

static int64_t col_width(const nn_conv_geom *g)
{
    return (int64_t)g->kh * g->kw * g->c;
}

/* Threads for n items of the given multiply-adds in all. */
static int threads_for(int64_t items, double work)
{
    if (work < CT_SERIAL_WORK) return 1;
    return (int)min64(min64(items, CT_SLOTS), nn__threads());
}

bool nn__conv_transpose_axis(int in, int k, int s, bool same,
                             int output_padding, int *out, int *pad)
{
    if (in < 1 || k < 1 || s < 1 || output_padding >= s) return false;
    int64_t len;
    if (output_padding < 0)
        len = same ? (int64_t)in * s
                   : (int64_t)in * s + (k > s ? k - s : 0);
    else
        len = (int64_t)(in - 1) * s + k - 2 * (same ? k / 2 : 0) +
              output_padding;
    /* TensorFlow needs the convolution of len to give in back. */
    int64_t back = same ? (len + s - 1) / s : len >= k ? (len - k) / s + 1 : 0;
    if (len < 1 || len > INT32_MAX || back != in) return false;
    int64_t total = (int64_t)(in - 1) * s + k - len;
    *out = (int)len;
    *pad = same && total > 0 ? (int)(total / 2) : 0;
    return true;
}

/* Images per chunk: a chunk's columns (m x k floats per image) are one
 * product, so that the kernel is read once per chunk rather than once per
 * image (the x images of a U-Net's first decoder step are 4x4 pixels). */
#define CT_CHUNK_FLOATS (1 << 21)

static int64_t chunk_images(const nn_conv_geom *g)
{
    int64_t per = x_pixels(g) * col_width(g);
    int64_t c = per > 0 ? CT_CHUNK_FLOATS / per : g->n;
    return c < 1 ? 1 : c < g->n ? c : g->n;
}

static size_t chunk_floats(const nn_conv_geom *g)
{
    return round16((size_t)(chunk_images(g) * x_pixels(g) * col_width(g)));
}

/* Columns [*j0, *j1) of k for thread t of np: whole 64-column blocks. */
static void thread_cols(int64_t k, int t, int np, int64_t *j0, int64_t *j1)
{
    int64_t blocks = (k + 63) / 64;
    *j0 = min64(k, 64 * (blocks * t / np));
    *j1 = min64(k, 64 * (blocks * (t + 1) / np));
}

size_t nn__conv_transpose_forward_scratch(const nn_conv_geom *g)
{
    return chunk_floats(g);
}

static void add_bias(float *y, const float *bias, int64_t rows, int64_t c)
{
    for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < c; j++) y[r * c + j] += bias[j];
}

/* Per chunk of images: dcol = x W^T, the threads splitting its columns,
 * then col2im (and the bias) image by image. The product is OpenBLAS's:
 * on the decoder's wide products (k up to 4608 columns) it beats
 * gemm512.c's by 15-25%, and it reads W as it is stored. */
void nn__conv_transpose_forward(const nn_conv_geom *g, const float *x,
                                const float *w, const float *bias, float *y,
                                float *scratch)
{
    float *dcol = scratch;
    if (g->n <= 0) return;
    const int64_t m = x_pixels(g), k = col_width(g), f = g->f;
    const int64_t ci = chunk_images(g);
    int p = threads_for((k + 63) / 64 * g->n, (double)g->n * m * k * f);
#pragma omp parallel num_threads(p) if (p > 1)
    {
        int64_t j0, j1;
        thread_cols(k, omp_get_thread_num(), omp_get_num_threads(), &j0, &j1);
        for (int64_t i0 = 0; i0 < g->n; i0 += ci) {
            const int64_t i1 = min64(g->n, i0 + ci), rows = (i1 - i0) * m;
            if (j0 < j1)
                nn__gemm1(false, true, rows, j1 - j0, f, x + i0 * m * f, f,
                          w + j0 * f, f, 0.0f, dcol + j0, k);
#pragma omp barrier
#pragma omp for schedule(static)
            for (int64_t i = i0; i < i1; i++) {
                float *yi = y + i * y_size(g);
                memset(yi, 0, (size_t)y_size(g) * sizeof(float));
                nn__col2im_add(g, dcol + (i - i0) * m * k, yi);
                if (bias) add_bias(yi, bias, (int64_t)g->h * g->w, g->c);
            }
        }
    }
}

/* ---------------- backward ---------------- */

/* Floats of the dx pass: the convolution's forward scratch, then a copy
 * of dx to add from when accumulating. */
static size_t dx_floats(const nn_conv_geom *g)
{
    return nn__conv2d_forward_scratch(g) +
           round16((size_t)((int64_t)g->n * x_pixels(g) * g->f));
}

size_t nn__conv_transpose_backward_scratch(const nn_conv_geom *g,
                                           bool need_dx)
{
    /* The three passes run one after the other. */
    size_t s = max_size(chunk_floats(g), nn__colsum_bands_scratch(g->c));
    return need_dx ? max_size(s, dx_floats(g)) : s;
}

static void backward_dx(const nn_conv_geom *g, const float *w,
                        const float *dy, float *dx, bool accum,
                        float *scratch)
{
    if (!accum) {
        nn__conv2d_forward(g, dy, w, NULL, dx, scratch);
        return;
    }
    float *tmp = scratch + nn__conv2d_forward_scratch(g);
    nn__conv2d_forward(g, dy, w, NULL, tmp, scratch);
    nn__copy_or_add(tmp, dx, (int64_t)g->n * x_pixels(g) * g->f, true);
}

/* dW [k, f] = sum over chunks of images of im2col(dy)^T x: the threads
 * form a chunk's columns together, then thread t multiplies for rows
 * [r0, r1) of dW, chaining the chunks (see the top). */
static void backward_dkernel(const nn_conv_geom *g, const float *x,
                             const float *dy, float *dw, float *col)
{
    const int64_t m = x_pixels(g), k = col_width(g), f = g->f;
    const int64_t ci = chunk_images(g);
    int p = threads_for(k, (double)g->n * m * k * f);
#pragma omp parallel num_threads(p) if (p > 1)
    {
        int t = omp_get_thread_num(), np = omp_get_num_threads();
        int64_t r0 = k * t / np, r1 = k * (t + 1) / np;
        for (int64_t i0 = 0; i0 < g->n; i0 += ci) {
            const int64_t i1 = min64(g->n, i0 + ci);
#pragma omp for schedule(static)
            for (int64_t i = i0; i < i1; i++)
                nn__im2col(g, dy + i * y_size(g), 0, m, col + (i - i0) * m * k);
            if (r0 < r1)
                nn__gemm512(true, r1 - r0, f, (i1 - i0) * m, col + r0, k,
                            x + i0 * m * f, f, i0 ? 1.0f : 0.0f, dw + r0 * f,
                            f);
#pragma omp barrier
        }
    }
}

void nn__conv_transpose_backward(const nn_conv_geom *g, const float *x,
                                 const float *w, const float *dy, float *dx,
                                 bool accum, float *dw, float *db,
                                 float *scratch)
{
    if (g->n <= 0) return;
    if (dx) backward_dx(g, w, dy, dx, accum, scratch);
    if (dw) backward_dkernel(g, x, dy, dw, scratch);
    if (db)
        nn__colsum_bands(dy, (int64_t)g->n * g->h * g->w, g->c, db, scratch);
}

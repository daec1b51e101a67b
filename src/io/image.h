/* Internal interface of the image and segmentation-data code (src/io/
 * png.c, image.c, manifest.c, defects*.c). Not API. */
#ifndef NN_IO_IMAGE_H
#define NN_IO_IMAGE_H

#include "nn_internal.h"

/* Options after defaults and checks (nn_image_opts with the caller's
 * bytes read over NN_IMAGE_OPTS_INIT). */
nn_status nn__image_opts(const nn_image_opts *opts, const char *who,
                         nn_image_opts *o);

/* Decodes a PNG at its stored size into a new tensor [H, W, channels]:
 * images (mask false) in [0, 1] with channels 1 or 3, masks (mask true,
 * channels 1) as class ids checked against o. */
nn_status nn__png_decode(const char *path, int channels, bool mask,
                         const nn_image_opts *o, nn_tensor **out);

/* Encodes rows of 8-bit samples as a PNG written atomically to `path`:
 * colour 1 (gray), 3 (RGB), 4 (RGBA), or 0 for palette indices with
 * `palette` (n_palette RGB triplets). */
typedef struct nn_png_out {
    int height, width, channels;
    const uint8_t *pixels; /* height * width * max(channels, 1) bytes */
    const uint8_t *palette;
    int n_palette;
} nn_png_out;
nn_status nn__png_write(const char *path, const nn_png_out *img);

/* Resamples one image [h, w, c] to [oh, ow, c] into dst (the kernel of
 * nn_resizing); a plain copy when the sizes agree. */
void nn__image_resample(const float *src, int h, int w, int c, float *dst,
                        int oh, int ow, nn_interpolation interp);

#endif

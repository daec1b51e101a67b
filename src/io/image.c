/* The public image calls: loading (one file, a batch), resizing, saving,
 * and 8-bit frames to floats. Decoding is png.c's, resampling the
 * nn_resizing kernel's. */
#include "io/image.h"
#include "kernels/graph_kernels.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define SIDE_MAX 65535   /* the largest height or width we resize to */
#define CLASSES_MAX 65536 /* 16-bit masks */
#define BATCH_MAX (1 << 24)
#define PNG_SIDE_MAX INT32_MAX /* PNG allows 2^31 - 1 */

nn_status nn__image_opts(const nn_image_opts *opts, const char *who,
                         nn_image_opts *o)
{
    nn_image_opts d = NN_IMAGE_OPTS_INIT;
    *o = d;
    NN_TRY(nn__read_opts(o, opts, who));
    if (o->max_values == 0) o->max_values = NN_IMAGE_MAX_VALUES;
    NN_CHECK((o->height == 0) == (o->width == 0), NN_ERR_INVALID,
             "%s: height %d and width %d must both be 0 (keep the size) or "
             "both positive",
             who, o->height, o->width);
    NN_CHECK(o->height >= 0 && o->height <= SIDE_MAX && o->width >= 0 &&
                 o->width <= SIDE_MAX,
             NN_ERR_INVALID, "%s: height %d and width %d must lie in 1..%d",
             who, o->height, o->width, SIDE_MAX);
    NN_CHECK(o->max_values > 0, NN_ERR_INVALID,
             "%s: max_values %lld must be positive", who,
             (long long)o->max_values);
    NN_CHECK(o->mask_mode == NN_MASK_CLASS_IDS ||
                 o->mask_mode == NN_MASK_BINARY,
             NN_ERR_INVALID, "%s: unknown mask_mode %d", who,
             (int)o->mask_mode);
    NN_CHECK(o->num_classes >= 1 && o->num_classes <= CLASSES_MAX,
             NN_ERR_INVALID, "%s: num_classes %d outside 1..%d", who,
             o->num_classes, CLASSES_MAX);
    return NN_OK;
}

void nn__image_resample(const float *src, int h, int w, int c, float *dst,
                        int oh, int ow, nn_interpolation interp)
{
    if (h == oh && w == ow) {
        memcpy(dst, src, (size_t)h * w * c * sizeof *dst);
        return;
    }
    nn_resize_geom g = {1, h, w, c, oh, ow, interp};
    nn__resize_forward(&g, src, dst);
}

/* Decodes and, when opts ask for a size, resizes into a new tensor. */
static nn_status load_one(const char *path, int channels, bool mask,
                          const nn_image_opts *o, nn_tensor **out)
{
    nn_tensor *t = NULL;
    NN_TRY(nn__png_decode(path, channels, mask, o, &t));
    int h = (int)t->shape[0], w = (int)t->shape[1];
    if (o->height == 0 || (o->height == h && o->width == w)) {
        *out = t;
        return NN_OK;
    }
    int64_t shape[3] = {o->height, o->width, channels};
    nn_tensor *r = nn_tensor_create(3, shape);
    if (r)
        nn__image_resample(t->data, h, w, channels, r->data, o->height,
                           o->width,
                           mask ? NN_INTERP_NEAREST : NN_INTERP_BILINEAR);
    nn_tensor_free(t);
    if (!r) return NN_ERR_NOMEM;
    *out = r;
    return NN_OK;
}

nn_status nn_image_load(const char *path, int channels,
                        const nn_image_opts *opts, nn_tensor **out)
{
    NN_CHECK(out, NN_ERR_INVALID, "nn_image_load: out is NULL");
    *out = NULL;
    NN_CHECK(path, NN_ERR_INVALID, "nn_image_load: path is NULL");
    NN_CHECK(channels == 1 || channels == 3, NN_ERR_INVALID,
             "nn_image_load: channels %d must be 1 (gray) or 3 (RGB)",
             channels);
    nn_image_opts o;
    NN_TRY(nn__image_opts(opts, "nn_image_load", &o));
    return load_one(path, channels, false, &o, out);
}

nn_status nn_mask_load(const char *path, const nn_image_opts *opts,
                       nn_tensor **out)
{
    NN_CHECK(out, NN_ERR_INVALID, "nn_mask_load: out is NULL");
    *out = NULL;
    NN_CHECK(path, NN_ERR_INVALID, "nn_mask_load: path is NULL");
    nn_image_opts o;
    NN_TRY(nn__image_opts(opts, "nn_mask_load", &o));
    return load_one(path, 1, true, &o, out);
}

typedef struct batch {
    nn_tensor *t;
    int count, channels;
    bool same_size; /* no size requested: every file must match the first */
} batch;

/* Loads file i into slot i of the batch, creating its tensor with the
 * first file. */
static nn_status batch_item(const char *path, int i, batch *b,
                            nn_image_opts *o)
{
    nn_tensor *t = NULL;
    NN_TRY(nn__png_decode(path, b->channels, false, o, &t));
    int h = (int)t->shape[0], w = (int)t->shape[1];
    if (o->height == 0) {
        o->height = h;
        o->width = w;
        b->same_size = true;
    }
    nn_status s = NN_OK;
    if (b->same_size && (h != o->height || w != o->width))
        s = nn__fail(NN_ERR_SHAPE,
                     "png: '%s' is %d x %d (height x width), the first file "
                     "%d x %d; set nn_image_opts.height and width to resize",
                     path, h, w, o->height, o->width);
    if (s == NN_OK && !b->t) {
        int64_t shape[4] = {b->count, o->height, o->width, b->channels};
        b->t = nn_tensor_create(4, shape);
        if (!b->t) s = nn_last_status();
    }
    int64_t slot = (int64_t)o->height * o->width * b->channels;
    if (s == NN_OK)
        nn__image_resample(t->data, h, w, b->channels, b->t->data + i * slot,
                           o->height, o->width, NN_INTERP_BILINEAR);
    nn_tensor_free(t);
    return s;
}

/* Prefixes the last error with the file's index, keeping its status. */
static nn_status at_index(nn_status s, const char *who, int i)
{
    char msg[400];
    snprintf(msg, sizeof msg, "%s", nn_last_error());
    return nn__fail(s, "%s: paths[%d]: %s", who, i, msg);
}

nn_status nn_image_load_batch(const char *const *paths, int count,
                              int channels, const nn_image_opts *opts,
                              nn_tensor **out)
{
    NN_CHECK(out, NN_ERR_INVALID, "nn_image_load_batch: out is NULL");
    *out = NULL;
    NN_CHECK(paths, NN_ERR_INVALID, "nn_image_load_batch: paths is NULL");
    NN_CHECK(count >= 1 && count <= BATCH_MAX, NN_ERR_INVALID,
             "nn_image_load_batch: count %d outside 1..%d", count, BATCH_MAX);
    NN_CHECK(channels == 1 || channels == 3, NN_ERR_INVALID,
             "nn_image_load_batch: channels %d must be 1 (gray) or 3 (RGB)",
             channels);
    for (int i = 0; i < count; i++)
        NN_CHECK(paths[i], NN_ERR_INVALID,
                 "nn_image_load_batch: paths[%d] is NULL", i);
    nn_image_opts o;
    NN_TRY(nn__image_opts(opts, "nn_image_load_batch", &o));
    batch b = {NULL, count, channels, false};
    nn_status s = NN_OK;
    for (int i = 0; s == NN_OK && i < count; i++) {
        s = batch_item(paths[i], i, &b, &o);
        if (s != NN_OK) s = at_index(s, "nn_image_load_batch", i);
    }
    if (s != NN_OK) {
        nn_tensor_free(b.t);
        return s;
    }
    *out = b.t;
    return NN_OK;
}

/* ---------------- resizing ---------------- */

nn_status nn_image_resize(const nn_tensor *images, int height, int width,
                          nn_interpolation interpolation, nn_tensor **out)
{
    NN_CHECK(out, NN_ERR_INVALID, "nn_image_resize: out is NULL");
    *out = NULL;
    NN_CHECK(images, NN_ERR_INVALID, "nn_image_resize: images is NULL");
    int r = images->rank;
    NN_CHECK(r == 3 || r == 4, NN_ERR_SHAPE,
             "nn_image_resize: images must be [H, W, C] or [N, H, W, C], got "
             "rank %d",
             r);
    NN_CHECK(height >= 1 && height <= SIDE_MAX && width >= 1 &&
                 width <= SIDE_MAX,
             NN_ERR_INVALID,
             "nn_image_resize: height %d and width %d must lie in 1..%d",
             height, width, SIDE_MAX);
    NN_CHECK(interpolation == NN_INTERP_BILINEAR ||
                 interpolation == NN_INTERP_NEAREST,
             NN_ERR_INVALID, "nn_image_resize: unknown interpolation %d",
             (int)interpolation);
    const int64_t *d = images->shape + (r - 3);
    int64_t n = r == 4 ? images->shape[0] : 1;
    NN_CHECK(n <= INT32_MAX && d[0] <= SIDE_MAX && d[1] <= SIDE_MAX &&
                 d[2] <= INT32_MAX,
             NN_ERR_SHAPE, "nn_image_resize: images of %lld x %lld are too "
             "large", (long long)d[0], (long long)d[1]);
    int64_t shape[4] = {n, height, width, d[2]};
    nn_tensor *t = nn_tensor_create(r, shape + (4 - r));
    if (!t) return nn_last_status();
    if (images->size > 0 && t->size > 0) {
        nn_resize_geom g = {(int)n,      (int)d[0], (int)d[1], (int)d[2],
                            height,      width,     interpolation};
        nn__resize_forward(&g, images->data, t->data);
    }
    *out = t;
    return NN_OK;
}

/* ---------------- saving ---------------- */

/* Image `index` of a [N, H, W, C] or [H, W, C] tensor. */
typedef struct picked {
    int h, w, c;
    const float *data;
} picked;

static nn_status pick_image(const nn_tensor *t, int64_t index,
                            const char *who, picked *p)
{
    NN_CHECK(t, NN_ERR_INVALID, "%s: tensor is NULL", who);
    NN_CHECK(t->rank == 3 || t->rank == 4, NN_ERR_SHAPE,
             "%s: expected [N, H, W, C] or [H, W, C], got rank %d", who,
             t->rank);
    int64_t n = t->rank == 4 ? t->shape[0] : 1;
    NN_CHECK(index >= 0 && index < n, NN_ERR_INVALID,
             "%s: index %lld outside 0..%lld", who, (long long)index,
             (long long)n - 1);
    const int64_t *d = t->shape + (t->rank - 3);
    NN_CHECK(d[0] >= 1 && d[0] <= PNG_SIDE_MAX && d[1] >= 1 &&
                 d[1] <= PNG_SIDE_MAX,
             NN_ERR_SHAPE, "%s: a %lld x %lld image cannot be a PNG file",
             who, (long long)d[0], (long long)d[1]);
    *p = (picked){(int)d[0], (int)d[1], (int)d[2],
                  t->data + index * d[0] * d[1] * d[2]};
    return NN_OK;
}

/* The image a save call writes, after checking its path. */
static nn_status save_source(const char *path, const nn_tensor *t,
                             int64_t index, const char *who, picked *p)
{
    NN_CHECK(path && path[0], NN_ERR_INVALID, "%s: path is NULL or empty",
             who);
    return pick_image(t, index, who, p);
}

static uint8_t to_u8(float v)
{
    if (!(v > 0.0f)) return 0; /* NaN too */
    if (v >= 1.0f) return 255;
    return (uint8_t)(v * 255.0f + 0.5f);
}

nn_status nn_image_save_png(const char *path, const nn_tensor *images,
                            int64_t index)
{
    picked im;
    NN_TRY(save_source(path, images, index, "nn_image_save_png", &im));
    NN_CHECK(im.c == 1 || im.c == 3 || im.c == 4, NN_ERR_SHAPE,
             "nn_image_save_png: %d channels; a PNG has 1 (gray), 3 (RGB) or "
             "4 (RGBA)",
             im.c);
    size_t n = (size_t)im.h * im.w * im.c;
    uint8_t *px = nn__alloc(n);
    if (!px) return NN_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) px[i] = to_u8(im.data[i]);
    nn_png_out img = {im.h, im.w, im.c, px, NULL, 0};
    nn_status s = nn__png_write(path, &img);
    nn__free(px);
    return s;
}

/* Distinct colours for the first classes, then a fixed spread. */
static void class_colour(int id, uint8_t *rgb)
{
    static const uint8_t first[8][3] = {
        {0, 0, 0},   {255, 255, 255}, {230, 25, 25},  {40, 180, 60},
        {30, 90, 230}, {240, 210, 30}, {200, 50, 200}, {40, 200, 220}};
    if (id < 8) {
        memcpy(rgb, first[id], 3);
        return;
    }
    uint32_t x = (uint32_t)id * 2654435761u;
    rgb[0] = (uint8_t)(64 + (x >> 8) % 192);
    rgb[1] = (uint8_t)(64 + (x >> 16) % 192);
    rgb[2] = (uint8_t)(64 + (x >> 24) % 192);
}

nn_status nn_mask_save_png(const char *path, const nn_tensor *masks,
                           int64_t index)
{
    picked im;
    NN_TRY(save_source(path, masks, index, "nn_mask_save_png", &im));
    NN_CHECK(im.c == 1, NN_ERR_SHAPE,
             "nn_mask_save_png: a mask has 1 channel, got %d", im.c);
    const float *src = im.data;
    int w = im.w;
    size_t n = (size_t)im.h * w;
    int top = 1;
    for (size_t i = 0; i < n; i++) {
        float v = src[i];
        NN_CHECK(v >= 0.0f && v <= 255.0f && v == floorf(v), NN_ERR_INVALID,
                 "nn_mask_save_png: value %g at x %d, y %d is not a class id "
                 "in [0, 256)",
                 (double)v, (int)(i % (size_t)w), (int)(i / (size_t)w));
        if ((int)v > top) top = (int)v;
    }
    uint8_t *px = nn__alloc(n);
    if (!px) return NN_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) px[i] = (uint8_t)src[i];
    uint8_t pal[256 * 3];
    for (int i = 0; i <= top; i++) class_colour(i, pal + 3 * i);
    nn_png_out img = {im.h, w, 0, px, pal, top + 1};
    nn_status s = nn__png_write(path, &img);
    nn__free(px);
    return s;
}

/* ---------------- camera frames ---------------- */

static nn_status check_pixels_opts(const nn_pixels_opts *o, int channels,
                                   size_t row)
{
    NN_CHECK(o->stride == 0 || o->stride >= row, NN_ERR_INVALID,
             "nn_image_from_u8: stride %zu is shorter than a row (%zu "
             "bytes)",
             o->stride, row);
    NN_CHECK(isfinite(o->scale), NN_ERR_INVALID,
             "nn_image_from_u8: scale %g must be finite", (double)o->scale);
    for (int c = 0; c < channels; c++)
        NN_CHECK(isfinite(o->mean[c]) && isfinite(o->std[c]) &&
                     o->std[c] > 0.0f,
                 NN_ERR_INVALID,
                 "nn_image_from_u8: channel %d: mean %g must be finite and "
                 "std %g positive",
                 c, (double)o->mean[c], (double)o->std[c]);
    return NN_OK;
}

nn_status nn_image_from_u8(const uint8_t *pixels, int height, int width,
                           int channels, const nn_pixels_opts *opts,
                           nn_tensor *out, int64_t index)
{
    NN_CHECK(pixels && out, NN_ERR_INVALID, "nn_image_from_u8: %s is NULL",
             pixels ? "out" : "pixels");
    NN_CHECK(channels >= 1 && channels <= 4, NN_ERR_INVALID,
             "nn_image_from_u8: channels %d outside 1..4", channels);
    NN_CHECK(height >= 1 && width >= 1, NN_ERR_INVALID,
             "nn_image_from_u8: height %d and width %d must be positive",
             height, width);
    nn_pixels_opts o = NN_PIXELS_OPTS_INIT;
    NN_TRY(nn__read_opts(&o, opts, "nn_image_from_u8"));
    size_t row = (size_t)width * channels;
    NN_TRY(check_pixels_opts(&o, channels, row));
    picked im;
    NN_TRY(pick_image(out, index, "nn_image_from_u8", &im));
    NN_CHECK(im.h == height && im.w == width && im.c == channels,
             NN_ERR_SHAPE,
             "nn_image_from_u8: out holds %d x %d x %d images, the frame is "
             "%d x %d x %d",
             im.h, im.w, im.c, height, width, channels);
    size_t stride = o.stride ? o.stride : row;
    /* 256 values per channel, computed once as the documented formula. */
    float lut[4][256];
    for (int k = 0; k < channels; k++)
        for (int v = 0; v < 256; v++)
            lut[k][v] = ((float)v * o.scale - o.mean[k]) / o.std[k];
    float *d = (float *)im.data;
    for (int y = 0; y < height; y++, d += row) {
        const uint8_t *p = pixels + (size_t)y * stride;
        for (int x = 0; x < width; x++)
            for (int k = 0; k < channels; k++, p++)
                d[x * channels + k] = lut[k][*p];
    }
    return NN_OK;
}

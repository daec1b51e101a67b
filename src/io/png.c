/* PNG reading and writing through libpng. libpng reports errors by
 * longjmp: everything a decode owns lives in one job struct, so the
 * landing site can free it whatever stage the decode had reached, and
 * libpng's messages are recorded there instead of printed. libpng also
 * allocates through the library's allocator, so fault injection reaches
 * it. We ask libpng only to unpack samples (png_set_packing); the
 * conversion to floats, channels and class ids is ours, which keeps every
 * colour type on one exact, tested path. */
#include "io/image.h"

#include <errno.h>
#include <fcntl.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define READ_CHUNK 16384
#define MSG_LEN 200

/* ---------------- libpng callbacks ---------------- */

/* What libpng told us, for reading and writing alike: its error, its
 * first warning (not reported: libpng goes on after one), and whether an
 * allocation failed. libpng's error and memory pointers point here. */
typedef struct png_talk {
    bool nomem;
    char msg[MSG_LEN];
    char warning[MSG_LEN];
} png_talk;

static void on_error(png_structp png, png_const_charp msg)
{
    png_talk *t = png_get_error_ptr(png);
    if (!t->msg[0]) snprintf(t->msg, sizeof t->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void on_warning(png_structp png, png_const_charp msg)
{
    png_talk *t = png_get_error_ptr(png);
    if (!t->warning[0]) snprintf(t->warning, sizeof t->warning, "%s", msg);
}

static png_voidp on_malloc(png_structp png, png_alloc_size_t n)
{
    png_talk *t = png_get_mem_ptr(png);
    void *p = nn__try_alloc(n);
    if (!p) t->nomem = true;
    return p;
}

static void on_free(png_structp png, png_voidp p) { nn__free(p); }

typedef struct png_job {
    const char *path;
    int fd;
    png_structp png;
    png_infop info;
    uint8_t *pixels; /* the stored samples, unpacked to bytes */
    png_bytep *rows;
    nn_tensor *out;
    png_talk talk;
    bool eof;
    int read_errno;
    size_t have, used;
    uint8_t buf[READ_CHUNK];
} png_job;

static void on_read(png_structp png, png_bytep data, size_t n)
{
    png_job *j = png_get_io_ptr(png);
    while (n > 0) {
        if (j->used == j->have) {
            ssize_t k = read(j->fd, j->buf, sizeof j->buf);
            if (k < 0 && errno == EINTR) continue;
            if (k < 0) j->read_errno = errno;
            if (k <= 0) {
                j->eof = k == 0;
                png_error(png, k == 0 ? "truncated" : "read error");
            }
            j->have = (size_t)k;
            j->used = 0;
        }
        size_t take = j->have - j->used < n ? j->have - j->used : n;
        memcpy(data, j->buf + j->used, take);
        j->used += take;
        data += take;
        n -= take;
    }
}

/* The status for a decode that libpng abandoned. */
static nn_status png_failure(const png_job *j)
{
    if (j->talk.nomem)
        return nn__fail(NN_ERR_NOMEM, "png: '%s': out of memory", j->path);
    if (j->read_errno)
        return nn__fail(NN_ERR_IO, "png: reading '%s': %s", j->path,
                        strerror(j->read_errno));
    if (j->eof)
        return nn__fail(NN_ERR_FORMAT, "png: '%s' is truncated", j->path);
    return nn__fail(NN_ERR_FORMAT, "png: '%s' is corrupt (%s)", j->path,
                    j->talk.msg);
}

/* ---------------- the header ---------------- */

typedef struct png_head {
    uint32_t width, height;
    int depth, color, samples; /* samples per stored pixel */
} png_head;

static int stored_samples(int color)
{
    switch (color) {
    case PNG_COLOR_TYPE_GRAY: return 1;
    case PNG_COLOR_TYPE_GRAY_ALPHA: return 2;
    case PNG_COLOR_TYPE_RGB: return 3;
    case PNG_COLOR_TYPE_RGB_ALPHA: return 4;
    case PNG_COLOR_TYPE_PALETTE: return 1;
    }
    return 0;
}

static nn_status check_head(const png_job *j, const png_head *h, int channels,
                            bool mask, const nn_image_opts *o)
{
    if (mask)
        NN_CHECK(!(h->color & PNG_COLOR_MASK_COLOR) ||
                     h->color == PNG_COLOR_TYPE_PALETTE,
                 NN_ERR_UNSUPPORTED,
                 "png: mask '%s' is an RGB image; a mask must be gray or "
                 "palette PNG whose values are class ids",
                 j->path);
    int c = h->samples > channels ? h->samples : channels;
    uint64_t pixels = (uint64_t)h->width * h->height;
    NN_CHECK(pixels <= (uint64_t)o->max_values / (uint64_t)c,
             NN_ERR_UNSUPPORTED,
             "png: '%s' is %u x %u x %d values, more than the limit of %lld "
             "(nn_image_opts.max_values)",
             j->path, h->width, h->height, c, (long long)o->max_values);
    return NN_OK;
}

/* ---------------- samples to floats ---------------- */

static uint32_t sample(const uint8_t *p, int k, int depth)
{
    return depth == 16 ? (uint32_t)p[2 * k] << 8 | p[2 * k + 1] : p[k];
}

/* PIL's 8-bit luma, ITU-R 601 in 16-bit fixed point. */
static uint32_t luma8(uint32_t r, uint32_t g, uint32_t b)
{
    return (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16;
}

typedef struct png_palette {
    png_colorp colors;
    int n;
} png_palette;

/* One pixel of an image into c (1 or 3) floats. */
static nn_status image_pixel(const png_job *j, const png_head *h,
                             const png_palette *pal, const uint8_t *p,
                             int channels, float *dst)
{
    float max = (float)((1u << h->depth) - 1);
    uint32_t r, g, b;
    if (h->color == PNG_COLOR_TYPE_PALETTE) {
        NN_CHECK(p[0] < pal->n, NN_ERR_FORMAT,
                 "png: '%s' is corrupt (palette index %d, the palette has "
                 "%d colours)",
                 j->path, p[0], pal->n);
        png_color col = pal->colors[p[0]];
        r = col.red, g = col.green, b = col.blue;
        max = 255.0f;
    } else if (h->color & PNG_COLOR_MASK_COLOR) {
        r = sample(p, 0, h->depth);
        g = sample(p, 1, h->depth);
        b = sample(p, 2, h->depth);
    } else {
        r = g = b = sample(p, 0, h->depth);
    }
    if (channels == 3) {
        dst[0] = (float)r / max;
        dst[1] = (float)g / max;
        dst[2] = (float)b / max;
    } else if (r == g && g == b) {
        dst[0] = (float)r / max;
    } else if (max == 255.0f) {
        dst[0] = (float)luma8(r, g, b) / 255.0f;
    } else {
        dst[0] = (0.299f * (float)r + 0.587f * (float)g + 0.114f * (float)b) /
                 max;
    }
    return NN_OK;
}

static nn_status mask_pixel(const png_job *j, const png_head *h,
                            const png_palette *pal, const uint8_t *p,
                            const nn_image_opts *o, uint32_t x, uint32_t y,
                            float *dst)
{
    uint32_t v = sample(p, 0, h->depth);
    bool indexed = h->color == PNG_COLOR_TYPE_PALETTE;
    NN_CHECK(!indexed || (int)v < pal->n, NN_ERR_FORMAT,
             "png: '%s' is corrupt (palette index %u, the palette has %d "
             "colours)",
             j->path, v, pal->n);
    if (o->mask_mode == NN_MASK_BINARY) {
        uint32_t one = indexed ? 1 : (1u << h->depth) - 1;
        NN_CHECK(v == 0 || v == one, NN_ERR_FORMAT,
                 "png: mask '%s': value %u at x %u, y %u is neither 0 nor %u "
                 "(NN_MASK_BINARY); use NN_MASK_CLASS_IDS for masks of class "
                 "ids",
                 j->path, v, x, y, one);
        v = v == one;
    }
    NN_CHECK(v < (uint32_t)o->num_classes, NN_ERR_FORMAT,
             "png: mask '%s': value %u at x %u, y %u is not a class id in "
             "[0, %d) (num_classes)",
             j->path, v, x, y, o->num_classes);
    *dst = (float)v;
    return NN_OK;
}

static nn_status convert(png_job *j, const png_head *h, int channels,
                         bool mask, const nn_image_opts *o)
{
    png_palette pal = {NULL, 0};
    if (h->color == PNG_COLOR_TYPE_PALETTE)
        png_get_PLTE(j->png, j->info, &pal.colors, &pal.n);
    int64_t shape[3] = {h->height, h->width, channels};
    j->out = nn_tensor_create(3, shape);
    if (!j->out) return NN_ERR_NOMEM;
    size_t step = (size_t)h->samples * (h->depth == 16 ? 2 : 1);
    float *dst = j->out->data;
    for (uint32_t y = 0; y < h->height; y++) {
        const uint8_t *p = j->rows[y];
        for (uint32_t x = 0; x < h->width; x++, p += step, dst += channels) {
            if (mask)
                NN_TRY(mask_pixel(j, h, &pal, p, o, x, y, dst));
            else
                NN_TRY(image_pixel(j, h, &pal, p, channels, dst));
        }
    }
    return NN_OK;
}

/* ---------------- decoding ---------------- */

static nn_status start_reading(png_job *j)
{
    uint8_t sig[8];
    size_t got = 0;
    while (got < sizeof sig) {
        ssize_t k = read(j->fd, sig + got, sizeof sig - got);
        if (k < 0 && errno == EINTR) continue;
        NN_CHECK(k >= 0, NN_ERR_IO, "png: reading '%s': %s", j->path,
                 strerror(errno));
        if (k == 0) break;
        got += (size_t)k;
    }
    NN_CHECK(got > 0, NN_ERR_FORMAT, "png: '%s' is empty", j->path);
    NN_CHECK(got == sizeof sig && png_sig_cmp(sig, 0, sizeof sig) == 0,
             NN_ERR_FORMAT, "png: '%s' is not a PNG file (bad signature)",
             j->path);
    j->png = png_create_read_struct_2(PNG_LIBPNG_VER_STRING, &j->talk,
                                      on_error, on_warning, &j->talk,
                                      on_malloc, on_free);
    if (j->png) j->info = png_create_info_struct(j->png);
    NN_CHECK(j->png && j->info, NN_ERR_NOMEM,
             "png: '%s': out of memory starting libpng", j->path);
    return NN_OK;
}

/* Everything between the setjmp and its last use lives in *j, so nothing
 * is lost when libpng jumps back here. */
static nn_status decode(png_job *j, int channels, bool mask,
                        const nn_image_opts *o)
{
    if (setjmp(png_jmpbuf(j->png))) return png_failure(j);
    png_set_read_fn(j->png, j, on_read);
    png_set_sig_bytes(j->png, 8);
    /* Our own limit, in values, replaces libpng's per-axis default. */
    png_set_user_limits(j->png, PNG_UINT_31_MAX, PNG_UINT_31_MAX);
    png_read_info(j->png, j->info);
    png_head h = {0};
    int interlace = 0;
    png_get_IHDR(j->png, j->info, &h.width, &h.height, &h.depth, &h.color,
                 &interlace, NULL, NULL);
    h.samples = stored_samples(h.color);
    NN_TRY(check_head(j, &h, channels, mask, o));
    png_set_packing(j->png);
    png_set_interlace_handling(j->png);
    png_read_update_info(j->png, j->info);
    size_t row = png_get_rowbytes(j->png, j->info);
    j->pixels = nn__calloc(h.height, row);
    j->rows = nn__calloc(h.height, sizeof *j->rows);
    if (!j->pixels || !j->rows) return NN_ERR_NOMEM;
    for (uint32_t y = 0; y < h.height; y++) j->rows[y] = j->pixels + y * row;
    png_read_image(j->png, j->rows);
    png_read_end(j->png, NULL);
    return convert(j, &h, channels, mask, o);
}

nn_status nn__png_decode(const char *path, int channels, bool mask,
                         const nn_image_opts *o, nn_tensor **out)
{
    *out = NULL;
    png_job *j = nn__calloc(1, sizeof *j);
    if (!j) return NN_ERR_NOMEM;
    j->path = path;
    uint64_t size = 0;
    nn_status s = nn__file_open(path, "png", &j->fd, &size);
    if (s == NN_OK) s = start_reading(j);
    if (s == NN_OK) s = decode(j, channels, mask, o);
    if (j->png) png_destroy_read_struct(&j->png, &j->info, NULL);
    if (j->fd >= 0) close(j->fd);
    nn__free(j->pixels);
    nn__free(j->rows);
    if (s == NN_OK)
        *out = j->out;
    else
        nn_tensor_free(j->out);
    nn__free(j);
    return s;
}

/* ---------------- writing ---------------- */

typedef struct png_wjob {
    const char *path;
    FILE *f;
    int write_errno;
    png_structp png;
    png_infop info;
    png_bytep *rows;
    png_talk talk;
} png_wjob;

static void on_write(png_structp png, png_bytep data, size_t n)
{
    png_wjob *j = png_get_io_ptr(png);
    if (fwrite(data, 1, n, j->f) != n) {
        j->write_errno = errno ? errno : EIO;
        png_error(png, "write error");
    }
}

static void on_flush(png_structp png) { (void)png; }

static nn_status encode(png_wjob *j, const nn_png_out *img)
{
    if (setjmp(png_jmpbuf(j->png))) {
        if (j->talk.nomem)
            return nn__fail(NN_ERR_NOMEM, "png: writing '%s': out of memory",
                            j->path);
        const char *why =
            j->write_errno ? strerror(j->write_errno) : j->talk.msg;
        return nn__fail(NN_ERR_IO, "png: cannot write '%s': %s", j->path, why);
    }
    static const int types[5] = {PNG_COLOR_TYPE_PALETTE, PNG_COLOR_TYPE_GRAY,
                                 0, PNG_COLOR_TYPE_RGB,
                                 PNG_COLOR_TYPE_RGB_ALPHA};
    png_set_write_fn(j->png, j, on_write, on_flush);
    png_set_IHDR(j->png, j->info, (uint32_t)img->width, (uint32_t)img->height,
                 8, types[img->channels], PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (img->channels == 0) {
        png_color pal[256];
        for (int i = 0; i < img->n_palette; i++)
            pal[i] = (png_color){img->palette[3 * i], img->palette[3 * i + 1],
                                 img->palette[3 * i + 2]};
        png_set_PLTE(j->png, j->info, pal, img->n_palette);
    }
    size_t row = (size_t)img->width * (img->channels ? img->channels : 1);
    j->rows = nn__calloc((size_t)img->height, sizeof *j->rows);
    if (!j->rows) return NN_ERR_NOMEM;
    for (int y = 0; y < img->height; y++)
        j->rows[y] = (png_bytep)img->pixels + (size_t)y * row;
    png_write_info(j->png, j->info);
    png_write_image(j->png, j->rows);
    png_write_end(j->png, NULL);
    return NN_OK;
}

/* nn__file_replace's writer: the PNG into the temporary file. */
static nn_status write_png(FILE *f, void *ctx)
{
    const nn_png_out *img = ((const void *const *)ctx)[1];
    png_wjob *j = nn__calloc(1, sizeof *j);
    if (!j) return NN_ERR_NOMEM;
    j->path = ((const char *const *)ctx)[0];
    j->f = f;
    nn_status s = NN_OK;
    j->png = png_create_write_struct_2(PNG_LIBPNG_VER_STRING, &j->talk,
                                       on_error, on_warning, &j->talk,
                                       on_malloc, on_free);
    if (j->png) j->info = png_create_info_struct(j->png);
    if (!j->png || !j->info)
        s = nn__fail(NN_ERR_NOMEM, "png: writing '%s': out of memory",
                     j->path);
    if (s == NN_OK) s = encode(j, img);
    if (j->png) png_destroy_write_struct(&j->png, &j->info);
    nn__free(j->rows);
    nn__free(j);
    return s;
}

nn_status nn__png_write(const char *path, const nn_png_out *img)
{
    const void *ctx[2] = {path, img};
    return nn__file_replace(path, "png", write_png, (void *)ctx);
}
